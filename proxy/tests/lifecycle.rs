//! Negative and lifecycle paths against a real broker: 503 before join, a refused join leaves
//! the stored org config unchanged, auth negatives incl. a disabled agent, the rate limit,
//! broker down (502 with detail) and recovery on the same port, a proxy restart mid-session
//! (client_seq continues), SSE push of a decrypted message, and start-up refusals.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn before_join_503_and_failed_join_changes_nothing() {
    let broker = broker(Store::Sqlite).await;
    let proxy = TestProxy::start(&[]).await;
    // Health and readiness work before any setup.
    let (status, health) = call(proxy.http.get(proxy.url("/health"))).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, ready) = call(proxy.http.get(proxy.url("/readyz"))).await;
    assert_eq!(
        (status, ready["checks"]["database"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{ready}"
    );
    let (status, pdp) = call(proxy.http.get(proxy.url("/pdp/health"))).await;
    assert_eq!(
        (status, pdp),
        (StatusCode::OK, json!({"status": "ok", "mode": "built-in"}))
    );

    // A refused join (bad invite) surfaces the broker's 403 and stores nothing.
    proxy.cli_ok(&["org", "init", "--org-id", "alpha"]).await;
    let before = proxy.cli_ok(&["agent", "list"]).await;
    let (_, config_before) = call(proxy.admin(Method::GET, "/v1/admin/org")).await;
    let out = proxy
        .join(&broker.base, "not-a-real-token-xxxxxxxxxxxxxxxx", "alpha")
        .await;
    assert!(!out.success, "{}", out.stdout);
    assert!(
        out.stderr.contains("403") || out.stderr.to_lowercase().contains("invite"),
        "{}",
        out.stderr
    );
    let (_, config_after) = call(proxy.admin(Method::GET, "/v1/admin/org")).await;
    assert_eq!(config_before, config_after);
    assert_eq!(config_after["broker_url"], serde_json::Value::Null);
    assert_eq!(before, proxy.cli_ok(&["agent", "list"]).await);
    // Over the admin API the broker's status comes back as is.
    let (status, body) = call(
        proxy
            .admin(Method::POST, "/v1/admin/org/join")
            .json(&json!({
                "broker_url": broker.base, "invite_token": "nope", "org_id": "alpha",
                "display_name": "Alpha", "contact_email": "ops@alpha.example"
            })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Nothing joined: agents cannot be created and egress answers 503 (no agent yet: 401 first).
    let out = proxy
        .cli(&["agent", "create", "buyer", "--capabilities", "a"])
        .await;
    assert!(
        !out.success && out.stderr.contains("org join"),
        "{}",
        out.stderr
    );

    // Admin API protection.
    let (status, _) = call(proxy.http.get(proxy.url("/v1/admin/org"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        proxy
            .http
            .get(proxy.url("/v1/admin/org"))
            .bearer_auth("wrong-token"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The join then works without a restart and egress goes live.
    let token = invite(&broker, "alpha").await;
    let out = proxy.join(&broker.base, &token, "alpha").await;
    assert!(out.success, "{}", out.stderr);
    broker
        .admin(Method::POST, "/v1/admin/orgs/alpha/approve", None)
        .await;
    let (_, key) = proxy.create_agent("buyer", CAPS).await;
    let (status, body) = call(
        proxy
            .egress(Method::POST, "/v1/egress/discover", &key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn egress_503_without_broker_url_and_http_basics() {
    let broker = broker(Store::Sqlite).await;
    let mut proxy = joined_proxy(&broker, "alpha", &[]).await;
    let (_, key) = proxy.create_agent("buyer", CAPS).await;
    // A store whose broker URL is gone (as before a join): authenticated egress is 503.
    proxy.stop();
    let url = format!("sqlite://{}", proxy.dir.join("data/proxy.db").display());
    let store = cullis_proxy::store::Store::open(&url).await.unwrap();
    store.delete_setting("broker_url").await.unwrap();
    store.close().await;
    proxy.spawn().await;
    let (status, body) = call(
        proxy
            .egress(Method::POST, "/v1/egress/discover", &key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["detail"],
        "Egress bridge not initialized — broker_url may be unconfigured"
    );
    // Auth comes first: no key is 401 even then.
    let (status, body) = call(
        proxy
            .http
            .post(proxy.url("/v1/egress/sessions"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("X-API-Key header required"))
    );
    let (status, _) = call(proxy.http.get(proxy.url("/nope"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(proxy.http.delete(proxy.url("/health"))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let response = proxy.http.get(proxy.url("/health")).send().await.unwrap();
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["cache-control"], "no-store");
    // Bodies over the limit are 413.
    let big = "x".repeat(2 * 1024 * 1024);
    let (status, _) = call(
        proxy
            .egress(Method::POST, "/v1/egress/discover", &key)
            .body(big),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn auth_negatives_rate_limit_and_disabled_agent() {
    let broker = broker(Store::Sqlite).await;
    let orgs = two_orgs(&broker, &[("MCP_PROXY_RATE_LIMIT_PER_MINUTE", "5")]).await;
    let alpha = &orgs.alpha;
    // Malformed body → 422 list.
    let (status, body) = call(
        alpha
            .egress(Method::POST, "/v1/egress/send", &orgs.buyer_key)
            .body("{"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["type"], "json_invalid");
    let (status, body) = call(
        alpha
            .egress(Method::POST, "/v1/egress/send", &orgs.buyer_key)
            .json(&json!({"session_id": "s"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "payload"]));
    // 5 per minute: the next ones are 429 with Retry-After.
    let mut limited = None;
    for _ in 0..6 {
        let response = alpha
            .egress(Method::GET, "/v1/egress/sessions", &orgs.buyer_key)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("rate limit reached");
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(
        limited.json::<serde_json::Value>().await.unwrap()["detail"],
        "Rate limit exceeded"
    );
    // Another agent is not limited by the buyer's use.
    let (status, _) = call(
        orgs.beta
            .egress(Method::GET, "/v1/egress/sessions", &orgs.seller_key),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Disabled agents cannot authenticate, and the broker revoked them too.
    let out = orgs.beta.cli_ok(&["agent", "disable", "seller"]).await;
    assert_eq!(out["status"], "disabled");
    let (status, body) = call(orgs.beta.egress(
        Method::GET,
        "/v1/egress/sessions",
        &orgs.seller_key,
    ))
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Invalid API key"))
    );
    // Rotating the key of an active agent invalidates the old key at once.
    let rotated = orgs.alpha.cli_ok(&["agent", "rotate-key", "buyer"]).await;
    let new_key = rotated["api_key"].as_str().unwrap();
    assert_ne!(new_key, orgs.buyer_key);
    let (status, _) = call(
        orgs.alpha
            .egress(Method::POST, "/v1/egress/discover", &orgs.buyer_key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A broker process on a fixed port over the stopped test broker's database and keys.
fn broker_on_port(broker: &TestBroker, port: u16) -> Child {
    let dir = &broker.dir;
    Command::new(cullis_e2e::stack::binary("cullis-broker"))
        .args(["serve", "--port", &port.to_string()])
        .current_dir(dir)
        .env_clear()
        .env("ADMIN_SECRET", &broker.admin_secret)
        .env("DATABASE_URL", &broker.database_url)
        .env("BROKER_CA_KEY_PATH", dir.join("certs/broker-ca-key.pem"))
        .env("BROKER_CA_CERT_PATH", dir.join("certs/broker-ca.pem"))
        .env("BCRYPT_COST", "4")
        .env("RATE_LIMIT_AUTH_TOKEN", "10000/60s")
        .env("POLICY_BACKEND", "webhook")
        .env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("broker starts")
}

#[tokio::test]
async fn broker_down_502_then_recovery_and_restart_keeps_client_seq() {
    let mut broker = broker(Store::Sqlite).await;
    let mut orgs = two_orgs(&broker, &[]).await;
    let sid = active_session(&orgs).await;
    let send = |proxy: &TestProxy, key: &str, marker: &str| {
        proxy
            .egress(Method::POST, "/v1/egress/send", key)
            .json(&json!({"session_id": sid, "payload": {"marker": marker}, "recipient_agent_id": "beta::seller"}))
    };
    let (status, _) = call(send(&orgs.alpha, &orgs.buyer_key, "one")).await;
    assert_eq!(status, StatusCode::OK);
    let first = wait_message(&orgs.beta, &orgs.seller_key, &sid, -1, |m| {
        m["payload"]["marker"] == "one"
    })
    .await;

    // Restart the proxy mid-session: the next message continues the client_seq.
    orgs.alpha.restart().await;
    let (status, body) = call(send(&orgs.alpha, &orgs.buyer_key, "two")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = wait_message(&orgs.beta, &orgs.seller_key, &sid, -1, |m| {
        m["payload"]["marker"] == "two"
    })
    .await;
    assert!(
        second["client_seq"].as_u64() > first["client_seq"].as_u64(),
        "{first} {second}"
    );

    // Broker down: 502 with a detail naming the problem.
    let port: u16 = broker.base.rsplit(':').next().unwrap().parse().unwrap();
    broker.stop();
    let (status, body) = call(send(&orgs.alpha, &orgs.buyer_key, "three")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Broker unreachable"),
        "{body}"
    );

    // A broker back on the same port: the proxy recovers without a restart.
    let mut revived = broker_on_port(&broker, port);
    let mut recovered = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (status, _) = call(send(&orgs.alpha, &orgs.buyer_key, "four")).await;
        if status == StatusCode::OK {
            recovered = true;
            break;
        }
    }
    let got = if recovered {
        Some(
            wait_message(&orgs.beta, &orgs.seller_key, &sid, -1, |m| {
                m["payload"]["marker"] == "four"
            })
            .await,
        )
    } else {
        None
    };
    let _ = revived.kill();
    let _ = revived.wait();
    let got = got.expect("the proxy recovered after the broker came back");
    assert!(got["client_seq"].as_u64() > second["client_seq"].as_u64());
    orgs.alpha.stop();
}

#[tokio::test]
async fn sse_pushes_a_decrypted_message() {
    let broker = broker(Store::Sqlite).await;
    let orgs = two_orgs(&broker, &[]).await;
    let sid = active_session(&orgs).await;
    let mut events = orgs
        .beta
        .egress(Method::GET, "/v1/egress/events", &orgs.seller_key)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    // Give the uplink's broker WebSocket a moment to authenticate.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = call(orgs.alpha.egress(Method::POST, "/v1/egress/send", &orgs.buyer_key).json(
        &json!({"session_id": sid, "payload": {"marker": "pushed", "text": "Grüße"}, "recipient_agent_id": "beta::seller"}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains("pushed") {
        let chunk = tokio::time::timeout_at(deadline, events.chunk())
            .await
            .expect("an SSE event within 20 s")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let frame = text.split("\n\n").find(|f| f.contains("pushed")).unwrap();
    assert!(frame.contains("event: new_message"), "{frame}");
    let data: serde_json::Value = serde_json::from_str(
        frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["message"]["payload"]["text"], "Grüße", "{data}");
    assert_eq!(data["message"]["verified"], true, "{data}");
}

#[tokio::test]
async fn startup_refusals_name_the_setting() {
    let proxy = TestProxy::prepare(&[("MCP_PROXY_ADMIN_TOKEN", "short")]);
    let out = proxy.cli(&["serve"]).await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("MCP_PROXY_ADMIN_TOKEN"),
        "{}",
        out.stderr
    );
    let proxy = TestProxy::prepare(&[("MCP_PROXY_SECRET_BACKEND", "vault")]);
    let out = proxy.cli(&["serve"]).await;
    assert!(
        !out.success && out.stderr.contains("MCP_PROXY_VAULT_ADDR"),
        "{}",
        out.stderr
    );
    let proxy = TestProxy::prepare(&[("MCP_PROXY_SECRET_KEY", "nothex")]);
    let out = proxy.cli(&["agent", "list"]).await;
    assert!(
        !out.success && out.stderr.contains("MCP_PROXY_SECRET_KEY"),
        "{}",
        out.stderr
    );
}
