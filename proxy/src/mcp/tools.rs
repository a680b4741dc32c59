//! The Cullis MCP tools: JSON-schema inputs, each a thin call into the egress operations.
//! Failures are tool results with `isError: true` (the model can read and react to them).

use crate::egress::Egress;
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::AgentRow;
use cullis_shared::wire::egress::{DiscoverRequest, OpenSessionRequest, ToolInvokeRequest};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// `tools/list` entries.
pub fn definitions() -> Value {
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let session = json!({"session_id": {"type": "string", "description": "Session id"}});
    json!([
        tool("cullis_discover", "Find agents of other organisations by capability and/or free text.",
            json!({"capabilities": strings, "q": string,
                "limit": {"type": "integer", "minimum": 1, "description": "Agents per page (the broker's maximum by default)"},
                "cursor": {"type": "string", "description": "next_cursor of the previous answer, for the next page"}}), &[]),
        tool("cullis_open_session", "Open a session with another organisation's agent (both organisations' policies must allow it).",
            json!({"target_agent_id": string, "target_org_id": string, "capabilities": strings}),
            &["target_agent_id", "target_org_id", "capabilities"]),
        tool("cullis_accept_session", "Accept a pending session opened towards this agent.", session.clone(), &["session_id"]),
        tool("cullis_send", "Send an end-to-end encrypted, signed message in an active session.",
            json!({"session_id": string, "recipient_agent_id": string, "payload": {"type": "object", "description": "JSON object to deliver"}}),
            &["session_id", "recipient_agent_id", "payload"]),
        tool("cullis_receive", "Receive (decrypt and verify) messages of a session newer than `after`.",
            json!({"session_id": string, "after": {"type": "integer", "default": -1}}), &["session_id"]),
        tool("cullis_list_sessions", "List this agent's sessions, optionally by status (pending, active, closed, ...).",
            json!({"status": string}), &[]),
        tool("cullis_close_session", "Close a session.", session, &["session_id"]),
        tool("cullis_invoke_tool", "Send a tool_call message to the other participant of a session.",
            json!({"session_id": string, "tool_name": string, "parameters": {"type": "object"}}), &["session_id", "tool_name"]),
    ])
}

fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties, "required": required, "additionalProperties": false},
    })
}

#[derive(serde::Deserialize)]
struct SessionArg {
    session_id: String,
}

#[derive(serde::Deserialize)]
struct SendArgs {
    session_id: String,
    recipient_agent_id: String,
    payload: Value,
}

#[derive(serde::Deserialize)]
struct ReceiveArgs {
    session_id: String,
    #[serde(default = "minus_one")]
    after: i64,
}

fn minus_one() -> i64 {
    -1
}

#[derive(serde::Deserialize, Default)]
struct ListArgs {
    #[serde(default)]
    status: Option<String>,
}

/// Runs tool `name`; `None` for an unknown tool (a protocol error, not a tool error).
pub async fn call(
    state: &AppState,
    agent: &AgentRow,
    name: &str,
    arguments: &Value,
) -> Option<Value> {
    let egress = Egress::new(agent.clone());
    let result = match name {
        "cullis_discover" => discover(state, &egress, arguments).await,
        "cullis_open_session" => {
            async {
                let args: OpenSessionRequest = args(arguments)?;
                let session_id = egress.open_session(state, &args).await?;
                Ok(json!({"session_id": session_id, "status": "opened"}))
            }
            .await
        }
        "cullis_accept_session" => {
            async {
                let args: SessionArg = args(arguments)?;
                egress.accept(state, &args.session_id).await?;
                Ok(json!({"status": "accepted", "session_id": args.session_id}))
            }
            .await
        }
        "cullis_send" => send(state, &egress, arguments).await,
        "cullis_receive" => {
            async {
                let args: ReceiveArgs = args(arguments)?;
                let messages = egress.messages(state, &args.session_id, args.after).await?;
                Ok(json!({"count": messages.len(), "messages": messages}))
            }
            .await
        }
        "cullis_list_sessions" => {
            async {
                let args: ListArgs = if arguments.is_null() {
                    ListArgs::default()
                } else {
                    self::args(arguments)?
                };
                let sessions = egress.list_sessions(state, args.status.as_deref()).await?;
                Ok(json!({"sessions": sessions}))
            }
            .await
        }
        "cullis_close_session" => {
            async {
                let args: SessionArg = args(arguments)?;
                egress.close(state, &args.session_id).await?;
                Ok(json!({"status": "closed", "session_id": args.session_id}))
            }
            .await
        }
        "cullis_invoke_tool" => {
            async {
                let args: ToolInvokeRequest = args(arguments)?;
                egress.tools_invoke(state, &args).await
            }
            .await
        }
        _ => return None,
    };
    Some(match result {
        Ok(value) => json!({
            "content": [{"type": "text", "text": value.to_string()}],
            "structuredContent": value,
            "isError": false,
        }),
        Err(err) => {
            let detail = err.detail_line();
            json!({
                "content": [{"type": "text", "text": format!("HTTP {}: {detail}", err.status.as_u16())}],
                "isError": true,
            })
        }
    })
}

fn args<T: DeserializeOwned>(arguments: &Value) -> ApiResult<T> {
    serde_json::from_value(arguments.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid arguments: {e}")))
}

async fn discover(state: &AppState, egress: &Egress, arguments: &Value) -> ApiResult<Value> {
    let body: DiscoverRequest = if arguments.is_null() {
        DiscoverRequest::default()
    } else {
        args(arguments)?
    };
    let found = egress.discover(state, &body).await?;
    Ok(crate::egress::ops::discovered_json(found))
}

async fn send(state: &AppState, egress: &Egress, arguments: &Value) -> ApiResult<Value> {
    let args: SendArgs = args(arguments)?;
    // A model may pass plain text; deliver it as `{"text": ...}`.
    let payload = match args.payload {
        Value::Object(_) => args.payload,
        Value::String(text) => json!({"text": text}),
        other => {
            return Err(ApiError::bad_request(format!(
                "payload must be a JSON object, got {other}"
            )))
        }
    };
    let client_seq = egress
        .send(state, &args.session_id, &args.recipient_agent_id, &payload)
        .await?;
    Ok(json!({"status": "sent", "session_id": args.session_id, "client_seq": client_seq}))
}
