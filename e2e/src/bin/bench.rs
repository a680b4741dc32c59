//! `cullis-bench`: load harness for any broker that speaks the Cullis wire protocol.
//!
//! It sets up its own organisations and agents through the public API, then measures, at the
//! concurrency levels asked for: logins, DPoP-authenticated GETs, session opens with both orgs'
//! webhook PDPs, E2E message sends, and messages relayed end to end (send + delivery by poll,
//! and send + delivery by WebSocket push), each with ops/s and p50/p99 latency; finally the
//! relay latency at half of the measured peak (an open-loop, paced load). Point it at a running
//! broker (`--broker-url`, `--admin-secret`; the broker must allow the bench's PDP on
//! 127.0.0.1, POLICY_WEBHOOK_ALLOW_PRIVATE_IPS=true), or let it start the real `cullis-broker`
//! binary on SQLite or PostgreSQL + Redis (`--spawn`).
//!
//! The client runs on the same machine as the broker, so on a 2-core box the numbers are a floor
//! for the broker alone. Envelopes are sealed before each timed run, so the client's E2E crypto
//! does not count against the broker; DPoP proofs are still made per request.

use clap::{Parser, ValueEnum};
use cullis_e2e::client::{AgentIdentity, AgentSession};
use cullis_e2e::messaging;
use cullis_e2e::setup::{BrokerApi, OrgIdentity};
use cullis_e2e::stack::{Options, Store, TestBroker};
use cullis_e2e::ws;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Load harness for Cullis brokers: logins, authenticated requests, session opens and E2E
/// message relay, with ops/s and latency percentiles.
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
    /// Concurrency levels for logins, GETs and session opens.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
    /// Process id of the broker at --broker-url on this machine: its CPU use is then shown
    /// per scenario (in cores) next to the client's.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Numbers of concurrent sessions for the message scenarios.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    sessions: Vec<usize>,
    /// Scenarios to run (comma list; all by default) — e.g. `--only ws` to profile one of them.
    /// `half` paces at half of the `poll` peak, so it needs `poll` too.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// With --spawn: the broker exports every span (sampling 1.0) and its metrics over OTLP/gRPC
    /// to a receiver in this process, and serves /metrics — the cost of telemetry switched on.
    #[arg(long, requires = "spawn")]
    otel: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Scenario {
    /// Logins (client assertion + DPoP).
    Login,
    /// DPoP-authenticated GETs.
    Get,
    /// Session opens through both webhook PDPs.
    Open,
    /// Sealed E2E message sends.
    Send,
    /// Relay: send + delivery by poll.
    Poll,
    /// Relay: send + WebSocket push.
    Ws,
    /// Relay latency at half of the poll peak (paced).
    Half,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Spawn {
    Sqlite,
    Postgres,
}

#[derive(Debug)]
struct Outcome {
    ops: usize,
    /// Calls the broker refused or answered wrongly, and transport failures.
    errors: usize,
    /// Calls with no answer within [`CALL_TIMEOUT`].
    timeouts: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU used during the run, in cores: this client, and the broker when its pid is known.
    client_cores: Option<f64>,
    broker_cores: Option<f64>,
}

/// The load generator shares the machine with the broker: mimalloc keeps its own CPU down
/// (as the broker's), leaving more of the two cores to what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set when a worker finds its presealed envelopes used up: its scenario then ends early
/// and its row says that its rate is a lower bound.
static RAN_DRY: AtomicBool = AtomicBool::new(false);

/// The broker's process id (spawned, or `--broker-pid`), for its CPU use per scenario.
static BROKER_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// CPU seconds (user + system) a process has used so far, from `/proc` (Linux; `None`
/// elsewhere). Shows which side of the loopback saturates the machine.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or("/proc/self/stat".to_owned(), |pid| {
        format!("/proc/{pid}/stat")
    });
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

