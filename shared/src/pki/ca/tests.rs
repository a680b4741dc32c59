use super::*;
use crate::pki::cert::OID_CLIENT_AUTH;

#[test]
fn org_ca_profile() {
    let ca = OrgCa::generate("acme", DEFAULT_ORG_CA_KEY, 30).unwrap();
    let cert = ca.certificate();
    assert_eq!(cert.common_name(), Some("acme CA"));
    assert_eq!(cert.organization(), Some("acme"));
    assert_eq!(ca.org_id(), Some("acme"));
    let tbs = &cert.x509().tbs_certificate;
    assert_eq!(tbs.issuer, tbs.subject, "self-signed");
    // RFC 4514 prints the last RDN first: in the DER, CN comes first.
    assert_eq!(tbs.subject.to_string(), "O=acme,CN=acme CA");
    let bc = cert.basic_constraints().unwrap();
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let bc_ext = tbs
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .find(|ext| ext.extn_id.to_string() == "2.5.29.19")
        .unwrap();
    assert!(bc_ext.critical);
    let ku = cert.key_usage().unwrap();
    assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
    let ski = cert.subject_key_id().unwrap();
    assert_eq!(ski.len(), 20);
    let public_key = cert.public_key().unwrap();
    let spki = spki::SubjectPublicKeyInfoRef::from_der(public_key.spki_der()).unwrap();
    assert_eq!(ski, sha1_key_id(spki.subject_public_key.raw_bytes()));
    assert_eq!(cert.public_key().unwrap().kind(), KeyKind::Ec(Curve::P384));
    assert_eq!(cert.signature_hash(), Ok(crate::keys::HashAlg::Sha384));
    let now = unix_now();
    assert!(cert.not_before() <= now - 59 && cert.not_before() >= now - 70);
    assert!((cert.not_after() - (now + 30 * DAY)).abs() <= 5);
    assert_eq!(cert.verify_signed_by(ca.private_key().public_key()), Ok(()));
}

#[test]
fn org_ca_generation_validates_the_org_id() {
    assert!(matches!(
        OrgCa::generate("Acme", KeyType::EcP256, 30),
        Err(CaBuildError::InvalidId(IdError::InvalidOrgId(_)))
    ));
}

#[test]
fn agent_cert_profile_ec_and_rsa() {
    for (ca_type, leaf_type) in [
        (KeyType::EcP384, KeyType::EcP256),
        (KeyType::Rsa2048, KeyType::Rsa2048),
    ] {
        let ca = OrgCa::generate("acme", ca_type, 30).unwrap();
        let key = PrivateKey::generate(leaf_type).unwrap();
        let leaf = ca
            .issue_agent_cert("acme", "buyer", "atn.local", key.public_key(), 365)
            .unwrap();
        let tbs = &leaf.x509().tbs_certificate;
        assert_eq!(tbs.subject.to_string(), "O=acme,CN=acme::buyer");
        assert_eq!(tbs.issuer, ca.certificate().x509().tbs_certificate.subject);
        assert_eq!(leaf.uri_sans(), ["spiffe://atn.local/acme/buyer"]);
        let bc = leaf.basic_constraints().unwrap();
        assert!(!bc.ca);
        let bc_ext = tbs
            .extensions
            .as_ref()
            .unwrap()
            .iter()
            .find(|ext| ext.extn_id.to_string() == "2.5.29.19")
            .unwrap();
        assert!(bc_ext.critical);
        assert_eq!(leaf.extended_key_usage(), Some(&[OID_CLIENT_AUTH][..]));
        let ku = leaf.key_usage().unwrap();
        assert!(ku.digital_signature());
        assert_eq!(ku.key_encipherment(), matches!(leaf_type, KeyType::Rsa2048));
        assert!(!ku.key_cert_sign());
        // Serial: positive, at most 20 bytes.
        let serial = tbs.serial_number.as_bytes();
        assert!(serial.len() <= 20 && serial[0] & 0x80 == 0);
        assert!(!leaf.serial_hex().starts_with('0'));
        // AKI = CA SKI.
        let aki = tbs
            .extensions
            .as_ref()
            .unwrap()
            .iter()
            .find(|ext| ext.extn_id.to_string() == "2.5.29.35")
            .unwrap();
        let aki = x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(aki.extn_value.as_bytes())
            .unwrap();
        assert_eq!(
            aki.key_identifier.unwrap().as_bytes(),
            ca.certificate().subject_key_id().unwrap()
        );
        let now = unix_now();
        assert!(leaf.not_before() <= now - 59 && leaf.not_before() >= now - 70);
        assert!((leaf.not_after() - (now + 365 * DAY)).abs() <= 5);
        assert_eq!(&leaf.public_key().unwrap(), key.public_key());
        assert_eq!(
            leaf.verify_signed_by(ca.certificate().public_key().as_ref().unwrap()),
            Ok(())
        );
    }
}

