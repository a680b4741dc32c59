//! `cullis-bench`: load harness for any broker that speaks the Cullis wire protocol.
//!
//! It sets up its own organisation and agents through the public API, then measures logins and
//! DPoP-authenticated GETs at 1 and 16 concurrent clients, and prints ops/s with p50/p99
//! latency. Point it at a running broker (`--broker-url`, `--admin-secret`), or let it start
//! the real `cullis-broker` binary on SQLite or PostgreSQL (`--spawn`).
//!
//! The client's own crypto (a DPoP proof per request, an assertion per login) runs on the same
//! machine as the broker, so on a 2-core box the numbers are a floor for the broker alone.

use clap::{Parser, ValueEnum};
use cullis_e2e::client::{AgentIdentity, AgentSession};
use cullis_e2e::setup::BrokerApi;
use reqwest::{Method, StatusCode};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Load harness for Cullis brokers: logins/s and authenticated requests/s with latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "cullis-bench", version, about)]
struct Args {
    /// URL of a running broker (e.g. http://127.0.0.1:8000). Mutually exclusive with --spawn.
    #[arg(long, requires = "admin_secret")]
    broker_url: Option<String>,
    /// The broker's ADMIN_SECRET (with --broker-url).
    #[arg(long, env = "ADMIN_SECRET")]
    admin_secret: Option<String>,
    /// Start the cullis-broker binary (next to this one) on this store, with rate limits off.
    #[arg(long, value_enum, conflicts_with = "broker_url")]
    spawn: Option<Spawn>,
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrency levels to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Spawn {
    Sqlite,
    Postgres,
}

struct Spawned {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const SPAWN_SECRET: &str = "bench-admin-secret-0123456789abcdef";

fn spawn_broker(store: Spawn) -> (Spawned, String) {
    use std::io::BufRead;
    let exe = std::env::current_exe().expect("own path");
    let broker = exe.with_file_name("cullis-broker");
    assert!(
        broker.exists(),
        "{} not found: build it first (cargo build --release -p cullis-broker)",
        broker.display()
    );
    let dir = std::env::temp_dir().join(format!("cullis-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let database_url = match store {
        Spawn::Sqlite => format!("sqlite://{}", dir.join("bench.db").display()),
        Spawn::Postgres => {
            let name = format!("cullis_bench_{}", uuid::Uuid::new_v4().simple());
            let created = Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-qc",
                    &format!("CREATE DATABASE {name}"),
                ])
                .status()
                .expect("psql");
            assert!(
                created.success(),
                "could not create a PostgreSQL database on 127.0.0.1:5432"
            );
            format!("postgres://postgres@127.0.0.1:5432/{name}")
        }
    };
    let mut child = Command::new(&broker)
        .args(["serve", "--port", "0", "--dev"])
        .current_dir(&dir)
        .env("ADMIN_SECRET", SPAWN_SECRET)
        .env("DATABASE_URL", database_url)
        .env("RATE_LIMITS", "off")
        .env("BCRYPT_COST", "4")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("broker starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let base = line.trim().rsplit(' ').next().expect("address").to_owned();
    (Spawned { child, dir }, base)
}

#[derive(Debug)]
struct Outcome {
    ops: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }
}

/// Runs `work` from `concurrency` tasks for `duration`, timing each call.
async fn measure<F, Fut>(concurrency: usize, duration: Duration, work: Arc<F>) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let began = Instant::now();
                if work(worker).await {
                    latencies.push(began.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await.expect("worker");
        latencies.append(&mut l);
        errors += e;
    }
    latencies.sort();
    Outcome {
        ops: latencies.len(),
        errors,
        elapsed: start.elapsed(),
        latencies,
    }
}

fn row(name: &str, concurrency: usize, outcome: &Outcome) {
    println!(
        "| {name:<28} | {concurrency:>4} | {:>7} | {:>6} | {:>9.0} | {:>8.2} | {:>8.2} |",
        outcome.ops,
        outcome.errors,
        outcome.ops as f64 / outcome.elapsed.as_secs_f64(),
        outcome.percentile(0.50).as_secs_f64() * 1000.0,
        outcome.percentile(0.99).as_secs_f64() * 1000.0,
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let (_spawned, base, secret) = match (args.spawn, &args.broker_url) {
        (Some(store), _) => {
            let (spawned, base) = spawn_broker(store);
            (Some(spawned), base, SPAWN_SECRET.to_owned())
        }
        (None, Some(url)) => (
            None,
            url.clone(),
            args.admin_secret.clone().expect("--admin-secret"),
        ),
        (None, None) => {
            eprintln!(
                "cullis-bench: give --broker-url URL --admin-secret S, or --spawn sqlite|postgres"
            );
            std::process::exit(2);
        }
    };
    let api = BrokerApi::new(&base, &secret);
    let max_clients = args.concurrency.iter().copied().max().unwrap_or(1);
    let org_id = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    eprintln!("setting up org {org_id} with {max_clients} agents at {base} …");
    let org = api.onboard(&org_id).await;
    let mut agents: Vec<AgentIdentity> = Vec::new();
    for i in 0..max_clients {
        agents.push(
            api.register_agent(&org, &format!("agent{i}"), &["bench.read"])
                .await,
        );
    }
    let agents = Arc::new(agents);
    let mut sessions = Vec::new();
    for agent in agents.iter() {
        sessions.push(
            agent
                .login(&api.base, &api.http)
                .await
                .expect("initial login"),
        );
    }
    let sessions: Arc<Vec<AgentSession>> = Arc::new(sessions);
    let duration = Duration::from_secs(args.seconds);

    println!("\nbroker: {base}   ({} s per scenario)\n", args.seconds);
    println!("| scenario                     | conc |     ops | errors |     ops/s |  p50 ms  |  p99 ms  |");
    println!("|------------------------------|------|---------|--------|-----------|----------|----------|");
    let nonce = sessions[0].nonce();
    for &concurrency in &args.concurrency {
        let (agents, base, http, nonce) = (
            agents.clone(),
            api.base.clone(),
            api.http.clone(),
            nonce.clone(),
        );
        let login = Arc::new(move |worker: usize| {
            let (agents, base, http, nonce) =
                (agents.clone(), base.clone(), http.clone(), nonce.clone());
            async move {
                agents[worker]
                    .login_with_nonce(&base, &http, nonce)
                    .await
                    .is_ok()
            }
        });
        row(
            "login (assertion + DPoP)",
            concurrency,
            &measure(concurrency, duration, login).await,
        );
    }
    for &concurrency in &args.concurrency {
        let sessions = sessions.clone();
        let get = Arc::new(move |worker: usize| {
            let sessions = sessions.clone();
            async move {
                let session = &sessions[worker];
                let path = format!("/v1/registry/agents/{}", session.agent_id());
                session.call(Method::GET, &path, None).await.0 == StatusCode::OK
            }
        });
        row(
            "authenticated GET (DPoP)",
            concurrency,
            &measure(concurrency, duration, get).await,
        );
    }
    println!(
        "\naims (DESIGN.md, 2-core machine): logins ≥ 1,500/s, authenticated requests ≥ 5,000/s"
    );
}
