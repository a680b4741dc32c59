//! The whole identity flow over real HTTP against the real broker binary, once on SQLite and
//! once on PostgreSQL + Redis: invite → join → approve → register agent → binding → approve →
//! login (nonce retry) → authenticated call → rotate-cert → revoke.

mod common;

use common::{Store, TestBroker, TRUST_DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn identity_flow(store: Store) {
    let broker = TestBroker::start(store).await;
    let acme = broker.onboard("acme").await;
    let (status, me) = broker
        .org(&acme, Method::GET, "/v1/registry/orgs/me", None)
        .await;
    assert_eq!(
        (status, me["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );

    let buyer = broker
        .register_agent(&acme, "buyer", &["order.read", "order.write"])
        .await;
    let session = buyer
        .login(&broker.base, &broker.http)
        .await
        .expect("login with the nonce retry");

    // The token is what the spec says.
    let jws = cullis_shared::jose::jws::CompactJws::parse(&session.token).unwrap();
    let claims = jws.claims_unverified().unwrap();
    assert_eq!(claims["sub"], format!("spiffe://{TRUST_DOMAIN}/acme/buyer"));
    assert_eq!(claims["agent_id"], "acme::buyer");
    assert_eq!(claims["scope"], json!(["order.read", "order.write"]));
    assert_eq!(claims["cnf"]["jkt"], session.dpop.jkt());

    // An authenticated call.
    let (status, listed) = session.call(Method::GET, "/v1/registry/agents", None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["total"], 1);
    assert_eq!(
        listed["agents"][0]["agent_uri"],
        "spiffe://atn.local/acme/buyer"
    );
    let (status, key) = session
        .call(
            Method::GET,
            "/v1/registry/agents/acme::buyer/public-key",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(key["public_key_pem"], buyer.key.public_key().to_spki_pem());

    // Rotation: a new certificate is pinned, old tokens and the old certificate stop working.
    let rotated = acme.agent_identity("buyer");
    let (status, answer) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/registry/agents/acme::buyer/rotate-cert",
            Some(json!({"new_certificate": rotated.cert_pem})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["thumbprint"].as_str().unwrap().len(), 64);
    let (status, body) = session.call(Method::GET, "/v1/registry/agents", None).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Token has been revoked"))
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = buyer.login(&broker.base, &broker.http).await.err().unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("thumbprint mismatch"),
        "{body}"
    );
    let session = rotated
        .login(&broker.base, &broker.http)
        .await
        .expect("the rotated certificate logs in");

    // Revocation: by the org, then by the agent itself after a fresh login.
    let (status, _) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/auth/revoke-agent/acme::buyer",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = session.call(Method::GET, "/v1/registry/agents", None).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Token has been revoked"))
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let session = rotated
        .login(&broker.base, &broker.http)
        .await
        .expect("login after revocation");
    let (status, _) = session.call(Method::POST, "/v1/auth/revoke", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = session.call(Method::GET, "/v1/registry/agents", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn identity_flow_on_sqlite() {
    identity_flow(Store::Sqlite).await;
}

#[tokio::test]
async fn identity_flow_on_postgres_and_redis() {
    identity_flow(Store::PostgresRedis).await;
}
