//! `cullis-proxy`: the per-organisation Cullis sidecar. `serve` runs the pingora server; the
//! other subcommands are the operator's tools and work on the same store, so a running server
//! sees their changes without a restart.

use clap::{Parser, Subcommand};
use cullis_proxy::config::{CommonSettings, ServeSettings};
use cullis_proxy::context::{Context, OpError};
use cullis_proxy::org::{CaKeyType, CaSource, JoinParams};
use cullis_proxy::{agents, audit, check, http, org, pdp, telemetry};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// The per-organisation Cullis proxy: holds the org CA and agent keys so local agents need no
/// cryptography, and speaks DPoP, E2E encryption and signatures towards the broker for them.
#[derive(Debug, Parser)]
#[command(name = "cullis-proxy", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonSettings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (egress REST API, MCP endpoint, SSE, PDP webhook, admin API; default 0.0.0.0:9100).
    /// With ENVIRONMENT=production it refuses to start while an item of `check` fails.
    Serve(ServeSettings),
    /// The production checklist, read exactly as `serve` reads its settings: one line per item,
    /// `PASS name` or `FAIL name: how to fix`; exit status 1 when any item fails.
    Check(ServeSettings),
    /// Organisation lifecycle: create or import the org CA, join a broker, status.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Agent lifecycle: create, list, rotate, disable, delete.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// The org's PDP rules (blocked_agents, allowed_orgs, capabilities).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The local hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Generate the organisation CA (P-384 by default, or RSA-4096) or import an existing one.
    Init {
        /// Organisation id (the CA's O); not needed when importing.
        #[arg(long)]
        org_id: Option<String>,
        #[arg(long, value_enum, default_value = "p384")]
        key_type: CaKeyType,
        /// CA certificate PEM file to import.
        #[arg(long, requires = "import_key")]
        import_cert: Option<PathBuf>,
        /// CA private key PEM file to import.
        #[arg(long, requires = "import_cert")]
        import_key: Option<PathBuf>,
    },
    /// Join a broker with an invite token (generates the CA first when `org init` was skipped).
    Join {
        #[arg(long)]
        broker: String,
        /// The invite token (tokens may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        invite: String,
        #[arg(long)]
        org_id: String,
        #[arg(long)]
        display_name: String,
        #[arg(long)]
        contact_email: String,
        /// PDP webhook URL to register (default `<MCP_PROXY_PROXY_PUBLIC_URL>/pdp/policy`).
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// Ask the broker for the organisation's status (pending, active, ...) and list agent
    /// certificates that expire within 14 days.
    Status,
    /// Replace the org secret: a new random one is registered at the broker (the old one stops
    /// working at once) and stored.
    RotateSecret,
    /// Rotate the org CA: register a new CA at the broker with an overlap window in which
    /// certificates of both CAs log in, then re-issue and re-pin every active agent's
    /// certificate. After the window the broker drops the old CA.
    RotateCa {
        /// How long certificates of the old CA keep logging in, in seconds (60 s – 30 days).
        #[arg(long, default_value_t = 86_400)]
        overlap_seconds: i64,
    },
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Mint a key and certificate, register + bind + approve at the broker, print the API key once.
    Create {
        name: String,
        /// Comma-separated capabilities.
        #[arg(long, value_delimiter = ',')]
        capabilities: Vec<String>,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List this organisation's agents.
    List,
    /// Issue a new API key (the old one stops working).
    RotateKey { name: String },
    /// New key pair and certificate, registered at the broker (one agent, or `--all` active ones).
    RotateCert {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Rotate every active agent's certificate (e.g. when `org status` lists expiring ones).
        #[arg(long)]
        all: bool,
    },
    /// Disable locally and revoke at the broker.
    Disable { name: String },
    /// Revoke at the broker and delete locally.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Replace the rules with the JSON document in FILE.
    Set { file: PathBuf },
    /// Print the rules.
    Show,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the hash chain.
    Verify,
}

fn main() -> ExitCode {
    // `./proxy.env` supplies settings the environment does not (as the reference).
    let _ = dotenvy::from_filename("proxy.env");
    let cli = Cli::parse();
    let serving = match &cli.command {
        Command::Serve(serve) => Some(serve.prometheus_enabled),
        _ => None,
    };
    let _telemetry = match telemetry::init(serving) {
        Ok(telemetry) => telemetry,
        Err(err) => return fail(&err),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
    };
    if let Command::Check(serve) = cli.command {
        return checklist(&runtime, cli.common, &serve);
    }
    if let Command::Serve(serve) = cli.command {
        if let Err(err) = serve.validate() {
            return fail(&err.to_string());
        }
        // Check everything that can refuse start-up now, with a one-line reason.
        let checked = runtime.block_on(async {
            let ctx = Context::open(cli.common.clone())
                .await
                .map_err(|e| e.to_string())?;
            let refused = if serve.is_production() {
                production_refusal(&ctx, &serve).await
            } else {
                None
            };
            ctx.store.close().await;
            refused.map_or(Ok(()), Err)
        });
        drop(runtime);
        if let Err(err) = checked {
            return fail(&err);
        }
        return match http::serve(cli.common, serve) {
            Err(err) => fail(&err.to_string()),
            Ok(never) => match never {},
        };
    }
    let outcome = runtime.block_on(async {
        let ctx = Context::open(cli.common).await.map_err(|e| e.to_string())?;
        run(&ctx, cli.command).await.map_err(|e| e.to_string())
    });
    match outcome {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(err) => fail(&err),
    }
}

/// `cullis-proxy check`: the settings as `serve` reads them, then each checklist item.
fn checklist(
    runtime: &tokio::runtime::Runtime,
    common: cullis_proxy::config::CommonSettings,
    serve: &ServeSettings,
) -> ExitCode {
    if let Err(err) = serve.validate() {
        println!("FAIL settings: {err}");
        return ExitCode::FAILURE;
    }
    let items = runtime.block_on(async {
        let ctx = Context::open(common).await.map_err(|e| e.to_string())?;
        let items = check::run(&ctx, serve).await;
        ctx.store.close().await;
        Ok::<_, String>(items)
    });
    match items {
        Err(err) => {
            println!("FAIL settings: {err}");
            ExitCode::FAILURE
        }
        Ok(items) => {
            for item in &items {
                println!("{}", item.line());
            }
            if items.iter().all(check::Item::passed) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// With `ENVIRONMENT=production`, the failing checklist items as one refusal line.
async fn production_refusal(ctx: &Context, serve: &ServeSettings) -> Option<String> {
    let failed: Vec<String> = check::run(ctx, serve)
        .await
        .iter()
        .filter(|item| !item.passed())
        .map(check::Item::line)
        .collect();
    (!failed.is_empty()).then(|| {
        format!(
            "ENVIRONMENT=production: refusing to start ({}); see `cullis-proxy check`",
            failed.join("; ")
        )
    })
}

fn fail(message: &str) -> ExitCode {
    eprintln!("cullis-proxy: {message}");
    ExitCode::FAILURE
}

async fn run(ctx: &Context, command: Command) -> Result<Value, OpError> {
    match command {
        Command::Serve(_) | Command::Check(_) => unreachable!("handled before"),
        Command::Org { command } => run_org(ctx, command).await,
        Command::Agent { command } => run_agent(ctx, command).await,
        Command::Policy { command } => match command {
            PolicyCommand::Set { file } => {
                let text = read(&file)?;
                let rules: Value = serde_json::from_str(&text)
                    .map_err(|e| OpError::Invalid(format!("{}: not JSON: {e}", file.display())))?;
                pdp::set_rules(&ctx.store, &rules).await?;
                Ok(rules)
            }
            PolicyCommand::Show => Ok(pdp::rules(&ctx.store).await?),
        },
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let report = audit::verify(&ctx.store).await?;
            if !report.valid {
                return Err(OpError::Conflict(format!(
                    "audit chain broken at row {:?}",
                    report.broken_at_id
                )));
            }
            Ok(json!(report))
        }
    }
}

async fn run_org(ctx: &Context, command: OrgCommand) -> Result<Value, OpError> {
    match command {
        OrgCommand::Init {
            org_id,
            key_type,
            import_cert,
            import_key,
        } => {
            let source = match (import_cert, import_key, org_id) {
                (Some(cert), Some(key), _) => CaSource::Import {
                    cert_pem: read(&cert)?,
                    key_pem: read(&key)?,
                },
                (None, None, Some(org_id)) => CaSource::Generate { org_id, key_type },
                _ => {
                    return Err(OpError::Invalid(
                        "give --org-id (generate) or --import-cert and --import-key".into(),
                    ))
                }
            };
            org::init(ctx, source).await
        }
        OrgCommand::Join {
            broker,
            invite,
            org_id,
            display_name,
            contact_email,
            webhook_url,
        } => {
            org::join(
                ctx,
                JoinParams {
                    broker_url: broker,
                    invite_token: invite,
                    org_id,
                    display_name,
                    contact_email,
                    webhook_url,
                },
            )
            .await
        }
        OrgCommand::Status => org::status(ctx).await,
        OrgCommand::RotateCa { overlap_seconds } => org::rotate_ca(ctx, overlap_seconds).await,
        OrgCommand::RotateSecret => org::rotate_secret(ctx).await,
    }
}

async fn run_agent(ctx: &Context, command: AgentCommand) -> Result<Value, OpError> {
    match command {
        AgentCommand::Create {
            name,
            capabilities,
            display_name,
        } => Ok(json!(
            agents::create(ctx, &name, &capabilities, display_name.as_deref()).await?
        )),
        AgentCommand::List => Ok(json!({"agents": agents::list(ctx).await?})),
        AgentCommand::RotateKey { name } => Ok(json!(agents::rotate_api_key(ctx, &name).await?)),
        AgentCommand::RotateCert { all: true, .. } => {
            agents::rotate_all_certs(ctx, agents::KeyPair::New).await
        }
        AgentCommand::RotateCert { name, .. } => {
            agents::rotate_cert(
                ctx,
                name.as_deref().unwrap_or_default(),
                agents::KeyPair::New,
            )
            .await
        }
        AgentCommand::Disable { name } => agents::disable(ctx, &name).await,
        AgentCommand::Delete { name } => agents::delete(ctx, &name).await,
    }
}

fn read(path: &PathBuf) -> Result<String, OpError> {
    std::fs::read_to_string(path)
        .map_err(|e| OpError::Invalid(format!("cannot read {}: {e}", path.display())))
}
