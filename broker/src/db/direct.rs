//! SQLite without the thread hop: the relay's hot statements on connections the broker owns.
//!
//! sqlx runs every SQLite connection on a worker thread of its own and hands each statement,
//! and each row of its answer, across a channel. On the relay path — the token check of every
//! request, a send's context read, a poll, the writer's batch — those hand-offs and the task
//! switches around them were about a third of the broker's CPU per relayed message
//! (broker/README "Speed"), while SQLite answers a point read by key in microseconds. So on
//! SQLite these statements run on the thread that asks, on [`DirectSqlite`]'s connections
//! (rusqlite, linking the same libsqlite3 as sqlx), with cached prepared statements:
//! * reads run on the request's own thread; in WAL mode they never wait for the writer;
//! * the writer's batch ([`crate::db::audit::ChainTx`]) runs on the audit writer's own OS
//!   thread (`crate::audit::writer`), one statement per row without any round trip;
//! * WAL checkpoints run on a thread of their own ([`CHECKPOINT_PAUSE`]).
//!
//! Everything else (and every statement on PostgreSQL) goes through the sqlx pool, which also
//! applies the migrations. Both paths open the file with the same settings.

use rusqlite::{Connection, OpenFlags};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections kept open for reuse; more are opened when more threads ask at once.
const MAX_IDLE: usize = 8;
/// Prepared statements kept per connection (the relay uses about a dozen).
const STATEMENT_CACHE: usize = 32;
/// How long the checkpointer thread waits between checkpoints while the WAL grows; it backs off
/// to [`CHECKPOINT_IDLE_PAUSE`] while nothing is written.
///
/// Why a thread: a checkpoint copies pages and syncs both files, milliseconds on a VM disk. Run
/// by SQLite inside the commit that crosses `wal_autocheckpoint`, it holds up the single writer
/// and every message queued behind it. The thread does that work beside the writer. The
/// writer's own automatic checkpoint (SQLite's default, every 1,000 pages) stays as the
/// backstop that lets the WAL start over: SQLite rewinds it only when a write begins with every
/// page copied, which a busy writer rarely sees otherwise. With both, the WAL stayed under 6 MB
/// at full load and the p99 at half of peak fell (broker/README "Speed").
pub const CHECKPOINT_PAUSE: Duration = Duration::from_millis(5);
/// The checkpointer's longest wait, while the database is idle.
pub const CHECKPOINT_IDLE_PAUSE: Duration = Duration::from_millis(500);

/// The checkpointer's next wait: short while writes arrive, doubling while none do.
fn next_checkpoint_pause(pause: Duration, wal_grew: bool) -> Duration {
    if wal_grew {
        CHECKPOINT_PAUSE
    } else {
        (pause * 2).min(CHECKPOINT_IDLE_PAUSE)
    }
}

/// Connections to one SQLite file (see the module comment).
#[derive(Debug)]
pub struct DirectSqlite {
    path: String,
    idle: Mutex<Vec<Connection>>,
}

impl DirectSqlite {
    /// Opens (and keeps) a first connection to `path`, so a file that cannot be opened is
    /// found at startup.
    pub fn open(path: &str) -> Result<Arc<DirectSqlite>, rusqlite::Error> {
        let direct = Arc::new(DirectSqlite {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        });
        let first = direct.connect()?;
        direct.idle().push(first);
        Ok(direct)
    }

    /// A connection for the caller's exclusive use until the lease is dropped.
    pub fn lease(self: &Arc<Self>) -> Result<Lease, sqlx::Error> {
        let reused = self.idle().pop();
        let connection = match reused {
            Some(connection) => connection,
            None => self.connect().map_err(into_sqlx)?,
        };
        Ok(Lease {
            connection: Some(connection),
            home: Arc::clone(self),
        })
    }

