//! Negative tests of DPoP-authenticated endpoints over real HTTP (ref-auth-crypto §10.3,
//! A-01… ): each refusal with its status, exact `detail` and challenge header.

mod common;
mod neg;

use common::client::AgentSession;
use common::{Store, TestBroker, TestOrg};
use cullis_shared::jose::access_token::{AccessTokenClaims, TokenSigner};
use cullis_shared::jose::dpop::DpopKey;
use cullis_shared::keys::{KeyType, PrivateKey};
use neg::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

const PATH: &str = "/v1/registry/agents";

/// The broker's own token-signing key (the harness writes it into the broker's directory).
fn broker_signer(b: &TestBroker) -> TokenSigner {
    let pem = std::fs::read_to_string(b.dir.join("certs/broker-ca-key.pem")).unwrap();
    TokenSigner::new(PrivateKey::from_pem(&pem).unwrap()).unwrap()
}

/// Valid access-token claims for `acme::buyer`, bound to `jkt`.
fn token_claims(jkt: Option<&str>) -> AccessTokenClaims {
    let now = now();
    AccessTokenClaims {
        iss: "cullis-broker".into(),
        aud: "cullis".into(),
        sub: "spiffe://atn.local/acme/buyer".into(),
        agent_id: "acme::buyer".into(),
        org: "acme".into(),
        scope: vec!["order.read".into()],
        iat: now,
        exp: now + 600,
        jti: uuid::Uuid::new_v4().to_string(),
        cnf: jkt.map(|jkt| Map::from_iter([("jkt".to_owned(), Value::String(jkt.to_owned()))])),
    }
}

/// A good proof for `GET PATH` by `key` for `token`.
fn proof_for(b: &TestBroker, key: &DpopKey, token: &str, nonce: &str) -> String {
    key.proof("GET", &b.url(PATH), Some(token), Some(nonce), now())
}

async fn get_with(b: &TestBroker, token: &str, proof: &str) -> Reply {
    authed(
        b,
        Method::GET,
        PATH,
        Some(&format!("DPoP {token}")),
        Some(proof),
    )
    .await
}

