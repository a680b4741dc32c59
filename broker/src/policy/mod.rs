//! Policy: may agent A of org X open a session with agent B of org Y for capabilities C?
//!
//! [`PolicyEngine`] is built once at start from the configuration (reference §5.2, §10) and
//! answers with a [`Decision`]; nothing in it ever errors: every failure is a denial whose
//! reason says what went wrong (default deny).
//!
//! Backends (`POLICY_BACKEND`):
//! * `webhook` (default, [`webhook`]): both organisations' own policy decision points are
//!   asked, concurrently; either one denies ⇒ deny; an org without a webhook ⇒ deny.
//! * `opa` ([`opa`]): a remote Open Policy Agent at `OPA_URL`.
//! * `rego` ([`rego`]): the same Rego, evaluated in process by regorus from `OPA_POLICY_PATH`.
//!
//! `POLICY_ENFORCEMENT=false` (demo mode) allows everything, with a loud warning at start; the
//! runtime toggle ([`PolicyEngine::set_enforcement`]) overrides it until restart (§5.5).
//!
//! The local rules engine over the `/v1/policy/rules` table ([`local`]) is separate: session
//! restore and message sending call it (§5.6).

pub mod local;
pub mod opa;
pub mod rego;
pub mod ssrf;
pub mod webhook;

use crate::config::Config;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use local::{LocalDecision, MessagePolicyRequest, SessionRulesRequest, LOCAL_RULES_TTL};

/// Deadline of one PDP/OPA call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reason of every decision taken with enforcement off.
pub const DEMO_MODE_REASON: &str = "Policy enforcement disabled (demo mode)";
// The engine lives in the shared state and is used from many tasks.
const _: fn() = || {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<PolicyEngine>();
};

/// Who an allow, or a broker-side denial, is attributed to.
pub const BROKER: &str = "broker";
/// Longest reason taken from a PDP or policy answer (characters).
pub const MAX_REASON_CHARS: usize = 512;

/// Which decision point answers session questions (`POLICY_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Webhook,
    Opa,
    Rego,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Webhook => "webhook",
            Backend::Opa => "opa",
            Backend::Rego => "rego",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a session policy check needs. The caller fills the webhook URLs from the two orgs'
/// rows (`organizations.webhook_url`); only the webhook backend reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPolicyInput {
    pub initiator_agent_id: String,
    pub initiator_org_id: String,
    pub target_agent_id: String,
    pub target_org_id: String,
    /// Requested capabilities, in request order.
    pub capabilities: Vec<String>,
    /// The session request's `context` object (given to OPA/Rego as `input.context` when not
    /// empty; not part of the webhook contract).
    pub context: Map<String, Value>,
    pub initiator_webhook_url: Option<String>,
    pub target_webhook_url: Option<String>,
}

/// A session decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why; for a denial this is what `403 Policy: <reason>` shows.
    pub reason: String,
    /// Who denied: an org id (webhook), `opa`, `rego` or `broker`; `None` when allowed.
    pub denied_by: Option<String>,
    /// The configured backend that was asked (or would have been, in demo mode).
    pub backend: Backend,
}

impl Decision {
    pub fn allow(reason: impl Into<String>, backend: Backend) -> Decision {
        Decision {
            allowed: true,
            reason: reason.into(),
            denied_by: None,
            backend,
        }
    }

    pub fn deny(reason: impl Into<String>, by: impl Into<String>, backend: Backend) -> Decision {
        Decision {
            allowed: false,
            reason: reason.into(),
            denied_by: Some(by.into()),
            backend,
        }
    }

    /// The reference's decision org id: who denied, or `broker` for an allow. This is the
    /// `denied_by` of the `policy.session_denied` audit event.
    pub fn decided_by(&self) -> &str {
        self.denied_by.as_deref().unwrap_or(BROKER)
    }
}

/// A policy setting that cannot be used; one line naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyConfigError(pub String);

/// The policy settings (reference §10, plus `OPA_POLICY_PATH`/`OPA_DATA_PATH` for `rego`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySettings {
    pub backend: Backend,
    pub opa_url: Option<String>,
    pub opa_policy_path: Option<PathBuf>,
    pub opa_data_path: Option<PathBuf>,
    /// `POLICY_ENFORCEMENT` (default true).
    pub enforcement: bool,
    /// `POLICY_WEBHOOK_ALLOW_PRIVATE_IPS` (default false).
    pub webhook_allow_private_ips: bool,
    /// Per-call deadline (5 s; tests shorten it).
    pub timeout: Duration,
}

