//! Push from the broker: one WebSocket per subscribed agent (`/v1/broker/ws`, first-frame
//! `{"type":"auth","token","dpop_proof"}` per broker §6), fanned out to a broadcast channel.
//!
//! pingora has no WebSocket client, so this uses tokio-tungstenite with the same TLS settings as
//! the REST transport. The socket reconnects with capped exponential backoff (re-authenticating
//! with a fresh token) and emits [`AgentEvent::Resync`] once it is back; it keeps itself alive
//! with application pings under the broker's idle timeout; it closes when the last receiver is
//! dropped or on [`Uplink::forget_agent`]. A `new_message` push is completed by fetching and
//! opening the stored message (the push carries neither nonce nor signature).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cullis_shared::wire::ws::{ClientFrame, ServerFrame, WsMessage};
use futures_util::{SinkExt, StreamExt};
use http::Method;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::auth::unix_now;
use super::{path_segment, AgentCredentials, AgentEvent, Inner, Uplink, UplinkError};

/// The broker's WebSocket path (also the DPoP `htu` path).
pub(crate) const WS_PATH: &str = "/v1/broker/ws";
/// Events buffered per agent for slow receivers (they see `Lagged` beyond this).
const CHANNEL_CAPACITY: usize = 256;
/// Application ping period: well under the broker's 300 s idle timeout and its 30 frames/min.
const PING_EVERY: Duration = Duration::from_secs(60);
/// How often the task checks whether anybody still listens.
const LISTENER_CHECK: Duration = Duration::from_secs(2);
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Subscription {
    id: u64,
    events: broadcast::Sender<AgentEvent>,
    task: tokio::task::AbortHandle,
}

/// Live subscriptions by agent id.
#[derive(Default)]
pub(crate) struct Subscriptions {
    live: Mutex<HashMap<String, Subscription>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Subscriptions {
    /// A receiver on the agent's running subscription, if there is one.
    fn join(&self, agent_id: &str) -> Option<broadcast::Receiver<AgentEvent>> {
        let live = self.live.lock().expect("lock");
        live.get(agent_id)
            .filter(|sub| !sub.task.is_finished())
            .map(|sub| sub.events.subscribe())
    }

    pub fn close(&self, agent_id: &str) {
        if let Some(sub) = self.live.lock().expect("lock").remove(agent_id) {
            sub.task.abort();
        }
    }

    /// Removes the entry when it is still the one of task `id`.
    fn finished(&self, agent_id: &str, id: u64) {
        let mut live = self.live.lock().expect("lock");
        if live.get(agent_id).is_some_and(|sub| sub.id == id) {
            live.remove(agent_id);
        }
    }
}

impl Uplink {
    /// Push: one broker WebSocket per subscribed agent (opened on first subscribe, reconnecting
    /// with backoff). The first connection is made before returning, so bad credentials or an
    /// unreachable broker surface here.
    pub async fn subscribe(
        &self,
        agent: &AgentCredentials,
    ) -> Result<broadcast::Receiver<AgentEvent>, UplinkError> {
        if let Some(receiver) = self.inner.events.join(&agent.agent_id) {
            return Ok(receiver);
        }
        let socket = self.ws_connect(agent).await?;
        let events = &self.inner.events;
        let mut live = events.live.lock().expect("lock");
        if let Some(sub) = live
            .get(&agent.agent_id)
            .filter(|sub| !sub.task.is_finished())
        {
            // Another caller won the race; its socket serves both.
            return Ok(sub.events.subscribe());
        }
        let (sender, receiver) = broadcast::channel(CHANNEL_CAPACITY);
        let id = events
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let task = tokio::spawn(run(
            Arc::downgrade(&self.inner),
            agent.clone(),
            socket,
            sender.clone(),
            id,
        ));
        live.insert(
            agent.agent_id.clone(),
            Subscription {
                id,
                events: sender,
                task: task.abort_handle(),
            },
        );
        Ok(receiver)
    }

    /// Opens and authenticates a socket. A stale nonce is refreshed and a rejected token
    /// replaced, once each.
    async fn ws_connect(&self, agent: &AgentCredentials) -> Result<Socket, UplinkError> {
        let mut retried = false;
        loop {
            match self.ws_attempt(agent).await {
                Err(UplinkError::Broker { detail, .. })
                    if !retried && detail == "use_dpop_nonce" =>
                {
                    retried = true;
                    self.refresh_nonce(agent).await?;
                }
                Err(UplinkError::Broker { detail, .. })
                    if !retried && detail.starts_with("Token") =>
                {
                    retried = true;
                    if detail == super::auth::REVOKED {
                        super::auth::wait_out_revocation_second().await;
                    }
                    self.inner.auth.relogin(agent).await?;
                }
                other => return other,
            }
        }
    }