/// A-01…A-06 (and A-05's proof checks with `ath`).
#[tokio::test]
async fn a01_a06_authenticated_endpoint_refusals() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;
    let buyer = session(&b, &b.register_agent(&acme, "buyer", &["order.read"]).await).await;
    let seller = session(
        &b,
        &b.register_agent(&acme, "seller", &["order.read"]).await,
    )
    .await;
    let nonce = fresh_nonce(&b).await;
    let token = buyer.token.clone();

    // no DPoP scheme.
    let bearer = "DPoP token required — plain Bearer is not accepted";
    for authorization in [
        Some(format!("Bearer {token}")),
        None,
        Some(token.clone()),
        Some("DPoP".into()),
    ] {
        authed(
            &b,
            Method::GET,
            PATH,
            authorization.as_deref(),
            Some(&proof_for(&b, &buyer.dpop, &token, &nonce)),
        )
        .await
        .expect(401, bearer)
        .expect_dpop_challenge();
    }

    // not a token of this broker, or not a valid one.
    let stranger = TokenSigner::new(PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap();
    let signer = broker_signer(&b);
    let jkt = Some(buyer.dpop.jkt());
    let now = now();
    let mut bad_tokens = vec![
        "garbage".to_owned(),
        stranger.sign(&token_claims(jkt)).unwrap(),
    ];
    let mut tweak = |f: &dyn Fn(&mut AccessTokenClaims)| {
        let mut claims = token_claims(jkt);
        f(&mut claims);
        bad_tokens.push(signer.sign(&claims).unwrap());
    };
    tweak(&|c| {
        c.iat = now - 700;
        c.exp = now - 10;
    });
    tweak(&|c| c.aud = "someone-else".into());
    tweak(&|c| c.iss = "not-the-broker".into());
    tweak(&|c| c.iat = now + 120);
    let mut no_agent = serde_json::to_value(token_claims(jkt)).unwrap();
    no_agent.as_object_mut().unwrap().remove("agent_id");
    bad_tokens.push(signer.sign(&no_agent).unwrap());
    for bad in &bad_tokens {
        let reply = get_with(&b, bad, &proof_for(&b, &buyer.dpop, bad, &nonce)).await;
        reply.expect(401, "Token invalid or expired");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }

    // a genuine broker token without cnf.jkt.
    let mut empty_cnf = token_claims(None);
    empty_cnf.cnf = Some(Map::new());
    let mut blank_jkt = token_claims(None);
    blank_jkt.cnf = Some(Map::from_iter([("jkt".to_owned(), json!(""))]));
    for claims in [token_claims(None), empty_cnf, blank_jkt] {
        let unbound = signer.sign(&claims).unwrap();
        get_with(&b, &unbound, &proof_for(&b, &buyer.dpop, &unbound, &nonce))
            .await
            .expect(401, "Token is not DPoP-bound (missing cnf.jkt)")
            .expect_dpop_challenge();
    }

    // no proof.
    authed(&b, Method::GET, PATH, Some(&format!("DPoP {token}")), None)
        .await
        .expect(401, "DPoP proof header required")
        .expect_dpop_challenge();

    // proof checks with ath = the token and a nonce required (no challenge header).
    let url = b.url(PATH);
    let good = || proof_claims("GET", &url, Some(&token), Some(&nonce));
    let cases = [
        (
            with(good(), json!({"htm": "POST"})),
            "Invalid DPoP proof: htm mismatch",
        ),
        (
            with(
                good(),
                json!({"htu": b.url("/v1/registry/agents/acme::buyer")}),
            ),
            "Invalid DPoP proof: htu mismatch",
        ),
        (
            with(good(), json!({"ath": null})),
            "Invalid DPoP proof: ath mismatch",
        ),
        (
            with(
                good(),
                json!({"ath": cullis_shared::jose::dpop::access_token_hash(&seller.token)}),
            ),
            "Invalid DPoP proof: ath mismatch",
        ),
        (
            with(good(), json!({"iat": now - 120})),
            "Invalid DPoP proof: iat out of acceptable window",
        ),
        (
            with(good(), json!({"iat": now + 30})),
            "Invalid DPoP proof: iat out of acceptable window",
        ),
        (
            with(good(), json!({"jti": null})),
            "Invalid DPoP proof: missing jti",
        ),
    ];
    for (claims, detail) in cases {
        let reply = get_with(&b, &token, &buyer.dpop.sign(&claims)).await;
        reply.expect(401, detail);
        assert!(reply.header("www-authenticate").is_none(), "{detail}");
    }
    get_with(&b, &token, "not.a.valid.jwt.at.all")
        .await
        .expect(401, "Invalid DPoP proof: malformed JWT");
    // The query string is not part of htu (D-12 positive case).
    let reply = authed(
        &b,
        Method::GET,
        &format!("{PATH}?org_id=acme"),
        Some(&format!("DPoP {token}")),
        Some(&proof_for(&b, &buyer.dpop, &token, &nonce)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // a stolen token presented with the thief's own key, and a broker token bound to
    // somebody else's key.
    let stolen = seller.token.clone();
    get_with(&b, &stolen, &proof_for(&b, &buyer.dpop, &stolen, &nonce))
        .await
        .expect(401, "DPoP proof key does not match token binding")
        .expect_dpop_challenge();
    let foreign = signer.sign(&token_claims(Some(seller.dpop.jkt()))).unwrap();
    get_with(&b, &foreign, &proof_for(&b, &buyer.dpop, &foreign, &nonce))
        .await
        .expect(401, "DPoP proof key does not match token binding")
        .expect_dpop_challenge();

    // Control: the same requests with the right pieces pass.
    let (status, body) = call(&buyer, Method::GET, PATH).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A-05 on both stores: a replayed proof, a stale and a missing nonce.
async fn replay_and_nonce(store: Store) {
    let b = TestBroker::start(store).await;
    let acme = b.onboard("acme").await;
    let buyer = session(&b, &b.register_agent(&acme, "buyer", &["order.read"]).await).await;
    let nonce = fresh_nonce(&b).await;
    let proof = proof_for(&b, &buyer.dpop, &buyer.token, &nonce);
    let reply = get_with(&b, &buyer.token, &proof).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        reply.header("dpop-nonce").is_some(),
        "nonce on every /v1 answer"
    );
    get_with(&b, &buyer.token, &proof)
        .await
        .expect(401, "DPoP proof replay detected");

    let stale = buyer.dpop.proof(
        "GET",
        &b.url(PATH),
        Some(&buyer.token),
        Some(&"0".repeat(32)),
        now(),
    );
    let fresh = get_with(&b, &buyer.token, &stale)
        .await
        .expect_nonce_challenge();
    let missing = buyer
        .dpop
        .proof("GET", &b.url(PATH), Some(&buyer.token), None, now());
    get_with(&b, &buyer.token, &missing)
        .await
        .expect_nonce_challenge();
    // The challenge's nonce works (nothing was consumed by the refusals).
    let retry = buyer
        .dpop
        .proof("GET", &b.url(PATH), Some(&buyer.token), Some(&fresh), now());
    let reply = get_with(&b, &buyer.token, &retry).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a05_replay_and_nonce_on_sqlite() {
    replay_and_nonce(Store::Sqlite).await;
}

#[tokio::test]
async fn a05_replay_and_nonce_on_postgres_and_redis() {
    replay_and_nonce(Store::PostgresRedis).await;
}

async fn expect_revoked(session: &AgentSession, what: &str) {
    let (status, body) = session.call(Method::GET, PATH, None).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Token has been revoked")),
        "{what}: {body}"
    );
}

/// A-07 for every trigger (self revoke = R-01, org revoke-agent, binding revoke, certificate
/// rotation, CA replacement), then A-08: a login a second later works again.
#[tokio::test]
async fn a07_a08_every_revocation_kills_the_token() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;
    let mut identities = Vec::new();
    let mut sessions = Vec::new();
    for name in ["selfish", "fired", "unbound", "rotated", "bystander"] {
        let identity = b.register_agent(&acme, name, &["x"]).await;
        let session = session(&b, &identity).await;
        let (status, body) = call(&session, Method::GET, PATH).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        identities.push(identity);
        sessions.push(session);
    }

    // self revoke.
    let (status, _) = call(&sessions[0], Method::POST, "/v1/auth/revoke").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    expect_revoked(&sessions[0], "self revoke").await;
    // The org revokes an agent's tokens.
    let reply = org(
        &b,
        &acme,
        Method::POST,
        "/v1/auth/revoke-agent/acme::fired",
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    expect_revoked(&sessions[1], "revoke-agent").await;
    // Binding revocation.
    let id = binding_id(&b, &acme, "acme::unbound").await;
    let reply = org(
        &b,
        &acme,
        Method::POST,
        &format!("/v1/registry/bindings/{id}/revoke"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    expect_revoked(&sessions[2], "binding revoke").await;
    // Certificate rotation.
    let rotated = acme.agent_identity("rotated");
    let reply = org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/agents/acme::rotated/rotate-cert",
        Some(json!({"new_certificate": rotated.cert_pem})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    expect_revoked(&sessions[3], "rotate-cert").await;
    // CA replacement revokes every agent of the org and clears the pins.
    let renewed = TestOrg {
        org_id: "acme".into(),
        secret: acme.secret.clone(),
        ca: cullis_shared::pki::OrgCa::generate("acme", KeyType::EcP384, 30).unwrap(),
    };
    let reply = org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/orgs/acme/certificate",
        Some(json!({"ca_certificate": renewed.ca.cert_pem()})),
    )
    .await;
    assert_eq!(
        reply.body,
        json!({"org_id": "acme", "ca_certificate_loaded": true}),
        "{}",
        reply.text
    );
    expect_revoked(&sessions[4], "CA replacement").await;

    // a second later, fresh logins work — with certificates of the new CA; the old
    // CA's certificates no longer chain; the unbound agent stays out.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    login_as(&b, &identities[4])
        .await
        .expect(401, "Agent certificate not signed by the registered org CA");
    login_as(&b, &renewed.agent_identity("unbound"))
        .await
        .expect(403, "No approved binding for this agent and organization");
    for name in ["selfish", "fired", "rotated", "bystander"] {
        let session = session(&b, &renewed.agent_identity(name)).await;
        let (status, body) = call(&session, Method::GET, PATH).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
}
