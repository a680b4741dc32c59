use super::*;
use crate::keys::{KeyType, PrivateKey};
use crate::pki::ca::OrgCa;
use crate::pki::testutil::{self, resign};

#[test]
fn serial_normalisation() {
    assert_eq!(normalize_serial_hex("00BEEF").unwrap(), "beef");
    assert_eq!(normalize_serial_hex("0xBeEf").unwrap(), "beef");
    assert_eq!(normalize_serial_hex("0X00beef").unwrap(), "beef");
    assert_eq!(normalize_serial_hex("beef").unwrap(), "beef");
    assert_eq!(normalize_serial_hex("0000").unwrap(), "0");
    assert_eq!(normalize_serial_hex(" 0a ").unwrap(), "a");
    for bad in ["", "0x", "xyz", "12 34", "-1", "0xg1", "be:ef"] {
        assert_eq!(
            normalize_serial_hex(bad),
            Err(InvalidSerial(bad.into())),
            "{bad:?}"
        );
    }
}

#[test]
fn serial_hex_is_minimal_lowercase() {
    assert_eq!(serial_to_hex(&[0x00, 0xbe, 0xef]).unwrap(), "beef");
    assert_eq!(serial_to_hex(&[0x0a, 0xbc]).unwrap(), "abc");
    assert_eq!(serial_to_hex(&[0x00]).unwrap(), "0");
    assert!(serial_to_hex(&[0xff, 0x01]).is_err());
}

#[test]
fn certificate_serial_is_rendered_like_python() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    // DER `02 03 00 be ef`: the sign byte is not part of the rendering.
    let leaf = testutil::leaf_with(&ca, key.public_key(), |params| {
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0xbe, 0xef]));
    });
    assert_eq!(
        leaf.x509().tbs_certificate.serial_number.as_bytes(),
        [0x00, 0xbe, 0xef]
    );
    assert_eq!(leaf.serial_hex(), "beef");
    assert_eq!(normalize_serial_hex("00BEEF").unwrap(), leaf.serial_hex());
    // A leading zero nibble is dropped too: 0x0beef0 → "beef0".
    let leaf = testutil::leaf_with(&ca, key.public_key(), |params| {
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0b, 0xee, 0xf0]));
    });
    assert_eq!(leaf.serial_hex(), "beef0");
}

#[test]
fn thumbprint_is_sha256_of_the_der() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let cert = ca.certificate();
    assert_eq!(cert.thumbprint(), hex::encode(Sha256::digest(cert.der())));
    assert_eq!(cert.thumbprint().len(), 64);
    assert!(cert
        .thumbprint()
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
}

#[test]
fn pem_round_trip_and_format() {
    let ca = OrgCa::generate("acme", KeyType::EcP384, 30).unwrap();
    let pem = ca.certificate().to_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    assert!(pem.lines().all(|line| line.len() <= 64));
    let again = Certificate::from_pem(&pem).unwrap();
    assert_eq!(&again, ca.certificate());
    // Leading text, CRLF line ends and a second block are tolerated.
    let noisy = format!("subject=CN=acme\r\n{}{}", pem.replace('\n', "\r\n"), pem);
    assert_eq!(&Certificate::from_pem(&noisy).unwrap(), ca.certificate());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert_eq!(
        Certificate::from_pem("hello").unwrap_err(),
        CertError::NotPem
    );
    assert_eq!(
        Certificate::from_pem("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----")
            .unwrap_err(),
        CertError::InvalidBase64
    );
    assert!(matches!(
        Certificate::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
        Err(CertError::Malformed(_))
    ));
    assert!(Certificate::from_der(&[]).is_err());
    assert!(Certificate::from_der(&[0x30, 0x82, 0xff]).is_err());
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let mut trailing = ca.certificate().der().to_vec();
    trailing.push(0);
    assert!(Certificate::from_der(&trailing).is_err());
    for cut in [1, 10, 100, trailing.len() - 2] {
        assert!(Certificate::from_der(&trailing[..cut]).is_err(), "{cut}");
    }
}

