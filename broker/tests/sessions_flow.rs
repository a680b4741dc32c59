//! Two organisations, two agents, real HTTP: both orgs' PDP webhooks (small HTTP servers
//! started here) allow a session; the agents exchange E2E-encrypted, signed messages both ways
//! through the broker, which stores only ciphertext; replays and tampering are refused.

mod common;

use common::messaging::{pdp, public_key, send};
use common::{Options, Store, TestBroker};
use cullis_e2e::client::{AgentIdentity, AgentSession};
use cullis_e2e::setup::OrgIdentity;
use cullis_shared::envelope::{self, InnerSignature};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn setup(
    store: Store,
    seller_pdp: &'static str,
) -> (
    TestBroker,
    AgentIdentity,
    AgentSession,
    AgentIdentity,
    AgentSession,
    OrgIdentity,
) {
    setup_with(store, seller_pdp, Options::default()).await
}

async fn setup_with(
    store: Store,
    seller_pdp: &'static str,
    options: Options,
) -> (
    TestBroker,
    AgentIdentity,
    AgentSession,
    AgentIdentity,
    AgentSession,
    OrgIdentity,
) {
    let broker = TestBroker::start_with(
        store,
        options.env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
    )
    .await;
    let acme = broker
        .onboard_with_webhook("acme", Some(&pdp("allow").await))
        .await;
    let globex = broker
        .onboard_with_webhook("globex", Some(&pdp(seller_pdp).await))
        .await;
    let buyer = broker
        .register_agent(&acme, "buyer", &["order.place"])
        .await;
    let seller = broker
        .register_agent(&globex, "seller", &["order.place"])
        .await;
    let buyer_session = buyer.login(&broker.base, &broker.http).await.unwrap();
    let seller_session = seller.login(&broker.base, &broker.http).await.unwrap();
    (broker, buyer, buyer_session, seller, seller_session, acme)
}

async fn two_org_exchange(store: Store) {
    let (broker, buyer, buyer_session, seller, seller_session, _acme) = setup(store, "allow").await;
    let open = json!({"target_agent_id": "globex::seller", "target_org_id": "globex", "requested_capabilities": ["order.place"]});
    let (status, created) = buyer_session
        .call(Method::POST, "/v1/broker/sessions", Some(open))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "pending");
    let session_id = created["session_id"].as_str().unwrap().to_owned();

    let (_, inbox) = seller_session
        .call(Method::GET, "/v1/broker/notifications", None)
        .await;
    assert_eq!(inbox[0]["type"], "session_pending");
    assert_eq!(inbox[0]["reference_id"], session_id.as_str());
    // Only the target accepts; then the session is active.
    let (status, _) = buyer_session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/accept"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, accepted) = seller_session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/accept"),
            None,
        )
        .await;
    assert_eq!(
        (status, accepted["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );

    // Buyer → seller, E2E.
    let seller_key = public_key(&buyer_session, "globex::seller").await;
    let order = json!({"po": "PO-1", "lines": [{"sku": "A-1", "qty": 3}], "note": "naïve ☃"});
    let (status, answer, sent) =
        send(&buyer_session, &buyer, &seller_key, &session_id, &order, 0).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, messages) = seller_session
        .call(
            Method::GET,
            &format!("/v1/broker/sessions/{session_id}/messages?after=-1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(messages.as_array().unwrap().len(), 1);
    let message = &messages[0];
    assert_eq!(message["seq"], 0);
    assert!(
        message["payload"].get("ciphertext").is_some(),
        "the broker holds ciphertext only"
    );
    let blob = serde_json::from_value(message["payload"].clone()).unwrap();
    let buyer_key = public_key(&seller_session, "acme::buyer").await;
    let opened = envelope::open(
        &seller.key,
        &session_id,
        "acme::buyer",
        message["client_seq"].as_u64(),
        &blob,
        Some((
            message["nonce"].as_str().unwrap(),
            message["signed_timestamp"].as_i64().unwrap(),
        )),
        Some(&buyer_key),
    )
    .unwrap();
    assert_eq!(opened.payload, order);
    assert_eq!(opened.inner, InnerSignature::Verified);

    // Seller → buyer; sequences continue per session.
    let reply = json!({"po": "PO-1", "status": "confirmed"});
    let (status, _, _) = send(&seller_session, &seller, &buyer_key, &session_id, &reply, 0).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, messages) = buyer_session
        .call(
            Method::GET,
            &format!("/v1/broker/sessions/{session_id}/messages?after=-1"),
            None,
        )
        .await;
    assert_eq!(
        messages.as_array().unwrap().len(),
        1,
        "a sender does not get its own messages back"
    );
    assert_eq!(messages[0]["seq"], 1);
    let (_, none) = buyer_session
        .call(
            Method::GET,
            &format!("/v1/broker/sessions/{session_id}/messages?after=1"),
            None,
        )
        .await;
    assert_eq!(none, json!([]));

    // Replay of the same envelope, tampered ciphertext, stale timestamp.
    let (status, body) = buyer_session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/messages"),
            Some(sent.clone()),
        )
        .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("Nonce already used — possible replay attack")
        )
    );
    let mut tampered = sent.clone();
    tampered["nonce"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, body) = buyer_session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/messages"),
            Some(tampered),
        )
        .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("Invalid message signature — cannot verify the sender")
        )
    );
    let mut stale = sent.clone();
    stale["nonce"] = json!(uuid::Uuid::new_v4().to_string());
    stale["timestamp"] = json!(common::unix_now() - 120);
    let (status, _) = buyer_session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/messages"),
            Some(stale),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Each refusal left a denied `broker.message_send` row saying why.
    let reasons: Vec<String> = broker
        .audit_events("broker.message_send")
        .await
        .iter()
        .filter(|row| row["result"] == "denied")
        .map(|row| {
            row["details"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "replay attack detected",
            "invalid signature",
            "timestamp out of window"
        ]
    );

    // Close; polling stops.
    let (status, closed) = buyer_session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/close"),
            None,
        )
        .await;
    assert_eq!(
        (status, closed["status"].as_str()),
        (StatusCode::OK, Some("closed"))
    );
    let (status, body) = seller_session
        .call(
            Method::GET,
            &format!("/v1/broker/sessions/{session_id}/messages"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("Session is closed — polling not available")
        )
    );
    let (_, listed) = buyer_session
        .call(Method::GET, "/v1/broker/sessions?status=closed", None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    drop(broker);
}