impl Outcome {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// How long one measured call may take before it counts as a timeout (and is abandoned), so
/// a slow or stuck broker gives a row with its timeouts instead of a hung run.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `work(worker)` from `concurrency` tasks for `duration`, timing each call; with a
/// `pace`, each worker starts a call every `pace` (open loop) instead of back to back. A call
/// that answers `false` is an error, one that takes longer than [`CALL_TIMEOUT`] a timeout:
/// both are counted and the worker goes on.
async fn measure<F, Fut>(
    concurrency: usize,
    duration: Duration,
    pace: Option<Duration>,
    work: Arc<F>,
) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let broker_pid = BROKER_PID.get().copied();
    let cpu_before = (
        cpu_seconds(None),
        broker_pid.and_then(|pid| cpu_seconds(Some(pid))),
    );
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut timeouts) = (0, 0);
            // Paced workers start spread over one period, so arrivals are even, not bursts.
            let mut next_start =
                start + pace.unwrap_or_default() * worker as u32 / concurrency as u32;
            while Instant::now() < deadline {
                if let Some(pace) = pace {
                    tokio::time::sleep_until(next_start.into()).await;
                    next_start += pace;
                }
                let began = Instant::now();
                match tokio::time::timeout(CALL_TIMEOUT, work(worker)).await {
                    Ok(true) => latencies.push(began.elapsed()),
                    Ok(false) if RAN_DRY.load(Ordering::Relaxed) => break,
                    Ok(false) => errors += 1,
                    Err(_) => timeouts += 1,
                }
            }
            (latencies, errors, timeouts)
        }));
    }
    let mut latencies = Vec::new();
    let (mut errors, mut timeouts) = (0, 0);
    for task in tasks {
        let (mut l, e, t) = task.await.expect("a bench worker panicked");
        latencies.append(&mut l);
        errors += e;
        timeouts += t;
    }
    latencies.sort();
    let elapsed = start.elapsed();
    let cores =
        |before: Option<f64>, after: Option<f64>| Some((after? - before?) / elapsed.as_secs_f64());
    Outcome {
        ops: latencies.len(),
        errors,
        timeouts,
        elapsed,
        latencies,
        client_cores: cores(cpu_before.0, cpu_seconds(None)),
        broker_cores: cores(
            cpu_before.1,
            broker_pid.and_then(|pid| cpu_seconds(Some(pid))),
        ),
    }
}

fn row(name: &str, concurrency: usize, outcome: &Outcome) {
    let cores = |value: Option<f64>| value.map_or("–".to_owned(), |v| format!("{v:.2}"));
    println!(
        "| {name:<34} | {concurrency:>4} | {:>7} | {:>6} | {:>8} | {:>9.0} | {:>8.2} | {:>8.2} | {:>6} | {:>6} |",
        outcome.ops,
        outcome.errors,
        outcome.timeouts,
        outcome.rate(),
        outcome.percentile(0.50).as_secs_f64() * 1000.0,
        outcome.percentile(0.99).as_secs_f64() * 1000.0,
        cores(outcome.broker_cores),
        cores(outcome.client_cores),
    );
    if RAN_DRY.swap(false, Ordering::Relaxed) {
        println!("|   ↳ presealed envelopes ran out early: the rate above is a lower bound (see PRESEALED_PER_SECOND)");
    }
}

/// The two organisations and their logged-in agents: `buyers[i]` (org A) talks to
/// `sellers[i]` (org B).
struct World {
    api: BrokerApi,
    buyers: Vec<AgentIdentity>,
    buyer_sessions: Vec<AgentSession>,
    seller_sessions: Vec<AgentSession>,
}

async fn setup(api: BrokerApi, agents: usize) -> World {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let pdp = messaging::pdp("allow").await;
    let buyer_org = api
        .onboard_with_webhook(&format!("benchbuy{tag}"), Some(&pdp))
        .await;
    let seller_org = api
        .onboard_with_webhook(&format!("benchsell{tag}"), Some(&pdp))
        .await;
    eprintln!(
        "registering {agents} agents in each of two orgs at {} …",
        api.base
    );
    let buyers = register(&api, &buyer_org, "buyer", agents).await;
    let sellers = register(&api, &seller_org, "seller", agents).await;
    World {
        buyer_sessions: login_all(&api, &buyers).await,
        seller_sessions: login_all(&api, &sellers).await,
        buyers,
        api,
    }
}

async fn register(
    api: &BrokerApi,
    org: &OrgIdentity,
    role: &str,
    count: usize,
) -> Vec<AgentIdentity> {
    let mut agents = Vec::new();
    for i in 0..count {
        agents.push(
            api.register_agent(org, &format!("{role}{i}"), &["bench.trade"])
                .await,
        );
    }
    agents
}

async fn login_all(api: &BrokerApi, agents: &[AgentIdentity]) -> Vec<AgentSession> {
    let mut sessions = Vec::new();
    for agent in agents {
        sessions.push(
            agent
                .login(&api.base, &api.http)
                .await
                .expect("initial login"),
        );
    }
    sessions
}

/// `count` active sessions, pair i between buyer i and seller i.
async fn open_sessions(world: &World, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let seller = &world.seller_sessions[i];
        let org = seller.agent_id().split("::").next().unwrap().to_owned();
        ids.push(
            messaging::open_active_session(
                &world.buyer_sessions[i],
                seller,
                seller.agent_id(),
                &org,
                &["bench.trade"],
            )
            .await,
        );
    }
    ids
}

