//! `/v1/registry/orgs*`: organisations and their CA.

use super::wire_enum;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::admin::AdminAuth;
use crate::auth::org::{hash_secret, OrgAuth, OrgCredentials};
use crate::db::orgs::{NewOrg, Org};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cullis_shared::pki::{accept_org_ca, validate_org_id};
use cullis_shared::wire::registry::{
    CaCertificateUploadRequest, CaCertificateUploadResponse, OrgCreateRequest, OrgResponse,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/registry/orgs", post(create_org).get(list_orgs))
        .route("/v1/registry/orgs/me", get(me))
        .route("/v1/registry/orgs/me/secret", post(rotate_secret))
        .route("/v1/registry/orgs/{org_id}", get(get_org))
        .route("/v1/registry/orgs/{org_id}/certificate", post(upload_ca))
        .route("/v1/registry/orgs/{org_id}/ca/rotate", post(rotate_ca))
}

/// `POST /v1/registry/orgs/me/secret` body.
#[derive(Debug, serde::Deserialize)]
struct RotateSecretRequest {
    new_secret: String,
}

/// Replaces the org's secret (authenticated with the current one). The old secret stops
/// working at once on every replica: remembered verifications are bound to the stored hash.
async fn rotate_secret(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiJson(request): ApiJson<RotateSecretRequest>,
) -> ApiResult<StatusCode> {
    let request = zeroize::Zeroizing::new(request.new_secret);
    let new_hash = hash_secret(&state, "new_secret", &request).await?;
    let replaced = state
        .db
        .replace_org_secret(&org.org.org_id, &org.org.secret_hash, &new_hash)
        .await?;
    if !replaced {
        return Err(ApiError::conflict(
            "The secret changed during this request; retry with the current secret",
        ));
    }
    state
        .audit
        .record(AuditEvent::new("org.secret_rotated", Outcome::Ok).org(org.org.org_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Default and bounds of a CA rotation's overlap window, seconds.
const DEFAULT_OVERLAP_SECONDS: i64 = 86_400;
const MIN_OVERLAP_SECONDS: i64 = 60;
const MAX_OVERLAP_SECONDS: i64 = 30 * 86_400;

/// `POST /v1/registry/orgs/{org_id}/ca/rotate` body.
#[derive(Debug, serde::Deserialize)]
struct RotateCaRequest {
    ca_certificate: String,
    #[serde(default)]
    overlap_seconds: Option<i64>,
}

/// Its answer.
#[derive(Debug, serde::Serialize)]
struct RotateCaResponse {
    org_id: String,
    ca_certificate_loaded: bool,
    /// Unix seconds: until then, leaves of the previous CA still log in.
    previous_ca_valid_until: i64,
}

/// Rotates the org CA without a cut-off (unlike `upload_ca`): the new CA signs from now on,
/// the previous one keeps signing valid logins for `overlap_seconds` (default one day) while
/// the org re-issues its agents' certificates through `rotate-cert`; pins and tokens stay.
async fn rotate_ca(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiPath(org_id): ApiPath<String>,
    ApiJson(request): ApiJson<RotateCaRequest>,
) -> ApiResult<Json<RotateCaResponse>> {
    if org.org.org_id != org_id {
        return Err(ApiError::forbidden("org_id mismatch"));
    }
    let overlap = request.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if !(MIN_OVERLAP_SECONDS..=MAX_OVERLAP_SECONDS).contains(&overlap) {
        return Err(ApiError::bad_request(format!(
            "overlap_seconds must be between {MIN_OVERLAP_SECONDS} and {MAX_OVERLAP_SECONDS}"
        )));
    }
    let now = crate::db::unix_now();
    let new_ca = accept_org_ca(&request.ca_certificate, now)
        .map_err(|e| ApiError::bad_request(e.upload_detail()))?;
    let current =
        org.org.ca_certificate.as_deref().ok_or_else(|| {
            ApiError::conflict("Org CA not configured: upload one before rotating")
        })?;
    let current_thumbprint = cullis_shared::pki::Certificate::from_pem(current)
        .map(|c| c.thumbprint().to_owned())
        .unwrap_or_default();
    if new_ca.thumbprint() == current_thumbprint {
        return Err(ApiError::bad_request(
            "The new CA certificate is the current one",
        ));
    }
    let until = now + overlap;
    if !state
        .db
        .rotate_org_ca(&org_id, &request.ca_certificate, until)
        .await?
    {
        return Err(ApiError::conflict(
            "Org CA not configured: upload one before rotating",
        ));
    }
    state
        .audit
        .record(
            AuditEvent::new("org.ca_rotated", Outcome::Ok)
                .org(org_id.clone())
                .detail("old_ca_thumbprint", current_thumbprint)
                .detail("new_ca_thumbprint", new_ca.thumbprint().to_owned())
                .detail("previous_ca_valid_until", until),
        )
        .await?;
    Ok(Json(RotateCaResponse {
        org_id,
        ca_certificate_loaded: true,
        previous_ca_valid_until: until,
    }))
}

pub(crate) fn org_response(org: Org) -> ApiResult<OrgResponse> {
    Ok(OrgResponse {
        status: wire_enum(&org.status)?,
        org_id: org.org_id,
        display_name: org.display_name,
        registered_at: org.registered_at,
    })
}

async fn create_org(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiJson(request): ApiJson<OrgCreateRequest>,
) -> ApiResult<(StatusCode, Json<OrgResponse>)> {
    Ok((StatusCode::CREATED, Json(create(&state, request).await?)))
}

/// Creates an active org directly (the operator's onboarding without an invite).
pub(crate) async fn create(state: &AppState, request: OrgCreateRequest) -> ApiResult<OrgResponse> {
    if validate_org_id(&request.org_id).is_err() {
        return Err(ApiError::validation(
            "string_pattern_mismatch",
            &["body", "org_id"],
            "String should match pattern '^[a-z0-9][a-z0-9._-]{0,127}$'",
            request.org_id.clone().into(),
        ));
    }
    super::check_display_name(&request.display_name)?;
    let secret_hash = hash_secret(state, "secret", &request.secret).await?;
    let metadata = serde_json::Value::Object(request.metadata).to_string();
    let org = NewOrg {
        org_id: &request.org_id,
        display_name: &request.display_name,
        secret_hash: &secret_hash,
        status: "active",
        metadata_json: &metadata,
        ca_certificate: None,
        webhook_url: None,
    };
    if !state.db.insert_org(&org).await? {
        return Err(ApiError::conflict("org_id already registered"));
    }
    let stored = state
        .db
        .org(&request.org_id)
        .await?
        .ok_or_else(|| ApiError::internal("org vanished after insert"))?;
    org_response(stored)
}

async fn list_orgs(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> ApiResult<Json<Vec<OrgResponse>>> {
    let orgs = state.db.orgs_with_status("active").await?;
    Ok(Json(
        orgs.into_iter()
            .map(org_response)
            .collect::<ApiResult<_>>()?,
    ))
}

/// The caller's own org, in any status (the proxy polls this while pending).
async fn me(
    State(state): State<AppState>,
    credentials: OrgCredentials,
) -> ApiResult<Json<OrgResponse>> {
    if state.db.org(&credentials.org_id).await?.is_none() {
        // Still run bcrypt so the answer time does not reveal which ids exist.
        let _ = credentials.verify(&state).await?;
        return Err(ApiError::not_found("Organization not found"));
    }
    let org = credentials
        .verify(&state)
        .await?
        .ok_or_else(|| ApiError::forbidden("Invalid organization credentials"))?;
    Ok(Json(org_response(org)?))
}

async fn get_org(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiPath(org_id): ApiPath<String>,
) -> ApiResult<Json<OrgResponse>> {
    let org = state
        .db
        .org(&org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Organization not found"))?;
    Ok(Json(org_response(org)?))
}

/// Uploads or replaces the org CA. Replacing clears every agent's pin and revokes their tokens.
async fn upload_ca(
    State(state): State<AppState>,
    credentials: OrgCredentials,
    ApiPath(org_id): ApiPath<String>,
    ApiJson(request): ApiJson<CaCertificateUploadRequest>,
) -> ApiResult<Json<CaCertificateUploadResponse>> {
    if credentials.org_id != org_id {
        return Err(ApiError::forbidden("org_id mismatch"));
    }
    if state.db.org(&org_id).await?.is_none() {
        return Err(ApiError::not_found("Organization not found"));
    }
    if credentials.verify(&state).await?.is_none() {
        return Err(ApiError::unauthorized("Invalid org credentials"));
    }
    install_ca(&state, org_id, request.ca_certificate)
        .await
        .map(Json)
}

/// Installs or replaces an org's CA (clearing pins and revoking the org's tokens).
pub(crate) async fn install_ca(
    state: &AppState,
    org_id: String,
    ca_certificate: String,
) -> ApiResult<CaCertificateUploadResponse> {
    if state.db.org(&org_id).await?.is_none() {
        return Err(ApiError::not_found("Organization not found"));
    }
    let request = CaCertificateUploadRequest { ca_certificate };
    let now = crate::db::unix_now();
    accept_org_ca(&request.ca_certificate, now)
        .map_err(|e| ApiError::bad_request(e.upload_detail()))?;
    state
        .db
        .replace_org_ca(&org_id, &request.ca_certificate, now)
        .await?;
    Ok(CaCertificateUploadResponse {
        org_id,
        ca_certificate_loaded: true,
    })
}
