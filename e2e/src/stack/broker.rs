//! The broker as tests and tools start it: the real `cullis-broker` binary on a free loopback
//! port against a fresh SQLite file or a fresh PostgreSQL database (and Redis when asked),
//! talked to over real HTTP like the reference SDK does.

use super::binary;
use crate::setup::BrokerApi;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ADMIN_SECRET: &str = "test-admin-secret-0123456789abcdef";
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Which database a test broker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// A fresh SQLite file, in-process stores.
    Sqlite,
    /// A fresh PostgreSQL database, plus Redis for nonces, replay and rate limits.
    PostgresRedis,
}

/// A running broker process; killed and its database dropped on drop.
pub struct TestBroker {
    child: Child,
    pub api: BrokerApi,
    pub dir: PathBuf,
    pub database_url: String,
    pg_database: Option<String>,
    stderr_log: PathBuf,
    env: HashMap<String, String>,
    /// Replicas share the first broker's database and directory and leave them alone on drop.
    owns_storage: bool,
}

/// Per-test settings beyond the defaults.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub env: Vec<(String, String)>,
}

impl Options {
    pub fn env(mut self, name: &str, value: &str) -> Options {
        self.env.push((name.into(), value.into()));
        self
    }
}

impl TestBroker {
    /// The cipher blobs the broker stored for `session_id`, oldest first (read straight from
    /// its database: what an operator with full access to the broker can see).
    pub async fn stored_payloads(&self, session_id: &str) -> Vec<Value> {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.database_url)
            .await
            .expect("broker database");
        let rows =
            sqlx::query("SELECT payload FROM session_messages WHERE session_id = $1 ORDER BY seq")
                .bind(session_id)
                .fetch_all(&pool)
                .await
                .expect("session_messages");
        pool.close().await;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("payload").expect("payload column");
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            })
            .collect()
    }

    pub async fn start(store: Store) -> TestBroker {
        TestBroker::start_with(store, Options::default()).await
    }

    pub async fn start_with(store: Store, options: Options) -> TestBroker {
        let dir = std::env::temp_dir().join(format!("cullis-broker-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("certs/broker-ca-key.pem");
        let cert = dir.join("certs/broker-ca.pem");
        pki_init(&dir, &key, &cert);
        let (database_url, pg_database) = match store {
            Store::Sqlite => (
                format!("sqlite://{}", dir.join("cullis.db").display()),
                None,
            ),
            Store::PostgresRedis => {
                let name = format!("cullis_test_{}", uuid::Uuid::new_v4().simple());
                create_pg_database(&name).await;
                (
                    format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    Some(name),
                )
            }
        };
        let mut env: HashMap<String, String> = HashMap::from([
            ("ADMIN_SECRET".into(), ADMIN_SECRET.into()),
            ("DATABASE_URL".into(), database_url.clone()),
            ("BROKER_CA_KEY_PATH".into(), key.display().to_string()),
            ("BROKER_CA_CERT_PATH".into(), cert.display().to_string()),
            ("BCRYPT_COST".into(), "4".into()),
            // Logins are many per test and all come from 127.0.0.1.
            ("RATE_LIMIT_AUTH_TOKEN".into(), "10000/60s".into()),
            ("RATE_LIMIT_ONBOARDING_JOIN".into(), "10000/60s".into()),
            ("RUST_LOG".into(), "warn".into()),
        ]);
        if store == Store::PostgresRedis {
            env.insert("REDIS_URL".into(), REDIS_URL.into());
        }
        for (name, value) in options.env {
            env.insert(name, value);
        }
        let stderr_log = dir.join("broker.stderr");
        let (child, base) = spawn_broker(&dir, &env, &stderr_log, 0).await;
        TestBroker {
            child,
            api: BrokerApi::new(&base, ADMIN_SECRET),
            dir,
            database_url,
            pg_database,
            stderr_log,
            env,
            owns_storage: true,
        }
    }

    /// A second broker process on the same database, key and Redis: another replica.
    pub async fn replica(&self) -> TestBroker {
        let stderr_log = self
            .dir
            .join(format!("replica-{}.stderr", uuid::Uuid::new_v4().simple()));
        let (child, base) = spawn_broker(&self.dir, &self.env, &stderr_log, 0).await;
        TestBroker {
            child,
            api: BrokerApi::new(&base, ADMIN_SECRET),
            dir: self.dir.clone(),
            database_url: self.database_url.clone(),
            pg_database: None,
            stderr_log,
            env: self.env.clone(),
            owns_storage: false,
        }
    }

    /// Changes a setting for the next [`TestBroker::restart`].
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.insert(name.into(), value.into());
    }

    /// Stops the broker and starts it again on the same port, database and keys (what an
    /// operator's restart does; clients keep their URL).
    pub async fn restart(&mut self) {
        self.stop();
        let port = self
            .base
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("port in the base URL");
        let (child, base) = spawn_broker(&self.dir, &self.env, &self.stderr_log, port).await;
        assert_eq!(base, self.base, "restarted on the same address");
        self.child = child;
    }

    /// Runs the `cullis-broker` binary with this broker's settings and working directory — its
    /// operator subcommands (`keys …`, `check`) against the running broker's database and KMS.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(binary("cullis-broker"))
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(&self.env)
            .output()
            .await
            .expect("the broker binary runs")
    }

    /// The broker process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The broker's stderr so far (for assertions on log lines and for failure messages).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Stops the broker with SIGTERM and waits for it.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        #[cfg(unix)]
        unsafe_free_sigterm(self.child.id());
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

