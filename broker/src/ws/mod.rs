//! `GET /v1/broker/ws` (broker §6, auth §3.7): first-frame DPoP auth, ping/pong, server pushes.
//!
//! [`Hub`] keeps this process's sockets (one per agent; a new one replaces the old). With Redis,
//! every push and disconnect is PUBLISHed to `ws:agent:<agent_id>` and every process delivers
//! what it receives on the pattern subscription `ws:agent:*` to its own sockets — never also
//! directly, so each socket gets each event exactly once. Without Redis, delivery is local.
//!
//! `new_message` frames carry `seq`, `sender_agent_id`, `payload`, `timestamp` (push time,
//! `+00:00`) and `client_seq` when the sender sent one, as in §6.3 (no nonce or signature), and
//! for `cullis-sdk` 0.2.x `msg_id` and `queued: true` (acknowledge me). Also for 0.2.x: the server
//! sends `{"type":"ping"}` on a quiet socket (`WS_PING_INTERVAL_SECONDS`), and a client's
//! `{"type":"resume","session_id","last_seq"}` replays that session's messages after `last_seq`
//! (`replayed: true`) — what it missed while disconnected.

use crate::auth::dpop::{expected_htu, verify_proof};
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::HOST;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cullis_shared::jose::access_token::AccessTokenClaims;
use cullis_shared::wire::ws::{ClientFrame, ServerFrame, WsMessage};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The WebSocket path (also the DPoP `htu` path).
pub const WS_PATH: &str = "/v1/broker/ws";
const CHANNEL_PREFIX: &str = "ws:agent:";
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const RATE_WINDOW: Duration = Duration::from_secs(60);
const RATE_MAX_FRAMES: usize = 30;

/// What a registered socket's task is told to do.
#[derive(Debug)]
enum Command {
    Frame(ServerFrame),
    Close(u16, String),
}

struct Connection {
    id: u64,
    org_id: String,
    tx: mpsc::UnboundedSender<Command>,
}

/// What travels over Redis.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Envelope {
    Frame { frame: ServerFrame },
    Disconnect,
}

/// This process's sockets, plus cross-process delivery through Redis.
#[derive(Clone)]
pub struct Hub(Arc<HubInner>);

struct HubInner {
    connections: Mutex<HashMap<String, Connection>>,
    next_id: AtomicU64,
    redis: Option<redis::aio::ConnectionManager>,
    /// Sockets one organisation may hold on this replica (`WS_MAX_CONNECTIONS_PER_ORG`).
    max_per_org: usize,
}

impl Hub {
    pub fn new(redis: Option<redis::aio::ConnectionManager>, max_per_org: usize) -> Hub {
        Hub(Arc::new(HubInner {
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            redis,
            max_per_org,
        }))
    }

    /// Sends `frame` to the agent's socket, wherever it is connected (dropped if nowhere).
    pub async fn push(&self, agent_id: &str, frame: ServerFrame) {
        self.dispatch(agent_id, Envelope::Frame { frame }).await;
    }

    /// Closes the agent's socket (code 1000), wherever it is connected.
    pub async fn disconnect(&self, agent_id: &str) {
        self.dispatch(agent_id, Envelope::Disconnect).await;
    }

    /// Whether the agent has a socket on this process.
    pub fn is_connected_here(&self, agent_id: &str) -> bool {
        self.lock().contains_key(agent_id)
    }

    async fn dispatch(&self, agent_id: &str, envelope: Envelope) {
        if let Some(mut redis) = self.0.redis.clone() {
            let channel = format!("{CHANNEL_PREFIX}{agent_id}");
            match serde_json::to_string(&envelope) {
                Ok(text) => {
                    let mut command = redis::cmd("PUBLISH");
                    command.arg(&channel).arg(text);
                    let publish = command.query_async::<i64>(&mut redis);
                    let published = crate::telemetry::redis_call("PUBLISH", publish).await;
                    match published {
                        Ok(_) => return,
                        Err(e) => tracing::warn!(
                            "ws: PUBLISH to {channel} failed ({e}); delivering locally only"
                        ),
                    }
                }
                Err(e) => tracing::error!("ws: cannot encode push: {e}"),
            }
        }
        self.deliver_local(agent_id, envelope);
    }

