//! Certificate factories for the PKI tests: odd leaves rcgen can make directly (through the
//! CA's own parameters), and odder ones made by editing a decoded certificate and signing its
//! TBS again with the CA key (weak algorithms, foreign key types, RSA-1024).

use super::ca::{AgentCertSpec, OrgCa};
use super::cert::Certificate;
use crate::keys::{HashAlg, KeyKind, PrivateKey, PublicKey, SignatureScheme};
use der::asn1::{Any, BitString, ObjectIdentifier};
use der::{Decode, Encode};
use rcgen::CertificateParams;
use spki::AlgorithmIdentifierOwned;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn datetime(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// The standard agent certificate for `<ca org>::buyer` in `atn.local`, valid for a day,
/// after `tweak` has edited its rcgen parameters.
pub(crate) fn leaf_with(
    ca: &OrgCa,
    key: &PublicKey,
    tweak: impl FnOnce(&mut CertificateParams),
) -> Certificate {
    let now = now();
    let spec = AgentCertSpec {
        org_id: ca.org_id().unwrap_or("acme"),
        agent_name: "buyer",
        trust_domain: Some("atn.local"),
        subject_key: key,
        not_before: now - 60,
        not_after: now + 86_400,
    };
    let mut params = ca.agent_params(&spec).unwrap();
    tweak(&mut params);
    ca.sign(&params, key).unwrap()
}

/// The standard leaf with its SubjectPublicKeyInfo replaced by `spki_der`, signed again.
pub(crate) fn leaf_with_spki(ca: &OrgCa, spki_der: &[u8]) -> Certificate {
    let placeholder = PrivateKey::generate(crate::keys::KeyType::EcP256).unwrap();
    let mut x509 = leaf_with(ca, placeholder.public_key(), |_| {})
        .x509()
        .clone();
    x509.tbs_certificate.subject_public_key_info =
        spki::SubjectPublicKeyInfoOwned::from_der(spki_der).unwrap();
    resign(x509, ca.private_key(), None)
}

/// Signs `x509`'s TBS again with `key` (RSA: PKCS#1 v1.5 SHA-256; EC: DER ECDSA SHA-256), naming
/// `algorithm` (default: the one actually used) in both signature-algorithm fields.
pub(crate) fn resign(
    mut x509: x509_cert::Certificate,
    key: &PrivateKey,
    algorithm: Option<ObjectIdentifier>,
) -> Certificate {
    let (scheme, default_oid) = match key.public_key().kind() {
        KeyKind::Rsa { .. } => (
            SignatureScheme::RsaPkcs1(HashAlg::Sha256),
            "1.2.840.113549.1.1.11",
        ),
        KeyKind::Ec(_) => (
            SignatureScheme::EcdsaDer(HashAlg::Sha256),
            "1.2.840.10045.4.3.2",
        ),
    };
    let oid = algorithm.unwrap_or(ObjectIdentifier::new_unwrap(default_oid));
    // PKCS#1 algorithms carry NULL parameters; ECDSA and EdDSA none.
    let parameters = oid
        .to_string()
        .starts_with("1.2.840.113549.1.1.")
        .then_some(Any::null());
    set_algorithm(&mut x509, AlgorithmIdentifierOwned { oid, parameters });
    let tbs = x509.tbs_certificate.to_der().unwrap();
    let signature = key.sign(scheme, &tbs).unwrap();
    finish(x509, &signature)
}

/// Signs `x509`'s TBS again with an EC `key` as ecdsa-with-SHA512 (which neither rcgen nor
/// `keys` produce), using the curve crates' prehash signers.
pub(crate) fn resign_ecdsa_sha512(
    mut x509: x509_cert::Certificate,
    key: &PrivateKey,
) -> Certificate {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::pkcs8::DecodePrivateKey;
    use sha2::{Digest, Sha512};
    set_algorithm(
        &mut x509,
        AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4"),
            parameters: None,
        },
    );
    let tbs = x509.tbs_certificate.to_der().unwrap();
    let digest = Sha512::digest(&tbs);
    let signature = match key.public_key().kind() {
        KeyKind::Ec(crate::keys::Curve::P256) => {
            let signer = p256::ecdsa::SigningKey::from_pkcs8_der(key.pkcs8_der()).unwrap();
            let sig: p256::ecdsa::Signature = signer.sign_prehash(&digest).unwrap();
            sig.to_der().as_bytes().to_vec()
        }
        KeyKind::Ec(crate::keys::Curve::P384) => {
            let signer = p384::ecdsa::SigningKey::from_pkcs8_der(key.pkcs8_der()).unwrap();
            let sig: p384::ecdsa::Signature = signer.sign_prehash(&digest).unwrap();
            sig.to_der().as_bytes().to_vec()
        }
        other => panic!("no SHA-512 ECDSA signer for {other:?}"),
    };
    finish(x509, &signature)
}

