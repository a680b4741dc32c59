//! `POST /pdp/policy` (the broker's webhook call) and `GET /pdp/health`.
//!
//! The endpoint is reachable by anyone who can reach the proxy, so before anything is logged or
//! audited it is rate-limited (`MCP_PROXY_PDP_RATE_LIMIT_PER_MINUTE`), optionally restricted to
//! the broker by a shared secret (`MCP_PROXY_PDP_SECRET`, sent by the broker as HTTP Basic
//! credentials because `org join` registers the webhook URL with them), and its ids must be
//! well-formed agent and org ids — so a row and a log line are bounded whatever is sent.

use crate::audit::{self, AuditEntry, Outcome};
use crate::http::{parse_json, ApiError, ApiResult, Request, Response};
use crate::limits;
use crate::pdp;
use crate::state::AppState;
use cullis_shared::wire::pdp::{PdpDecision, PdpRequest, SessionContext};
use http::StatusCode;
use serde_json::json;
use subtle::ConstantTimeEq;

/// The rate limiter's key for the webhook (one window for the whole endpoint).
const LIMITER_KEY: &str = "pdp/policy";

/// Evaluates the stored rules; each decision is audited as `pdp.decision` (the proof, for the
/// operator and the tests, that the broker asked this org).
pub async fn policy(state: &AppState, request: &Request) -> ApiResult<Response> {
    if let Err(retry_after) = state.pdp_limiter.check(LIMITER_KEY) {
        return Err(
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded")
                .with_header("Retry-After", retry_after.to_string()),
        );
    }
    authorize(state, request)?;
    let body: PdpRequest = parse_json(&request.body)?;
    if let Err(err) = validate(&body) {
        tracing::warn!(
            detail = err.detail_text().unwrap_or("invalid request"),
            "PDP request refused"
        );
        return Err(err);
    }
    let rules = pdp::rules(&state.ctx.store).await?;
    let decision = tracing::info_span!(
        "pdp.decide",
        pdp.context = body.session_context.as_str(),
        pdp.decision = tracing::field::Empty,
    )
    .in_scope(|| {
        let decision = pdp::evaluate(&rules, &body);
        tracing::Span::current().record("pdp.decision", decision.decision.as_str());
        decision
    });
    crate::telemetry::metrics().pdp_decisions.add(
        1,
        &[opentelemetry::KeyValue::new(
            "decision",
            decision.decision.as_str(),
        )],
    );
    tracing::info!(
        initiator = body.initiator_agent_id,
        target = body.target_agent_id,
        context = body.session_context.as_str(),
        decision = decision.decision.as_str(),
        "PDP decision"
    );
    let outcome = match decision.decision {
        PdpDecision::Allow => Outcome::Success,
        PdpDecision::Deny => Outcome::Denied,
    };
    let actor = match body.session_context {
        SessionContext::Initiator => &body.initiator_agent_id,
        SessionContext::Target => &body.target_agent_id,
    };
    let detail = format!(
        "context={} initiator={} target={} capabilities={:?}{}",
        body.session_context.as_str(),
        body.initiator_agent_id,
        body.target_agent_id,
        body.capabilities,
        decision
            .reason
            .as_deref()
            .map(|r| format!(" reason={r}"))
            .unwrap_or_default()
    );
    audit::record_quietly(
        &state.ctx.store,
        AuditEntry::new(actor, "pdp.decision", outcome).detail(detail),
    )
    .await;
    Ok(Response::ok(&decision))
}

/// With `MCP_PROXY_PDP_SECRET` set, the request must carry it as the password of HTTP Basic
/// credentials (any user name), compared in constant time.
fn authorize(state: &AppState, request: &Request) -> ApiResult<()> {
    let Some(expected) = state.ctx.settings.pdp_secret.as_deref() else {
        return Ok(());
    };
    let given = request
        .header("authorization")
        .and_then(basic_password)
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("PDP webhook credentials required")
            .with_header("WWW-Authenticate", "Basic realm=\"cullis-pdp\""))
    }
}

/// The password of an `Authorization: Basic` value.
fn basic_password(value: &str) -> Option<String> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = cullis_shared::encoding::b64::decode_std(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Well-formed ids (each agent in its org's namespace) and bounded capabilities.
fn validate(body: &PdpRequest) -> ApiResult<()> {
    limits::agent_id(&["body", "initiator_agent_id"], &body.initiator_agent_id)?;
    limits::agent_id(&["body", "target_agent_id"], &body.target_agent_id)?;
    limits::org_id(&["body", "initiator_org_id"], &body.initiator_org_id)?;
    limits::org_id(&["body", "target_org_id"], &body.target_org_id)?;
    limits::capabilities(&["body", "capabilities"], &body.capabilities)?;
    for (agent, org, field) in [
        (
            &body.initiator_agent_id,
            &body.initiator_org_id,
            "initiator_agent_id",
        ),
        (
            &body.target_agent_id,
            &body.target_org_id,
            "target_agent_id",
        ),
    ] {
        if agent.split_once("::").map(|(o, _)| o) != Some(org.as_str()) {
            return Err(ApiError::bad_request(format!(
                "{field} is not in the namespace of its org"
            )));
        }
    }
    Ok(())
}

pub fn health() -> Response {
    Response::ok(&json!({"status": "ok", "mode": "built-in"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read() {
        let value = format!(
            "Basic {}",
            cullis_shared::encoding::b64::std_padded(b"cullis:s3cret:x")
        );
        assert_eq!(basic_password(&value).as_deref(), Some("s3cret:x"));
        assert_eq!(basic_password("Bearer abc"), None);
        assert_eq!(basic_password("Basic !!!"), None);
    }
}
