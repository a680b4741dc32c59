//! Broker access tokens (`shared/src/jose/access_token.rs`): what every authenticated broker
//! request runs on its `Authorization: DPoP <token>` — the `kid` read the key ring does first
//! (`header_kid`), then `TokenVerifier::verify` (exact algorithm, `crit`, signature, `exp`/`iat`,
//! `iss`, `aud`, `token_type`, the claims struct) and `verify_transaction` for transaction
//! tokens, and the `cnf.jkt` binding.
//!
//! Raw mode (first byte even): the rest is a token. Sign mode (odd): `<header>\n<claims>` signed
//! ES256 with the fixture broker key, so the claim checks after the signature get fuzzed.
//!
//! Invariants: an accepted token has the broker's issuer and audience and has not expired; a
//! token is never both an access token and a transaction token; no token verifies under a
//! verifier for another key.
#![no_main]

use cullis_fuzz::{split_selector, BROKER_KEY, DPOP_KEY, NOW};
use cullis_shared::jose::access_token::{header_kid, TokenVerifier, AUDIENCE, ISSUER};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static VERIFIER: LazyLock<TokenVerifier> =
    LazyLock::new(|| TokenVerifier::new(BROKER_KEY.public_key().clone()).expect("P-256 verifier"));
static OTHER: LazyLock<TokenVerifier> =
    LazyLock::new(|| TokenVerifier::new(DPOP_KEY.public_key().clone()).expect("P-256 verifier"));

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = split_selector(data);
    let Some(token) = cullis_fuzz::compact_token(selector, rest, &BROKER_KEY) else {
        return;
    };
    let token = token.as_ref();
    let _ = header_kid(token);
    let access = VERIFIER.verify(token, NOW);
    let transaction = VERIFIER.verify_transaction(token, NOW);
    assert!(!(access.is_ok() && transaction.is_ok()));
    if let Ok(claims) = &access {
        cullis_fuzz::trace("access token: accepted");
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, AUDIENCE);
        assert!(claims.exp > NOW);
        let _ = claims.jkt();
        assert!(OTHER.verify(token, NOW).is_err());
    }
    if let Ok(claims) = &transaction {
        cullis_fuzz::trace("transaction token: accepted");
        assert_eq!(claims.iss, ISSUER);
        assert!(claims.exp > NOW);
        assert!(OTHER.verify_transaction(token, NOW).is_err());
    }
});
