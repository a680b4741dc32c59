//! An audit event as the broker's code builds it, and the row it becomes.

use crate::db::audit::AuditRow;
use cullis_shared::encoding::python::python_json_object;
use serde_json::Value;

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
    /// Detail members in insertion order (stored like Python `json.dumps` of a dict would).
    pub details: Vec<(String, Value)>,
}

impl AuditEvent {
    pub fn new(event_type: &'static str, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            event_type,
            outcome,
            agent_id: None,
            org_id: None,
            session_id: None,
            details: Vec::new(),
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

    /// The row to store: details rendered the way the reference's `json.dumps` did.
    pub(super) fn into_row(self) -> AuditRow {
        let details = (!self.details.is_empty()).then(|| python_json_object(&self.details));
        AuditRow {
            event_type: self.event_type,
            result: self.outcome.as_str(),
            agent_id: self.agent_id,
            session_id: self.session_id,
            org_id: self.org_id,
            details,
        }
    }

    /// Adds a detail member. Setting a key again replaces its value in place (a Python dict).
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> AuditEvent {
        let value = value.into();
        match self.details.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.details.push((key.to_owned(), value)),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_keep_insertion_order_and_a_repeated_key_replaces_in_place() {
        let row = AuditEvent::new("x", Outcome::Denied)
            .agent("acme::a")
            .detail("zeta", "first")
            .detail("alpha", json!([1, 2.5]))
            .detail("zeta", "again")
            .into_row();
        assert_eq!(
            row.details.as_deref(),
            Some(r#"{"zeta": "again", "alpha": [1, 2.5]}"#)
        );
        assert_eq!(
            (row.result, row.agent_id.as_deref()),
            ("denied", Some("acme::a"))
        );
        assert_eq!(AuditEvent::new("x", Outcome::Ok).into_row().details, None);
    }
}
