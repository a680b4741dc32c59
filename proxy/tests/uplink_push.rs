//! Push through the broker WebSocket: `session_pending` and `new_message` (fetched and
//! decrypted) reach subscribers; the socket is shared per agent and survives a broker-side
//! disconnect.

mod uplink_common;

use cullis_e2e::stack::Store;
use cullis_proxy::uplink::AgentEvent;
use reqwest::Method;
use serde_json::json;
use uplink_common::*;

#[tokio::test]
async fn session_pending_and_decrypted_new_message_are_pushed() {
    let broker = broker(Store::Sqlite).await;
    let uplink = uplink(&broker.base);
    let orgs = two_orgs(&broker, &uplink, "allow").await;
    let mut events = uplink.subscribe(&orgs.seller).await.unwrap();
    let mut second = uplink.subscribe(&orgs.seller).await.unwrap();

    let sid = uplink
        .open_session(&orgs.buyer, "beta::seller", "beta", &caps())
        .await
        .unwrap();
    let pending = next_event(&mut events, |e| match e {
        AgentEvent::SessionPending {
            session_id,
            initiator_agent_id,
            ..
        } => Some((session_id.clone(), initiator_agent_id.clone())),
        _ => None,
    })
    .await;
    assert_eq!(pending, (sid.clone(), "alpha::buyer".to_owned()));
    let json = serde_json::to_value(
        next_event(&mut second, |e| match e {
            AgentEvent::SessionPending { .. } => Some(e.clone()),
            _ => None,
        })
        .await,
    )
    .unwrap();
    assert_eq!(json["type"], "session_pending");

    uplink.accept_session(&orgs.seller, &sid).await.unwrap();
    let order = json!({"text": "Grüße", "qty": 3});
    uplink
        .send(&orgs.buyer, &sid, "beta::seller", &order, 0)
        .await
        .unwrap();
    let message = next_event(&mut events, |e| match e {
        AgentEvent::NewMessage {
            session_id,
            message: Some(message),
            ..
        } if session_id == &sid => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(message.payload, order);
    assert!(message.verified);
    assert_eq!(message.sender_agent_id, "alpha::buyer");

    // The broker drops the socket (token revocation): the uplink reconnects with a new login
    // and says so with a resync event; pushes flow again.
    let (status, body) = broker
        .org(
            &orgs.beta,
            Method::POST,
            "/v1/auth/revoke-agent/beta::seller",
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    next_event(&mut events, |e| match e {
        AgentEvent::Resync { .. } => Some(()),
        _ => None,
    })
    .await;
    uplink
        .send(
            &orgs.buyer,
            &sid,
            "beta::seller",
            &json!({"after": "reconnect"}),
            1,
        )
        .await
        .unwrap();
    let again = next_event(&mut events, |e| match e {
        AgentEvent::NewMessage {
            message: Some(message),
            ..
        } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(again.payload, json!({"after": "reconnect"}));

    // forget_agent closes the stream.
    uplink.forget_agent("beta::seller");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                _ => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "stream closed after forget_agent");
}