/// Envelopes sealed ahead of a timed run: `per_worker` for each of `sessions`.
async fn presealed(
    world: &World,
    sessions: &[String],
    per_worker: usize,
    next_client_seq: &mut u64,
) -> Vec<Mutex<Vec<Value>>> {
    let mut pools = Vec::new();
    for (i, session_id) in sessions.iter().enumerate() {
        let seller_key = messaging::public_key(
            &world.buyer_sessions[i],
            world.seller_sessions[i].agent_id(),
        )
        .await;
        let mut pool = Vec::with_capacity(per_worker);
        for _ in 0..per_worker {
            let payload = json!({"order": "PO-1", "items": [{"sku": "WIDGET-42", "qty": 100}]});
            pool.push(messaging::seal(
                &world.buyers[i],
                &seller_key,
                session_id,
                &payload,
                *next_client_seq,
            ));
            *next_client_seq += 1;
        }
        pool.reverse();
        pools.push(Mutex::new(pool));
    }
    pools
}

/// How many envelopes a worker may need in one run: generous for the measured peak.
/// Sends per second the presealed envelopes last for (the relay scenarios get half each).
const PRESEALED_PER_SECOND: usize = 12_000;

fn pool_size(seconds: u64, workers: usize) -> usize {
    (seconds as usize * PRESEALED_PER_SECOND / workers).clamp(200, 100_000)
}

/// The OTLP receiver of an `--otel` run.
static OTLP: std::sync::OnceLock<cullis_e2e::otlp::OtlpReceiver> = std::sync::OnceLock::new();

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let (_broker, api) = match (args.spawn, &args.broker_url) {
        (Some(store), _) => {
            let store = match store {
                Spawn::Sqlite => Store::Sqlite,
                Spawn::Postgres => Store::PostgresRedis,
            };
            let mut options = Options::default()
                .env("RATE_LIMITS", "off")
                .env("RUST_LOG", "error")
                .env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true");
            if args.otel {
                let receiver = cullis_e2e::otlp::OtlpReceiver::start_counting().await;
                options = options
                    .env("OTEL_ENABLED", "true")
                    .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
                    .env("OTEL_TRACES_SAMPLER_ARG", "1.0")
                    .env("PROMETHEUS_ENABLED", "true");
                let _ = OTLP.set(receiver);
            }
            let broker = TestBroker::start_with(store, options).await;
            let _ = BROKER_PID.set(broker.pid());
            let api = broker.api.clone();
            (Some(broker), api)
        }
        (None, Some(url)) => (
            None,
            BrokerApi::new(url, args.admin_secret.as_deref().expect("--admin-secret")),
        ),
        (None, None) => {
            eprintln!(
                "cullis-bench: give --broker-url URL --admin-secret S, or --spawn sqlite|postgres"
            );
            std::process::exit(2);
        }
    };
    if let Some(pid) = args.broker_pid {
        let _ = BROKER_PID.set(pid);
    }
    let runs = |scenario: Scenario| args.only.is_empty() || args.only.contains(&scenario);
    if runs(Scenario::Half) && !runs(Scenario::Poll) {
        eprintln!("cullis-bench: --only half needs poll too (it paces at half of the poll peak)");
        std::process::exit(2);
    }
    let max_sessions = args.sessions.iter().copied().max().unwrap_or(1);
    let max_clients = args.concurrency.iter().copied().max().unwrap_or(1);
    let world = Arc::new(setup(api, max_sessions.max(max_clients)).await);
    let duration = Duration::from_secs(args.seconds);

    println!(
        "\nbroker: {}   ({} s per scenario)\n",
        world.api.base, args.seconds
    );
    println!("| scenario                           | conc |     ops | errors | timeouts |     ops/s |  p50 ms  |  p99 ms  | broker | client |");
    println!("|------------------------------------|------|---------|--------|----------|-----------|----------|----------|--------|--------|");
    for &concurrency in args.concurrency.iter().filter(|_| runs(Scenario::Login)) {
        row(
            "login (assertion + DPoP)",
            concurrency,
            &bench_login(&world, concurrency, duration).await,
        );
    }
    for &concurrency in args.concurrency.iter().filter(|_| runs(Scenario::Get)) {
        row(
            "authenticated GET (DPoP)",
            concurrency,
            &bench_get(&world, concurrency, duration).await,
        );
    }
    for &concurrency in args.concurrency.iter().filter(|_| runs(Scenario::Open)) {
        row(
            "session open (2 webhook PDPs)",
            concurrency,
            &bench_session_open(&world, concurrency, duration).await,
        );
    }
    let mut client_seq = 0;
    let mut peak: Option<(usize, Outcome)> = None;
    let messaging = [Scenario::Send, Scenario::Poll, Scenario::Ws];
    for &sessions in args
        .sessions
        .iter()
        .filter(|_| messaging.into_iter().any(runs))
    {
        let ids = Arc::new(open_sessions(&world, sessions).await);
        if runs(Scenario::Send) {
            let send = bench_send(&world, &ids, duration, &mut client_seq).await;
            row("message send (sealed E2E)", sessions, &send);
        }
        if runs(Scenario::Poll) {
            let poll = bench_relay_poll(&world, &ids, duration, &mut client_seq, None).await;
            row("relay: send + poll delivery", sessions, &poll);
            if peak
                .as_ref()
                .is_none_or(|(_, best)| poll.rate() > best.rate())
            {
                peak = Some((sessions, poll));
            }
        }
        if runs(Scenario::Ws) {
            let push = bench_relay_ws(&world, &ids, duration, &mut client_seq).await;
            row("relay: send + WebSocket push", sessions, &push);
        }
    }
    if let Some((sessions, best)) = peak.filter(|_| runs(Scenario::Half)) {
        // Half of the peak relay rate, spread evenly over the same sessions (open loop).
        let ids = Arc::new(open_sessions(&world, sessions).await);
        let per_worker = best.rate() / 2.0 / sessions as f64;
        let pace = Duration::from_secs_f64(1.0 / per_worker.max(1.0));
        let half = bench_relay_poll(&world, &ids, duration, &mut client_seq, Some(pace)).await;
        row("relay at half of peak (paced)", sessions, &half);
    }
    println!(
        "\naims (DESIGN.md, 2-core machine): logins ≥ 1,500/s, authenticated requests ≥ 5,000/s, \
         messages relayed ≥ 3,000/s, p99 < 5 ms at half of peak"
    );
    if let Some(receiver) = OTLP.get() {
        // Let the last batch leave the broker's queue.
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "--otel: {} spans and {} export requests received over OTLP/gRPC (sampling 1.0)",
            receiver.span_count(),
            receiver.requests()
        );
    }
}

