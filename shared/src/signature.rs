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
pub fn sign(key: &PrivateKey, fields: &SignedFields<'_>, payload: &Value) -> Result<String, crate::keys::KeyError> {
    let signature = key.sign_message(signing_string(fields, payload).as_bytes())?;
    Ok(b64::url_padded(&signature))
}

/// Verifies a message signature made by `key`. The base64 may be padded or not, in either
/// alphabet (the TypeScript SDK sends it unpadded).
pub fn verify(key: &PublicKey, fields: &SignedFields<'_>, payload: &Value, signature: &str) -> Result<(), SignatureError> {
    let signature = b64::decode_lenient(signature).map_err(|_| SignatureError::Undecodable)?;
    key.verify_message(signing_string(fields, payload).as_bytes(), &signature)
        .map_err(|_| SignatureError::Invalid)
}
