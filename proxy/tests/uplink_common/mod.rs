//! Shared set-up for the uplink tests: a real broker, two onboarded orgs with allow-all PDP
//! webhooks, agents registered through the uplink itself, and a TCP relay that can cut the
//! network path to the broker.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cullis_e2e::client::AgentIdentity;
use cullis_e2e::messaging::pdp;
use cullis_e2e::setup::OrgIdentity;
use cullis_e2e::stack::{Options, Store, TestBroker};
use cullis_proxy::uplink::{AgentCredentials, OrgCredentials, Uplink, UplinkConfig};
use tokio::net::{TcpListener, TcpStream};

pub const CAPS: &[&str] = &["order.read", "order.write"];

pub fn caps() -> Vec<String> {
    CAPS.iter().map(|c| c.to_string()).collect()
}

pub fn org_credentials(org: &OrgIdentity) -> OrgCredentials {
    OrgCredentials {
        org_id: org.org_id.clone(),
        secret: org.secret.clone(),
    }
}

pub fn credentials(identity: AgentIdentity) -> AgentCredentials {
    AgentCredentials {
        agent_id: identity.agent_id,
        cert_der: identity.cert_der,
        key: Arc::new(identity.key),
    }
}

pub fn uplink(base: &str) -> Uplink {
    Uplink::new(UplinkConfig::new(base)).expect("uplink")
}

/// A broker whose PDP webhooks may live on loopback.
pub async fn broker(store: Store) -> TestBroker {
    broker_with(store, Options::default()).await
}

pub async fn broker_with(store: Store, options: Options) -> TestBroker {
    TestBroker::start_with(
        store,
        options.env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
    )
    .await
}

/// Two orgs: `alpha` (PDP allow) and `beta` (PDP `beta_decision`), with `alpha::buyer` and
/// `beta::seller` provisioned through the uplink's org calls.
pub struct TwoOrgs {
    pub alpha: OrgIdentity,
    pub beta: OrgIdentity,
    pub buyer: AgentCredentials,
    pub seller: AgentCredentials,
}

pub async fn two_orgs(
    broker: &TestBroker,
    uplink: &Uplink,
    beta_decision: &'static str,
) -> TwoOrgs {
    let alpha = broker
        .onboard_with_webhook("alpha", Some(&pdp("allow").await))
        .await;
    let beta = broker
        .onboard_with_webhook("beta", Some(&pdp(beta_decision).await))
        .await;
    let buyer = provision(uplink, &alpha, "buyer").await;
    let seller = provision(uplink, &beta, "seller").await;
    TwoOrgs {
        alpha,
        beta,
        buyer,
        seller,
    }
}

/// Registers, binds and approves `<org>::<name>` through the uplink, then pins it by a login.
pub async fn provision(uplink: &Uplink, org: &OrgIdentity, name: &str) -> AgentCredentials {
    let identity = org.agent_identity(name);
    uplink
        .register_agent(&org_credentials(org), &identity.agent_id, name, &caps())
        .await
        .expect("register agent");
    let agent = credentials(identity);
    uplink.login(&agent).await.expect("pin login");
    agent
}

/// A loopback TCP relay in front of the broker that can be switched off (every connection
/// cut, new ones refused) and on again, on the same port.
pub struct Relay {
    pub base: String,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    pub async fn start(target_base: &str) -> Relay {
        let target = target_base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (flag, tasks) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task.abort_handle());
            }
        });
        Relay {
            base,
            up,
            connections,
        }
    }

    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Waits for a broadcast event matching `pick`, up to 10 s.
pub async fn next_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<cullis_proxy::uplink::AgentEvent>,
    mut pick: impl FnMut(&cullis_proxy::uplink::AgentEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("event within 10 s")
            .expect("event channel open");
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}
