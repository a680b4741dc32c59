//! What every entry point (the server, the CLI, the admin API) works on: settings, the store,
//! custody and the API-key hasher, plus typed access to the stored organisation config.

use crate::api_key::ApiKeyHasher;
use crate::config::{CommonSettings, ConfigError};
use crate::custody::{Custody, CustodyError};
use crate::store::{AgentRow, Store, StoreError};
use crate::uplink::{AgentCredentials, OrgCredentials, Uplink, UplinkConfig, UplinkError};
use cullis_shared::keys::PrivateKey;
use cullis_shared::pki::cert::Certificate;
use cullis_shared::pki::OrgCa;
use std::sync::Arc;

/// Settings keys of the organisation config.
pub mod keys {
    pub const BROKER_URL: &str = "broker_url";
    pub const ORG_ID: &str = "org_id";
    pub const DISPLAY_NAME: &str = "display_name";
    pub const CONTACT_EMAIL: &str = "contact_email";
    pub const WEBHOOK_URL: &str = "webhook_url";
    pub const ORG_STATUS: &str = "org_status";
    pub const ORG_CA_CERT: &str = "org_ca_cert";
    /// Custody names.
    pub const SECRET_ORG: &str = "org_secret";
    /// A new org secret while `org rotate-secret` replaces it at the broker (recoverable if
    /// the proxy stops in between).
    pub const SECRET_ORG_NEXT: &str = "org_secret_next";
    pub const SECRET_CA_KEY: &str = "org_ca_key";
    pub const SECRET_API_HMAC: &str = "api_key_hmac";

    pub fn agent_key(agent_id: &str) -> String {
        format!("agent_key:{agent_id}")
    }
}

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A prerequisite step has not been done (org not initialised / joined).
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Uplink(#[from] UplinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Custody(#[from] CustodyError),
    #[error("{0}")]
    Internal(String),
}

/// Settings, store, custody and hasher.
#[derive(Debug, Clone)]
pub struct Context {
    pub settings: Arc<CommonSettings>,
    pub store: Store,
    pub custody: Custody,
    pub hasher: ApiKeyHasher,
}

/// A failure to open the context at start-up: one line naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("MCP_PROXY_DATABASE_URL: {0}")]
    Store(#[from] StoreError),
    #[error("secret store: {0}")]
    Custody(#[from] CustodyError),
}

impl Context {
    /// Validates the settings, opens the store and custody, loads (or creates) the HMAC key.
    pub async fn open(settings: CommonSettings) -> Result<Context, StartupError> {
        settings.validate()?;
        if settings.database_url.is_none() {
            std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
                ConfigError::new(
                    "MCP_PROXY_DATA_DIR",
                    format!("cannot create {}: {e}", settings.data_dir.display()),
                )
            })?;
        }
        let store = Store::open(&settings.database_url()).await?;
        let custody = Custody::open(&settings, &store)?;
        let hasher = ApiKeyHasher::new(load_hmac_key(&custody).await?);
        Ok(Context {
            settings: Arc::new(settings),
            store,
            custody,
            hasher,
        })
    }

    /// The broker URL written by `org join` (or `None` before).
    pub async fn broker_url(&self) -> Result<Option<String>, StoreError> {
        self.store.hot_setting(keys::BROKER_URL).await
    }

    /// An uplink to `broker_url` with the configured TLS settings.
    pub fn uplink_to(&self, broker_url: &str) -> Result<Uplink, UplinkError> {
        let s = &self.settings;
        Uplink::new(UplinkConfig {
            broker_url: broker_url.trim_end_matches('/').to_owned(),
            ca_bundle: s.broker_ca_bundle.clone(),
            insecure_tls: s.insecure_broker_tls,
            client_cert: s
                .broker_client_cert
                .clone()
                .zip(s.broker_client_key.clone()),
            timeout: s.broker_timeout(),
        })
    }

    /// The org id and secret, once joined.
    pub async fn org_credentials(&self) -> Result<OrgCredentials, OpError> {
        let org_id = self.store.setting(keys::ORG_ID).await?.ok_or_else(|| {
            OpError::NotReady(
                "organisation not initialised: run `cullis-proxy org init` / `org join`".into(),
            )
        })?;
        let secret = self
            .custody
            .get(keys::SECRET_ORG)
            .await?
            .and_then(|s| String::from_utf8(s.to_vec()).ok())
            .ok_or_else(|| {
                OpError::NotReady(
                    "organisation has not joined a broker yet: run `cullis-proxy org join`".into(),
                )
            })?;
        Ok(OrgCredentials { org_id, secret })
    }

    /// The org CA, if initialised.
    pub async fn org_ca(&self) -> Result<Option<OrgCa>, OpError> {
        let Some(cert_pem) = self.store.setting(keys::ORG_CA_CERT).await? else {
            return Ok(None);
        };
        let key = self
            .custody
            .get(keys::SECRET_CA_KEY)
            .await?
            .ok_or_else(|| OpError::Internal("org CA key missing from the secret store".into()))?;
        let key_pem = std::str::from_utf8(&key)
            .map_err(|_| OpError::Internal("org CA key is not PEM".into()))?;
        OrgCa::load(&cert_pem, key_pem)
            .map(Some)
            .map_err(|e| OpError::Internal(format!("stored org CA unusable: {e}")))
    }

    /// The credentials the uplink acts with for a stored agent.
    pub async fn agent_credentials(&self, row: &AgentRow) -> Result<AgentCredentials, OpError> {
        let cert_pem = row.cert_pem.as_deref().ok_or_else(|| {
            OpError::NotFound(format!("No certificate found for agent {}", row.agent_id))
        })?;
        let cert = Certificate::from_pem(cert_pem)
            .map_err(|e| OpError::Internal(format!("stored certificate unreadable: {e}")))?;
        Ok(AgentCredentials {
            agent_id: row.agent_id.clone(),
            cert_der: cert.der().to_vec(),
            key: self.agent_key(&row.agent_id).await?,
        })
    }

    /// The agent's private key from custody.
    pub async fn agent_key(&self, agent_id: &str) -> Result<Arc<PrivateKey>, OpError> {
        let key = self
            .custody
            .get(&keys::agent_key(agent_id))
            .await?
            .ok_or_else(|| {
                OpError::NotFound(format!("Private key not found for agent {agent_id}"))
            })?;
        let key_pem = std::str::from_utf8(&key)
            .map_err(|_| OpError::Internal("agent key is not PEM".into()))?;
        let key = PrivateKey::from_pem(key_pem)
            .map_err(|e| OpError::Internal(format!("agent key unreadable: {e}")))?;
        Ok(Arc::new(key))
    }
}

async fn load_hmac_key(custody: &Custody) -> Result<[u8; 32], CustodyError> {
    if let Some(key) = custody.get(keys::SECRET_API_HMAC).await? {
        if let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) {
            return Ok(key);
        }
    }
    let key = ApiKeyHasher::generate_key();
    custody.put(keys::SECRET_API_HMAC, &key).await?;
    Ok(key)
}
