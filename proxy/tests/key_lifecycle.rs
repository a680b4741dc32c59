//! Issue 15's proxy key lifecycle: `cullis-proxy check` and the production refusal, bulk
//! certificate rotation with the expiry warning, and org CA rotation while agents keep
//! messaging.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn lines(out: &cullis_e2e::stack::proxy::CliOutput) -> Vec<&str> {
    out.stdout.lines().collect()
}

#[cfg(unix)]
fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn check_reports_every_item_and_production_refuses_a_failing_one() {
    // The test defaults: plain HTTP, no PDP secret.
    let mut proxy = TestProxy::prepare(&[
        ("MCP_PROXY_INSECURE_BROKER_TLS", "true"),
        ("MCP_PROXY_ALLOWED_ORIGINS", "*"),
    ]);
    let out = proxy.cli(&["check"]).await;
    assert!(!out.success, "a failing item exits 1:\n{}", out.stdout);
    let report = lines(&out);
    for failing in [
        "broker_tls_verification",
        "allowed_origins",
        "listener_tls",
        "public_url_https",
        "pdp_secret",
    ] {
        assert!(
            report
                .iter()
                .any(|l| l.starts_with(&format!("FAIL {failing}: "))),
            "{failing} not failed:\n{}",
            out.stdout
        );
    }
    for passing in [
        "admin_token",
        "audit_chain",
        "agent_certificates",
        "broker_url_https",
    ] {
        assert!(
            report.contains(&format!("PASS {passing}").as_str()),
            "{passing} not passed:\n{}",
            out.stdout
        );
    }
    assert!(report
        .iter()
        .all(|l| l.starts_with("PASS ") || l.starts_with("FAIL ")));

    // serve with ENVIRONMENT=production refuses, naming the failing items.
    proxy.set_env("ENVIRONMENT", "production");
    let out = proxy.cli(&["serve"]).await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("ENVIRONMENT=production") && out.stderr.contains("listener_tls"),
        "{}",
        out.stderr
    );

    // Every item fixed: check passes and production serves.
    let cert = cullis_e2e::stack::tls::ServerCert::localhost(&proxy.dir);
    proxy.use_tls(&cert);
    proxy.set_env("MCP_PROXY_INSECURE_BROKER_TLS", "false");
    proxy.set_env("MCP_PROXY_ALLOWED_ORIGINS", "https://console.example");
    proxy.set_env(
        "MCP_PROXY_PDP_SECRET",
        "pdp-shared-secret-0123456789abcdef-xyz",
    );
    chmod(&proxy.dir.join("data"), 0o700);
    let out = proxy.cli(&["check"]).await;
    assert!(out.success, "{}\n{}", out.stdout, out.stderr);
    assert!(
        lines(&out).iter().all(|l| l.starts_with("PASS ")),
        "{}",
        out.stdout
    );
    // Loose permissions on the data directory fail again.
    chmod(&proxy.dir.join("data"), 0o755);
    let out = proxy.cli(&["check"]).await;
    assert!(!out.success);
    assert!(
        out.stdout.contains("FAIL store_permissions: "),
        "{}",
        out.stdout
    );
    chmod(&proxy.dir.join("data"), 0o700);
    proxy.spawn().await;
    let (status, _) = call(proxy.http.get(proxy.url("/healthz"))).await;
    assert_eq!(status, StatusCode::OK);
}

