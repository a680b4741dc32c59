//! Policy-rule bodies (`/v1/policy/rules…`, broker §1.6) and the typed views of the stored
//! `rules` objects read by the local policy engine (§5.6).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `policy_type` of a stored policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyType {
    Session,
    Message,
}

impl PolicyType {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Message => "message",
        }
    }
}

/// `POST /v1/policy/rules` request body: `{policy_id, org_id, policy_type, rules (object,
/// JSON ≤32 KB)}`.
///
/// `policy_type` is a `String` on input: the service answers 400
/// `policy_type must be 'session' or 'message'` for other values (an enum would turn that into
/// a 422). `rules` is stored verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyCreateRequest {
    pub policy_id: String,
    pub org_id: String,
    pub policy_type: String,
    pub rules: Map<String, Value>,
}

/// `PolicyResponse` = `{"id":int,"policy_id","org_id","policy_type","rules":{…},"is_active",
/// "created_at"}`: 201 of `POST /v1/policy/rules`, 200 of `GET|DELETE
/// /v1/policy/rules/{policy_id}`, elements of `GET /v1/policy/rules`. `created_at` ISO-8601.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResponse {
    pub id: i64,
    pub policy_id: String,
    pub org_id: String,
    pub policy_type: PolicyType,
    pub rules: Map<String, Value>,
    pub is_active: bool,
    pub created_at: String,
}

/// Query of `GET /v1/policy/rules?org_id=&policy_type=` (`org_id` required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyListQuery {
    pub org_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
}

fn default_effect() -> String {
    "allow".to_owned()
}

/// Typed view of the `rules` object of a `session` policy:
/// `{"effect":"allow"|"deny" (default allow),"conditions":{…}}`.
///
/// `effect` stays a `String`: rules are stored unvalidated, and how an unknown effect is treated
/// is the engine's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPolicyRules {
    #[serde(default = "default_effect")]
    pub effect: String,
    #[serde(default)]
    pub conditions: SessionPolicyConditions,
}

/// `conditions` of [`SessionPolicyRules`]: empty lists mean "any";
/// `max_active_sessions` `null`/absent means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPolicyConditions {
    #[serde(default)]
    pub target_org_id: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub max_active_sessions: Option<i64>,
}

/// Typed view of the `rules` object of a `message` policy:
/// `{"effect","conditions":{"max_payload_size_bytes":int|null,"required_fields":[…],
/// "blocked_fields":[…]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePolicyRules {
    #[serde(default = "default_effect")]
    pub effect: String,
    #[serde(default)]
    pub conditions: MessagePolicyConditions,
}

/// `conditions` of [`MessagePolicyRules`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePolicyConditions {
    #[serde(default)]
    pub max_payload_size_bytes: Option<u64>,
    #[serde(default)]
    pub required_fields: Vec<String>,
    #[serde(default)]
    pub blocked_fields: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    #[test]
    fn create_request_roundtrip_keeps_bad_policy_type() {
        let r: PolicyCreateRequest = roundtrip_exact(
            r#"{"policy_id":"acme::session-beta-v1","org_id":"acme","policy_type":"other","rules":{"conditions":{"target_org_id":["beta"]},"effect":"allow"}}"#,
        );
        // Not rejected by serde: the service produces the 400.
        assert_eq!(r.policy_type, "other");
        assert_eq!(r.rules["effect"], "allow");
    }

    #[test]
    fn create_request_ignores_unknown() {
        let r: PolicyCreateRequest = serde_json::from_str(
            r#"{"policy_id":"p","org_id":"o","policy_type":"session","rules":{},"is_active":false}"#,
        )
        .unwrap();
        assert!(r.rules.is_empty());
    }

    #[test]
    fn response_roundtrip() {
        let p: PolicyResponse = roundtrip_exact(
            r#"{"id":3,"policy_id":"p1","org_id":"acme","policy_type":"message","rules":{"effect":"deny"},"is_active":false,"created_at":"2026-04-08T12:00:00Z"}"#,
        );
        assert_eq!(p.policy_type, PolicyType::Message);
        assert!(!p.is_active);
        assert_eq!(to_value(&PolicyType::Session), Value::from("session"));
        assert_eq!(PolicyType::Message.as_str(), "message");
    }

    #[test]
    fn session_rules_defaults() {
        let r: SessionPolicyRules = serde_json::from_str("{}").unwrap();
        assert_eq!(r.effect, "allow");
        assert!(r.conditions.target_org_id.is_empty());
        assert_eq!(r.conditions.max_active_sessions, None);
        let r: SessionPolicyRules = serde_json::from_str(
            r#"{"effect":"deny","conditions":{"target_org_id":["b"],"capabilities":["c"],"max_active_sessions":0}}"#,
        )
        .unwrap();
        assert_eq!(r.effect, "deny");
        assert_eq!(r.conditions.max_active_sessions, Some(0));
        assert_eq!(r.conditions.capabilities, vec!["c"]);
    }

    #[test]
    fn message_rules_defaults() {
        let r: MessagePolicyRules =
            serde_json::from_str(r#"{"conditions":{"max_payload_size_bytes":null}}"#).unwrap();
        assert_eq!(r.effect, "allow");
        assert_eq!(r.conditions.max_payload_size_bytes, None);
        let r: MessagePolicyRules = serde_json::from_str(
            r#"{"effect":"allow","conditions":{"max_payload_size_bytes":1024,"required_fields":["ciphertext"],"blocked_fields":["x"]}}"#,
        )
        .unwrap();
        assert_eq!(r.conditions.max_payload_size_bytes, Some(1024));
        assert_eq!(r.conditions.required_fields, vec!["ciphertext"]);
    }

    #[test]
    fn list_query() {
        let q: PolicyListQuery = serde_json::from_str(r#"{"org_id":"acme"}"#).unwrap();
        assert_eq!(q.policy_type, None);
        assert!(serde_json::from_str::<PolicyListQuery>(r#"{"policy_type":"session"}"#).is_err());
    }
}
