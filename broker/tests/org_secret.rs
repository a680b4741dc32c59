//! Org authentication at API speed (issue 18): a secret bcrypt accepted is remembered briefly
//! per replica, but a secret change or an org leaving `active` takes effect at once on every
//! replica, and wrong secrets are never answered from memory. Two broker processes on one
//! PostgreSQL database (and Redis), at the production bcrypt cost.

mod common;

use common::{Options, Store, TestBroker, TestOrg};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// An org-authenticated call that needs an active org (`GET /v1/registry/bindings`) on
/// `broker` with `secret`.
async fn me(broker: &TestBroker, org_id: &str, secret: &str) -> (StatusCode, Value) {
    let response = broker
        .http
        .get(broker.url(&format!("/v1/registry/bindings?org_id={org_id}")))
        .header("x-org-id", org_id)
        .header("x-org-secret", secret)
        .send()
        .await
        .unwrap();
    common::json_of(response).await
}

/// `cullis_org_secret_cache_lookups_total{result="hit"}` of one replica.
async fn cache_hits(broker: &TestBroker) -> f64 {
    let text = broker
        .http
        .get(broker.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|line| {
            line.starts_with("cullis_org_secret_cache_lookups_total")
                && line.contains(r#"result="hit""#)
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no cache hit series in:\n{text}"))
}

async fn rotate(broker: &TestBroker, org: &TestOrg, new_secret: &str) -> (StatusCode, Value) {
    broker
        .org(
            org,
            Method::POST,
            "/v1/registry/orgs/me/secret",
            Some(json!({ "new_secret": new_secret })),
        )
        .await
}

#[tokio::test]
async fn secret_changes_and_status_changes_reach_every_replica_at_once() {
    // The production cost: what the memo exists for.
    let first = TestBroker::start_with(
        Store::PostgresRedis,
        Options::default()
            .env("BCRYPT_COST", "12")
            .env("PROMETHEUS_ENABLED", "true"),
    )
    .await;
    let second = first.replica().await;
    let mut acme = first.onboard("acme").await;

    // Both replicas verify (and remember) the current secret.
    for broker in [&first, &second] {
        assert_eq!(me(broker, "acme", &acme.secret).await.0, StatusCode::OK);
        assert_eq!(me(broker, "acme", &acme.secret).await.0, StatusCode::OK);
    }
    // The second call on each replica was answered from memory, not by bcrypt.
    assert!(cache_hits(&first).await >= 1.0);
    assert!(cache_hits(&second).await >= 1.0);
    // A wrong secret right after a right one: refused (failures are never remembered).
    let (status, body) = me(&second, "acme", "not-the-secret").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Rotation through one replica: the old secret stops on both at once, the new one works.
    let (status, body) = rotate(&first, &acme, "the-new-secret").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let old = std::mem::replace(&mut acme.secret, "the-new-secret".into());
    for broker in [&first, &second] {
        let (status, body) = me(broker, "acme", &old).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["detail"], "Invalid organization credentials");
        assert_eq!(me(broker, "acme", &acme.secret).await.0, StatusCode::OK);
    }
    assert_eq!(first.audit_events("org.secret_rotated").await.len(), 1);

    // Bad new secrets: 422 naming the field, and the current secret still works.
    for (bad, message) in [
        ("", "new_secret must not be empty"),
        (&"x".repeat(73)[..], "new_secret must be at most 72 bytes"),
    ] {
        let (status, body) = rotate(&second, &acme, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["detail"][0]["loc"], json!(["body", "new_secret"]));
        assert_eq!(body["detail"][0]["msg"], message);
    }
    assert_eq!(me(&second, "acme", &acme.secret).await.0, StatusCode::OK);

    // The org leaves `active` through one replica: the remembered secret is refused on both.
    let (status, body) = first
        .admin(Method::POST, "/v1/admin/orgs/acme/reject", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for broker in [&first, &second] {
        let (status, body) = me(broker, "acme", &acme.secret).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
}

#[tokio::test]
async fn rotating_needs_the_current_secret() {
    let broker = TestBroker::start(Store::Sqlite).await;
    let acme = broker.onboard("acme").await;
    let response = broker
        .http
        .post(broker.url("/v1/registry/orgs/me/secret"))
        .header("x-org-id", "acme")
        .header("x-org-secret", "guess")
        .json(&json!({"new_secret": "mine-now"}))
        .send()
        .await
        .unwrap();
    let (status, body) = common::json_of(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(me(&broker, "acme", &acme.secret).await.0, StatusCode::OK);
    assert_eq!(
        me(&broker, "acme", "mine-now").await.0,
        StatusCode::FORBIDDEN
    );
    // Malformed bodies: 422, nothing changed.
    for body in [json!({}), json!({"new_secret": 5})] {
        let (status, answer) = broker
            .org(
                &acme,
                Method::POST,
                "/v1/registry/orgs/me/secret",
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    }
    assert_eq!(me(&broker, "acme", &acme.secret).await.0, StatusCode::OK);
}
