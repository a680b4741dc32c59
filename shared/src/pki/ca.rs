//! Certificate authorities: an organisation's CA that issues agent certificates, and the broker
//! root CA that `generate_certs.py` makes (ref-auth-crypto §1.3).
//!
//! Certificates are written by rcgen and signed through rcgen's aws-lc-rs key pair; every issued
//! certificate is parsed back and checked (issuer name, subject key, signature) before it is
//! returned, so a CA loaded from PEM whose subject rcgen cannot reproduce fails loudly instead of
//! issuing certificates that do not chain.
//!
//! Key identifiers follow RFC 5280 method 1 (SHA-1 of the subjectPublicKey bits), as the
//! reference's `cryptography`-based generator writes them; leaves carry an AuthorityKeyIdentifier
//! equal to the CA's SubjectKeyIdentifier.

use super::cert::{CertError, Certificate};
use super::spiffe::{self, IdError, SpiffeError};
use crate::keys::{Curve, KeyError, KeyKind, KeyType, PrivateKey, PublicKey};
use der::Decode;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber, SignatureAlgorithm,
};
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// The org CA key type when the operator does not choose one.
pub const DEFAULT_ORG_CA_KEY: KeyType = KeyType::EcP384;
/// Org CA lifetime when the operator does not choose one (as the reference's org CA helper).
pub const DEFAULT_ORG_CA_DAYS: u32 = 1825;
/// Agent certificate lifetime when the caller does not choose one.
pub const DEFAULT_AGENT_CERT_DAYS: u32 = 365;
/// Broker root CA lifetime (ref-auth-crypto §1.3).
pub const BROKER_CA_DAYS: u32 = 3650;
/// Broker root CA subject CN / O (ref-auth-crypto §1.3).
pub const BROKER_CA_CN: &str = "Agent Trust Network Root CA";
pub const BROKER_CA_O: &str = "Agent Trust Network";

/// How far notBefore is set back from "now" on issued certificates, for clock skew.
const BACKDATE_SECONDS: i64 = 60;
const DAY: i64 = 86_400;

/// Why a CA could not be created, loaded or could not issue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaBuildError {
    #[error(transparent)]
    InvalidId(#[from] IdError),
    #[error(transparent)]
    InvalidSpiffe(#[from] SpiffeError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Certificate(#[from] CertError),
    #[error("the private key does not match the CA certificate")]
    KeyMismatch,
    #[error("the certificate is not a CA (BasicConstraints CA=true missing)")]
    NotACa,
    #[error("CA subject cannot be reproduced as an issuer name: {0}")]
    UnsupportedSubject(String),
    #[error("org_id {requested:?} does not match the CA organisation {ca:?}")]
    OrgMismatch { requested: String, ca: String },
    #[error("validity period is empty or out of range")]
    InvalidValidity,
    #[error("certificate generation failed: {0}")]
    Generation(String),
}

impl From<rcgen::Error> for CaBuildError {
    fn from(err: rcgen::Error) -> CaBuildError {
        CaBuildError::Generation(err.to_string())
    }
}

/// What to put in an agent certificate.
#[derive(Debug, Clone)]
pub struct AgentCertSpec<'a> {
    pub org_id: &'a str,
    pub agent_name: &'a str,
    /// The trust domain of the SPIFFE SAN; `None` issues a certificate without SAN (as the
    /// reference's test PKI does when no trust domain is given).
    pub trust_domain: Option<&'a str>,
    pub subject_key: &'a PublicKey,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// An organisation's CA: its certificate, its private key, and an rcgen issuer over both.
pub struct OrgCa {
    cert: Certificate,
    key: PrivateKey,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for OrgCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgCa").field("cert", &self.cert).finish()
    }
}

impl OrgCa {
    /// A fresh self-signed org CA: subject `CN=<org> CA, O=<org>`, BasicConstraints CA with
    /// pathLen 0 (critical), KeyUsage keyCertSign + cRLSign (critical), SubjectKeyIdentifier,
    /// valid from one minute ago for `validity_days`.
    pub fn generate(
        org_id: &str,
        key_type: KeyType,
        validity_days: u32,
    ) -> Result<OrgCa, CaBuildError> {
        let now = unix_now();
        OrgCa::generate_valid_between(
            org_id,
            key_type,
            now - BACKDATE_SECONDS,
            now + i64::from(validity_days) * DAY,
        )
    }

