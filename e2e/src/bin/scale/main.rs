//! `cullis-scale`: the scale harness of issue 18 — "100,000 agents, 10,000 live WebSockets,
//! discovery in milliseconds, bounded memory".
//!
//! It builds a network through the public API only (onboard orgs, register agents with
//! bindings at the broker's bcrypt cost), then measures, stage by stage, what the issue sets
//! aims for: registration rate, discovery latency and throughput (narrow, broad, a paginated
//! walk), session opens, the broker's memory with sessions and live sockets (and per idle
//! socket), send → push latency across the sockets, the WebSocket cap, and memory after
//! everything is closed. After every stage it prints the broker's VmRSS and VmHWM; at the end
//! a table of the aims next to the measured values.
//!
//! Any broker that speaks the wire protocol can be measured: errors and timeouts are counted
//! per stage (every request has a timeout), never a panic, and a registration too slow to
//! finish is cut at `--populate-timeout-seconds` and the run goes on with the agents it got.
//! The harness shares the machine with the broker, so its numbers are a floor for the broker.

mod discovery;
mod measure;
mod sessions;
mod sockets;
mod world;

use clap::{Parser, ValueEnum};
use cullis_e2e::client::AgentSession;
use cullis_e2e::stack::{Options, Store, TestBroker};
use measure::{cores, memory, memory_text, ms, Mem, Timed};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use world::{Agent, Broker, Net, Plan, Population};

