//! Policy-decision-point contracts: the per-org PDP webhook (broker §5.3, served by the proxy at
//! `POST /pdp/policy`, proxy §1.8) and the OPA backend (broker §5.4).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Which side of the session the called org is (`session_context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionContext {
    Initiator,
    Target,
}

impl SessionContext {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Initiator => "initiator",
            Self::Target => "target",
        }
    }
}

/// PDP webhook request body, POSTed by the broker to each org's `webhook_url` (initiator org
/// first, then target org) and accepted by the proxy's `POST /pdp/policy`:
/// `{"initiator_agent_id","initiator_org_id","target_agent_id","target_org_id",
/// "capabilities":[…],"session_context":"initiator"|"target"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdpRequest {
    pub initiator_agent_id: String,
    pub initiator_org_id: String,
    pub target_agent_id: String,
    pub target_org_id: String,
    pub capabilities: Vec<String>,
    pub session_context: SessionContext,
}

/// A PDP decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PdpDecision {
    Allow,
    Deny,
}

impl PdpDecision {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// PDP webhook 200 response as *emitted* by the proxy's `POST /pdp/policy`:
/// `{"decision":"allow"}` or `{"decision":"deny","reason":"…"}` — `reason` is absent (not
/// `null`) when `None`.
///
/// The broker must not parse third-party webhook replies with this strict type; use
/// [`PdpWebhookReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdpResponse {
    pub decision: PdpDecision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// PDP webhook reply as *read* by the broker, deliberately untyped: `decision` is compared
/// case-insensitively (missing ⇒ deny, non-string ⇒ error ⇒ deny, other strings ⇒ deny) and
/// `reason` is stringified and truncated to 512 chars — all by the service. Any JSON object
/// deserializes (other members ignored); a non-object body — including an array, which serde
/// would otherwise accept for a struct — is an error (⇒ deny).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Map<String, Value>")]
pub struct PdpWebhookReply {
    pub decision: Option<Value>,
    pub reason: Option<Value>,
}

impl From<Map<String, Value>> for PdpWebhookReply {
    fn from(mut m: Map<String, Value>) -> Self {
        Self {
            decision: m.remove("decision").filter(|v| !v.is_null()),
            reason: m.remove("reason").filter(|v| !v.is_null()),
        }
    }
}

/// OPA request body, `POST <OPA_URL>/v1/data/atn/session/allow`: `{"input":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpaRequest {
    pub input: OpaInput,
}

/// `input` of [`OpaRequest`] (no `session_context`: OPA is called once per decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpaInput {
    pub initiator_agent_id: String,
    pub initiator_org_id: String,
    pub target_agent_id: String,
    pub target_org_id: String,
    pub capabilities: Vec<String>,
}

/// OPA 200 response body: `{"result": true|false|{"allow":bool,"reason":str}}`.
///
/// `result` absent ⇒ `None` (the reference treats it as `{}` ⇒ deny); present (even `null`) ⇒
/// `Some(..)`, with anything that is neither a boolean nor an object of that shape landing in
/// [`OpaResult::Other`] (⇒ deny `OPA returned invalid result`). Other members (`decision_id`, …)
/// are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpaResponse {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub result: Option<OpaResult>,
}

/// `result` of an [`OpaResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OpaResult {
    /// Boolean form.
    Allow(bool),
    /// Object form, as returned by the reference Rego (`atn.session.allow`).
    Object(OpaResultObject),
    /// Any other JSON value (including `null` and objects whose `allow` is not a boolean).
    Other(Value),
}

/// Object form of [`OpaResult`]: `{"allow":bool,"reason":str}`; a missing `allow` is `None`
/// (⇒ deny), `reason` is kept untyped for the service to stringify.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpaResultObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Value>,
}