async fn bench_login(world: &Arc<World>, concurrency: usize, duration: Duration) -> Outcome {
    let nonce = world.buyer_sessions[0].nonce();
    let world = world.clone();
    let login = Arc::new(move |worker: usize| {
        let (world, nonce) = (world.clone(), nonce.clone());
        async move {
            let login = world.buyers[worker].try_login(&world.api.base, &world.api.http, nonce);
            matches!(login.await, Ok(Ok(_)))
        }
    });
    measure(concurrency, duration, None, login).await
}

async fn bench_get(world: &Arc<World>, concurrency: usize, duration: Duration) -> Outcome {
    let world = world.clone();
    let get = Arc::new(move |worker: usize| {
        let world = world.clone();
        async move {
            let session = &world.buyer_sessions[worker];
            let path = format!("/v1/registry/agents/{}", session.agent_id());
            call(session, Method::GET, &path, None).await.0 == StatusCode::OK
        }
    });
    measure(concurrency, duration, None, get).await
}

async fn bench_session_open(world: &Arc<World>, concurrency: usize, duration: Duration) -> Outcome {
    let world = world.clone();
    let open = Arc::new(move |worker: usize| {
        let world = world.clone();
        async move {
            let seller = world.seller_sessions[worker].agent_id();
            let org = seller.split("::").next().unwrap();
            let body = json!({"target_agent_id": seller, "target_org_id": org, "requested_capabilities": ["bench.trade"]});
            let session = &world.buyer_sessions[worker];
            let (status, _) = call(session, Method::POST, "/v1/broker/sessions", Some(body)).await;
            status == StatusCode::CREATED
        }
    });
    measure(concurrency, duration, None, open).await
}

async fn bench_send(
    world: &Arc<World>,
    sessions: &Arc<Vec<String>>,
    duration: Duration,
    client_seq: &mut u64,
) -> Outcome {
    let size = pool_size(duration.as_secs(), sessions.len());
    let pools = Arc::new(presealed(world, sessions, size, client_seq).await);
    let world = world.clone();
    let send = Arc::new(move |worker: usize| {
        let (world, pools) = (world.clone(), pools.clone());
        async move { send_next(&world, &pools, worker).await.is_some() }
    });
    measure(sessions.len(), duration, None, send).await
}