/// Scale harness for Cullis brokers (issue 18): registration rate, discovery latency at
/// tens of thousands of agents, session opens, memory per live WebSocket, push latency,
/// the socket cap, and memory at rest, with the aims next to the results.
#[derive(Debug, Parser)]
#[command(name = "cullis-scale", version)]
struct Args {
    /// Start the cullis-broker binary (next to this one, or in CULLIS_BIN_DIR) on this store,
    /// at BCRYPT_COST=12 with rate limits off.
    #[arg(long, value_enum, conflicts_with = "broker_url")]
    spawn: Option<Spawn>,
    /// URL of a running broker (e.g. http://127.0.0.1:8000) instead of --spawn. It must allow
    /// the harness's PDP webhook on 127.0.0.1 (POLICY_WEBHOOK_ALLOW_PRIVATE_IPS=true), have
    /// rate limits off and WS_MAX_CONNECTIONS_PER_ORG ≥ the sockets per org.
    #[arg(long, requires = "admin_secret")]
    broker_url: Option<String>,
    /// The broker's ADMIN_SECRET (with --broker-url).
    #[arg(long, env = "ADMIN_SECRET")]
    admin_secret: Option<String>,
    /// Process id of the broker at --broker-url on this machine, for its memory (VmRSS,
    /// VmHWM) and CPU from /proc.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Organisations to onboard (each with the harness's allow-all webhook PDP); at least 2.
    #[arg(long, default_value_t = 10)]
    orgs: usize,
    /// Agents to register, in total across the orgs.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Sessions to open (and keep open), each between agents of two different orgs.
    #[arg(long, default_value_t = 1_000)]
    sessions: usize,
    /// WebSockets to open and hold, one per agent (session targets first).
    #[arg(long, default_value_t = 1_000)]
    websockets: usize,
    /// Concurrent clients for the timed scenarios (discovery, push fan-out) and session opens.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each timed scenario runs (also the idle-socket CPU reading).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Seconds to wait after closing everything before the last memory reading.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// Registrations (and logins) in flight at once.
    #[arg(long, default_value_t = 32)]
    register_concurrency: usize,
    /// Registration stops after this long; the run goes on with the agents registered by
    /// then (a broker at ~1 agent/s would otherwise take hours).
    #[arg(long, default_value_t = 900)]
    populate_timeout_seconds: u64,
    /// Timeout of every HTTP request; a request past it counts as a timeout.
    #[arg(long, default_value_t = 30)]
    request_timeout_seconds: u64,
    /// WebSocket upgrades (with their auth) in flight at once while opening.
    #[arg(long, default_value_t = 64)]
    ws_open_concurrency: usize,
    /// With --spawn: the broker's BCRYPT_COST. The registration aim is at the default, 12;
    /// a lower cost only fills an old broker faster so later stages run at full size, and
    /// the summary then says the registration rate is not comparable.
    #[arg(long, default_value_t = 12, requires = "spawn")]
    bcrypt_cost: u32,
    /// With --spawn: WS_MAX_CONNECTIONS is set to --websockets plus this, and the cap check
    /// opens this many + 20 more sockets, expecting the last 20 refused.
    #[arg(long, default_value_t = 100)]
    ws_cap_headroom: usize,
    /// The WS_MAX_CONNECTIONS of the broker at --broker-url, to run the cap check against it.
    #[arg(long, conflicts_with = "spawn")]
    ws_cap: Option<usize>,
    /// Skip the WebSocket cap check.
    #[arg(long)]
    no_cap_check: bool,
    /// `limit` for the broad query's first page (default: none — the broker's own first page,
    /// what a client that does not paginate gets).
    #[arg(long)]
    broad_limit: Option<usize>,
    /// Page size of the full walk of the broad result.
    #[arg(long, default_value_t = 500)]
    walk_limit: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Spawn {
    /// A fresh SQLite file, in-process stores.
    Sqlite,
    /// A fresh PostgreSQL database on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.
    Postgres,
}

/// The load generator shares the machine with the broker: mimalloc keeps its CPU down (as
/// in cullis-bench), leaving more of the cores to what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Extra sockets the cap check tries beyond the room left under the cap.
const CAP_OVERSHOOT: usize = 20;

/// Everything measured, for the summary.
#[derive(Default)]
struct Report {
    baseline: Option<Mem>,
    populate: Option<Populated>,
    discovery: Option<discovery::DiscoveryResult>,
    sessions: Option<sessions::SessionsResult>,
    sockets: Option<SocketsResult>,
    idle: Option<IdleResult>,
    /// Agents registered (the scale the other numbers were measured at).
    agents: usize,
}

struct Populated {
    cpu: measure::CpuUse,
    requested: usize,
    registered: usize,
    rate: f64,
    cut_short: bool,
    seconds: f64,
}

struct SocketsResult {
    open: sockets::OpenResult,
    /// Broker RSS before opening and with every socket open (after a settle), in KiB.
    before: Option<Mem>,
    after: Option<Mem>,
    /// Broker CPU while the sockets sat idle for --seconds, in cores.
    idle_cores: Option<f64>,
    fanout: Option<Timed>,
    fanout_sockets: usize,
    cap: Option<sockets::CapCheck>,
    dropped: usize,
}

impl SocketsResult {
    /// Broker memory per open socket, in KiB.
    fn per_socket_kib(&self) -> Option<f64> {
        let (before, after) = (self.before?, self.after?);
        let open = self.open.tally.oks();
        (open > 0).then(|| (after.rss_kib as f64 - before.rss_kib as f64) / open as f64)
    }
}

struct IdleResult {
    closed_sockets: usize,
    dropped_sockets: usize,
    closed_sessions: usize,
    mem: Option<Mem>,
    seconds: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.orgs < 2 {
        fail("--orgs must be at least 2 (discovery and sessions cross organisations)");
    }
    if args.clients == 0 || args.register_concurrency == 0 || args.walk_limit == 0 {
        fail("--clients, --register-concurrency and --walk-limit must be positive");
    }
    let broker = connect(&args).await;
    let needed = args.clients
        + 2 * args.sessions
        + args.websockets.saturating_sub(2 * args.sessions)
        + if args.no_cap_check {
            0
        } else {
            args.ws_cap_headroom + CAP_OVERSHOOT
        };
    if needed > args.agents {
        println!(
            "note: the stages want {needed} distinct agents and --agents is {}: they will use fewer",
            args.agents
        );
    }
    println!(
        "cullis-scale: broker {} (pid {}), BCRYPT_COST {}, {} orgs, {} agents, {} sessions, {} websockets, {} clients, {} s per timed scenario",
        broker.net.base,
        broker.pid.map_or("unknown".to_owned(), |p| p.to_string()),
        broker.bcrypt_cost.map_or("as the broker has it".to_owned(), |c| c.to_string()),
        args.orgs,
        args.agents,
        args.sessions,
        args.websockets,
        args.clients,
        args.seconds
    );
    let seconds = Duration::from_secs(args.seconds);
    let mut report = Report::default();

