//! The proxy's egress REST API (`proxy/src/egress/`), through its public entry point
//! `cullis_proxy::egress::route` on an in-process proxy (see `proxy_harness.rs`): the route
//! table and path parameters, `X-API-Key` auth and rate limit, the `after` query parameter, the
//! JSON bodies (`wire::egress::{OpenSessionRequest, SendRequest, DiscoverRequest,
//! ToolInvokeRequest}` via `parse_json`, with its 422 lists) and the length / id limits, up to
//! the broker uplink (not joined: 503, no network) and the audit row written on the way.
//!
//! Input: a selector byte (bit 0: no `X-API-Key`; bit 1: a wrong key), then one line
//! `<METHOD> <path after /v1/egress/>[?query]`, then the body.
//!
//! Invariants: no answer is a 500, and a JSON answer parses.
#![no_main]

#[path = "proxy_harness.rs"]
mod harness;

use cullis_proxy::http::Reply;
use harness::{check_response, request, API_KEY, PROXY};
use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = cullis_fuzz::split_selector(data);
    let (line, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let Some(line) = cullis_fuzz::text(line) else {
        return;
    };
    let (method, target) = line.split_once(' ').unwrap_or(("POST", line));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let proxy = &*PROXY;
    let mut headers: Vec<(&str, &str)> = vec![("host", "127.0.0.1:9100")];
    if selector & 1 == 0 {
        headers.push((
            "x-api-key",
            if selector & 2 == 0 {
                API_KEY
            } else {
                "sk_local_buyer_ffff"
            },
        ));
    }
    let full_path = format!("/v1/egress/{path}");
    let request = request(method, &full_path, query, &headers, body);
    let segments: Vec<&str> = path.split('/').collect();
    let reply = proxy.runtime.block_on(cullis_proxy::egress::route(
        &proxy.state,
        &request,
        &segments,
    ));
    match reply {
        Reply::Whole(response) => {
            check_response(&response);
        }
        Reply::Stream(_) => {}
    }
});
