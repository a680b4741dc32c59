//! Acknowledged delivery through the proxy: an agent behind a proxy acknowledges what it
//! received (`POST /v1/egress/messages/{session_id}/{msg_id}/ack`) with the broker's acks, as a
//! `cullis-sdk` 0.2.x agent does directly. Real broker, two real proxies.

use cullis_e2e::stack::two_orgs::{Session, TwoOrgs};
use cullis_e2e::stack::{Options, Store};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const CAPS: [&str; 1] = ["procurement.read"];

#[tokio::test]
async fn an_agent_behind_a_proxy_acknowledges_what_it_received() {
    let mut stack = TwoOrgs::start(Store::Sqlite, Options::default()).await;
    let Session {
        buyer,
        seller_id,
        seller,
        session_id,
        ..
    } = stack.accepted_session(&CAPS).await;
    let (status, body) = buyer
        .send(&session_id, &seller_id, &json!({"order": "PO-9"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message = seller
        .wait_for_message(&session_id, -1, Duration::from_secs(20), |m| {
            m["payload"]["order"] == "PO-9"
        })
        .await
        .unwrap();
    let msg_id = message["msg_id"]
        .as_str()
        .expect("msg_id in the poll answer");
    assert_eq!(
        msg_id,
        message["seq"].to_string(),
        "the broker's msg_id is its seq"
    );

    let (status, body) = seller.ack(&session_id, msg_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acked");
    let (status, body) = seller.ack(&session_id, msg_id).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "acknowledging twice is fine: {body}"
    );

    // Only the recipient acknowledges; unknown and malformed ids are 404 with a detail.
    let (status, body) = buyer.ack(&session_id, msg_id).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the sender cannot ack: {body}"
    );
    assert_eq!(body["detail"], "Message not found");
    for bad in ["999999", "x1", "-1"] {
        let (status, body) = seller.ack(&session_id, bad).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    let (status, body) = seller.ack("not-a-session", msg_id).await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body["detail"].is_string(), "{body}");

    // What arrives while the recipient's proxy is down is there after its restart: the broker
    // keeps every message (none expires unless its sender set a time to live) and the agent's
    // poll cursor says what is new — a restart or a dropped SSE stream loses nothing.
    stack.beta.stop();
    let (status, body) = buyer
        .send(&session_id, &seller_id, &json!({"order": "PO-10"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    stack.beta.restart().await;
    let seq = message["seq"].as_i64().unwrap();
    let later = seller
        .wait_for_message(&session_id, seq, Duration::from_secs(20), |m| {
            m["payload"]["order"] == "PO-10"
        })
        .await
        .unwrap();
    let (status, body) = seller
        .ack(&session_id, later["msg_id"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
