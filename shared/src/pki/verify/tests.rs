use super::*;
use crate::keys::{KeyType, PrivateKey};
use crate::pki::ca::{AgentCertSpec, OrgCa};
use crate::pki::testutil::{self, leaf_with, now, resign};
use der::asn1::ObjectIdentifier;
use std::sync::OnceLock;

const TD: &str = "atn.local";

/// CAs are slow to make (RSA); share one of each kind across tests.
fn ca(kind: KeyType) -> &'static OrgCa {
    static P384: OnceLock<OrgCa> = OnceLock::new();
    static RSA: OnceLock<OrgCa> = OnceLock::new();
    static P256: OnceLock<OrgCa> = OnceLock::new();
    let cell = match kind {
        KeyType::EcP384 => &P384,
        KeyType::Rsa2048 => &RSA,
        KeyType::EcP256 => &P256,
        other => panic!("no shared CA for {other:?}"),
    };
    cell.get_or_init(|| OrgCa::generate("acme", kind, 30).unwrap())
}

fn agent_key(kind: KeyType) -> &'static PrivateKey {
    static P256: OnceLock<PrivateKey> = OnceLock::new();
    static RSA: OnceLock<PrivateKey> = OnceLock::new();
    let cell = match kind {
        KeyType::EcP256 => &P256,
        KeyType::Rsa2048 => &RSA,
        other => panic!("no shared agent key for {other:?}"),
    };
    cell.get_or_init(|| PrivateKey::generate(kind).unwrap())
}

fn p256() -> &'static PublicKey {
    agent_key(KeyType::EcP256).public_key()
}

fn check(leaf: &Certificate, org_ca: &OrgCa) -> Result<VerifiedAgent, LeafError> {
    verify_agent_leaf(leaf.der(), org_ca.certificate(), now(), TD, false)
}

fn check_strict(leaf: &Certificate, org_ca: &OrgCa) -> Result<VerifiedAgent, LeafError> {
    verify_agent_leaf(leaf.der(), org_ca.certificate(), now(), TD, true)
}

fn oid(dotted: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(dotted)
}

/// A copy of `cert` whose subject key is `spki_der`, self-signed again with `key` (the
/// signature no longer matches the new key, which none of these checks look at).
fn with_spki(cert: &Certificate, spki_der: &[u8], key: &PrivateKey) -> Certificate {
    let mut x509 = cert.x509().clone();
    x509.tbs_certificate.subject_public_key_info =
        spki::SubjectPublicKeyInfoOwned::from_der(spki_der).unwrap();
    resign(x509, key, None)
}

use der::Decode;

// --- accept_org_ca ---------------------------------------------------------------------------

#[test]
fn org_ca_of_each_supported_kind_is_accepted() {
    for kind in [KeyType::EcP384, KeyType::Rsa2048, KeyType::EcP256] {
        let org_ca = ca(kind);
        let accepted = accept_org_ca(&org_ca.cert_pem(), now()).unwrap();
        assert_eq!(&accepted, org_ca.certificate());
    }
}

#[test]
fn org_ca_that_is_not_a_ca_is_refused() {
    let leaf = ca(KeyType::EcP256)
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    let err = accept_org_ca(&leaf.to_pem(), now()).unwrap_err();
    assert_eq!(err, CaError::NotCa);
    assert_eq!(
        err.upload_detail(),
        "Certificate is not a CA (BasicConstraints CA=false)"
    );
    assert_eq!(
        err.join_detail(),
        "Submitted certificate is not a CA (BasicConstraints CA=false)"
    );
}

#[test]
fn org_ca_without_basic_constraints_is_a_parse_error() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.not_before = testutil::datetime(now() - 60);
    params.not_after = testutil::datetime(now() + 3600);
    let pem = params
        .self_signed(&rcgen::KeyPair::try_from(key.pkcs8_der()).unwrap())
        .unwrap()
        .pem();
    let err = accept_org_ca(&pem, now()).unwrap_err();
    assert_eq!(
        err.upload_detail(),
        "Invalid CA certificate: No <class 'cryptography.x509.extensions.BasicConstraints'> extension was found"
    );
    assert_eq!(
        err.join_detail(),
        "Invalid CA certificate: could not parse or validate the submitted PEM"
    );
}

