//! Compact JWS with a strict algorithm allow-list.
//!
//! Only ES256 (P-256), ES384 (P-384), RS256 and PS256 exist here: `none` and every HMAC
//! algorithm are unrepresentable, and an algorithm is only ever checked against a key of its
//! own type and curve (no alg/key confusion, ES256 only with P-256).

use crate::encoding::{b64, canonical_json};
use crate::keys::{HashAlg, KeyKind, PrivateKey, PublicKey, SignatureScheme};
use serde_json::{Map, Value};

/// A JWS signature algorithm Cullis accepts somewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwsAlg {
    /// ECDSA P-256 / SHA-256, fixed-width `r‖s` signature.
    ES256,
    /// ECDSA P-384 / SHA-384, fixed-width `r‖s` signature.
    ES384,
    /// RSASSA-PKCS1-v1_5 / SHA-256.
    RS256,
    /// RSASSA-PSS / SHA-256, MGF1-SHA-256, 32-byte salt.
    PS256,
}

impl JwsAlg {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            JwsAlg::ES256 => "ES256",
            JwsAlg::ES384 => "ES384",
            JwsAlg::RS256 => "RS256",
            JwsAlg::PS256 => "PS256",
        }
    }

    /// Parses an `alg` header value; anything outside the four is `None`.
    pub fn from_name(name: &str) -> Option<JwsAlg> {
        match name {
            "ES256" => Some(JwsAlg::ES256),
            "ES384" => Some(JwsAlg::ES384),
            "RS256" => Some(JwsAlg::RS256),
            "PS256" => Some(JwsAlg::PS256),
            _ => None,
        }
    }

    /// The natural algorithm for signing with `key` (RS256 for RSA, ES256/ES384 by curve).
    pub fn for_key(key: &PublicKey) -> Option<JwsAlg> {
        match key.kind() {
            KeyKind::Rsa { .. } => Some(JwsAlg::RS256),
            KeyKind::Ec(crate::keys::Curve::P256) => Some(JwsAlg::ES256),
            KeyKind::Ec(crate::keys::Curve::P384) => Some(JwsAlg::ES384),
            KeyKind::Ec(_) => None,
        }
    }

    /// Whether this algorithm may be used with `key` at all.
    pub fn fits(self, key: &PublicKey) -> bool {
        use crate::keys::Curve;
        matches!(
            (self, key.kind()),
            (JwsAlg::ES256, KeyKind::Ec(Curve::P256))
                | (JwsAlg::ES384, KeyKind::Ec(Curve::P384))
                | (JwsAlg::RS256 | JwsAlg::PS256, KeyKind::Rsa { .. })
        )
    }

    fn scheme(self) -> SignatureScheme {
        match self {
            JwsAlg::ES256 => SignatureScheme::EcdsaFixed(HashAlg::Sha256),
            JwsAlg::ES384 => SignatureScheme::EcdsaFixed(HashAlg::Sha384),
            JwsAlg::RS256 => SignatureScheme::RsaPkcs1(HashAlg::Sha256),
            JwsAlg::PS256 => SignatureScheme::RsaPssSha256Salt32,
        }
    }
}

/// Why a JWS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("malformed JWS")]
    Malformed,
    #[error("algorithm does not fit the key")]
    AlgorithmMismatch,
    #[error("signature verification failed")]
    BadSignature,
    #[error("payload is not a JSON object")]
    BadPayload,
    #[error("signing failed")]
    SigningFailed,
    #[error("unsupported critical header")]
    UnsupportedCritical,
}

/// A compact JWS split into its parts; nothing is verified yet.
#[derive(Debug, Clone)]
pub struct CompactJws<'a> {
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
    /// The decoded protected header.
    pub header: Map<String, Value>,
}

impl<'a> CompactJws<'a> {
    /// Splits `token` and decodes its header (a JSON object) and signature.
    pub fn parse(token: &'a str) -> Result<CompactJws<'a>, JwsError> {
        let (signing_input, signature_b64) = token.rsplit_once('.').ok_or(JwsError::Malformed)?;
        let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(JwsError::Malformed)?;
        if payload_b64.contains('.') {
            return Err(JwsError::Malformed);
        }
        let header_bytes = b64::decode_url(header_b64).map_err(|_| JwsError::Malformed)?;
        let header = match serde_json::from_slice(&header_bytes) {
            Ok(Value::Object(map)) => map,
            _ => return Err(JwsError::Malformed),
        };
        let signature = b64::decode_url(signature_b64).map_err(|_| JwsError::Malformed)?;
        Ok(CompactJws {
            signing_input,
            payload_b64,
            signature,
            header,
        })
    }

    /// The `alg` header member if it names an allowed algorithm.
    pub fn alg(&self) -> Option<JwsAlg> {
        self.header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(JwsAlg::from_name)
    }

    /// RFC 7515 §4.1.11: a recipient must refuse a JWS whose `crit` names an extension it does
    /// not understand. Cullis understands none, so any `crit` member — well-formed or not — is
    /// refused. Every verifier calls this before looking at the signature.
    pub fn reject_critical(&self) -> Result<(), JwsError> {
        if self.header.contains_key("crit") {
            return Err(JwsError::UnsupportedCritical);
        }
        Ok(())
    }

    /// Verifies the signature with exactly `alg` under `key`, then decodes the claims object.
    pub fn verify(&self, alg: JwsAlg, key: &PublicKey) -> Result<Map<String, Value>, JwsError> {
        if !alg.fits(key) {
            return Err(JwsError::AlgorithmMismatch);
        }
        key.verify(alg.scheme(), self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JwsError::BadSignature)?;
        self.claims_unverified()
    }

    /// The claims without verification — only for reading a header-bound key's claims before
    /// the caller verifies, never for a decision.
    pub fn claims_unverified(&self) -> Result<Map<String, Value>, JwsError> {
        let bytes = b64::decode_url(self.payload_b64).map_err(|_| JwsError::BadPayload)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(JwsError::BadPayload),
        }
    }
}

