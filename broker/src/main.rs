//! `cullis-broker`: the central Cullis broker.

use clap::{Parser, Subcommand, ValueEnum};
use cullis_broker::config::{Config, KmsConfig};
use cullis_broker::{pki_init, server};
use cullis_shared::keys::KeyType;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the relay allocates many small, short-lived buffers on
/// several threads, where glibc's arenas cost a sixth of the broker's CPU (README "Speed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The central Cullis broker: onboards organisations, issues DPoP-bound tokens, relays end-to-end
/// encrypted messages between agents of different organisations and keeps a hash-chained audit log.
///
/// Settings come from environment variables (ADMIN_SECRET, DATABASE_URL, REDIS_URL, TRUST_DOMAIN,
/// BROKER_PUBLIC_URL, KMS_BACKEND, BROKER_CA_KEY_PATH, VAULT_*, LOG_FORMAT, …), from a `.env` file in
/// the working directory, and from the flags below.
#[derive(Debug, Parser)]
#[command(name = "cullis-broker", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker HTTP API (default 127.0.0.1:8000).
    Serve {
        /// Address to listen on [env: BROKER_HOST].
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port to listen on; 0 picks a free port [env: BROKER_PORT].
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Development mode: generate a missing ADMIN_SECRET and broker key under ./data/ and
        /// print where they are.
        #[arg(long)]
        dev: bool,
        /// Do not apply database migrations at start (run `cullis-broker migrate` instead).
        #[arg(long)]
        no_migrate: bool,
        /// Serve HTTPS with this PEM certificate chain (needs --tls-key) [env: BROKER_TLS_CERT].
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert [env: BROKER_TLS_KEY].
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Apply the embedded database migrations to DATABASE_URL and exit.
    Migrate,
    /// Broker PKI: create the broker CA and token-signing key.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// The hash-chained audit log in DATABASE_URL.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Token-signing keys: rotate without a restart, list, cut one off in an emergency.
    ///
    /// Reads the same settings as `serve` (DATABASE_URL, KMS_BACKEND, BROKER_CA_KEY_PATH,
    /// VAULT_*, REDIS_URL, JWT_ACCESS_TOKEN_EXPIRE_MINUTES). Running brokers pick changes up
    /// within 2 seconds, at once when REDIS_URL is set.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the runbook's production checklist as PASS/FAIL lines, reading the configuration
    /// exactly as `serve` does (environment, .env, database). Exit 1 when any item fails.
    /// With ENVIRONMENT=production, `serve` refuses to start while an item fails.
    Check,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new signing key active. It is published first (every replica learns it), then
    /// signs; tokens of the previous key stay valid until they expire, then it leaves the JWKS.
    /// The private key goes to the KMS: <dir of BROKER_CA_KEY_PATH>/signing-keys/<kid>.pem
    /// (mode 0600; replicas must share the directory) or the Vault secret
    /// <VAULT_SECRET_PATH>/signing-keys/<kid>.
    Rotate {
        /// Key type of the new key [default: the active key's type].
        #[arg(long, value_enum)]
        key_type: Option<KeyChoice>,
        /// Seconds between publishing the new key and signing with it (replicas poll every 2 s).
        #[arg(long, default_value_t = 5)]
        propagation_secs: u64,
    },
    /// List every key: kid, algorithm, status (next, active, previous, retired), dates, and
    /// whether /.well-known/jwks.json publishes it.
    List,
    /// Emergency cut-off: tokens signed by this key are refused (401) on every replica at
    /// once, and it leaves the JWKS. The active key cannot be retired: rotate first.
    Retire {
        /// The key id (see `keys list`).
        #[arg(long)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the whole chain and print a one-line summary. Exit 0 when intact, 1 when broken
    /// (naming the first broken entry and why), 2 when the database cannot be read.
    Verify,
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Create the broker key and CA certificate at BROKER_CA_KEY_PATH / BROKER_CA_CERT_PATH
    /// (default certs/broker-ca-key.pem, certs/broker-ca.pem). Idempotent; files are mode 0600.
    Init {
        /// Key type: p256 signs ES256 tokens (fast, default); rsa signs RS256 like the reference.
        #[arg(long, value_enum, default_value_t = KeyChoice::P256)]
        key_type: KeyChoice,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyChoice {
    P256,
    P384,
    Rsa2048,
    Rsa4096,
}

impl From<KeyChoice> for KeyType {
    fn from(choice: KeyChoice) -> KeyType {
        match choice {
            KeyChoice::P256 => KeyType::EcP256,
            KeyChoice::P384 => KeyType::EcP384,
            KeyChoice::Rsa2048 => KeyType::Rsa2048,
            KeyChoice::Rsa4096 => KeyType::Rsa4096,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = dotenvy::dotenv();
    let mut env: HashMap<String, String> = std::env::vars().collect();
    let result = match cli.command {
        Command::Serve {
            host,
            port,
            dev,
            no_migrate,
            tls_cert,
            tls_key,
        } => {
            env.entry("BROKER_HOST".into()).or_insert(host);
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                env.insert("BROKER_TLS_CERT".into(), cert.display().to_string());
                env.insert("BROKER_TLS_KEY".into(), key.display().to_string());
            }
            if port != 8000 || !env.contains_key("BROKER_PORT") {
                env.insert("BROKER_PORT".into(), port.to_string());
            }
            serve(env, dev, !no_migrate)
        }
        Command::Migrate => migrate(env),
        Command::Pki {
            command: PkiCommand::Init { key_type },
        } => pki(env, key_type.into()),
        Command::Audit {
            command: AuditCommand::Verify,
        } => return audit_verify(env),
        Command::Keys { command } => keys(env, command),
        Command::Check => return check(env),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cullis-broker: {message}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn serve(mut env: HashMap<String, String>, dev: bool, migrate: bool) -> Result<(), String> {
    if dev {
        prepare_dev(&mut env)?;
    }
    let config = Config::from_env(env).map_err(|e| e.to_string())?;
    let mut telemetry = cullis_broker::telemetry::init(&config)?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    tracing::info!(database = %config.database_url.split('@').next_back().unwrap_or(""), kms = %server::describe_kms(&config.kms), "starting");
    runtime()?.block_on(async move {
        let state = server::build_state(config, migrate)
            .await
            .map_err(|e| e.to_string())?;
        server::serve(state, |address, scheme| {
            println!("cullis-broker listening on {scheme}://{address}");
            tracing::info!(%address, "listening");
        })
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!("Cullis broker shutdown complete");
        Ok::<(), String>(())
    })?;
    telemetry.shutdown();
    Ok(())
}

/// `--dev`: a persistent random admin secret and a broker key under ./data/, created once.
fn prepare_dev(env: &mut HashMap<String, String>) -> Result<(), String> {
    let data = Path::new("data");
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create ./data: {e}"))?;
    if env.get("ADMIN_SECRET").is_none_or(|s| s.is_empty()) {
        let path = data.join("admin_secret");
        if !path.exists() {
            use rand::RngCore;
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            std::fs::write(&path, hex::encode(bytes))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
        }
        let secret = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        env.insert("ADMIN_SECRET".into(), secret.trim().to_owned());
        eprintln!("cullis-broker --dev: admin secret in {}", path.display());
    }
    if env
        .get("KMS_BACKEND")
        .is_none_or(|b| b.eq_ignore_ascii_case("local"))
    {
        let key = env
            .entry("BROKER_CA_KEY_PATH".into())
            .or_insert_with(|| "data/certs/broker-ca-key.pem".into())
            .clone();
        let cert = env
            .entry("BROKER_CA_CERT_PATH".into())
            .or_insert_with(|| "data/certs/broker-ca.pem".into())
            .clone();
        pki_init::init(Path::new(&key), Path::new(&cert), KeyType::EcP256)?;
        eprintln!("cullis-broker --dev: broker key {key}, certificate {cert}");
    }
    Ok(())
}

fn migrate(env: HashMap<String, String>) -> Result<(), String> {
    let url = cullis_broker::config::normalize_database_url(
        env.get("DATABASE_URL")
            .map_or("sqlite://./data/cullis.db", |u| u.as_str()),
    );
    runtime()?.block_on(async move {
        let db = cullis_broker::db::Db::connect(&url)
            .await
            .map_err(|e| e.0)?;
        db.migrate().await.map_err(|e| e.0)?;
        println!("migrations applied");
        Ok(())
    })
}

/// `cullis-broker audit verify`.
fn audit_verify(env: HashMap<String, String>) -> ExitCode {
    let url = cullis_broker::config::normalize_database_url(
        env.get("DATABASE_URL")
            .map_or("sqlite://./data/cullis.db", |u| u.as_str()),
    );
    let report = runtime().and_then(|runtime| {
        runtime.block_on(async move {
            let db = cullis_broker::db::Db::connect(&url)
                .await
                .map_err(|e| e.0)?;
            cullis_broker::audit::verify_chain(&db)
                .await
                .map_err(|e| format!("cannot read the audit log: {e}"))
        })
    });
    match report {
        Ok(report) if report.valid => {
            println!("audit chain intact: {} entries verified", report.total);
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!(
                "audit chain BROKEN at entry id {} ({} entries intact before it): {}",
                report.broken_id.unwrap_or(0),
                report.total,
                report.reason.unwrap_or_default()
            );
            ExitCode::from(1)
        }
        Err(message) => {
            eprintln!("cullis-broker: {message}");
            ExitCode::from(2)
        }
    }
}

/// `cullis-broker keys …`.
fn keys(env: HashMap<String, String>, command: KeysCommand) -> Result<(), String> {
    use cullis_broker::key_admin::KeyAdmin;
    let config = Config::from_env(env).map_err(|e| e.to_string())?;
    runtime()?.block_on(async move {
        let admin = KeyAdmin::connect(&config).await?;
        match command {
            KeysCommand::Rotate {
                key_type,
                propagation_secs,
            } => {
                let propagation = std::time::Duration::from_secs(propagation_secs);
                let kid = admin.rotate(key_type.map(Into::into), propagation).await?;
                println!("rotated: {kid} is the active signing key; the previous key verifies its tokens until they expire");
            }
            KeysCommand::List => {
                println!("{:<44} {:<6} {:<9} {:<20} {:<20} jwks", "kid", "alg", "status", "created", "until");
                for key in admin.list().await? {
                    let until = key
                        .accepted_until
                        .map(rfc3339)
                        .or(key.row.retired_at.map(rfc3339))
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:<44} {:<6} {:<9} {:<20} {:<20} {}",
                        key.row.kid,
                        key.row.alg,
                        key.row.status.as_str(),
                        rfc3339(key.row.created_at),
                        until,
                        if key.published { "published" } else { "-" }
                    );
                }
            }
            KeysCommand::Retire { kid } => {
                admin.retire(&kid).await?;
                println!("retired: tokens signed by {kid} are refused from now on");
            }
        }
        Ok(())
    })
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// `cullis-broker check`: exit 0 when every item passes, 1 otherwise.
fn check(env: HashMap<String, String>) -> ExitCode {
    let mut items = Vec::new();
    let config = match Config::from_env(env.clone()) {
        Ok(config) => config,
        Err(error) => {
            // `serve` would stop here; list the other items too, read as in development.
            items.push(cullis_broker::checklist::Item {
                name: "settings",
                passed: false,
                detail: error.to_string(),
            });
            let mut relaxed = env;
            relaxed.remove("ENVIRONMENT");
            match Config::from_env(relaxed) {
                Ok(config) => config,
                Err(_) => {
                    print!("{}", cullis_broker::checklist::render(&items));
                    return ExitCode::from(1);
                }
            }
        }
    };
    match runtime() {
        Ok(runtime) => items.extend(runtime.block_on(cullis_broker::checklist::run(&config))),
        Err(message) => {
            eprintln!("cullis-broker: {message}");
            return ExitCode::from(2);
        }
    }
    print!("{}", cullis_broker::checklist::render(&items));
    let failed = items.iter().filter(|item| !item.passed).count();
    if failed == 0 {
        println!("production checklist: all {} items pass", items.len());
        ExitCode::SUCCESS
    } else {
        println!(
            "production checklist: {failed} of {} items FAIL",
            items.len()
        );
        ExitCode::from(1)
    }
}

fn pki(env: HashMap<String, String>, key_type: KeyType) -> Result<(), String> {
    let kms = KmsConfig::Local {
        key_path: PathBuf::from(
            env.get("BROKER_CA_KEY_PATH")
                .map_or("certs/broker-ca-key.pem", |p| p.as_str()),
        ),
        cert_path: PathBuf::from(
            env.get("BROKER_CA_CERT_PATH")
                .map_or("certs/broker-ca.pem", |p| p.as_str()),
        ),
    };
    let KmsConfig::Local {
        key_path,
        cert_path,
    } = kms
    else {
        unreachable!()
    };
    match pki_init::init(&key_path, &cert_path, key_type)? {
        pki_init::PkiInit::Created => {
            println!("created {} and {}", key_path.display(), cert_path.display())
        }
        pki_init::PkiInit::AlreadyPresent => println!(
            "{} and {} already exist; nothing to do",
            key_path.display(),
            cert_path.display()
        ),
    }
    Ok(())
}
