//! Registry bodies: organisations, agents, discovery, bindings (broker §1.3–§1.5, §4).
//!
//! List endpoints answer a bare JSON array of the element type:
//! `GET /v1/registry/orgs` → `[OrgResponse]`, `GET /v1/registry/bindings` → `[BindingResponse]`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Organisation status (`organizations.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgStatus {
    Active,
    Pending,
    Rejected,
    Suspended,
}

impl OrgStatus {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Rejected => "rejected",
            Self::Suspended => "suspended",
        }
    }
}

/// `POST /v1/registry/orgs` (ADMIN) request body:
/// `{org_id (≤128), display_name (≤256), secret, metadata = {} (JSON ≤16 KB)}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgCreateRequest {
    pub org_id: String,
    pub display_name: String,
    pub secret: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// `OrgResponse` = `{"org_id","display_name","status","registered_at"}`: 201 of
/// `POST /v1/registry/orgs`, 200 of `GET /v1/registry/orgs/me` and
/// `GET /v1/registry/orgs/{org_id}`, elements of `GET /v1/registry/orgs`.
/// `registered_at` is ISO-8601 (pydantic rendering, `Z` suffix for UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgResponse {
    pub org_id: String,
    pub display_name: String,
    pub status: OrgStatus,
    pub registered_at: String,
}

/// `POST /v1/registry/orgs/{org_id}/certificate` request body: `{"ca_certificate": "<PEM>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaCertificateUploadRequest {
    pub ca_certificate: String,
}

/// `POST /v1/registry/orgs/{org_id}/certificate` 200 body:
/// `{"org_id":"…","ca_certificate_loaded":true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaCertificateUploadResponse {
    pub org_id: String,
    pub ca_certificate_loaded: bool,
}

/// `POST /v1/registry/agents` (ORG) request body:
/// `{agent_id, org_id (≤128), display_name (≤256), secret?, capabilities = [] (≤50),
/// description = "" (≤1024), metadata = {} (≤16 KB)}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRegisterRequest {
    pub agent_id: String,
    pub org_id: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// `AgentResponse` = `{"agent_id","org_id","display_name","description","capabilities",
/// "is_active","registered_at","metadata","agent_uri"}`: 201 of `POST /v1/registry/agents`,
/// 200 of `GET /v1/registry/agents/{agent_id}`, elements of [`AgentListResponse`].
/// `agent_uri` = `spiffe://<TRUST_DOMAIN>/<org>/<name>`; `registered_at` ISO-8601.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentResponse {
    pub agent_id: String,
    pub org_id: String,
    pub display_name: String,
    pub description: String,
    pub capabilities: Vec<String>,
    pub is_active: bool,
    pub registered_at: String,
    pub metadata: Map<String, Value>,
    pub agent_uri: String,
}

/// `GET /v1/registry/agents` and `GET /v1/registry/agents/search` 200 body:
/// `{"agents":[AgentResponse],"total":n}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentListResponse {
    pub agents: Vec<AgentResponse>,
    /// Every match, not only this page's.
    pub total: u64,
    /// Discovery only: pass as `cursor` for the next page; null on the last page (and absent
    /// from brokers that do not page).
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Query of `GET /v1/registry/agents`: `?org_id=` (optional; defaults to the caller's org).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

/// Query of `GET /v1/registry/agents/search` (§4). All optional, but the service answers 422
/// `At least one search parameter is required` when none of capability/agent_id/agent_uri/
/// org_id/pattern/q is non-empty.
///
/// `capability` is repeatable (`?capability=a&capability=b`): decode with a repeated-key-aware
/// form decoder (e.g. `serde_html_form` / `axum_extra::extract::Query`); plain
/// `serde_urlencoded` cannot fill a `Vec` from repeated keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSearchQuery {
    #[serde(default)]
    pub capability: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default)]
    pub include_own_org: bool,
    /// Page size (default and maximum: the broker's `DISCOVERY_MAX_RESULTS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `GET /v1/registry/agents/{agent_id}/public-key` (and `/v1/federation/…`) 200 body:
/// `{"agent_id","public_key_pem":"-----BEGIN PUBLIC KEY-----…","cert_pem":"-----BEGIN
/// CERTIFICATE-----…"[,"e2e":["cullis-e2e-v1",…]]}`: the SPKI PEM of the pinned certificate and
/// the certificate itself (`cullis-sdk` 0.2.x prefers `cert_pem` and binds the sender's identity
/// to it). `e2e` is present when the agent's registration metadata declares the E2E envelope
/// versions it opens (docs/sdk-generations.md); absent, senders assume `cullis-e2e-v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyResponse {
    pub agent_id: String,
    pub public_key_pem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e: Option<Vec<String>>,
}