    /// Starts the thread that copies the WAL into the database file (see
    /// [`CHECKPOINT_PAUSE`]); it stops once this `DirectSqlite` is dropped.
    pub fn start_checkpointer(self: &Arc<Self>) -> Result<(), String> {
        let connection = self.connect().map_err(|e| e.to_string())?;
        let home = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("cullis-wal-checkpoint".into())
            .spawn(move || {
                let mut pause = CHECKPOINT_PAUSE;
                let mut last_frames = 0;
                loop {
                    std::thread::sleep(pause);
                    if home.strong_count() == 0 {
                        break;
                    }
                    // PASSIVE: never waits for readers or the writer; what it cannot copy now
                    // it copies next time. An error (a full disk, say) is the writer's to report.
                    let frames = connection
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                            row.get::<_, i64>(1)
                        })
                        .unwrap_or(last_frames);
                    pause = next_checkpoint_pause(pause, frames != last_frames);
                    last_frames = frames;
                }
            })
            .map(|_| ())
            .map_err(|e| format!("cannot start the WAL checkpoint thread: {e}"))
    }

    /// Runs `read` on a leased connection, on the calling thread.
    pub fn read<T>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, sqlx::Error> {
        let lease = self.lease()?;
        read(&lease).map_err(into_sqlx)
    }

    /// The same settings as the sqlx pool's connections (`Db::connect`); WAL mode is a
    /// property of the file, set there.
    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.execute_batch(
            "PRAGMA busy_timeout=5000; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        )?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(connection)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while holding this lock cannot leave the list inconsistent (push/pop only).
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A leased connection; returned for reuse when dropped.
#[derive(Debug)]
pub struct Lease {
    connection: Option<Connection>,
    home: Arc<DirectSqlite>,
}

impl Lease {
    /// Drops the connection instead of returning it (after an error that may have left it in
    /// an unknown state, such as a failed rollback).
    pub fn discard(mut self) {
        self.connection = None;
    }
}

impl Deref for Lease {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("present until drop")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection.as_mut().expect("present until drop")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let mut idle = self.home.idle();
            if idle.len() < MAX_IDLE {
                idle.push(connection);
            }
        }
    }
}

/// A write transaction under SQLite's write lock (`BEGIN IMMEDIATE`); rolled back when dropped
/// without [`WriteTx::commit`].
#[derive(Debug)]
pub struct WriteTx {
    lease: Option<Lease>,
}

impl WriteTx {
    pub fn begin(direct: &Arc<DirectSqlite>) -> Result<WriteTx, sqlx::Error> {
        let lease = direct.lease()?;
        lease.execute_batch("BEGIN IMMEDIATE").map_err(into_sqlx)?;
        Ok(WriteTx { lease: Some(lease) })
    }

    pub fn connection(&self) -> &Connection {
        self.lease.as_ref().expect("present until commit or drop")
    }

    pub fn commit(mut self) -> Result<(), sqlx::Error> {
        let lease = self.lease.take().expect("present until commit or drop");
        match lease.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(error) => {
                // A failed COMMIT leaves the transaction open: roll it back before reuse.
                Self::roll_back(lease);
                Err(into_sqlx(error))
            }
        }
    }

    fn roll_back(lease: Lease) {
        if lease.is_autocommit() {
            return;
        }
        if lease.execute_batch("ROLLBACK").is_err() {
            lease.discard();
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            Self::roll_back(lease);
        }
    }
}

