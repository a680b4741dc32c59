//! Org CA rotation without a cut-off (`POST /v1/registry/orgs/{org}/ca/rotate`): inside the
//! overlap window a certificate of the previous CA still logs in, new certificates chain to the
//! new CA, and a hard replacement (`/certificate`) ends the window at once. Audited as
//! `org.ca_rotated`. The window's end itself is `Org::login_cas` (unit-tested: no clock here).

mod common;

use common::{Store, TestBroker, TestOrg};
use cullis_shared::keys::KeyType;
use cullis_shared::pki::OrgCa;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

fn new_ca(org: &TestOrg) -> TestOrg {
    TestOrg {
        org_id: org.org_id.clone(),
        secret: org.secret.clone(),
        ca: OrgCa::generate(&org.org_id, KeyType::EcP384, 30).unwrap(),
    }
}

#[tokio::test]
async fn leaves_of_both_cas_log_in_during_the_window() {
    let broker = TestBroker::start(Store::Sqlite).await;
    let acme = broker.onboard("acme").await;
    let old_leaf = broker.register_agent(&acme, "buyer", &["order.read"]).await;
    old_leaf
        .login(&broker.base, &broker.http)
        .await
        .expect("pins the certificate of the first CA");

    let renewed = new_ca(&acme);
    let rotate = |ca_pem: String, overlap: i64| {
        broker.org(
            &acme,
            Method::POST,
            "/v1/registry/orgs/acme/ca/rotate",
            Some(json!({"ca_certificate": ca_pem, "overlap_seconds": overlap})),
        )
    };
    // Refusals first: a window out of bounds, not a CA.
    let (status, body) = rotate(renewed.ca.cert_pem(), 5).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = rotate("not a certificate".into(), 600).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, answer) = rotate(renewed.ca.cert_pem(), 600).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["previous_ca_valid_until"].as_i64().unwrap() > 0);
    // The current CA again: nothing to rotate to.
    let (status, _) = rotate(renewed.ca.cert_pem(), 600).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Inside the window the pinned certificate of the old CA still logs in.
    old_leaf
        .login(&broker.base, &broker.http)
        .await
        .expect("the previous CA is accepted inside the window");
    // New certificates must chain to the new CA.
    let stale = acme.agent_identity("buyer");
    let (status, body) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/registry/agents/acme::buyer/rotate-cert",
            Some(json!({"new_certificate": stale.cert_pem})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let fresh = renewed.agent_identity("buyer");
    let (status, body) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/registry/agents/acme::buyer/rotate-cert",
            Some(json!({"new_certificate": fresh.cert_pem})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Tokens revoked at second granularity: log in in the next second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fresh
        .login(&broker.base, &broker.http)
        .await
        .expect("the re-issued certificate logs in");

    let events = broker.audit_events("org.ca_rotated").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0]["details"]["new_ca_thumbprint"],
        renewed.ca.certificate().thumbprint(),
        "{events:?}"
    );

    // A hard replacement ends the window: a leaf of the rotated-out CA no longer logs in.
    let other = broker
        .register_agent(&acme, "seller", &["order.read"])
        .await;
    let third = new_ca(&acme);
    let (status, body) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/registry/orgs/acme/certificate",
            Some(json!({"ca_certificate": third.ca.cert_pem()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = other
        .login(&broker.base, &broker.http)
        .await
        .err()
        .expect("a certificate of a replaced CA is refused");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
