//! Two broker replicas on one PostgreSQL + Redis: a token from one works on the other, a session
//! opened on one is accepted on the other, 8 concurrent senders spread over both produce one
//! gap-free message sequence, and the audit chain they both appended to verifies.

mod common;

use common::messaging::{open_active_session, pdp, public_key, send};
use common::{Options, Store, TestBroker};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn two_replicas_share_sessions_sequences_and_the_audit_chain() {
    let options = Options::default()
        .env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
        .env("RATE_LIMIT_BROKER_MESSAGE", "10000/60s");
    let a = TestBroker::start_with(Store::PostgresRedis, options).await;
    let b = a.replica().await;
    let acme = a
        .onboard_with_webhook("acme", Some(&pdp("allow").await))
        .await;
    let globex = a
        .onboard_with_webhook("globex", Some(&pdp("allow").await))
        .await;
    let buyer = Arc::new(a.register_agent(&acme, "buyer", &["order.place"]).await);
    let seller = a.register_agent(&globex, "seller", &["order.place"]).await;

    // Tokens and sessions work across replicas.
    let buyer_on_a = Arc::new(buyer.login(&a.base, &a.http).await.unwrap());
    let buyer_on_b = Arc::new(buyer.login(&b.base, &b.http).await.unwrap());
    let seller_on_b = seller.login(&b.base, &b.http).await.unwrap();
    let session_id = open_active_session(
        &buyer_on_a,
        &seller_on_b,
        "globex::seller",
        "globex",
        &["order.place"],
    )
    .await;
    let seller_key = Arc::new(public_key(&buyer_on_a, "globex::seller").await);

    // 8 senders, 5 messages each, alternating replicas.
    let mut tasks = Vec::new();
    for sender in 0..8u64 {
        let via = if sender % 2 == 0 {
            buyer_on_a.clone()
        } else {
            buyer_on_b.clone()
        };
        let (buyer, key, session_id) = (buyer.clone(), seller_key.clone(), session_id.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..5u64 {
                let (status, body, _) = send(
                    &via,
                    &buyer,
                    &key,
                    &session_id,
                    &json!({"sender": sender, "i": i}),
                    sender * 100 + i,
                )
                .await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (status, messages) = seller_on_b
        .call(
            Method::GET,
            &format!("/v1/broker/sessions/{session_id}/messages?after=-1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let seqs: Vec<u64> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (0..40).collect::<Vec<_>>(),
        "one gap-free, duplicate-free sequence"
    );
    let mut client_seqs: Vec<u64> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["client_seq"].as_u64().unwrap())
        .collect();
    client_seqs.sort();
    client_seqs.dedup();
    assert_eq!(client_seqs.len(), 40, "every message stored once");

    // One audit chain, no fork.
    let (status, report) = b.admin(Method::GET, "/v1/admin/audit/verify", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["valid"], true, "{report}");
    assert!(report["total"].as_u64().unwrap() >= 40);
}
