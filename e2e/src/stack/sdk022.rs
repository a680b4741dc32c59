//! The published Python SDK, `cullis-sdk` 0.2.2 from PyPI, in a venv outside the repository
//! (`CULLIS_SDK022_VENV`, default `/var/tmp/cullis-sdk022`; created on first use with
//! `python3 -m venv <dir> && <dir>/bin/pip install cullis-sdk==0.2.2`), and a runner for the
//! driver script `e2e/tests/sdk_022/driver.py` that exercises its unmodified direct client.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The SDK release under test.
pub const SDK_REQUIREMENT: &str = "cullis-sdk==0.2.2";

/// Serialises venv creation between tests of one process.
static CREATING: Mutex<()> = Mutex::new(());

fn venv_dir() -> PathBuf {
    std::env::var_os("CULLIS_SDK022_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/cullis-sdk022"))
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The venv's Python with `cullis-sdk` 0.2.2 importable; the venv is made when missing.
pub fn python() -> PathBuf {
    let _creating = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = venv_dir();
    let python = dir.join("bin/python");
    let has_sdk = |python: &PathBuf| {
        Command::new(python)
            .args([
                "-c",
                "import cullis_sdk; assert cullis_sdk.__version__ == '0.2.2'",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_sdk(&python) {
        return python;
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&dir),
        "python3 -m venv",
    );
    run(
        Command::new(dir.join("bin/pip")).args(["install", "-q", SDK_REQUIREMENT]),
        "pip install cullis-sdk==0.2.2",
    );
    assert!(
        has_sdk(&python),
        "cullis-sdk 0.2.2 not importable in {}",
        dir.display()
    );
    python
}

/// Runs `driver.py <command> <config file>` and returns its JSON summary (the last stdout
/// line); panics with the driver's output when a check fails.
pub async fn drive(driver: &std::path::Path, command: &str, config: &Value) -> Value {
    let file = std::env::temp_dir().join(format!("cullis-sdk022-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, config.to_string()).expect("driver config");
    let python = tokio::task::spawn_blocking(python).await.expect("venv");
    let mut child = tokio::process::Command::new(python);
    child.arg(driver).arg(command).arg(&file);
    let output = child.output().await.expect("the driver runs");
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "driver {command} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("driver summary {last:?}: {e}"))
}
