//! The local audit log: every egress and admin action, SHA-256 hash-chained like the broker's.
//! Each row's `entry_hash` = SHA-256(prev_hash ‖ canonical JSON of the row's fields), so editing,
//! deleting or reordering any row breaks every later hash.

use crate::store::{AuditRow, Store, StoreError};
use serde_json::json;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Actor of admin actions (as the reference).
pub const ADMIN_ACTOR: &str = "admin";

/// Outcome vocabulary of the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
        }
    }
}

/// One action to record.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub agent_id: &'a str,
    pub action: &'a str,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub tool_name: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub duration_ms: Option<f64>,
}

impl<'a> AuditEntry<'a> {
    pub fn new(agent_id: &'a str, action: &'a str, outcome: Outcome) -> AuditEntry<'a> {
        AuditEntry {
            agent_id,
            action,
            outcome,
            detail: None,
            tool_name: None,
            request_id: None,
            duration_ms: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        // The reference keeps the first 500 characters of error details.
        self.detail = Some(detail.into().chars().take(500).collect());
        self
    }
}

/// The hash of `row` given its `prev_hash`.
pub fn entry_hash(row: &AuditRow) -> String {
    // Floats are hashed through a fixed text form so the value read back from SQLite's REAL
    // column hashes the same as the one written.
    let body = json!({
        "timestamp": row.timestamp,
        "agent_id": row.agent_id,
        "action": row.action,
        "tool_name": row.tool_name,
        "status": row.status,
        "detail": row.detail,
        "request_id": row.request_id,
        "duration_ms": row.duration_ms.map(|d| format!("{d:.3}")),
    });
    let mut hasher = Sha256::new();
    hasher.update(row.prev_hash.as_bytes());
    hasher.update(cullis_shared::encoding::canonical_json::to_vec(&body));
    hex::encode(hasher.finalize())
}

/// Appends `entry` to the chain.
pub async fn record(store: &Store, entry: AuditEntry<'_>) -> Result<AuditRow, StoreError> {
    let row = AuditRow {
        id: 0,
        timestamp: now_iso(),
        // Every text field is bounded here, whatever the caller checked: a row's size never
        // depends on what a client sent.
        agent_id: bounded(entry.agent_id),
        action: bounded(entry.action),
        tool_name: entry.tool_name.map(bounded),
        status: entry.outcome.as_str().to_owned(),
        detail: entry.detail,
        request_id: entry.request_id.map(bounded),
        // Rounded like the hash input, so what is stored is exactly what was hashed.
        duration_ms: entry.duration_ms.map(|d| (d * 1000.0).round() / 1000.0),
        prev_hash: String::new(),
        entry_hash: String::new(),
    };
    store.append_audit(row, entry_hash).await
}

fn bounded(text: &str) -> String {
    crate::limits::clip(text, crate::limits::MAX_AUDIT_FIELD)
}

/// Records and only logs a failure: an audit write must not turn a done action into an error.
pub async fn record_quietly(store: &Store, entry: AuditEntry<'_>) {
    let action = entry.action.to_owned();
    if let Err(err) = record(store, entry).await {
        tracing::error!(action, "audit write failed: {err}");
    }
}

/// Result of a chain verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    pub valid: bool,
    pub rows: usize,
    /// The first row whose link or hash is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at_id: Option<i64>,
}

/// Verifies the links and hashes of `rows` (in id order, from the first row).
pub fn verify_rows(rows: &[AuditRow]) -> ChainReport {
    let mut prev = GENESIS.to_owned();
    for row in rows {
        if row.prev_hash != prev || entry_hash(row) != row.entry_hash {
            return ChainReport {
                valid: false,
                rows: rows.len(),
                broken_at_id: Some(row.id),
            };
        }
        prev = row.entry_hash.clone();
    }
    ChainReport {
        valid: true,
        rows: rows.len(),
        broken_at_id: None,
    }
}

/// Verifies the whole stored chain.
pub async fn verify(store: &Store) -> Result<ChainReport, StoreError> {
    Ok(verify_rows(&store.all_audit_rows().await?))
}

/// Now as ISO-8601 UTC with offset (as the reference's `created_at`).
pub fn now_iso() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, prev: &str) -> AuditRow {
        let mut row = AuditRow {
            id,
            timestamp: "2026-01-01T00:00:00Z".into(),
            agent_id: "alpha::buyer".into(),
            action: "egress_send".into(),
            tool_name: None,
            status: "success".into(),
            detail: Some("Zürich".into()),
            request_id: Some("r".into()),
            duration_ms: Some(1.25),
            prev_hash: prev.into(),
            entry_hash: String::new(),
        };
        row.entry_hash = entry_hash(&row);
        row
    }

    #[test]
    fn chain_verifies_and_detects_tampering() {
        let a = row(1, GENESIS);
        let b = row(2, &a.entry_hash);
        assert!(verify_rows(&[a.clone(), b.clone()]).valid);
        let mut edited = b.clone();
        edited.detail = Some("Zurich".into());
        let report = verify_rows(&[a.clone(), edited]);
        assert_eq!(report.broken_at_id, Some(2));
        assert_eq!(verify_rows(&[b]).broken_at_id, Some(2));
    }
}