    stage("1. baseline");
    report.baseline = memory(broker.pid);
    println!("  broker at rest, nothing registered");
    after_stage(&broker);

    stage("2. populate");
    let Some((population, populated)) = populate(&broker, &args).await else {
        // Stops a spawned broker (exit skips destructors).
        drop(broker);
        fail("no organisation could be onboarded: nothing to measure");
    };
    report.agents = populated.registered;
    report.populate = Some(populated);
    after_stage(&broker);
    let population = Arc::new(population);
    let mut used: HashSet<usize> = HashSet::new();

    stage("3. discovery");
    let callers: Vec<usize> = population
        .registered()
        .filter(|&j| population.plan.org_of(j) == 0)
        .take(args.clients)
        .collect();
    used.extend(&callers);
    let (callers, logins) = world::login_all(
        &broker,
        &population,
        &callers,
        args.register_concurrency,
        "callers logged in",
    )
    .await;
    let callers: Vec<Agent> = callers.into_iter().flatten().collect();
    println!(
        "  {} callers in org 0 logged in ({})",
        callers.len(),
        logins.failures()
    );
    let callers = Arc::new(callers);
    if callers.is_empty() {
        println!("  no caller could log in: discovery skipped");
    } else {
        let result = discovery::run(
            &broker,
            &population,
            callers.clone(),
            args.clients,
            seconds,
            args.broad_limit,
            args.walk_limit,
        )
        .await;
        if let Some(peak) = result.rss_peak_mib {
            println!("  broker RSS peak during discovery: {peak:.1} MiB");
        }
        report.discovery = Some(result);
    }
    after_stage(&broker);

    stage("4. sessions");
    let (pairs, result) = sessions::run(
        &broker,
        &population,
        &used,
        args.sessions,
        args.clients,
        args.register_concurrency,
    )
    .await;
    for pair in &pairs {
        used.extend([pair.initiator.index, pair.target.index]);
    }
    println!(
        "  opened {} of {} sessions (open + accept) in {:.1} s = {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {}",
        result.opened,
        result.pairs,
        result.elapsed.as_secs_f64(),
        result.rate(),
        ms(result.p50),
        ms(result.p99),
        result.tally.failures()
    );
    report.sessions = Some(result);
    after_stage(&broker);
    let pairs = Arc::new(pairs);

    stage("5. websockets");
    let (held, result) = websockets(&broker, &args, &population, &pairs, &mut used).await;
    report.sockets = Some(result);
    after_stage(&broker);

    stage("6. idle");
    report.idle = Some(idle(&broker, &args, held, &pairs).await);
    drop(pairs);
    drop(callers);
    after_stage(&broker);

