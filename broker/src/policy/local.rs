//! The local rules engine over `/v1/policy/rules` (reference §5.6): `session` policies
//! (checked on session restore) and `message` policies (checked on every message).
//!
//! [`decide_session`] and [`decide_message`] are pure functions over the stored rows;
//! [`PolicyEngine::evaluate_session_rules`] and [`PolicyEngine::evaluate_message_rules`] load
//! the rows, honour the enforcement toggle and write the `policy.evaluated` audit event every
//! evaluation leaves.
//!
//! Fixes over the reference: a stored rule object that does not have the documented shape, or
//! an `effect` other than allow/deny, denies (the reference skipped or allowed it).

use super::{py_list, python_json_len, PolicyEngine, DEMO_MODE_REASON};
use crate::audit::{AuditEvent, ChainWriter, Outcome};
use crate::db::policies::StoredPolicy;
use crate::db::Db;
use cullis_shared::wire::policy::{MessagePolicyRules, PolicyType, SessionPolicyRules};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A local-engine decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDecision {
    pub allowed: bool,
    pub reason: String,
    /// The policy that decided, when one did.
    pub policy_id: Option<String>,
}

impl LocalDecision {
    fn allow(reason: impl Into<String>, policy_id: Option<&str>) -> LocalDecision {
        LocalDecision {
            allowed: true,
            reason: reason.into(),
            policy_id: policy_id.map(str::to_owned),
        }
    }

    fn deny(reason: impl Into<String>, policy_id: Option<&str>) -> LocalDecision {
        LocalDecision {
            allowed: false,
            reason: reason.into(),
            policy_id: policy_id.map(str::to_owned),
        }
    }
}

/// A session to check against the orgs' `session` policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRulesRequest {
    pub initiator_org_id: String,
    pub target_org_id: String,
    pub capabilities: Vec<String>,
    /// Sessions the initiator org has open now, for `max_active_sessions` (the reference
    /// always passed 0).
    pub active_sessions: i64,
    /// For the audit row.
    pub initiator_agent_id: Option<String>,
    pub session_id: Option<String>,
}

/// A message to check against the sender org's `message` policies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessagePolicyRequest<'a> {
    pub sender_org_id: &'a str,
    /// The envelope payload; its top-level keys are what `required_fields` and
    /// `blocked_fields` look at.
    pub payload: &'a Value,
    /// For the audit row.
    pub sender_agent_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

fn effect_denies(policy: &StoredPolicy, effect: &str) -> Result<bool, LocalDecision> {
    if effect.eq_ignore_ascii_case("allow") {
        Ok(false)
    } else if effect.eq_ignore_ascii_case("deny") {
        Ok(true)
    } else {
        Err(LocalDecision::deny(
            format!(
                "Policy '{}' has invalid rules: effect must be 'allow' or 'deny', got '{effect}'",
                policy.policy_id
            ),
            Some(&policy.policy_id),
        ))
    }
}

fn session_rules(policy: &StoredPolicy) -> Result<SessionPolicyRules, LocalDecision> {
    serde_json::from_value::<SessionPolicyRules>(policy.rules.clone()).map_err(|e| {
        LocalDecision::deny(
            format!("Policy '{}' has invalid rules: {e}", policy.policy_id),
            Some(&policy.policy_id),
        )
    })
}

