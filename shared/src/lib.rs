//! `cullis-shared`: the one place where the wire formats and cryptography that the Cullis broker
//! and proxy both speak are defined, bit-compatible with the Python reference.
//!
//! No I/O and no server code lives here: every function is a pure transformation or check, so the
//! broker, the proxy and the tests all agree on one implementation.

pub mod encoding;
pub mod keys;
pub mod pki;
mod pss;
pub mod wire;
