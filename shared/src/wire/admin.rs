//! Network-admin bodies (`/v1/admin/*`, ADMIN header): pending orgs, approve/reject, invites,
//! certificate revocation (broker §1.7; auth spec §4.2). The audit export lives in
//! [`crate::wire::audit`].

use serde::{Deserialize, Serialize};

use super::registry::OrgStatus;

/// Element of `GET /v1/admin/orgs/pending` (200 `[PendingOrg]`):
/// `{"org_id","display_name","status","contact_email","registered_at"}`; `contact_email` comes
/// from org metadata (default `""`), `registered_at` ISO-8601.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOrg {
    pub org_id: String,
    pub display_name: String,
    pub status: OrgStatus,
    pub contact_email: String,
    pub registered_at: String,
}

/// 200 body of `POST /v1/admin/orgs/{org_id}/approve` and `…/reject`:
/// `{"org_id","status":"active"|"rejected","message":"Organization '<id>' approved."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgDecisionResponse {
    pub org_id: String,
    pub status: OrgStatus,
    pub message: String,
}

/// Default `ttl_hours` of [`InviteCreateRequest`].
pub const DEFAULT_INVITE_TTL_HOURS: i64 = 72;

fn default_ttl_hours() -> i64 {
    DEFAULT_INVITE_TTL_HOURS
}

/// `POST /v1/admin/invites` request body: `{label = "" (≤256), ttl_hours = 72 (1..8760)}`.
/// `ttl_hours` is `i64` so that the range check (422) stays in the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteCreateRequest {
    #[serde(default)]
    pub label: String,
    #[serde(default = "default_ttl_hours")]
    pub ttl_hours: i64,
}

impl Default for InviteCreateRequest {
    fn default() -> Self {
        Self {
            label: String::new(),
            ttl_hours: DEFAULT_INVITE_TTL_HOURS,
        }
    }
}

/// `InviteResponse` = `{"id","token","label","created_at","expires_at","used","used_by_org_id",
/// "revoked"}`: 201 of `POST /v1/admin/invites` (plaintext `token`, shown once) and elements of
/// `GET /v1/admin/invites` (`token` always `null`). Timestamps ISO-8601.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteResponse {
    pub id: String,
    #[serde(default)]
    pub token: Option<String>,
    pub label: String,
    pub created_at: String,
    pub expires_at: String,
    pub used: bool,
    #[serde(default)]
    pub used_by_org_id: Option<String>,
    pub revoked: bool,
}

/// `POST /v1/admin/invites/{invite_id}/revoke` 200 body:
/// `{"id","revoked":true,"message":"Invite token revoked."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRevokeResponse {
    pub id: String,
    pub revoked: bool,
    pub message: String,
}

fn default_revoked_by() -> String {
    "admin".to_owned()
}

/// `POST /v1/admin/certs/revoke` request body:
/// `{serial_hex, org_id, reason?, revoked_by = "admin", cert_not_after? (ISO datetime; the
/// service defaults it to now + 365 d), agent_id?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRevokeRequest {
    pub serial_hex: String,
    pub org_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default = "default_revoked_by")]
    pub revoked_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// `POST /v1/admin/certs/revoke` 200 body:
/// `{"serial_hex","org_id","revoked_at","agent_id","reason","message":"Certificate <serial> revoked."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRevokeResponse {
    pub serial_hex: String,
    pub org_id: String,
    pub revoked_at: String,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    pub message: String,
}

/// Element of `GET /v1/admin/certs/revoked[?org_id=]` (200 `[RevokedCert]`):
/// `{"serial_hex","org_id","revoked_at","revoked_by","reason","agent_id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCert {
    pub serial_hex: String,
    pub org_id: String,
    pub revoked_at: String,
    pub revoked_by: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// Query of `GET /v1/admin/certs/revoked?org_id=` (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCertsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    #[test]
    fn pending_org_roundtrip() {
        let p: Vec<PendingOrg> = roundtrip_exact(
            r#"[{"org_id":"beta","display_name":"Beta","status":"pending","contact_email":"","registered_at":"2026-04-08T12:00:00Z"}]"#,
        );
        assert_eq!(p[0].status, OrgStatus::Pending);
    }

    #[test]
    fn decision_roundtrip() {
        let d: OrgDecisionResponse = roundtrip_exact(
            r#"{"org_id":"beta","status":"rejected","message":"Organization 'beta' rejected."}"#,
        );
        assert_eq!(d.status, OrgStatus::Rejected);
    }

    #[test]
    fn invite_create_defaults() {
        let r: InviteCreateRequest = serde_json::from_str(r#"{"unknown":1}"#).unwrap();
        assert_eq!(r, InviteCreateRequest::default());
        assert_eq!(r.ttl_hours, 72);
        assert_eq!(r.label, "");
        let r: InviteCreateRequest = roundtrip_exact(r#"{"label":"beta","ttl_hours":1}"#);
        assert_eq!(r.ttl_hours, 1);
    }

    #[test]
    fn invite_response_roundtrip() {
        let created: InviteResponse = roundtrip_exact(
            r#"{"id":"0123456789abcdef0123456789abcdef","token":"tok43","label":"","created_at":"2026-04-08T12:00:00Z","expires_at":"2026-04-11T12:00:00Z","used":false,"used_by_org_id":null,"revoked":false}"#,
        );
        assert_eq!(created.token.as_deref(), Some("tok43"));
        let listed: InviteResponse = roundtrip_exact(
            r#"{"id":"x","token":null,"label":"l","created_at":"a","expires_at":"b","used":true,"used_by_org_id":"beta","revoked":false}"#,
        );
        assert_eq!(listed.token, None);
        assert_eq!(listed.used_by_org_id.as_deref(), Some("beta"));
    }

    #[test]
    fn invite_revoke_roundtrip() {
        let r: InviteRevokeResponse =
            roundtrip_exact(r#"{"id":"x","revoked":true,"message":"Invite token revoked."}"#);
        assert!(r.revoked);
    }

    #[test]
    fn cert_revoke_request_defaults() {
        let r: CertRevokeRequest =
            serde_json::from_str(r#"{"serial_hex":"1a2b","org_id":"acme","foo":"bar"}"#).unwrap();
        assert_eq!(r.revoked_by, "admin");
        assert_eq!(r.reason, None);
        assert_eq!(r.cert_not_after, None);
        assert_eq!(r.agent_id, None);
        let full: CertRevokeRequest = roundtrip_exact(
            r#"{"serial_hex":"1a2b","org_id":"acme","reason":"key compromise","revoked_by":"ops","cert_not_after":"2027-01-01T00:00:00Z","agent_id":"acme::buyer"}"#,
        );
        assert_eq!(full.revoked_by, "ops");
    }

    #[test]
    fn cert_revoke_response_emits_nulls() {
        let r: CertRevokeResponse = roundtrip_exact(
            r#"{"serial_hex":"1a2b","org_id":"acme","revoked_at":"2026-04-08T12:00:00Z","agent_id":null,"reason":null,"message":"Certificate 1a2b revoked."}"#,
        );
        assert_eq!(r.agent_id, None);
        let l: Vec<RevokedCert> = roundtrip_exact(
            r#"[{"serial_hex":"1a2b","org_id":"acme","revoked_at":"2026-04-08T12:00:00Z","revoked_by":"admin","reason":null,"agent_id":"acme::buyer"}]"#,
        );
        assert_eq!(l[0].revoked_by, "admin");
    }
}