    /// Any authenticated call brings the broker's current nonce; reading the agent's own
    /// registry entry is the cheapest.
    async fn refresh_nonce(&self, agent: &AgentCredentials) -> Result<(), UplinkError> {
        let path = format!("/v1/registry/agents/{}", path_segment(&agent.agent_id));
        self.inner
            .auth
            .call(agent, Method::GET, &path, None)
            .await?;
        Ok(())
    }

    async fn ws_attempt(&self, agent: &AgentCredentials) -> Result<Socket, UplinkError> {
        let inner = &self.inner;
        let token = inner.auth.token(agent).await?;
        let htu = format!("{}{WS_PATH}", inner.auth.broker_url);
        let nonce = inner.auth.nonce.get();
        let proof = token.dpop.proof(
            "GET",
            &htu,
            Some(&token.access_token),
            nonce.as_deref(),
            unix_now(),
        );
        let request = inner
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| UplinkError::Protocol(format!("WebSocket URL: {e}")))?;
        let connector = match &inner.ws_tls {
            Some(config) => tokio_tungstenite::Connector::Rustls(config.clone()),
            None => tokio_tungstenite::Connector::Plain,
        };
        let handshake = async {
            let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(
                request,
                None,
                true,
                Some(connector),
            )
            .await
            .map_err(|e| UplinkError::Unreachable(format!("WebSocket: {e}")))?;
            let auth = ClientFrame::Auth {
                token: Some(token.access_token.clone()),
                dpop_proof: Some(proof),
            };
            let text = serde_json::to_string(&auth).expect("auth frame serializes");
            socket
                .send(Message::text(text))
                .await
                .map_err(|e| UplinkError::Unreachable(format!("WebSocket: {e}")))?;
            match next_frame(&mut socket).await? {
                Some(ServerFrame::AuthOk { .. }) => Ok(socket),
                Some(ServerFrame::AuthError { detail }) => Err(UplinkError::Broker {
                    status: 401,
                    detail,
                }),
                _ => Err(UplinkError::Protocol(
                    "WebSocket: no auth_ok from the broker".into(),
                )),
            }
        };
        tokio::time::timeout(inner.timeout, handshake)
            .await
            .map_err(|_| UplinkError::Unreachable("WebSocket: handshake timed out".into()))?
    }
}

/// The next JSON frame, skipping protocol frames; `None` when the socket closed.
async fn next_frame(socket: &mut Socket) -> Result<Option<ServerFrame>, UplinkError> {
    loop {
        let Some(raw) = next_json(socket).await? else {
            return Ok(None);
        };
        if let Ok(frame) = serde_json::from_value::<ServerFrame>(raw) {
            return Ok(Some(frame));
        }
    }
}

/// The next text/binary frame as JSON; `None` when the socket closed.
async fn next_json(socket: &mut Socket) -> Result<Option<Value>, UplinkError> {
    loop {
        let message = match socket.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Err(e)) => return Err(UplinkError::Unreachable(format!("WebSocket: {e}"))),
            Some(Ok(message)) => message,
        };
        let parsed = match message {
            Message::Text(text) => serde_json::from_str(text.as_str()),
            Message::Binary(bytes) => serde_json::from_slice(&bytes),
            _ => continue,
        };
        match parsed {
            Ok(value) => return Ok(Some(value)),
            Err(_) => tracing::debug!("ignoring a non-JSON WebSocket frame"),
        }
    }
}

/// The subscription task: pump, reconnect, until nobody listens or the uplink is gone.
async fn run(
    inner: Weak<Inner>,
    agent: AgentCredentials,
    mut socket: Socket,
    events: broadcast::Sender<AgentEvent>,
    id: u64,
) {
    loop {
        let reason = pump(&inner, &agent, &mut socket, &events).await;
        let _ = socket.close(None).await;
        if events.receiver_count() == 0 {
            break;
        }
        tracing::info!(agent_id = %agent.agent_id, "broker WebSocket lost ({reason}); reconnecting");
        match reconnect(&inner, &agent, &events).await {
            Some(fresh) => {
                socket = fresh;
                let _ = events.send(AgentEvent::Resync { reason });
            }
            None => break,
        }
    }
    if let Some(inner) = inner.upgrade() {
        inner.events.finished(&agent.agent_id, id);
    }
}

