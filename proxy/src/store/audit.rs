//! Raw storage of the audit chain; the chain rules live in `crate::audit`.

use super::{Store, StoreError};
use sqlx::Connection;

/// One audit row as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub timestamp: String,
    pub agent_id: String,
    pub action: String,
    pub tool_name: Option<String>,
    pub status: String,
    pub detail: Option<String>,
    pub request_id: Option<String>,
    pub duration_ms: Option<f64>,
    pub prev_hash: String,
    pub entry_hash: String,
}

const COLUMNS: &str = "id, timestamp, agent_id, action, tool_name, status, detail, request_id, duration_ms, prev_hash, entry_hash";

impl Store {
    /// Appends a row whose hash `make_hash(prev_hash)` computes, under a write lock so two
    /// writers (the server and a CLI command) can never chain onto the same predecessor.
    pub async fn append_audit<F>(
        &self,
        mut row: AuditRow,
        make_hash: F,
    ) -> Result<AuditRow, StoreError>
    where
        F: Fn(&AuditRow) -> String,
    {
        let mut conn = self.pool().acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let result = async {
            let prev: Option<String> =
                sqlx::query_scalar("SELECT entry_hash FROM audit_log ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await?;
            row.prev_hash = prev.unwrap_or_else(|| crate::audit::GENESIS.to_owned());
            row.entry_hash = make_hash(&row);
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO audit_log(timestamp, agent_id, action, tool_name, status, detail, request_id, duration_ms, prev_hash, entry_hash) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&row.timestamp)
            .bind(&row.agent_id)
            .bind(&row.action)
            .bind(&row.tool_name)
            .bind(&row.status)
            .bind(&row.detail)
            .bind(&row.request_id)
            .bind(row.duration_ms)
            .bind(&row.prev_hash)
            .bind(&row.entry_hash)
            .fetch_one(&mut *conn)
            .await?;
            row.id = id;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        match result {
            Ok(()) => {
                sqlx::query("COMMIT").execute(&mut *conn).await?;
                Ok(row)
            }
            Err(err) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                // A connection left mid-transaction must not go back to the pool.
                let _ = conn.detach().close().await;
                Err(err.into())
            }
        }
    }

    /// Audit rows in id order, optionally filtered by agent and action, newest `limit`.
    pub async fn audit_rows(
        &self,
        agent_id: Option<&str>,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut rows: Vec<AuditRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR action = ?2) ORDER BY id DESC LIMIT ?3"
        ))
        .bind(agent_id)
        .bind(action)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.reverse();
        Ok(rows)
    }

    /// Every audit row in id order (for chain verification).
    pub async fn all_audit_rows(&self) -> Result<Vec<AuditRow>, StoreError> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY id"))
                .fetch_all(self.pool())
                .await?,
        )
    }
}
