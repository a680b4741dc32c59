//! The audit log's hash chain formula (broker spec §8.2), the one thing a broker writing the
//! chain and anyone verifying an exported log must compute alike.
//!
//! `entry_hash = sha256_hex(id|timestamp|event_type|agent_id|session_id|org_id|result|details|
//! previous_hash_or_"genesis")`, with the timestamp in Python's isoformat.

use crate::encoding::python::stored_isoformat;
use sha2::{Digest, Sha256};

/// The chained fields of one audit row, as stored.
#[derive(Debug, Clone, Copy)]
pub struct ChainFields<'a> {
    pub id: i64,
    /// The stored timestamp (RFC 3339 text); hashed in its Python isoformat.
    pub timestamp: &'a str,
    pub event_type: &'a str,
    pub agent_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub org_id: Option<&'a str>,
    pub result: &'a str,
    pub details: Option<&'a str>,
    pub previous_hash: Option<&'a str>,
}

/// §8.2: lowercase hex SHA-256 of the nine fields joined by `|` (absent ⇒ empty, no previous
/// hash ⇒ `genesis`).
pub fn entry_hash(fields: &ChainFields<'_>) -> String {
    let id = fields.id.to_string();
    let timestamp = stored_isoformat(fields.timestamp);
    let parts: [&str; 9] = [
        &id,
        &timestamp,
        fields.event_type,
        fields.agent_id.unwrap_or(""),
        fields.session_id.unwrap_or(""),
        fields.org_id.unwrap_or(""),
        fields.result,
        fields.details.unwrap_or(""),
        fields.previous_hash.unwrap_or("genesis"),
    ];
    hex::encode(Sha256::digest(parts.join("|").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_of_a_fixed_row_matches_the_reference_formula() {
        // Values computed with the reference formula in Python:
        // hashlib.sha256("|".join([str(id), ts.isoformat(), ...]).encode()).hexdigest()
        let first = ChainFields {
            id: 1,
            timestamp: "2026-04-08T12:00:00.123456Z",
            event_type: "binding.created",
            agent_id: Some("acme::buyer"),
            session_id: None,
            org_id: Some("acme"),
            result: "ok",
            details: Some(r#"{"binding_id": 1}"#),
            previous_hash: None,
        };
        // 1|2026-04-08T12:00:00.123456+00:00|binding.created|acme::buyer||acme|ok|{"binding_id": 1}|genesis
        let previous = entry_hash(&first);
        assert_eq!(
            previous,
            "54a3c1367856942f57c4b77c5e0e95224d9e6dd52ba515fe428f0d72ebc6a22b"
        );
        // A whole second (no fraction in the isoformat), nothing optional, previous chained:
        // 2|2026-04-08T12:00:01+00:00|auth.token_issued||||ok||54a3…a22b
        let second = ChainFields {
            id: 2,
            timestamp: "2026-04-08T12:00:01.000000Z",
            event_type: "auth.token_issued",
            agent_id: None,
            session_id: None,
            org_id: None,
            result: "ok",
            details: None,
            previous_hash: Some(&previous),
        };
        assert_eq!(
            entry_hash(&second),
            "603f0d8fd43446e208832db316fe1b81af9165ca1fcf89cc57f30f40b56afe78"
        );
    }
}
