//! x509 client assertions (ref-auth-crypto §2.2): the JWT an agent signs with its certificate
//! key to log in, carrying its leaf certificate in `x5c`.
//!
//! The broker interleaves these checks with database lookups (org, CA, revocation), so
//! verification is split: [`ClientAssertion::parse`] (steps a–c of §2.3) yields the leaf DER
//! for the PKI checks, then [`ClientAssertion::verify`] (steps m–o, q) checks the JWT itself.

use super::jws::{self, CompactJws, JwsAlg, TimeRules};
use crate::encoding::b64;
use crate::keys::{KeyError, PrivateKey, PublicKey};
use serde::Serialize;
use serde_json::{Map, Value};

/// The `aud` every client assertion must carry.
pub const AUDIENCE: &str = "agent-trust-broker";

/// Longest `jti` the broker stores (the reference's column width).
pub const MAX_JTI_LEN: usize = 128;

/// A refused assertion; `Display` is the reference `detail`. All are HTTP 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("invalid client_assertion")]
    Malformed,
    #[error("x5c header absent or empty")]
    MissingX5c,
    #[error("Invalid agent certificate")]
    BadCertificate,
    #[error("Invalid client_assertion signature")]
    BadSignature,
    #[error("'sub' in JWT does not match the agent CN or SPIFFE URI")]
    SubMismatch,
    #[error("'iss' in JWT is missing or does not match the authenticated agent")]
    IssMismatch,
    #[error("client_assertion missing jti")]
    MissingJti,
    #[error("client_assertion jti longer than 128 characters")]
    JtiTooLong,
    #[error("client_assertion already used (replay attack detected)")]
    Replay,
}

/// Verification settings.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRules {
    /// Accepted client clock skew for `iat` in the future. The reference (recent PyJWT)
    /// allowed none, so a client clock one second fast failed; a few seconds are kinder.
    pub max_iat_skew_secs: i64,
}

impl Default for AssertionRules {
    fn default() -> Self {
        AssertionRules {
            max_iat_skew_secs: 5,
        }
    }
}

/// The claims a verified assertion yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionClaims {
    pub jti: String,
    /// `exp`, Unix seconds: how long the `jti` must stay blacklisted.
    pub exp: i64,
}

/// A parsed, not yet verified, client assertion.
#[derive(Debug)]
pub struct ClientAssertion<'a> {
    jws: CompactJws<'a>,
    leaf_der: Vec<u8>,
}

impl<'a> ClientAssertion<'a> {
    /// §2.3 steps a–c: the header parses, `x5c` is a non-empty list, `x5c[0]` is base64.
    /// Only `x5c[0]` is used; further chain entries are ignored.
    pub fn parse(token: &'a str) -> Result<ClientAssertion<'a>, AssertionError> {
        let jws = CompactJws::parse(token).map_err(|_| AssertionError::Malformed)?;
        let first = match jws.header.get("x5c") {
            Some(Value::Array(chain)) if !chain.is_empty() => {
                chain[0].as_str().ok_or(AssertionError::BadCertificate)?
            }
            _ => return Err(AssertionError::MissingX5c),
        };
        let leaf_der = b64::decode_lenient(first).map_err(|_| AssertionError::BadCertificate)?;
        if leaf_der.is_empty() {
            return Err(AssertionError::BadCertificate);
        }
        Ok(ClientAssertion { jws, leaf_der })
    }

    /// DER of the presented leaf certificate (thumbprints are taken over these bytes).
    pub fn leaf_der(&self) -> &[u8] {
        &self.leaf_der
    }

    /// §2.3 steps m–o and q: signature by the leaf key with an algorithm that fits it
    /// (RS256, ES256 on P-256, ES384 on P-384), `aud`, `exp` (required), `nbf`, `iat`, claim
    /// types, then `sub` and `iss` ∈ {agent id, SPIFFE id}, then `jti` present.
    pub fn verify(
        &self,
        leaf_key: &PublicKey,
        agent_id: &str,
        spiffe_id: &str,
        now: i64,
        rules: AssertionRules,
    ) -> Result<AssertionClaims, AssertionError> {
        // T-20: an unknown `crit` is a bad assertion like any other header PyJWT refuses.
        self.jws
            .reject_critical()
            .map_err(|_| AssertionError::BadSignature)?;
        let alg = self
            .jws
            .alg()
            .filter(|alg| *alg != JwsAlg::PS256)
            .ok_or(AssertionError::BadSignature)?;
        let claims = self
            .jws
            .verify(alg, leaf_key)
            .map_err(|_| AssertionError::BadSignature)?;
        let time = TimeRules {
            require_exp: true,
            leeway_secs: 0,
            max_iat_skew_secs: Some(rules.max_iat_skew_secs),
        };
        time.check(&claims, now)
            .map_err(|_| AssertionError::BadSignature)?;
        if !audience_contains(&claims, AUDIENCE)
            || !optional_strings(&claims, &["jti", "sub", "iss"])
        {
            return Err(AssertionError::BadSignature);
        }
        let names_agent = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .is_some_and(|value| value == agent_id || value == spiffe_id)
        };
        if !names_agent("sub") {
            return Err(AssertionError::SubMismatch);
        }
        if !names_agent("iss") {
            return Err(AssertionError::IssMismatch);
        }
        let jti = match claims.get("jti").and_then(Value::as_str) {
            Some(jti) if !jti.is_empty() => jti,
            _ => return Err(AssertionError::MissingJti),
        };
        if jti.chars().count() > MAX_JTI_LEN {
            return Err(AssertionError::JtiTooLong);
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(AssertionError::BadSignature)?;
        Ok(AssertionClaims {
            jti: jti.to_owned(),
            exp: exp.floor() as i64,
        })
    }
}

/// `aud` equals `audience`, or is a list containing it.
pub(crate) fn audience_contains(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(list)) => list.iter().any(|aud| aud.as_str() == Some(audience)),
        _ => false,
    }
}

