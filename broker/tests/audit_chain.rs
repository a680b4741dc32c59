//! The tamper-evident audit log against the real broker binary, on SQLite and on PostgreSQL:
//! the chain verifies (API and `cullis-broker audit verify`) after an identity flow, tampering
//! by someone with database access is found at the right entry, the triggers refuse UPDATE and
//! DELETE, concurrent appends from several processes form one chain, and the export streams
//! NDJSON and CSV with filters and limits.

mod common;

use common::{BrokerApi, Store, TestBroker, ADMIN_SECRET, REDIS_URL};
use cullis_broker::audit::{AuditEvent, ChainWriter, Outcome};
use cullis_broker::db::Db;
use cullis_shared::wire::audit::AuditExportRow;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Onboard acme, register an agent (agent + binding audit rows), log in (token audit row).
async fn identity_flow(broker: &TestBroker) {
    let acme = broker.onboard("acme").await;
    let buyer = broker
        .register_agent(&acme, "buyer", &["order.read", "order.write"])
        .await;
    buyer
        .login(&broker.base, &broker.http)
        .await
        .expect("login with the nonce retry");
}

/// `cullis-broker audit verify` against `database_url`: exit code and stdout.
fn cli_verify(database_url: &str) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cullis-broker"))
        .args(["audit", "verify"])
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.lines().count() == 1 || output.status.code() == Some(2),
        "one summary line expected, got {stdout:?} / {stderr}"
    );
    (output.status.code(), stdout)
}

async fn api_verify(broker: &TestBroker) -> Value {
    let (status, body) = broker
        .admin(Method::GET, "/v1/admin/audit/verify", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Asserts the chain is intact through the API and the CLI; returns the number of rows.
async fn assert_intact(broker: &TestBroker) -> u64 {
    let body = api_verify(broker).await;
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["broken_id"], 0, "{body}");
    assert!(body.get("reason").is_none(), "{body}");
    let total = body["total"].as_u64().unwrap();
    let (code, stdout) = cli_verify(&broker.database_url);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("intact: {total} entries")),
        "{stdout}"
    );
    total
}

/// Asserts the chain is broken at `id` (position `index`) for `reason`, through API and CLI.
async fn assert_broken_at(broker: &TestBroker, id: i64, index: u64, reason: &str) {
    let body = api_verify(broker).await;
    assert_eq!(
        (&body["valid"], &body["broken_id"], &body["total"]),
        (&json!(false), &json!(id), &json!(index)),
        "{body}"
    );
    assert!(
        body["reason"].as_str().unwrap().starts_with(reason),
        "{body}"
    );
    let (code, stdout) = cli_verify(&broker.database_url);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("BROKEN at entry id {id} ")) && stdout.contains(reason),
        "{stdout}"
    );
}

