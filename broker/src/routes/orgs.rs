//! `/v1/registry/orgs*`: organisations and their CA.

use super::wire_enum;
use crate::auth::admin::AdminAuth;
use crate::auth::org::{hash_secret, OrgCredentials};
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
        .route("/v1/registry/orgs/{org_id}", get(get_org))
        .route("/v1/registry/orgs/{org_id}/certificate", post(upload_ca))
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
    if validate_org_id(&request.org_id).is_err() {
        return Err(ApiError::validation(
            "string_pattern_mismatch",
            &["body", "org_id"],
            "String should match pattern '^[a-z0-9][a-z0-9._-]{0,127}$'",
            request.org_id.clone().into(),
        ));
    }
    super::check_display_name(&request.display_name)?;
    let secret_hash = hash_secret(&state, &request.secret).await?;
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
    Ok((StatusCode::CREATED, Json(org_response(stored)?)))
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
    let now = crate::db::unix_now();
    accept_org_ca(&request.ca_certificate, now)
        .map_err(|e| ApiError::bad_request(e.upload_detail()))?;
    state
        .db
        .replace_org_ca(&org_id, &request.ca_certificate, now)
        .await?;
    Ok(Json(CaCertificateUploadResponse {
        org_id,
        ca_certificate_loaded: true,
    }))
}
