//! Vectors the reference set lacks (`tests/vectors/cullis_extra.json`), produced by an
//! independent implementation — Python's `json` and `cryptography` following the reference
//! algorithms (`gen_extra.py`): non-ASCII and float canonicalisation, E2E envelopes for P-256,
//! P-384 and RSA recipients, a PS256 DPoP proof, and the negative cases built from them.

use cullis_shared::encoding::canonical_json;
use cullis_shared::envelope::{self, CipherBlob, EnvelopeError, InnerSignature};
use cullis_shared::jose::dpop::{self, Expectations, IatWindow, ServerNonces};
use cullis_shared::keys::{PrivateKey, PublicKey};
use cullis_shared::signature::{self, SignatureError, SignedFields};
use serde_json::Value;

fn vectors(section: &str) -> Vec<Value> {
    let bundle: Value = serde_json::from_str(include_str!("vectors/cullis_extra.json")).unwrap();
    assert_eq!(bundle["$schema"], "cullis-test-vectors-v1");
    let list = bundle[section].as_array().unwrap().clone();
    assert!(!list.is_empty(), "{section}");
    list
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

#[test]
fn canonical_json_matches_python_json_dumps() {
    for vector in vectors("canonical_json") {
        let value: Value = serde_json::from_str(text(&vector["input_text"])).unwrap();
        assert_eq!(
            canonical_json::to_string(&value),
            text(&vector["expected_string"]),
            "{}",
            vector["name"]
        );
    }
}

struct Envelope {
    recipient: PrivateKey,
    sender: PublicKey,
    session_id: String,
    sender_agent_id: String,
    nonce: String,
    timestamp: i64,
    client_seq: Option<u64>,
    blob: CipherBlob,
    signature: String,
    vector: Value,
}

fn envelopes() -> Vec<Envelope> {
    vectors("envelopes")
        .into_iter()
        .map(|vector| Envelope {
            recipient: PrivateKey::from_pem(text(&vector["recipient_private_key_pem"])).unwrap(),
            sender: PublicKey::from_spki_pem(text(&vector["sender_public_key_pem"])).unwrap(),
            session_id: text(&vector["session_id"]).to_owned(),
            sender_agent_id: text(&vector["sender_agent_id"]).to_owned(),
            nonce: text(&vector["nonce"]).to_owned(),
            timestamp: vector["timestamp"].as_i64().unwrap(),
            client_seq: vector["client_seq"].as_u64(),
            blob: serde_json::from_value(vector["payload"].clone()).unwrap(),
            signature: text(&vector["signature"]).to_owned(),
            vector,
        })
        .collect()
}

impl Envelope {
    fn fields(&self) -> SignedFields<'_> {
        SignedFields {
            session_id: &self.session_id,
            sender_agent_id: &self.sender_agent_id,
            nonce: &self.nonce,
            timestamp: self.timestamp,
            client_seq: self.client_seq,
        }
    }

    fn open(&self, blob: &CipherBlob, session_id: &str) -> Result<envelope::Opened, EnvelopeError> {
        envelope::open(
            &self.recipient,
            session_id,
            &self.sender_agent_id,
            self.client_seq,
            blob,
            Some((&self.nonce, self.timestamp)),
            Some(&self.sender),
        )
    }
}

#[test]
fn python_envelopes_pass_the_broker_check_and_open_with_verified_inner_signatures() {
    for envelope in envelopes() {
        let name = &envelope.vector["name"];
        // What the broker does: verify the outer signature over the blob as received.
        signature::verify(
            &envelope.sender,
            &envelope.fields(),
            &envelope.vector["payload"],
            &envelope.signature,
        )
        .unwrap();
        let opened = envelope.open(&envelope.blob, &envelope.session_id).unwrap();
        assert_eq!(
            opened.payload, envelope.vector["expected_payload"],
            "{name}"
        );
        assert_eq!(
            opened.inner_signature,
            text(&envelope.vector["expected_inner_signature"])
        );
        assert_eq!(opened.inner, InnerSignature::Verified, "{name}");
    }
}

#[test]
fn tampered_python_envelopes_are_refused() {
    for envelope in envelopes() {
        // Outer signature over a modified blob (M-11).
        let mut tampered = envelope.vector["payload"].clone();
        tampered["iv"] = Value::String("AAAAAAAAAAAAAAAA".into());
        assert_eq!(
            signature::verify(
                &envelope.sender,
                &envelope.fields(),
                &tampered,
                &envelope.signature
            ),
            Err(SignatureError::Invalid)
        );
        // Opening with a different session id in the AAD (client-side C check).
        assert_eq!(
            envelope
                .open(&envelope.blob, "another-session")
                .unwrap_err(),
            EnvelopeError::Decryption
        );
        // Opening with a changed signing timestamp reports the inner signature as invalid.
        let opened = envelope::open(
            &envelope.recipient,
            &envelope.session_id,
            &envelope.sender_agent_id,
            envelope.client_seq,
            &envelope.blob,
            Some((&envelope.nonce, envelope.timestamp + 1)),
            Some(&envelope.sender),
        )
        .unwrap();
        assert_eq!(opened.inner, InnerSignature::Invalid);
    }
}

#[test]
fn python_ps256_dpop_proof_verifies_and_tampering_fails() {
    for vector in vectors("dpop") {
        let claims = &vector["expected_claims"];
        let expect = Expectations {
            htm: text(&claims["htm"]),
            htu: text(&claims["htu"]),
            access_token: None,
            nonces: Some(ServerNonces {
                current: text(&claims["nonce"]),
                previous: None,
            }),
            now: claims["iat"].as_f64().unwrap(),
            iat_window: IatWindow::default(),
        };
        let proof = text(&vector["proof_jwt"]);
        assert_eq!(
            dpop::check(proof, &expect).unwrap().jkt,
            text(&vector["expected_jkt"])
        );
        let (input, sig) = proof.rsplit_once('.').unwrap();
        let flipped = match sig.strip_prefix('A') {
            Some(rest) => format!("B{rest}"),
            None => format!("A{}", &sig[1..]),
        };
        assert_eq!(
            dpop::check(&format!("{input}.{flipped}"), &expect)
                .unwrap_err()
                .to_string(),
            "Invalid DPoP proof: signature verification failed"
        );
        let wrong_nonce = Expectations {
            nonces: Some(ServerNonces {
                current: "other",
                previous: None,
            }),
            ..expect
        };
        assert_eq!(
            dpop::check(proof, &wrong_nonce).unwrap_err().to_string(),
            "use_dpop_nonce"
        );
    }
}