#[test]
fn org_ca_rsa_1024_is_refused_with_its_size() {
    let err = accept_org_ca(&testutil::rsa1024_ca_pem(), now()).unwrap_err();
    assert_eq!(err, CaError::RsaKeyTooSmall(1024));
    assert_eq!(
        err.upload_detail(),
        "CA RSA key too small (1024 bits) — minimum 2048"
    );
    assert_eq!(
        err.join_detail(),
        "CA RSA key too small (1024 bits) — minimum 2048 required"
    );
}

#[test]
fn org_ca_validity_window_is_inclusive() {
    let t0 = 1_700_000_000;
    let org_ca = OrgCa::generate_valid_between("acme", KeyType::EcP256, t0, t0 + 1000).unwrap();
    let pem = org_ca.cert_pem();
    assert!(accept_org_ca(&pem, t0).is_ok());
    assert!(accept_org_ca(&pem, t0 + 1000).is_ok());
    for outside in [t0 - 1, t0 + 1001] {
        let err = accept_org_ca(&pem, outside).unwrap_err();
        assert_eq!(err, CaError::OutsideValidity);
        assert_eq!(
            err.upload_detail(),
            "CA certificate is expired or not yet valid"
        );
        assert_eq!(
            err.join_detail(),
            "CA certificate is expired or not yet valid"
        );
    }
}

#[test]
fn org_ca_garbage_is_invalid() {
    for garbage in [
        "",
        "not a pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ] {
        let err = accept_org_ca(garbage, now()).unwrap_err();
        assert!(matches!(err, CaError::Invalid(_)), "{garbage:?}");
        assert!(err.upload_detail().starts_with("Invalid CA certificate: "));
        assert_eq!(
            err.join_detail(),
            "Invalid CA certificate: could not parse or validate the submitted PEM"
        );
    }
}

#[test]
fn org_ca_with_a_key_cullis_cannot_use_is_refused() {
    let org_ca = ca(KeyType::EcP256);
    let k1 = with_spki(
        org_ca.certificate(),
        &testutil::secp256k1_spki(),
        org_ca.private_key(),
    );
    assert!(k1.is_ca());
    assert_eq!(
        accept_org_ca(&k1.to_pem(), now()).unwrap_err().upload_detail(),
        "Invalid CA certificate: unsupported CA key curve 'secp256k1' — use RSA (2048+) or EC P-256, P-384, or P-521"
    );
    let ed = with_spki(
        org_ca.certificate(),
        &testutil::ed25519_spki(),
        org_ca.private_key(),
    );
    assert!(matches!(
        accept_org_ca(&ed.to_pem(), now()),
        Err(CaError::Invalid(msg)) if msg.contains("'ed25519'")
    ));
}

// --- verify_agent_leaf: accepted leaves --------------------------------------------------------

#[test]
fn p256_and_rsa_leaves_under_p384_and_rsa_cas() {
    for ca_kind in [KeyType::EcP384, KeyType::Rsa2048] {
        for leaf_kind in [KeyType::EcP256, KeyType::Rsa2048] {
            let org_ca = ca(ca_kind);
            let key = agent_key(leaf_kind);
            let leaf = org_ca
                .issue_agent_cert("acme", "buyer", TD, key.public_key(), 1)
                .unwrap();
            let agent = check_strict(&leaf, org_ca)
                .unwrap_or_else(|err| panic!("{ca_kind:?}/{leaf_kind:?}: {err}"));
            assert_eq!(agent.agent_id, "acme::buyer");
            assert_eq!(agent.org_id, "acme");
            assert_eq!(agent.spiffe_id.as_str(), "spiffe://atn.local/acme/buyer");
            assert_eq!(agent.thumbprint, leaf.thumbprint());
            assert_eq!(agent.serial_hex, leaf.serial_hex());
            assert_eq!(&agent.public_key, key.public_key());
            assert_eq!(agent.not_after, leaf.not_after());
            assert_eq!(agent.certificate, leaf);
        }
    }
}

