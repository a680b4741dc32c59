//! Storage: one sqlx `Any` pool over SQLite (the embedded default) or PostgreSQL, embedded
//! migrations for each, and one repository module per table family. No SQL lives outside
//! this module. On a SQLite file the relay's hot statements bypass the pool ([`direct`]).
//!
//! SQL is written once for both engines: `$n` placeholders (SQLite accepts them), `ON CONFLICT
//! … DO NOTHING`, `RETURNING`. Timestamps are RFC 3339 UTC text with six fraction digits, so
//! they sort and compare as text on both engines.

pub mod agents;
pub mod audit;
pub mod bindings;
pub mod console;
pub mod delivery;
pub mod direct;
pub mod invites;
pub mod orgs;
pub mod policies;
pub mod revocation;
pub mod rfq;
pub mod search;
pub mod sessions;
pub mod signing_keys;
pub mod transaction_tokens;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub(crate) static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
pub(crate) static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The broker's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    engine: Engine,
    /// The relay's hot path on SQLite (`None` on PostgreSQL).
    direct: Option<std::sync::Arc<direct::DirectSqlite>>,
    /// Unix second of the last purge of expired single-use ids.
    last_purge: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// Large discovery counts, by filter set, with when they were taken (`search`).
    discovery_totals: std::sync::Arc<cullis_shared::memo::Memo<String, (u64, std::time::Instant)>>,
}

/// A database that could not be opened; the message says what to check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);

impl Db {
    /// Opens `url` (`sqlite://path` or `postgres://…`). A SQLite file and its directory are
    /// created when missing and the database runs in WAL mode.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("postgres") {
            Engine::Postgres
        } else if url.starts_with("sqlite") {
            Engine::Sqlite
        } else {
            return Err(DbError(format!(
                "DATABASE_URL '{}' is neither sqlite:// nor postgres://",
                redact(url)
            )));
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let mut sqlite_file = None;
        let url = match engine {
            Engine::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let file = path.split('?').next().unwrap_or(path);
                if file.is_empty() || file.starts_with(":memory:") {
                    return Err(DbError(format!(
                        "DATABASE_URL '{}' names no SQLite file: an in-memory database would be a different, empty one on each connection — use sqlite://PATH (for example sqlite://./data/cullis.db)",
                        redact(url)
                    )));
                }
                sqlite_file = Some(file.to_owned());
                if let Some(dir) = Path::new(file)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        DbError(format!(
                            "cannot create the database directory {}: {e}",
                            dir.display()
                        ))
                    })?;
                }
                options = options.max_connections(8).after_connect(|conn, _| {
                    Box::pin(async move {
                        // The same settings as the direct connections (`DirectSqlite::connect`).
                        // WAL checkpoints: SQLite's default (in the commit that crosses 1,000
                        // pages) as the backstop of the checkpointer thread (`direct`).
                        conn.execute("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
                            .await?;
                        Ok(())
                    })
                });
                if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            Engine::Postgres => {
                options = options.max_connections(16);
                url.to_owned()
            }
        };
        let pool = options.connect(&url).await.map_err(|e| {
            DbError(format!("cannot open DATABASE_URL '{}': {e} — check that the database server runs and the URL is right", redact(&url)))
        })?;
        // Opened after the pool, which creates the file and sets WAL mode.
        let direct = sqlite_file
            .map(|file| {
                let direct = direct::DirectSqlite::open(&file).map_err(|e| e.to_string())?;
                direct.start_checkpointer()?;
                Ok::<_, String>(direct)
            })
            .transpose()
            .map_err(|e| {
                DbError(format!(
                    "cannot open the SQLite file of DATABASE_URL '{}': {e}",
                    redact(&url)
                ))
            })?;
        Ok(Db {
            pool,
            engine,
            direct,
            last_purge: Default::default(),
            discovery_totals: std::sync::Arc::new(cullis_shared::memo::Memo::new(1_024)),
        })
    }

    /// Applies the embedded migrations for this engine.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| DbError(format!("database migration failed: {e}")))
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The direct SQLite path, when this database has one (see [`direct`]).
    pub(crate) fn direct(&self) -> Option<&std::sync::Arc<direct::DirectSqlite>> {
        self.direct.as_ref()
    }

    /// Whether a periodic purge should run now (at most every ten seconds per process).
    pub(crate) fn due_for_purge(&self, now: i64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.last_purge.load(Ordering::Relaxed);
        now - last >= 10
            && self
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// `SELECT 1`, for `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Pool connections (in use, idle), for the metrics.
    pub fn pool_usage(&self) -> (u32, u32) {
        let idle = self.pool.num_idle() as u32;
        (self.pool.size().saturating_sub(idle), idle)
    }

    /// Sessions whose status is `active` (expired ones included until something closes them).
    pub async fn count_active_sessions(&self) -> Result<i64, sqlx::Error> {
        use sqlx::Row;
        let row = sqlx::query("SELECT COUNT(*) FROM sessions WHERE status = 'active'")
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<i64, _>(0)
    }
}