#[test]
fn serials_are_random() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let a = ca
        .issue_agent_cert("acme", "a", "td", key.public_key(), 1)
        .unwrap();
    let b = ca
        .issue_agent_cert("acme", "a", "td", key.public_key(), 1)
        .unwrap();
    assert_ne!(a.serial_hex(), b.serial_hex());
    assert_ne!(a.thumbprint(), b.thumbprint());
}

#[test]
fn issuing_refuses_bad_names() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    assert_eq!(
        ca.issue_agent_cert("other", "buyer", "td", key.public_key(), 1)
            .unwrap_err(),
        CaBuildError::OrgMismatch {
            requested: "other".into(),
            ca: "acme".into()
        }
    );
    assert!(matches!(
        ca.issue_agent_cert("acme", "Buyer", "td", key.public_key(), 1),
        Err(CaBuildError::InvalidId(IdError::InvalidAgentName(_)))
    ));
    assert!(matches!(
        ca.issue_agent_cert("acme", "buyer", "TD", key.public_key(), 1),
        Err(CaBuildError::InvalidSpiffe(
            SpiffeError::InvalidTrustDomain(_)
        ))
    ));
    let spec = AgentCertSpec {
        org_id: "acme",
        agent_name: "buyer",
        trust_domain: None,
        subject_key: key.public_key(),
        not_before: 100,
        not_after: 50,
    };
    assert_eq!(ca.issue(&spec).unwrap_err(), CaBuildError::InvalidValidity);
}

#[test]
fn issue_without_trust_domain_has_no_san() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = ca
        .issue(&AgentCertSpec {
            org_id: "acme",
            agent_name: "buyer",
            trust_domain: None,
            subject_key: key.public_key(),
            not_before: 1_700_000_000,
            not_after: 1_700_086_400,
        })
        .unwrap();
    assert!(leaf.uri_sans().is_empty());
    assert_eq!(leaf.not_before(), 1_700_000_000);
    assert_eq!(leaf.not_after(), 1_700_086_400);
}

#[test]
fn load_round_trips_and_checks_the_pair() {
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let loaded = OrgCa::load(&ca.cert_pem(), &ca.key_pem()).unwrap();
    assert_eq!(loaded.certificate(), ca.certificate());
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = loaded
        .issue_agent_cert("acme", "buyer", "td", key.public_key(), 1)
        .unwrap();
    assert_eq!(leaf.verify_signed_by(ca.private_key().public_key()), Ok(()));

    let other = PrivateKey::generate(KeyType::EcP256).unwrap();
    assert_eq!(
        OrgCa::load(&ca.cert_pem(), &other.to_pkcs8_pem()).unwrap_err(),
        CaBuildError::KeyMismatch
    );
    // A leaf is not a CA.
    assert_eq!(
        OrgCa::load(&leaf.to_pem(), &key.to_pkcs8_pem()).unwrap_err(),
        CaBuildError::NotACa
    );
    assert!(matches!(
        OrgCa::load("nope", &ca.key_pem()),
        Err(CaBuildError::Certificate(CertError::NotPem))
    ));
}

