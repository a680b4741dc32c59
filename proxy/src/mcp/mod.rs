//! `/mcp`: the MCP Streamable HTTP transport (JSON-RPC 2.0, single JSON responses), so any MCP
//! client becomes a Cullis agent. The bearer token is the agent's local API key; an
//! `Mcp-Session-Id` is issued at `initialize` and bound to that agent and key.
//!
//! Per the 2025-11-25 transport: a present `Origin` must be allowed (`MCP_PROXY_ALLOWED_ORIGINS`,
//! or a loopback / same-host origin when unset) or the request is 403 — a browser page must not
//! drive a local agent; a body must be one JSON-RPC request, notification or response (batches
//! belonged to 2025-03-26, which is no longer offered); only `tools/call` counts against the
//! agent's rate limit, not the transport's own chatter.

mod session;
mod tools;

pub use session::McpSessions;

use crate::http::{ApiError, ApiResult, Request, Response};
use crate::limits::clip;
use crate::state::AppState;
use crate::store::AgentRow;
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// Protocol revisions this server speaks, newest first. 2025-03-26 is not among them: it
/// requires JSON-RPC batches, which later revisions removed and this server does not take.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18"];

const SESSION_HEADER: &str = "mcp-session-id";

// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;
/// Server-defined: the agent's tool-call rate limit.
const RATE_LIMITED: i64 = -32000;
/// How much of an unknown method or tool name an error message repeats.
const ECHO_CHARS: usize = 64;

pub async fn route(state: &AppState, request: &Request) -> ApiResult<Response> {
    if let Some(origin) = request.header("origin") {
        if !origin_allowed(state, request, origin) {
            return Ok(rpc_error(
                StatusCode::FORBIDDEN,
                Value::Null,
                INVALID_REQUEST,
                "Forbidden: Origin not allowed",
            ));
        }
    } else if request.headers.contains_key("origin") {
        // Present but not text: not an origin anyone allowed.
        return Ok(rpc_error(
            StatusCode::FORBIDDEN,
            Value::Null,
            INVALID_REQUEST,
            "Forbidden: Origin not allowed",
        ));
    }
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

/// An allowed `Origin`: listed in `MCP_PROXY_ALLOWED_ORIGINS` (`*` = any), or — when that is
/// unset — a loopback origin or one naming this very host (the `Host` header).
fn origin_allowed(state: &AppState, request: &Request, origin: &str) -> bool {
    let listed = &state.serve.allowed_origins;
    if !listed.is_empty() {
        return listed
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/') == origin.trim_end_matches('/'));
    }
    let Ok(parsed) = url::Url::parse(origin) else {
        return false;
    };
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback {
        return true;
    }
    let origin_authority = match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return false,
    };
    request
        .header("host")
        .is_some_and(|host| host.eq_ignore_ascii_case(&origin_authority))
}

async fn authenticate(state: &AppState, request: &Request) -> ApiResult<AgentRow> {
    let bearer = request
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    // Not rate-limited here: only tool calls count (see `call`).
    state
        .identify(bearer, "Authorization: Bearer <agent API key> required")
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
    let message = match Message::classify(&message) {
        Ok(message) => message,
        Err((id, why)) => {
            return Ok(rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                INVALID_REQUEST,
                &format!("Invalid Request: {why}"),
            ))
        }
    };
    let params = message.params.cloned().unwrap_or(Value::Null);
    if message.method == Some("initialize") {
        let Some(id) = message.id else {
            return Ok(rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                "Invalid Request: initialize must be a request with an id",
            ));
        };
        return Ok(initialize(state, &agent, id.clone(), &params));
    }
    if let Err(response) = check_session(state, request, &agent) {
        return Ok(response);
    }
    match (message.method, message.id) {
        (Some(method), Some(id)) => Ok(call(state, &agent, method, id.clone(), &params).await),
        // A notification, or a response to a server request: accepted, nothing to answer.
        _ => Ok(Response::empty(StatusCode::ACCEPTED)),
    }
}

/// A JSON-RPC 2.0 message of one of the three kinds the transport accepts in a POST.
struct Message<'a> {
    /// Requests and notifications.
    method: Option<&'a str>,
    /// Requests and responses.
    id: Option<&'a Value>,
    params: Option<&'a Value>,
}

impl<'a> Message<'a> {
    /// A request (`method` + `id`), a notification (`method`, no `id`) or a response (`id` +
    /// exactly one of `result`/`error`); anything else is refused with the reason and the id
    /// to answer with.
    fn classify(value: &'a Value) -> Result<Message<'a>, (Value, &'static str)> {
        let Some(object) = value.as_object() else {
            return Err((
                Value::Null,
                if value.is_array() {
                    "batches are not supported; send one JSON-RPC message per request"
                } else {
                    "a JSON-RPC object is expected"
                },
            ));
        };
        let id = object.get("id");
        let echo = id
            .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
            .cloned()
            .unwrap_or(Value::Null);
        if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err((echo, "jsonrpc must be \"2.0\""));
        }
        if id.is_some_and(|id| !(id.is_string() || id.is_i64() || id.is_u64())) {
            return Err((Value::Null, "id must be a string or an integer"));
        }
        match object.get("method") {
            Some(Value::String(method)) => Ok(Message {
                method: Some(method.as_str()),
                id,
                params: object.get("params"),
            }),
            Some(_) => Err((echo, "method must be a string")),
            None => {
                let answers = usize::from(object.contains_key("result"))
                    + usize::from(object.contains_key("error"));
                if id.is_some() && answers == 1 {
                    Ok(Message {
                        method: None,
                        id,
                        params: None,
                    })
                } else {
                    Err((echo, "neither a request, a notification nor a response"))
                }
            }
        }
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
    if !state
        .mcp
        .belongs_to(session_id, &agent.agent_id, &agent.api_key_hash)
    {
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
    let Ok(session_id) = state
        .mcp
        .open(&agent.agent_id, &agent.api_key_hash, version)
    else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            INTERNAL_ERROR,
            "Too many MCP sessions on this proxy; try again later",
        );
    };
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
            if let Err(limited) = state.count_request(agent) {
                return rpc_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    id,
                    RATE_LIMITED,
                    "Rate limit exceeded",
                )
                .with_headers(limited.headers);
            }
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
                    &format!("Unknown tool: {}", clip(name, ECHO_CHARS)),
                ),
            }
        }
        _ => rpc_error(
            StatusCode::OK,
            id,
            METHOD_NOT_FOUND,
            &format!("Method not found: {}", clip(method, ECHO_CHARS)),
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