async fn raw_export(
    broker: &TestBroker,
    query: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let response = broker
        .http
        .get(broker.url("/v1/admin/audit/export"))
        .header("x-admin-secret", ADMIN_SECRET)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The NDJSON export as wire rows (checks the content type and line framing).
async fn export_rows(broker: &TestBroker, query: &[(&str, &str)]) -> Vec<AuditExportRow> {
    let (status, headers, body) = raw_export(broker, query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert!(body.is_empty() || body.ends_with('\n'));
    body.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

async fn all_rows(broker: &TestBroker) -> Vec<AuditExportRow> {
    export_rows(broker, &[("limit", "50000")]).await
}

/// Every row links to the one before it: no fork, no gap.
fn assert_linked(rows: &[AuditExportRow]) {
    let mut previous: Option<&str> = None;
    let mut seen = HashSet::new();
    for row in rows {
        assert_eq!(row.previous_hash.as_deref(), previous, "row {}", row.id);
        assert!(seen.insert(row.previous_hash.clone()), "fork at {}", row.id);
        previous = row.entry_hash.as_deref();
        assert!(previous.is_some(), "row {} unhashed", row.id);
    }
}

async fn db_of(broker: &TestBroker) -> Db {
    Db::connect(&broker.database_url).await.unwrap()
}

async fn exec(db: &Db, sql: &str) -> Result<u64, String> {
    sqlx::query(sql)
        .execute(db.pool())
        .await
        .map(|done| done.rows_affected())
        .map_err(|e| e.to_string())
}

/// What an attacker with database access does first: get the triggers out of the way.
async fn disable_triggers(db: &Db, store: Store) {
    let statements: &[&str] = match store {
        Store::Sqlite => &[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ],
        Store::PostgresRedis => &["ALTER TABLE audit_log DISABLE TRIGGER USER"],
    };
    for sql in statements {
        exec(db, sql).await.unwrap();
    }
}

/// A second broker process; killed on drop.
struct SecondBroker {
    child: Child,
    api: BrokerApi,
}

impl Drop for SecondBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A second broker process on the same database (and Redis) as `first`.
async fn second_broker(first: &TestBroker, store: Store) -> SecondBroker {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cullis-broker"));
    command
        .args(["serve", "--port", "0"])
        .current_dir(&first.dir)
        .env_clear()
        .env("ADMIN_SECRET", ADMIN_SECRET)
        .env("DATABASE_URL", &first.database_url)
        .env(
            "BROKER_CA_KEY_PATH",
            first.dir.join("certs/broker-ca-key.pem"),
        )
        .env("BROKER_CA_CERT_PATH", first.dir.join("certs/broker-ca.pem"))
        .env("BCRYPT_COST", "4")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if store == Store::PostgresRedis {
        command.env("REDIS_URL", REDIS_URL);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(30), line)
        .await
        .expect("second broker starts")
        .unwrap()
        .unwrap();
    assert!(line.contains("listening on "), "{line}");
    let base = line.trim().rsplit(' ').next().unwrap().to_owned();
    SecondBroker {
        child,
        api: BrokerApi::new(&base, ADMIN_SECRET),
    }
}

// ---------------------------------------------------------------------------------------------
// The chain after an identity flow.

async fn chain_verifies_after_identity_flow(store: Store) {
    let broker = TestBroker::start(store).await;
    // An empty log is intact.
    assert_eq!(assert_intact(&broker).await, 0);
    identity_flow(&broker).await;
    let total = assert_intact(&broker).await;
    let rows = all_rows(&broker).await;
    assert_eq!(rows.len() as u64, total);
    assert!(total >= 6, "{rows:?}");
    assert_linked(&rows);
    let types: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    for expected in [
        "admin.invite_created",
        "onboarding.join_request",
        "onboarding.approved",
        "registry.agent_registered",
        "binding.created",
        "binding.approved",
        "auth.token_issued",
    ] {
        assert!(types.contains(&expected), "{expected} missing: {types:?}");
    }
    // Details are stored as Python's json.dumps writes them (insertion order, ", " / ": ").
    let invite = rows
        .iter()
        .find(|r| r.event_type == "admin.invite_created")
        .unwrap();
    let details = invite.details.as_deref().unwrap();
    assert!(details.starts_with(r#"{"invite_id": ""#), "{details}");
    assert!(
        details.ends_with(r#", "label": "acme", "ttl_hours": 72}"#),
        "{details}"
    );
    // Timestamps are exported in Python isoformat.
    assert!(rows
        .iter()
        .all(|r| r.timestamp.as_deref().unwrap().ends_with("+00:00")));
}

#[tokio::test]
async fn chain_verifies_after_identity_flow_on_sqlite() {
    chain_verifies_after_identity_flow(Store::Sqlite).await;
}

#[tokio::test]
async fn chain_verifies_after_identity_flow_on_postgres() {
    chain_verifies_after_identity_flow(Store::PostgresRedis).await;
}

// ---------------------------------------------------------------------------------------------
// Tampering.

async fn tampering_is_detected(store: Store) {
    let broker = TestBroker::start(store).await;
    identity_flow(&broker).await;
    let total = assert_intact(&broker).await;
    let rows = all_rows(&broker).await;
    let db = db_of(&broker).await;
    disable_triggers(&db, store).await;

    // 1. A changed details field breaks that row's own hash.
    let target = &rows[2];
    exec(
        &db,
        &format!(
            "UPDATE audit_log SET details = '{{\"forged\": true}}' WHERE id = {}",
            target.id
        ),
    )
    .await
    .unwrap();
    assert_broken_at(&broker, target.id, 2, "entry_hash_mismatch").await;
    // Put it back: intact again.
    let original = match &target.details {
        Some(details) => format!("'{}'", details.replace('\'', "''")),
        None => "NULL".into(),
    };
    exec(
        &db,
        &format!(
            "UPDATE audit_log SET details = {original} WHERE id = {}",
            target.id
        ),
    )
    .await
    .unwrap();
    assert_eq!(assert_intact(&broker).await, total);

    // 2. A changed hash: that row no longer hashes to what it claims.
    let target = &rows[3];
    exec(
        &db,
        &format!(
            "UPDATE audit_log SET entry_hash = '{}' WHERE id = {}",
            "0".repeat(64),
            target.id
        ),
    )
    .await
    .unwrap();
    assert_broken_at(&broker, target.id, 3, "entry_hash_mismatch").await;
    exec(
        &db,
        &format!(
            "UPDATE audit_log SET entry_hash = '{}' WHERE id = {}",
            target.entry_hash.as_deref().unwrap(),
            target.id
        ),
    )
    .await
    .unwrap();
    assert_eq!(assert_intact(&broker).await, total);

    // 3. A deleted middle row: the next row's link no longer matches.
    exec(
        &db,
        &format!("DELETE FROM audit_log WHERE id = {}", rows[1].id),
    )
    .await
    .unwrap();
    assert_broken_at(&broker, rows[2].id, 1, "previous_hash_mismatch").await;

    // 4. A row inserted by hand without hashes after the chain started.
    let broker2 = TestBroker::start(store).await;
    identity_flow(&broker2).await;
    let db2 = db_of(&broker2).await;
    exec(
        &db2,
        "INSERT INTO audit_log (timestamp, event_type, result) VALUES ('2026-01-01T00:00:00.000000Z', 'forged.event', 'ok')",
    )
    .await
    .unwrap();
    let rows2 = all_rows(&broker2).await;
    let forged = rows2.last().unwrap();
    assert_eq!(forged.event_type, "forged.event");
    assert_broken_at(&broker2, forged.id, rows2.len() as u64 - 1, "unhashed_row").await;
}

#[tokio::test]
async fn tampering_is_detected_on_sqlite() {
    tampering_is_detected(Store::Sqlite).await;
}

#[tokio::test]
async fn tampering_is_detected_on_postgres() {
    tampering_is_detected(Store::PostgresRedis).await;
}

// ---------------------------------------------------------------------------------------------
// Append-only triggers.

async fn triggers_refuse_update_and_delete(store: Store) {
    let broker = TestBroker::start(store).await;
    identity_flow(&broker).await;
    let total = assert_intact(&broker).await;
    let db = db_of(&broker).await;
    for sql in [
        "UPDATE audit_log SET details = NULL",
        "UPDATE audit_log SET result = 'denied' WHERE id = 1",
        "UPDATE audit_log SET entry_hash = NULL WHERE id = 1",
        "DELETE FROM audit_log WHERE id = 1",
        "DELETE FROM audit_log",
    ] {
        let error = exec(&db, sql).await.expect_err(sql);
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    if store == Store::PostgresRedis {
        let error = exec(&db, "TRUNCATE audit_log").await.unwrap_err();
        assert!(error.contains("append-only"), "{error}");
    }
    // Appends still work and the chain is untouched.
    let (status, _) = broker
        .admin(Method::POST, "/v1/admin/invites", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(assert_intact(&broker).await, total + 1);
}

#[tokio::test]
async fn triggers_refuse_update_and_delete_on_sqlite() {
    triggers_refuse_update_and_delete(Store::Sqlite).await;
}

#[tokio::test]
async fn triggers_refuse_update_and_delete_on_postgres() {
    triggers_refuse_update_and_delete(Store::PostgresRedis).await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency: two broker processes and two more database handles append at once.

async fn concurrent_appends_form_one_chain(store: Store) {
    let broker = TestBroker::start(store).await;
    let second = second_broker(&broker, store).await;
    let apis = [broker.api.clone(), second.api.clone()];
    let handles = [db_of(&broker).await, db_of(&broker).await];
    const PER_WRITER: usize = 40;
    let mut tasks = tokio::task::JoinSet::new();
    for api in apis {
        for i in 0..PER_WRITER {
            let api = api.clone();
            tasks.spawn(async move {
                let (status, body) = api
                    .admin(
                        Method::POST,
                        "/v1/admin/invites",
                        Some(json!({"label": format!("c{i}")})),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
            });
        }
    }
    for db in handles {
        let audit = ChainWriter::new(db);
        for i in 0..PER_WRITER {
            let audit = audit.clone();
            tasks.spawn(async move {
                audit
                    .record(
                        AuditEvent::new("test.concurrent", Outcome::Ok)
                            .org("acme")
                            .detail("i", i),
                    )
                    .await
                    .unwrap();
            });
        }
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    drop(second);

    let total = assert_intact(&broker).await;
    assert_eq!(total as usize, 4 * PER_WRITER);
    let rows = all_rows(&broker).await;
    assert_eq!(rows.len(), 4 * PER_WRITER);
    assert_linked(&rows);
}

#[tokio::test]
async fn concurrent_appends_form_one_chain_on_sqlite() {
    concurrent_appends_form_one_chain(Store::Sqlite).await;
}

#[tokio::test]
async fn concurrent_appends_form_one_chain_on_postgres() {
    concurrent_appends_form_one_chain(Store::PostgresRedis).await;
}

// ---------------------------------------------------------------------------------------------
// Export.

#[tokio::test]
async fn export_formats_filters_and_errors() {
    let broker = TestBroker::start(Store::Sqlite).await;
    identity_flow(&broker).await;
    broker.onboard("beta").await;
    let all = all_rows(&broker).await;
    let n = all.len();
    assert!(n >= 10, "{n}");

    // NDJSON (the default, and any unknown format): headers and exact line shape.
    let (status, headers, body) = raw_export(&broker, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=audit_export.ndjson"
    );
    assert_eq!(body.lines().count(), n);
    let first_line = body.lines().next().unwrap();
    assert!(
        first_line.starts_with(r#"{"id":"#) && first_line.contains(r#","previous_hash":null}"#),
        "{first_line}"
    );
    let first: Value = serde_json::from_str(first_line).unwrap();
    assert!(first["details"].is_string(), "details stays the raw string");
    let (_, headers, xml) = raw_export(&broker, &[("format", "xml")]).await;
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert_eq!(xml, body);

    // CSV.
    let (status, headers, csv) = raw_export(&broker, &[("format", "csv")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=audit_export.csv"
    );
    assert!(csv.starts_with(
        "id,timestamp,event_type,agent_id,session_id,org_id,result,details,entry_hash,previous_hash\r\n"
    ));
    assert!(csv.ends_with("\r\n"));
    let records: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(records.len(), n + 1);
    // Row 1: the first invite — no agent/session/org, JSON details quoted with doubled quotes,
    // no previous hash.
    let row1 = &all[0];
    let expected = format!(
        "{},{},admin.invite_created,,,,ok,\"{}\",{},",
        row1.id,
        row1.timestamp.as_deref().unwrap(),
        row1.details.as_deref().unwrap().replace('"', "\"\""),
        row1.entry_hash.as_deref().unwrap()
    );
    assert_eq!(records[1], expected);

    // Filters: event_type, org_id, both; time window (inclusive bounds).
    let invites = export_rows(&broker, &[("event_type", "admin.invite_created")]).await;
    assert_eq!(invites.len(), 2);
    assert!(invites
        .iter()
        .all(|r| r.event_type == "admin.invite_created"));
    let acme = export_rows(&broker, &[("org_id", "acme")]).await;
    assert_eq!(
        acme.len(),
        all.iter()
            .filter(|r| r.org_id.as_deref() == Some("acme"))
            .count()
    );
    assert!(!acme.is_empty());
    let both = export_rows(
        &broker,
        &[("org_id", "beta"), ("event_type", "onboarding.approved")],
    )
    .await;
    assert_eq!(both.len(), 1);
    let start = all[2].timestamp.clone().unwrap();
    let end = all[n - 3].timestamp.clone().unwrap();
    let window = export_rows(&broker, &[("start", &start), ("end", &end)]).await;
    let expected: Vec<i64> = all
        .iter()
        .filter(|r| {
            let t = r.timestamp.as_deref().unwrap();
            t >= start.as_str() && t <= end.as_str()
        })
        .map(|r| r.id)
        .collect();
    assert_eq!(window.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
    assert_eq!(window.first().unwrap().id, all[2].id);
    assert_eq!(window.last().unwrap().id, all[n - 3].id);
    // Z, other offsets and naive values name the same instants.
    let from_start = all
        .iter()
        .filter(|r| r.timestamp.as_deref().unwrap() >= start.as_str())
        .count();
    let z = start.replace("+00:00", "Z");
    assert_eq!(
        export_rows(&broker, &[("start", &z)]).await.len(),
        from_start
    );
    assert!(export_rows(&broker, &[("end", "2000-01-01")])
        .await
        .is_empty());
    assert_eq!(
        export_rows(&broker, &[("start", "2000-01-01T00:00:00")])
            .await
            .len(),
        n
    );

    // Limit: first rows by id.
    let three = export_rows(&broker, &[("limit", "3")]).await;
    assert_eq!(
        three.iter().map(|r| r.id).collect::<Vec<_>>(),
        all[..3].iter().map(|r| r.id).collect::<Vec<_>>()
    );
    assert!(export_rows(&broker, &[("limit", "0")]).await.is_empty());
    let (_, _, csv0) = raw_export(&broker, &[("limit", "0"), ("format", "csv")]).await;
    assert_eq!(csv0.split("\r\n").filter(|l| !l.is_empty()).count(), 1);

    // Errors.
    for (name, value) in [("start", "yesterday"), ("end", "2026-13-01"), ("start", "")] {
        let (status, _, body) = raw_export(&broker, &[(name, value)]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}={value}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["detail"][0]["loc"], json!(["query", name]), "{body}");
    }
    let (status, _, _) = raw_export(&broker, &[("limit", "many")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, _) = raw_export(&broker, &[("limit", "-1")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for path in ["/v1/admin/audit/export", "/v1/admin/audit/verify"] {
        let response = broker
            .http
            .get(broker.url(path))
            .header("x-admin-secret", "wrong-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"], "Invalid admin secret");
        let response = broker.http.get(broker.url(path)).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}"
        );
    }
}

/// Large logs: the export caps at 50 000 rows (default 10 000) and verification pages through
/// everything. Legacy rows written before the chain existed (no hashes) are counted and skipped.
async fn large_log(store: Store) {
    let broker = TestBroker::start(store).await;
    let db = db_of(&broker).await;
    let bulk = match store {
        Store::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50010) \
             INSERT INTO audit_log (timestamp, event_type, result) \
             SELECT '2020-01-01T00:00:00.000000Z', 'legacy.event', 'ok' FROM n"
        }
        Store::PostgresRedis => {
            "INSERT INTO audit_log (timestamp, event_type, result) \
             SELECT '2020-01-01T00:00:00.000000Z', 'legacy.event', 'ok' FROM generate_series(1, 50010)"
        }
    };
    assert_eq!(exec(&db, bulk).await.unwrap(), 50_010);
    identity_flow(&broker).await;
    let total = assert_intact(&broker).await;
    assert!(total > 50_010 + 5, "{total}");
    let (_, _, body) = raw_export(&broker, &[]).await;
    assert_eq!(body.lines().count(), 10_000);
    let (_, _, body) = raw_export(&broker, &[("limit", "60000")]).await;
    assert_eq!(body.lines().count(), 50_000);
    let hashed = export_rows(&broker, &[("start", "2021-01-01")]).await;
    assert_eq!(hashed.len() as u64, total - 50_010);
    assert_eq!(hashed[0].previous_hash, None, "the chain starts at genesis");
    assert_linked(&hashed);
}

#[tokio::test]
async fn large_log_on_sqlite() {
    large_log(Store::Sqlite).await;
}

#[tokio::test]
async fn large_log_on_postgres() {
    large_log(Store::PostgresRedis).await;
}
