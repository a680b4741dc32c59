//! `/v1/policy/rules` CRUD over real HTTP against the real broker binary (reference §1.6), and
//! the local rules engine reading what the API stored.

mod common;

use common::{Store, TestBroker};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn audit_rows(broker: &TestBroker, event: &str) -> Vec<(Option<String>, Value)> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&broker.database_url).await.unwrap();
    let rows =
        sqlx::query("SELECT org_id, details FROM audit_log WHERE event_type = $1 ORDER BY id")
            .bind(event)
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.iter()
        .map(|row| {
            let details: Option<String> = row.try_get("details").unwrap();
            (
                row.try_get("org_id").unwrap(),
                serde_json::from_str(&details.unwrap_or_default()).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn policy_rules_crud_on_sqlite() {
    policy_rules_crud(Store::Sqlite).await;
}

#[tokio::test]
async fn policy_rules_crud_on_postgres() {
    policy_rules_crud(Store::PostgresRedis).await;
}

async fn policy_rules_crud(store: Store) {
    let broker = TestBroker::start(store).await;
    let acme = broker.onboard("acme").await;
    let beta = broker.onboard("beta").await;
    let session_rules = json!({"effect": "allow", "conditions": {"target_org_id": ["beta"], "capabilities": ["order.read"]}});

    // Create.
    let (status, created) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/policy/rules",
            Some(json!({"policy_id": "acme::session-beta", "org_id": "acme", "policy_type": "session", "rules": session_rules, "unknown": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["id"].as_i64().is_some());
    assert_eq!(created["policy_id"], "acme::session-beta");
    assert_eq!(created["org_id"], "acme");
    assert_eq!(created["policy_type"], "session");
    assert_eq!(created["rules"], session_rules);
    assert_eq!(created["is_active"], true);
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, message) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/policy/rules",
            Some(json!({"policy_id": "acme::message", "org_id": "acme", "policy_type": "message", "rules": {"conditions": {"blocked_fields": ["plaintext"]}}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{message}");

    // Refusals.
    let (status, body) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/policy/rules",
            Some(
                json!({"policy_id": "x", "org_id": "beta", "policy_type": "session", "rules": {}}),
            ),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (
            StatusCode::FORBIDDEN,
            "You cannot create a policy for another organization"
        )
    );
    let (status, body) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/policy/rules",
            Some(json!({"policy_id": "x", "org_id": "acme", "policy_type": "rbac", "rules": {}})),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (
            StatusCode::BAD_REQUEST,
            "policy_type must be 'session' or 'message'"
        )
    );
    // policy_id is unique across orgs.
    let (status, body) = broker
        .org(
            &beta,
            Method::POST,
            "/v1/policy/rules",
            Some(json!({"policy_id": "acme::session-beta", "org_id": "beta", "policy_type": "session", "rules": {}})),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::CONFLICT, "policy_id already exists")
    );
    let (status, body) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/policy/rules",
            Some(json!({"policy_id": "big", "org_id": "acme", "policy_type": "session", "rules": {"blob": "x".repeat(33 * 1024)}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "rules"]));
    let (status, body) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/policy/rules",
            Some(json!({"policy_id": "x", "org_id": "acme", "policy_type": "session", "rules": ["not", "an", "object"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/policy/rules",
            Some(json!({"org_id": "acme", "policy_type": "session", "rules": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // List: active only, optional type filter, own org only.
    let (status, listed) = broker
        .org(&acme, Method::GET, "/v1/policy/rules?org_id=acme", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme::session-beta", "acme::message"]);
    let (_, sessions) = broker
        .org(
            &acme,
            Method::GET,
            "/v1/policy/rules?org_id=acme&policy_type=message",
            None,
        )
        .await;
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    assert_eq!(sessions[0]["policy_id"], "acme::message");
    let (status, body) = broker
        .org(&beta, Method::GET, "/v1/policy/rules?org_id=acme", None)
        .await;
    assert_eq!(
        (status, detail(&body)),
        (
            StatusCode::FORBIDDEN,
            "You cannot view policies of another organization"
        )
    );
    let (status, _) = broker
        .org(&acme, Method::GET, "/v1/policy/rules", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Get.
    let (status, fetched) = broker
        .org(
            &acme,
            Method::GET,
            "/v1/policy/rules/acme::session-beta",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);
    let (status, body) = broker
        .org(
            &beta,
            Method::GET,
            "/v1/policy/rules/acme::session-beta",
            None,
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (
            StatusCode::FORBIDDEN,
            "You cannot view policies of another organization"
        )
    );
    let (status, body) = broker
        .org(&acme, Method::GET, "/v1/policy/rules/nope", None)
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::NOT_FOUND, "Policy not found")
    );

    // Deactivate: soft, idempotent, own org only, audited every time.
    let (status, body) = broker
        .org(
            &beta,
            Method::DELETE,
            "/v1/policy/rules/acme::session-beta",
            None,
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (
            StatusCode::FORBIDDEN,
            "You cannot modify policies of another organization"
        )
    );
    let (status, body) = broker
        .org(&acme, Method::DELETE, "/v1/policy/rules/nope", None)
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::NOT_FOUND, "Policy not found")
    );
    for _ in 0..2 {
        let (status, off) = broker
            .org(
                &acme,
                Method::DELETE,
                "/v1/policy/rules/acme::session-beta",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{off}");
        assert_eq!(off["is_active"], false);
        assert_eq!(off["id"], created["id"]);
    }
    let (_, listed) = broker
        .org(&acme, Method::GET, "/v1/policy/rules?org_id=acme", None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (status, inactive) = broker
        .org(
            &acme,
            Method::GET,
            "/v1/policy/rules/acme::session-beta",
            None,
        )
        .await;
    assert_eq!(
        (status, &inactive["is_active"]),
        (StatusCode::OK, &json!(false))
    );

    assert_eq!(
        audit_rows(&broker, "policy.created").await,
        vec![
            (
                Some("acme".into()),
                json!({"policy_id": "acme::session-beta", "policy_type": "session"})
            ),
            (
                Some("acme".into()),
                json!({"policy_id": "acme::message", "policy_type": "message"})
            ),
        ]
    );
    assert_eq!(
        audit_rows(&broker, "policy.deactivated").await,
        vec![
            (
                Some("acme".into()),
                json!({"policy_id": "acme::session-beta"})
            );
            2
        ]
    );
}

#[tokio::test]
async fn the_local_engine_reads_rules_stored_through_the_api_on_sqlite() {
    local_engine_reads_api_rules(Store::Sqlite).await;
}

#[tokio::test]
async fn the_local_engine_reads_rules_stored_through_the_api_on_postgres() {
    local_engine_reads_api_rules(Store::PostgresRedis).await;
}

/// What the API stores is what the local engine decides on.
async fn local_engine_reads_api_rules(store: Store) {
    use cullis_broker::policy::{
        MessagePolicyRequest, PolicyEngine, PolicySettings, SessionRulesRequest, LOCAL_RULES_TTL,
    };
    let broker = TestBroker::start(store).await;
    let acme = broker.onboard("acme").await;
    let (status, _) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/policy/rules",
            Some(json!({"policy_id": "acme::s", "org_id": "acme", "policy_type": "session", "rules": {"conditions": {"target_org_id": ["beta"]}}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = broker
        .org(
            &acme,
            Method::POST,
            "/v1/policy/rules",
            Some(json!({"policy_id": "acme::m", "org_id": "acme", "policy_type": "message", "rules": {"conditions": {"required_fields": ["ciphertext"]}}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let db = cullis_broker::db::Db::connect(&broker.database_url)
        .await
        .unwrap();
    let audit = cullis_broker::audit::ChainWriter::new(db.clone());
    let engine = PolicyEngine::new(PolicySettings::default()).unwrap();
    let session = |target: &str| SessionRulesRequest {
        initiator_org_id: "acme".into(),
        target_org_id: target.into(),
        capabilities: vec!["order.read".into()],
        ..Default::default()
    };
    let allowed = engine
        .evaluate_session_rules(&db, &audit, &session("beta"))
        .await
        .unwrap();
    assert!(allowed.allowed, "{allowed:?}");
    assert_eq!(allowed.policy_id.as_deref(), Some("acme::s"));
    let denied = engine
        .evaluate_session_rules(&db, &audit, &session("gamma"))
        .await
        .unwrap();
    assert_eq!(
        denied.reason,
        "Target organisation 'gamma' not permitted by policy"
    );
    let payload = json!({"iv": "x"});
    let (message, evaluated) = engine
        .evaluate_message_rules(
            &db,
            &MessagePolicyRequest {
                sender_org_id: "acme",
                payload: &payload,
                sender_agent_id: None,
                session_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        message.reason,
        "Required fields missing from payload: ['ciphertext']"
    );
    audit.record(evaluated).await.unwrap();
    assert_eq!(audit_rows(&broker, "policy.evaluated").await.len(), 3);

    // Deactivated through the API ⇒ gone from the engine's view ⇒ default deny.
    let (status, _) = broker
        .org(&acme, Method::DELETE, "/v1/policy/rules/acme::s", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // This engine stands for another replica: it sees the change once its memo of the org's
    // rules has expired (the broker process that served the DELETE sees it at once).
    tokio::time::sleep(LOCAL_RULES_TTL).await;
    let after = engine
        .evaluate_session_rules(&db, &audit, &session("beta"))
        .await
        .unwrap();
    assert_eq!(after.reason, "No policy defined — default deny");
}