/// `POST /v1/registry/agents/{agent_id}/rotate-cert` request body: `{"new_certificate":"<PEM>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateCertRequest {
    pub new_certificate: String,
}

/// `POST /v1/registry/agents/{agent_id}/rotate-cert` 200 body:
/// `{"agent_id","thumbprint":"<sha256 hex of DER>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateCertResponse {
    pub agent_id: String,
    pub thumbprint: String,
}

/// Binding status (`bindings.status`): `pending` → `approved` ⇄ `revoked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingStatus {
    Pending,
    Approved,
    Revoked,
}

impl BindingStatus {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Revoked => "revoked",
        }
    }
}

/// `POST /v1/registry/bindings` request body: `{org_id, agent_id, scope = []}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingCreateRequest {
    pub org_id: String,
    pub agent_id: String,
    #[serde(default)]
    pub scope: Vec<String>,
}

/// `BindingResponse` = `{"id":int,"org_id","agent_id","status","scope":[…],
/// "approved_at"|null,"approved_by"|null,"created_at"}`: 201 of `POST /v1/registry/bindings`,
/// 200 of `POST /v1/registry/bindings/{id}/approve|revoke`, elements of
/// `GET /v1/registry/bindings`. Timestamps ISO-8601.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingResponse {
    pub id: i64,
    pub org_id: String,
    pub agent_id: String,
    pub status: BindingStatus,
    pub scope: Vec<String>,
    #[serde(default)]
    pub approved_at: Option<String>,
    #[serde(default)]
    pub approved_by: Option<String>,
    pub created_at: String,
}

