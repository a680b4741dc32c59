//! Broker signing-key rotation over real HTTP on two replicas (PostgreSQL + Redis):
//! `cullis-broker keys rotate` while agents hammer both replicas with cached tokens — and log in
//! anew on one replica to use the fresh token on the other — fails no request; the JWKS lists
//! both keys, active first; `keys retire` cuts the old key's tokens off on both replicas with a
//! clear 401; the active key cannot be retired.

mod common;

use common::client::AgentSession;
use common::{Options, Store, TestBroker};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const RETIRED: &str = "Token signed by a retired broker signing key — log in again";

async fn jwks_kids(broker: &TestBroker) -> Vec<String> {
    let jwks: Value = broker
        .http
        .get(broker.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn token_kid(session: &AgentSession) -> String {
    cullis_shared::jose::access_token::header_kid(&session.token).expect("kid header")
}

/// Counts answers of an authenticated GET made over and over until `stop`.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

fn hammer(
    session: Arc<AgentSession>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut failures = Vec::new();
        let path = format!("/v1/registry/agents/{}", session.agent_id());
        while !stop.load(Ordering::Relaxed) {
            let (status, body) = session.call(Method::GET, &path, None).await;
            if status == StatusCode::OK {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                failures.push(format!("{status} {body}"));
            }
        }
        failures
    })
}

/// Polls `probe` until it holds (bounded; each try waits 100 ms).
async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

#[tokio::test]
async fn rotation_under_load_on_two_replicas_fails_nothing_and_retire_cuts_off() {
    let a = TestBroker::start_with(
        Store::PostgresRedis,
        Options::default().env("RATE_LIMITS", "off"),
    )
    .await;
    let b = a.replica().await;
    let acme = a.onboard("acme").await;
    let buyer = Arc::new(a.register_agent(&acme, "buyer", &["quote"]).await);
    let old_on_a = Arc::new(buyer.login(&a.base, &a.http).await.unwrap());
    let old_on_b = Arc::new(buyer.login(&b.base, &b.http).await.unwrap());
    let first = token_kid(&old_on_a);
    assert_eq!(jwks_kids(&a).await, vec![first.clone()]);

    // Load on both replicas with the tokens already verified (cached) there.
    let (tally, stop) = (Arc::new(Tally::default()), Arc::new(AtomicBool::new(false)));
    let workers: Vec<_> = [&old_on_a, &old_on_b, &old_on_a, &old_on_b]
        .into_iter()
        .map(|session| hammer(session.clone(), tally.clone(), stop.clone()))
        .collect();
    // Meanwhile: log in on one replica, use the new token at once on the other.
    let cross = {
        let (buyer, stop) = (buyer.clone(), stop.clone());
        let (a_base, a_http, b_base, b_http) = (
            a.base.clone(),
            a.http.clone(),
            b.base.clone(),
            b.http.clone(),
        );
        tokio::spawn(async move {
            let mut seen_kids = Vec::new();
            let mut failures = Vec::new();
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                flip = !flip;
                let (login_base, login_http, use_base, use_http) = if flip {
                    (&a_base, &a_http, &b_base, &b_http)
                } else {
                    (&b_base, &b_http, &a_base, &a_http)
                };
                let fresh = buyer.login(login_base, login_http).await.unwrap();
                let elsewhere = fresh.via(use_base, use_http);
                let (status, body) = elsewhere
                    .call(Method::GET, "/v1/registry/agents/acme::buyer", None)
                    .await;
                if status != StatusCode::OK {
                    failures.push(format!("{status} {body}"));
                }
                let kid = token_kid(&elsewhere);
                if !seen_kids.contains(&kid) {
                    seen_kids.push(kid);
                }
            }
            (seen_kids, failures)
        })
    };

    let rotated = a.cli(&["keys", "rotate"]).await;
    let stdout = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(
        rotated.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let second = stdout
        .split_whitespace()
        .nth(1)
        .expect("rotated: <kid> …")
        .to_owned();
    assert_ne!(second, first);
    for replica in [&a, &b] {
        eventually("both replicas publish the new key first", async || {
            jwks_kids(replica).await == vec![second.clone(), first.clone()]
        })
        .await;
    }
    // Keep the load running until fresh logins on both replicas carry the new key.
    let before = tally.ok.load(Ordering::Relaxed);
    eventually("more load after the switch", async || {
        tally.ok.load(Ordering::Relaxed) > before + 50
    })
    .await;
    let new_on_b = buyer
        .login(&a.base, &a.http)
        .await
        .unwrap()
        .via(&b.base, &b.http);
    assert_eq!(token_kid(&new_on_b), second);
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    let (seen_kids, cross_failures) = cross.await.unwrap();
    failures.extend(cross_failures);
    assert!(
        failures.is_empty(),
        "failed requests during rotation: {failures:?}"
    );
    assert!(tally.ok.load(Ordering::Relaxed) > 100);
    assert_eq!(tally.failed.load(Ordering::Relaxed), 0);
    assert!(
        seen_kids.contains(&second),
        "cross-replica logins saw {seen_kids:?}"
    );

    // `keys list`: the new key active, the old one still verifying its tokens.
    let list = a.cli(&["keys", "list"]).await;
    let listing = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.status.success(), "{listing}");
    let line = |kid: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(kid))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line(&second).contains(" active "), "{listing}");
    assert!(
        line(&first).contains(" previous ") && line(&first).ends_with("published"),
        "{listing}"
    );

    // The active key cannot be retired; an unknown one is named.
    let refused = a.cli(&["keys", "retire", "--kid", &second]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr)
        .contains("is the active key: run `cullis-broker keys rotate` first"));
    let unknown = a.cli(&["keys", "retire", "--kid", "no-such-kid"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no broker signing key 'no-such-kid'")
    );

    // A WebSocket opened with an old-key token, on each replica.
    let mut sockets = vec![
        cullis_e2e::ws::authed(&old_on_a, &a.base).await,
        cullis_e2e::ws::authed(&old_on_b, &b.base).await,
    ];

    // Emergency retire of the old key: its (cached) tokens get 401 on both replicas.
    let retired = a.cli(&["keys", "retire", "--kid", &first]).await;
    assert!(
        retired.status.success(),
        "{}",
        String::from_utf8_lossy(&retired.stderr)
    );
    for session in [&old_on_a, &old_on_b] {
        eventually("the retired key's token is refused", async || {
            let (status, body) = session
                .call(Method::GET, "/v1/registry/agents/acme::buyer", None)
                .await;
            status == StatusCode::UNAUTHORIZED && body["detail"] == RETIRED
        })
        .await;
    }
    // Its open sockets are told why and closed (policy violation), on both replicas.
    for socket in &mut sockets {
        let told = loop {
            let frame = cullis_e2e::ws::next(socket)
                .await
                .expect("auth_error before the close");
            if frame["type"] != "ping" {
                break frame;
            }
        };
        assert_eq!(told["type"], "auth_error", "{told}");
        assert_eq!(told["detail"], RETIRED, "{told}");
        let closed = cullis_e2e::ws::next(socket).await.unwrap_err();
        assert_eq!(closed.0, 1008, "{closed:?}");
    }
    for replica in [&a, &b] {
        eventually("the retired key leaves the JWKS", async || {
            jwks_kids(replica).await == vec![second.clone()]
        })
        .await;
    }
    // Tokens of the new key are unaffected.
    let (status, body) = new_on_b
        .call(Method::GET, "/v1/registry/agents/acme::buyer", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
