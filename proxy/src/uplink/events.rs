//! Push from the broker: one WebSocket per subscribed agent, fanned out to a broadcast channel.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use super::{AgentCredentials, AgentEvent, Uplink, UplinkError};

/// The broker's WebSocket path (also the DPoP `htu` path).
pub(crate) const WS_PATH: &str = "/v1/broker/ws";

struct Subscription {
    events: broadcast::Sender<AgentEvent>,
    task: tokio::task::AbortHandle,
}

/// Live subscriptions by agent id.
#[derive(Default)]
pub(crate) struct Subscriptions(Mutex<HashMap<String, Subscription>>);

impl Subscriptions {
    pub fn close(&self, agent_id: &str) {
        if let Some(sub) = self.0.lock().expect("lock").remove(agent_id) {
            sub.task.abort();
            drop(sub.events);
        }
    }
}

impl Uplink {
    /// Push: one broker WebSocket per subscribed agent (opened on first subscribe, reconnecting
    /// with backoff).
    pub async fn subscribe(
        &self,
        agent: &AgentCredentials,
    ) -> Result<broadcast::Receiver<AgentEvent>, UplinkError> {
        let _ = agent;
        todo!()
    }
}
