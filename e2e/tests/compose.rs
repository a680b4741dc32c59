//! Static checks of the Docker deployment files. This machine has no Docker engine, so the
//! compose path itself is untested here; these tests make sure the files at least agree with the
//! code as it is when the test runs:
//! - every environment variable the compose files pass to the broker is a string literal in
//!   broker/src, and every one passed to the proxy is one in proxy/src (the failure lists what
//!   it could not find);
//! - every HTTP health-check path (compose and Dockerfile HEALTHCHECK) is a route the running
//!   binary answers;
//! - every build context and Dockerfile exists, and mounted repository files exist;
//! - every `${VAR}` the compose files interpolate, and every setting the broker reads, is
//!   documented in deploy/.env.example.

mod support;

use regex::Regex;
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::path::Path;
use support::repo;

fn load(file: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"))
}

/// All Rust sources under `dir`, concatenated.
fn sources(dir: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(&path).unwrap());
                text.push('\n');
            }
        }
    }
    text
}

fn services(compose: &Value) -> Vec<(String, &Value)> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v))
        .collect()
}

/// The variable names of a service's `environment` (mapping or list form).
fn environment(service: &Value) -> Vec<String> {
    match &service["environment"] {
        Value::Mapping(map) => map.keys().map(|k| k.as_str().unwrap().to_owned()).collect(),
        Value::Sequence(list) => list
            .iter()
            .map(|v| v.as_str().unwrap().split('=').next().unwrap().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

fn image_of(service: &Value) -> Option<String> {
    service["build"]["dockerfile"].as_str().map(str::to_owned)
}

/// Variables `names` that never appear as `"NAME"` in `src`.
fn missing_in(src: &str, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|name| !src.contains(&format!("\"{name}\"")))
        .cloned()
        .collect()
}

#[test]
fn broker_services_pass_only_variables_the_broker_reads() {
    // The broker's settings live in broker/src, its OTEL_* ones in the telemetry crate.
    let broker_src = sources(&repo().join("broker/src")) + &sources(&repo().join("telemetry/src"));
    let compose = load("docker-compose.yml");
    let mut checked = 0;
    let mut missing = Vec::new();
    for (name, service) in services(&compose) {
        if image_of(service).as_deref() != Some("broker/Dockerfile") {
            continue;
        }
        let vars = environment(service);
        checked += vars.len();
        for var in missing_in(&broker_src, &vars) {
            missing.push(format!("{name}: {var}"));
        }
    }
    assert!(checked >= 20, "only {checked} broker variables found");
    assert!(
        missing.is_empty(),
        "docker-compose.yml passes variables the broker does not read: {missing:?}"
    );
}

#[test]
fn proxy_service_passes_only_variables_the_proxy_reads() {
    let proxy_src = sources(&repo().join("proxy/src"));
    let compose = load("docker-compose.proxy.yml");
    let (_, service) = services(&compose)
        .into_iter()
        .find(|(_, s)| image_of(s).as_deref() == Some("proxy/Dockerfile"))
        .expect("a service built from proxy/Dockerfile");
    let vars = environment(service);
    assert!(vars.iter().all(|v| v.starts_with("MCP_PROXY_")), "{vars:?}");
    let missing = missing_in(&proxy_src, &vars);
    assert!(
        missing.is_empty(),
        "docker-compose.proxy.yml passes variables proxy/src does not read: {missing:?}"
    );
}

/// URL paths in a health check command (`http://host:port/path`).
fn health_paths(command: &str) -> Vec<String> {
    let url = Regex::new(r"https?://[^/\s]+(/[A-Za-z0-9_./-]*)").unwrap();
    url.captures_iter(command)
        .map(|c| c[1].to_owned())
        .collect()
}

/// Whether the running binary at `base` serves `path` (any answer but 404/405: `/readyz` of a
/// proxy that has not joined is a 503, which is still the route).
async fn route_served(base: &str, path: &str) -> bool {
    let status = reqwest::get(format!("{base}{path}"))
        .await
        .expect("the binary answers")
        .status();
    status != reqwest::StatusCode::NOT_FOUND && status != reqwest::StatusCode::METHOD_NOT_ALLOWED
}

#[tokio::test]
async fn health_checks_use_routes_the_binaries_serve() {
    // The real binaries answer: no reading of route tables from source text.
    let broker = cullis_e2e::stack::TestBroker::start(cullis_e2e::stack::Store::Sqlite).await;
    let proxy = cullis_e2e::stack::proxy::TestProxy::start(&[]).await;
    let mut seen = 0;
    for file in ["docker-compose.yml", "docker-compose.proxy.yml"] {
        let compose = load(file);
        for (name, service) in services(&compose) {
            let test = match &service["healthcheck"]["test"] {
                Value::Sequence(parts) => parts
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
                Value::String(text) => text.clone(),
                _ => continue,
            };
            // nginx's plain-HTTP /healthz is proxied to the broker.
            let base = if file.contains("proxy") {
                &proxy.base
            } else {
                &broker.api.base
            };
            for path in health_paths(&test) {
                seen += 1;
                assert!(
                    route_served(base, &path).await,
                    "{file} service {name}: health check path {path} is not a route"
                );
            }
        }
    }
    for dockerfile in ["broker/Dockerfile", "proxy/Dockerfile"] {
        let text = std::fs::read_to_string(repo().join(dockerfile)).unwrap();
        let healthcheck = text
            .split("HEALTHCHECK")
            .nth(1)
            .unwrap_or_else(|| panic!("{dockerfile} has a HEALTHCHECK"));
        let base = if dockerfile.starts_with("proxy") {
            &proxy.base
        } else {
            &broker.api.base
        };
        let paths = health_paths(
            healthcheck
                .lines()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
                .as_str(),
        );
        assert!(!paths.is_empty(), "{dockerfile}: no URL in HEALTHCHECK");
        for path in paths {
            seen += 1;
            assert!(
                route_served(base, &path).await,
                "{dockerfile}: HEALTHCHECK path {path} is not a route"
            );
        }
        assert!(
            text.contains("\nUSER 10001"),
            "{dockerfile} runs as non-root"
        );
        assert!(
            text.matches("\nFROM ").count() >= 2 || text.starts_with("FROM"),
            "{dockerfile} is multi-stage"
        );
    }
    assert!(seen >= 5, "only {seen} health-check paths found");
}

#[test]
fn build_contexts_dockerfiles_and_mounted_files_exist() {
    for file in ["docker-compose.yml", "docker-compose.proxy.yml"] {
        let compose = load(file);
        for (name, service) in services(&compose) {
            let build = &service["build"];
            if build.is_null() {
                continue;
            }
            let context = repo().join(build["context"].as_str().unwrap_or("."));
            assert!(context.is_dir(), "{file} {name}: build context {context:?}");
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            assert!(dockerfile.is_file(), "{file} {name}: {dockerfile:?}");
        }
    }
    // The default of the nginx config mount is a repository file.
    let compose = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    assert!(compose.contains("${CULLIS_NGINX_CONF:-./nginx-compat/nginx.conf}"));
    assert!(repo().join("nginx-compat/nginx.conf").is_file());
    assert!(repo().join(".dockerignore").is_file());
}

#[test]
fn interpolated_and_broker_variables_are_documented() {
    let example = std::fs::read_to_string(repo().join("deploy/.env.example")).unwrap();
    let documented = |name: &str| {
        example.contains(&format!("\n{name}=")) || example.contains(&format!("#{name}="))
    };
    let interpolated = Regex::new(r"\$\{([A-Z][A-Z0-9_]*)").unwrap();
    let mut undocumented = BTreeSet::new();
    for file in ["docker-compose.yml", "docker-compose.proxy.yml"] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        for c in interpolated.captures_iter(&text) {
            let name = &c[1];
            // The proxy file's own knobs are documented in its header.
            if !name.starts_with("MCP_PROXY_") && !documented(name) {
                undocumented.insert(format!("{file}: {name}"));
            }
        }
    }
    // Settings the broker reads: names looked up in its environment map.
    let broker_src = sources(&repo().join("broker/src"));
    let lookup = Regex::new(
        r#"(?:get|entry|contains_key|try_from_env|parse_bool\(env,)\s*\(?\s*"([A-Z][A-Z0-9_]{2,})""#,
    )
    .unwrap();
    let mut read = BTreeSet::new();
    for c in lookup.captures_iter(&broker_src) {
        read.insert(c[1].to_owned());
    }
    assert!(
        read.contains("ADMIN_SECRET") && read.contains("POLICY_BACKEND"),
        "{read:?}"
    );
    for name in &read {
        // Test-only names inside #[cfg(test)] modules use made-up variables.
        if name.starts_with("RATE_LIMIT_") || name == "PATH" {
            continue;
        }
        if !documented(name) {
            undocumented.insert(format!("broker setting: {name}"));
        }
    }
    assert!(
        example.contains("RATE_LIMIT_<BUCKET>") && example.contains("RATE_LIMITS="),
        "rate-limit settings documented"
    );
    assert!(
        undocumented.is_empty(),
        "not documented in deploy/.env.example: {undocumented:?}"
    );
}
