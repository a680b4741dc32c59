//! `GET /v1/egress/events`: Server-Sent Events of the calling agent's broker pushes (session
//! events and decrypted new messages), fed by the uplink's WebSocket for that agent.

use crate::egress::egress_for;
use crate::http::{Reply, Request, StreamResponse};
use crate::state::AppState;
use bytes::Bytes;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// A comment line this often keeps idle intermediaries from closing the stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

pub async fn stream(state: &AppState, request: &Request) -> Reply {
    let egress = match egress_for(state, request).await {
        Ok(egress) => egress,
        Err(err) => return err.into(),
    };
    let subscription = async {
        let uplink = state.uplink().await?;
        let creds = state.credentials(&egress.agent, &uplink).await?;
        Ok::<_, crate::http::ApiError>(uplink.subscribe(&creds).await?)
    };
    let events = match subscription.await {
        Ok(events) => events,
        Err(err) => return err.into(),
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(forward(events, tx, egress.agent.agent_id.clone()));
    Reply::Stream(StreamResponse {
        content_type: "text/event-stream",
        headers: vec![("X-Accel-Buffering", "no".into())],
        chunks: rx,
    })
}

/// Copies events to the client as SSE frames until either side goes away.
async fn forward(
    mut events: broadcast::Receiver<crate::uplink::AgentEvent>,
    tx: mpsc::Sender<Bytes>,
    agent_id: String,
) {
    if tx
        .send(Bytes::from_static(b": connected\n\n"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let frame = match tokio::time::timeout(KEEPALIVE, events.recv()).await {
            Err(_) => Bytes::from_static(b": keep-alive\n\n"),
            Ok(Ok(event)) => sse_frame(&event),
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                tracing::warn!(agent_id, skipped = n, "SSE client too slow; events dropped");
                Bytes::from(format!("event: lagged\ndata: {{\"skipped\":{n}}}\n\n"))
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}

/// `event: <type>\ndata: <json>\n\n` (the event's `type` field names it).
fn sse_frame<T: serde::Serialize>(event: &T) -> Bytes {
    let value = serde_json::to_value(event).unwrap_or(Value::Null);
    let name = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
        .to_owned();
    // serde_json never emits raw newlines, so one data line always suffices.
    Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
}