fn set_algorithm(x509: &mut x509_cert::Certificate, algorithm: AlgorithmIdentifierOwned) {
    x509.tbs_certificate.signature = algorithm.clone();
    x509.signature_algorithm = algorithm;
}

fn finish(mut x509: x509_cert::Certificate, signature: &[u8]) -> Certificate {
    x509.signature = BitString::from_bytes(signature).unwrap();
    Certificate::from_der(&x509.to_der().unwrap()).unwrap()
}

/// A real secp256k1 public key as SPKI DER.
pub(crate) fn secp256k1_spki() -> Vec<u8> {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256K1_SHA256_ASN1_SIGNING};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256K1_SHA256_ASN1_SIGNING).unwrap();
    let der: PublicKeyX509Der = pair.public_key().as_der().unwrap();
    der.as_ref().to_vec()
}

/// A real Ed25519 public key as SPKI DER.
pub(crate) fn ed25519_spki() -> Vec<u8> {
    use rcgen::PublicKeyData;
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .unwrap()
        .subject_public_key_info()
}

/// A fresh RSA-1024 public key as SPKI DER (aws-lc-rs refuses to make one; the `rsa` crate can).
pub(crate) fn rsa1024_spki() -> Vec<u8> {
    Rsa1024::generate().spki_der()
}

/// A self-signed RSA-1024 CA certificate (BasicConstraints CA, pathLen 0), signed by rcgen
/// through the `rsa` crate.
pub(crate) fn rsa1024_ca_pem() -> String {
    let key = Rsa1024::generate();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "weak CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let now = now();
    params.not_before = datetime(now - 60);
    params.not_after = datetime(now + 86_400);
    params.self_signed(&key).unwrap().pem()
}

/// An RSA-1024 key usable as an rcgen signer.
struct Rsa1024 {
    key: rsa::RsaPrivateKey,
    pkcs1_public: Vec<u8>,
}

impl Rsa1024 {
    fn generate() -> Rsa1024 {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let key = rsa::RsaPrivateKey::new(&mut TestRng, 1024).unwrap();
        let pkcs1_public = key
            .to_public_key()
            .to_pkcs1_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        Rsa1024 { key, pkcs1_public }
    }

    fn spki_der(&self) -> Vec<u8> {
        use rsa::pkcs8::EncodePublicKey;
        self.key
            .to_public_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    }
}

impl rcgen::PublicKeyData for Rsa1024 {
    fn der_bytes(&self) -> &[u8] {
        &self.pkcs1_public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for Rsa1024 {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use sha2::{Digest, Sha256};
        self.key
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg))
            .map_err(|_| rcgen::Error::RingUnspecified)
    }
}

/// Randomness for the `rsa` crate from aws-lc-rs.
struct TestRng;

impl rsa::rand_core::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        aws_lc_rs::rand::fill(dest).unwrap();
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for TestRng {}
