//! The egress operations, shared by the REST routes and the MCP tools: each one binds the
//! agent's uplink lazily (503 before join), calls the broker, and writes the audit row.

use super::{egress_for, ok};
use crate::audit::{self, AuditEntry, Outcome};
use crate::http::{parse_json, ApiError, ApiResult, Request, Response};
use crate::limits::{
    self, MAX_AGENT_ID, MAX_CURSOR, MAX_ORG_ID, MAX_QUERY, MAX_SESSION_ID, MAX_STATUS,
};
use crate::state::AppState;
use crate::store::AgentRow;
use crate::uplink::{AgentCredentials, DiscoveredPage, PageRequest, ReceivedMessage, Uplink};
use cullis_shared::wire::egress::{
    DiscoverRequest, OpenSessionRequest, SendRequest, SessionInfo, ToolInvokeRequest,
};
use cullis_shared::wire::error::LocItem;
use http::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The broker's login answer for a certificate other than the pinned one.
const PINNED_ELSEWHERE: &str = "Certificate thumbprint mismatch";
/// How long a request waits for a rotating process to store the re-issued certificate.
const REISSUE_WAIT: Duration = Duration::from_secs(2);

/// An authenticated local agent about to act at the broker.
pub struct Egress {
    pub agent: AgentRow,
}

/// A received message as the egress API shows it (the reference fields + `verified`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageView {
    pub seq: i64,
    /// What `POST /v1/egress/messages/{session_id}/{msg_id}/ack` takes.
    pub msg_id: String,
    pub sender_agent_id: String,
    pub payload: Value,
    pub nonce: String,
    pub timestamp: String,
    pub signature: String,
    pub client_seq: Option<u64>,
    pub verified: bool,
}

impl From<ReceivedMessage> for MessageView {
    fn from(m: ReceivedMessage) -> MessageView {
        MessageView {
            seq: m.seq,
            msg_id: m.msg_id,
            sender_agent_id: m.sender_agent_id,
            payload: m.payload,
            nonce: m.nonce,
            timestamp: m.timestamp,
            signature: m.signature,
            client_seq: m.client_seq,
            verified: m.verified,
        }
    }
}

impl Egress {
    pub fn new(agent: AgentRow) -> Egress {
        Egress { agent }
    }

    pub fn agent_id(&self) -> &str {
        &self.agent.agent_id
    }

    async fn bind(&self, state: &AppState) -> ApiResult<(Uplink, AgentCredentials)> {
        let uplink = state.uplink().await?;
        let creds = state.credentials(&self.agent, &uplink).await?;
        Ok((uplink, creds))
    }

    /// Whether the broker refused this agent's certificate as not the pinned one: another
    /// process (`org rotate-ca`, `agent rotate-cert`) has just re-pinned the agent and is storing
    /// its new certificate. The caller then retries once with [`Egress::reissued_credentials`],
    /// so messaging goes on through a rotation.
    fn pinned_elsewhere(err: &ApiError) -> bool {
        err.detail_text()
            .is_some_and(|detail| detail.starts_with(PINNED_ELSEWHERE))
    }

    /// The credentials of the agent as re-issued (see [`Egress::reissued`]).
    async fn reissued_credentials(
        &self,
        state: &AppState,
        uplink: &Uplink,
    ) -> ApiResult<AgentCredentials> {
        let row = self.reissued(state).await?;
        state.credentials(&row, uplink).await
    }

