//! TEMPORARY stub of the uplink API (common.md contract) so the core compiles before the
//! `uplink` branch lands; replaced by the uplink helper's module on merge.
#![allow(unused_variables, clippy::unused_async)]

use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct UplinkConfig {
    pub broker_url: String,
    pub ca_bundle: Option<PathBuf>,
    pub insecure_tls: bool,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct Uplink {
    broker_url: Arc<String>,
}

#[derive(Debug, Clone)]
pub struct OrgCredentials {
    pub org_id: String,
    pub secret: String,
}

#[derive(Clone)]
pub struct AgentCredentials {
    pub agent_id: String,
    pub cert_der: Vec<u8>,
    pub key: Arc<cullis_shared::keys::PrivateKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("broker answered {status}: {detail}")]
    Broker { status: u16, detail: String },
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("crypto: {0}")]
    Crypto(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReceivedMessage {
    pub seq: i64,
    pub sender_agent_id: String,
    pub payload: Value,
    pub nonce: String,
    pub timestamp: String,
    pub signature: String,
    pub client_seq: Option<u64>,
    pub verified: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    NewMessage { session_id: String },
}

impl Uplink {
    pub fn new(config: UplinkConfig) -> Result<Uplink, UplinkError> {
        Ok(Uplink { broker_url: Arc::new(config.broker_url) })
    }
    pub fn broker_url(&self) -> &str {
        &self.broker_url
    }
    pub async fn healthz(&self) -> Result<(), UplinkError> {
        todo!()
    }
    pub async fn join(&self, body: &Value) -> Result<Value, UplinkError> {
        todo!()
    }
    pub async fn org_status(&self, org: &OrgCredentials) -> Result<Value, UplinkError> {
        todo!()
    }
    pub async fn register_agent(&self, org: &OrgCredentials, agent_id: &str, display_name: &str, capabilities: &[String]) -> Result<(), UplinkError> {
        todo!()
    }
    pub async fn rotate_cert(&self, org: &OrgCredentials, agent_id: &str, new_cert_pem: &str) -> Result<(), UplinkError> {
        todo!()
    }
    pub async fn revoke_agent(&self, org: &OrgCredentials, agent_id: &str) -> Result<(), UplinkError> {
        todo!()
    }
    pub async fn login(&self, agent: &AgentCredentials) -> Result<(), UplinkError> {
        todo!()
    }
    pub fn forget_agent(&self, agent_id: &str) {}
    pub async fn discover(&self, agent: &AgentCredentials, capabilities: &[String], q: Option<&str>) -> Result<Vec<cullis_shared::wire::egress::AgentInfo>, UplinkError> {
        todo!()
    }
    pub async fn open_session(&self, agent: &AgentCredentials, target_agent_id: &str, target_org_id: &str, capabilities: &[String]) -> Result<String, UplinkError> {
        todo!()
    }
    pub async fn list_sessions(&self, agent: &AgentCredentials, status: Option<&str>) -> Result<Vec<cullis_shared::wire::egress::SessionInfo>, UplinkError> {
        todo!()
    }
    pub async fn accept_session(&self, agent: &AgentCredentials, session_id: &str) -> Result<(), UplinkError> {
        todo!()
    }
    pub async fn close_session(&self, agent: &AgentCredentials, session_id: &str) -> Result<(), UplinkError> {
        todo!()
    }
    pub async fn send(&self, agent: &AgentCredentials, session_id: &str, recipient_agent_id: &str, payload: &Value, client_seq: u64) -> Result<(), UplinkError> {
        todo!()
    }
    pub async fn poll(&self, agent: &AgentCredentials, session_id: &str, after: i64) -> Result<Vec<ReceivedMessage>, UplinkError> {
        todo!()
    }
    pub async fn subscribe(&self, agent: &AgentCredentials) -> Result<tokio::sync::broadcast::Receiver<AgentEvent>, UplinkError> {
        todo!()
    }
}
