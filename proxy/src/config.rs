//! Settings: `MCP_PROXY_*` environment variables (also read from `./proxy.env`), each with a clap
//! flag of the same meaning. Every refusal at start-up is one line naming the setting.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Admin tokens shorter than this are refused: the admin API can mint agent identities.
const MIN_ADMIN_TOKEN_LEN: usize = 32;
/// Values an operator might leave in place from an example file.
const DEFAULT_LIKE_TOKENS: &[&str] = &["change-me-in-production", "changeme", "admin", "secret"];

/// Settings every subcommand needs: where the store and secrets live, how to reach the broker.
#[derive(Debug, Clone, Args)]
pub struct CommonSettings {
    /// Directory for the SQLite store and the generated secret key.
    #[arg(
        long,
        env = "MCP_PROXY_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// SQLite database URL (default `sqlite://<data dir>/proxy.db`).
    #[arg(long, env = "MCP_PROXY_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Where secrets live: `local` (AES-256-GCM in the store) or `vault` (KV v2).
    #[arg(
        long,
        env = "MCP_PROXY_SECRET_BACKEND",
        default_value = "local",
        global = true
    )]
    pub secret_backend: String,
    /// File with the 32-byte at-rest key (hex); generated with mode 0600 on first run.
    #[arg(long, env = "MCP_PROXY_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<PathBuf>,
    /// The at-rest key itself (64 hex characters); wins over the key file.
    #[arg(
        long,
        env = "MCP_PROXY_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secret_key: Option<String>,
    /// Vault/OpenBao address for `MCP_PROXY_SECRET_BACKEND=vault`.
    #[arg(long, env = "MCP_PROXY_VAULT_ADDR", global = true)]
    pub vault_addr: Option<String>,
    /// Vault token.
    #[arg(
        long,
        env = "MCP_PROXY_VAULT_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub vault_token: Option<String>,
    /// KV v2 path prefix the secrets are written under.
    #[arg(
        long,
        env = "MCP_PROXY_VAULT_SECRET_PREFIX",
        default_value = "secret/data/mcp-proxy",
        global = true
    )]
    pub vault_secret_prefix: String,
    /// SPIFFE trust domain of agent certificates (must equal the broker's TRUST_DOMAIN).
    #[arg(
        long,
        env = "MCP_PROXY_TRUST_DOMAIN",
        default_value = "atn.local",
        global = true
    )]
    pub trust_domain: String,
    /// Extra PEM roots for the broker's TLS certificate.
    #[arg(long, env = "MCP_PROXY_BROKER_CA_BUNDLE", global = true)]
    pub broker_ca_bundle: Option<PathBuf>,
    /// Do not verify the broker's TLS certificate (development only).
    #[arg(long, env = "MCP_PROXY_INSECURE_BROKER_TLS", global = true)]
    pub insecure_broker_tls: bool,
    /// Client certificate (PEM) presented to the broker (mTLS).
    #[arg(long, env = "MCP_PROXY_BROKER_CLIENT_CERT", global = true)]
    pub broker_client_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, env = "MCP_PROXY_BROKER_CLIENT_KEY", global = true)]
    pub broker_client_key: Option<PathBuf>,
    /// Per-request timeout towards the broker, in seconds.
    #[arg(
        long,
        env = "MCP_PROXY_BROKER_TIMEOUT_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub broker_timeout_seconds: u64,
    /// This proxy's public URL; the PDP webhook URL sent at join is `<public url>/pdp/policy`.
    #[arg(long, env = "MCP_PROXY_PROXY_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Explicit PDP webhook URL sent at join (wins over the public URL).
    #[arg(long, env = "MCP_PROXY_PDP_URL", global = true)]
    pub pdp_url: Option<String>,
    /// Shared secret that restricts `/pdp/policy` to the broker (at least 32 characters).
    /// `org join` registers the webhook URL with it as HTTP Basic credentials
    /// (`https://cullis:<secret>@host/pdp/policy`), which the broker sends on every call.
    #[arg(
        long,
        env = "MCP_PROXY_PDP_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub pdp_secret: Option<String>,
    /// Validity of agent certificates issued by `agent create` / `rotate-cert`, in days.
    #[arg(
        long,
        env = "MCP_PROXY_AGENT_CERT_DAYS",
        default_value_t = cullis_shared::pki::ca::DEFAULT_AGENT_CERT_DAYS,
        global = true
    )]
    pub agent_cert_days: u32,
}