#[tokio::test]
async fn two_org_exchange_on_sqlite() {
    two_org_exchange(Store::Sqlite).await;
}

#[tokio::test]
async fn two_org_exchange_on_postgres_and_redis() {
    two_org_exchange(Store::PostgresRedis).await;
}

#[tokio::test]
async fn a_denying_target_pdp_stops_the_session() {
    let (_broker, _buyer, buyer_session, _seller, _seller_session, _acme) =
        setup(Store::Sqlite, "deny").await;
    let open = json!({"target_agent_id": "globex::seller", "target_org_id": "globex", "requested_capabilities": ["order.place"]});
    let (status, body) = buyer_session
        .call(Method::POST, "/v1/broker/sessions", Some(open))
        .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::FORBIDDEN, Some("Policy: pdp says deny"))
    );
    let self_session = json!({"target_agent_id": "acme::buyer", "target_org_id": "acme", "requested_capabilities": ["order.place"]});
    let (status, body) = buyer_session
        .call(Method::POST, "/v1/broker/sessions", Some(self_session))
        .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("You cannot open a session with yourself")
        )
    );
    let unknown = json!({"target_agent_id": "globex::nobody", "target_org_id": "globex"});
    let (status, _) = buyer_session
        .call(Method::POST, "/v1/broker/sessions", Some(unknown))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The sender org's local `message` policies apply to every envelope (spec §5.6): a denial is
