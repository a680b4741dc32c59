//! The monitoring files an operator deploys (deploy/observability/) agree with the binaries:
//! `promtool` accepts the Prometheus config and the alert rules, and every series the rules and
//! the Grafana dashboard query is one the broker or the proxy exports.

mod support;

use regex::Regex;
use std::collections::BTreeSet;
use std::process::Command;
use support::repo;

fn promtool(args: &[&str]) -> (bool, String) {
    let output = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool (Debian package `prometheus`; .ci/run installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// Exported base names (`atn_auth_success`, `cullis_http_server_duration`) of every instrument
/// created in the broker's and the proxy's telemetry modules.
fn exported_names() -> BTreeSet<String> {
    let instrument = Regex::new(r#""((?:atn|cullis)\.[a-z0-9_.]+)""#).unwrap();
    let mut names = BTreeSet::new();
    for file in [
        "broker/src/telemetry/instruments.rs",
        "proxy/src/telemetry.rs",
    ] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        for c in instrument.captures_iter(&text) {
            names.insert(c[1].replace('.', "_"));
        }
    }
    assert!(names.contains("atn_auth_success") && names.contains("cullis_proxy_pdp_decisions"));
    names
}

/// The series a query text uses that are not exported.
fn unknown_series(text: &str, exported: &BTreeSet<String>) -> Vec<String> {
    let series = Regex::new(r"\b((?:atn|cullis)_[a-z0-9_]+)").unwrap();
    let mut unknown = Vec::new();
    for c in series.captures_iter(text) {
        let mut name = c[1].to_owned();
        for suffix in ["_total", "_bucket", "_count", "_sum"] {
            if let Some(base) = name.strip_suffix(suffix) {
                name = base.to_owned();
                break;
            }
        }
        let name = ["_milliseconds", "_seconds"]
            .iter()
            .find_map(|unit| name.strip_suffix(unit))
            .unwrap_or(&name)
            .to_owned();
        if !exported.contains(&name) {
            unknown.push(c[1].to_owned());
        }
    }
    unknown
}

#[test]
fn promtool_accepts_the_config_and_the_alert_rules() {
    let dir = repo().join("deploy/observability");
    let (ok, text) = promtool(&["check", "rules", dir.join("alerts.yml").to_str().unwrap()]);
    assert!(ok, "{text}");
    // The config names the rules at their path inside the container; check a copy that points
    // at the repository's file.
    let scratch = std::env::temp_dir().join(format!("cullis-promcfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).unwrap();
    let config = std::fs::read_to_string(dir.join("prometheus.yml"))
        .unwrap()
        .replace(
            "/etc/prometheus/alerts.yml",
            dir.join("alerts.yml").to_str().unwrap(),
        );
    let copy = scratch.join("prometheus.yml");
    std::fs::write(&copy, config).unwrap();
    let (ok, text) = promtool(&["check", "config", copy.to_str().unwrap()]);
    assert!(ok, "{text}");
}

#[test]
fn alerts_keep_the_reference_names_and_query_exported_series() {
    let alerts = std::fs::read_to_string(repo().join("deploy/observability/alerts.yml")).unwrap();
    for name in [
        "CullisCertPinningMismatch",
        "CullisAuditChainBroken",
        "CullisRevokedTokenReuseAttempt",
        "CullisDpopReplaySpike",
        "CullisHighAuthFailureRate",
        "CullisPolicyDualOrgMismatch",
        "CullisPdpWebhookLatencyHigh",
        "CullisRateLimitFlood",
        "CullisKmsSealCheckFailed",
        "CullisSessionDeniedSpike",
        "CullisBrokerDown",
        "CullisBrokerNotReady",
    ] {
        assert!(
            alerts.contains(&format!("alert: {name}\n")),
            "{name} missing"
        );
    }
    let unknown = unknown_series(&alerts, &exported_names());
    assert!(
        unknown.is_empty(),
        "alert rules query unknown series: {unknown:?}"
    );
}

#[test]
fn the_dashboard_queries_exported_series() {
    let path = repo().join("deploy/observability/grafana/dashboards/cullis-broker.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let unknown = unknown_series(&exprs.join("\n"), &exported_names());
    assert!(
        unknown.is_empty(),
        "the dashboard queries unknown series: {unknown:?}"
    );
}
