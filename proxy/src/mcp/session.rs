//! MCP sessions: id → (agent, protocol version), bounded in number.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Past this many sessions the oldest are dropped (clients re-initialize on 404).
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug)]
struct McpSession {
    agent_id: String,
    #[allow(dead_code)]
    protocol_version: String,
    created: Instant,
}

#[derive(Debug, Default)]
pub struct McpSessions {
    sessions: Mutex<HashMap<String, McpSession>>,
}

impl McpSessions {
    /// A new session of `agent_id`; returns its id.
    pub fn open(&self, agent_id: &str, protocol_version: &str) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            McpSession {
                agent_id: agent_id.to_owned(),
                protocol_version: protocol_version.to_owned(),
                created: Instant::now(),
            },
        );
        id
    }

    /// Whether `session_id` is a live session of `agent_id`.
    pub fn belongs_to(&self, session_id: &str, agent_id: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(session_id)
            .is_some_and(|s| s.agent_id == agent_id)
    }

    /// Ends a session of `agent_id`; false when there is none.
    pub fn close(&self, session_id: &str, agent_id: &str) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions
            .get(session_id)
            .is_some_and(|s| s.agent_id == agent_id)
        {
            sessions.remove(session_id);
            return true;
        }
        false
    }
}