#[test]
fn subject_and_extension_accessors() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = ca
        .issue_agent_cert("acme", "buyer", "atn.local", key.public_key(), 30)
        .unwrap();
    assert_eq!(leaf.common_name(), Some("acme::buyer"));
    assert_eq!(leaf.organization(), Some("acme"));
    assert_eq!(leaf.uri_sans(), ["spiffe://atn.local/acme/buyer"]);
    assert_eq!(
        leaf.spiffe_uris().collect::<Vec<_>>(),
        ["spiffe://atn.local/acme/buyer"]
    );
    assert!(!leaf.is_ca());
    assert_eq!(
        leaf.basic_constraints(),
        Some(&BasicConstraints {
            ca: false,
            path_len_constraint: None
        })
    );
    assert_eq!(leaf.extended_key_usage(), Some(&[OID_CLIENT_AUTH][..]));
    assert!(leaf.allows_client_auth());
    assert_eq!(leaf.signature_hash(), Ok(HashAlg::Sha256));
    assert_eq!(&leaf.public_key().unwrap(), key.public_key());
    assert_eq!(leaf.key_description(), KeyDescription::Ec(Ok(Curve::P256)));

    let server_only = testutil::leaf_with(&ca, key.public_key(), |params| {
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    assert_eq!(
        server_only.extended_key_usage(),
        Some(&[OID_SERVER_AUTH][..])
    );
    assert!(!server_only.allows_client_auth());
    let no_eku = testutil::leaf_with(&ca, key.public_key(), |params| {
        params.extended_key_usages.clear();
    });
    assert_eq!(no_eku.extended_key_usage(), None);
    assert!(no_eku.allows_client_auth());
}

#[test]
fn mixed_uri_sans_keep_only_spiffe_ones() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = testutil::leaf_with(&ca, key.public_key(), |params| {
        params.subject_alt_names = vec![
            rcgen::SanType::URI("https://example.com/x".try_into().unwrap()),
            rcgen::SanType::DnsName("example.com".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://td/a/b".try_into().unwrap()),
        ];
    });
    assert_eq!(leaf.uri_sans().len(), 2);
    assert_eq!(leaf.spiffe_uris().collect::<Vec<_>>(), ["spiffe://td/a/b"]);
}

#[test]
fn validity_bounds_are_inclusive() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = testutil::leaf_with(&ca, key.public_key(), |params| {
        params.not_before = testutil::datetime(1_700_000_000);
        params.not_after = testutil::datetime(1_700_000_100);
    });
    assert_eq!(leaf.not_before(), 1_700_000_000);
    assert_eq!(leaf.not_after(), 1_700_000_100);
    assert!(!leaf.is_valid_at(1_699_999_999));
    assert!(leaf.is_valid_at(1_700_000_000));
    assert!(leaf.is_valid_at(1_700_000_100));
    assert!(!leaf.is_valid_at(1_700_000_101));
}

#[test]
fn empty_cn_counts_as_absent_and_first_cn_wins() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = testutil::leaf_with(&ca, key.public_key(), |params| {
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "");
    });
    assert_eq!(leaf.common_name(), None);
    assert_eq!(leaf.organization(), None);

    // Two CN attributes (rcgen cannot write those): the first one is the identity.
    let leaf = testutil::leaf_with(&ca, key.public_key(), |_| {});
    let mut cert = leaf.x509().clone();
    let subject = &mut cert.tbs_certificate.subject.0;
    let mut second_cn = subject[0].clone();
    second_cn.0 = der::asn1::SetOfVec::try_from(vec![x509_cert::attr::AttributeTypeAndValue {
        oid: OID_CN,
        value: der::asn1::Any::new(Tag::Utf8String, b"acme::other".to_vec()).unwrap(),
    }])
    .unwrap();
    subject.push(second_cn);
    let twice = resign(cert, ca.private_key(), None);
    assert_eq!(twice.common_name(), Some("acme::buyer"));
}

