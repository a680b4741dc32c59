//! The certificate checks the broker runs, each failing with the reference's exact `detail` text
//! (ref-auth-crypto §1.5–§1.7, §10.1, §10.8).
//!
//! * [`accept_org_ca`]: an org CA uploaded or submitted at join (§1.5, V-01/V-02).
//! * [`verify_agent_leaf`]: the agent certificate from the client assertion's `x5c[0]`
//!   (§1.6, in the order of §2.3 steps c–k, then the SPIFFE SAN step p). For callers that
//!   interleave their own steps (org lookup e, revocation l, JWT m–o), the same checks are
//!   available one stage at a time on [`AgentLeaf`].
//! * [`verify_rotation_cert`]: the new certificate of `rotate-cert` (§1.7, V-03).
//!
//! Deliberate differences from the reference (DESIGN decision 2):
//! * a leaf with BasicConstraints CA=true is refused at login and at rotation;
//! * EC org CAs work at rotation (the reference only verifies PKCS#1 v1.5 there);
//! * an org CA whose key Cullis cannot verify with (e.g. secp256k1, Ed25519) is refused at
//!   upload instead of failing every later login;
//! * malformed input that crashed the reference (CN without `::`, an unusable leaf key type)
//!   gets a 401 with its own detail rather than a 500.

use super::cert::{CertError, Certificate, ChainError, KeyDescription, SignatureAlgError};
use super::spiffe::{self, SpiffeError, SpiffeId};
use crate::keys::{KeyKind, PublicKey};

// ---------------------------------------------------------------------------------------------
// Org CA acceptance
// ---------------------------------------------------------------------------------------------

/// Why an org CA certificate was refused. [`Display`](std::fmt::Display) is the upload
/// endpoint's detail (V-01); [`CaError::join_detail`] gives the join endpoint's (V-02). Both
/// are HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    /// Unparseable, no BasicConstraints, or a key Cullis cannot verify with; carries the reason.
    #[error("Invalid CA certificate: {0}")]
    Invalid(String),
    #[error("Certificate is not a CA (BasicConstraints CA=false)")]
    NotCa,
    #[error("CA RSA key too small ({0} bits) — minimum 2048")]
    RsaKeyTooSmall(usize),
    #[error("CA certificate is expired or not yet valid")]
    OutsideValidity,
}

impl CaError {
    /// The `detail` of `POST /v1/registry/orgs/{org_id}/certificate` (V-01).
    pub fn upload_detail(&self) -> String {
        self.to_string()
    }

    /// The `detail` of the onboarding join (V-02).
    pub fn join_detail(&self) -> String {
        match self {
            CaError::Invalid(_) => {
                "Invalid CA certificate: could not parse or validate the submitted PEM".into()
            }
            CaError::NotCa => {
                "Submitted certificate is not a CA (BasicConstraints CA=false)".into()
            }
            CaError::RsaKeyTooSmall(bits) => {
                format!("CA RSA key too small ({bits} bits) — minimum 2048 required")
            }
            CaError::OutsideValidity => self.to_string(),
        }
    }
}

/// §1.5: the PEM parses as a certificate; BasicConstraints is present with CA=true; an RSA key
/// has at least 2048 bits; `now` (Unix seconds) is within the validity window. Issuer,
/// self-signature, KeyUsage and pathLen are not checked, as in the reference.
pub fn accept_org_ca(pem: &str, now: i64) -> Result<Certificate, CaError> {
    let cert = Certificate::from_pem(pem).map_err(|err| CaError::Invalid(err.to_string()))?;
    match cert.basic_constraints() {
        // Python's ExtensionNotFound text, which the reference puts in this detail.
        None => {
            return Err(CaError::Invalid(
                "No <class 'cryptography.x509.extensions.BasicConstraints'> extension was found"
                    .into(),
            ))
        }
        Some(bc) if !bc.ca => return Err(CaError::NotCa),
        Some(_) => {}
    }
    match cert.key_description() {
        KeyDescription::Rsa { bits } if bits < 2048 => return Err(CaError::RsaKeyTooSmall(bits)),
        KeyDescription::Rsa { .. } | KeyDescription::Ec(Ok(_)) => {}
        KeyDescription::Ec(Err(curve)) => {
            return Err(CaError::Invalid(format!(
                "unsupported CA key curve '{curve}' — use RSA (2048+) or EC P-256, P-384, or P-521"
            )))
        }
        KeyDescription::Other(kind) => {
            return Err(CaError::Invalid(format!(
                "unsupported CA key type '{kind}' — use RSA (2048+) or EC P-256, P-384, or P-521"
            )))
        }
        KeyDescription::Malformed => {
            return Err(CaError::Invalid("malformed CA public key".into()))
        }
    }
    if !cert.is_valid_at(now) {
        return Err(CaError::OutsideValidity);
    }
    Ok(cert)
}