    /// Hands an envelope to this process's socket for `agent_id`, if any.
    fn deliver_local(&self, agent_id: &str, envelope: Envelope) {
        let command = match envelope {
            Envelope::Frame { frame } => Command::Frame(frame),
            Envelope::Disconnect => Command::Close(1000, String::new()),
        };
        let mut connections = self.lock();
        let dead = match connections.get(agent_id) {
            Some(connection) => connection.tx.send(command).is_err(),
            None => false,
        };
        if dead {
            connections.remove(agent_id);
            Self::count(&connections);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connection>> {
        self.0
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes the number of open sockets (after any change to the map).
    fn count(connections: &HashMap<String, Connection>) {
        crate::telemetry::metrics()
            .websocket_connections
            .store(connections.len() as i64, Ordering::Relaxed);
    }

    /// Registers a socket, closing the agent's previous one. `None` when the org is at its cap.
    fn register(
        &self,
        agent_id: &str,
        org_id: &str,
    ) -> Option<(u64, mpsc::UnboundedReceiver<Command>)> {
        let mut connections = self.lock();
        let org_count = connections
            .iter()
            .filter(|(agent, c)| c.org_id == org_id && agent.as_str() != agent_id)
            .count();
        if org_count >= self.0.max_per_org {
            return None;
        }
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let previous = connections.insert(
            agent_id.to_owned(),
            Connection {
                id,
                org_id: org_id.to_owned(),
                tx,
            },
        );
        Self::count(&connections);
        if let Some(previous) = previous {
            let _ = previous.tx.send(Command::Close(1000, String::new()));
        }
        Some((id, rx))
    }

    fn unregister(&self, agent_id: &str, id: u64) {
        let mut connections = self.lock();
        if connections.get(agent_id).is_some_and(|c| c.id == id) {
            connections.remove(agent_id);
            Self::count(&connections);
        }
    }

    /// Closes every local socket (shutdown: 1012 `server restarting`).
    pub fn close_all(&self, code: u16, reason: &str) {
        let mut connections = self.lock();
        for (_, connection) in connections.drain() {
            let _ = connection.tx.send(Command::Close(code, reason.to_owned()));
        }
        Self::count(&connections);
    }

    /// Subscribes to `ws:agent:*` on a dedicated pub/sub connection (the subscription is in place
    /// when this returns) and forwards what arrives to local sockets, reconnecting on loss.
    pub async fn start_redis_listener(&self, url: &str) -> Result<(), String> {
        let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}"))?;
        let pubsub = subscribe(&client).await?;
        let hub = self.clone();
        tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            loop {
                if let Some(mut connection) = pubsub.take() {
                    use futures_util::StreamExt;
                    let mut messages = connection.on_message();
                    while let Some(message) = messages.next().await {
                        hub.on_redis_message(&message);
                    }
                    tracing::warn!("ws: Redis pub/sub connection lost; reconnecting");
                    crate::telemetry::metrics()
                        .redis_errors
                        .add(1, &[opentelemetry::KeyValue::new("operation", "SUBSCRIBE")]);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                match subscribe(&client).await {
                    Ok(connection) => pubsub = Some(connection),
                    Err(e) => tracing::warn!("ws: {e}"),
                }
            }
        });
        Ok(())
    }

    fn on_redis_message(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let Some(agent_id) = channel.strip_prefix(CHANNEL_PREFIX) else {
            return;
        };
        let Ok(text) = message.get_payload::<String>() else {
            return;
        };
        match serde_json::from_str::<Envelope>(&text) {
            Ok(envelope) => self.deliver_local(agent_id, envelope),
            Err(e) => tracing::warn!("ws: ignoring malformed message on {channel}: {e}"),
        }
    }
}

async fn subscribe(client: &redis::Client) -> Result<redis::aio::PubSub, String> {
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| format!("Redis pub/sub connection: {e}"))?;
    pubsub
        .psubscribe(format!("{CHANNEL_PREFIX}*"))
        .await
        .map_err(|e| format!("Redis PSUBSCRIBE: {e}"))?;
    Ok(pubsub)
}

