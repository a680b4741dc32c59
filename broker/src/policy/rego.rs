//! `POLICY_BACKEND=rego`: OPA-compatible policies evaluated in process with regorus
//! (DESIGN decision 7). The rule `data.atn.session.allow` is loaded from `OPA_POLICY_PATH`
//! (a `.rego` file, or a directory whose `.rego` files are all loaded) with optional data from
//! `OPA_DATA_PATH` (a JSON file), compiled once at start, and evaluated per decision on a
//! cheap clone of the prepared engine (a few µs).
//!
//! The rule may return what OPA's REST API would: a boolean, `{"allow": bool, "reason": …}`,
//! or `{"decision": "allow"|"deny", "reason": …}`. Undefined denies.

use super::{interpret_result, policy_input, Backend, Decision, SessionPolicyInput};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The rule evaluated for a session decision.
pub const RULE: &str = "data.atn.session.allow";
/// Who a denial is attributed to.
pub const DECIDER: &str = "rego";
/// Wall-clock budget of one evaluation; a policy that runs longer denies.
pub const EVAL_LIMIT: Duration = Duration::from_millis(500);

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct RegoPolicy {
    engine: regorus::Engine,
    path: PathBuf,
}

/// A regorus error on one line. Its diagnostics look like
/// `--> file:5:1 / | / 5 | text / | ^ / error: message`; that becomes `file:5:1: message`.
fn one_line(error: impl std::fmt::Display) -> String {
    let text = error.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let location = lines
        .iter()
        .find_map(|l| l.strip_prefix("-->").map(str::trim));
    let message = lines
        .iter()
        .find_map(|l| l.strip_prefix("error:").map(str::trim));
    match (location, message) {
        (Some(location), Some(message)) => format!("{location}: {message}"),
        _ => lines.join(" "),
    }
}

