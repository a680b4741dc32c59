//! Telemetry with real parts: a real Prometheus server scrapes the broker and both proxies
//! during the two-organisation scenario and `promtool` checks their exposition; an OTLP receiver
//! (real gRPC and HTTP/protobuf servers decoding the OpenTelemetry protobufs — the stand-in for
//! a collector, which has no package here) collects the spans of all three processes.

use cullis_e2e::egress::EgressClient;
use cullis_e2e::otlp::{OtlpReceiver, ReceivedSpan};
use cullis_e2e::stack::proxy::free_port;
use cullis_e2e::stack::two_orgs::{Session, TwoOrgs};
use cullis_e2e::stack::{Options, Store, TestBroker};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CAPS: [&str; 1] = ["procurement.read"];

/// Onboards both orgs, creates `alpha::buyer` and `beta::seller`, opens and accepts a session,
/// exchanges one message each way, then has beta's PDP deny a second session request.
/// Returns the clients and the id of the accepted session.
async fn run_scenario(stack: &TwoOrgs) -> (EgressClient, EgressClient, String) {
    let Session {
        buyer,
        seller_id,
        seller,
        session_id,
        ..
    } = stack.accepted_session(&CAPS).await;
    let (status, body) = buyer
        .send(&session_id, &seller_id, &json!({"order": "PO-1"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    seller
        .wait_for_message(&session_id, -1, Duration::from_secs(20), |m| {
            m["payload"]["order"] == "PO-1"
        })
        .await
        .unwrap();
    stack
        .beta
        .set_policy(json!({"blocked_agents": ["alpha::buyer"]}))
        .await;
    let (status, denied) = buyer.open_session(&seller_id, "beta", &CAPS).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    stack.beta.set_policy(json!({})).await;
    (buyer, seller, session_id)
}

/// A Prometheus server (Debian package `prometheus`) scraping `targets` every second.
struct Prometheus {
    child: Child,
    base: String,
    _dir: PathBuf,
}

impl Prometheus {
    fn start(targets: &[(&str, &str)]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("cullis-prom-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let jobs: String = targets
            .iter()
            .map(|(job, address)| {
                format!(
                    "  - job_name: {job}\n    static_configs:\n      - targets: ['{address}']\n"
                )
            })
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new(program("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian package `prometheus`; .ci/run installs it)");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The value of an instant query that returns one series, once it equals `want`.
    async fn wait_for_value(&self, query: &str, want: f64) -> Result<(), String> {
        let client = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(60);
        let mut last = Value::Null;
        while Instant::now() < until {
            if let Ok(response) = client
                .get(format!("{}/api/v1/query", self.base))
                .query(&[("query", query)])
                .send()
                .await
            {
                if let Ok(body) = response.json::<Value>().await {
                    let values: Vec<f64> = body["data"]["result"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|series| series["value"][1].as_str()?.parse().ok())
                        .collect();
                    if values == [want] {
                        return Ok(());
                    }
                    last = body;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(format!("{query}: wanted {want}, last answer {last}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    PathBuf::from(name)
}

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    let response = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The reference's histograms, whose exported names (milliseconds) its alert rules and
/// dashboards use: promtool's lint prefers seconds, compatibility decides.
const REFERENCE_MILLISECOND_SERIES: [&str; 3] = [
    "atn_auth_duration_milliseconds",
    "atn_pdp_webhook_latency_milliseconds",
    "atn_x509_verify_duration_milliseconds",
];

/// `promtool check metrics` parses the exposition and finds no problem other than the base-unit
/// lint on [`REFERENCE_MILLISECOND_SERIES`] (exit code 3 is "lint problems", 1 a parse error).
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = Command::new(program("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let problems: Vec<&str> = report
        .lines()
        .filter(|line| !line.trim().is_empty())
        .filter(|line| {
            !REFERENCE_MILLISECOND_SERIES.iter().any(|name| {
                *line == format!("{name} use base unit \"seconds\" instead of \"milliseconds\"")
            })
        })
        .collect();
    assert!(
        matches!(output.status.code(), Some(0 | 3)) && problems.is_empty(),
        "promtool check metrics failed ({}):\n{report}",
        output.status
    );
}

#[tokio::test]
async fn prometheus_scrapes_the_broker_and_both_proxies_during_the_scenario() {
    let prometheus_on = [("MCP_PROXY_PROMETHEUS_ENABLED", "true")];
    let stack = TwoOrgs::start_with_proxies(
        Store::Sqlite,
        Options::default().env("PROMETHEUS_ENABLED", "true"),
        &prometheus_on,
        &prometheus_on,
    )
    .await;
    let broker_target = host_port(&stack.broker.base);
    let alpha_target = host_port(&stack.alpha.base);
    let beta_target = host_port(&stack.beta.base);
    let prometheus = Prometheus::start(&[
        ("broker", &broker_target),
        ("alpha", &alpha_target),
        ("beta", &beta_target),
    ]);

    run_scenario(&stack).await;

    // The reference's series, with the values this scenario must have produced.
    for (query, want) in [
        (
            r#"atn_session_denied_total{job="broker",reason="pdp_denied"}"#,
            1.0,
        ),
        (
            r#"atn_session_created_total{job="broker",initiator_org="alpha"}"#,
            1.0,
        ),
        (
            r#"atn_policy_deny_total{job="broker",policy_type="webhook"}"#,
            1.0,
        ),
        (
            r#"atn_policy_allow_total{job="broker",policy_type="webhook"}"#,
            1.0,
        ),
        (r#"cullis_messages_relayed_total{job="broker"}"#, 1.0),
        (
            r#"cullis_proxy_pdp_decisions_total{job="beta",decision="deny"}"#,
            1.0,
        ),
        (r#"atn_dpop_jti_replay_attempt_total{job="broker"}"#, 0.0),
        (r#"count(atn_auth_success_total{job="broker"} > 0)"#, 2.0),
        (
            r#"count(atn_auth_duration_milliseconds_bucket{job="broker"}) > 0"#,
            18.0,
        ),
        (
            r#"sum(cullis_http_server_duration_seconds_count{job="broker",route="/v1/broker/sessions",method="POST"})"#,
            2.0,
        ),
    ] {
        prometheus.wait_for_value(query, want).await.unwrap();
    }

    // Bounded labels: no agent or session id ever becomes a label value.
    let broker_text = metrics_text(&stack.broker.http, &stack.broker.base).await;
    assert!(!broker_text.contains("alpha::buyer") && !broker_text.contains("beta::seller"));
    assert!(broker_text.contains("process_resident_memory_bytes"));
    for text in [
        broker_text,
        metrics_text(&stack.alpha.http, &stack.alpha.base).await,
        metrics_text(&stack.beta.http, &stack.beta.base).await,
    ] {
        promtool_accepts(&text);
    }
}

#[tokio::test]
async fn metrics_endpoint_is_404_when_disabled() {
    let broker = TestBroker::start(Store::Sqlite).await;
    let response = broker
        .http
        .get(broker.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.text().await.unwrap(),
        "Prometheus exporter disabled\n"
    );
}

/// The telemetry settings of a process exporting to `receiver`.
fn otel_env(receiver: &OtlpReceiver, service: &str, protocol: &str) -> Vec<(String, String)> {
    vec![
        ("OTEL_ENABLED".into(), "true".into()),
        ("OTEL_SERVICE_NAME".into(), service.into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), protocol.into()),
        ("OTEL_METRICS_EXPORT_INTERVAL_MS".into(), "500".into()),
    ]
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn named<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect()
}

#[tokio::test]
async fn a_session_open_is_one_trace_across_both_proxies_and_the_broker() {
    let receiver = OtlpReceiver::start().await;
    let mut broker_options = Options::default()
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    for (name, value) in otel_env(&receiver, "cullis-broker", "grpc") {
        broker_options = broker_options.env(&name, &value);
    }
    // alpha exports over gRPC, beta over HTTP/protobuf: both transports are exercised.
    let alpha_env = otel_env(&receiver, "cullis-proxy-alpha", "grpc");
    let beta_env = otel_env(&receiver, "cullis-proxy-beta", "http/protobuf");
    let stack = TwoOrgs::start_with_proxies(
        Store::Sqlite,
        broker_options,
        &pairs(&alpha_env),
        &pairs(&beta_env),
    )
    .await;
    run_scenario(&stack).await;

    let spans = receiver
        .wait_for_spans(Duration::from_secs(30), |spans| {
            named(spans, "cullis-broker", "broker.create_session").len() >= 2
                && named(spans, "cullis-proxy-beta", "pdp.decide").len() >= 2
                && named(spans, "cullis-proxy-alpha", "pdp.decide").len() >= 2
                && !named(spans, "cullis-proxy-beta", "e2e.open").is_empty()
        })
        .await;
    for (service, name) in [
        ("cullis-broker", "auth.issue_token"),
        ("cullis-broker", "auth.x509_verify"),
        ("cullis-broker", "auth.x509_chain_verify"),
        ("cullis-broker", "broker.create_session"),
        ("cullis-broker", "pdp.webhook_call"),
        ("cullis-broker", "db.query"),
        ("cullis-broker", "POST /v1/broker/sessions"),
        ("cullis-proxy-alpha", "uplink.login"),
        ("cullis-proxy-alpha", "uplink.request"),
        ("cullis-proxy-alpha", "e2e.seal"),
        ("cullis-proxy-alpha", "POST /v1/egress/sessions"),
        ("cullis-proxy-beta", "e2e.open"),
        ("cullis-proxy-beta", "pdp.decide"),
        ("cullis-proxy-beta", "POST /pdp/policy"),
    ] {
        assert!(
            !named(&spans, service, name).is_empty(),
            "no {name} span from {service}; got {:?}",
            spans
                .iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
    }

    // The first session open: agent → alpha's egress span → alpha's uplink call → the broker's
    // server span → broker.create_session → pdp.webhook_call ×2 → each proxy's /pdp/policy
    // span → pdp.decide. One trace id, every parent link in place.
    let by_id = |id: &str| spans.iter().find(|s| s.span_id == id);
    let create = named(&spans, "cullis-broker", "broker.create_session")[0];
    let trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == create.trace_id)
        .collect();
    let services: std::collections::BTreeSet<&str> =
        trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["cullis-broker", "cullis-proxy-alpha", "cullis-proxy-beta"]
    );
    let server = by_id(&create.parent_span_id).expect("create_session has its server span");
    assert_eq!(server.name, "POST /v1/broker/sessions");
    assert_eq!(server.attributes["http.route"], "/v1/broker/sessions");
    let uplink = by_id(&server.parent_span_id).expect("the broker span's parent is exported");
    assert_eq!(
        (uplink.service.as_str(), uplink.name.as_str()),
        ("cullis-proxy-alpha", "uplink.request")
    );
    let mut ancestor = uplink;
    while !ancestor.parent_span_id.is_empty() {
        ancestor = by_id(&ancestor.parent_span_id).expect("every ancestor exported");
    }
    assert_eq!(
        ancestor.name, "POST /v1/egress/sessions",
        "the trace starts at the agent's call"
    );
    let webhook_calls: Vec<&&ReceivedSpan> = trace
        .iter()
        .filter(|s| s.name == "pdp.webhook_call" && s.parent_span_id == create.span_id)
        .collect();
    assert_eq!(webhook_calls.len(), 2, "one call per org's PDP");
    for proxy in ["cullis-proxy-alpha", "cullis-proxy-beta"] {
        let decide = trace
            .iter()
            .find(|s| s.service == proxy && s.name == "pdp.decide")
            .unwrap_or_else(|| panic!("{proxy} decided in this trace"));
        let policy_server = by_id(&decide.parent_span_id).unwrap();
        assert_eq!(policy_server.name, "POST /pdp/policy");
        assert!(webhook_calls
            .iter()
            .any(|c| c.span_id == policy_server.parent_span_id));
    }

    // Log lines written inside a span carry its trace id (the PDP denial of the second open).
    let denied = named(&spans, "cullis-broker", "broker.create_session")
        .into_iter()
        .find(|s| s.trace_id != create.trace_id)
        .expect("the denied open was traced too");
    let logs = stack.broker.stderr();
    let denial_line = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "PDP webhook denied")
        .unwrap_or_else(|| panic!("no denial log line in:\n{logs}"));
    assert_eq!(
        denial_line["trace_id"],
        denied.trace_id.as_str(),
        "{denial_line}"
    );
    assert_eq!(denial_line["span_id"].as_str().map(str::len), Some(16));

    // Metrics over OTLP too.
    let until = Instant::now() + Duration::from_secs(10);
    while !receiver
        .metric_names()
        .iter()
        .any(|(service, name)| service == "cullis-broker" && name == "atn.session.created")
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(receiver
        .metric_names()
        .iter()
        .any(|(service, name)| service == "cullis-broker" && name == "atn.session.created"));
}

#[tokio::test]
async fn a_zero_sampling_ratio_exports_no_span_even_when_the_caller_asks() {
    let receiver = OtlpReceiver::start().await;
    let mut options = Options::default().env("OTEL_TRACES_SAMPLER_ARG", "0");
    for (name, value) in otel_env(&receiver, "cullis-broker", "grpc") {
        options = options.env(&name, &value);
    }
    let broker = TestBroker::start_with(Store::Sqlite, options).await;
    for _ in 0..20 {
        let response = broker
            .http
            .get(broker.url("/health"))
            // A caller that claims its trace is sampled: not trusted on its own.
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Metrics still flow (the receiver is reachable), spans do not.
    let until = Instant::now() + Duration::from_secs(10);
    while receiver.metric_names().is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!receiver.metric_names().is_empty(), "metrics were exported");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(receiver.spans().is_empty(), "{:?}", receiver.spans());
}

#[tokio::test]
async fn the_broker_serves_normally_while_the_collector_is_down() {
    // Nothing listens on this port: every export fails.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let options = Options::default()
        .env("OTEL_ENABLED", "true")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_METRICS_EXPORT_INTERVAL_MS", "200");
    let broker = TestBroker::start_with(Store::Sqlite, options).await;
    let started = Instant::now();
    for round in 0..400 {
        let response = broker.http.get(broker.url("/readyz")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {round}");
        if round % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    // Both exporters fail on their next attempt; wait for their reports.
    let failing = |logs: &str, signal: &str| {
        logs.lines()
            .filter(|line| line.contains("OTLP export failing") && line.contains(signal))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut logs = broker.stderr();
    while (failing(&logs, "traces") == 0 || failing(&logs, "metrics") == 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        logs = broker.stderr();
    }
    // One report per signal per started minute, however many exports failed meanwhile.
    let most = 1 + started.elapsed().as_secs() as usize / 60;
    for signal in ["traces", "metrics"] {
        let reports = failing(&logs, signal);
        assert!(
            (1..=most).contains(&reports),
            "{reports} reports for {signal} (at most {most}):\n{logs}"
        );
    }
    let response = broker.http.get(broker.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "still serving");
}