#[test]
fn loaded_ca_with_printable_string_subject_chains_exactly() {
    // A CA whose subject uses PrintableString (as OpenSSL writes some names) and no SKI.
    let key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        DnValue::PrintableString("globex Intermediate CA".try_into().unwrap()),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "globex");
    params.distinguished_name.push(DnType::CountryName, "DE");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let der = params.self_signed(&rcgen_key_pair(&key).unwrap()).unwrap();
    // Drop the SKI rcgen always writes, so the AKI has to be derived from the key.
    let mut x509 = Certificate::from_der(der.der()).unwrap().x509().clone();
    x509.tbs_certificate
        .extensions
        .as_mut()
        .unwrap()
        .retain(|ext| ext.extn_id.to_string() != "2.5.29.14");
    let cert = crate::pki::testutil::resign(x509, &key, None);
    assert_eq!(cert.subject_key_id(), None);
    let ca = OrgCa::from_parts(cert, key).unwrap();
    let leaf_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = ca
        .issue_agent_cert("globex", "a", "td", leaf_key.public_key(), 1)
        .unwrap();
    assert_eq!(
        leaf.x509().tbs_certificate.issuer,
        ca.certificate().x509().tbs_certificate.subject
    );
    assert_eq!(
        leaf.x509().tbs_certificate.issuer.to_string(),
        "C=DE,O=globex,CN=globex Intermediate CA"
    );
    assert_eq!(leaf.verify_signed_by(ca.private_key().public_key()), Ok(()));
}

#[test]
fn subjects_rcgen_cannot_write_are_refused() {
    use x509_cert::attr::AttributeTypeAndValue;
    let ca = OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
    let mut x509 = ca.certificate().x509().clone();
    // Turn the two single-valued RDNs into one multi-valued RDN.
    let subject = &mut x509.tbs_certificate.subject.0;
    let o: AttributeTypeAndValue = subject[1].0.as_slice()[0].clone();
    subject[0].0.insert(o).unwrap();
    subject.truncate(1);
    let cert = crate::pki::testutil::resign(x509, ca.private_key(), None);
    let key = PrivateKey::from_pem(&ca.key_pem()).unwrap();
    assert_eq!(
        OrgCa::from_parts(cert, key).unwrap_err(),
        CaBuildError::UnsupportedSubject("multi-valued RDN".into())
    );
}

#[test]
fn broker_ca_profile() {
    let ca = BrokerCa::generate(BrokerCaKey::EcP384).unwrap();
    let cert = ca.certificate();
    let tbs = &cert.x509().tbs_certificate;
    assert_eq!(
        tbs.subject.to_string(),
        "O=Agent Trust Network,CN=Agent Trust Network Root CA"
    );
    assert_eq!(tbs.issuer, tbs.subject);
    assert_eq!(
        cert.basic_constraints().unwrap().path_len_constraint,
        Some(1)
    );
    assert!(cert.is_ca());
    assert!(cert.key_usage().is_none());
    assert!(cert.subject_key_id().is_some());
    assert!(!tbs
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .any(|ext| ext.extn_id.to_string() == "2.5.29.35"));
    let now = unix_now();
    assert!((cert.not_before() - now).abs() <= 5);
    assert!((cert.not_after() - cert.not_before() - 3650 * DAY).abs() <= 1);
    assert_eq!(cert.public_key().unwrap().kind(), KeyKind::Ec(Curve::P384));
    assert_eq!(cert.verify_signed_by(ca.private_key().public_key()), Ok(()));
    assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn broker_ca_rsa4096() {
    let ca = BrokerCa::generate(BrokerCaKey::Rsa4096).unwrap();
    let cert = ca.certificate();
    assert_eq!(
        cert.public_key().unwrap().kind(),
        KeyKind::Rsa { bits: 4096 }
    );
    assert_eq!(
        cert.signature_algorithm_oid().to_string(),
        "1.2.840.113549.1.1.11"
    );
    assert_eq!(cert.verify_signed_by(ca.private_key().public_key()), Ok(()));
    // 159-bit serial: at most 20 content bytes and positive.
    let serial = cert.x509().tbs_certificate.serial_number.as_bytes();
    assert!(serial.len() <= 20 && serial[0] & 0x80 == 0);
}

#[test]
fn random_serial_is_positive_159_bits() {
    for _ in 0..32 {
        let serial = random_serial().to_bytes();
        assert_eq!(serial.len(), 20);
        assert_eq!(serial[0] & 0x80, 0);
    }
}