fn optional_strings(claims: &Map<String, Value>, names: &[&str]) -> bool {
    names
        .iter()
        .all(|name| claims.get(*name).is_none_or(Value::is_string))
}

/// Assertion claims in the reference SDK's emission order.
#[derive(Debug, Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Builds a client assertion as the reference SDK does: `sub` = `iss` = the agent id,
/// `aud` = [`AUDIENCE`], 300 s lifetime, fresh UUID `jti`, the leaf in `x5c` (standard
/// base64), RS256 / ES256 / ES384 by key type.
pub fn build(
    leaf_der: &[u8],
    key: &PrivateKey,
    agent_id: &str,
    now: i64,
) -> Result<String, KeyError> {
    let alg = JwsAlg::for_key(key.public_key()).ok_or(KeyError::WrongKeyType)?;
    let mut header = Map::new();
    header.insert("typ".into(), "JWT".into());
    header.insert(
        "x5c".into(),
        Value::Array(vec![b64::std_padded(leaf_der).into()]),
    );
    let claims = Claims {
        sub: agent_id,
        iss: agent_id,
        aud: AUDIENCE,
        iat: now,
        exp: now + 300,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    jws::sign(header, &claims, alg, key).map_err(|_| KeyError::CryptoFailure)
}

#[cfg(test)]
mod tests {
    //! Client-assertion rows of the catalogue (ref-auth-crypto §10.1) that concern the JWT.

    use super::*;
    use crate::keys::KeyType;
    use serde_json::json;

    const AGENT: &str = "acme::buyer";
    const SPIFFE: &str = "spiffe://atn.local/acme/buyer";
    const NOW: i64 = 1_700_000_000;
    const LEAF: &[u8] = b"leaf-der-bytes";

    fn signed(claims: Value, key: &PrivateKey, alg: JwsAlg) -> String {
        let mut header = Map::new();
        header.insert("typ".into(), "JWT".into());
        header.insert("x5c".into(), json!([b64::std_padded(LEAF)]));
        jws::sign(header, &claims, alg, key).unwrap()
    }

    fn claims(overrides: Value) -> Value {
        let mut base = json!({"sub": AGENT, "iss": AGENT, "aud": AUDIENCE, "iat": NOW, "exp": NOW + 300, "jti": "j-1"});
        for (name, value) in overrides.as_object().unwrap() {
            if value.is_null() {
                base.as_object_mut().unwrap().remove(name);
            } else {
                base[name] = value.clone();
            }
        }
        base
    }

    fn verify(token: &str, key: &PrivateKey) -> Result<AssertionClaims, AssertionError> {
        ClientAssertion::parse(token)?.verify(
            key.public_key(),
            AGENT,
            SPIFFE,
            NOW,
            AssertionRules::default(),
        )
    }

    #[test]
    fn built_assertions_verify_for_every_agent_key_type() {
        for key_type in [KeyType::Rsa2048, KeyType::EcP256, KeyType::EcP384] {
            let key = PrivateKey::generate(key_type).unwrap();
            let token = build(LEAF, &key, AGENT, NOW).unwrap();
            let parsed = ClientAssertion::parse(&token).unwrap();
            assert_eq!(parsed.leaf_der(), LEAF);
            let claims = parsed
                .verify(
                    key.public_key(),
                    AGENT,
                    SPIFFE,
                    NOW,
                    AssertionRules::default(),
                )
                .unwrap();
            assert_eq!(claims.exp, NOW + 300);
            assert_eq!(claims.jti.len(), 36);
        }
    }

    #[test]
    fn spiffe_ids_are_accepted_as_sub_and_iss() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let token = signed(
            claims(json!({"sub": SPIFFE, "iss": SPIFFE, "aud": ["x", AUDIENCE]})),
            &key,
            JwsAlg::ES256,
        );
        assert!(verify(&token, &key).is_ok());
    }

    #[test]
    fn t04_t05_t06_header_problems() {
        assert_eq!(
            ClientAssertion::parse("garbage").unwrap_err().to_string(),
            "invalid client_assertion"
        );
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        for x5c in [None, Some(json!([])), Some(json!("abc"))] {
            let mut header = Map::new();
            if let Some(x5c) = x5c {
                header.insert("x5c".into(), x5c);
            }
            let token = jws::sign(header, &claims(json!({})), JwsAlg::ES256, &key).unwrap();
            assert_eq!(
                ClientAssertion::parse(&token).unwrap_err().to_string(),
                "x5c header absent or empty"
            );
        }
        let mut header = Map::new();
        header.insert("x5c".into(), json!(["!!not base64!!"]));
        let token = jws::sign(header, &claims(json!({})), JwsAlg::ES256, &key).unwrap();
        assert_eq!(
            ClientAssertion::parse(&token).unwrap_err().to_string(),
            "Invalid agent certificate"
        );
    }

    #[test]
    fn t20_signature_algorithm_and_time_failures() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let other = PrivateKey::generate(KeyType::EcP256).unwrap();
        let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
        let bad = [
            signed(claims(json!({})), &other, JwsAlg::ES256),
            signed(claims(json!({"aud": "someone-else"})), &key, JwsAlg::ES256),
            signed(claims(json!({"aud": null})), &key, JwsAlg::ES256),
            signed(claims(json!({"exp": NOW})), &key, JwsAlg::ES256),
            signed(claims(json!({"exp": null})), &key, JwsAlg::ES256),
            signed(claims(json!({"exp": "1700000300"})), &key, JwsAlg::ES256),
            signed(claims(json!({"iat": NOW + 6})), &key, JwsAlg::ES256),
            signed(claims(json!({"nbf": NOW + 1})), &key, JwsAlg::ES256),
            signed(claims(json!({"jti": 7})), &key, JwsAlg::ES256),
            signed(claims(json!({"sub": ["x"]})), &key, JwsAlg::ES256),
        ];
        for token in bad {
            assert_eq!(
                verify(&token, &key).unwrap_err().to_string(),
                "Invalid client_assertion signature"
            );
        }
        // An RSA leaf cannot be used with PS256 here, nor with an EC algorithm.
        let ps256 = signed(claims(json!({})), &rsa, JwsAlg::PS256);
        assert_eq!(verify(&ps256, &rsa), Err(AssertionError::BadSignature));
        let es256_for_rsa_leaf = signed(claims(json!({})), &key, JwsAlg::ES256);
        assert_eq!(
            verify(&es256_for_rsa_leaf, &rsa),
            Err(AssertionError::BadSignature)
        );
        // A client clock a few seconds fast is tolerated.
        assert!(verify(
            &signed(claims(json!({"iat": NOW + 5})), &key, JwsAlg::ES256),
            &key
        )
        .is_ok());
    }

    #[test]
    fn t21_t22_t24_subject_issuer_and_jti() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let cases = [
            (
                json!({"sub": "acme::seller"}),
                "'sub' in JWT does not match the agent CN or SPIFFE URI",
            ),
            (
                json!({"sub": null}),
                "'sub' in JWT does not match the agent CN or SPIFFE URI",
            ),
            (
                json!({"iss": null}),
                "'iss' in JWT is missing or does not match the authenticated agent",
            ),
            (
                json!({"iss": "spiffe://other.td/acme/buyer"}),
                "'iss' in JWT is missing or does not match the authenticated agent",
            ),
            (json!({"jti": null}), "client_assertion missing jti"),
            (json!({"jti": ""}), "client_assertion missing jti"),
            (
                json!({"jti": "x".repeat(129)}),
                "client_assertion jti longer than 128 characters",
            ),
        ];
        for (overrides, expected) in cases {
            let token = signed(claims(overrides.clone()), &key, JwsAlg::ES256);
            assert_eq!(
                verify(&token, &key).unwrap_err().to_string(),
                expected,
                "{overrides}"
            );
        }
    }
}