    summary(&args, &broker, &report);
}

fn fail(message: &str) -> ! {
    eprintln!("cullis-scale: {message}");
    std::process::exit(2);
}

fn stage(name: &str) {
    println!("\n== {name}");
}

fn after_stage(broker: &Broker) {
    println!("  broker memory: {}", memory_text(broker.pid));
}

/// The broker to measure: spawned with the settings the aims assume, or the one at --broker-url.
async fn connect(args: &Args) -> Broker {
    let timeout = Duration::from_secs(args.request_timeout_seconds);
    match (args.spawn, &args.broker_url) {
        (Some(spawn), _) => {
            let store = match spawn {
                Spawn::Sqlite => Store::Sqlite,
                Spawn::Postgres => Store::PostgresRedis,
            };
            let cap = args.websockets + args.ws_cap_headroom;
            // The per-org cap must never be what stops the harness's sockets (the cap check
            // is about the whole replica's).
            let per_org = cap + CAP_OVERSHOOT + 100;
            let options = Options::default()
                // TestBroker lowers bcrypt for fast tests; the registration aim is at 12.
                .env("BCRYPT_COST", &args.bcrypt_cost.to_string())
                .env("RATE_LIMITS", "off")
                .env("RUST_LOG", "error")
                .env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
                .env("WS_MAX_CONNECTIONS_PER_ORG", &per_org.to_string())
                // Ignored by brokers that predate the setting.
                .env("WS_MAX_CONNECTIONS", &cap.to_string());
            let spawned = TestBroker::start_with(store, options).await;
            Broker {
                net: Net::new(&spawned.api.base, &spawned.api.admin_secret, timeout),
                pid: Some(spawned.pid()),
                ws_cap: Some(cap),
                bcrypt_cost: Some(args.bcrypt_cost),
                separate_store: store == Store::PostgresRedis,
                _spawned: Some(spawned),
            }
        }
        (None, Some(url)) => Broker {
            net: Net::new(
                url,
                args.admin_secret.as_deref().unwrap_or_default(),
                timeout,
            ),
            pid: args.broker_pid,
            ws_cap: args.ws_cap,
            bcrypt_cost: None,
            separate_store: false,
            _spawned: None,
        },
        (None, None) => fail("give --spawn sqlite|postgres, or --broker-url URL --admin-secret S"),
    }
}

/// Stage 2: onboard the orgs, then register the agents with bounded concurrency until done
/// or the populate timeout.
async fn populate(broker: &Broker, args: &Args) -> Option<(Population, Populated)> {
    let webhook = cullis_e2e::messaging::pdp("allow").await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let mut orgs = Vec::new();
    let start = Instant::now();
    for k in 0..args.orgs {
        match world::onboard(&broker.net, &format!("scale{tag}o{k}"), &webhook).await {
            Ok(org) => orgs.push(org),
            Err(error) => println!("  onboarding org {k} failed: {error}"),
        }
    }
    println!(
        "  onboarded {} of {} orgs in {:.1} s (invite, join with PDP webhook, approve)",
        orgs.len(),
        args.orgs,
        start.elapsed().as_secs_f64()
    );
    if orgs.len() < 2 {
        return None;
    }
    // The plan spreads agents over the orgs that exist.
    let plan = Plan::new(orgs.len(), args.agents);
    let (population, registered) = world::register_all(
        broker,
        plan,
        orgs,
        args.register_concurrency,
        Duration::from_secs(args.populate_timeout_seconds),
    )
    .await;
    let count = population.registered_count();
    println!(
        "  registered {count} of {} agents (register + binding + approve, {} in flight) in {:.1} s = {:.1} agents/s, {}, {}",
        args.agents,
        args.register_concurrency,
        registered.elapsed.as_secs_f64(),
        registered.rate(),
        registered.cpu.text(),
        registered.tally.failures()
    );
    if registered.cut_short {
        println!(
            "  stopped at --populate-timeout-seconds {}: the run goes on with {count} agents \
             (all of them would take about {:.0} s at this rate)",
            args.populate_timeout_seconds,
            args.agents as f64 / registered.rate().max(1e-9)
        );
    }
    let populated = Populated {
        cpu: registered.cpu,
        requested: args.agents,
        registered: count,
        rate: registered.rate(),
        cut_short: registered.cut_short,
        seconds: registered.elapsed.as_secs_f64(),
    };
    Some((population, populated))
}

/// The sockets held open through stage 5, for stage 6 to close.
struct Held {
    sockets: sockets::Sockets,
    /// Agents logged in for sockets only (their sessions end with the stage).
    _extra: Vec<Agent>,
}

/// Stage 5: open and hold the sockets, read memory and idle CPU, push across them, check the cap.
async fn websockets(
    broker: &Broker,
    args: &Args,
    population: &Arc<Population>,
    pairs: &Arc<Vec<sessions::Pair>>,
    used: &mut HashSet<usize>,
) -> (Held, SocketsResult) {
    // Session targets first (the fan-out pushes to them), then initiators, then fresh agents.
    let mut holders: Vec<Arc<AgentSession>> = Vec::new();
    let mut target_of: Vec<Option<usize>> = Vec::new();
    for (k, pair) in pairs.iter().enumerate() {
        if pair.session_id.is_some() && holders.len() < args.websockets {
            holders.push(pair.target.session.clone());
            target_of.push(Some(k));
        }
    }
    for pair in pairs.iter() {
        if holders.len() < args.websockets {
            holders.push(pair.initiator.session.clone());
            target_of.push(None);
        }
    }
    let fresh: Vec<usize> = free(population, used, args.websockets - holders.len());
    used.extend(&fresh);
    let (extra, logins) = world::login_all(
        broker,
        population,
        &fresh,
        args.register_concurrency,
        "socket agents logged in",
    )
    .await;
    let extra: Vec<Agent> = extra.into_iter().flatten().collect();
    if !fresh.is_empty() {
        println!(
            "  logged in {} more agents for sockets ({})",
            extra.len(),
            logins.failures()
        );
    }
    for agent in &extra {
        holders.push(agent.session.clone());
        target_of.push(None);
    }

    // Memory before and after opening, each after a settle: the difference is the sockets'.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = memory(broker.pid);
    let (held, open) = sockets::open_all(
        &broker.net.base,
        &holders,
        args.ws_open_concurrency,
        broker.pid,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = memory(broker.pid);
    let mut result = SocketsResult {
        before,
        after,
        idle_cores: None,
        fanout: None,
        fanout_sockets: 0,
        cap: None,
        dropped: 0,
        open,
    };
    println!(
        "  opened {} of {} sockets (upgrade + first-frame auth, {} in flight) in {:.1} s = {:.0}/s, {}",
        result.open.tally.oks(),
        result.open.tried,
        args.ws_open_concurrency,
        result.open.elapsed.as_secs_f64(),
        result.open.rate(),
        result.open.tally.failures()
    );
    if let (Some(before), Some(after), Some(per)) = (before, after, result.per_socket_kib()) {
        println!(
            "  broker RSS {:.1} → {:.1} MiB with the sockets open: {per:.1} KiB per socket",
            before.rss_mib(),
            after.rss_mib()
        );
    }

    // Idle: what holding the sockets costs in CPU when nothing happens.
    let hold = measure::CpuMark::now(broker.pid);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let idle_cpu = hold.since();
    result.idle_cores = idle_cpu.broker;
    println!(
        "  {} idle sockets held {} s: {}, {}",
        held.len(),
        args.seconds,
        idle_cpu.text(),
        memory_text(broker.pid)
    );

    // Fan-out: sends whose push lands on the session targets' sockets.
    let targets: Vec<usize> = target_of
        .iter()
        .zip(&result.open.open)
        .filter_map(|(k, open)| k.filter(|_| *open))
        .collect();
    result.fanout_sockets = targets.len();
    if targets.is_empty() {
        println!("  no session target holds a socket: fan-out skipped");
    } else {
        let sampler = measure::Sampler::start(broker.pid);
        let fanout = sockets::fanout(
            pairs,
            targets,
            &held,
            args.clients,
            Duration::from_secs(args.seconds),
            broker.pid,
        )
        .await;
        println!(
            "  push fan-out over {} sockets, send → push at the socket: {}",
            result.fanout_sockets,
            fanout.line()
        );
        if let Some(peak) = sampler.peak_mib() {
            println!("  broker RSS peak during fan-out: {peak:.1} MiB");
        }
        result.fanout = Some(fanout);
    }

    // The cap: past WS_MAX_CONNECTIONS, upgrades should be refused (HTTP 503).
    match broker.ws_cap.filter(|_| !args.no_cap_check) {
        None => println!("  cap check skipped (cap unknown: give --ws-cap with --broker-url)"),
        Some(cap) => {
            let room = cap.saturating_sub(held.len());
            let fresh = free(population, used, room + CAP_OVERSHOOT);
            used.extend(&fresh);
            let (cap_agents, _) = world::login_all(
                broker,
                population,
                &fresh,
                args.register_concurrency,
                "cap agents logged in",
            )
            .await;
            let cap_agents: Vec<Agent> = cap_agents.into_iter().flatten().collect();
            let check = sockets::cap_check(&broker.net.base, &cap_agents, cap, held.len()).await;
            println!(
                "  cap WS_MAX_CONNECTIONS={cap} with {} held: {} more tried, {} opened, {} refused at upgrade{}, {} refused at auth, {}",
                check.held,
                check.tried,
                check.opened,
                check.refused,
                check
                    .first_refusal
                    .as_ref()
                    .map_or(String::new(), |(status, detail)| format!(" (HTTP {status}: {detail})")),
                check.auth_refused,
                check.failed.failures()
            );
            if check.tried <= room {
                println!(
                    "  → not a check: only {} agents were left for {} sockets of room under the cap (register more agents)",
                    check.tried, room
                );
            } else if check.refused == 0 {
                println!("  → the broker did not enforce a total socket cap");
            }
            result.cap = Some(check);
        }
    }
    result.dropped = held.dropped.done();
    if result.dropped > 0 {
        println!(
            "  {} held sockets were closed by the broker during the stage ({})",
            result.dropped,
            held.dropped.failures()
        );
    }
    (
        Held {
            sockets: held,
            _extra: extra,
        },
        result,
    )
}

/// `count` registered agents not used yet, in registration order.
fn free(population: &Population, used: &HashSet<usize>, count: usize) -> Vec<usize> {
    population
        .registered()
        .filter(|j| !used.contains(j))
        .take(count)
        .collect()
}

/// Stage 6: close the sockets and the sessions, let go of every connection, wait, read memory.
async fn idle(
    broker: &Broker,
    args: &Args,
    held: Held,
    pairs: &Arc<Vec<sessions::Pair>>,
) -> IdleResult {
    let (closed_sockets, dropped_sockets) =
        sockets::close_all(held.sockets, args.ws_open_concurrency).await;
    drop(held._extra);
    let closes = sessions::close_all(pairs, args.clients).await;
    println!(
        "  closed {closed_sockets} sockets ({dropped_sockets} did not close in time and were dropped), {} sessions ({})",
        closes.oks(),
        closes.failures()
    );
    let start = Instant::now();
    let end = start + Duration::from_secs(args.idle_seconds);
    while Instant::now() < end {
        let step = (end - Instant::now()).min(Duration::from_secs(5));
        tokio::time::sleep(step).await;
        println!(
            "    … idle {:.0} s: {}",
            start.elapsed().as_secs_f64(),
            memory_text(broker.pid)
        );
    }
    IdleResult {
        closed_sockets,
        dropped_sockets,
        closed_sessions: closes.oks(),
        mem: memory(broker.pid),
        seconds: args.idle_seconds,
    }
}

/// "met" / "NOT met", qualified when the run was smaller than the aim's scale.
fn verdict(met: bool, at_scale: bool) -> &'static str {
    match (met, at_scale) {
        (true, true) => "met",
        (false, true) => "NOT met",
        (true, false) => "met (smaller run)",
        (false, false) => "NOT met (smaller run)",
    }
}

fn summary(args: &Args, broker: &Broker, report: &Report) {
    let agents = report.agents;
    println!(
        "\n== summary: {agents} agents registered ({} asked), {} orgs, broker {}",
        args.agents, args.orgs, broker.net.base
    );
    println!("\n| measure | aim (issue 18) | measured | verdict |");
    println!("|---|---|---|---|");
    let row = |measure: &str, aim: &str, measured: String, verdict: &str| {
        println!("| {measure} | {aim} | {measured} | {verdict} |");
    };

    if let Some(populated) = &report.populate {
        let cost = broker.bcrypt_cost;
        let comparable = cost.is_none_or(|c| c == 12);
        let cost_text = cost.map_or("broker's cost".to_owned(), |c| format!("BCRYPT_COST={c}"));
        let cut = if populated.cut_short {
            format!(", cut at {:.0} s", populated.seconds)
        } else {
            String::new()
        };
        row(
            "registration (register + binding + approve)",
            "≥ 500 agents/s at BCRYPT_COST=12",
            format!(
                "{:.1} agents/s ({cost_text}, {} in flight; {} of {}{cut})",
                populated.rate,
                args.register_concurrency,
                populated.registered,
                populated.requested
            ),
            if comparable {
                verdict(populated.rate >= 500.0, true)
            } else {
                "not comparable (cost ≠ 12)"
            },
        );
    }

    if let Some(discovery) = &report.discovery {
        let big = agents >= 100_000;
        let (p50_aim, aim_text) = if big {
            (5.0, "p50 < 5 ms at 100,000 agents")
        } else {
            (2.0, "p50 < 2 ms at 10,000 agents")
        };
        let at_scale = agents >= 10_000;
        row(
            &format!(
                "discovery, narrow query ({} hits): latency",
                discovery.narrow_expected
            ),
            aim_text,
            format!(
                "p50 {:.2} ms, p99 {:.2} ms at {agents} agents",
                discovery.narrow.p50_ms(),
                discovery.narrow.p99_ms()
            ),
            verdict(
                discovery.narrow.p50_ms() < p50_aim && !discovery.narrow.latencies.is_empty(),
                at_scale,
            ),
        );
        row(
            "discovery, narrow query: throughput",
            "≥ 2,000 req/s at 10,000 agents",
            format!(
                "{:.0} req/s with {} clients (broker {} cores; errors {}, timeouts {})",
                discovery.narrow.rate(),
                args.clients,
                cores(discovery.narrow.cpu.broker),
                discovery.narrow.tally.errors(),
                discovery.narrow.tally.timeouts()
            ),
            verdict(discovery.narrow.rate() >= 2_000.0, at_scale),
        );
        row(
            "discovery, broad query (9 in 10 agents), first page",
            "—",
            format!(
                "{:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, {:.0} KiB and {} agents per answer of {} hits",
                discovery.broad.rate(),
                discovery.broad.p50_ms(),
                discovery.broad.p99_ms(),
                discovery.broad_bytes / 1024.0,
                discovery
                    .broad_listed
                    .map_or("?".to_owned(), |n| n.to_string()),
                discovery.broad_expected
            ),
            "",
        );
        let walk = &discovery.walk;
        row(
            "discovery, full walk of the broad result",
            &format!("pages (limit={}) add up to total", args.walk_limit),
            format!(
                "{} page(s) in {:.0} ms, {} listed / total {} ({})",
                walk.pages,
                ms(walk.elapsed),
                walk.listed,
                walk.total.map_or("?".to_owned(), |t| t.to_string()),
                walk.paging()
            ),
            match (walk.consistent(), walk.limit_ignored()) {
                (true, false) => "consistent",
                (true, true) => "NOT paginated",
                (false, _) => "INCONSISTENT",
            },
        );
        if let Some(peak) = discovery.rss_peak_mib {
            row(
                "broker RSS peak during discovery",
                "—",
                format!("{peak:.1} MiB"),
                "",
            );
        }
    }

    if let Some(sessions) = &report.sessions {
        row(
            "session opens (open + accept, 2 webhook PDPs)",
            "—",
            format!(
                "{} of {} in {:.1} s = {:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
                sessions.opened,
                sessions.requested,
                sessions.elapsed.as_secs_f64(),
                sessions.rate(),
                ms(sessions.p50),
                ms(sessions.p99)
            ),
            "",
        );
    }

    if let Some(sockets) = &report.sockets {
        let open = sockets.open.tally.oks();
        let opened_sessions = report.sessions.as_ref().map_or(0, |s| s.opened);
        let big = agents >= 100_000 && opened_sessions >= 10_000 && open >= 10_000;
        let (limit, aim) = if big {
            (
                512.0,
                "< 512 MiB (100,000 agents + 10,000 sessions + 10,000 sockets)",
            )
        } else {
            (
                100.0,
                "< 100 MiB (10,000 agents + 1,000 sessions + 1,000 sockets)",
            )
        };
        let at_scale = big || (agents >= 10_000 && opened_sessions >= 1_000 && open >= 1_000);
        if let Some(after) = sockets.after {
            row(
                "broker RSS, everything held",
                aim,
                format!(
                    "{:.1} MiB (HWM {:.1}) with {agents} agents + {opened_sessions} sessions + {open} sockets",
                    after.rss_mib(),
                    after.hwm_mib()
                ),
                verdict(after.rss_mib() < limit, at_scale),
            );
        }
        if let Some(per) = sockets.per_socket_kib() {
            row(
                "broker memory per idle socket",
                "< 16 KiB",
                format!("{per:.1} KiB (RSS delta over {open} sockets)"),
                if per < 0.0 {
                    "n/a (RSS fell while opening: the allocator returned older memory)"
                } else {
                    verdict(per < 16.0, open >= 1_000)
                },
            );
        }
        row(
            "socket opens (upgrade + auth)",
            "—",
            format!(
                "{open} of {} at {:.0}/s; {} closed by the broker while held",
                sockets.open.tried,
                sockets.open.rate(),
                sockets.dropped
            ),
            "",
        );
        row(
            "broker CPU with the sockets idle",
            "—",
            format!("{} cores", cores(sockets.idle_cores)),
            "",
        );
        if let Some(fanout) = &sockets.fanout {
            row(
                "push: send → new_message at the socket",
                "—",
                format!(
                    "p50 {:.2} ms, p99 {:.2} ms, {:.0} msgs/s over {} sockets ({} errors, {} timeouts)",
                    fanout.p50_ms(),
                    fanout.p99_ms(),
                    fanout.rate(),
                    sockets.fanout_sockets,
                    fanout.tally.errors(),
                    fanout.tally.timeouts()
                ),
                "",
            );
        }
        if let Some(cap) = &sockets.cap {
            let room = cap.cap.saturating_sub(cap.held);
            let enforced = cap.refused > 0 && cap.opened <= room;
            row(
                "WS_MAX_CONNECTIONS cap",
                "upgrades past the cap refused (HTTP 503)",
                format!(
                    "cap {}, {} held: {} more tried, {} opened, {} refused{}",
                    cap.cap,
                    cap.held,
                    cap.tried,
                    cap.opened,
                    cap.refused,
                    cap.first_refusal
                        .as_ref()
                        .map_or(String::new(), |(status, _)| format!(" (HTTP {status})"))
                ),
                if cap.tried <= room {
                    "not checked (too few agents left to pass the cap)"
                } else if enforced {
                    "met"
                } else {
                    "NOT met"
                },
            );
        }
    }

    // What else ran on the machine: on a shared box this says whether the CPU-bound numbers
    // above are the broker's or a neighbour's build.
    let mut others: Vec<(&str, Option<f64>)> = Vec::new();
    if let Some(populated) = &report.populate {
        others.push(("registration", populated.cpu.others));
    }
    if let Some(discovery) = &report.discovery {
        others.push(("narrow", discovery.narrow.cpu.others));
        others.push(("broad", discovery.broad.cpu.others));
    }
    if let Some(fanout) = report.sockets.as_ref().and_then(|s| s.fanout.as_ref()) {
        others.push(("push", fanout.cpu.others));
    }
    let worst = others
        .iter()
        .filter_map(|(_, o)| *o)
        .fold(None, |max: Option<f64>, o| {
            Some(max.map_or(o, |m| m.max(o)))
        });
    if let Some(worst) = worst {
        row(
            "CPU used by other processes during the measured stages",
            "≈ 0 (else CPU-bound numbers are low)",
            others
                .iter()
                .map(|(stage, o)| format!("{stage} {}", cores(*o)))
                .collect::<Vec<_>>()
                .join(", ")
                + " cores",
            if broker.separate_store {
                "includes PostgreSQL and Redis"
            } else if worst < 0.2 {
                "quiet"
            } else {
                "CONTENDED"
            },
        );
    }

    if let (Some(idle), Some(baseline)) = (&report.idle, report.baseline) {
        if let Some(mem) = idle.mem {
            row(
                "broker RSS at rest after closing everything",
                "back toward the baseline",
                format!(
                    "{:.1} MiB after {} s (baseline {:.1} MiB, HWM {:.1} MiB); closed {} sockets ({} forced), {} sessions",
                    mem.rss_mib(),
                    idle.seconds,
                    baseline.rss_mib(),
                    mem.hwm_mib(),
                    idle.closed_sockets,
                    idle.dropped_sockets,
                    idle.closed_sessions
                ),
                "",
            );
        }
    }
}
