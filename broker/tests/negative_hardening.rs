//! Hardening beyond the reference's catalogue, over real HTTP: every JWS the broker verifies
//! (client assertion, DPoP proof, access token) refuses a `crit` header it does not understand
//! (RFC 7515 §4.1.11) with 401 and a detail; credential headers with bytes outside visible
//! ASCII are wrong credentials (403/401), never "Field required" (422) and never a 500.

mod common;
mod neg;

use common::{Store, TestBroker, ADMIN_SECRET};
use cullis_shared::jose::access_token::{AccessTokenClaims, TokenSigner};
use cullis_shared::jose::jwk;
use cullis_shared::jose::jws::{self, JwsAlg};
use cullis_shared::keys::{KeyType, PrivateKey};
use neg::*;
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde_json::{json, Map, Value};

const PATH: &str = "/v1/registry/agents";
/// A registered-looking extension nobody understands, marked critical.
const CRIT: &str = "x-cullis-test-ext";

fn garbled(text: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(text).expect("obs-text is a valid header value")
}

#[tokio::test]
async fn unknown_critical_headers_are_refused_by_every_verifier() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;
    let buyer = b.register_agent(&acme, "buyer", &["order.read"]).await;
    let crit = json!({"crit": [CRIT], CRIT: true});

    // Client assertion (T-20): the same assertion without `crit` logs in.
    let claims = assertion_claims(&buyer.agent_id);
    let with_crit = signed_assertion(&buyer.cert_der, &buyer.key, crit.clone(), &claims);
    login(&b, &with_crit)
        .await
        .expect(401, "Invalid client_assertion signature");
    let plain = signed_assertion(
        &buyer.cert_der,
        &buyer.key,
        json!({}),
        &assertion_claims(&buyer.agent_id),
    );
    assert_eq!(login(&b, &plain).await.status, 200);

    // DPoP proof, at the token endpoint and on an authenticated call.
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let header = with(
        json!({"typ": "dpop+jwt", "jwk": Value::Object(jwk::public_jwk(key.public_key()))}),
        crit.clone(),
    );
    let nonce = fresh_nonce(&b).await;
    let proof = proof_with_header(
        header.clone(),
        &proof_claims("POST", &token_url(&b), None, Some(&nonce)),
        &key,
        JwsAlg::ES256,
    );
    post_token(&b, &proof, &buyer.assertion())
        .await
        .expect(401, "Invalid DPoP proof: unsupported critical header");
    let session = session(&b, &buyer).await;
    let proof = proof_with_header(
        header,
        &proof_claims("GET", &b.url(PATH), Some(&session.token), Some(&nonce)),
        &key,
        JwsAlg::ES256,
    );
    authed(
        &b,
        Method::GET,
        PATH,
        Some(&format!("DPoP {}", session.token)),
        Some(&proof),
    )
    .await
    .expect(401, "Invalid DPoP proof: unsupported critical header");

    // Access token: signed by the broker's own key, bound to the proof key, but critical.
    let pem = std::fs::read_to_string(b.dir.join("certs/broker-ca-key.pem")).unwrap();
    let broker_key = PrivateKey::from_pem(&pem).unwrap();
    let kid = TokenSigner::new(PrivateKey::from_pem(&pem).unwrap())
        .unwrap()
        .kid()
        .to_owned();
    let dpop = cullis_shared::jose::dpop::DpopKey::generate().unwrap();
    let now = now();
    let claims = AccessTokenClaims {
        iss: "cullis-broker".into(),
        aud: "cullis".into(),
        sub: "spiffe://atn.local/acme/buyer".into(),
        agent_id: "acme::buyer".into(),
        org: "acme".into(),
        scope: vec![],
        iat: now,
        exp: now + 600,
        jti: uuid::Uuid::new_v4().to_string(),
        cnf: Some(Map::from_iter([(
            "jkt".to_owned(),
            Value::from(dpop.jkt()),
        )])),
    };
    let token_header = with(json!({"kid": kid, "typ": "JWT"}), crit);
    let token = jws::sign(
        token_header.as_object().unwrap().clone(),
        &claims,
        JwsAlg::ES256,
        &broker_key,
    )
    .unwrap();
    let proof = dpop.proof("GET", &b.url(PATH), Some(&token), Some(&nonce), now);
    let reply = authed(
        &b,
        Method::GET,
        PATH,
        Some(&format!("DPoP {token}")),
        Some(&proof),
    )
    .await;
    reply.expect(401, "Token invalid or expired");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn non_ascii_credentials_are_wrong_credentials() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;
    let buyer = b.register_agent(&acme, "buyer", &["order.read"]).await;
    let latin1 = b"s\xe9cret-\xff-0123456789abcdef".as_slice();
    let utf8 = "sécret-é-0123456789abcdef".as_bytes();

    // Admin secret: 403, as a wrong secret (also for the right secret with one byte changed).
    let mut almost = ADMIN_SECRET.as_bytes().to_vec();
    almost[0] = 0xe9;
    for value in [latin1, utf8, almost.as_slice()] {
        send(
            b.http
                .get(b.url("/v1/admin/invites"))
                .header("x-admin-secret", garbled(value)),
        )
        .await
        .expect(403, "Invalid admin secret");
    }
    // Org id or secret.
    for (org_id, secret) in [
        (garbled(b"acme"), garbled(latin1)),
        (garbled(b"acme"), garbled(utf8)),
        (garbled("äcme".as_bytes()), garbled(acme.secret.as_bytes())),
    ] {
        send(
            b.http
                .post(b.url("/v1/auth/revoke-agent/acme::buyer"))
                .header("x-org-id", org_id)
                .header("x-org-secret", secret),
        )
        .await
        .expect(403, "Invalid organization credentials");
    }
    // DPoP proof header: a malformed proof, at login and on an authenticated call.
    let reply = send(
        b.http
            .post(token_url(&b))
            .header("DPoP", garbled(latin1))
            .json(&json!({"client_assertion": buyer.assertion()})),
    )
    .await;
    reply.expect(401, "Invalid DPoP proof: malformed JWT");
    let session = session(&b, &buyer).await;
    send(
        b.http
            .get(b.url(PATH))
            .header("Authorization", format!("DPoP {}", session.token))
            .header("DPoP", garbled(utf8)),
    )
    .await
    .expect(401, "Invalid DPoP proof: malformed JWT");
    // Authorization: no usable token.
    let nonce = fresh_nonce(&b).await;
    let proof = session.dpop.proof(
        "GET",
        &b.url(PATH),
        Some(&session.token),
        Some(&nonce),
        now(),
    );
    let mut bad = format!("DPoP {}", session.token).into_bytes();
    bad.push(0xff);
    send(
        b.http
            .get(b.url(PATH))
            .header("Authorization", garbled(&bad))
            .header("DPoP", proof),
    )
    .await
    .expect(401, "DPoP token required — plain Bearer is not accepted")
    .expect_dpop_challenge();
}
