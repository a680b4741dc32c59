//! The broker uplink against a real `cullis-broker` process over loopback HTTP: agent
//! provisioning through org calls, login and token reuse, sessions and E2E messages both ways
//! with inner-signature verification, broker errors surfaced precisely, no re-login on policy
//! denials, re-login after a token revocation, and recovery after the broker was unreachable.

mod uplink_common;

use cullis_e2e::stack::Store;
use cullis_proxy::uplink::UplinkError;
use reqwest::Method;
use serde_json::json;
use uplink_common::*;

#[tokio::test]
async fn login_once_then_token_reused_and_single_flight() {
    let broker = broker(Store::Sqlite).await;
    let uplink = uplink(&broker.base);
    let orgs = two_orgs(&broker, &uplink, "allow").await;
    assert_eq!(uplink.login_count(), 2, "one pin login per agent");

    // Calls reuse the cached token; concurrent callers of a fresh agent share one login.
    let fresh = provision_without_login(&uplink, &orgs.alpha, "fresh").await;
    let logins = uplink.login_count();
    let wanted = caps();
    let calls = (0..5).map(|_| uplink.discover(&fresh, &wanted, None));
    for found in futures_util::future::join_all(calls).await {
        let agents = found.expect("discover");
        assert!(
            agents.iter().any(|a| a.agent_id == "beta::seller"),
            "{agents:?}"
        );
    }
    assert_eq!(uplink.login_count(), logins + 1, "single-flight login");
    uplink.discover(&orgs.buyer, &caps(), None).await.unwrap();
    assert_eq!(
        uplink.login_count(),
        logins + 1,
        "the buyer's token is reused"
    );

    // With the broker nonce known (shared across agents), a login is a single request.
    let before = uplink.request_count();
    uplink.login(&orgs.seller).await.unwrap();
    assert_eq!(uplink.request_count(), before + 1);
}

async fn provision_without_login(
    uplink: &cullis_proxy::uplink::Uplink,
    org: &cullis_e2e::setup::OrgIdentity,
    name: &str,
) -> cullis_proxy::uplink::AgentCredentials {
    let identity = org.agent_identity(name);
    uplink
        .register_agent(&org_credentials(org), &identity.agent_id, name, &caps())
        .await
        .unwrap();
    // Idempotent: a second provisioning (409s) is fine.
    uplink
        .register_agent(&org_credentials(org), &identity.agent_id, name, &caps())
        .await
        .expect("register_agent is idempotent");
    credentials(identity)
}

async fn exchange_both_ways(store: Store) {
    let broker = broker(store).await;
    let uplink = uplink(&broker.base);
    let orgs = two_orgs(&broker, &uplink, "allow").await;
    let (buyer, seller) = (&orgs.buyer, &orgs.seller);

    let found = uplink
        .discover(buyer, &caps(), Some("seller"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].org_id, "beta");
    let sid = uplink
        .open_session(buyer, "beta::seller", "beta", &caps())
        .await
        .unwrap();
    let pending = uplink.list_sessions(seller, Some("pending")).await.unwrap();
    assert!(pending.iter().any(|s| s.session_id == sid), "{pending:?}");
    uplink.accept_session(seller, &sid).await.unwrap();
    let active = uplink.list_sessions(buyer, Some("active")).await.unwrap();
    assert_eq!(active[0].session_id, sid);

    let order =
        json!({"kind": "purchase_order_request", "items": [{"sku": "WIDGET-42", "qty": 100}]});
    uplink
        .send(buyer, &sid, "beta::seller", &order, 0)
        .await
        .unwrap();
    let received = uplink.poll(seller, &sid, -1).await.unwrap();
    assert_eq!(received.len(), 1);
    let first = &received[0];
    assert_eq!(first.payload, order);
    assert!(first.verified, "inner signature verified");
    assert_eq!(first.sender_agent_id, "alpha::buyer");
    assert_eq!(first.client_seq, Some(0));
    assert!(first.error.is_none());

    // Non-ASCII, nested, unsorted keys: exact round trip the other way.
    let reply = json!({"z": 1, "a": {"y": "Zürich €", "b": [1, 2]}, "emoji": "🚀"});
    uplink
        .send(seller, &sid, "alpha::buyer", &reply, 0)
        .await
        .unwrap();
    uplink
        .send(seller, &sid, "alpha::buyer", &json!({"n": 2}), 1)
        .await
        .unwrap();
    let back = uplink.poll(buyer, &sid, -1).await.unwrap();
    let texts: Vec<_> = back
        .iter()
        .filter(|m| m.sender_agent_id == "beta::seller")
        .collect();
    assert_eq!(texts.len(), 2, "{back:?}");
    assert_eq!(texts[0].payload, reply);
    assert!(texts.iter().all(|m| m.verified));
    // Incremental poll.
    let after = texts[0].seq;
    let newer = uplink.poll(buyer, &sid, after).await.unwrap();
    assert!(newer.iter().all(|m| m.seq > after));
    assert!(newer.iter().any(|m| m.payload == json!({"n": 2})));

    uplink.close_session(buyer, &sid).await.unwrap();
    match uplink.poll(seller, &sid, -1).await {
        Err(UplinkError::Broker {
            status: 409,
            detail,
        }) => assert!(!detail.is_empty()),
        other => panic!("poll of a closed session: {other:?}"),
    }
}

