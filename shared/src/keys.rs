//! Public and private keys of the kinds Cullis uses (RSA ≥ 2048, EC P-256 / P-384), their
//! PEM/DER forms, and every signature, verification and key-wrap primitive built on them.
//!
//! One crypto backend per job, chosen by benchmark (DESIGN §5): aws-lc-rs for everything on a hot
//! path and for every private-key operation (constant-time RSA, ECDSA, ECDH); two gaps are filled
//! by RustCrypto crates, each off the hot path:
//! * RSA-PSS verification with *any* salt length, because the reference signs with the maximum
//!   salt and its verifier accepts every length; aws-lc-rs verifies one fixed length, so
//!   [`PublicKey::verify_message`] tries the maximum salt there first and otherwise recovers the
//!   salt length as RFC 8017 §9.1.2 allows (a public-key operation, no secret involved).
//! * ECDSA P-384 signatures over SHA-256 (the reference's message-signature rule for every
//!   curve), which aws-lc-rs does not offer; the `p384` crate signs those.

use crate::encoding::b64;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self as lc, EcdsaKeyPair, KeyPair, RsaKeyPair, RsaPssSaltLength};
use aws_lc_rs::{agreement, rand::SystemRandom};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM document of a supported key type")]
    InvalidPem,
    #[error("malformed key encoding")]
    InvalidDer,
    #[error("unsupported key type {0}")]
    Unsupported(String),
    #[error("RSA key too small ({0} bits) — minimum 2048")]
    RsaTooSmall(usize),
    #[error("operation not possible with this key type")]
    WrongKeyType,
    #[error("cryptographic operation failed")]
    CryptoFailure,
}

/// A named elliptic curve, as it appears in SPKI parameters and JWK `crv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    /// The JWK `crv` name.
    pub fn jwk_name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// The curve of a JWK `crv` name.
    pub fn from_jwk_name(name: &str) -> Option<Curve> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            _ => None,
        }
    }

    /// Byte length of one coordinate (and of an ECDH shared secret).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    fn from_oid(oid: ObjectIdentifier) -> Result<Curve, KeyError> {
        match oid {
            OID_P256 => Ok(Curve::P256),
            OID_P384 => Ok(Curve::P384),
            OID_P521 => Ok(Curve::P521),
            OID_SECP256K1 => Err(KeyError::Unsupported("secp256k1".into())),
            other => Err(KeyError::Unsupported(other.to_string())),
        }
    }

    fn der_verification(self) -> &'static lc::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &lc::ECDSA_P256_SHA256_ASN1,
            Curve::P384 => &lc::ECDSA_P384_SHA256_ASN1,
            Curve::P521 => &lc::ECDSA_P521_SHA256_ASN1,
        }
    }

    fn ecdh(self) -> Result<&'static agreement::Algorithm, KeyError> {
        match self {
            Curve::P256 => Ok(&agreement::ECDH_P256),
            Curve::P384 => Ok(&agreement::ECDH_P384),
            Curve::P521 => Ok(&agreement::ECDH_P521),
        }
    }
}

/// Which kind of key, with the parameter that matters for policy checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa { bits: usize },
    Ec(Curve),
}

/// The key types Cullis can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// A digest algorithm named by a certificate or JWS signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

/// A signature scheme: everything a verifier needs besides the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 (RS256 and certificate signatures).
    RsaPkcs1(HashAlg),
    /// RSASSA-PSS SHA-256 with a 32-byte salt (JWS PS256).
    RsaPssSha256Salt32,
    /// ECDSA with a fixed-width `r‖s` signature (JWS ES256 on P-256, ES384 on P-384).
    EcdsaFixed(HashAlg),
    /// ECDSA with an ASN.1 DER signature (certificates, message signatures).
    EcdsaDer(HashAlg),
}

/// A public key: RSA or EC, with its SPKI DER kept for re-encoding.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki_der: Vec<u8>,
    params: PublicParams,
}

#[derive(Clone, PartialEq, Eq)]
enum PublicParams {
    Rsa {
        /// Minimal big-endian modulus and exponent (JWK form before base64).
        n: Vec<u8>,
        e: Vec<u8>,
        pkcs1_der: Vec<u8>,
        bits: usize,
    },
    Ec {
        curve: Curve,
        /// SEC1 uncompressed point `04‖x‖y`.
        point: Vec<u8>,
    },
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({:?})", self.kind())
    }
}

