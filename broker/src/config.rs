//! Broker settings: environment variables with the reference names (ref-broker-api §10), a
//! `.env` file, and command-line flags for the same settings. Every refusal names the setting
//! to change and how.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The reference's default admin secret, refused in every environment.
pub const INSECURE_DEFAULT_ADMIN_SECRET: &str = "change-me-in-production";
/// Shortest accepted `ADMIN_SECRET`.
pub const MIN_ADMIN_SECRET_LEN: usize = 16;

/// `development` (default) or `production` (extra fatal checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Where the broker's token-signing key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsConfig {
    /// PEM files on disk (`BROKER_CA_KEY_PATH`, `BROKER_CA_CERT_PATH`).
    Local {
        key_path: PathBuf,
        cert_path: PathBuf,
    },
    /// HashiCorp Vault / OpenBao KV v2 (`VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_SECRET_PATH`).
    Vault {
        addr: String,
        token: Zeroizing<String>,
        secret_path: String,
    },
}

/// `LOG_FORMAT` (`text` or `json`).
pub use cullis_telemetry::LogFormat;

/// Everything the broker reads at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub admin_secret: Zeroizing<String>,
    /// `DASHBOARD_SIGNING_KEY`: signs console session cookies (random per process when unset).
    pub dashboard_signing_key: Option<Zeroizing<String>>,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub trust_domain: String,
    pub require_spiffe_san: bool,
    pub broker_public_url: Option<String>,
    pub access_token_ttl_secs: i64,
    pub environment: Environment,
    pub kms: KmsConfig,
    pub log_format: LogFormat,
    /// `OTEL_*` and `PROMETHEUS_ENABLED`: traces, metrics, `/metrics`.
    pub telemetry: cullis_telemetry::TelemetryConfig,
    /// Peers whose `X-Forwarded-For` is trusted for the client IP.
    pub forwarded_allow_ips: Vec<IpAddr>,
    /// bcrypt cost for org secrets (12 as the reference; tests lower it).
    pub bcrypt_cost: u32,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    pub app_version: String,
    /// Certificate chain and key PEM files for a native TLS listener.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `ALLOWED_ORIGINS`: browser origins allowed for CORS and WebSocket upgrades (empty: no
    /// CORS, no Origin check; `*`: any origin).
    pub allowed_origins: Vec<String>,
    /// `WS_MAX_CONNECTIONS_PER_ORG`: WebSockets one organisation may hold per replica (100).
    pub ws_max_connections_per_org: usize,
    /// `WS_MAX_CONNECTIONS`: WebSockets this replica holds in all (10,000); upgrades past it
    /// get 503 with `Retry-After`.
    pub ws_max_connections: usize,
    /// `ORG_SECRET_CACHE_SECONDS`: how long an org secret bcrypt accepted is not checked again
    /// (60; 0 = bcrypt on every org-authenticated call).
    pub org_secret_cache_secs: u64,
    /// `DISCOVERY_MAX_RESULTS`: agents per discovery page, the default and the largest
    /// `limit` (1,000).
    pub discovery_max_results: u32,
    /// `WS_PING_INTERVAL_SECONDS`: how often the server sends `{"type":"ping"}` on a quiet
    /// socket (30; `cullis-sdk` 0.2.x answers `pong`). 0 = never.
    pub ws_ping_interval_secs: u64,
    /// Raw environment, for modules with their own settings (rate limits).
    pub env: HashMap<String, String>,
}