#[tokio::test]
async fn sessions_and_messages_both_ways_sqlite() {
    exchange_both_ways(Store::Sqlite).await;
}

#[tokio::test]
async fn sessions_and_messages_both_ways_postgres_redis() {
    exchange_both_ways(Store::PostgresRedis).await;
}

#[tokio::test]
async fn broker_errors_keep_status_and_detail() {
    let broker = broker(Store::Sqlite).await;
    let uplink = uplink(&broker.base);
    let orgs = two_orgs(&broker, &uplink, "allow").await;
    match uplink
        .open_session(&orgs.buyer, "beta::nobody", "beta", &caps())
        .await
    {
        Err(UplinkError::Broker { status, detail }) => {
            assert_eq!(status, 404, "{detail}");
            assert!(detail.to_lowercase().contains("not found"), "{detail}");
        }
        other => panic!("open to an unknown agent: {other:?}"),
    }
    // Sending to an agent that has no key at the broker: the key lookup's 404.
    match uplink
        .send(
            &orgs.buyer,
            "00000000-0000-0000-0000-000000000000",
            "beta::nobody",
            &json!({}),
            0,
        )
        .await
    {
        Err(UplinkError::Broker { status: 404, .. }) => {}
        other => panic!("send to an unknown agent: {other:?}"),
    }
    // Org call with a wrong secret.
    let wrong = cullis_proxy::uplink::OrgCredentials {
        org_id: "alpha".into(),
        secret: "wrong".into(),
    };
    assert!(matches!(
        uplink.org_status(&wrong).await,
        Err(UplinkError::Broker {
            status: 401 | 403,
            ..
        })
    ));
    let status = uplink
        .org_status(&org_credentials(&orgs.alpha))
        .await
        .unwrap();
    assert_eq!(status["org_id"], "alpha");
    assert_eq!(status["status"], "active");
}

#[tokio::test]
async fn policy_denial_is_not_retried_with_a_new_login() {
    let broker = broker(Store::Sqlite).await;
    let uplink = uplink(&broker.base);
    let orgs = two_orgs(&broker, &uplink, "deny").await;
    let logins = uplink.login_count();
    match uplink
        .open_session(&orgs.buyer, "beta::seller", "beta", &caps())
        .await
    {
        Err(UplinkError::Broker {
            status: 403,
            detail,
        }) => assert!(!detail.is_empty()),
        other => panic!("denied session: {other:?}"),
    }
    assert_eq!(uplink.login_count(), logins, "no re-login on 403");
}