/// `new_message` for a stored message (timestamp = push time).
pub fn new_message(
    session_id: &str,
    sender_agent_id: &str,
    seq: i64,
    payload: serde_json::Map<String, serde_json::Value>,
    client_seq: Option<u64>,
) -> ServerFrame {
    let now = time::OffsetDateTime::now_utc();
    let timestamp = crate::db::timestamp_text(now).replace('Z', "+00:00");
    ServerFrame::NewMessage {
        session_id: session_id.to_owned(),
        message: WsMessage {
            seq: seq.max(0) as u64,
            sender_agent_id: sender_agent_id.to_owned(),
            payload,
            timestamp,
            client_seq,
        },
        msg_id: Some(crate::routes::delivery::msg_id(seq)),
        queued: Some(true),
        replayed: None,
    }
}

/// The `new_message` frames that answer a `resume`: the session's messages to `agent_id` after
/// `last_seq` (still deliverable), marked `replayed`. None when the agent is not a participant.
async fn replay(
    state: &AppState,
    agent_id: &str,
    session_id: &str,
    last_seq: i64,
) -> Result<Vec<ServerFrame>, sqlx::Error> {
    let Some((session, messages)) = state
        .db
        .session_with_messages(session_id, agent_id, last_seq)
        .await?
    else {
        return Ok(Vec::new());
    };
    if !session.is_participant(agent_id) {
        return Ok(Vec::new());
    }
    Ok(messages
        .into_iter()
        .map(|message| {
            let payload = serde_json::from_str(&message.payload).unwrap_or_default();
            let client_seq = message.client_seq.map(|seq| seq.max(0) as u64);
            let mut frame = new_message(
                session_id,
                &message.sender_agent_id,
                message.seq,
                payload,
                client_seq,
            );
            if let ServerFrame::NewMessage { replayed, .. } = &mut frame {
                *replayed = Some(true);
            }
            frame
        })
        .collect())
}

pub fn router() -> Router<AppState> {
    Router::new().route(WS_PATH, get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&state.config.allowed_origins, &headers) {
        return crate::error::ApiError::forbidden("Origin not allowed").into_response();
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    ws.on_upgrade(move |socket| run(state, host, socket))
}

/// W-01: with an `ALLOWED_ORIGINS` list (and no `*`), a browser's `Origin` must be on it.
/// Unlike the reference, a request without `Origin` passes: only browsers send one, and
/// non-browser agents (the SDK, the proxy) authenticate with DPoP in the first frame anyway.
fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() || allowed.iter().any(|origin| origin == "*") {
        return true;
    }
    match headers.get(axum::http::header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| allowed.iter().any(|allowed| allowed == origin)),
    }
}