/// A setting that cannot be used; the message says which and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads settings from `env` (upper-case names). Defaults are the embedded ones: SQLite
    /// under `./data/`, in-process stores, local-file KMS.
    pub fn from_env(env: HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            env.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let environment = match get("ENVIRONMENT")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("production") => Environment::Production,
            _ => Environment::Development,
        };
        let admin_secret = get("ADMIN_SECRET").unwrap_or_default();
        check_admin_secret(&admin_secret)?;
        let database_url = normalize_database_url(
            &get("DATABASE_URL").unwrap_or_else(|| "sqlite://./data/cullis.db".into()),
        );
        if environment == Environment::Production && database_url.starts_with("sqlite") {
            return Err(ConfigError(
                "DATABASE_URL is SQLite but ENVIRONMENT=production: set DATABASE_URL=postgres://user:password@host:5432/cullis".into(),
            ));
        }
        let kms = match get("KMS_BACKEND")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
            .unwrap_or("local")
        {
            "local" => KmsConfig::Local {
                key_path: get("BROKER_CA_KEY_PATH")
                    .unwrap_or_else(|| "certs/broker-ca-key.pem".into())
                    .into(),
                cert_path: get("BROKER_CA_CERT_PATH")
                    .unwrap_or_else(|| "certs/broker-ca.pem".into())
                    .into(),
            },
            "vault" => {
                let (Some(addr), Some(token)) = (get("VAULT_ADDR"), get("VAULT_TOKEN")) else {
                    return Err(ConfigError(
                        "KMS_BACKEND=vault requires VAULT_ADDR and VAULT_TOKEN to be set".into(),
                    ));
                };
                let allow_http =
                    get("VAULT_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if !addr.starts_with("https://") && !allow_http {
                    return Err(ConfigError(format!(
                        "Vault address must use https:// (got '{addr}'). Set VAULT_ALLOW_HTTP=true to override for development only."
                    )));
                }
                KmsConfig::Vault {
                    addr,
                    token: Zeroizing::new(token),
                    secret_path: get("VAULT_SECRET_PATH")
                        .unwrap_or_else(|| "secret/data/broker".into()),
                }
            }
            other => {
                return Err(ConfigError(format!(
                    "Unknown KMS_BACKEND '{other}'. Supported values: 'local', 'vault'."
                )))
            }
        };
        let trust_domain = get("TRUST_DOMAIN").unwrap_or_else(|| "atn.local".into());
        let log_format = match get("LOG_FORMAT").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError(format!(
                    "LOG_FORMAT='{other}' is not supported: use text or json"
                )))
            }
        };
        let forwarded_allow_ips = get("FORWARDED_ALLOW_IPS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|ip| !ip.is_empty())
                    .map(|ip| {
                        ip.parse::<IpAddr>().map_err(|_| {
                            ConfigError(format!(
                                "FORWARDED_ALLOW_IPS entry '{ip}' is not an IP address"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Config {
            host: get("BROKER_HOST").unwrap_or_else(|| "127.0.0.1".into()),
            port: parse(&get("BROKER_PORT"), "BROKER_PORT", 8000)?,
            admin_secret: Zeroizing::new(admin_secret),
            dashboard_signing_key: get("DASHBOARD_SIGNING_KEY").map(Zeroizing::new),
            database_url,
            redis_url: get("REDIS_URL"),
            trust_domain,
            require_spiffe_san: parse_bool(&get("REQUIRE_SPIFFE_SAN"), "REQUIRE_SPIFFE_SAN")?,
            broker_public_url: get("BROKER_PUBLIC_URL"),
            access_token_ttl_secs: parse::<i64>(
                &get("JWT_ACCESS_TOKEN_EXPIRE_MINUTES"),
                "JWT_ACCESS_TOKEN_EXPIRE_MINUTES",
                30,
            )? * 60,
            environment,
            kms,
            log_format,
            telemetry: cullis_telemetry::TelemetryConfig::from_env(
                get,
                "cullis-broker",
                "PROMETHEUS_ENABLED",
            )
            .map_err(|e| ConfigError(e.0))?,
            forwarded_allow_ips,
            ws_max_connections_per_org: match get("WS_MAX_CONNECTIONS_PER_ORG") {
                None => 100,
                Some(text) => text.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ConfigError(format!(
                        "WS_MAX_CONNECTIONS_PER_ORG='{text}' is not a positive number of sockets"
                    ))
                })?,
            },
            ws_max_connections: match get("WS_MAX_CONNECTIONS") {
                None => 10_000,
                Some(text) => text.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ConfigError(format!(
                        "WS_MAX_CONNECTIONS='{text}' is not a positive number of sockets"
                    ))
                })?,
            },
            org_secret_cache_secs: parse(
                &get("ORG_SECRET_CACHE_SECONDS"),
                "ORG_SECRET_CACHE_SECONDS",
                60,
            )?,
            discovery_max_results: match get("DISCOVERY_MAX_RESULTS") {
                None => 1_000,
                Some(text) => text
                    .parse()
                    .ok()
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "DISCOVERY_MAX_RESULTS='{text}' is not a number of agents from 1 to 100000"
                        ))
                    })?,
            },
            ws_ping_interval_secs: match get("WS_PING_INTERVAL_SECONDS") {
                None => 30,
                Some(text) => text.parse().map_err(|_| {
                    ConfigError(format!(
                        "WS_PING_INTERVAL_SECONDS='{text}' is not a whole number of seconds (0 = no pings)"
                    ))
                })?,
            },
            allowed_origins: get("ALLOWED_ORIGINS")
                .map(|list| {
                    list.split(',')
                        .map(|origin| origin.trim().trim_end_matches('/').to_owned())
                        .filter(|origin| !origin.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            bcrypt_cost: parse(&get("BCRYPT_COST"), "BCRYPT_COST", 12)?,
            max_body_bytes: parse(&get("MAX_BODY_BYTES"), "MAX_BODY_BYTES", 2 * 1024 * 1024)?,
            app_version: get("APP_VERSION").unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
            tls: match (get("BROKER_TLS_CERT"), get("BROKER_TLS_KEY")) {
                (Some(cert), Some(key)) => Some((cert.into(), key.into())),
                (None, None) => None,
                _ => return Err(ConfigError("--tls-cert and --tls-key (BROKER_TLS_CERT, BROKER_TLS_KEY) must be given together".into())),
            },
            env,
        })
    }

    /// Warnings worth a line in the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.redis_url.is_none() {
            warnings.push("REDIS_URL is not set: rate limits, DPoP replay and nonces are per process (fine for one replica)".into());
        }
        if let KmsConfig::Vault { token, .. } = &self.kms {
            if token.as_str() == "dev-root-token" {
                warnings.push("VAULT_TOKEN is the well-known dev token 'dev-root-token'".into());
            }
        }
        warnings
    }
}

