//! An in-process proxy for the proxy targets: the real `AppState` (settings parsed by the
//! proxy's own clap types, a scratch SQLite store and local custody under the temp directory),
//! one local agent `acme::buyer` with a fixed API key, and one open MCP session. The org has not
//! joined a broker, so every operation stops at the uplink with 503 before any network I/O —
//! after the body parsing, validation and audit write that come first.
//!
//! Included with `#[path]` by the proxy targets only, so the other targets never link the proxy.

use bytes::Bytes;
use clap::Parser;
use cullis_proxy::config::{CommonSettings, ServeSettings};
use cullis_proxy::context::Context;
use cullis_proxy::http::{Request, Response};
use cullis_proxy::state::AppState;
use cullis_proxy::store::AgentRow;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::path::PathBuf;
use std::sync::LazyLock;

pub const API_KEY: &str = "sk_local_buyer_00112233445566778899aabbccddeeff";
const AGENT_ID: &str = "acme::buyer";

#[derive(Parser)]
struct Settings {
    #[command(flatten)]
    common: CommonSettings,
    #[command(flatten)]
    serve: ServeSettings,
}

#[allow(dead_code)]
pub struct Proxy {
    pub runtime: tokio::runtime::Runtime,
    pub state: AppState,
    pub agent: AgentRow,
    /// An MCP session of the agent that stays open.
    pub session_id: String,
}

/// Scratch directories of earlier runs whose process is gone.
fn remove_stale(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) {
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

pub static PROXY: LazyLock<Proxy> = LazyLock::new(|| {
    let base = std::env::temp_dir().join("cullis-fuzz-proxy");
    remove_stale(&base);
    let dir = base.join(format!("state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let args: Vec<std::ffi::OsString> = vec![
        "cullis-fuzz".into(),
        "--data-dir".into(),
        dir.clone().into_os_string(),
        "--secret-key".into(),
        "5f".repeat(32).into(),
        "--rate-limit-per-minute".into(),
        "1000000000".into(),
    ];
    let settings = Settings::parse_from(args);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ctx = runtime
        .block_on(Context::open(settings.common))
        .expect("proxy context on a scratch store");
    let agent = AgentRow {
        agent_id: AGENT_ID.into(),
        name: "buyer".into(),
        display_name: "Buyer".into(),
        capabilities: r#"["order.read"]"#.into(),
        api_key_hash: ctx.hasher.hash(API_KEY),
        cert_pem: None,
        created_at: "2026-12-05T00:00:00Z".into(),
        is_active: true,
    };
    runtime
        .block_on(ctx.store.insert_agent(&agent))
        .expect("agent row");
    let state = AppState::new(ctx, settings.serve);
    let session_id = state
        .mcp
        .open(AGENT_ID, &agent.api_key_hash, "2025-11-25")
        .expect("an MCP session");
    Proxy {
        runtime,
        state,
        agent,
        session_id,
    }
});

/// A request with `headers` (name, value; invalid values are skipped).
pub fn request(
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Request {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    Request {
        method,
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers: map,
        body: Bytes::copy_from_slice(body),
        peer: Some(std::net::IpAddr::from([127, 0, 0, 1])),
    }
}

/// What every answer must be: no 500, and a JSON body whenever it says it is JSON.
pub fn check_response(response: &Response) -> Option<serde_json::Value> {
    assert_ne!(
        response.status.as_u16(),
        500,
        "500 on untrusted input: {response:?}"
    );
    if response.content_type.starts_with("application/json") && !response.body.is_empty() {
        Some(serde_json::from_slice(&response.body).expect("a JSON answer parses"))
    } else {
        None
    }
}
