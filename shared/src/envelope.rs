//! End-to-end envelopes (ref-auth-crypto §6): what the sender's proxy seals and the
//! recipient's proxy opens; the broker only sees the cipher blob and the outer signature.
//!
//! Layering: the inner signature covers the plaintext payload; the plaintext
//! `{"inner_signature", "payload"}` is encrypted with AES-256-GCM under a fresh key, with AAD
//! `session|sender[|client_seq]`; the key is wrapped with RSA-OAEP-SHA-256 for RSA recipients or
//! with ephemeral ECDH + HKDF-SHA-256 (`cullis-e2e-v1`) + XOR for EC recipients; the outer
//! signature covers the canonical cipher blob with the same nonce, timestamp and sequence.
//!
//! Unlike the reference, opening also verifies the inner signature against the sender's key
//! and reports the outcome, so a recipient learns whether the plaintext is the sender's.

use crate::encoding::{b64, canonical_json};
use crate::keys::{self, KeyKind, PrivateKey, PublicKey};
use crate::signature::{self, SignedFields};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
pub use crate::wire::broker::CipherBlob;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// HKDF `info` of the EC key wrap.
const HKDF_INFO: &[u8] = b"cullis-e2e-v1";
const KEY_LEN: usize = 32;
const IV_LEN: usize = 12;

/// The blob as a JSON value, which is what the outer signature covers.
fn blob_value(blob: &CipherBlob) -> Value {
    serde_json::to_value(blob).expect("a struct of strings serializes")
}

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Any failure to decrypt: wrong key, wrong AAD, tampered blob. One message on purpose.
    #[error("E2E decryption failed: message integrity cannot be verified")]
    Decryption,
    #[error("E2E encryption failed: {0}")]
    Encryption(String),
}

/// The message-binding fields shared by both signatures and the AAD.
pub type MessageFields<'a> = SignedFields<'a>;

/// A sealed message: the blob for the envelope `payload` and the outer signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub blob: CipherBlob,
    pub signature: String,
}

/// Whether the inner signature proved the plaintext came from the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnerSignature {
    /// Verified under the sender's key with the envelope's nonce and timestamp.
    Verified,
    /// Present but does not verify: the plaintext may have been forged or altered.
    Invalid,
    /// Could not be checked: no sender key, or the signing nonce/timestamp was not delivered.
    Unchecked,
}

/// An opened message.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub payload: Value,
    pub inner_signature: String,
    pub inner: InnerSignature,
}

/// AAD: `session|sender` or `session|sender|client_seq` (0 included).
pub fn aad(session_id: &str, sender_agent_id: &str, client_seq: Option<u64>) -> String {
    match client_seq {
        Some(seq) => format!("{session_id}|{sender_agent_id}|{seq}"),
        None => format!("{session_id}|{sender_agent_id}"),
    }
}

/// Seals `payload` from `sender_key` to `recipient`.
pub fn seal(sender_key: &PrivateKey, recipient: &PublicKey, fields: &MessageFields<'_>, payload: &Value) -> Result<Sealed, EnvelopeError> {
    let rng = SystemRandom::new();
    let mut aes_key = Zeroizing::new([0u8; KEY_LEN]);
    let mut iv = [0u8; IV_LEN];
    rng.fill(aes_key.as_mut()).map_err(|_| EnvelopeError::Encryption("no randomness".into()))?;
    rng.fill(&mut iv).map_err(|_| EnvelopeError::Encryption("no randomness".into()))?;
    seal_with(sender_key, recipient, fields, payload, &aes_key, &iv, Wrap::Random)
}

enum Wrap<'a> {
    Random,
    #[cfg_attr(not(test), allow(dead_code))]
    EphemeralScalar(&'a [u8]),
}

fn seal_with(
    sender_key: &PrivateKey,
    recipient: &PublicKey,
    fields: &MessageFields<'_>,
    payload: &Value,
    aes_key: &[u8; KEY_LEN],
    iv: &[u8; IV_LEN],
    wrap: Wrap<'_>,
) -> Result<Sealed, EnvelopeError> {
    let failed = |e: keys::KeyError| EnvelopeError::Encryption(e.to_string());
    let inner_signature = signature::sign(sender_key, fields, payload).map_err(failed)?;
    let plaintext = json!({"inner_signature": inner_signature, "payload": payload});
    let ciphertext = encrypt(aes_key, iv, &aad(fields.session_id, fields.sender_agent_id, fields.client_seq), &plaintext)?;
    let (encrypted_key, ephemeral_pubkey) = match recipient.kind() {
        KeyKind::Rsa { .. } => (recipient.rsa_oaep_encrypt(aes_key).map_err(failed)?, None),
        KeyKind::Ec(_) => {
            let (shared, ephemeral) = match wrap {
                Wrap::Random => keys::ecdh_ephemeral(recipient),
                #[cfg(test)]
                Wrap::EphemeralScalar(scalar) => keys::ecdh_with_scalar(scalar, recipient),
                #[cfg(not(test))]
                Wrap::EphemeralScalar(_) => unreachable!("only tests fix the ephemeral key"),
            }
            .map_err(failed)?;
            let wrapped = xor(aes_key, &hkdf_wrap_key(&shared));
            (wrapped.to_vec(), Some(b64::url_padded(ephemeral.to_spki_pem().as_bytes())))
        }
    };
    let blob = CipherBlob {
        ciphertext: b64::url_padded(&ciphertext),
        iv: b64::url_padded(iv),
        encrypted_key: b64::url_padded(&encrypted_key),
        ephemeral_pubkey,
    };
    let signature = signature::sign(sender_key, fields, &blob_value(&blob)).map_err(failed)?;
    Ok(Sealed { blob, signature })
}

