//! Memo of access tokens this broker already verified.
//!
//! Every agent request presents its token; verifying the broker's own signature on it again is
//! one public-key operation per request (an ECDSA verify for the default P-256 key). A token's
//! bytes fully determine the outcome of every check except expiry, so a verified token is
//! remembered under its SHA-256 until it expires; expiry is checked on every use. Revocation is
//! unaffected: it is the per-agent watermark, read from the database on each request.

use cullis_shared::jose::access_token::{AccessTokenClaims, TokenError, TokenVerifier};
use cullis_shared::memo::Memo;
use sha2::{Digest, Sha256};

#[derive(Debug)]
pub struct CachedTokenVerifier {
    verifier: TokenVerifier,
    verified: Memo<[u8; 32], AccessTokenClaims>,
}

impl CachedTokenVerifier {
    pub fn new(verifier: TokenVerifier, capacity: usize) -> CachedTokenVerifier {
        CachedTokenVerifier {
            verifier,
            verified: Memo::new(capacity),
        }
    }

    /// [`TokenVerifier::verify`], answered from memory for a token verified before.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessTokenClaims, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&key) {
            // Same rule as the full check: expired when `exp <= now`, no leeway.
            return if claims.exp > now {
                Ok(claims)
            } else {
                Err(TokenError::Expired)
            };
        }
        let claims = self.verifier.verify(token, now)?;
        self.verified.insert(key, claims.clone());
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cullis_shared::jose::access_token::{TokenSigner, AUDIENCE, ISSUER};
    use cullis_shared::keys::{KeyType, PrivateKey};

    const NOW: i64 = 1_700_000_000;

    fn new_signer() -> TokenSigner {
        TokenSigner::new(PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap()
    }

    fn claims(exp: i64) -> AccessTokenClaims {
        serde_json::from_value(serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE,
            "sub": "spiffe://atn.local/acme/buyer", "agent_id": "acme::buyer", "org": "acme",
            "scope": [], "iat": NOW, "exp": exp, "jti": "j-1", "cnf": {"jkt": "thumb"}
        }))
        .unwrap()
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let signer = new_signer();
        let cache = CachedTokenVerifier::new(signer.verifier(), 16);
        let token = signer.sign(&claims(NOW + 60)).unwrap();
        assert_eq!(cache.verify(&token, NOW).unwrap().agent_id, "acme::buyer");
        assert!(cache.verify(&token, NOW + 59).is_ok(), "from memory");
        assert!(matches!(
            cache.verify(&token, NOW + 60),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn a_forged_token_is_never_remembered_as_valid() {
        let signer = new_signer();
        let cache = CachedTokenVerifier::new(signer.verifier(), 16);
        let token = signer.sign(&claims(NOW + 60)).unwrap();
        cache.verify(&token, NOW).unwrap();
        // Same claims, signature from another key: a different token, checked in full.
        let forged = new_signer().sign(&claims(NOW + 60)).unwrap();
        assert!(cache.verify(&forged, NOW).is_err());
        assert!(cache.verify(&forged, NOW).is_err(), "not cached either");
        let mut tampered = token.clone();
        tampered.pop();
        assert!(cache.verify(&tampered, NOW).is_err());
    }
}