    /// The agent as stored once its certificate differs from the one this request started
    /// with (the rotating process stores it right after the broker re-pinned it), or as
    /// stored after [`REISSUE_WAIT`].
    async fn reissued(&self, state: &AppState) -> ApiResult<AgentRow> {
        let until = Instant::now() + REISSUE_WAIT;
        loop {
            let row = state
                .ctx
                .store
                .agent_by_name(&self.agent.name)
                .await?
                .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Agent not found"))?;
            if row.cert_pem != self.agent.cert_pem || Instant::now() >= until {
                return Ok(row);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `op` and audits it as `action` (success detail from `describe`, error detail =
    /// the error text), with a request id and the duration.
    async fn audited<T, F, D>(
        &self,
        state: &AppState,
        action: &str,
        tool: Option<&str>,
        op: F,
        describe: D,
    ) -> ApiResult<T>
    where
        F: std::future::Future<Output = ApiResult<T>>,
        D: FnOnce(&T) -> String,
    {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let result = op.await;
        let (outcome, detail) = match &result {
            Ok(value) => (Outcome::Success, describe(value)),
            Err(err) if err.status == StatusCode::FORBIDDEN => (Outcome::Denied, error_text(err)),
            Err(err) => (Outcome::Error, error_text(err)),
        };
        let mut entry = AuditEntry::new(self.agent_id(), action, outcome).detail(detail);
        entry.tool_name = tool;
        entry.request_id = Some(&request_id);
        entry.duration_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        audit::record_quietly(&state.ctx.store, entry).await;
        result
    }

    pub async fn open_session(
        &self,
        state: &AppState,
        body: &OpenSessionRequest,
    ) -> ApiResult<String> {
        limits::text(
            &["body", "target_agent_id"],
            &body.target_agent_id,
            MAX_AGENT_ID,
        )?;
        limits::text(&["body", "target_org_id"], &body.target_org_id, MAX_ORG_ID)?;
        limits::capabilities(&["body", "capabilities"], &body.capabilities)?;
        let op = async {
            let (uplink, creds) = self.bind(state).await?;
            Ok(uplink
                .open_session(
                    &creds,
                    &body.target_agent_id,
                    &body.target_org_id,
                    &body.capabilities,
                )
                .await?)
        };
        let target = body.target_agent_id.clone();
        self.audited(state, "egress_session_open", None, op, |sid| {
            format!("target={target} session={sid}")
        })
        .await
    }

    pub async fn list_sessions(
        &self,
        state: &AppState,
        status: Option<&str>,
    ) -> ApiResult<Vec<SessionInfo>> {
        if let Some(status) = status {
            limits::text(&["query", "status"], status, MAX_STATUS)?;
        }
        let (uplink, creds) = self.bind(state).await?;
        let mut sessions = uplink.list_sessions(&creds, status).await?;
        // The broker's list has no org ids; every agent id carries its org (`<org>::<name>`).
        for session in &mut sessions {
            fill_org(&mut session.initiator_org_id, &session.initiator_agent_id);
            fill_org(&mut session.target_org_id, &session.target_agent_id);
        }
        Ok(sessions)
    }

    pub async fn accept(&self, state: &AppState, session_id: &str) -> ApiResult<()> {
        path_session_id(session_id)?;
        let op = async {
            let (uplink, creds) = self.bind(state).await?;
            Ok(uplink.accept_session(&creds, session_id).await?)
        };
        self.audited(state, "egress_session_accept", None, op, |_| {
            format!("session={session_id}")
        })
        .await
    }

    pub async fn close(&self, state: &AppState, session_id: &str) -> ApiResult<()> {
        path_session_id(session_id)?;
        let op = async {
            let (uplink, creds) = self.bind(state).await?;
            Ok(uplink.close_session(&creds, session_id).await?)
        };
        self.audited(state, "egress_session_close", None, op, |_| {
            format!("session={session_id}")
        })
        .await
    }

    /// Seals and sends with the next persisted `client_seq` of (agent, session).
    pub async fn send(
        &self,
        state: &AppState,
        session_id: &str,
        recipient: &str,
        payload: &Value,
    ) -> ApiResult<u64> {
        limits::text(&["body", "session_id"], session_id, MAX_SESSION_ID)?;
        limits::text(&["body", "recipient_agent_id"], recipient, MAX_AGENT_ID)?;
        let op = async {
            let (uplink, creds) = self.bind(state).await?;
            let sent = self
                .send_sealed(state, &uplink, &creds, session_id, recipient, payload)
                .await;
            match sent {
                Err(err) if Self::pinned_elsewhere(&err) => {
                    let creds = self.reissued_credentials(state, &uplink).await?;
                    self.send_sealed(state, &uplink, &creds, session_id, recipient, payload)
                        .await
                }
                other => other,
            }
        };
        self.audited(state, "egress_send", None, op, |seq| {
            format!("session={session_id} recipient={recipient} client_seq={seq}")
        })
        .await
    }

    /// Allocates the next `client_seq`, seals and sends; a value the broker refused (an
    /// unknown or foreign session, a bad recipient) is given back, so a session the broker
    /// never accepted leaves no `client_seq` state.
    async fn send_sealed(
        &self,
        state: &AppState,
        uplink: &Uplink,
        creds: &AgentCredentials,
        session_id: &str,
        recipient: &str,
        payload: &Value,
    ) -> ApiResult<u64> {
        let store = &state.ctx.store;
        let client_seq = store.next_client_seq(self.agent_id(), session_id).await?;
        match uplink
            .send(creds, session_id, recipient, payload, client_seq)
            .await
        {
            Ok(()) => Ok(client_seq),
            Err(err) => {
                if err.never_sent() {
                    store
                        .give_back_client_seq(self.agent_id(), session_id, client_seq)
                        .await?;
                }
                Err(err.into())
            }
        }
    }

    pub async fn messages(
        &self,
        state: &AppState,
        session_id: &str,
        after: i64,
    ) -> ApiResult<Vec<MessageView>> {
        path_session_id(session_id)?;
        let (uplink, creds) = self.bind(state).await?;
        let messages = match uplink
            .poll(&creds, session_id, after)
            .await
            .map_err(ApiError::from)
        {
            Err(err) if Self::pinned_elsewhere(&err) => {
                let creds = self.reissued_credentials(state, &uplink).await?;
                uplink.poll(&creds, session_id, after).await?
            }
            other => other?,
        };
        Ok(messages.into_iter().map(MessageView::from).collect())
    }

    /// The agent confirms it processed a message: the broker stops redelivering it.
    pub async fn ack(&self, state: &AppState, session_id: &str, msg_id: &str) -> ApiResult<()> {
        path_session_id(session_id)?;
        if msg_id.is_empty() || msg_id.len() > 32 || !msg_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::not_found("Message not found"));
        }
        let (uplink, creds) = self.bind(state).await?;
        uplink.ack_message(&creds, session_id, msg_id).await?;
        Ok(())
    }

    pub async fn discover(
        &self,
        state: &AppState,
        body: &DiscoverRequest,
    ) -> ApiResult<DiscoveredPage> {
        if let Some(q) = &body.q {
            limits::text(&["body", "q"], q, MAX_QUERY)?;
        }
        if let Some(cursor) = &body.cursor {
            limits::text(&["body", "cursor"], cursor, MAX_CURSOR)?;
        }
        if let Some(capabilities) = &body.capabilities {
            limits::capabilities(&["body", "capabilities"], capabilities)?;
        }
        let started = Instant::now();
        let (uplink, creds) = self.bind(state).await?;
        let capabilities = body.capabilities.clone().unwrap_or_default();
        let page = PageRequest {
            limit: body.limit,
            cursor: body.cursor.as_deref(),
        };
        let found = uplink
            .discover_page(&creds, &capabilities, body.q.as_deref(), page)
            .await?;
        // The reference audits discovery on success only.
        let mut entry = AuditEntry::new(self.agent_id(), "egress_discover", Outcome::Success)
            .detail(format!(
                "capabilities={capabilities:?} q={} results={}",
                body.q.as_deref().unwrap_or("None"),
                found.agents.len()
            ));
        entry.duration_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        audit::record_quietly(&state.ctx.store, entry).await;
        Ok(found)
    }

    /// Sends a `tool_call` message to the other participant of `session_id`.
    pub async fn tools_invoke(
        &self,
        state: &AppState,
        body: &ToolInvokeRequest,
    ) -> ApiResult<Value> {
        limits::text(&["body", "session_id"], &body.session_id, MAX_SESSION_ID)?;
        limits::text(
            &["body", "tool_name"],
            &body.tool_name,
            limits::MAX_TOOL_NAME,
        )?;
        let op = async {
            let (uplink, creds) = self.bind(state).await?;
            let sessions = uplink.list_sessions(&creds, None).await?;
            let session = sessions
                .iter()
                .find(|s| s.session_id == body.session_id)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Session {} not found for agent {}",
                        body.session_id,
                        self.agent_id()
                    ))
                })?;
            let recipient = if session.initiator_agent_id == self.agent_id() {
                session.target_agent_id.clone()
            } else if session.target_agent_id == self.agent_id() {
                session.initiator_agent_id.clone()
            } else {
                String::new()
            };
            if recipient.is_empty() {
                return Err(ApiError::bad_request(
                    "Cannot determine recipient from session metadata",
                ));
            }
            let request_id = uuid::Uuid::new_v4().to_string();
            let payload = json!({"type": "tool_call", "tool": body.tool_name, "parameters": body.parameters, "request_id": request_id});
            self.send_sealed(
                state,
                &uplink,
                &creds,
                &body.session_id,
                &recipient,
                &payload,
            )
            .await?;
            Ok(
                json!({"status": "sent", "request_id": request_id, "session_id": body.session_id, "tool": body.tool_name, "recipient": recipient}),
            )
        };
        let sid = body.session_id.clone();
        self.audited(
            state,
            "egress_tool_invoke",
            Some(&body.tool_name),
            op,
            |v| {
                format!(
                    "session={sid} recipient={} request_id={}",
                    v["recipient"].as_str().unwrap_or(""),
                    v["request_id"].as_str().unwrap_or("")
                )
            },
        )
        .await
    }
}

