//! Counting and timing: per-stage outcome tallies (ok / error / timeout, never a panic), worker
//! pools with bounded concurrency, timed closed-loop runs with latency percentiles, progress
//! lines, and the broker's memory and CPU read from `/proc`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why one operation did not succeed. Timeouts are kept apart: a broker that answers slowly
/// and one that answers wrongly need different fixes.
#[derive(Debug)]
pub enum Failure {
    Timeout,
    Error(String),
}

impl From<reqwest::Error> for Failure {
    fn from(error: reqwest::Error) -> Failure {
        if error.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Error(format!("transport: {error}"))
        }
    }
}

impl Failure {
    /// An HTTP answer that was not the expected one (body cut short for the report).
    pub fn status(what: &str, status: reqwest::StatusCode, body: &[u8]) -> Failure {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Failure::Error(format!("{what}: HTTP {} {text}", status.as_u16()))
    }
}

/// Outcomes of one stage, shared by its workers.
#[derive(Debug, Default)]
pub struct Tally {
    ok: AtomicUsize,
    errors: AtomicUsize,
    timeouts: AtomicUsize,
    /// The first error seen, so a failing broker says why in the report.
    first_error: Mutex<Option<String>>,
}

impl Tally {
    pub fn ok(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fail(&self, failure: Failure) {
        match failure {
            Failure::Timeout => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Failure::Error(text) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap();
                if first.is_none() {
                    *first = Some(text);
                }
            }
        }
    }

    pub fn record<T>(&self, outcome: &Result<T, Failure>) {
        match outcome {
            Ok(_) => self.ok(),
            Err(Failure::Timeout) => self.fail(Failure::Timeout),
            Err(Failure::Error(text)) => self.fail(Failure::Error(text.clone())),
        }
    }

