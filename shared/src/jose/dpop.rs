//! DPoP proofs (RFC 9449 as the reference applies it, ref-auth-crypto §3): building them on the
//! client side and verifying them on the broker with every check of §3.3, in the reference's
//! order, so the same input fails with the same `detail`.

use super::jwk::{self, JwkObject};
use super::jws::{self, CompactJws, JwsAlg};
use super::{htu, python};
use crate::encoding::b64;
use crate::keys::PrivateKey;
use crate::replay::{Consumed, ReplayStore, ReplayStoreError};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// How long a proof `jti` is remembered: covers the `iat` window plus slack.
pub const JTI_TTL: Duration = Duration::from_secs(300);

/// A refused proof. `Display` is the reference's `detail` text; all are HTTP 401, and
/// [`DpopError::NonceRequired`] additionally carries a `DPoP-Nonce` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("Invalid DPoP proof: malformed JWT")]
    Malformed,
    #[error("Invalid DPoP proof: typ must be 'dpop+jwt'")]
    BadTyp,
    #[error("Invalid DPoP proof: unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("Invalid DPoP proof: missing jwk in header")]
    MissingJwk,
    #[error("Invalid DPoP proof: jwk contains private key material")]
    PrivateJwk,
    #[error("Invalid DPoP proof: cannot compute JWK thumbprint")]
    Thumbprint,
    #[error("Invalid DPoP proof: signature verification failed")]
    BadSignature,
    #[error("Invalid DPoP proof: missing jti")]
    MissingJti,
    #[error("Invalid DPoP proof: missing iat")]
    MissingIat,
    #[error("Invalid DPoP proof: iat out of acceptable window")]
    IatOutOfWindow,
    #[error("Invalid DPoP proof: htm mismatch")]
    HtmMismatch,
    #[error("Invalid DPoP proof: htu mismatch")]
    HtuMismatch,
    #[error("Invalid DPoP proof: ath mismatch")]
    AthMismatch,
    #[error("use_dpop_nonce")]
    NonceRequired,
    #[error("DPoP proof replay detected")]
    Replay,
    #[error("DPoP replay store unavailable")]
    StoreUnavailable(#[from] ReplayStoreError),
}

/// Accepted clock skew for proof `iat`: `−max_future ≤ now − iat ≤ max_age` (inclusive).
#[derive(Debug, Clone, Copy)]
pub struct IatWindow {
    pub max_age_secs: f64,
    pub max_future_secs: f64,
}

impl Default for IatWindow {
    fn default() -> Self {
        IatWindow {
            max_age_secs: 60.0,
            max_future_secs: 5.0,
        }
    }
}

/// The server nonces a proof may carry: the current one and the one it replaced.
#[derive(Debug, Clone, Copy)]
pub struct ServerNonces<'a> {
    pub current: &'a str,
    pub previous: Option<&'a str>,
}

/// What the broker expects of a proof for one request.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The request method (`POST`, `GET`…), compared case-insensitively.
    pub htm: &'a str,
    /// The expected URL (see [`htu::expected`]).
    pub htu: &'a str,
    /// The access token presented with the proof, whose hash must be in `ath`.
    pub access_token: Option<&'a str>,
    /// Server nonces; `None` when no nonce is required.
    pub nonces: Option<ServerNonces<'a>>,
    /// Current time, Unix seconds (fractional).
    pub now: f64,
    pub iat_window: IatWindow,
}

/// A proof that passed every check before replay (§3.3 steps 1–12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// RFC 7638 thumbprint of the proof key: what `cnf.jkt` must equal.
    pub jkt: String,
    pub jti: String,
}

/// `ath`: base64url (no padding) of SHA-256 over the access token's ASCII bytes.
pub fn access_token_hash(access_token: &str) -> String {
    b64::url_unpadded(&Sha256::digest(access_token.as_bytes()))
}

/// §3.3 steps 1–12: everything but consuming the `jti`. Nothing is recorded, so a failure here
/// leaves the client free to retry (the nonce dance relies on this).
pub fn check(proof: &str, expect: &Expectations<'_>) -> Result<CheckedProof, DpopError> {
    let jws = CompactJws::parse(proof).map_err(|_| DpopError::Malformed)?;
    let header = &jws.header;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(DpopError::BadTyp);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(JwsAlg::from_name)
        .filter(|alg| matches!(alg, JwsAlg::ES256 | JwsAlg::PS256))
        .ok_or_else(|| DpopError::UnsupportedAlgorithm(python::repr(header.get("alg"))))?;
    let jwk: &JwkObject = header.get("jwk").and_then(Value::as_object).ok_or(DpopError::MissingJwk)?;
    if jwk.contains_key("d") {
        return Err(DpopError::PrivateJwk);
    }
    let jkt = jwk::thumbprint(jwk).map_err(|_| DpopError::Thumbprint)?;
    let key = jwk::public_key_from_jwk(jwk).map_err(|_| DpopError::BadSignature)?;
    let claims = jws.verify(alg, &key).map_err(|_| DpopError::BadSignature)?;
    check_claim_types(&claims, expect.now)?;

    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(jti) if !jti.is_empty() => jti.to_owned(),
        _ => return Err(DpopError::MissingJti),
    };
    let iat = claims.get("iat").ok_or(DpopError::MissingIat)?;
    let age = expect.now - numeric_seconds(iat).ok_or(DpopError::IatOutOfWindow)?;
    if !(-expect.iat_window.max_future_secs..=expect.iat_window.max_age_secs).contains(&age) {
        return Err(DpopError::IatOutOfWindow);
    }
    let htm = claims.get("htm").and_then(Value::as_str).ok_or(DpopError::HtmMismatch)?;
    if !htm.eq_ignore_ascii_case(expect.htm) {
        return Err(DpopError::HtmMismatch);
    }
    let proof_htu = claims.get("htu").and_then(Value::as_str).ok_or(DpopError::HtuMismatch)?;
    if !htu::matches(proof_htu, expect.htu) {
        return Err(DpopError::HtuMismatch);
    }
    if let Some(token) = expect.access_token {
        let ath = claims.get("ath").and_then(Value::as_str).unwrap_or("");
        if !bool::from(ath.as_bytes().ct_eq(access_token_hash(token).as_bytes())) {
            return Err(DpopError::AthMismatch);
        }
    }
    if let Some(nonces) = expect.nonces {
        let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        let matches = |candidate: &str| bool::from(nonce.as_bytes().ct_eq(candidate.as_bytes()));
        if nonce.is_empty() || !(matches(nonces.current) || nonces.previous.is_some_and(matches)) {
            return Err(DpopError::NonceRequired);
        }
    }
    Ok(CheckedProof { jkt, jti })
}