/// The agent ids `org status` / `/readyz` list as expiring.
fn expiring(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["agent_id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn rotate_cert_all_clears_the_expiry_warning() {
    let broker = broker(Store::Sqlite).await;
    let mut alpha = joined_proxy(&broker, "alpha", &[]).await;
    // Certificates valid for 7 days: inside the 14-day warning.
    alpha.set_env("MCP_PROXY_AGENT_CERT_DAYS", "7");
    let (_, key) = alpha.create_agent("buyer", CAPS).await;
    alpha.create_agent("seller", CAPS).await;
    let status = alpha.cli_ok(&["org", "status"]).await;
    assert_eq!(
        expiring(&status["expiring_certificates"]),
        ["alpha::buyer", "alpha::seller"],
        "{status}"
    );
    assert!(
        status["expiring_certificates"][0]["days_left"]
            .as_i64()
            .unwrap()
            <= 7
    );
    let (_, ready) = call(alpha.http.get(alpha.url("/readyz"))).await;
    assert_eq!(
        expiring(&ready["details"]["expiring_certificates"]).len(),
        2,
        "{ready}"
    );
    let out = alpha.cli(&["check"]).await;
    assert!(
        out.stdout
            .contains("FAIL agent_certificates: 2 agent certificate(s)"),
        "{}",
        out.stdout
    );

    alpha.set_env("MCP_PROXY_AGENT_CERT_DAYS", "365");
    let rotated = alpha.cli_ok(&["agent", "rotate-cert", "--all"]).await;
    assert_eq!(
        rotated["rotated"],
        json!(["alpha::buyer", "alpha::seller"]),
        "{rotated}"
    );
    let status = alpha.cli_ok(&["org", "status"]).await;
    assert!(
        expiring(&status["expiring_certificates"]).is_empty(),
        "{status}"
    );
    let (_, ready) = call(alpha.http.get(alpha.url("/readyz"))).await;
    assert!(
        expiring(&ready["details"]["expiring_certificates"]).is_empty(),
        "{ready}"
    );
    // The rotated agent keeps working through the running server.
    let (status, body) = call(
        alpha
            .egress(Method::POST, "/v1/egress/discover", &key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(has_action(
        &audit(&alpha).await,
        "admin",
        "agent.rotate_cert",
        "success"
    ));
}

#[tokio::test]
async fn org_ca_rotation_keeps_agents_messaging() {
    let broker = broker(Store::Sqlite).await;
    // The traffic below sends as fast as it can: lift the proxies' per-agent budget.
    let orgs = two_orgs(&broker, &[("MCP_PROXY_RATE_LIMIT_PER_MINUTE", "100000")]).await;
    let sid = active_session(&orgs).await;
    let send = |proxy: &TestProxy, key: &str, to: &str, marker: &str| {
        proxy.egress(Method::POST, "/v1/egress/send", key).json(
            &json!({"session_id": sid, "payload": {"marker": marker}, "recipient_agent_id": to}),
        )
    };
    let (status, body) = call(send(&orgs.alpha, &orgs.buyer_key, "beta::seller", "before")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_message(&orgs.beta, &orgs.seller_key, &sid, -1, |m| {
        m["payload"]["marker"] == "before"
    })
    .await;
    let ca_before = call(orgs.alpha.admin(Method::GET, "/v1/admin/org")).await.1;

    // Both agents keep sending to each other while `org rotate-ca` re-issues and re-pins: no
    // send may fail, and every message arrives verified.
    let rotating = std::sync::atomic::AtomicBool::new(true);
    let rotate = async {
        let rotated = orgs
            .alpha
            .cli_ok(&["org", "rotate-ca", "--overlap-seconds", "600"])
            .await;
        rotating.store(false, std::sync::atomic::Ordering::SeqCst);
        rotated
    };
    let traffic = async {
        let (mut rounds, mut failures) = (0, Vec::new());
        while rotating.load(std::sync::atomic::Ordering::SeqCst) || rounds < 3 {
            let marker = format!("during-{rounds}");
            let (status, body) =
                call(send(&orgs.alpha, &orgs.buyer_key, "beta::seller", &marker)).await;
            if status != StatusCode::OK {
                failures.push(format!("alpha {marker}: {status} {body}"));
            }
            let marker = format!("reply-{rounds}");
            let (status, body) =
                call(send(&orgs.beta, &orgs.seller_key, "alpha::buyer", &marker)).await;
            if status != StatusCode::OK {
                failures.push(format!("beta {marker}: {status} {body}"));
            }
            rounds += 1;
        }
        (rounds, failures)
    };
    let (rotated, (rounds, failures)) = tokio::join!(rotate, traffic);
    assert!(
        failures.is_empty(),
        "sends failed during the rotation: {failures:#?}"
    );
    assert_eq!(rotated["status"], "rotated", "{rotated}");
    let last = format!("during-{}", rounds - 1);
    wait_message(&orgs.beta, &orgs.seller_key, &sid, -1, |m| {
        m["payload"]["marker"] == last.as_str()
    })
    .await;
    let last = format!("reply-{}", rounds - 1);
    wait_message(&orgs.alpha, &orgs.buyer_key, &sid, -1, |m| {
        m["payload"]["marker"] == last.as_str()
    })
    .await;
    for (proxy, key, prefix) in [
        (&orgs.beta, &orgs.seller_key, "during-"),
        (&orgs.alpha, &orgs.buyer_key, "reply-"),
    ] {
        let (_, inbox) = call(proxy.egress(
            Method::GET,
            &format!("/v1/egress/messages/{sid}?after=-1"),
            key,
        ))
        .await;
        let received: Vec<&Value> = inbox["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["payload"]["marker"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(prefix))
            })
            .collect();
        assert_eq!(
            received.len(),
            rounds,
            "every {prefix}* message arrived: {inbox}"
        );
        assert!(received.iter().all(|m| m["verified"] == true), "{inbox}");
    }
    assert_eq!(rotated["agents"], json!(["alpha::buyer"]), "{rotated}");

    // Both directions still work, signatures verified with the re-issued certificate's key.
    let (status, body) = call(send(&orgs.alpha, &orgs.buyer_key, "beta::seller", "after")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = wait_message(&orgs.beta, &orgs.seller_key, &sid, -1, |m| {
        m["payload"]["marker"] == "after"
    })
    .await;
    assert_eq!(got["verified"], true, "{got}");
    let (status, body) = call(send(&orgs.beta, &orgs.seller_key, "alpha::buyer", "reply")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = wait_message(&orgs.alpha, &orgs.buyer_key, &sid, -1, |m| {
        m["payload"]["marker"] == "reply"
    })
    .await;
    assert_eq!(got["verified"], true, "{got}");

    // Audited on both sides; new agents are issued by the new CA.
    assert!(has_action(
        &audit(&orgs.alpha).await,
        "admin",
        "ca.rotate",
        "success"
    ));
    assert_eq!(broker.audit_events("org.ca_rotated").await.len(), 1);
    let ca_after = call(orgs.alpha.admin(Method::GET, "/v1/admin/org")).await.1;
    assert_eq!(ca_before["org_id"], ca_after["org_id"]);
    let (_, fresh_key) = orgs.alpha.create_agent("fresh", CAPS).await;
    let (status, body) = call(
        orgs.alpha
            .egress(Method::POST, "/v1/egress/discover", &fresh_key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `org rotate-secret`: the broker takes a new org secret and the proxy keeps using it —
/// org-authenticated work (creating an agent, `org status`) goes on, agents are untouched.
#[tokio::test]
async fn org_secret_rotation_keeps_the_proxy_working() {
    let broker = broker(Store::Sqlite).await;
    let orgs = two_orgs(&broker, &[]).await;
    let rotated = orgs.alpha.cli_ok(&["org", "rotate-secret"]).await;
    assert_eq!(rotated["status"], "rotated", "{rotated}");
    assert_eq!(broker.audit_events("org.secret_rotated").await.len(), 1);
    let (agent_id, _) = orgs.alpha.create_agent("after-rotation", &["x"]).await;
    assert_eq!(agent_id, "alpha::after-rotation");
    assert_eq!(
        orgs.alpha.cli_ok(&["org", "status"]).await["status"],
        "active"
    );
    let (status, found) = call(
        orgs.alpha
            .egress(Method::POST, "/v1/egress/discover", &orgs.buyer_key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    // Twice in a row: each rotation starts from the secret the last one stored.
    let again = orgs.alpha.cli_ok(&["org", "rotate-secret"]).await;
    assert_eq!(again["status"], "rotated", "{again}");
    assert_eq!(broker.audit_events("org.secret_rotated").await.len(), 2);
}
