//! What the broker adds for the second SDK generation (`cullis-sdk` 0.2.x, docs/
//! sdk-generations.md), driven over real HTTP and WebSocket by our Rust client: the role header,
//! the federation read paths, declared envelope versions, acknowledged delivery (idempotency
//! keys, acks, TTL), the server's pings, resume replay, and the RFQ push. The unmodified Python
//! SDK runs the same flows in `e2e/tests/sdk_022.rs`.

mod common;

use common::messaging::{open_active_session, pdp, public_key, seal};
use common::{Options, Store, TestBroker};
use cullis_e2e::client::{AgentIdentity, AgentSession};
use cullis_e2e::ws;
use cullis_shared::keys::KeyType;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct World {
    broker: TestBroker,
    acme: common::TestOrg,
    buyer: AgentIdentity,
    buyer_session: AgentSession,
    seller_session: AgentSession,
    session_id: String,
}

async fn world(options: Options) -> World {
    let broker = TestBroker::start_with(
        Store::Sqlite,
        options.env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
    )
    .await;
    let acme = broker
        .onboard_with_webhook("acme", Some(&pdp("allow").await))
        .await;
    let globex = broker
        .onboard_with_webhook("globex", Some(&pdp("allow").await))
        .await;
    let buyer = broker
        .register_agent(&acme, "buyer", &["order.place"])
        .await;
    let seller = broker
        .register_agent_as(
            &globex,
            "seller",
            &["order.place", "rfq.quote"],
            KeyType::EcP256,
            json!({"e2e": ["cullis-e2e-v2-aeskw", "cullis-e2e-v1"]}),
        )
        .await;
    let buyer_session = buyer.login(&broker.base, &broker.http).await.unwrap();
    let seller_session = seller.login(&broker.base, &broker.http).await.unwrap();
    let session_id = open_active_session(
        &buyer_session,
        &seller_session,
        "globex::seller",
        "globex",
        &["order.place"],
    )
    .await;
    World {
        broker,
        acme,
        buyer,
        buyer_session,
        seller_session,
        session_id,
    }
}

impl World {
    /// Sends `payload` from the buyer with the given query string; status and answer.
    async fn send(&self, payload: Value, query: &str, client_seq: u64) -> (StatusCode, Value) {
        let key = public_key(&self.buyer_session, "globex::seller").await;
        let body = seal(&self.buyer, &key, &self.session_id, &payload, client_seq);
        self.buyer_session
            .call(
                Method::POST,
                &format!("/v1/broker/sessions/{}/messages{query}", self.session_id),
                Some(body),
            )
            .await
    }

    async fn ack(&self, who: &AgentSession, msg_id: &str) -> (StatusCode, Value) {
        let path = format!(
            "/v1/broker/sessions/{}/messages/{msg_id}/ack",
            self.session_id
        );
        who.call(Method::POST, &path, None).await
    }

    async fn seller_polls(&self, after: i64) -> Vec<i64> {
        let path = format!(
            "/v1/broker/sessions/{}/messages?after={after}",
            self.session_id
        );
        let (status, body) = self.seller_session.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect()
    }
}

