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
//! Under the lock the batch's ids are reserved (`nextval` of the identity sequence on
//! PostgreSQL, the AUTOINCREMENT counter on SQLite), the hashes are computed, and the complete
//! rows are inserted — so no row ever exists without its hashes and the triggers need not allow
//! any UPDATE at all. An error or a dropped future rolls the transaction back (sqlx
//! `Transaction`, or [`WriteTx`] on the direct SQLite path), releasing the lock.

use super::direct::{into_sqlx, WriteTx};
use super::{now_text, values_placeholders, Db};
use cullis_shared::audit_chain::{entry_hash, ChainFields};
use rusqlite::OptionalExtension;
use sqlx::any::AnyRow;
use sqlx::Row;

/// The chain head: the hash of the last hashed row (read under the chain lock).
const CHAIN_HEAD: &str =
    "SELECT entry_hash FROM audit_log WHERE entry_hash IS NOT NULL ORDER BY id DESC LIMIT 1";

/// The PostgreSQL advisory-lock key of the audit chain ("CULLISAU").
pub const CHAIN_LOCK_KEY: i64 = 0x4355_4c4c_4953_4155;

/// One audit event to append.
#[derive(Debug, Clone, Default)]
pub struct AuditRow {
    pub event_type: &'static str,
    pub result: &'static str,
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    pub org_id: Option<String>,
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

/// A transaction holding the chain lock: rows appended through it are chained after the head
/// read when it began, and other writes that must be serialised with the chain (message rows,
/// see [`ChainTx::insert_messages`]) can share its single commit.
///
/// Appended rows are staged in memory and written by [`ChainTx::commit`] with one id
/// reservation and, on PostgreSQL, one multi-row INSERT — a batch of any size costs the same
/// few round trips —, on SQLite one cached INSERT per row (no round trips to save).
pub struct ChainTx {
    pub(super) conn: ChainConn,
    previous_hash: Option<String>,
    /// When this batch was written (every row and message of it carries this time).
    pub(super) timestamp: String,
    staged: Vec<AuditRow>,
}

/// The connection a [`ChainTx`] writes through.
pub(super) enum ChainConn {
    /// A sqlx transaction (PostgreSQL): few statements per batch, each a round trip.
    Pool(sqlx::Transaction<'static, sqlx::Any>),
    /// A direct SQLite transaction ([`super::direct`]): one cached statement per row, no round
    /// trips. Only the audit writer's thread uses it.
    Direct(WriteTx),
}

/// Rows per multi-row INSERT on PostgreSQL (10 parameters each; it allows far more).
const ROWS_PER_INSERT: usize = 500;

impl ChainTx {
    /// Appends `row` after the rows appended so far (written by [`ChainTx::commit`]).
    pub fn append(&mut self, row: AuditRow) {
        self.staged.push(row);
    }

    /// Writes the staged rows, makes everything visible at once and releases the chain lock.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let staged = std::mem::take(&mut self.staged);
        if !staged.is_empty() {
            let ids = self.reserve_ids(staged.len()).await?;
            if ids.len() != staged.len() {
                return Err(sqlx::Error::Protocol(
                    "fewer audit_log ids reserved than rows to write".into(),
                ));
            }
            let entries = self.chained(staged, ids);
            for chunk in entries.chunks(ROWS_PER_INSERT) {
                self.insert(chunk).await?;
            }
        }
        match self.conn {
            ChainConn::Pool(tx) => tx.commit().await,
            ChainConn::Direct(tx) => tx.commit(),
        }
    }

