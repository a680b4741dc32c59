//! The runbook's production checklist as code. `cullis-broker check` prints one pass/fail line
//! per item (exit 1 on any failure); `serve` with `ENVIRONMENT=production` runs the same items
//! and refuses to start while one fails, naming it.
//!
//! Items that need the database (a PDP webhook for every active org, the broker key's age)
//! read it through the same settings `serve` uses; an unreachable database fails them.

use crate::config::{Config, KmsConfig, LogFormat};
use crate::db::signing_keys::KeyStatus;
use crate::db::Db;

/// Shortest admin secret and dashboard key the check accepts (`openssl rand -hex 32` = 64).
pub const MIN_PRODUCTION_SECRET_LEN: usize = 32;
/// `BROKER_KEY_MAX_AGE_DAYS` default: rotate the signing key at least this often.
pub const DEFAULT_KEY_MAX_AGE_DAYS: i64 = 90;

/// One checklist line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: &'static str,
    pub passed: bool,
    /// What was found, and for a failure how to fix it.
    pub detail: String,
}

impl Item {
    fn new(name: &'static str, passed: bool, detail: impl Into<String>) -> Item {
        Item {
            name,
            passed,
            detail: detail.into(),
        }
    }
}

/// Every item, reading the database at `config.database_url` for the last two (migrated
/// first, as `serve` does at start).
pub async fn run(config: &Config) -> Vec<Item> {
    let mut items = settings(config);
    let db = match Db::connect(&config.database_url).await {
        Ok(db) => db.migrate().await.map(|()| db),
        Err(error) => Err(error),
    };
    match db {
        Ok(db) => items.extend(database(config, &db).await),
        Err(error) => {
            for name in ["pdp webhooks", "broker key age"] {
                items.push(Item::new(
                    name,
                    false,
                    format!("cannot read the database: {error}"),
                ));
            }
        }
    }
    items
}

/// The items decided by the settings alone.
pub fn settings(config: &Config) -> Vec<Item> {
    let env = |name: &str| {
        config
            .env
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut items = vec![admin_secret(config)];
    let dashboard = env("DASHBOARD_SIGNING_KEY").unwrap_or_default();
    items.push(Item::new(
        "dashboard signing key",
        dashboard.chars().count() >= MIN_PRODUCTION_SECRET_LEN,
        if dashboard.is_empty() {
            "DASHBOARD_SIGNING_KEY is not set: set it to `openssl rand -hex 32`".to_owned()
        } else if dashboard.chars().count() < MIN_PRODUCTION_SECRET_LEN {
            format!("DASHBOARD_SIGNING_KEY is shorter than {MIN_PRODUCTION_SECRET_LEN} characters: use `openssl rand -hex 32`")
        } else {
            "DASHBOARD_SIGNING_KEY set".to_owned()
        },
    ));
    let any_origin = config.allowed_origins.iter().any(|o| o == "*");
    items.push(Item::new(
        "allowed origins",
        !any_origin,
        if any_origin {
            "ALLOWED_ORIGINS is '*': list the dashboard origins (comma-separated) or leave it empty"
        } else {
            "ALLOWED_ORIGINS is not '*'"
        },
    ));
    let postgres = config.database_url.starts_with("postgres");
    items.push(Item::new(
        "database",
        postgres,
        if postgres {
            "PostgreSQL"
        } else {
            "DATABASE_URL is SQLite: set DATABASE_URL=postgres://user:password@host:5432/cullis"
        },
    ));
    items.push(key_storage(config));
    items.push(Item::new(
        "spiffe san",
        config.require_spiffe_san,
        if config.require_spiffe_san {
            "REQUIRE_SPIFFE_SAN=true"
        } else {
            "REQUIRE_SPIFFE_SAN is off: set REQUIRE_SPIFFE_SAN=true (agent certificates must carry their SPIFFE id)"
        },
    ));
    let public_url = config.broker_public_url.clone().unwrap_or_default();
    let https = public_url.starts_with("https://");
    items.push(Item::new(
        "public url",
        https,
        if https {
            format!("BROKER_PUBLIC_URL={public_url}")
        } else {
            format!("BROKER_PUBLIC_URL='{public_url}' is not https://: set the URL clients use, e.g. https://broker.example.com")
        },
    ));
    // Unset or false (docker-compose.yml passes `false` by default).
    let allow_http = env("VAULT_ALLOW_HTTP").filter(|v| !v.eq_ignore_ascii_case("false"));
    items.push(Item::new(
        "vault allow http",
        allow_http.is_none(),
        match allow_http {
            None => "VAULT_ALLOW_HTTP unset".to_owned(),
            Some(value) => format!("VAULT_ALLOW_HTTP={value}: unset it (development only)"),
        },
    ));
    let json = config.log_format == LogFormat::Json;
    items.push(Item::new(
        "json logs",
        json,
        if json {
            "LOG_FORMAT=json"
        } else {
            "LOG_FORMAT is text: set LOG_FORMAT=json for the log pipeline"
        },
    ));
    let limits_on = crate::limits::RateLimitConfig::from_env_map(&config.env)
        .map(|limits| limits.is_enabled())
        .unwrap_or(false);
    items.push(Item::new(
        "rate limits",
        limits_on,
        if limits_on {
            "rate limits on"
        } else {
            "RATE_LIMITS=off (or invalid): remove it"
        },
    ));
    items
}

fn admin_secret(config: &Config) -> Item {
    let secret = config.admin_secret.as_str();
    let distinct = secret
        .chars()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let strong = secret != crate::config::INSECURE_DEFAULT_ADMIN_SECRET
        && secret.chars().count() >= MIN_PRODUCTION_SECRET_LEN
        && distinct >= 10;
    Item::new(
        "admin secret",
        strong,
        if strong {
            "ADMIN_SECRET is long and random-looking".to_owned()
        } else {
            format!("ADMIN_SECRET is weak (need at least {MIN_PRODUCTION_SECRET_LEN} characters, not repetitive): `openssl rand -hex 32`")
        },
    )
}

/// Vault must be reached over https; a local key file must be private to the broker's user.
fn key_storage(config: &Config) -> Item {
    match &config.kms {
        KmsConfig::Vault { addr, .. } => {
            let https = addr.starts_with("https://");
            Item::new(
                "key storage",
                https,
                if https {
                    format!("Vault at {addr}")
                } else {
                    format!("VAULT_ADDR={addr} is not https://")
                },
            )
        }
        KmsConfig::Local { key_path, .. } => match file_mode(key_path) {
            Some(mode) if mode & 0o077 == 0 => Item::new(
                "key storage",
                true,
                format!("{} mode {mode:o}", key_path.display()),
            ),
            Some(mode) => Item::new(
                "key storage",
                false,
                format!(
                    "{} is mode {mode:o}: `chmod 600` it (or use KMS_BACKEND=vault)",
                    key_path.display()
                ),
            ),
            None => Item::new(
                "key storage",
                false,
                format!("cannot read {}", key_path.display()),
            ),
        },
    }
}

fn file_mode(path: &std::path::Path) -> Option<u32> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(metadata.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        Some(0o600)
    }
}

