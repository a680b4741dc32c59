//! Stage 3: discovery by capability, as logged-in agents of org 0 search the network — a
//! narrow query (nine hits), the first page of a broad one (nine agents in ten), and one full
//! walk of the broad result through `limit` / `cursor` / `next_cursor` pagination.

use crate::measure::{self, Failure, Sampler, Timed};
use crate::world::{Agent, Broker, Population, BROAD, NARROW};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEARCH: &str = "/v1/registry/agents/search";

pub struct DiscoveryResult {
    pub narrow: Timed,
    pub narrow_expected: usize,
    pub broad: Timed,
    pub broad_expected: usize,
    /// Mean size of a broad answer and how many agents the first one listed.
    pub broad_bytes: f64,
    pub broad_listed: Option<usize>,
    pub walk: Walk,
    pub rss_peak_mib: Option<f64>,
}

/// One walk of the broad result, page by page.
#[derive(Debug, Default)]
pub struct Walk {
    pub pages: usize,
    pub elapsed: Duration,
    /// Agents over all pages, distinct agent ids among them, and the `total` the broker gave.
    pub listed: usize,
    pub distinct: usize,
    pub total: Option<u64>,
    /// Whether the broker paginated at all (gave a `next_cursor` on the first page).
    pub paginated: bool,
    pub slowest_page: Duration,
    pub error: Option<String>,
    /// The `limit` asked for.
    pub limit: usize,
}

impl Walk {
    /// One page with more agents than `limit`: the broker ignored the parameter.
    pub fn limit_ignored(&self) -> bool {
        !self.paginated && self.listed > self.limit
    }

    /// How the paging went, for the report.
    pub fn paging(&self) -> &'static str {
        match (self.paginated, self.limit_ignored()) {
            (true, _) => "followed next_cursor",
            (false, false) => "fits one page",
            (false, true) => "limit ignored: no next_cursor, everything in one page",
        }
    }

    pub fn consistent(&self) -> bool {
        self.error.is_none()
            && self.total == Some(self.listed as u64)
            && self.distinct == self.listed
    }
}

/// `"total":N` near the end of an answer, without parsing megabytes of JSON per request (the
/// harness shares the CPU with the broker).
/// It is looked for in the last 256 bytes first (where the broker puts it), then everywhere.
fn total_of(body: &[u8]) -> Option<u64> {
    let key = b"\"total\":";
    let find = |from: usize| {
        body[from..]
            .windows(key.len())
            .rposition(|w| w == key)
            .map(|at| from + at + key.len())
    };
    let at = find(body.len().saturating_sub(256)).or_else(|| find(0))?;
    let digits: String = body[at..]
        .iter()
        .map(|&b| b as char)
        .skip_while(|c| c.is_whitespace())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Percent-encodes a query value (cursors are opaque: base64 or JSON may contain `+/=`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(
    broker: &Broker,
    population: &Population,
    callers: Arc<Vec<Agent>>,
    clients: usize,
    seconds: Duration,
    broad_limit: Option<usize>,
    walk_limit: usize,
) -> DiscoveryResult {
    let sampler = Sampler::start(broker.pid);
    let narrow_expected = population.expected_narrow();
    let broad_expected = population.expected_broad();

    // (a) narrow: every answer must list exactly the nine rare agents.
    let narrow = {
        let callers = callers.clone();
        let path = format!("{SEARCH}?capability={NARROW}");
        let work = Arc::new(move |worker: usize, _iteration: usize| {
            let (callers, path) = (callers.clone(), path.clone());
            async move {
                let session = &callers[worker % callers.len()].session;
                let start = Instant::now();
                let (status, body) = session.try_call_raw(Method::GET, &path, None).await?;
                let latency = start.elapsed();
                if status != StatusCode::OK {
                    return Err(Failure::status("narrow search", status, &body));
                }
                let found = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["agents"].as_array().map(Vec::len));
                match found {
                    Some(n) if n == narrow_expected => Ok(latency),
                    _ => Err(Failure::Error(format!(
                        "narrow search listed {found:?} agents, expected {narrow_expected}"
                    ))),
                }
            }
        });
        measure::timed(clients, seconds, broker.pid, work).await
    };
    println!(
        "  (a) narrow  capability={NARROW} ({narrow_expected} hits): {}",
        narrow.line()
    );
    println!("      broker: {}", measure::memory_text(broker.pid));

    // (b) broad, first page: check `total` on every answer (cheaply), count bytes.
    let bytes = Arc::new(AtomicU64::new(0));
    let first_listed = Arc::new(std::sync::OnceLock::new());
    let broad = {
        let (callers, bytes, first_listed) = (callers.clone(), bytes.clone(), first_listed.clone());
        let path = match broad_limit {
            Some(limit) => format!("{SEARCH}?capability={BROAD}&limit={limit}"),
            None => format!("{SEARCH}?capability={BROAD}"),
        };
        let work = Arc::new(move |worker: usize, _iteration: usize| {
            let (callers, path, bytes, first_listed) = (
                callers.clone(),
                path.clone(),
                bytes.clone(),
                first_listed.clone(),
            );
            async move {
                let session = &callers[worker % callers.len()].session;
                let start = Instant::now();
                let (status, body) = session.try_call_raw(Method::GET, &path, None).await?;
                let latency = start.elapsed();
                if status != StatusCode::OK {
                    return Err(Failure::status("broad search", status, &body));
                }
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                if first_listed.get().is_none() {
                    let listed = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["agents"].as_array().map(Vec::len));
                    let _ = first_listed.set(listed);
                }
                match total_of(&body) {
                    Some(total) if total == broad_expected as u64 => Ok(latency),
                    total => Err(Failure::Error(format!(
                        "broad search total {total:?}, expected {broad_expected}"
                    ))),
                }
            }
        });
        measure::timed(clients, seconds, broker.pid, work).await
    };
    let answers = broad.tally.oks() + broad.tally.errors();
    let broad_bytes = bytes.load(Ordering::Relaxed) as f64 / answers.max(1) as f64;
    let broad_listed = first_listed.get().copied().flatten();
    println!(
        "  (b) broad   capability={BROAD} first page ({broad_expected} hits; {} listed, {:.0} KiB per answer): {}",
        broad_listed.map_or("?".to_owned(), |n| n.to_string()),
        broad_bytes / 1024.0,
        broad.line()
    );
    println!("      broker: {}", measure::memory_text(broker.pid));

    // (c) one full walk with limit=walk_limit, following next_cursor.
    let walk = walk(&callers[0], walk_limit, broad_expected).await;
    println!(
        "  (c) walk    capability={BROAD} limit={walk_limit}: {} page(s) in {:.1} ms (slowest {:.1} ms), {} listed, {} distinct, total {} — {} ({})",
        walk.pages,
        measure::ms(walk.elapsed),
        measure::ms(walk.slowest_page),
        walk.listed,
        walk.distinct,
        walk.total.map_or("?".to_owned(), |t| t.to_string()),
        if walk.consistent() { "consistent" } else { "INCONSISTENT" },
        walk.paging()
    );
    if let Some(error) = &walk.error {
        println!("      walk error: {error}");
    }
    DiscoveryResult {
        narrow,
        narrow_expected,
        broad,
        broad_expected,
        broad_bytes,
        broad_listed,
        walk,
        rss_peak_mib: sampler.peak_mib(),
    }
}