impl PublicKey {
    /// Parses a DER `SubjectPublicKeyInfo`.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let spki =
            spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| KeyError::InvalidDer)?;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or(KeyError::InvalidDer)?;
        let params = match spki.algorithm.oid {
            OID_RSA => {
                let rsa =
                    pkcs1::RsaPublicKey::from_der(key_bytes).map_err(|_| KeyError::InvalidDer)?;
                let n = strip_leading_zeros(rsa.modulus.as_bytes()).to_vec();
                let e = strip_leading_zeros(rsa.public_exponent.as_bytes()).to_vec();
                let bits = bit_length(&n);
                PublicParams::Rsa {
                    n,
                    e,
                    pkcs1_der: key_bytes.to_vec(),
                    bits,
                }
            }
            OID_EC_PUBLIC_KEY => {
                let curve_oid: ObjectIdentifier = spki
                    .algorithm
                    .parameters
                    .ok_or(KeyError::InvalidDer)?
                    .decode_as()
                    .map_err(|_| KeyError::InvalidDer)?;
                let curve = Curve::from_oid(curve_oid)?;
                if key_bytes.len() != 1 + 2 * curve.field_len() || key_bytes[0] != 4 {
                    return Err(KeyError::InvalidDer);
                }
                PublicParams::Ec {
                    curve,
                    point: key_bytes.to_vec(),
                }
            }
            other => return Err(KeyError::Unsupported(other.to_string())),
        };
        Ok(PublicKey {
            spki_der: der.to_vec(),
            params,
        })
    }

    /// Parses a `-----BEGIN PUBLIC KEY-----` PEM document.
    pub fn from_spki_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let (label, der) =
            der::pem::decode_vec(pem.trim().as_bytes()).map_err(|_| KeyError::InvalidPem)?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::InvalidPem);
        }
        PublicKey::from_spki_der(&der)
    }

    /// An RSA key from its big-endian modulus and exponent (JWK `n`, `e`).
    pub fn from_rsa_components(n: &[u8], e: &[u8]) -> Result<PublicKey, KeyError> {
        let n = der::asn1::UintRef::new(n).map_err(|_| KeyError::InvalidDer)?;
        let e = der::asn1::UintRef::new(e).map_err(|_| KeyError::InvalidDer)?;
        let pkcs1 = pkcs1::RsaPublicKey {
            modulus: n,
            public_exponent: e,
        }
        .to_der()
        .map_err(|_| KeyError::InvalidDer)?;
        let spki = spki::SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifierRef {
                oid: OID_RSA,
                parameters: Some(der::asn1::AnyRef::NULL),
            },
            subject_public_key: der::asn1::BitStringRef::from_bytes(&pkcs1)
                .map_err(|_| KeyError::InvalidDer)?,
        }
        .to_der()
        .map_err(|_| KeyError::InvalidDer)?;
        PublicKey::from_spki_der(&spki)
    }

    /// An EC key from its affine coordinates (JWK `x`, `y`, each exactly the field length).
    pub fn from_ec_coordinates(curve: Curve, x: &[u8], y: &[u8]) -> Result<PublicKey, KeyError> {
        let len = curve.field_len();
        if x.len() != len || y.len() != len {
            return Err(KeyError::InvalidDer);
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        // Decoding through the curve crates rejects points that are not on the curve.
        use p256::pkcs8::EncodePublicKey;
        let spki = match curve {
            Curve::P256 => p256::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| KeyError::InvalidDer)?
                .to_public_key_der(),
            Curve::P384 => p384::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| KeyError::InvalidDer)?
                .to_public_key_der(),
            Curve::P521 => return Err(KeyError::Unsupported("P-521 JWK".into())),
        }
        .map_err(|_| KeyError::InvalidDer)?;
        PublicKey::from_spki_der(spki.as_bytes())
    }

    /// The key kind (RSA with its size, or EC with its curve).
    pub fn kind(&self) -> KeyKind {
        match &self.params {
            PublicParams::Rsa { bits, .. } => KeyKind::Rsa { bits: *bits },
            PublicParams::Ec { curve, .. } => KeyKind::Ec(*curve),
        }
    }

    /// DER `SubjectPublicKeyInfo`.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// `-----BEGIN PUBLIC KEY-----` PEM with 64-character lines and a trailing newline, exactly
    /// as Python's `cryptography` writes it (the E2E `ephemeral_pubkey` depends on this).
    pub fn to_spki_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.spki_der)
    }

    /// RSA modulus and exponent, minimal big-endian.
    pub fn rsa_components(&self) -> Option<(&[u8], &[u8])> {
        match &self.params {
            PublicParams::Rsa { n, e, .. } => Some((n, e)),
            PublicParams::Ec { .. } => None,
        }
    }

    /// EC curve and affine coordinates, each left-padded to the field length.
    pub fn ec_coordinates(&self) -> Option<(Curve, &[u8], &[u8])> {
        match &self.params {
            PublicParams::Ec { curve, point } => {
                let len = curve.field_len();
                Some((*curve, &point[1..1 + len], &point[1 + len..]))
            }
            PublicParams::Rsa { .. } => None,
        }
    }

    /// Verifies `signature` over `message` under `scheme`. Any mismatch between the scheme and
    /// the key (an RSA scheme on an EC key, ES256 on a P-384 key) is a failed verification.
    pub fn verify(
        &self,
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), KeyError> {
        let (algorithm, key): (&'static dyn lc::VerificationAlgorithm, &[u8]) =
            match (&self.params, scheme) {
                (PublicParams::Rsa { pkcs1_der, .. }, SignatureScheme::RsaPkcs1(hash)) => (
                    match hash {
                        HashAlg::Sha256 => &lc::RSA_PKCS1_2048_8192_SHA256,
                        HashAlg::Sha384 => &lc::RSA_PKCS1_2048_8192_SHA384,
                        HashAlg::Sha512 => &lc::RSA_PKCS1_2048_8192_SHA512,
                    },
                    pkcs1_der,
                ),
                (PublicParams::Rsa { pkcs1_der, .. }, SignatureScheme::RsaPssSha256Salt32) => {
                    (&lc::RSA_PSS_2048_8192_SHA256, pkcs1_der)
                }
                (PublicParams::Ec { curve, point }, SignatureScheme::EcdsaFixed(hash)) => (
                    match (curve, hash) {
                        (Curve::P256, HashAlg::Sha256) => &lc::ECDSA_P256_SHA256_FIXED,
                        (Curve::P384, HashAlg::Sha384) => &lc::ECDSA_P384_SHA384_FIXED,
                        (Curve::P521, HashAlg::Sha512) => &lc::ECDSA_P521_SHA512_FIXED,
                        _ => return Err(KeyError::WrongKeyType),
                    },
                    point,
                ),
                (PublicParams::Ec { curve, point }, SignatureScheme::EcdsaDer(hash)) => (
                    match (curve, hash) {
                        (_, HashAlg::Sha256) => curve.der_verification(),
                        (Curve::P256, HashAlg::Sha384) => &lc::ECDSA_P256_SHA384_ASN1,
                        (Curve::P384, HashAlg::Sha384) => &lc::ECDSA_P384_SHA384_ASN1,
                        (Curve::P521, HashAlg::Sha384) => &lc::ECDSA_P521_SHA384_ASN1,
                        (Curve::P521, HashAlg::Sha512) => &lc::ECDSA_P521_SHA512_ASN1,
                        (_, HashAlg::Sha512) => {
                            return Err(KeyError::Unsupported(
                                "ECDSA with SHA-512 on this curve".into(),
                            ))
                        }
                    },
                    point,
                ),
                _ => return Err(KeyError::WrongKeyType),
            };
        lc::UnparsedPublicKey::new(algorithm, key)
            .verify(message, signature)
            .map_err(|_| KeyError::CryptoFailure)
    }

    /// Verifies a Cullis message signature (ref-auth-crypto §5.2): RSA-PSS SHA-256 with any salt
    /// length for RSA keys, DER ECDSA over SHA-256 for EC keys of any curve.
    pub fn verify_message(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        match &self.params {
            PublicParams::Rsa {
                pkcs1_der, n, e, ..
            } => {
                const MAX_SALT: lc::RsaParameters =
                    lc::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
                if lc::UnparsedPublicKey::new(&MAX_SALT, pkcs1_der)
                    .verify(message, signature)
                    .is_ok()
                {
                    return Ok(());
                }
                crate::pss::verify_any_salt(n, e, message, signature)
            }
            PublicParams::Ec { .. } => self.verify(
                SignatureScheme::EcdsaDer(HashAlg::Sha256),
                message,
                signature,
            ),
        }
    }

    /// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) encryption: the E2E key wrap for RSA
    /// recipients.
    pub fn rsa_oaep_encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        if !matches!(self.params, PublicParams::Rsa { .. }) {
            return Err(KeyError::WrongKeyType);
        }
        let key =
            PublicEncryptingKey::from_der(&self.spki_der).map_err(|_| KeyError::InvalidDer)?;
        let key = OaepPublicEncryptingKey::new(key).map_err(|_| KeyError::CryptoFailure)?;
        let mut out = vec![0u8; key.ciphertext_size()];
        let written = key
            .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
            .map_err(|_| KeyError::CryptoFailure)?
            .len();
        out.truncate(written);
        Ok(out)
    }

    /// SEC1 uncompressed point, for ECDH.
    pub(crate) fn ec_point(&self) -> Option<(Curve, &[u8])> {
        match &self.params {
            PublicParams::Ec { curve, point } => Some((*curve, point)),
            PublicParams::Rsa { .. } => None,
        }
    }
}

