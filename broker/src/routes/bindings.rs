//! `/v1/registry/bindings*`: an org approves its agents and sets the scope of their tokens.

use super::wire_enum;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::org::OrgAuth;
use crate::db::bindings::Binding;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use cullis_shared::wire::registry::{BindingCreateRequest, BindingListQuery, BindingResponse};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/registry/bindings", post(create).get(list))
        .route("/v1/registry/bindings/{binding_id}/approve", post(approve))
        .route("/v1/registry/bindings/{binding_id}/revoke", post(revoke))
}

fn binding_response(binding: Binding) -> ApiResult<BindingResponse> {
    Ok(BindingResponse {
        status: wire_enum(&binding.status)?,
        id: binding.id,
        org_id: binding.org_id,
        agent_id: binding.agent_id,
        scope: binding.scope,
        approved_at: binding.approved_at,
        approved_by: binding.approved_by,
        created_at: binding.created_at,
    })
}

/// Python's list repr, for the reference's scope error text: `['a', 'b']`.
fn py_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    format!("[{}]", quoted.join(", "))
}

async fn create(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiJson(request): ApiJson<BindingCreateRequest>,
) -> ApiResult<(StatusCode, Json<BindingResponse>)> {
    if request.org_id != org.org.org_id {
        return Err(ApiError::forbidden(
            "You cannot create a binding for another organization",
        ));
    }
    let agent = match state.db.agent(&request.agent_id).await? {
        Some(agent) if agent.org_id == org.org.org_id => agent,
        _ => {
            return Err(ApiError::not_found(
                "Agent not found or does not belong to this organization",
            ))
        }
    };
    let outside: Vec<String> = request
        .scope
        .iter()
        .filter(|s| !agent.capabilities.contains(s))
        .cloned()
        .collect();
    if !outside.is_empty() {
        let mut capabilities = agent.capabilities.clone();
        capabilities.sort();
        return Err(ApiError::bad_request(format!(
            "Scope {} not in agent capabilities: {}",
            py_list(&outside),
            py_list(&capabilities)
        )));
    }
    let binding = state
        .db
        .insert_binding(&org.org.org_id, &request.agent_id, &request.scope)
        .await?
        .ok_or_else(|| {
            ApiError::conflict("Binding already exists for this agent and organization")
        })?;
    state
        .audit
        .record(
            AuditEvent::new("binding.created", Outcome::Ok)
                .agent(binding.agent_id.clone())
                .org(binding.org_id.clone())
                .detail("binding_id", binding.id)
                .detail("scope", binding.scope.clone()),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(binding_response(binding)?)))
}

async fn owned_binding(state: &AppState, org: &OrgAuth, binding_id: i64) -> ApiResult<Binding> {
    let binding = state
        .db
        .binding(binding_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Binding not found"))?;
    if binding.org_id != org.org.org_id {
        return Err(ApiError::forbidden(
            "You are not the owning organization of this binding",
        ));
    }
    Ok(binding)
}

async fn approve(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiPath(binding_id): ApiPath<i64>,
) -> ApiResult<Json<BindingResponse>> {
    owned_binding(&state, &org, binding_id).await?;
    let binding = state
        .db
        .approve_binding(binding_id, &org.org.org_id)
        .await?
        .ok_or_else(|| ApiError::conflict("Binding is already approved"))?;
    state
        .audit
        .record(
            AuditEvent::new("binding.approved", Outcome::Ok)
                .agent(binding.agent_id.clone())
                .org(binding.org_id.clone())
                .detail("binding_id", binding.id),
        )
        .await?;
    Ok(Json(binding_response(binding)?))
}

/// Revokes the binding and, with it, every token the agent holds.
async fn revoke(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiPath(binding_id): ApiPath<i64>,
) -> ApiResult<Json<BindingResponse>> {
    owned_binding(&state, &org, binding_id).await?;
    let binding = state
        .db
        .revoke_binding(binding_id, crate::db::unix_now())
        .await?
        .ok_or_else(|| ApiError::not_found("Binding not found"))?;
    state.hub.disconnect(&binding.agent_id).await;
    state
        .audit
        .record(
            AuditEvent::new("binding.revoked", Outcome::Ok)
                .agent(binding.agent_id.clone())
                .org(binding.org_id.clone())
                .detail("binding_id", binding.id)
                .detail("sessions_closed", 0),
        )
        .await?;
    Ok(Json(binding_response(binding)?))
}

async fn list(
    State(state): State<AppState>,
    org: OrgAuth,
    ApiQuery(query): ApiQuery<BindingListQuery>,
) -> ApiResult<Json<Vec<BindingResponse>>> {
    if query.org_id != org.org.org_id {
        return Err(ApiError::forbidden(
            "You cannot view bindings of another organization",
        ));
    }
    let bindings = state.db.bindings_of_org(&query.org_id).await?;
    Ok(Json(
        bindings
            .into_iter()
            .map(binding_response)
            .collect::<ApiResult<_>>()?,
    ))
}
