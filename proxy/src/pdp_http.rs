//! `POST /pdp/policy` (the broker's webhook call) and `GET /pdp/health`.

use crate::audit::{self, AuditEntry, Outcome};
use crate::http::{parse_json, ApiResult, Request, Response};
use crate::pdp;
use crate::state::AppState;
use cullis_shared::wire::pdp::{PdpDecision, PdpRequest};
use serde_json::json;

/// Evaluates the stored rules; each decision is audited as `pdp.decision` (the proof, for the
/// operator and the tests, that the broker asked this org).
pub async fn policy(state: &AppState, request: &Request) -> ApiResult<Response> {
    let body: PdpRequest = parse_json(&request.body)?;
    let rules = pdp::rules(&state.ctx.store).await?;
    let decision = pdp::evaluate(&rules, &body);
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
        cullis_shared::wire::pdp::SessionContext::Initiator => &body.initiator_agent_id,
        cullis_shared::wire::pdp::SessionContext::Target => &body.target_agent_id,
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

pub fn health() -> Response {
    Response::ok(&json!({"status": "ok", "mode": "built-in"}))
}
