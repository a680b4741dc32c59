//! `audit_log` writes. (The hash chain over these rows is built on top of this table.)

use super::{now_text, Db};

/// One audit event as stored.
#[derive(Debug, Clone, Default)]
pub struct AuditRow<'a> {
    pub event_type: &'a str,
    pub result: &'a str,
    pub agent_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub org_id: Option<&'a str>,
    pub details: Option<String>,
}

impl Db {
    pub async fn insert_audit(&self, row: &AuditRow<'_>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_log (timestamp, event_type, agent_id, session_id, org_id, details, result) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now_text())
        .bind(row.event_type)
        .bind(row.agent_id)
        .bind(row.session_id)
        .bind(row.org_id)
        .bind(&row.details)
        .bind(row.result)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Number of audit rows of one type (tests and diagnostics).
    pub async fn count_audit(&self, event_type: &str) -> Result<i64, sqlx::Error> {
        use sqlx::Row;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(self.pool())
            .await?;
        row.try_get("n")
    }
}