// ---------------------------------------------------------------------------------------------
// Agent leaf at login
// ---------------------------------------------------------------------------------------------

/// Why an agent certificate was refused at login. [`Display`](std::fmt::Display) is the
/// reference `detail`; [`LeafError::http_status`] the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// T-06.
    #[error("Invalid agent certificate")]
    InvalidCertificate,
    /// T-07.
    #[error("Cert missing CN or O")]
    MissingCnOrO,
    /// T-11 (500): the stored org CA is not a CA certificate.
    #[error("Broker configuration error: invalid org CA certificate")]
    InvalidOrgCa,
    /// T-12.
    #[error("Agent certificate uses a weak signature algorithm — SHA-256 or stronger required")]
    WeakSignatureAlgorithm,
    /// T-13.
    #[error("Agent certificate not signed by the registered org CA")]
    NotSignedByOrgCa,
    /// T-14: the org CA key cannot verify (unsupported key or algorithm combination).
    #[error("Certificate chain verification failed")]
    ChainVerificationFailed,
    /// DESIGN decision 2: a CA certificate is never an agent identity.
    #[error("Agent certificate must not be a CA certificate")]
    LeafIsCa,
    /// T-15.
    #[error("Agent RSA key too small ({0} bits) — minimum 2048 required")]
    RsaKeyTooSmall(usize),
    /// T-16.
    #[error("Agent EC curve '{0}' not allowed — use P-256, P-384, or P-521")]
    CurveNotAllowed(String),
    /// A key type the reference let through to fail later (Ed25519, DSA, …).
    #[error("Agent key type '{0}' not allowed — use RSA (2048+) or EC P-256, P-384, or P-521")]
    KeyTypeNotAllowed(String),
    /// T-17.
    #[error("Agent certificate EKU does not include clientAuth (1.3.6.1.5.5.7.3.2)")]
    MissingClientAuth,
    /// T-18.
    #[error("Agent certificate expired or not yet valid")]
    OutsideValidity,
    /// The CN is not `<org>::<agent>` with SPIFFE-safe parts (a 500 in the reference).
    #[error("Agent certificate CN is not a valid agent id — expected '<org_id>::<agent_name>'")]
    InvalidAgentId,
    /// T-23.
    #[error("SPIFFE ID in SAN does not match the registered agent")]
    SpiffeSanMismatch,
    /// T-23b.
    #[error("Certificate missing SPIFFE SAN URI (require_spiffe_san=true)")]
    MissingSpiffeSan,
    /// The configured trust domain is invalid (500).
    #[error("Broker configuration error: invalid trust domain")]
    InvalidTrustDomain,
}

impl LeafError {
    /// 500 for broker configuration errors, 401 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            LeafError::InvalidOrgCa | LeafError::InvalidTrustDomain => 500,
            _ => 401,
        }
    }
}

/// An agent certificate that passed every check of [`verify_agent_leaf`].
#[derive(Debug, Clone)]
pub struct VerifiedAgent {
    /// The first CN: `<org>::<agent>`.
    pub agent_id: String,
    /// The first O.
    pub org_id: String,
    /// `spiffe://<trust_domain>/<org>/<agent>` computed from the CN (the access token `sub`).
    pub spiffe_id: SpiffeId,
    /// SHA-256 of the DER as presented, lowercase hex.
    pub thumbprint: String,
    /// Serial as lowercase minimal hex (the revocation key).
    pub serial_hex: String,
    pub public_key: PublicKey,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// The parsed certificate (for pinning its PEM).
    pub certificate: Certificate,
}

/// A parsed agent certificate with its identity (§2.3 steps c–d), before any trust decision.
#[derive(Debug, Clone)]
pub struct AgentLeaf {
    cert: Certificate,
    agent_id: String,
    org_id: String,
}

