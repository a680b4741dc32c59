//! The proxy's MCP endpoint (`proxy/src/mcp/`), through its public entry point
//! `cullis_proxy::mcp::route` on an in-process proxy (see `proxy_harness.rs`): `Origin` check,
//! bearer API-key auth, the JSON-RPC body (parse, request / notification / response
//! classification, batches refused), `initialize`, the session and protocol-version headers,
//! `ping`, `tools/list`, and `tools/call` with every tool's argument parsing and validation up
//! to the broker uplink (not joined: 503, no network).
//!
//! Input: a selector byte, then the body. Selector bits: 0–1 method (POST, POST, DELETE, GET);
//! 2 no `Authorization`; 3 no `Mcp-Session-Id`; 4 an `Origin` of another site; 5 a loopback
//! `Origin`; 6 `MCP-Protocol-Version: 2025-06-18`; 7 an unsupported protocol version.
//!
//! Invariants: no answer is a 500; a JSON answer parses, and a JSON-RPC answer says
//! `"jsonrpc":"2.0"` with exactly one of `result` / `error`.
#![no_main]

#[path = "proxy_harness.rs"]
mod harness;

use harness::{check_response, request, API_KEY, PROXY};
use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (selector, body) = cullis_fuzz::split_selector(data);
    let proxy = &*PROXY;
    let method = match selector & 3 {
        0 | 1 => Method::POST,
        2 => Method::DELETE,
        _ => Method::GET,
    };
    // DELETE ends the session it names: give it one of its own so the shared one survives.
    let session = if method == Method::DELETE {
        proxy
            .state
            .mcp
            .open(
                &proxy.agent.agent_id,
                &proxy.agent.api_key_hash,
                "2025-11-25",
            )
            .expect("an MCP session")
    } else {
        proxy.session_id.clone()
    };
    let bearer = format!("Bearer {API_KEY}");
    let mut headers: Vec<(&str, &str)> = vec![("host", "127.0.0.1:9100")];
    if selector & 4 == 0 {
        headers.push(("authorization", &bearer));
    }
    if selector & 8 == 0 {
        headers.push(("mcp-session-id", &session));
    }
    if selector & 16 != 0 {
        headers.push(("origin", "https://evil.example"));
    }
    if selector & 32 != 0 {
        headers.push(("origin", "http://localhost:3000"));
    }
    if selector & 64 != 0 {
        headers.push(("mcp-protocol-version", "2025-06-18"));
    }
    if selector & 128 != 0 {
        headers.push(("mcp-protocol-version", "2024-01-01"));
    }
    let request = request(method.clone(), "/mcp", None, &headers, body);
    let response = proxy
        .runtime
        .block_on(cullis_proxy::mcp::route(&proxy.state, &request));
    let response = match response {
        Ok(response) => response,
        Err(error) => cullis_proxy::http::Response::from(error),
    };
    if let Some(json) = check_response(&response) {
        if let Some(object) = json.as_object().filter(|o| o.contains_key("jsonrpc")) {
            assert_eq!(object["jsonrpc"], "2.0");
            assert!(
                object.contains_key("result") != object.contains_key("error"),
                "one of result/error: {json}"
            );
        }
    }
    // `initialize` opened a session: close it so the agent's share never evicts the shared one.
    for (name, value) in &response.headers {
        if name.eq_ignore_ascii_case("mcp-session-id") {
            proxy.state.mcp.close(value, &proxy.agent.agent_id);
        }
    }
    if method == Method::DELETE {
        proxy.state.mcp.close(&session, &proxy.agent.agent_id);
    }
});
