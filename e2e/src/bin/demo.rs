//! `cullis-demo`: the whole Cullis story in one command, on embedded defaults.
//!
//! It starts a broker (SQLite in a temp dir) and two organisation proxies on free loopback
//! ports, onboards `alpha` and `beta` by invite, creates `alpha::buyer` and `beta::seller`,
//! discovers across organisations, opens a session both PDPs allow, sends an end-to-end encrypted
//! purchase order and its reply, verifies the audit chains, and prints what crossed the wire at
//! each step: ciphertext at the broker, plaintext only at the proxies.

use clap::Parser;
use cullis_e2e::stack::two_orgs::TwoOrgs;
use cullis_e2e::stack::{Options, Store};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Runs a broker and two organisation proxies on loopback and walks through the Cullis story:
/// onboarding, agent identities, discovery, a policy-checked session and an E2E encrypted
/// exchange, audit verification. Exits 0 when every step worked.
#[derive(Debug, Parser)]
#[command(name = "cullis-demo", version, about)]
struct Args {
    /// Leave the broker and proxies running at the end and print their URLs (Ctrl-C stops).
    #[arg(long)]
    keep: bool,
}

/// Prints numbered steps with their duration.
struct Narrator {
    step: usize,
    started: Instant,
}

impl Narrator {
    fn step(&mut self, title: &str) {
        self.step += 1;
        self.started = Instant::now();
        println!("\n{:>2}. {title}", self.step);
    }

    fn done(&self, what: &str) {
        println!(
            "    ✓ {what}  ({:.0} ms)",
            self.started.elapsed().as_secs_f64() * 1000.0
        );
    }

    fn show(&self, label: &str, value: &Value) {
        let text = serde_json::to_string(value).unwrap_or_default();
        let shown: String = text.chars().take(160).collect();
        let more = if text.chars().count() > 160 {
            " …"
        } else {
            ""
        };
        println!("      {label}: {shown}{more}");
    }
}