#[tokio::test]
async fn role_header_federation_paths_and_declared_envelope_versions() {
    let w = world(Options::default()).await;
    for path in ["/health", "/v1/no-such-path"] {
        let response = w.broker.http.get(w.broker.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["x-cullis-role"], "broker", "{path}");
    }
    // The federation paths answer what the registry paths answer (same handlers).
    for (registry, federation) in [
        (
            "/v1/registry/agents/search?capability=order.place",
            "/v1/federation/agents/search?capability=order.place",
        ),
        (
            "/v1/registry/agents/globex::seller",
            "/v1/federation/agents/globex::seller",
        ),
        (
            "/v1/registry/agents/globex::seller/public-key",
            "/v1/federation/agents/globex::seller/public-key",
        ),
    ] {
        let a = w.buyer_session.call(Method::GET, registry, None).await;
        let b = w.buyer_session.call(Method::GET, federation, None).await;
        assert_eq!(a.0, StatusCode::OK, "{}", a.1);
        assert_eq!(a, b, "{federation}");
    }
    let (_, listed) = w
        .buyer_session
        .call(Method::GET, "/v1/federation/agents", None)
        .await;
    assert_eq!(
        listed["agents"][0]["agent_id"], "globex::seller",
        "{listed}"
    );
    assert_eq!(listed["total"], 1, "own org left out: {listed}");
    // The registry search still wants a filter; the federation list does not.
    let (status, _) = w
        .buyer_session
        .call(Method::GET, "/v1/federation/agents/search", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, key) = w
        .buyer_session
        .call(
            Method::GET,
            "/v1/federation/agents/globex::seller/public-key",
            None,
        )
        .await;
    assert!(key["cert_pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(key["e2e"], json!(["cullis-e2e-v2-aeskw", "cullis-e2e-v1"]));
    let (_, key) = w
        .seller_session
        .call(
            Method::GET,
            "/v1/registry/agents/acme::buyer/public-key",
            None,
        )
        .await;
    assert!(key.get("e2e").is_none(), "nothing declared: {key}");

    // A declaration must name known versions (422, nothing registered).
    for bad in [json!("v2"), json!([]), json!(["cullis-e2e-v3"]), json!([1])] {
        let body = json!({"agent_id": "acme::other", "org_id": "acme", "display_name": "o", "metadata": {"e2e": bad}});
        let (status, answer) = w
            .broker
            .org(&w.acme, Method::POST, "/v1/registry/agents", Some(body))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {answer}");
        assert_eq!(
            answer["detail"][0]["loc"],
            json!(["body", "metadata", "e2e"])
        );
    }
    let (status, _) = w
        .buyer_session
        .call(Method::GET, "/v1/registry/agents/acme::other", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn idempotent_sends_acks_and_expiry() {
    let w = world(Options::default()).await;
    // Without the new parameters the answer is the first generation's, plus msg_id.
    let (status, plain) = w.send(json!({"n": 0}), "", 0).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{plain}");
    assert_eq!(plain["status"], "accepted");
    assert_eq!(plain["msg_id"], "0");
    assert!(plain.get("deduped").is_none());

    let query = "?ttl_seconds=600&idempotency_key=order-1";
    let (status, first) = w.send(json!({"order": 1}), query, 1).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(
        (&first["status"], &first["msg_id"], &first["deduped"]),
        (&json!("queued"), &json!("1"), &json!(false))
    );
    // A resend (new nonce, new client_seq, as 0.2.2 does) answers the first message.
    let (status, again) = w.send(json!({"order": 1}), query, 2).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(
        (&again["msg_id"], &again["deduped"]),
        (&json!("1"), &json!(true))
    );
    assert_eq!(w.seller_polls(-1).await, [0, 1], "one message per key");

    // Acks: the recipient only, twice is fine, unknown ids 404.
    assert_eq!(
        w.ack(&w.seller_session, "1").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        w.ack(&w.seller_session, "1").await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = w.ack(&w.buyer_session, "1").await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some("Message not found"))
    );
    for bad in ["99", "-1", "x"] {
        assert_eq!(
            w.ack(&w.seller_session, bad).await.0,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }

    // Bad parameters: 422 with the field named, nothing stored.
    for query in ["?ttl_seconds=0", "?ttl_seconds=86401", "?idempotency_key="] {
        let (status, body) = w.send(json!({"bad": true}), query, 3).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
    }
    let long = format!("?idempotency_key={}", "k".repeat(129));
    assert_eq!(
        w.send(json!({"bad": true}), &long, 3).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(w.seller_polls(-1).await, [0, 1]);

    // Past its TTL and unacknowledged: no longer delivered, its ack is 409; acked ones stay.
    let (_, short) = w.send(json!({"short": true}), "?ttl_seconds=1", 4).await;
    assert_eq!(short["msg_id"], "2");
    assert_eq!(w.seller_polls(-1).await, [0, 1, 2]);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(w.seller_polls(-1).await, [0, 1]);
    assert_eq!(w.ack(&w.seller_session, "2").await.0, StatusCode::CONFLICT);
}

/// The next `new_message` frame (pings in between skipped).
async fn next_message(socket: &mut ws::Socket) -> Value {
    loop {
        let frame = ws::next(socket).await.unwrap();
        if frame["type"] == "new_message" {
            return frame;
        }
        assert_eq!(frame["type"], "ping", "{frame}");
    }
}

#[tokio::test]
async fn websocket_pings_frames_to_ack_and_resume_replay() {
    let w = world(Options::default().env("WS_PING_INTERVAL_SECONDS", "1")).await;
    let mut socket = ws::authed(&w.seller_session, &w.broker.base).await;
    w.send(json!({"n": 0}), "", 0).await;
    let pushed = next_message(&mut socket).await;
    assert_eq!(
        (&pushed["msg_id"], &pushed["queued"]),
        (&json!("0"), &json!(true))
    );
    assert!(pushed.get("replayed").is_none());
    let ping = ws::next(&mut socket).await.unwrap();
    assert_eq!(
        ping,
        json!({"type": "ping"}),
        "the heartbeat comes every second"
    );
    ws::send_json(&mut socket, &json!({"type": "pong"})).await;

    // Missed while away: a resume replays what came after last_seq, marked replayed.
    drop(socket);
    w.send(json!({"n": 1}), "", 1).await;
    w.send(json!({"n": 2}), "", 2).await;
    let mut socket = ws::authed(&w.seller_session, &w.broker.base).await;
    let resume = json!({"type": "resume", "session_id": w.session_id, "last_seq": 0});
    ws::send_json(&mut socket, &resume).await;
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        let frame = next_message(&mut socket).await;
        assert_eq!(frame["replayed"], true, "{frame}");
        replayed.push(frame["message"]["seq"].as_i64().unwrap());
    }
    assert_eq!(replayed, [1, 2]);
    // A resume for a session the agent is not in replays nothing (the socket stays up).
    let stranger = json!({"type": "resume", "session_id": "00000000-0000-0000-0000-000000000000", "last_seq": -1});
    ws::send_json(&mut socket, &stranger).await;
    let next = ws::next(&mut socket).await.unwrap();
    assert_eq!(next["type"], "ping", "{next}");
}

#[tokio::test]
async fn rfq_request_is_pushed_to_matched_suppliers() {
    let w = world(Options::default()).await;
    let mut socket = ws::authed(&w.seller_session, &w.broker.base).await;
    let buyer = w.buyer_session;
    let request = tokio::spawn(async move {
        buyer
            .call(
                Method::POST,
                "/v1/broker/rfq",
                Some(json!({"capability_filter": ["rfq.quote"], "payload": {"sku": "M8"}, "timeout_seconds": 10})),
            )
            .await
    });
    let frame = ws::next(&mut socket).await.unwrap();
    assert_eq!(frame["type"], "rfq_request", "{frame}");
    assert_eq!(frame["initiator_agent_id"], "acme::buyer");
    assert_eq!(frame["initiator_org_id"], "acme");
    assert_eq!(frame["capabilities"], json!(["rfq.quote"]));
    assert_eq!(frame["payload"], json!({"sku": "M8"}));
    assert_eq!(frame["timeout_seconds"], 10);
    let rfq_id = frame["rfq_id"].as_str().unwrap();
    let (status, _) = w
        .seller_session
        .call(
            Method::POST,
            &format!("/v1/broker/rfq/{rfq_id}/respond"),
            Some(json!({"payload": {"price": 42}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, result) = request.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{result}");
    assert_eq!(result["status"], "closed");
    assert_eq!(result["quotes"][0]["payload"], json!({"price": 42}));
}