/// Buyer `worker` posts its next presealed envelope; the envelope when the broker accepted it.
async fn send_next(world: &World, pools: &[Mutex<Vec<Value>>], worker: usize) -> Option<Value> {
    let Some(envelope) = pools[worker].lock().await.pop() else {
        RAN_DRY.store(true, Ordering::Relaxed);
        return None;
    };
    let session_id = envelope["session_id"].as_str().unwrap_or_default();
    let path = format!("/v1/broker/sessions/{session_id}/messages");
    let sender = &world.buyer_sessions[worker];
    let (status, _) = call(sender, Method::POST, &path, Some(envelope.clone())).await;
    (status == StatusCode::ACCEPTED).then_some(envelope)
}

/// An authenticated call whose transport failure is an answer (a 502), not a panic: the
/// bench counts it as an error of its row.
async fn call(
    session: &AgentSession,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    match session.try_call_raw(method, path, body.as_ref()).await {
        Ok((status, bytes)) => (status, serde_json::from_slice(&bytes).unwrap_or_default()),
        Err(_) => (TRANSPORT_FAILED, Value::Null),
    }
}

/// The status a transport failure (refused, reset, cut off) is reported as.
const TRANSPORT_FAILED: StatusCode = StatusCode::BAD_GATEWAY;

/// One relay = the buyer sends, then the seller polls until that message is there.
async fn bench_relay_poll(
    world: &Arc<World>,
    sessions: &Arc<Vec<String>>,
    duration: Duration,
    client_seq: &mut u64,
    pace: Option<Duration>,
) -> Outcome {
    let size = pool_size(duration.as_secs(), sessions.len()) / 2;
    let pools = Arc::new(presealed(world, sessions, size, client_seq).await);
    let last_seen: Arc<Vec<Mutex<i64>>> =
        Arc::new((0..sessions.len()).map(|_| Mutex::new(i64::MAX)).collect());
    let workers = sessions.len();
    let (world, sessions) = (world.clone(), sessions.clone());
    let relay = Arc::new(move |worker: usize| {
        let (world, pools, sessions, last_seen) = (
            world.clone(),
            pools.clone(),
            sessions.clone(),
            last_seen.clone(),
        );
        async move {
            let Some(envelope) = send_next(&world, &pools, worker).await else {
                return false;
            };
            let mut last = last_seen[worker].lock().await;
            let after = if *last == i64::MAX { -1 } else { *last };
            let path = format!(
                "/v1/broker/sessions/{}/messages?after={after}",
                sessions[worker]
            );
            for _ in 0..100 {
                let (status, messages) =
                    call(&world.seller_sessions[worker], Method::GET, &path, None).await;
                let found = messages.as_array().and_then(|list| {
                    list.iter()
                        .find(|m| m["nonce"] == envelope["nonce"])
                        .and_then(|m| m["seq"].as_i64())
                });
                if let (StatusCode::OK, Some(seq)) = (status, found) {
                    *last = seq;
                    return true;
                }
            }
            false
        }
    });
    measure(workers, duration, pace, relay).await
}

/// One relay = the buyer sends, then the seller's socket receives the `new_message` push.
async fn bench_relay_ws(
    world: &Arc<World>,
    sessions: &Arc<Vec<String>>,
    duration: Duration,
    client_seq: &mut u64,
) -> Outcome {
    let size = pool_size(duration.as_secs(), sessions.len()) / 2;
    let pools = Arc::new(presealed(world, sessions, size, client_seq).await);
    let mut sockets = Vec::new();
    for i in 0..sessions.len() {
        sockets.push(Mutex::new(
            ws::authed(&world.seller_sessions[i], &world.api.base).await,
        ));
    }
    let sockets = Arc::new(sockets);
    let world = world.clone();
    let relay = Arc::new(move |worker: usize| {
        let (world, pools, sockets) = (world.clone(), pools.clone(), sockets.clone());
        async move {
            let Some(envelope) = send_next(&world, &pools, worker).await else {
                return false;
            };
            let mut socket = sockets[worker].lock().await;
            loop {
                match ws::next(&mut socket).await {
                    // Push frames carry the ciphertext, not the nonce.
                    Ok(frame)
                        if frame["message"]["payload"]["ciphertext"]
                            == envelope["payload"]["ciphertext"] =>
                    {
                        return true
                    }
                    Ok(_) => continue,
                    Err(_) => return false,
                }
            }
        }
    });
    measure(sessions.len(), duration, None, relay).await
}
