//! Negative tests of `POST /v1/auth/token` over real HTTP (ref-auth-crypto §10.1, T-01…T-30,
//! and the DPoP rows §10.2 as the token endpoint applies them, T-03), each with the exact
//! status and `detail`. Every request goes through `neg::send`, which fails on any 5xx.

mod common;
mod neg;

use common::{Options, Store, TestBroker, TestOrg, TRUST_DOMAIN};
use cullis_shared::jose::dpop::DpopKey;
use cullis_shared::jose::jwk;
use cullis_shared::jose::jws::JwsAlg;
use cullis_shared::keys::{KeyType, PrivateKey};
use cullis_shared::pki::AgentCertSpec;
use neg::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const DAY: i64 = 86_400;

/// T-01 and T-03: request shape (422) and every DPoP proof failure (401) at the token
/// endpoint; none of them consumes the assertion, which logs in afterwards.
#[tokio::test]
async fn t01_t03_request_shape_and_dpop_proof_failures() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;
    let buyer = b.register_agent(&acme, "buyer", &["order.read"]).await;
    let assertion = buyer.assertion();
    let url = token_url(&b);
    let nonce = fresh_nonce(&b).await;

    // T-01: the DPoP header and the body are required parameters.
    send(
        b.http
            .post(&url)
            .json(&json!({"client_assertion": assertion})),
    )
    .await
    .expect_422(&["header", "DPoP"]);
    let dpop = DpopKey::generate().unwrap();
    let proof = || dpop.proof("POST", &url, None, Some(&nonce), now());
    send(b.http.post(&url).header("DPoP", proof()).json(&json!({})))
        .await
        .expect_422(&["body", "client_assertion"]);
    send(
        b.http
            .post(&url)
            .header("DPoP", proof())
            .json(&json!({"client_assertion": 42})),
    )
    .await
    .expect_422(&["body", "client_assertion"]);
    send(
        b.http
            .post(&url)
            .header("DPoP", proof())
            .header("content-type", "application/json")
            .body("{\"client_assertion\": "),
    )
    .await
    .expect_422(&["body"]);

    // T-03: D-01…D-15 at the token endpoint (htm POST, htu = token URL, nonce required).
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let other = PrivateKey::generate(KeyType::EcP256).unwrap();
    let jwk = Value::Object(jwk::public_jwk(key.public_key()));
    let good = || proof_claims("POST", &url, None, Some(&nonce));
    let header = |jwk: Value| json!({"typ": "dpop+jwt", "jwk": jwk});
    let es256 =
        |header: Value, claims: &Value| proof_with_header(header, claims, &key, JwsAlg::ES256);
    let mut private_jwk = jwk.clone();
    private_jwk["d"] = json!("AAAA");
    let cases: Vec<(String, &str)> = vec![
        (
            "not.a.valid.jwt.at.all".into(),
            "Invalid DPoP proof: malformed JWT",
        ),
        (
            es256(json!({"typ": "JWT", "jwk": jwk}), &good()),
            "Invalid DPoP proof: typ must be 'dpop+jwt'",
        ),
        (
            forged_jws(
                &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}),
                &good(),
                32,
            ),
            "Invalid DPoP proof: unsupported algorithm 'HS256'",
        ),
        (
            forged_jws(
                &json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk}),
                &good(),
                0,
            ),
            "Invalid DPoP proof: unsupported algorithm 'none'",
        ),
        (
            es256(json!({"typ": "dpop+jwt"}), &good()),
            "Invalid DPoP proof: missing jwk in header",
        ),
        (
            es256(header(json!("not-an-object")), &good()),
            "Invalid DPoP proof: missing jwk in header",
        ),
        (
            es256(header(private_jwk), &good()),
            "Invalid DPoP proof: jwk contains private key material",
        ),
        (
            es256(
                header(
                    json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
                ),
                &good(),
            ),
            "Invalid DPoP proof: cannot compute JWK thumbprint",
        ),
        (
            proof_with_header(header(jwk.clone()), &good(), &other, JwsAlg::ES256),
            "Invalid DPoP proof: signature verification failed",
        ),
        (
            es256(
                header(jwk.clone()),
                &with(good(), json!({"nbf": now() + 120})),
            ),
            "Invalid DPoP proof: signature verification failed",
        ),
        (
            es256(header(jwk.clone()), &with(good(), json!({"jti": null}))),
            "Invalid DPoP proof: missing jti",
        ),
        (
            es256(header(jwk.clone()), &with(good(), json!({"iat": null}))),
            "Invalid DPoP proof: missing iat",
        ),
        (
            es256(
                header(jwk.clone()),
                &with(good(), json!({"iat": now() - 120})),
            ),
            "Invalid DPoP proof: iat out of acceptable window",
        ),
        (
            es256(
                header(jwk.clone()),
                &with(good(), json!({"iat": now() + 30})),
            ),
            "Invalid DPoP proof: iat out of acceptable window",
        ),
        (
            es256(header(jwk.clone()), &with(good(), json!({"htm": "GET"}))),
            "Invalid DPoP proof: htm mismatch",
        ),
        (
            es256(
                header(jwk.clone()),
                &with(good(), json!({"htu": b.url("/v1/auth/revoke")})),
            ),
            "Invalid DPoP proof: htu mismatch",
        ),
        (
            es256(
                header(jwk.clone()),
                &with(good(), json!({"htu": "http://127.0.0.1:1/v1/auth/token"})),
            ),
            "Invalid DPoP proof: htu mismatch",
        ),
        (
            es256(
                header(jwk.clone()),
                &with(good(), json!({"htu": url.replace("http://", "https://")})),
            ),
            "Invalid DPoP proof: htu mismatch",
        ),
    ];
    for (proof, detail) in &cases {
        let reply = post_token(&b, proof, &assertion).await;
        reply.expect(401, detail);
        assert!(reply.header("www-authenticate").is_none(), "{detail}");
    }
    // D-14: no nonce, or one the server never issued → the nonce challenge.
    post_token(
        &b,
        &es256(header(jwk.clone()), &with(good(), json!({"nonce": null}))),
        &assertion,
    )
    .await
    .expect_nonce_challenge();
    post_token(
        &b,
        &es256(
            header(jwk.clone()),
            &with(good(), json!({"nonce": "0".repeat(32)})),
        ),
        &assertion,
    )
    .await
    .expect_nonce_challenge();

    // Nothing above consumed the assertion: it logs in now; the proof is then spent (D-15),
    // even with another assertion.
    let proof = dpop.proof("POST", &url, None, Some(&nonce), now());
    let reply = post_token(&b, &proof, &assertion).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    post_token(&b, &proof, &buyer.assertion())
        .await
        .expect(401, "DPoP proof replay detected");
}