#[test]
fn staged_api_exposes_identity_before_the_chain() {
    let leaf = ca(KeyType::EcP256)
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    let parsed = AgentLeaf::parse(leaf.der()).unwrap();
    assert_eq!(
        (parsed.agent_id(), parsed.org_id()),
        ("acme::buyer", "acme")
    );
    assert_eq!(
        parsed.expected_spiffe_id(TD).unwrap().as_str(),
        "spiffe://atn.local/acme/buyer"
    );
    assert_eq!(
        parsed
            .verify_chain(ca(KeyType::EcP256).certificate(), now())
            .unwrap(),
        *p256()
    );
    assert_eq!(
        parsed.check_spiffe_san(TD, true).unwrap().as_str(),
        "spiffe://atn.local/acme/buyer"
    );
    assert_eq!(
        parsed
            .verify_chain(ca(KeyType::EcP384).certificate(), now())
            .unwrap_err(),
        LeafError::NotSignedByOrgCa
    );
}

// --- verify_agent_leaf: each refusal, in order ---------------------------------------------------

#[test]
fn t06_unparseable_leaf() {
    let org_ca = ca(KeyType::EcP256);
    for bytes in [&b""[..], b"\x30\x03\x02\x01\x01", b"not der"] {
        let err = verify_agent_leaf(bytes, org_ca.certificate(), now(), TD, false).unwrap_err();
        assert_eq!(err, LeafError::InvalidCertificate);
        assert_eq!(err.to_string(), "Invalid agent certificate");
        assert_eq!(err.http_status(), 401);
    }
}

#[test]
fn t07_missing_cn_or_o() {
    let org_ca = ca(KeyType::EcP256);
    let no_o = leaf_with(org_ca, p256(), |params| {
        params
            .distinguished_name
            .remove(rcgen::DnType::OrganizationName);
    });
    let no_cn = leaf_with(org_ca, p256(), |params| {
        params.distinguished_name.remove(rcgen::DnType::CommonName);
    });
    for leaf in [no_o, no_cn] {
        let err = check(&leaf, org_ca).unwrap_err();
        assert_eq!(err, LeafError::MissingCnOrO);
        assert_eq!(err.to_string(), "Cert missing CN or O");
    }
}

#[test]
fn t11_org_ca_that_is_not_a_ca() {
    let org_ca = ca(KeyType::EcP256);
    let leaf = org_ca
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    let err = verify_agent_leaf(leaf.der(), &leaf, now(), TD, false).unwrap_err();
    assert_eq!(err, LeafError::InvalidOrgCa);
    assert_eq!(
        err.to_string(),
        "Broker configuration error: invalid org CA certificate"
    );
    assert_eq!(err.http_status(), 500);
}

#[test]
fn t12_weak_signature_algorithms() {
    let org_ca = ca(KeyType::Rsa2048);
    let leaf = org_ca
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    for weak in [
        "1.2.840.113549.1.1.5", // sha1WithRSAEncryption
        "1.2.840.113549.1.1.4", // md5WithRSAEncryption
        "1.2.840.10045.4.1",    // ecdsa-with-SHA1
        "1.3.101.112",          // Ed25519
    ] {
        let patched = resign(leaf.x509().clone(), org_ca.private_key(), Some(oid(weak)));
        let err = check(&patched, org_ca).unwrap_err();
        assert_eq!(err, LeafError::WeakSignatureAlgorithm, "{weak}");
        assert_eq!(
            err.to_string(),
            "Agent certificate uses a weak signature algorithm — SHA-256 or stronger required"
        );
    }
    // The hash check comes before the signature check (§2.3 g before h).
    let sha1 = resign(
        leaf.x509().clone(),
        org_ca.private_key(),
        Some(oid("1.2.840.113549.1.1.5")),
    );
    assert_eq!(
        check(&sha1, ca(KeyType::EcP384)).unwrap_err(),
        LeafError::WeakSignatureAlgorithm
    );
    // SHA-384 / SHA-512 are fine.
    let sha512 = testutil::resign_ecdsa_sha512(
        ca(KeyType::EcP384)
            .issue_agent_cert("acme", "buyer", TD, p256(), 1)
            .unwrap()
            .x509()
            .clone(),
        ca(KeyType::EcP384).private_key(),
    );
    assert!(check(&sha512, ca(KeyType::EcP384)).is_ok());
}