/// A private key held in memory. The PKCS#8 DER is kept (zeroed on drop) so the key can be
/// written back out; the backend key objects are built once at load.
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicKey,
    inner: PrivateInner,
}

enum PrivateInner {
    Rsa {
        signer: RsaKeyPair,
        decrypter: OaepPrivateDecryptingKey,
    },
    Ec {
        curve: Curve,
        /// Fixed-width signer for JWS (ES256 / ES384).
        jws_signer: EcdsaKeyPair,
        /// DER signer over SHA-256 for message signatures.
        message_signer: MessageSigner,
    },
}

enum MessageSigner {
    AwsLc(EcdsaKeyPair),
    P384(p384::ecdsa::SigningKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?}, <redacted>)", self.public.kind())
    }
}

impl PrivateKey {
    /// Generates a fresh key.
    pub fn generate(key_type: KeyType) -> Result<PrivateKey, KeyError> {
        let pkcs8 = match key_type {
            KeyType::EcP256 => EcdsaKeyPair::generate_pkcs8(
                &lc::ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|_| KeyError::CryptoFailure)?
            .as_ref()
            .to_vec(),
            KeyType::EcP384 => EcdsaKeyPair::generate_pkcs8(
                &lc::ECDSA_P384_SHA384_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|_| KeyError::CryptoFailure)?
            .as_ref()
            .to_vec(),
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let size = match key_type {
                    KeyType::Rsa2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    KeyType::Rsa3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    _ => aws_lc_rs::rsa::KeySize::Rsa4096,
                };
                let pair = RsaKeyPair::generate(size).map_err(|_| KeyError::CryptoFailure)?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der =
                    pair.as_der().map_err(|_| KeyError::CryptoFailure)?;
                der.as_ref().to_vec()
            }
        };
        PrivateKey::from_pkcs8_der(&pkcs8)
    }

    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`). Encrypted PEM is not supported.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, KeyError> {
        let (label, der) =
            der::pem::decode_vec(pem.trim().as_bytes()).map_err(|_| KeyError::InvalidPem)?;
        let der = Zeroizing::new(der);
        match label {
            "PRIVATE KEY" => PrivateKey::from_pkcs8_der(&der),
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(&der).map_err(|_| KeyError::InvalidDer)?;
                let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der =
                    pair.as_der().map_err(|_| KeyError::InvalidDer)?;
                PrivateKey::from_pkcs8_der(pkcs8.as_ref())
            }
            "EC PRIVATE KEY" => {
                // SEC1 keys usually name their curve in the parameters (OpenSSL and Python
                // write them); without them the scalar length tells. Re-wrap as PKCS#8.
                use p256::pkcs8::EncodePrivateKey;
                let sec1 = sec1::EcPrivateKey::from_der(&der).map_err(|_| KeyError::InvalidDer)?;
                let curve = match sec1.parameters.and_then(|params| params.named_curve()) {
                    Some(oid) => Curve::from_oid(oid)?,
                    None if sec1.private_key.len() == 32 => Curve::P256,
                    None if sec1.private_key.len() == 48 => Curve::P384,
                    None => return Err(KeyError::InvalidDer),
                };
                let pkcs8 = match curve {
                    Curve::P256 => p256::SecretKey::from_sec1_der(&der)
                        .map_err(|_| KeyError::InvalidDer)?
                        .to_pkcs8_der(),
                    Curve::P384 => p384::SecretKey::from_sec1_der(&der)
                        .map_err(|_| KeyError::InvalidDer)?
                        .to_pkcs8_der(),
                    Curve::P521 => return Err(KeyError::Unsupported("P-521 private keys".into())),
                }
                .map_err(|_| KeyError::InvalidDer)?;
                PrivateKey::from_pkcs8_der(pkcs8.as_bytes())
            }
            _ => Err(KeyError::InvalidPem),
        }
    }

    /// Parses a DER PKCS#8 `PrivateKeyInfo`.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|_| KeyError::InvalidDer)?;
        let (public_spki, inner) = match info.algorithm.oid {
            OID_RSA => {
                let signer = RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::InvalidDer)?;
                let decrypter = PrivateDecryptingKey::from_pkcs8(der)
                    .map_err(|_| KeyError::InvalidDer)
                    .and_then(|key| {
                        OaepPrivateDecryptingKey::new(key).map_err(|_| KeyError::InvalidDer)
                    })?;
                let spki: PublicKeyX509Der = signer
                    .public_key()
                    .as_der()
                    .map_err(|_| KeyError::InvalidDer)?;
                (
                    spki.as_ref().to_vec(),
                    PrivateInner::Rsa { signer, decrypter },
                )
            }
            OID_EC_PUBLIC_KEY => {
                let curve_oid = info
                    .algorithm
                    .parameters_oid()
                    .map_err(|_| KeyError::InvalidDer)?;
                let curve = Curve::from_oid(curve_oid)?;
                let (jws_alg, message_signer) = match curve {
                    Curve::P256 => (
                        &lc::ECDSA_P256_SHA256_FIXED_SIGNING,
                        MessageSigner::AwsLc(
                            EcdsaKeyPair::from_pkcs8(&lc::ECDSA_P256_SHA256_ASN1_SIGNING, der)
                                .map_err(|_| KeyError::InvalidDer)?,
                        ),
                    ),
                    Curve::P384 => {
                        use p384::pkcs8::DecodePrivateKey;
                        (
                            &lc::ECDSA_P384_SHA384_FIXED_SIGNING,
                            MessageSigner::P384(
                                p384::ecdsa::SigningKey::from_pkcs8_der(der)
                                    .map_err(|_| KeyError::InvalidDer)?,
                            ),
                        )
                    }
                    Curve::P521 => return Err(KeyError::Unsupported("P-521 private keys".into())),
                };
                let jws_signer =
                    EcdsaKeyPair::from_pkcs8(jws_alg, der).map_err(|_| KeyError::InvalidDer)?;
                let spki: PublicKeyX509Der = jws_signer
                    .public_key()
                    .as_der()
                    .map_err(|_| KeyError::InvalidDer)?;
                (
                    spki.as_ref().to_vec(),
                    PrivateInner::Ec {
                        curve,
                        jws_signer,
                        message_signer,
                    },
                )
            }
            other => return Err(KeyError::Unsupported(other.to_string())),
        };
        let public = PublicKey::from_spki_der(&public_spki)?;
        if let KeyKind::Rsa { bits } = public.kind() {
            if bits < 2048 {
                return Err(KeyError::RsaTooSmall(bits));
            }
        }
        Ok(PrivateKey {
            pkcs8: Zeroizing::new(der.to_vec()),
            public,
            inner,
        })
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// PKCS#8 `-----BEGIN PRIVATE KEY-----` PEM (zeroed on drop).
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem_encode("PRIVATE KEY", &self.pkcs8))
    }

    /// PKCS#8 DER (zeroed on drop).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Signs with a JWS-style scheme: fixed-width ECDSA, PKCS#1 v1.5 or PSS with a 32-byte salt.
    pub fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match (&self.inner, scheme) {
            (PrivateInner::Rsa { signer, .. }, SignatureScheme::RsaPkcs1(hash)) => {
                let encoding: &'static dyn lc::RsaEncoding = match hash {
                    HashAlg::Sha256 => &lc::RSA_PKCS1_SHA256,
                    HashAlg::Sha384 => &lc::RSA_PKCS1_SHA384,
                    HashAlg::Sha512 => &lc::RSA_PKCS1_SHA512,
                };
                rsa_sign(signer, encoding, message)
            }
            (PrivateInner::Rsa { signer, .. }, SignatureScheme::RsaPssSha256Salt32) => {
                rsa_sign(signer, &lc::RSA_PSS_SHA256, message)
            }
            (
                PrivateInner::Ec {
                    curve, jws_signer, ..
                },
                SignatureScheme::EcdsaFixed(hash),
            ) => {
                let fits = matches!(
                    (curve, hash),
                    (Curve::P256, HashAlg::Sha256) | (Curve::P384, HashAlg::Sha384)
                );
                if !fits {
                    return Err(KeyError::WrongKeyType);
                }
                jws_signer
                    .sign(&rng, message)
                    .map(|sig| sig.as_ref().to_vec())
                    .map_err(|_| KeyError::CryptoFailure)
            }
            (PrivateInner::Ec { .. }, SignatureScheme::EcdsaDer(HashAlg::Sha256)) => {
                self.sign_message(message)
            }
            _ => Err(KeyError::WrongKeyType),
        }
    }

    /// A Cullis message signature (ref-auth-crypto §5.2): RSA-PSS SHA-256 with the maximum salt
    /// for RSA keys, DER ECDSA over SHA-256 for EC keys.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            PrivateInner::Rsa { signer, .. } => {
                const MAX_SALT: lc::RsaSignatureEncoding =
                    lc::RSA_PSS_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
                rsa_sign(signer, &MAX_SALT, message)
            }
            PrivateInner::Ec { message_signer, .. } => match message_signer {
                MessageSigner::AwsLc(pair) => pair
                    .sign(&SystemRandom::new(), message)
                    .map(|sig| sig.as_ref().to_vec())
                    .map_err(|_| KeyError::CryptoFailure),
                MessageSigner::P384(key) => {
                    use p384::ecdsa::signature::hazmat::PrehashSigner;
                    let digest = Sha256::digest(message);
                    let signature: p384::ecdsa::Signature = key
                        .sign_prehash(&digest)
                        .map_err(|_| KeyError::CryptoFailure)?;
                    Ok(signature.to_der().as_bytes().to_vec())
                }
            },
        }
    }

    /// RSA-OAEP (SHA-256) decryption in constant time: the E2E key unwrap for RSA recipients.
    pub fn rsa_oaep_decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let PrivateInner::Rsa { decrypter, .. } = &self.inner else {
            return Err(KeyError::WrongKeyType);
        };
        let mut out = Zeroizing::new(vec![0u8; decrypter.min_output_size()]);
        let written = decrypter
            .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None)
            .map_err(|_| KeyError::CryptoFailure)?
            .len();
        out.truncate(written);
        Ok(out)
    }

    /// ECDH with `peer` on this key's curve: the raw x-coordinate of the shared point.
    pub fn ecdh(&self, peer: &PublicKey) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let PrivateInner::Ec { curve, .. } = &self.inner else {
            return Err(KeyError::WrongKeyType);
        };
        let algorithm = curve.ecdh()?;
        let private = agreement::PrivateKey::from_private_key_der(algorithm, &self.pkcs8)
            .map_err(|_| KeyError::InvalidDer)?;
        ecdh_agree(&private, algorithm, peer)
    }
}

/// Ephemeral-static ECDH for the E2E EC key wrap: a fresh key on `peer`'s curve, the shared
/// x-coordinate, and the ephemeral public key to send along.
pub(crate) fn ecdh_ephemeral(
    peer: &PublicKey,
) -> Result<(Zeroizing<Vec<u8>>, PublicKey), KeyError> {
    let (curve, _) = peer.ec_point().ok_or(KeyError::WrongKeyType)?;
    let algorithm = curve.ecdh()?;
    let private =
        agreement::PrivateKey::generate(algorithm).map_err(|_| KeyError::CryptoFailure)?;
    ecdh_with(private, algorithm, peer)
}

/// As [`ecdh_ephemeral`] with a given ephemeral scalar: only for known-answer tests.
#[cfg(test)]
pub(crate) fn ecdh_with_scalar(
    scalar: &[u8],
    peer: &PublicKey,
) -> Result<(Zeroizing<Vec<u8>>, PublicKey), KeyError> {
    let (curve, _) = peer.ec_point().ok_or(KeyError::WrongKeyType)?;
    let algorithm = curve.ecdh()?;
    let private = agreement::PrivateKey::from_private_key(algorithm, scalar)
        .map_err(|_| KeyError::InvalidDer)?;
    ecdh_with(private, algorithm, peer)
}

fn ecdh_with(
    private: agreement::PrivateKey,
    algorithm: &'static agreement::Algorithm,
    peer: &PublicKey,
) -> Result<(Zeroizing<Vec<u8>>, PublicKey), KeyError> {
    let public_der: PublicKeyX509Der = private
        .compute_public_key()
        .and_then(|key| key.as_der())
        .map_err(|_| KeyError::CryptoFailure)?;
    let shared = ecdh_agree(&private, algorithm, peer)?;
    Ok((shared, PublicKey::from_spki_der(public_der.as_ref())?))
}

fn ecdh_agree(
    private: &agreement::PrivateKey,
    algorithm: &'static agreement::Algorithm,
    peer: &PublicKey,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let (_, point) = peer.ec_point().ok_or(KeyError::WrongKeyType)?;
    let peer = agreement::UnparsedPublicKey::new(algorithm, point);
    agreement::agree(private, peer, KeyError::CryptoFailure, |secret| {
        Ok(Zeroizing::new(secret.to_vec()))
    })
}

fn rsa_sign(
    signer: &RsaKeyPair,
    encoding: &'static dyn lc::RsaEncoding,
    message: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let mut signature = vec![0u8; signer.public_modulus_len()];
    signer
        .sign(encoding, &SystemRandom::new(), message, &mut signature)
        .map_err(|_| KeyError::CryptoFailure)?;
    Ok(signature)
}

/// PEM text as Python's `cryptography` writes it: 64-character lines, trailing newline.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = b64::std_padded(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[start..]
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.first() {
        None => 0,
        Some(first) => big_endian.len() * 8 - first.leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_TYPES: [KeyType; 3] = [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048];

    #[test]
    fn message_signatures_round_trip_for_every_key_type() {
        for key_type in ALL_TYPES {
            let key = PrivateKey::generate(key_type).unwrap();
            let signature = key.sign_message(b"session|sender|nonce|1|{}").unwrap();
            let public = key.public_key();
            public
                .verify_message(b"session|sender|nonce|1|{}", &signature)
                .unwrap();
            assert!(public
                .verify_message(b"session|sender|nonce|2|{}", &signature)
                .is_err());
        }
    }

    #[test]
    fn ec_message_signatures_are_der_over_sha256_on_every_curve() {
        for key_type in [KeyType::EcP256, KeyType::EcP384] {
            let key = PrivateKey::generate(key_type).unwrap();
            let signature = key.sign_message(b"m").unwrap();
            assert_eq!(signature[0], 0x30, "DER SEQUENCE");
            key.public_key()
                .verify(SignatureScheme::EcdsaDer(HashAlg::Sha256), b"m", &signature)
                .unwrap();
        }
    }

    #[test]
    fn rsa_message_signatures_use_the_maximum_salt_and_any_salt_verifies() {
        let key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let public = key.public_key();
        let (n, e) = public.rsa_components().unwrap();
        // Our own signature: the maximum salt (222 bytes) recovers through the generic path too.
        let signature = key.sign_message(b"payload").unwrap();
        crate::pss::verify_any_salt(n, e, b"payload", &signature).unwrap();
        // Other salt lengths, as other peers may produce them.
        let PrivateInner::Rsa { signer, .. } = &key.inner else {
            unreachable!()
        };
        const SALT_0: lc::RsaSignatureEncoding =
            lc::RSA_PSS_SHA256.with_pss_salt_length(RsaPssSaltLength::Custom(0));
        const SALT_20: lc::RsaSignatureEncoding =
            lc::RSA_PSS_SHA256.with_pss_salt_length(RsaPssSaltLength::Custom(20));
        for encoding in [&SALT_0, &SALT_20, &lc::RSA_PSS_SHA256] {
            let signature = rsa_sign(signer, encoding, b"payload").unwrap();
            public.verify_message(b"payload", &signature).unwrap();
            assert!(public.verify_message(b"payloae", &signature).is_err());
        }
    }

    #[test]
    fn schemes_must_fit_the_key() {
        let ec = PrivateKey::generate(KeyType::EcP256).unwrap();
        let p384 = PrivateKey::generate(KeyType::EcP384).unwrap();
        let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let es256 = SignatureScheme::EcdsaFixed(HashAlg::Sha256);
        let rs256 = SignatureScheme::RsaPkcs1(HashAlg::Sha256);
        assert_eq!(rsa.sign(es256, b"x"), Err(KeyError::WrongKeyType));
        assert_eq!(ec.sign(rs256, b"x"), Err(KeyError::WrongKeyType));
        assert_eq!(p384.sign(es256, b"x"), Err(KeyError::WrongKeyType));
        let es256_sig = ec.sign(es256, b"x").unwrap();
        assert_eq!(es256_sig.len(), 64);
        ec.public_key().verify(es256, b"x", &es256_sig).unwrap();
        assert!(p384.public_key().verify(es256, b"x", &es256_sig).is_err());
        assert!(rsa.public_key().verify(es256, b"x", &es256_sig).is_err());
        let rs256_sig = rsa.sign(rs256, b"x").unwrap();
        rsa.public_key().verify(rs256, b"x", &rs256_sig).unwrap();
        assert!(rsa
            .public_key()
            .verify(SignatureScheme::RsaPssSha256Salt32, b"x", &rs256_sig)
            .is_err());
        let ps256_sig = rsa.sign(SignatureScheme::RsaPssSha256Salt32, b"x").unwrap();
        rsa.public_key()
            .verify(SignatureScheme::RsaPssSha256Salt32, b"x", &ps256_sig)
            .unwrap();
    }

    #[test]
    fn pem_round_trips_keep_the_key() {
        for key_type in ALL_TYPES {
            let key = PrivateKey::generate(key_type).unwrap();
            let again = PrivateKey::from_pem(&key.to_pkcs8_pem()).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            let public = PublicKey::from_spki_pem(&key.public_key().to_spki_pem()).unwrap();
            assert_eq!(&public, key.public_key());
        }
    }

    #[test]
    fn pkcs1_and_sec1_private_keys_load() {
        use p256::pkcs8::DecodePrivateKey;
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let rsa_key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let pkcs1 = rsa::RsaPrivateKey::from_pkcs8_der(rsa_key.pkcs8_der())
            .unwrap()
            .to_pkcs1_pem(Default::default())
            .unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert_eq!(
            PrivateKey::from_pem(&pkcs1).unwrap().public_key(),
            rsa_key.public_key()
        );

        let ec_key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let sec1 = p256::SecretKey::from_pkcs8_der(ec_key.pkcs8_der())
            .unwrap()
            .to_sec1_pem(Default::default())
            .unwrap();
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert_eq!(
            PrivateKey::from_pem(&sec1).unwrap().public_key(),
            ec_key.public_key()
        );
    }

    #[test]
    fn jwk_components_rebuild_the_same_key() {
        let ec = PrivateKey::generate(KeyType::EcP256).unwrap();
        let (curve, x, y) = ec.public_key().ec_coordinates().unwrap();
        assert_eq!((curve, x.len(), y.len()), (Curve::P256, 32, 32));
        assert_eq!(
            &PublicKey::from_ec_coordinates(curve, x, y).unwrap(),
            ec.public_key()
        );
        let mut off_curve = y.to_vec();
        off_curve[31] ^= 1;
        assert!(PublicKey::from_ec_coordinates(curve, x, &off_curve).is_err());

        let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let (n, e) = rsa.public_key().rsa_components().unwrap();
        assert_eq!(e, [1, 0, 1]);
        assert_eq!(n.len(), 256);
        assert_eq!(
            &PublicKey::from_rsa_components(n, e).unwrap(),
            rsa.public_key()
        );
        assert_eq!(rsa.public_key().kind(), KeyKind::Rsa { bits: 2048 });
    }

    #[test]
    fn oaep_and_ecdh_round_trip() {
        let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let wrapped = rsa.public_key().rsa_oaep_encrypt(&[7u8; 32]).unwrap();
        assert_eq!(wrapped.len(), 256);
        assert_eq!(
            rsa.rsa_oaep_decrypt(&wrapped).unwrap().as_slice(),
            &[7u8; 32]
        );
        let mut tampered = wrapped.clone();
        tampered[10] ^= 1;
        assert!(rsa.rsa_oaep_decrypt(&tampered).is_err());

        for key_type in [KeyType::EcP256, KeyType::EcP384] {
            let recipient = PrivateKey::generate(key_type).unwrap();
            let (shared, ephemeral) = ecdh_ephemeral(recipient.public_key()).unwrap();
            assert_eq!(recipient.ecdh(&ephemeral).unwrap(), shared);
            let KeyKind::Ec(curve) = recipient.public_key().kind() else {
                unreachable!()
            };
            assert_eq!(shared.len(), curve.field_len());
        }
    }

    #[test]
    fn garbage_is_a_key_error_not_a_panic() {
        assert_eq!(
            PrivateKey::from_pem("not pem").unwrap_err(),
            KeyError::InvalidPem
        );
        assert!(PrivateKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
        assert!(PublicKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(PublicKey::from_spki_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
    }
}