    pub fn oks(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> usize {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn timeouts(&self) -> usize {
        self.timeouts.load(Ordering::Relaxed)
    }

    pub fn done(&self) -> usize {
        self.oks() + self.errors() + self.timeouts()
    }

    /// `errors 2, timeouts 0 (first error: …)`.
    pub fn failures(&self) -> String {
        let first = self.first_error.lock().unwrap().clone();
        let mut text = format!("errors {}, timeouts {}", self.errors(), self.timeouts());
        if let Some(first) = first {
            text.push_str(&format!(" (first error: {first})"));
        }
        text
    }
}

/// Runs `work(i)` for i in `0..count` from `concurrency` workers, each taking the next index
/// when its previous one is done; no new index starts after `deadline`. Returns how many
/// started (the rest were cut by the deadline).
pub async fn for_each<F, Fut>(
    count: usize,
    concurrency: usize,
    deadline: Option<Instant>,
    work: F,
) -> usize
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (next, work) = (next.clone(), work.clone());
        workers.push(tokio::spawn(async move {
            loop {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return;
                }
                work(index).await;
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    next.load(Ordering::Relaxed).min(count)
}

/// A closed-loop timed run: what `--clients` workers did in `--seconds`.
#[derive(Debug)]
pub struct Timed {
    pub tally: Tally,
    /// Sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    /// CPU used during the run, in cores.
    pub cpu: CpuUse,
}

impl Timed {
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn p50_ms(&self) -> f64 {
        ms(self.percentile(0.50))
    }

    pub fn p99_ms(&self) -> f64 {
        ms(self.percentile(0.99))
    }

    /// `1234 ops/s, p50 1.23 ms, p99 4.56 ms, CPU …, errors 0, timeouts 0`.
    pub fn line(&self) -> String {
        format!(
            "{} ops in {:.1} s = {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {}, {}",
            self.latencies.len(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.p50_ms(),
            self.p99_ms(),
            self.cpu.text(),
            self.tally.failures()
        )
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub fn cores(value: Option<f64>) -> String {
    value.map_or("n/a".to_owned(), |v| format!("{v:.2}"))
}

/// Runs `work(worker, iteration)` back to back from `workers` tasks for `duration`. Each call
/// returns the latency it measured (the caller decides what is timed: a request, or a send
/// until the push arrives) or why it failed.
pub async fn timed<F, Fut>(
    workers: usize,
    duration: Duration,
    broker_pid: Option<u32>,
    work: Arc<F>,
) -> Timed
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Duration, Failure>> + Send,
{
    let tally = Arc::new(Tally::default());
    let cpu = CpuMark::now(broker_pid);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for worker in 0..workers.max(1) {
        let (work, tally) = (work.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut iteration = 0;
            while Instant::now() < deadline {
                match work(worker, iteration).await {
                    Ok(latency) => {
                        tally.ok();
                        latencies.push(latency);
                    }
                    Err(failure) => tally.fail(failure),
                }
                iteration += 1;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        if let Ok(mut l) = task.await {
            latencies.append(&mut l);
        }
    }
    latencies.sort();
    let elapsed = start.elapsed();
    let tally = Arc::try_unwrap(tally).unwrap_or_default();
    Timed {
        tally,
        latencies,
        elapsed,
        cpu: cpu.since(),
    }
}

/// The broker's resident memory: now (VmRSS) and the high-water mark (VmHWM), in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Mem {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

/// Memory of `pid` from `/proc/<pid>/status` (Linux; `None` elsewhere or for a broker on
/// another machine).
pub fn memory(pid: Option<u32>) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(Mem {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// `RSS 41.2 MiB, HWM 57.9 MiB` (or why not).
pub fn memory_text(pid: Option<u32>) -> String {
    match memory(pid) {
        Some(mem) => format!("RSS {:.1} MiB, HWM {:.1} MiB", mem.rss_mib(), mem.hwm_mib()),
        None => "RSS n/a (broker pid unknown: give --broker-pid)".to_owned(),
    }
}

/// CPU seconds (user + system) `pid` has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// CPU seconds the whole machine has been busy (every process and the kernel), from the
/// first line of `/proc/stat`: user, nice, system, irq, softirq, steal.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0.0))
        .collect();
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0.0))
        .sum::<f64>();
    Some(busy / 100.0)
}

/// CPU counters at the start of a measured interval: the machine's, the broker's, the
/// harness's. On a shared 2-core box a build running beside the harness halves the broker's
/// share; the "other processes" figure makes that visible instead of silently lowering the
/// numbers.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    at: Instant,
    pid: Option<u32>,
    machine: Option<f64>,
    broker: Option<f64>,
    harness: Option<f64>,
}

impl CpuMark {
    pub fn now(pid: Option<u32>) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            pid,
            machine: machine_busy_seconds(),
            broker: pid.and_then(cpu_seconds),
            harness: cpu_seconds(std::process::id()),
        }
    }

    /// Cores used since the mark.
    pub fn since(&self) -> CpuUse {
        let seconds = self.at.elapsed().as_secs_f64().max(1e-9);
        let rate = |before: Option<f64>, after: Option<f64>| Some((after? - before?) / seconds);
        let broker = rate(self.broker, self.pid.and_then(cpu_seconds));
        let harness = rate(self.harness, cpu_seconds(std::process::id()));
        let machine = rate(self.machine, machine_busy_seconds());
        CpuUse {
            broker,
            harness,
            others: machine
                .zip(broker)
                .zip(harness)
                .map(|((m, b), h)| (m - b - h).max(0.0)),
        }
    }
}

/// Cores used over an interval by the broker, the harness, and everything else.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub broker: Option<f64>,
    pub harness: Option<f64>,
    pub others: Option<f64>,
}

impl CpuUse {
    /// `CPU broker 1.62 / harness 0.31 / others 0.02 cores`.
    pub fn text(&self) -> String {
        format!(
            "CPU broker {} / harness {} / others {} cores",
            cores(self.broker),
            cores(self.harness),
            cores(self.others)
        )
    }
}

/// Samples the broker's RSS every 100 ms in the background and keeps the peak (a stage's
/// transient use shows there, not in the reading after it); stops when dropped.
pub struct Sampler {
    task: tokio::task::JoinHandle<()>,
    peak_kib: Arc<AtomicU64>,
}

impl Sampler {
    pub fn start(pid: Option<u32>) -> Sampler {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let peak = peak_kib.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(mem) = memory(pid) {
                    peak.fetch_max(mem.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Sampler { task, peak_kib }
    }

    /// Peak broker RSS seen so far, in MiB (`None` when unknown).
    pub fn peak_mib(&self) -> Option<f64> {
        let kib = self.peak_kib.load(Ordering::Relaxed);
        (kib > 0).then_some(kib as f64 / 1024.0)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A background task printing a long stage's progress every 5 s (done, rate, outcomes, broker
/// memory), so a slow broker is visible while it is slow; stops when dropped.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(label: &str, total: usize, done: Arc<Tally>, pid: Option<u32>) -> Progress {
        let label = label.to_owned();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval_at(
                (start + Duration::from_secs(5)).into(),
                Duration::from_secs(5),
            );
            loop {
                tick.tick().await;
                let elapsed = start.elapsed().as_secs_f64();
                let count = done.done();
                println!(
                    "    … {label}: {count}/{total} in {elapsed:.0} s ({:.1}/s; ok {}, errors {}, timeouts {}), {}",
                    count as f64 / elapsed,
                    done.oks(),
                    done.errors(),
                    done.timeouts(),
                    memory_text(pid)
                );
            }
        });
        Progress { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}