/// The current time as stored: RFC 3339 UTC with six fraction digits.
pub fn now_text() -> String {
    timestamp_text(OffsetDateTime::now_utc())
}

/// Formats a time as stored.
pub fn timestamp_text(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

/// Parses a stored (or any RFC 3339) time.
pub fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Whether an insert failed on a uniqueness constraint (the caller answers 409).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn redact(url: &str) -> String {
    // Hide a password in `scheme://user:password@host`.
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `($1, $2, …), (…)` for a multi-row `VALUES` of `rows` rows of `columns` parameters.
pub(crate) fn values_placeholders(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", row * columns + column + 1));
        }
        out.push(')');
    }
    out
}

/// Reads a JSON text column as a list of strings (empty on garbage, which only a hand edit
/// of the database could produce).
/// `%text%` for a case-insensitive `LIKE … ESCAPE '\\'`: lowercased, with `%`, `_` and `\\`
/// escaped so a search for `50%` finds that text and nothing else.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(crate) fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A value one column of a result row holds, decodable by both access paths.
pub(crate) trait ColumnValue:
    for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

impl<T> ColumnValue for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

/// A result row of either access path (a sqlx row, or a rusqlite row on the direct SQLite
/// path), read by column name — so each table has one mapping from row to struct.
pub(crate) trait Columns {
    type Error;

    fn column<T: ColumnValue>(&self, name: &str) -> Result<T, Self::Error>;
}

impl Columns for AnyRow {
    type Error = sqlx::Error;

    fn column<T: ColumnValue>(&self, name: &str) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, name)
    }
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn column<T: ColumnValue>(&self, name: &str) -> Result<T, rusqlite::Error> {
        self.get(name)
    }
}

/// Reads an integer column that holds a boolean.
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(column)? != 0)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Db;
    use std::path::{Path, PathBuf};

    /// A scratch directory, removed when dropped.
    pub(crate) struct Scratch(PathBuf);

    impl Scratch {
        pub(crate) fn new(prefix: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("cullis-{prefix}-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fresh, migrated SQLite file (an in-memory database would differ per pooled
    /// connection), deleted when the returned guard drops.
    pub(crate) async fn db() -> (Db, Scratch) {
        let scratch = Scratch::new("db");
        let db = Db::connect(&format!(
            "sqlite://{}",
            scratch.path().join("test.db").display()
        ))
        .await
        .unwrap();
        db.migrate().await.unwrap();
        (db, scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_text() {
        let a = timestamp_text(OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap());
        let b = timestamp_text(
            OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_500_000_000).unwrap(),
        );
        assert_eq!(a, "2023-11-14T22:13:20.000000Z");
        assert!(a < b);
        assert_eq!(parse_timestamp(&b).unwrap().unix_timestamp(), 1_700_000_000);
    }

    #[test]
    fn multi_row_placeholders_number_every_parameter_once() {
        assert_eq!(values_placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_placeholders(1, 1), "($1)");
    }

    #[tokio::test]
    async fn an_in_memory_sqlite_url_is_refused_with_what_to_use_instead() {
        for url in ["sqlite::memory:", "sqlite://:memory:", "sqlite://"] {
            let error = Db::connect(url).await.unwrap_err();
            assert!(error.0.contains("use sqlite://PATH"), "{url}: {error}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
