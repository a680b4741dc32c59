//! The SDK users install today — `cullis-sdk` 0.2.2 from PyPI, unmodified, in its direct mode
//! (`CullisClient(url)` + `login_from_pem`) — against our broker on SQLite and on PostgreSQL +
//! Redis, and against an agent behind our proxy (EC keys both ways, envelope v2).
//!
//! The SDK lives in a venv outside the repository (`cullis_e2e::stack::sdk022`); the Python side
//! is `sdk_022/driver.py`. Not covered: `request_transaction_token` (the endpoint is built on
//! another branch).

use cullis_e2e::client::AgentIdentity;
use cullis_e2e::egress::EgressClient;
use cullis_e2e::messaging::pdp;
use cullis_e2e::setup::OrgIdentity;
use cullis_e2e::stack::proxy::TestProxy;
use cullis_e2e::stack::{sdk022, Options, Store, TestBroker};
use cullis_shared::keys::KeyType;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// What 0.2.2 opens: declared in the agent's registration metadata (docs/sdk-generations.md).
fn v2_metadata() -> Value {
    json!({"e2e": ["cullis-e2e-v2-aeskw"]})
}

fn driver() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk_022/driver.py")
}

fn agent_config(org: &OrgIdentity, agent: &AgentIdentity) -> Value {
    json!({
        "agent_id": agent.agent_id,
        "org_id": org.org_id,
        "cert_pem": agent.cert_pem,
        "key_pem": agent.key.to_pkcs8_pem().as_str(),
    })
}

async fn start_broker(store: Store) -> TestBroker {
    TestBroker::start_with(
        store,
        Options::default().env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
    )
    .await
}

/// How many messages of `session_id` the recipient has acknowledged (the broker's database).
async fn acked(broker: &TestBroker, session_id: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&broker.database_url)
        .await
        .expect("broker database");
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM session_messages WHERE session_id = $1 AND acked_at IS NOT NULL",
    )
    .bind(session_id)
    .fetch_one(&pool)
    .await
    .expect("count");
    pool.close().await;
    count
}

async fn direct_flow(store: Store) {
    let broker = start_broker(store).await;
    let acme = broker
        .onboard_with_webhook("acme", Some(&pdp("allow").await))
        .await;
    let globex = broker
        .onboard_with_webhook("globex", Some(&pdp("allow").await))
        .await;
    let order = ["order.place"];
    let quoting = ["order.place", "rfq.quote"];
    let agents = [
        (
            "buyer_rsa",
            &acme,
            "buyer-rsa",
            KeyType::Rsa2048,
            &order[..],
        ),
        ("buyer_ec", &acme, "buyer-ec", KeyType::EcP256, &order[..]),
        (
            "seller_rsa",
            &globex,
            "seller-rsa",
            KeyType::Rsa2048,
            &order[..],
        ),
        (
            "seller_ec",
            &globex,
            "seller-ec",
            KeyType::EcP256,
            &quoting[..],
        ),
    ];
    let mut config = serde_json::Map::new();
    for (label, org, name, key_type, caps) in agents {
        let agent = broker
            .register_agent_as(org, name, caps, key_type, v2_metadata())
            .await;
        config.insert(label.into(), agent_config(org, &agent));
    }
    let summary = sdk022::drive(
        &driver(),
        "broker-flow",
        &json!({"base": broker.base, "agents": config}),
    )
    .await;
    assert_eq!(summary["pushed_msg_ids"].as_array().map(Vec::len), Some(3));
    // 0.2.2's request_transaction_token: one send of the bound payload went through, a replay
    // and another payload were refused (checked by the driver); the broker recorded the use.
    let jti = summary["transaction_jti"]
        .as_str()
        .expect("transaction token used");
    let audit = broker
        .http
        .get(broker.url("/v1/admin/audit/export?event_type=broker.transaction_executed"))
        .header("x-admin-secret", cullis_e2e::stack::broker::ADMIN_SECRET)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        audit.lines().count(),
        1,
        "one executed transaction: {audit}"
    );
    assert!(
        audit.contains(jti),
        "transaction {jti} in the audit log: {audit}"
    );
    // The SDK acknowledged every pushed message by itself (frames carry queued + msg_id).
    let session = summary["ec_session"].as_str().unwrap();
    assert!(acked(&broker, session).await >= 3, "{summary}");
    let (status, verified) = broker
        .admin(Method::GET, "/v1/admin/audit/verify", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(
        verified["valid"], true,
        "the audit chain stays intact: {verified}"
    );
}