/// Decides a session from the initiator org's and the target org's active `session` policies
/// (in stored order).
///
/// Initiator phase (default deny): no policy ⇒ deny; the first policy whose conditions match
/// decides by its effect; none matches ⇒ deny with the last mismatch. Target phase (opt-out):
/// a target policy that applies to the initiator org and has effect deny ⇒ deny.
pub fn decide_session(
    request: &SessionRulesRequest,
    initiator_policies: &[StoredPolicy],
    target_policies: &[StoredPolicy],
) -> LocalDecision {
    if initiator_policies.is_empty() {
        return LocalDecision::deny("No policy defined — default deny", None);
    }
    let mut last_mismatch: Option<(String, &str)> = None;
    let mut allowed_by: Option<&str> = None;
    for policy in initiator_policies {
        let rules = match session_rules(policy) {
            Ok(rules) => rules,
            Err(denial) => return denial,
        };
        let conditions = &rules.conditions;
        let id = policy.policy_id.as_str();
        if !conditions.target_org_id.is_empty()
            && !conditions.target_org_id.contains(&request.target_org_id)
        {
            last_mismatch = Some((
                format!(
                    "Target organisation '{}' not permitted by policy",
                    request.target_org_id
                ),
                id,
            ));
            continue;
        }
        if !conditions.capabilities.is_empty() {
            let outside: Vec<String> = request
                .capabilities
                .iter()
                .filter(|cap| !conditions.capabilities.contains(cap))
                .cloned()
                .collect();
            if !outside.is_empty() {
                last_mismatch = Some((
                    format!("Capabilities {} not permitted by policy", py_list(&outside)),
                    id,
                ));
                continue;
            }
        }
        if let Some(max) = conditions.max_active_sessions {
            if request.active_sessions >= max {
                last_mismatch = Some((
                    format!(
                        "Active session limit reached ({}/{max})",
                        request.active_sessions
                    ),
                    id,
                ));
                continue;
            }
        }
        match effect_denies(policy, &rules.effect) {
            Err(denial) => return denial,
            Ok(true) => return LocalDecision::deny("Explicitly denied by org policy", Some(id)),
            Ok(false) => {
                allowed_by = Some(id);
                break;
            }
        }
    }
    let Some(allowed_by) = allowed_by else {
        return match last_mismatch {
            Some((reason, id)) => LocalDecision::deny(reason, Some(id)),
            None => LocalDecision::deny("No matching org policy found", None),
        };
    };
    for policy in target_policies {
        let rules = match session_rules(policy) {
            Ok(rules) => rules,
            Err(denial) => return denial,
        };
        let applies = rules.conditions.target_org_id.is_empty()
            || rules
                .conditions
                .target_org_id
                .contains(&request.initiator_org_id);
        if !applies {
            continue;
        }
        match effect_denies(policy, &rules.effect) {
            Err(denial) => return denial,
            Ok(true) => {
                return LocalDecision::deny(
                    "Denied by target organisation policy",
                    Some(&policy.policy_id),
                )
            }
            Ok(false) => {}
        }
    }
    LocalDecision::allow("Allowed by org policy", Some(allowed_by))
}

/// Decides a message from the sender org's active `message` policies (in stored order); the
/// first failing condition denies.
pub fn decide_message(payload: &Value, policies: &[StoredPolicy]) -> LocalDecision {
    if policies.is_empty() {
        return LocalDecision::allow("No message policy — default allow", None);
    }
    let keys = payload.as_object();
    let has = |field: &String| keys.is_some_and(|k| k.contains_key(field));
    let mut size: Option<usize> = None;
    for policy in policies {
        let id = Some(policy.policy_id.as_str());
        let rules = match serde_json::from_value::<MessagePolicyRules>(policy.rules.clone()) {
            Ok(rules) => rules,
            Err(e) => {
                return LocalDecision::deny(
                    format!("Policy '{}' has invalid rules: {e}", policy.policy_id),
                    id,
                )
            }
        };
        let conditions = &rules.conditions;
        if let Some(max) = conditions.max_payload_size_bytes {
            let n = *size.get_or_insert_with(|| python_json_len(payload));
            if n as u64 > max {
                return LocalDecision::deny(
                    format!("Payload too large: {n} bytes (max {max})"),
                    id,
                );
            }
        }
        let missing: Vec<String> = conditions
            .required_fields
            .iter()
            .filter(|f| !has(f))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return LocalDecision::deny(
                format!(
                    "Required fields missing from payload: {}",
                    py_list(&missing)
                ),
                id,
            );
        }
        let blocked: Vec<String> = conditions
            .blocked_fields
            .iter()
            .filter(|f| has(f))
            .cloned()
            .collect();
        if !blocked.is_empty() {
            return LocalDecision::deny(
                format!("Blocked fields present in payload: {}", py_list(&blocked)),
                id,
            );
        }
        match effect_denies(policy, &rules.effect) {
            Err(denial) => return denial,
            Ok(true) => return LocalDecision::deny("Message explicitly denied by policy", id),
            Ok(false) => {}
        }
    }
    LocalDecision::allow("Payload compliant with policies", None)
}

