//! Custody of secrets (org secret, org CA key, agent private keys, the API-key HMAC key).
//!
//! `local`: AES-256-GCM (aws-lc-rs) with a 32-byte key from `MCP_PROXY_SECRET_KEY` or
//! `MCP_PROXY_SECRET_KEY_FILE` (generated with mode 0600 on first run); the sealed value is
//! stored in the `secrets` table with the secret's name as associated data, so a sealed value
//! cannot be swapped under another name. `vault`: Vault/OpenBao KV v2 at `<prefix>/<name>`.

use crate::config::{CommonSettings, ConfigError};
use crate::store::{Store, StoreError};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Secret bytes, wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// Why a secret could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sealed secret {0:?} does not open with this key (wrong MCP_PROXY_SECRET_KEY?)")]
    Unseal(String),
    #[error("vault: {0}")]
    Vault(String),
}

/// The secret store in use.
#[derive(Clone)]
pub enum Custody {
    Local { key: Arc<LessSafeKey>, store: Store },
    Vault(Arc<VaultKv>),
}

impl std::fmt::Debug for Custody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Custody::Local { .. } => f.write_str("Custody::Local"),
            Custody::Vault(v) => write!(f, "Custody::Vault({})", v.addr),
        }
    }
}

impl Custody {
    /// The backend the settings select.
    pub fn open(settings: &CommonSettings, store: &Store) -> Result<Custody, ConfigError> {
        if settings.secret_backend == "vault" {
            let vault = VaultKv::new(
                settings.vault_addr.as_deref().unwrap_or_default(),
                settings.vault_token.as_deref().unwrap_or_default(),
                &settings.vault_secret_prefix,
            )?;
            return Ok(Custody::Vault(Arc::new(vault)));
        }
        let raw = match &settings.secret_key {
            Some(hex_key) => decode_key(hex_key).ok_or_else(|| {
                ConfigError::new("MCP_PROXY_SECRET_KEY", "must be 64 hex characters")
            })?,
            None => load_or_create_key_file(&settings.secret_key_file())?,
        };
        let key = UnboundKey::new(&AES_256_GCM, &raw)
            .map_err(|_| ConfigError::new("MCP_PROXY_SECRET_KEY", "unusable AES-256 key"))?;
        Ok(Custody::Local {
            key: Arc::new(LessSafeKey::new(key)),
            store: store.clone(),
        })
    }

    /// Stores `value` under `name`, replacing any previous value.
    pub async fn put(&self, name: &str, value: &[u8]) -> Result<(), CustodyError> {
        match self {
            Custody::Local { key, store } => {
                let sealed =
                    seal(key, name, value).map_err(|_| CustodyError::Unseal(name.into()))?;
                Ok(store.put_secret(name, &sealed).await?)
            }
            Custody::Vault(vault) => vault.put(name, value).await,
        }
    }

    /// The value stored under `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<Secret>, CustodyError> {
        match self {
            Custody::Local { key, store } => match store.get_secret(name).await? {
                None => Ok(None),
                Some(sealed) => open(key, name, &sealed)
                    .map(|v| Some(Zeroizing::new(v)))
                    .ok_or_else(|| CustodyError::Unseal(name.into())),
            },
            Custody::Vault(vault) => vault.get(name).await.map(|v| v.map(Zeroizing::new)),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), CustodyError> {
        match self {
            Custody::Local { store, .. } => Ok(store.delete_secret(name).await?),
            Custody::Vault(vault) => vault.delete(name).await,
        }
    }
}

fn decode_key(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.trim()).ok().filter(|k| k.len() == 32)
}

/// Reads the key file, or creates it (0600) with a fresh random key.
fn load_or_create_key_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    const SETTING: &str = "MCP_PROXY_SECRET_KEY_FILE";
    match std::fs::read_to_string(path) {
        Ok(text) => decode_key(&text).ok_or_else(|| {
            ConfigError::new(
                SETTING,
                format!("{} must hold 64 hex characters", path.display()),
            )
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| ConfigError::new(SETTING, "no system randomness"))?;
            write_private_file(path, hex::encode(key).as_bytes()).map_err(|e| {
                ConfigError::new(SETTING, format!("cannot create {}: {e}", path.display()))
            })?;
            Ok(key.to_vec())
        }
        Err(err) => Err(ConfigError::new(
            SETTING,
            format!("cannot read {}: {err}", path.display()),
        )),
    }
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

fn seal(
    key: &LessSafeKey,
    name: &str,
    value: &[u8],
) -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce)?;
    let mut data = value.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(name.as_bytes()),
        &mut data,
    )?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

fn open(key: &LessSafeKey, name: &str, sealed: &str) -> Option<Vec<u8>> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()?;
    if raw.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(name.as_bytes()), &mut body)
        .ok()?;
    Some(plain.to_vec())
}

/// A Vault/OpenBao KV v2 client for the proxy's secrets (`{"data":{"value_b64": ...}}`).
pub struct VaultKv {
    addr: String,
    token: String,
    prefix: String,
    http: reqwest::Client,
}

impl VaultKv {
    fn new(addr: &str, token: &str, prefix: &str) -> Result<VaultKv, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ConfigError::new("MCP_PROXY_VAULT_ADDR", e.to_string()))?;
        Ok(VaultKv {
            addr: addr.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            http,
        })
    }

    fn url(&self, name: &str) -> String {
        // Secret names contain `:`; keep them one path segment.
        let segment = name.replace([':', '/'], "_");
        format!("{}/v1/{}/{segment}", self.addr, self.prefix)
    }

    fn metadata_url(&self, name: &str) -> String {
        self.url(name).replacen("/data/", "/metadata/", 1)
    }

    async fn put(&self, name: &str, value: &[u8]) -> Result<(), CustodyError> {
        let body = serde_json::json!({"data": {"value_b64": base64::engine::general_purpose::STANDARD.encode(value)}});
        let response = self
            .http
            .post(self.url(name))
            .header("X-Vault-Token", &self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| CustodyError::Vault(format!("unreachable: {e}")))?;
        if !response.status().is_success() {
            return Err(CustodyError::Vault(format!(
                "write answered {}",
                response.status()
            )));
        }
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, CustodyError> {
        let response = self
            .http
            .get(self.url(name))
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .map_err(|e| CustodyError::Vault(format!("unreachable: {e}")))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(CustodyError::Vault(format!(
                "read answered {}",
                response.status()
            )));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| CustodyError::Vault(format!("unreadable answer: {e}")))?;
        let Some(text) = body["data"]["data"]["value_b64"].as_str() else {
            // KV v2 answers a soft-deleted secret with data null.
            return Ok(None);
        };
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Some)
            .map_err(|_| CustodyError::Vault(format!("secret {name:?} is not base64")))
    }

    async fn delete(&self, name: &str) -> Result<(), CustodyError> {
        let response = self
            .http
            .delete(self.metadata_url(name))
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .map_err(|e| CustodyError::Vault(format!("unreachable: {e}")))?;
        if !response.status().is_success() && response.status() != reqwest::StatusCode::NOT_FOUND {
            return Err(CustodyError::Vault(format!(
                "delete answered {}",
                response.status()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_name_binding() {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
        let sealed = seal(&key, "agent_key:a::b", b"pem").unwrap();
        assert_eq!(open(&key, "agent_key:a::b", &sealed).unwrap(), b"pem");
        assert!(open(&key, "org_secret", &sealed).is_none());
        let other = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[8u8; 32]).unwrap());
        assert!(open(&other, "agent_key:a::b", &sealed).is_none());
    }
}
