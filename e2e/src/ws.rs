//! A broker WebSocket client the way an agent uses `/v1/broker/ws`: connect, authenticate with
//! the first frame (access token + DPoP proof for `GET <base>/v1/broker/ws`), read events.

use crate::client::AgentSession;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket on `base` (an http(s) URL) without authenticating.
pub async fn connect(base: &str) -> Socket {
    let url = format!("{}/v1/broker/ws", base.replacen("http", "ws", 1));
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket upgrade");
    socket
}

/// The first-frame auth message for `session` on `base`.
pub fn auth_frame(session: &AgentSession, base: &str) -> Value {
    let proof = session.dpop.proof(
        "GET",
        &format!("{base}/v1/broker/ws"),
        Some(&session.token),
        session.nonce().as_deref(),
        crate::stack::broker::unix_now(),
    );
    json!({"type": "auth", "token": session.token, "dpop_proof": proof})
}

pub async fn send_json(socket: &mut Socket, value: &Value) {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .expect("WebSocket send");
}

/// The next message: `Ok(json)` for a text frame, `Err((code, reason))` for a close.
pub async fn next(socket: &mut Socket) -> Result<Value, (u16, String)> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s");
        match message {
            // A frame that is not JSON is the broker's fault: an error a load harness counts.
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .map_err(|e| (1007, format!("a text frame that is not JSON: {e}")))
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new())))
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Err((1006, String::new())),
        }
    }
}

/// A socket on `base` authenticated as `session` (asserts `auth_ok`).
pub async fn authed(session: &AgentSession, base: &str) -> Socket {
    let mut socket = connect(base).await;
    send_json(&mut socket, &auth_frame(session, base)).await;
    let ok = next(&mut socket).await.expect("auth answer");
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    socket
}
