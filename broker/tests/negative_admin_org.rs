//! Negative tests of the admin, onboarding, organisation, registry and binding endpoints over
//! real HTTP (ref-auth-crypto §10.5 R-01…R-10, §10.8 V-01…V-04; ref-broker-api §1.3–1.7),
//! including the reference bugs DESIGN decision 2 fixes.

mod common;
mod neg;

use common::{Store, TestBroker, TestOrg, TRUST_DOMAIN};
use cullis_shared::keys::{KeyType, PrivateKey};
use cullis_shared::pki::{AgentCertSpec, OrgCa};
use neg::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A CA certificate PEM with an RSA-1024 key (signed by some other CA: the broker does not
/// check a CA's own signature, only its constraints, size and validity).
fn rsa1024_ca_pem(signer: &OrgCa) -> String {
    let mut params = leaf_params(Some("small CA"), Some("small"), None);
    make_ca(&mut params);
    cullis_shared::keys::pem_encode("CERTIFICATE", &sign_leaf(signer, &params, &Rsa1024))
}

/// A certificate without BasicConstraints.
fn no_basic_constraints_pem(signer: &OrgCa) -> String {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let mut params = leaf_params(Some("plain"), Some("plain"), None);
    params.is_ca = rcgen::IsCa::NoCa;
    cullis_shared::keys::pem_encode("CERTIFICATE", &sign_leaf(signer, &params, &rcgen_key(&key)))
}

fn expired_ca_pem(org_id: &str) -> String {
    let now = now();
    OrgCa::generate_valid_between(org_id, KeyType::EcP256, now - 3 * 86_400, now - 86_400)
        .unwrap()
        .cert_pem()
}

async fn org_exists(b: &TestBroker, org_id: &str) -> bool {
    let reply = admin(b, Method::GET, &format!("/v1/registry/orgs/{org_id}"), None).await;
    match reply.status {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => {
            reply.expect(404, "Organization not found");
            false
        }
        other => panic!("{other}: {}", reply.text),
    }
}

async fn invite_used(b: &TestBroker, invite_id: &str) -> bool {
    let reply = admin(b, Method::GET, "/v1/admin/invites", None).await;
    let invite = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|invite| invite["id"] == invite_id)
        .cloned()
        .expect("the invite is listed");
    assert_eq!(invite["token"], Value::Null, "tokens are never listed");
    invite["used"].as_bool().unwrap()
}

