//! End-to-end envelopes (ref-auth-crypto §6): what the sender's proxy seals and the
//! recipient's proxy opens; the broker only sees the cipher blob and the outer signature.
//!
//! Layering: the inner signature covers the plaintext payload; the plaintext
//! `{"inner_signature", "payload"}` is encrypted with AES-256-GCM under a fresh key, with AAD
//! `session|sender[|client_seq]`; the key is wrapped with RSA-OAEP-SHA-256 for RSA recipients or,
//! for EC recipients, with ephemeral ECDH + HKDF-SHA-256 and then either XOR (`cullis-e2e-v1`,
//! the reference and the first SDK generation) or AES Key Wrap, RFC 3394
//! (`cullis-e2e-v2-aeskw`, PyPI `cullis-sdk` 0.2.x); the outer signature covers the canonical
//! cipher blob with the same nonce, timestamp and sequence.
//!
//! The blob carries no version field (0.2.2 adds none), but the two EC wraps differ in length:
//! XOR leaves the 32-byte key length, AES-KW adds an 8-byte integrity block (40 bytes). Opening
//! therefore takes whichever arrives; sealing takes the version the recipient accepts
//! ([`E2eVersion`]), which only the caller can know (docs/sdk-generations.md).
//!
//! Unlike the reference, opening also verifies the inner signature against the sender's key
//! and reports the outcome, so a recipient learns whether the plaintext is the sender's.

use crate::encoding::{b64, canonical_json};
use crate::keys::{self, KeyKind, PrivateKey, PublicKey};
use crate::signature::{self, SignedFields};
pub use crate::wire::broker::CipherBlob;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};
use zeroize::Zeroizing;

const KEY_LEN: usize = 32;
const IV_LEN: usize = 12;
/// RFC 3394 output: the input plus one 64-bit integrity block.
const AES_KW_LEN: usize = KEY_LEN + 8;

/// How an EC recipient's AES key is wrapped (RSA recipients: RSA-OAEP in both versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum E2eVersion {
    /// ECDH + HKDF (`cullis-e2e-v1`) + XOR: the reference and the first SDK generation.
    V1,
    /// ECDH + HKDF (`cullis-e2e-v2-aeskw`) + AES Key Wrap (RFC 3394): `cullis-sdk` 0.2.x,
    /// which opens nothing else.
    V2AesKw,
}

impl E2eVersion {
    /// Every version, oldest first.
    pub const ALL: [E2eVersion; 2] = [E2eVersion::V1, E2eVersion::V2AesKw];

    /// The name (also the HKDF `info`), as agent metadata lists it.
    pub const fn as_str(self) -> &'static str {
        match self {
            E2eVersion::V1 => "cullis-e2e-v1",
            E2eVersion::V2AesKw => "cullis-e2e-v2-aeskw",
        }
    }

    pub fn from_name(name: &str) -> Option<E2eVersion> {
        E2eVersion::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// The version a wrapped EC key of `len` bytes was sealed with.
    fn of_wrapped_len(len: usize) -> Option<E2eVersion> {
        match len {
            KEY_LEN => Some(E2eVersion::V1),
            AES_KW_LEN => Some(E2eVersion::V2AesKw),
            _ => None,
        }
    }
}

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
    /// The EC key wrap the sender used (`None` for an RSA recipient: RSA-OAEP in every version).
    pub version: Option<E2eVersion>,
}

/// AAD: `session|sender` or `session|sender|client_seq` (0 included).
pub fn aad(session_id: &str, sender_agent_id: &str, client_seq: Option<u64>) -> String {
    match client_seq {
        Some(seq) => format!("{session_id}|{sender_agent_id}|{seq}"),
        None => format!("{session_id}|{sender_agent_id}"),
    }
}

/// Seals `payload` from `sender_key` to `recipient` with `cullis-e2e-v1`, which every first
/// generation client opens.
pub fn seal(
    sender_key: &PrivateKey,
    recipient: &PublicKey,
    fields: &MessageFields<'_>,
    payload: &Value,
) -> Result<Sealed, EnvelopeError> {
    seal_as(E2eVersion::V1, sender_key, recipient, fields, payload)
}

