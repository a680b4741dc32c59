//! `/v1/auth/*`: login, self-revoke, org revoke of an agent's tokens.

use crate::audit::{AuditEvent, Outcome};
use crate::auth::agent::AgentAuth;
use crate::auth::client_ip::ClientIp;
use crate::auth::dpop::expected_htu;
use crate::auth::login::issue_token;
use crate::auth::org::OrgCredentials;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::limits::LimitError;
use crate::state::AppState;
use crate::telemetry::DenyReason;
use axum::extract::State;
use axum::http::header::{HOST, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::{Json, Router};
use cullis_shared::wire::auth::{
    TokenRequest, TokenResponse, TransactionTokenRequest, TransactionTokenResponse,
};
use tracing::Instrument;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/token", post(token))
        .route("/v1/auth/revoke", post(revoke_self))
        .route("/v1/auth/revoke-agent/{agent_id}", post(revoke_agent))
        .route("/v1/auth/token/transaction", post(transaction_token))
}

/// Applies a rate-limit bucket; 429 with `Retry-After`, 503 when the store is down.
pub(crate) async fn rate_limit(
    state: &AppState,
    bucket: &str,
    subject: &str,
) -> Result<(), ApiError> {
    match state.limiter.check(bucket, subject).await {
        Ok(()) => Ok(()),
        Err(error @ LimitError::Exceeded { .. }) => {
            crate::telemetry::metrics().ratelimit_reject.add(
                1,
                &[opentelemetry::KeyValue::new("bucket", bucket.to_owned())],
            );
            let retry_after = error.retry_after_secs().unwrap_or(60).to_string();
            Err(
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, error.to_string())
                    .with_header(RETRY_AFTER, &retry_after),
            )
        }
        Err(error) => Err(ApiError::unavailable("rate limiter", error)),
    }
}

async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
    body: Result<ApiJson<TokenRequest>, ApiError>,
) -> ApiResult<Json<TokenResponse>> {
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        "auth.issue_token",
        agent.id = tracing::field::Empty,
        org.id = tracing::field::Empty
    );
    let issued = async {
        // 0. Request shape (422) — the DPoP header is a required parameter, like the body.
        // Present but not visible ASCII: kept as an empty proof, refused as malformed (401).
        let proof = headers
            .get("dpop")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let ApiJson(request) = body?;
        let proof = proof.ok_or_else(|| ApiError::missing_header("DPoP"))?;
        // 1. Rate limit by client IP, before any work.
        rate_limit(&state, "auth.token", &ip).await?;
        let host = headers.get(HOST).and_then(|v| v.to_str().ok());
        let htu = expected_htu(&state, host, uri.path());
        issue_token(&state, &proof, &htu, &request.client_assertion).await
    }
    .instrument(span)
    .await;
    let metrics = crate::telemetry::metrics();
    metrics
        .auth_duration
        .record(started.elapsed().as_secs_f64() * 1000.0, &[]);
    if let Err(error) = &issued {
        let reason = DenyReason::of(error.status().as_u16(), error.detail().unwrap_or(""));
        metrics.auth_denied(reason);
    }
    Ok(Json(issued?))
}

/// §4.4: a single-use token for one operation of the caller itself (`act.sub` = the caller).
/// Order as the reference: authentication (401), body validation (422), then the holder (403).
async fn transaction_token(
    State(state): State<AppState>,
    agent: AgentAuth,
    ApiJson(request): ApiJson<TransactionTokenRequest>,
) -> ApiResult<Json<TransactionTokenResponse>> {
    rate_limit(&state, "auth.transaction_token", agent.agent_id()).await?;
    crate::transaction_tokens::validate(&request)?;
    if request.agent_id != agent.agent_id() {
        return Err(ApiError::forbidden(
            "Can only request transaction tokens for yourself",
        ));
    }
    let holder = crate::transaction_tokens::Holder {
        agent_id: agent.agent_id(),
        org_id: agent.org_id(),
        spiffe_id: &agent.claims.sub,
    };
    let response = crate::transaction_tokens::issue(
        &state,
        &holder,
        &request,
        agent.agent_id(),
        Some(agent.claims.jti.clone()),
    )
    .await?;
    Ok(Json(response))
}

async fn revoke_self(State(state): State<AppState>, agent: AgentAuth) -> ApiResult<StatusCode> {
    state
        .db
        .invalidate_agent_tokens(agent.agent_id(), crate::db::unix_now())
        .await?;
    state.hub.disconnect(agent.agent_id()).await;
    state
        .audit
        .record(
            AuditEvent::new("auth.token_revoked", Outcome::Ok)
                .agent(agent.agent_id())
                .org(agent.org_id())
                .detail("reason", "self-revoke"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every token `agent` holds (its `iat` watermark moves to now) and closes its
/// WebSocket; `revoked_by` is who asked (an org id, or the console user).
pub(crate) async fn revoke_agent_tokens(
    state: &AppState,
    agent: &crate::db::agents::Agent,
    revoked_by: &str,
) -> ApiResult<()> {
    state
        .db
        .invalidate_agent_tokens(&agent.agent_id, crate::db::unix_now())
        .await?;
    state.hub.disconnect(&agent.agent_id).await;
    state
        .audit
        .record(
            AuditEvent::new("auth.token_revoked", Outcome::Ok)
                .agent(agent.agent_id.clone())
                .org(agent.org_id.clone())
                .detail("reason", "admin-revoke")
                .detail("revoked_by_org", revoked_by.to_owned()),
        )
        .await?;
    Ok(())
}

async fn revoke_agent(
    State(state): State<AppState>,
    credentials: OrgCredentials,
    ApiPath(agent_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let org = match credentials.verify(&state).await? {
        Some(org) if org.status == "active" => org,
        _ => return Err(ApiError::forbidden("Invalid organization credentials")),
    };
    let agent = state
        .db
        .agent(&agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent not found"))?;
    if agent.org_id != org.org_id {
        return Err(ApiError::forbidden(
            "Agent does not belong to your organization",
        ));
    }
    revoke_agent_tokens(&state, &agent, &org.org_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