impl RegoPolicy {
    /// Loads and compiles the policy at `path` (and the JSON data at `data_path`), and checks
    /// that `data.atn.session.allow` evaluates.
    pub fn load(path: &Path, data_path: Option<&Path>) -> Result<RegoPolicy, String> {
        let shown = path.display();
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("OPA_POLICY_PATH '{shown}' cannot be read: {e}"))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|ext| ext == "rego"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!(
                    "OPA_POLICY_PATH '{shown}' is a directory without .rego files"
                ));
            }
            files
        } else {
            vec![path.to_owned()]
        };
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: EVAL_LIMIT,
            check_interval: NonZeroU32::new(64).expect("non-zero"),
        });
        for file in &files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("OPA_POLICY_PATH '{}' cannot be read: {e}", file.display()))?;
            engine
                .add_policy(file.display().to_string(), text)
                .map_err(|e| {
                    format!(
                        "OPA_POLICY_PATH '{}' does not compile: {}",
                        file.display(),
                        one_line(e)
                    )
                })?;
        }
        if let Some(data_path) = data_path {
            let text = std::fs::read_to_string(data_path).map_err(|e| {
                format!(
                    "OPA_DATA_PATH '{}' cannot be read: {e}",
                    data_path.display()
                )
            })?;
            let data = regorus::Value::from_json_str(&text).map_err(|e| {
                format!(
                    "OPA_DATA_PATH '{}' is not JSON: {}",
                    data_path.display(),
                    one_line(e)
                )
            })?;
            engine.add_data(data).map_err(|e| {
                format!(
                    "OPA_DATA_PATH '{}' cannot be used: {}",
                    data_path.display(),
                    one_line(e)
                )
            })?;
        }
        let packages = engine.get_packages().map_err(one_line).unwrap_or_default();
        if !packages.iter().any(|p| p == "data.atn.session") {
            return Err(format!(
                "OPA_POLICY_PATH '{shown}' does not define {RULE} (no `package atn.session`; found: {})",
                if packages.is_empty() { "none".to_owned() } else { packages.join(", ") }
            ));
        }
        let policy = RegoPolicy {
            engine,
            path: path.to_owned(),
        };
        // Compile now (regorus resolves rules lazily): a trial decision surfaces unknown
        // rules, unsafe variables and a missing `data.atn.session.allow`.
        let trial = SessionPolicyInput {
            initiator_agent_id: "start::check".into(),
            initiator_org_id: "start".into(),
            target_agent_id: "check::target".into(),
            target_org_id: "check".into(),
            capabilities: vec!["check".into()],
            ..Default::default()
        };
        policy.raw(&trial).map_err(|e| {
            if e.contains("not a valid rule path") {
                format!("OPA_POLICY_PATH '{shown}' does not define {RULE} (package atn.session has no rule `allow`)")
            } else {
                format!("OPA_POLICY_PATH '{shown}' does not compile: {e}")
            }
        })?;
        Ok(policy)
    }

    /// Where the policy was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rule's value as JSON (`None` when undefined).
    fn raw(&self, input: &SessionPolicyInput) -> Result<Option<serde_json::Value>, String> {
        let mut engine = self.engine.clone();
        engine.set_input(regorus::Value::from(policy_input(input)));
        let value = engine.eval_rule(RULE.to_owned()).map_err(one_line)?;
        if value == regorus::Value::Undefined {
            return Ok(None);
        }
        serde_json::to_value(&value)
            .map(Some)
            .map_err(|e| format!("result is not JSON: {e}"))
    }

    /// Evaluates a decision; an evaluation error denies with its message.
    pub fn evaluate(&self, input: &SessionPolicyInput) -> Decision {
        let (allowed, reason) = match self.raw(input) {
            Ok(result) => interpret_result(result.as_ref(), &super::REGO_LABELS),
            Err(error) => {
                // The details (file, line) are for the operator, not for the agent.
                tracing::warn!(policy = %self.path.display(), %error, "Rego policy evaluation failed");
                (false, "Rego policy evaluation failed".to_owned())
            }
        };
        if allowed {
            Decision::allow(reason, Backend::Rego)
        } else {
            Decision::deny(reason, DECIDER, Backend::Rego)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_file(text: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("atn.rego");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let path =
                    std::env::temp_dir().join(format!("cullis-rego-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn input(target_org: &str) -> SessionPolicyInput {
        SessionPolicyInput {
            initiator_agent_id: "acme::buyer".into(),
            initiator_org_id: "acme".into(),
            target_agent_id: format!("{target_org}::seller"),
            target_org_id: target_org.into(),
            capabilities: vec!["order.read".into()],
            ..Default::default()
        }
    }

    #[test]
    fn boolean_and_decision_forms() {
        let (_dir, path) = policy_file(
            "package atn.session\n\ndefault allow := false\n\nallow if input.target_org_id == \"beta\"\n",
        );
        let policy = RegoPolicy::load(&path, None).unwrap();
        let allowed = policy.evaluate(&input("beta"));
        assert!(allowed.allowed, "{allowed:?}");
        assert_eq!(allowed.reason, "Allowed by Rego policy");
        let denied = policy.evaluate(&input("gamma"));
        assert!(!denied.allowed);
        assert_eq!(denied.denied_by.as_deref(), Some("rego"));
        assert_eq!(denied.reason, "Denied by Rego policy");

        let (_dir, path) = policy_file(
            r#"package atn.session
default allow := {"decision": "deny", "reason": "default"}
allow := {"decision": "allow"} if input.target_org_id in data.allowed_target_orgs
"#,
        );
        let data = path.with_file_name("data.json");
        std::fs::write(&data, r#"{"allowed_target_orgs":["beta"]}"#).unwrap();
        let policy = RegoPolicy::load(&path, Some(&data)).unwrap();
        assert!(policy.evaluate(&input("beta")).allowed);
        assert_eq!(policy.evaluate(&input("c")).reason, "default");
    }

    #[test]
    fn a_runaway_policy_is_stopped_and_denies() {
        let (_dir, path) = policy_file(
            "package atn.session\n\ndefault allow := false\n\nallow if {\n    input.initiator_org_id == \"acme\"\n    some i in numbers.range(1, 100000)\n    some j in numbers.range(1, 100000)\n    i * j == -1\n}\n",
        );
        let policy = RegoPolicy::load(&path, None).unwrap();
        let started = std::time::Instant::now();
        let decision = policy.evaluate(&input("beta"));
        assert_eq!(decision.reason, "Rego policy evaluation failed");
        assert!(
            started.elapsed() < EVAL_LIMIT * 4,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn undefined_denies_and_bad_files_refuse_to_load() {
        let (_dir, path) =
            policy_file("package atn.session\n\nallow if input.target_org_id == \"beta\"\n");
        let policy = RegoPolicy::load(&path, None).unwrap();
        let denied = policy.evaluate(&input("gamma"));
        assert_eq!(denied.reason, "Denied by Rego policy");

        let missing = RegoPolicy::load(Path::new("/nonexistent/atn.rego"), None).unwrap_err();
        assert!(
            missing.starts_with("OPA_POLICY_PATH '/nonexistent/atn.rego' cannot be read"),
            "{missing}"
        );
        let (_dir, path) = policy_file("package atn.session\n\nallow if {{{ input.x\n");
        let broken = RegoPolicy::load(&path, None).unwrap_err();
        assert!(broken.contains("does not compile"), "{broken}");
        assert!(!broken.contains('\n'), "{broken}");
        let (_dir, path) = policy_file("package other\n\nallow := true\n");
        let wrong = RegoPolicy::load(&path, None).unwrap_err();
        assert!(wrong.contains(RULE), "{wrong}");
    }
}
