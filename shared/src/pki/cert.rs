//! A parsed X.509 certificate that keeps its DER, with the accessors the broker's checks need.
//!
//! Parsing is strict DER (`x509-cert`). Beyond the encoding itself, [`Certificate::from_der`]
//! refuses what RFC 5280 forbids and what would make later checks ambiguous: a negative serial,
//! an outer `signatureAlgorithm` different from the TBS `signature` field, a duplicated
//! extension, and a malformed BasicConstraints / ExtendedKeyUsage / SubjectAltName / KeyUsage /
//! SubjectKeyIdentifier extension. Everything else is decoded once here, so the accessors are
//! infallible.

use crate::encoding::b64;
use crate::keys::{pem_encode, Curve, HashAlg, KeyError, KeyKind, PublicKey, SignatureScheme};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Tag, Tagged};
use sha2::{Digest, Sha256};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const OID_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const OID_SKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// ExtendedKeyUsage `id-kp-clientAuth`.
pub const OID_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
/// ExtendedKeyUsage `id-kp-serverAuth`.
pub const OID_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");

/// Why bytes or text are not a usable certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("no PEM CERTIFICATE block found")]
    NotPem,
    #[error("invalid base64 in PEM certificate")]
    InvalidBase64,
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

/// Why a certificate's signature algorithm is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureAlgError {
    /// SHA-1, MD5, SHA-224, or an algorithm without a separate hash (Ed25519, …), or unknown.
    #[error("weak signature algorithm {0}")]
    Weak(String),
    /// A SHA-2 algorithm Cullis does not verify certificates with (RSASSA-PSS, DSA).
    #[error("unsupported signature algorithm {0}")]
    Unsupported(String),
}

/// Why a certificate's signature did not verify under an issuer key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The signature does not verify (wrong issuer, tampered, or RSA/ECDSA family mismatch).
    #[error("signature does not verify under the issuer key")]
    BadSignature,
    #[error(transparent)]
    Algorithm(#[from] SignatureAlgError),
    #[error("unsupported issuer key: {0}")]
    UnsupportedIssuerKey(String),
}

/// The signature family named by the signatureAlgorithm OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFamily {
    RsaPkcs1,
    Ecdsa,
}

/// A parsed certificate together with its exact DER bytes.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    inner: x509_cert::Certificate,
    thumbprint: String,
    serial_hex: String,
    common_name: Option<String>,
    organization: Option<String>,
    basic_constraints: Option<BasicConstraints>,
    extended_key_usage: Option<Vec<ObjectIdentifier>>,
    key_usage: Option<KeyUsage>,
    subject_key_id: Option<Vec<u8>>,
    uri_sans: Vec<String>,
    not_before: i64,
    not_after: i64,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject_cn", &self.common_name)
            .field("subject_o", &self.organization)
            .field("serial", &self.serial_hex)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

