//! The webhook policy backend against real HTTP policy decision points: small axum servers on
//! 127.0.0.1 started by each test. They live on loopback, so these engines run with
//! `POLICY_WEBHOOK_ALLOW_PRIVATE_IPS=true` — except the SSRF tests, which check that the guard
//! refuses loopback and metadata addresses (and never calls them) when the flag is off.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cullis_broker::policy::{Backend, Decision, PolicyEngine, PolicySettings, SessionPolicyInput};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a fake PDP does with a request.
#[derive(Clone)]
enum Behaviour {
    Answer(StatusCode, String),
    Sleep(Duration, String),
    Redirect(String),
}

/// A fake PDP: its URL and the bodies it received.
struct Pdp {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Pdp {
    async fn start(behaviour: Behaviour) -> Pdp {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = (behaviour, received.clone());
        let app = Router::new()
            .route("/pdp/policy", post(answer))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Pdp {
            url: format!("http://{address}/pdp/policy"),
            received,
        }
    }

    async fn json(status: StatusCode, body: Value) -> Pdp {
        Pdp::start(Behaviour::Answer(status, body.to_string())).await
    }

    async fn allowing() -> Pdp {
        Pdp::json(StatusCode::OK, json!({"decision": "allow"})).await
    }

    fn calls(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

async fn answer(
    State((behaviour, received)): State<(Behaviour, Arc<Mutex<Vec<Value>>>)>,
    Json(body): Json<Value>,
) -> Response {
    received.lock().unwrap().push(body);
    match behaviour {
        Behaviour::Answer(status, text) => {
            (status, [("content-type", "application/json")], text).into_response()
        }
        Behaviour::Sleep(delay, text) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, [("content-type", "application/json")], text).into_response()
        }
        Behaviour::Redirect(to) => {
            (StatusCode::TEMPORARY_REDIRECT, [("location", to)]).into_response()
        }
    }
}

fn engine(allow_private: bool, timeout: Duration) -> PolicyEngine {
    PolicyEngine::new(PolicySettings {
        backend: Backend::Webhook,
        webhook_allow_private_ips: allow_private,
        timeout,
        ..Default::default()
    })
    .unwrap()
}

fn loopback_engine() -> PolicyEngine {
    engine(true, Duration::from_millis(500))
}

fn input(initiator_url: Option<&str>, target_url: Option<&str>) -> SessionPolicyInput {
    SessionPolicyInput {
        initiator_agent_id: "acme::buyer".into(),
        initiator_org_id: "acme".into(),
        target_agent_id: "beta::seller".into(),
        target_org_id: "beta".into(),
        capabilities: vec!["order.read".into(), "order.write".into()],
        context: json!({"purpose": "quote"}).as_object().unwrap().clone(),
        initiator_webhook_url: initiator_url.map(str::to_owned),
        target_webhook_url: target_url.map(str::to_owned),
    }
}

fn assert_denied(decision: &Decision, by: &str, reason: &str) {
    assert!(!decision.allowed, "{decision:?}");
    assert_eq!(decision.denied_by.as_deref(), Some(by), "{decision:?}");
    assert_eq!(decision.reason, reason, "{decision:?}");
    assert_eq!(decision.backend, Backend::Webhook);
}

#[tokio::test]
async fn both_pdps_allow_and_each_gets_the_contract_body() {
    let acme = Pdp::allowing().await;
    let beta = Pdp::allowing().await;
    let decision = loopback_engine()
        .evaluate_session(&input(Some(&acme.url), Some(&beta.url)))
        .await;
    assert_eq!(
        decision,
        Decision::allow("both PDPs allowed", Backend::Webhook)
    );
    assert_eq!(decision.decided_by(), "broker");
    let expected = |context: &str| {
        json!({
            "initiator_agent_id": "acme::buyer",
            "initiator_org_id": "acme",
            "target_agent_id": "beta::seller",
            "target_org_id": "beta",
            "capabilities": ["order.read", "order.write"],
            "session_context": context,
        })
    };
    assert_eq!(acme.calls(), vec![expected("initiator")]);
    assert_eq!(beta.calls(), vec![expected("target")]);
}

#[tokio::test]
async fn either_pdp_can_deny_and_its_reason_surfaces() {
    let allow = Pdp::allowing().await;
    let deny = Pdp::json(
        StatusCode::OK,
        json!({"decision": "deny", "reason": "beta does not sell to acme on Sundays"}),
    )
    .await;
    let engine = loopback_engine();
    let target_denies = engine
        .evaluate_session(&input(Some(&allow.url), Some(&deny.url)))
        .await;
    assert_denied(
        &target_denies,
        "beta",
        "beta does not sell to acme on Sundays",
    );
    let initiator_denies = engine
        .evaluate_session(&input(Some(&deny.url), Some(&allow.url)))
        .await;
    assert_denied(
        &initiator_denies,
        "acme",
        "beta does not sell to acme on Sundays",
    );
    // Both asked even when the first denies; the initiator's denial wins.
    let silent = Pdp::json(StatusCode::OK, json!({"decision": "DENY"})).await;
    let both = engine
        .evaluate_session(&input(Some(&silent.url), Some(&deny.url)))
        .await;
    assert_denied(&both, "acme", "Denied by org 'acme' PDP");
    assert_eq!(deny.calls().len(), 3);
    assert_eq!(silent.calls().len(), 1);
}

#[tokio::test]
async fn the_two_pdps_are_asked_concurrently() {
    let slow_ok = || {
        Pdp::start(Behaviour::Sleep(
            Duration::from_millis(600),
            json!({"decision": "allow"}).to_string(),
        ))
    };
    let (acme, beta) = (slow_ok().await, slow_ok().await);
    let started = Instant::now();
    let decision = engine(true, Duration::from_secs(3))
        .evaluate_session(&input(Some(&acme.url), Some(&beta.url)))
        .await;
    assert!(decision.allowed, "{decision:?}");
    // One after the other would take at least 1.2 s.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(1100), "took {elapsed:?}");
}

#[tokio::test]
async fn a_pdp_slower_than_the_timeout_denies() {
    let allow = Pdp::allowing().await;
    let slow = Pdp::start(Behaviour::Sleep(
        Duration::from_secs(3),
        json!({"decision": "allow"}).to_string(),
    ))
    .await;
    let started = Instant::now();
    let decision = engine(true, Duration::from_millis(300))
        .evaluate_session(&input(Some(&allow.url), Some(&slow.url)))
        .await;
    assert_denied(
        &decision,
        "beta",
        "PDP webhook for 'beta' timed out after 0.3s",
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_unreachable_pdp_denies() {
    let allow = Pdp::allowing().await;
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let decision = loopback_engine()
        .evaluate_session(&input(
            Some(&format!("http://{closed}/pdp/policy")),
            Some(&allow.url),
        ))
        .await;
    assert!(!decision.allowed);
    assert_eq!(decision.denied_by.as_deref(), Some("acme"));
    assert!(
        decision
            .reason
            .starts_with("PDP webhook for 'acme' error: "),
        "{}",
        decision.reason
    );
    assert!(
        !decision.reason.contains(&closed.to_string()),
        "{}",
        decision.reason
    );
}

#[tokio::test]
async fn garbage_oversized_non_200_and_redirecting_answers_deny() {
    let allow = Pdp::allowing().await;
    let engine = loopback_engine();
    let target = |url: String| {
        let engine = engine.clone();
        let allow = allow.url.clone();
        async move {
            engine
                .evaluate_session(&input(Some(&allow), Some(&url)))
                .await
        }
    };

    let garbage = Pdp::start(Behaviour::Answer(StatusCode::OK, "<html>ok</html>".into())).await;
    let decision = target(garbage.url.clone()).await;
    assert!(!decision.allowed);
    assert!(
        decision
            .reason
            .starts_with("PDP webhook for 'beta' error: response is not a JSON object"),
        "{}",
        decision.reason
    );

    let big = json!({"decision": "allow", "padding": "x".repeat(5000)}).to_string();
    let oversized = Pdp::start(Behaviour::Answer(StatusCode::OK, big.clone())).await;
    let decision = target(oversized.url.clone()).await;
    assert_denied(
        &decision,
        "beta",
        &format!(
            "PDP webhook response too large ({} bytes) from 'beta'",
            big.len()
        ),
    );
    // Just under the 4096-byte cap is fine.
    let fits = json!({"decision": "allow", "padding": "x".repeat(4000)}).to_string();
    assert!(fits.len() <= 4096);
    let fitting = Pdp::start(Behaviour::Answer(StatusCode::OK, fits)).await;
    assert!(target(fitting.url.clone()).await.allowed);

    let failing = Pdp::json(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"decision": "allow"}),
    )
    .await;
    assert_denied(
        &target(failing.url.clone()).await,
        "beta",
        "PDP webhook for 'beta' returned HTTP 500",
    );

    let not_a_string = Pdp::json(StatusCode::OK, json!({"decision": true})).await;
    assert_denied(
        &target(not_a_string.url.clone()).await,
        "beta",
        "PDP webhook for 'beta' error: 'decision' must be a string",
    );

    // Redirects are not followed, even to a PDP that would allow.
    let redirect = Pdp::start(Behaviour::Redirect(allow.url.clone())).await;
    assert_denied(
        &target(redirect.url.clone()).await,
        "beta",
        "PDP webhook for 'beta' returned HTTP 307",
    );
    assert_eq!(allow.calls().len(), 6, "the redirect target was not called");
}

#[tokio::test]
async fn an_org_without_a_webhook_is_denied_by_default() {
    let allow = Pdp::allowing().await;
    let decision = loopback_engine()
        .evaluate_session(&input(Some(&allow.url), None))
        .await;
    assert_denied(
        &decision,
        "beta",
        "Organization 'beta' has no PDP webhook configured — denied by default",
    );
    let decision = loopback_engine()
        .evaluate_session(&input(Some(&allow.url), Some("  ")))
        .await;
    assert!(!decision.allowed);
}

#[tokio::test]
async fn the_ssrf_guard_refuses_loopback_and_metadata_when_the_flag_is_off() {
    let local = Pdp::allowing().await;
    let by_name = local.url.replace("127.0.0.1", "localhost");
    let strict = engine(false, Duration::from_millis(500));
    let refused = |url: String| {
        let strict = strict.clone();
        async move { strict.evaluate_session(&input(Some(&url), None)).await }
    };
    assert_denied(
        &refused(local.url.clone()).await,
        "acme",
        "PDP webhook URL rejected: Webhook URL points to loopback address: 127.0.0.1 (org 'acme')",
    );
    assert_denied(
        &refused(by_name.clone()).await,
        "acme",
        "PDP webhook URL rejected: Webhook URL points to loopback address: localhost (org 'acme')",
    );
    assert_denied(
        &refused("http://169.254.169.254/latest/meta-data/".into()).await,
        "acme",
        "PDP webhook URL rejected: Webhook URL points to a cloud metadata address: 169.254.169.254 (org 'acme')",
    );
    assert_denied(
        &refused("http://10.20.30.40/pdp".into()).await,
        "acme",
        "PDP webhook URL rejected: Webhook URL resolves to private/reserved IP: 10.20.30.40 (org 'acme')",
    );
    assert_denied(
        &refused("file:///etc/passwd".into()).await,
        "acme",
        "PDP webhook URL rejected: Webhook URL must use http or https scheme, got: 'file' (org 'acme')",
    );
    assert!(local.calls().is_empty(), "a refused PDP is never called");

    // The escape hatch lets loopback (by address or name) through, but metadata stays out of reach.
    let relaxed = loopback_engine();
    let decision = relaxed
        .evaluate_session(&input(Some(&local.url), Some(&by_name)))
        .await;
    assert!(decision.allowed, "{decision:?}");
    let decision = relaxed
        .evaluate_session(&input(
            Some(&local.url),
            Some("http://169.254.169.254/latest/meta-data/"),
        ))
        .await;
    assert_denied(
        &decision,
        "beta",
        "PDP webhook URL rejected: Webhook URL points to a cloud metadata address: 169.254.169.254 (org 'beta')",
    );
    assert_eq!(local.calls().len(), 3);
}