/// The full §3.3 verification: [`check`], then consume the `jti` in `store` (step 13).
/// Returns the proof key thumbprint.
pub async fn verify(proof: &str, expect: &Expectations<'_>, store: &dyn ReplayStore) -> Result<String, DpopError> {
    let checked = check(proof, expect)?;
    match store.consume(&format!("dpop:jti:{}", checked.jti), JTI_TTL).await? {
        Consumed::Fresh => Ok(checked.jkt),
        Consumed::Replay => Err(DpopError::Replay),
    }
}

/// PyJWT's checks during signature verification: `nbf` if present must not be in the future;
/// `sub` and `jti` if present must be strings. Any failure counts as a bad signature.
fn check_claim_types(claims: &Map<String, Value>, now: f64) -> Result<(), DpopError> {
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_f64() {
            Some(nbf) if nbf <= now => {}
            _ => return Err(DpopError::BadSignature),
        }
    }
    for name in ["sub", "jti"] {
        if claims.get(name).is_some_and(|value| !value.is_string()) {
            return Err(DpopError::BadSignature);
        }
    }
    Ok(())
}

/// `iat` as seconds: a number, or a numeric string as the reference tolerates.
fn numeric_seconds(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        _ => None,
    }
}

/// The claims of a proof, in the reference SDK's emission order.
#[derive(Debug, Clone, Serialize)]
pub struct ProofClaims<'a> {
    pub jti: &'a str,
    pub htm: &'a str,
    pub htu: &'a str,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
}

/// A client's DPoP key: an ES256 (P-256) or PS256 (RSA) key and its public JWK, whose text
/// stays fixed for the key's life so every proof carries the same thumbprint.
pub struct DpopKey {
    key: PrivateKey,
    alg: JwsAlg,
    jwk: JwkObject,
    jkt: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DpopKey({}, jkt={})", self.alg.name(), self.jkt)
    }
}

impl DpopKey {
    /// A fresh P-256 key, as the reference SDK makes for every login.
    pub fn generate() -> Result<DpopKey, crate::keys::KeyError> {
        Ok(DpopKey::new(PrivateKey::generate(crate::keys::KeyType::EcP256)?)?)
    }

    /// Wraps an existing key: P-256 signs ES256, RSA signs PS256; anything else is refused.
    pub fn new(key: PrivateKey) -> Result<DpopKey, crate::keys::KeyError> {
        let alg = match JwsAlg::for_key(key.public_key()) {
            Some(JwsAlg::ES256) => JwsAlg::ES256,
            Some(JwsAlg::RS256) => JwsAlg::PS256,
            _ => return Err(crate::keys::KeyError::WrongKeyType),
        };
        let jwk = jwk::public_jwk(key.public_key());
        let jkt = jwk::thumbprint(&jwk).expect("own JWK is complete");
        Ok(DpopKey { key, alg, jwk, jkt })
    }

    /// The thumbprint the broker will bind tokens to.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// A proof for `htm htu`, with `ath` when an access token is presented and the server
    /// nonce when one is known. `iat` is `now` in whole seconds; `jti` a fresh UUID v4.
    pub fn proof(&self, htm: &str, htu: &str, access_token: Option<&str>, nonce: Option<&str>, now: i64) -> String {
        let jti = uuid::Uuid::new_v4().to_string();
        let claims = ProofClaims {
            jti: &jti,
            htm,
            htu,
            iat: now,
            ath: access_token.map(access_token_hash),
            nonce,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary proof claims (tests use this to build misbehaving proofs).
    pub fn sign(&self, claims: &impl Serialize) -> String {
        let mut header = Map::new();
        header.insert("typ".into(), "dpop+jwt".into());
        header.insert("jwk".into(), Value::Object(self.jwk.clone()));
        jws::sign(header, claims, self.alg, &self.key).expect("the DPoP algorithm fits its own key")
    }
}
