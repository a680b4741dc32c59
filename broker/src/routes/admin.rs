//! `/v1/admin/*` (network admin): invites, org approval, certificate revocation.

use super::onboarding::invite_hash;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::admin::AdminAuth;
use crate::db::invites::Invite;
use crate::db::revocation::RevokedCert as RevokedRow;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cullis_shared::encoding::b64;
use cullis_shared::pki::normalize_serial_hex;
use cullis_shared::wire::admin::{
    CertRevokeRequest, CertRevokeResponse, InviteCreateRequest, InviteResponse,
    InviteRevokeResponse, OrgDecisionResponse, PendingOrg, RevokedCert, RevokedCertsQuery,
};
use cullis_shared::wire::registry::OrgStatus;
use rand::RngCore;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/invites", post(create_invite).get(list_invites))
        .route("/v1/admin/invites/{invite_id}/revoke", post(revoke_invite))
        .route("/v1/admin/orgs/pending", get(pending_orgs))
        .route("/v1/admin/orgs/{org_id}/approve", post(approve_org))
        .route("/v1/admin/orgs/{org_id}/reject", post(reject_org))
        .route("/v1/admin/certs/revoke", post(revoke_cert))
        .route("/v1/admin/certs/revoked", get(revoked_certs))
}

fn invite_response(invite: Invite, token: Option<String>) -> InviteResponse {
    InviteResponse {
        id: invite.id,
        token,
        label: invite.label,
        created_at: invite.created_at,
        expires_at: invite.expires_at,
        used: invite.used,
        used_by_org_id: invite.used_by_org_id,
        revoked: invite.revoked,
    }
}

async fn create_invite(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiJson(request): ApiJson<InviteCreateRequest>,
) -> ApiResult<(StatusCode, Json<InviteResponse>)> {
    Ok((
        StatusCode::CREATED,
        Json(issue_invite(&state, request).await?),
    ))
}

/// Creates an invite; the answer holds the plaintext token, the only time it exists.
pub(crate) async fn issue_invite(
    state: &AppState,
    request: InviteCreateRequest,
) -> ApiResult<InviteResponse> {
    if !(1..=8760).contains(&request.ttl_hours) {
        return Err(ApiError::validation(
            "less_than_equal",
            &["body", "ttl_hours"],
            "ttl_hours must be between 1 and 8760",
            Value::from(request.ttl_hours),
        ));
    }
    if request.label.chars().count() > 256 {
        return Err(ApiError::validation(
            "string_too_long",
            &["body", "label"],
            "label must be at most 256 characters",
            Value::Null,
        ));
    }
    let mut token_bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut token_bytes);
    let token = b64::url_unpadded(&token_bytes);
    let mut id_bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    let id = hex::encode(id_bytes);
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::hours(request.ttl_hours);
    let invite = state
        .db
        .insert_invite(&id, &invite_hash(&token), &request.label, expires_at)
        .await?;
    state
        .audit
        .record(
            AuditEvent::new("admin.invite_created", Outcome::Ok)
                .detail("invite_id", id)
                .detail("label", request.label)
                .detail("ttl_hours", request.ttl_hours),
        )
        .await?;
    Ok(invite_response(invite, Some(token)))
}