/// Invites, join refusals (which consume nothing and create nothing), org state machine,
/// admin authentication, CA upload (V-01) and `/orgs/me`.
#[tokio::test]
async fn invites_join_org_states_and_ca_upload() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;

    // Admin authentication.
    send(b.http.post(b.url("/v1/admin/invites")).json(&json!({})))
        .await
        .expect_422(&["header", "x-admin-secret"]);
    send(
        b.http
            .post(b.url("/v1/admin/invites"))
            .header("x-admin-secret", "wrong-secret-0123456789")
            .json(&json!({})),
    )
    .await
    .expect(403, "Invalid admin secret");
    for ttl in [0, 8761, -5] {
        admin(
            &b,
            Method::POST,
            "/v1/admin/invites",
            Some(json!({"ttl_hours": ttl})),
        )
        .await
        .expect_422(&["body", "ttl_hours"]);
    }
    admin(
        &b,
        Method::POST,
        "/v1/admin/invites/no-such-invite/revoke",
        None,
    )
    .await
    .expect(404, "Invite not found");

    // V-02: invalid invites.
    let bad_invite = "Invalid or expired invite token";
    let newbie = TestOrg::new("newbie");
    send(
        b.http
            .post(b.url("/v1/onboarding/join"))
            .json(&join_body(&newbie, "no-such-token")),
    )
    .await
    .expect(403, bad_invite);
    let (revoked_id, revoked) = invite(&b).await;
    let reply = admin(
        &b,
        Method::POST,
        &format!("/v1/admin/invites/{revoked_id}/revoke"),
        None,
    )
    .await;
    assert_eq!(
        reply.body,
        json!({"id": revoked_id, "revoked": true, "message": "Invite token revoked."})
    );
    send(
        b.http
            .post(b.url("/v1/onboarding/join"))
            .json(&join_body(&newbie, &revoked)),
    )
    .await
    .expect(403, bad_invite);

    // Joins refused for their CA, their org id or a duplicate org: each leaves the invite
    // usable and no org behind (DESIGN decision 2).
    let (id, token) = invite(&b).await;
    let leaf_pem = newbie.agent_identity("x").cert_pem;
    let refusals: Vec<(Value, u16, &str)> = vec![
        (
            json!({"ca_certificate": leaf_pem}),
            400,
            "Submitted certificate is not a CA (BasicConstraints CA=false)",
        ),
        (
            json!({"ca_certificate": rsa1024_ca_pem(&newbie.ca)}),
            400,
            "CA RSA key too small (1024 bits) — minimum 2048 required",
        ),
        (
            json!({"ca_certificate": expired_ca_pem("newbie")}),
            400,
            "CA certificate is expired or not yet valid",
        ),
        (
            json!({"ca_certificate": "-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n"}),
            400,
            "Invalid CA certificate: could not parse or validate the submitted PEM",
        ),
        (
            json!({"ca_certificate": no_basic_constraints_pem(&newbie.ca)}),
            400,
            "Invalid CA certificate: could not parse or validate the submitted PEM",
        ),
        (json!({"org_id": "acme"}), 409, "org_id already registered"),
    ];
    for (overrides, status, detail) in refusals {
        let body = with(join_body(&newbie, &token), overrides);
        send(b.http.post(b.url("/v1/onboarding/join")).json(&body))
            .await
            .expect(status, detail);
        assert!(!invite_used(&b, &id).await, "{detail}: invite consumed");
        assert!(!org_exists(&b, "newbie").await, "{detail}: org left behind");
    }
    for bad_id in ["Newbie", "-newbie", "new bie", ""] {
        let body = with(join_body(&newbie, &token), json!({"org_id": bad_id}));
        send(b.http.post(b.url("/v1/onboarding/join")).json(&body))
            .await
            .expect_422(&["body", "org_id"]);
    }
    assert!(!invite_used(&b, &id).await);
    let pending = admin(&b, Method::GET, "/v1/admin/orgs/pending", None).await;
    assert_eq!(pending.body, json!([]), "{}", pending.text);
    // The same invite still works, once.
    let (status, body) = b.join(&newbie, &token).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(invite_used(&b, &id).await);
    let late = TestOrg::new("late");
    send(
        b.http
            .post(b.url("/v1/onboarding/join"))
            .json(&join_body(&late, &token)),
    )
    .await
    .expect(403, bad_invite);
    assert!(!org_exists(&b, "late").await);

    // A pending org: /orgs/me works with its secret; ORG-authenticated endpoints do not.
    let me = org(&b, &newbie, Method::GET, "/v1/registry/orgs/me", None).await;
    assert_eq!(me.body["status"], "pending", "{}", me.text);
    org(
        &b,
        &newbie,
        Method::GET,
        "/v1/registry/bindings?org_id=newbie",
        None,
    )
    .await
    .expect(403, "Invalid organization credentials");
    org_as(
        &b,
        "newbie",
        "wrong",
        Method::GET,
        "/v1/registry/orgs/me",
        None,
    )
    .await
    .expect(403, "Invalid organization credentials");
    org_as(
        &b,
        "nobody",
        "wrong",
        Method::GET,
        "/v1/registry/orgs/me",
        None,
    )
    .await
    .expect(404, "Organization not found");
    send(
        b.http
            .get(b.url("/v1/registry/orgs/me"))
            .header("x-org-id", "acme"),
    )
    .await
    .expect_422(&["header", "x-org-secret"]);

    // Org state machine.
    admin(&b, Method::POST, "/v1/admin/orgs/nobody/approve", None)
        .await
        .expect(404, "Organization not found");
    admin(&b, Method::POST, "/v1/admin/orgs/nobody/reject", None)
        .await
        .expect(404, "Organization not found");
    admin(&b, Method::POST, "/v1/admin/orgs/acme/approve", None)
        .await
        .expect(409, "Organization already active");
    let reply = admin(&b, Method::POST, "/v1/admin/orgs/newbie/reject", None).await;
    assert_eq!(reply.body["status"], "rejected", "{}", reply.text);
    admin(&b, Method::POST, "/v1/admin/orgs/newbie/reject", None)
        .await
        .expect(409, "Organization already in state 'rejected'");
    let reply = admin(&b, Method::POST, "/v1/admin/orgs/newbie/approve", None).await;
    assert_eq!(reply.body["status"], "active", "{}", reply.text);
    let reply = admin(
        &b,
        Method::POST,
        "/v1/registry/orgs",
        Some(json!({"org_id": "acme", "display_name": "again", "secret": "s3cret-s3cret"})),
    )
    .await;
    reply.expect(409, "org_id already registered");

    // V-01: CA upload.
    let path = "/v1/registry/orgs/acme/certificate";
    let upload = |pem: String| Some(json!({"ca_certificate": pem}));
    org_as(
        &b,
        "newbie",
        &newbie.secret,
        Method::POST,
        path,
        upload(acme.ca.cert_pem()),
    )
    .await
    .expect(403, "org_id mismatch");
    org_as(
        &b,
        "ghost",
        "whatever",
        Method::POST,
        "/v1/registry/orgs/ghost/certificate",
        upload(acme.ca.cert_pem()),
    )
    .await
    .expect(404, "Organization not found");
    org_as(
        &b,
        "acme",
        "wrong-secret",
        Method::POST,
        path,
        upload(acme.ca.cert_pem()),
    )
    .await
    .expect(401, "Invalid org credentials");
    let cases = [
        (leaf_pem.clone(), "Certificate is not a CA (BasicConstraints CA=false)".to_owned()),
        (rsa1024_ca_pem(&acme.ca), "CA RSA key too small (1024 bits) — minimum 2048".to_owned()),
        (expired_ca_pem("acme"), "CA certificate is expired or not yet valid".to_owned()),
        (
            no_basic_constraints_pem(&acme.ca),
            "Invalid CA certificate: No <class 'cryptography.x509.extensions.BasicConstraints'> extension was found".to_owned(),
        ),
    ];
    for (pem, detail) in cases {
        org(&b, &acme, Method::POST, path, upload(pem))
            .await
            .expect(400, &detail);
    }
    let reply = org(&b, &acme, Method::POST, path, upload("garbage".into())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(
        reply.detail().starts_with("Invalid CA certificate: "),
        "{}",
        reply.text
    );
    // None of the refusals replaced the CA: acme's agents still log in.
    let buyer = b.register_agent(&acme, "buyer", &[]).await;
    assert_eq!(login_as(&b, &buyer).await.status, StatusCode::OK);
}