/// How long an org's local rules, once read, are used without reading them again. A change
/// made through this broker process applies at once (it clears the memo); one made through
/// another replica applies within this time.
pub const LOCAL_RULES_TTL: Duration = Duration::from_secs(2);

/// An org's active rules of one type, as read at `read_at`.
pub(super) type CachedRules = (Instant, Arc<Vec<StoredPolicy>>);

impl PolicyEngine {
    /// The active rules of `org_id` of one type, from memory when read within
    /// [`LOCAL_RULES_TTL`] (every message send consults them).
    async fn active_rules(
        &self,
        db: &Db,
        org_id: &str,
        policy_type: PolicyType,
    ) -> Result<Arc<Vec<StoredPolicy>>, sqlx::Error> {
        let key = (org_id.to_owned(), policy_type.as_str());
        if let Some((read_at, rules)) = self.0.local_rules.get(&key) {
            if read_at.elapsed() < LOCAL_RULES_TTL {
                return Ok(rules);
            }
        }
        let read_at = Instant::now();
        let rules = Arc::new(
            db.active_policies(org_id, Some(policy_type.as_str()))
                .await?,
        );
        self.0.local_rules.insert(key, (read_at, rules.clone()));
        Ok(rules)
    }

    /// Forgets every remembered rule set: called after this process changes a policy.
    pub fn forget_local_rules(&self) {
        self.0.local_rules.clear();
    }

    /// Checks a session against the local `session` policies of both orgs, and records
    /// `policy.evaluated`. Enforcement off ⇒ allow (still recorded). An `Err` is a database
    /// or audit failure: the caller answers 503, never allows.
    pub async fn evaluate_session_rules(
        &self,
        db: &Db,
        audit: &ChainWriter,
        request: &SessionRulesRequest,
    ) -> Result<LocalDecision, sqlx::Error> {
        let decision = if !self.enforcement_enabled() {
            LocalDecision::allow(DEMO_MODE_REASON, None)
        } else {
            let kind = PolicyType::Session;
            let initiator = self
                .active_rules(db, &request.initiator_org_id, kind)
                .await?;
            let target = if initiator.is_empty() {
                Arc::default()
            } else {
                self.active_rules(db, &request.target_org_id, kind).await?
            };
            decide_session(request, &initiator, &target)
        };
        let event = evaluated_event(
            PolicyType::Session,
            &decision,
            &request.initiator_org_id,
            request.initiator_agent_id.as_deref(),
            request.session_id.as_deref(),
        );
        audit.record(event).await?;
        Ok(decision)
    }

    /// Checks a message payload against the sender org's `message` policies. Enforcement off
    /// ⇒ allow. Returns the decision and its `policy.evaluated` event, which the caller records
    /// (on the send path, in the same transaction as the message). An `Err` is a database
    /// failure.
    pub async fn evaluate_message_rules(
        &self,
        db: &Db,
        request: &MessagePolicyRequest<'_>,
    ) -> Result<(LocalDecision, AuditEvent), sqlx::Error> {
        let decision = if !self.enforcement_enabled() {
            LocalDecision::allow(DEMO_MODE_REASON, None)
        } else {
            let policies = self
                .active_rules(db, request.sender_org_id, PolicyType::Message)
                .await?;
            decide_message(request.payload, &policies)
        };
        let event = evaluated_event(
            PolicyType::Message,
            &decision,
            request.sender_org_id,
            request.sender_agent_id,
            request.session_id,
        );
        Ok((decision, event))
    }
}