    /// As [`OrgCa::generate`] with an explicit validity window (Unix seconds).
    pub fn generate_valid_between(
        org_id: &str,
        key_type: KeyType,
        not_before: i64,
        not_after: i64,
    ) -> Result<OrgCa, CaBuildError> {
        spiffe::validate_org_id(org_id)?;
        let key = PrivateKey::generate(key_type)?;
        let mut params = ca_params(&format!("{org_id} CA"), org_id, 0, key.public_key())?;
        set_validity(&mut params, not_before, not_after)?;
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let der = params.self_signed(&rcgen_key_pair(&key)?)?.der().to_vec();
        OrgCa::from_parts(Certificate::from_der(&der)?, key)
    }

    /// Loads a CA from its certificate PEM and private-key PEM (PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<OrgCa, CaBuildError> {
        OrgCa::from_parts(
            Certificate::from_pem(cert_pem)?,
            PrivateKey::from_pem(key_pem)?,
        )
    }

    /// A CA from an already parsed certificate and key; checks that they match and that the
    /// certificate is a CA.
    pub fn from_parts(cert: Certificate, key: PrivateKey) -> Result<OrgCa, CaBuildError> {
        if !cert.is_ca() {
            return Err(CaBuildError::NotACa);
        }
        if !same_key(&cert.public_key()?, key.public_key()) {
            return Err(CaBuildError::KeyMismatch);
        }
        let subject_key = SubjectKey::new(key.public_key())?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen_name(&cert.x509().tbs_certificate.subject)?;
        params.key_identifier_method = KeyIdMethod::PreSpecified(match cert.subject_key_id() {
            Some(ski) => ski.to_vec(),
            None => sha1_key_id(&subject_key.key_bits),
        });
        let issuer = Issuer::new(params, rcgen_key_pair(&key)?);
        Ok(OrgCa { cert, key, issuer })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The CA private key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    /// The organisation named by the CA certificate's first O, if any.
    pub fn org_id(&self) -> Option<&str> {
        self.cert.organization()
    }

    /// The CA certificate as PEM (what an org uploads to the broker).
    pub fn cert_pem(&self) -> String {
        self.cert.to_pem()
    }

    /// The CA private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> Zeroizing<String> {
        self.key.to_pkcs8_pem()
    }

    /// Issues an agent certificate: subject `CN=<org>::<name>, O=<org>`, SAN URI
    /// `spiffe://<trust_domain>/<org>/<name>`, BasicConstraints CA:FALSE (critical), EKU
    /// clientAuth, KeyUsage digitalSignature (+ keyEncipherment for RSA keys), a random positive
    /// 159-bit serial, valid from one minute ago for `validity_days`.
    pub fn issue_agent_cert(
        &self,
        org_id: &str,
        agent_name: &str,
        trust_domain: &str,
        subject_key: &PublicKey,
        validity_days: u32,
    ) -> Result<Certificate, CaBuildError> {
        let now = unix_now();
        self.issue(&AgentCertSpec {
            org_id,
            agent_name,
            trust_domain: Some(trust_domain),
            subject_key,
            not_before: now - BACKDATE_SECONDS,
            not_after: now + i64::from(validity_days) * DAY,
        })
    }

    /// Issues an agent certificate exactly as `spec` says (see [`OrgCa::issue_agent_cert`]).
    /// `org_id` must equal the CA's O when the CA has one.
    pub fn issue(&self, spec: &AgentCertSpec<'_>) -> Result<Certificate, CaBuildError> {
        spiffe::validate_org_id(spec.org_id)?;
        spiffe::validate_agent_name(spec.agent_name)?;
        if let Some(ca_org) = self.org_id() {
            if ca_org != spec.org_id {
                return Err(CaBuildError::OrgMismatch {
                    requested: spec.org_id.to_owned(),
                    ca: ca_org.to_owned(),
                });
            }
        }
        let params = self.agent_params(spec)?;
        self.sign(&params, spec.subject_key)
    }

    /// The rcgen parameters of an agent certificate (tests tweak these to make odd ones).
    pub(crate) fn agent_params(
        &self,
        spec: &AgentCertSpec<'_>,
    ) -> Result<CertificateParams, CaBuildError> {
        let subject_key = SubjectKey::new(spec.subject_key)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("{}::{}", spec.org_id, spec.agent_name),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, spec.org_id);
        if let Some(trust_domain) = spec.trust_domain {
            let id = spiffe::SpiffeId::from_parts(trust_domain, &[spec.org_id, spec.agent_name])?;
            params.subject_alt_names =
                vec![SanType::URI(id.as_str().try_into().map_err(
                    |err: rcgen::Error| CaBuildError::Generation(err.to_string()),
                )?)];
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = match spec.subject_key.kind() {
            KeyKind::Rsa { .. } => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            KeyKind::Ec(_) => vec![KeyUsagePurpose::DigitalSignature],
        };
        params.serial_number = Some(random_serial());
        params.key_identifier_method =
            KeyIdMethod::PreSpecified(sha1_key_id(&subject_key.key_bits));
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, spec.not_before, spec.not_after)?;
        Ok(params)
    }

    /// Signs `params` for `subject_key` and checks the result chains to this CA.
    pub(crate) fn sign(
        &self,
        params: &CertificateParams,
        subject_key: &PublicKey,
    ) -> Result<Certificate, CaBuildError> {
        let der = params
            .signed_by(&SubjectKey::new(subject_key)?, &self.issuer)?
            .der()
            .to_vec();
        let cert = Certificate::from_der(&der)?;
        if cert.x509().tbs_certificate.issuer != self.cert.x509().tbs_certificate.subject {
            return Err(CaBuildError::UnsupportedSubject(
                "issued certificate's issuer differs from the CA subject".into(),
            ));
        }
        if !same_key(&cert.public_key()?, subject_key) {
            return Err(CaBuildError::Generation(
                "subject key was not preserved".into(),
            ));
        }
        cert.verify_signed_by(self.key.public_key())
            .map_err(|err| CaBuildError::Generation(err.to_string()))?;
        Ok(cert)
    }
}

