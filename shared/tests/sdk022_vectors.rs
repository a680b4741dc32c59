//! Envelopes sealed by the published SDK, `cullis-sdk` 0.2.2 (`tests/vectors/sdk022/`, made
//! with the SDK itself): its EC recipients get the AES key wrapped with AES-KW under an HKDF key
//! with info `cullis-e2e-v2-aeskw`. `cullis_shared::envelope` opens each one, tells the version,
//! and checks both signatures; a changed bit anywhere fails.

use cullis_shared::encoding::b64;
use cullis_shared::envelope::{self, CipherBlob, E2eVersion, EnvelopeError, InnerSignature};
use cullis_shared::keys::{PrivateKey, PublicKey};
use cullis_shared::signature::{self, SignedFields};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let bundle: Value =
        serde_json::from_str(include_str!("vectors/sdk022/envelopes.json")).unwrap();
    assert_eq!(bundle["sdk"], "cullis-sdk 0.2.2");
    let list = bundle["vectors"].as_array().unwrap().clone();
    assert_eq!(list.len(), 4);
    list
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

struct Vector {
    name: String,
    recipient: PrivateKey,
    sender: PublicKey,
    session_id: String,
    sender_agent_id: String,
    nonce: String,
    timestamp: i64,
    client_seq: Option<u64>,
    blob: CipherBlob,
    raw: Value,
}

impl Vector {
    fn fields(&self) -> SignedFields<'_> {
        SignedFields {
            session_id: &self.session_id,
            sender_agent_id: &self.sender_agent_id,
            nonce: &self.nonce,
            timestamp: self.timestamp,
            client_seq: self.client_seq,
        }
    }

    fn open(&self, blob: &CipherBlob) -> Result<envelope::Opened, EnvelopeError> {
        envelope::open(
            &self.recipient,
            &self.session_id,
            &self.sender_agent_id,
            self.client_seq,
            blob,
            Some((&self.nonce, self.timestamp)),
            Some(&self.sender),
        )
    }
}

fn parsed() -> Vec<Vector> {
    vectors()
        .into_iter()
        .map(|raw| Vector {
            name: text(&raw["name"]).to_owned(),
            recipient: PrivateKey::from_pem(text(&raw["recipient_private_key_pem"])).unwrap(),
            sender: PublicKey::from_spki_pem(text(&raw["sender_public_key_pem"])).unwrap(),
            session_id: text(&raw["session_id"]).to_owned(),
            sender_agent_id: text(&raw["sender_agent_id"]).to_owned(),
            nonce: text(&raw["nonce"]).to_owned(),
            timestamp: raw["timestamp"].as_i64().unwrap(),
            client_seq: raw["client_seq"].as_u64(),
            blob: serde_json::from_value(raw["blob"].clone()).unwrap(),
            raw,
        })
        .collect()
}

#[test]
fn every_sdk_022_envelope_opens_with_both_signatures_verified() {
    for vector in parsed() {
        let opened = vector
            .open(&vector.blob)
            .unwrap_or_else(|e| panic!("{}: {e}", vector.name));
        assert_eq!(opened.payload, vector.raw["payload"], "{}", vector.name);
        assert_eq!(opened.inner_signature, text(&vector.raw["inner_signature"]));
        assert_eq!(opened.inner, InnerSignature::Verified, "{}", vector.name);
        let is_ec = vector.blob.ephemeral_pubkey.is_some();
        assert_eq!(
            opened.version,
            is_ec.then_some(E2eVersion::V2AesKw),
            "{}",
            vector.name
        );
        // The broker's check: the outer signature over the blob as the SDK serialised it.
        signature::verify(
            &vector.sender,
            &vector.fields(),
            &vector.raw["blob"],
            text(&vector.raw["outer_signature"]),
        )
        .unwrap_or_else(|e| panic!("{}: outer signature {e}", vector.name));
    }
}

#[test]
fn a_changed_bit_in_any_member_or_the_binding_fails() {
    for vector in parsed() {
        let flip = |text: &str| {
            let mut bytes = b64::decode_lenient(text).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            b64::url_padded(&bytes)
        };
        let mut variants = vec![
            CipherBlob {
                ciphertext: flip(&vector.blob.ciphertext),
                ..vector.blob.clone()
            },
            CipherBlob {
                encrypted_key: flip(&vector.blob.encrypted_key),
                ..vector.blob.clone()
            },
            CipherBlob {
                iv: flip(&vector.blob.iv),
                ..vector.blob.clone()
            },
        ];
        if vector.blob.ephemeral_pubkey.is_some() {
            variants.push(CipherBlob {
                ephemeral_pubkey: None,
                ..vector.blob.clone()
            });
        }
        for blob in variants {
            assert_eq!(
                vector.open(&blob),
                Err(EnvelopeError::Decryption),
                "{}",
                vector.name
            );
        }
        // The AAD binds the session: the same blob in another session does not open.
        let moved = envelope::open(
            &vector.recipient,
            "00000000-0000-0000-0000-000000000000",
            &vector.sender_agent_id,
            vector.client_seq,
            &vector.blob,
            None,
            None,
        );
        assert_eq!(moved, Err(EnvelopeError::Decryption), "{}", vector.name);
    }
}
