//! `cullis-proxy-bench`: what the proxy adds. Starts a broker (SQLite, rate limits off) and two
//! `cullis-proxy` processes, then measures one message at a time, sent and received:
//! - through the proxies: `POST /v1/egress/send` on alpha, then polls of
//!   `GET /v1/egress/messages/{sid}?after=N` on beta until it is there (decrypted, verified);
//! - directly: the same with `cullis_e2e::client` against the broker (seal + post, poll + open).
//!
//! Prints msgs/s and p50/p99 of send, receive-poll and the round (send + first successful poll).
//! Build the binaries first: `cargo build --release -p cullis-broker -p cullis-proxy -p cullis-e2e`.

use clap::Parser;
use cullis_e2e::client::AgentIdentity;
use cullis_e2e::messaging;
use cullis_e2e::setup::{BrokerApi, OrgIdentity};
use cullis_e2e::stack::proxy::TestProxy;
use cullis_e2e::stack::{Options, Store, TestBroker};
use cullis_shared::envelope::{self, CipherBlob};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "cullis-proxy-bench",
    version,
    about = "Proxy overhead: egress send + receive through two proxies vs direct"
)]
struct Args {
    /// Messages per path.
    #[arg(long, default_value_t = 300)]
    messages: usize,
    /// Warm-up messages per path (not counted).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
}

/// Latencies of one path.
#[derive(Default)]
struct Samples {
    send: Vec<Duration>,
    receive: Vec<Duration>,
    round: Vec<Duration>,
    total: Duration,
}