#[tokio::test]
async fn sdk_022_direct_client_on_sqlite() {
    direct_flow(Store::Sqlite).await;
}

#[tokio::test]
async fn sdk_022_direct_client_on_postgres_and_redis() {
    direct_flow(Store::PostgresRedis).await;
}

/// A 0.2.2 agent (EC P-256, org globex, direct) and an agent behind our proxy (org alpha) talk
/// both ways: the SDK seals v2 (AES-KW) and our proxy opens it; our proxy reads `e2e` from the
/// 0.2.2 agent's public-key answer and seals v2 for it.
#[tokio::test]
async fn sdk_022_agent_and_proxy_agent_exchange_with_ec_keys() {
    let broker = start_broker(Store::Sqlite).await;
    let proxy = TestProxy::start(&[]).await;
    let (status, invite) = broker
        .admin(
            Method::POST,
            "/v1/admin/invites",
            Some(json!({"label": "alpha", "ttl_hours": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invite}");
    let joined = proxy
        .join(&broker.base, invite["token"].as_str().unwrap(), "alpha")
        .await;
    assert!(joined.success, "{}\n{}", joined.stdout, joined.stderr);
    let (status, approved) = broker
        .admin(Method::POST, "/v1/admin/orgs/alpha/approve", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let (proxy_agent, api_key) = proxy.create_agent("buyer", &["order.place"]).await;
    let local = EgressClient::new(&proxy.base, &api_key);

    let globex = broker
        .onboard_with_webhook("globex", Some(&pdp("allow").await))
        .await;
    let sdk_agent = broker
        .register_agent_as(
            &globex,
            "sdk-ec",
            &["order.place"],
            KeyType::EcP256,
            v2_metadata(),
        )
        .await;
    let agents = json!({"sdk": agent_config(&globex, &sdk_agent)});

    // The proxy agent opens; the driver logs the 0.2.2 agent in (pinning its certificate),
    // accepts and sends.
    let (status, opened) = local
        .open_session(&sdk_agent.agent_id, "globex", &["order.place"])
        .await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    let session_id = opened["session_id"].as_str().unwrap().to_owned();
    let config = json!({"base": broker.base, "agents": agents, "session_id": session_id, "peer_agent_id": proxy_agent});
    sdk022::drive(&driver(), "accept-and-send", &config).await;

    // SDK → proxy: sealed v2 by the SDK, opened and verified by our proxy.
    let got = local
        .wait_for_message(&session_id, -1, Duration::from_secs(20), |m| {
            m["sender_agent_id"] == sdk_agent.agent_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(got["payload"], json!({"text": "from sdk 0.2.2"}), "{got}");
    assert_eq!(got["verified"], true, "{got}");

    // Proxy → SDK: our proxy seals v2 because the broker publishes the agent's `e2e` list.
    let (status, sent) = local
        .send(
            &session_id,
            &sdk_agent.agent_id,
            &json!({"text": "from the proxy"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let stored = broker.stored_payloads(&session_id).await;
    let wrapped = stored
        .iter()
        .filter_map(|p| p["encrypted_key"].as_str())
        .map(|k| {
            cullis_shared::encoding::b64::decode_lenient(k)
                .unwrap()
                .len()
        })
        .collect::<Vec<_>>();
    assert_eq!(
        wrapped,
        [40, 40],
        "both directions wrapped with AES-KW: {stored:?}"
    );
    sdk022::drive(&driver(), "receive", &config).await;
}