    /// Reserves `count` row ids, ascending: from the AUTOINCREMENT counter on SQLite (an
    /// explicit id advances it), from the identity sequence on PostgreSQL. The chain lock keeps every
    /// other appender out until commit, so these ids follow every row already chained.
    async fn reserve_ids(&mut self, count: usize) -> Result<Vec<i64>, sqlx::Error> {
        match &mut self.conn {
            ChainConn::Direct(tx) => {
                let first: i64 = tx
                    .connection()
                    .prepare_cached(
                        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0), \
                         COALESCE((SELECT MAX(id) FROM audit_log), 0)) + 1",
                    )
                    .and_then(|mut next| next.query_row([], |row| row.get(0)))
                    .map_err(into_sqlx)?;
                Ok((first..).take(count).collect())
            }
            ChainConn::Pool(tx) => {
                let rows = sqlx::query(
                    "SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) AS id \
                     FROM generate_series(1, CAST($1 AS BIGINT))",
                )
                .bind(count as i64)
                .fetch_all(&mut **tx)
                .await?;
                let mut ids = rows
                    .iter()
                    .map(|row| row.try_get::<i64, _>("id"))
                    .collect::<Result<Vec<_>, _>>()?;
                ids.sort_unstable();
                Ok(ids)
            }
        }
    }

    /// The staged rows as stored: with `ids` in order, each hash over the one before.
    fn chained(&mut self, rows: Vec<AuditRow>, ids: Vec<i64>) -> Vec<StoredAuditEntry> {
        let mut entries = Vec::with_capacity(rows.len());
        for (id, row) in ids.into_iter().zip(rows) {
            let mut entry = StoredAuditEntry {
                id,
                timestamp: self.timestamp.clone(),
                event_type: row.event_type.to_owned(),
                agent_id: row.agent_id,
                session_id: row.session_id,
                org_id: row.org_id,
                details: row.details,
                result: row.result.to_owned(),
                entry_hash: None,
                previous_hash: self.previous_hash.take(),
            };
            entry.entry_hash = Some(entry_hash(&entry.chain_fields()));
            self.previous_hash = entry.entry_hash.clone();
            entries.push(entry);
        }
        entries
    }

    async fn insert(&mut self, entries: &[StoredAuditEntry]) -> Result<(), sqlx::Error> {
        let tx = match &mut self.conn {
            ChainConn::Direct(tx) => {
                let mut insert = tx
                    .connection()
                    .prepare_cached(&format!(
                        "INSERT INTO audit_log ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                    ))
                    .map_err(into_sqlx)?;
                for entry in entries {
                    insert
                        .execute(rusqlite::params![
                            entry.id,
                            entry.timestamp,
                            entry.event_type,
                            entry.agent_id,
                            entry.session_id,
                            entry.org_id,
                            entry.details,
                            entry.result,
                            entry.entry_hash,
                            entry.previous_hash,
                        ])
                        .map_err(into_sqlx)?;
                }
                return Ok(());
            }
            ChainConn::Pool(tx) => tx,
        };
        let sql = format!(
            "INSERT INTO audit_log ({COLUMNS}) OVERRIDING SYSTEM VALUE VALUES {}",
            values_placeholders(entries.len(), 10)
        );
        let mut query = sqlx::query(&sql);
        for entry in entries {
            query = query
                .bind(entry.id)
                .bind(&entry.timestamp)
                .bind(&entry.event_type)
                .bind(&entry.agent_id)
                .bind(&entry.session_id)
                .bind(&entry.org_id)
                .bind(&entry.details)
                .bind(&entry.result)
                .bind(&entry.entry_hash)
                .bind(&entry.previous_hash);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }
}

impl Db {
    /// Begins a transaction under the chain lock (see the module comment) and reads the chain
    /// head. Dropping it without [`ChainTx::commit`] rolls everything back.
    pub async fn begin_chain(&self) -> Result<ChainTx, sqlx::Error> {
        let (conn, previous_hash) = match self.direct() {
            Some(direct) => {
                let tx = WriteTx::begin(direct)?;
                let head = tx
                    .connection()
                    .prepare_cached(CHAIN_HEAD)
                    .and_then(|mut head| head.query_row([], |row| row.get(0)).optional())
                    .map_err(into_sqlx)?;
                (ChainConn::Direct(tx), head.flatten())
            }
            None => {
                let (tx, head) = self.begin_pool_chain().await?;
                (ChainConn::Pool(tx), head)
            }
        };
        Ok(ChainTx {
            conn,
            previous_hash,
            timestamp: now_text(),
            staged: Vec::new(),
        })
    }

    /// [`Db::begin_chain`] on PostgreSQL: the transaction and the chain head.
    async fn begin_pool_chain(
        &self,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Any>, Option<String>), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // `void` is not a type the Any driver decodes: cast the result.
        sqlx::query("SELECT CAST(pg_advisory_xact_lock($1) AS TEXT) AS locked")
            .bind(CHAIN_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
        // Under the lock: the chain head (the last hashed row).
        let head = sqlx::query(CHAIN_HEAD).fetch_optional(&mut *tx).await?;
        let previous_hash = match head {
            Some(row) => row.try_get("entry_hash")?,
            None => None,
        };
        Ok((tx, previous_hash))
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

/// What the console's audit views ask for; every field narrows.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditSearch<'a> {
    pub org_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    /// Substring of the event type, agent, org, result or details (case-insensitive).
    pub text: Option<&'a str>,
    /// Only rows whose result is not `ok`/`success` (denials and errors).
    pub failures_only: bool,
}

impl Db {
    /// The newest `limit` rows matching `search`, newest first.
    pub async fn audit_recent(
        &self,
        search: &AuditSearch<'_>,
        limit: i64,
    ) -> Result<Vec<StoredAuditEntry>, sqlx::Error> {
        let pattern = search.text.map(super::like_pattern);
        let failures = if search.failures_only {
            " AND result NOT IN ('ok', 'success')"
        } else {
            ""
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE ($1 IS NULL OR org_id = $1) \
             AND ($2 IS NULL OR agent_id = $2) AND ($3 IS NULL OR event_type = $3) \
             AND ($4 IS NULL OR LOWER(event_type || ' ' || COALESCE(agent_id, '') || ' ' || COALESCE(org_id, '') || ' ' || result || ' ' || COALESCE(details, '')) LIKE $4 ESCAPE '\\'){failures} \
             ORDER BY id DESC LIMIT $5"
        ))
        .bind(search.org_id)
        .bind(search.agent_id)
        .bind(search.event_type)
        .bind(pattern)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(StoredAuditEntry::from_row).collect()
    }

    /// The newest audit id (0 when the log is empty): where live updates start.
    pub async fn audit_head_id(&self) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS n FROM audit_log")
            .fetch_one(self.pool())
            .await?;
        row.try_get("n")
    }
}