#[test]
fn signature_algorithm_classification() {
    use SignatureFamily::*;
    let oid = ObjectIdentifier::new_unwrap;
    let cases = [
        ("1.2.840.113549.1.1.11", Ok((RsaPkcs1, HashAlg::Sha256))),
        ("1.2.840.113549.1.1.12", Ok((RsaPkcs1, HashAlg::Sha384))),
        ("1.2.840.113549.1.1.13", Ok((RsaPkcs1, HashAlg::Sha512))),
        ("1.2.840.10045.4.3.2", Ok((Ecdsa, HashAlg::Sha256))),
        ("1.2.840.10045.4.3.3", Ok((Ecdsa, HashAlg::Sha384))),
        ("1.2.840.10045.4.3.4", Ok((Ecdsa, HashAlg::Sha512))),
    ];
    for (dotted, expected) in cases {
        assert_eq!(
            classify_signature_algorithm(oid(dotted)),
            expected,
            "{dotted}"
        );
    }
    for weak in [
        "1.2.840.113549.1.1.5",
        "1.2.840.113549.1.1.4",
        "1.2.840.113549.1.1.14",
        "1.2.840.10045.4.1",
        "1.3.101.112",
        "1.2.3.4",
    ] {
        assert!(
            matches!(
                classify_signature_algorithm(oid(weak)),
                Err(SignatureAlgError::Weak(_))
            ),
            "{weak}"
        );
    }
    assert_eq!(
        classify_signature_algorithm(oid("1.2.840.113549.1.1.10")),
        Err(SignatureAlgError::Unsupported("RSASSA-PSS".into()))
    );
}

#[test]
fn mismatched_inner_and_outer_algorithm_is_malformed() {
    let ca = OrgCa::generate("acme", KeyType::Rsa2048, 30).unwrap();
    let mut cert = ca.certificate().x509().clone();
    cert.signature_algorithm.oid = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
    let der = cert.to_der().unwrap();
    assert!(matches!(
        Certificate::from_der(&der),
        Err(CertError::Malformed(_))
    ));
}

#[test]
fn duplicate_extension_is_malformed() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let mut cert = ca.certificate().x509().clone();
    let extensions = cert.tbs_certificate.extensions.as_mut().unwrap();
    let bc = extensions
        .iter()
        .find(|ext| ext.extn_id == OID_BASIC_CONSTRAINTS)
        .unwrap()
        .clone();
    extensions.push(bc);
    let der = cert.to_der().unwrap();
    assert!(matches!(
        Certificate::from_der(&der),
        Err(CertError::Malformed(msg)) if msg.contains("duplicate")
    ));
}

#[test]
fn verify_signed_by_checks_the_issuer() {
    for ca_type in [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048] {
        let ca = OrgCa::generate("acme", ca_type, 30).unwrap();
        let other = OrgCa::generate("acme", ca_type, 30).unwrap();
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let leaf = ca
            .issue_agent_cert("acme", "buyer", "td", key.public_key(), 1)
            .unwrap();
        let ca_key = ca.certificate().public_key().unwrap();
        assert_eq!(leaf.verify_signed_by(&ca_key), Ok(()), "{ca_type:?}");
        let other_key = other.certificate().public_key().unwrap();
        assert_eq!(
            leaf.verify_signed_by(&other_key),
            Err(ChainError::BadSignature),
            "{ca_type:?}"
        );
        // Self-signature of the CA itself.
        assert_eq!(ca.certificate().verify_signed_by(&ca_key), Ok(()));
    }
}

