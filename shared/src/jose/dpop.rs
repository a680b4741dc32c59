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
    #[error("Invalid DPoP proof: unsupported critical header")]
    UnsupportedCritical,
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
    jws.reject_critical()
        .map_err(|_| DpopError::UnsupportedCritical)?;
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
    let jwk: &JwkObject = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(DpopError::MissingJwk)?;
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
    let htm = claims
        .get("htm")
        .and_then(Value::as_str)
        .ok_or(DpopError::HtmMismatch)?;
    if !htm.eq_ignore_ascii_case(expect.htm) {
        return Err(DpopError::HtmMismatch);
    }
    let proof_htu = claims
        .get("htu")
        .and_then(Value::as_str)
        .ok_or(DpopError::HtuMismatch)?;
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
pub async fn verify(
    proof: &str,
    expect: &Expectations<'_>,
    store: &dyn ReplayStore,
) -> Result<String, DpopError> {
    let checked = check(proof, expect)?;
    match store
        .consume(&format!("dpop:jti:{}", checked.jti), JTI_TTL)
        .await?
    {
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
        DpopKey::new(PrivateKey::generate(crate::keys::KeyType::EcP256)?)
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
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: i64,
    ) -> String {
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

#[cfg(test)]
mod tests {
    //! The DPoP rows of the negative-test catalogue (ref-auth-crypto §10.2, D-01…D-15), each
    //! with the exact `detail` the broker must answer.

    use super::*;
    use crate::keys::{KeyType, PrivateKey};
    use crate::replay::MemoryReplayStore;
    use serde_json::json;

    const HTU: &str = "http://test/v1/auth/token";
    const NOW: i64 = 1_700_000_000;

    fn expect<'a>(token: Option<&'a str>, nonces: Option<ServerNonces<'a>>) -> Expectations<'a> {
        Expectations {
            htm: "POST",
            htu: HTU,
            access_token: token,
            nonces,
            now: NOW as f64,
            iat_window: IatWindow::default(),
        }
    }

    fn nonces() -> Option<ServerNonces<'static>> {
        Some(ServerNonces {
            current: "n-current",
            previous: Some("n-previous"),
        })
    }

    fn claims(overrides: Value) -> Value {
        let mut base = json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "htu": HTU, "iat": NOW, "nonce": "n-current"});
        for (name, value) in overrides.as_object().unwrap() {
            if value.is_null() {
                base.as_object_mut().unwrap().remove(name);
            } else {
                base[name] = value.clone();
            }
        }
        base
    }

    /// Signs `claims` with `key` under an arbitrary header (for misbehaving proofs).
    fn raw_proof(header: Value, claims: &Value, key: &PrivateKey, alg: JwsAlg) -> String {
        let mut header = header.as_object().unwrap().clone();
        header.remove("alg");
        jws::sign(header, claims, alg, key).unwrap()
    }

    fn unsigned(header: Value, claims: &Value) -> String {
        format!(
            "{}.{}.{}",
            b64::url_unpadded(header.to_string().as_bytes()),
            b64::url_unpadded(claims.to_string().as_bytes()),
            b64::url_unpadded(b"sig")
        )
    }

    fn detail(proof: &str, expectations: &Expectations<'_>) -> String {
        check(proof, expectations).unwrap_err().to_string()
    }

    #[test]
    fn a_good_proof_yields_the_key_thumbprint() {
        let key = DpopKey::generate().unwrap();
        let proof = key.proof("POST", HTU, None, Some("n-current"), NOW);
        let checked = check(&proof, &expect(None, nonces())).unwrap();
        assert_eq!(checked.jkt, key.jkt());
        // The previous nonce is still accepted after one rotation (D-14 positive case).
        let proof = key.proof("POST", HTU, None, Some("n-previous"), NOW);
        assert!(check(&proof, &expect(None, nonces())).is_ok());
    }

    #[test]
    fn ps256_proofs_with_rsa_keys_verify() {
        let key = DpopKey::new(PrivateKey::generate(KeyType::Rsa2048).unwrap()).unwrap();
        let proof = key.proof("POST", HTU, Some("tok"), Some("n-current"), NOW);
        let header = CompactJws::parse(&proof).unwrap().header;
        assert_eq!(header["alg"], "PS256");
        assert_eq!(
            check(&proof, &expect(Some("tok"), nonces())).unwrap().jkt,
            key.jkt()
        );
    }

    #[test]
    fn d01_malformed() {
        assert_eq!(
            detail("not.a.valid.jwt.at.all", &expect(None, None)),
            "Invalid DPoP proof: malformed JWT"
        );
        assert_eq!(
            detail("W10.e30.c2ln", &expect(None, None)),
            "Invalid DPoP proof: malformed JWT"
        );
    }

    #[test]
    fn d02_typ() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let jwk = jwk::public_jwk(key.public_key());
        let proof = raw_proof(
            json!({"typ": "JWT", "jwk": jwk}),
            &claims(json!({})),
            &key,
            JwsAlg::ES256,
        );
        assert_eq!(
            detail(&proof, &expect(None, None)),
            "Invalid DPoP proof: typ must be 'dpop+jwt'"
        );
    }

    #[test]
    fn d03_unsupported_algorithms() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let jwk = jwk::public_jwk(key.public_key());
        for (alg, shown) in [
            (json!("HS256"), "'HS256'"),
            (json!("none"), "'none'"),
            (json!("RS256"), "'RS256'"),
            (Value::Null, "None"),
        ] {
            let mut header = json!({"typ": "dpop+jwt", "jwk": jwk});
            if !alg.is_null() {
                header["alg"] = alg;
            }
            let proof = unsigned(header, &claims(json!({})));
            assert_eq!(
                detail(&proof, &expect(None, None)),
                format!("Invalid DPoP proof: unsupported algorithm {shown}")
            );
        }
    }

    #[test]
    fn d04_d05_d06_jwk_problems() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let c = claims(json!({}));
        let missing = unsigned(json!({"typ": "dpop+jwt", "alg": "ES256"}), &c);
        assert_eq!(
            detail(&missing, &expect(None, None)),
            "Invalid DPoP proof: missing jwk in header"
        );
        let not_object = unsigned(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": "x"}), &c);
        assert_eq!(
            detail(&not_object, &expect(None, None)),
            "Invalid DPoP proof: missing jwk in header"
        );
        let mut private = jwk::public_jwk(key.public_key());
        private.insert("d".into(), "secret".into());
        let with_d = unsigned(
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
            &c,
        );
        assert_eq!(
            detail(&with_d, &expect(None, None)),
            "Invalid DPoP proof: jwk contains private key material"
        );
        let okp = unsigned(
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AA"}}),
            &c,
        );
        assert_eq!(
            detail(&okp, &expect(None, None)),
            "Invalid DPoP proof: cannot compute JWK thumbprint"
        );
    }

    #[test]
    fn d07_signature_failures() {
        let signer = PrivateKey::generate(KeyType::EcP256).unwrap();
        let other = PrivateKey::generate(KeyType::EcP256).unwrap();
        let p384 = PrivateKey::generate(KeyType::EcP384).unwrap();
        let c = claims(json!({}));
        let wrong_key = raw_proof(
            json!({"typ": "dpop+jwt", "jwk": jwk::public_jwk(other.public_key())}),
            &c,
            &signer,
            JwsAlg::ES256,
        );
        let p384_jwk = unsigned(
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk::public_jwk(p384.public_key())}),
            &c,
        );
        let future_nbf = raw_proof(
            json!({"typ": "dpop+jwt", "jwk": jwk::public_jwk(signer.public_key())}),
            &claims(json!({"nbf": NOW + 60})),
            &signer,
            JwsAlg::ES256,
        );
        // A DER signature where ES256 wants raw r‖s.
        let good = DpopKey::new(PrivateKey::from_pkcs8_der(signer.pkcs8_der()).unwrap())
            .unwrap()
            .sign(&c);
        let (input, _) = good.rsplit_once('.').unwrap();
        let der = signer.sign_message(input.as_bytes()).unwrap();
        let der_signed = format!("{input}.{}", b64::url_unpadded(&der));
        for proof in [wrong_key, p384_jwk, future_nbf, der_signed] {
            assert_eq!(
                detail(&proof, &expect(None, None)),
                "Invalid DPoP proof: signature verification failed"
            );
        }
    }

    #[test]
    fn d08_to_d13_claim_checks() {
        let key = DpopKey::generate().unwrap();
        let cases = [
            (
                json!({"jti": null}),
                None,
                "Invalid DPoP proof: missing jti",
            ),
            (json!({"jti": ""}), None, "Invalid DPoP proof: missing jti"),
            (
                json!({"iat": null}),
                None,
                "Invalid DPoP proof: missing iat",
            ),
            (
                json!({"iat": NOW - 120}),
                None,
                "Invalid DPoP proof: iat out of acceptable window",
            ),
            (
                json!({"iat": NOW + 30}),
                None,
                "Invalid DPoP proof: iat out of acceptable window",
            ),
            (
                json!({"iat": "soon"}),
                None,
                "Invalid DPoP proof: iat out of acceptable window",
            ),
            (
                json!({"htm": "GET"}),
                None,
                "Invalid DPoP proof: htm mismatch",
            ),
            (json!({"htm": 5}), None, "Invalid DPoP proof: htm mismatch"),
            (
                json!({"htu": "http://test/v1/other"}),
                None,
                "Invalid DPoP proof: htu mismatch",
            ),
            (
                json!({"htu": "http://test:80/v1/auth/token"}),
                None,
                "Invalid DPoP proof: htu mismatch",
            ),
            (
                json!({"htu": "https://test/v1/auth/token"}),
                None,
                "Invalid DPoP proof: htu mismatch",
            ),
            (json!({}), Some("token"), "Invalid DPoP proof: ath mismatch"),
            (
                json!({"ath": access_token_hash("other")}),
                Some("token"),
                "Invalid DPoP proof: ath mismatch",
            ),
        ];
        for (overrides, token, expected) in cases {
            let proof = key.sign(&claims(overrides.clone()));
            assert_eq!(
                detail(&proof, &expect(token, None)),
                expected,
                "{overrides}"
            );
        }
    }

    #[test]
    fn iat_window_edges_are_inclusive_and_numeric_strings_pass() {
        let key = DpopKey::generate().unwrap();
        for iat in [
            json!(NOW - 60),
            json!(NOW + 5),
            json!(NOW as f64 + 4.5),
            json!(NOW.to_string()),
        ] {
            let proof = key.sign(&claims(json!({ "iat": iat.clone() })));
            assert!(check(&proof, &expect(None, None)).is_ok(), "{iat}");
        }
    }

    #[test]
    fn ws_urls_and_queries_match_their_http_form() {
        let key = DpopKey::generate().unwrap();
        let proof = key.sign(&claims(json!({"htu": "ws://test/v1/auth/token?x=1"})));
        assert!(check(&proof, &expect(None, None)).is_ok());
    }

    #[test]
    fn d14_nonce_missing_or_unknown() {
        let key = DpopKey::generate().unwrap();
        for nonce in [None, Some("stale"), Some("")] {
            let proof = key.proof("POST", HTU, None, nonce, NOW);
            assert_eq!(
                check(&proof, &expect(None, nonces())),
                Err(DpopError::NonceRequired)
            );
            assert_eq!(DpopError::NonceRequired.to_string(), "use_dpop_nonce");
        }
    }

    /// Polls a future that completes without waiting (the in-memory store's do).
    fn ready<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("in-memory store future was pending"),
        }
    }

    #[test]
    fn d15_replay_and_nothing_consumed_on_failure() {
        let key = DpopKey::generate().unwrap();
        let store = MemoryReplayStore::new();
        // A proof refused for its nonce consumes nothing: the client may retry.
        let refused = key.proof("POST", HTU, None, None, NOW);
        assert_eq!(
            ready(verify(&refused, &expect(None, nonces()), &store)),
            Err(DpopError::NonceRequired)
        );
        assert!(store.is_empty());
        let proof = key.proof("POST", HTU, None, Some("n-current"), NOW);
        assert_eq!(
            ready(verify(&proof, &expect(None, nonces()), &store)).unwrap(),
            key.jkt()
        );
        assert_eq!(
            ready(verify(&proof, &expect(None, nonces()), &store)),
            Err(DpopError::Replay)
        );
        assert_eq!(DpopError::Replay.to_string(), "DPoP proof replay detected");
    }
}
