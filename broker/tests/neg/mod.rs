//! Helpers shared by the negative suites: requests that refuse to see a server error (the
//! "no 500" sweep: every request of these suites goes through [`send`]), hand-made
//! certificates, client assertions, DPoP proofs and access tokens.

#![allow(dead_code)]

use crate::common::client::{AgentIdentity, AgentSession};
use crate::common::{TestBroker, TestOrg, ADMIN_SECRET};
use cullis_shared::encoding::b64;
use cullis_shared::jose::dpop::DpopKey;
use cullis_shared::jose::jws::{self, JwsAlg};
use cullis_shared::keys::{pem_encode, PrivateKey};
use cullis_shared::pki::OrgCa;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Map, Value};

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// A response as the negative tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `detail` string ("" when the body has none or it is a list).
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and the exact `detail`.
    #[track_caller]
    pub fn expect(&self, status: u16, detail: &str) -> &Reply {
        assert_eq!(
            (self.status.as_u16(), self.detail()),
            (status, detail),
            "body: {}",
            self.text
        );
        self
    }

    /// Asserts a 422 whose `detail` is a FastAPI-style list with an item at `loc`.
    #[track_caller]
    pub fn expect_422(&self, loc: &[&str]) -> &Reply {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            self.text
        );
        let items = self.body["detail"]
            .as_array()
            .unwrap_or_else(|| panic!("422 detail is not a list: {}", self.text));
        assert!(!items.is_empty(), "{}", self.text);
        for item in items {
            assert!(
                item["type"].is_string() && item["msg"].is_string() && item["loc"].is_array(),
                "validation item shape: {item}"
            );
        }
        let wanted: Vec<Value> = loc.iter().map(|part| json!(part)).collect();
        assert!(
            items
                .iter()
                .any(|item| item["loc"].as_array() == Some(&wanted)),
            "no item at {loc:?}: {}",
            self.text
        );
        self
    }

    /// Asserts a 422 list `detail` whose items all sit under `loc` (e.g. `["body"]`).
    #[track_caller]
    pub fn expect_422_under(&self, prefix: &[&str]) -> &Reply {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            self.text
        );
        let items = self.body["detail"]
            .as_array()
            .unwrap_or_else(|| panic!("422 detail is not a list: {}", self.text));
        assert!(!items.is_empty(), "{}", self.text);
        let wanted: Vec<Value> = prefix.iter().map(|part| json!(part)).collect();
        for item in items {
            let loc = item["loc"].as_array().expect("loc is a list");
            assert!(loc.starts_with(&wanted), "{item} not under {prefix:?}");
        }
        self
    }

    /// Asserts a 401 `use_dpop_nonce` with a fresh `DPoP-Nonce` and no `WWW-Authenticate`.
    #[track_caller]
    pub fn expect_nonce_challenge(&self) -> String {
        self.expect(401, "use_dpop_nonce");
        assert!(
            self.header("www-authenticate").is_none(),
            "{:?}",
            self.headers
        );
        let nonce = self.header("dpop-nonce").expect("DPoP-Nonce header");
        assert_eq!(nonce.len(), 32, "{nonce}");
        nonce.to_owned()
    }

    /// Asserts the DPoP `WWW-Authenticate` challenge of §3.6.
    #[track_caller]
    pub fn expect_dpop_challenge(&self) -> &Reply {
        assert_eq!(
            self.header("www-authenticate"),
            Some(r#"DPoP realm="agent-trust", algs="ES256 PS256""#),
            "{:?}",
            self.headers
        );
        self
    }
}