#[cfg(unix)]
fn unsafe_free_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

impl std::ops::Deref for TestBroker {
    type Target = BrokerApi;

    fn deref(&self) -> &BrokerApi {
        &self.api
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.owns_storage {
            return;
        }
        if let Some(name) = self.pg_database.take() {
            // Best effort: a separate runtime, since drop may run outside one.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(drop_pg_database(&name));
            })
            .join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the broker binary with `env` and waits for its "listening on" line.
async fn spawn_broker(
    dir: &std::path::Path,
    env: &HashMap<String, String>,
    stderr_log: &std::path::Path,
    port: u16,
) -> (Child, String) {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_log)
        .unwrap();
    let mut child = Command::new(binary("cullis-broker"))
        .args(["serve", "--port", &port.to_string()])
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("the broker binary starts");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    match tokio::time::timeout(Duration::from_secs(30), line).await {
        Ok(Ok(Ok(line))) if line.contains("listening on ") => {
            let base = line.trim().rsplit(' ').next().unwrap().to_owned();
            (child, base)
        }
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "broker did not start: {}",
                std::fs::read_to_string(stderr_log).unwrap_or_default()
            );
        }
    }
}

async fn create_pg_database(name: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth) — start it, see .ci/run");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn drop_pg_database(name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Starts the broker with `options` and expects it to refuse to start; returns its exit code
/// and stderr.
pub async fn run_broker_expecting_failure(store: Store, options: Options) -> (Option<i32>, String) {
    assert_eq!(
        store,
        Store::Sqlite,
        "startup failures are tested on SQLite"
    );
    let dir = std::env::temp_dir().join(format!("cullis-broker-fail-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env: HashMap<String, String> = HashMap::from([
        ("ADMIN_SECRET".into(), ADMIN_SECRET.into()),
        (
            "DATABASE_URL".into(),
            format!("sqlite://{}", dir.join("cullis.db").display()),
        ),
        (
            "BROKER_CA_KEY_PATH".into(),
            dir.join("missing-key.pem").display().to_string(),
        ),
    ]);
    for (name, value) in options.env {
        env.insert(name, value);
    }
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary("cullis-broker"))
            .args(["serve", "--port", "0"])
            .current_dir(&dir)
            .env_clear()
            .envs(&env)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Creates the broker's token-signing key and CA with the binary's own `pki init`.
fn pki_init(dir: &Path, key: &Path, cert: &Path) {
    let output = Command::new(binary("cullis-broker"))
        .args(["pki", "init"])
        .current_dir(dir)
        .env_clear()
        .env("BROKER_CA_KEY_PATH", key)
        .env("BROKER_CA_CERT_PATH", cert)
        .output()
        .expect("cullis-broker pki init runs");
    assert!(
        output.status.success(),
        "cullis-broker pki init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
