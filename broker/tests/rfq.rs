//! Requests for quotes (broker spec §3.9, §1.8): the requester's POST blocks while the matched
//! suppliers (other orgs, every capability, both orgs' PDPs allow) answer; duplicates and
//! outsiders get 409; only the requester and the matched agents can read the RFQ.

mod common;

use common::{Options, Store, TestBroker};
use cullis_e2e::client::AgentSession;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Waits for the `rfq_request` notification of `session` and returns its rfq id.
async fn rfq_notification(session: &AgentSession, seen: &[String]) -> String {
    for _ in 0..100 {
        let (status, inbox) = session
            .call(Method::GET, "/v1/broker/notifications", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{inbox}");
        for item in inbox.as_array().unwrap() {
            let id = item["reference_id"].as_str().unwrap_or_default().to_owned();
            if item["type"] == "rfq_request" && !seen.contains(&id) {
                assert_eq!(item["title"], "RFQ from acme::buyer");
                return id;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no rfq_request notification for {}", session.agent_id());
}

async fn respond(session: &AgentSession, rfq_id: &str, payload: Value) -> (StatusCode, Value) {
    session
        .call(
            Method::POST,
            &format!("/v1/broker/rfq/{rfq_id}/respond"),
            Some(json!({"payload": payload})),
        )
        .await
}

async fn rfq_flow(store: Store) {
    let broker = TestBroker::start_with(
        store,
        Options::default().env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
    )
    .await;
    let acme = broker
        .onboard_with_webhook("acme", Some(&common::messaging::pdp("allow").await))
        .await;
    let globex = broker
        .onboard_with_webhook("globex", Some(&common::messaging::pdp("allow").await))
        .await;
    let initech = broker
        .onboard_with_webhook("initech", Some(&common::messaging::pdp("deny").await))
        .await;
    let buyer = broker.register_agent(&acme, "buyer", &["quote"]).await;
    let s1 = broker
        .register_agent(&globex, "s1", &["quote", "ship"])
        .await;
    let s2 = broker
        .register_agent(&globex, "s2", &["quote", "ship"])
        .await;
    let s3 = broker
        .register_agent(&initech, "s3", &["quote", "ship"])
        .await;
    let bystander = broker
        .register_agent(&globex, "bystander", &["quote"])
        .await;
    let login = |agent: cullis_e2e::client::AgentIdentity| {
        let (base, http) = (broker.base.clone(), broker.http.clone());
        async move { Arc::new(agent.login(&base, &http).await.unwrap()) }
    };
    let buyer = login(buyer).await;
    let s1 = login(s1).await;
    let s2 = login(s2).await;
    let s3 = login(s3).await;
    let bystander = login(bystander).await;

    // No candidate at all: closed at once, empty.
    let (status, none) = buyer
        .call(
            Method::POST,
            "/v1/broker/rfq",
            Some(json!({"capability_filter": ["nobody-has-this"], "payload": {"sku": "X"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{none}");
    assert_eq!(none["status"], "closed");
    assert_eq!(none["matched_agents"], json!([]));
    assert_eq!(none["quotes"], json!([]));

    // Two matched suppliers answer while the POST blocks.
    let post = {
        let buyer = buyer.clone();
        tokio::spawn(async move {
            buyer
                .call(
                    Method::POST,
                    "/v1/broker/rfq",
                    Some(json!({"capability_filter": ["quote", "ship"], "payload": {"sku": "A-1", "qty": 10}, "timeout_seconds": 10})),
                )
                .await
        })
    };
    let rfq_id = rfq_notification(&s1, &[]).await;
    assert_eq!(rfq_notification(&s2, &[]).await, rfq_id);
    // initech's PDP denies: s3 is not matched and cannot answer.
    let (status, body) = respond(&s3, &rfq_id, json!({"price": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["detail"],
        "RFQ not found, already closed, not in matched set, or already responded"
    );
    let (status, body) = respond(&bystander, &rfq_id, json!({"price": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, accepted) = respond(&s1, &rfq_id, json!({"price": 9.5, "days": 3})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(
        accepted,
        json!({"status": "accepted", "rfq_id": rfq_id.as_str()})
    );
    let (status, _) = respond(&s1, &rfq_id, json!({"price": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a second answer is refused");
    // While open, a matched agent reads it; an unrelated one gets 404.
    let (status, open) = s2
        .call(Method::GET, &format!("/v1/broker/rfq/{rfq_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{open}");
    assert_eq!(open["status"], "open");
    assert_eq!(open["quotes"].as_array().unwrap().len(), 1);
    let (status, _) = respond(&s2, &rfq_id, json!({"price": 11})).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, result) = tokio::time::timeout(Duration::from_secs(8), post)
        .await
        .expect("the POST returns once every matched agent answered")
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{result}");
    assert_eq!(result["rfq_id"], rfq_id.as_str());
    assert_eq!(result["status"], "closed");
    assert!(result["closed_at"].is_string());
    assert!(result["created_at"].is_string());
    let mut matched: Vec<&str> = result["matched_agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    matched.sort();
    assert_eq!(matched, ["globex::s1", "globex::s2"]);
    let quotes = result["quotes"].as_array().unwrap();
    assert_eq!(quotes.len(), 2);
    assert_eq!(quotes[0]["responder_agent_id"], "globex::s1");
    assert_eq!(quotes[0]["responder_org_id"], "globex");
    assert_eq!(quotes[0]["payload"], json!({"price": 9.5, "days": 3}));
    assert!(quotes[0]["received_at"].is_string());
    assert_eq!(quotes[1]["responder_agent_id"], "globex::s2");
    let mut keys: Vec<&String> = quotes[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "payload",
            "received_at",
            "responder_agent_id",
            "responder_org_id"
        ]
    );

    // After close: answers are refused.
    let (status, _) = respond(&s2, &rfq_id, json!({"price": 12})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Readable by the requester and the matched agents only.
    let path = format!("/v1/broker/rfq/{rfq_id}");
    let (status, read) = buyer.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, result);
    let (status, _) = s1.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    for outsider in [&bystander, &s3] {
        let (status, body) = outsider.call(Method::GET, &path, None).await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, json!({"detail": "RFQ not found"}))
        );
    }
    let (status, body) = buyer
        .call(
            Method::GET,
            &format!("/v1/broker/rfq/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"detail": "RFQ not found"}))
    );
    // Bad ids: 400 mentioning UUID.
    let (status, body) = buyer
        .call(Method::GET, "/v1/broker/rfq/not-a-uuid", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("UUID"), "{body}");
    let (status, body) = respond(&s1, "not-a-uuid", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("UUID"), "{body}");

    // Only s1 answers: the RFQ times out with one quote.
    let started = std::time::Instant::now();
    let post = {
        let buyer = buyer.clone();
        tokio::spawn(async move {
            buyer
                .call(
                    Method::POST,
                    "/v1/broker/rfq",
                    Some(json!({"capability_filter": ["ship"], "payload": {"sku": "B"}, "timeout_seconds": 5})),
                )
                .await
        })
    };
    let second = rfq_notification(&s1, std::slice::from_ref(&rfq_id)).await;
    let (status, _) = respond(&s1, &second, json!({"price": 3})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, result) = post.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{result}");
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(result["status"], "timeout");
    assert_eq!(result["quotes"].as_array().unwrap().len(), 1);
    let (status, _) = respond(&s2, &second, json!({"price": 4})).await;
    assert_eq!(status, StatusCode::CONFLICT, "too late");

    // Validation: empty filter, timeout out of range.
    for bad in [
        json!({"capability_filter": [], "payload": {}}),
        json!({"capability_filter": ["quote"], "payload": {}, "timeout_seconds": 4}),
        json!({"capability_filter": ["quote"], "payload": {}, "timeout_seconds": 121}),
    ] {
        let (status, _) = buyer.call(Method::POST, "/v1/broker/rfq", Some(bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn rfq_on_sqlite() {
    rfq_flow(Store::Sqlite).await;
}

#[tokio::test]
async fn rfq_on_postgres_and_redis() {
    rfq_flow(Store::PostgresRedis).await;
}