/// Refuses the reference default and short secrets, with the fix in the message.
pub fn check_admin_secret(secret: &str) -> Result<(), ConfigError> {
    const FIX: &str = "generate one with `openssl rand -hex 32` and set ADMIN_SECRET (or run `cullis-broker serve --dev`)";
    if secret.is_empty() {
        return Err(ConfigError(format!("ADMIN_SECRET is not set: {FIX}")));
    }
    if secret == INSECURE_DEFAULT_ADMIN_SECRET {
        return Err(ConfigError(format!(
            "ADMIN_SECRET is the insecure default '{INSECURE_DEFAULT_ADMIN_SECRET}': {FIX}"
        )));
    }
    if secret.chars().count() < MIN_ADMIN_SECRET_LEN {
        return Err(ConfigError(format!(
            "ADMIN_SECRET is too short ({} characters, need at least {MIN_ADMIN_SECRET_LEN}): {FIX}",
            secret.chars().count()
        )));
    }
    Ok(())
}

/// Accepts the reference's SQLAlchemy URLs (`sqlite+aiosqlite:///./x.db`,
/// `postgresql+asyncpg://…`) as well as plain sqlx ones.
pub fn normalize_database_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or((url, ""));
    let mut parts = scheme.split('+');
    let base = parts.next().unwrap_or(scheme);
    let sqlalchemy = parts.next().is_some();
    match base {
        "postgresql" | "postgres" => format!("postgres://{rest}"),
        // SQLAlchemy: `sqlite:///relative.db` (three slashes) and `sqlite:////abs.db` (four).
        "sqlite" if rest.starts_with("//") || (sqlalchemy && rest.starts_with('/')) => {
            format!("sqlite://{}", &rest[1..])
        }
        "sqlite" => format!("sqlite://{rest}"),
        _ => url.to_owned(),
    }
}