#[test]
fn tampered_tbs_fails_verification() {
    let ca = OrgCa::generate("acme", KeyType::Rsa2048, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = ca
        .issue_agent_cert("acme", "buyer", "td", key.public_key(), 1)
        .unwrap();
    let mut der = leaf.der().to_vec();
    let at = der
        .windows(5)
        .position(|w| w == b"buyer")
        .expect("CN bytes present");
    der[at] = b'B';
    let tampered = Certificate::from_der(&der).unwrap();
    assert_eq!(
        tampered.verify_signed_by(&ca.certificate().public_key().unwrap()),
        Err(ChainError::BadSignature)
    );
}

#[test]
fn ecdsa_family_mismatch_is_a_bad_signature() {
    let rsa_ca = OrgCa::generate("acme", KeyType::Rsa2048, 30).unwrap();
    let ec_ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = ec_ca
        .issue_agent_cert("acme", "buyer", "td", key.public_key(), 1)
        .unwrap();
    assert_eq!(
        leaf.verify_signed_by(&rsa_ca.certificate().public_key().unwrap()),
        Err(ChainError::BadSignature)
    );
}

#[test]
fn ecdsa_sha512_on_p256_and_p384_verifies() {
    for ca_type in [KeyType::EcP256, KeyType::EcP384] {
        let ca = OrgCa::generate("acme", ca_type, 30).unwrap();
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let leaf = ca
            .issue_agent_cert("acme", "buyer", "td", key.public_key(), 1)
            .unwrap();
        let resigned = testutil::resign_ecdsa_sha512(leaf.x509().clone(), ca.private_key());
        assert_eq!(resigned.signature_hash(), Ok(HashAlg::Sha512));
        let ca_key = ca.certificate().public_key().unwrap();
        assert_eq!(resigned.verify_signed_by(&ca_key), Ok(()), "{ca_type:?}");
        let other = PrivateKey::generate(ca_type).unwrap();
        assert_eq!(
            resigned.verify_signed_by(other.public_key()),
            Err(ChainError::BadSignature)
        );
    }
}

#[test]
fn p521_issuer_verifies() {
    let issuer = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&issuer)
        .unwrap();
    let cert = Certificate::from_der(cert.der()).unwrap();
    let key = cert.public_key().unwrap();
    assert_eq!(key.kind(), KeyKind::Ec(Curve::P521));
    assert_eq!(cert.signature_hash(), Ok(HashAlg::Sha512));
    assert_eq!(cert.verify_signed_by(&key), Ok(()));
}

#[test]
fn key_descriptions_name_unusual_keys() {
    let ca = OrgCa::generate("acme", KeyType::Rsa2048, 30).unwrap();
    let k1 = testutil::leaf_with_spki(&ca, &testutil::secp256k1_spki());
    assert_eq!(
        k1.key_description(),
        KeyDescription::Ec(Err("secp256k1".into()))
    );
    assert_eq!(
        k1.public_key().unwrap_err(),
        KeyError::Unsupported("secp256k1".into())
    );
    let ed = testutil::leaf_with_spki(&ca, &testutil::ed25519_spki());
    assert_eq!(
        ed.key_description(),
        KeyDescription::Other("ed25519".into())
    );
    let rsa1024 = testutil::leaf_with_spki(&ca, &testutil::rsa1024_spki());
    assert_eq!(
        rsa1024.key_description(),
        KeyDescription::Rsa { bits: 1024 }
    );
}

#[test]
fn tbs_der_is_the_signed_slice() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let cert = ca.certificate();
    assert_eq!(
        cert.tbs_der(),
        cert.x509().tbs_certificate.to_der().unwrap()
    );
    assert_eq!(
        first_inner_tlv(&[0x30, 0x03, 0x02, 0x01, 0x05]),
        Some(&[0x02, 0x01, 0x05][..])
    );
    assert_eq!(first_inner_tlv(&[0x30, 0x03, 0x02, 0x05]), None);
}

#[test]
fn directory_strings_decode() {
    assert_eq!(
        directory_string(Tag::Utf8String, "é".as_bytes()).unwrap(),
        "é"
    );
    assert_eq!(
        directory_string(Tag::PrintableString, b"abc").unwrap(),
        "abc"
    );
    assert_eq!(directory_string(Tag::TeletexString, &[0xe9]).unwrap(), "é");
    assert_eq!(
        directory_string(Tag::BmpString, &[0x00, 0x41, 0x00, 0xe9]).unwrap(),
        "Aé"
    );
    assert!(directory_string(Tag::BmpString, &[0x00]).is_err());
    assert!(directory_string(Tag::Utf8String, &[0xff]).is_err());
    assert!(directory_string(Tag::OctetString, b"x").is_err());
}
