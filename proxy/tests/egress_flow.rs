//! Spec §12 steps 3–26 through two real proxies (alpha, beta) and a real broker whose webhook
//! policy calls both proxies' PDPs: discover, open, accept, send, receive (verified), reply,
//! incremental poll, non-ASCII round trip, tool-call tunnel, policy deny, close, audit chain.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn egress_story_sqlite() {
    story(Store::Sqlite).await;
}

#[tokio::test]
async fn egress_story_postgres_redis() {
    story(Store::PostgresRedis).await;
}

async fn story(store: Store) {
    let broker = broker(store).await;
    // 3. A wrong admin secret cannot create invites.
    let (status, _) = json_of(
        broker
            .http
            .post(broker.url("/v1/admin/invites"))
            .header("x-admin-secret", "wrong-secret")
            .json(&json!({"label": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // 4–11. Two orgs joined through the proxies' CLI (no restart), approved, agents created.
    let orgs = two_orgs(&broker, &[]).await;
    let (alpha, beta) = (&orgs.alpha, &orgs.beta);
    let (buyer_key, seller_key) = (&orgs.buyer_key, &orgs.seller_key);
    let status = alpha.cli_ok(&["org", "status"]).await;
    assert_eq!(status["status"], "active", "{status}");

    // 12. Auth negatives.
    let (status, body) = call(
        alpha
            .http
            .post(alpha.url("/v1/egress/discover"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("X-API-Key header required"))
    );
    let (status, body) = call(
        alpha
            .egress(Method::POST, "/v1/egress/discover", "bogus")
            .json(&json!({})),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Invalid API key format"))
    );
    let wrong = format!("sk_local_buyer_{}", "0".repeat(32));
    let (status, body) = call(
        alpha
            .egress(Method::POST, "/v1/egress/discover", &wrong)
            .json(&json!({})),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Invalid API key"))
    );

    // 13. Discover: the other org's seller, never our own buyer.
    let (status, found) = call(
        alpha
            .egress(Method::POST, "/v1/egress/discover", buyer_key)
            .json(&json!({"capabilities": ["procurement.read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let ids: Vec<&str> = found["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["agent_id"].as_str())
        .collect();
    assert!(
        ids.contains(&"beta::seller") && !ids.contains(&"alpha::buyer"),
        "{found}"
    );
    assert_eq!(found["count"].as_u64(), Some(ids.len() as u64));

    // 14. Open: both PDPs are asked (each proxy audits its decision).
    let (status, opened) = call(
        alpha
            .egress(Method::POST, "/v1/egress/sessions", buyer_key)
            .json(&json!({"target_agent_id": "beta::seller", "target_org_id": "beta", "capabilities": ["procurement.read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    assert_eq!(opened["status"], "opened");
    let sid = opened["session_id"].as_str().unwrap().to_owned();
    let alpha_pdp = audit(alpha).await;
    assert!(
        alpha_pdp.iter().any(|r| r["action"] == "pdp.decision"
            && r["detail"]
                .as_str()
                .unwrap_or("")
                .contains("context=initiator")),
        "alpha's PDP was not called: {alpha_pdp:?}"
    );
    let beta_pdp = audit(beta).await;
    assert!(
        beta_pdp.iter().any(|r| r["action"] == "pdp.decision"
            && r["detail"]
                .as_str()
                .unwrap_or("")
                .contains("context=target")),
        "beta's PDP was not called: {beta_pdp:?}"
    );

    // 15–17. Beta sees it pending, accepts; alpha sees it active.
    let (status, pending) = call(beta.egress(
        Method::GET,
        "/v1/egress/sessions?status=pending",
        seller_key,
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    let entry = pending["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == sid.as_str())
        .cloned()
        .expect("pending session");
    assert_eq!(
        (
            entry["initiator_agent_id"].as_str(),
            entry["target_agent_id"].as_str()
        ),
        (Some("alpha::buyer"), Some("beta::seller"))
    );
    assert_eq!(entry["status"], "pending");
    let (status, accepted) = call(beta.egress(
        Method::POST,
        &format!("/v1/egress/sessions/{sid}/accept"),
        seller_key,
    ))
    .await;
    assert_eq!(
        (status, accepted.clone()),
        (
            StatusCode::OK,
            json!({"status": "accepted", "session_id": sid})
        )
    );
    let (_, listed) = call(alpha.egress(Method::GET, "/v1/egress/sessions", buyer_key)).await;
    assert!(
        listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["session_id"] == sid.as_str() && s["status"] == "active"),
        "{listed}"
    );

    // 18–19. Send and receive, decrypted and verified.
    let order = json!({"kind": "purchase_order_request", "marker": "e2e-mvp-001", "items": [{"sku": "WIDGET-42", "qty": 100}]});
    let (status, sent) = call(
        alpha
            .egress(Method::POST, "/v1/egress/send", buyer_key)
            .json(
                &json!({"session_id": sid, "payload": order, "recipient_agent_id": "beta::seller"}),
            ),
    )
    .await;
    assert_eq!(
        (status, sent),
        (StatusCode::OK, json!({"status": "sent", "session_id": sid}))
    );
    let got = wait_message(beta, seller_key, &sid, -1, |m| {
        m["payload"]["marker"] == "e2e-mvp-001"
    })
    .await;
    assert_eq!(got["payload"], order);
    assert_eq!(got["sender_agent_id"], "alpha::buyer");
    assert_eq!(got["client_seq"], 0);
    assert_eq!(got["verified"], true, "{got}");
    let seq = got["seq"].as_i64().expect("integer seq");

    // 20. Reply.
    let ack = json!({"kind": "purchase_order_ack", "marker": "e2e-mvp-002", "ok": true});
    let (status, _) = call(
        beta.egress(Method::POST, "/v1/egress/send", seller_key)
            .json(
                &json!({"session_id": sid, "payload": ack, "recipient_agent_id": "alpha::buyer"}),
            ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let got = wait_message(alpha, buyer_key, &sid, -1, |m| {
        m["payload"]["marker"] == "e2e-mvp-002"
    })
    .await;
    assert_eq!(
        (got["payload"]["ok"].clone(), got["verified"].clone()),
        (json!(true), json!(true))
    );

    // 21. Incremental poll: nothing newer for beta.
    let (status, newer) = call(beta.egress(
        Method::GET,
        &format!("/v1/egress/messages/{sid}?after={seq}"),
        seller_key,
    ))
    .await;
    assert_eq!(
        (status, newer["count"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{newer}"
    );

    // 22. Non-ASCII, unsorted nested keys round-trip exactly.
    let unicode = json!({"z": 1, "a": {"y": "Zürich € 東京 🚀", "b": [1, 2]}, "marker": "unicode"});
    let (status, _) = call(
        alpha
            .egress(Method::POST, "/v1/egress/send", buyer_key)
            .json(&json!({"session_id": sid, "payload": unicode, "recipient_agent_id": "beta::seller"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let got = wait_message(beta, seller_key, &sid, seq, |m| {
        m["payload"]["marker"] == "unicode"
    })
    .await;
    assert_eq!(
        (
            got["payload"].clone(),
            got["client_seq"].clone(),
            got["verified"].clone()
        ),
        (unicode, json!(1), json!(true))
    );

    // 23. Tool-call tunnel.
    let (status, invoked) = call(
        alpha
            .egress(Method::POST, "/v1/egress/tools/invoke", buyer_key)
            .json(&json!({"session_id": sid, "tool_name": "check_erp_inventory", "parameters": {"sku": "WIDGET-42"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{invoked}");
    assert_eq!(
        (invoked["status"].as_str(), invoked["recipient"].as_str()),
        (Some("sent"), Some("beta::seller"))
    );
    let request_id = invoked["request_id"].as_str().unwrap().to_owned();
    let got = wait_message(beta, seller_key, &sid, seq, |m| {
        m["payload"]["type"] == "tool_call"
    })
    .await;
    assert_eq!(
        got["payload"],
        json!({"type": "tool_call", "tool": "check_erp_inventory", "parameters": {"sku": "WIDGET-42"}, "request_id": request_id})
    );

    // 24. Policy deny by beta's rules: the broker's status and detail are surfaced.
    let (status, _) = call(
        beta.admin(Method::PUT, "/v1/admin/policy")
            .json(&json!({"blocked_agents": ["alpha::buyer"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, denied) = call(
        alpha
            .egress(Method::POST, "/v1/egress/sessions", buyer_key)
            .json(&json!({"target_agent_id": "beta::seller", "target_org_id": "beta", "capabilities": ["procurement.read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    assert!(
        denied["detail"]
            .as_str()
            .unwrap_or("")
            .contains("Agent blocked by policy"),
        "{denied}"
    );
    let (status, _) = call(beta.admin(Method::PUT, "/v1/admin/policy").json(&json!({}))).await;
    assert_eq!(status, StatusCode::OK);

    // 25. Close; beta's poll of the closed session is the broker's 409.
    let (status, closed) = call(alpha.egress(
        Method::POST,
        &format!("/v1/egress/sessions/{sid}/close"),
        buyer_key,
    ))
    .await;
    assert_eq!(
        (status, closed),
        (
            StatusCode::OK,
            json!({"status": "closed", "session_id": sid})
        )
    );
    let (status, body) = call(beta.egress(
        Method::GET,
        &format!("/v1/egress/messages/{sid}"),
        seller_key,
    ))
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // 26. Audit rows with the reference names, and verifying chains.
    let rows = audit(alpha).await;
    for action in [
        "egress_session_open",
        "egress_send",
        "egress_discover",
        "egress_tool_invoke",
        "egress_session_close",
    ] {
        assert!(
            has_action(&rows, "alpha::buyer", action, "success"),
            "{action} missing: {rows:?}"
        );
    }
    assert!(
        has_action(&rows, "alpha::buyer", "egress_session_open", "denied"),
        "{rows:?}"
    );
    assert!(has_action(
        &audit(beta).await,
        "beta::seller",
        "egress_session_accept",
        "success"
    ));
    for proxy in [alpha, beta] {
        let (status, report) = call(proxy.admin(Method::GET, "/v1/admin/audit/verify")).await;
        assert_eq!(
            (status, report["valid"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{report}"
        );
        assert_eq!(proxy.cli_ok(&["audit", "verify"]).await["valid"], true);
    }

    // Discovery pages through the proxy: `limit` and `cursor` go to the broker, `total` and
    // `next_cursor` come back (issue 18).
    beta.create_agent("seller2", &["procurement.read"]).await;
    let page = |body: serde_json::Value| async move {
        call(
            alpha
                .egress(Method::POST, "/v1/egress/discover", buyer_key)
                .json(&body),
        )
        .await
    };
    let (status, first) = page(json!({"capabilities": ["procurement.read"], "limit": 1})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        (first["count"].as_u64(), first["total"].as_u64()),
        (Some(1), Some(2))
    );
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (status, second) =
        page(json!({"capabilities": ["procurement.read"], "limit": 1, "cursor": cursor})).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["count"].as_u64(), Some(1));
    assert!(second["next_cursor"].is_null(), "{second}");
    assert_ne!(
        first["agents"][0]["agent_id"],
        second["agents"][0]["agent_id"]
    );
    // Bad paging: the broker's 422 (limit, cursor) or the proxy's own (an oversized cursor).
    for body in [
        json!({"limit": 0}),
        json!({"cursor": "not-a-cursor"}),
        json!({"cursor": "x".repeat(600)}),
    ] {
        let (status, answer) = page(body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(
            answer["detail"].is_string() || answer["detail"].is_array(),
            "{answer}"
        );
    }
}