#[test]
fn t13_leaf_signed_by_another_ca() {
    for kind in [KeyType::EcP256, KeyType::Rsa2048] {
        let org_ca = ca(kind);
        let rogue = OrgCa::generate("acme", kind, 30).unwrap();
        let leaf = rogue
            .issue_agent_cert("acme", "buyer", TD, p256(), 1)
            .unwrap();
        let err = check(&leaf, org_ca).unwrap_err();
        assert_eq!(err, LeafError::NotSignedByOrgCa, "{kind:?}");
        assert_eq!(
            err.to_string(),
            "Agent certificate not signed by the registered org CA"
        );
    }
    // ECDSA-signed leaf against an RSA org CA.
    let ec_leaf = ca(KeyType::EcP384)
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    assert_eq!(
        check(&ec_leaf, ca(KeyType::Rsa2048)).unwrap_err(),
        LeafError::NotSignedByOrgCa
    );
}

#[test]
fn t13_rsa_pss_signed_leaf_fails_the_chain_like_the_reference() {
    let org_ca = ca(KeyType::Rsa2048);
    let leaf = org_ca
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    let pss = resign(
        leaf.x509().clone(),
        org_ca.private_key(),
        Some(oid("1.2.840.113549.1.1.10")),
    );
    assert_eq!(
        check(&pss, org_ca).unwrap_err(),
        LeafError::NotSignedByOrgCa
    );
}

#[test]
fn t14_org_ca_key_that_cannot_verify() {
    let org_ca = ca(KeyType::EcP256);
    let k1_ca = with_spki(
        org_ca.certificate(),
        &testutil::secp256k1_spki(),
        org_ca.private_key(),
    );
    let leaf = org_ca
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    let err = verify_agent_leaf(leaf.der(), &k1_ca, now(), TD, false).unwrap_err();
    assert_eq!(err, LeafError::ChainVerificationFailed);
    assert_eq!(err.to_string(), "Certificate chain verification failed");
}

#[test]
fn leaf_that_is_a_ca_is_refused() {
    let org_ca = ca(KeyType::EcP256);
    let ca_leaf = leaf_with(org_ca, p256(), |params| {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    });
    assert!(ca_leaf.is_ca());
    let err = check(&ca_leaf, org_ca).unwrap_err();
    assert_eq!(err, LeafError::LeafIsCa);
    assert_eq!(
        err.to_string(),
        "Agent certificate must not be a CA certificate"
    );
    // No BasicConstraints at all is a leaf, and fine.
    let no_bc = leaf_with(org_ca, p256(), |params| params.is_ca = rcgen::IsCa::NoCa);
    assert!(no_bc.basic_constraints().is_none());
    assert!(check(&no_bc, org_ca).is_ok());
    // A CA leaf from another CA fails the chain first.
    assert_eq!(
        check(&ca_leaf, ca(KeyType::EcP384)).unwrap_err(),
        LeafError::NotSignedByOrgCa
    );
}