impl Certificate {
    /// Parses one DER certificate (no trailing bytes).
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertError> {
        let inner = x509_cert::Certificate::from_der(der).map_err(malformed)?;
        let tbs = &inner.tbs_certificate;
        if inner.signature_algorithm != tbs.signature {
            return Err(CertError::Malformed(
                "signatureAlgorithm differs from the TBS signature field".into(),
            ));
        }
        let serial_hex = serial_to_hex(tbs.serial_number.as_bytes())?;
        let common_name = first_attribute(&tbs.subject, OID_CN)?;
        let organization = first_attribute(&tbs.subject, OID_O)?;

        let mut basic_constraints = None;
        let mut extended_key_usage = None;
        let mut key_usage = None;
        let mut subject_key_id = None;
        let mut uri_sans = Vec::new();
        let mut seen: Vec<ObjectIdentifier> = Vec::new();
        for ext in tbs.extensions.iter().flatten() {
            if seen.contains(&ext.extn_id) {
                return Err(CertError::Malformed(format!(
                    "duplicate extension {}",
                    ext.extn_id
                )));
            }
            seen.push(ext.extn_id);
            let value = ext.extn_value.as_bytes();
            match ext.extn_id {
                OID_BASIC_CONSTRAINTS => {
                    basic_constraints = Some(BasicConstraints::from_der(value).map_err(malformed)?)
                }
                OID_EKU => {
                    extended_key_usage =
                        Some(ExtendedKeyUsage::from_der(value).map_err(malformed)?.0)
                }
                OID_KEY_USAGE => key_usage = Some(KeyUsage::from_der(value).map_err(malformed)?),
                OID_SKI => {
                    subject_key_id = Some(
                        SubjectKeyIdentifier::from_der(value)
                            .map_err(malformed)?
                            .0
                            .as_bytes()
                            .to_vec(),
                    )
                }
                OID_SAN => {
                    for name in SubjectAltName::from_der(value).map_err(malformed)?.0 {
                        if let GeneralName::UniformResourceIdentifier(uri) = name {
                            uri_sans.push(uri.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        let validity = &tbs.validity;
        let not_before = unix_seconds(validity.not_before)?;
        let not_after = unix_seconds(validity.not_after)?;

        Ok(Certificate {
            thumbprint: hex::encode(Sha256::digest(der)),
            der: der.to_vec(),
            serial_hex,
            common_name,
            organization,
            basic_constraints,
            extended_key_usage,
            key_usage,
            subject_key_id,
            uri_sans,
            not_before,
            not_after,
            inner,
        })
    }

    /// Parses the first `-----BEGIN CERTIFICATE-----` block of `pem` (text before it, and any
    /// later blocks, are ignored, as OpenSSL and Python's `load_pem_x509_certificate` do).
    pub fn from_pem(pem: &str) -> Result<Certificate, CertError> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let start = pem.find(BEGIN).ok_or(CertError::NotPem)? + BEGIN.len();
        let len = pem[start..].find(END).ok_or(CertError::NotPem)?;
        let body: String = pem[start..start + len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = b64::decode_std(&body).map_err(|_| CertError::InvalidBase64)?;
        Certificate::from_der(&der)
    }

    /// `-----BEGIN CERTIFICATE-----` PEM, 64-column lines, trailing newline (as Python writes it).
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }

    /// The DER bytes exactly as parsed.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The decoded structure, for anything this wrapper does not expose.
    pub fn x509(&self) -> &x509_cert::Certificate {
        &self.inner
    }

    /// SHA-256 of the DER, lowercase hex (64 characters): the pinning thumbprint.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The serial as Python's `format(serial, 'x')`: lowercase hex, no prefix, no leading zeros.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// The first CN of the subject (empty values count as absent).
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The first O of the subject (empty values count as absent).
    pub fn organization(&self) -> Option<&str> {
        self.organization.as_deref()
    }

    /// Every URI SubjectAltName, in order.
    pub fn uri_sans(&self) -> &[String] {
        &self.uri_sans
    }

    /// The URI SANs that start with `spiffe://` (not otherwise validated), in order.
    pub fn spiffe_uris(&self) -> impl Iterator<Item = &str> {
        self.uri_sans
            .iter()
            .map(String::as_str)
            .filter(|uri| uri.starts_with("spiffe://"))
    }

    /// notBefore as Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// notAfter as Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// `not_before <= now <= not_after` (inclusive, no skew allowance), `now` in Unix seconds.
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// The BasicConstraints extension, if present.
    pub fn basic_constraints(&self) -> Option<&BasicConstraints> {
        self.basic_constraints.as_ref()
    }

    /// BasicConstraints present with `cA = TRUE`.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|bc| bc.ca)
    }

    /// The ExtendedKeyUsage purposes, or `None` when the extension is absent.
    pub fn extended_key_usage(&self) -> Option<&[ObjectIdentifier]> {
        self.extended_key_usage.as_deref()
    }

    /// No ExtendedKeyUsage extension, or one that lists clientAuth.
    pub fn allows_client_auth(&self) -> bool {
        self.extended_key_usage
            .as_ref()
            .is_none_or(|purposes| purposes.contains(&OID_CLIENT_AUTH))
    }

    /// The KeyUsage extension, if present.
    pub fn key_usage(&self) -> Option<&KeyUsage> {
        self.key_usage.as_ref()
    }

    /// The SubjectKeyIdentifier, if present.
    pub fn subject_key_id(&self) -> Option<&[u8]> {
        self.subject_key_id.as_deref()
    }

    /// The signatureAlgorithm OID.
    pub fn signature_algorithm_oid(&self) -> ObjectIdentifier {
        self.inner.signature_algorithm.oid
    }

    /// The family and hash of the signature algorithm: RSA PKCS#1 v1.5 or ECDSA with SHA-256,
    /// SHA-384 or SHA-512. Everything else is refused, as weak or as unsupported.
    pub fn signature_algorithm(&self) -> Result<(SignatureFamily, HashAlg), SignatureAlgError> {
        classify_signature_algorithm(self.signature_algorithm_oid())
    }

    /// The hash of the signature algorithm (see [`Certificate::signature_algorithm`]).
    pub fn signature_hash(&self) -> Result<HashAlg, SignatureAlgError> {
        self.signature_algorithm().map(|(_, hash)| hash)
    }

    /// DER `SubjectPublicKeyInfo` of the subject key.
    pub fn spki_der(&self) -> Vec<u8> {
        self.inner
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .expect("a decoded SPKI re-encodes")
    }

    /// The subject public key (RSA or EC P-256/P-384/P-521).
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        PublicKey::from_spki_der(&self.spki_der())
    }

    /// What the subject key is, including keys [`PublicKey`] cannot hold, for policy checks.
    pub fn key_description(&self) -> KeyDescription {
        describe_key(&self.inner.tbs_certificate.subject_public_key_info)
    }

    /// The tbsCertificate bytes exactly as they appear in the DER (what the issuer signed).
    pub fn tbs_der(&self) -> &[u8] {
        first_inner_tlv(&self.der).expect("parsed certificates have a TBS element")
    }

    /// Verifies this certificate's signature with `issuer`: PKCS#1 v1.5 for RSA issuer keys,
    /// DER ECDSA for EC issuer keys, each with the certificate's own hash. The algorithm family
    /// named in the certificate must match the issuer key type.
    pub fn verify_signed_by(&self, issuer: &PublicKey) -> Result<(), ChainError> {
        let (family, hash) = self.signature_algorithm()?;
        let signature = self
            .inner
            .signature
            .as_bytes()
            .ok_or(ChainError::BadSignature)?;
        let tbs = self.tbs_der();
        let result = match (issuer.kind(), family) {
            (KeyKind::Rsa { bits }, SignatureFamily::RsaPkcs1) => {
                if !(2048..=8192).contains(&bits) {
                    return Err(ChainError::UnsupportedIssuerKey(format!("RSA-{bits}")));
                }
                issuer.verify(SignatureScheme::RsaPkcs1(hash), tbs, signature)
            }
            (KeyKind::Ec(curve), SignatureFamily::Ecdsa) => {
                verify_ecdsa_der(issuer, curve, hash, tbs, signature)
            }
            _ => return Err(ChainError::BadSignature),
        };
        result.map_err(|err| match err {
            KeyError::Unsupported(what) => ChainError::UnsupportedIssuerKey(what),
            _ => ChainError::BadSignature,
        })
    }
}

/// The subject key as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDescription {
    Rsa {
        bits: usize,
    },
    /// A named curve: P-256/P-384/P-521 as [`Curve`], any other by its name (`secp256k1`) or OID.
    Ec(Result<Curve, String>),
    /// Any other algorithm (`ed25519`, `dsa`, …, or the dotted OID).
    Other(String),
    /// The SPKI could not be decoded.
    Malformed,
}

fn describe_key(spki: &spki::SubjectPublicKeyInfoOwned) -> KeyDescription {
    const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    match spki.algorithm.oid {
        RSA => match spki.to_der().map(|der| PublicKey::from_spki_der(&der)) {
            Ok(Ok(key)) => match key.kind() {
                KeyKind::Rsa { bits } => KeyDescription::Rsa { bits },
                KeyKind::Ec(_) => KeyDescription::Malformed,
            },
            _ => KeyDescription::Malformed,
        },
        EC => {
            let Some(curve) = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|params| params.decode_as::<ObjectIdentifier>().ok())
            else {
                return KeyDescription::Malformed;
            };
            let dotted = curve.to_string();
            KeyDescription::Ec(match dotted.as_str() {
                "1.2.840.10045.3.1.7" => Ok(Curve::P256),
                "1.3.132.0.34" => Ok(Curve::P384),
                "1.3.132.0.35" => Ok(Curve::P521),
                // Names as Python's `cryptography` reports `curve.name`.
                "1.3.132.0.10" => Err("secp256k1".to_owned()),
                "1.2.840.10045.3.1.1" => Err("secp192r1".to_owned()),
                "1.3.132.0.33" => Err("secp224r1".to_owned()),
                "1.3.36.3.3.2.8.1.1.7" => Err("brainpoolP256r1".to_owned()),
                "1.3.36.3.3.2.8.1.1.11" => Err("brainpoolP384r1".to_owned()),
                "1.3.36.3.3.2.8.1.1.13" => Err("brainpoolP512r1".to_owned()),
                _ => Err(dotted),
            })
        }
        other => {
            let dotted = other.to_string();
            let name = match dotted.as_str() {
                "1.3.101.112" => "ed25519",
                "1.3.101.113" => "ed448",
                "1.3.101.110" => "x25519",
                "1.3.101.111" => "x448",
                "1.2.840.10040.4.1" => "dsa",
                "1.2.840.113549.1.1.10" => "rsassa-pss",
                _ => return KeyDescription::Other(dotted),
            };
            KeyDescription::Other(name.to_owned())
        }
    }
}

fn classify_signature_algorithm(
    oid: ObjectIdentifier,
) -> Result<(SignatureFamily, HashAlg), SignatureAlgError> {
    use SignatureFamily::{Ecdsa, RsaPkcs1};
    let weak = |name: &str| Err(SignatureAlgError::Weak(name.to_owned()));
    let unsupported = |name: &str| Err(SignatureAlgError::Unsupported(name.to_owned()));
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.11" => Ok((RsaPkcs1, HashAlg::Sha256)),
        "1.2.840.113549.1.1.12" => Ok((RsaPkcs1, HashAlg::Sha384)),
        "1.2.840.113549.1.1.13" => Ok((RsaPkcs1, HashAlg::Sha512)),
        "1.2.840.10045.4.3.2" => Ok((Ecdsa, HashAlg::Sha256)),
        "1.2.840.10045.4.3.3" => Ok((Ecdsa, HashAlg::Sha384)),
        "1.2.840.10045.4.3.4" => Ok((Ecdsa, HashAlg::Sha512)),
        "1.2.840.113549.1.1.2" => weak("md2WithRSAEncryption"),
        "1.2.840.113549.1.1.4" => weak("md5WithRSAEncryption"),
        "1.2.840.113549.1.1.5" => weak("sha1WithRSAEncryption"),
        "1.2.840.113549.1.1.14" => weak("sha224WithRSAEncryption"),
        "1.2.840.10045.4.1" => weak("ecdsa-with-SHA1"),
        "1.2.840.10045.4.3.1" => weak("ecdsa-with-SHA224"),
        "1.2.840.10040.4.3" => weak("dsa-with-sha1"),
        "1.3.101.112" => weak("ed25519"),
        "1.3.101.113" => weak("ed448"),
        "1.2.840.113549.1.1.10" => unsupported("RSASSA-PSS"),
        "2.16.840.1.101.3.4.3.1" => unsupported("dsa-with-sha224"),
        "2.16.840.1.101.3.4.3.2" => unsupported("dsa-with-sha256"),
        dotted => weak(dotted),
    }
}

