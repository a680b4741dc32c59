//! Auth bodies: login, transaction tokens, JWKS (broker §1.2, auth spec §2.1, §2.5, §4.4).
//!
//! `POST /v1/auth/revoke` and `POST /v1/auth/revoke-agent/{agent_id}` have no request body and
//! answer 204 with no body. Admin certificate revocation lives in [`crate::wire::admin`].

use serde::{Deserialize, Serialize};

/// `POST /v1/auth/token` request body: `{"client_assertion": "<JWT>"}` (the DPoP proof travels
/// in the `DPoP` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub client_assertion: String,
}

/// `POST /v1/auth/token` 200 body:
/// `{"access_token":"<JWT>","token_type":"DPoP","expires_in":1800}`
/// (`expires_in` = JWT_ACCESS_TOKEN_EXPIRE_MINUTES × 60).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// Default `ttl_seconds` of [`TransactionTokenRequest`].
pub const DEFAULT_TRANSACTION_TTL_SECONDS: i64 = 60;

fn default_ttl_seconds() -> i64 {
    DEFAULT_TRANSACTION_TTL_SECONDS
}

/// `POST /v1/auth/token/transaction` request body:
/// `{agent_id, txn_type (≤64), payload_hash (≤64), target_agent_id?, resource_id?, rfq_id?,
/// ttl_seconds = 60 (10..300)}`.
///
/// The SDK also sends `session_id`, which the reference model does not declare: it is ignored
/// like any unknown member. `ttl_seconds` is `i64` so that out-of-range values reach the service
/// (which answers 422).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionTokenRequest {
    pub agent_id: String,
    pub txn_type: String,
    pub payload_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfq_id: Option<String>,
    #[serde(default = "default_ttl_seconds")]
    pub ttl_seconds: i64,
}

/// `POST /v1/auth/token/transaction` 200 body:
/// `{"transaction_token","expires_in" (= ttl_seconds),"jti","txn_type"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionTokenResponse {
    pub transaction_token: String,
    pub expires_in: u64,
    pub jti: String,
    pub txn_type: String,
}

/// The request header that presents a transaction token on `POST
/// /v1/broker/sessions/{id}/messages`, beside the sender's own DPoP access token. (The
/// reference presented it as the access token itself, which no DPoP-bound request can do —
/// ref-auth-crypto §4.4.) The token's `payload_hash` must equal
/// [`crate::jose::transaction_token::payload_hash`] of the envelope's `payload`.
pub const TRANSACTION_TOKEN_HEADER: &str = "x-transaction-token";

/// `GET /.well-known/jwks.json` body: `{"keys":[…]}` — the active signing key first, then every
/// other key whose tokens may still be valid (the reference published exactly one RSA key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<JwksKey>,
}

/// The broker's public signing key as published in [`Jwks`], members in the reference order
/// `kty, use, alg, kid` then the key members: `n, e` for RSA (the reference's only form:
/// `"RSA"`, `"RS256"`), `crv, x, y` for EC (ES256, our default). Values are b64url without
/// padding; `kid` is the RFC 7638 thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwksKey {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    #[test]
    fn token_request_and_response_roundtrip() {
        let r: TokenRequest = roundtrip_exact(r#"{"client_assertion":"a.b.c"}"#);
        assert_eq!(r.client_assertion, "a.b.c");
        let t: TokenResponse =
            roundtrip_exact(r#"{"access_token":"eyJ.x.y","token_type":"DPoP","expires_in":1800}"#);
        assert_eq!(t.expires_in, 1800);
        assert_eq!(t.token_type, "DPoP");
    }

    #[test]
    fn token_request_ignores_unknown() {
        let r: TokenRequest =
            serde_json::from_str(r#"{"client_assertion":"j","grant_type":"x"}"#).unwrap();
        assert_eq!(r.client_assertion, "j");
    }

    #[test]
    fn transaction_request_defaults_and_sdk_session_id_ignored() {
        // What the SDK sends: session_id is not part of the model.
        let r: TransactionTokenRequest = serde_json::from_str(
            r#"{"agent_id":"acme::buyer","txn_type":"CREATE_ORDER","payload_hash":"ab","session_id":"s-1"}"#,
        )
        .unwrap();
        assert_eq!(r.ttl_seconds, 60);
        assert_eq!(r.target_agent_id, None);
        assert_eq!(r.rfq_id, None);
        // None members are omitted when a client serializes the request.
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"agent_id":"acme::buyer","txn_type":"CREATE_ORDER","payload_hash":"ab","ttl_seconds":60}"#
        );
    }

    #[test]
    fn transaction_request_full_roundtrip_and_null_optionals() {
        let r: TransactionTokenRequest = roundtrip_exact(
            r#"{"agent_id":"a::b","txn_type":"T","payload_hash":"h","target_agent_id":"c::d","resource_id":"r","rfq_id":"q","ttl_seconds":300}"#,
        );
        assert_eq!(r.ttl_seconds, 300);
        assert_eq!(r.resource_id.as_deref(), Some("r"));
        let n: TransactionTokenRequest = serde_json::from_str(
            r#"{"agent_id":"a","txn_type":"T","payload_hash":"h","rfq_id":null}"#,
        )
        .unwrap();
        assert_eq!(n.rfq_id, None);
    }

    #[test]
    fn transaction_response_roundtrip() {
        let r: TransactionTokenResponse = roundtrip_exact(
            r#"{"transaction_token":"t.t.t","expires_in":60,"jti":"8c0f6a0e-1111-4222-8333-444455556666","txn_type":"CREATE_ORDER"}"#,
        );
        assert_eq!(r.expires_in, 60);
    }

    #[test]
    fn jwks_roundtrip_member_order() {
        let j: Jwks = roundtrip_exact(
            r#"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs","n":"0vx7","e":"AQAB"}]}"#,
        );
        assert_eq!(j.keys[0].use_, "sig");
        assert_eq!(j.keys[0].e.as_deref(), Some("AQAB"));
        assert_eq!(j.keys[0].crv, None);
    }
}