#[test]
fn t15_rsa_leaf_key_too_small() {
    let org_ca = ca(KeyType::Rsa2048);
    let leaf = testutil::leaf_with_spki(org_ca, &testutil::rsa1024_spki());
    let err = check(&leaf, org_ca).unwrap_err();
    assert_eq!(err, LeafError::RsaKeyTooSmall(1024));
    assert_eq!(
        err.to_string(),
        "Agent RSA key too small (1024 bits) — minimum 2048 required"
    );
}

#[test]
fn t16_ec_curve_not_allowed() {
    let org_ca = ca(KeyType::Rsa2048);
    let leaf = testutil::leaf_with_spki(org_ca, &testutil::secp256k1_spki());
    let err = check(&leaf, org_ca).unwrap_err();
    assert_eq!(err, LeafError::CurveNotAllowed("secp256k1".into()));
    assert_eq!(
        err.to_string(),
        "Agent EC curve 'secp256k1' not allowed — use P-256, P-384, or P-521"
    );
}

#[test]
fn other_leaf_key_types_are_refused() {
    let org_ca = ca(KeyType::Rsa2048);
    let leaf = testutil::leaf_with_spki(org_ca, &testutil::ed25519_spki());
    let err = check(&leaf, org_ca).unwrap_err();
    assert_eq!(err, LeafError::KeyTypeNotAllowed("ed25519".into()));
    assert_eq!(err.http_status(), 401);
}