/// Settings of `serve` only.
#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Address to listen on.
    #[arg(long, env = "MCP_PROXY_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, env = "MCP_PROXY_PORT", default_value_t = 9100)]
    pub port: u16,
    /// Egress requests (and MCP tool calls) per agent per sliding minute.
    #[arg(long, env = "MCP_PROXY_RATE_LIMIT_PER_MINUTE", default_value_t = 60)]
    pub rate_limit_per_minute: u32,
    /// Calls of the PDP webhook (`/pdp/policy`) per sliding minute, all callers together.
    #[arg(
        long,
        env = "MCP_PROXY_PDP_RATE_LIMIT_PER_MINUTE",
        default_value_t = 600
    )]
    pub pdp_rate_limit_per_minute: u32,
    /// Token for `/v1/admin/*` (at least 32 characters); the admin API is off when unset.
    #[arg(long, env = "MCP_PROXY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Key that signs the console's session cookies (any long random string). Unset: a random
    /// key per process, so console sessions end at every restart.
    #[arg(long, env = "MCP_PROXY_DASHBOARD_SIGNING_KEY", hide_env_values = true)]
    pub dashboard_signing_key: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MCP_PROXY_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Worker threads of the HTTP service.
    #[arg(long, env = "MCP_PROXY_THREADS", default_value_t = 2)]
    pub threads: usize,
    /// Serve HTTPS with this certificate chain (PEM); needs MCP_PROXY_TLS_KEY.
    #[arg(long, env = "MCP_PROXY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of MCP_PROXY_TLS_CERT.
    #[arg(long, env = "MCP_PROXY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Browser origins allowed to call the proxy (comma list; `*` = any, without credentials).
    /// CORS is off when unset.
    #[arg(long, env = "MCP_PROXY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Serve Prometheus text at GET /metrics. Traces and OTLP metrics follow the standard
    /// OTEL_ENABLED, OTEL_SERVICE_NAME (default cullis-proxy), OTEL_EXPORTER_OTLP_ENDPOINT,
    /// OTEL_EXPORTER_OTLP_PROTOCOL (grpc | http/protobuf), OTEL_TRACES_SAMPLER(_ARG) variables.
    #[arg(long, env = "MCP_PROXY_PROMETHEUS_ENABLED")]
    pub prometheus_enabled: bool,

    /// `production` makes `serve` refuse to start while an item of `cullis-proxy check` fails.
    #[arg(long, env = "ENVIRONMENT", default_value = "development")]
    pub environment: String,
}

impl ServeSettings {
    pub fn is_production(&self) -> bool {
        self.environment.eq_ignore_ascii_case("production")
    }
}

/// A setting the proxy refuses to start with: one line that names it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            setting,
            reason: reason.into(),
        }
    }
}

impl CommonSettings {
    /// The SQLite URL of the store.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("proxy.db").display()))
    }

    /// The at-rest key file.
    pub fn secret_key_file(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    pub fn broker_timeout(&self) -> Duration {
        Duration::from_secs(self.broker_timeout_seconds.max(1))
    }

    /// The webhook URL to register at join when the operator gave none on the command line.
    pub fn default_webhook_url(&self) -> Option<String> {
        if let Some(url) = self.pdp_url.as_deref().filter(|u| !u.is_empty()) {
            return Some(url.to_owned());
        }
        self.public_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(|u| format!("{}/pdp/policy", u.trim_end_matches('/')))
    }

    /// `url` as registered at the broker: with the PDP secret as HTTP Basic credentials when
    /// one is set (the broker's HTTP client sends URL credentials as `Authorization: Basic`).
    /// The plain URL is what is stored and shown; this one only goes to the broker.
    pub fn webhook_url_for_broker(&self, url: &str) -> Result<String, ConfigError> {
        let Some(secret) = self.pdp_secret.as_deref() else {
            return Ok(url.to_owned());
        };
        let bad = |why: String| ConfigError::new("MCP_PROXY_PDP_SECRET", why);
        let mut parsed =
            url::Url::parse(url).map_err(|e| bad(format!("webhook URL {url:?}: {e}")))?;
        parsed
            .set_username("cullis")
            .and_then(|()| parsed.set_password(Some(secret)))
            .map_err(|()| bad(format!("webhook URL {url:?} cannot carry credentials")))?;
        Ok(parsed.to_string())
    }

    /// Checks everything that can be checked without I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.pdp_secret {
            if secret.len() < MIN_ADMIN_TOKEN_LEN {
                return Err(ConfigError::new(
                    "MCP_PROXY_PDP_SECRET",
                    format!(
                        "too weak: use at least {MIN_ADMIN_TOKEN_LEN} random characters \
                         (e.g. `openssl rand -hex 32`)"
                    ),
                ));
            }
        }
        cullis_shared::pki::spiffe::validate_trust_domain(&self.trust_domain)
            .map_err(|e| ConfigError::new("MCP_PROXY_TRUST_DOMAIN", e.to_string()))?;
        match self.secret_backend.as_str() {
            "local" | "env" => {}
            "vault" => {
                if self.vault_addr.as_deref().unwrap_or("").is_empty() {
                    return Err(ConfigError::new(
                        "MCP_PROXY_VAULT_ADDR",
                        "required when MCP_PROXY_SECRET_BACKEND=vault",
                    ));
                }
                if self.vault_token.as_deref().unwrap_or("").is_empty() {
                    return Err(ConfigError::new(
                        "MCP_PROXY_VAULT_TOKEN",
                        "required when MCP_PROXY_SECRET_BACKEND=vault",
                    ));
                }
            }
            other => {
                return Err(ConfigError::new(
                    "MCP_PROXY_SECRET_BACKEND",
                    format!("unknown backend {other:?} (use local or vault)"),
                ))
            }
        }
        if self.agent_cert_days == 0 {
            return Err(ConfigError::new(
                "MCP_PROXY_AGENT_CERT_DAYS",
                "must be at least 1",
            ));
        }
        if self.broker_client_cert.is_some() != self.broker_client_key.is_some() {
            return Err(ConfigError::new(
                "MCP_PROXY_BROKER_CLIENT_CERT",
                "the client certificate and MCP_PROXY_BROKER_CLIENT_KEY go together",
            ));
        }
        Ok(())
    }
}