/// Query of `GET /v1/registry/bindings?org_id=<id>` (required; 422 if absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingListQuery {
    pub org_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    #[test]
    fn org_create_request_roundtrip_and_default_metadata() {
        let r: OrgCreateRequest = roundtrip_exact(
            r#"{"org_id":"acme","display_name":"Acme","secret":"s3cret","metadata":{"contact_email":"a@b.c"}}"#,
        );
        assert_eq!(r.metadata["contact_email"], "a@b.c");
        let d: OrgCreateRequest =
            serde_json::from_str(r#"{"org_id":"a","display_name":"A","secret":"s","x":1}"#)
                .unwrap();
        assert!(d.metadata.is_empty());
    }

    #[test]
    fn org_response_roundtrip() {
        let o: OrgResponse = roundtrip_exact(
            r#"{"org_id":"acme","display_name":"Acme","status":"pending","registered_at":"2026-04-08T12:00:00Z"}"#,
        );
        assert_eq!(o.status, OrgStatus::Pending);
        let e = serde_json::from_str::<OrgResponse>(
            r#"{"org_id":"a","display_name":"A","status":"bogus","registered_at":"t"}"#,
        );
        assert!(e.is_err());
    }

    #[test]
    fn org_status_spellings() {
        for s in [
            OrgStatus::Active,
            OrgStatus::Pending,
            OrgStatus::Rejected,
            OrgStatus::Suspended,
        ] {
            assert_eq!(to_value(&s), Value::from(s.as_str()));
        }
        for s in [
            BindingStatus::Pending,
            BindingStatus::Approved,
            BindingStatus::Revoked,
        ] {
            assert_eq!(to_value(&s), Value::from(s.as_str()));
        }
    }

    #[test]
    fn ca_upload_roundtrip() {
        let r: CaCertificateUploadRequest =
            roundtrip_exact(r#"{"ca_certificate":"-----BEGIN CERTIFICATE-----\nMII\n"}"#);
        assert!(r.ca_certificate.starts_with("-----BEGIN"));
        let s: CaCertificateUploadResponse =
            roundtrip_exact(r#"{"org_id":"acme","ca_certificate_loaded":true}"#);
        assert!(s.ca_certificate_loaded);
    }

    #[test]
    fn agent_register_defaults() {
        // What the proxy sends (§2.4 5a): no secret, description or metadata.
        let r: AgentRegisterRequest = serde_json::from_str(
            r#"{"agent_id":"acme::buyer","org_id":"acme","display_name":"Buyer","capabilities":["order.read"],"unknown":true}"#,
        )
        .unwrap();
        assert_eq!(r.secret, None);
        assert_eq!(r.description, "");
        assert!(r.metadata.is_empty());
        assert_eq!(r.capabilities, vec!["order.read"]);
        let m: AgentRegisterRequest =
            serde_json::from_str(r#"{"agent_id":"a::b","org_id":"a","display_name":"B"}"#).unwrap();
        assert!(m.capabilities.is_empty());
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"agent_id":"a::b","org_id":"a","display_name":"B","capabilities":[],"description":"","metadata":{}}"#
        );
    }

    #[test]
    fn agent_list_roundtrip() {
        let l: AgentListResponse = roundtrip_exact(
            r#"{"agents":[{"agent_id":"acme::buyer","org_id":"acme","display_name":"Buyer","description":"","capabilities":["a","b"],"is_active":true,"registered_at":"2026-04-08T12:00:00.123456Z","metadata":{},"agent_uri":"spiffe://atn.local/acme/buyer"}],"total":1,"next_cursor":null}"#,
        );
        assert_eq!(l.total, 1);
        assert_eq!(l.agents[0].agent_uri, "spiffe://atn.local/acme/buyer");
        assert!(l.agents[0].is_active);
        // A broker that does not page sends no cursor: the last (only) page.
        let old: AgentListResponse = serde_json::from_str(r#"{"agents":[],"total":0}"#).unwrap();
        assert_eq!(old.next_cursor, None);
    }

    #[test]
    fn search_query_defaults() {
        let q: AgentSearchQuery = serde_json::from_str(r#"{"pattern":"*"}"#).unwrap();
        assert!(q.capability.is_empty());
        assert!(!q.include_own_org);
        assert_eq!(q.pattern.as_deref(), Some("*"));
        assert_eq!(q.agent_id, None);
        let q: AgentSearchQuery =
            serde_json::from_str(r#"{"capability":["a","b"],"include_own_org":true}"#).unwrap();
        assert_eq!(q.capability, vec!["a", "b"]);
        assert!(q.include_own_org);
    }

    #[test]
    fn public_key_and_rotate_roundtrip() {
        let p: PublicKeyResponse = roundtrip_exact(
            r#"{"agent_id":"acme::buyer","public_key_pem":"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"}"#,
        );
        assert!(p.public_key_pem.contains("PUBLIC KEY"));
        let r: RotateCertRequest = roundtrip_exact(r#"{"new_certificate":"PEM"}"#);
        assert_eq!(r.new_certificate, "PEM");
        let t: RotateCertResponse = roundtrip_exact(
            r#"{"agent_id":"acme::buyer","thumbprint":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#,
        );
        assert_eq!(t.thumbprint.len(), 64);
    }

    #[test]
    fn binding_create_default_scope() {
        let b: BindingCreateRequest =
            serde_json::from_str(r#"{"org_id":"acme","agent_id":"acme::buyer"}"#).unwrap();
        assert!(b.scope.is_empty());
        let b: BindingCreateRequest =
            roundtrip_exact(r#"{"org_id":"acme","agent_id":"acme::buyer","scope":["x"]}"#);
        assert_eq!(b.scope, vec!["x"]);
    }

    #[test]
    fn binding_response_emits_nulls() {
        let b: BindingResponse = roundtrip_exact(
            r#"{"id":7,"org_id":"acme","agent_id":"acme::buyer","status":"pending","scope":["order.read"],"approved_at":null,"approved_by":null,"created_at":"2026-04-08T12:00:00Z"}"#,
        );
        assert_eq!(b.id, 7);
        assert_eq!(b.status, BindingStatus::Pending);
        assert_eq!(b.approved_at, None);
        let a: BindingResponse = roundtrip_exact(
            r#"{"id":7,"org_id":"acme","agent_id":"acme::buyer","status":"approved","scope":[],"approved_at":"2026-04-08T12:00:01Z","approved_by":"acme","created_at":"2026-04-08T12:00:00Z"}"#,
        );
        assert_eq!(a.approved_by.as_deref(), Some("acme"));
    }

    #[test]
    fn binding_list_query_required() {
        assert!(serde_json::from_str::<BindingListQuery>("{}").is_err());
        let q: BindingListQuery = serde_json::from_str(r#"{"org_id":"acme"}"#).unwrap();
        assert_eq!(q.org_id, "acme");
    }
}