/// Which key the broker root CA gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerCaKey {
    /// RSA-4096, as the reference's `generate_certs.py` (signs sha256WithRSAEncryption).
    Rsa4096,
    /// EC P-384 (signs ecdsa-with-SHA384).
    EcP384,
}

/// The broker root CA, as `generate_certs.py` makes it.
pub struct BrokerCa {
    cert: Certificate,
    key: PrivateKey,
}

impl std::fmt::Debug for BrokerCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerCa")
            .field("cert", &self.cert)
            .finish()
    }
}

impl BrokerCa {
    /// Subject = issuer = `CN=Agent Trust Network Root CA, O=Agent Trust Network`, random
    /// 159-bit serial, notBefore = now (no back-dating), notAfter = now + 3650 days,
    /// BasicConstraints CA pathLen 1 (critical), SubjectKeyIdentifier, no KeyUsage, no AKI.
    pub fn generate(key: BrokerCaKey) -> Result<BrokerCa, CaBuildError> {
        let key = PrivateKey::generate(match key {
            BrokerCaKey::Rsa4096 => KeyType::Rsa4096,
            BrokerCaKey::EcP384 => KeyType::EcP384,
        })?;
        let mut params = ca_params(BROKER_CA_CN, BROKER_CA_O, 1, key.public_key())?;
        let now = unix_now();
        set_validity(&mut params, now, now + i64::from(BROKER_CA_DAYS) * DAY)?;
        let der = params.self_signed(&rcgen_key_pair(&key)?)?.der().to_vec();
        Ok(BrokerCa {
            cert: Certificate::from_der(&der)?,
            key,
        })
    }

    /// The root certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The root private key (the broker's JWT signing key).
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    /// `certs/broker-ca.pem` content.
    pub fn cert_pem(&self) -> String {
        self.cert.to_pem()
    }

    /// `certs/broker-ca-key.pem` content, PKCS#8 (the reference writes PKCS#1 for RSA; both load).
    pub fn key_pem(&self) -> Zeroizing<String> {
        self.key.to_pkcs8_pem()
    }
}

/// Self-signed CA parameters shared by the org and broker CAs.
fn ca_params(
    common_name: &str,
    organization: &str,
    path_len: u8,
    key: &PublicKey,
) -> Result<CertificateParams, CaBuildError> {
    let subject_key = SubjectKey::new(key)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, organization);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.serial_number = Some(random_serial());
    params.key_identifier_method = KeyIdMethod::PreSpecified(sha1_key_id(&subject_key.key_bits));
    Ok(params)
}

fn set_validity(
    params: &mut CertificateParams,
    not_before: i64,
    not_after: i64,
) -> Result<(), CaBuildError> {
    if not_after < not_before {
        return Err(CaBuildError::InvalidValidity);
    }
    let at = |secs| {
        time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| CaBuildError::InvalidValidity)
    };
    params.not_before = at(not_before)?;
    params.not_after = at(not_after)?;
    Ok(())
}

