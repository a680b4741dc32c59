//! Audit export (`GET /v1/admin/audit/export`, ADMIN; broker §8.4) and the optional JSON
//! chain-verification result (§8.3).

use serde::{Deserialize, Serialize};

/// `result` of an audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    Ok,
    Denied,
    Error,
}

impl AuditResult {
    /// The wire (and stored) spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }
}

/// Default `limit` of [`AuditExportQuery`] (the service caps it at 50 000).
pub const DEFAULT_AUDIT_EXPORT_LIMIT: i64 = 10_000;

fn default_limit() -> i64 {
    DEFAULT_AUDIT_EXPORT_LIMIT
}

fn default_format() -> String {
    "json".to_owned()
}

/// Query of `GET /v1/admin/audit/export`: `start`, `end` (ISO datetimes, inclusive), `org_id`,
/// `event_type` (exact), `format` (`json` default → NDJSON; `csv`; anything else → NDJSON, so
/// it stays a `String`), `limit` (default 10 000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditExportQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default = "default_format")]
    pub format: String,
    #[serde(default = "default_limit")]
    pub limit: i64,
}

impl Default for AuditExportQuery {
    fn default() -> Self {
        Self {
            start: None,
            end: None,
            org_id: None,
            event_type: None,
            format: default_format(),
            limit: DEFAULT_AUDIT_EXPORT_LIMIT,
        }
    }
}

/// Column order of both export formats (NDJSON member order and the CSV header row).
pub const AUDIT_EXPORT_COLUMNS: [&str; 10] = [
    "id",
    "timestamp",
    "event_type",
    "agent_id",
    "session_id",
    "org_id",
    "result",
    "details",
    "entry_hash",
    "previous_hash",
];

/// One NDJSON line of the audit export (`Content-Type: application/x-ndjson`), members in the
/// order of [`AUDIT_EXPORT_COLUMNS`]. `timestamp` is Python `isoformat()` (`+00:00`) or `null`;
/// `details` is the raw stored JSON *string* (not an object) or `null`; every nullable column is
/// emitted as `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditExportRow {
    pub id: i64,
    #[serde(default)]
    pub timestamp: Option<String>,
    pub event_type: String,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    pub result: AuditResult,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub entry_hash: Option<String>,
    #[serde(default)]
    pub previous_hash: Option<String>,
}

/// Body of the Rust-only, additive `GET /v1/admin/audit/verify` suggested by §8.3:
/// `{"valid","total","broken_id"}` (intact ⇒ `(true, rows, 0)`; broken ⇒ `(false, index, id)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerifyResponse {
    pub valid: bool,
    pub total: u64,
    pub broken_id: i64,
    /// Rust addition: why the chain is broken (`previous_hash_mismatch: …`,
    /// `entry_hash_mismatch: …`, `unhashed_row: …`); absent when intact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    #[test]
    fn export_row_roundtrip_with_details_string() {
        let r: AuditExportRow = roundtrip_exact(
            r#"{"id":1,"timestamp":"2026-04-08T12:00:00.123456+00:00","event_type":"binding.created","agent_id":"acme::buyer","session_id":null,"org_id":"acme","result":"ok","details":"{\"binding_id\": 1, \"scope\": [\"a\"]}","entry_hash":"aa","previous_hash":null}"#,
        );
        assert_eq!(r.result, AuditResult::Ok);
        assert_eq!(
            r.details.as_deref(),
            Some(r#"{"binding_id": 1, "scope": ["a"]}"#)
        );
        assert_eq!(r.previous_hash, None);
    }

    #[test]
    fn export_row_member_order_matches_columns() {
        let r = AuditExportRow {
            id: 2,
            timestamp: None,
            event_type: "session_closed".into(),
            agent_id: None,
            session_id: None,
            org_id: None,
            result: AuditResult::Denied,
            details: None,
            entry_hash: None,
            previous_hash: None,
        };
        let v = to_value(&r);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        // serde_json::Map sorts keys, so check order on the string form instead.
        assert_eq!(keys.len(), AUDIT_EXPORT_COLUMNS.len());
        let s = serde_json::to_string(&r).unwrap();
        let mut last = 0;
        for col in AUDIT_EXPORT_COLUMNS {
            let pos = s.find(&format!("\"{col}\":")).expect(col);
            assert!(pos >= last, "{col} out of order");
            last = pos;
        }
        assert!(s.contains(r#""timestamp":null"#));
    }

    #[test]
    fn result_spellings() {
        for r in [AuditResult::Ok, AuditResult::Denied, AuditResult::Error] {
            assert_eq!(to_value(&r), serde_json::Value::from(r.as_str()));
        }
    }

    #[test]
    fn export_query_defaults() {
        let q: AuditExportQuery = serde_json::from_str(r#"{"unknown":"x"}"#).unwrap();
        assert_eq!(q, AuditExportQuery::default());
        assert_eq!(q.format, "json");
        assert_eq!(q.limit, 10_000);
        let q: AuditExportQuery = serde_json::from_str(
            r#"{"start":"2026-04-08T00:00:00","org_id":"acme","format":"xml","limit":60000}"#,
        )
        .unwrap();
        assert_eq!(q.format, "xml");
        assert_eq!(q.limit, 60_000);
        assert_eq!(q.end, None);
    }

    #[test]
    fn verify_roundtrip() {
        let v: AuditVerifyResponse = roundtrip_exact(r#"{"valid":false,"total":4,"broken_id":17}"#);
        assert!(!v.valid);
        assert_eq!(v.broken_id, 17);
    }
}
