//! The broker's access tokens (ref-auth-crypto §2.4) and its JWKS entry (§2.5).
//!
//! Tokens are ES256 by default (a P-256 broker key; DESIGN §5 — ECDSA verify is an order of
//! magnitude cheaper to sign than RSA and verifies on every request) and RS256 when an operator
//! brings an RSA key, as the reference did. The verifier accepts exactly the algorithm of the
//! configured key, so no alg/key confusion is possible.

use super::assertion::audience_contains;
use super::jwk;
use super::jws::{self, CompactJws, JwsAlg, TimeRules};
use crate::encoding::b64;
use crate::keys::{KeyError, PrivateKey, PublicKey};
use crate::wire::auth::JwksKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `iss` of every broker token.
pub const ISSUER: &str = "cullis-broker";
/// `aud` of every access token.
pub const AUDIENCE: &str = "cullis";

/// `cnf`: the DPoP key the token is bound to (RFC 9449 §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// Access-token claims, in the reference's emission order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub aud: String,
    /// SPIFFE id of the agent.
    pub sub: String,
    /// Internal agent id `<org>::<name>`.
    pub agent_id: String,
    pub org: String,
    #[serde(default)]
    pub scope: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// `None` or an empty object means the token is not DPoP-bound (refused on use).
    #[serde(default)]
    pub cnf: Option<Map<String, Value>>,
}

impl AccessTokenClaims {
    /// The DPoP key thumbprint the token is bound to, if any.
    pub fn jkt(&self) -> Option<&str> {
        self.cnf
            .as_ref()?
            .get("jkt")?
            .as_str()
            .filter(|jkt| !jkt.is_empty())
    }
}

/// Why a token was refused. Every variant answers 401 `Token invalid or expired`
/// with `WWW-Authenticate: Bearer`; the variant is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Token invalid or expired")]
    Malformed,
    #[error("Token invalid or expired")]
    WrongAlgorithm,
    #[error("Token invalid or expired")]
    BadSignature,
    #[error("Token invalid or expired")]
    Expired,
    #[error("Token invalid or expired")]
    WrongIssuerOrAudience,
    #[error("Token invalid or expired")]
    MissingClaims,
    /// A `crit` header (RFC 7515 §4.1.11): no extension is understood.
    #[error("Token invalid or expired")]
    UnsupportedCritical,
    /// A broker token of another kind (`token_type` other than `access`, e.g. a transaction
    /// token): never accepted where an access token is expected, and the other way round.
    #[error("Token invalid or expired")]
    WrongTokenType,
}

/// The `kid` header of a compact JWS, without verifying anything (to pick the key).
pub fn header_kid(token: &str) -> Option<String> {
    let jws = CompactJws::parse(token).ok()?;
    jws.header.get("kid")?.as_str().map(str::to_owned)
}

/// Signs broker tokens with the broker key.
pub struct TokenSigner {
    key: PrivateKey,
    alg: JwsAlg,
    kid: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigner({}, kid={})", self.alg.name(), self.kid)
    }
}

impl TokenSigner {
    /// A signer for `key`: ES256 for P-256, ES384 for P-384, RS256 for RSA.
    pub fn new(key: PrivateKey) -> Result<TokenSigner, KeyError> {
        let alg = JwsAlg::for_key(key.public_key()).ok_or(KeyError::WrongKeyType)?;
        let kid = jwk::key_thumbprint(key.public_key());
        Ok(TokenSigner { key, alg, kid })
    }

    /// The JWS algorithm tokens are signed with.
    pub fn alg(&self) -> JwsAlg {
        self.alg
    }

    /// `kid`: the RFC 7638 thumbprint of the broker public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half of the signing key.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// A verifier for this signer's tokens.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier {
            key: self.key.public_key().clone(),
            alg: self.alg,
        }
    }

    /// Signs any claims with header `{"alg","kid","typ":"JWT"}`.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        let mut header = Map::new();
        header.insert("kid".into(), self.kid.clone().into());
        header.insert("typ".into(), "JWT".into());
        jws::sign(header, claims, self.alg, &self.key).map_err(|_| KeyError::CryptoFailure)
    }

    /// The JWKS entry publishing the verification key.
    pub fn jwks_key(&self) -> JwksKey {
        jwks_entry(self.key.public_key(), &self.kid).expect("a signer's key has an algorithm")
    }
}