/// 20 random bytes shifted right one bit: Python's `x509.random_serial_number()`.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 20];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    let mut carry = 0u8;
    for byte in bytes.iter_mut() {
        let next_carry = *byte & 1;
        *byte = (*byte >> 1) | (carry << 7);
        carry = next_carry;
    }
    SerialNumber::from_slice(&bytes)
}

/// RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING contents.
fn sha1_key_id(key_bits: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, key_bits)
        .as_ref()
        .to_vec()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// Same key material, whatever the SPKI encoding details.
fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    match (a.rsa_components(), b.rsa_components()) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.ec_coordinates() == b.ec_coordinates(),
        _ => false,
    }
}

/// An rcgen signing key over our private key (RSA → sha256WithRSA, P-256 → ecdsa-with-SHA256,
/// P-384 → ecdsa-with-SHA384).
fn rcgen_key_pair(key: &PrivateKey) -> Result<KeyPair, CaBuildError> {
    Ok(KeyPair::try_from(key.pkcs8_der())?)
}

/// A public key rcgen can put in a certificate without its private half.
struct SubjectKey {
    algorithm: &'static SignatureAlgorithm,
    /// The subjectPublicKey BIT STRING contents (PKCS#1 RSAPublicKey or SEC1 point).
    key_bits: Vec<u8>,
}

impl SubjectKey {
    fn new(key: &PublicKey) -> Result<SubjectKey, CaBuildError> {
        // rcgen writes the SPKI AlgorithmIdentifier of the named signature algorithm: the
        // rsaEncryption/NULL or ecPublicKey/<curve> pair, whichever hash the algorithm uses.
        let algorithm: &'static SignatureAlgorithm = match key.kind() {
            KeyKind::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
            KeyKind::Ec(Curve::P256) => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::Ec(Curve::P384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyKind::Ec(Curve::P521) => &rcgen::PKCS_ECDSA_P521_SHA512,
        };
        let spki = spki::SubjectPublicKeyInfoRef::from_der(key.spki_der())
            .map_err(|_| KeyError::InvalidDer)?;
        let subject_key = SubjectKey {
            algorithm,
            key_bits: spki.subject_public_key.raw_bytes().to_vec(),
        };
        use rcgen::PublicKeyData;
        if subject_key.subject_public_key_info() != key.spki_der() {
            return Err(CaBuildError::Key(KeyError::Unsupported(
                "SPKI encoding rcgen cannot reproduce".into(),
            )));
        }
        Ok(subject_key)
    }
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

/// An x509 `Name` as an rcgen distinguished name: one attribute per RDN, no repeated types.
fn rcgen_name(name: &x509_cert::name::Name) -> Result<DistinguishedName, CaBuildError> {
    use der::{Tag, Tagged};
    use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString};
    let unsupported = |why: &str| CaBuildError::UnsupportedSubject(why.to_owned());
    let mut dn = DistinguishedName::new();
    let mut seen = Vec::new();
    for rdn in name.0.iter() {
        let [attribute] = rdn.0.as_slice() else {
            return Err(unsupported("multi-valued RDN"));
        };
        let arcs: Vec<u64> = attribute.oid.arcs().map(u64::from).collect();
        let dn_type = DnType::from_oid(&arcs);
        if seen.contains(&dn_type) {
            return Err(unsupported("repeated attribute type"));
        }
        seen.push(dn_type.clone());
        let value = attribute.value.value();
        let text = || std::str::from_utf8(value).map_err(|_| unsupported("invalid string"));
        let bad = |_: rcgen::Error| unsupported("invalid string");
        let dn_value = match attribute.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => {
                DnValue::PrintableString(PrintableString::try_from(text()?).map_err(bad)?)
            }
            Tag::Ia5String => DnValue::Ia5String(Ia5String::try_from(text()?).map_err(bad)?),
            Tag::TeletexString => {
                DnValue::TeletexString(TeletexString::try_from(text()?).map_err(bad)?)
            }
            Tag::BmpString => {
                DnValue::BmpString(BmpString::from_utf16be(value.to_vec()).map_err(bad)?)
            }
            _ => return Err(unsupported("attribute value type")),
        };
        dn.push(dn_type, dn_value);
    }
    Ok(dn)
}

#[cfg(test)]
mod tests;
