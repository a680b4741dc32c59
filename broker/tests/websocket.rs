//! `GET /v1/broker/ws`: first-frame DPoP auth (W-03…W-08), ping/pong, pushes of
//! `session_pending` / `session_rejected` / `new_message`, revoke-agent closing the socket, and
//! cross-replica delivery through Redis (two broker processes on one PostgreSQL database).

mod common;

use axum::{routing::post, Json, Router};
use common::{Options, Store, TestBroker};
use cullis_e2e::client::{AgentIdentity, AgentSession};
use cullis_shared::envelope;
use cullis_shared::keys::PublicKey;
use cullis_shared::signature::SignedFields;
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn pdp() -> String {
    let app = Router::new().route(
        "/pdp/policy",
        post(|Json(_request): Json<Value>| async move {
            Json(json!({"decision": "allow", "reason": "ok"}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/pdp/policy")
}

struct World {
    broker: TestBroker,
    acme: cullis_e2e::setup::OrgIdentity,
    globex: cullis_e2e::setup::OrgIdentity,
    buyer: AgentIdentity,
    buyer_session: AgentSession,
    seller_session: AgentSession,
}

async fn setup(store: Store) -> World {
    let broker = TestBroker::start_with(
        store,
        Options::default().env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
    )
    .await;
    let acme = broker
        .onboard_with_webhook("acme", Some(&pdp().await))
        .await;
    let globex = broker
        .onboard_with_webhook("globex", Some(&pdp().await))
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

/// Opens a socket on `base` (an http URL) without authenticating.
async fn connect(base: &str) -> Socket {
    let url = format!("{}/v1/broker/ws", base.replacen("http", "ws", 1));
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
}

fn auth_frame(session: &AgentSession, base: &str) -> Value {
    let proof = session.dpop.proof(
        "GET",
        &format!("{base}/v1/broker/ws"),
        Some(&session.token),
        session.nonce().as_deref(),
        common::unix_now(),
    );
    json!({"type": "auth", "token": session.token, "dpop_proof": proof})
}

async fn send_json(socket: &mut Socket, value: &Value) {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

/// The next message: `Ok(json)` for a text frame, `Err((code, reason))` for a close.
async fn next(socket: &mut Socket) -> Result<Value, (u16, String)> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s");
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new())))
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Err((1006, String::new())),
        }
    }
}

async fn authed(session: &AgentSession, base: &str) -> Socket {
    let mut socket = connect(base).await;
    send_json(&mut socket, &auth_frame(session, base)).await;
    let ok = next(&mut socket).await.unwrap();
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    socket
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
    let (status, body) = world
        .buyer_session
        .call(
            Method::GET,
            "/v1/registry/agents/globex::seller/public-key",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seller_key = PublicKey::from_spki_pem(body["public_key_pem"].as_str().unwrap()).unwrap();
    let nonce = uuid::Uuid::new_v4().to_string();
    let fields = SignedFields {
        session_id,
        sender_agent_id: &world.buyer.agent_id,
        nonce: &nonce,
        timestamp: common::unix_now(),
        client_seq: Some(client_seq),
    };
    let sealed = envelope::seal(
        &world.buyer.key,
        &seller_key,
        &fields,
        &json!({"po": "PO-1"}),
    )
    .unwrap();
    let body = json!({
        "session_id": session_id, "sender_agent_id": world.buyer.agent_id, "payload": sealed.blob,
        "nonce": nonce, "timestamp": fields.timestamp, "signature": sealed.signature, "client_seq": client_seq,
    });
    let (status, answer) = world
        .buyer_session
        .call(
            Method::POST,
            &format!("/v1/broker/sessions/{session_id}/messages"),
            Some(body.clone()),
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

/// A second broker process on the same database, Redis, and broker key.
fn start_replica(primary: &TestBroker) -> (Child, String) {
    let dir = &primary.dir;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cullis-broker"))
        .args(["serve", "--port", "0"])
        .current_dir(dir)
        .env_clear()
        .envs([
            ("ADMIN_SECRET", common::ADMIN_SECRET.to_owned()),
            ("DATABASE_URL", primary.database_url.clone()),
            (
                "BROKER_CA_KEY_PATH",
                dir.join("certs/broker-ca-key.pem").display().to_string(),
            ),
            (
                "BROKER_CA_CERT_PATH",
                dir.join("certs/broker-ca.pem").display().to_string(),
            ),
            ("BCRYPT_COST", "4".to_owned()),
            ("REDIS_URL", common::REDIS_URL.to_owned()),
            ("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("replica.stderr")).unwrap())
        .spawn()
        .expect("the replica starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains("listening on "),
        "replica did not start: {}",
        std::fs::read_to_string(dir.join("replica.stderr")).unwrap_or_default()
    );
    let base = line.trim().rsplit(' ').next().unwrap().to_owned();
    (child, base)
}

#[tokio::test]
async fn push_crosses_replicas_through_redis() {
    let world = setup(Store::PostgresRedis).await;
    let (mut replica, replica_base) = start_replica(&world.broker);
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

    let _ = replica.kill();
    let _ = replica.wait();
}