/// The JWKS entry for a broker verification key under `kid` (`None` for a key no token
/// algorithm fits).
pub fn jwks_entry(public: &PublicKey, kid: &str) -> Option<JwksKey> {
    let alg = JwsAlg::for_key(public)?;
    let mut entry = JwksKey {
        kty: String::new(),
        use_: "sig".into(),
        alg: alg.name().into(),
        kid: kid.into(),
        n: None,
        e: None,
        crv: None,
        x: None,
        y: None,
    };
    if let Some((n, e)) = public.rsa_components() {
        entry.kty = "RSA".into();
        entry.n = Some(b64::url_unpadded(n));
        entry.e = Some(b64::url_unpadded(e));
    } else if let Some((curve, x, y)) = public.ec_coordinates() {
        entry.kty = "EC".into();
        entry.crv = Some(curve.jwk_name().into());
        entry.x = Some(b64::url_unpadded(x));
        entry.y = Some(b64::url_unpadded(y));
    }
    Some(entry)
}

/// Verifies broker tokens: exactly the configured algorithm, signature, `exp` (no leeway),
/// `iat` not in the future (beyond a small skew between replicas), `iss`, `aud`, and the
/// required claims (`sub`, `agent_id`, `org`, `exp`, `iat`, `jti`).
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    key: PublicKey,
    alg: JwsAlg,
}

impl TokenVerifier {
    /// A verifier for tokens signed by `key` with its natural algorithm.
    pub fn new(key: PublicKey) -> Result<TokenVerifier, KeyError> {
        let alg = JwsAlg::for_key(&key).ok_or(KeyError::WrongKeyType)?;
        Ok(TokenVerifier { key, alg })
    }

