//! The egress story through `/mcp` with a real MCP client (rmcp, Streamable HTTP, protocol
//! 2025-11-25): two agents in two orgs discover, open, accept, send, receive (verified), list
//! and close, each authenticated by its local API key as a bearer token. Plus the transport's
//! negative paths over raw HTTP.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

async fn connect(proxy: &TestProxy, api_key: &str) -> RunningService<RoleClient, ClientConfig> {
    let config = StreamableHttpClientTransportConfig::with_uri(proxy.url("/mcp"))
        .auth_header(api_key.to_owned());
    let transport = StreamableHttpClientTransport::from_config(config);
    ClientConfig::default()
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
        .serve(transport)
        .await
        .expect("MCP initialize")
}

/// Calls a tool and returns (structured result, is_error).
async fn tool(
    client: &RunningService<RoleClient, ClientConfig>,
    name: &'static str,
    args: Value,
) -> (Value, bool) {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    let result = client
        .call_tool(CallToolRequestParams::new(name).with_arguments(map))
        .await
        .expect("tools/call");
    let text = serde_json::to_value(&result).unwrap();
    let is_error = result.is_error.unwrap_or(false);
    (result.structured_content.unwrap_or(text), is_error)
}

#[tokio::test]
async fn mcp_story_with_rmcp() {
    let broker = broker(Store::Sqlite).await;
    let orgs = two_orgs(&broker, &[]).await;
    let buyer = connect(&orgs.alpha, &orgs.buyer_key).await;
    let seller = connect(&orgs.beta, &orgs.seller_key).await;
    let info = buyer.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("cullis-proxy")
    );
    let tools = buyer.list_tools(Default::default()).await.unwrap().tools;
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for expected in [
        "cullis_discover",
        "cullis_open_session",
        "cullis_accept_session",
        "cullis_send",
        "cullis_receive",
        "cullis_list_sessions",
        "cullis_close_session",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    let (found, err) = tool(
        &buyer,
        "cullis_discover",
        json!({"capabilities": ["procurement.read"]}),
    )
    .await;
    assert!(!err, "{found}");
    assert!(
        found["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["agent_id"] == "beta::seller"),
        "{found}"
    );
    let (opened, err) = tool(
        &buyer,
        "cullis_open_session",
        json!({"target_agent_id": "beta::seller", "target_org_id": "beta", "capabilities": ["procurement.read"]}),
    )
    .await;
    assert!(!err, "{opened}");
    let sid = opened["session_id"].as_str().unwrap().to_owned();
    let (pending, _) = tool(
        &seller,
        "cullis_list_sessions",
        json!({"status": "pending"}),
    )
    .await;
    assert!(
        pending["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["session_id"] == sid.as_str()),
        "{pending}"
    );
    let (accepted, err) = tool(&seller, "cullis_accept_session", json!({"session_id": sid})).await;
    assert!(!err && accepted["status"] == "accepted", "{accepted}");

    let payload = json!({"marker": "mcp-1", "text": "Bonjour, Zürich €"});
    let (sent, err) = tool(
        &buyer,
        "cullis_send",
        json!({"session_id": sid, "recipient_agent_id": "beta::seller", "payload": payload}),
    )
    .await;
    assert!(!err && sent["status"] == "sent", "{sent}");
    let mut received = Value::Null;
    for _ in 0..80 {
        let (got, err) = tool(
            &seller,
            "cullis_receive",
            json!({"session_id": sid, "after": -1}),
        )
        .await;
        assert!(!err, "{got}");
        if let Some(m) = got["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["payload"]["marker"] == "mcp-1"))
        {
            received = m.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(received["payload"], payload, "not received");
    assert_eq!(
        (
            received["sender_agent_id"].as_str(),
            received["verified"].as_bool()
        ),
        (Some("alpha::buyer"), Some(true))
    );

    // A broker error is a tool error the model can read, not a protocol error.
    let (denied, err) = tool(&buyer, "cullis_accept_session", json!({"session_id": sid})).await;
    assert!(err, "{denied}");
    let (closed, err) = tool(&buyer, "cullis_close_session", json!({"session_id": sid})).await;
    assert!(!err && closed["status"] == "closed", "{closed}");
    let rows = audit(&orgs.alpha).await;
    for action in [
        "egress_discover",
        "egress_session_open",
        "egress_send",
        "egress_session_close",
    ] {
        assert!(
            has_action(&rows, "alpha::buyer", action, "success"),
            "{action}: {rows:?}"
        );
    }
    buyer.cancel().await.unwrap();
    seller.cancel().await.unwrap();
}

#[tokio::test]
async fn mcp_transport_negatives_and_version_negotiation() {
    let broker = broker(Store::Sqlite).await;
    let proxy = joined_proxy(&broker, "alpha", &[]).await;
    let (_, key) = proxy.create_agent("bot", &["x.read"]).await;
    let init = |version: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    };
    // No bearer → 401 with a challenge.
    let response = proxy
        .http
        .post(proxy.url("/mcp"))
        .json(&init("2025-06-18"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    // Supported versions are echoed; unknown ones get our latest. 2025-03-26 (which requires
    // JSON-RPC batches) is not offered.
    for (asked, answered) in [
        ("2025-03-26", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let response = proxy
            .http
            .post(proxy.url("/mcp"))
            .bearer_auth(&key)
            .json(&init(asked))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("mcp-session-id"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], answered, "{body}");
    }
    let response = proxy
        .http
        .post(proxy.url("/mcp"))
        .bearer_auth(&key)
        .json(&init("2025-11-25"))
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let rpc = |body: Value| {
        proxy
            .http
            .post(proxy.url("/mcp"))
            .bearer_auth(&key)
            .header("Mcp-Session-Id", &session)
            .json(&body)
    };
    // Notifications: 202, no body.
    let response = rpc(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let (status, body) = call(rpc(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))).await;
    assert_eq!(
        (status, body["result"].clone()),
        (StatusCode::OK, json!({}))
    );
    let (_, body) = call(rpc(json!({"jsonrpc": "2.0", "id": 3, "method": "nope"}))).await;
    assert_eq!(body["error"]["code"], -32601);
    let (_, body) = call(rpc(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "nope"}}),
    ))
    .await;
    assert_eq!(body["error"]["code"], -32602);
    let (status, body) = call(
        proxy
            .http
            .post(proxy.url("/mcp"))
            .bearer_auth(&key)
            .header("Mcp-Session-Id", &session)
            .body("{"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(-32700))
    );
    // Unknown session → 404; missing → 400.
    let (status, _) = call(
        proxy
            .http
            .post(proxy.url("/mcp"))
            .bearer_auth(&key)
            .header("Mcp-Session-Id", "nope")
            .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "ping"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        proxy
            .http
            .post(proxy.url("/mcp"))
            .bearer_auth(&key)
            .json(&json!({"jsonrpc": "2.0", "id": 6, "method": "ping"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // GET has no stream here (405); DELETE ends the session.
    let response = proxy
        .http
        .get(proxy.url("/mcp"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = proxy
        .http
        .delete(proxy.url("/mcp"))
        .bearer_auth(&key)
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = call(rpc(json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = Method::GET;
}
