//! `GET /v1/broker/ws`: first-frame DPoP auth (W-03…W-08), ping/pong, pushes of
//! `session_pending` / `session_rejected` / `new_message`, revoke-agent closing the socket, and
//! cross-replica delivery through Redis (two broker processes on one PostgreSQL database).

mod common;

use common::{messaging, Options, Store, TestBroker};
use cullis_e2e::client::{AgentIdentity, AgentSession};
use cullis_e2e::ws::{auth_frame, authed, connect, next, send_json};
use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

struct World {
    broker: TestBroker,
    acme: cullis_e2e::setup::OrgIdentity,
    globex: cullis_e2e::setup::OrgIdentity,
    buyer: AgentIdentity,
    buyer_session: AgentSession,
    seller_session: AgentSession,
}

async fn setup(store: Store) -> World {
    setup_with(store, &[]).await
}

async fn setup_with(store: Store, env: &[(&str, &str)]) -> World {
    let options = env.iter().fold(
        Options::default().env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
        |options, (name, value)| options.env(name, value),
    );
    let broker = TestBroker::start_with(store, options).await;
    let acme = broker
        .onboard_with_webhook("acme", Some(&messaging::pdp("allow").await))
        .await;
    let globex = broker
        .onboard_with_webhook("globex", Some(&messaging::pdp("allow").await))
        .await;
    let buyer = broker
        .register_agent(&acme, "buyer", &["order.place"])
        .await;
    let seller = broker
        .register_agent(&globex, "seller", &["order.place"])
        .await;
    let buyer_session = buyer.login(&broker.base, &broker.http).await.unwrap();
    let seller_session = seller.login(&broker.base, &broker.http).await.unwrap();
    World {
        broker,
        acme,
        globex,
        buyer,
        buyer_session,
        seller_session,
    }
}

async fn open_session(world: &World) -> String {
    let open = json!({"target_agent_id": "globex::seller", "target_org_id": "globex", "requested_capabilities": ["order.place"]});
    let (status, created) = world
        .buyer_session
        .call(Method::POST, "/v1/broker/sessions", Some(open))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["session_id"].as_str().unwrap().to_owned()
}

