//! Session and message helpers for tests, the benchmark and the demo: a PDP webhook server,
//! public-key lookup, opening a session, and sending an E2E envelope the way the proxy does.

use crate::client::{AgentIdentity, AgentSession};
use axum::{routing::post, Json, Router};
use cullis_shared::envelope;
use cullis_shared::keys::PublicKey;
use cullis_shared::signature::SignedFields;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A PDP webhook that answers every request with `decision`, on a free loopback port.
pub async fn pdp(decision: &'static str) -> String {
    let app = Router::new().route(
        "/pdp/policy",
        post(move |Json(_request): Json<Value>| async move {
            Json(json!({"decision": decision, "reason": format!("pdp says {decision}")}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/pdp/policy")
}

/// The pinned public key of `agent_id`, as a peer fetches it.
pub async fn public_key(session: &AgentSession, agent_id: &str) -> PublicKey {
    let (status, body) = session
        .call(
            Method::GET,
            &format!("/v1/registry/agents/{agent_id}/public-key"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    PublicKey::from_spki_pem(body["public_key_pem"].as_str().unwrap()).unwrap()
}

/// The envelope body for `payload` sealed from `sender` to `recipient_key` (fresh nonce, now).
pub fn seal(
    sender: &AgentIdentity,
    recipient_key: &PublicKey,
    session_id: &str,
    payload: &Value,
    client_seq: u64,
) -> Value {
    let nonce = uuid::Uuid::new_v4().to_string();
    let fields = SignedFields {
        session_id,
        sender_agent_id: &sender.agent_id,
        nonce: &nonce,
        timestamp: crate::stack::broker::unix_now(),
        client_seq: Some(client_seq),
    };
    let sealed = envelope::seal(&sender.key, recipient_key, &fields, payload).expect("seal");
    json!({
        "session_id": session_id, "sender_agent_id": sender.agent_id, "payload": sealed.blob,
        "nonce": nonce, "timestamp": fields.timestamp, "signature": sealed.signature, "client_seq": client_seq,
    })
}

/// Posts a sealed envelope body; returns status and answer.
pub async fn post_envelope(session: &AgentSession, envelope: &Value) -> (StatusCode, Value) {
    let session_id = envelope["session_id"].as_str().expect("session_id");
    session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/messages"),
            Some(envelope.clone()),
        )
        .await
}

/// Seals `payload` from `sender` to `recipient_key` and posts it; returns status, answer and
/// the envelope sent.
pub async fn send(
    session: &AgentSession,
    sender: &AgentIdentity,
    recipient_key: &PublicKey,
    session_id: &str,
    payload: &Value,
    client_seq: u64,
) -> (StatusCode, Value, Value) {
    let body = seal(sender, recipient_key, session_id, payload, client_seq);
    let (status, answer) = post_envelope(session, &body).await;
    (status, answer, body)
}

/// Opens a session from `initiator` to `target_agent_id` and has `target` accept it.
pub async fn open_active_session(
    initiator: &AgentSession,
    target: &AgentSession,
    target_agent_id: &str,
    target_org_id: &str,
    capabilities: &[&str],
) -> String {
    let open = json!({"target_agent_id": target_agent_id, "target_org_id": target_org_id, "requested_capabilities": capabilities});
    let (status, created) = initiator
        .call(Method::POST, "/v1/broker/sessions", Some(open))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let session_id = created["session_id"].as_str().unwrap().to_owned();
    let (status, accepted) = target
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/accept"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    session_id
}
