//! `cullis-shared`: the one place where the wire formats and cryptography that the Cullis broker
//! and proxy both speak are defined, bit-compatible with the Python reference.
//!
//! No I/O and no server code lives here: every function is a pure transformation or check, so the
//! broker, the proxy and the tests all agree on one implementation.
//!
//! | module | what |
//! |---|---|
//! | [`encoding`] | base64 forms, Python-exact canonical JSON, Python `json.dumps` / `isoformat` |
//! | [`audit_chain`] | the audit log's hash chain formula |
//! | [`keys`] | RSA / EC keys, signatures, RSA-OAEP, ECDH |
//! | [`jose`] | JWK thumbprints, JWS, DPoP, client assertions, access tokens |
//! | [`signature`] | the message signing string and message signatures |
//! | [`envelope`] | E2E envelopes: seal and open |
//! | [`pki`] | org and broker CAs, agent certificates, CA and leaf checks, SPIFFE ids |
//! | [`replay`] | single-use identifier stores (DPoP `jti`, nonces) |
//! | [`logging`] | the JSON log line format of both binaries |
//! | [`memo`] | a bounded in-memory map for hot lookups |
//! | [`wire`] | serde types of every API body |

pub mod audit_chain;
pub mod encoding;
pub mod envelope;
pub mod jose;
pub mod keys;
pub mod logging;
pub mod memo;
pub mod pki;
mod pss;
pub mod replay;
pub mod signature;
pub mod wire;
