//! Local API keys `sk_local_<name>_<32 hex>`: stored only as HMAC-SHA256(server key, api key),
//! looked up by the name the key carries (O(1), no scan over agents), compared in constant time.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Every local API key starts with this.
pub const PREFIX: &str = "sk_local_";
const RANDOM_HEX_LEN: usize = 32;

/// The server-side HMAC key (32 random bytes kept in custody).
#[derive(Clone)]
pub struct ApiKeyHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for ApiKeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeyHasher(..)")
    }
}

impl ApiKeyHasher {
    pub fn new(key: [u8; 32]) -> ApiKeyHasher {
        ApiKeyHasher { key }
    }

    /// A fresh HMAC key.
    pub fn generate_key() -> [u8; 32] {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        key
    }

    /// The stored form of `api_key` (hex).
    pub fn hash(&self, api_key: &str) -> String {
        hex::encode(self.mac(api_key))
    }

    /// Whether `api_key` matches `stored_hash`, in constant time.
    pub fn verify(&self, api_key: &str, stored_hash: &str) -> bool {
        let Ok(stored) = hex::decode(stored_hash) else {
            return false;
        };
        self.mac(api_key).ct_eq(stored.as_slice()).into()
    }

    fn mac(&self, api_key: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(api_key.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// A new API key for agent `name`.
pub fn generate(name: &str) -> String {
    let mut random = [0u8; RANDOM_HEX_LEN / 2];
    rand::rngs::OsRng.fill_bytes(&mut random);
    format!("{PREFIX}{name}_{}", hex::encode(random))
}

/// The agent name a well-formed key carries (`None` if the key is malformed).
pub fn name_of(api_key: &str) -> Option<&str> {
    let rest = api_key.strip_prefix(PREFIX)?;
    // Names may contain `_`; the random part is the last segment.
    let (name, random) = rest.rsplit_once('_')?;
    let well_formed = !name.is_empty()
        && random.len() == RANDOM_HEX_LEN
        && random.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_parse_hash_verify() {
        let key = generate("order_bot");
        assert!(key.starts_with("sk_local_order_bot_"));
        assert_eq!(name_of(&key), Some("order_bot"));
        let hasher = ApiKeyHasher::new([1; 32]);
        let hash = hasher.hash(&key);
        assert!(hasher.verify(&key, &hash));
        assert!(!hasher.verify(&generate("order_bot"), &hash));
        assert!(!ApiKeyHasher::new([2; 32]).verify(&key, &hash));
        assert!(!hasher.verify(&key, "not-hex"));
    }

    #[test]
    fn malformed_keys_have_no_name() {
        for bad in [
            "",
            "bogus",
            "sk_local_",
            "sk_local_buyer",
            "sk_local_buyer_xyz",
            "sk_local__0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(name_of(bad), None, "{bad}");
        }
    }
}
