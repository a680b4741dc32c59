//! The Python reference's public test vectors (`tests/vectors/*.json`, copied into this crate
//! unchanged), run through `cullis-shared`: deterministic ones byte for byte, the others by
//! decrypting or verifying. Every vector in every file is run.

use cullis_shared::encoding::{b64, canonical_json};
use cullis_shared::envelope;
use cullis_shared::jose::{dpop, jwk, jws::CompactJws, jws::JwsAlg};
use cullis_shared::keys::{PrivateKey, PublicKey};
use cullis_shared::signature::{self, SignedFields};
use serde_json::Value;

fn bundle(text: &str, primitive: &str) -> Vec<Value> {
    let bundle: Value = serde_json::from_str(text).unwrap();
    assert_eq!(bundle["$schema"], "cullis-test-vectors-v1");
    assert_eq!(bundle["primitive"], primitive);
    let vectors = bundle["vectors"].as_array().unwrap().clone();
    assert!(!vectors.is_empty());
    for vector in &vectors {
        assert!(
            vector.get("version").is_some(),
            "every vector has a version"
        );
    }
    vectors
}

/// `*_b64` fields are base64url without padding.
fn bytes(value: &Value) -> Vec<u8> {
    b64::decode_url(value.as_str().unwrap()).unwrap()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

#[test]
fn canonical_json() {
    for vector in bundle(
        include_str!("vectors/canonical_json.json"),
        "canonical_json",
    ) {
        let canonical = canonical_json::to_string(&vector["input"]);
        assert_eq!(
            canonical.as_bytes(),
            bytes(&vector["expected_bytes_b64"]),
            "{}",
            vector["name"]
        );
        assert_eq!(canonical, text(&vector["expected_string"]));
    }
}

#[test]
fn jwk_thumbprint() {
    for vector in bundle(
        include_str!("vectors/jwk_thumbprint.json"),
        "jwk_thumbprint",
    ) {
        let thumbprint = jwk::thumbprint(vector["input"].as_object().unwrap()).unwrap();
        assert_eq!(
            thumbprint,
            text(&vector["expected_thumbprint"]),
            "{}",
            vector["name"]
        );
    }
}

fn client_seq(value: &Value) -> Option<u64> {
    value.as_u64()
}

#[test]
fn aad_canonicalization() {
    for vector in bundle(
        include_str!("vectors/aad_canonicalization.json"),
        "aad_canonicalization",
    ) {
        let input = &vector["input"];
        let aad = envelope::aad(
            text(&input["session_id"]),
            text(&input["sender_agent_id"]),
            client_seq(&input["client_seq"]),
        );
        assert_eq!(
            aad.as_bytes(),
            bytes(&vector["expected_aad_b64"]),
            "{}",
            vector["name"]
        );
        assert_eq!(aad, text(&vector["expected_aad_string"]));
    }
}

#[test]
fn signed_canonical() {
    for vector in bundle(
        include_str!("vectors/signed_canonical.json"),
        "signed_canonical",
    ) {
        let input = &vector["input"];
        let fields = SignedFields {
            session_id: text(&input["session_id"]),
            sender_agent_id: text(&input["sender_agent_id"]),
            nonce: text(&input["nonce"]),
            timestamp: input["timestamp"].as_i64().unwrap(),
            client_seq: client_seq(&input["client_seq"]),
        };
        let signing_string = signature::signing_string(&fields, &input["payload"]);
        assert_eq!(
            signing_string.as_bytes(),
            bytes(&vector["expected_canonical_b64"]),
            "{}",
            vector["name"]
        );
        assert_eq!(signing_string, text(&vector["expected_canonical_string"]));
    }
}

#[test]
fn aes_gcm_e2e() {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    for vector in bundle(include_str!("vectors/aes_gcm_e2e.json"), "aes_gcm_e2e") {
        let input = &vector["input"];
        let key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes(&input["key_b64"])).unwrap());
        let nonce: [u8; 12] = bytes(&input["nonce_b64"]).try_into().unwrap();
        let aad = bytes(&input["aad_b64"]);
        let mut data = bytes(&input["plaintext_b64"]);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut data,
        )
        .unwrap();
        assert_eq!(
            data,
            bytes(&vector["expected_ciphertext_b64"]),
            "{}",
            vector["name"]
        );
        let plaintext = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut data,
            )
            .unwrap();
        assert_eq!(plaintext, bytes(&input["plaintext_b64"]).as_slice());
        // The AAD recorded beside the vector is the one the E2E layer builds.
        if input.get("session_id").is_some() {
            let built = envelope::aad(
                text(&input["session_id"]),
                text(&input["sender_agent_id"]),
                client_seq(&input["client_seq"]),
            );
            assert_eq!(built.as_bytes(), aad.as_slice());
        }
    }
}

