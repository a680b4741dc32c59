//! DPoP proofs (`shared/src/jose/dpop.rs`): every §3.3 check the broker runs on a `DPoP` header,
//! in order — JWS split, `crit`, `typ`, algorithm allow-list, header JWK (thumbprint and key
//! import), signature, PyJWT claim types, `jti`, `iat` window, `htm`, `htu` normalisation,
//! `ath`, server nonces — then the replay store (step 13).
//!
//! Raw mode (first byte even): the rest is a proof. Sign mode (odd): `<header>\n<claims>` signed
//! ES256 with the reference's DPoP test key, whose JWK the seed headers carry, so the claim
//! checks after the signature get fuzzed. Bits 1–2 of the first byte pick one of four request
//! expectations (with/without access token, nonces, http/https).
//!
//! Invariants: an accepted proof's `jkt` is the RFC 7638 thumbprint of its header JWK; the same
//! proof is accepted once by a replay store and refused as a replay the second time.
#![no_main]

use cullis_fuzz::{ready, split_selector, DPOP_KEY, PRESENTED_TOKEN};
use cullis_shared::jose::dpop::{self, DpopError, Expectations, IatWindow, ServerNonces};
use cullis_shared::jose::jws::CompactJws;
use cullis_shared::jose::{htu, jwk};
use cullis_shared::replay::MemoryReplayStore;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn expectations(variant: u8) -> Expectations<'static> {
    let window = IatWindow::default();
    match variant & 3 {
        0 => Expectations {
            htm: "POST",
            htu: "https://broker.example.com/v1/auth/token",
            access_token: None,
            nonces: Some(ServerNonces {
                current: "server-nonce-fixed-001",
                previous: Some("abc"),
            }),
            now: 1_700_000_000.0,
            iat_window: window,
        },
        1 => Expectations {
            htm: "GET",
            htu: "https://broker.example.com/v1/sessions/abc",
            access_token: Some(PRESENTED_TOKEN),
            nonces: Some(ServerNonces {
                current: "server-nonce-fixed-002",
                previous: None,
            }),
            now: 1_700_000_060.0,
            iat_window: window,
        },
        2 => Expectations {
            htm: "GET",
            htu: "https://broker.example.com/v1/broker/ws",
            access_token: Some(PRESENTED_TOKEN),
            nonces: None,
            now: 1_700_000_000.5,
            iat_window: window,
        },
        _ => Expectations {
            htm: "POST",
            htu: "http://127.0.0.1:8000/v1/auth/token",
            access_token: None,
            nonces: None,
            now: 1_700_000_000.0,
            iat_window: window,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = split_selector(data);
    let Some(proof) = cullis_fuzz::compact_token(selector, rest, &DPOP_KEY) else {
        return;
    };
    let proof = proof.as_ref();
    let expect = expectations(selector >> 1);
    let checked = dpop::check(proof, &expect);
    if let Ok(checked) = &checked {
        cullis_fuzz::trace("dpop: accepted");
        let jws = CompactJws::parse(proof).expect("an accepted proof parses");
        let header_jwk = jws.header["jwk"]
            .as_object()
            .expect("accepted proofs carry a JWK");
        assert_eq!(Ok(checked.jkt.clone()), jwk::thumbprint(header_jwk));
        let claims = jws
            .claims_unverified()
            .expect("accepted claims are an object");
        let proof_htu = claims["htu"].as_str().expect("accepted htu is a string");
        assert_eq!(htu::normalize(proof_htu), htu::normalize(expect.htu));
        assert!(!checked.jti.is_empty());
        assert!(matches!(claims.get("jti"), Some(Value::String(_))));
        let store = MemoryReplayStore::new();
        assert_eq!(
            ready(dpop::verify(proof, &expect, &store)).as_ref(),
            Ok(&checked.jkt)
        );
        assert_eq!(
            ready(dpop::verify(proof, &expect, &store)),
            Err(DpopError::Replay)
        );
    }
    // The htu normaliser sees the raw text too (both sides of the comparison are untrusted
    // once BROKER_PUBLIC_URL is unset: the Host header builds the expected URL).
    if let Some(text) = cullis_fuzz::text(rest) {
        let normal = htu::normalize(text);
        assert!(htu::matches(text, text));
        let _ = htu::expected(None, "https", text, "/v1/broker/ws");
        let _ = normal;
    }
});
