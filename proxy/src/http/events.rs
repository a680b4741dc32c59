//! `GET /v1/egress/events`: Server-Sent Events of the calling agent's broker pushes (session
//! events and decrypted new messages), fed by the uplink's WebSocket for that agent.
//!
//! A stream lives only as long as the API key it was opened with: it ends at once when this
//! process rotates the key, disables or deletes the agent (admin API), and before the next
//! frame when another process (the CLI) did — no event is ever written after that.

use crate::egress::egress_for;
use crate::http::{Reply, Request, StreamResponse};
use crate::state::AppState;
use crate::store::{AgentRow, Store};
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
    let guard = KeyGuard {
        store: state.ctx.store.clone(),
        agent: egress.agent.clone(),
        changes: state.credential_changes(),
    };
    tokio::spawn(forward(events, tx, guard));
    Reply::Stream(StreamResponse {
        content_type: "text/event-stream",
        headers: vec![("X-Accel-Buffering", "no".into())],
        chunks: rx,
    })
}

/// What keeps a stream tied to the API key that opened it.
struct KeyGuard {
    store: Store,
    /// The row as authenticated (its key hash is the one the stream may live on).
    agent: AgentRow,
    /// Agent ids whose credentials this process changed.
    changes: broadcast::Receiver<String>,
}

impl KeyGuard {
    /// Whether the key is still the agent's and the agent still active (read afresh: the CLI
    /// may have changed it from another process).
    async fn still_valid(&self) -> bool {
        match self.store.agent_by_name(&self.agent.name).await {
            Ok(Some(row)) => row.is_active && row.api_key_hash == self.agent.api_key_hash,
            Ok(None) => false,
            // A store hiccup ends the stream too: the client reconnects and is checked again.
            Err(_) => false,
        }
    }
}

/// Copies events to the client as SSE frames until either side goes away or the key that
/// opened the stream stops being valid.
async fn forward(
    mut events: broadcast::Receiver<crate::uplink::AgentEvent>,
    tx: mpsc::Sender<Bytes>,
    mut guard: KeyGuard,
) {
    let _counted = crate::telemetry::SseSubscriber::open();
    if tx
        .send(Bytes::from_static(b": connected\n\n"))
        .await
        .is_err()
    {
        return;
    }
    let agent_id = guard.agent.agent_id.clone();
    loop {
        let frame = tokio::select! {
            changed = guard.changes.recv() => match changed {
                Ok(id) if id == agent_id => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            next = tokio::time::timeout(KEEPALIVE, events.recv()) => match next {
                Err(_) => Bytes::from_static(b": keep-alive\n\n"),
                Ok(Ok(event)) => sse_frame(&event),
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                    tracing::warn!(agent_id, skipped = n, "SSE client too slow; events dropped");
                    Bytes::from(format!("event: lagged\ndata: {{\"skipped\":{n}}}\n\n"))
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
            },
        };
        if !guard.still_valid().await {
            tracing::info!(
                agent_id,
                "SSE stream closed: the API key is no longer valid"
            );
            return;
        }
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