async fn list_invites(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> ApiResult<Json<Vec<InviteResponse>>> {
    let invites = state.db.invites().await?;
    Ok(Json(
        invites
            .into_iter()
            .map(|invite| invite_response(invite, None))
            .collect(),
    ))
}

async fn revoke_invite(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiPath(invite_id): ApiPath<String>,
) -> ApiResult<Json<InviteRevokeResponse>> {
    Ok(Json(revoke_invite_by_id(&state, invite_id).await?))
}

pub(crate) async fn revoke_invite_by_id(
    state: &AppState,
    invite_id: String,
) -> ApiResult<InviteRevokeResponse> {
    if !state.db.revoke_invite(&invite_id).await? {
        return Err(ApiError::not_found("Invite not found"));
    }
    state
        .audit
        .record(
            AuditEvent::new("admin.invite_revoked", Outcome::Ok)
                .detail("invite_id", invite_id.clone()),
        )
        .await?;
    Ok(InviteRevokeResponse {
        id: invite_id,
        revoked: true,
        message: "Invite token revoked.".into(),
    })
}

async fn pending_orgs(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> ApiResult<Json<Vec<PendingOrg>>> {
    let orgs = state.db.orgs_with_status("pending").await?;
    Ok(Json(
        orgs.into_iter()
            .map(|org| PendingOrg {
                contact_email: org.contact_email(),
                org_id: org.org_id,
                display_name: org.display_name,
                status: OrgStatus::Pending,
                registered_at: org.registered_at,
            })
            .collect(),
    ))
}

async fn approve_org(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiPath(org_id): ApiPath<String>,
) -> ApiResult<Json<OrgDecisionResponse>> {
    decide_org(&state, org_id, &APPROVE).await.map(Json)
}

async fn reject_org(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiPath(org_id): ApiPath<String>,
) -> ApiResult<Json<OrgDecisionResponse>> {
    decide_org(&state, org_id, &REJECT).await.map(Json)
}

/// An operator's decision on an organisation: which states it applies to and what it records.
pub(crate) struct OrgDecision {
    from: &'static [&'static str],
    to: OrgStatus,
    event: &'static str,
    outcome: Outcome,
    verb: &'static str,
}

pub(crate) const APPROVE: OrgDecision = OrgDecision {
    from: &["pending", "rejected", "suspended"],
    to: OrgStatus::Active,
    event: "onboarding.approved",
    outcome: Outcome::Ok,
    verb: "approved",
};

pub(crate) const REJECT: OrgDecision = OrgDecision {
    from: &["pending", "active"],
    to: OrgStatus::Rejected,
    event: "onboarding.rejected",
    outcome: Outcome::Denied,
    verb: "rejected",
};

/// An active org stops: its agents cannot log in until it is approved again (console only;
/// the reference's API has no suspend route).
pub(crate) const SUSPEND: OrgDecision = OrgDecision {
    from: &["active"],
    to: OrgStatus::Suspended,
    event: "org.suspended",
    outcome: Outcome::Denied,
    verb: "suspended",
};

pub(crate) async fn decide_org(
    state: &AppState,
    org_id: String,
    decision: &OrgDecision,
) -> ApiResult<OrgDecisionResponse> {
    let org = state
        .db
        .org(&org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Organization not found"))?;
    let to = decision.to.as_str();
    if !state
        .db
        .transition_org_status(&org_id, decision.from, to)
        .await?
    {
        return Err(ApiError::conflict(
            if org.status == "active" && to == "active" {
                "Organization already active".to_owned()
            } else {
                format!("Organization already in state '{}'", org.status)
            },
        ));
    }
    state
        .audit
        .record(AuditEvent::new(decision.event, decision.outcome).org(org_id.clone()))
        .await?;
    Ok(OrgDecisionResponse {
        message: format!("Organization '{org_id}' {}.", decision.verb),
        org_id,
        status: decision.to,
    })
}

/// Removes an organisation that never became a member (pending or rejected, no agents): a
/// mistaken or spam registration. Members are suspended instead, so their history stays whole.
pub(crate) async fn delete_org(state: &AppState, org_id: String) -> ApiResult<String> {
    if state.db.org(&org_id).await?.is_none() {
        return Err(ApiError::not_found("Organization not found"));
    }
    if !state.db.delete_unused_org(&org_id).await? {
        return Err(ApiError::conflict(
            "Only a pending or rejected organization without agents can be deleted; suspend an active one",
        ));
    }
    state
        .audit
        .record(AuditEvent::new("org.deleted", Outcome::Ok).org(org_id.clone()))
        .await?;
    Ok(format!("Organization '{org_id}' deleted."))
}

/// Serials are normalised (lowercase, no leading zeros, no `0x`) before they are stored, so a
/// revocation matches however the admin wrote it.
async fn revoke_cert(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiJson(request): ApiJson<CertRevokeRequest>,
) -> ApiResult<Json<CertRevokeResponse>> {
    Ok(Json(revoke_certificate(&state, request).await?))
}

/// Revokes a certificate by serial for the whole network (logins with it fail; tokens already
/// issued stay valid, as the reference's — revoke those with `auth::revoke_agent_tokens`).
pub(crate) async fn revoke_certificate(
    state: &AppState,
    request: CertRevokeRequest,
) -> ApiResult<CertRevokeResponse> {
    let serial_hex = normalize_serial_hex(&request.serial_hex).map_err(|_| {
        ApiError::validation(
            "value_error",
            &["body", "serial_hex"],
            "serial_hex must be a hexadecimal serial number",
            request.serial_hex.clone().into(),
        )
    })?;
    let cert_not_after = match request.cert_not_after.as_deref() {
        Some(text) => crate::db::parse_timestamp(text)
            .map(crate::db::timestamp_text)
            .ok_or_else(|| {
                ApiError::validation(
                    "datetime_parsing",
                    &["body", "cert_not_after"],
                    "cert_not_after must be an ISO 8601 datetime with a time zone",
                    text.into(),
                )
            })?,
        None => {
            crate::db::timestamp_text(time::OffsetDateTime::now_utc() + time::Duration::days(365))
        }
    };
    let row = RevokedRow {
        serial_hex: serial_hex.clone(),
        org_id: request.org_id.clone(),
        revoked_at: String::new(),
        revoked_by: request.revoked_by.clone(),
        reason: request.reason.clone(),
        cert_not_after,
        agent_id: request.agent_id.clone(),
    };
    let stored = state
        .db
        .revoke_cert(&row)
        .await?
        .ok_or_else(|| ApiError::conflict("Certificate already revoked"))?;
    state
        .audit
        .record(
            AuditEvent::new("cert.revoked", Outcome::Ok)
                .org(request.org_id.clone())
                .detail("serial_hex", serial_hex.clone())
                .detail("reason", request.reason.clone())
                .detail("revoked_by", request.revoked_by.clone()),
        )
        .await?;
    Ok(CertRevokeResponse {
        message: format!("Certificate {serial_hex} revoked."),
        serial_hex,
        org_id: stored.org_id,
        revoked_at: stored.revoked_at,
        agent_id: stored.agent_id,
        reason: stored.reason,
    })
}

async fn revoked_certs(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiQuery(query): ApiQuery<RevokedCertsQuery>,
) -> ApiResult<Json<Vec<RevokedCert>>> {
    let rows = state.db.revoked_certs(query.org_id.as_deref()).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| RevokedCert {
                serial_hex: row.serial_hex,
                org_id: row.org_id,
                revoked_at: row.revoked_at,
                revoked_by: row.revoked_by,
                reason: row.reason,
                agent_id: row.agent_id,
            })
            .collect(),
    ))
}
