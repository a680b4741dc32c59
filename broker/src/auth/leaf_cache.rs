//! Memo of agent certificates already verified against an org CA.
//!
//! The chain checks of a login (CA signature — a P-384 verify for our default CAs — key size,
//! EKU, not-a-CA) depend only on the two certificates, so their outcome is remembered under
//! (SHA-256 of the leaf DER, SHA-256 of the CA PEM). The time-dependent checks (validity) and
//! revocation still run on every login. A CA replacement changes the CA hash, so nothing
//! verified under the old CA is reused.
//!
//! It also remembers the public key of each pinned certificate the message path verifies
//! envelope signatures with, under the SHA-256 of the PEM: a rotated certificate is a new PEM,
//! so it is parsed afresh.

use cullis_shared::keys::PublicKey;
use cullis_shared::memo::Memo;
use cullis_shared::pki::cert::Certificate;
use sha2::{Digest, Sha256};

#[derive(Debug)]
pub struct LeafCache {
    verified: Memo<(String, [u8; 32]), PublicKey>,
    pinned_keys: Memo<[u8; 32], PublicKey>,
}

impl LeafCache {
    pub fn new(capacity: usize) -> LeafCache {
        LeafCache {
            verified: Memo::new(capacity),
            pinned_keys: Memo::new(capacity),
        }
    }

    /// The public key of a pinned certificate (PEM), parsed once; `None` if it does not parse.
    pub fn pinned_key(&self, cert_pem: &str) -> Option<PublicKey> {
        let id: [u8; 32] = Sha256::digest(cert_pem.as_bytes()).into();
        if let Some(key) = self.pinned_keys.get(&id) {
            return Some(key);
        }
        let key = Certificate::from_pem(cert_pem).ok()?.public_key().ok()?;
        self.pinned_keys.insert(id, key.clone());
        Some(key)
    }

    fn ca_id(ca_pem: &str) -> [u8; 32] {
        Sha256::digest(ca_pem.as_bytes()).into()
    }

    /// The leaf's public key if this exact leaf was verified under this exact CA before.
    pub fn get(&self, leaf_thumbprint: &str, ca_pem: &str) -> Option<PublicKey> {
        self.verified
            .get(&(leaf_thumbprint.to_owned(), Self::ca_id(ca_pem)))
    }

    pub fn insert(&self, leaf_thumbprint: &str, ca_pem: &str, key: PublicKey) {
        self.verified
            .insert((leaf_thumbprint.to_owned(), Self::ca_id(ca_pem)), key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cullis_shared::keys::{KeyType, PrivateKey};

    #[test]
    fn hits_only_for_the_same_leaf_under_the_same_ca() {
        let cache = LeafCache::new(2);
        let key = PrivateKey::generate(KeyType::EcP256)
            .unwrap()
            .public_key()
            .clone();
        cache.insert("leaf-a", "ca-1", key.clone());
        assert_eq!(cache.get("leaf-a", "ca-1"), Some(key.clone()));
        assert_eq!(cache.get("leaf-a", "ca-2"), None);
        assert_eq!(cache.get("leaf-b", "ca-1"), None);
        cache.insert("leaf-b", "ca-1", key.clone());
        cache.insert("leaf-c", "ca-1", key);
        assert_eq!(cache.get("leaf-a", "ca-1"), None, "cleared when full");
    }

    #[test]
    fn a_pinned_key_is_the_certificates_and_garbage_has_none() {
        let ca = cullis_shared::pki::OrgCa::generate("acme", KeyType::EcP256, 30).unwrap();
        let agent = PrivateKey::generate(KeyType::EcP256).unwrap();
        let cert = ca
            .issue_agent_cert("acme", "buyer", "atn.local", agent.public_key(), 30)
            .unwrap();
        let cache = LeafCache::new(4);
        let pem = cert.to_pem();
        assert_eq!(cache.pinned_key(&pem).as_ref(), Some(agent.public_key()));
        assert_eq!(
            cache.pinned_key(&pem).as_ref(),
            Some(agent.public_key()),
            "memoised"
        );
        assert_eq!(cache.pinned_key("not a certificate"), None);
    }
}
