//! Canonical JSON (`shared/src/encoding/canonical_json.rs`): the input of every message
//! signature. Arbitrary bytes go through serde_json (as every body does) and, when they parse,
//! through the canonicaliser; the output must be ASCII, parse again to the same value, and be a
//! fixed point (canonicalising it again changes nothing) — a peer re-canonicalising what it
//! received must get the bytes that were signed. The message signing string and the lenient
//! base64 decoder (signatures, cipher-blob fields) get the same bytes.
#![no_main]

use cullis_shared::encoding::{b64, canonical_json};
use cullis_shared::signature::{signing_string, SignedFields};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Some(text) = cullis_fuzz::text(data) {
        let _ = b64::decode_lenient(text);
        let _ = b64::decode_url(text);
        let _ = b64::decode_std(text);
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let canonical = canonical_json::to_string(&value);
    assert!(
        canonical.is_ascii(),
        "canonical JSON is ASCII: {canonical:?}"
    );
    assert_eq!(canonical_json::to_vec(&value), canonical.as_bytes());
    let again: Value = serde_json::from_str(&canonical)
        .unwrap_or_else(|e| panic!("canonical output must parse ({e}): {canonical:?}"));
    assert_eq!(again, value, "canonical output parses to the same value");
    assert_eq!(
        canonical_json::to_string(&again),
        canonical,
        "canonicalisation is a fixed point"
    );
    let fields = SignedFields {
        session_id: "sess",
        sender_agent_id: "acme::buyer",
        nonce: "n",
        timestamp: 1,
        client_seq: Some(0),
    };
    assert!(signing_string(&fields, &value).ends_with(&canonical));
});
