//! Cross-org capability discovery (`GET /v1/registry/agents/search`, broker spec §4): only
//! active agents with an approved binding are found; the caller's own org is left out unless
//! asked for; capabilities are AND-ed; pattern, q, org_id, agent_id and agent_uri filter.

mod common;

use common::{Store, TestBroker, TRUST_DOMAIN};
use cullis_e2e::client::AgentSession;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn ids(session: &AgentSession, query: &str) -> Vec<String> {
    let (status, body) = session
        .call(
            Method::GET,
            &format!("/v1/registry/agents/search?{query}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let agents = body["agents"].as_array().unwrap();
    assert_eq!(body["total"], agents.len(), "{body}");
    agents
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn discovery(store: Store) {
    let broker = TestBroker::start(store).await;
    let acme = broker.onboard("acme").await;
    let globex = broker.onboard("globex").await;
    let buyer = broker
        .register_agent(&acme, "buyer", &["order.place"])
        .await;
    broker.register_agent(&acme, "other", &["quote"]).await;
    broker
        .register_agent(&globex, "seller", &["quote", "ship"])
        .await;
    broker.register_agent(&globex, "quoter", &["quote"]).await;
    broker
        .register_agent(&globex, "retired", &["quote", "ship"])
        .await;
    // Registered but never bound, and bound but not approved: not discoverable.
    let body = json!({"agent_id": "globex::unbound", "org_id": "globex", "display_name": "unbound", "capabilities": ["quote", "ship"]});
    let (status, _) = broker
        .org(&globex, Method::POST, "/v1/registry/agents", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json!({"agent_id": "globex::pending", "org_id": "globex", "display_name": "pending", "capabilities": ["quote", "ship"]});
    let (status, _) = broker
        .org(&globex, Method::POST, "/v1/registry/agents", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = broker
        .org(
            &globex,
            Method::POST,
            "/v1/registry/bindings",
            Some(json!({"org_id": "globex", "agent_id": "globex::pending", "scope": ["quote"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // An inactive agent (no API deactivates agents yet): flip the flag in the database.
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&broker.database_url)
            .await
            .unwrap();
        sqlx::query("UPDATE agents SET is_active = 0 WHERE agent_id = 'globex::retired'")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let session = buyer.login(&broker.base, &broker.http).await.unwrap();

    // Capabilities: one, then two (ALL must match); other orgs only by default.
    assert_eq!(
        ids(&session, "capability=quote").await,
        ["globex::seller", "globex::quoter"]
    );
    assert_eq!(
        ids(&session, "capability=quote&capability=ship").await,
        ["globex::seller"]
    );
    assert!(ids(&session, "capability=quote&capability=nope")
        .await
        .is_empty());
    // Own org only on request.
    assert_eq!(
        ids(&session, "capability=quote&include_own_org=true").await,
        ["acme::other", "globex::seller", "globex::quoter"]
    );
    assert!(ids(&session, "org_id=acme").await.is_empty());
    assert_eq!(
        ids(&session, "org_id=acme&include_own_org=true").await,
        ["acme::buyer", "acme::other"]
    );
    assert_eq!(
        ids(&session, "org_id=globex").await,
        ["globex::seller", "globex::quoter"]
    );
    // Glob over the agent id or its SPIFFE URI; `pattern=*` is what the SDK sends.
    assert_eq!(
        ids(&session, "pattern=*").await,
        ["globex::seller", "globex::quoter"]
    );
    assert_eq!(
        ids(&session, "pattern=globex%3A%3As*").await,
        ["globex::seller"]
    );
    assert_eq!(
        ids(&session, "pattern=spiffe%3A%2F%2F*%2Fglobex%2Fquot%3Fr").await,
        ["globex::quoter"]
    );
    assert!(ids(&session, "pattern=GLOBEX*").await.is_empty());
    // Case-insensitive substring of id, display name, org or description.
    assert_eq!(ids(&session, "q=QUOTER").await, ["globex::quoter"]);
    assert_eq!(
        ids(&session, "q=test%20agent").await,
        ["globex::seller", "globex::quoter"]
    );
    assert_eq!(
        ids(
            &session,
            "q=agent&include_own_org=true&capability=order.place"
        )
        .await,
        ["acme::buyer"]
    );
    // Direct lookups.
    assert_eq!(
        ids(&session, "agent_id=globex::seller").await,
        ["globex::seller"]
    );
    assert_eq!(
        ids(&session, "agent_id=acme::other").await,
        ["acme::other"],
        "a direct lookup never leaves out the caller's org"
    );
    assert!(ids(&session, "agent_id=globex::seller&capability=nope")
        .await
        .is_empty());
    let uri = format!("spiffe://{TRUST_DOMAIN}/globex/quoter");
    assert_eq!(
        ids(&session, &format!("agent_uri={uri}")).await,
        ["globex::quoter"]
    );
    assert!(ids(&session, "agent_uri=not-a-uri").await.is_empty());
    // Never discoverable: no binding, a pending binding, inactive.
    for hidden in ["globex::unbound", "globex::pending", "globex::retired"] {
        assert!(
            ids(&session, &format!("agent_id={hidden}"))
                .await
                .is_empty(),
            "{hidden}"
        );
        assert!(!ids(&session, "pattern=*&include_own_org=true")
            .await
            .contains(&hidden.to_owned()));
    }

    // The response carries full AgentResponse objects.
    let (_, body) = session
        .call(
            Method::GET,
            "/v1/registry/agents/search?agent_id=globex::seller",
            None,
        )
        .await;
    let agent = &body["agents"][0];
    assert_eq!(agent["org_id"], "globex");
    assert_eq!(agent["capabilities"], json!(["quote", "ship"]));
    assert_eq!(agent["is_active"], true);
    assert_eq!(agent["description"], "test agent");
    assert_eq!(
        agent["agent_uri"],
        format!("spiffe://{TRUST_DOMAIN}/globex/seller")
    );

    // No parameter at all (include_own_org alone or empty values do not count): 422.
    for query in ["", "?include_own_org=true", "?pattern=&q="] {
        let (status, body) = session
            .call(
                Method::GET,
                &format!("/v1/registry/agents/search{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(
            body,
            json!({"detail": "At least one search parameter is required"})
        );
    }
    let (status, _) = session
        .call(
            Method::GET,
            "/v1/registry/agents/search?pattern=*&include_own_org=maybe",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Unauthenticated: 401.
    let response = broker
        .http
        .get(broker.url("/v1/registry/agents/search?capability=quote"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");
}

#[tokio::test]
async fn discovery_on_sqlite() {
    discovery(Store::Sqlite).await;
}

#[tokio::test]
async fn discovery_on_postgres_and_redis() {
    discovery(Store::PostgresRedis).await;
}

/// Pages (issue 18): `limit` (default and maximum `DISCOVERY_MAX_RESULTS`) and an opaque
/// `cursor`; `total` is every match on every page and `next_cursor` is null on the last. A
/// client that reads `agents` only (the reference SDKs) sees the first page.
async fn paging(store: Store) {
    let broker = TestBroker::start_with(
        store,
        common::Options::default().env("DISCOVERY_MAX_RESULTS", "3"),
    )
    .await;
    let acme = broker.onboard("acme").await;
    let globex = broker.onboard("globex").await;
    let buyer = broker.register_agent(&acme, "buyer", &["buy"]).await;
    let mut expected = Vec::new();
    for i in 0..7 {
        let name = format!("seller-{i}");
        broker.register_agent(&globex, &name, &["sell"]).await;
        expected.push(format!("globex::{name}"));
    }
    let session = buyer.login(&broker.base, &broker.http).await.unwrap();
    let page = |query: String| {
        let session = &session;
        async move {
            session
                .call(
                    Method::GET,
                    &format!("/v1/registry/agents/search?{query}"),
                    None,
                )
                .await
        }
    };

    // The default page is the maximum; the SDK's `pattern=*` sees 3 of 7 and a cursor.
    let (status, body) = page("pattern=*".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agents"].as_array().unwrap().len(), 3);
    assert_eq!(body["total"], 7);
    assert!(body["next_cursor"].is_string(), "{body}");

    // Walking with limit=2 visits every match once, in registration order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("capability=sell&limit=2&cursor={c}"),
            None => "capability=sell&limit=2".into(),
        };
        let (status, body) = page(query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 7);
        pages += 1;
        for agent in body["agents"].as_array().unwrap() {
            seen.push(agent["agent_id"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(body["next_cursor"].is_null(), "{body}");
                break;
            }
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, expected);

    // Bad paging parameters: 422 naming the parameter, never a 500.
    for (query, loc) in [
        ("pattern=*&limit=0", "limit"),
        ("pattern=*&limit=4", "limit"),
        ("pattern=*&limit=-1", "limit"),
        ("pattern=*&limit=two", "limit"),
        ("pattern=*&cursor=not-a-cursor", "cursor"),
        ("pattern=*&cursor=bm90IGEgY3Vyc29y", "cursor"),
    ] {
        let (status, body) = page(query.into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", loc]), "{query}");
    }
    let (_, body) = page("pattern=*&limit=9".into()).await;
    assert_eq!(
        body["detail"][0]["msg"],
        "limit must be between 1 and 3 (DISCOVERY_MAX_RESULTS)"
    );
}

#[tokio::test]
async fn paging_on_sqlite() {
    paging(Store::Sqlite).await;
}

#[tokio::test]
async fn paging_on_postgres_and_redis() {
    paging(Store::PostgresRedis).await;
}