#[test]
fn t17_eku_without_client_auth() {
    let org_ca = ca(KeyType::EcP256);
    let server_only = leaf_with(org_ca, p256(), |params| {
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    let err = check(&server_only, org_ca).unwrap_err();
    assert_eq!(err, LeafError::MissingClientAuth);
    assert_eq!(
        err.to_string(),
        "Agent certificate EKU does not include clientAuth (1.3.6.1.5.5.7.3.2)"
    );
    let no_eku = leaf_with(org_ca, p256(), |params| params.extended_key_usages.clear());
    assert!(check(&no_eku, org_ca).is_ok());
    let both = leaf_with(org_ca, p256(), |params| {
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
    });
    assert!(check(&both, org_ca).is_ok());
}

#[test]
fn t18_validity_window() {
    let org_ca = ca(KeyType::EcP256);
    let t0 = 1_700_000_000;
    let leaf = org_ca
        .issue(&AgentCertSpec {
            org_id: "acme",
            agent_name: "buyer",
            trust_domain: Some(TD),
            subject_key: p256(),
            not_before: t0,
            not_after: t0 + 3600,
        })
        .unwrap();
    let at = |when| verify_agent_leaf(leaf.der(), org_ca.certificate(), when, TD, false);
    assert!(at(t0).is_ok());
    assert!(at(t0 + 3600).is_ok());
    for outside in [t0 - 1, t0 + 3601, now()] {
        let err = at(outside).unwrap_err();
        assert_eq!(err, LeafError::OutsideValidity, "{outside}");
        assert_eq!(
            err.to_string(),
            "Agent certificate expired or not yet valid"
        );
    }
}

#[test]
fn t23_spiffe_san_of_another_trust_domain_or_agent() {
    let org_ca = ca(KeyType::EcP256);
    for (label, uris) in [
        ("other td", vec!["spiffe://other.domain/acme/buyer"]),
        ("other agent", vec!["spiffe://atn.local/acme/seller"]),
        ("case differs", vec!["spiffe://atn.local/acme/Buyer"]),
    ] {
        let leaf = leaf_with(org_ca, p256(), |params| {
            params.subject_alt_names = uris
                .iter()
                .map(|uri| rcgen::SanType::URI((*uri).try_into().unwrap()))
                .collect();
        });
        for require in [false, true] {
            let err = verify_agent_leaf(leaf.der(), org_ca.certificate(), now(), TD, require)
                .unwrap_err();
            assert_eq!(err, LeafError::SpiffeSanMismatch, "{label}");
            assert_eq!(
                err.to_string(),
                "SPIFFE ID in SAN does not match the registered agent"
            );
        }
    }
    // Several SPIFFE SANs are fine when one matches.
    let several = leaf_with(org_ca, p256(), |params| {
        params.subject_alt_names = vec![
            rcgen::SanType::URI("spiffe://other/acme/buyer".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://atn.local/acme/buyer".try_into().unwrap()),
        ];
    });
    assert!(check_strict(&several, org_ca).is_ok());
}

#[test]
fn t23b_missing_spiffe_san_only_when_required() {
    let org_ca = ca(KeyType::EcP256);
    let no_san = leaf_with(org_ca, p256(), |params| params.subject_alt_names.clear());
    let https_only = leaf_with(org_ca, p256(), |params| {
        params.subject_alt_names = vec![rcgen::SanType::URI(
            "https://acme.example/buyer".try_into().unwrap(),
        )];
    });
    for leaf in [no_san, https_only] {
        let err = check_strict(&leaf, org_ca).unwrap_err();
        assert_eq!(err, LeafError::MissingSpiffeSan);
        assert_eq!(
            err.to_string(),
            "Certificate missing SPIFFE SAN URI (require_spiffe_san=true)"
        );
        let agent = check(&leaf, org_ca).unwrap();
        assert_eq!(agent.spiffe_id.as_str(), "spiffe://atn.local/acme/buyer");
    }
}

#[test]
fn cn_that_is_not_an_agent_id() {
    let org_ca = ca(KeyType::EcP256);
    for cn in ["acme-buyer", "acme::bad name", "acme::a::b"] {
        let leaf = leaf_with(org_ca, p256(), |params| {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            params.subject_alt_names.clear();
        });
        assert_eq!(leaf.common_name(), Some(cn));
        let err = check(&leaf, org_ca).unwrap_err();
        assert_eq!(err, LeafError::InvalidAgentId, "{cn}");
        assert_eq!(err.http_status(), 401);
    }
}

#[test]
fn invalid_trust_domain_is_a_configuration_error() {
    let org_ca = ca(KeyType::EcP256);
    let leaf = org_ca
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    let err =
        verify_agent_leaf(leaf.der(), org_ca.certificate(), now(), "Bad_TD", false).unwrap_err();
    assert_eq!(err, LeafError::InvalidTrustDomain);
    assert_eq!(err.http_status(), 500);
}

#[test]
fn first_failure_wins_in_reference_order() {
    let org_ca = ca(KeyType::EcP256);
    // Expired, wrong EKU, wrong SAN and a CA: the CA rule (before i–k, p) wins.
    let many = leaf_with(org_ca, p256(), |params| {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names = vec![rcgen::SanType::URI("spiffe://x/y/z".try_into().unwrap())];
        params.not_before = testutil::datetime(1_000_000_000);
        params.not_after = testutil::datetime(1_000_000_100);
    });
    assert_eq!(check(&many, org_ca).unwrap_err(), LeafError::LeafIsCa);
    // EKU (j) before validity (k) before SAN (p).
    let eku_and_expired = leaf_with(org_ca, p256(), |params| {
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names = vec![rcgen::SanType::URI("spiffe://x/y/z".try_into().unwrap())];
        params.not_before = testutil::datetime(1_000_000_000);
        params.not_after = testutil::datetime(1_000_000_100);
    });
    assert_eq!(
        check(&eku_and_expired, org_ca).unwrap_err(),
        LeafError::MissingClientAuth
    );
    let expired_and_san = leaf_with(org_ca, p256(), |params| {
        params.subject_alt_names = vec![rcgen::SanType::URI("spiffe://x/y/z".try_into().unwrap())];
        params.not_before = testutil::datetime(1_000_000_000);
        params.not_after = testutil::datetime(1_000_000_100);
    });
    assert_eq!(
        check(&expired_and_san, org_ca).unwrap_err(),
        LeafError::OutsideValidity
    );
    // Key size (i) before EKU (j).
    let small_key = {
        let rsa_ca = ca(KeyType::Rsa2048);
        let base = leaf_with(rsa_ca, p256(), |params| {
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        });
        let mut x509 = base.x509().clone();
        x509.tbs_certificate.subject_public_key_info =
            spki::SubjectPublicKeyInfoOwned::from_der(&testutil::rsa1024_spki()).unwrap();
        resign(x509, rsa_ca.private_key(), None)
    };
    assert_eq!(
        check(&small_key, ca(KeyType::Rsa2048)).unwrap_err(),
        LeafError::RsaKeyTooSmall(1024)
    );
}

// --- verify_rotation_cert ----------------------------------------------------------------------

#[test]
fn rotation_accepts_new_certs_under_rsa_and_ec_cas() {
    for kind in [KeyType::Rsa2048, KeyType::EcP384] {
        let org_ca = ca(kind);
        let fresh = PrivateKey::generate(KeyType::EcP256).unwrap();
        let leaf = org_ca
            .issue_agent_cert("acme", "buyer", TD, fresh.public_key(), 1)
            .unwrap();
        let accepted =
            verify_rotation_cert(&leaf.to_pem(), "acme::buyer", org_ca.certificate(), now())
                .unwrap();
        assert_eq!(accepted.thumbprint(), leaf.thumbprint());
    }
}

#[test]
fn rotation_refusals() {
    let org_ca = ca(KeyType::Rsa2048);
    let rotate = |pem: &str, agent_id: &str, when: i64| {
        verify_rotation_cert(pem, agent_id, org_ca.certificate(), when)
    };
    let leaf = org_ca
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();

    let err = rotate("garbage", "acme::buyer", now()).unwrap_err();
    assert_eq!(err.to_string(), "Invalid PEM certificate");

    let err = rotate(&leaf.to_pem(), "acme::seller", now()).unwrap_err();
    assert_eq!(err.to_string(), "Certificate CN does not match agent_id");

    let rogue = OrgCa::generate("acme", KeyType::EcP256, 1).unwrap();
    let rogue_leaf = rogue
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    let err = rotate(&rogue_leaf.to_pem(), "acme::buyer", now()).unwrap_err();
    assert_eq!(err, RotationError::NotSignedByOrgCa);
    assert_eq!(
        err.to_string(),
        "Certificate not signed by the organization CA"
    );

    let pss = resign(
        leaf.x509().clone(),
        org_ca.private_key(),
        Some(oid("1.2.840.113549.1.1.10")),
    );
    assert_eq!(
        rotate(&pss.to_pem(), "acme::buyer", now()).unwrap_err(),
        RotationError::NotSignedByOrgCa
    );

    let sha1 = resign(
        leaf.x509().clone(),
        org_ca.private_key(),
        Some(oid("1.2.840.113549.1.1.5")),
    );
    let err = rotate(&sha1.to_pem(), "acme::buyer", now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Certificate chain verification failed: weak signature algorithm sha1WithRSAEncryption"
    );

    let ca_leaf = leaf_with(org_ca, p256(), |params| {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    });
    assert_eq!(
        rotate(&ca_leaf.to_pem(), "acme::buyer", now()).unwrap_err(),
        RotationError::LeafIsCa
    );

    let err = rotate(&leaf.to_pem(), "acme::buyer", leaf.not_after() + 1).unwrap_err();
    assert_eq!(err.to_string(), "Certificate is expired or not yet valid");
    assert!(rotate(&leaf.to_pem(), "acme::buyer", leaf.not_after()).is_ok());
}

#[test]
fn rotation_with_an_unusable_org_ca_key_is_a_chain_error() {
    let org_ca = ca(KeyType::EcP256);
    let k1_ca = with_spki(
        org_ca.certificate(),
        &testutil::secp256k1_spki(),
        org_ca.private_key(),
    );
    let leaf = org_ca
        .issue_agent_cert("acme", "buyer", TD, p256(), 1)
        .unwrap();
    let err = verify_rotation_cert(&leaf.to_pem(), "acme::buyer", &k1_ca, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Certificate chain verification failed: unsupported key type secp256k1"
    );
}