/// Sends a request; any 5xx answer fails the test (the "never a 500" sweep).
pub async fn send(request: RequestBuilder) -> Reply {
    let (client, request) = request.build_split();
    let request = request.expect("a well-formed request");
    let what = format!("{} {}", request.method(), request.url().path());
    let response = client
        .execute(request)
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    assert!(
        !status.is_server_error(),
        "{what} answered {status}: {text}"
    );
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

fn with_body(request: RequestBuilder, body: Option<Value>) -> RequestBuilder {
    match body {
        Some(body) => request.json(&body),
        None => request,
    }
}

/// A request without credentials.
pub async fn anon(b: &TestBroker, method: Method, path: &str, body: Option<Value>) -> Reply {
    send(with_body(b.http.request(method, b.url(path)), body)).await
}

/// A request with the admin secret.
pub async fn admin(b: &TestBroker, method: Method, path: &str, body: Option<Value>) -> Reply {
    let request = b
        .http
        .request(method, b.url(path))
        .header("x-admin-secret", ADMIN_SECRET);
    send(with_body(request, body)).await
}

/// A request with an org's credentials.
pub async fn org(
    b: &TestBroker,
    org: &TestOrg,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    org_as(b, &org.org_id, &org.secret, method, path, body).await
}

/// A request with any org id / secret pair.
pub async fn org_as(
    b: &TestBroker,
    org_id: &str,
    secret: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let request = b
        .http
        .request(method, b.url(path))
        .header("x-org-id", org_id)
        .header("x-org-secret", secret);
    send(with_body(request, body)).await
}

/// An authenticated call through the SDK-like session (nonce retry included), 5xx refused.
pub async fn call(session: &AgentSession, method: Method, path: &str) -> (StatusCode, Value) {
    let (status, body) = session.call(method.clone(), path, None).await;
    assert!(
        !status.is_server_error(),
        "{method} {path} answered {status}: {body}"
    );
    (status, body)
}

/// A raw request with `Authorization: DPoP <token>` and, when given, a `DPoP` proof.
pub async fn authed(
    b: &TestBroker,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    proof: Option<&str>,
) -> Reply {
    let mut request = b.http.request(method, b.url(path));
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    send(request).await
}

// ---------------------------------------------------------------------------------------------
// Onboarding shortcuts
// ---------------------------------------------------------------------------------------------

/// A fresh invite token.
pub async fn invite(b: &TestBroker) -> (String, String) {
    let reply = admin(
        b,
        Method::POST,
        "/v1/admin/invites",
        Some(json!({"label": "neg"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (
        reply.body["id"].as_str().unwrap().to_owned(),
        reply.body["token"].as_str().unwrap().to_owned(),
    )
}

/// The join body for `org` (its own CA) with `invite_token`.
pub fn join_body(org: &TestOrg, invite_token: &str) -> Value {
    json!({
        "org_id": org.org_id,
        "display_name": format!("{} Inc.", org.org_id),
        "secret": org.secret,
        "ca_certificate": org.ca.cert_pem(),
        "contact_email": format!("ops@{}.example", org.org_id),
        "invite_token": invite_token,
    })
}

/// Registers `<org>::<name>` with `capabilities` (no binding).
pub async fn register_only(b: &TestBroker, o: &TestOrg, name: &str, capabilities: &[&str]) {
    let agent_id = format!("{}::{name}", o.org_id);
    let reply = org(
        b,
        o,
        Method::POST,
        "/v1/registry/agents",
        Some(json!({"agent_id": agent_id, "org_id": o.org_id, "display_name": name, "capabilities": capabilities})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

/// Creates a binding with `scope`; returns its id.
pub async fn create_binding(b: &TestBroker, o: &TestOrg, agent_id: &str, scope: &[&str]) -> i64 {
    let reply = org(
        b,
        o,
        Method::POST,
        "/v1/registry/bindings",
        Some(json!({"org_id": o.org_id, "agent_id": agent_id, "scope": scope})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["id"].as_i64().unwrap()
}

/// The binding id of `agent_id` in its org.
pub async fn binding_id(b: &TestBroker, o: &TestOrg, agent_id: &str) -> i64 {
    let reply = org(
        b,
        o,
        Method::GET,
        &format!("/v1/registry/bindings?org_id={}", o.org_id),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|binding| binding["agent_id"] == agent_id)
        .and_then(|binding| binding["id"].as_i64())
        .expect("a binding for the agent")
}

// ---------------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------------

pub fn token_url(b: &TestBroker) -> String {
    b.url("/v1/auth/token")
}

/// A current server nonce, obtained the SDK way: a proof without one is answered
/// 401 `use_dpop_nonce` with the nonce in `DPoP-Nonce` (nothing is consumed).
pub async fn fresh_nonce(b: &TestBroker) -> String {
    let key = DpopKey::generate().unwrap();
    let proof = key.proof("POST", &token_url(b), None, None, now());
    post_token(b, &proof, "not-even-a-jwt")
        .await
        .expect_nonce_challenge()
}

/// `POST /v1/auth/token` with exactly this proof and assertion.
pub async fn post_token(b: &TestBroker, proof: &str, assertion: &str) -> Reply {
    send(
        b.http
            .post(token_url(b))
            .header("DPoP", proof)
            .json(&json!({"client_assertion": assertion})),
    )
    .await
}

/// Logs in with `assertion` and a fresh DPoP key, with a valid nonce from the start.
pub async fn login(b: &TestBroker, assertion: &str) -> Reply {
    let nonce = fresh_nonce(b).await;
    let key = DpopKey::generate().unwrap();
    let proof = key.proof("POST", &token_url(b), None, Some(&nonce), now());
    post_token(b, &proof, assertion).await
}

/// Logs in as `identity` (SDK-shaped assertion).
pub async fn login_as(b: &TestBroker, identity: &AgentIdentity) -> Reply {
    login(b, &identity.assertion()).await
}

/// A logged-in session for `identity` (panics if the login fails).
pub async fn session(b: &TestBroker, identity: &AgentIdentity) -> AgentSession {
    identity
        .login(&b.base, &b.http)
        .await
        .unwrap_or_else(|(status, body)| panic!("login of {}: {status} {body}", identity.agent_id))
}

// ---------------------------------------------------------------------------------------------
// Client assertions
// ---------------------------------------------------------------------------------------------

/// The claims the SDK puts in an assertion for `agent_id`.
pub fn assertion_claims(agent_id: &str) -> Value {
    let now = now();
    json!({
        "sub": agent_id,
        "iss": agent_id,
        "aud": "agent-trust-broker",
        "iat": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// `base` with `overrides` applied; a `null` override removes the member.
pub fn with(mut base: Value, overrides: Value) -> Value {
    let object = base.as_object_mut().unwrap();
    for (name, value) in overrides.as_object().unwrap() {
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.clone(), value.clone());
        }
    }
    base
}

/// Signs `claims` with `key` (its natural algorithm) under a header carrying `x5c` = the
/// certificate, plus `extra_header` members (`null` removes one, e.g. `{"x5c": null}`).
pub fn signed_assertion(
    cert_der: &[u8],
    key: &PrivateKey,
    extra_header: Value,
    claims: &Value,
) -> String {
    let header = with(
        json!({"typ": "JWT", "x5c": [b64::std_padded(cert_der)]}),
        extra_header,
    );
    let alg = JwsAlg::for_key(key.public_key()).unwrap();
    jws::sign(header.as_object().unwrap().clone(), claims, alg, key).unwrap()
}

/// A JWS with an arbitrary header and a junk signature of `signature_len` bytes.
pub fn forged_jws(header: &Value, claims: &Value, signature_len: usize) -> String {
    format!(
        "{}.{}.{}",
        b64::url_unpadded(header.to_string().as_bytes()),
        b64::url_unpadded(claims.to_string().as_bytes()),
        b64::url_unpadded(&vec![7u8; signature_len])
    )
}

// ---------------------------------------------------------------------------------------------
// DPoP proofs
// ---------------------------------------------------------------------------------------------

/// Proof claims as the SDK writes them.
pub fn proof_claims(htm: &str, htu: &str, token: Option<&str>, nonce: Option<&str>) -> Value {
    let mut claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": htm,
        "htu": htu,
        "iat": now(),
    });
    if let Some(token) = token {
        claims["ath"] = cullis_shared::jose::dpop::access_token_hash(token).into();
    }
    if let Some(nonce) = nonce {
        claims["nonce"] = nonce.into();
    }
    claims
}

/// A proof with an arbitrary header (no `alg`; it is added) signed by `key` with `alg`.
pub fn proof_with_header(header: Value, claims: &Value, key: &PrivateKey, alg: JwsAlg) -> String {
    jws::sign(header.as_object().unwrap().clone(), claims, alg, key).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Certificates (rcgen, signed with the org CA key)
// ---------------------------------------------------------------------------------------------

/// An rcgen key pair for one of our keys.
pub fn rcgen_key(key: &PrivateKey) -> KeyPair {
    KeyPair::from_pem(&key.to_pkcs8_pem()).expect("rcgen reads our PKCS#8")
}

/// An rcgen issuer over the org CA's key (issuer name `CN=<org> CA, O=<org>`).
pub fn issuer(ca: &OrgCa) -> Issuer<'static, KeyPair> {
    let org = ca.org_id().unwrap_or("org");
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{org} CA"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
    Issuer::new(params, rcgen_key(ca.private_key()))
}

/// Agent-like leaf parameters: the given CN / O / SAN URI, CA:FALSE, EKU clientAuth, valid
/// from a minute ago for a day, random serial.
pub fn leaf_params(cn: Option<&str>, o: Option<&str>, san: Option<&str>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    if let Some(o) = o {
        params.distinguished_name.push(DnType::OrganizationName, o);
    }
    if let Some(san) = san {
        params.subject_alt_names = vec![SanType::URI(san.try_into().unwrap())];
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(1);
    let mut serial = *uuid::Uuid::new_v4().as_bytes();
    serial[0] = (serial[0] & 0x7f) | 0x10;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params
}

/// CA=true parameters (for "a CA is never an agent" and CA uploads).
pub fn make_ca(params: &mut CertificateParams) {
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.extended_key_usages.clear();
}

/// Signs `params` for `subject` with the org CA key; returns the DER.
pub fn sign_leaf(ca: &OrgCa, params: &CertificateParams, subject: &impl PublicKeyData) -> Vec<u8> {
    params
        .signed_by(subject, &issuer(ca))
        .expect("rcgen signs")
        .der()
        .to_vec()
}

/// An identity from a hand-made certificate.
pub fn identity(agent_id: &str, cert_der: Vec<u8>, key: PrivateKey) -> AgentIdentity {
    AgentIdentity {
        agent_id: agent_id.to_owned(),
        cert_pem: pem_encode("CERTIFICATE", &cert_der),
        cert_der,
        key,
    }
}

/// A hand-made leaf for `<cn>` / `<o>` with a fresh P-256 key, as an identity.
pub fn custom_identity(
    ca: &OrgCa,
    cn: &str,
    tweak: impl FnOnce(&mut CertificateParams),
) -> AgentIdentity {
    let org = cn.split("::").next().unwrap();
    let key = PrivateKey::generate(cullis_shared::keys::KeyType::EcP256).unwrap();
    let mut params = leaf_params(
        Some(cn),
        Some(org),
        Some(&format!(
            "spiffe://{}/{}",
            crate::common::TRUST_DOMAIN,
            cn.replace("::", "/")
        )),
    );
    tweak(&mut params);
    let der = sign_leaf(ca, &params, &rcgen_key(&key));
    identity(cn, der, key)
}

/// An RSA-1024 public key (for "key too small"); nobody holds its private key.
pub struct Rsa1024;

/// PKCS#1 RSAPublicKey DER, base64.
const RSA1024_PUBLIC: &str = "MIGJAoGBAMi096IUxh5L0M+MJNeme+mydeAxncJ3lCQADZJ0eHgESyOIVmXq/i8nOxfEtvhIzMkZUVkFRbyB+OiubCjIhjgL1QCdPmx+5kq8fkoZgJw7RmZpLVYnFjJBs9HzimrIWR2l1frjhXvhubHhwCc2hfkjivAvWWvNN+cfgawozU8FAgMBAAE=";

impl PublicKeyData for Rsa1024 {
    fn der_bytes(&self) -> &[u8] {
        static DER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        DER.get_or_init(|| b64::decode_std(RSA1024_PUBLIC).unwrap())
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// The serial of a DER certificate, as the broker renders it.
pub fn serial_of(cert_der: &[u8]) -> String {
    cullis_shared::pki::Certificate::from_der(cert_der)
        .unwrap()
        .serial_hex()
        .to_owned()
}

/// A JSON object from a `json!` literal.
pub fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}