impl ServeSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.admin_token {
            if token.len() < MIN_ADMIN_TOKEN_LEN
                || DEFAULT_LIKE_TOKENS.contains(&token.to_ascii_lowercase().as_str())
            {
                return Err(ConfigError::new(
                    "MCP_PROXY_ADMIN_TOKEN",
                    format!(
                        "too weak: use at least {MIN_ADMIN_TOKEN_LEN} random characters \
                         (e.g. `openssl rand -hex 32`)"
                    ),
                ));
            }
        }
        if self.rate_limit_per_minute == 0 {
            return Err(ConfigError::new(
                "MCP_PROXY_RATE_LIMIT_PER_MINUTE",
                "must be at least 1",
            ));
        }
        if self.pdp_rate_limit_per_minute == 0 {
            return Err(ConfigError::new(
                "MCP_PROXY_PDP_RATE_LIMIT_PER_MINUTE",
                "must be at least 1",
            ));
        }
        if self.threads == 0 {
            return Err(ConfigError::new("MCP_PROXY_THREADS", "must be at least 1"));
        }
        self.tls_files()?;
        Ok(())
    }

    /// The certificate and key of the HTTPS listener, when both are set and readable.
    pub fn tls_files(&self) -> Result<Option<(String, String)>, ConfigError> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                return Err(ConfigError::new(
                    "MCP_PROXY_TLS_CERT",
                    "the certificate and MCP_PROXY_TLS_KEY go together",
                ))
            }
        };
        for (setting, path) in [("MCP_PROXY_TLS_CERT", cert), ("MCP_PROXY_TLS_KEY", key)] {
            std::fs::metadata(path).map_err(|e| {
                ConfigError::new(setting, format!("cannot read {}: {e}", path.display()))
            })?;
        }
        Ok(Some((
            cert.display().to_string(),
            key.display().to_string(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(token: Option<&str>) -> ServeSettings {
        ServeSettings {
            host: "127.0.0.1".into(),
            port: 0,
            rate_limit_per_minute: 60,
            pdp_rate_limit_per_minute: 600,
            admin_token: token.map(str::to_owned),
            dashboard_signing_key: None,
            max_body_bytes: 1024,
            threads: 1,
            tls_cert: None,
            tls_key: None,
            allowed_origins: Vec::new(),
            prometheus_enabled: false,
            environment: "development".into(),
        }
    }

    #[test]
    fn a_tls_certificate_needs_its_key_and_both_must_exist() {
        let mut settings = serve(None);
        settings.tls_cert = Some("/nonexistent/cert.pem".into());
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("MCP_PROXY_TLS_KEY go together"), "{err}");
        settings.tls_key = Some("/nonexistent/key.pem".into());
        let err = settings.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("MCP_PROXY_TLS_CERT: cannot read /nonexistent/cert.pem"),
            "{err}"
        );
    }

    #[test]
    fn weak_admin_tokens_are_refused() {
        assert!(serve(Some("short")).validate().is_err());
        assert!(serve(Some("change-me-in-production")).validate().is_err());
        assert!(serve(Some(&"a".repeat(40))).validate().is_ok());
        assert!(serve(None).validate().is_ok());
        let err = serve(Some("x")).validate().unwrap_err().to_string();
        assert!(err.starts_with("MCP_PROXY_ADMIN_TOKEN:"), "{err}");
    }
}
