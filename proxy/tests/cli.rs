//! The real `cullis-proxy` binary's command-line surface.

use std::process::Command;

fn proxy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cullis-proxy"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_subcommand() {
    let output = proxy(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for subcommand in ["serve", "org", "agent"] {
        assert!(
            help.contains(subcommand),
            "{subcommand} missing from:\n{help}"
        );
    }
}

#[test]
fn serve_defaults_to_port_9100() {
    let help = String::from_utf8(proxy(&["serve", "--help"]).stdout).unwrap();
    assert!(help.contains("9100"), "{help}");
}

#[test]
fn unknown_subcommands_fail_with_usage() {
    let output = proxy(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage"));
}
