//! The one way any part of the broker records an audit event. Every identity decision goes
//! through [`Audit::record`]; the storage (and, with the audit issue, the hash chain) sits
//! behind it.

use crate::db::audit::AuditRow;
use crate::db::Db;
use serde_json::{Map, Value};

/// Outcome recorded with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// An audit event under construction.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event_type: &'static str,
    pub outcome: Outcome,
    pub agent_id: Option<String>,
    pub org_id: Option<String>,
    pub session_id: Option<String>,
    pub details: Map<String, Value>,
}

impl AuditEvent {
    pub fn new(event_type: &'static str, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            event_type,
            outcome,
            agent_id: None,
            org_id: None,
            session_id: None,
            details: Map::new(),
        }
    }

    pub fn agent(mut self, agent_id: impl Into<String>) -> AuditEvent {
        self.agent_id = Some(agent_id.into());
        self
    }

    pub fn org(mut self, org_id: impl Into<String>) -> AuditEvent {
        self.org_id = Some(org_id.into());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> AuditEvent {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// Writes audit events.
#[derive(Debug, Clone)]
pub struct Audit {
    db: Db,
}

impl Audit {
    pub fn new(db: Db) -> Audit {
        Audit { db }
    }

    /// Stores `event`. A failure is logged and returned: callers treat an unrecordable
    /// decision as a failed request (503), never as silently unaudited.
    pub async fn record(&self, event: AuditEvent) -> Result<(), sqlx::Error> {
        let details = (!event.details.is_empty()).then(|| Value::Object(event.details).to_string());
        let row = AuditRow {
            event_type: event.event_type,
            result: event.outcome.as_str(),
            agent_id: event.agent_id.as_deref(),
            session_id: event.session_id.as_deref(),
            org_id: event.org_id.as_deref(),
            details,
        };
        self.db.insert_audit(&row).await.inspect_err(|error| {
            tracing::error!(event = event.event_type, %error, "audit write failed");
        })
    }
}