impl Samples {
    fn add(&mut self, send: Duration, receive: Duration, round: Duration) {
        self.send.push(send);
        self.receive.push(receive);
        self.round.push(round);
        self.total += round;
    }
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn report(name: &str, s: &Samples) {
    let rate = s.round.len() as f64 / s.total.as_secs_f64();
    println!(
        "{name:<8} {rate:>9.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        ms(percentile(&s.send, 0.5)),
        ms(percentile(&s.send, 0.99)),
        ms(percentile(&s.receive, 0.5)),
        ms(percentile(&s.receive, 0.99)),
        ms(percentile(&s.round, 0.5)),
        ms(percentile(&s.round, 0.99)),
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let options = Options::default()
        .env("RATE_LIMITS", "off")
        .env("POLICY_BACKEND", "webhook")
        .env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true");
    let broker = TestBroker::start_with(Store::Sqlite, options).await;
    eprintln!("broker at {}", broker.base);
    let via_proxy = through_proxies(&broker, &args).await;
    let direct = direct(&broker.api, &args).await;
    println!(
        "\nmessages: {} per path, sequential (one in flight), send + receive",
        args.messages
    );
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "path", "msgs/s", "send p50", "send p99", "recv p50", "recv p99", "round p50", "round p99"
    );
    report("direct", &direct);
    report("proxy", &via_proxy);
    let added = percentile(&via_proxy.round, 0.5).saturating_sub(percentile(&direct.round, 0.5));
    println!(
        "proxy overhead at p50 (round, both proxies together): {} ms",
        ms(added)
    );
}

async fn through_proxies(broker: &TestBroker, args: &Args) -> Samples {
    let env = [
        ("MCP_PROXY_RATE_LIMIT_PER_MINUTE", "1000000"),
        ("RUST_LOG", "error"),
    ];
    let alpha = joined(broker, "alpha", &env).await;
    let beta = joined(broker, "beta", &env).await;
    let (_, buyer) = alpha.create_agent("buyer", &["bench.read"]).await;
    let (_, seller) = beta.create_agent("seller", &["bench.read"]).await;
    let open = json!({"target_agent_id": "beta::seller", "target_org_id": "beta", "capabilities": ["bench.read"]});
    let opened: Value = alpha
        .egress(Method::POST, "/v1/egress/sessions", &buyer)
        .json(&open)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = opened["session_id"]
        .as_str()
        .expect("session opened")
        .to_owned();
    let accepted = beta
        .egress(
            Method::POST,
            &format!("/v1/egress/sessions/{sid}/accept"),
            &seller,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let mut after = -1i64;
    let mut samples = Samples::default();
    for i in 0..args.warmup + args.messages {
        let started = Instant::now();
        let body = json!({"session_id": sid, "payload": {"i": i, "text": "benchmark message"}, "recipient_agent_id": "beta::seller"});
        let response = alpha
            .egress(Method::POST, "/v1/egress/send", &buyer)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
        let sent = started.elapsed();
        let (seq, last_poll) = loop {
            let poll_started = Instant::now();
            let got: Value = beta
                .egress(
                    Method::GET,
                    &format!("/v1/egress/messages/{sid}?after={after}"),
                    &seller,
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(m) = got["messages"].as_array().and_then(|m| m.last()) {
                assert_eq!(m["verified"], true);
                break (m["seq"].as_i64().unwrap(), poll_started.elapsed());
            }
        };
        after = seq;
        if i >= args.warmup {
            samples.add(sent, last_poll, started.elapsed());
        }
    }
    samples
}

async fn joined(broker: &TestBroker, org: &str, env: &[(&str, &str)]) -> TestProxy {
    let proxy = TestProxy::start(env).await;
    let (status, invite) = broker
        .admin(
            Method::POST,
            "/v1/admin/invites",
            Some(json!({"label": org})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invite}");
    let out = proxy
        .join(&broker.base, invite["token"].as_str().unwrap(), org)
        .await;
    assert!(out.success, "{}", out.stderr);
    let (status, _) = broker
        .admin(Method::POST, &format!("/v1/admin/orgs/{org}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    proxy
}

async fn direct(api: &BrokerApi, args: &Args) -> Samples {
    let pdp = messaging::pdp("allow").await;
    let alpha = api.onboard_with_webhook("direct-a", Some(&pdp)).await;
    let beta = api.onboard_with_webhook("direct-b", Some(&pdp)).await;
    let buyer = register(api, &alpha, "buyer").await;
    let seller = register(api, &beta, "seller").await;
    let buyer_session = buyer.login(&api.base, &api.http).await.expect("login");
    let seller_session = seller.login(&api.base, &api.http).await.expect("login");
    let sid = messaging::open_active_session(
        &buyer_session,
        &seller_session,
        "direct-b::seller",
        "direct-b",
        &["bench.read"],
    )
    .await;
    let seller_key = messaging::public_key(&buyer_session, "direct-b::seller").await;
    let buyer_key = messaging::public_key(&seller_session, "direct-a::buyer").await;
    let mut after = -1i64;
    let mut samples = Samples::default();
    for i in 0..args.warmup + args.messages {
        let started = Instant::now();
        let payload = json!({"i": i, "text": "benchmark message"});
        let (status, answer, _) = messaging::send(
            &buyer_session,
            &buyer,
            &seller_key,
            &sid,
            &payload,
            i as u64,
        )
        .await;
        assert!(status.is_success(), "{answer}");
        let sent = started.elapsed();
        let (seq, last_poll) = loop {
            let poll_started = Instant::now();
            let (status, got) = seller_session
                .call(
                    Method::GET,
                    &format!("/v1/broker/sessions/{sid}/messages?after={after}"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{got}");
            if let Some(m) = got.as_array().and_then(|m| m.last()) {
                open(&seller, &buyer_key, &sid, m);
                break (m["seq"].as_i64().unwrap(), poll_started.elapsed());
            }
        };
        after = seq;
        if i >= args.warmup {
            samples.add(sent, last_poll, started.elapsed());
        }
    }
    samples
}

async fn register(api: &BrokerApi, org: &OrgIdentity, name: &str) -> AgentIdentity {
    api.register_agent(org, name, &["bench.read"]).await
}

/// Decrypts and verifies like the proxy does for its agents.
fn open(
    recipient: &AgentIdentity,
    sender_key: &cullis_shared::keys::PublicKey,
    sid: &str,
    message: &Value,
) {
    let blob: CipherBlob = serde_json::from_value(message["payload"].clone()).expect("cipher blob");
    let signed = message["signed_timestamp"]
        .as_i64()
        .map(|ts| (message["nonce"].as_str().unwrap_or(""), ts));
    envelope::open(
        &recipient.key,
        sid,
        message["sender_agent_id"].as_str().unwrap_or(""),
        message["client_seq"].as_u64(),
        &blob,
        signed,
        Some(sender_key),
    )
    .expect("open");
}
