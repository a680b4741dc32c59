//! X.509 / PEM input (`shared/src/pki/`): everything the broker takes as a certificate or key
//! from outside.
//!
//! First byte mod 4 picks the entry point:
//! * 0 — a DER leaf (the client assertion's `x5c[0]`): `AgentLeaf::parse`, then the login
//!   checks against the fixture org CA (`verify_chain`, SPIFFE SAN; bit 2 of the first byte:
//!   SAN required or not), plus every `Certificate` accessor and the PEM round trip;
//! * 1 — PEM text: the org CA upload / join check (`accept_org_ca`), then an accepted CA used as
//!   the org CA of the fixture agent's login, and the `rotate-cert` check
//!   (`verify_rotation_cert`) against the fixture CA;
//! * 2 — a public key (SPKI DER, and SPKI PEM when the bytes are text), as agents register
//!   them and E2E blobs carry them;
//! * 3 — a certificate serial as an admin types it (`normalize_serial_hex`).
//!
//! Invariants: a parsed certificate re-parses from its own PEM to the same DER; a login leaf
//! that verifies is the fixture agent; a parsed key re-imports from its own SPKI DER; serial
//! normalisation is idempotent.
#![no_main]

use cullis_fuzz::{split_selector, AGENT_CERT, AGENT_ID, NOW, ORG_CA, TRUST_DOMAIN};
use cullis_shared::keys::PublicKey;
use cullis_shared::pki::cert::{normalize_serial_hex, Certificate};
use cullis_shared::pki::{accept_org_ca, verify_rotation_cert, AgentLeaf};
use libfuzzer_sys::fuzz_target;

fn inspect(cert: &Certificate) {
    let again = Certificate::from_pem(&cert.to_pem()).expect("own PEM re-parses");
    assert_eq!(again.der(), cert.der());
    assert_eq!(cert.thumbprint().len(), 64);
    assert_eq!(
        normalize_serial_hex(cert.serial_hex()).as_deref(),
        Ok(cert.serial_hex())
    );
    let _ = (cert.common_name(), cert.organization(), cert.uri_sans());
    let _ = cert.spiffe_uris().count();
    let _ = (cert.not_before(), cert.not_after(), cert.is_valid_at(NOW));
    let _ = (
        cert.is_ca(),
        cert.allows_client_auth(),
        cert.key_usage(),
        cert.subject_key_id(),
    );
    let _ = (
        cert.signature_algorithm(),
        cert.signature_hash(),
        cert.key_description(),
    );
    let _ = cert.verify_signed_by(ORG_CA.public_key().as_ref().expect("fixture CA key"));
    if let Ok(key) = cert.public_key() {
        assert_eq!(PublicKey::from_spki_der(key.spki_der()).as_ref(), Ok(&key));
        // As an issuer: does it claim to have signed the fixture leaf?
        assert!(AGENT_CERT.verify_signed_by(&key).is_err() || key == ORG_CA.public_key().unwrap());
    }
}

fn der_leaf(der: &[u8], require_spiffe_san: bool) {
    if let Ok(cert) = Certificate::from_der(der) {
        inspect(&cert);
    }
    let Ok(leaf) = AgentLeaf::parse(der) else {
        return;
    };
    let _ = (leaf.agent_id(), leaf.org_id());
    let _ = leaf.expected_spiffe_id(TRUST_DOMAIN);
    let _ = leaf.check_spiffe_san(TRUST_DOMAIN, require_spiffe_san);
    if let Ok(agent) = leaf.verify(&ORG_CA, NOW, TRUST_DOMAIN, require_spiffe_san) {
        cullis_fuzz::trace("x509: login leaf verified");
        assert_eq!(agent.certificate.der(), AGENT_CERT.der());
        assert_eq!(agent.agent_id, AGENT_ID);
    }
}

fn pem(text: &str) {
    if let Ok(cert) = Certificate::from_pem(text) {
        inspect(&cert);
    }
    if let Ok(ca) = accept_org_ca(text, NOW) {
        cullis_fuzz::trace("x509: org CA accepted");
        assert!(ca.is_ca() && ca.is_valid_at(NOW));
        let leaf = AgentLeaf::parse(AGENT_CERT.der()).expect("fixture leaf");
        let _ = leaf.verify(&ca, NOW, TRUST_DOMAIN, true);
    }
    if let Ok(cert) = verify_rotation_cert(text, AGENT_ID, &ORG_CA, NOW) {
        assert_eq!(cert.common_name(), Some(AGENT_ID));
        assert!(!cert.is_ca());
    }
    for error in [accept_org_ca(text, NOW).err()].into_iter().flatten() {
        let _ = (error.upload_detail(), error.join_detail());
    }
}

fn public_key(bytes: &[u8]) {
    if let Ok(key) = PublicKey::from_spki_der(bytes) {
        assert_eq!(PublicKey::from_spki_der(key.spki_der()).as_ref(), Ok(&key));
        assert_eq!(
            PublicKey::from_spki_pem(&key.to_spki_pem()).as_ref(),
            Ok(&key)
        );
        let _ = (key.kind(), key.rsa_components(), key.ec_coordinates());
    }
    if let Some(text) = cullis_fuzz::text(bytes) {
        if let Ok(key) = PublicKey::from_spki_pem(text) {
            assert_eq!(PublicKey::from_spki_der(key.spki_der()).as_ref(), Ok(&key));
        }
    }
}

fn serial(text: &str) {
    if let Ok(normal) = normalize_serial_hex(text) {
        assert_eq!(
            normalize_serial_hex(&normal).as_deref(),
            Ok(normal.as_str())
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = split_selector(data);
    match selector % 4 {
        0 => der_leaf(rest, selector & 4 == 0),
        1 => {
            if let Some(text) = cullis_fuzz::text(rest) {
                pem(text);
            }
        }
        2 => public_key(rest),
        _ => {
            if let Some(text) = cullis_fuzz::text(rest) {
                serial(text);
            }
        }
    }
});
