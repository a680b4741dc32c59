//! E2E envelopes (`shared/src/envelope.rs`) as both ends receive them:
//! * the recipient's proxy: an inbox message (`wire::broker::InboxMessage`) whose `payload` is a
//!   cipher blob, opened with `envelope::open` — base64 forms, RSA-OAEP or ECDH + HKDF + XOR /
//!   AES-KW unwrap (by wrapped length), the ephemeral SPKI PEM, AES-GCM with the AAD, the
//!   plaintext JSON, and the inner signature under the sender's key;
//! * the broker: a `wire::broker::MessageEnvelope` and its outer signature (`signature::verify`).
//!
//! Keys are the recipients and senders of the repo's vectors (`shared/tests/vectors/sdk022/`
//! and `cullis_extra.json`), so the seed blobs really open. Raw mode (first byte even): the rest
//! is a JSON object, an inbox message plus `session_id` (or an envelope); bits 1–3 pick the
//! vector whose keys are used. Crafted mode (odd): the rest is the *plaintext* — the target
//! encrypts it for the first vector's recipient, so the fuzzer reaches the JSON and inner
//! signature handling behind AES-GCM, which it could never forge.
//!
//! Invariant (crafted mode): the blob opens exactly when the plaintext is a JSON object with a
//! `payload` and a string `inner_signature`, and then yields that payload.
#![no_main]

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;
use cullis_fuzz::split_selector;
use cullis_shared::encoding::b64;
use cullis_shared::envelope::{self, CipherBlob, E2eVersion};
use cullis_shared::keys::{KeyType, PrivateKey, PublicKey};
use cullis_shared::signature::{self, SignedFields};
use cullis_shared::wire::broker::{InboxMessage, MessageEnvelope};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::LazyLock;

struct Pair {
    recipient: PrivateKey,
    sender: PublicKey,
}

static PAIRS: LazyLock<Vec<Pair>> = LazyLock::new(|| {
    let mut pairs = Vec::new();
    let sdk: Value = serde_json::from_str(include_str!(
        "../../shared/tests/vectors/sdk022/envelopes.json"
    ))
    .expect("vector file is JSON");
    let extra: Value =
        serde_json::from_str(include_str!("../../shared/tests/vectors/cullis_extra.json"))
            .expect("vector file is JSON");
    let vectors = sdk["vectors"].as_array().into_iter().flatten();
    for vector in vectors.chain(extra["envelopes"].as_array().into_iter().flatten()) {
        pairs.push(Pair {
            recipient: PrivateKey::from_pem(vector["recipient_private_key_pem"].as_str().unwrap())
                .expect("vector recipient key"),
            sender: PublicKey::from_spki_pem(vector["sender_public_key_pem"].as_str().unwrap())
                .expect("vector sender key"),
        });
    }
    assert!(pairs.len() >= 7);
    pairs
});

/// The signed fields of `sdk022/envelopes.json` vector 0, which crafted mode uses.
const SESSION: &str = "5a0c6f2e-3b7d-4e1a-9c2b-8d7e6f5a4b3c";
const SENDER: &str = "acme::buyer";
const NONCE: &str = "nonce-ec_p256_to_ec_p256";
const TIMESTAMP: i64 = 1_780_000_000;
const CLIENT_SEQ: Option<u64> = Some(0);
const CONTENT_KEY: [u8; 32] = [7; 32];
const IV: [u8; 12] = [9; 12];

/// A `cullis-e2e-v1` key wrap of [`CONTENT_KEY`] for vector 0's recipient (P-256).
static WRAP: LazyLock<(String, String)> = LazyLock::new(|| {
    let recipient = PAIRS[0].recipient.public_key();
    let ephemeral = PrivateKey::generate(KeyType::EcP256).expect("P-256 key");
    let shared = ephemeral.ecdh(recipient).expect("same curve");
    let mut kek = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, &[0u8; 32])
        .extract(&shared)
        .expand(&[E2eVersion::V1.as_str().as_bytes()], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut kek))
        .expect("32-byte HKDF output");
    let wrapped: Vec<u8> = CONTENT_KEY.iter().zip(kek).map(|(a, b)| a ^ b).collect();
    (
        b64::url_padded(&wrapped),
        b64::url_padded(ephemeral.public_key().to_spki_pem().as_bytes()),
    )
});

