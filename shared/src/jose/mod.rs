//! JOSE as Cullis uses it: JWKs and their RFC 7638 thumbprints, compact JWS with a strict
//! algorithm allow-list, DPoP proofs (RFC 9449), x509 client assertions, the broker's access
//! tokens and its single-use transaction tokens.

pub mod access_token;
pub mod assertion;
pub mod dpop;
pub mod htu;
pub mod jwk;
pub mod jws;
mod python;
pub mod transaction_token;
