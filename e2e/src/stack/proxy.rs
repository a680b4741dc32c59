//! The proxy as tests and the demo start it: `cullis-proxy serve` on a free loopback port with
//! its own data directory, its CLI subcommands run against the same directory, `/healthz`
//! awaited, SIGTERM to stop. The data directory is removed on drop.

use super::binary;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The admin token every test proxy gets.
pub const PROXY_ADMIN_TOKEN: &str = "test-proxy-admin-token-0123456789abcdef";

/// A running (or stopped) proxy process and its data.
pub struct TestProxy {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    env: HashMap<String, String>,
    stderr_log: PathBuf,
    pub http: reqwest::Client,
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct CliOutput {
    pub success: bool,
    /// stdout parsed as JSON (Null when it is not JSON).
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

/// A free loopback port (bound and released; the proxy binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl TestProxy {
    /// Starts a proxy with the default test settings plus `env`, waits for `/healthz`.
    pub async fn start(env: &[(&str, &str)]) -> TestProxy {
        let mut proxy = TestProxy::prepare(env);
        proxy.spawn().await;
        proxy
    }

    /// A proxy set up but not started (to run CLI commands first, or to test refusals).
    pub fn prepare(env: &[(&str, &str)]) -> TestProxy {
        let dir = std::env::temp_dir().join(format!("cullis-proxy-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("proxy data directory");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut vars: HashMap<String, String> = HashMap::from([
            (
                "MCP_PROXY_DATA_DIR".into(),
                dir.join("data").display().to_string(),
            ),
            ("MCP_PROXY_HOST".into(), "127.0.0.1".into()),
            ("MCP_PROXY_PORT".into(), port.to_string()),
            ("MCP_PROXY_PROXY_PUBLIC_URL".into(), base.clone()),
            ("MCP_PROXY_ADMIN_TOKEN".into(), PROXY_ADMIN_TOKEN.into()),
            ("MCP_PROXY_BROKER_TIMEOUT_SECONDS".into(), "10".into()),
            ("RUST_LOG".into(), "warn".into()),
        ]);
        for (name, value) in env {
            vars.insert((*name).into(), (*value).into());
        }
        TestProxy {
            child: None,
            stderr_log: dir.join("proxy.stderr"),
            dir,
            port,
            base,
            env: vars,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
        }
    }

    /// Serves HTTPS with `cert` from the next start on; `http` then trusts (and verifies) it.
    pub fn use_tls(&mut self, cert: &super::tls::ServerCert) {
        self.set_env("MCP_PROXY_TLS_CERT", &cert.cert_path.display().to_string());
        self.set_env("MCP_PROXY_TLS_KEY", &cert.key_path.display().to_string());
        self.base = format!("https://127.0.0.1:{}", self.port);
        self.set_env("MCP_PROXY_PROXY_PUBLIC_URL", &self.base.clone());
        self.http = cert.trusting_client();
    }

    /// Sets an environment variable for the next start and CLI runs.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.insert(name.into(), value.into());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Starts `serve` and waits (≤ 30 s) for `/healthz`.
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "proxy already running");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .expect("stderr log");
        let child = Command::new(binary("cullis-proxy"))
            .arg("serve")
            .current_dir(&self.dir)
            .env_clear()
            .envs(&self.env)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the proxy binary starts");
        self.child = Some(child);
        for _ in 0..300 {
            if let Ok(response) = self.http.get(self.url("/healthz")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "proxy exited ({status}) before /healthz answered:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "proxy /healthz did not answer within 30 s:\n{}",
            self.stderr()
        );
    }

    /// Runs `cullis-proxy <args>` against this proxy's data directory and settings.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        let mut command = Command::new(binary("cullis-proxy"));
        command
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(&self.env);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("CLI task")
            .expect("the proxy binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        CliOutput {
            success: output.status.success(),
            json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// As [`TestProxy::cli`], panicking with the output when the command fails.
    pub async fn cli_ok(&self, args: &[&str]) -> Value {
        let out = self.cli(args).await;
        assert!(
            out.success,
            "cullis-proxy {args:?} failed:\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        out.json
    }

    /// `org join` against `broker_url` with `invite`.
    pub async fn join(&self, broker_url: &str, invite: &str, org_id: &str) -> CliOutput {
        let display = format!("{org_id} Org");
        let email = format!("ops@{org_id}.example");
        // `--flag=value`: an invite token may start with `-`.
        let args = [
            format!("--broker={broker_url}"),
            format!("--invite={invite}"),
            format!("--org-id={org_id}"),
            format!("--display-name={display}"),
            format!("--contact-email={email}"),
        ];
        let mut argv = vec!["org", "join"];
        argv.extend(args.iter().map(String::as_str));
        self.cli(&argv).await
    }

    /// `agent create NAME --capabilities ...`: `(agent_id, api_key)`.
    pub async fn create_agent(&self, name: &str, capabilities: &[&str]) -> (String, String) {
        let caps = capabilities.join(",");
        let out = self
            .cli_ok(&["agent", "create", name, "--capabilities", &caps])
            .await;
        (
            out["agent_id"].as_str().expect("agent_id").to_owned(),
            out["api_key"].as_str().expect("api_key").to_owned(),
        )
    }

    /// The proxy's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// SIGTERM and wait (≤ 10 s, then SIGKILL).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Stops and starts again on the same port and data.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// A request with the admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(PROXY_ADMIN_TOKEN)
    }

    /// Replaces the org's local PDP rules (`PUT /v1/admin/policy`; asserts success).
    pub async fn set_policy(&self, rules: Value) {
        let response = self
            .admin(reqwest::Method::PUT, "/v1/admin/policy")
            .json(&rules)
            .send()
            .await
            .expect("proxy reachable");
        let status = response.status();
        assert!(
            status.is_success(),
            "{status} {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// A request with an agent's API key.
    pub fn egress(
        &self,
        method: reqwest::Method,
        path: &str,
        api_key: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("X-API-Key", api_key)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::env::var_os("KEEP_PROXY_DATA").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
