//! PKI: the certificates Cullis trusts and how it checks them (ref-auth-crypto §1).
//!
//! The broker verifies exactly one link per agent: the agent's leaf certificate must be signed
//! by the CA certificate its organisation registered. This module holds everything about that
//! link and nothing about storage or HTTP:
//!
//! * [`spiffe`]: agent ids (`<org>::<agent>`), SPIFFE ids, and the registration rules for both;
//! * [`cert`]: a parsed [`Certificate`] that keeps its DER, with thumbprint, serial, subject,
//!   extensions and signature verification;
//! * [`ca`]: [`OrgCa`] (generate or load an org CA, issue agent certificates) and [`BrokerCa`]
//!   (the broker root of `generate_certs.py`);
//! * [`verify`]: the broker's three checks — [`accept_org_ca`], [`verify_agent_leaf`] and
//!   [`verify_rotation_cert`] — whose errors display the reference's exact `detail` texts.
//!
//! All signature checks go through [`crate::keys`] (aws-lc-rs). Times are Unix seconds.

pub mod ca;
pub mod cert;
pub mod spiffe;
pub mod verify;

#[cfg(test)]
mod testutil;

pub use ca::{AgentCertSpec, BrokerCa, BrokerCaKey, CaBuildError, OrgCa};
pub use cert::{
    normalize_serial_hex, CertError, Certificate, ChainError, InvalidSerial, KeyDescription,
    SignatureAlgError,
};
pub use spiffe::{
    internal_to_spiffe, spiffe_to_internal, validate_agent_id, validate_org_id,
    validate_trust_domain, IdError, SpiffeError, SpiffeId,
};
pub use verify::{
    accept_org_ca, verify_agent_leaf, verify_rotation_cert, AgentLeaf, CaError, LeafError,
    RotationError, VerifiedAgent,
};
