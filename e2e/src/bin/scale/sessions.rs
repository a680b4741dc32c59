//! Stage 4: sessions between agents of two different orgs — the initiator opens (both orgs'
//! webhook PDPs are asked), the target accepts — kept open for the socket stage.

use crate::measure::{self, Failure, Progress, Tally};
use crate::world::{login_all, Agent, Broker, Population, TRADE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An initiator, its peer in another org, and their session once open.
pub struct Pair {
    pub initiator: Agent,
    pub target: Agent,
    pub session_id: Option<String>,
}

pub struct SessionsResult {
    pub requested: usize,
    /// Pairs whose two agents logged in.
    pub pairs: usize,
    pub opened: usize,
    pub elapsed: Duration,
    pub tally: Arc<Tally>,
    pub p50: Duration,
    pub p99: Duration,
}

impl SessionsResult {
    pub fn rate(&self) -> f64 {
        self.opened as f64 / self.elapsed.as_secs_f64()
    }
}

/// Picks `count` pairs from the registered agents not in `exclude` (consecutive agents are
/// in different orgs), logs them in, and opens and accepts their sessions `concurrency` at a
/// time.
pub async fn run(
    broker: &Broker,
    population: &Arc<Population>,
    exclude: &HashSet<usize>,
    count: usize,
    concurrency: usize,
    login_concurrency: usize,
) -> (Vec<Pair>, SessionsResult) {
    let mut free = population.registered().filter(|j| !exclude.contains(j));
    let mut chosen = Vec::new();
    let mut previous: Option<usize> = None;
    while chosen.len() < count * 2 {
        let Some(j) = free.next() else { break };
        match previous.take() {
            Some(p) if population.plan.org_of(p) != population.plan.org_of(j) => {
                chosen.extend([p, j]);
            }
            // Same org (only with one org's agents left): keep the newer as the initiator.
            Some(_) | None => previous = Some(j),
        }
    }
    if chosen.len() < count * 2 {
        println!(
            "  only {} pairs of registered agents are free: opening that many sessions",
            chosen.len() / 2
        );
    }
    let (agents, logins) =
        login_all(broker, population, &chosen, login_concurrency, "logged in").await;
    println!(
        "  logged in {} of {} agents ({})",
        logins.oks(),
        chosen.len(),
        logins.failures()
    );
    let mut agents = agents.into_iter();
    let mut pairs = Vec::new();
    while let (Some(initiator), Some(target)) = (agents.next(), agents.next()) {
        if let (Some(initiator), Some(target)) = (initiator, target) {
            pairs.push(Pair {
                initiator,
                target,
                session_id: None,
            });
        }
    }

    let pairs = Arc::new(pairs);
    let ids: Arc<Vec<Mutex<Option<String>>>> =
        Arc::new(pairs.iter().map(|_| Mutex::new(None)).collect());
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let tally = Arc::new(Tally::default());
    let _progress = Progress::start("sessions", pairs.len(), tally.clone(), broker.pid);
    let orgs: Arc<Vec<String>> =
        Arc::new(population.orgs.iter().map(|o| o.org_id.clone()).collect());
    let plan_orgs = population.plan.orgs;
    let start = Instant::now();
    {
        let (pairs, ids, latencies, tally) =
            (pairs.clone(), ids.clone(), latencies.clone(), tally.clone());
        measure::for_each(pairs.len(), concurrency, None, move |k| {
            let (pairs, ids, latencies, tally, orgs) = (
                pairs.clone(),
                ids.clone(),
                latencies.clone(),
                tally.clone(),
                orgs.clone(),
            );
            async move {
                let pair = &pairs[k];
                let target_org = &orgs[pair.target.index % plan_orgs];
                let began = Instant::now();
                match open_one(pair, target_org).await {
                    Ok(id) => {
                        latencies.lock().unwrap().push(began.elapsed());
                        *ids[k].lock().unwrap() = Some(id);
                        tally.ok();
                    }
                    Err(failure) => tally.fail(failure),
                }
            }
        })
        .await;
    }
    let elapsed = start.elapsed();
    let mut pairs = Arc::try_unwrap(pairs)
        .ok()
        .expect("session workers are done");
    for (pair, id) in pairs.iter_mut().zip(ids.iter()) {
        pair.session_id = id.lock().unwrap().take();
    }
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let result = SessionsResult {
        requested: count,
        pairs: pairs.len(),
        opened: tally.oks(),
        elapsed,
        p50: measure::percentile(&latencies, 0.50),
        p99: measure::percentile(&latencies, 0.99),
        tally,
    };
    (pairs, result)
}

/// Open (initiator) + accept (target): the session id once active.
async fn open_one(pair: &Pair, target_org: &str) -> Result<String, Failure> {
    let body = json!({"target_agent_id": pair.target.session.agent_id(),
        "target_org_id": target_org, "requested_capabilities": [TRADE]});
    let (status, answer) = pair
        .initiator
        .session
        .try_call_raw(Method::POST, "/v1/broker/sessions", Some(&body))
        .await?;
    if status != StatusCode::CREATED {
        return Err(Failure::status("open session", status, &answer));
    }
    let answer: Value = serde_json::from_slice(&answer).unwrap_or_default();
    let Some(id) = answer["session_id"].as_str() else {
        return Err(Failure::Error(format!(
            "open answer without session_id: {answer}"
        )));
    };
    let path = format!("/v1/broker/sessions/{id}/accept");
    let (status, answer) = pair
        .target
        .session
        .try_call_raw(Method::POST, &path, None)
        .await?;
    if status != StatusCode::OK {
        return Err(Failure::status("accept session", status, &answer));
    }
    Ok(id.to_owned())
}

/// Closes every open session (the initiator closes); the tally of closes.
pub async fn close_all(pairs: &Arc<Vec<Pair>>, concurrency: usize) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let (pairs_ref, tally_ref) = (pairs.clone(), tally.clone());
    measure::for_each(pairs.len(), concurrency, None, move |k| {
        let (pairs, tally) = (pairs_ref.clone(), tally_ref.clone());
        async move {
            let pair = &pairs[k];
            let Some(id) = &pair.session_id else { return };
            let path = format!("/v1/broker/sessions/{id}/close");
            let outcome = match pair
                .initiator
                .session
                .try_call_raw(Method::POST, &path, None)
                .await
            {
                Ok((StatusCode::OK, _)) => Ok(()),
                Ok((status, body)) => Err(Failure::status("close session", status, &body)),
                Err(error) => Err(error.into()),
            };
            tally.record(&outcome);
        }
    })
    .await;
    tally
}
