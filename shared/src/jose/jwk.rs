//! Public JWKs and RFC 7638 thumbprints (`jkt`, `cnf.jkt`, the broker `kid`).
//!
//! A thumbprint is taken over the member *strings as received* (ref-auth-crypto §7.2): the
//! verifier never re-encodes coordinates, so a client must keep its JWK text stable between
//! login and later proofs.

use crate::encoding::{b64, canonical_json};
use crate::keys::{Curve, PublicKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A JSON object holding a JWK, as it appears in a JWS header or a JWKS.
pub type JwkObject = Map<String, Value>;

/// Why a JWK could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("JWK is missing a required member or has an unsupported kty")]
    Thumbprint,
    #[error("JWK does not describe a usable public key")]
    InvalidKey,
}

/// RFC 7638 thumbprint: SHA-256 over the canonical JSON of the required members, base64url
/// without padding (43 characters).
pub fn thumbprint(jwk: &JwkObject) -> Result<String, JwkError> {
    let required: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        _ => return Err(JwkError::Thumbprint),
    };
    let mut members = Map::new();
    for name in required {
        let value = jwk
            .get(*name)
            .filter(|v| v.is_string())
            .ok_or(JwkError::Thumbprint)?;
        members.insert((*name).to_owned(), value.clone());
    }
    let digest = Sha256::digest(canonical_json::to_string(&Value::Object(members)));
    Ok(b64::url_unpadded(&digest))
}

/// The public JWK of `key` with only the members RFC 7638 names (EC: `crv`, `kty`, `x`, `y`
/// with coordinates left-padded to the field length; RSA: `e`, `kty`, `n` minimal).
pub fn public_jwk(key: &PublicKey) -> JwkObject {
    let mut jwk = Map::new();
    if let Some((curve, x, y)) = key.ec_coordinates() {
        jwk.insert("crv".into(), curve.jwk_name().into());
        jwk.insert("kty".into(), "EC".into());
        jwk.insert("x".into(), b64::url_unpadded(x).into());
        jwk.insert("y".into(), b64::url_unpadded(y).into());
    } else if let Some((n, e)) = key.rsa_components() {
        jwk.insert("e".into(), b64::url_unpadded(e).into());
        jwk.insert("kty".into(), "RSA".into());
        jwk.insert("n".into(), b64::url_unpadded(n).into());
    }
    jwk
}

/// Thumbprint of a key's own public JWK.
pub fn key_thumbprint(key: &PublicKey) -> String {
    thumbprint(&public_jwk(key)).expect("a JWK built from a key has every required member")
}

/// The public key a JWK describes. EC coordinates must be exactly the field length (as the
/// reference SDK always sends them); RSA `n`/`e` are unsigned big-endian integers.
pub fn public_key_from_jwk(jwk: &JwkObject) -> Result<PublicKey, JwkError> {
    let member = |name: &str| -> Result<Vec<u8>, JwkError> {
        let text = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or(JwkError::InvalidKey)?;
        b64::decode_url(text).map_err(|_| JwkError::InvalidKey)
    };
    match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => {
            let curve = jwk
                .get("crv")
                .and_then(Value::as_str)
                .and_then(Curve::from_jwk_name)
                .ok_or(JwkError::InvalidKey)?;
            PublicKey::from_ec_coordinates(curve, &member("x")?, &member("y")?)
                .map_err(|_| JwkError::InvalidKey)
        }
        Some("RSA") => PublicKey::from_rsa_components(&member("n")?, &member("e")?)
            .map_err(|_| JwkError::InvalidKey),
        _ => Err(JwkError::InvalidKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyType, PrivateKey};
    use serde_json::json;

    fn object(value: Value) -> JwkObject {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn extra_members_do_not_change_the_thumbprint() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let mut jwk = public_jwk(key.public_key());
        let plain = thumbprint(&jwk).unwrap();
        jwk.insert("alg".into(), "ES256".into());
        jwk.insert("kid".into(), "whatever".into());
        assert_eq!(thumbprint(&jwk).unwrap(), plain);
        assert_eq!(plain.len(), 43);
    }

    #[test]
    fn missing_members_and_unknown_kty_are_refused() {
        assert_eq!(
            thumbprint(&object(json!({"kty": "OKP", "crv": "Ed25519", "x": "AA"}))),
            Err(JwkError::Thumbprint)
        );
        assert_eq!(
            thumbprint(&object(json!({"kty": "EC", "crv": "P-256", "x": "AA"}))),
            Err(JwkError::Thumbprint)
        );
        assert_eq!(
            thumbprint(&object(json!({"kty": "RSA", "n": "AA", "e": 3}))),
            Err(JwkError::Thumbprint)
        );
        assert_eq!(
            thumbprint(&object(json!({"n": "AA", "e": "AQAB"}))),
            Err(JwkError::Thumbprint)
        );
    }

    #[test]
    fn jwk_round_trips_to_the_same_key() {
        for key_type in [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048] {
            let key = PrivateKey::generate(key_type).unwrap();
            let jwk = public_jwk(key.public_key());
            assert_eq!(&public_key_from_jwk(&jwk).unwrap(), key.public_key());
        }
    }

    #[test]
    fn short_ec_coordinates_are_refused() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let mut jwk = public_jwk(key.public_key());
        jwk.insert("x".into(), b64::url_unpadded(&[1u8; 31]).into());
        assert_eq!(public_key_from_jwk(&jwk), Err(JwkError::InvalidKey));
        jwk.insert("crv".into(), "secp256k1".into());
        assert_eq!(public_key_from_jwk(&jwk), Err(JwkError::InvalidKey));
    }
}
