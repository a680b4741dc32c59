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

mod hub;

pub use hub::{fit_open_files_limit, Hub, Slot};

use crate::auth::dpop::{expected_htu, verify_proof};
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::{HOST, RETRY_AFTER};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cullis_shared::jose::access_token::AccessTokenClaims;
use cullis_shared::wire::ws::{ClientFrame, ServerFrame, WsMessage};
use hub::Command;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The WebSocket path (also the DPoP `htu` path).
pub const WS_PATH: &str = "/v1/broker/ws";
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const RATE_WINDOW: Duration = Duration::from_secs(60);
const RATE_MAX_FRAMES: usize = 30;

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
    let Some(slot) = state.hub.reserve() else {
        crate::telemetry::metrics().websocket_refused.add(1, &[]);
        let detail = format!(
            "This broker holds its maximum of {} WebSockets (WS_MAX_CONNECTIONS); retry later or on another replica",
            state.hub.capacity()
        );
        return crate::error::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail)
            .with_header(RETRY_AFTER, "5")
            .into_response();
    };
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    sized(ws).on_upgrade(move |socket| async move {
        run(state, host, socket).await;
        drop(slot);
    })
}

/// Buffers for what clients send after the upgrade: an auth frame (a token and a DPoP proof,
/// a few KiB), pings and resumes. The library's defaults (a 128 KiB read buffer per socket,
/// 64 MiB messages) made an idle socket cost ~145 KiB; larger frames still fit, the buffer
/// grows for them.
fn sized(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    const READ_BUFFER: usize = 4 * 1024;
    const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
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
/// A frame past `MAX_CLIENT_MESSAGE` is refused with 1009 (RFC 6455 §7.4.1) so the client
/// knows why; other read errors mean the connection is gone or broken, and a close is only
/// attempted.
async fn close_after_read_error(socket: &mut WebSocket, error: &axum::Error) {
    // The library's capacity error ("Message too long: …") is not a type axum re-exports.
    if error.to_string().contains("too long") {
        close(socket, 1009, "Message too big").await;
    } else {
        close(socket, 1002, "").await;
    }
}

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
        Ok(None) => return Err(()),
        Ok(Some(Err(error))) => {
            close_after_read_error(socket, &error).await;
            return Err(());
        }
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
                    None => return,
                    Some(Err(error)) => {
                        close_after_read_error(socket, &error).await;
                        return;
                    }
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