    /// Verifies an access token at `now` (Unix seconds). A token with a `token_type` other
    /// than `access` (a transaction token) is refused.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessTokenClaims, TokenError> {
        let claims = self.verified_claims(token, now)?;
        match claims.get("token_type") {
            None => {}
            Some(Value::String(kind)) if kind == "access" => {}
            Some(_) => return Err(TokenError::WrongTokenType),
        }
        serde_json::from_value(Value::Object(claims)).map_err(|_| TokenError::MissingClaims)
    }

    /// Verifies a transaction token (`token_type` = `transaction`, ref-auth-crypto §4.4).
    pub fn verify_transaction(
        &self,
        token: &str,
        now: i64,
    ) -> Result<super::transaction_token::TransactionTokenClaims, TokenError> {
        let claims = self.verified_claims(token, now)?;
        if claims.get("token_type").and_then(Value::as_str) != Some("transaction") {
            return Err(TokenError::WrongTokenType);
        }
        serde_json::from_value(Value::Object(claims)).map_err(|_| TokenError::MissingClaims)
    }

    /// Signature (exactly the configured algorithm, no `crit`), time, issuer and audience.
    fn verified_claims(&self, token: &str, now: i64) -> Result<Map<String, Value>, TokenError> {
        let jws = CompactJws::parse(token).map_err(|_| TokenError::Malformed)?;
        jws.reject_critical()
            .map_err(|_| TokenError::UnsupportedCritical)?;
        if jws.alg() != Some(self.alg) {
            return Err(TokenError::WrongAlgorithm);
        }
        let claims = jws
            .verify(self.alg, &self.key)
            .map_err(|_| TokenError::BadSignature)?;
        let time = TimeRules {
            require_exp: true,
            leeway_secs: 0,
            max_iat_skew_secs: Some(5),
        };
        time.check(&claims, now).map_err(|_| TokenError::Expired)?;
        if claims.get("iss").and_then(Value::as_str) != Some(ISSUER)
            || !audience_contains(&claims, AUDIENCE)
        {
            return Err(TokenError::WrongIssuerOrAudience);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "spiffe://atn.local/acme/buyer".into(),
            agent_id: "acme::buyer".into(),
            org: "acme".into(),
            scope: vec!["order.read".into()],
            iat: NOW,
            exp: NOW + 1800,
            jti: "5b0e6f4e-0000-4000-8000-000000000000".into(),
            cnf: Some(json!({"jkt": "thumb"}).as_object().unwrap().clone()),
        }
    }

    #[test]
    fn tokens_round_trip_with_es256_and_rs256_keys() {
        for (key_type, alg) in [(KeyType::EcP256, "ES256"), (KeyType::Rsa2048, "RS256")] {
            let signer = TokenSigner::new(PrivateKey::generate(key_type).unwrap()).unwrap();
            let token = signer.sign(&claims()).unwrap();
            let header = CompactJws::parse(&token).unwrap().header;
            assert_eq!(
                Value::Object(header),
                json!({"alg": alg, "kid": signer.kid(), "typ": "JWT"})
            );
            let verified = signer.verifier().verify(&token, NOW).unwrap();
            assert_eq!(verified, claims());
            assert_eq!(verified.jkt(), Some("thumb"));
        }
    }

    #[test]
    fn claims_are_emitted_in_the_reference_order() {
        let text = serde_json::to_string(&claims()).unwrap();
        let order = [
            "\"iss\"",
            "\"aud\"",
            "\"sub\"",
            "\"agent_id\"",
            "\"org\"",
            "\"scope\"",
            "\"iat\"",
            "\"exp\"",
            "\"jti\"",
            "\"cnf\"",
        ];
        let positions: Vec<usize> = order.iter().map(|name| text.find(name).unwrap()).collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
    }

    #[test]
    fn a02_forged_expired_and_foreign_tokens_are_refused() {
        let signer = TokenSigner::new(PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap();
        let other = TokenSigner::new(PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap();
        let rsa = TokenSigner::new(PrivateKey::generate(KeyType::Rsa2048).unwrap()).unwrap();
        let verifier = signer.verifier();
        let with = |edit: fn(&mut AccessTokenClaims)| {
            let mut c = claims();
            edit(&mut c);
            signer.sign(&c).unwrap()
        };
        let cases = [
            (other.sign(&claims()).unwrap(), TokenError::BadSignature),
            (rsa.sign(&claims()).unwrap(), TokenError::WrongAlgorithm),
            (with(|c| c.exp = NOW), TokenError::Expired),
            (with(|c| c.iat = NOW + 60), TokenError::Expired),
            (
                with(|c| c.iss = "someone".into()),
                TokenError::WrongIssuerOrAudience,
            ),
            (
                with(|c| c.aud = "agent-trust-broker".into()),
                TokenError::WrongIssuerOrAudience,
            ),
            (
                signer
                    .sign(&json!({"iss": ISSUER, "aud": AUDIENCE, "exp": NOW + 10, "iat": NOW}))
                    .unwrap(),
                TokenError::MissingClaims,
            ),
            ("a.b.c".to_string(), TokenError::Malformed),
            (
                signer
                    .sign(
                        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "agent_id": "a::b",
                        "org": "a", "iat": NOW, "exp": NOW + 60, "jti": "j", "cnf": {"jkt": "t"},
                        "token_type": "transaction"}),
                    )
                    .unwrap(),
                TokenError::WrongTokenType,
            ),
            (
                {
                    let mut header = Map::new();
                    header.insert("crit".into(), json!(["x-cullis-test"]));
                    header.insert("x-cullis-test".into(), json!(true));
                    jws::sign(header, &claims(), JwsAlg::ES256, &signer.key).unwrap()
                },
                TokenError::UnsupportedCritical,
            ),
        ];
        for (token, expected) in cases {
            let error = verifier.verify(&token, NOW).unwrap_err();
            assert_eq!(error, expected);
            assert_eq!(error.to_string(), "Token invalid or expired");
        }
    }

    #[test]
    fn unbound_tokens_have_no_jkt() {
        let mut c = claims();
        c.cnf = Some(Map::new());
        assert_eq!(c.jkt(), None);
        c.cnf = None;
        assert_eq!(c.jkt(), None);
    }

    #[test]
    fn jwks_publishes_the_verification_key() {
        let ec = TokenSigner::new(PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap();
        let entry = ec.jwks_key();
        assert_eq!(
            (entry.kty.as_str(), entry.alg.as_str(), entry.crv.as_deref()),
            ("EC", "ES256", Some("P-256"))
        );
        let rsa = TokenSigner::new(PrivateKey::generate(KeyType::Rsa2048).unwrap()).unwrap();
        let text = serde_json::to_string(&rsa.jwks_key()).unwrap();
        assert!(
            text.starts_with(&format!(
                r#"{{"kty":"RSA","use":"sig","alg":"RS256","kid":"{}","n":""#,
                rsa.kid()
            )),
            "{text}"
        );
        assert!(text.ends_with(r#","e":"AQAB"}"#));
    }
}
