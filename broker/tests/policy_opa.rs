//! The remote OPA backend (`POLICY_BACKEND=opa`).
//!
//! NOTE: no real OPA runs here — there is no OPA binary in the package registries this machine
//! can reach — so these tests exercise the OPA *client* against a small fake OPA HTTP server
//! (axum on 127.0.0.1) that answers `POST /v1/data/atn/session/allow` the way OPA's data API
//! does (`{"result": …}`). The Rego itself is evaluated for real by the embedded backend's
//! tests (`policy_rego.rs`).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cullis_broker::policy::{Backend, Decision, PolicyEngine, PolicySettings, SessionPolicyInput};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A fake OPA answering every decision with `status` and `body` after `delay`.
async fn fake_opa(status: StatusCode, body: Value, delay: Duration) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let state = (status, body, delay, seen.clone());
    let app = Router::new()
        .route("/v1/data/atn/session/allow", post(answer))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), seen)
}

async fn answer(
    State((status, body, delay, seen)): State<(StatusCode, Value, Duration, Seen)>,
    uri: Uri,
    Json(request): Json<Value>,
) -> Response {
    seen.lock().unwrap().push((uri.path().to_owned(), request));
    tokio::time::sleep(delay).await;
    (status, Json(body)).into_response()
}

fn engine(url: &str) -> PolicyEngine {
    PolicyEngine::new(PolicySettings {
        backend: Backend::Opa,
        opa_url: Some(url.to_owned()),
        timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .unwrap()
}

fn input() -> SessionPolicyInput {
    SessionPolicyInput {
        initiator_agent_id: "acme::buyer".into(),
        initiator_org_id: "acme".into(),
        target_agent_id: "beta::seller".into(),
        target_org_id: "beta".into(),
        capabilities: vec!["order.read".into()],
        // Webhook URLs are irrelevant to OPA and are not sent.
        initiator_webhook_url: Some("http://acme.example/pdp".into()),
        ..Default::default()
    }
}

async fn decide(status: StatusCode, body: Value) -> Decision {
    let (url, _) = fake_opa(status, body, Duration::ZERO).await;
    engine(&url).evaluate_session(&input()).await
}

#[tokio::test]
async fn the_request_is_the_opa_data_api_call() {
    let (url, seen) = fake_opa(StatusCode::OK, json!({"result": true}), Duration::ZERO).await;
    let mut with_context = input();
    with_context
        .context
        .insert("purpose".into(), json!("quote"));
    // A trailing slash on OPA_URL is fine.
    let decision = engine(&format!("{url}/"))
        .evaluate_session(&with_context)
        .await;
    assert_eq!(
        decision,
        Decision::allow("Allowed by OPA policy", Backend::Opa)
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one call per decision");
    assert_eq!(seen[0].0, "/v1/data/atn/session/allow");
    assert_eq!(
        seen[0].1,
        json!({"input": {
            "initiator_agent_id": "acme::buyer",
            "initiator_org_id": "acme",
            "target_agent_id": "beta::seller",
            "target_org_id": "beta",
            "capabilities": ["order.read"],
            "context": {"purpose": "quote"},
        }})
    );
}

#[tokio::test]
async fn boolean_and_object_results() {
    let denied = decide(StatusCode::OK, json!({"result": false})).await;
    assert_eq!(
        denied,
        Decision::deny("Denied by OPA policy", "opa", Backend::Opa)
    );
    let reasoned = decide(
        StatusCode::OK,
        json!({"result": {"allow": false, "reason": "beta is not on the allow-list"}}),
    )
    .await;
    assert_eq!(reasoned.reason, "beta is not on the allow-list");
    assert_eq!(reasoned.denied_by.as_deref(), Some("opa"));
    let allowed = decide(
        StatusCode::OK,
        json!({"result": {"allow": true, "reason": "partners"}, "decision_id": "x"}),
    )
    .await;
    assert_eq!(allowed, Decision::allow("partners", Backend::Opa));
}

#[tokio::test]
async fn missing_invalid_and_failed_answers_deny() {
    // No `result`: the rule is undefined for this input.
    assert_eq!(
        decide(StatusCode::OK, json!({})).await.reason,
        "Denied by OPA policy"
    );
    assert_eq!(
        decide(StatusCode::OK, json!({"result": "allow"}))
            .await
            .reason,
        "OPA returned invalid result"
    );
    assert_eq!(
        decide(StatusCode::OK, json!({"result": {"allow": "yes"}}))
            .await
            .reason,
        "OPA returned invalid result"
    );
    assert_eq!(
        decide(StatusCode::INTERNAL_SERVER_ERROR, json!({"result": true}))
            .await
            .reason,
        "OPA returned HTTP 500"
    );
    let (url, _) = fake_opa(
        StatusCode::OK,
        json!({"result": true}),
        Duration::from_secs(3),
    )
    .await;
    let slow = engine(&url).evaluate_session(&input()).await;
    assert_eq!(
        slow,
        Decision::deny("OPA timed out after 0.3s", "opa", Backend::Opa)
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = engine(&format!("http://{closed}"))
        .evaluate_session(&input())
        .await;
    assert!(!down.allowed);
    assert!(down.reason.starts_with("OPA error: "), "{}", down.reason);
}

#[tokio::test]
async fn opa_settings_are_checked_at_start() {
    let missing = PolicyEngine::new(PolicySettings {
        backend: Backend::Opa,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "POLICY_BACKEND=opa requires OPA_URL (e.g. OPA_URL=http://opa:8181)"
    );
    let scheme = PolicyEngine::new(PolicySettings {
        backend: Backend::Opa,
        opa_url: Some("unix:///var/run/opa.sock".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        scheme.to_string(),
        "OPA_URL must use http or https scheme, got: 'unix'"
    );
}
