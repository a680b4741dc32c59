//! Transaction tokens over real HTTP (ref-auth-crypto §4.4, catalogue X-01..X-07): issued to
//! the caller only, validated like the reference, presented beside the access token on a
//! message send (`X-Transaction-Token`), bound to the envelope payload's hash, consumed once;
//! never accepted as an access token. RFQ quote approval by the requester's org issues one and
//! pushes the `transaction_token` WebSocket frame.

mod common;

use common::client::AgentSession;
use common::messaging::{open_active_session, pdp, public_key, seal};
use common::{Options, Store, TestBroker};
use cullis_shared::jose::transaction_token::payload_hash;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

const HEADER: &str = cullis_shared::wire::auth::TRANSACTION_TOKEN_HEADER;

async fn request_token(session: &AgentSession, body: Value) -> (StatusCode, Value) {
    session
        .call(Method::POST, "/v1/auth/token/transaction", Some(body))
        .await
}

async fn send_with(session: &AgentSession, envelope: &Value, token: &str) -> (StatusCode, Value) {
    let session_id = envelope["session_id"].as_str().unwrap();
    session
        .call_with(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/messages"),
            Some(envelope.clone()),
            &[(HEADER, token)],
        )
        .await
}

#[tokio::test]
async fn issue_present_consume_once_and_never_as_an_access_token() {
    let broker = TestBroker::start_with(
        Store::Sqlite,
        Options::default().env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
    )
    .await;
    let acme = broker
        .onboard_with_webhook("acme", Some(&pdp("allow").await))
        .await;
    let globex = broker
        .onboard_with_webhook("globex", Some(&pdp("allow").await))
        .await;
    let buyer_id = broker.register_agent(&acme, "buyer", &["order"]).await;
    let seller_id = broker.register_agent(&globex, "seller", &["order"]).await;
    let buyer = buyer_id.login(&broker.base, &broker.http).await.unwrap();
    let seller = seller_id.login(&broker.base, &broker.http).await.unwrap();
    let session_id =
        open_active_session(&buyer, &seller, "globex::seller", "globex", &["order"]).await;
    let seller_key = public_key(&buyer, "globex::seller").await;

    // no credentials.
    let (status, _) = common::json_of(
        broker
            .http
            .post(broker.url("/v1/auth/token/transaction"))
            .json(&json!({"agent_id": "acme::buyer", "txn_type": "CREATE_ORDER", "payload_hash": "ab"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // for someone else.
    let (status, body) = request_token(
        &buyer,
        json!({"agent_id": "globex::seller", "txn_type": "CREATE_ORDER", "payload_hash": "ab"}),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("Can only request transaction tokens for yourself")
        )
    );
    // ttl out of 10..300, and over-long fields.
    for (body, loc) in [
        (json!({"ttl_seconds": 9}), "ttl_seconds"),
        (json!({"ttl_seconds": 301}), "ttl_seconds"),
        (json!({"txn_type": "T".repeat(65)}), "txn_type"),
        (json!({"payload_hash": "a".repeat(65)}), "payload_hash"),
    ] {
        let mut request =
            json!({"agent_id": "acme::buyer", "txn_type": "CREATE_ORDER", "payload_hash": "ab"});
        for (k, v) in body.as_object().unwrap() {
            request[k] = v.clone();
        }
        let (status, answer) = request_token(&buyer, request).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["detail"][0]["loc"], json!(["body", loc]), "{answer}");
    }

    // Issue for the exact envelope payload the buyer is about to send (SDK's extra
    // `session_id` is ignored).
    let envelope = seal(
        &buyer_id,
        &seller_key,
        &session_id,
        &json!({"order": "A-1"}),
        1,
    );
    let hash = payload_hash(&envelope["payload"]);
    let (status, issued) = request_token(
        &buyer,
        json!({"agent_id": "acme::buyer", "txn_type": "CREATE_ORDER", "payload_hash": hash,
               "target_agent_id": "globex::seller", "ttl_seconds": 120, "session_id": session_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["expires_in"], 120);
    assert_eq!(issued["txn_type"], "CREATE_ORDER");
    let token = issued["transaction_token"].as_str().unwrap().to_owned();
    let claims = cullis_shared::jose::jws::CompactJws::parse(&token)
        .unwrap()
        .claims_unverified()
        .unwrap();
    assert_eq!(claims["token_type"], "transaction");
    assert_eq!(claims["act"], json!({"sub": "acme::buyer"}));
    assert_eq!(claims["cnf"], json!({}));
    assert_eq!(claims["jti"], issued["jti"]);
    assert_eq!(claims["parent_jti"].as_str().map(str::len), Some(36));

    // Never an access token: with a valid DPoP proof over it, still refused.
    let url = broker.url("/v1/registry/agents/acme::buyer");
    let proof = buyer.dpop.proof(
        "GET",
        &url,
        Some(&token),
        buyer.nonce().as_deref(),
        common::unix_now(),
    );
    let (status, body) = common::json_of(
        broker
            .http
            .get(&url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Token invalid or expired"))
    );
    // …and an access token is not a transaction token.
    let other = seal(
        &buyer_id,
        &seller_key,
        &session_id,
        &json!({"order": "B"}),
        2,
    );
    let (status, body) = send_with(&buyer, &other, &buyer.token.clone()).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("Transaction token invalid: Not a transaction token")
        )
    );

    // a payload other than the approved one; the token survives the refusal.
    let (status, body) = send_with(&buyer, &other, &token).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::FORBIDDEN, Some("Transaction token invalid: Payload hash mismatch — message does not match approved payload"))
    );
    // The approved payload goes through, once.
    let (status, body) = send_with(&buyer, &envelope, &token).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let again = seal(
        &buyer_id,
        &seller_key,
        &session_id,
        &json!({"order": "A-1"}),
        3,
    );
    // (A consumed token is refused before its hash is looked at.)
    let (status, body) = send_with(&buyer, &again, &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["detail"],
        "Transaction token invalid: Transaction token already consumed"
    );
    // Only the approved message was stored; the refusals and the use are audited.
    let (status, inbox) = seller
        .call(
            Method::GET,
            &format!("/v1/broker/sessions/{session_id}/messages?after=-1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
    assert_eq!(
        broker
            .audit_events("broker.transaction_executed")
            .await
            .len(),
        1
    );
    assert_eq!(
        broker
            .audit_events("broker.transaction_rejected")
            .await
            .len(),
        3
    );
    assert_eq!(
        broker
            .audit_events("auth.transaction_token_issued")
            .await
            .len(),
        1
    );
    // A garbled header is a wrong token, not an error.
    let (status, body) = post_envelope_with_raw_header(&broker, &buyer, &again).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

/// Posts `envelope` with an `X-Transaction-Token` holding bytes outside ASCII.
async fn post_envelope_with_raw_header(
    broker: &TestBroker,
    session: &AgentSession,
    envelope: &Value,
) -> (StatusCode, Value) {
    let session_id = envelope["session_id"].as_str().unwrap();
    let url = broker.url(&format!("/v1/broker/sessions/{session_id}/messages"));
    let proof = session.dpop.proof(
        "POST",
        &url,
        Some(&session.token),
        session.nonce().as_deref(),
        common::unix_now(),
    );
    let garbled = reqwest::header::HeaderValue::from_bytes(b"\xff\xfe-not-a-token").unwrap();
    common::json_of(
        broker
            .http
            .post(&url)
            .header("Authorization", format!("DPoP {}", session.token))
            .header("DPoP", proof)
            .header(HEADER, garbled)
            .json(envelope)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn rfq_quote_approval_issues_a_token_and_pushes_the_frame() {
    let broker = TestBroker::start_with(
        Store::Sqlite,
        Options::default().env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
    )
    .await;
    let acme = broker
        .onboard_with_webhook("acme", Some(&pdp("allow").await))
        .await;
    let globex = broker
        .onboard_with_webhook("globex", Some(&pdp("allow").await))
        .await;
    let buyer_id = broker.register_agent(&acme, "buyer", &["quote"]).await;
    let seller_id = broker.register_agent(&globex, "seller", &["quote"]).await;
    let buyer = Arc::new(buyer_id.login(&broker.base, &broker.http).await.unwrap());
    let seller = seller_id.login(&broker.base, &broker.http).await.unwrap();
    let mut socket = cullis_e2e::ws::authed(&buyer, &broker.base).await;

    let post = {
        let buyer = buyer.clone();
        tokio::spawn(async move {
            buyer
                .call(
                    Method::POST,
                    "/v1/broker/rfq",
                    Some(json!({"capability_filter": ["quote"], "payload": {"sku": "A-1"}, "timeout_seconds": 10})),
                )
                .await
        })
    };
    // The seller answers when the request reaches it.
    let rfq_id = loop {
        let (status, inbox) = seller
            .call(Method::GET, "/v1/broker/notifications", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        if let Some(item) = inbox
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "rfq_request")
        {
            break item["reference_id"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let (status, body) = seller
        .call(
            Method::POST,
            &format!("/v1/broker/rfq/{rfq_id}/respond"),
            Some(json!({"payload": {"price": 9}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, closed) = post.await.unwrap();
    assert_eq!(
        (status, closed["status"].as_str()),
        (StatusCode::CREATED, Some("closed")),
        "{closed}"
    );

    let approve = |org: &common::TestOrg, body: Value| {
        let (broker, org_id, secret) = (&broker, org.org_id.clone(), org.secret.clone());
        let rfq_id = rfq_id.clone();
        async move {
            common::json_of(
                broker
                    .http
                    .post(broker.url(&format!("/v1/broker/rfq/{rfq_id}/approve")))
                    .header("x-org-id", org_id)
                    .header("x-org-secret", secret)
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let body = json!({"responder_agent_id": "globex::seller", "payload_hash": "ab12", "approved_by": "alice@acme"});
    // Only the requester's org; only a quote that exists.
    let (status, answer) = approve(&globex, body.clone()).await;
    assert_eq!(
        (status, answer["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some("RFQ not found"))
    );
    let (status, _) = approve(
        &acme,
        json!({"responder_agent_id": "globex::nobody", "payload_hash": "ab12"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, issued) = approve(&acme, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["txn_type"], "CREATE_ORDER");
    let (status, answer) = approve(&acme, body).await;
    assert_eq!(
        (status, answer["detail"].as_str()),
        (StatusCode::CONFLICT, Some("RFQ already approved"))
    );

    let frame = loop {
        let frame = cullis_e2e::ws::next(&mut socket).await.expect("a frame");
        if frame["type"] == "transaction_token" {
            break frame;
        }
    };
    assert_eq!(frame["token_id"], issued["transaction_token"]);
    assert_eq!(frame["rfq_id"], rfq_id.as_str());
    assert_eq!(frame["target_agent_id"], "globex::seller");
    assert_eq!(frame["payload_hash"], "ab12");
    let claims =
        cullis_shared::jose::jws::CompactJws::parse(issued["transaction_token"].as_str().unwrap())
            .unwrap()
            .claims_unverified()
            .unwrap();
    assert_eq!(claims["agent_id"], "acme::buyer");
    assert_eq!(claims["act"], json!({"sub": "alice@acme"}));
    let (status, rfq) = buyer
        .call(Method::GET, &format!("/v1/broker/rfq/{rfq_id}"), None)
        .await;
    assert_eq!(
        (status, rfq["status"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
}

#[tokio::test]
async fn transaction_tokens_are_rate_limited_per_agent() {
    let broker = TestBroker::start_with(
        Store::Sqlite,
        Options::default().env("RATE_LIMIT_AUTH_TRANSACTION_TOKEN", "2/60s"),
    )
    .await;
    let acme = broker.onboard("acme").await;
    let buyer = broker.register_agent(&acme, "buyer", &["order"]).await;
    let other = broker.register_agent(&acme, "other", &["order"]).await;
    let buyer = buyer.login(&broker.base, &broker.http).await.unwrap();
    let other = other.login(&broker.base, &broker.http).await.unwrap();
    let ask =
        |agent: &str| json!({"agent_id": agent, "txn_type": "CREATE_ORDER", "payload_hash": "ab"});
    for _ in 0..2 {
        let (status, body) = request_token(&buyer, ask("acme::buyer")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = request_token(&buyer, ask("acme::buyer")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body["detail"].is_string(), "{body}");
    // The budget is the agent's own: another agent of the same org still gets tokens.
    let (status, body) = request_token(&other, ask("acme::other")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