fn crafted(plaintext: &[u8]) {
    let sealing = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &CONTENT_KEY).unwrap());
    let mut data = plaintext.to_vec();
    let aad = envelope::aad(SESSION, SENDER, CLIENT_SEQ);
    sealing
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(IV),
            Aad::from(aad.as_bytes()),
            &mut data,
        )
        .unwrap();
    let (encrypted_key, ephemeral_pubkey) = &*WRAP;
    let blob = CipherBlob {
        ciphertext: b64::url_padded(&data),
        iv: b64::url_padded(&IV),
        encrypted_key: encrypted_key.clone(),
        ephemeral_pubkey: Some(ephemeral_pubkey.clone()),
    };
    let pair = &PAIRS[0];
    let opened = envelope::open(
        &pair.recipient,
        SESSION,
        SENDER,
        CLIENT_SEQ,
        &blob,
        Some((NONCE, TIMESTAMP)),
        Some(&pair.sender),
    );
    let expected = match serde_json::from_slice::<Value>(plaintext) {
        Ok(Value::Object(map)) if map.get("inner_signature").is_some_and(Value::is_string) => {
            map.get("payload").cloned()
        }
        _ => None,
    };
    match (opened, expected) {
        (Ok(opened), Some(payload)) => {
            cullis_fuzz::trace(&format!(
                "envelope: crafted plaintext opened, inner {:?}",
                opened.inner
            ));
            assert_eq!(opened.payload, payload);
            assert_eq!(opened.version, Some(E2eVersion::V1));
        }
        (Err(_), None) => {}
        (opened, expected) => panic!("open gave {opened:?}, plaintext says {expected:?}"),
    }
}

fn raw(pair: &Pair, value: Value) {
    // The broker's side: an envelope and its outer signature over the blob.
    if let Ok(envelope) = serde_json::from_value::<MessageEnvelope>(value.clone()) {
        let fields = SignedFields {
            session_id: &envelope.session_id,
            sender_agent_id: &envelope.sender_agent_id,
            nonce: &envelope.nonce,
            timestamp: envelope.timestamp,
            client_seq: envelope.client_seq,
        };
        let payload = Value::Object(envelope.payload.clone());
        if signature::verify(&pair.sender, &fields, &payload, &envelope.signature).is_ok() {
            cullis_fuzz::trace("envelope: outer signature verified");
        }
        if let Ok(blob) = serde_json::from_value::<CipherBlob>(payload) {
            let _ = envelope::open(
                &pair.recipient,
                &envelope.session_id,
                &envelope.sender_agent_id,
                envelope.client_seq,
                &blob,
                Some((&envelope.nonce, envelope.timestamp)),
                Some(&pair.sender),
            );
        }
    }
    // The recipient proxy's side: an inbox message (the session id comes from the request).
    let mut value = value;
    let session_id = match value
        .as_object_mut()
        .and_then(|map| map.remove("session_id"))
    {
        Some(Value::String(id)) => id,
        _ => String::new(),
    };
    let Ok(item) = serde_json::from_value::<InboxMessage>(value) else {
        return;
    };
    let Ok(blob) = serde_json::from_value::<CipherBlob>(Value::Object(item.payload.clone())) else {
        return;
    };
    let signed = item.signed_timestamp.map(|ts| (item.nonce.as_str(), ts));
    for sender in [Some(&pair.sender), None] {
        let opened = envelope::open(
            &pair.recipient,
            &session_id,
            &item.sender_agent_id,
            item.client_seq,
            &blob,
            signed,
            sender,
        );
        if let Ok(opened) = opened {
            cullis_fuzz::trace(&format!(
                "envelope: inbox message opened, inner {:?}",
                opened.inner
            ));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = split_selector(data);
    if selector & 1 == 1 {
        crafted(rest);
        return;
    }
    let pair = &PAIRS[usize::from(selector >> 1) % PAIRS.len()];
    if let Ok(value) = serde_json::from_slice::<Value>(rest) {
        raw(pair, value);
    }
});