#[test]
fn dpop_proof() {
    for vector in bundle(include_str!("vectors/dpop_proof.json"), "dpop_proof") {
        let proof = text(&vector["proof_jwt"]);
        let jws = CompactJws::parse(proof).unwrap();
        assert_eq!(jws.header["typ"], "dpop+jwt");
        assert_eq!(jws.alg(), Some(JwsAlg::ES256));
        let header_jwk = jws.header["jwk"].as_object().unwrap();
        assert_eq!(
            jwk::thumbprint(header_jwk).unwrap(),
            text(&vector["expected_jkt"])
        );
        let key = jwk::public_key_from_jwk(header_jwk).unwrap();
        let claims = jws.verify(JwsAlg::ES256, &key).unwrap();
        for (name, expected) in vector["expected_claims"].as_object().unwrap() {
            assert_eq!(&claims[name], expected, "{} claim {name}", vector["name"]);
        }
        // The proof passes the broker's full check at its own time, and our proofs made with
        // the same key carry the same thumbprint.
        let expected = &vector["expected_claims"];
        let now = expected["iat"].as_f64().unwrap();
        let nonce = expected.get("nonce").and_then(Value::as_str);
        let checked = dpop::check(
            proof,
            &dpop::Expectations {
                htm: text(&expected["htm"]),
                htu: text(&expected["htu"]),
                access_token: None,
                nonces: nonce.map(|current| dpop::ServerNonces {
                    current,
                    previous: None,
                }),
                now,
                iat_window: dpop::IatWindow::default(),
            },
        )
        .unwrap();
        assert_eq!(checked.jkt, text(&vector["expected_jkt"]));
        if let Some(ath) = expected.get("ath") {
            assert_eq!(ath.as_str().unwrap().len(), 43);
        }
        let ours =
            dpop::DpopKey::new(PrivateKey::from_pem(text(&vector["private_key_pem"])).unwrap())
                .unwrap();
        assert_eq!(ours.jkt(), text(&vector["expected_jkt"]));
    }
}

#[test]
fn dpop_proof_ath_is_sha256_of_the_token() {
    let vectors = bundle(include_str!("vectors/dpop_proof.json"), "dpop_proof");
    let with_ath = vectors
        .iter()
        .find(|v| v["expected_claims"].get("ath").is_some())
        .unwrap();
    assert_eq!(
        dpop::access_token_hash("fake-access-token"),
        text(&with_ath["expected_claims"]["ath"])
    );
}

#[test]
fn rsa_oaep_wrap() {
    for vector in bundle(include_str!("vectors/rsa_oaep_wrap.json"), "rsa_oaep_wrap") {
        let key = PrivateKey::from_pem(text(&vector["private_key_pem"])).unwrap();
        let public = PublicKey::from_spki_pem(text(&vector["public_key_pem"])).unwrap();
        assert_eq!(key.public_key(), &public);
        let plaintext = key
            .rsa_oaep_decrypt(&bytes(&vector["ciphertext_b64"]))
            .unwrap();
        assert_eq!(
            plaintext.as_slice(),
            bytes(&vector["expected_plaintext_b64"]),
            "{}",
            vector["name"]
        );
        // And our wrap unwraps with the reference key.
        let rewrapped = public.rsa_oaep_encrypt(&plaintext).unwrap();
        assert_eq!(key.rsa_oaep_decrypt(&rewrapped).unwrap(), plaintext);
    }
}

#[test]
fn rsa_pss_signature() {
    for vector in bundle(
        include_str!("vectors/rsa_pss_signature.json"),
        "rsa_pss_signature",
    ) {
        let public = PublicKey::from_spki_pem(text(&vector["public_key_pem"])).unwrap();
        let message = bytes(&vector["message_b64"]);
        let signature = bytes(&vector["signature_b64"]);
        public.verify_message(&message, &signature).unwrap();
        let mut altered = message.clone();
        altered.push(0);
        assert!(
            public.verify_message(&altered, &signature).is_err(),
            "{}",
            vector["name"]
        );
        // Our max-salt signature with the reference key verifies under the reference key.
        let key = PrivateKey::from_pem(text(&vector["private_key_pem"])).unwrap();
        public
            .verify_message(&message, &key.sign_message(&message).unwrap())
            .unwrap();
    }
}