/// The `policy.evaluated` row of a local decision.
fn evaluated_event(
    policy_type: PolicyType,
    decision: &LocalDecision,
    org_id: &str,
    agent_id: Option<&str>,
    session_id: Option<&str>,
) -> AuditEvent {
    let outcome = if decision.allowed {
        Outcome::Ok
    } else {
        Outcome::Denied
    };
    let mut event = AuditEvent::new("policy.evaluated", outcome)
        .org(org_id)
        .detail("policy_type", policy_type.as_str())
        .detail("policy_id", decision.policy_id.clone())
        .detail("reason", decision.reason.clone());
    event.agent_id = agent_id.map(str::to_owned);
    event.session_id = session_id.map(str::to_owned);
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(id: &str, rules: Value) -> StoredPolicy {
        StoredPolicy {
            id: 1,
            policy_id: id.into(),
            org_id: "acme".into(),
            policy_type: "session".into(),
            rules,
            is_active: true,
            created_at: String::new(),
        }
    }

    fn request(target: &str, caps: &[&str]) -> SessionRulesRequest {
        SessionRulesRequest {
            initiator_org_id: "acme".into(),
            target_org_id: target.into(),
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn session_initiator_phase_is_default_deny() {
        let r = request("beta", &["order.read"]);
        assert_eq!(
            decide_session(&r, &[], &[]),
            LocalDecision::deny("No policy defined — default deny", None)
        );
        let allow_beta = policy(
            "p1",
            json!({"effect":"allow","conditions":{"target_org_id":["beta"],"capabilities":["order.read","order.write"]}}),
        );
        assert_eq!(
            decide_session(&r, std::slice::from_ref(&allow_beta), &[]),
            LocalDecision::allow("Allowed by org policy", Some("p1"))
        );
        assert_eq!(
            decide_session(
                &request("gamma", &["order.read"]),
                std::slice::from_ref(&allow_beta),
                &[]
            )
            .reason,
            "Target organisation 'gamma' not permitted by policy"
        );
        assert_eq!(
            decide_session(
                &request("beta", &["order.read", "pay"]),
                std::slice::from_ref(&allow_beta),
                &[]
            )
            .reason,
            "Capabilities ['pay'] not permitted by policy"
        );
        let limited = policy("p2", json!({"conditions":{"max_active_sessions":0}}));
        assert_eq!(
            decide_session(&r, &[limited], &[]).reason,
            "Active session limit reached (0/0)"
        );
        // First match decides: an explicit deny before an allow.
        let deny_all = policy("p0", json!({"effect":"deny"}));
        assert_eq!(
            decide_session(&r, &[deny_all, allow_beta.clone()], &[]),
            LocalDecision::deny("Explicitly denied by org policy", Some("p0"))
        );
        // An empty rule object allows anything.
        assert!(decide_session(&r, &[policy("any", json!({}))], &[]).allowed);
    }

    #[test]
    fn session_target_phase_is_opt_out() {
        let r = request("beta", &[]);
        let allow = [policy("a", json!({}))];
        let target_denies_acme = policy(
            "t1",
            json!({"effect":"deny","conditions":{"target_org_id":["acme"]}}),
        );
        let target_denies_other = policy(
            "t2",
            json!({"effect":"deny","conditions":{"target_org_id":["zeta"]}}),
        );
        let target_allows = policy("t3", json!({"effect":"allow"}));
        assert!(decide_session(&r, &allow, &[target_denies_other.clone(), target_allows]).allowed);
        assert_eq!(
            decide_session(&r, &allow, &[target_denies_other, target_denies_acme]),
            LocalDecision::deny("Denied by target organisation policy", Some("t1"))
        );
    }

    #[test]
    fn malformed_rules_and_unknown_effects_deny() {
        let r = request("beta", &[]);
        let bad = policy("bad", json!({"conditions":{"target_org_id":"beta"}}));
        let d = decide_session(&r, &[bad, policy("ok", json!({}))], &[]);
        assert!(!d.allowed);
        assert!(
            d.reason.starts_with("Policy 'bad' has invalid rules"),
            "{}",
            d.reason
        );
        let weird = policy("weird", json!({"effect":"permit"}));
        let d = decide_session(&r, &[weird], &[]);
        assert_eq!(
            d.reason,
            "Policy 'weird' has invalid rules: effect must be 'allow' or 'deny', got 'permit'"
        );
        let d = decide_session(&r, &[policy("nul", Value::Null)], &[]);
        assert!(!d.allowed);
    }

    #[test]
    fn message_policies() {
        let payload = json!({"ciphertext": "abc", "iv": "x"});
        assert_eq!(
            decide_message(&payload, &[]),
            LocalDecision::allow("No message policy — default allow", None)
        );
        let size = policy("m1", json!({"conditions":{"max_payload_size_bytes":10}}));
        // json.dumps(payload) == '{"ciphertext": "abc", "iv": "x"}' (32 chars)
        assert_eq!(
            decide_message(&payload, &[size]),
            LocalDecision::deny("Payload too large: 32 bytes (max 10)", Some("m1"))
        );
        let required = policy(
            "m2",
            json!({"conditions":{"required_fields":["ciphertext","sig","aad"]}}),
        );
        assert_eq!(
            decide_message(&payload, &[required]).reason,
            "Required fields missing from payload: ['sig', 'aad']"
        );
        let blocked = policy(
            "m3",
            json!({"conditions":{"blocked_fields":["iv","plaintext"]}}),
        );
        assert_eq!(
            decide_message(&payload, &[blocked]).reason,
            "Blocked fields present in payload: ['iv']"
        );
        let deny = policy("m4", json!({"effect":"deny"}));
        assert_eq!(
            decide_message(&payload, &[deny]).reason,
            "Message explicitly denied by policy"
        );
        let fine = policy(
            "m5",
            json!({"conditions":{"max_payload_size_bytes":32,"required_fields":["ciphertext"],"blocked_fields":["plaintext"]}}),
        );
        assert_eq!(
            decide_message(&payload, &[fine]),
            LocalDecision::allow("Payload compliant with policies", None)
        );
    }

    #[tokio::test]
    async fn evaluations_read_the_table_and_are_audited() {
        use crate::policy::{PolicyEngine, PolicySettings};
        let (db, _scratch) = crate::db::test_support::db().await;
        let audit = ChainWriter::new(db.clone());
        let engine = PolicyEngine::new(PolicySettings::default()).unwrap();
        let rules = json!({"conditions":{"target_org_id":["beta"]}});
        db.insert_policy("acme::s", "acme", "session", rules.as_object().unwrap())
            .await
            .unwrap();
        let mut r = request("beta", &["x"]);
        r.initiator_agent_id = Some("acme::buyer".into());
        r.session_id = Some("sess-1".into());
        let d = engine
            .evaluate_session_rules(&db, &audit, &r)
            .await
            .unwrap();
        assert_eq!(
            d,
            LocalDecision::allow("Allowed by org policy", Some("acme::s"))
        );
        let d = engine
            .evaluate_session_rules(&db, &audit, &request("gamma", &[]))
            .await
            .unwrap();
        assert!(!d.allowed);
        engine.set_enforcement(false);
        let d = engine
            .evaluate_session_rules(&db, &audit, &request("gamma", &[]))
            .await
            .unwrap();
        assert_eq!(d, LocalDecision::allow(DEMO_MODE_REASON, None));
        engine.set_enforcement(true);
        let payload = json!({"ciphertext": "x"});
        let m = MessagePolicyRequest {
            sender_org_id: "acme",
            payload: &payload,
            sender_agent_id: None,
            session_id: None,
        };
        let (d, evaluated) = engine.evaluate_message_rules(&db, &m).await.unwrap();
        audit.record(evaluated).await.unwrap();
        assert_eq!(d.reason, "No message policy — default allow");
        type Row = (String, String, Option<String>, Option<String>, String);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT event_type, result, agent_id, session_id, details FROM audit_log ORDER BY id",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.0 == "policy.evaluated"));
        assert_eq!(rows[0].1, "ok");
        assert_eq!(rows[0].2.as_deref(), Some("acme::buyer"));
        assert_eq!(rows[0].3.as_deref(), Some("sess-1"));
        let details: Value = serde_json::from_str(&rows[0].4).unwrap();
        assert_eq!(
            details,
            json!({"policy_type":"session","policy_id":"acme::s","reason":"Allowed by org policy"})
        );
        assert_eq!(rows[1].1, "denied");
        let details: Value = serde_json::from_str(&rows[3].4).unwrap();
        assert_eq!(details["policy_type"], "message");
        assert_eq!(details["policy_id"], Value::Null);
    }
}