fn parse<T: std::str::FromStr>(
    value: &Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| ConfigError(format!("{name}='{text}' is not a valid number"))),
    }
}

fn parse_bool(value: &Option<String>, name: &str) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError(format!(
            "{name}='{other}' is not a boolean: use true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const GOOD: (&str, &str) = ("ADMIN_SECRET", "0123456789abcdef0123");

    #[test]
    fn k01_default_missing_and_short_admin_secrets_are_refused_with_the_fix() {
        for secret in ["", INSECURE_DEFAULT_ADMIN_SECRET, "short"] {
            let error = Config::from_env(env(&[("ADMIN_SECRET", secret)]))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("ADMIN_SECRET is"), "{error}");
            assert!(error.contains("openssl rand -hex 32"), "{error}");
        }
        assert!(Config::from_env(env(&[GOOD])).is_ok());
    }

    #[test]
    fn k02_production_refuses_sqlite() {
        let error = Config::from_env(env(&[GOOD, ("ENVIRONMENT", "production")])).unwrap_err();
        assert!(error.0.contains("DATABASE_URL"), "{error}");
        assert!(Config::from_env(env(&[
            GOOD,
            ("ENVIRONMENT", "production"),
            ("DATABASE_URL", "postgresql+asyncpg://u@h/db")
        ]))
        .is_ok());
    }

    #[test]
    fn k03_k04_k05_kms_settings() {
        let http = Config::from_env(env(&[
            GOOD,
            ("KMS_BACKEND", "vault"),
            ("VAULT_ADDR", "http://v:8200"),
            ("VAULT_TOKEN", "t"),
        ]))
        .unwrap_err();
        assert_eq!(http.0, "Vault address must use https:// (got 'http://v:8200'). Set VAULT_ALLOW_HTTP=true to override for development only.");
        let allowed = Config::from_env(env(&[
            GOOD,
            ("KMS_BACKEND", "vault"),
            ("VAULT_ADDR", "http://v:8200"),
            ("VAULT_TOKEN", "t"),
            ("VAULT_ALLOW_HTTP", "TRUE"),
        ]));
        assert!(matches!(allowed.unwrap().kms, KmsConfig::Vault { .. }));
        let missing = Config::from_env(env(&[GOOD, ("KMS_BACKEND", "vault")])).unwrap_err();
        assert_eq!(
            missing.0,
            "KMS_BACKEND=vault requires VAULT_ADDR and VAULT_TOKEN to be set"
        );
        let unknown = Config::from_env(env(&[GOOD, ("KMS_BACKEND", "hsm")])).unwrap_err();
        assert_eq!(
            unknown.0,
            "Unknown KMS_BACKEND 'hsm'. Supported values: 'local', 'vault'."
        );
    }

    #[test]
    fn reference_database_urls_are_accepted() {
        assert_eq!(
            normalize_database_url("sqlite+aiosqlite:///./agent_trust.db"),
            "sqlite://./agent_trust.db"
        );
        assert_eq!(
            normalize_database_url("sqlite:////abs/x.db"),
            "sqlite:///abs/x.db"
        );
        assert_eq!(
            normalize_database_url("postgresql+asyncpg://u:p@h:5432/db"),
            "postgres://u:p@h:5432/db"
        );
        assert_eq!(
            normalize_database_url("postgres://u@h/db"),
            "postgres://u@h/db"
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        let error = Config::from_env(env(&[GOOD, ("BROKER_PORT", "eighty")])).unwrap_err();
        assert_eq!(error.0, "BROKER_PORT='eighty' is not a valid number");
        let error = Config::from_env(env(&[GOOD, ("REQUIRE_SPIFFE_SAN", "maybe")])).unwrap_err();
        assert!(error.0.starts_with("REQUIRE_SPIFFE_SAN="));
    }
}
