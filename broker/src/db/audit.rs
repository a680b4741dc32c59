//! `audit_log`: chained appends, paged reads for verification and export. Rows are never
//! updated or deleted (and the `0003_audit_chain` triggers refuse it).
//!
//! Serialising appends. The hash of a row needs its id and the hash of the row before it, so
//! two appends must never read the same chain head. Both engines serialise in the database,
//! which holds across any number of broker processes:
//! * SQLite: the transaction starts with `BEGIN IMMEDIATE`, taking the database's single write
//!   lock before anything is read.
//! * PostgreSQL: the transaction first takes `pg_advisory_xact_lock(CHAIN_LOCK_KEY)`, released
//!   by commit or rollback (after the commit is visible to the next holder).
//!
//! Under the lock the next id is reserved (`nextval` of the identity sequence on PostgreSQL,
//! the AUTOINCREMENT counter on SQLite), the hash is computed, and the complete row is inserted
//! in one statement — so no row ever exists without its hashes and the triggers need not allow
//! any UPDATE at all. An error or a dropped future rolls the transaction back (sqlx
//! `Transaction`), releasing the lock.

use super::{now_text, Db, Engine};
use crate::audit::{entry_hash, ChainFields};
use sqlx::any::AnyRow;
use sqlx::Row;

/// The PostgreSQL advisory-lock key of the audit chain ("CULLISAU").
pub const CHAIN_LOCK_KEY: i64 = 0x4355_4c4c_4953_4155;

/// One audit event to append.
#[derive(Debug, Clone, Default)]
pub struct AuditRow<'a> {
    pub event_type: &'a str,
    pub result: &'a str,
    pub agent_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub org_id: Option<&'a str>,
    pub details: Option<String>,
}

/// An audit row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEntry {
    pub id: i64,
    pub timestamp: String,
    pub event_type: String,
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    pub org_id: Option<String>,
    pub details: Option<String>,
    pub result: String,
    pub entry_hash: Option<String>,
    pub previous_hash: Option<String>,
}

impl StoredAuditEntry {
    /// The fields the chain hash covers.
    pub fn chain_fields(&self) -> ChainFields<'_> {
        ChainFields {
            id: self.id,
            timestamp: &self.timestamp,
            event_type: &self.event_type,
            agent_id: self.agent_id.as_deref(),
            session_id: self.session_id.as_deref(),
            org_id: self.org_id.as_deref(),
            result: &self.result,
            details: self.details.as_deref(),
            previous_hash: self.previous_hash.as_deref(),
        }
    }

    fn from_row(row: &AnyRow) -> Result<StoredAuditEntry, sqlx::Error> {
        Ok(StoredAuditEntry {
            id: row.try_get("id")?,
            timestamp: row.try_get("timestamp")?,
            event_type: row.try_get("event_type")?,
            agent_id: row.try_get("agent_id")?,
            session_id: row.try_get("session_id")?,
            org_id: row.try_get("org_id")?,
            details: row.try_get("details")?,
            result: row.try_get("result")?,
            entry_hash: row.try_get("entry_hash")?,
            previous_hash: row.try_get("previous_hash")?,
        })
    }
}

/// Filters of the audit export (§8.4). Bounds are stored-form timestamps, inclusive.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub start: Option<String>,
    pub end: Option<String>,
    pub org_id: Option<String>,
    pub event_type: Option<String>,
}

const COLUMNS: &str =
    "id, timestamp, event_type, agent_id, session_id, org_id, details, result, entry_hash, previous_hash";

impl Db {
    /// Appends one row to the hash chain (see the module comment for how appends are
    /// serialised). Returns the stored row.
    pub async fn append_audit(&self, row: &AuditRow<'_>) -> Result<StoredAuditEntry, sqlx::Error> {
        let mut tx = match self.engine() {
            Engine::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => {
                let mut tx = self.pool().begin().await?;
                // `void` is not a type the Any driver decodes: cast the result.
                sqlx::query("SELECT CAST(pg_advisory_xact_lock($1) AS TEXT) AS locked")
                    .bind(CHAIN_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        // Under the lock: the chain head (the last hashed row) and the next id.
        let head_sql = "(SELECT entry_hash FROM audit_log WHERE entry_hash IS NOT NULL ORDER BY id DESC LIMIT 1)";
        let (id, previous_hash): (i64, Option<String>) = match self.engine() {
            Engine::Sqlite => {
                let row = sqlx::query(&format!(
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0), \
                     COALESCE((SELECT MAX(id) FROM audit_log), 0)) + 1 AS id, {head_sql} AS head"
                ))
                .fetch_one(&mut *tx)
                .await?;
                (row.try_get("id")?, row.try_get("head")?)
            }
            Engine::Postgres => {
                let row = sqlx::query(&format!(
                    "SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) AS id, {head_sql} AS head"
                ))
                .fetch_one(&mut *tx)
                .await?;
                (row.try_get("id")?, row.try_get("head")?)
            }
        };
        let mut entry = StoredAuditEntry {
            id,
            timestamp: now_text(),
            event_type: row.event_type.to_owned(),
            agent_id: row.agent_id.map(str::to_owned),
            session_id: row.session_id.map(str::to_owned),
            org_id: row.org_id.map(str::to_owned),
            details: row.details.clone(),
            result: row.result.to_owned(),
            entry_hash: None,
            previous_hash,
        };
        entry.entry_hash = Some(entry_hash(&entry.chain_fields()));
        let overriding = match self.engine() {
            Engine::Sqlite => "",
            Engine::Postgres => "OVERRIDING SYSTEM VALUE ",
        };
        sqlx::query(&format!(
            "INSERT INTO audit_log ({COLUMNS}) {overriding}VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(entry.id)
        .bind(&entry.timestamp)
        .bind(&entry.event_type)
        .bind(&entry.agent_id)
        .bind(&entry.session_id)
        .bind(&entry.org_id)
        .bind(&entry.details)
        .bind(&entry.result)
        .bind(&entry.entry_hash)
        .bind(&entry.previous_hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Up to `limit` rows with id > `after`, by id ascending (chain verification pages).
    pub async fn audit_entries_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredAuditEntry>, sqlx::Error> {
        self.audit_page(&AuditFilter::default(), after, limit).await
    }

    /// Up to `limit` rows with id > `after` that match `filter`, by id ascending.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredAuditEntry>, sqlx::Error> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE id > $1");
        let mut binds: Vec<&str> = Vec::new();
        for (column, op, value) in [
            ("timestamp", ">=", &filter.start),
            ("timestamp", "<=", &filter.end),
            ("org_id", "=", &filter.org_id),
            ("event_type", "=", &filter.event_type),
        ] {
            if let Some(value) = value {
                binds.push(value);
                sql.push_str(&format!(" AND {column} {op} ${}", binds.len() + 1));
            }
        }
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", binds.len() + 2));
        let mut query = sqlx::query(&sql).bind(after);
        for value in binds {
            query = query.bind(value);
        }
        let rows = query.bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(StoredAuditEntry::from_row).collect()
    }

    /// Number of audit rows of one type (tests and diagnostics).
    pub async fn count_audit(&self, event_type: &str) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(self.pool())
            .await?;
        row.try_get("n")
    }
}