/// Seals `payload` from `sender_key` to `recipient`, wrapping the key for an EC recipient as
/// `version` says (an RSA recipient gets RSA-OAEP either way).
pub fn seal_as(
    version: E2eVersion,
    sender_key: &PrivateKey,
    recipient: &PublicKey,
    fields: &MessageFields<'_>,
    payload: &Value,
) -> Result<Sealed, EnvelopeError> {
    let rng = SystemRandom::new();
    let mut aes_key = Zeroizing::new([0u8; KEY_LEN]);
    let mut iv = [0u8; IV_LEN];
    rng.fill(aes_key.as_mut())
        .map_err(|_| EnvelopeError::Encryption("no randomness".into()))?;
    rng.fill(&mut iv)
        .map_err(|_| EnvelopeError::Encryption("no randomness".into()))?;
    seal_with(
        sender_key,
        recipient,
        fields,
        payload,
        &aes_key,
        &iv,
        Wrap::Random(version),
    )
}

enum Wrap<'a> {
    Random(E2eVersion),
    #[cfg_attr(not(test), allow(dead_code))]
    EphemeralScalar(E2eVersion, &'a [u8]),
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
    let ciphertext = encrypt(
        aes_key,
        iv,
        &aad(fields.session_id, fields.sender_agent_id, fields.client_seq),
        &plaintext,
    )?;
    let (encrypted_key, ephemeral_pubkey) = match recipient.kind() {
        KeyKind::Rsa { .. } => (recipient.rsa_oaep_encrypt(aes_key).map_err(failed)?, None),
        KeyKind::Ec(_) => {
            let (version, agreed) = match wrap {
                Wrap::Random(version) => (version, keys::ecdh_ephemeral(recipient)),
                #[cfg(test)]
                Wrap::EphemeralScalar(version, scalar) => {
                    (version, keys::ecdh_with_scalar(scalar, recipient))
                }
                #[cfg(not(test))]
                Wrap::EphemeralScalar(..) => unreachable!("only tests fix the ephemeral key"),
            };
            let (shared, ephemeral) = agreed.map_err(failed)?;
            let kek = hkdf_wrap_key(&shared, version);
            let wrapped = match version {
                E2eVersion::V1 => xor(aes_key, &kek).to_vec(),
                E2eVersion::V2AesKw => aes_kw_wrap(&kek, aes_key)?.to_vec(),
            };
            (
                wrapped,
                Some(b64::url_padded(ephemeral.to_spki_pem().as_bytes())),
            )
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
/// key type, as in the reference, and for EC the wrapped key's length (v1 or v2, see the module
/// docs). `signed` carries the nonce and integer timestamp the sender
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
    let mut version = None;
    let aes_key: Zeroizing<Vec<u8>> = match recipient_key.public_key().kind() {
        KeyKind::Rsa { .. } => recipient_key
            .rsa_oaep_decrypt(&wrapped)
            .map_err(|_| EnvelopeError::Decryption)?,
        KeyKind::Ec(_) => {
            let wrap =
                E2eVersion::of_wrapped_len(wrapped.len()).ok_or(EnvelopeError::Decryption)?;
            version = Some(wrap);
            let pem_bytes = decode(
                blob.ephemeral_pubkey
                    .as_deref()
                    .ok_or(EnvelopeError::Decryption)?,
            )?;
            let pem = std::str::from_utf8(&pem_bytes).map_err(|_| EnvelopeError::Decryption)?;
            let ephemeral = PublicKey::from_spki_pem(pem).map_err(|_| EnvelopeError::Decryption)?;
            let shared = recipient_key
                .ecdh(&ephemeral)
                .map_err(|_| EnvelopeError::Decryption)?;
            let kek = hkdf_wrap_key(&shared, wrap);
            match wrap {
                E2eVersion::V1 => Zeroizing::new(xor(&wrapped, &kek).to_vec()),
                E2eVersion::V2AesKw => Zeroizing::new(aes_kw_unwrap(&kek, &wrapped)?.to_vec()),
            }
        }
    };
    let key: &[u8; KEY_LEN] = aes_key
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::Decryption)?;
    let iv: [u8; IV_LEN] = decode(&blob.iv)?
        .try_into()
        .map_err(|_| EnvelopeError::Decryption)?;
    let plaintext = decrypt(
        key,
        &iv,
        &aad(session_id, sender_agent_id, client_seq),
        &decode(&blob.ciphertext)?,
    )?;
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
            let fields = SignedFields {
                session_id,
                sender_agent_id,
                nonce,
                timestamp,
                client_seq,
            };
            match signature::verify(sender_key, &fields, &payload, &inner_signature) {
                Ok(()) => InnerSignature::Verified,
                Err(_) => InnerSignature::Invalid,
            }
        }
        _ => InnerSignature::Unchecked,
    };
    Ok(Opened {
        payload,
        inner_signature,
        inner: verdict,
        version,
    })
}

