//! Compact JWS (`shared/src/jose/jws.rs`): split, header and payload JSON, the algorithm
//! allow-list, `crit`, signature verification under keys of every fitting and unfitting type,
//! and PyJWT's time rules on the claims.
//!
//! Raw mode (first byte even): the rest is a token. Sign mode (odd): the rest is
//! `<header>\n<claims>`, signed ES256 by the broker key, so a well-formed header with
//! `"alg":"ES256"` verifies and the claims checks run.
//!
//! Invariants: a token verifies under at most one of two distinct P-256 keys; in sign mode a
//! JWS whose header names ES256 verifies under the signing key exactly when its claims are a
//! JSON object, and never under an RSA key or another algorithm.
#![no_main]

use cullis_fuzz::{split_selector, BROKER_KEY, DPOP_KEY, NOW};
use cullis_shared::jose::jws::{CompactJws, JwsAlg, JwsError, TimeRules};
use cullis_shared::keys::{KeyType, PrivateKey};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static P384: LazyLock<PrivateKey> =
    LazyLock::new(|| PrivateKey::generate(KeyType::EcP384).expect("P-384 key"));
static RSA: LazyLock<PrivateKey> =
    LazyLock::new(|| PrivateKey::generate(KeyType::Rsa2048).expect("RSA key"));

const ALGS: [JwsAlg; 4] = [JwsAlg::ES256, JwsAlg::ES384, JwsAlg::RS256, JwsAlg::PS256];

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = split_selector(data);
    let Some(token) = cullis_fuzz::compact_token(selector, rest, &BROKER_KEY) else {
        return;
    };
    let token = token.as_ref();
    let Ok(jws) = CompactJws::parse(token) else {
        return;
    };
    let alg = jws.alg();
    let critical = jws.reject_critical();
    let unverified = jws.claims_unverified();
    let keys = [&*BROKER_KEY, &*DPOP_KEY, &*P384, &*RSA];
    let mut verified_under = 0;
    for key in keys {
        for candidate in ALGS {
            let result = jws.verify(candidate, key.public_key());
            if !candidate.fits(key.public_key()) {
                assert_eq!(result, Err(JwsError::AlgorithmMismatch));
            }
            if let Ok(claims) = &result {
                cullis_fuzz::trace("jws: verified");
                verified_under += 1;
                assert_eq!(
                    Ok(claims),
                    unverified.as_ref(),
                    "verified claims are the payload"
                );
                for rules in [
                    TimeRules {
                        require_exp: true,
                        leeway_secs: 0,
                        max_iat_skew_secs: Some(5),
                    },
                    TimeRules {
                        require_exp: false,
                        leeway_secs: 60,
                        max_iat_skew_secs: None,
                    },
                ] {
                    let _ = rules.check(claims, NOW);
                }
            }
        }
    }
    assert!(
        verified_under <= 1,
        "one signature verified under {verified_under} key/alg pairs"
    );
    if selector & 1 == 1 && alg == Some(JwsAlg::ES256) {
        let expected = if unverified.is_ok() { 1 } else { 0 };
        assert_eq!(
            verified_under, expected,
            "sign mode: ES256 under the signing key only"
        );
        let _ = critical;
    }
});