/// Signs `claims` with `key` as a compact JWS. The header is written with sorted keys (as
/// PyJWT does) and gets `alg` added; claims keep the caller's member order.
pub fn sign(
    mut header: Map<String, Value>,
    claims: &impl serde::Serialize,
    alg: JwsAlg,
    key: &PrivateKey,
) -> Result<String, JwsError> {
    if !alg.fits(key.public_key()) {
        return Err(JwsError::AlgorithmMismatch);
    }
    header.insert("alg".into(), alg.name().into());
    let header_json = canonical_json::to_string(&Value::Object(header));
    let claims_json = serde_json::to_vec(claims).map_err(|_| JwsError::SigningFailed)?;
    let mut token = String::with_capacity(header_json.len() * 2 + claims_json.len() * 2 + 400);
    token.push_str(&b64::url_unpadded(header_json.as_bytes()));
    token.push('.');
    token.push_str(&b64::url_unpadded(&claims_json));
    let signature = key
        .sign(alg.scheme(), token.as_bytes())
        .map_err(|_| JwsError::SigningFailed)?;
    token.push('.');
    token.push_str(&b64::url_unpadded(&signature));
    Ok(token)
}

/// Registered time claims as PyJWT checks them: `exp` must be after `now − leeway`, `nbf` must
/// not be after `now + leeway`, and (when checked) `iat` must not be after `now + iat skew`.
/// A present time claim that is not a number is invalid.
#[derive(Debug, Clone, Copy)]
pub struct TimeRules {
    pub require_exp: bool,
    pub leeway_secs: i64,
    /// `None`: `iat` is not checked.
    pub max_iat_skew_secs: Option<i64>,
}

/// Which time rule failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("token expired")]
    Expired,
    #[error("token missing exp")]
    MissingExp,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("time claim is not a number")]
    NotANumber,
}

