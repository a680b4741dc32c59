//! `deploy/deploy_broker.sh` end to end minus Docker, and `deploy/backup.sh` / `restore.sh`.
//!
//! This machine has no Docker engine, so the deploy tests give the script a stand-in compose
//! command (`CULLIS_COMPOSE_CMD`, a shell script written below) that does what `docker compose
//! up -d` would: it starts the real `cullis-broker` with the `.env` the script wrote (database and
//! key paths mapped to the host) and a real nginx with the config the script rendered, and turns
//! `compose exec -T nginx nginx -s reload` into a SIGHUP. Everything else — secrets, `pki init`,
//! TLS placement, the nginx config, waiting for /healthz and /readyz through HTTPS, and for
//! `--prod-acme` a real ACME issuance by lego from pebble over HTTP-01 through that nginx's
//! webroot — runs for real. Needs nginx, pebble and lego (`apt-get install -y nginx pebble lego`),
//! PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379.

mod support;

use cullis_e2e::stack::broker::{POSTGRES_ADMIN_URL, REDIS_URL};
use cullis_e2e::stack::{binary, Options, Store, TestBroker};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{free_port, run_script, scratch};

/// The stand-in for `docker compose`: see the module doc. Placeholders are filled per test.
const COMPOSE_SHIM: &str = r#"#!/usr/bin/env bash
# Test stand-in for `docker compose` (e2e/tests/deploy.rs): host processes instead of containers.
set -euo pipefail
dir='@DIR@'; shim='@SHIM@'
echo "compose $*" >> "$shim/calls.log"
# The broker container's environment: the .env plus what docker-compose.yml sets.
broker_env() {
  set -a; . "$dir/.env"; set +a
  export DATABASE_URL='@DATABASE_URL@' REDIS_URL='@REDIS_URL@' \
    BROKER_CA_KEY_PATH="$dir/certs/broker-ca-key.pem" BROKER_CA_CERT_PATH="$dir/certs/broker-ca.pem" \
    FORWARDED_ALLOW_IPS=127.0.0.1 BCRYPT_COST=4 RUST_LOG=info \
    RATE_LIMIT_ONBOARDING_JOIN=10000/60s RATE_LIMIT_AUTH_TOKEN=10000/60s
  # (Every test broker shares the one Redis and so its per-IP buckets: joins and logins
  # of concurrent tests from 127.0.0.1 must not use up this broker's allowance.)
}
case " $* " in
  *" run --rm --no-deps broker check "*)
    ( broker_env; cd "$shim"; '@BROKER_BIN@' check ) | tee -a "$shim/check.log"
    exit "${PIPESTATUS[0]}"
    ;;
  *" up "*)
    ( broker_env
      cd "$shim"
      setsid '@BROKER_BIN@' serve --host 127.0.0.1 --port @BROKER_PORT@ > "$shim/broker.log" 2>&1 < /dev/null &
      echo $! > "$shim/broker.pid" )
    mkdir -p "$shim/nginx/tmp"
    sed -e 's|broker:8000|127.0.0.1:@BROKER_PORT@|' \
        -e 's|listen 8443 ssl;|listen 127.0.0.1:@HTTPS_PORT@ ssl;|' -e '/listen 443 ssl;/d' \
        -e 's|listen 8080;|listen 127.0.0.1:@HTTP_PORT@;|' \
        -e "s|/etc/nginx/certs/|$dir/nginx-compat/certs/|" \
        -e "s|/var/www/acme|$dir/deploy/state/acme-webroot|" \
        "$dir/deploy/state/nginx.conf" > "$shim/nginx/site.conf"
    n="$shim/nginx"
    cat > "$n/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log info;
events { worker_connections 256; }
http {
    access_log $n/access.log;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    include $n/site.conf;
}
EOF
    setsid '@NGINX@' -p "$n/" -c "$n/nginx.conf" > "$n/stderr.log" 2>&1 < /dev/null &
    echo $! > "$shim/nginx.master.pid"
    ;;
  *" exec -T nginx nginx -s reload "*)
    kill -HUP "$(cat "$shim/nginx.master.pid")"
    ;;
  *) echo "compose shim: unexpected call: $*" >&2; exit 3 ;;
