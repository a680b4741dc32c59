//! Raw storage of the audit chain; the chain rules live in `crate::audit`.

use super::{Store, StoreError};
use std::sync::Arc;

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

/// The `entry_hash` of the last row this process appended, so an append needs no read first.
/// Held across the append: the appends of one process are serialised here, not in SQLite.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChainHead(Arc<tokio::sync::Mutex<Option<String>>>);

/// Attempts before giving up when other processes keep appending in between.
const APPEND_ATTEMPTS: usize = 32;

impl Store {
    /// Appends a row whose hash `make_hash(prev_hash)` computes.
    ///
    /// One statement: the row goes in only if the chain's last hash is still the `prev_hash` it
    /// was hashed over. An INSERT takes SQLite's write lock before it reads, so the check and the
    /// insert are atomic across processes (the server and a CLI command can never chain onto the
    /// same predecessor). When another process appended meanwhile, nothing is written, the head
    /// is read again and the row re-hashed.
    pub async fn append_audit<F>(
        &self,
        mut row: AuditRow,
        make_hash: F,
    ) -> Result<AuditRow, StoreError>
    where
        F: Fn(&AuditRow) -> String,
    {
        let mut head = self.audit_head.0.lock().await;
        for _ in 0..APPEND_ATTEMPTS {
            let prev = match head.take() {
                Some(prev) => prev,
                None => self.audit_chain_head().await?,
            };
            row.prev_hash = prev;
            row.entry_hash = make_hash(&row);
            if let Some(id) = self.insert_audit_if_head(&row).await? {
                row.id = id;
                *head = Some(row.entry_hash.clone());
                return Ok(row);
            }
        }
        Err(StoreError::Busy(format!(
            "audit chain: other writers appended {APPEND_ATTEMPTS} times in a row; try again"
        )))
    }

    /// The last row's `entry_hash` (the genesis value for an empty chain).
    async fn audit_chain_head(&self) -> Result<String, StoreError> {
        let head: Option<String> =
            sqlx::query_scalar("SELECT entry_hash FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(self.pool())
                .await?;
        Ok(head.unwrap_or_else(|| crate::audit::GENESIS.to_owned()))
    }

    /// Inserts `row` if the chain still ends at `row.prev_hash`; its id, or `None` if not.
    async fn insert_audit_if_head(&self, row: &AuditRow) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_log(timestamp, agent_id, action, tool_name, status, detail, request_id, duration_ms, prev_hash, entry_hash) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 \
             WHERE ?9 = COALESCE((SELECT entry_hash FROM audit_log ORDER BY id DESC LIMIT 1), ?11) \
             RETURNING id",
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
        .bind(crate::audit::GENESIS)
        .fetch_optional(self.pool())
        .await?)
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

    /// One page of audit rows, newest first, filtered by agent, action and status (each
    /// optional): `limit` rows after skipping `offset`.
    pub async fn audit_page(
        &self,
        agent_id: Option<&str>,
        action: Option<&str>,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR action = ?2) \
             AND (?3 IS NULL OR status = ?3) ORDER BY id DESC LIMIT ?4 OFFSET ?5"
        ))
        .bind(agent_id)
        .bind(action)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?)
    }

    /// The newest `limit` rows by or about `agent_id`, newest first: its own actions, and the
    /// admin actions on it (recorded by `admin` with the detail `agent=<id>[ ...]`).
    pub async fn audit_rows_about(
        &self,
        agent_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE agent_id = ?1 OR detail = 'agent=' || ?1 \
             OR substr(detail, 1, length(?1) + 7) = 'agent=' || ?1 || ' ' ORDER BY id DESC LIMIT ?2"
        ))
        .bind(agent_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{self, AuditEntry, Outcome};

    #[tokio::test]
    async fn two_processes_appending_at_once_build_one_chain() {
        let file = crate::store::ScratchFile::new("audit");
        // Two stores on one file stand for the server and a CLI command: separate pools and
        // separate in-memory chain heads, so each must notice the other's rows.
        let server = Store::open(&file.url).await.unwrap();
        let cli = Store::open(&file.url).await.unwrap();
        let append_many = |store: Store, actor: &'static str| async move {
            for i in 0..40 {
                let entry = AuditEntry::new(actor, "egress_send", Outcome::Success)
                    .detail(format!("n={i}"));
                audit::record(&store, entry).await.unwrap();
            }
        };
        let a = tokio::spawn(append_many(server.clone(), "server"));
        let b = tokio::spawn(append_many(cli.clone(), "cli"));
        let c = tokio::spawn(append_many(server.clone(), "server-2"));
        a.await.unwrap();
        b.await.unwrap();
        c.await.unwrap();

        let rows = server.all_audit_rows().await.unwrap();
        assert_eq!(rows.len(), 120, "no row lost");
        let report = audit::verify_rows(&rows);
        assert!(report.valid, "one unforked chain: {report:?}");
        // A row written after the other process appended still links to the true last row.
        let last = audit::record(&cli, AuditEntry::new("cli", "agent_list", Outcome::Success))
            .await
            .unwrap();
        assert_eq!(last.prev_hash, rows.last().unwrap().entry_hash);
        assert!(audit::verify(&server).await.unwrap().valid);
    }
}
