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
    for subcommand in ["serve", "migrate", "pki"] {
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
