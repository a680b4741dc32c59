//! The broker's signing keys: read from local PEM files or from a Vault/OpenBao KV v2 secret
//! (ref-auth-crypto §8.1–8.2). The configured key (BROKER_CA_KEY_PATH / VAULT_SECRET_PATH) is
//! the first one; keys made by `cullis-broker keys rotate` are stored beside it by `kid`
//! (`<key dir>/signing-keys/<kid>.pem`, or the Vault secret `<VAULT_SECRET_PATH>/signing-keys/<kid>`),
//! so every replica can load the active one (see [`crate::keyring`]).

use crate::config::KmsConfig;
use cullis_shared::jose::access_token::{TokenSigner, TokenVerifier};
use cullis_shared::keys::PrivateKey;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// The loaded broker key material.
pub struct BrokerKeys {
    pub signer: TokenSigner,
    pub verifier: TokenVerifier,
}

/// Why the key could not be loaded; the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KmsError(pub String);

/// A handle on the configured KMS, for loading and for `/readyz`.
#[derive(Debug, Clone)]
pub struct Kms {
    config: KmsConfig,
    http: reqwest::Client,
}

impl Kms {
    pub fn new(config: KmsConfig) -> Kms {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a TLS client with default settings builds");
        Kms { config, http }
    }

    /// Loads the broker private key and builds the token signer (ES256 for P-256, ES384 for
    /// P-384, RS256 for RSA).
    pub async fn load(&self) -> Result<BrokerKeys, KmsError> {
        let pem = self.private_key_pem().await?;
        self.signer_from_pem(&pem, &self.describe())
    }

    /// Stores a new signing key under its `kid` (mode 0600 file, or a Vault secret).
    pub async fn store_signing_key(&self, kid: &str, key: &PrivateKey) -> Result<(), KmsError> {
        check_kid(kid)?;
        let pem = key.to_pkcs8_pem();
        match &self.config {
            KmsConfig::Local { key_path, .. } => {
                write_private_file(&signing_key_path(key_path, kid), &pem)
            }
            KmsConfig::Vault {
                addr,
                token,
                secret_path,
            } => {
                let url = vault_url(addr, &format!("{secret_path}/signing-keys/{kid}"));
                let body = serde_json::json!({"data": {"private_key_pem": pem.as_str()}});
                let response = self
                    .http
                    .post(&url)
                    .header("X-Vault-Token", token.as_str())
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| {
                        KmsError(format!(
                            "cannot reach Vault at {addr}: {e} — check VAULT_ADDR"
                        ))
                    })?;
                if !response.status().is_success() {
                    return Err(KmsError(format!(
                        "Vault refused to store the new signing key (HTTP {}) — the token needs write access to {secret_path}/signing-keys/*",
                        response.status().as_u16()
                    )));
                }
                Ok(())
            }
        }
    }

    /// The signer of the key stored under `kid` by [`Kms::store_signing_key`].
    pub async fn load_signing_key(&self, kid: &str) -> Result<BrokerKeys, KmsError> {
        check_kid(kid)?;
        let (pem, source) = match &self.config {
            KmsConfig::Local { key_path, .. } => {
                let path = signing_key_path(key_path, kid);
                let pem = std::fs::read_to_string(&path).map(Zeroizing::new).map_err(|e| {
                    KmsError(format!("cannot read signing key {kid} at {} ({e}): every replica needs the same key directory (or KMS_BACKEND=vault)", path.display()))
                })?;
                (pem, path.display().to_string())
            }
            KmsConfig::Vault { secret_path, .. } => {
                let path = format!("{secret_path}/signing-keys/{kid}");
                (
                    self.vault_private_key(&path).await?,
                    format!("Vault secret '{path}'"),
                )
            }
        };
        self.signer_from_pem(&pem, &source)
    }

    fn signer_from_pem(&self, pem: &str, source: &str) -> Result<BrokerKeys, KmsError> {
        let key = PrivateKey::from_pem(pem).map_err(|e| {
            KmsError(format!(
                "the broker private key is not a usable PEM key ({e}): {source}"
            ))
        })?;
        let signer = TokenSigner::new(key).map_err(|_| {
            KmsError(format!(
                "the broker key must be P-256, P-384 or RSA: {source}"
            ))
        })?;
        let verifier = signer.verifier();
        Ok(BrokerKeys { signer, verifier })
    }

    /// Whether the key source answers (for `/readyz`).
    pub async fn check(&self) -> Result<(), KmsError> {
        self.private_key_pem().await.map(|_| ())
    }

    fn describe(&self) -> String {
        match &self.config {
            KmsConfig::Local { key_path, .. } => {
                format!("BROKER_CA_KEY_PATH={}", key_path.display())
            }
            KmsConfig::Vault { secret_path, .. } => format!("Vault secret '{secret_path}'"),
        }
    }

    async fn private_key_pem(&self) -> Result<Zeroizing<String>, KmsError> {
        match &self.config {
            KmsConfig::Local { key_path, .. } => std::fs::read_to_string(key_path).map(Zeroizing::new).map_err(|e| {
                KmsError(format!(
                    "cannot read the broker key at {} ({e}): run `cullis-broker pki init` or set BROKER_CA_KEY_PATH",
                    key_path.display()
                ))
            }),
            KmsConfig::Vault { secret_path, .. } => self.vault_private_key(secret_path).await,
        }
    }
}

impl Kms {
    /// `private_key_pem` of the KV v2 secret at `path`.
    async fn vault_private_key(&self, path: &str) -> Result<Zeroizing<String>, KmsError> {
        let KmsConfig::Vault { addr, token, .. } = &self.config else {
            unreachable!("only called for the Vault backend")
        };
        let response = self
            .http
            .get(vault_url(addr, path))
            .header("X-Vault-Token", token.as_str())
            .send()
            .await
            .map_err(|e| {
                KmsError(format!(
                    "cannot reach Vault at {addr}: {e} — check VAULT_ADDR"
                ))
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(KmsError(format!(
                "Vault returned HTTP {} — check broker logs for details (VAULT_TOKEN and VAULT_SECRET_PATH)",
                status.as_u16()
            )));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| KmsError(format!("Vault answer is not JSON: {e}")))?;
        body.pointer("/data/data/private_key_pem")
            .and_then(Value::as_str)
            .map(|pem| Zeroizing::new(pem.to_owned()))
            .ok_or_else(|| {
                KmsError(format!(
                    "Vault secret at '{path}' missing field 'private_key_pem'"
                ))
            })
    }
}

fn vault_url(addr: &str, path: &str) -> String {
    format!(
        "{}/v1/{}",
        addr.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// `<dir of BROKER_CA_KEY_PATH>/signing-keys/<kid>.pem`.
fn signing_key_path(key_path: &Path, kid: &str) -> PathBuf {
    key_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("signing-keys")
        .join(format!("{kid}.pem"))
}

/// A kid is an RFC 7638 thumbprint (base64url); anything else never names a file or secret.
fn check_kid(kid: &str) -> Result<(), KmsError> {
    let valid = !kid.is_empty()
        && kid.len() <= 128
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(KmsError(format!("'{kid}' is not a key id")))
    }
}

/// Writes a new private-key file readable only by the broker's user.
fn write_private_file(path: &Path, pem: &str) -> Result<(), KmsError> {
    use std::io::Write;
    let fail = |e: std::io::Error| KmsError(format!("cannot write {} ({e})", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(pem.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}
