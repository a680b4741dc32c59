//! The broker uplink: the client the proxy uses to talk to the Cullis broker on behalf of the
//! organisation (org-credential calls) and of its agents (DPoP-authenticated calls, E2E crypto,
//! WebSocket push).
//!
//! - REST goes over pingora's HTTP connector ([`http`]): one keep-alive pool, TLS verified
//!   against the system roots plus an optional CA bundle, optional mTLS, per-request deadline.
//! - Agents log in on demand ([`auth`]): one token per agent, refreshed ahead of expiry,
//!   single-flight; one broker DPoP nonce shared by all agents.
//! - Sends are sealed and polls opened here ([`e2e`]); the inner signature is verified and
//!   reported as `verified`.
//! - Push ([`events`]): pingora has no WebSocket client, so the broker socket uses
//!   tokio-tungstenite with a rustls configuration equivalent to the REST one.
//!
//! Refinements of the agreed API (names unchanged):
//! - [`ReceivedMessage`] has an extra `error` field: an inbox item that cannot be opened is
//!   returned with `verified: false`, `payload: {"cullis_error": …}` and `error` set, instead of
//!   failing the whole poll (see [`e2e`]).
//! - [`AgentEvent`] is `{"type": …}`-tagged JSON; besides the broker's pushes it has `resync`
//!   (after a reconnect: pushes may have been missed, poll to catch up) and `other` (RFQ and
//!   transaction-token frames, verbatim).
//! - Configuration problems in [`Uplink::new`] (unreadable CA bundle or client key, bad URL)
//!   are reported as [`UplinkError::Protocol`] with an "invalid …" detail.
//! - [`Uplink::login_count`] and [`Uplink::request_count`] count broker logins and HTTP
//!   requests (observability, tests).

mod agent;
mod auth;
mod e2e;
mod error;
mod events;
mod http;
mod org;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cullis_shared::keys::PrivateKey;
use serde::Serialize;
use serde_json::Value;

pub use agent::{DiscoveredPage, PageRequest};
pub use error::UplinkError;

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// Base URL, no trailing slash; also the DPoP `htu` base.
    pub broker_url: String,
    /// Extra PEM roots for the broker's TLS.
    pub ca_bundle: Option<PathBuf>,
    /// `--insecure-broker-tls`, dev only (logs a loud warning).
    pub insecure_tls: bool,
    /// mTLS to the broker: certificate PEM path, key PEM path.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Per request.
    pub timeout: Duration,
}