fn encrypt(
    key: &[u8; KEY_LEN],
    iv: &[u8; IV_LEN],
    aad: &str,
    plaintext: &Value,
) -> Result<Vec<u8>, EnvelopeError> {
    let sealing = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| EnvelopeError::Encryption("AES key".into()))?,
    );
    let mut data = canonical_json::to_vec(plaintext);
    sealing
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(*iv),
            Aad::from(aad.as_bytes()),
            &mut data,
        )
        .map_err(|_| EnvelopeError::Encryption("AES-GCM".into()))?;
    Ok(data)
}

fn decrypt(
    key: &[u8; KEY_LEN],
    iv: &[u8; IV_LEN],
    aad: &str,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let opening = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| EnvelopeError::Decryption)?,
    );
    let mut data = Zeroizing::new(ciphertext.to_vec());
    let len = opening
        .open_in_place(
            Nonce::assume_unique_for_key(*iv),
            Aad::from(aad.as_bytes()),
            &mut data,
        )
        .map_err(|_| EnvelopeError::Decryption)?
        .len();
    data.truncate(len);
    Ok(data)
}

/// HKDF-SHA-256 over the ECDH x-coordinate: no salt (RFC 5869: a hash-length run of zeros),
/// info = the version's name, 32 bytes.
fn hkdf_wrap_key(shared_x: &[u8], version: E2eVersion) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, &[0u8; 32])
        .extract(shared_x)
        .expand(&[version.as_str().as_bytes()], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    out
}

/// RFC 3394 AES-256 Key Wrap of the content key under `kek` (aws-lc).
fn aes_kw_wrap(
    kek: &[u8; KEY_LEN],
    aes_key: &[u8; KEY_LEN],
) -> Result<[u8; AES_KW_LEN], EnvelopeError> {
    let failed = |_| EnvelopeError::Encryption("AES key wrap".into());
    let kek = AesKek::new(&AES_256, kek).map_err(failed)?;
    let mut out = [0u8; AES_KW_LEN];
    kek.wrap(aes_key, &mut out).map_err(failed)?;
    Ok(out)
}

