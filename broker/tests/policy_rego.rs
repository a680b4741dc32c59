//! The embedded Rego backend (`POLICY_BACKEND=rego`): real regorus evaluation of policy files
//! written to a scratch directory, configured through the same environment variables the
//! broker reads.

use cullis_broker::policy::{Backend, PolicyEngine, PolicySettings, SessionPolicyInput};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;

struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("cullis-policy-rego-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The reference's policy shape: an allow-list of partner orgs and capabilities, the object
/// form with a reason, and a context condition.
const PARTNERS: &str = r#"
package atn.session

import rego.v1

default allow := {"allow": false, "reason": "no partnership between these organisations"}

allow := {"allow": true, "reason": "partners"} if {
    some pair in data.partners
    pair.from == input.initiator_org_id
    pair.to == input.target_org_id
    every cap in input.capabilities {
        cap in pair.capabilities
    }
    not input.context.emergency_stop
}
"#;

fn engine_from_env(pairs: &[(&str, &str)]) -> Result<PolicyEngine, String> {
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    PolicySettings::from_env(&env)
        .and_then(PolicyEngine::new)
        .map_err(|e| e.to_string())
}

fn input(target_org: &str, caps: &[&str]) -> SessionPolicyInput {
    SessionPolicyInput {
        initiator_agent_id: "acme::buyer".into(),
        initiator_org_id: "acme".into(),
        target_agent_id: format!("{target_org}::seller"),
        target_org_id: target_org.into(),
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_allow_and_a_deny_policy_evaluate_for_real() {
    let scratch = Scratch::new();
    let policy = scratch.write("atn.rego", PARTNERS);
    let data = scratch.write(
        "data.json",
        &json!({"partners": [{"from": "acme", "to": "beta", "capabilities": ["order.read", "order.write"]}]})
            .to_string(),
    );
    let engine = engine_from_env(&[
        ("POLICY_BACKEND", "rego"),
        ("OPA_POLICY_PATH", &policy),
        ("OPA_DATA_PATH", &data),
    ])
    .unwrap();
    assert_eq!(engine.backend(), Backend::Rego);

    let allowed = engine
        .evaluate_session(&input("beta", &["order.read"]))
        .await;
    assert!(allowed.allowed, "{allowed:?}");
    assert_eq!(allowed.reason, "partners");
    assert_eq!(allowed.denied_by, None);

    let other_org = engine
        .evaluate_session(&input("gamma", &["order.read"]))
        .await;
    assert!(!other_org.allowed);
    assert_eq!(
        other_org.reason,
        "no partnership between these organisations"
    );
    assert_eq!(other_org.denied_by.as_deref(), Some("rego"));

    let extra_cap = engine
        .evaluate_session(&input("beta", &["order.read", "payments"]))
        .await;
    assert!(!extra_cap.allowed);

    let mut stopped = input("beta", &["order.read"]);
    stopped.context.insert("emergency_stop".into(), json!(true));
    assert!(!engine.evaluate_session(&stopped).await.allowed);

    // A deny-everything policy in boolean form.
    let deny_all = scratch.write(
        "deny.rego",
        "package atn.session\n\ndefault allow := false\n",
    );
    let engine =
        engine_from_env(&[("POLICY_BACKEND", "REGO"), ("OPA_POLICY_PATH", &deny_all)]).unwrap();
    let denied = engine
        .evaluate_session(&input("beta", &["order.read"]))
        .await;
    assert_eq!(denied.reason, "Denied by Rego policy");
    assert_eq!(denied.decided_by(), "rego");
}

#[test]
fn a_missing_or_broken_policy_refuses_to_start_with_one_line() {
    let scratch = Scratch::new();
    let missing = scratch.0.join("nope.rego").display().to_string();
    let error =
        engine_from_env(&[("POLICY_BACKEND", "rego"), ("OPA_POLICY_PATH", &missing)]).unwrap_err();
    assert!(
        error.starts_with(&format!("OPA_POLICY_PATH '{missing}' cannot be read")),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");

    let broken = scratch.write(
        "broken.rego",
        "package atn.session\n\nallow if {\n    input.initiator_org_id ==\n",
    );
    let error =
        engine_from_env(&[("POLICY_BACKEND", "rego"), ("OPA_POLICY_PATH", &broken)]).unwrap_err();
    assert!(
        error.starts_with(&format!("OPA_POLICY_PATH '{broken}' does not compile")),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");

    let unsafe_var = scratch.write(
        "unsafe.rego",
        "package atn.session\n\nallow if {\n    x == input.initiator_org_id\n}\n",
    );
    let error = engine_from_env(&[("POLICY_BACKEND", "rego"), ("OPA_POLICY_PATH", &unsafe_var)])
        .unwrap_err();
    assert!(error.contains("does not compile"), "{error}");

    let wrong_package = scratch.write("other.rego", "package other\n\nallow := true\n");
    let error = engine_from_env(&[
        ("POLICY_BACKEND", "rego"),
        ("OPA_POLICY_PATH", &wrong_package),
    ])
    .unwrap_err();
    assert!(error.contains("data.atn.session.allow"), "{error}");

    let error = engine_from_env(&[("POLICY_BACKEND", "rego")]).unwrap_err();
    assert!(error.contains("OPA_POLICY_PATH"), "{error}");
    let error = engine_from_env(&[("POLICY_BACKEND", "cedar")]).unwrap_err();
    assert!(
        error.starts_with("POLICY_BACKEND='cedar' is not supported"),
        "{error}"
    );
}