impl UplinkConfig {
    /// Verified TLS, no client certificate, 10 s per request.
    pub fn new(broker_url: &str) -> UplinkConfig {
        UplinkConfig {
            broker_url: broker_url.trim_end_matches('/').to_owned(),
            ca_bundle: None,
            insecure_tls: false,
            client_cert: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The org's credentials at the broker (`X-Org-Id` / `X-Org-Secret`).
#[derive(Clone)]
pub struct OrgCredentials {
    pub org_id: String,
    pub secret: String,
}

impl std::fmt::Debug for OrgCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgCredentials")
            .field("org_id", &self.org_id)
            .finish_non_exhaustive()
    }
}

/// What the proxy custodies for one agent.
#[derive(Clone)]
pub struct AgentCredentials {
    pub agent_id: String,
    pub cert_der: Vec<u8>,
    pub key: Arc<PrivateKey>,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

/// One message received in a session, decrypted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceivedMessage {
    pub seq: i64,
    /// The broker's id of the message, for `POST /v1/egress/messages/{session_id}/{msg_id}/ack`.
    pub msg_id: String,
    pub sender_agent_id: String,
    /// The decrypted inner payload (`{"cullis_error": …}` when it could not be opened).
    pub payload: Value,
    pub nonce: String,
    /// The broker's storage time (ISO-8601).
    pub timestamp: String,
    /// The outer signature as the broker stored it.
    pub signature: String,
    pub client_seq: Option<u64>,
    /// The inner signature verified with the sender's key.
    pub verified: bool,
    /// Why the message could not be opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A push for one agent, serialisable to JSON (`{"type": …, …}`) for SSE.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// A session targeting this agent awaits acceptance.
    SessionPending {
        session_id: String,
        initiator_agent_id: String,
        initiator_org_id: String,
        capabilities: Vec<String>,
    },
    /// The target rejected a session this agent initiated.
    SessionRejected {
        session_id: String,
        rejected_by: String,
    },
    /// A session was closed. The broker pushes no such frame today; the variant is here for
    /// the proxy's own use (e.g. when its agent closes a session).
    SessionClosed { session_id: String },
    /// A message was stored for this agent.
    NewMessage {
        session_id: String,
        seq: i64,
        sender_agent_id: String,
        /// The decrypted message, when it could be fetched.
        message: Option<ReceivedMessage>,
        /// Why `message` is missing.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The broker socket was re-established after a break: pushes may have been missed, so
    /// consumers should poll to catch up.
    Resync { reason: String },
    /// Any other broker push (RFQ, transaction token), verbatim.
    Other { frame: Value },
}

/// State shared by all clones.
struct Inner {
    auth: auth::Auth,
    keys: e2e::KeyCache,
    events: events::Subscriptions,
    /// TLS settings for the WebSocket (REST TLS lives in the pingora peer).
    ws_tls: Option<Arc<rustls::ClientConfig>>,
    /// `ws(s)://…/v1/broker/ws`.
    ws_url: String,
    timeout: Duration,
}

/// The broker client. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Uplink {
    inner: Arc<Inner>,
}

impl Uplink {
    pub fn new(config: UplinkConfig) -> Result<Uplink, UplinkError> {
        let broker_url = config.broker_url.trim_end_matches('/').to_owned();
        let address = http::BrokerAddress::parse(&broker_url)?;
        let tls = tls::TlsSettings::load(&config)?;
        let ws_tls = if address.tls {
            Some(tls.rustls_config()?)
        } else {
            None
        };
        let ws_url = format!(
            "{}{}",
            if address.tls { "wss://" } else { "ws://" },
            broker_url.split_once("://").map_or("", |(_, rest)| rest)
        ) + events::WS_PATH;
        let transport = http::Transport::new(address, &tls, config.timeout);
        Ok(Uplink {
            inner: Arc::new(Inner {
                auth: auth::Auth {
                    transport,
                    nonce: auth::SharedNonce::default(),
                    tokens: auth::TokenCache::default(),
                    broker_url,
                },
                keys: e2e::KeyCache::default(),
                events: events::Subscriptions::default(),
                ws_tls,
                ws_url,
                timeout: config.timeout,
            }),
        })
    }

    pub fn broker_url(&self) -> &str {
        &self.inner.auth.broker_url
    }

    /// Broker logins performed by this uplink so far.
    pub fn login_count(&self) -> u64 {
        self.inner.auth.tokens.login_count()
    }

    /// HTTP requests sent to the broker so far (WebSocket handshakes not included).
    pub fn request_count(&self) -> u64 {
        self.inner
            .auth
            .transport
            .sent
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Log in now (also the "pin" login), replacing any cached token.
    pub async fn login(&self, agent: &AgentCredentials) -> Result<(), UplinkError> {
        self.inner.auth.relogin(agent).await
    }

    /// Drop the agent's token, key caches and event stream.
    pub fn forget_agent(&self, agent_id: &str) {
        self.inner.auth.tokens.forget(agent_id);
        self.inner.keys.invalidate(agent_id);
        self.inner.events.close(agent_id);
    }
}

/// One path segment, percent-encoded (ids come from local agents' requests; `.` too, so no
/// id can be `..`).
pub(crate) fn path_segment(text: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'~')
        .remove(b':');
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}