/// DER ECDSA verification with any of SHA-256/384/512 on P-256/P-384/P-521. `keys` covers every
/// pair except SHA-512 on P-256 and P-384, which aws-lc-rs offers and are filled in here.
fn verify_ecdsa_der(
    issuer: &PublicKey,
    curve: Curve,
    hash: HashAlg,
    message: &[u8],
    signature: &[u8],
) -> Result<(), KeyError> {
    use aws_lc_rs::signature as lc;
    let algorithm: &'static lc::EcdsaVerificationAlgorithm = match (curve, hash) {
        (Curve::P256, HashAlg::Sha512) => &lc::ECDSA_P256_SHA512_ASN1,
        (Curve::P384, HashAlg::Sha512) => &lc::ECDSA_P384_SHA512_ASN1,
        _ => return issuer.verify(SignatureScheme::EcdsaDer(hash), message, signature),
    };
    let (_, point) = issuer.ec_point().ok_or(KeyError::WrongKeyType)?;
    lc::UnparsedPublicKey::new(algorithm, point)
        .verify(message, signature)
        .map_err(|_| KeyError::CryptoFailure)
}

/// Canonicalises a serial written any way (any case, leading zeros, optional `0x`) to the form
/// [`Certificate::serial_hex`] produces. Refuses empty input and non-hex characters.
pub fn normalize_serial_hex(text: &str) -> Result<String, InvalidSerial> {
    let trimmed = text.trim();
    let digits = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InvalidSerial(text.to_owned()));
    }
    let significant = digits.trim_start_matches('0');
    Ok(if significant.is_empty() {
        "0".to_owned()
    } else {
        significant.to_ascii_lowercase()
    })
}

