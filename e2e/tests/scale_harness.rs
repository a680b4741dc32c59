//! `cullis-scale` end to end at a small size (issue 18): the harness populates a real broker
//! through the public API at `BCRYPT_COST=12`, and every check it makes on the broker holds —
//! the narrow query finds its 9 agents, the paged walk adds up to `total`, the
//! `WS_MAX_CONNECTIONS` cap refuses upgrades with 503, nothing errors or times out. No
//! timing is asserted (the numbers are for `docs/scale.md`, not for CI).

use std::process::Command;

fn row<'a>(summary: &'a str, measure: &str) -> &'a str {
    summary
        .lines()
        .find(|line| line.starts_with(&format!("| {measure}")))
        .unwrap_or_else(|| panic!("no '{measure}' row in:\n{summary}"))
}

#[test]
fn a_small_network_passes_every_check_of_the_harness() {
    let output = Command::new(env!("CARGO_BIN_EXE_cullis-scale"))
        .args([
            "--spawn",
            "sqlite",
            "--orgs",
            "3",
            "--agents",
            "150",
            "--sessions",
            "5",
            "--websockets",
            "12",
            "--clients",
            "4",
            "--seconds",
            "1",
            "--idle-seconds",
            "1",
        ])
        .output()
        .expect("cullis-scale runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let summary = &stdout[stdout.find("== summary").expect("a summary")..];
    assert!(
        row(summary, "registration").contains("150 of 150"),
        "{summary}"
    );
    assert!(
        row(summary, "discovery, full walk").contains("consistent"),
        "{summary}"
    );
    let cap = row(summary, "WS_MAX_CONNECTIONS cap");
    assert!(
        cap.contains("20 refused (HTTP 503)") && cap.ends_with("met |"),
        "{cap}"
    );
    // Every stage counts its failures; a correct broker has none.
    for line in stdout.lines().filter(|l| l.contains("errors ")) {
        assert!(
            line.contains("errors 0") && !line.contains("timeouts 1"),
            "a stage saw errors: {line}"
        );
    }
}
