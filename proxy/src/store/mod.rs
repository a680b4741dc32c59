//! The proxy's local store: SQLite in WAL mode with embedded migrations. One repository type
//! per table family; no SQL outside this module.

mod agents;
mod audit;
mod hot;
mod seq;
mod settings;

pub use agents::AgentRow;
pub use audit::AuditRow;
pub use hot::CROSS_PROCESS_TTL;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions;
use std::str::FromStr;
use std::time::Duration;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Contention that did not resolve (the caller may retry).
    #[error("{0}")]
    Busy(String),
}

/// The SQLite store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    seq_blocks: seq::SeqBlocks,
    hot: hot::HotSettings,
    audit_head: audit::ChainHead,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies the migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit survives a crash of the process (not of the machine)
            // without an fsync per write — every send writes a client_seq and an audit row.
            .synchronous(SqliteSynchronous::Normal)
            // The CLI and `serve` share the file; wait for each other's writes instead of failing.
            .busy_timeout(Duration::from_secs(10))
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            seq_blocks: Default::default(),
            hot: Default::default(),
            audit_head: Default::default(),
        })
    }

    /// `SELECT 1`, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Stores a sealed secret.
    pub async fn put_secret(&self, name: &str, sealed: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO secrets(name, sealed) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET sealed = excluded.sealed")
            .bind(name)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A sealed secret, if stored.
    pub async fn get_secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM secrets WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn delete_secret(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM secrets WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A store file in a fresh directory, for tests that open it more than once (a restart, a
/// second process); the directory is removed on drop.
#[cfg(test)]
pub(crate) struct ScratchFile {
    dir: std::path::PathBuf,
    /// `sqlite://…` of the file.
    pub url: String,
}

#[cfg(test)]
impl ScratchFile {
    pub fn new(label: &str) -> ScratchFile {
        let dir = std::env::temp_dir().join(format!("cullis-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let url = format!("sqlite://{}", dir.join("store.db").display());
        ScratchFile { dir, url }
    }
}

#[cfg(test)]
impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Store {
    /// Closes the pool (start-up checks open the store once before the server's own runtime).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