/// Follows `next_cursor` from the first page until a page has none, checking that the pages
/// add up to `total` with no agent twice.
async fn walk(caller: &Agent, limit: usize, expected: usize) -> Walk {
    let mut walk = Walk {
        limit,
        ..Walk::default()
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    // A broker that loops (repeats a cursor or never ends) must not hang the harness.
    let max_pages = expected / limit.max(1) + 10;
    let start = Instant::now();
    loop {
        let path = match &cursor {
            Some(cursor) => format!(
                "{SEARCH}?capability={BROAD}&limit={limit}&cursor={}",
                encode(cursor)
            ),
            None => format!("{SEARCH}?capability={BROAD}&limit={limit}"),
        };
        let page_start = Instant::now();
        let answer = caller.session.try_call_raw(Method::GET, &path, None).await;
        walk.slowest_page = walk.slowest_page.max(page_start.elapsed());
        let page: Value = match answer {
            Ok((StatusCode::OK, body)) => serde_json::from_slice(&body).unwrap_or_default(),
            Ok((status, body)) => {
                walk.error = Some(format!(
                    "page {}: HTTP {status} {}",
                    walk.pages + 1,
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ));
                break;
            }
            Err(error) => {
                walk.error = Some(format!("page {}: {error}", walk.pages + 1));
                break;
            }
        };
        walk.pages += 1;
        if walk.total.is_none() {
            walk.total = page["total"].as_u64();
        }
        for agent in page["agents"].as_array().into_iter().flatten() {
            walk.listed += 1;
            if let Some(id) = agent["agent_id"].as_str() {
                seen.insert(id.to_owned());
            }
        }
        let next = page["next_cursor"].as_str().map(str::to_owned);
        if walk.pages == 1 {
            walk.paginated = next.is_some();
        }
        match next {
            None => break,
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                walk.error = Some(format!("cursor repeated on page {}", walk.pages));
                break;
            }
            Some(_) if walk.pages >= max_pages => {
                walk.error = Some(format!("still a next_cursor after {max_pages} pages"));
                break;
            }
            Some(next) => cursor = Some(next),
        }
    }
    walk.elapsed = start.elapsed();
    walk.distinct = seen.len();
    walk
}

#[cfg(test)]
mod tests {
    #[test]
    fn total_and_encoding() {
        assert_eq!(super::total_of(br#"{"agents":[],"total": 42}"#), Some(42));
        assert_eq!(super::total_of(br#"{"total":7,"agents":[]}"#), Some(7));
        assert_eq!(super::total_of(br#"{"agents":[]}"#), None);
        assert_eq!(super::encode("a+b/c= d"), "a%2Bb%2Fc%3D%20d");
    }
}
