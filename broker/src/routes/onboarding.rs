//! `POST /v1/onboarding/join`: an organisation asks to join with a single-use invite.
//!
//! Unlike the reference, every check runs before anything is written, and the invite is
//! consumed in the same transaction that creates the (pending) org: a refused join burns no
//! invite and leaves no org behind.

use super::auth::rate_limit;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::client_ip::ClientIp;
use crate::auth::org::hash_secret;
use crate::db::invites::JoinOutcome;
use crate::db::orgs::NewOrg;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use cullis_shared::pki::{accept_org_ca, validate_org_id};
use cullis_shared::wire::onboarding::{JoinRequest, JoinResponse};
use cullis_shared::wire::registry::OrgStatus;
use sha2::{Digest, Sha256};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/onboarding/join", post(join))
}

/// SHA-256 hex of an invite token: the only form stored.
pub(crate) fn invite_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn join(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<JoinRequest>,
) -> ApiResult<(StatusCode, Json<JoinResponse>)> {
    rate_limit(&state, "onboarding.join", &ip).await?;
    if validate_org_id(&request.org_id).is_err() {
        return Err(ApiError::validation(
            "string_pattern_mismatch",
            &["body", "org_id"],
            "String should match pattern '^[a-z0-9][a-z0-9._-]{0,127}$'",
            request.org_id.clone().into(),
        ));
    }
    super::check_display_name(&request.display_name)?;
    let token_hash = invite_hash(&request.invite_token);
    let reject_invite = || async {
        state
            .audit
            .record(
                AuditEvent::new("onboarding.join_rejected", Outcome::Denied)
                    .org(request.org_id.clone())
                    .detail("reason", "invalid_invite_token"),
            )
            .await?;
        Err::<(StatusCode, Json<JoinResponse>), ApiError>(ApiError::forbidden(
            "Invalid or expired invite token",
        ))
    };
    if state.db.valid_invite(&token_hash).await?.is_none() {
        return reject_invite().await;
    }
    if state.db.org(&request.org_id).await?.is_some() {
        return Err(ApiError::conflict("org_id already registered"));
    }
    accept_org_ca(&request.ca_certificate, crate::db::unix_now())
        .map_err(|e| ApiError::bad_request(e.join_detail()))?;
    let secret_hash = hash_secret(&state, "secret", &request.secret).await?;
    let metadata = serde_json::json!({"contact_email": request.contact_email}).to_string();
    let org = NewOrg {
        org_id: &request.org_id,
        display_name: &request.display_name,
        secret_hash: &secret_hash,
        status: "pending",
        metadata_json: &metadata,
        ca_certificate: Some(&request.ca_certificate),
        webhook_url: request.webhook_url.as_deref(),
    };
    match state.db.join_with_invite(&token_hash, &org).await? {
        JoinOutcome::Joined { invite_id } => {
            state
                .audit
                .record(
                    AuditEvent::new("onboarding.join_request", Outcome::Ok)
                        .org(request.org_id.clone())
                        .detail("display_name", request.display_name.clone())
                        .detail("contact_email", request.contact_email.clone())
                        .detail("invite_id", invite_id),
                )
                .await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(JoinResponse {
                    org_id: request.org_id,
                    status: OrgStatus::Pending,
                    message: "Request received. Awaiting approval from TrustLink.".into(),
                }),
            ))
        }
        JoinOutcome::InviteInvalid => reject_invite().await,
        JoinOutcome::OrgExists => Err(ApiError::conflict("org_id already registered")),
    }
}