/// a 403 naming the rule, a denied `broker.message_send` row and a `policy.evaluated` row.
#[tokio::test]
async fn message_policies_of_the_sender_org_are_enforced() {
    let (broker, buyer, buyer_session, _seller, seller_session, acme) =
        setup(Store::Sqlite, "allow").await;
    let session_id = common::messaging::open_active_session(
        &buyer_session,
        &seller_session,
        "globex::seller",
        "globex",
        &["order.place"],
    )
    .await;
    let seller_key = public_key(&buyer_session, "globex::seller").await;
    let order = json!({"po": "PO-7"});
    // No message policy: allowed.
    let (status, answer, _) =
        send(&buyer_session, &buyer, &seller_key, &session_id, &order, 0).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");

    let rules = json!({"policy_id": "acme::small", "org_id": "acme", "policy_type": "message",
        "rules": {"conditions": {"max_payload_size_bytes": 64}}});
    let (status, created) = broker
        .org(&acme, Method::POST, "/v1/policy/rules", Some(rules))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body, _) = send(&buyer_session, &buyer, &seller_key, &session_id, &order, 1).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Message policy: Payload too large: ") && detail.ends_with("(max 64)"),
        "{detail}"
    );
    let denied = broker.audit_events("broker.message_send").await;
    let last = denied.last().unwrap();
    assert_eq!(last["result"], "denied");
    assert_eq!(last["details"]["policy_id"], "acme::small");
    let evaluated = broker.audit_events("policy.evaluated").await;
    assert!(evaluated
        .iter()
        .any(|row| row["result"] == "denied" && row["org_id"] == "acme"));
    // Nothing was stored for the refused envelope.
    let (_, messages) = seller_session
        .call(
            Method::GET,
            &format!("/v1/broker/sessions/{session_id}/messages?after=-1"),
            None,
        )
        .await;
    assert_eq!(messages.as_array().unwrap().len(), 1);
}

/// Opens buyer → seller and expects the policy backend's denial, with its audit row.
async fn expect_session_denied(broker: &TestBroker, buyer_session: &AgentSession, detail: &str) {
    let open = json!({"target_agent_id": "globex::seller", "target_org_id": "globex", "requested_capabilities": ["order.place"]});
    let (status, body) = buyer_session
        .call(Method::POST, "/v1/broker/sessions", Some(open))
        .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::FORBIDDEN, Some(detail))
    );
    let denied = broker.audit_events("policy.session_denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(
        Some(denied[0]["details"]["reason"].as_str().unwrap_or_default()),
        detail.strip_prefix("Policy: ")
    );
}

/// `POLICY_BACKEND=rego`: the embedded regorus evaluation of a policy file denies over HTTP.
#[tokio::test]
async fn an_embedded_rego_policy_denies_the_session() {
    let dir = std::env::temp_dir().join(format!("cullis-rego-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("session.rego");
    std::fs::write(
        &policy,
        "package atn.session\n\nimport rego.v1\n\ndefault allow := {\"allow\": false, \"reason\": \"no partnership between these organisations\"}\n",
    )
    .unwrap();
    let options = Options::default()
        .env("POLICY_BACKEND", "rego")
        .env("OPA_POLICY_PATH", policy.to_str().unwrap());
    let (broker, _buyer, buyer_session, _seller, _seller_session, _acme) =
        setup_with(Store::Sqlite, "allow", options).await;
    expect_session_denied(
        &broker,
        &buyer_session,
        "Policy: no partnership between these organisations",
    )
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `POLICY_BACKEND=opa`: a remote OPA answering `{"result": false}` denies over HTTP.
///
/// NOTE: a small fake OPA (axum) stands in for OPA, whose binary this machine cannot install;
/// the Rego language itself is evaluated for real by the test above.
#[tokio::test]
async fn a_remote_opa_denies_the_session() {
    use axum::{routing::post, Json, Router};
    let app = Router::new().route(
        "/v1/data/atn/session/allow",
        post(|Json(_input): Json<serde_json::Value>| async { Json(json!({"result": false})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let options = Options::default()
        .env("POLICY_BACKEND", "opa")
        .env("OPA_URL", &format!("http://{address}"));
    let (broker, _buyer, buyer_session, _seller, _seller_session, _acme) =
        setup_with(Store::Sqlite, "allow", options).await;
    let open = json!({"target_agent_id": "globex::seller", "target_org_id": "globex", "requested_capabilities": ["order.place"]});
    let (status, body) = buyer_session
        .call(Method::POST, "/v1/broker/sessions", Some(open))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let detail = body["detail"].as_str().unwrap().to_owned();
    assert!(detail.starts_with("Policy: "), "{detail}");
    let denied = broker.audit_events("policy.session_denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["details"]["denied_by"], "opa");
}
