//! Shared set-up of the proxy integration tests: a real broker with webhook policy (so both
//! proxies' PDPs are asked), and proxies joined and approved through their own CLI.

#![allow(dead_code)]

pub use cullis_e2e::setup::json_of;
pub use cullis_e2e::stack::proxy::TestProxy;
pub use cullis_e2e::stack::{Options, Store, TestBroker};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// A broker that asks each org's PDP webhook (proxies listen on loopback).
pub async fn broker(store: Store) -> TestBroker {
    TestBroker::start_with(store, broker_options()).await
}

pub fn broker_options() -> Options {
    Options::default()
        .env("POLICY_BACKEND", "webhook")
        .env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
        .env("TRUST_DOMAIN", "atn.local")
}

/// A fresh invite token.
pub async fn invite(broker: &TestBroker, label: &str) -> String {
    let (status, body) = broker
        .admin(
            Method::POST,
            "/v1/admin/invites",
            Some(json!({"label": label, "ttl_hours": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().expect("invite token").to_owned()
}

/// A proxy joined to `broker` as `org_id` and approved by the broker admin.
pub async fn joined_proxy(broker: &TestBroker, org_id: &str, env: &[(&str, &str)]) -> TestProxy {
    let proxy = TestProxy::start(env).await;
    let token = invite(broker, org_id).await;
    let out = proxy.join(&broker.base, &token, org_id).await;
    assert!(out.success, "join failed: {}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json["org_status"], "pending", "{}", out.stdout);
    let (status, body) = broker
        .admin(
            Method::POST,
            &format!("/v1/admin/orgs/{org_id}/approve"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    proxy
}

/// Two orgs, each with one agent: alpha::buyer and beta::seller, as spec §12 steps 4–11.
pub struct TwoOrgs {
    pub alpha: TestProxy,
    pub beta: TestProxy,
    pub buyer_key: String,
    pub seller_key: String,
}

pub const CAPS: &[&str] = &["procurement.read", "procurement.write"];

pub async fn two_orgs(broker: &TestBroker, env: &[(&str, &str)]) -> TwoOrgs {
    let alpha = joined_proxy(broker, "alpha", env).await;
    let beta = joined_proxy(broker, "beta", env).await;
    let (buyer, buyer_key) = alpha.create_agent("buyer", CAPS).await;
    assert_eq!(buyer, "alpha::buyer");
    assert!(
        buyer_key.starts_with("sk_local_buyer_") && buyer_key.len() == "sk_local_buyer_".len() + 32
    );
    let (seller, seller_key) = beta.create_agent("seller", CAPS).await;
    assert_eq!(seller, "beta::seller");
    TwoOrgs {
        alpha,
        beta,
        buyer_key,
        seller_key,
    }
}

/// Sends a request and reads status + JSON.
pub async fn call(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    json_of(request.send().await.expect("proxy reachable")).await
}

/// Opens alpha::buyer → beta::seller and has the seller accept it; returns the session id.
pub async fn active_session(orgs: &TwoOrgs) -> String {
    let (status, opened) = call(
        orgs.alpha
            .egress(Method::POST, "/v1/egress/sessions", &orgs.buyer_key)
            .json(&json!({"target_agent_id": "beta::seller", "target_org_id": "beta", "capabilities": ["procurement.read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    let sid = opened["session_id"].as_str().unwrap().to_owned();
    let (status, accepted) = call(orgs.beta.egress(
        Method::POST,
        &format!("/v1/egress/sessions/{sid}/accept"),
        &orgs.seller_key,
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    sid
}

/// Polls `proxy`'s messages of `sid` until one satisfies `found` (≤ 20 s).
pub async fn wait_message(
    proxy: &TestProxy,
    key: &str,
    sid: &str,
    after: i64,
    found: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..80 {
        let (status, body) = call(proxy.egress(
            Method::GET,
            &format!("/v1/egress/messages/{sid}?after={after}"),
            key,
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if let Some(message) = body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| found(m)))
        {
            return message.clone();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("message not received within 20 s");
}

/// The audit rows of `proxy` (admin API).
pub async fn audit(proxy: &TestProxy) -> Vec<Value> {
    let (status, body) = call(proxy.admin(Method::GET, "/v1/admin/audit?limit=10000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["entries"].as_array().cloned().unwrap_or_default()
}

pub fn has_action(rows: &[Value], agent: &str, action: &str, status: &str) -> bool {
    rows.iter()
        .any(|r| r["agent_id"] == agent && r["action"] == action && r["status"] == status)
}