impl AgentLeaf {
    /// Steps c–d: DER parse (T-06), first CN and first O (T-07).
    pub fn parse(der: &[u8]) -> Result<AgentLeaf, LeafError> {
        let cert = Certificate::from_der(der).map_err(|_| LeafError::InvalidCertificate)?;
        let (Some(agent_id), Some(org_id)) = (cert.common_name(), cert.organization()) else {
            return Err(LeafError::MissingCnOrO);
        };
        Ok(AgentLeaf {
            agent_id: agent_id.to_owned(),
            org_id: org_id.to_owned(),
            cert,
        })
    }

    /// The first CN.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The first O: the org whose CA must have signed this certificate.
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// Steps f–k: org CA is a CA (T-11), signature hash (T-12), signature by the org CA
    /// (T-13/T-14), leaf not a CA, key size / curve (T-15/T-16), EKU (T-17), validity (T-18).
    /// Returns the leaf's public key.
    pub fn verify_chain(&self, org_ca: &Certificate, now: i64) -> Result<PublicKey, LeafError> {
        // f
        if !org_ca.is_ca() {
            return Err(LeafError::InvalidOrgCa);
        }
        // g: RSASSA-PSS and DSA name a SHA-2 hash, so the reference lets them through here and
        // they fail the PKCS#1 v1.5 / ECDSA check of step h instead.
        match self.cert.signature_algorithm() {
            Ok(_) => {}
            Err(SignatureAlgError::Weak(_)) => return Err(LeafError::WeakSignatureAlgorithm),
            Err(SignatureAlgError::Unsupported(_)) => return Err(LeafError::NotSignedByOrgCa),
        }
        // h
        let ca_key = org_ca
            .public_key()
            .map_err(|_| LeafError::ChainVerificationFailed)?;
        match self.cert.verify_signed_by(&ca_key) {
            Ok(()) => {}
            Err(ChainError::BadSignature) => return Err(LeafError::NotSignedByOrgCa),
            Err(ChainError::Algorithm(_) | ChainError::UnsupportedIssuerKey(_)) => {
                return Err(LeafError::ChainVerificationFailed)
            }
        }
        // New rule, between the chain and the key checks.
        if self.cert.is_ca() {
            return Err(LeafError::LeafIsCa);
        }
        // i
        let public_key = check_leaf_key(&self.cert)?;
        // j
        if !self.cert.allows_client_auth() {
            return Err(LeafError::MissingClientAuth);
        }
        // k
        if !self.cert.is_valid_at(now) {
            return Err(LeafError::OutsideValidity);
        }
        Ok(public_key)
    }

    /// The SPIFFE id the CN maps to in `trust_domain` (what `sub`/`iss` may also be).
    pub fn expected_spiffe_id(&self, trust_domain: &str) -> Result<SpiffeId, LeafError> {
        spiffe::validate_trust_domain(trust_domain).map_err(|_| LeafError::InvalidTrustDomain)?;
        spiffe::internal_to_spiffe(&self.agent_id, trust_domain).map_err(|err| match err {
            SpiffeError::InvalidTrustDomain(_) => LeafError::InvalidTrustDomain,
            _ => LeafError::InvalidAgentId,
        })
    }

    /// Step p: if the certificate has `spiffe://` URI SANs, one must equal the expected id
    /// (T-23); if it has none and `require_spiffe_san`, refuse (T-23b).
    pub fn check_spiffe_san(
        &self,
        trust_domain: &str,
        require_spiffe_san: bool,
    ) -> Result<SpiffeId, LeafError> {
        let expected = self.expected_spiffe_id(trust_domain)?;
        let mut sans = self.cert.spiffe_uris().peekable();
        if sans.peek().is_some() {
            if !sans.any(|uri| uri == expected.as_str()) {
                return Err(LeafError::SpiffeSanMismatch);
            }
        } else if require_spiffe_san {
            return Err(LeafError::MissingSpiffeSan);
        }
        Ok(expected)
    }

