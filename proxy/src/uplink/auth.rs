//! Agent authentication at the broker: the shared DPoP nonce, the per-agent token cache with
//! single-flight login and refresh ahead of expiry, and the retry rules of a DPoP-bound call
//! (once on `use_dpop_nonce`, once after a re-login on 401, once after a short `Retry-After` on
//! 429 — never a re-login on 403, so a policy denial is not asked twice).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cullis_shared::jose::{assertion, dpop::DpopKey};
use cullis_shared::wire::auth::TokenResponse;
use http::Method;
use serde_json::json;

use super::error::{detail_of, UplinkError};
use super::http::{Request, Response, Transport};
use super::AgentCredentials;

/// Refresh a token when less than this is left …
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// … or less than this fraction of its lifetime.
const REFRESH_FRACTION: u32 = 10;
/// The longest `Retry-After` honoured in line; longer ones surface the 429.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The broker's current DPoP nonce. The broker has one nonce for everybody, so one slot
/// serves all agents and logins usually need a single request.
#[derive(Default)]
pub(crate) struct SharedNonce(RwLock<Option<String>>);

impl SharedNonce {
    pub fn get(&self) -> Option<String> {
        self.0.read().expect("lock").clone()
    }

    pub fn remember(&self, response: &Response) {
        if let Some(nonce) = response.header("dpop-nonce") {
            let mut slot = self.0.write().expect("lock");
            if slot.as_deref() != Some(nonce) {
                *slot = Some(nonce.to_owned());
            }
        }
    }
}

/// A DPoP-bound access token and the key it is bound to.
pub(crate) struct Token {
    pub access_token: String,
    pub dpop: DpopKey,
    obtained: Instant,
    lifetime: Duration,
}

impl Token {
    /// Still usable without a refresh.
    fn fresh(&self) -> bool {
        let margin = REFRESH_MARGIN
            .max(self.lifetime / REFRESH_FRACTION)
            .min(self.lifetime / 2);
        self.obtained.elapsed() + margin < self.lifetime
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Token>>>>;

/// Tokens per agent. Each agent's slot is an async mutex: the caller that finds no fresh token
/// logs in while holding it, and concurrent callers wait for that one login.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<String, Slot>>,
    logins: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    fn slot(&self, agent_id: &str) -> Slot {
        self.slots
            .lock()
            .expect("lock")
            .entry(agent_id.to_owned())
            .or_default()
            .clone()
    }

    /// Drops `token` if it is still the cached one (not a newer one another caller got).
    pub async fn invalidate(&self, agent_id: &str, token: &Arc<Token>) {
        let slot = self.slot(agent_id);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|t| Arc::ptr_eq(t, token)) {
            *cached = None;
        }
    }

    pub fn forget(&self, agent_id: &str) {
        self.slots.lock().expect("lock").remove(agent_id);
    }

