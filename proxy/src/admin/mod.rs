//! The headless admin API under `/v1/admin/...`, protected by `MCP_PROXY_ADMIN_TOKEN`
//! (`Authorization: Bearer <token>` or `X-Admin-Token`, compared in constant time): everything
//! the CLI does, over HTTP, against the same store.

use crate::agents;
use crate::audit;
use crate::http::{parse_json, ApiError, ApiResult, Request, Response};
use crate::org::{self, CaKeyType, CaSource, JoinParams};
use crate::pdp;
use crate::state::{op_error, AppState};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

pub async fn route(state: &AppState, request: &Request, rest: &[&str]) -> ApiResult<Response> {
    authorize(state, request)?;
    let ctx = &state.ctx;
    let m = &request.method;
    let answer: Value = match (m, rest) {
        (&Method::GET, ["org"]) => org::config(ctx).await.map_err(op_error)?,
        (&Method::POST, ["org", "init"]) => org::init(ctx, parse_init(request)?)
            .await
            .map_err(op_error)?,
        (&Method::POST, ["org", "join"]) => {
            org::join(ctx, parse_json::<JoinParams>(&request.body)?)
                .await
                .map_err(op_error)?
        }
        (&Method::GET, ["org", "status"]) => org::status(ctx).await.map_err(op_error)?,
        (&Method::POST, ["org", "rotate-ca"]) => {
            let body: RotateCaBody = if request.body.is_empty() {
                RotateCaBody::default()
            } else {
                parse_json(&request.body)?
            };
            org::rotate_ca(ctx, body.overlap_seconds.unwrap_or(86_400))
                .await
                .map_err(op_error)?
        }
        (&Method::GET, ["agents"]) => json!({"agents": agents::list(ctx).await.map_err(op_error)?}),
        (&Method::POST, ["agents"]) => {
            let body: CreateAgent = parse_json(&request.body)?;
            let created = agents::create(
                ctx,
                &body.name,
                &body.capabilities,
                body.display_name.as_deref(),
            )
            .await
            .map_err(op_error)?;
            return Ok(Response::json(StatusCode::CREATED, &created));
        }
        (&Method::POST, ["agents", "rotate-cert"]) => {
            agents::rotate_all_certs(ctx, agents::KeyPair::New)
                .await
                .map_err(op_error)?
        }
        (&Method::POST, ["agents", name, "rotate-key"]) => {
            let rotated = agents::rotate_api_key(ctx, name).await.map_err(op_error)?;
            state.credentials_changed(&rotated.agent_id);
            json!(rotated)
        }
        (&Method::POST, ["agents", name, "rotate-cert"]) => {
            agents::rotate_cert(ctx, name, agents::KeyPair::New)
                .await
                .map_err(op_error)?
        }
        (&Method::POST, ["agents", name, "disable"]) => {
            let done = agents::disable(ctx, name).await.map_err(op_error)?;
            changed(state, &done);
            done
        }
        (&Method::DELETE, ["agents", name]) => {
            let done = agents::delete(ctx, name).await.map_err(op_error)?;
            changed(state, &done);
            done
        }
        (&Method::GET, ["policy"]) => pdp::rules(&ctx.store).await?,
        (&Method::PUT, ["policy"]) => {
            let rules: Value = serde_json::from_slice(&request.body)
                .map_err(|e| ApiError::bad_request(format!("rules must be JSON: {e}")))?;
            pdp::set_rules(&ctx.store, &rules).await.map_err(op_error)?;
            rules
        }
        (&Method::GET, ["audit"]) => audit_query(state, request).await?,
        (&Method::GET, ["audit", "verify"]) => json!(audit::verify(&ctx.store).await?),
        _ => return Err(ApiError::not_found("Not Found")),
    };
    Ok(Response::ok(&answer))
}

/// Ends the streams and MCP sessions of the agent a disable/delete answer names.
fn changed(state: &AppState, answer: &Value) {
    if let Some(agent_id) = answer.get("agent_id").and_then(Value::as_str) {
        state.credentials_changed(agent_id);
    }
}

fn authorize(state: &AppState, request: &Request) -> ApiResult<()> {
    let Some(expected) = state.serve.admin_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Admin API disabled: set MCP_PROXY_ADMIN_TOKEN",
        ));
    };
    let given = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| request.header("x-admin-token"))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("Invalid admin token").with_header("WWW-Authenticate", "Bearer"))
    }
}

#[derive(serde::Deserialize)]
struct CreateAgent {
    name: String,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct RotateCaBody {
    #[serde(default)]
    overlap_seconds: Option<i64>,
}

#[derive(serde::Deserialize)]
struct InitBody {
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    key_type: Option<CaKeyType>,
    #[serde(default)]
    ca_cert_pem: Option<String>,
    #[serde(default)]
    ca_key_pem: Option<String>,
}

fn parse_init(request: &Request) -> ApiResult<CaSource> {
    let body: InitBody = parse_json(&request.body)?;
    match (body.ca_cert_pem, body.ca_key_pem, body.org_id) {
        (Some(cert_pem), Some(key_pem), _) => Ok(CaSource::Import { cert_pem, key_pem }),
        (None, None, Some(org_id)) => Ok(CaSource::Generate {
            org_id,
            key_type: body.key_type.unwrap_or(CaKeyType::P384),
        }),
        _ => Err(ApiError::bad_request(
            "give org_id (generate) or ca_cert_pem and ca_key_pem (import)",
        )),
    }
}

async fn audit_query(state: &AppState, request: &Request) -> ApiResult<Value> {
    let limit = match request.query_param("limit") {
        Some(text) => text
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request("limit must be an integer"))?
            .clamp(1, 10_000),
        None => 1000,
    };
    let agent = request.query_param("agent_id");
    let action = request.query_param("action");
    let rows = state
        .ctx
        .store
        .audit_rows(agent.as_deref(), action.as_deref(), limit)
        .await?;
    Ok(json!({"count": rows.len(), "entries": rows}))
}
