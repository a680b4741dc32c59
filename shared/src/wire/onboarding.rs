//! Onboarding bodies: `POST /v1/onboarding/join` (broker §1.7, §3.2; proxy §2.2).

use serde::{Deserialize, Serialize};

use super::registry::OrgStatus;

/// `POST /v1/onboarding/join` request body:
/// `{org_id (^[a-z0-9][a-z0-9._-]{0,127}$), display_name (≤256), secret (≤256),
/// ca_certificate (PEM), contact_email = "", webhook_url = null, invite_token (≤64)}`.
/// `webhook_url` is the org's PDP webhook (`null` ⇒ default-deny for that org).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub org_id: String,
    pub display_name: String,
    pub secret: String,
    pub ca_certificate: String,
    #[serde(default)]
    pub contact_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    pub invite_token: String,
}

/// `POST /v1/onboarding/join` 202 body:
/// `{"org_id","status":"pending","message":"Request received. Awaiting approval from TrustLink."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    pub org_id: String,
    pub status: OrgStatus,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    #[test]
    fn join_request_roundtrip() {
        let j: JoinRequest = roundtrip_exact(
            r#"{"org_id":"beta","display_name":"Beta","secret":"s","ca_certificate":"PEM","contact_email":"ops@beta.test","webhook_url":"http://proxy-beta:9100/pdp/policy","invite_token":"tok"}"#,
        );
        assert_eq!(
            j.webhook_url.as_deref(),
            Some("http://proxy-beta:9100/pdp/policy")
        );
    }

    #[test]
    fn join_request_defaults_and_unknown() {
        let j: JoinRequest = serde_json::from_str(
            r#"{"org_id":"beta","display_name":"Beta","secret":"s","ca_certificate":"PEM","invite_token":"t","webhook_url":null,"extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(j.contact_email, "");
        assert_eq!(j.webhook_url, None);
        assert!(serde_json::from_str::<JoinRequest>(
            r#"{"org_id":"beta","display_name":"Beta","secret":"s","ca_certificate":"PEM"}"#
        )
        .is_err());
    }

    #[test]
    fn join_response_roundtrip() {
        let r: JoinResponse = roundtrip_exact(
            r#"{"org_id":"beta","status":"pending","message":"Request received. Awaiting approval from TrustLink."}"#,
        );
        assert_eq!(r.status, OrgStatus::Pending);
    }
}
