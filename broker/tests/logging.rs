//! `LOG_FORMAT=json`: one JSON object per line with timestamp, level, logger, message and the
//! request id, and no secret in any line.

mod common;

use common::{Options, Store, TestBroker, ADMIN_SECRET};
use reqwest::Method;

#[tokio::test]
async fn json_logs_carry_the_request_id_and_no_secrets() {
    let options = Options::default()
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info,cullis_broker::telemetry::http=debug");
    let broker = TestBroker::start_with(Store::Sqlite, options).await;
    let org = broker.onboard("acme").await;
    let response = broker
        .http
        .get(broker.url("/v1/registry/orgs/me"))
        .header("x-request-id", "trace-me-42")
        .header("x-org-id", &org.org_id)
        .header("x-org-secret", &org.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let _ = broker.admin(Method::GET, "/v1/admin/invites", None).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let logs = broker.stderr();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        for key in ["timestamp", "level", "logger", "message"] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    assert!(
        lines.iter().any(|line| line["request_id"] == "trace-me-42"),
        "{logs}"
    );
    assert!(
        !logs.contains(ADMIN_SECRET),
        "the admin secret leaked into the logs"
    );
    assert!(
        !logs.contains(&org.secret),
        "an org secret leaked into the logs"
    );
}