esac
"#;

/// What a stand-in compose started; stopped (by pid) on drop.
struct Shim {
    dir: PathBuf,
    path: PathBuf,
}

impl Shim {
    fn new(deploy_dir: &Path, database_url: &str, https_port: u16, http_port: u16) -> Shim {
        let dir = deploy_dir.join("shim");
        std::fs::create_dir_all(&dir).unwrap();
        let text = COMPOSE_SHIM
            .replace("@DIR@", &deploy_dir.display().to_string())
            .replace("@SHIM@", &dir.display().to_string())
            .replace("@DATABASE_URL@", database_url)
            .replace("@REDIS_URL@", REDIS_URL)
            .replace(
                "@BROKER_BIN@",
                &binary("cullis-broker").display().to_string(),
            )
            .replace("@BROKER_PORT@", &free_port().to_string())
            .replace("@HTTPS_PORT@", &https_port.to_string())
            .replace("@HTTP_PORT@", &http_port.to_string())
            .replace("@NGINX@", &support::nginx_binary().display().to_string());
        let path = dir.join("compose");
        std::fs::write(&path, text).unwrap();
        Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        Shim { dir, path }
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("calls.log")).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let read = |p: &str| std::fs::read_to_string(self.dir.join(p)).unwrap_or_default();
        format!(
            "broker.log:\n{}\nnginx error.log:\n{}",
            read("broker.log"),
            read("nginx/error.log")
        )
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        for (file, signal) in [("nginx.master.pid", "-QUIT"), ("broker.pid", "-TERM")] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(file)) {
                let pid = pid.trim().to_owned();
                let _ = Command::new("kill").args([signal, &pid]).status();
                for _ in 0..60 {
                    let alive = Command::new("kill")
                        .args(["-0", &pid])
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    if !alive {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

fn read_env(dir: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(dir.join(".env"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.chars().all(|c| c.is_ascii_hexdigit())
}

fn deploy(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let mut all: Vec<(&str, String)> = vec![
        (
            "CULLIS_BROKER_BIN",
            binary("cullis-broker").display().to_string(),
        ),
        ("CULLIS_WAIT_SECONDS", "60".into()),
    ];
    all.extend(env.iter().cloned());
    run_script("deploy/deploy_broker.sh", args, &all)
}

/// A fresh PostgreSQL database (psql, trust auth at 127.0.0.1:5432); dropped by [`drop_db`].
fn create_db() -> (String, String) {
    let name = format!("cullis_deploy_{}", uuid::Uuid::new_v4().simple());
    psql(&format!("CREATE DATABASE {name}"));
    // The admin URL with its database (the last path segment) swapped for the new one.
    let server = POSTGRES_ADMIN_URL.rsplit_once('/').unwrap().0;
    let url = format!("{server}/{name}");
    (name, url)
}

fn drop_db(name: &str) {
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

fn psql(sql: &str) -> String {
    let output = Command::new("psql")
        .args([POSTGRES_ADMIN_URL, "-Atc", sql])
        .output()
        .expect("psql runs (PostgreSQL client)");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn no_mode_and_no_terminal_is_refused_with_the_flags_to_use() {
    let (code, _, stderr) = deploy(&[], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("pass --dev, --prod-acme or --prod-byoca"),
        "{stderr}"
    );
    let (code, _, stderr) = deploy(&["--prod-acme", "--domain", "x.example"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--prod-acme needs --email E"), "{stderr}");
    let (code, _, stderr) = deploy(
        &[
            "--prod-byoca",
            "--domain",
            "x.example",
            "--cert",
            "/nonexistent",
            "--key",
            "/nonexistent",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[tokio::test]
async fn dev_deploy_end_to_end_minus_compose() {
    support::nginx_binary();
    let dir = scratch("deploy-dev");
    let (https_port, http_port) = (free_port(), free_port());
    let ports = [
        "--https-port",
        &https_port.to_string(),
        "--http-port",
        &http_port.to_string(),
    ]
    .map(str::to_owned);
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    let dir_arg = ["--dir", dir.to_str().unwrap()];

    // 1. Prepare only: .env with generated secrets, broker key, TLS, nginx config.
    let mut args = vec!["--dev", "--no-compose"];
    args.extend(dir_arg);
    args.extend(&ports);
    let (code, stdout, stderr) = deploy(&args, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let env = read_env(&dir);
    assert!(is_hex(&env["ADMIN_SECRET"], 64), "{env:?}");
    assert!(is_hex(&env["POSTGRES_PASSWORD"], 48), "{env:?}");
    assert_eq!(
        env["BROKER_PUBLIC_URL"],
        format!("https://localhost:{https_port}")
    );
    assert_eq!(env["ENVIRONMENT"], "development");
    assert_eq!(env["TRUST_DOMAIN"], "atn.local");
    assert_eq!(env["POLICY_WEBHOOK_ALLOW_PRIVATE_IPS"], "true");
    assert_eq!(mode(&dir.join(".env")), 0o600);
    assert_eq!(mode(&dir.join("certs/broker-ca-key.pem")), 0o600);
    assert!(dir.join("certs/broker-ca.pem").exists());
    assert_eq!(mode(&dir.join("nginx-compat/certs/server-key.pem")), 0o600);
    let conf = std::fs::read_to_string(dir.join("deploy/state/nginx.conf")).unwrap();
    assert!(conf.contains("server_name localhost;"));
    assert!(conf.contains(&format!("https://$host:{https_port}$request_uri")));
    let key_before = std::fs::read(dir.join("certs/broker-ca-key.pem")).unwrap();

    // 2. Again, this time "starting the stack": secrets and keys are kept, the health of the
    //    broker is awaited through nginx over HTTPS.
    let db_url = format!("sqlite://{}/broker.db", dir.display());
    let shim = Shim::new(&dir, &db_url, https_port, http_port);
    let mut args = vec!["--dev"];
    args.extend(dir_arg);
    args.extend(&ports);
    let (code, stdout, stderr) = deploy(
        &args,
        &[("CULLIS_COMPOSE_CMD", shim.path.display().to_string())],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}\n{}", shim.logs());
    assert!(stdout.contains("secrets kept"), "{stdout}");
    assert!(stdout.contains("/healthz OK"), "{stdout}");
    assert!(stdout.contains("/readyz OK"), "{stdout}");
    assert!(shim.calls().contains("up -d --build"), "{}", shim.calls());
    let env_again = read_env(&dir);
    assert_eq!(env_again["ADMIN_SECRET"], env["ADMIN_SECRET"]);
    assert_eq!(env_again["POSTGRES_PASSWORD"], env["POSTGRES_PASSWORD"]);
    assert_eq!(
        key_before,
        std::fs::read(dir.join("certs/broker-ca-key.pem")).unwrap()
    );

    // The deployed broker answers the operator with the generated secret, through TLS.
    let http = support::https_client(&dir.join("nginx-compat/certs/ca.pem"));
    let api = cullis_e2e::setup::BrokerApi::with_client(
        &env["BROKER_PUBLIC_URL"],
        &env["ADMIN_SECRET"],
        http,
    );
    let org = api.onboard("acme").await;
    let agent = api.register_agent(&org, "buyer", &["x"]).await;
    agent
        .login(&api.base, &api.http)
        .await
        .expect("login through the deployed front");
    drop(shim);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn prod_byoca_end_to_end_minus_compose() {
    support::nginx_binary();
    let dir = scratch("deploy-byoca");
    // "Your own CA": a corporate CA and a leaf for the domain, plus a second one as a decoy.
    let own = dir.join("own");
    let other = dir.join("other");
    for (out, name) in [(&own, "localhost"), (&other, "other.example")] {
        let (code, _, stderr) = run_script(
            "nginx-compat/generate_tls_cert.sh",
            &["--out", out.to_str().unwrap(), "--name", name],
            &[],
        );
        assert_eq!(code, 0, "{stderr}");
    }
    let (cert, key) = (own.join("server.pem"), own.join("server-key.pem"));
    let (https_port, http_port) = (free_port(), free_port());
    let (https, http) = (https_port.to_string(), http_port.to_string());
    let base = |c: &Path, k: &Path| -> Vec<String> {
        [
            "--prod-byoca",
            "--domain",
            "localhost",
            "--cert",
            c.to_str().unwrap(),
            "--key",
            k.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
            "--https-port",
            &https,
            "--http-port",
            &http,
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // Refusals: a key that is not the certificate's, a certificate for another name, a CA.
    let mut wrong_key = base(&cert, &other.join("server-key.pem"));
    wrong_key.push("--no-compose".into());
    let (code, _, stderr) = deploy(&as_refs(&wrong_key), &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("does not belong to the certificate"),
        "{stderr}"
    );
    // (generate_tls_cert.sh always adds localhost, so ask for another name than the cert's.)
    let mut wrong_name = base(&other.join("server.pem"), &other.join("server-key.pem"));
    wrong_name[2] = "broker.example.test".into();
    wrong_name.push("--no-compose".into());
    let (code, _, stderr) = deploy(&as_refs(&wrong_name), &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("does not cover 'broker.example.test'"),
        "{stderr}"
    );
    let mut ca_as_leaf = base(&own.join("ca.pem"), &own.join("ca-key.pem"));
    ca_as_leaf.push("--no-compose".into());
    let (code, _, stderr) = deploy(&as_refs(&ca_as_leaf), &[]);
    assert_eq!(code, 1, "{stderr}");

    // The real run: production settings on PostgreSQL + Redis, health through nginx serving
    // the operator's certificate, trusted via the operator's CA.
    let (db_name, db_url) = create_db();
    let shim = Shim::new(&dir, &db_url, https_port, http_port);
    let args = base(&cert, &key);
    let (code, stdout, stderr) = deploy(
        &as_refs(&args),
        &[
            ("CULLIS_COMPOSE_CMD", shim.path.display().to_string()),
            ("CULLIS_HEALTH_CA", own.join("ca.pem").display().to_string()),
        ],
    );
    let logs = shim.logs();
    drop(shim);
    drop_db(&db_name);
    assert_eq!(code, 0, "{stdout}\n{stderr}\n{logs}");
    let env = read_env(&dir);
    assert_eq!(env["ENVIRONMENT"], "production");
    assert_eq!(env["LOG_FORMAT"], "json");
    assert_eq!(
        env["BROKER_PUBLIC_URL"],
        format!("https://localhost:{https_port}")
    );
    assert_eq!(
        std::fs::read(dir.join("nginx-compat/certs/server.pem")).unwrap(),
        std::fs::read(&cert).unwrap()
    );
    assert_eq!(mode(&dir.join("nginx-compat/certs/server-key.pem")), 0o600);
    assert!(stdout.contains("/readyz OK"), "{stdout}");
    assert!(
        logs.contains("\"level\""),
        "JSON logs in production: {logs}"
    );
    // The production checklist ran, every item passing, before the health checks.
    assert!(stdout.contains("cullis-broker check"), "{stdout}");
    assert!(
        stdout.contains("production checklist: all 12 items pass"),
        "{stdout}"
    );
    assert!(env["DASHBOARD_SIGNING_KEY"].len() == 64 && env["REQUIRE_SPIFFE_SAN"] == "true");
    let _ = std::fs::remove_dir_all(dir);
}

/// pebble (the ACME test CA) on loopback, its listener certificate from generate_tls_cert.sh.
struct Pebble {
    child: Child,
    dir: PathBuf,
    directory: String,
    root_pem: PathBuf,
}

impl Pebble {
    async fn start(http01_port: u16) -> Pebble {
        let dir = scratch("pebble");
        let (code, _, stderr) = run_script(
            "nginx-compat/generate_tls_cert.sh",
            &["--out", dir.join("tls").to_str().unwrap()],
            &[],
        );
        assert_eq!(code, 0, "{stderr}");
        let (port, management) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("tls/server.pem"), "privateKey": dir.join("tls/server-key.pem"),
            "httpPort": http01_port, "tlsPort": free_port(), "ocspResponderURL": "",
            "externalAccountBindingRequired": false}});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let child = Command::new("pebble")
            .args(["-strict=false", "-config"])
            .arg(dir.join("pebble.json"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::fs::File::create(dir.join("pebble.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble is installed: apt-get install -y pebble");
        let http = support::https_client(&dir.join("tls/ca.pem"));
        let directory = format!("https://127.0.0.1:{port}/dir");
        let mut root = None;
        for _ in 0..200 {
            if let Ok(r) = http
                .get(format!("https://127.0.0.1:{management}/roots/0"))
                .send()
                .await
            {
                if r.status() == StatusCode::OK {
                    root = Some(r.text().await.unwrap());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let root_pem = dir.join("pebble-root.pem");
        std::fs::write(&root_pem, root.expect("pebble answers")).unwrap();
        Pebble {
            child,
            dir,
            directory,
            root_pem,
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn prod_acme_against_pebble_through_the_nginx_webroot() {
    support::nginx_binary();
    let lego = Command::new("lego").arg("--version").output();
    assert!(
        lego.is_ok_and(|o| o.status.success()),
        "lego is not installed: apt-get install -y lego (CI installs it in .ci/run)"
    );
    let dir = scratch("deploy-acme");
    let (https_port, http_port) = (free_port(), free_port());
    // pebble validates HTTP-01 on http://localhost:<http_port>/.well-known/acme-challenge/…,
    // which is the deployed nginx's plain-HTTP listener serving the script's webroot.
    let pebble = Pebble::start(http_port).await;
    let (db_name, db_url) = create_db();
    let shim = Shim::new(&dir, &db_url, https_port, http_port);
    let (https, http) = (https_port.to_string(), http_port.to_string());
    let (code, stdout, stderr) = deploy(
        &[
            "--prod-acme",
            "--domain",
            "localhost",
            "--email",
            "ops@example.test",
            "--dir",
            dir.to_str().unwrap(),
            "--https-port",
            &https,
            "--http-port",
            &http,
        ],
        &[
            ("CULLIS_COMPOSE_CMD", shim.path.display().to_string()),
            ("ACME_SERVER", pebble.directory.clone()),
            (
                "LEGO_CA_CERTIFICATES",
                pebble.dir.join("tls/ca.pem").display().to_string(),
            ),
            ("CULLIS_HEALTH_CA", pebble.root_pem.display().to_string()),
        ],
    );
    let logs = shim.logs();
    let calls = shim.calls();
    // After the swap nginx serves the ACME certificate, issued by pebble's intermediate and
    // verified against pebble's root (openssl; webpki refuses pebble's test roots with
    // UnknownIssuer, which is pebble's business, not this deployment's).
    // nginx swaps workers asynchronously after the reload signal: under load, the first new
    // connections can still reach an old worker with the bootstrap certificate, so look again
    // until the swap is visible (or the attempts run out and the assertions below show why).
    let mut served = String::new();
    for _ in 0..50 {
        let output = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{https_port}")])
            .args([
                "-servername",
                "localhost",
                "-verify_return_error",
                "-CAfile",
            ])
            .arg(&pebble.root_pem)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        served = String::from_utf8_lossy(&output.stdout).into_owned();
        if served.contains("Verify return code: 0 (ok)") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(shim);
    drop_db(&db_name);
    assert_eq!(code, 0, "{stdout}\n{stderr}\n{logs}");
    assert!(calls.contains("exec -T nginx nginx -s reload"), "{calls}");
    assert!(stdout.contains("certificate installed"), "{stdout}");
    assert!(
        stdout.contains("lego --email ops@example.test"),
        "renewal line: {stdout}"
    );
    assert!(served.contains("Verify return code: 0 (ok)"), "{served}");
    assert!(served.contains("Pebble Intermediate"), "{served}");

    assert!(!dir.join("nginx-compat/certs/ca.pem").exists());
    assert_eq!(mode(&dir.join("nginx-compat/certs/server-key.pem")), 0o600);
    drop(pebble);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn backup_and_restore_postgres_and_keys() {
    // A real broker on PostgreSQL with an org, an agent, a login and audit rows.
    let broker = TestBroker::start(Store::PostgresRedis).await;
    let org = broker.onboard("acme").await;
    let agent = broker.register_agent(&org, "buyer", &["x"]).await;
    agent.login(&broker.base, &broker.http).await.unwrap();
    let jwks_before: serde_json::Value = broker
        .http
        .get(broker.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let work = scratch("backup");
    let certs = broker.dir.join("certs");
    let (code, stdout, stderr) = run_script(
        "deploy/backup.sh",
        &[
            "--database-url",
            &broker.database_url,
            "--certs-dir",
            certs.to_str().unwrap(),
            "--tls-dir",
            work.join("no-tls").to_str().unwrap(),
            "--env-file",
            work.join("no.env").to_str().unwrap(),
            "--out",
            work.join("backups").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let backup = std::fs::read_dir(work.join("backups"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(mode(&backup.join("keys.tar.gz")), 0o600);

    // Restore into a fresh database and an empty key directory.
    let (db_name, db_url) = create_db();
    let restored = work.join("restored-certs");
    let (code, stdout, stderr) = run_script(
        "deploy/restore.sh",
        &[
            backup.to_str().unwrap(),
            "--database-url",
            &db_url,
            "--certs-dir",
            restored.to_str().unwrap(),
            "--tls-dir",
            work.join("restored-tls").to_str().unwrap(),
            "--env-file",
            work.join("restored.env").to_str().unwrap(),
            "--yes",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for file in ["broker-ca-key.pem", "broker-ca.pem"] {
        assert_eq!(
            std::fs::read(certs.join(file)).unwrap(),
            std::fs::read(restored.join(file)).unwrap(),
            "{file}"
        );
    }
    // Restoring over different keys is refused without --force.
    std::fs::write(restored.join("broker-ca.pem"), "changed").unwrap();
    let (code, _, stderr) = run_script(
        "deploy/restore.sh",
        &[
            backup.to_str().unwrap(),
            "--database-url",
            &db_url,
            "--certs-dir",
            restored.to_str().unwrap(),
            "--yes",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("differs from the backup"), "{stderr}");
    std::fs::copy(certs.join("broker-ca.pem"), restored.join("broker-ca.pem")).unwrap();

    // The restored audit chain verifies with the broker's own command.
    let verify = Command::new(binary("cullis-broker"))
        .args(["audit", "verify"])
        .env_clear()
        .env("DATABASE_URL", &db_url)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success(), "{said}");
    assert!(said.starts_with("audit chain intact"), "{said}");

    // A broker on the restored database and key: same signing key, the org and agent are there
    // (the agent's pinned certificate logs in).
    let mut restored_broker = TestBroker::start_with(
        Store::Sqlite,
        Options::default()
            .env("DATABASE_URL", &db_url)
            .env(
                "BROKER_CA_KEY_PATH",
                restored.join("broker-ca-key.pem").to_str().unwrap(),
            )
            .env(
                "BROKER_CA_CERT_PATH",
                restored.join("broker-ca.pem").to_str().unwrap(),
            ),
    )
    .await;
    let jwks_after: serde_json::Value = restored_broker
        .http
        .get(restored_broker.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_before, jwks_after);
    agent
        .login(&restored_broker.base, &restored_broker.http)
        .await
        .expect("the restored agent logs in");
    restored_broker.stop();
    drop(restored_broker);
    drop_db(&db_name);
    let _ = std::fs::remove_dir_all(work);
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
