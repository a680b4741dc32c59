//! The network the harness builds, through the public API only (what organisations do, so
//! the measured registration path is the real one): the broker it talks to, the plan of who
//! holds which capability, onboarding, registration and logins.

use crate::measure::{Failure, Progress, Tally};
use cullis_e2e::client::{AgentIdentity, AgentSession};
use cullis_e2e::setup::OrgIdentity;
use cullis_e2e::stack::TestBroker;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Held by exactly [`NARROW_COUNT`] agents, none in the callers' org: the "narrow" query.
pub const NARROW: &str = "rare.quantum-audit";
pub const NARROW_COUNT: usize = 9;
/// Held by 9 agents in 10: the "broad" query.
pub const BROAD: &str = "procurement";
/// Held by every agent, so any two agents of different orgs may open a session.
pub const TRADE: &str = "scale.trade";

/// How to reach the broker: cheap to clone into worker tasks.
#[derive(Clone)]
pub struct Net {
    pub base: String,
    pub admin_secret: String,
    /// Agents', orgs' and the operator's traffic: a per-request timeout (a slow broker is
    /// counted, not waited for forever) and idle connections closed after 5 s (so the idle
    /// stage sees the broker without the harness's keep-alive connections).
    pub http: Client,
}

impl Net {
    pub fn new(base: &str, admin_secret: &str, request_timeout: Duration) -> Net {
        let http = Client::builder()
            .timeout(request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        Net {
            base: base.trim_end_matches('/').to_owned(),
            admin_secret: admin_secret.to_owned(),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The broker under test.
pub struct Broker {
    pub net: Net,
    /// For /proc readings: the spawned broker's, or `--broker-pid`.
    pub pid: Option<u32>,
    /// The broker's WS_MAX_CONNECTIONS when known (the harness sets it when it spawns).
    pub ws_cap: Option<usize>,
    /// BCRYPT_COST when the harness set it.
    pub bcrypt_cost: Option<u32>,
    /// The broker's database (and Redis) run as other processes on this machine: their CPU
    /// counts as "others".
    pub separate_store: bool,
    /// Kept alive for the run; killed (and its data removed) on drop.
    pub _spawned: Option<TestBroker>,
}

/// Who is registered in which org with which capabilities. Agent `j` is `a<j>` in org
/// `j % orgs`, so consecutive agents are in different orgs and any prefix of the
/// registration order (a populate cut short) still spans every org.
pub struct Plan {
    pub orgs: usize,
    pub agents: usize,
    /// The agents holding [`NARROW`]: the first nine outside org 0 (registered first).
    narrow: Vec<usize>,
}

impl Plan {
    pub fn new(orgs: usize, agents: usize) -> Plan {
        let narrow = (0..agents)
            .filter(|j| j % orgs != 0)
            .take(NARROW_COUNT)
            .collect();
        Plan {
            orgs,
            agents,
            narrow,
        }
    }

    pub fn org_of(&self, j: usize) -> usize {
        j % self.orgs
    }

    pub fn name(j: usize) -> String {
        format!("a{j}")
    }

    pub fn is_narrow(&self, j: usize) -> bool {
        self.narrow.contains(&j)
    }

    pub fn has_broad(j: usize) -> bool {
        j % 10 != 9
    }

    /// Every agent trades; 90 % do procurement; one skill in 100 each (so the registry is not
    /// a single-valued column); nine hold the rare capability.
    pub fn capabilities(&self, j: usize) -> Vec<String> {
        let mut capabilities = vec![TRADE.to_owned(), format!("skill.{}", j % 100)];
        if Plan::has_broad(j) {
            capabilities.push(BROAD.to_owned());
        }
        if self.is_narrow(j) {
            capabilities.push(NARROW.to_owned());
        }
        capabilities
    }
}

/// The onboarded orgs and which agents made it into the registry.
pub struct Population {
    pub plan: Plan,
    pub orgs: Vec<OrgIdentity>,
    pub registered: Vec<bool>,
}

impl Population {
    pub fn agent_id(&self, j: usize) -> String {
        format!(
            "{}::{}",
            self.orgs[self.plan.org_of(j)].org_id,
            Plan::name(j)
        )
    }

    pub fn registered_count(&self) -> usize {
        self.registered.iter().filter(|r| **r).count()
    }

    /// Registered agents, in registration order.
    pub fn registered(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.plan.agents).filter(|&j| self.registered[j])
    }

    /// What the narrow query should find for a caller in org 0.
    pub fn expected_narrow(&self) -> usize {
        self.registered()
            .filter(|&j| self.plan.is_narrow(j))
            .count()
    }

    /// What the broad query should find for a caller in org 0.
    pub fn expected_broad(&self) -> usize {
        self.registered()
            .filter(|&j| Plan::has_broad(j) && self.plan.org_of(j) != 0)
            .count()
    }
}

/// A logged-in agent: its identity (key, certificate) and its session (token, DPoP key).
pub struct Agent {
    pub index: usize,
    pub identity: AgentIdentity,
    pub session: Arc<AgentSession>,
}

/// Invite, join (with the PDP webhook), approve — as `BrokerApi::onboard_with_webhook` but
/// answering with an error instead of panicking.
pub async fn onboard(net: &Net, org_id: &str, webhook: &str) -> Result<OrgIdentity, String> {
    let org = OrgIdentity::new(org_id);
    let admin = |method: Method, path: String, body: Option<Value>| {
        let mut request = net
            .http
            .request(method, net.url(&path))
            .header("x-admin-secret", &net.admin_secret);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let answer = |response: Result<reqwest::Response, reqwest::Error>, what: &str, expected| {
        let what = what.to_owned();
        async move {
            let response = response.map_err(|e| format!("{what}: {e}"))?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or_default();
            if status == expected {
                Ok(body)
            } else {
                Err(format!("{what}: HTTP {status} {body}"))
            }
        }
    };
    let invite = admin(
        Method::POST,
        "/v1/admin/invites".into(),
        Some(json!({"label": org_id})),
    )
    .await;
    let invite = answer(invite, "invite", StatusCode::CREATED).await?;
    let token = invite["token"].as_str().unwrap_or_default();
    let join = net
        .http
        .post(net.url("/v1/onboarding/join"))
        .json(&json!({
            "webhook_url": webhook,
            "org_id": org.org_id,
            "display_name": format!("{} Inc.", org.org_id),
            "secret": org.secret,
            "ca_certificate": org.ca.cert_pem(),
            "contact_email": format!("ops@{}.example", org.org_id),
            "invite_token": token,
        }))
        .send()
        .await;
    answer(join, "join", StatusCode::ACCEPTED).await?;
    let approve = admin(
        Method::POST,
        format!("/v1/admin/orgs/{org_id}/approve"),
        None,
    )
    .await;
    answer(approve, "approve", StatusCode::OK).await?;
    Ok(org)
}

/// One org-authenticated request; the body when the status is `expected`.
async fn org_call(
    net: &Net,
    org: &OrgIdentity,
    method: Method,
    path: &str,
    body: Option<Value>,
    expected: StatusCode,
    what: &str,
) -> Result<Value, Failure> {
    let mut request = net
        .http
        .request(method, net.url(path))
        .header("x-org-id", &org.org_id)
        .header("x-org-secret", &org.secret);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if status != expected {
        return Err(Failure::status(what, status, &bytes));
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or_default())
}

/// What an org admin does per agent: register it, create its binding, approve the binding.
/// Each request is org-authenticated (x-org-id + x-org-secret, which the broker checks with
/// bcrypt: the cost the registration aim is about). No certificate is involved: the broker
/// pins one at the agent's first login.
async fn register_one(net: &Net, population: &Population, j: usize) -> Result<(), Failure> {
    let org = &population.orgs[population.plan.org_of(j)];
    let name = Plan::name(j);
    let agent_id = population.agent_id(j);
    let capabilities = population.plan.capabilities(j);
    let body = json!({"agent_id": agent_id, "org_id": org.org_id, "display_name": name,
        "capabilities": capabilities, "description": format!("scale agent {j}"), "metadata": {}});
    org_call(
        net,
        org,
        Method::POST,
        "/v1/registry/agents",
        Some(body),
        StatusCode::CREATED,
        "register",
    )
    .await?;
    let binding = json!({"org_id": org.org_id, "agent_id": agent_id, "scope": capabilities});
    let binding = org_call(
        net,
        org,
        Method::POST,
        "/v1/registry/bindings",
        Some(binding),
        StatusCode::CREATED,
        "binding",
    )
    .await?;
    let Some(id) = binding["id"].as_i64() else {
        return Err(Failure::Error(format!("binding without id: {binding}")));
    };
    org_call(
        net,
        org,
        Method::POST,
        &format!("/v1/registry/bindings/{id}/approve"),
        None,
        StatusCode::OK,
        "approve binding",
    )
    .await?;
    Ok(())
}

/// The outcome of registering: how many in how long.
pub struct Registered {
    pub tally: Arc<Tally>,
    pub elapsed: Duration,
    /// The populate timeout stopped it before every agent was tried.
    pub cut_short: bool,
    pub cpu: crate::measure::CpuUse,
}

impl Registered {
    pub fn rate(&self) -> f64 {
        self.tally.oks() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Registers the plan's agents with `concurrency` requests in flight, in plan order, until
/// done or `timeout` (then the run goes on with the agents registered so far).
pub async fn register_all(
    broker: &Broker,
    plan: Plan,
    orgs: Vec<OrgIdentity>,
    concurrency: usize,
    timeout: Duration,
) -> (Population, Registered) {
    let agents = plan.agents;
    let done: Arc<Vec<AtomicBool>> =
        Arc::new((0..agents).map(|_| AtomicBool::new(false)).collect());
    let population = Arc::new(Population {
        plan,
        orgs,
        registered: Vec::new(),
    });
    let tally = Arc::new(Tally::default());
    let _progress = Progress::start("registered", agents, tally.clone(), broker.pid);
    let cpu = crate::measure::CpuMark::now(broker.pid);
    let start = Instant::now();
    let started = {
        let (population, tally, done, net) = (
            population.clone(),
            tally.clone(),
            done.clone(),
            broker.net.clone(),
        );
        crate::measure::for_each(agents, concurrency, Some(start + timeout), move |j| {
            let (population, tally, done, net) =
                (population.clone(), tally.clone(), done.clone(), net.clone());
            async move {
                let outcome = register_one(&net, &population, j).await;
                if outcome.is_ok() {
                    done[j].store(true, Ordering::Relaxed);
                }
                tally.record(&outcome);
            }
        })
        .await
    };
    let elapsed = start.elapsed();
    let cpu = cpu.since();
    let mut population = Arc::try_unwrap(population)
        .ok()
        .expect("registration workers are done");
    population.registered = done.iter().map(|d| d.load(Ordering::Relaxed)).collect();
    let registered = Registered {
        tally,
        elapsed,
        cut_short: started < agents,
        cpu,
    };
    (population, registered)
}

/// Logs in the agents `indexes` (each gets a fresh key and a certificate from its org's CA),
/// `concurrency` at a time. The answer is aligned with `indexes`: `None` where login failed.
pub async fn login_all(
    broker: &Broker,
    population: &Arc<Population>,
    indexes: &[usize],
    concurrency: usize,
    label: &str,
) -> (Vec<Option<Agent>>, Arc<Tally>) {
    let tally = Arc::new(Tally::default());
    let slots: Arc<Vec<Mutex<Option<Agent>>>> =
        Arc::new(indexes.iter().map(|_| Mutex::new(None)).collect());
    let _progress = Progress::start(label, indexes.len(), tally.clone(), broker.pid);
    let indexes = Arc::new(indexes.to_vec());
    let net = broker.net.clone();
    {
        let (population, tally, slots, indexes) = (
            population.clone(),
            tally.clone(),
            slots.clone(),
            indexes.clone(),
        );
        crate::measure::for_each(indexes.len(), concurrency, None, move |position| {
            let (population, tally, slots, indexes, net) = (
                population.clone(),
                tally.clone(),
                slots.clone(),
                indexes.clone(),
                net.clone(),
            );
            async move {
                let j = indexes[position];
                let org = &population.orgs[population.plan.org_of(j)];
                let identity = org.agent_identity(&Plan::name(j));
                let outcome = match identity.try_login(&net.base, &net.http, None).await {
                    Ok(Ok(session)) => Ok(session),
                    Ok(Err((status, body))) => Err(Failure::Error(format!(
                        "login {}: HTTP {status} {body}",
                        identity.agent_id
                    ))),
                    Err(error) => Err(error.into()),
                };
                match outcome {
                    Ok(session) => {
                        tally.ok();
                        *slots[position].lock().unwrap() = Some(Agent {
                            index: j,
                            identity,
                            session: Arc::new(session),
                        });
                    }
                    Err(failure) => tally.fail(failure),
                }
            }
        })
        .await;
    }
    let agents = Arc::try_unwrap(slots)
        .ok()
        .expect("login workers are done")
        .into_iter()
        .map(|slot| slot.into_inner().unwrap())
        .collect();
    (agents, tally)
}
