//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, npm) against the
//! proxy's `/mcp`, for the scenarios a server without the suite's fixture tools can pass.
//!
//! The suite has no way to send credentials, and `/mcp` needs an agent's API key: a small relay
//! in this test adds `Authorization: Bearer <API key>` to every request and streams the answers back unchanged (it
//! is the only stand-in here; the proxy, its broker and the suite are the real ones).
//!
//! The suite is installed with npm into `CULLIS_MCP_CONFORMANCE` (default
//! `/var/tmp/cullis-mcp-conformance`; `.ci/run` installs it). 0.1.13 is the last release that
//! runs on the machine's Node 20 and has the same server scenarios as 0.1.16.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use cullis_e2e::stack::proxy::free_port;
use cullis_e2e::stack::two_orgs::TwoOrgs;
use cullis_e2e::stack::{Options, Store};
use std::path::PathBuf;
use std::process::Command;

const SUITE: &str = "@modelcontextprotocol/conformance@0.1.13";
/// What a proxy that offers agent-to-agent tools (no sampling, prompts, resources or the
/// suite's fixture tools) must pass.
const SCENARIOS: [&str; 3] = ["server-initialize", "ping", "tools-list"];

fn suite_dir() -> PathBuf {
    std::env::var_os("CULLIS_MCP_CONFORMANCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/cullis-mcp-conformance"))
}

/// The suite's entry point, installed when missing.
fn conformance() -> PathBuf {
    let dir = suite_dir();
    let bin = dir.join("node_modules/.bin/conformance");
    if !bin.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(SUITE)
            .status()
            .expect("npm (the machine's Node.js)");
        assert!(
            status.success(),
            "npm install {SUITE} into {}",
            dir.display()
        );
    }
    bin
}

#[derive(Clone)]
struct Relay {
    target: String,
    api_key: String,
    http: reqwest::Client,
}

/// Forwards one request to the proxy's `/mcp` with the agent's API key added; the answer (JSON or an
/// SSE stream) is passed back as it arrives.
async fn forward(State(relay): State<Relay>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20).await.unwrap();
    let mut outgoing = relay
        .http
        .request(parts.method.clone(), &relay.target)
        .header("Authorization", format!("Bearer {}", relay.api_key))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    let chunks = futures_util::stream::unfold(answer, |mut answer| async move {
        match answer.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, reqwest::Error>(chunk), answer)),
            _ => None,
        }
    });
    response.body(Body::from_stream(chunks)).unwrap()
}

#[tokio::test]
async fn the_official_conformance_suite_passes_on_mcp() {
    let suite = conformance();
    let stack = TwoOrgs::start(Store::Sqlite, Options::default()).await;
    stack.onboard(&stack.alpha, "alpha").await;
    let (_, api_key) = stack
        .alpha
        .create_agent("conformance", &["procurement.read"])
        .await;
    let relay = Relay {
        target: stack.alpha.url("/mcp"),
        api_key,
        http: reqwest::Client::new(),
    };
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/mcp", axum::routing::any(forward))
        .with_state(relay);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let url = format!("http://127.0.0.1:{port}/mcp");
    for scenario in SCENARIOS {
        let output = tokio::process::Command::new(&suite)
            .args(["server", "--url", &url, "--scenario", scenario])
            .output()
            .await
            .expect("the conformance suite runs");
        let report = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "conformance scenario {scenario} failed:\n{report}"
        );
        assert!(
            report.contains("Passed:") && report.contains(" 0 failed"),
            "{scenario}: {report}"
        );
    }
}
