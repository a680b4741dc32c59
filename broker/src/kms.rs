//! The broker's signing key: read from local PEM files or from a Vault/OpenBao KV v2 secret
//! (ref-auth-crypto §8.1–8.2), turned into the token signer and verifier once at start.

use crate::config::KmsConfig;
use cullis_shared::jose::access_token::{TokenSigner, TokenVerifier};
use cullis_shared::keys::PrivateKey;
use serde_json::Value;
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
        let key = PrivateKey::from_pem(&pem).map_err(|e| {
            KmsError(format!(
                "the broker private key is not a usable PEM key ({e}): {}",
                self.describe()
            ))
        })?;
        let signer = TokenSigner::new(key).map_err(|_| {
            KmsError(format!(
                "the broker key must be P-256, P-384 or RSA: {}",
                self.describe()
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
            KmsConfig::Vault { addr, token, secret_path } => {
                let url = format!("{}/v1/{}", addr.trim_end_matches('/'), secret_path.trim_start_matches('/'));
                let response = self
                    .http
                    .get(&url)
                    .header("X-Vault-Token", token.as_str())
                    .send()
                    .await
                    .map_err(|e| KmsError(format!("cannot reach Vault at {addr}: {e} — check VAULT_ADDR")))?;
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
                    .ok_or_else(|| KmsError(format!("Vault secret at '{secret_path}' missing field 'private_key_pem'")))
            }
        }
    }
}