/// Opens a blob addressed to `recipient_key`. The unwrap method follows the recipient's own
/// key type, as in the reference. `signed` carries the nonce and integer timestamp the sender
/// signed with, when the delivery path has them; with `sender_key` it lets the inner signature
/// be verified.
pub fn open(
    recipient_key: &PrivateKey,
    session_id: &str,
    sender_agent_id: &str,
    client_seq: Option<u64>,
    blob: &CipherBlob,
    signed: Option<(&str, i64)>,
    sender_key: Option<&PublicKey>,
) -> Result<Opened, EnvelopeError> {
    let decode = |text: &str| b64::decode_lenient(text).map_err(|_| EnvelopeError::Decryption);
    let wrapped = decode(&blob.encrypted_key)?;
    let aes_key: Zeroizing<Vec<u8>> = match recipient_key.public_key().kind() {
        KeyKind::Rsa { .. } => recipient_key.rsa_oaep_decrypt(&wrapped).map_err(|_| EnvelopeError::Decryption)?,
        KeyKind::Ec(_) => {
            let pem_bytes = decode(blob.ephemeral_pubkey.as_deref().ok_or(EnvelopeError::Decryption)?)?;
            let pem = std::str::from_utf8(&pem_bytes).map_err(|_| EnvelopeError::Decryption)?;
            let ephemeral = PublicKey::from_spki_pem(pem).map_err(|_| EnvelopeError::Decryption)?;
            let shared = recipient_key.ecdh(&ephemeral).map_err(|_| EnvelopeError::Decryption)?;
            Zeroizing::new(xor(&wrapped, &hkdf_wrap_key(&shared)).to_vec())
        }
    };
    let key: &[u8; KEY_LEN] = aes_key.as_slice().try_into().map_err(|_| EnvelopeError::Decryption)?;
    let iv: [u8; IV_LEN] = decode(&blob.iv)?.try_into().map_err(|_| EnvelopeError::Decryption)?;
    let plaintext = decrypt(key, &iv, &aad(session_id, sender_agent_id, client_seq), &decode(&blob.ciphertext)?)?;
    let mut inner: serde_json::Map<String, Value> = match serde_json::from_slice(&plaintext) {
        Ok(Value::Object(map)) => map,
        _ => return Err(EnvelopeError::Decryption),
    };
    let payload = inner.remove("payload").ok_or(EnvelopeError::Decryption)?;
    let inner_signature = match inner.remove("inner_signature") {
        Some(Value::String(sig)) => sig,
        _ => return Err(EnvelopeError::Decryption),
    };
    let verdict = match (signed, sender_key) {
        (Some((nonce, timestamp)), Some(sender_key)) => {
            let fields = SignedFields { session_id, sender_agent_id, nonce, timestamp, client_seq };
            match signature::verify(sender_key, &fields, &payload, &inner_signature) {
                Ok(()) => InnerSignature::Verified,
                Err(_) => InnerSignature::Invalid,
            }
        }
        _ => InnerSignature::Unchecked,
    };
    Ok(Opened { payload, inner_signature, inner: verdict })
}

fn encrypt(key: &[u8; KEY_LEN], iv: &[u8; IV_LEN], aad: &str, plaintext: &Value) -> Result<Vec<u8>, EnvelopeError> {
    let sealing = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| EnvelopeError::Encryption("AES key".into()))?);
    let mut data = canonical_json::to_vec(plaintext);
    sealing
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(*iv), Aad::from(aad.as_bytes()), &mut data)
        .map_err(|_| EnvelopeError::Encryption("AES-GCM".into()))?;
    Ok(data)
}

fn decrypt(key: &[u8; KEY_LEN], iv: &[u8; IV_LEN], aad: &str, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let opening = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| EnvelopeError::Decryption)?);
    let mut data = Zeroizing::new(ciphertext.to_vec());
    let len = opening
        .open_in_place(Nonce::assume_unique_for_key(*iv), Aad::from(aad.as_bytes()), &mut data)
        .map_err(|_| EnvelopeError::Decryption)?
        .len();
    data.truncate(len);
    Ok(data)
}

/// HKDF-SHA-256 over the ECDH x-coordinate: no salt (RFC 5869: a hash-length run of zeros),
/// info `cullis-e2e-v1`, 32 bytes.
fn hkdf_wrap_key(shared_x: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, &[0u8; 32])
        .extract(shared_x)
        .expand(&[HKDF_INFO], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    out
}

fn xor(data: &[u8], key: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // `zip` truncates to the shorter input, as the reference's does.
    for ((slot, a), b) in out.iter_mut().zip(data).zip(key) {
        *slot = a ^ b;
    }
    out
}