/// The items that read the database.
pub async fn database(config: &Config, db: &Db) -> Vec<Item> {
    vec![pdp_webhooks(config, db).await, key_age(config, db).await]
}

async fn pdp_webhooks(config: &Config, db: &Db) -> Item {
    let backend = config
        .env
        .get("POLICY_BACKEND")
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "webhook".into());
    if backend != "webhook" {
        return Item::new(
            "pdp webhooks",
            true,
            format!("POLICY_BACKEND={backend}: decisions do not use org webhooks"),
        );
    }
    match db.orgs_with_status("active").await {
        Ok(orgs) => {
            let missing: Vec<String> = orgs
                .into_iter()
                .filter(|org| org.webhook_url.as_deref().is_none_or(str::is_empty))
                .map(|org| org.org_id)
                .collect();
            if missing.is_empty() {
                Item::new("pdp webhooks", true, "every active org has a PDP webhook")
            } else {
                Item::new(
                    "pdp webhooks",
                    false,
                    format!(
                        "active orgs without a PDP webhook (their sessions are denied): {}",
                        missing.join(", ")
                    ),
                )
            }
        }
        Err(error) => Item::new(
            "pdp webhooks",
            false,
            format!("cannot read organisations: {error}"),
        ),
    }
}

async fn key_age(config: &Config, db: &Db) -> Item {
    let max_days = config
        .env
        .get("BROKER_KEY_MAX_AGE_DAYS")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(DEFAULT_KEY_MAX_AGE_DAYS);
    let rows = match db.signing_keys().await {
        Ok(rows) => rows,
        // Before the first start (no key table yet) the configured key is brand new.
        Err(_) => return Item::new("broker key age", true, "no key history yet"),
    };
    let Some(active) = rows.iter().find(|row| row.status == KeyStatus::Active) else {
        return Item::new("broker key age", true, "no key history yet");
    };
    let since = active.activated_at.unwrap_or(active.created_at);
    let age_days = (crate::db::unix_now() - since).max(0) / 86_400;
    Item::new(
        "broker key age",
        age_days <= max_days,
        if age_days <= max_days {
            format!("active key {} is {age_days} days old", active.kid)
        } else {
            format!("active key {} is {age_days} days old (limit BROKER_KEY_MAX_AGE_DAYS={max_days}): run `cullis-broker keys rotate`", active.kid)
        },
    )
}

/// `PASS  name  detail` / `FAIL  name  detail`, one line per item.
pub fn render(items: &[Item]) -> String {
    items
        .iter()
        .map(|item| {
            format!(
                "{}  {:<22} {}\n",
                if item.passed { "PASS" } else { "FAIL" },
                item.name,
                item.detail
            )
        })
        .collect()
}