/// RFC 3394 unwrap; a wrong KEK or any changed bit fails the integrity check.
fn aes_kw_unwrap(
    kek: &[u8; KEY_LEN],
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, EnvelopeError> {
    let kek = AesKek::new(&AES_256, kek).map_err(|_| EnvelopeError::Decryption)?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    let unwrapped = kek
        .unwrap(wrapped, out.as_mut())
        .map_err(|_| EnvelopeError::Decryption)?;
    if unwrapped.len() != KEY_LEN {
        return Err(EnvelopeError::Decryption);
    }
    Ok(out)
}

fn xor(data: &[u8], key: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // `zip` truncates to the shorter input, as the reference's does.
    for ((slot, a), b) in out.iter_mut().zip(data).zip(key) {
        *slot = a ^ b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;
    use serde_json::json;

    /// The reference's P-256 test key (`dpop_proof.json`), recipient of Appendix A.1.
    const A1_RECIPIENT: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\nOF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G\n-----END PRIVATE KEY-----\n";
    const A1_SESSION: &str = "11111111-2222-3333-4444-555555555555";

    fn a1_blob() -> CipherBlob {
        CipherBlob {
            ciphertext: "PCC_dauAsET-KPDl0J0NH-b0vRajMhheFEWV5GQFb9NlMpSHjbV34ACGRc_g4kRUgXsd8HWMfKS5lIJ9m3Z2xh78Ei4=".into(),
            iv: "AAECAwQFBgcICQoL".into(),
            encrypted_key: "_pRo54WSpXp8CVikdKNyekEIggxo5LNkQ-Kktroo2Co=".into(),
            ephemeral_pubkey: Some("LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KTUZrd0V3WUhLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFdlRkYmxacnlIMG9EejF1YVJ1M1hiZW5yZVFMNgpTa0M1MEVxa2VWeFBqay9ZMU91d2hsdUhqcEpqTFhwWVFnOGN3a0cvSzk3SlRUQTREZS84L1NETmNRPT0KLS0tLS1FTkQgUFVCTElDIEtFWS0tLS0tCg==".into()),
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        ::hex::decode(text).unwrap()
    }

    #[test]
    fn a1_reference_ec_blob_opens() {
        let recipient = PrivateKey::from_pem(A1_RECIPIENT).unwrap();
        let opened = open(
            &recipient,
            A1_SESSION,
            "acme::buyer",
            Some(0),
            &a1_blob(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(opened.payload, json!({"text": "hello"}));
        assert_eq!(opened.inner_signature, "SIG");
        assert_eq!(opened.inner, InnerSignature::Unchecked);
        // The AAD binds session, sender and sequence.
        for (session, sender, seq) in [
            ("other", "acme::buyer", Some(0)),
            (A1_SESSION, "acme::seller", Some(0)),
            (A1_SESSION, "acme::buyer", None),
            (A1_SESSION, "acme::buyer", Some(1)),
        ] {
            assert_eq!(
                open(&recipient, session, sender, seq, &a1_blob(), None, None),
                Err(EnvelopeError::Decryption)
            );
        }
    }

    #[test]
    fn a1_key_wrap_is_byte_exact() {
        let recipient = PrivateKey::from_pem(A1_RECIPIENT).unwrap();
        let scalar = hex("e94d9a53300e54bdee511a598a80aa073841bb3464360b7a7fcacbf7479e9cb8");
        let (shared, ephemeral) = keys::ecdh_with_scalar(&scalar, recipient.public_key()).unwrap();
        assert_eq!(
            shared.as_slice(),
            hex("18c29722af3165712cd6c7a4120e33159896bd921bca9fd175428b0710f009cb")
        );
        assert_eq!(
            hkdf_wrap_key(&shared, E2eVersion::V1).to_vec(),
            hex("fe956ae48197a37d740052af78ae7c755119901f7cf1a5735bfbbeada635c635")
        );
        let aes_key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let iv: [u8; 12] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            b64::url_padded(xor(&aes_key, &hkdf_wrap_key(&shared, E2eVersion::V1)).as_slice()),
            a1_blob().encrypted_key
        );
        assert_eq!(
            Some(b64::url_padded(ephemeral.to_spki_pem().as_bytes())),
            a1_blob().ephemeral_pubkey
        );
        let plaintext = json!({"inner_signature": "SIG", "payload": {"text": "hello"}});
        let aad = aad(A1_SESSION, "acme::buyer", Some(0));
        assert_eq!(
            b64::url_padded(&encrypt(&aes_key, &iv, &aad, &plaintext).unwrap()),
            a1_blob().ciphertext
        );
        // Through the whole sealing path with the same ephemeral key, only the signatures vary.
        let sender = PrivateKey::generate(KeyType::EcP256).unwrap();
        let fields = MessageFields {
            session_id: A1_SESSION,
            sender_agent_id: "acme::buyer",
            nonce: "n",
            timestamp: 1,
            client_seq: Some(0),
        };
        let sealed = seal_with(
            &sender,
            recipient.public_key(),
            &fields,
            &json!({"text": "hello"}),
            &aes_key,
            &iv,
            Wrap::EphemeralScalar(E2eVersion::V1, &scalar),
        )
        .unwrap();
        assert_eq!(sealed.blob.encrypted_key, a1_blob().encrypted_key);
        assert_eq!(sealed.blob.ephemeral_pubkey, a1_blob().ephemeral_pubkey);
    }

    #[test]
    fn outer_signature_covers_the_canonical_blob_in_sorted_order() {
        let blob = a1_blob();
        let canonical = canonical_json::to_string(&blob_value(&blob));
        let order: Vec<usize> = ["ciphertext", "encrypted_key", "ephemeral_pubkey", "iv"]
            .iter()
            .map(|k| canonical.find(k).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn seal_and_open_for_every_sender_and_recipient_key_type() {
        let types = [KeyType::Rsa2048, KeyType::EcP256, KeyType::EcP384];
        let payload =
            json!({"order": {"sku": "A-1", "qty": 3, "note": "naïve ☃ 😀", "price": 12.5}});
        for (sender_type, version) in types
            .into_iter()
            .flat_map(|t| E2eVersion::ALL.map(|v| (t, v)))
        {
            let sender = PrivateKey::generate(sender_type).unwrap();
            for recipient_type in types {
                let recipient = PrivateKey::generate(recipient_type).unwrap();
                let fields = MessageFields {
                    session_id: A1_SESSION,
                    sender_agent_id: "acme::buyer",
                    nonce: "n-1",
                    timestamp: 1_700_000_000,
                    client_seq: Some(7),
                };
                let sealed =
                    seal_as(version, &sender, recipient.public_key(), &fields, &payload).unwrap();
                let is_ec = recipient_type != KeyType::Rsa2048;
                assert_eq!(sealed.blob.ephemeral_pubkey.is_some(), is_ec);
                // The broker's check: the outer signature over the blob.
                signature::verify(
                    sender.public_key(),
                    &fields,
                    &blob_value(&sealed.blob),
                    &sealed.signature,
                )
                .unwrap();
                let opened = open(
                    &recipient,
                    A1_SESSION,
                    "acme::buyer",
                    Some(7),
                    &sealed.blob,
                    Some(("n-1", 1_700_000_000)),
                    Some(sender.public_key()),
                )
                .unwrap();
                assert_eq!(opened.payload, payload);
                assert_eq!(opened.inner, InnerSignature::Verified);
                // The opener tells which wrap arrived, for EC recipients only.
                assert_eq!(opened.version, is_ec.then_some(version));
                // A forged sender key or a changed timestamp shows as an invalid inner signature.
                let impostor = PrivateKey::generate(sender_type).unwrap();
                let forged = open(
                    &recipient,
                    A1_SESSION,
                    "acme::buyer",
                    Some(7),
                    &sealed.blob,
                    Some(("n-1", 1_700_000_000)),
                    Some(impostor.public_key()),
                )
                .unwrap();
                assert_eq!(forged.inner, InnerSignature::Invalid);
                let wrong_time = open(
                    &recipient,
                    A1_SESSION,
                    "acme::buyer",
                    Some(7),
                    &sealed.blob,
                    Some(("n-1", 1_700_000_001)),
                    Some(sender.public_key()),
                )
                .unwrap();
                assert_eq!(wrong_time.inner, InnerSignature::Invalid);
            }
        }
    }

    /// RFC 3394 §4.6: 256 bits of key data wrapped with a 256-bit KEK.
    #[test]
    fn aes_key_wrap_matches_rfc_3394() {
        let kek: [u8; 32] = hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
            .try_into()
            .unwrap();
        let key: [u8; 32] = hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
            .try_into()
            .unwrap();
        let wrapped = aes_kw_wrap(&kek, &key).unwrap();
        assert_eq!(
            wrapped.to_vec(),
            hex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
        );
        assert_eq!(*aes_kw_unwrap(&kek, &wrapped).unwrap(), key);
        let mut flipped = wrapped;
        flipped[39] ^= 1;
        assert_eq!(
            aes_kw_unwrap(&kek, &flipped),
            Err(EnvelopeError::Decryption)
        );
        assert_eq!(
            aes_kw_unwrap(&kek, &wrapped[..32]),
            Err(EnvelopeError::Decryption)
        );
    }

    #[test]
    fn version_names_round_trip() {
        for version in E2eVersion::ALL {
            assert_eq!(E2eVersion::from_name(version.as_str()), Some(version));
        }
        assert_eq!(E2eVersion::from_name("cullis-e2e-v3"), None);
    }

    /// A v1-sized or v2-sized key under the other version's KEK, or any other length, fails.
    #[test]
    fn a_wrap_length_of_neither_version_fails() {
        let sender = PrivateKey::generate(KeyType::EcP256).unwrap();
        let recipient = PrivateKey::generate(KeyType::EcP256).unwrap();
        let fields = MessageFields {
            session_id: "s",
            sender_agent_id: "a::b",
            nonce: "n",
            timestamp: 1,
            client_seq: None,
        };
        let sealed = seal_as(
            E2eVersion::V2AesKw,
            &sender,
            recipient.public_key(),
            &fields,
            &json!({"x": 1}),
        )
        .unwrap();
        let mut wrapped = b64::decode_lenient(&sealed.blob.encrypted_key).unwrap();
        assert_eq!(wrapped.len(), 40);
        wrapped.truncate(36);
        let blob = CipherBlob {
            encrypted_key: b64::url_padded(&wrapped),
            ..sealed.blob.clone()
        };
        assert_eq!(
            open(&recipient, "s", "a::b", None, &blob, None, None),
            Err(EnvelopeError::Decryption)
        );
    }

    #[test]
    fn tampering_and_wrong_recipients_fail_decryption() {
        let sender = PrivateKey::generate(KeyType::EcP256).unwrap();
        let cases = [
            (KeyType::Rsa2048, E2eVersion::V1),
            (KeyType::EcP256, E2eVersion::V1),
            (KeyType::EcP256, E2eVersion::V2AesKw),
        ];
        for (recipient_type, version) in cases {
            let recipient = PrivateKey::generate(recipient_type).unwrap();
            let stranger = PrivateKey::generate(recipient_type).unwrap();
            let fields = MessageFields {
                session_id: "s",
                sender_agent_id: "a::b",
                nonce: "n",
                timestamp: 1,
                client_seq: None,
            };
            let sealed = seal_as(
                version,
                &sender,
                recipient.public_key(),
                &fields,
                &json!({"x": 1}),
            )
            .unwrap();
            let flip = |text: &str| {
                let mut bytes = b64::decode_lenient(text).unwrap();
                bytes[0] ^= 1;
                b64::url_padded(&bytes)
            };
            let mut variants = vec![
                CipherBlob {
                    ciphertext: flip(&sealed.blob.ciphertext),
                    ..sealed.blob.clone()
                },
                CipherBlob {
                    iv: flip(&sealed.blob.iv),
                    ..sealed.blob.clone()
                },
                CipherBlob {
                    encrypted_key: flip(&sealed.blob.encrypted_key),
                    ..sealed.blob.clone()
                },
                CipherBlob {
                    iv: "AAAA".into(),
                    ..sealed.blob.clone()
                },
                CipherBlob {
                    ciphertext: "%%%".into(),
                    ..sealed.blob.clone()
                },
            ];
            if let Some(ephemeral) = &sealed.blob.ephemeral_pubkey {
                variants.push(CipherBlob {
                    ephemeral_pubkey: Some(flip(ephemeral)),
                    ..sealed.blob.clone()
                });
                variants.push(CipherBlob {
                    ephemeral_pubkey: None,
                    ..sealed.blob.clone()
                });
            }
            for blob in variants {
                let error = open(&recipient, "s", "a::b", None, &blob, None, None).unwrap_err();
                assert_eq!(
                    error.to_string(),
                    "E2E decryption failed: message integrity cannot be verified"
                );
            }
            assert_eq!(
                open(&stranger, "s", "a::b", None, &sealed.blob, None, None),
                Err(EnvelopeError::Decryption)
            );
            assert!(open(&recipient, "s", "a::b", None, &sealed.blob, None, None).is_ok());
        }
    }
}