    /// Logins performed so far (observability and tests).
    pub fn login_count(&self) -> u64 {
        self.logins.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What the authenticated calls need: the transport, the nonce, the tokens.
pub(crate) struct Auth {
    pub transport: Transport,
    pub nonce: SharedNonce,
    pub tokens: TokenCache,
    /// Base URL (no trailing slash): the DPoP `htu` prefix.
    pub broker_url: String,
}

impl Auth {
    /// A fresh token for `agent`, logging in (once, for all concurrent callers) when needed.
    pub async fn token(&self, agent: &AgentCredentials) -> Result<Arc<Token>, UplinkError> {
        let slot = self.tokens.slot(&agent.agent_id);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.fresh()) {
            return Ok(token.clone());
        }
        let token = Arc::new(self.login_now(agent).await?);
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Logs in now, replacing any cached token (the "pin" login).
    pub async fn relogin(&self, agent: &AgentCredentials) -> Result<(), UplinkError> {
        let slot = self.tokens.slot(&agent.agent_id);
        let mut cached = slot.lock().await;
        *cached = Some(Arc::new(self.login_now(agent).await?));
        Ok(())
    }

    /// `POST /v1/auth/token` in an `uplink.login` span, counted by result.
    async fn login_now(&self, agent: &AgentCredentials) -> Result<Token, UplinkError> {
        use tracing::Instrument;
        let span = tracing::info_span!("uplink.login", agent.id = %agent.agent_id);
        let result = self.login_exchange(agent).instrument(span).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        crate::telemetry::metrics()
            .uplink_logins
            .add(1, &[opentelemetry::KeyValue::new("result", outcome)]);
        result
    }

    /// `POST /v1/auth/token` with a client assertion and a proof from a new DPoP key.
    async fn login_exchange(&self, agent: &AgentCredentials) -> Result<Token, UplinkError> {
        let dpop = DpopKey::generate().map_err(|e| UplinkError::Crypto(e.to_string()))?;
        let client_assertion =
            assertion::build(&agent.cert_der, &agent.key, &agent.agent_id, unix_now())
                .map_err(|e| UplinkError::Crypto(format!("client assertion: {e}")))?;
        let body = json!({ "client_assertion": client_assertion });
        let htu = format!("{}/v1/auth/token", self.broker_url);
        let response = self
            .send_with_nonce(|nonce| {
                let proof = dpop.proof("POST", &htu, None, nonce, unix_now());
                Request::new(Method::POST, "/v1/auth/token")
                    .header("DPoP", proof)
                    .json(&body)
            })
            .await?
            .ok()?;
        let issued: TokenResponse = response.json("token")?;
        self.tokens
            .logins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(agent_id = %agent.agent_id, expires_in = issued.expires_in, "broker login");
        Ok(Token {
            access_token: issued.access_token,
            dpop,
            obtained: Instant::now(),
            lifetime: Duration::from_secs(issued.expires_in),
        })
    }

    /// An agent call with `Authorization: DPoP <token>` and a proof with `ath`. On a 401 that
    /// is not about the nonce (token expired or revoked), logs in again and retries once.
    pub async fn call(
        &self,
        agent: &AgentCredentials,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, UplinkError> {
        // The broker compares against the decoded path, without the query.
        let raw_path = path.split('?').next().unwrap_or(path);
        let htu = format!(
            "{}{}",
            self.broker_url,
            percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy()
        );
        let mut may_relogin = true;
        loop {
            let token = self.token(agent).await?;
            let response = self
                .send_with_nonce(|nonce| {
                    let proof = token.dpop.proof(
                        method.as_str(),
                        &htu,
                        Some(&token.access_token),
                        nonce,
                        unix_now(),
                    );
                    let request = Request::new(method.clone(), path)
                        .header("Authorization", format!("DPoP {}", token.access_token))
                        .header("DPoP", proof);
                    match body {
                        Some(body) => request.json(body),
                        None => request,
                    }
                })
                .await?;
            if response.status == 401 && may_relogin && !asks_for_nonce(&response) {
                tracing::debug!(agent_id = %agent.agent_id, "broker 401: logging in again");
                if detail_of(&response.body) == REVOKED {
                    wait_out_revocation_second().await;
                }
                self.tokens.invalidate(&agent.agent_id, &token).await;
                may_relogin = false;
                continue;
            }
            return response.ok();
        }
    }

    /// Sends the request built for the current nonce; retries once with the broker's nonce on
    /// `use_dpop_nonce`, and once after a short `Retry-After` on 429.
    pub async fn send_with_nonce(
        &self,
        build: impl Fn(Option<&str>) -> Request,
    ) -> Result<Response, UplinkError> {
        let (mut nonce_retry, mut throttle_retry) = (true, true);
        loop {
            let nonce = self.nonce.get();
            let response = self.transport.send(&build(nonce.as_deref())).await?;
            self.nonce.remember(&response);
            if response.status == 401 && nonce_retry && asks_for_nonce(&response) {
                nonce_retry = false;
                continue;
            }
            if response.status == 429 && throttle_retry {
                if let Some(wait) = retry_after(&response).filter(|w| *w <= MAX_RETRY_AFTER) {
                    throttle_retry = false;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Ok(response);
        }
    }
}

/// The broker's answer to a token issued before a revocation of its agent.
pub(crate) const REVOKED: &str = "Token has been revoked";

/// The broker revokes an agent's tokens by a watermark of whole seconds (`iat <= watermark`),
/// so a token minted in the same second as the revocation (a certificate rotation, say) is
/// revoked too: a login after a revocation waits for the next second (at most one).
pub(crate) async fn wait_out_revocation_second() {
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let rest = Duration::from_secs(1).saturating_sub(Duration::from_nanos(u64::from(into_second)));
    tokio::time::sleep(rest + Duration::from_millis(5)).await;
}

fn asks_for_nonce(response: &Response) -> bool {
    response.status == 401
        && std::str::from_utf8(&response.body).is_ok_and(|b| b.contains("use_dpop_nonce"))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the broker).
pub(crate) fn retry_after(response: &Response) -> Option<Duration> {
    response
        .header("retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(lifetime: u64, age: u64) -> Token {
        Token {
            access_token: String::new(),
            dpop: DpopKey::generate().unwrap(),
            obtained: Instant::now() - Duration::from_secs(age),
            lifetime: Duration::from_secs(lifetime),
        }
    }

    #[test]
    fn refresh_ahead_of_expiry() {
        assert!(token(1800, 0).fresh());
        assert!(token(1800, 1600).fresh());
        // 10 % of 30 min = 180 s left → refresh.
        assert!(!token(1800, 1621).fresh());
        // Short lifetimes: at least 60 s margin, but never more than half.
        assert!(!token(300, 241).fresh());
        assert!(token(60, 20).fresh());
        assert!(!token(60, 31).fresh());
        assert!(!token(0, 0).fresh());
    }
}
