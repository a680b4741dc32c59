//! Issue 15's proxy hardening, each case as a black-box client found it: the PDP webhook
//! (bounded, rate-limited, optionally restricted to the broker), no state for sessions the
//! broker never accepted, over-long input refused before any broker call, bounded audit rows,
//! agent create atomic per name and re-creatable after delete, SSE streams and MCP sessions
//! ending with their API key, and the MCP transport rules of 2025-11-25.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

fn pdp_body(initiator: &str) -> Value {
    json!({
        "initiator_agent_id": initiator, "initiator_org_id": "beta",
        "target_agent_id": "alpha::buyer", "target_org_id": "alpha",
        "capabilities": ["procurement.read"], "session_context": "target",
    })
}

/// Audit rows whose text fields exceed `limit` characters.
fn oversized_rows(rows: &[Value], limit: usize) -> usize {
    rows.iter()
        .filter(|r| {
            ["agent_id", "tool_name", "detail", "request_id", "action"]
                .iter()
                .any(|f| r[*f].as_str().is_some_and(|t| t.chars().count() > limit))
        })
        .count()
}

#[tokio::test]
async fn pdp_webhook_validates_ids_bounds_rows_and_rate_limits() {
    let proxy = TestProxy::start(&[("MCP_PROXY_PDP_RATE_LIMIT_PER_MINUTE", "6")]).await;
    let post = |body: Value| proxy.http.post(proxy.url("/pdp/policy")).json(&body);
    let rows_before = audit(&proxy).await.len();

    // A 900 KB id: refused, nothing audited, the answer does not echo it.
    let huge = format!("beta::{}", "x".repeat(900 * 1024));
    let response = post(pdp_body(&huge)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = response.text().await.unwrap();
    assert!(text.len() < 1024, "the id is echoed: {} bytes", text.len());
    assert!(text.contains("at most 256 characters"), "{text}");
    // Not an agent id / not in its org's namespace.
    let (status, body) = call(post(pdp_body("Beta Seller"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "initiator_agent_id"])
    );
    let (status, body) = call(post(pdp_body("gamma::seller"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        audit(&proxy).await.len(),
        rows_before,
        "refused calls audit nothing"
    );

    // A well-formed call is decided and audited.
    let (status, body) = call(post(pdp_body("beta::seller"))).await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (StatusCode::OK, Some("allow"))
    );
    let rows = audit(&proxy).await;
    assert!(has_action(&rows, "alpha::buyer", "pdp.decision", "success"));
    assert_eq!(oversized_rows(&rows, 500), 0);

    // Six per minute in all (four used): then 429 with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post(pdp_body("beta::seller")).send().await.unwrap());
    }
    let last = statuses.pop().unwrap();
    assert_eq!(last.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(last.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn pdp_secret_restricts_the_webhook_to_the_broker() {
    let secret = "pdp-shared-secret-0123456789abcdef-xyz";
    let broker = broker(Store::Sqlite).await;
    let orgs = two_orgs(&broker, &[("MCP_PROXY_PDP_SECRET", secret)]).await;
    // Anyone else: 401, nothing audited.
    let before = audit(&orgs.alpha).await.len();
    let (status, body) = call(
        orgs.alpha
            .http
            .post(orgs.alpha.url("/pdp/policy"))
            .json(&pdp_body("beta::seller")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = call(
        orgs.alpha
            .http
            .post(orgs.alpha.url("/pdp/policy"))
            .basic_auth("cullis", Some("wrong"))
            .json(&pdp_body("beta::seller")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(audit(&orgs.alpha).await.len(), before);
    // The broker: it got the credentials with the webhook URL at join, so sessions open.
    let sid = active_session(&orgs).await;
    assert!(!sid.is_empty());
    let rows = audit(&orgs.alpha).await;
    assert!(has_action(&rows, "alpha::buyer", "pdp.decision", "success"));
    // The stored and shown webhook URL carries no secret.
    let (_, config) = call(orgs.alpha.admin(Method::GET, "/v1/admin/org")).await;
    assert!(!config.to_string().contains(secret), "{config}");
}

#[tokio::test]
async fn unknown_sessions_keep_no_state_and_long_input_is_refused_before_the_broker() {
    let mut broker = broker(Store::Sqlite).await;
    let orgs = two_orgs(&broker, &[]).await;
    let alpha = &orgs.alpha;
    let key = &orgs.buyer_key;
    let send = |sid: &str| {
        alpha.egress(Method::POST, "/v1/egress/send", key).json(
            &json!({"session_id": sid, "payload": {"n": 1}, "recipient_agent_id": "beta::seller"}),
        )
    };
    for i in 0..3 {
        let (status, body) = call(send(&format!("00000000-0000-4000-8000-00000000000{i}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let store_url = format!("sqlite://{}", alpha.dir.join("data/proxy.db").display());
    let store = cullis_proxy::store::Store::open(&store_url).await.unwrap();
    assert_eq!(
        store.client_seq_rows().await.unwrap(),
        0,
        "no client_seq rows"
    );
    // A real session does keep its sequence.
    let sid = active_session(&orgs).await;
    let (status, body) = call(send(&sid)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(store.client_seq_rows().await.unwrap(), 1);
    store.close().await;

    // With the broker gone, over-long input is still a 422 naming the limit (never 502):
    // it was refused before any broker call.
    broker.stop();
    let long_sid = "s".repeat(25_000);
    let cases = [
        call(send(&long_sid)).await,
        call(alpha.egress(Method::POST, "/v1/egress/discover", key).json(&json!({"q": "q".repeat(70_000)}))).await,
        call(alpha.egress(Method::POST, "/v1/egress/tools/invoke", key).json(&json!({"session_id": sid, "tool_name": "t".repeat(300_000)}))).await,
        call(alpha.egress(Method::POST, "/v1/egress/sessions", key).json(&json!({"target_agent_id": "beta::".to_owned() + &"x".repeat(5000), "target_org_id": "beta", "capabilities": []}))).await,
        call(alpha.egress(Method::POST, &format!("/v1/egress/sessions/{long_sid}/accept"), key)).await,
        call(alpha.egress(Method::GET, &format!("/v1/egress/messages/{long_sid}"), key)).await,
    ];
    for (status, body) in cases {
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let text = body.to_string();
        assert!(text.len() < 512, "input echoed: {} bytes", text.len());
        assert!(text.contains("at most"), "{text}");
    }
    // Nothing over the field bound reached the audit log.
    assert_eq!(oversized_rows(&audit(alpha).await, 500), 0);
}

#[tokio::test]
async fn agent_create_is_atomic_per_name_and_works_again_after_delete() {
    let broker = broker(Store::Sqlite).await;
    let alpha = joined_proxy(&broker, "alpha", &[]).await;
    let create = || {
        alpha
            .admin(Method::POST, "/v1/admin/agents")
            .json(&json!({"name": "twin", "capabilities": ["procurement.read"]}))
            .send()
    };
    let (first, second) = tokio::join!(create(), create());
    let mut statuses = vec![first.unwrap().status(), second.unwrap().status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    // The winner works.
    let agents = alpha.cli_ok(&["agent", "list"]).await;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1, "{agents}");

    // Delete, then create the same name again: a working agent with a new key.
    alpha.cli_ok(&["agent", "delete", "twin"]).await;
    let (agent_id, key) = alpha.create_agent("twin", &["procurement.read"]).await;
    assert_eq!(agent_id, "alpha::twin");
    let (status, body) = call(
        alpha
            .egress(Method::POST, "/v1/egress/discover", &key)
            .json(&json!({"capabilities": ["procurement.read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "re-created agent logs in: {body}");
}

/// Reads an SSE response until it ends (Ok(text)) or `wait` passes (Err(text)).
async fn read_until_end(mut events: reqwest::Response, wait: Duration) -> Result<String, String> {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.chunk()).await {
            Err(_) => return Err(text),
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => return Ok(text),
        }
    }
}

#[tokio::test]
async fn sse_streams_end_with_their_api_key() {
    let broker = broker(Store::Sqlite).await;
    let orgs = two_orgs(&broker, &[]).await;
    let sid = active_session(&orgs).await;
    let open = |key: &str| {
        orgs.beta
            .egress(Method::GET, "/v1/egress/events", key)
            .timeout(Duration::from_secs(60))
            .send()
    };
    // Rotated by the CLI (another process): the next event is not delivered, the stream ends.
    let events = open(&orgs.seller_key).await.unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rotated = orgs.beta.cli_ok(&["agent", "rotate-key", "seller"]).await;
    let new_key = rotated["api_key"].as_str().unwrap().to_owned();
    let (status, _) = call(orgs.alpha.egress(Method::POST, "/v1/egress/send", &orgs.buyer_key).json(
        &json!({"session_id": sid, "payload": {"marker": "after-rotation"}, "recipient_agent_id": "beta::seller"}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = read_until_end(events, Duration::from_secs(20))
        .await
        .expect("the stream ends after the key rotation");
    assert!(
        !text.contains("after-rotation"),
        "delivered after rotation: {text}"
    );

    // Rotated through the admin API (this process): the stream ends at once, no event needed.
    let events = open(&new_key).await.unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let (status, _) = call(
        orgs.beta
            .admin(Method::POST, "/v1/admin/agents/seller/rotate-key"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    read_until_end(events, Duration::from_secs(10))
        .await
        .expect("the stream ends when the admin API rotates the key");
}

/// An MCP `initialize` POST; returns the response.
async fn initialize(proxy: &TestProxy, key: &str, body: Value) -> reqwest::Response {
    proxy
        .http
        .post(proxy.url("/mcp"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn init_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
}

async fn session_of(proxy: &TestProxy, key: &str) -> String {
    let response = initialize(proxy, key, init_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn mcp_transport_rules() {
    let broker = broker(Store::Sqlite).await;
    let orgs = two_orgs(&broker, &[("MCP_PROXY_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let alpha = &orgs.alpha;
    let key = &orgs.buyer_key;
    let session = session_of(alpha, key).await;
    let rpc = |body: Value| {
        alpha
            .http
            .post(alpha.url("/mcp"))
            .bearer_auth(key)
            .header("Mcp-Session-Id", &session)
            .json(&body)
    };

    // Origin: a foreign page is 403; loopback and this host are fine.
    let (status, _) = call(
        rpc(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
            .header("Origin", "https://evil.example"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        rpc(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
            .header("Origin", "http://localhost:3000"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let same_host = format!("http://127.0.0.1:{}", alpha.port);
    let (status, _) =
        call(rpc(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"})).header("Origin", same_host))
            .await;
    assert_eq!(status, StatusCode::OK);
    let response = alpha
        .http
        .post(alpha.url("/mcp"))
        .bearer_auth(key)
        .header("Origin", "https://evil.example")
        .json(&init_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Neither request nor response; batches; initialize without id: 400 / -32600.
    for bad in [
        json!({"jsonrpc": "2.0", "id": 13, "method": 5}),
        json!({"jsonrpc": "2.0", "id": 14}),
        json!({"jsonrpc": "2.0", "id": 15, "result": {}, "error": {"code": 1, "message": "x"}}),
        json!([{"jsonrpc": "2.0", "id": 16, "method": "ping"}]),
        json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}),
    ] {
        let (status, body) = call(rpc(bad.clone())).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (StatusCode::BAD_REQUEST, json!(-32600)),
            "{bad}: {body}"
        );
    }
    let response = initialize(alpha, key, json!({"jsonrpc": "2.0", "method": "initialize", "params": {"protocolVersion": "2025-11-25"}})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A response to a server request is still accepted.
    let response = rpc(json!({"jsonrpc": "2.0", "id": 17, "result": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    // Rate limit (3/min): transport chatter does not count, tool calls do.
    for _ in 0..5 {
        let (status, _) = call(rpc(json!({"jsonrpc": "2.0", "id": 20, "method": "ping"}))).await;
        assert_eq!(status, StatusCode::OK);
        let response = rpc(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        session_of(alpha, key).await;
    }
    let list = json!({"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": {"name": "cullis_list_sessions", "arguments": {}}});
    for _ in 0..3 {
        let (status, body) = call(rpc(list.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let response = rpc(list.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn mcp_sessions_are_capped_per_agent_end_with_the_key_and_list_org_ids() {
    let broker = broker(Store::Sqlite).await;
    let orgs = two_orgs(&broker, &[]).await;
    let alpha = &orgs.alpha;
    let (_, other_key) = alpha.create_agent("other", CAPS).await;
    let ping = |key: &str, session: &str| {
        alpha
            .http
            .post(alpha.url("/mcp"))
            .bearer_auth(key)
            .header("Mcp-Session-Id", session)
            .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
    };
    // One agent opening many sessions ends its own oldest, never another agent's.
    let others = session_of(alpha, &other_key).await;
    let first = session_of(alpha, &orgs.buyer_key).await;
    for _ in 0..16 {
        session_of(alpha, &orgs.buyer_key).await;
    }
    let (status, _) = call(ping(&orgs.buyer_key, &first)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the busy agent's oldest session ended"
    );
    let (status, _) = call(ping(&other_key, &others)).await;
    assert_eq!(status, StatusCode::OK, "another agent's session survives");

    // cullis_list_sessions carries the org ids.
    let sid = active_session(&orgs).await;
    let session = session_of(alpha, &orgs.buyer_key).await;
    let (status, body) = call(
        alpha
            .http
            .post(alpha.url("/mcp"))
            .bearer_auth(&orgs.buyer_key)
            .header("Mcp-Session-Id", &session)
            .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "cullis_list_sessions", "arguments": {}}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = &body["result"]["structuredContent"]["sessions"];
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == sid.as_str())
        .expect("listed");
    assert_eq!(
        (
            entry["initiator_org_id"].as_str(),
            entry["target_org_id"].as_str()
        ),
        (Some("alpha"), Some("beta")),
        "{entry}"
    );

    // A key rotated by the CLI ends the sessions opened with the old key.
    let rotated = alpha.cli_ok(&["agent", "rotate-key", "other"]).await;
    let new_key = rotated["api_key"].as_str().unwrap();
    let (status, _) = call(ping(new_key, &others)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