/// Retries with capped exponential backoff until connected, or `None` when nobody listens
/// any more or the uplink was dropped.
async fn reconnect(
    inner: &Weak<Inner>,
    agent: &AgentCredentials,
    events: &broadcast::Sender<AgentEvent>,
) -> Option<Socket> {
    let mut backoff = BACKOFF_START;
    loop {
        tokio::time::sleep(backoff).await;
        if events.receiver_count() == 0 {
            return None;
        }
        let uplink = Uplink {
            inner: inner.upgrade()?,
        };
        match uplink.ws_connect(agent).await {
            Ok(socket) => return Some(socket),
            Err(e) => tracing::warn!(agent_id = %agent.agent_id, "broker WebSocket: {e}"),
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Forwards frames until the socket breaks or nobody listens; returns why it stopped.
async fn pump(
    inner: &Weak<Inner>,
    agent: &AgentCredentials,
    socket: &mut Socket,
    events: &broadcast::Sender<AgentEvent>,
) -> String {
    let mut check = tokio::time::interval(LISTENER_CHECK);
    let mut last_ping = Instant::now();
    loop {
        tokio::select! {
            frame = next_json(socket) => {
                let value = match frame {
                    Ok(Some(value)) => value,
                    Ok(None) => return "closed by the broker".into(),
                    Err(e) => return e.to_string(),
                };
                let Some(uplink) = inner.upgrade().map(|inner| Uplink { inner }) else {
                    return "uplink dropped".into();
                };
                match uplink.event_of(agent, value).await {
                    Forward::Event(event) => {
                        let _ = events.send(*event);
                    }
                    Forward::Nothing => {}
                    Forward::Reauth(detail) => {
                        uplink.inner.auth.tokens.forget(&agent.agent_id);
                        return detail;
                    }
                }
            }
            _ = check.tick() => {
                if events.receiver_count() == 0 {
                    return "no listeners".into();
                }
                if last_ping.elapsed() >= PING_EVERY {
                    last_ping = Instant::now();
                    let ping = serde_json::to_string(&ClientFrame::Ping).expect("ping serializes");
                    if let Err(e) = socket.send(Message::text(ping)).await {
                        return format!("ping failed: {e}");
                    }
                }
            }
        }
    }
}

/// What a broker frame becomes.
enum Forward {
    Event(Box<AgentEvent>),
    Nothing,
    /// The broker ended the authenticated session (e.g. token expired): reconnect afresh.
    Reauth(String),
}

impl Uplink {
    async fn event_of(&self, agent: &AgentCredentials, value: Value) -> Forward {
        let frame = match serde_json::from_value::<ServerFrame>(value.clone()) {
            Ok(frame) => frame,
            Err(_) => return Forward::Event(Box::new(AgentEvent::Other { frame: value })),
        };
        let event = match frame {
            ServerFrame::AuthOk { .. } | ServerFrame::Pong | ServerFrame::Ping => {
                return Forward::Nothing
            }
            ServerFrame::AuthError { detail } => return Forward::Reauth(detail),
            ServerFrame::SessionPending {
                session_id,
                initiator_agent_id,
                initiator_org_id,
                capabilities,
            } => AgentEvent::SessionPending {
                session_id,
                initiator_agent_id,
                initiator_org_id,
                capabilities,
            },
            ServerFrame::SessionRejected {
                session_id,
                rejected_by,
            } => AgentEvent::SessionRejected {
                session_id,
                rejected_by,
            },
            ServerFrame::NewMessage {
                session_id,
                message,
                ..
            } => self.new_message(agent, session_id, message).await,
            ServerFrame::RfqRequest { .. } | ServerFrame::TransactionToken { .. } => {
                AgentEvent::Other { frame: value }
            }
        };
        Forward::Event(Box::new(event))
    }

    /// Completes a `new_message` push with the stored, decrypted message.
    async fn new_message(
        &self,
        agent: &AgentCredentials,
        session_id: String,
        pushed: WsMessage,
    ) -> AgentEvent {
        let seq = pushed.seq as i64;
        let fetched = self.poll(agent, &session_id, seq - 1).await;
        let (message, error) = match fetched {
            Ok(messages) => match messages.into_iter().find(|m| m.seq == seq) {
                Some(message) => (Some(message), None),
                None => (
                    None,
                    Some(format!("message {seq} not found in the session")),
                ),
            },
            Err(e) => (None, Some(e.to_string())),
        };
        AgentEvent::NewMessage {
            session_id,
            seq,
            sender_agent_id: pushed.sender_agent_id,
            message,
            error,
        }
    }
}