/// A serial number string that is not hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid serial number {0:?}: expected hexadecimal digits")]
pub struct InvalidSerial(pub String);

/// Two's-complement DER integer bytes → minimal lowercase hex. Negative serials are refused
/// (RFC 5280 forbids them; Python's `cryptography` deprecates loading them).
fn serial_to_hex(bytes: &[u8]) -> Result<String, CertError> {
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(CertError::Malformed("negative serial number".into()));
    }
    let hex = hex::encode(bytes);
    let significant = hex.trim_start_matches('0');
    Ok(if significant.is_empty() {
        "0".to_owned()
    } else {
        significant.to_owned()
    })
}

fn unix_seconds(time: x509_cert::time::Time) -> Result<i64, CertError> {
    i64::try_from(time.to_unix_duration().as_secs())
        .map_err(|_| CertError::Malformed("validity time out of range".into()))
}

/// The first value of attribute `oid` in `name`, decoded as text; empty values count as absent.
fn first_attribute(name: &Name, oid: ObjectIdentifier) -> Result<Option<String>, CertError> {
    for rdn in name.0.iter() {
        for attribute in rdn.0.iter() {
            if attribute.oid == oid {
                let text = directory_string(attribute.value.tag(), attribute.value.value())?;
                return Ok(Some(text).filter(|text| !text.is_empty()));
            }
        }
    }
    Ok(None)
}