/// R-02…R-10: org revoke-agent and admin certificate revocation.
#[tokio::test]
async fn r02_r10_revocation_endpoints() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;
    let beta = b.onboard("beta").await;
    let buyer = b.register_agent(&acme, "buyer", &["x"]).await;
    b.register_agent(&beta, "seller", &["x"]).await;

    // R-02…R-05.
    let creds = "Invalid organization credentials";
    org_as(
        &b,
        "acme",
        "wrong",
        Method::POST,
        "/v1/auth/revoke-agent/acme::buyer",
        None,
    )
    .await
    .expect(403, creds);
    org_as(
        &b,
        "ghost",
        "wrong",
        Method::POST,
        "/v1/auth/revoke-agent/acme::buyer",
        None,
    )
    .await
    .expect(403, creds);
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/auth/revoke-agent/beta::seller",
        None,
    )
    .await
    .expect(403, "Agent does not belong to your organization");
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/auth/revoke-agent/acme::nobody",
        None,
    )
    .await
    .expect(404, "Agent not found");
    anon(&b, Method::POST, "/v1/auth/revoke-agent/acme::buyer", None)
        .await
        .expect_422(&["header", "x-org-id"]);

    //
    let body = json!({"serial_hex": "abc123", "org_id": "acme"});
    send(b.http.post(b.url("/v1/admin/certs/revoke")).json(&body))
        .await
        .expect_422(&["header", "x-admin-secret"]);
    send(
        b.http
            .post(b.url("/v1/admin/certs/revoke"))
            .header("x-admin-secret", "not-the-admin-secret")
            .json(&body),
    )
    .await
    .expect(403, "Invalid admin secret");
    send(
        b.http
            .get(b.url("/v1/admin/certs/revoked"))
            .header("x-admin-secret", "nope"),
    )
    .await
    .expect(403, "Invalid admin secret");
    for bad in [
        json!({"serial_hex": "xyz", "org_id": "acme"}),
        json!({"serial_hex": "", "org_id": "acme"}),
    ] {
        admin(&b, Method::POST, "/v1/admin/certs/revoke", Some(bad))
            .await
            .expect_422(&["body", "serial_hex"]);
    }
    admin(
        &b,
        Method::POST,
        "/v1/admin/certs/revoke",
        Some(json!({"serial_hex": "abc", "org_id": "acme", "cert_not_after": "next tuesday"})),
    )
    .await
    .expect_422(&["body", "cert_not_after"]);

    // preventive revocation (before the first login), the serial written "0x" + upper
    // case; R-08: the answer names the canonical serial.
    let serial = serial_of(&buyer.cert_der);
    let reply = admin(
        &b,
        Method::POST,
        "/v1/admin/certs/revoke",
        Some(json!({"serial_hex": format!("0x{}", serial.to_uppercase()), "org_id": "acme", "agent_id": "acme::buyer"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["serial_hex"], serial);
    assert_eq!(
        reply.body["message"],
        format!("Certificate {serial} revoked.")
    );
    login_as(&b, &buyer)
        .await
        .expect(401, "Certificate has been revoked");
    // the same serial again, however written.
    for written in [
        serial.clone(),
        format!("000{serial}"),
        serial.to_uppercase(),
    ] {
        admin(
            &b,
            Method::POST,
            "/v1/admin/certs/revoke",
            Some(json!({"serial_hex": written, "org_id": "acme"})),
        )
        .await
        .expect(409, "Certificate already revoked");
    }

    // the list per org.
    let reply = admin(
        &b,
        Method::POST,
        "/v1/admin/certs/revoke",
        Some(json!({"serial_hex": "BEEF", "org_id": "beta", "reason": "lost"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let list = |query: &'static str| {
        let b = &b;
        async move {
            admin(
                b,
                Method::GET,
                &format!("/v1/admin/certs/revoked{query}"),
                None,
            )
            .await
            .body
        }
    };
    let acme_rows = list("?org_id=acme").await;
    assert_eq!(acme_rows.as_array().unwrap().len(), 1, "{acme_rows}");
    assert_eq!(acme_rows[0]["serial_hex"], serial);
    assert_eq!(acme_rows[0]["agent_id"], "acme::buyer");
    let beta_rows = list("?org_id=beta").await;
    assert_eq!(beta_rows.as_array().unwrap().len(), 1, "{beta_rows}");
    assert_eq!(beta_rows[0]["serial_hex"], "beef");
    assert_eq!(list("?org_id=nobody").await, json!([]));
    assert_eq!(list("").await.as_array().unwrap().len(), 2);
}

/// Registry (agents) and binding refusals, V-03 (rotate-cert) and V-04 (public keys).
#[tokio::test]
async fn registry_bindings_rotation_and_public_keys() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;
    let beta = b.onboard("beta").await;
    let buyer = b.register_agent(&acme, "buyer", &["order.read"]).await;
    let buyer_session = session(&b, &buyer).await;

    // Agent registration.
    let register = |body: Value| org(&b, &acme, Method::POST, "/v1/registry/agents", Some(body));
    register(json!({"agent_id": "beta::spy", "org_id": "acme", "display_name": "spy"}))
        .await
        .expect(
            403,
            "agent_id must be in your organization's namespace ('<org_id>::<name>')",
        );
    register(json!({"agent_id": "beta::spy", "org_id": "beta", "display_name": "spy"}))
        .await
        .expect(
            403,
            "org_id in body does not match authenticated organization",
        );
    register(json!({"agent_id": "acme::buyer", "org_id": "acme", "display_name": "again"}))
        .await
        .expect(409, "agent_id already registered");
    for bad in ["acme::Buyer", "acme:buyer", "acme::", "::x", "acme::a b"] {
        register(json!({"agent_id": bad, "org_id": "acme", "display_name": "x"}))
            .await
            .expect_422(&["body", "agent_id"]);
    }
    let many: Vec<String> = (0..51).map(|i| format!("cap{i}")).collect();
    register(json!({"agent_id": "acme::many", "org_id": "acme", "display_name": "x", "capabilities": many}))
        .await
        .expect_422(&["body", "capabilities"]);
    org_as(
        &b,
        "acme",
        "wrong",
        Method::POST,
        "/v1/registry/agents",
        Some(json!({"agent_id": "acme::x", "org_id": "acme", "display_name": "x"})),
    )
    .await
    .expect(403, "Invalid organization credentials");

    // Bindings.
    register_only(&b, &acme, "picky", &["b.read", "a.write"]).await;
    register_only(&b, &beta, "hidden", &["x"]).await;
    let bind = |body: Value| org(&b, &acme, Method::POST, "/v1/registry/bindings", Some(body));
    bind(json!({"org_id": "beta", "agent_id": "beta::hidden", "scope": []}))
        .await
        .expect(403, "You cannot create a binding for another organization");
    bind(json!({"org_id": "acme", "agent_id": "beta::hidden", "scope": []}))
        .await
        .expect(
            404,
            "Agent not found or does not belong to this organization",
        );
    bind(json!({"org_id": "acme", "agent_id": "acme::nobody", "scope": []}))
        .await
        .expect(
            404,
            "Agent not found or does not belong to this organization",
        );
    bind(json!({"org_id": "acme", "agent_id": "acme::picky", "scope": ["x", "a.write", "y"]}))
        .await
        .expect(
            400,
            "Scope ['x', 'y'] not in agent capabilities: ['a.write', 'b.read']",
        );
    bind(json!({"org_id": "acme", "agent_id": "acme::buyer", "scope": []}))
        .await
        .expect(
            409,
            "Binding already exists for this agent and organization",
        );
    let picky = create_binding(&b, &acme, "acme::picky", &["a.write"]).await;
    let approve = |o: &TestOrg, id: i64| {
        let (org_id, secret) = (o.org_id.clone(), o.secret.clone());
        let b = &b;
        async move {
            org_as(
                b,
                &org_id,
                &secret,
                Method::POST,
                &format!("/v1/registry/bindings/{id}/approve"),
                None,
            )
            .await
        }
    };
    let revoke = |o: &TestOrg, id: i64| {
        let (org_id, secret) = (o.org_id.clone(), o.secret.clone());
        let b = &b;
        async move {
            org_as(
                b,
                &org_id,
                &secret,
                Method::POST,
                &format!("/v1/registry/bindings/{id}/revoke"),
                None,
            )
            .await
        }
    };
    approve(&beta, picky)
        .await
        .expect(403, "You are not the owning organization of this binding");
    revoke(&beta, picky)
        .await
        .expect(403, "You are not the owning organization of this binding");
    approve(&acme, 999_999)
        .await
        .expect(404, "Binding not found");
    revoke(&acme, 999_999)
        .await
        .expect(404, "Binding not found");
    let reply = approve(&acme, picky).await;
    assert_eq!(reply.body["status"], "approved", "{}", reply.text);
    assert_eq!(reply.body["approved_by"], "acme");
    approve(&acme, picky)
        .await
        .expect(409, "Binding is already approved");
    assert_eq!(revoke(&acme, picky).await.body["status"], "revoked");
    assert_eq!(
        approve(&acme, picky).await.body["status"],
        "approved",
        "revoked → approved"
    );
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/bindings/not-a-number/approve",
        None,
    )
    .await
    .expect_422(&["path"]);
    org(
        &b,
        &acme,
        Method::GET,
        "/v1/registry/bindings?org_id=beta",
        None,
    )
    .await
    .expect(403, "You cannot view bindings of another organization");
    org(&b, &acme, Method::GET, "/v1/registry/bindings", None)
        .await
        .expect_422(&["query", "org_id"]);

    // V-04 and the cross-org visibility rule.
    let get = |path: String| {
        let session = &buyer_session;
        async move { call(session, Method::GET, &path).await }
    };
    for path in [
        "/v1/registry/agents/beta::hidden",
        "/v1/registry/agents/beta::hidden/public-key",
    ] {
        let (status, body) = get(path.into()).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (
                StatusCode::FORBIDDEN,
                Some("No approved binding with this agent")
            ),
            "{path}: {body}"
        );
    }
    for path in [
        "/v1/registry/agents/acme::nobody",
        "/v1/registry/agents/acme::nobody/public-key",
    ] {
        let (status, body) = get(path.into()).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (StatusCode::NOT_FOUND, Some("Agent not found")),
            "{path}: {body}"
        );
    }
    let visible = b.register_agent(&beta, "visible", &["x"]).await;
    let (status, body) = get("/v1/registry/agents/beta::visible".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get("/v1/registry/agents/beta::visible/public-key".into()).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            StatusCode::NOT_FOUND,
            Some("Certificate not available — agent must login first")
        ),
        "{body}"
    );
    session(&b, &visible).await;
    let (status, body) = get("/v1/registry/agents/beta::visible/public-key".into()).await;
    assert_eq!(
        body["public_key_pem"],
        visible.key.public_key().to_spki_pem(),
        "{status} {body}"
    );
    let (status, body) = get("/v1/registry/agents?org_id=beta".into()).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("You cannot view agents from other organizations")
        ),
    );

    // V-03: rotate-cert.
    let rotate = |o: &TestOrg, agent: &str, pem: Value| {
        let (org_id, secret) = (o.org_id.clone(), o.secret.clone());
        let path = format!("/v1/registry/agents/{agent}/rotate-cert");
        let b = &b;
        async move {
            org_as(
                b,
                &org_id,
                &secret,
                Method::POST,
                &path,
                Some(json!({"new_certificate": pem})),
            )
            .await
        }
    };
    let fresh = acme.agent_identity("buyer").cert_pem;
    org_as(
        &b,
        "acme",
        "wrong",
        Method::POST,
        "/v1/registry/agents/acme::buyer/rotate-cert",
        Some(json!({"new_certificate": fresh})),
    )
    .await
    .expect(403, "Invalid organization credentials");
    rotate(&acme, "acme::nobody", json!(fresh))
        .await
        .expect(404, "Agent not found");
    rotate(&acme, "beta::hidden", json!(fresh))
        .await
        .expect(403, "Agent does not belong to your organization");
    rotate(
        &acme,
        "acme::buyer",
        json!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
    )
    .await
    .expect(400, "Invalid PEM certificate");
    rotate(
        &acme,
        "acme::buyer",
        json!(acme.agent_identity("seller").cert_pem),
    )
    .await
    .expect(400, "Certificate CN does not match agent_id");
    rotate(
        &acme,
        "acme::buyer",
        json!(beta.agent_identity("x").cert_pem),
    )
    .await
    .expect(400, "Certificate CN does not match agent_id");
    let rogue = OrgCa::generate("acme", KeyType::EcP384, 1).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let rogue_pem = rogue
        .issue_agent_cert("acme", "buyer", TRUST_DOMAIN, key.public_key(), 1)
        .unwrap()
        .to_pem();
    rotate(&acme, "acme::buyer", json!(rogue_pem))
        .await
        .expect(400, "Certificate not signed by the organization CA");
    let now = now();
    let expired = acme
        .ca
        .issue(&AgentCertSpec {
            org_id: "acme",
            agent_name: "buyer",
            trust_domain: Some(TRUST_DOMAIN),
            subject_key: key.public_key(),
            not_before: now - 3 * 86_400,
            not_after: now - 86_400,
        })
        .unwrap()
        .to_pem();
    rotate(&acme, "acme::buyer", json!(expired))
        .await
        .expect(400, "Certificate is expired or not yet valid");
    rotate(
        &acme,
        "acme::buyer",
        json!(custom_identity(&acme.ca, "acme::buyer", make_ca).cert_pem),
    )
    .await
    .expect(400, "Agent certificate must not be a CA certificate");
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/agents/acme::buyer/rotate-cert",
        Some(json!({})),
    )
    .await
    .expect_422(&["body", "new_certificate"]);
    // An org without a CA.
    let noca = TestOrg::new("noca");
    let reply = admin(
        &b,
        Method::POST,
        "/v1/registry/orgs",
        Some(json!({"org_id": "noca", "display_name": "No CA", "secret": noca.secret})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    register_only(&b, &noca, "x", &[]).await;
    rotate(&noca, "noca::x", json!(noca.agent_identity("x").cert_pem))
        .await
        .expect(400, "Org CA not configured");
    // None of the refusals touched the pin: the original certificate still logs in.
    assert_eq!(login_as(&b, &buyer).await.status, StatusCode::OK);
}