impl Default for PolicySettings {
    fn default() -> PolicySettings {
        PolicySettings {
            backend: Backend::Webhook,
            opa_url: None,
            opa_policy_path: None,
            opa_data_path: None,
            enforcement: true,
            webhook_allow_private_ips: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl PolicySettings {
    /// Reads the settings from the broker's environment map (upper-case names).
    pub fn from_env(env: &HashMap<String, String>) -> Result<PolicySettings, PolicyConfigError> {
        let get = |name: &str| {
            env.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let backend = match get("POLICY_BACKEND")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("webhook") => Backend::Webhook,
            Some("opa") => Backend::Opa,
            Some("rego") => Backend::Rego,
            Some(other) => {
                return Err(PolicyConfigError(format!(
                    "POLICY_BACKEND='{other}' is not supported: use webhook (default), opa (remote OPA at OPA_URL) or rego (embedded, policy file at OPA_POLICY_PATH)"
                )))
            }
        };
        Ok(PolicySettings {
            backend,
            opa_url: get("OPA_URL"),
            opa_policy_path: get("OPA_POLICY_PATH").map(PathBuf::from),
            opa_data_path: get("OPA_DATA_PATH").map(PathBuf::from),
            enforcement: parse_bool(env, "POLICY_ENFORCEMENT", true)?,
            webhook_allow_private_ips: parse_bool(env, "POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", false)?,
            timeout: DEFAULT_TIMEOUT,
        })
    }
}

fn parse_bool(
    env: &HashMap<String, String>,
    name: &str,
    default: bool,
) -> Result<bool, PolicyConfigError> {
    match env
        .get(name)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(PolicyConfigError(format!(
            "{name}='{other}' is not a boolean: use true or false"
        ))),
    }
}

#[derive(Debug)]
enum BackendImpl {
    Webhook(webhook::WebhookClient),
    Opa(opa::OpaClient),
    Rego(Box<rego::RegoPolicy>),
}

/// The session policy decision point (cheap to clone; the enforcement flag is shared).
#[derive(Debug, Clone)]
pub struct PolicyEngine(Arc<EngineInner>);

#[derive(Debug)]
struct EngineInner {
    backend: BackendImpl,
    settings: PolicySettings,
    enforcement: AtomicBool,
    /// Recently read local rules per (org, policy type), see [`local::LOCAL_RULES_TTL`].
    local_rules: cullis_shared::memo::Memo<(String, &'static str), local::CachedRules>,
}

impl PolicyEngine {
    /// Builds the engine from the broker configuration; an error is the one-line reason the
    /// broker refuses to start.
    pub fn from_config(config: &Config) -> Result<PolicyEngine, PolicyConfigError> {
        PolicyEngine::new(PolicySettings::from_env(&config.env)?)
    }

    /// Builds the engine from explicit settings (tests shorten `timeout` here).
    pub fn new(settings: PolicySettings) -> Result<PolicyEngine, PolicyConfigError> {
        let backend = match settings.backend {
            Backend::Webhook => {
                let addresses = if settings.webhook_allow_private_ips {
                    ssrf::AddressPolicy::AllowPrivate
                } else {
                    ssrf::AddressPolicy::PublicOnly
                };
                BackendImpl::Webhook(
                    webhook::WebhookClient::new(webhook::WebhookOptions {
                        timeout: settings.timeout,
                        max_response_bytes: webhook::MAX_RESPONSE_BYTES,
                        addresses,
                    })
                    .map_err(PolicyConfigError)?,
                )
            }
            Backend::Opa => {
                let url = settings.opa_url.as_deref().ok_or_else(|| {
                    PolicyConfigError(
                        "POLICY_BACKEND=opa requires OPA_URL (e.g. OPA_URL=http://opa:8181)".into(),
                    )
                })?;
                BackendImpl::Opa(
                    opa::OpaClient::new(url, settings.timeout).map_err(PolicyConfigError)?,
                )
            }
            Backend::Rego => {
                let path = settings.opa_policy_path.as_deref().ok_or_else(|| {
                    PolicyConfigError(
                        "POLICY_BACKEND=rego requires OPA_POLICY_PATH (a .rego file defining data.atn.session.allow)".into(),
                    )
                })?;
                BackendImpl::Rego(Box::new(
                    rego::RegoPolicy::load(path, settings.opa_data_path.as_deref())
                        .map_err(PolicyConfigError)?,
                ))
            }
        };
        let engine = PolicyEngine(Arc::new(EngineInner {
            backend,
            enforcement: AtomicBool::new(settings.enforcement),
            settings,
            local_rules: cullis_shared::memo::Memo::new(10_000),
        }));
        for warning in engine.warnings() {
            tracing::warn!("{warning}");
        }
        Ok(engine)
    }

    /// Start-up warnings (already logged by [`PolicyEngine::new`]).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.0.settings.enforcement {
            warnings.push("!!! POLICY_ENFORCEMENT=false: DEMO MODE — every session and message policy decision is ALLOW and session scope checks are skipped. Never run this in production. !!!".to_owned());
        }
        if self.0.settings.backend == Backend::Webhook && self.0.settings.webhook_allow_private_ips
        {
            warnings.push("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS=true: PDP webhooks may reach private and loopback addresses (SSRF guard relaxed; for docker/e2e only)".to_owned());
        }
        warnings
    }

    pub fn backend(&self) -> Backend {
        self.0.settings.backend
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.0.settings
    }

    /// Whether decisions are enforced now (runtime toggle, else `POLICY_ENFORCEMENT`).
    pub fn enforcement_enabled(&self) -> bool {
        self.0.enforcement.load(Ordering::SeqCst)
    }

    /// The runtime toggle (reference §5.5): affects the dispatcher and the local rules engine,
    /// not the static scope checks of session creation. Process-local; lost on restart.
    pub fn set_enforcement(&self, enabled: bool) {
        let before = self.0.enforcement.swap(enabled, Ordering::SeqCst);
        if before != enabled {
            if enabled {
                tracing::warn!("policy enforcement switched ON at runtime");
            } else {
                tracing::warn!("policy enforcement switched OFF at runtime: demo mode, every policy decision is ALLOW");
            }
        }
    }

    /// `POLICY_ENFORCEMENT` as configured, ignoring the runtime toggle. Session creation's
    /// scope and advertised-capability checks (§5.1 step 7) follow this one.
    pub fn configured_enforcement(&self) -> bool {
        self.0.settings.enforcement
    }

    /// The session decision (§5.2): demo mode allows; otherwise the configured backend
    /// decides. Never fails: errors are denials with their reason.
    pub async fn evaluate_session(&self, input: &SessionPolicyInput) -> Decision {
        if !self.enforcement_enabled() {
            return Decision::allow(DEMO_MODE_REASON, self.backend());
        }
        let decision = match &self.0.backend {
            BackendImpl::Webhook(client) => client.evaluate(input).await,
            BackendImpl::Opa(client) => client.evaluate(input).await,
            BackendImpl::Rego(policy) => policy.evaluate(input),
        };
        let metrics = crate::telemetry::metrics();
        let counter = if decision.allowed {
            &metrics.policy_allow
        } else {
            &metrics.policy_deny
        };
        counter.add(
            1,
            &[opentelemetry::KeyValue::new(
                "policy_type",
                decision.backend.as_str(),
            )],
        );
        decision
    }
}

/// The `input` document given to OPA and Rego: the reference's five fields, plus `context`
/// when the session request carried one.
pub(crate) fn policy_input(input: &SessionPolicyInput) -> Value {
    let mut document = serde_json::to_value(cullis_shared::wire::pdp::OpaInput {
        initiator_agent_id: input.initiator_agent_id.clone(),
        initiator_org_id: input.initiator_org_id.clone(),
        target_agent_id: input.target_agent_id.clone(),
        target_org_id: input.target_org_id.clone(),
        capabilities: input.capabilities.clone(),
    })
    .expect("strings serialize");
    if !input.context.is_empty() {
        document["context"] = Value::Object(input.context.clone());
    }
    document
}

/// Default reasons of an OPA-style result.
pub(crate) struct ResultLabels {
    allowed: &'static str,
    denied: &'static str,
    invalid: &'static str,
}

pub(crate) const OPA_LABELS: ResultLabels = ResultLabels {
    allowed: "Allowed by OPA policy",
    denied: "Denied by OPA policy",
    invalid: "OPA returned invalid result",
};

pub(crate) const REGO_LABELS: ResultLabels = ResultLabels {
    allowed: "Allowed by Rego policy",
    denied: "Denied by Rego policy",
    invalid: "Rego policy returned an invalid result",
};

/// Reads an OPA `result`: a boolean, `{"allow": bool, "reason"}` or (leniently)
/// `{"decision": "allow"|"deny", "reason"}`. Absent or `{}` denies; other shapes deny as
/// invalid.
pub(crate) fn interpret_result(result: Option<&Value>, labels: &ResultLabels) -> (bool, String) {
    let reason_or = |object: &Map<String, Value>, default: &str| {
        object
            .get("reason")
            .and_then(truncate_reason)
            .unwrap_or_else(|| default.to_owned())
    };
    match result {
        None => (false, labels.denied.to_owned()),
        Some(Value::Bool(true)) => (true, labels.allowed.to_owned()),
        Some(Value::Bool(false)) => (false, labels.denied.to_owned()),
        Some(Value::Object(object)) => {
            let allowed = match (object.get("allow"), object.get("decision")) {
                (Some(Value::Bool(allow)), _) => *allow,
                (Some(_), _) => return (false, labels.invalid.to_owned()),
                (None, Some(Value::String(decision))) => decision.eq_ignore_ascii_case("allow"),
                (None, Some(_)) => return (false, labels.invalid.to_owned()),
                (None, None) => false,
            };
            if allowed {
                (true, reason_or(object, labels.allowed))
            } else {
                (false, reason_or(object, labels.denied))
            }
        }
        Some(_) => (false, labels.invalid.to_owned()),
    }
}

/// A reason taken from an answer: strings as they are, other values as JSON text, at most
/// [`MAX_REASON_CHARS`] characters; empty/null is no reason.
pub(crate) fn truncate_reason(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if text.trim().is_empty() {
        return None;
    }
    Some(text.chars().take(MAX_REASON_CHARS).collect())
}

/// `5.0s`, `0.3s`: the reference's way of writing a timeout.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// An error and its causes, `outer: inner: innermost`, without repeating a cause that the
/// outer message already contains.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Python's list repr (`['a', 'b']`), for reference reason texts.
pub(crate) fn py_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Length of Python's default `json.dumps(value)` text (separators `", "` and `": "`,
/// `ensure_ascii=True`), which is how the reference measures JSON sizes.
pub fn python_json_len(value: &Value) -> usize {
    fn separators(value: &Value) -> usize {
        match value {
            Value::Array(items) => {
                items.len().saturating_sub(1) + items.iter().map(separators).sum::<usize>()
            }
            Value::Object(map) => {
                map.len()
                    + map.len().saturating_sub(1)
                    + map.values().map(separators).sum::<usize>()
            }
            _ => 0,
        }
    }
    cullis_shared::encoding::canonical_json::to_string(value).len() + separators(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_from_env() {
        let defaults = PolicySettings::from_env(&env(&[])).unwrap();
        assert_eq!(defaults, PolicySettings::default());
        let opa = PolicySettings::from_env(&env(&[
            ("POLICY_BACKEND", "OPA"),
            ("OPA_URL", "http://opa:8181"),
            ("POLICY_ENFORCEMENT", "false"),
            ("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "yes"),
        ]))
        .unwrap();
        assert_eq!(opa.backend, Backend::Opa);
        assert!(!opa.enforcement);
        assert!(opa.webhook_allow_private_ips);
        let unknown = PolicySettings::from_env(&env(&[("POLICY_BACKEND", "xacml")])).unwrap_err();
        assert!(
            unknown
                .0
                .starts_with("POLICY_BACKEND='xacml' is not supported"),
            "{unknown}"
        );
        let bad = PolicySettings::from_env(&env(&[("POLICY_ENFORCEMENT", "maybe")])).unwrap_err();
        assert_eq!(
            bad.0,
            "POLICY_ENFORCEMENT='maybe' is not a boolean: use true or false"
        );
    }

    #[test]
    fn backends_refuse_to_start_without_their_settings() {
        let opa = PolicyEngine::new(PolicySettings {
            backend: Backend::Opa,
            ..Default::default()
        })
        .unwrap_err();
        assert!(opa.0.contains("OPA_URL"), "{opa}");
        let rego = PolicyEngine::new(PolicySettings {
            backend: Backend::Rego,
            ..Default::default()
        })
        .unwrap_err();
        assert!(rego.0.contains("OPA_POLICY_PATH"), "{rego}");
        let missing = PolicyEngine::new(PolicySettings {
            backend: Backend::Rego,
            opa_policy_path: Some("/nonexistent/policy.rego".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            missing
                .0
                .starts_with("OPA_POLICY_PATH '/nonexistent/policy.rego' cannot be read"),
            "{missing}"
        );
    }

    #[tokio::test]
    async fn demo_mode_allows_and_the_toggle_flips_it() {
        let engine = PolicyEngine::new(PolicySettings {
            enforcement: false,
            ..Default::default()
        })
        .unwrap();
        assert!(engine.warnings()[0].contains("DEMO MODE"));
        let input = SessionPolicyInput {
            initiator_org_id: "acme".into(),
            target_org_id: "beta".into(),
            ..Default::default()
        };
        let decision = engine.evaluate_session(&input).await;
        assert_eq!(
            decision,
            Decision::allow(DEMO_MODE_REASON, Backend::Webhook)
        );
        assert_eq!(decision.decided_by(), "broker");
        engine.set_enforcement(true);
        assert!(engine.enforcement_enabled());
        assert!(!engine.configured_enforcement());
        let decision = engine.clone().evaluate_session(&input).await;
        assert!(!decision.allowed);
        assert_eq!(decision.decided_by(), "acme");
    }

    #[test]
    fn opa_results() {
        let r = |v: Value| interpret_result(Some(&v), &OPA_LABELS);
        assert_eq!(r(json!(true)), (true, "Allowed by OPA policy".into()));
        assert_eq!(r(json!(false)), (false, "Denied by OPA policy".into()));
        assert_eq!(
            r(json!({"allow": false, "reason": "not in allow-list"})),
            (false, "not in allow-list".into())
        );
        assert_eq!(
            r(json!({"allow": true})),
            (true, "Allowed by OPA policy".into())
        );
        assert_eq!(r(json!({})), (false, "Denied by OPA policy".into()));
        assert_eq!(
            r(json!({"allow": "yes"})),
            (false, "OPA returned invalid result".into())
        );
        assert_eq!(r(json!(1)), (false, "OPA returned invalid result".into()));
        assert_eq!(
            r(json!(null)),
            (false, "OPA returned invalid result".into())
        );
        assert!(r(json!({"decision": "ALLOW"})).0);
        assert_eq!(
            interpret_result(None, &OPA_LABELS),
            (false, "Denied by OPA policy".into())
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(seconds(Duration::from_secs(5)), "5.0s");
        assert_eq!(seconds(Duration::from_millis(300)), "0.3s");
        assert_eq!(py_list(&["a".into(), "b".into()]), "['a', 'b']");
        assert_eq!(truncate_reason(&json!("")), None);
        assert_eq!(truncate_reason(&json!({"a": 1})).unwrap(), r#"{"a":1}"#);
        // json.dumps({"a": [1, 2], "b": "é"}) == '{"a": [1, 2], "b": "\\u00e9"}' (28 chars)
        assert_eq!(python_json_len(&json!({"a": [1, 2], "b": "é"})), 28);
        assert_eq!(python_json_len(&json!({})), 2);
        assert_eq!(python_json_len(&json!([])), 2);
    }

    #[test]
    fn the_input_document_has_the_reference_fields_and_context() {
        let mut input = SessionPolicyInput {
            initiator_agent_id: "acme::a".into(),
            initiator_org_id: "acme".into(),
            target_agent_id: "beta::b".into(),
            target_org_id: "beta".into(),
            capabilities: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            policy_input(&input),
            json!({"initiator_agent_id":"acme::a","initiator_org_id":"acme","target_agent_id":"beta::b","target_org_id":"beta","capabilities":["x"]})
        );
        input.context.insert("purpose".into(), json!("rfq"));
        assert_eq!(policy_input(&input)["context"]["purpose"], "rfq");
    }
}