impl TimeRules {
    /// Applies the rules to `claims` at `now` (Unix seconds).
    pub fn check(&self, claims: &Map<String, Value>, now: i64) -> Result<(), TimeError> {
        let number = |name: &str| -> Result<Option<f64>, TimeError> {
            match claims.get(name) {
                None => Ok(None),
                Some(value) => value.as_f64().map(Some).ok_or(TimeError::NotANumber),
            }
        };
        let now = now as f64;
        let leeway = self.leeway_secs as f64;
        match number("exp")? {
            Some(exp) if exp <= now - leeway => return Err(TimeError::Expired),
            None if self.require_exp => return Err(TimeError::MissingExp),
            _ => {}
        }
        if matches!(number("nbf")?, Some(nbf) if nbf > now + leeway) {
            return Err(TimeError::NotYetValid);
        }
        if let Some(skew) = self.max_iat_skew_secs {
            if matches!(number("iat")?, Some(iat) if iat > now + skew as f64) {
                return Err(TimeError::NotYetValid);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;
    use serde_json::json;

    fn claims() -> Value {
        json!({"sub": "a", "n": 1})
    }

    #[test]
    fn every_allowed_algorithm_round_trips_with_its_key_only() {
        let p256 = PrivateKey::generate(KeyType::EcP256).unwrap();
        let p384 = PrivateKey::generate(KeyType::EcP384).unwrap();
        let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let cases = [
            (JwsAlg::ES256, &p256),
            (JwsAlg::ES384, &p384),
            (JwsAlg::RS256, &rsa),
            (JwsAlg::PS256, &rsa),
        ];
        for (alg, key) in cases {
            let token = sign(Map::new(), &claims(), alg, key).unwrap();
            let jws = CompactJws::parse(&token).unwrap();
            assert_eq!(jws.alg(), Some(alg));
            assert_eq!(
                Value::Object(jws.verify(alg, key.public_key()).unwrap()),
                claims()
            );
            for (other, other_key) in cases {
                if !std::ptr::eq(other_key, key) {
                    assert!(
                        jws.verify(other, other_key.public_key()).is_err(),
                        "{alg:?} vs {other:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn alg_and_key_confusion_is_refused() {
        let p256 = PrivateKey::generate(KeyType::EcP256).unwrap();
        let p384 = PrivateKey::generate(KeyType::EcP384).unwrap();
        let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        assert_eq!(
            sign(Map::new(), &claims(), JwsAlg::ES256, &p384),
            Err(JwsError::AlgorithmMismatch)
        );
        assert_eq!(
            sign(Map::new(), &claims(), JwsAlg::RS256, &p256),
            Err(JwsError::AlgorithmMismatch)
        );
        let token = sign(Map::new(), &claims(), JwsAlg::RS256, &rsa).unwrap();
        let jws = CompactJws::parse(&token).unwrap();
        assert_eq!(
            jws.verify(JwsAlg::PS256, rsa.public_key()),
            Err(JwsError::BadSignature)
        );
        assert_eq!(
            jws.verify(JwsAlg::ES256, p256.public_key()),
            Err(JwsError::BadSignature)
        );
        assert!(!JwsAlg::ES256.fits(p384.public_key()));
    }

    #[test]
    fn any_critical_header_is_refused() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        for crit in [json!(["x-custom"]), json!([]), json!("b64"), json!(["exp"])] {
            let mut header = Map::new();
            header.insert("crit".into(), crit.clone());
            let token = sign(header, &claims(), JwsAlg::ES256, &key).unwrap();
            let jws = CompactJws::parse(&token).unwrap();
            assert_eq!(
                jws.reject_critical(),
                Err(JwsError::UnsupportedCritical),
                "{crit}"
            );
        }
        let plain = sign(Map::new(), &claims(), JwsAlg::ES256, &key).unwrap();
        assert_eq!(CompactJws::parse(&plain).unwrap().reject_critical(), Ok(()));
    }

    #[test]
    fn none_and_hmac_are_not_algorithms_here() {
        for name in ["none", "HS256", "HS512", "es256", "EdDSA", ""] {
            assert_eq!(JwsAlg::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn header_keys_are_sorted_like_pyjwt() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let mut header = Map::new();
        header.insert("typ".into(), "JWT".into());
        header.insert("kid".into(), "k".into());
        let token = sign(header, &claims(), JwsAlg::ES256, &key).unwrap();
        let header_b64 = token.split('.').next().unwrap();
        assert_eq!(
            b64::decode_url(header_b64).unwrap(),
            br#"{"alg":"ES256","kid":"k","typ":"JWT"}"#
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for token in [
            "",
            "a.b",
            "not.a.valid.jwt.at.all",
            "e30.e30.!!",
            "W10.e30.AA",
            "bm90anNvbg.e30.AA",
        ] {
            assert!(CompactJws::parse(token).is_err(), "{token}");
        }
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let token = sign(Map::new(), &json!([1]), JwsAlg::ES256, &key).unwrap();
        let jws = CompactJws::parse(&token).unwrap();
        assert_eq!(
            jws.verify(JwsAlg::ES256, key.public_key()),
            Err(JwsError::BadPayload)
        );
    }

    #[test]
    fn time_rules_follow_pyjwt() {
        let rules = TimeRules {
            require_exp: true,
            leeway_secs: 0,
            max_iat_skew_secs: Some(0),
        };
        let ok = json!({"exp": 101, "iat": 100, "nbf": 100});
        assert_eq!(rules.check(ok.as_object().unwrap(), 100), Ok(()));
        let cases = [
            (json!({"exp": 100}), TimeError::Expired),
            (json!({}), TimeError::MissingExp),
            (json!({"exp": 200, "nbf": 101}), TimeError::NotYetValid),
            (json!({"exp": 200, "iat": 101}), TimeError::NotYetValid),
            (json!({"exp": "200"}), TimeError::NotANumber),
        ];
        for (claims, expected) in cases {
            assert_eq!(
                rules.check(claims.as_object().unwrap(), 100),
                Err(expected),
                "{claims}"
            );
        }
        let lenient = TimeRules {
            require_exp: false,
            leeway_secs: 5,
            max_iat_skew_secs: None,
        };
        assert_eq!(
            lenient.check(json!({"iat": 1000, "exp": 97}).as_object().unwrap(), 100),
            Ok(())
        );
        let skewed = TimeRules {
            require_exp: false,
            leeway_secs: 0,
            max_iat_skew_secs: Some(5),
        };
        assert_eq!(
            skewed.check(json!({"iat": 105}).as_object().unwrap(), 100),
            Ok(())
        );
        assert_eq!(
            skewed.check(json!({"iat": 106}).as_object().unwrap(), 100),
            Err(TimeError::NotYetValid)
        );
    }
}
