//! The two-organisation full-stack scenario (ref-proxy-e2e-deploy §12, steps 2–27) with real
//! processes on loopback: the broker on a fresh PostgreSQL database + Redis, two proxies whose
//! own PDP webhooks decide for their orgs, local agents that hold only API keys. Beyond the
//! reference: a broker restart in the middle (sessions and messages survive), a revoked agent
//! cut off mid-session, an invalid invite on a third proxy that leaves it untouched.
//!
//! `e2e/run.sh` runs this with release binaries (`CULLIS_BIN_DIR`); `KEEP_E2E_STACK=1` keeps the
//! stack up at the end and prints its URLs.

use cullis_e2e::egress::EgressClient;
use cullis_e2e::stack::proxy::TestProxy;
use cullis_e2e::stack::two_orgs::TwoOrgs;
use cullis_e2e::stack::{Options, Store};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

/// The proxy's local audit rows with `action` for `agent_id`.
async fn proxy_audit(proxy: &TestProxy, action: &str) -> Vec<Value> {
    let response = proxy
        .admin(Method::GET, &format!("/v1/admin/audit?action={action}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["entries"]
        .as_array()
        .or_else(|| body.as_array())
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn two_organisations_full_stack() {
    // 2. Broker (PostgreSQL + Redis) and the proxies of alpha and beta, healthy.
    let mut stack = TwoOrgs::start(Store::PostgresRedis, Options::default()).await;

    // 3. A wrong admin secret is refused.
    let response = stack
        .broker
        .http
        .post(stack.broker.url("/v1/admin/invites"))
        .header("x-admin-secret", "wrong-secret")
        .json(&json!({"label": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // 4–5. Two distinct invites.
    let invite_a = stack.invite("e2e-alpha").await;
    let invite_b = stack.invite("e2e-beta").await;
    assert!(!invite_a.is_empty() && invite_a != invite_b);

    // 6–8. Each proxy joins with its invite (CA generated, PDP webhook registered); pending.
    for (proxy, invite, org) in [
        (&stack.alpha, &invite_a, "alpha"),
        (&stack.beta, &invite_b, "beta"),
    ] {
        let joined = proxy.join(&stack.broker.base, invite, org).await;
        assert!(joined.success, "{}\n{}", joined.stdout, joined.stderr);
        let status = proxy.cli_ok(&["org", "status"]).await;
        assert_eq!(status["status"], "pending", "{status}");
    }
    let early = stack
        .alpha
        .cli(&["agent", "create", "early", "--capabilities", "x"])
        .await;
    assert!(!early.success, "an agent cannot be created before approval");

    // 9. The operator approves both.
    stack.approve("alpha").await;
    stack.approve("beta").await;

    // 10–11. Agents (no proxy restart needed after onboarding).
    let caps = ["procurement.read", "procurement.write"];
    let (buyer_id, buyer) = stack.agent(&stack.alpha, "buyer", &caps).await;
    let (seller_id, seller) = stack.agent(&stack.beta, "seller", &caps).await;
    assert_eq!(
        (buyer_id.as_str(), seller_id.as_str()),
        ("alpha::buyer", "beta::seller")
    );
    for key in [&buyer.api_key, &seller.api_key] {
        assert!(key.starts_with("sk_local_"), "{key}");
    }

    // 12. Auth negatives.
    let anonymous = stack
        .alpha
        .http
        .post(stack.alpha.url("/v1/egress/discover"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = EgressClient::new(&stack.alpha.base, "bogus")
        .discover(&[])
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::UNAUTHORIZED, "Invalid API key format")
    );
    let wrong = format!("sk_local_buyer_{}", "0".repeat(32));
    let (status, body) = EgressClient::new(&stack.alpha.base, &wrong)
        .discover(&[])
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::UNAUTHORIZED, "Invalid API key")
    );

    // 13. Discovery across orgs, own org excluded.
    let (status, found) = buyer.discover(&["procurement.read"]).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let ids: Vec<&str> = found["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["agent_id"].as_str())
        .collect();
    assert!(
        ids.contains(&"beta::seller") && !ids.contains(&"alpha::buyer"),
        "{ids:?}"
    );
    assert_eq!(found["count"], ids.len());

    // 14–17. Open (both PDPs), pending at beta, accept, active at alpha.
    let (status, opened) = buyer
        .open_session(&seller_id, "beta", &["procurement.read"])
        .await;
    assert_eq!(
        (status, opened["status"].as_str()),
        (StatusCode::OK, Some("opened")),
        "{opened}"
    );
    let session_id = opened["session_id"].as_str().unwrap().to_owned();
    let (_, pending) = seller.sessions(Some("pending")).await;
    let entry = pending["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == session_id.as_str())
        .cloned()
        .expect("pending at beta");
    assert_eq!(entry["initiator_agent_id"], "alpha::buyer");
    assert_eq!(entry["target_agent_id"], "beta::seller");
    let (status, accepted) = seller.accept(&session_id).await;
    assert_eq!(
        (status, accepted["status"].as_str()),
        (StatusCode::OK, Some("accepted"))
    );
    let (_, listed) = buyer.sessions(None).await;
    assert!(listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["session_id"] == session_id.as_str() && s["status"] == "active"));

    // 18–19. Purchase order alpha → beta, decrypted and verified at beta.
    let order = json!({"kind": "purchase_order_request", "marker": "e2e-mvp-001", "items": [{"sku": "WIDGET-42", "qty": 100}]});
    let (status, sent) = buyer.send(&session_id, &seller_id, &order).await;
    assert_eq!(
        (status, sent["status"].as_str()),
        (StatusCode::OK, Some("sent")),
        "{sent}"
    );
    let got = seller
        .wait_for_message(&session_id, -1, WAIT, |m| {
            m["payload"]["marker"] == "e2e-mvp-001"
        })
        .await
        .unwrap();
    assert_eq!(got["payload"], order);
    assert_eq!(got["sender_agent_id"], "alpha::buyer");
    assert_eq!(got["client_seq"], 0);
    assert_eq!(got["verified"], true);
    let first_seq = got["seq"].as_i64().unwrap();

    // Mid-scenario broker restart: the session and its messages survive.
    stack.broker.restart().await;
    let again = seller
        .wait_for_message(&session_id, -1, WAIT, |m| {
            m["payload"]["marker"] == "e2e-mvp-001"
        })
        .await
        .unwrap();
    assert_eq!(again["seq"], first_seq);

    // 20. Reply beta → alpha.
    let ack = json!({"kind": "purchase_order_ack", "marker": "e2e-mvp-002", "ok": true});
    let (status, _) = seller.send(&session_id, &buyer_id, &ack).await;
    assert_eq!(status, StatusCode::OK);
    let reply = buyer
        .wait_for_message(&session_id, -1, WAIT, |m| {
            m["payload"]["marker"] == "e2e-mvp-002"
        })
        .await
        .unwrap();
    assert_eq!(reply["payload"]["ok"], true);

    // 21. Incremental poll: nothing newer from alpha for beta.
    let (status, newer) = seller.messages(&session_id, first_seq).await;
    assert_eq!(
        (status, newer["count"].as_i64()),
        (StatusCode::OK, Some(0)),
        "{newer}"
    );

    // 22. Non-ASCII payload with unsorted keys round-trips exactly.
    let unicode = json!({"z": 1, "a": {"y": "Zürich €", "b": [1, 2]}, "emoji": "🧾"});
    let (status, _) = buyer.send(&session_id, &seller_id, &unicode).await;
    assert_eq!(status, StatusCode::OK);
    let got = seller
        .wait_for_message(&session_id, first_seq, WAIT, |m| {
            m["payload"]["emoji"] == "🧾"
        })
        .await
        .unwrap();
    assert_eq!(got["payload"], unicode);
    assert_eq!(got["verified"], true);

    // 23. Tool-call tunnel.
    let (status, invoked) = buyer
        .invoke_tool(
            &session_id,
            "check_erp_inventory",
            json!({"sku": "WIDGET-42"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{invoked}");
    assert_eq!(invoked["recipient"], "beta::seller");
    let request_id = invoked["request_id"].clone();
    let call = seller
        .wait_for_message(&session_id, first_seq, WAIT, |m| {
            m["payload"]["type"] == "tool_call"
        })
        .await
        .unwrap();
    assert_eq!(
        call["payload"],
        json!({"type": "tool_call", "tool": "check_erp_inventory", "parameters": {"sku": "WIDGET-42"}, "request_id": request_id})
    );

    // 24. Beta's PDP blocks alpha::buyer: the broker's 403 and its detail reach the agent.
    stack
        .beta
        .set_policy(json!({"blocked_agents": ["alpha::buyer"]}))
        .await;
    let (status, denied) = buyer
        .open_session(&seller_id, "beta", &["procurement.read"])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    assert!(
        detail(&denied).contains("Agent blocked by policy"),
        "{denied}"
    );
    stack.beta.set_policy(json!({})).await;

    // 25. Close; beta can no longer poll it.
    let (status, closed) = buyer.close(&session_id).await;
    assert_eq!(
        (status, closed["status"].as_str()),
        (StatusCode::OK, Some("closed"))
    );
    let (status, body) = seller.messages(&session_id, -1).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // 26. The proxies' audit trails, and all three chains verify.
    for action in [
        "egress_session_open",
        "egress_send",
        "egress_discover",
        "egress_tool_invoke",
        "egress_session_close",
    ] {
        let rows = proxy_audit(&stack.alpha, action).await;
        assert!(
            rows.iter()
                .any(|r| r["agent_id"] == "alpha::buyer" && r["status"] == "success"),
            "{action}: {rows:?}"
        );
    }
    assert!(!proxy_audit(&stack.beta, "egress_session_accept")
        .await
        .is_empty());
    for proxy in [&stack.alpha, &stack.beta] {
        assert!(proxy.cli(&["audit", "verify"]).await.success);
    }
    let (status, verified) = stack
        .broker
        .admin(Method::GET, "/v1/admin/audit/verify", None)
        .await;
    assert_eq!(
        (status, verified["valid"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{verified}"
    );

    // A revoked agent is cut off mid-session: disabled at its proxy, revoked at the broker.
    let (status, second) = buyer
        .open_session(&seller_id, "beta", &["procurement.read"])
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let disabled = stack.beta.cli(&["agent", "disable", "seller"]).await;
    assert!(disabled.success, "{}\n{}", disabled.stdout, disabled.stderr);
    let (status, _) = seller.sessions(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = buyer
        .open_session(&seller_id, "beta", &["procurement.read"])
        .await;
    assert!(
        status.is_client_error(),
        "the broker no longer lets anyone reach a revoked agent: {status}"
    );

    // 27. An invalid invite on a third proxy fails and leaves it unconfigured.
    let rogue = TestProxy::start(&[]).await;
    let before = rogue.cli(&["org", "status"]).await;
    let joined = rogue
        .join(
            &stack.broker.base,
            "not-a-real-token-xxxxxxxxxxxxxxxx",
            "rogue",
        )
        .await;
    assert!(!joined.success);
    assert!(
        format!("{}{}", joined.stdout, joined.stderr).contains("403"),
        "{}",
        joined.stderr
    );
    let after = rogue.cli(&["org", "status"]).await;
    assert_eq!(
        (before.success, before.stdout),
        (after.success, after.stdout)
    );

    if std::env::var_os("KEEP_E2E_STACK").is_some() {
        println!(
            "KEEP_E2E_STACK: broker {}  alpha {}  beta {} — Ctrl-C to stop",
            stack.broker.base, stack.alpha.base, stack.beta.base
        );
        let _ = tokio::signal::ctrl_c().await;
    }
}