fn fill_org(org_id: &mut String, agent_id: &str) {
    if org_id.is_empty() {
        if let Some((org, _)) = agent_id.split_once("::") {
            *org_id = org.to_owned();
        }
    }
}

fn path_session_id(session_id: &str) -> ApiResult<()> {
    limits::text(&["path", "session_id"], session_id, MAX_SESSION_ID)
}

fn error_text(err: &ApiError) -> String {
    format!("{} {}", err.status.as_u16(), err.detail_line())
}

// ---- REST handlers ----

pub async fn open_session(state: &AppState, request: &Request) -> ApiResult<Response> {
    let egress = egress_for(state, request).await?;
    let body: OpenSessionRequest = parse_json(&request.body)?;
    let session_id = egress.open_session(state, &body).await?;
    ok(json!({"session_id": session_id, "status": "opened"}))
}

pub async fn list_sessions(state: &AppState, request: &Request) -> ApiResult<Response> {
    let egress = egress_for(state, request).await?;
    let status = request.query_param("status");
    let sessions = egress.list_sessions(state, status.as_deref()).await?;
    ok(json!({"sessions": sessions}))
}

pub async fn accept(state: &AppState, request: &Request, session_id: &str) -> ApiResult<Response> {
    let egress = egress_for(state, request).await?;
    egress.accept(state, session_id).await?;
    ok(json!({"status": "accepted", "session_id": session_id}))
}

