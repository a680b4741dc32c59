//! Memo of access tokens this broker already verified.
//!
//! Every agent request presents its token; verifying the broker's own signature on it again is
//! one public-key operation per request (an ECDSA verify for the default P-256 key). A token's
//! bytes fully determine the outcome of every check except expiry, so a verified token is
//! remembered under its SHA-256 until it expires; expiry is checked on every use, and so is its
//! signing key (an emergency `keys retire` cuts remembered tokens off too — a hash lookup in
//! the replica's key snapshot). Revocation is unaffected: it is the per-agent watermark, read
//! from the database on each request.

use crate::keyring::{KeyError, KeyRing};
use cullis_shared::jose::access_token::{AccessTokenClaims, TokenError};
use cullis_shared::memo::Memo;
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Debug)]
pub struct CachedTokenVerifier {
    keys: Arc<KeyRing>,
    verified: Memo<[u8; 32], (AccessTokenClaims, Arc<str>)>,
}

impl CachedTokenVerifier {
    pub fn new(keys: Arc<KeyRing>, capacity: usize) -> CachedTokenVerifier {
        CachedTokenVerifier {
            keys,
            verified: Memo::new(capacity),
        }
    }

    /// [`KeyRing::verify_access`], answered from memory for a token verified before.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessTokenClaims, KeyError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((claims, kid)) = self.verified.get(&key) {
            crate::telemetry::metrics().token_cache_lookup(true);
            self.keys.accepts(&kid, now)?;
            // Same rule as the full check: expired when `exp <= now`, no leeway.
            return if claims.exp > now {
                Ok(claims)
            } else {
                Err(KeyError::Token(TokenError::Expired))
            };
        }
        crate::telemetry::metrics().token_cache_lookup(false);
        let (claims, kid) = self.keys.verify_access(token, now)?;
        self.verified.insert(key, (claims.clone(), Arc::from(kid)));
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KmsConfig;
    use crate::db::signing_keys::KeyStatus;
    use crate::db::test_support::db;
    use crate::kms::{BrokerKeys, Kms};
    use cullis_shared::jose::access_token::{TokenSigner, AUDIENCE, ISSUER};
    use cullis_shared::keys::{KeyType, PrivateKey};

    fn claims(now: i64) -> AccessTokenClaims {
        serde_json::from_value(serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE,
            "sub": "spiffe://atn.local/acme/buyer", "agent_id": "acme::buyer", "org": "acme",
            "scope": [], "iat": now, "exp": now + 60, "jti": "j-1", "cnf": {"jkt": "thumb"}
        }))
        .unwrap()
    }

    fn keys(key: &PrivateKey) -> BrokerKeys {
        let signer = TokenSigner::new(PrivateKey::from_pem(&key.to_pkcs8_pem()).unwrap()).unwrap();
        let verifier = signer.verifier();
        BrokerKeys { signer, verifier }
    }

    #[tokio::test]
    async fn remembered_tokens_follow_rotation_retirement_and_expiry() {
        let (db, scratch) = db().await;
        let kms = Kms::new(KmsConfig::Local {
            key_path: scratch.path().join("broker-ca-key.pem"),
            cert_path: scratch.path().join("broker-ca.pem"),
        });
        let first = PrivateKey::generate(KeyType::EcP256).unwrap();
        let ring = Arc::new(
            KeyRing::open(db.clone(), kms.clone(), keys(&first), 1800, true)
                .await
                .unwrap(),
        );
        let cache = CachedTokenVerifier::new(ring.clone(), 16);
        let now = crate::db::unix_now();
        let old = ring.signer().sign(&claims(now)).unwrap();
        assert_eq!(cache.verify(&old, now).unwrap().agent_id, "acme::buyer");

        // Rotation: the new key signs, the old token (remembered) still verifies.
        let second = PrivateKey::generate(KeyType::EcP256).unwrap();
        let kid = cullis_shared::jose::jwk::key_thumbprint(second.public_key());
        kms.store_signing_key(&kid, &second).await.unwrap();
        let pem = second.public_key().to_spki_pem();
        assert!(db
            .add_signing_key(&kid, "ES256", &pem, KeyStatus::Next, now)
            .await
            .unwrap());
        assert!(db.activate_signing_key(&kid, now).await.unwrap());
        ring.reload().await.unwrap();
        assert_eq!(ring.signer().kid(), kid);
        assert!(cache.verify(&old, now).is_ok());
        assert_eq!(ring.jwks(now).len(), 2);
        let new = ring.signer().sign(&claims(now)).unwrap();
        assert!(cache.verify(&new, now).is_ok());

        // Emergency retire: the remembered token is refused, with the reason.
        let first_kid = TokenSigner::new(first).unwrap().kid().to_owned();
        assert_eq!(
            db.retire_signing_key(&first_kid, now).await.unwrap(),
            Some(KeyStatus::Previous)
        );
        ring.reload().await.unwrap();
        assert_eq!(cache.verify(&old, now), Err(KeyError::Retired));
        assert_eq!(ring.jwks(now).len(), 1);
        // Expiry still applies to remembered tokens.
        assert_eq!(
            cache.verify(&new, now + 60),
            Err(KeyError::Token(TokenError::Expired))
        );
        // A previous key stops verifying once its tokens cannot be valid any more.
        assert!(
            ring.accepts(&kid, now + 10 * 86_400).is_ok(),
            "active keys do not age out"
        );
    }
}