#[tokio::test]
async fn revoked_token_is_replaced_by_one_new_login() {
    let broker = broker(Store::Sqlite).await;
    let uplink = uplink(&broker.base);
    let orgs = two_orgs(&broker, &uplink, "allow").await;
    uplink.discover(&orgs.buyer, &caps(), None).await.unwrap();
    let logins = uplink.login_count();
    // Revoke the buyer's tokens at the broker (tokens issued up to this second are dead).
    let (status, body) = broker
        .org(
            &orgs.alpha,
            Method::POST,
            "/v1/auth/revoke-agent/alpha::buyer",
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    uplink.discover(&orgs.buyer, &caps(), None).await.unwrap();
    assert_eq!(
        uplink.login_count(),
        logins + 1,
        "401 → one re-login → retry"
    );
}

#[tokio::test]
async fn revoke_agent_cuts_it_off_and_register_restores_it() {
    let broker = broker(Store::Sqlite).await;
    let uplink = uplink(&broker.base);
    let orgs = two_orgs(&broker, &uplink, "allow").await;
    let alpha = org_credentials(&orgs.alpha);
    uplink.revoke_agent(&alpha, "alpha::buyer").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    match uplink.discover(&orgs.buyer, &caps(), None).await {
        Err(UplinkError::Broker { status: 403, .. }) => {}
        other => panic!("revoked agent: {other:?}"),
    }
    // Unknown agents are already cut off.
    uplink.revoke_agent(&alpha, "alpha::ghost").await.unwrap();
    // Provisioning again re-approves the binding.
    uplink
        .register_agent(&alpha, "alpha::buyer", "buyer", &caps())
        .await
        .unwrap();
    uplink.discover(&orgs.buyer, &caps(), None).await.unwrap();
}

#[tokio::test]
async fn rotated_sender_key_makes_old_messages_unverified() {
    let broker = broker(Store::Sqlite).await;
    let uplink = uplink(&broker.base);
    let orgs = two_orgs(&broker, &uplink, "allow").await;
    let sid = uplink
        .open_session(&orgs.buyer, "beta::seller", "beta", &caps())
        .await
        .unwrap();
    uplink.accept_session(&orgs.seller, &sid).await.unwrap();
    uplink
        .send(&orgs.buyer, &sid, "beta::seller", &json!({"v": 1}), 0)
        .await
        .unwrap();
    // The buyer rotates to a new key: its old message's inner signature no longer matches the
    // key the broker now publishes, and the recipient is told so.
    let renewed = orgs.alpha.agent_identity("buyer");
    uplink
        .rotate_cert(
            &org_credentials(&orgs.alpha),
            "alpha::buyer",
            &renewed.cert_pem,
        )
        .await
        .unwrap();
    let renewed = credentials(renewed);
    // Rotation revokes the tokens issued up to this second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    uplink.login(&renewed).await.unwrap();
    let received = uplink.poll(&orgs.seller, &sid, -1).await.unwrap();
    assert_eq!(received[0].payload, json!({"v": 1}));
    assert!(
        !received[0].verified,
        "signed by a key that is no longer the sender's"
    );
    // New messages under the new key verify.
    uplink
        .send(&renewed, &sid, "beta::seller", &json!({"v": 2}), 1)
        .await
        .unwrap();
    let received = uplink
        .poll(&orgs.seller, &sid, received[0].seq)
        .await
        .unwrap();
    assert_eq!(received[0].payload, json!({"v": 2}));
    assert!(received[0].verified);
}

#[tokio::test]
async fn broker_unreachable_then_recovered() {
    let broker = broker(Store::Sqlite).await;
    let relay = Relay::start(&broker.base).await;
    let uplink = uplink(&relay.base);
    let orgs = two_orgs(&broker, &uplink, "allow").await;
    uplink.healthz().await.unwrap();
    uplink.discover(&orgs.buyer, &caps(), None).await.unwrap();

    relay.down();
    match uplink.discover(&orgs.buyer, &caps(), None).await {
        Err(UplinkError::Unreachable(detail)) => assert!(!detail.is_empty()),
        other => panic!("broker down: {other:?}"),
    }
    assert!(matches!(
        uplink.healthz().await,
        Err(UplinkError::Unreachable(_))
    ));

    relay.up();
    uplink.healthz().await.unwrap();
    let agents = uplink.discover(&orgs.buyer, &caps(), None).await.unwrap();
    assert!(agents.iter().any(|a| a.agent_id == "beta::seller"));
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let uplink = uplink(&base);
    assert!(matches!(
        uplink.healthz().await,
        Err(UplinkError::Unreachable(_))
    ));
    let bad =
        cullis_proxy::uplink::Uplink::new(cullis_proxy::uplink::UplinkConfig::new("ftp://example"));
    assert!(matches!(bad, Err(UplinkError::Protocol(_))));
}

#[tokio::test]
async fn rate_limits_short_retry_after_is_waited_long_one_surfaces() {
    let options = cullis_e2e::stack::Options::default()
        .env("RATE_LIMIT_BROKER_MESSAGE", "2/2s")
        .env("RATE_LIMIT_BROKER_SESSION", "1/60s");
    let broker = broker_with(Store::Sqlite, options).await;
    let uplink = uplink(&broker.base);
    let orgs = two_orgs(&broker, &uplink, "allow").await;
    let sid = uplink
        .open_session(&orgs.buyer, "beta::seller", "beta", &caps())
        .await
        .unwrap();
    match uplink
        .open_session(&orgs.buyer, "beta::seller", "beta", &caps())
        .await
    {
        Err(UplinkError::Broker {
            status: 429,
            detail,
        }) => assert!(!detail.is_empty()),
        other => panic!("second session within the limit window: {other:?}"),
    }
    uplink.accept_session(&orgs.seller, &sid).await.unwrap();
    let started = std::time::Instant::now();
    for seq in 0..3 {
        uplink
            .send(&orgs.buyer, &sid, "beta::seller", &json!({"seq": seq}), seq)
            .await
            .expect("a 2 s Retry-After is waited for");
    }
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let received = uplink.poll(&orgs.seller, &sid, -1).await.unwrap();
    assert_eq!(received.len(), 3);
}
