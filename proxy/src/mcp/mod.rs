//! `/mcp`: the MCP Streamable HTTP transport (JSON-RPC 2.0, single JSON responses), so any MCP
//! client becomes a Cullis agent. The bearer token is the agent's local API key; an
//! `Mcp-Session-Id` is issued at `initialize` and bound to that agent.

mod session;
mod tools;

pub use session::McpSessions;

use crate::http::{ApiError, ApiResult, Request, Response};
use crate::state::AppState;
use crate::store::AgentRow;
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// Protocol revisions this server speaks, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

const SESSION_HEADER: &str = "mcp-session-id";

// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

pub async fn route(state: &AppState, request: &Request) -> ApiResult<Response> {
    match request.method {
        Method::POST => post(state, request).await,
        Method::DELETE => delete(state, request).await,
        // No server-initiated stream: the transport allows 405 here.
        _ => Ok(Response::from(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ))
        .with_header("Allow", "POST, DELETE")),
    }
}

async fn authenticate(state: &AppState, request: &Request) -> ApiResult<AgentRow> {
    let bearer = request
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    state
        .authenticate(bearer, "Authorization: Bearer <agent API key> required")
        .await
        .map_err(|e| {
            if e.status == StatusCode::UNAUTHORIZED {
                e.with_header("WWW-Authenticate", "Bearer")
            } else {
                e
            }
        })
}

async fn post(state: &AppState, request: &Request) -> ApiResult<Response> {
    let agent = authenticate(state, request).await?;
    let message: Value = match serde_json::from_slice(&request.body) {
        Ok(message) => message,
        Err(err) => {
            return Ok(rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                PARSE_ERROR,
                &format!("Parse error: {err}"),
            ))
        }
    };
    let Some(object) = message.as_object() else {
        return Ok(rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "Invalid Request: a single JSON-RPC object is expected",
        ));
    };
    let id = object.get("id").cloned();
    let method = object.get("method").and_then(Value::as_str);
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Ok(rpc_error(
            StatusCode::BAD_REQUEST,
            id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            "Invalid Request: jsonrpc must be \"2.0\"",
        ));
    }
    let params = object.get("params").cloned().unwrap_or(Value::Null);
    if method == Some("initialize") {
        return Ok(initialize(
            state,
            &agent,
            id.unwrap_or(Value::Null),
            &params,
        ));
    }
    if let Err(response) = check_session(state, request, &agent) {
        return Ok(response);
    }
    match (method, id) {
        // A notification, or a response to a server request: accepted, nothing to answer.
        (_, None) | (None, Some(_)) => Ok(Response::empty(StatusCode::ACCEPTED)),
        (Some(method), Some(id)) => Ok(call(state, &agent, method, id, &params).await),
    }
}

/// The session header must name a live session of this agent; a supplied protocol version
/// header must be one we speak.
fn check_session(state: &AppState, request: &Request, agent: &AgentRow) -> Result<(), Response> {
    if let Some(version) = request.header("mcp-protocol-version") {
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                &format!("Unsupported MCP-Protocol-Version: {version}"),
            ));
        }
    }
    let Some(session_id) = request.header(SESSION_HEADER) else {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "Bad Request: Mcp-Session-Id header required (call initialize first)",
        ));
    };
    if !state.mcp.belongs_to(session_id, &agent.agent_id) {
        return Err(rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            INVALID_REQUEST,
            "Session not found: initialize again",
        ));
    }
    Ok(())
}

fn initialize(state: &AppState, agent: &AgentRow, id: Value, params: &Value) -> Response {
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = if SUPPORTED_VERSIONS.contains(&requested) {
        requested
    } else {
        SUPPORTED_VERSIONS[0]
    };
    let session_id = state.mcp.open(&agent.agent_id, version);
    let result = json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "cullis-proxy", "title": "Cullis proxy", "version": env!("CARGO_PKG_VERSION")},
        "instructions": format!(
            "You act as the Cullis agent {}. Discover agents of other organisations, open a session, \
             wait until it is active, then send and receive end-to-end encrypted messages.",
            agent.agent_id
        ),
    });
    rpc_result(id, result).with_header("Mcp-Session-Id", session_id)
}

async fn call(
    state: &AppState,
    agent: &AgentRow,
    method: &str,
    id: Value,
    params: &Value,
) -> Response {
    match method {
        "ping" => rpc_result(id, json!({})),
        "tools/list" => rpc_result(id, json!({"tools": tools::definitions()})),
        "tools/call" => {
            let Some(name) = params.get("name").and_then(Value::as_str) else {
                return rpc_error(
                    StatusCode::OK,
                    id,
                    INVALID_PARAMS,
                    "Invalid params: tools/call needs a tool name",
                );
            };
            let arguments = params
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| json!({}));
            match tools::call(state, agent, name, &arguments).await {
                Some(result) => rpc_result(id, result),
                None => rpc_error(
                    StatusCode::OK,
                    id,
                    INVALID_PARAMS,
                    &format!("Unknown tool: {name}"),
                ),
            }
        }
        _ => rpc_error(
            StatusCode::OK,
            id,
            METHOD_NOT_FOUND,
            &format!("Method not found: {method}"),
        ),
    }
}

async fn delete(state: &AppState, request: &Request) -> ApiResult<Response> {
    let agent = authenticate(state, request).await?;
    let session_id = request
        .header(SESSION_HEADER)
        .ok_or_else(|| ApiError::bad_request("Mcp-Session-Id header required"))?;
    if !state.mcp.close(session_id, &agent.agent_id) {
        return Err(ApiError::not_found("Session not found"));
    }
    Ok(Response::empty(StatusCode::NO_CONTENT))
}

fn rpc_result(id: Value, result: Value) -> Response {
    Response::ok(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    Response::json(
        status,
        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    )
}