pub async fn close(state: &AppState, request: &Request, session_id: &str) -> ApiResult<Response> {
    let egress = egress_for(state, request).await?;
    egress.close(state, session_id).await?;
    ok(json!({"status": "closed", "session_id": session_id}))
}

pub async fn send(state: &AppState, request: &Request) -> ApiResult<Response> {
    let egress = egress_for(state, request).await?;
    let body: SendRequest = parse_json(&request.body)?;
    egress
        .send(
            state,
            &body.session_id,
            &body.recipient_agent_id,
            &Value::Object(body.payload),
        )
        .await?;
    ok(json!({"status": "sent", "session_id": body.session_id}))
}

pub async fn messages(
    state: &AppState,
    request: &Request,
    session_id: &str,
) -> ApiResult<Response> {
    let egress = egress_for(state, request).await?;
    let after = after_param(request)?;
    let messages = egress.messages(state, session_id, after).await?;
    ok(json!({"count": messages.len(), "messages": messages}))
}

/// `POST /v1/egress/messages/{session_id}/{msg_id}/ack` → `{"status": "acked"}`.
pub async fn ack(
    state: &AppState,
    request: &Request,
    session_id: &str,
    msg_id: &str,
) -> ApiResult<Response> {
    let egress = egress_for(state, request).await?;
    egress.ack(state, session_id, msg_id).await?;
    ok(json!({"status": "acked", "session_id": session_id, "msg_id": msg_id}))
}

/// `after` (default -1) as FastAPI validates an int query parameter.
fn after_param(request: &Request) -> ApiResult<i64> {
    match request.query_param("after") {
        None => Ok(-1),
        Some(text) => text.trim().parse().map_err(|_| {
            ApiError::validation(
                "int_parsing",
                vec![LocItem::Key("query".into()), LocItem::Key("after".into())],
                "Input should be a valid integer, unable to parse string as an integer",
                Value::String(text),
            )
        }),
    }
}

pub async fn discover(state: &AppState, request: &Request) -> ApiResult<Response> {
    let egress = egress_for(state, request).await?;
    let body: DiscoverRequest = if request.body.is_empty() {
        DiscoverRequest::default()
    } else {
        parse_json(&request.body)?
    };
    let found = egress.discover(state, &body).await?;
    ok(discovered_json(found))
}

/// The egress answer (`POST /v1/egress/discover`, MCP `discover_agents`): the reference's
/// `agents` and `count`, plus `total` and `next_cursor` for paging.
pub fn discovered_json(found: DiscoveredPage) -> Value {
    json!({
        "count": found.agents.len(),
        "agents": found.agents,
        "total": found.total,
        "next_cursor": found.next_cursor,
    })
}

pub async fn tools_invoke(state: &AppState, request: &Request) -> ApiResult<Response> {
    let egress = egress_for(state, request).await?;
    let body: ToolInvokeRequest = parse_json(&request.body)?;
    let answer = egress.tools_invoke(state, &body).await?;
    Ok(Response::ok(&answer))
}
