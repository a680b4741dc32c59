//! An agent client speaking the broker's wire protocol the way the reference SDK does:
//! x509 client assertion, a fresh DPoP key per login, the `use_dpop_nonce` retry, and DPoP
//! proofs with `ath` on every authenticated call.

use cullis_shared::jose::{assertion, dpop::DpopKey};
use cullis_shared::keys::PrivateKey;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use std::sync::Mutex;

/// What an agent holds: its id, certificate and key.
pub struct AgentIdentity {
    pub agent_id: String,
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub key: PrivateKey,
}

/// A logged-in agent.
pub struct AgentSession {
    pub agent_id: String,
    pub base: String,
    pub http: Client,
    pub dpop: DpopKey,
    pub token: String,
    nonce: Mutex<Option<String>>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn remember_nonce(slot: &Mutex<Option<String>>, response: &reqwest::Response) {
    if let Some(nonce) = response
        .headers()
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
    {
        *slot.lock().unwrap() = Some(nonce.to_owned());
    }
}

impl AgentIdentity {
    /// The client assertion for this identity.
    pub fn assertion(&self) -> String {
        assertion::build(&self.cert_der, &self.key, &self.agent_id, now()).unwrap()
    }

    /// Logs in as the SDK does: first without a nonce, then once more with the server's.
    pub async fn login(
        &self,
        base: &str,
        http: &Client,
    ) -> Result<AgentSession, (StatusCode, Value)> {
        self.login_with_nonce(base, http, None).await
    }

    /// Logs in starting from a server nonce already known (a long-lived client's case: one
    /// request instead of two while the nonce is current).
    pub async fn login_with_nonce(
        &self,
        base: &str,
        http: &Client,
        known_nonce: Option<String>,
    ) -> Result<AgentSession, (StatusCode, Value)> {
        self.try_login(base, http, known_nonce)
            .await
            .expect("broker reachable")
    }
}

impl AgentSession {
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// An authenticated call with one retry on `use_dpop_nonce`, as the SDK's `_authed_request`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, body, &[]).await
    }

    /// [`AgentSession::call`] with extra request headers (e.g. `X-Transaction-Token`).
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let (status, bytes) = self
            .try_call_raw_with(method, path, body.as_ref(), headers)
            .await
            .expect("broker reachable");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The same session (token, DPoP key) talking to another broker replica.
    pub fn via(self, base: &str, http: &Client) -> AgentSession {
        AgentSession {
            base: base.to_owned(),
            http: http.clone(),
            nonce: Mutex::new(None),
            ..self
        }
    }

    /// The last server nonce seen.
    pub fn nonce(&self) -> Option<String> {
        self.nonce.lock().unwrap().clone()
    }
}

/// The login and call protocol itself. A transport failure (refused, reset, the HTTP client's
/// timeout) is an `Err`, so load harnesses can count it against a slow or failing broker; the
/// test-facing [`AgentIdentity::login_with_nonce`] and [`AgentSession::call`] panic on it.
impl AgentIdentity {
    /// Logs in (with the `use_dpop_nonce` retry). The outer `Err` is a transport failure, the
    /// inner one the broker's refusal (status and body).
    pub async fn try_login(
        &self,
        base: &str,
        http: &Client,
        known_nonce: Option<String>,
    ) -> Result<Result<AgentSession, (StatusCode, Value)>, reqwest::Error> {
        let dpop = DpopKey::generate().unwrap();
        let nonce = Mutex::new(known_nonce);
        let client_assertion = self.assertion();
        let url = format!("{base}/v1/auth/token");
        let mut last = (StatusCode::UNAUTHORIZED, Value::Null);
        for _ in 0..2 {
            let current = nonce.lock().unwrap().clone();
            let proof = dpop.proof("POST", &url, None, current.as_deref(), now());
            let response = http
                .post(&url)
                .header("DPoP", proof)
                .json(&serde_json::json!({"client_assertion": client_assertion}))
                .send()
                .await?;
            remember_nonce(&nonce, &response);
            let status = response.status();
            let body: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or_default();
            let token = body["access_token"].as_str().map(str::to_owned);
            match (status, token) {
                (StatusCode::OK, Some(token)) => {
                    return Ok(Ok(AgentSession {
                        agent_id: self.agent_id.clone(),
                        base: base.to_owned(),
                        http: http.clone(),
                        dpop,
                        token,
                        nonce,
                    }))
                }
                (StatusCode::UNAUTHORIZED, _) if body["detail"] == "use_dpop_nonce" => {
                    last = (status, body)
                }
                _ => return Ok(Err((status, body))),
            }
        }
        Ok(Err(last))
    }
}

impl AgentSession {
    /// An authenticated call (one retry on `use_dpop_nonce`) returning the status and the raw
    /// body — a harness can count bytes and skip parsing large answers.
    pub async fn try_call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>), reqwest::Error> {
        self.try_call_raw_with(method, path, body, &[]).await
    }

    /// [`AgentSession::try_call_raw`] with extra request headers: the one implementation of
    /// an authenticated call (DPoP proof bound to the token, the server's nonce remembered).
    pub async fn try_call_raw_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Vec<u8>), reqwest::Error> {
        let url = format!("{}{path}", self.base);
        let htu = url.split('?').next().unwrap().to_owned();
        let mut last = (StatusCode::UNAUTHORIZED, Vec::new());
        for _ in 0..2 {
            let current = self.nonce.lock().unwrap().clone();
            let proof = self.dpop.proof(
                method.as_str(),
                &htu,
                Some(&self.token),
                current.as_deref(),
                now(),
            );
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("Authorization", format!("DPoP {}", self.token))
                .header("DPoP", proof);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await?;
            remember_nonce(&self.nonce, &response);
            let status = response.status();
            let bytes = Vec::from(response.bytes().await?);
            let retry = status == StatusCode::UNAUTHORIZED
                && serde_json::from_slice::<Value>(&bytes)
                    .is_ok_and(|value| value["detail"] == "use_dpop_nonce");
            if !retry {
                return Ok((status, bytes));
            }
            last = (status, bytes);
        }
        Ok(last)
    }
}
