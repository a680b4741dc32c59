//! The real `cullis-broker` binary's command-line surface.

use std::process::Command;

fn broker(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cullis-broker"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_subcommand() {
    let output = broker(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for subcommand in ["serve", "migrate", "pki", "keys", "check"] {
        assert!(
            help.contains(subcommand),
            "{subcommand} missing from:\n{help}"
        );
    }
}

#[test]
fn serve_help_documents_host_and_port_with_defaults() {
    let help = String::from_utf8(broker(&["serve", "--help"]).stdout).unwrap();
    assert!(
        help.contains("--host") && help.contains("127.0.0.1"),
        "{help}"
    );
    assert!(help.contains("--port") && help.contains("8000"), "{help}");
}

#[test]
fn unknown_subcommands_fail_with_usage() {
    let output = broker(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage"));
}

mod common;

/// Settings that pass every item of the production checklist (on a test PostgreSQL).
fn production_options() -> common::Options {
    common::Options::default()
        .env("ENVIRONMENT", "production")
        .env("DASHBOARD_SIGNING_KEY", &"5a".repeat(32))
        .env("REQUIRE_SPIFFE_SAN", "true")
        .env("BROKER_PUBLIC_URL", "https://broker.example.test")
        .env("LOG_FORMAT", "json")
}

#[test]
fn check_lists_every_checklist_item_and_fails_a_development_setup() {
    let dir = std::env::temp_dir().join(format!("cullis-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cullis-broker"))
        .arg("check")
        .current_dir(&dir)
        .env_clear()
        .env("ADMIN_SECRET", "aaaaaaaaaaaaaaaaaaaa")
        .env("DATABASE_URL", format!("sqlite://{}/c.db", dir.display()))
        .env("ALLOWED_ORIGINS", "*")
        .env("RATE_LIMITS", "off")
        .env("VAULT_ALLOW_HTTP", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for failing in [
        "admin secret",
        "dashboard signing key",
        "allowed origins",
        "database",
        "key storage",
        "spiffe san",
        "public url",
        "vault allow http",
        "json logs",
        "rate limits",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("FAIL") && l.contains(failing)),
            "{failing} should fail:\n{stdout}"
        );
    }
    for passing in ["pdp webhooks", "broker key age"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("PASS") && l.contains(passing)),
            "{passing} should pass:\n{stdout}"
        );
    }
    assert!(stdout.contains("10 of 12 items FAIL"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn production_serve_and_check_agree_and_name_the_failing_item() {
    let broker =
        common::TestBroker::start_with(common::Store::PostgresRedis, production_options()).await;
    let check = broker.cli(&["check"]).await;
    let stdout = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{stdout}");
    assert!(
        stdout.contains("production checklist: all 12 items pass"),
        "{stdout}"
    );

    // An active org without a PDP webhook: `check` fails that item, `serve` refuses to start.
    broker.onboard("acme").await;
    let check = broker.cli(&["check"]).await;
    let stdout = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("pdp webhooks") && l.ends_with("acme")),
        "{stdout}"
    );
    let serve = broker.cli(&["serve", "--port", "0"]).await;
    let stderr = String::from_utf8_lossy(&serve.stderr).into_owned();
    assert_eq!(serve.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("production checklist fails (pdp webhooks:"),
        "{stderr}"
    );
}