fn text(frame: &ServerFrame) -> Message {
    Message::Text(
        serde_json::to_string(frame)
            .unwrap_or_else(|_| "{}".into())
            .into(),
    )
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// Completes a close the client started: the library queued the echo of its Close frame when
/// it read it, and closing the sink flushes it (dropping the socket instead would leave the
/// client with 1006, "abnormal closure").
async fn answer_close(socket: &mut WebSocket) {
    let _ = futures_util::SinkExt::close(socket).await;
}

async fn auth_error(socket: &mut WebSocket, detail: &str) {
    let frame = ServerFrame::AuthError {
        detail: detail.to_owned(),
    };
    let _ = socket.send(text(&frame)).await;
    close(socket, 1000, "").await;
}

/// The §3.7 checks on the first frame. `Err(())` when the socket has been answered and closed.
async fn authenticate(
    state: &AppState,
    host: Option<&str>,
    socket: &mut WebSocket,
) -> Result<(AccessTokenClaims, String), ()> {
    let first = match tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await {
        Err(_) => {
            close(socket, 1008, "Auth timeout").await;
            return Err(());
        }
        Ok(None) | Ok(Some(Err(_))) => return Err(()),
        Ok(Some(Ok(message))) => message,
    };
    let raw = match first {
        Message::Text(t) => serde_json::from_str::<serde_json::Value>(t.as_str()).ok(),
        Message::Binary(b) => serde_json::from_slice::<serde_json::Value>(&b).ok(),
        Message::Close(_) => {
            answer_close(socket).await;
            return Err(());
        }
        _ => None,
    };
    let Some(raw) = raw else {
        close(socket, 1003, "").await;
        return Err(());
    };
    let (token, proof) = match serde_json::from_value::<ClientFrame>(raw) {
        Ok(ClientFrame::Auth {
            token: Some(token),
            dpop_proof,
        }) if !token.is_empty() => (token, dpop_proof.unwrap_or_default()),
        _ => {
            auth_error(socket, "Missing or malformed auth message").await;
            return Err(());
        }
    };
    let claims = match state.token_verifier.verify(&token, crate::db::unix_now()) {
        Ok(claims) => claims,
        Err(error) => {
            auth_error(socket, &error.to_string()).await;
            return Err(());
        }
    };
    if proof.is_empty() {
        auth_error(socket, "DPoP proof required").await;
        return Err(());
    }
    let Some(jkt) = claims.jkt().map(str::to_owned) else {
        auth_error(socket, "Token is not DPoP-bound").await;
        return Err(());
    };
    let htu = expected_htu(state, host, WS_PATH);
    let proof_jkt = match verify_proof(state, &proof, "GET", &htu, Some(&token)).await {
        Ok(proof_jkt) => proof_jkt,
        Err(e) => {
            auth_error(socket, e.detail().unwrap_or("Invalid DPoP proof")).await;
            return Err(());
        }
    };
    if !crate::auth::secrets_equal(&proof_jkt, &jkt) {
        auth_error(socket, "DPoP proof key mismatch").await;
        return Err(());
    }
    match state.db.agent_token_watermark(&claims.agent_id).await {
        Ok(Some(watermark)) if claims.iat <= watermark => {
            auth_error(socket, "Token has been revoked").await;
            return Err(());
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!("ws auth: watermark lookup failed: {e}");
            close(socket, 1011, "").await;
            return Err(());
        }
    }
    match state.db.binding_for(&claims.org, &claims.agent_id).await {
        Ok(Some(binding)) if binding.status == "approved" => {}
        Ok(_) => {
            auth_error(socket, "Agent binding not approved or revoked").await;
            return Err(());
        }
        Err(e) => {
            tracing::error!("ws auth: binding lookup failed: {e}");
            close(socket, 1011, "").await;
            return Err(());
        }
    }
    Ok((claims, token))
}

async fn run(state: AppState, host: Option<String>, mut socket: WebSocket) {
    let Ok((claims, token)) = authenticate(&state, host.as_deref(), &mut socket).await else {
        return;
    };
    let agent_id = claims.agent_id.clone();
    let Some((id, mut commands)) = state.hub.register(&agent_id, &claims.org) else {
        auth_error(&mut socket, "Too many connections for this organization").await;
        return;
    };
    if socket
        .send(text(&ServerFrame::AuthOk {
            agent_id: agent_id.clone(),
        }))
        .await
        .is_ok()
    {
        steady_state(&state, &mut socket, &claims, &token, &mut commands).await;
    }
    state.hub.unregister(&agent_id, id);
}

/// How often an open socket's token is checked again (the key ring re-reads its table every
/// 2 s, so a retired key closes its sockets within about 4 s on every replica).
const TOKEN_RECHECK: Duration = Duration::from_secs(2);

/// When the next heartbeat is due (never, with pings off).
fn next_ping(state: &AppState, from: Instant) -> Instant {
    match state.config.ws_ping_interval_secs {
        0 => from + Duration::from_secs(365 * 24 * 3600),
        secs => from + Duration::from_secs(secs),
    }
}

/// Answers a client frame after the handshake. `false` when the socket is gone.
async fn on_client_frame(
    state: &AppState,
    socket: &mut WebSocket,
    agent_id: &str,
    frame: ClientFrame,
) -> bool {
    match frame {
        ClientFrame::Ping => socket.send(text(&ServerFrame::Pong)).await.is_ok(),
        ClientFrame::Resume {
            session_id: Some(session_id),
            last_seq,
        } => {
            let frames = match replay(state, agent_id, &session_id, last_seq.unwrap_or(-1)).await {
                Ok(frames) => frames,
                Err(e) => {
                    tracing::warn!("ws resume for {agent_id}: {e}");
                    return true;
                }
            };
            for frame in frames {
                if socket.send(text(&frame)).await.is_err() {
                    return false;
                }
            }
            true
        }
        _ => true,
    }
}

async fn steady_state(
    state: &AppState,
    socket: &mut WebSocket,
    claims: &AccessTokenClaims,
    token: &str,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) {
    let mut recent: VecDeque<Instant> = VecDeque::new();
    let mut last_frame = Instant::now();
    let mut ping_at = next_ping(state, last_frame);
    // W-13: the socket lives no longer than its token, idle or not (one second past `exp`,
    // when the token stops verifying).
    let remaining = (claims.exp - crate::db::unix_now() + 1).max(0) as u64;
    let expires = Instant::now() + Duration::from_secs(remaining);
    let mut recheck_at = Instant::now() + TOKEN_RECHECK;
    loop {
        tokio::select! {
            // `keys retire` cuts the socket's token off too, not only its next request (a
            // memo lookup: the token was verified when the socket authenticated).
            _ = tokio::time::sleep_until(recheck_at) => {
                let verdict = state.token_verifier.verify(token, crate::db::unix_now());
                // Expiry has its own branch (and its own "Token expired" detail).
                let expired = matches!(
                    verdict,
                    Err(crate::keyring::KeyError::Token(
                        cullis_shared::jose::access_token::TokenError::Expired
                    ))
                );
                if let (Err(error), false) = (verdict, expired) {
                    let detail = error.to_string();
                    let _ = socket.send(text(&ServerFrame::AuthError { detail: detail.clone() })).await;
                    close(socket, 1008, &detail).await;
                    return;
                }
                recheck_at = Instant::now() + TOKEN_RECHECK;
            }
            _ = tokio::time::sleep_until(expires) => {
                let _ = socket
                    .send(text(&ServerFrame::AuthError {
                        detail: "Token expired".into(),
                    }))
                    .await;
                close(socket, 1000, "Token expired").await;
                return;
            }
            command = commands.recv() => match command {
                Some(Command::Frame(frame)) => {
                    if socket.send(text(&frame)).await.is_err() {
                        return;
                    }
                }
                Some(Command::Close(code, reason)) => {
                    close(socket, code, &reason).await;
                    return;
                }
                None => {
                    close(socket, 1000, "").await;
                    return;
                }
            },
            _ = tokio::time::sleep_until(last_frame + IDLE_TIMEOUT) => {
                close(socket, 1000, "Idle timeout").await;
                return;
            }
            _ = tokio::time::sleep_until(ping_at) => {
                if socket.send(text(&ServerFrame::Ping)).await.is_err() {
                    return;
                }
                ping_at = next_ping(state, Instant::now());
            }
            received = socket.recv() => {
                let message = match received {
                    None | Some(Err(_)) => return,
                    Some(Ok(message)) => message,
                };
                let parsed = match &message {
                    Message::Text(t) => serde_json::from_str::<serde_json::Value>(t.as_str()).ok(),
                    Message::Binary(b) => serde_json::from_slice::<serde_json::Value>(b).ok(),
                    Message::Close(_) => {
                        answer_close(socket).await;
                        return;
                    }
                    // Protocol-level ping/pong: answered by the library, not counted.
                    _ => continue,
                };
                let now = Instant::now();
                last_frame = now;
                recent.push_back(now);
                while recent.front().is_some_and(|t| now.duration_since(*t) > RATE_WINDOW) {
                    recent.pop_front();
                }
                if recent.len() > RATE_MAX_FRAMES {
                    close(socket, 1008, "Rate limit exceeded").await;
                    return;
                }
                let Some(value) = parsed else {
                    tracing::warn!("ws: non-JSON frame from {}; closing", claims.agent_id);
                    close(socket, 1000, "").await;
                    return;
                };
                if let Ok(frame) = serde_json::from_value::<ClientFrame>(value) {
                    if !on_client_frame(state, socket, &claims.agent_id, frame).await {
                        return;
                    }
                }
            }
        }
    }
}
