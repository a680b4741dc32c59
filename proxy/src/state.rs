//! The server's shared state: the context plus what only `serve` has (rate limiter, the live
//! uplink, cached agent credentials, MCP sessions).

use crate::api_key;
use crate::config::ServeSettings;
use crate::context::{Context, OpError};
use crate::http::console::ConsoleState;
use crate::http::{ApiError, ApiResult, Cors};
use crate::mcp::McpSessions;
use crate::ratelimit::RateLimiter;
use crate::store::AgentRow;
use crate::uplink::{AgentCredentials, Uplink};
use http::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;

/// Answered before the org has joined a broker (the reference's text).
pub const NOT_JOINED: &str = "Egress bridge not initialized — broker_url may be unconfigured";

pub struct AppState {
    pub ctx: Context,
    pub serve: ServeSettings,
    pub limiter: RateLimiter,
    /// The PDP webhook's own window (all callers together).
    pub pdp_limiter: RateLimiter,
    pub mcp: McpSessions,
    /// Off unless `MCP_PROXY_ALLOWED_ORIGINS` is set.
    pub cors: Option<Cors>,
    /// The org admin's console (`/proxy/*`): session key, login limit, broker health.
    pub console: ConsoleState,
    /// Rebuilt when the broker URL in the store changes (`org join` needs no restart).
    uplink: Mutex<Option<Uplink>>,
    /// Agent credentials by agent id, with the certificate they were loaded for: a CLI
    /// `rotate-cert` in another process changes the stored certificate, which reloads them.
    credentials: Mutex<HashMap<String, (String, AgentCredentials)>>,
    /// Agent ids whose API key was rotated, or which were disabled or deleted, by this process:
    /// their SSE streams end at once.
    credential_changes: tokio::sync::broadcast::Sender<String>,
}

impl AppState {
    pub fn new(ctx: Context, serve: ServeSettings) -> AppState {
        AppState {
            limiter: RateLimiter::new(serve.rate_limit_per_minute),
            pdp_limiter: RateLimiter::new(serve.pdp_rate_limit_per_minute),
            mcp: McpSessions::default(),
            cors: Cors::new(&serve.allowed_origins),
            console: ConsoleState::new(&ctx.settings, &serve),
            ctx,
            serve,
            uplink: Mutex::new(None),
            credentials: Mutex::new(HashMap::new()),
            credential_changes: tokio::sync::broadcast::channel(64).0,
        }
    }

    /// Notices of agents whose local credentials changed (see [`AppState::credentials_changed`]).
    pub fn credential_changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.credential_changes.subscribe()
    }

    /// After a key rotation, disable or delete: the agent's SSE streams and MCP sessions end.
    /// (Changes made by another process are caught on their next use instead: streams check
    /// the key before every frame, MCP sessions on every request.)
    pub fn credentials_changed(&self, agent_id: &str) {
        let _ = self.credential_changes.send(agent_id.to_owned());
        self.mcp.close_agent(agent_id);
    }

    /// The uplink to the stored broker URL; 503 before `org join`.
    pub async fn uplink(&self) -> ApiResult<Uplink> {
        let broker_url = self
            .ctx
            .broker_url()
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_JOINED))?;
        let mut slot = self.uplink.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(uplink) = slot
            .as_ref()
            .filter(|u| u.broker_url() == broker_url.trim_end_matches('/'))
        {
            return Ok(uplink.clone());
        }
        let uplink = self.ctx.uplink_to(&broker_url)?;
        *slot = Some(uplink.clone());
        Ok(uplink)
    }

    /// The uplink credentials of a stored agent (cached while its certificate is unchanged).
    pub async fn credentials(
        &self,
        row: &AgentRow,
        uplink: &Uplink,
    ) -> ApiResult<AgentCredentials> {
        let cert = row.cert_pem.clone().unwrap_or_default();
        if let Some((cached_cert, creds)) = self
            .credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&row.agent_id)
        {
            if *cached_cert == cert {
                return Ok(creds.clone());
            }
        }
        let creds = self.ctx.agent_credentials(row).await.map_err(op_error)?;
        let previous = self
            .credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(row.agent_id.clone(), (cert, creds.clone()));
        if previous.is_some() {
            // New certificate and key: tokens and key caches of the old identity must go.
            uplink.forget_agent(&row.agent_id);
        }
        Ok(creds)
    }

    /// The local agent an `X-API-Key` / bearer value belongs to, with the reference's 401
    /// texts, then the per-agent rate limit (429 + Retry-After).
    pub async fn authenticate(
        &self,
        api_key: Option<&str>,
        missing_detail: &str,
    ) -> ApiResult<AgentRow> {
        let row = self.identify(api_key, missing_detail).await?;
        self.count_request(&row)?;
        Ok(row)
    }

    /// Counts one request of `row`'s agent against the per-agent limit (429 + Retry-After).
    pub fn count_request(&self, row: &AgentRow) -> ApiResult<()> {
        self.limiter.check(&row.agent_id).map_err(|retry_after| {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded")
                .with_header("Retry-After", retry_after.to_string())
        })
    }

    /// The local agent an API key belongs to (the reference's 401 texts), not rate-limited.
    pub async fn identify(
        &self,
        api_key: Option<&str>,
        missing_detail: &str,
    ) -> ApiResult<AgentRow> {
        let key = api_key.ok_or_else(|| ApiError::unauthorized(missing_detail))?;
        if !key.starts_with(api_key::PREFIX) {
            return Err(ApiError::unauthorized("Invalid API key format"));
        }
        let invalid = || ApiError::unauthorized("Invalid API key");
        let name = api_key::name_of(key).ok_or_else(invalid)?;
        let row = self
            .ctx
            .store
            .agent_by_name(name)
            .await?
            .ok_or_else(invalid)?;
        if !self.ctx.hasher.verify(key, &row.api_key_hash) || !row.is_active {
            return Err(invalid());
        }
        Ok(row)
    }
}

/// A lifecycle error as an HTTP error.
pub fn op_error(error: OpError) -> ApiError {
    match error {
        OpError::Invalid(d) => ApiError::bad_request(d),
        OpError::NotFound(d) => ApiError::not_found(d),
        OpError::Conflict(d) => ApiError::conflict(d),
        OpError::NotReady(d) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, d),
        OpError::Uplink(e) => e.into(),
        OpError::Store(e) => e.into(),
        OpError::Custody(e) => e.into(),
        OpError::Internal(d) => ApiError::internal(d),
    }
}
