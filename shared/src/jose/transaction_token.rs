//! Transaction tokens (ref-auth-crypto §4.4): single-use, short-lived broker tokens that
//! authorise one operation (e.g. `CREATE_ORDER`) on one payload, after an approval.
//!
//! Signed with the broker key like access tokens but told apart by `token_type` =
//! `transaction`: [`super::access_token::TokenVerifier::verify`] refuses them, and
//! [`super::access_token::TokenVerifier::verify_transaction`] refuses access tokens.

use crate::encoding::canonical_json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `token_type` of a transaction token.
pub const TOKEN_TYPE: &str = "transaction";

/// RFC 8693 `act`: who approved the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
}

/// Transaction-token claims, in the reference's emission order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionTokenClaims {
    pub iss: String,
    pub aud: String,
    /// SPIFFE id of the agent allowed to perform the operation.
    pub sub: String,
    pub agent_id: String,
    pub org: String,
    #[serde(default)]
    pub scope: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Always empty: a transaction token is not bound to a DPoP key and is never an access
    /// token; it travels beside the sender's access token.
    #[serde(default)]
    pub cnf: Map<String, Value>,
    pub token_type: String,
    pub act: Actor,
    pub txn_type: String,
    pub resource_id: Option<String>,
    pub payload_hash: String,
    pub parent_jti: Option<String>,
}

/// The payload-hash convention: lowercase hex SHA-256 of the canonical JSON (sorted keys,
/// compact, ASCII-escaped) of the payload. For a message this is the envelope `payload` the
/// broker relays — the E2E cipher blob — since the broker never sees the plaintext.
pub fn payload_hash(payload: &Value) -> String {
    hex::encode(Sha256::digest(
        canonical_json::to_string(payload).as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::access_token::{TokenError, TokenSigner, AUDIENCE, ISSUER};
    use crate::keys::{KeyType, PrivateKey};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn claims() -> TransactionTokenClaims {
        TransactionTokenClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "spiffe://atn.local/acme/buyer".into(),
            agent_id: "acme::buyer".into(),
            org: "acme".into(),
            scope: vec![],
            iat: NOW,
            exp: NOW + 60,
            jti: "8c0f6a0e-1111-4222-8333-444455556666".into(),
            cnf: Map::new(),
            token_type: TOKEN_TYPE.into(),
            act: Actor {
                sub: "acme::buyer".into(),
            },
            txn_type: "CREATE_ORDER".into(),
            resource_id: None,
            payload_hash: payload_hash(&json!({"b": 1, "a": "é"})),
            parent_jti: Some("p".into()),
        }
    }

    #[test]
    fn transaction_and_access_tokens_are_never_confused() {
        let signer = TokenSigner::new(PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap();
        let verifier = signer.verifier();
        let token = signer.sign(&claims()).unwrap();
        assert_eq!(verifier.verify_transaction(&token, NOW).unwrap(), claims());
        assert_eq!(
            verifier.verify(&token, NOW),
            Err(TokenError::WrongTokenType)
        );
        let access = signer
            .sign(
                &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "agent_id": "acme::buyer",
                "org": "acme", "iat": NOW, "exp": NOW + 60, "jti": "j", "cnf": {"jkt": "t"}}),
            )
            .unwrap();
        assert_eq!(
            verifier.verify_transaction(&access, NOW),
            Err(TokenError::WrongTokenType)
        );
        assert_eq!(
            verifier.verify_transaction(&token, NOW + 60),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn payload_hash_is_sha256_of_canonical_json() {
        // Python: hashlib.sha256(json.dumps({"b":1,"a":"é"}, sort_keys=True,
        // separators=(",",":")).encode()).hexdigest(), i.e. over '{"a":"\u00e9","b":1}'.
        let expected = hex::encode(Sha256::digest(br#"{"a":"\u00e9","b":1}"#));
        assert_eq!(payload_hash(&json!({"b": 1, "a": "é"})), expected);
    }
}