/// T-04…T-10, T-13, T-15, T-17, T-18, T-20…T-24, T-26 and the CA=true leaf: each refused
/// with its exact status and detail; afterwards the real agent still logs in (nothing pinned).
#[tokio::test]
async fn t04_t26_assertion_and_certificate_refusals() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;
    let beta = b.onboard("beta").await;
    let buyer = b.register_agent(&acme, "buyer", &["order.read"]).await;
    let rsa_key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    let rsa_cert = acme
        .ca
        .issue_agent_cert("acme", "rsa", TRUST_DOMAIN, rsa_key.public_key(), 1)
        .unwrap();
    let rsa = identity("acme::rsa", rsa_cert.der().to_vec(), rsa_key);
    b.register_agent(&acme, "rsa", &[]).await;

    // An org that joined but is not approved, one that was rejected, one without a CA.
    let pend = TestOrg::new("pend");
    let (_, token) = invite(&b).await;
    assert_eq!(b.join(&pend, &token).await.0, StatusCode::ACCEPTED);
    let rej = TestOrg::new("rej");
    let (_, token) = invite(&b).await;
    assert_eq!(b.join(&rej, &token).await.0, StatusCode::ACCEPTED);
    admin(&b, Method::POST, "/v1/admin/orgs/rej/reject", None)
        .await
        .expect(200, "");
    let noca = TestOrg::new("noca");
    let reply = admin(
        &b,
        Method::POST,
        "/v1/registry/orgs",
        Some(json!({"org_id": "noca", "display_name": "No CA", "secret": noca.secret})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let claims = || assertion_claims("acme::buyer");
    let signed = |claims: &Value| signed_assertion(&buyer.cert_der, &buyer.key, json!({}), claims);
    let now = now();

    // T-04…T-07: the assertion and its x5c.
    let cases: Vec<(String, u16, &str)> = vec![
        ("garbage".into(), 401, "invalid client_assertion"),
        (
            forged_jws(&json!("not an object"), &claims(), 64),
            401,
            "invalid client_assertion",
        ),
        (
            signed_assertion(&buyer.cert_der, &buyer.key, json!({"x5c": null}), &claims()),
            401,
            "x5c header absent or empty",
        ),
        (
            signed_assertion(&buyer.cert_der, &buyer.key, json!({"x5c": []}), &claims()),
            401,
            "x5c header absent or empty",
        ),
        (
            signed_assertion(
                &buyer.cert_der,
                &buyer.key,
                json!({"x5c": "MIIB"}),
                &claims(),
            ),
            401,
            "x5c header absent or empty",
        ),
        (
            signed_assertion(
                &buyer.cert_der,
                &buyer.key,
                json!({"x5c": [cullis_shared::encoding::b64::std_padded(b"not a certificate")]}),
                &claims(),
            ),
            401,
            "Invalid agent certificate",
        ),
        (
            signed_assertion(&buyer.cert_der, &buyer.key, json!({"x5c": [42]}), &claims()),
            401,
            "Invalid agent certificate",
        ),
    ];
    for (assertion, status, detail) in &cases {
        login(&b, assertion).await.expect(*status, detail);
    }
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    for params in [
        leaf_params(Some("acme::buyer"), None, None),
        leaf_params(None, Some("acme"), None),
    ] {
        let der = sign_leaf(&acme.ca, &params, &rcgen_key(&key));
        let assertion = signed_assertion(&der, &key, json!({}), &claims());
        login(&b, &assertion)
            .await
            .expect(401, "Cert missing CN or O");
    }

    // T-08…T-10: the org named by O.
    let ghost = TestOrg::new("ghost");
    login_as(&b, &ghost.agent_identity("x"))
        .await
        .expect(403, "Organisation 'ghost' not found");
    login_as(&b, &pend.agent_identity("x"))
        .await
        .expect(403, "Organisation 'pend' not yet approved");
    login_as(&b, &rej.agent_identity("x"))
        .await
        .expect(403, "Organisation 'rej' not yet approved");
    login_as(&b, &noca.agent_identity("x"))
        .await
        .expect(403, "CA not configured for org 'noca'");

    // T-13: a rogue CA for the same org name, and another org's real CA.
    let rogue = cullis_shared::pki::OrgCa::generate("acme", KeyType::EcP256, 1).unwrap();
    let rogue_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let rogue_cert = rogue
        .issue_agent_cert("acme", "buyer", TRUST_DOMAIN, rogue_key.public_key(), 1)
        .unwrap();
    login_as(
        &b,
        &identity("acme::buyer", rogue_cert.der().to_vec(), rogue_key),
    )
    .await
    .expect(401, "Agent certificate not signed by the registered org CA");
    login_as(&b, &custom_identity(&beta.ca, "acme::buyer", |_| {}))
        .await
        .expect(401, "Agent certificate not signed by the registered org CA");

    // A CA certificate is never an agent identity (DESIGN decision 2).
    login_as(&b, &custom_identity(&acme.ca, "acme::buyer", make_ca))
        .await
        .expect(401, "Agent certificate must not be a CA certificate");

    // T-15: an RSA-1024 leaf (refused before the assertion signature is looked at).
    let small = sign_leaf(
        &acme.ca,
        &leaf_params(Some("acme::buyer"), Some("acme"), None),
        &Rsa1024,
    );
    login(
        &b,
        &signed_assertion(&small, &buyer.key, json!({}), &claims()),
    )
    .await
    .expect(
        401,
        "Agent RSA key too small (1024 bits) — minimum 2048 required",
    );

    // T-17: EKU without clientAuth.
    login_as(
        &b,
        &custom_identity(&acme.ca, "acme::buyer", |params| {
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        }),
    )
    .await
    .expect(
        401,
        "Agent certificate EKU does not include clientAuth (1.3.6.1.5.5.7.3.2)",
    );

    // T-18: expired and not yet valid.
    for (not_before, not_after) in [(now - 2 * DAY, now - DAY), (now + DAY, now + 2 * DAY)] {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let cert = acme
            .ca
            .issue(&AgentCertSpec {
                org_id: "acme",
                agent_name: "buyer",
                trust_domain: Some(TRUST_DOMAIN),
                subject_key: key.public_key(),
                not_before,
                not_after,
            })
            .unwrap();
        login_as(&b, &identity("acme::buyer", cert.der().to_vec(), key))
            .await
            .expect(401, "Agent certificate expired or not yet valid");
    }

    // A CN that is not an agent id (a 500 in the reference).
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let der = sign_leaf(
        &acme.ca,
        &leaf_params(Some("acme-buyer"), Some("acme"), None),
        &rcgen_key(&key),
    );
    login(
        &b,
        &signed_assertion(&der, &key, json!({}), &assertion_claims("acme-buyer")),
    )
    .await
    .expect(
        401,
        "Agent certificate CN is not a valid agent id — expected '<org_id>::<agent_name>'",
    );

    // T-20: the JWT itself.
    let other_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let bad_signature = [
        signed_assertion(&buyer.cert_der, &other_key, json!({}), &claims()),
        signed(&with(claims(), json!({"aud": "someone-else"}))),
        signed(&with(claims(), json!({"aud": ["a", "b"]}))),
        signed(&with(claims(), json!({"aud": null}))),
        signed(&with(claims(), json!({"iat": now - 600, "exp": now - 300}))),
        signed(&with(claims(), json!({"exp": null}))),
        signed(&with(claims(), json!({"exp": (now + 300).to_string()}))),
        signed(&with(claims(), json!({"iat": now + 60}))),
        signed(&with(claims(), json!({"nbf": now + 60}))),
        signed(&with(claims(), json!({"jti": 12345}))),
        signed(&with(claims(), json!({"sub": 7}))),
        // alg/key confusion: ES256 over an RSA leaf, RS256 / PS256 over an EC leaf, HS256, none.
        forged_jws(
            &json!({"alg": "ES256", "typ": "JWT", "x5c": [cullis_shared::encoding::b64::std_padded(&rsa.cert_der)]}),
            &assertion_claims("acme::rsa"),
            64,
        ),
        forged_jws(
            &json!({"alg": "RS256", "typ": "JWT", "x5c": [cullis_shared::encoding::b64::std_padded(&buyer.cert_der)]}),
            &claims(),
            256,
        ),
        forged_jws(
            &json!({"alg": "PS256", "typ": "JWT", "x5c": [cullis_shared::encoding::b64::std_padded(&rsa.cert_der)]}),
            &assertion_claims("acme::rsa"),
            256,
        ),
        forged_jws(
            &json!({"alg": "HS256", "typ": "JWT", "x5c": [cullis_shared::encoding::b64::std_padded(&buyer.cert_der)]}),
            &claims(),
            32,
        ),
        forged_jws(
            &json!({"alg": "none", "typ": "JWT", "x5c": [cullis_shared::encoding::b64::std_padded(&buyer.cert_der)]}),
            &claims(),
            0,
        ),
    ];
    for (i, assertion) in bad_signature.iter().enumerate() {
        let reply = login(&b, assertion).await;
        assert_eq!(
            (reply.status.as_u16(), reply.detail()),
            (401, "Invalid client_assertion signature"),
            "case {i}: {}",
            reply.text
        );
    }

    // T-21, T-22, T-24.
    let spiffe = format!("spiffe://{TRUST_DOMAIN}/acme/buyer");
    let cases = [
        (
            json!({"sub": "acme::seller"}),
            "'sub' in JWT does not match the agent CN or SPIFFE URI",
        ),
        (
            json!({"sub": null}),
            "'sub' in JWT does not match the agent CN or SPIFFE URI",
        ),
        (
            json!({"sub": "spiffe://other.td/acme/buyer"}),
            "'sub' in JWT does not match the agent CN or SPIFFE URI",
        ),
        (
            json!({"iss": null}),
            "'iss' in JWT is missing or does not match the authenticated agent",
        ),
        (
            json!({"iss": "beta::buyer"}),
            "'iss' in JWT is missing or does not match the authenticated agent",
        ),
        (json!({"jti": null}), "client_assertion missing jti"),
        (json!({"jti": ""}), "client_assertion missing jti"),
        (
            json!({"jti": "x".repeat(129)}),
            "client_assertion jti longer than 128 characters",
        ),
    ];
    for (overrides, detail) in cases {
        login(&b, &signed(&with(claims(), overrides)))
            .await
            .expect(401, detail);
    }

    // T-23: a SPIFFE SAN in another trust domain, or naming another agent.
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let other_domain = acme
        .ca
        .issue(&AgentCertSpec {
            org_id: "acme",
            agent_name: "buyer",
            trust_domain: Some("other.td"),
            subject_key: key.public_key(),
            not_before: now - 60,
            not_after: now + DAY,
        })
        .unwrap();
    login_as(
        &b,
        &identity("acme::buyer", other_domain.der().to_vec(), key),
    )
    .await
    .expect(401, "SPIFFE ID in SAN does not match the registered agent");
    login_as(
        &b,
        &custom_identity(&acme.ca, "acme::buyer", |params| {
            params.subject_alt_names = vec![rcgen::SanType::URI(
                format!("spiffe://{TRUST_DOMAIN}/acme/seller")
                    .try_into()
                    .unwrap(),
            )];
        }),
    )
    .await
    .expect(401, "SPIFFE ID in SAN does not match the registered agent");

    // T-26: not registered; and CN in acme but O=beta (signed by beta's CA).
    login_as(&b, &acme.agent_identity("ghost"))
        .await
        .expect(401, "Agent not found or org mismatch");
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let der = sign_leaf(
        &beta.ca,
        &leaf_params(Some("acme::buyer"), Some("beta"), None),
        &rcgen_key(&key),
    );
    login(&b, &signed_assertion(&der, &key, json!({}), &claims()))
        .await
        .expect(401, "Agent not found or org mismatch");

    // Positive controls: sub/iss as the SPIFFE id are accepted, the RSA agent logs in, and
    // the real buyer was pinned by none of the refusals above.
    let reply = login(
        &b,
        &signed(&with(claims(), json!({"sub": spiffe, "iss": spiffe}))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = login_as(&b, &rsa).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// T-19 (revoked serial, written upper-case with leading zeros), T-25 (assertion replay with
/// the nonce dance done by hand), T-28 (binding missing, pending, revoked), T-29/T-30
/// (pinning and rotation).
async fn revocation_replay_binding_and_pinning(store: Store) {
    let b = TestBroker::start(store).await;
    let acme = b.onboard("acme").await;
    let buyer = b.register_agent(&acme, "buyer", &["order.read"]).await;
    let url = token_url(&b);

    // T-25: one assertion, the nonce dance by hand, then the same assertion again.
    let assertion = buyer.assertion();
    let dpop = DpopKey::generate().unwrap();
    let first = post_token(&b, &dpop.proof("POST", &url, None, None, now()), &assertion).await;
    let nonce = first.expect_nonce_challenge();
    let second = post_token(
        &b,
        &dpop.proof("POST", &url, None, Some(&nonce), now()),
        &assertion,
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let nonce = second
        .header("dpop-nonce")
        .expect("nonce on success")
        .to_owned();
    post_token(
        &b,
        &dpop.proof("POST", &url, None, Some(&nonce), now()),
        &assertion,
    )
    .await
    .expect(
        401,
        "client_assertion already used (replay attack detected)",
    );
    // With another DPoP key too: the assertion id is burned, whoever presents it.
    login(&b, &assertion).await.expect(
        401,
        "client_assertion already used (replay attack detected)",
    );

    // T-29 / T-30: the pinned certificate; a new key is refused until rotated, then the old
    // one is refused.
    let renewed = acme.agent_identity("buyer");
    let mismatch = "Certificate thumbprint mismatch — use the rotate-cert endpoint to update";
    login_as(&b, &renewed).await.expect(401, mismatch);
    let reply = org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/agents/acme::buyer/rotate-cert",
        Some(json!({"new_certificate": renewed.cert_pem})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    login_as(&b, &buyer).await.expect(401, mismatch);
    let reply = login_as(&b, &renewed).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // T-19: the admin revokes the serial, written UPPER-CASE with leading zeros.
    let serial = serial_of(&renewed.cert_der);
    let reply = admin(
        &b,
        Method::POST,
        "/v1/admin/certs/revoke",
        Some(json!({"serial_hex": format!("0000{}", serial.to_uppercase()), "org_id": "acme", "reason": "key compromise"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["serial_hex"], serial);
    login_as(&b, &renewed)
        .await
        .expect(401, "Certificate has been revoked");

    // T-28: no binding, a pending binding, a revoked binding.
    let no_binding = "No approved binding for this agent and organization";
    register_only(&b, &acme, "unbound", &["x"]).await;
    login_as(&b, &acme.agent_identity("unbound"))
        .await
        .expect(403, no_binding);
    register_only(&b, &acme, "waiting", &["x"]).await;
    create_binding(&b, &acme, "acme::waiting", &["x"]).await;
    login_as(&b, &acme.agent_identity("waiting"))
        .await
        .expect(403, no_binding);
    let fired = b.register_agent(&acme, "fired", &["x"]).await;
    let id = binding_id(&b, &acme, "acme::fired").await;
    let reply = org(
        &b,
        &acme,
        Method::POST,
        &format!("/v1/registry/bindings/{id}/revoke"),
        None,
    )
    .await;
    assert_eq!(reply.body["status"], "revoked", "{}", reply.text);
    login_as(&b, &fired).await.expect(403, no_binding);
}

#[tokio::test]
async fn t19_t25_t28_t30_on_sqlite() {
    revocation_replay_binding_and_pinning(Store::Sqlite).await;
}

#[tokio::test]
async fn t19_t25_t28_t30_on_postgres_and_redis() {
    revocation_replay_binding_and_pinning(Store::PostgresRedis).await;
}

/// T-02: the `auth.token` bucket (3/60 s here) answers the 4th request from one client 429
/// with `Retry-After`, before any proof or assertion is looked at; request-shape errors
/// (422) come first; another client is not affected. On Redis the limit is shared by every
/// broker using it, so that run names a client address of its own via `X-Forwarded-For`.
async fn rate_limit(store: Store) {
    let options = Options::default()
        .env("RATE_LIMIT_AUTH_TOKEN", "3/60s")
        .env("FORWARDED_ALLOW_IPS", "127.0.0.1");
    let b = TestBroker::start_with(store, options).await;
    let client = match store {
        Store::Sqlite => None,
        Store::PostgresRedis => Some(random_ipv6()),
    };
    let request = |client: Option<&str>| {
        let mut request = b
            .http
            .post(token_url(&b))
            .header("DPoP", "not.a.valid.jwt.at.all")
            .json(&json!({"client_assertion": "x"}));
        if let Some(client) = client {
            request = request.header("x-forwarded-for", client);
        }
        request
    };
    for _ in 0..3 {
        send(request(client.as_deref()))
            .await
            .expect(401, "Invalid DPoP proof: malformed JWT");
    }
    let reply = send(request(client.as_deref())).await;
    reply.expect(429, "Rate limit exceeded for 'auth.token': max 3 req/60s");
    assert_eq!(reply.header("retry-after"), Some("60"));
    // Request validation (422) precedes the limit.
    let mut shapeless = b
        .http
        .post(token_url(&b))
        .json(&json!({"client_assertion": "x"}));
    if let Some(client) = &client {
        shapeless = shapeless.header("x-forwarded-for", client);
    }
    send(shapeless).await.expect_422(&["header", "DPoP"]);
    // Another client still gets through to the proof check.
    send(request(Some(&random_ipv6())))
        .await
        .expect(401, "Invalid DPoP proof: malformed JWT");
}

/// A client address nobody else uses (documentation prefix 2001:db8::/32).
fn random_ipv6() -> String {
    let bits = uuid::Uuid::new_v4().as_u128();
    let group = |i: u32| (bits >> (16 * i)) as u16;
    format!(
        "2001:db8:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
        group(0),
        group(1),
        group(2),
        group(3),
        group(4),
        group(5)
    )
}

#[tokio::test]
async fn t02_rate_limit_on_sqlite() {
    rate_limit(Store::Sqlite).await;
}

#[tokio::test]
async fn t02_rate_limit_on_postgres_and_redis() {
    rate_limit(Store::PostgresRedis).await;
}

/// T-23b: with `REQUIRE_SPIFFE_SAN=true` a leaf without a SPIFFE SAN is refused; with one it
/// logs in.
#[tokio::test]
async fn t23b_spiffe_san_required() {
    let b = TestBroker::start_with(
        Store::Sqlite,
        Options::default().env("REQUIRE_SPIFFE_SAN", "true"),
    )
    .await;
    let acme = b.onboard("acme").await;
    let buyer = b.register_agent(&acme, "buyer", &[]).await;
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let now = now();
    let bare = acme
        .ca
        .issue(&AgentCertSpec {
            org_id: "acme",
            agent_name: "buyer",
            trust_domain: None,
            subject_key: key.public_key(),
            not_before: now - 60,
            not_after: now + DAY,
        })
        .unwrap();
    login_as(&b, &identity("acme::buyer", bare.der().to_vec(), key))
        .await
        .expect(
            401,
            "Certificate missing SPIFFE SAN URI (require_spiffe_san=true)",
        );
    let reply = login_as(&b, &buyer).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}