/// Deserialize a present member (even `null`) as `Some`, so that only an absent member is
/// `None` (via `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    #[test]
    fn pdp_request_roundtrip() {
        let r: PdpRequest = roundtrip_exact(
            r#"{"initiator_agent_id":"acme::buyer","initiator_org_id":"acme","target_agent_id":"beta::seller","target_org_id":"beta","capabilities":["order.read"],"session_context":"target"}"#,
        );
        assert_eq!(r.session_context, SessionContext::Target);
        assert_eq!(SessionContext::Initiator.as_str(), "initiator");
        assert_eq!(
            to_value(&SessionContext::Initiator),
            Value::from(SessionContext::Initiator.as_str())
        );
    }

    #[test]
    fn pdp_request_ignores_unknown() {
        let r: PdpRequest = serde_json::from_str(
            r#"{"initiator_agent_id":"a","initiator_org_id":"b","target_agent_id":"c","target_org_id":"d","capabilities":[],"session_context":"initiator","signature":"future"}"#,
        )
        .unwrap();
        assert!(r.capabilities.is_empty());
    }

    #[test]
    fn pdp_response_reason_absent_when_none() {
        let a: PdpResponse = roundtrip_exact(r#"{"decision":"allow"}"#);
        assert_eq!(a.decision, PdpDecision::Allow);
        assert_eq!(a.reason, None);
        let d: PdpResponse =
            roundtrip_exact(r#"{"decision":"deny","reason":"Agent blocked by policy"}"#);
        assert_eq!(d.decision, PdpDecision::Deny);
        assert_eq!(PdpDecision::Deny.as_str(), "deny");
        assert_eq!(to_value(&PdpDecision::Allow), Value::from("allow"));
    }

    #[test]
    fn webhook_reply_is_lenient() {
        let r: PdpWebhookReply = serde_json::from_str(r#"{"decision":"ALLOW"}"#).unwrap();
        assert_eq!(r.decision, Some(Value::from("ALLOW")));
        assert_eq!(r.reason, None);
        let r: PdpWebhookReply = serde_json::from_str(r#"{"reason":42,"x":1}"#).unwrap();
        assert_eq!(r.decision, None);
        assert_eq!(r.reason, Some(Value::from(42)));
        let r: PdpWebhookReply = serde_json::from_str(r#"{"decision":true}"#).unwrap();
        assert_eq!(r.decision, Some(Value::Bool(true)));
        let r: PdpWebhookReply = serde_json::from_str(r#"{"decision":null}"#).unwrap();
        assert_eq!(r.decision, None);
        assert!(serde_json::from_str::<PdpWebhookReply>("[1]").is_err());
        assert!(serde_json::from_str::<PdpWebhookReply>(r#""allow""#).is_err());
    }

    #[test]
    fn opa_request_roundtrip() {
        let r: OpaRequest = roundtrip_exact(
            r#"{"input":{"initiator_agent_id":"acme::buyer","initiator_org_id":"acme","target_agent_id":"beta::seller","target_org_id":"beta","capabilities":["order.read"]}}"#,
        );
        assert_eq!(r.input.target_org_id, "beta");
    }

    #[test]
    fn opa_response_forms() {
        let b: OpaResponse = roundtrip_exact(r#"{"result":true}"#);
        assert_eq!(b.result, Some(OpaResult::Allow(true)));
        let o: OpaResponse =
            roundtrip_exact(r#"{"result":{"allow":false,"reason":"not in allow-list"}}"#);
        assert_eq!(
            o.result,
            Some(OpaResult::Object(OpaResultObject {
                allow: Some(false),
                reason: Some(Value::from("not in allow-list"))
            }))
        );
        let missing: OpaResponse = serde_json::from_str(r#"{"decision_id":"x"}"#).unwrap();
        assert_eq!(missing.result, None);
        let null: OpaResponse = serde_json::from_str(r#"{"result":null}"#).unwrap();
        assert_eq!(null.result, Some(OpaResult::Other(Value::Null)));
        let num: OpaResponse = serde_json::from_str(r#"{"result":1}"#).unwrap();
        assert_eq!(num.result, Some(OpaResult::Other(Value::from(1))));
        let bad_allow: OpaResponse = serde_json::from_str(r#"{"result":{"allow":"yes"}}"#).unwrap();
        assert!(matches!(bad_allow.result, Some(OpaResult::Other(_))));
        let empty_obj: OpaResponse = serde_json::from_str(r#"{"result":{}}"#).unwrap();
        assert_eq!(
            empty_obj.result,
            Some(OpaResult::Object(OpaResultObject::default()))
        );
    }
}
