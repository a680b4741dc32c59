//! What the fuzz targets share: the fixed keys and certificates of `fixtures/` (so a token or
//! certificate that verified in one run verifies in the next), the fixed clock, and the
//! "sign mode" helper that lets the fuzzer write a JWS's header and claims while the target
//! supplies a valid signature — so the checks *after* signature verification get fuzzed too.
//!
//! Input layout shared by the JOSE targets: the first byte picks the mode (low bit: 0 = the rest
//! is a raw token, 1 = sign mode) and variants (higher bits); in sign mode the rest is
//! `<header bytes>\n<claims bytes>`, each base64url-encoded as-is (they need not be JSON).

use cullis_shared::encoding::b64;
use cullis_shared::keys::{HashAlg, PrivateKey, SignatureScheme};
use cullis_shared::pki::cert::Certificate;
use std::sync::LazyLock;

/// The fixed "now" of every target (2027-01-15T08:00:00Z), inside the fixtures' validity.
pub const NOW: i64 = 1_800_000_000;

/// The trust domain and agent of the fixture certificates.
pub const TRUST_DOMAIN: &str = "atn.local";
pub const AGENT_ID: &str = "acme::buyer";
pub const AGENT_SPIFFE: &str = "spiffe://atn.local/acme/buyer";

fn key(pem: &str) -> PrivateKey {
    PrivateKey::from_pem(pem).expect("fixture key parses")
}

/// The broker's access-token signing key (P-256, ES256).
pub static BROKER_KEY: LazyLock<PrivateKey> =
    LazyLock::new(|| key(include_str!("../fixtures/broker_token_key.pem")));

/// The organisation CA (P-256) and its key.
pub static ORG_CA: LazyLock<Certificate> = LazyLock::new(|| {
    Certificate::from_pem(include_str!("../fixtures/org_ca.pem")).expect("fixture CA parses")
});
pub static ORG_CA_KEY: LazyLock<PrivateKey> =
    LazyLock::new(|| key(include_str!("../fixtures/org_ca_key.pem")));

/// The agent `acme::buyer`: a leaf issued by [`ORG_CA`] with SPIFFE SAN and clientAuth.
pub static AGENT_CERT: LazyLock<Certificate> = LazyLock::new(|| {
    Certificate::from_pem(include_str!("../fixtures/agent.pem")).expect("fixture leaf parses")
});
pub static AGENT_KEY: LazyLock<PrivateKey> =
    LazyLock::new(|| key(include_str!("../fixtures/agent_key.pem")));

/// The reference's P-256 test key (`shared/tests/vectors/dpop_proof.json`), used as the DPoP
/// key: the vectors' proofs carry its JWK.
pub static DPOP_KEY: LazyLock<PrivateKey> = LazyLock::new(|| {
    let bundle: serde_json::Value =
        serde_json::from_str(include_str!("../../shared/tests/vectors/dpop_proof.json"))
            .expect("vector file is JSON");
    key(bundle["vectors"][0]["private_key_pem"]
        .as_str()
        .expect("vector has a key"))
});

/// The first byte of `data` (0 when empty) and the rest.
pub fn split_selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}

/// Sign mode: `<header>\n<claims>` (no newline: all header, empty claims) signed with `key`
/// under ES256 (P-256) or ES384 (P-384), as `b64url(header).b64url(claims).b64url(sig)`.
pub fn sign_compact(rest: &[u8], key: &PrivateKey) -> String {
    let (header, claims) = match rest.iter().position(|b| *b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let mut token = b64::url_unpadded(header);
    token.push('.');
    token.push_str(&b64::url_unpadded(claims));
    let scheme = match key.public_key().ec_coordinates() {
        Some((cullis_shared::keys::Curve::P384, _, _)) => {
            SignatureScheme::EcdsaFixed(HashAlg::Sha384)
        }
        _ => SignatureScheme::EcdsaFixed(HashAlg::Sha256),
    };
    let signature = key
        .sign(scheme, token.as_bytes())
        .expect("fixture keys sign");
    token.push('.');
    token.push_str(&b64::url_unpadded(&signature));
    token
}

/// `data` as text, or `None` when it is not UTF-8 (every token entry point takes `&str`).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The compact token a JOSE target checks: with the selector's low bit set, `rest` signed with
/// `key` ([`sign_compact`], so the checks after the signature are reached); otherwise `rest` as
/// the token text (`None` when it is not UTF-8).
pub fn compact_token<'a>(
    selector: u8,
    rest: &'a [u8],
    key: &PrivateKey,
) -> Option<std::borrow::Cow<'a, str>> {
    match selector & 1 == 1 {
        true => Some(std::borrow::Cow::Owned(sign_compact(rest, key))),
        false => text(rest).map(std::borrow::Cow::Borrowed),
    }
}

/// Polls a future that completes without waiting (the in-memory replay store's do).
pub fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("in-memory future was pending"),
    }
}

/// The access token the DPoP and WebSocket targets present (its hash is the proofs' `ath`).
pub const PRESENTED_TOKEN: &str = "fuzz-access-token";

static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("CULLIS_FUZZ_TRACE").is_some());

/// With `CULLIS_FUZZ_TRACE` set, prints how far an input got (to check that the seeds reach
/// the deep paths: `cargo fuzz run <target> corpus/<target> -- -runs=0`).
pub fn trace(stage: &str) {
    if *TRACE {
        eprintln!("cullis-fuzz: {stage}");
    }
}