fn check(ok: bool, what: &str, body: &Value) {
    if !ok {
        eprintln!("\ncullis-demo: {what} failed: {body}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    ensure_binaries();
    let total = Instant::now();
    let mut n = Narrator {
        step: 0,
        started: Instant::now(),
    };

    n.step("Start a broker (SQLite, temp dir) and the proxies of alpha and beta");
    let stack = TwoOrgs::start(Store::Sqlite, Options::default()).await;
    n.done(&format!(
        "broker {}  ·  alpha proxy {}  ·  beta proxy {}",
        stack.broker.base, stack.alpha.base, stack.beta.base
    ));

    n.step("Onboard both organisations: operator invite → proxy `org join` (CA + PDP webhook) → approval");
    stack.onboard(&stack.alpha, "alpha").await;
    stack.onboard(&stack.beta, "beta").await;
    n.done("alpha and beta are active; each registered its org CA and its proxy's PDP webhook");

    n.step("Create agents: key + X.509 cert with a SPIFFE id, registered, bound, pinned by a first login");
    let (buyer_id, buyer) = stack
        .agent(
            &stack.alpha,
            "buyer",
            &["procurement.read", "procurement.write"],
        )
        .await;
    let (seller_id, seller) = stack
        .agent(
            &stack.beta,
            "seller",
            &["procurement.read", "procurement.write"],
        )
        .await;
    n.done(&format!(
        "{buyer_id} and {seller_id}; each local agent holds only an API key (sk_local_…)"
    ));

    n.step("alpha::buyer discovers suppliers in other organisations by capability");
    let (status, found) = buyer.discover(&["procurement.read"]).await;
    check(status == StatusCode::OK, "discover", &found);
    n.show("proxy → agent", &found["agents"]);
    n.done(&format!("{} agent(s) found", found["count"]));

    n.step("Open a session: the broker asks BOTH orgs' PDPs (default deny), beta accepts");
    let (status, opened) = buyer
        .open_session(&seller_id, "beta", &["procurement.read"])
        .await;
    check(status == StatusCode::OK, "open session", &opened);
    let session_id = opened["session_id"].as_str().unwrap_or_default().to_owned();
    let (status, accepted) = seller.accept(&session_id).await;
    check(status == StatusCode::OK, "accept", &accepted);
    n.done(&format!("session {session_id} is active"));

    n.step("Send an E2E encrypted, signed purchase order (the proxy seals it for the agent)");
    let order = json!({"kind": "purchase_order", "po": "PO-2026-0042",
        "items": [{"sku": "WIDGET-42", "qty": 100}], "deliver_to": "Zürich"});
    n.show("agent → alpha proxy (plaintext)", &order);
    let (status, sent) = buyer.send(&session_id, &seller_id, &order).await;
    check(status == StatusCode::OK, "send", &sent);
    let stored = stack.stored_payloads(&session_id).await;
    if let Some(ciphertext) = stored.first() {
        n.show("what the broker stores (ciphertext)", ciphertext);
    }
    let received = seller
        .wait_for_message(&session_id, -1, Duration::from_secs(20), |m| {
            m["payload"]["po"] == "PO-2026-0042"
        })
        .await
        .unwrap_or_else(|e| {
            check(false, "receive", &Value::String(e));
            unreachable!()
        });
    n.show("beta proxy → seller (decrypted)", &received["payload"]);
    check(
        received["verified"] == true,
        "inner signature verification",
        &received,
    );
    n.done("delivered; the seller's proxy verified the buyer's inner signature (verified: true)");

    n.step("The seller replies; the buyer receives it");
    let reply = json!({"kind": "purchase_order_ack", "po": "PO-2026-0042", "ok": true, "ship_date": "2026-12-07"});
    let (status, sent) = seller.send(&session_id, &buyer_id, &reply).await;
    check(status == StatusCode::OK, "reply", &sent);
    let got = buyer
        .wait_for_message(&session_id, -1, Duration::from_secs(20), |m| {
            m["payload"]["kind"] == "purchase_order_ack"
        })
        .await
        .unwrap_or_else(|e| {
            check(false, "receive reply", &Value::String(e));
            unreachable!()
        });
    n.show("alpha proxy → buyer (decrypted)", &got["payload"]);
    n.done("round trip complete");

    n.step("Close the session and verify the audit chains");
    let (status, closed) = buyer.close(&session_id).await;
    check(status == StatusCode::OK, "close", &closed);
    let (status, verified) = stack
        .broker
        .admin(Method::GET, "/v1/admin/audit/verify", None)
        .await;
    check(
        status == StatusCode::OK && verified["valid"] == true,
        "broker audit chain",
        &verified,
    );
    n.show("broker audit verify", &verified);
    for (org, proxy) in [("alpha", &stack.alpha), ("beta", &stack.beta)] {
        let out = proxy.cli(&["audit", "verify"]).await;
        check(
            out.success,
            &format!("{org} proxy audit chain"),
            &Value::String(out.stdout.clone()),
        );
    }
    n.done("broker and both proxies: every hash links, nothing altered");

    println!(
        "\ncullis-demo: all steps passed in {:.1} s",
        total.elapsed().as_secs_f64()
    );
    if args.keep {
        println!("\nThe stack keeps running (Ctrl-C stops it):");
        println!(
            "  broker       {}   (admin secret: {})",
            stack.broker.base, stack.broker.admin_secret
        );
        println!(
            "  alpha proxy  {}   (agent API key: {})",
            stack.alpha.base, buyer.api_key
        );
        println!(
            "  beta proxy   {}   (agent API key: {})",
            stack.beta.base, seller.api_key
        );
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The demo starts the real `cullis-broker` and `cullis-proxy` binaries; when it runs through
/// `cargo run` and they are not built yet, build them first (same profile).
fn ensure_binaries() {
    let exe = std::env::current_exe().expect("own path");
    let dir = exe.parent().expect("binary directory");
    let missing = ["cullis-broker", "cullis-proxy"]
        .iter()
        .any(|name| !dir.join(name).exists());
    if !missing || std::env::var_os("CULLIS_BIN_DIR").is_some() {
        return;
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        eprintln!(
            "cullis-demo: cullis-broker and cullis-proxy are not built next to {}: run `cargo build --release`",
            exe.display()
        );
        std::process::exit(2);
    };
    let release = dir.ends_with("release");
    eprintln!("cullis-demo: building cullis-broker and cullis-proxy (once) …");
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "-p", "cullis-broker", "-p", "cullis-proxy"]);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    if !status.success() {
        eprintln!("cullis-demo: building the broker and proxy failed");
        std::process::exit(2);
    }
}
