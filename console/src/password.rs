//! Console passwords are bcrypt hashes. Both calls take tens to hundreds of milliseconds on
//! purpose: call them from `spawn_blocking`, never on an async worker.

/// The reference's cost (12 rounds).
pub const COST: u32 = 12;

/// Hashes a new password.
pub fn hash(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(password, cost)
}

/// True when `password` matches `stored_hash`; a malformed hash is a mismatch, not an error.
pub fn verify(password: &str, stored_hash: &str) -> bool {
    bcrypt::verify(password, stored_hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = super::hash("correct horse battery", 4).unwrap();
        assert!(super::verify("correct horse battery", &stored));
        assert!(!super::verify("correct horse batterY", &stored));
        assert!(!super::verify("anything", "not a bcrypt hash"));
    }
}