    /// Steps f–k then p.
    pub fn verify(
        self,
        org_ca: &Certificate,
        now: i64,
        trust_domain: &str,
        require_spiffe_san: bool,
    ) -> Result<VerifiedAgent, LeafError> {
        let public_key = self.verify_chain(org_ca, now)?;
        let spiffe_id = self.check_spiffe_san(trust_domain, require_spiffe_san)?;
        Ok(VerifiedAgent {
            thumbprint: self.cert.thumbprint().to_owned(),
            serial_hex: self.cert.serial_hex().to_owned(),
            not_after: self.cert.not_after(),
            agent_id: self.agent_id,
            org_id: self.org_id,
            spiffe_id,
            public_key,
            certificate: self.cert,
        })
    }
}

/// §1.6 in the order of §2.3 (c, d, f–k, p) for a leaf whose org CA the caller already holds.
/// `now` is Unix seconds. Org lookup, revocation and the assertion JWT are the caller's.
pub fn verify_agent_leaf(
    leaf_der: &[u8],
    org_ca: &Certificate,
    now: i64,
    trust_domain: &str,
    require_spiffe_san: bool,
) -> Result<VerifiedAgent, LeafError> {
    AgentLeaf::parse(leaf_der)?.verify(org_ca, now, trust_domain, require_spiffe_san)
}

/// Step i: RSA ≥ 2048, EC on P-256/P-384/P-521, nothing else.
fn check_leaf_key(cert: &Certificate) -> Result<PublicKey, LeafError> {
    match cert.key_description() {
        KeyDescription::Rsa { bits } if bits < 2048 => return Err(LeafError::RsaKeyTooSmall(bits)),
        KeyDescription::Ec(Err(curve)) => return Err(LeafError::CurveNotAllowed(curve)),
        KeyDescription::Other(kind) => return Err(LeafError::KeyTypeNotAllowed(kind)),
        KeyDescription::Malformed => return Err(LeafError::InvalidCertificate),
        KeyDescription::Rsa { .. } | KeyDescription::Ec(Ok(_)) => {}
    }
    let key = cert
        .public_key()
        .map_err(|_| LeafError::InvalidCertificate)?;
    debug_assert!(!matches!(key.kind(), KeyKind::Rsa { bits } if bits < 2048));
    Ok(key)
}

// ---------------------------------------------------------------------------------------------
// Rotation
// ---------------------------------------------------------------------------------------------

/// Why a rotate-cert certificate was refused (V-03, all HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error("Invalid PEM certificate")]
    InvalidPem,
    #[error("Certificate CN does not match agent_id")]
    CnMismatch,
    #[error("Certificate not signed by the organization CA")]
    NotSignedByOrgCa,
    #[error("Certificate chain verification failed: {0}")]
    ChainVerificationFailed(String),
    /// DESIGN decision 2.
    #[error("Agent certificate must not be a CA certificate")]
    LeafIsCa,
    #[error("Certificate is expired or not yet valid")]
    OutsideValidity,
}

/// §1.7 rotate-cert: the PEM parses, its first CN is `agent_id`, the org CA signed it (RSA
/// PKCS#1 v1.5 or, unlike the reference, ECDSA), it is not a CA, and `now` is in its validity
/// window. Revocation, EKU, key size and SAN are not checked here, as in the reference (the next
/// login checks them).
pub fn verify_rotation_cert(
    pem: &str,
    agent_id: &str,
    org_ca: &Certificate,
    now: i64,
) -> Result<Certificate, RotationError> {
    let cert = Certificate::from_pem(pem).map_err(|_: CertError| RotationError::InvalidPem)?;
    if cert.common_name() != Some(agent_id) {
        return Err(RotationError::CnMismatch);
    }
    let ca_key = org_ca
        .public_key()
        .map_err(|err| RotationError::ChainVerificationFailed(err.to_string()))?;
    match cert.verify_signed_by(&ca_key) {
        Ok(()) => {}
        // PSS / DSA name a SHA-2 hash; the reference's PKCS#1 v1.5 check rejects them as
        // "not signed", and so do we.
        Err(
            ChainError::BadSignature | ChainError::Algorithm(SignatureAlgError::Unsupported(_)),
        ) => return Err(RotationError::NotSignedByOrgCa),
        Err(other) => return Err(RotationError::ChainVerificationFailed(other.to_string())),
    }
    if cert.is_ca() {
        return Err(RotationError::LeafIsCa);
    }
    if !cert.is_valid_at(now) {
        return Err(RotationError::OutsideValidity);
    }
    Ok(cert)
}

#[cfg(test)]
mod tests;