/// A rusqlite error as the error type every `Db` method returns.
pub fn into_sqlx(error: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::AnyDriverError(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_support::Scratch;

    fn scratch() -> (Scratch, Arc<DirectSqlite>) {
        let scratch = Scratch::new("direct");
        let path = scratch.path().join("direct.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (k TEXT PRIMARY KEY);")
            .unwrap();
        let direct = DirectSqlite::open(path.to_str().unwrap()).unwrap();
        (scratch, direct)
    }

    fn count(direct: &Arc<DirectSqlite>) -> i64 {
        direct
            .read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .unwrap()
    }

    #[test]
    fn a_committed_write_is_seen_and_a_dropped_one_is_rolled_back() {
        let (_scratch, direct) = scratch();
        let tx = WriteTx::begin(&direct).unwrap();
        tx.connection()
            .execute("INSERT INTO t VALUES ('a')", [])
            .unwrap();
        tx.commit().unwrap();
        let tx = WriteTx::begin(&direct).unwrap();
        tx.connection()
            .execute("INSERT INTO t VALUES ('b')", [])
            .unwrap();
        drop(tx);
        assert_eq!(count(&direct), 1);
        // The write lock is free again and the connection came back with no transaction open.
        WriteTx::begin(&direct).unwrap().commit().unwrap();
        assert!(direct.idle().iter().all(Connection::is_autocommit));
    }

    #[test]
    fn a_failed_statement_leaves_nothing_behind() {
        let (_scratch, direct) = scratch();
        let tx = WriteTx::begin(&direct).unwrap();
        tx.connection()
            .execute("INSERT INTO t VALUES ('a')", [])
            .unwrap();
        let duplicate = tx.connection().execute("INSERT INTO t VALUES ('a')", []);
        assert!(duplicate.is_err());
        drop(tx);
        assert_eq!(count(&direct), 0);
    }

    /// SQLite keeps a transaction open when its COMMIT fails (here: a deferred foreign key
    /// still violated): the failed commit must roll it back and free the write lock, or the
    /// connection would go back to the pool mid-transaction and every later write would wait.
    #[test]
    fn a_failed_commit_is_rolled_back_and_frees_the_write_lock() {
        let (_scratch, direct) = scratch();
        direct
            .read(|c| {
                c.execute_batch(
                    "CREATE TABLE child (k TEXT REFERENCES t(k) DEFERRABLE INITIALLY DEFERRED);",
                )
            })
            .unwrap();
        let tx = WriteTx::begin(&direct).unwrap();
        tx.connection()
            .execute("INSERT INTO child VALUES ('missing')", [])
            .unwrap();
        assert!(
            tx.commit().is_err(),
            "the deferred key is checked at commit"
        );
        assert!(direct.idle().iter().all(Connection::is_autocommit));
        let again = WriteTx::begin(&direct).unwrap();
        again
            .connection()
            .execute("INSERT INTO t VALUES ('a')", [])
            .unwrap();
        again.commit().unwrap();
        let children: i64 = direct
            .read(|c| c.query_row("SELECT COUNT(*) FROM child", [], |r| r.get(0)))
            .unwrap();
        assert_eq!((count(&direct), children), (1, 0));
    }

    #[test]
    fn leases_are_reused_and_bounded() {
        let (_scratch, direct) = scratch();
        let leases: Vec<Lease> = (0..MAX_IDLE + 3).map(|_| direct.lease().unwrap()).collect();
        drop(leases);
        assert_eq!(direct.idle().len(), MAX_IDLE);
    }

    #[test]
    fn the_checkpointer_copies_committed_pages_into_the_database_file() {
        let (scratch, direct) = scratch();
        let file = scratch.path().join("direct.db");
        let size = || std::fs::metadata(&file).unwrap().len();
        // About 40 pages: far below the writer's own automatic checkpoint (1,000), so only the
        // checkpointer thread moves them out of the WAL.
        let tx = WriteTx::begin(&direct).unwrap();
        for i in 0..40 {
            tx.connection()
                .execute(
                    "INSERT INTO t VALUES (?1)",
                    [format!("{i:04}{}", "x".repeat(4000))],
                )
                .unwrap();
        }
        tx.commit().unwrap();
        let before = size();
        direct.start_checkpointer().unwrap();
        let grown = (0..250).any(|_| {
            std::thread::sleep(CHECKPOINT_PAUSE);
            size() > before + 100_000
        });
        assert!(grown, "the database file stayed at {before} bytes");
        assert_eq!(count(&direct), 40);
    }

    #[test]
    fn the_checkpointer_waits_briefly_while_writes_arrive_and_backs_off_when_idle() {
        let mut pause = CHECKPOINT_PAUSE;
        for _ in 0..20 {
            pause = next_checkpoint_pause(pause, false);
        }
        assert_eq!(pause, CHECKPOINT_IDLE_PAUSE);
        assert_eq!(next_checkpoint_pause(pause, true), CHECKPOINT_PAUSE);
        assert_eq!(
            next_checkpoint_pause(CHECKPOINT_PAUSE, false),
            CHECKPOINT_PAUSE * 2
        );
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_an_error_at_open() {
        let error = DirectSqlite::open("/nonexistent-dir/cullis.db").unwrap_err();
        assert!(error.to_string().contains("unable to open"), "{error}");
    }
}
