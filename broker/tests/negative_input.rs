//! Input hygiene over real HTTP: malformed JSON, wrong types and missing fields are 422 with a
//! FastAPI-style list `detail`; oversized bodies 413; unknown ids 404; unknown fields ignored;
//! unknown routes answer with a `detail` too; and a sweep of bad bodies over every write
//! endpoint that must never produce a server error (`neg::send` fails on any 5xx).

mod common;
mod neg;

use common::{Options, Store, TestBroker};
use neg::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Sends `raw` as a JSON body.
async fn raw(b: &TestBroker, path: &str, headers: &[(&str, &str)], raw: &str) -> Reply {
    let mut request = b
        .http
        .post(b.url(path))
        .header("content-type", "application/json")
        .body(raw.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await
}

#[tokio::test]
async fn malformed_bodies_unknown_ids_and_unknown_fields() {
    let b = TestBroker::start(Store::Sqlite).await;
    let acme = b.onboard("acme").await;
    let admin_h = [("x-admin-secret", common::ADMIN_SECRET)];
    let org_h = [("x-org-id", "acme"), ("x-org-secret", acme.secret.as_str())];

    // Malformed JSON.
    for path in [
        "/v1/admin/invites",
        "/v1/onboarding/join",
        "/v1/admin/certs/revoke",
    ] {
        raw(&b, path, &admin_h, "{\"label\": ")
            .await
            .expect_422(&["body"]);
    }
    raw(&b, "/v1/registry/agents", &org_h, "{nope}")
        .await
        .expect_422(&["body"]);
    // Not an object.
    raw(&b, "/v1/admin/invites", &admin_h, "[1, 2]")
        .await
        .expect_422_under(&["body"]);
    raw(&b, "/v1/registry/bindings", &org_h, "null")
        .await
        .expect_422(&["body"]);
    // No JSON content type.
    send(
        b.http
            .post(b.url("/v1/admin/invites"))
            .header("x-admin-secret", common::ADMIN_SECRET)
            .body("{}"),
    )
    .await
    .expect_422(&["body"]);

    // Wrong types name the field.
    admin(
        &b,
        Method::POST,
        "/v1/admin/invites",
        Some(json!({"label": 5})),
    )
    .await
    .expect_422(&["body", "label"]);
    admin(
        &b,
        Method::POST,
        "/v1/admin/invites",
        Some(json!({"ttl_hours": "soon"})),
    )
    .await
    .expect_422(&["body", "ttl_hours"]);
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/agents",
        Some(json!({"agent_id": "acme::x", "org_id": "acme", "display_name": "x", "capabilities": "read"})),
    )
    .await
    .expect_422(&["body", "capabilities"]);
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/bindings",
        Some(json!({"org_id": "acme", "agent_id": ["acme::x"]})),
    )
    .await
    .expect_422(&["body", "agent_id"]);

    // Missing fields name the field.
    let newbie = common::TestOrg::new("newbie");
    let (_, token) = invite(&b).await;
    for field in [
        "org_id",
        "display_name",
        "secret",
        "ca_certificate",
        "invite_token",
    ] {
        let body = with(join_body(&newbie, &token), json!({ field: null }));
        anon(&b, Method::POST, "/v1/onboarding/join", Some(body))
            .await
            .expect_422(&["body", field]);
    }
    admin(
        &b,
        Method::POST,
        "/v1/admin/certs/revoke",
        Some(json!({"serial_hex": "ab"})),
    )
    .await
    .expect_422(&["body", "org_id"]);
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/agents",
        Some(json!({"agent_id": "acme::x", "org_id": "acme"})),
    )
    .await
    .expect_422(&["body", "display_name"]);

    // Length limits of the reference models (display_name ≤ 256, secret within bcrypt's 72
    // bytes); a refused join burns no invite.
    let long_name = "n".repeat(257);
    let body = with(
        join_body(&newbie, &token),
        json!({"display_name": long_name}),
    );
    anon(&b, Method::POST, "/v1/onboarding/join", Some(body))
        .await
        .expect_422(&["body", "display_name"]);
    admin(
        &b,
        Method::POST,
        "/v1/registry/orgs",
        Some(json!({"org_id": "longname", "display_name": long_name, "secret": "s3cret-s3cret"})),
    )
    .await
    .expect_422(&["body", "display_name"]);
    admin(
        &b,
        Method::POST,
        "/v1/registry/orgs",
        Some(json!({"org_id": "longsecret", "display_name": "x", "secret": "s".repeat(100)})),
    )
    .await
    .expect_422(&["body", "secret"]);
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/agents",
        Some(json!({"agent_id": "acme::long", "org_id": "acme", "display_name": long_name})),
    )
    .await
    .expect_422(&["body", "display_name"]);
    org_as(
        &b,
        "acme",
        &"s".repeat(100),
        Method::GET,
        "/v1/registry/bindings?org_id=acme",
        None,
    )
    .await
    .expect(403, "Invalid organization credentials");

    // Unknown ids.
    admin(&b, Method::GET, "/v1/registry/orgs/nope", None)
        .await
        .expect(404, "Organization not found");
    admin(&b, Method::POST, "/v1/admin/invites/0123/revoke", None)
        .await
        .expect(404, "Invite not found");
    admin(&b, Method::POST, "/v1/admin/orgs/nope/approve", None)
        .await
        .expect(404, "Organization not found");
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/bindings/424242/approve",
        None,
    )
    .await
    .expect(404, "Binding not found");
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/agents/acme::nope/rotate-cert",
        Some(json!({"new_certificate": "x"})),
    )
    .await
    .expect(404, "Agent not found");
    org(
        &b,
        &acme,
        Method::POST,
        "/v1/auth/revoke-agent/acme::nope",
        None,
    )
    .await
    .expect(404, "Agent not found");

    // Unknown routes and methods answer with a detail, like every other error.
    anon(&b, Method::GET, "/v1/no-such-thing", None)
        .await
        .expect(404, "Not Found");
    anon(&b, Method::DELETE, "/v1/auth/token", None)
        .await
        .expect(405, "Method Not Allowed");

    // Unknown fields are ignored everywhere.
    let reply = admin(
        &b,
        Method::POST,
        "/v1/admin/invites",
        Some(json!({"label": "x", "colour": "blue", "ttl_hours": 1})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = anon(
        &b,
        Method::POST,
        "/v1/onboarding/join",
        Some(with(
            join_body(&newbie, &token),
            json!({"referrer": "friend", "tier": 3}),
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let reply = org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/agents",
        Some(json!({"agent_id": "acme::extra", "org_id": "acme", "display_name": "x", "capabilities": ["c"], "secret": "legacy", "flavour": 1})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = org(
        &b,
        &acme,
        Method::POST,
        "/v1/registry/bindings",
        Some(json!({"org_id": "acme", "agent_id": "acme::extra", "scope": ["c"], "note": "hi"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.body["id"].as_i64().unwrap();
    org(
        &b,
        &acme,
        Method::POST,
        &format!("/v1/registry/bindings/{id}/approve"),
        None,
    )
    .await;
    let extra = acme.agent_identity("extra");
    let nonce = fresh_nonce(&b).await;
    let dpop = cullis_shared::jose::dpop::DpopKey::generate().unwrap();
    let reply = send(
        b.http
            .post(token_url(&b))
            .header("DPoP", dpop.proof("POST", &token_url(&b), None, Some(&nonce), now()))
            .json(&json!({"client_assertion": extra.assertion(), "grant_type": "x509", "session_id": "s"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// Bodies over `MAX_BODY_BYTES` are 413 with a `detail`, on authenticated and open endpoints.
#[tokio::test]
async fn oversized_bodies_are_413() {
    let b = TestBroker::start_with(
        Store::Sqlite,
        Options::default().env("MAX_BODY_BYTES", "4096"),
    )
    .await;
    let big = "x".repeat(10 * 1024);
    for (path, body) in [
        ("/v1/admin/invites", json!({"label": big})),
        (
            "/v1/onboarding/join",
            json!({"org_id": "big", "display_name": big, "secret": "s", "ca_certificate": "c", "invite_token": "t"}),
        ),
        ("/v1/auth/token", json!({"client_assertion": big})),
    ] {
        let reply = send(
            b.http
                .post(b.url(path))
                .header("x-admin-secret", common::ADMIN_SECRET)
                .header("DPoP", "x.y.z")
                .json(&body),
        )
        .await;
        reply.expect(413, "Request body too large");
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    // Just under the limit is fine.
    let reply = admin(
        &b,
        Method::POST,
        "/v1/admin/invites",
        Some(json!({"label": "x".repeat(200)})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

/// Bad bodies and odd values over every write endpoint, on both stores: 4xx, never 5xx.
async fn no_server_errors(store: Store) {
    let b = TestBroker::start(store).await;
    let acme = b.onboard("acme").await;
    b.register_agent(&acme, "buyer", &["x"]).await;
    let admin_h = [("x-admin-secret", common::ADMIN_SECRET)];
    let org_h = [("x-org-id", "acme"), ("x-org-secret", acme.secret.as_str())];
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies = [
        "",
        "{",
        "[]",
        "null",
        "\"text\"",
        "1e999",
        "{\"a\": 1e999}",
        deep.as_str(),
        "{\"org_id\": {\"$gt\": \"\"}, \"agent_id\": 9223372036854775808}",
        "{\"label\": \"nul\\u0000byte\", \"ttl_hours\": 1}",
        "{\"serial_hex\": \"00\", \"org_id\": \"a\\u0000b\"}",
        "{\"ttl_hours\": 1e30}",
        "{\"new_certificate\": \"\\u0000\"}",
    ];
    let endpoints: [(&str, &[(&str, &str)]); 10] = [
        ("/v1/admin/invites", &admin_h),
        ("/v1/admin/certs/revoke", &admin_h),
        ("/v1/registry/orgs", &admin_h),
        ("/v1/onboarding/join", &[]),
        ("/v1/auth/token", &[("DPoP", "x.y.z")]),
        ("/v1/registry/agents", &org_h),
        ("/v1/registry/bindings", &org_h),
        ("/v1/registry/agents/acme::buyer/rotate-cert", &org_h),
        ("/v1/registry/orgs/acme/certificate", &org_h),
        ("/v1/auth/revoke-agent/acme::buyer", &org_h),
    ];
    for (path, headers) in endpoints {
        for body in &bodies {
            let reply = raw(&b, path, headers, body).await;
            assert!(
                reply.status.is_client_error() || reply.status.is_success(),
                "{path} {body}: {}",
                reply.text
            );
        }
    }
    // Strings the database may refuse (NUL) in paths and fields: a 4xx, not a 5xx.
    for path in [
        "/v1/admin/orgs/ac%00me/approve",
        "/v1/admin/invites/%00/revoke",
        "/v1/auth/revoke-agent/acme::%00",
        "/v1/registry/agents/acme::%00/rotate-cert",
        "/v1/registry/orgs/%00",
    ] {
        let method = if path.starts_with("/v1/registry/orgs/%") {
            Method::GET
        } else {
            Method::POST
        };
        let request = b
            .http
            .request(method, b.url(path))
            .header("x-admin-secret", common::ADMIN_SECRET)
            .header("x-org-id", "acme")
            .header("x-org-secret", &acme.secret)
            .json(&json!({"new_certificate": "x"}));
        let reply = send(request).await;
        assert!(reply.status.is_client_error(), "{path}: {}", reply.text);
    }
    let reply = admin(
        &b,
        Method::POST,
        "/v1/admin/invites",
        Some(json!({"label": "a\u{0}b"})),
    )
    .await;
    assert!(
        reply.status.is_client_error() || reply.status == StatusCode::CREATED,
        "{}",
        reply.text
    );
    // And the broker is still healthy afterwards.
    let reply = anon(&b, Method::GET, "/readyz", None).await;
    assert_eq!(reply.body["status"], "ready", "{}", reply.text);
}

#[tokio::test]
async fn no_server_errors_on_sqlite() {
    no_server_errors(Store::Sqlite).await;
}

#[tokio::test]
async fn no_server_errors_on_postgres_and_redis() {
    no_server_errors(Store::PostgresRedis).await;
}
