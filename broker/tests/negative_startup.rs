//! Start-up refusals of the real binary (ref-auth-crypto §10.9 K-01…K-06, DESIGN decision 4):
//! a bad setting makes `cullis-broker serve` exit non-zero at once with one stderr line that
//! names the setting to change.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory with a broker key, and an environment that would start.
struct Scratch {
    dir: std::path::PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("cullis-startup-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        cullis_broker::pki_init::init(
            &dir.join("certs/broker-ca-key.pem"),
            &dir.join("certs/broker-ca.pem"),
            cullis_shared::keys::KeyType::EcP256,
        )
        .unwrap();
        Scratch { dir }
    }

    fn good_env(&self) -> HashMap<String, String> {
        HashMap::from([
            ("ADMIN_SECRET".into(), common::ADMIN_SECRET.into()),
            (
                "DATABASE_URL".into(),
                format!("sqlite://{}", self.dir.join("cullis.db").display()),
            ),
            (
                "BROKER_CA_KEY_PATH".into(),
                self.dir
                    .join("certs/broker-ca-key.pem")
                    .display()
                    .to_string(),
            ),
            (
                "BROKER_CA_CERT_PATH".into(),
                self.dir.join("certs/broker-ca.pem").display().to_string(),
            ),
            // Only errors: the refusal is then the one line on stderr.
            ("RUST_LOG".into(), "error".into()),
        ])
    }

    /// Runs `serve` with `env`; returns the exit code and stderr. Fails if it keeps running.
    fn serve(&self, env: &HashMap<String, String>) -> (Option<i32>, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cullis-broker"))
            .args(["serve", "--port", "0"])
            .current_dir(&self.dir)
            .env_clear()
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let output = child.wait_with_output().unwrap();
                return (
                    status.code(),
                    String::from_utf8_lossy(&output.stderr).into_owned(),
                );
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the broker started with {env:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[track_caller]
fn assert_refused(scratch: &Scratch, changes: &[(&str, Option<&str>)], names: &[&str]) {
    let mut env = scratch.good_env();
    for (name, value) in changes {
        match value {
            Some(value) => env.insert((*name).into(), (*value).into()),
            None => env.remove(*name),
        };
    }
    let (code, stderr) = scratch.serve(&env);
    assert!(
        matches!(code, Some(c) if c != 0),
        "exit {code:?} for {changes:?}: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line for {changes:?}, got: {stderr}");
    for name in names {
        assert!(
            lines[0].contains(name),
            "{changes:?}: {name} not named in: {stderr}"
        );
    }
}

#[test]
fn k01_k06_bad_settings_stop_the_broker_with_one_line_naming_them() {
    let scratch = Scratch::new();
    // K-01: missing, the reference default, too short.
    assert_refused(&scratch, &[("ADMIN_SECRET", None)], &["ADMIN_SECRET"]);
    assert_refused(
        &scratch,
        &[("ADMIN_SECRET", Some("change-me-in-production"))],
        &["ADMIN_SECRET", "change-me-in-production"],
    );
    assert_refused(
        &scratch,
        &[("ADMIN_SECRET", Some("short-secret"))],
        &["ADMIN_SECRET", "openssl rand"],
    );
    // K-02: production on SQLite (given or by default).
    assert_refused(
        &scratch,
        &[("ENVIRONMENT", Some("production"))],
        &["DATABASE_URL", "production"],
    );
    assert_refused(
        &scratch,
        &[("ENVIRONMENT", Some("PRODUCTION")), ("DATABASE_URL", None)],
        &["DATABASE_URL"],
    );
    // KMS: missing and unusable key files.
    assert_refused(
        &scratch,
        &[("BROKER_CA_KEY_PATH", Some("/nonexistent/broker-ca-key.pem"))],
        &["BROKER_CA_KEY_PATH", "/nonexistent/broker-ca-key.pem"],
    );
    let not_a_key = scratch.dir.join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    assert_refused(
        &scratch,
        &[("BROKER_CA_KEY_PATH", Some(not_a_key.to_str().unwrap()))],
        &["BROKER_CA_KEY_PATH"],
    );
    // K-03…K-05: Vault settings.
    assert_refused(
        &scratch,
        &[
            ("KMS_BACKEND", Some("vault")),
            ("VAULT_ADDR", Some("http://127.0.0.1:8200")),
            ("VAULT_TOKEN", Some("t")),
        ],
        &["https://", "VAULT_ALLOW_HTTP"],
    );
    assert_refused(
        &scratch,
        &[("KMS_BACKEND", Some("vault"))],
        &["KMS_BACKEND=vault requires VAULT_ADDR and VAULT_TOKEN to be set"],
    );
    assert_refused(
        &scratch,
        &[("KMS_BACKEND", Some("hsm"))],
        &["Unknown KMS_BACKEND 'hsm'"],
    );
    // K-06: a Vault that does not answer.
    assert_refused(
        &scratch,
        &[
            ("KMS_BACKEND", Some("vault")),
            ("VAULT_ADDR", Some("https://127.0.0.1:1")),
            ("VAULT_TOKEN", Some("t")),
        ],
        &["VAULT_ADDR"],
    );
    // Other settings the broker cannot use.
    assert_refused(
        &scratch,
        &[("REDIS_URL", Some("redis://127.0.0.1:1"))],
        &["REDIS_URL"],
    );
    assert_refused(
        &scratch,
        &[("RATE_LIMIT_AUTH_TOKEN", Some("lots"))],
        &["RATE_LIMIT_AUTH_TOKEN"],
    );
    assert_refused(
        &scratch,
        &[("REQUIRE_SPIFFE_SAN", Some("maybe"))],
        &["REQUIRE_SPIFFE_SAN"],
    );
}
