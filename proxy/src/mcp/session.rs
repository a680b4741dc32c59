//! MCP sessions: id → (agent, the API key it was opened with, protocol version), bounded per
//! agent and in total. An agent over its share loses its own oldest session, never another
//! agent's; a session ends with the key that opened it (rotation, disable, delete).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Sessions one agent may hold; opening one more ends its oldest (clients re-initialize on 404).
pub const MAX_SESSIONS_PER_AGENT: usize = 16;
/// Sessions in total; past this, `initialize` is refused until sessions end.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug)]
struct McpSession {
    agent_id: String,
    /// The stored hash of the API key that opened the session.
    key_hash: String,
    #[allow(dead_code)]
    protocol_version: String,
    created: Instant,
}

#[derive(Debug, Default)]
pub struct McpSessions {
    sessions: Mutex<HashMap<String, McpSession>>,
}

/// Why no session was opened.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl McpSessions {
    /// A new session of `agent_id` opened with the key stored as `key_hash`; returns its id.
    pub fn open(
        &self,
        agent_id: &str,
        key_hash: &str,
        protocol_version: &str,
    ) -> Result<String, Full> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let own: Vec<(&String, Instant)> = sessions
            .iter()
            .filter(|(_, s)| s.agent_id == agent_id)
            .map(|(k, s)| (k, s.created))
            .collect();
        if own.len() >= MAX_SESSIONS_PER_AGENT {
            if let Some(oldest) = own
                .iter()
                .min_by_key(|(_, created)| *created)
                .map(|(k, _)| (*k).clone())
            {
                sessions.remove(&oldest);
            }
        } else if sessions.len() >= MAX_SESSIONS {
            return Err(Full);
        }
        sessions.insert(
            id.clone(),
            McpSession {
                agent_id: agent_id.to_owned(),
                key_hash: key_hash.to_owned(),
                protocol_version: protocol_version.to_owned(),
                created: Instant::now(),
            },
        );
        Ok(id)
    }

    /// Whether `session_id` is a live session of `agent_id` opened with the key stored as
    /// `key_hash`. A session of the agent opened with another (rotated) key is ended.
    pub fn belongs_to(&self, session_id: &str, agent_id: &str, key_hash: &str) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(session_id) {
            Some(s) if s.agent_id == agent_id && s.key_hash == key_hash => true,
            Some(s) if s.agent_id == agent_id => {
                sessions.remove(session_id);
                false
            }
            _ => false,
        }
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

    /// Ends every session of `agent_id`.
    pub fn close_agent(&self, agent_id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| s.agent_id != agent_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_over_its_share_loses_its_own_oldest_session_only() {
        let sessions = McpSessions::default();
        let other = sessions.open("alpha::other", "h2", "2025-11-25").unwrap();
        let first = sessions.open("alpha::busy", "h1", "2025-11-25").unwrap();
        for _ in 1..MAX_SESSIONS_PER_AGENT {
            sessions.open("alpha::busy", "h1", "2025-11-25").unwrap();
        }
        assert!(sessions.belongs_to(&first, "alpha::busy", "h1"));
        sessions.open("alpha::busy", "h1", "2025-11-25").unwrap();
        assert!(
            !sessions.belongs_to(&first, "alpha::busy", "h1"),
            "own oldest ended"
        );
        assert!(sessions.belongs_to(&other, "alpha::other", "h2"));
    }

    #[test]
    fn a_rotated_key_ends_the_session() {
        let sessions = McpSessions::default();
        let id = sessions.open("alpha::a", "old", "2025-11-25").unwrap();
        assert!(!sessions.belongs_to(&id, "alpha::a", "new"));
        assert!(
            !sessions.belongs_to(&id, "alpha::a", "old"),
            "ended, not just refused"
        );
        let id = sessions.open("alpha::a", "new", "2025-11-25").unwrap();
        sessions.close_agent("alpha::a");
        assert!(!sessions.belongs_to(&id, "alpha::a", "new"));
    }
}