async fn send_message(world: &World, session_id: &str, client_seq: u64) -> Value {
    let seller_key = messaging::public_key(&world.buyer_session, "globex::seller").await;
    let (status, answer, body) = messaging::send(
        &world.buyer_session,
        &world.buyer,
        &seller_key,
        session_id,
        &json!({"po": "PO-1"}),
        client_seq,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    body
}

async fn accept(world: &World, session_id: &str) {
    let (status, body) = world
        .seller_session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/accept"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn auth_pushes_ping_and_revocation() {
    let world = setup(Store::Sqlite).await;
    let base = world.broker.base.clone();
    let mut seller_ws = authed(&world.seller_session, &base).await;
    let mut buyer_ws = authed(&world.buyer_session, &base).await;

    // session_pending to the target.
    let session_id = open_session(&world).await;
    let pending = next(&mut seller_ws).await.unwrap();
    assert_eq!(pending["type"], "session_pending", "{pending}");
    assert_eq!(pending["session_id"], session_id.as_str());
    assert_eq!(pending["initiator_agent_id"], "acme::buyer");
    assert_eq!(pending["initiator_org_id"], "acme");
    assert_eq!(pending["capabilities"], json!(["order.place"]));

    // new_message to the recipient, with the stored ciphertext and seq.
    accept(&world, &session_id).await;
    let sent = send_message(&world, &session_id, 7).await;
    let pushed = next(&mut seller_ws).await.unwrap();
    assert_eq!(pushed["type"], "new_message", "{pushed}");
    assert_eq!(pushed["session_id"], session_id.as_str());
    assert_eq!(pushed["message"]["seq"], 0);
    assert_eq!(pushed["message"]["sender_agent_id"], "acme::buyer");
    assert_eq!(pushed["message"]["client_seq"], 7);
    assert_eq!(pushed["message"]["payload"], sent["payload"]);
    assert!(pushed["message"]["payload"].get("ciphertext").is_some());
    assert!(pushed["message"]["timestamp"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));
    let second = send_message(&world, &session_id, 8).await;
    let pushed = next(&mut seller_ws).await.unwrap();
    assert_eq!(pushed["message"]["seq"], 1);
    assert_eq!(pushed["message"]["payload"], second["payload"]);

    // ping → pong; unknown frames are ignored.
    send_json(&mut seller_ws, &json!({"type": "subscribe"})).await;
    send_json(&mut seller_ws, &json!({"type": "ping"})).await;
    assert_eq!(next(&mut seller_ws).await.unwrap(), json!({"type": "pong"}));

    // session_rejected to the initiator.
    let rejected_id = open_session(&world).await;
    assert_eq!(
        next(&mut seller_ws).await.unwrap()["type"],
        "session_pending"
    );
    let (status, _) = world
        .seller_session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{rejected_id}/reject"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let rejected = next(&mut buyer_ws).await.unwrap();
    assert_eq!(
        rejected,
        json!({"type": "session_rejected", "session_id": rejected_id, "rejected_by": "globex::seller"})
    );

    // A second socket for the same agent replaces the first.
    let mut replacement = authed(&world.buyer_session, &base).await;
    assert_eq!(next(&mut buyer_ws).await.unwrap_err().0, 1000);
    send_json(&mut replacement, &json!({"type": "ping"})).await;
    assert_eq!(next(&mut replacement).await.unwrap()["type"], "pong");

    // The org revokes the seller's tokens: its socket closes with 1000.
    let (status, _) = world
        .broker
        .org(
            &world.globex,
            Method::POST,
            "/v1/auth/revoke-agent/globex::seller",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(next(&mut seller_ws).await.unwrap_err().0, 1000);
    // And the revoked token cannot reconnect.
    let mut again = connect(&base).await;
    send_json(&mut again, &auth_frame(&world.seller_session, &base)).await;
    let error = next(&mut again).await.unwrap();
    assert_eq!(
        error,
        json!({"type": "auth_error", "detail": "Token has been revoked"})
    );
    let _ = &world.acme;
}

async fn expect_auth_error(base: &str, frame: Value, detail: Option<&str>) {
    let mut socket = connect(base).await;
    send_json(&mut socket, &frame).await;
    let error = next(&mut socket).await.unwrap();
    assert_eq!(error["type"], "auth_error", "{error}");
    let text = error["detail"].as_str().unwrap();
    match detail {
        Some(expected) => assert_eq!(text, expected),
        None => assert!(!text.is_empty()),
    }
    assert_eq!(next(&mut socket).await.unwrap_err().0, 1000);
}

#[tokio::test]
async fn handshake_failures() {
    let world = setup(Store::Sqlite).await;
    let base = world.broker.base.clone();
    let session = &world.seller_session;

    // W-03: non-JSON first frame → close 1003.
    let mut socket = connect(&base).await;
    socket.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next(&mut socket).await.unwrap_err().0, 1003);

    // W-04: wrong type, missing or empty token.
    let malformed = Some("Missing or malformed auth message");
    expect_auth_error(&base, json!({"type": "ping"}), malformed).await;
    expect_auth_error(&base, json!({"type": "auth"}), malformed).await;
    expect_auth_error(&base, json!({"type": "auth", "token": ""}), malformed).await;
    // W-05: a token that does not verify.
    expect_auth_error(
        &base,
        json!({"type": "auth", "token": "a.b.c", "dpop_proof": "x"}),
        Some("Token invalid or expired"),
    )
    .await;
    // W-06: no proof.
    expect_auth_error(
        &base,
        json!({"type": "auth", "token": session.token}),
        Some("DPoP proof required"),
    )
    .await;
    // W-08: a proof for another URL, and a replayed proof.
    let mut wrong_htu = auth_frame(session, &base);
    wrong_htu["dpop_proof"] = json!(session.dpop.proof(
        "GET",
        &format!("{base}/v1/broker/other"),
        Some(&session.token),
        session.nonce().as_deref(),
        common::unix_now(),
    ));
    expect_auth_error(&base, wrong_htu, None).await;
    let replayed = auth_frame(session, &base);
    let mut first = connect(&base).await;
    send_json(&mut first, &replayed).await;
    assert_eq!(next(&mut first).await.unwrap()["type"], "auth_ok");
    expect_auth_error(&base, replayed, None).await;
    // A socket still works after all that.
    send_json(&mut first, &json!({"type": "ping"})).await;
    assert_eq!(next(&mut first).await.unwrap()["type"], "pong");
}

#[tokio::test]
async fn push_crosses_replicas_through_redis() {
    let world = setup(Store::PostgresRedis).await;
    let replica = world.broker.replica().await;
    let replica_base = replica.base.clone();
    let mut seller_ws = authed(&world.seller_session, &replica_base).await;

    // Raised on the primary, delivered by the replica — once.
    let session_id = open_session(&world).await;
    let pending = next(&mut seller_ws).await.unwrap();
    assert_eq!(pending["type"], "session_pending", "{pending}");
    accept(&world, &session_id).await;
    let sent = send_message(&world, &session_id, 0).await;
    let pushed = next(&mut seller_ws).await.unwrap();
    assert_eq!(pushed["type"], "new_message", "{pushed}");
    assert_eq!(pushed["message"]["seq"], 0);
    assert_eq!(pushed["message"]["payload"], sent["payload"]);
    send_json(&mut seller_ws, &json!({"type": "ping"})).await;
    assert_eq!(
        next(&mut seller_ws).await.unwrap(),
        json!({"type": "pong"}),
        "no duplicate push"
    );

    // Revocation through the primary closes the socket on the replica.
    let (status, _) = world
        .broker
        .org(
            &world.globex,
            Method::POST,
            "/v1/auth/revoke-agent/globex::seller",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(next(&mut seller_ws).await.unwrap_err().0, 1000);
}

/// An access token for `session`'s agent minted with the broker's own key (the test holds the
/// key file), with `edit` applied to the real token's claims: how tests reach token states a
/// login never issues (no `cnf`, expiring in seconds, issued after a revocation).
fn minted_token(
    broker: &TestBroker,
    session: &AgentSession,
    edit: impl FnOnce(&mut Value),
) -> String {
    use cullis_shared::encoding::b64;
    use cullis_shared::jose::access_token::TokenSigner;
    use cullis_shared::keys::PrivateKey;
    let payload = session.token.split('.').nth(1).unwrap();
    let mut claims: Value = serde_json::from_slice(&b64::decode_url(payload).unwrap()).unwrap();
    claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
    edit(&mut claims);
    let pem = std::fs::read_to_string(broker.dir.join("certs/broker-ca-key.pem")).unwrap();
    let signer = TokenSigner::new(PrivateKey::from_pem(&pem).unwrap()).unwrap();
    signer.sign(&claims).unwrap()
}

/// The auth frame for `session` presenting `token` instead of its own.
fn frame_with_token(session: &AgentSession, base: &str, token: &str) -> Value {
    let proof = session.dpop.proof(
        "GET",
        &format!("{base}/v1/broker/ws"),
        Some(token),
        session.nonce().as_deref(),
        common::unix_now(),
    );
    json!({"type": "auth", "token": token, "dpop_proof": proof})
}

/// W-07, W-09, W-11, W-13: token and binding states checked at the handshake and after it.
#[tokio::test]
async fn token_binding_and_expiry_rules() {
    let world = setup(Store::Sqlite).await;
    let base = world.broker.base.clone();
    let session = &world.seller_session;

    // W-07: a token without cnf.jkt.
    let unbound = minted_token(&world.broker, session, |claims| {
        claims.as_object_mut().unwrap().remove("cnf");
    });
    expect_auth_error(
        &base,
        frame_with_token(session, &base, &unbound),
        Some("Token is not DPoP-bound"),
    )
    .await;
    // W-09: a valid proof, but by another key than the token's.
    let thief = cullis_shared::jose::dpop::DpopKey::generate().unwrap();
    let mut stolen = auth_frame(session, &base);
    stolen["dpop_proof"] = json!(thief.proof(
        "GET",
        &format!("{base}/v1/broker/ws"),
        Some(&session.token),
        session.nonce().as_deref(),
        common::unix_now(),
    ));
    expect_auth_error(&base, stolen, Some("DPoP proof key mismatch")).await;

    // W-13: a token expiring in 2 s closes an idle socket with `Token expired`.
    let short = minted_token(&world.broker, session, |claims| {
        claims["exp"] = json!(common::unix_now() + 2);
    });
    let mut socket = connect(&base).await;
    send_json(&mut socket, &frame_with_token(session, &base, &short)).await;
    assert_eq!(next(&mut socket).await.unwrap()["type"], "auth_ok");
    let expired = next(&mut socket).await.unwrap();
    assert_eq!(
        expired,
        json!({"type": "auth_error", "detail": "Token expired"})
    );
    assert_eq!(next(&mut socket).await.unwrap_err().0, 1000);

    // W-11: the binding is revoked; a token issued after the revocation still cannot connect.
    let (status, bindings) = world
        .broker
        .org(
            &world.globex,
            Method::GET,
            "/v1/registry/bindings?org_id=globex",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{bindings}");
    let id = bindings[0]["id"].as_i64().unwrap();
    let (status, body) = world
        .broker
        .org(
            &world.globex,
            Method::POST,
            &format!("/v1/registry/bindings/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let later = minted_token(&world.broker, session, |claims| {
        claims["iat"] = json!(common::unix_now());
    });
    expect_auth_error(
        &base,
        frame_with_token(session, &base, &later),
        Some("Agent binding not approved or revoked"),
    )
    .await;
}

/// W-01 (Origin allow-list), W-02 (auth timeout), W-12 (per-org cap), W-14 (frame rate).
#[tokio::test]
async fn origin_timeout_cap_and_rate_limits() {
    let broker = TestBroker::start_with(
        Store::Sqlite,
        Options::default()
            .env("ALLOWED_ORIGINS", "https://console.example")
            .env("WS_MAX_CONNECTIONS_PER_ORG", "1"),
    )
    .await;
    let org = broker.onboard("acme").await;
    let first = broker.register_agent(&org, "first", &["x"]).await;
    let second = broker.register_agent(&org, "second", &["x"]).await;
    let first = first.login(&broker.base, &broker.http).await.unwrap();
    let second = second.login(&broker.base, &broker.http).await.unwrap();
    let base = broker.base.clone();
    let url = format!("{}/v1/broker/ws", base.replacen("http", "ws", 1));

    // W-01: a browser Origin not on the list is refused before the upgrade.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
    // A listed Origin, and no Origin at all (non-browser agents), are accepted.
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://console.example".parse().unwrap());
    let (mut listed, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    send_json(&mut listed, &auth_frame(&first, &base)).await;
    assert_eq!(next(&mut listed).await.unwrap()["type"], "auth_ok");

    // W-12: the org's cap (1 here) refuses a second agent's socket.
    let mut capped = connect(&base).await;
    send_json(&mut capped, &auth_frame(&second, &base)).await;
    assert_eq!(
        next(&mut capped).await.unwrap(),
        json!({"type": "auth_error", "detail": "Too many connections for this organization"})
    );

    // W-14: more than 30 frames in 60 s closes the socket with 1008.
    let mut closed = None;
    for _ in 0..40 {
        send_json(&mut listed, &json!({"type": "ping"})).await;
        match next(&mut listed).await {
            Ok(_) => continue,
            Err((code, _)) => {
                closed = Some(code);
                break;
            }
        }
    }
    assert_eq!(closed, Some(1008));

    // W-02: no first frame within 10 s closes with 1008 `Auth timeout`.
    let mut silent = connect(&base).await;
    let started = std::time::Instant::now();
    let answer = loop {
        match tokio::time::timeout(
            std::time::Duration::from_secs(15),
            futures_util::StreamExt::next(&mut silent),
        )
        .await
        {
            Ok(Some(Ok(Message::Close(frame)))) => {
                break frame.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(answer, Some((1008, "Auth timeout".to_owned())));
    assert!(started.elapsed() >= std::time::Duration::from_secs(9));
}

/// `WS_MAX_CONNECTIONS` counts every socket of the replica (authenticated or not): past it the
/// upgrade gets 503 with a `detail` naming the setting and `Retry-After`; a closed socket frees
/// its place. A client frame past the 64 KiB the protocol needs closes the socket (1009), it is
/// not buffered.
#[tokio::test]
async fn the_replica_cap_refuses_upgrades_cleanly_and_frees_places() {
    let world = setup_with(
        Store::Sqlite,
        &[("WS_MAX_CONNECTIONS", "2"), ("PROMETHEUS_ENABLED", "true")],
    )
    .await;
    let base = world.broker.base.clone();
    let url = format!("{}/v1/broker/ws", base.replacen("http", "ws", 1));
    let mut first = authed(&world.seller_session, &base).await;
    let unauthenticated = connect(&base).await;
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()["retry-after"], "5");
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            let detail = body["detail"].as_str().unwrap();
            assert!(
                detail.contains("maximum of 2 WebSockets (WS_MAX_CONNECTIONS)"),
                "{detail}"
            );
        }
        other => panic!("expected 503 at the cap, got {other:?}"),
    }
    // The metric says so.
    let metrics = world
        .broker
        .http
        .get(world.broker.url("/metrics"))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("cullis_websocket_refused_total 1"), "{text}");

    // A socket that goes away gives its place back.
    drop(unauthenticated);
    let mut again = None;
    for _ in 0..50 {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((socket, _)) => {
                again = Some(socket);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let mut again = again.expect("the closed socket's place is free again");
    send_json(&mut again, &auth_frame(&world.buyer_session, &base)).await;
    assert_eq!(next(&mut again).await.unwrap()["type"], "auth_ok");

    // Oversized client frames are refused by size, not read into memory.
    let huge = "x".repeat(70 * 1024);
    first
        .send(Message::Text(
            format!("{{\"type\":\"ping\",\"pad\":\"{huge}\"}}").into(),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut first).await.map_err(|(code, _)| code), Err(1009));
}

/// On SIGTERM the broker tells connected agents to reconnect elsewhere (1012).
/// A client that closes gets the Close handshake answered (RFC 6455 §5.5.1), before and after
/// authenticating, instead of a dropped connection (1006).
#[tokio::test]
async fn a_client_close_is_answered_with_a_close() {
    let world = setup(Store::Sqlite).await;
    let base = world.broker.base.clone();
    let bye = || {
        Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "bye".into(),
        }))
    };
    let mut authenticated = authed(&world.seller_session, &base).await;
    authenticated.send(bye()).await.unwrap();
    assert_eq!(next(&mut authenticated).await, Err((1000, "bye".into())));
    let mut fresh = connect(&base).await;
    fresh.send(bye()).await.unwrap();
    assert_eq!(next(&mut fresh).await, Err((1000, "bye".into())));
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1012() {
    let mut world = setup(Store::Sqlite).await;
    let base = world.broker.base.clone();
    let mut socket = authed(&world.seller_session, &base).await;
    world.broker.stop();
    assert_eq!(next(&mut socket).await.unwrap_err().0, 1012);
}