/// Decodes a DirectoryString (or IA5String) value the way Python's `cryptography` does.
/// (UniversalString has no `der` tag, so certificates using it do not parse at all.)
fn directory_string(tag: Tag, bytes: &[u8]) -> Result<String, CertError> {
    let bad = || CertError::Malformed("undecodable subject attribute".into());
    match tag {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            String::from_utf8(bytes.to_vec()).map_err(|_| bad())
        }
        // T.61 strings are read as Latin-1, as OpenSSL-based tools do.
        Tag::TeletexString => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if bytes.len() % 2 != 0 {
                return Err(bad());
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// The content of the first element inside the outer SEQUENCE, with its tag and length.
fn first_inner_tlv(der: &[u8]) -> Option<&[u8]> {
    fn header(bytes: &[u8]) -> Option<(usize, usize)> {
        let first_len = *bytes.get(1)?;
        if first_len < 0x80 {
            return Some((2, usize::from(first_len)));
        }
        let count = usize::from(first_len & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let len = bytes
            .get(2..2 + count)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        Some((2 + count, len))
    }
    let (outer_header, _) = header(der)?;
    let inner = der.get(outer_header..)?;
    let (inner_header, inner_len) = header(inner)?;
    inner.get(..inner_header + inner_len)
}

fn malformed(err: der::Error) -> CertError {
    CertError::Malformed(err.to_string())
}

#[cfg(test)]
mod tests;
