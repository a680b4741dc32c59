//! Message signatures (ref-auth-crypto §5): the exact signing string and the sign/verify pair
//! both the outer (broker-verified) and inner (recipient-verified) signatures use.

use crate::encoding::{b64, canonical_json};
use crate::keys::{PrivateKey, PublicKey};
use serde_json::Value;
use std::fmt::Write;

/// What a message signature covers, besides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedFields<'a> {
    pub session_id: &'a str,
    pub sender_agent_id: &'a str,
    pub nonce: &'a str,
    /// Unix seconds, as the sender put it in the envelope.
    pub timestamp: i64,
    /// Present (including 0) only when the sender used one.
    pub client_seq: Option<u64>,
}

/// A refused message signature; `Display` is the broker's `detail` (HTTP 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature decodes but does not verify.
    #[error("Invalid message signature — cannot verify the sender")]
    Invalid,
    /// The signature is not base64 or the key cannot verify at all.
    #[error("Signature verification failed")]
    Undecodable,
}

/// The signing string:
/// `session|sender|nonce|timestamp[|client_seq]|canonical_json(payload)`.
/// No escaping of `|` inside fields, as in the reference.
pub fn signing_string(fields: &SignedFields<'_>, payload: &Value) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "{}|{}|{}|{}|",
        fields.session_id, fields.sender_agent_id, fields.nonce, fields.timestamp
    );
    if let Some(seq) = fields.client_seq {
        let _ = write!(out, "{seq}|");
    }
    canonical_json::write_value(payload, &mut out);
    out
}

/// Signs a message: RSA-PSS (maximum salt) or DER ECDSA, both over SHA-256, encoded as
/// URL-safe base64 with padding.
pub fn sign(
    key: &PrivateKey,
    fields: &SignedFields<'_>,
    payload: &Value,
) -> Result<String, crate::keys::KeyError> {
    let signature = key.sign_message(signing_string(fields, payload).as_bytes())?;
    Ok(b64::url_padded(&signature))
}

/// Verifies a message signature made by `key`. The base64 may be padded or not, in either
/// alphabet (the TypeScript SDK sends it unpadded).
pub fn verify(
    key: &PublicKey,
    fields: &SignedFields<'_>,
    payload: &Value,
    signature: &str,
) -> Result<(), SignatureError> {
    let signature = b64::decode_lenient(signature).map_err(|_| SignatureError::Undecodable)?;
    key.verify_message(signing_string(fields, payload).as_bytes(), &signature)
        .map_err(|_| SignatureError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;
    use serde_json::json;

    fn fields(client_seq: Option<u64>) -> SignedFields<'static> {
        SignedFields {
            session_id: "sess-abc",
            sender_agent_id: "acme::buyer",
            nonce: "nonce-001",
            timestamp: 1_700_000_000,
            client_seq,
        }
    }

    #[test]
    fn client_seq_zero_is_part_of_the_string_and_absent_is_not() {
        let payload = json!({"b": 1, "a": "é"});
        assert_eq!(
            signing_string(&fields(None), &payload),
            r#"sess-abc|acme::buyer|nonce-001|1700000000|{"a":"\u00e9","b":1}"#
        );
        assert_eq!(
            signing_string(&fields(Some(0)), &payload),
            r#"sess-abc|acme::buyer|nonce-001|1700000000|0|{"a":"\u00e9","b":1}"#
        );
    }

    #[test]
    fn m11_any_changed_field_breaks_the_signature() {
        for key_type in [KeyType::Rsa2048, KeyType::EcP256, KeyType::EcP384] {
            let key = PrivateKey::generate(key_type).unwrap();
            let payload = json!({"ciphertext": "abc"});
            let signature = sign(&key, &fields(Some(3)), &payload).unwrap();
            assert!(
                signature.ends_with('=') || signature.len() % 4 == 0,
                "padded base64url"
            );
            verify(key.public_key(), &fields(Some(3)), &payload, &signature).unwrap();
            // Unpadded (TypeScript SDK) form is accepted too.
            verify(
                key.public_key(),
                &fields(Some(3)),
                &payload,
                signature.trim_end_matches('='),
            )
            .unwrap();
            let tampered = [
                (
                    SignedFields {
                        session_id: "sess-other",
                        ..fields(Some(3))
                    },
                    payload.clone(),
                ),
                (
                    SignedFields {
                        nonce: "nonce-002",
                        ..fields(Some(3))
                    },
                    payload.clone(),
                ),
                (
                    SignedFields {
                        timestamp: 1_700_000_001,
                        ..fields(Some(3))
                    },
                    payload.clone(),
                ),
                (fields(Some(4)), payload.clone()),
                (fields(None), payload.clone()),
                (fields(Some(3)), json!({"ciphertext": "abd"})),
            ];
            for (changed, changed_payload) in tampered {
                let error =
                    verify(key.public_key(), &changed, &changed_payload, &signature).unwrap_err();
                assert_eq!(
                    error.to_string(),
                    "Invalid message signature — cannot verify the sender"
                );
            }
            let other = PrivateKey::generate(key_type).unwrap();
            assert_eq!(
                verify(other.public_key(), &fields(Some(3)), &payload, &signature),
                Err(SignatureError::Invalid)
            );
        }
    }

    #[test]
    fn m12_undecodable_signatures() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let error = verify(key.public_key(), &fields(None), &json!({}), "not base64!").unwrap_err();
        assert_eq!(error.to_string(), "Signature verification failed");
    }
}
