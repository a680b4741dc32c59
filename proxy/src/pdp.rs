//! The organisation's policy decision point, called by the broker for every session request
//! (`POST /pdp/policy`) with the reference's rules: blocked agents, allowed orgs (peer org
//! depends on `session_context`), allowed capabilities. Deny is sticky; the last reason wins.

use cullis_shared::wire::pdp::{PdpDecision, PdpRequest, PdpResponse, SessionContext};
use serde_json::Value;

/// Settings key of the rules JSON.
pub const RULES_KEY: &str = "policy_rules";

/// Evaluates `request` against `rules` (any JSON; missing or malformed parts allow).
pub fn evaluate(rules: &Value, request: &PdpRequest) -> PdpResponse {
    let mut reason: Option<String> = None;
    if let Some(blocked) = rules.get("blocked_agents").and_then(Value::as_array) {
        let listed = |id: &str| blocked.iter().any(|b| b.as_str() == Some(id));
        if listed(&request.initiator_agent_id) || listed(&request.target_agent_id) {
            reason = Some("Agent blocked by policy".into());
        }
    }
    if let Some(allowed) = rules.get("allowed_orgs").and_then(Value::as_array) {
        let peer = match request.session_context {
            SessionContext::Target => &request.initiator_org_id,
            SessionContext::Initiator => &request.target_org_id,
        };
        if !allowed.is_empty() && !allowed.iter().any(|o| o.as_str() == Some(peer)) {
            reason = Some(format!("Organization '{peer}' not in allowed list"));
        }
    }
    // Only a non-empty list restricts; the reference dashboard's `{}` default is ignored.
    if let Some(caps) = rules.get("capabilities").and_then(Value::as_array) {
        if !caps.is_empty() {
            let denied: Vec<&str> = request
                .capabilities
                .iter()
                .filter(|c| !caps.iter().any(|a| a.as_str() == Some(c.as_str())))
                .map(String::as_str)
                .collect();
            if !denied.is_empty() {
                reason = Some(format!(
                    "Capabilities not allowed: {}",
                    python_list(&denied)
                ));
            }
        }
    }
    match reason {
        Some(reason) => PdpResponse {
            decision: PdpDecision::Deny,
            reason: Some(reason),
        },
        None => PdpResponse {
            decision: PdpDecision::Allow,
            reason: None,
        },
    }
}

/// A list of strings as Python prints it (the reference's reason text): `['a', 'b']`.
fn python_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Checks that an operator-supplied rules document has the shapes the PDP understands.
pub fn validate_rules(rules: &Value) -> Result<(), String> {
    let Some(map) = rules.as_object() else {
        return Err("policy rules must be a JSON object".into());
    };
    for key in ["blocked_agents", "allowed_orgs"] {
        if let Some(v) = map.get(key) {
            let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
            if !ok {
                return Err(format!("{key} must be a list of strings"));
            }
        }
    }
    if let Some(v) = map.get("capabilities") {
        let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) || v.is_object();
        if !ok {
            return Err("capabilities must be a list of strings".into());
        }
    }
    Ok(())
}

/// The stored rules (`{}` when none were set).
pub async fn rules(store: &crate::store::Store) -> Result<Value, crate::store::StoreError> {
    Ok(match store.setting(RULES_KEY).await? {
        Some(text) => {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::Object(Default::default()))
        }
        None => Value::Object(Default::default()),
    })
}

/// Validates and stores new rules; audited as `policy.update_rules`.
pub async fn set_rules(
    store: &crate::store::Store,
    rules: &Value,
) -> Result<(), crate::context::OpError> {
    validate_rules(rules).map_err(crate::context::OpError::Invalid)?;
    store.set_setting(RULES_KEY, &rules.to_string()).await?;
    crate::audit::record_quietly(
        store,
        crate::audit::AuditEntry::new(
            crate::audit::ADMIN_ACTOR,
            "policy.update_rules",
            crate::audit::Outcome::Success,
        )
        .detail(rules.to_string()),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(context: SessionContext, caps: &[&str]) -> PdpRequest {
        PdpRequest {
            initiator_agent_id: "alpha::buyer".into(),
            initiator_org_id: "alpha".into(),
            target_agent_id: "beta::seller".into(),
            target_org_id: "beta".into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            session_context: context,
        }
    }

    #[test]
    fn empty_or_malformed_rules_allow() {
        for rules in [
            json!({}),
            json!(null),
            json!({"capabilities": {}}),
            json!({"blocked_agents": "x"}),
        ] {
            let r = evaluate(&rules, &request(SessionContext::Initiator, &["a"]));
            assert_eq!(r.decision, PdpDecision::Allow, "{rules}");
            assert_eq!(r.reason, None);
        }
    }

    #[test]
    fn blocked_agents_deny_either_side() {
        for blocked in ["alpha::buyer", "beta::seller"] {
            let r = evaluate(
                &json!({"blocked_agents": [blocked]}),
                &request(SessionContext::Target, &[]),
            );
            assert_eq!(r.decision, PdpDecision::Deny);
            assert_eq!(r.reason.as_deref(), Some("Agent blocked by policy"));
        }
    }

    #[test]
    fn allowed_orgs_use_the_peer_org() {
        let rules = json!({"allowed_orgs": ["alpha"]});
        assert_eq!(
            evaluate(&rules, &request(SessionContext::Target, &[])).decision,
            PdpDecision::Allow
        );
        let r = evaluate(&rules, &request(SessionContext::Initiator, &[]));
        assert_eq!(
            r.reason.as_deref(),
            Some("Organization 'beta' not in allowed list")
        );
        assert_eq!(
            evaluate(
                &json!({"allowed_orgs": []}),
                &request(SessionContext::Initiator, &[])
            )
            .decision,
            PdpDecision::Allow
        );
    }

    #[test]
    fn capabilities_list_restricts_and_last_reason_wins() {
        let r = evaluate(
            &json!({"capabilities": ["a"]}),
            &request(SessionContext::Initiator, &["a", "b"]),
        );
        assert_eq!(r.reason.as_deref(), Some("Capabilities not allowed: ['b']"));
        let r = evaluate(
            &json!({"blocked_agents": ["alpha::buyer"], "capabilities": ["a"]}),
            &request(SessionContext::Initiator, &["b"]),
        );
        assert_eq!(r.decision, PdpDecision::Deny);
        assert!(r.reason.unwrap().starts_with("Capabilities"));
    }

    #[test]
    fn rules_validation() {
        assert!(validate_rules(&json!({"blocked_agents": ["a"], "capabilities": {}})).is_ok());
        assert!(validate_rules(&json!([])).is_err());
        assert!(validate_rules(&json!({"allowed_orgs": [1]})).is_err());
    }
}
