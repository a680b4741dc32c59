//! `/v1/policy/rules*`: an organisation's local session and message rules (reference §1.6),
//! read by the local policy engine ([`crate::policy::local`]).

use super::wire_enum;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::org::OrgAuth;
use crate::db::policies::StoredPolicy;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::policy::python_json_len;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cullis_shared::wire::policy::{
    PolicyCreateRequest, PolicyListQuery, PolicyResponse, PolicyType,
};
use serde_json::Value;

/// Largest `rules` object accepted, measured as the reference does (`len(json.dumps(rules))`).
pub const MAX_RULES_BYTES: usize = 32 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/policy/rules", post(create).get(list))
        .route(
            "/v1/policy/rules/{policy_id}",
            get(fetch).delete(deactivate),
        )
}

fn policy_response(policy: StoredPolicy) -> ApiResult<PolicyResponse> {
    Ok(PolicyResponse {
        policy_type: wire_enum(&policy.policy_type)?,
        rules: policy.rules_object(),
        id: policy.id,
        policy_id: policy.policy_id,
        org_id: policy.org_id,
        is_active: policy.is_active,
        created_at: policy.created_at,
    })
}

async fn create(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiJson(request): ApiJson<PolicyCreateRequest>,
) -> ApiResult<(StatusCode, Json<PolicyResponse>)> {
    let size = python_json_len(&Value::Object(request.rules.clone()));
    if size > MAX_RULES_BYTES {
        return Err(ApiError::validation(
            "value_error",
            &["body", "rules"],
            format!("Value error, rules JSON must not exceed {MAX_RULES_BYTES} bytes (got {size})"),
            Value::Null,
        ));
    }
    if request.org_id != org.org.org_id {
        return Err(ApiError::forbidden(
            "You cannot create a policy for another organization",
        ));
    }
    let kind = match request.policy_type.as_str() {
        "session" => PolicyType::Session,
        "message" => PolicyType::Message,
        _ => {
            return Err(ApiError::bad_request(
                "policy_type must be 'session' or 'message'",
            ))
        }
    };
    let policy = state
        .db
        .insert_policy(
            &request.policy_id,
            &org.org.org_id,
            kind.as_str(),
            &request.rules,
        )
        .await?
        .ok_or_else(|| ApiError::conflict("policy_id already exists"))?;
    state.policy.forget_local_rules();
    state
        .audit
        .record(
            AuditEvent::new("policy.created", Outcome::Ok)
                .org(policy.org_id.clone())
                .detail("policy_id", policy.policy_id.clone())
                .detail("policy_type", kind.as_str()),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(policy_response(policy)?)))
}

async fn list(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiQuery(query): ApiQuery<PolicyListQuery>,
) -> ApiResult<Json<Vec<PolicyResponse>>> {
    if query.org_id != org.org.org_id {
        return Err(ApiError::forbidden(
            "You cannot view policies of another organization",
        ));
    }
    let policies = state
        .db
        .active_policies(&query.org_id, query.policy_type.as_deref())
        .await?;
    Ok(Json(
        policies
            .into_iter()
            .map(policy_response)
            .collect::<ApiResult<_>>()?,
    ))
}

async fn fetch(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiPath(policy_id): ApiPath<String>,
) -> ApiResult<Json<PolicyResponse>> {
    let policy = state
        .db
        .policy(&policy_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Policy not found"))?;
    if policy.org_id != org.org.org_id {
        return Err(ApiError::forbidden(
            "You cannot view policies of another organization",
        ));
    }
    Ok(Json(policy_response(policy)?))
}

/// Soft delete: the row stays, inactive; repeating it is harmless (and audited each time).
async fn deactivate(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiPath(policy_id): ApiPath<String>,
) -> ApiResult<Json<PolicyResponse>> {
    let policy = state
        .db
        .policy(&policy_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Policy not found"))?;
    if policy.org_id != org.org.org_id {
        return Err(ApiError::forbidden(
            "You cannot modify policies of another organization",
        ));
    }
    let policy = state
        .db
        .deactivate_policy(&policy_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Policy not found"))?;
    state.policy.forget_local_rules();
    state
        .audit
        .record(
            AuditEvent::new("policy.deactivated", Outcome::Ok)
                .org(policy.org_id.clone())
                .detail("policy_id", policy.policy_id.clone()),
        )
        .await?;
    Ok(Json(policy_response(policy)?))
}
