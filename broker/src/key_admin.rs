//! `cullis-broker keys rotate | list | retire`: the operator's side of [`crate::keyring`].
//!
//! The commands change the shared key table and nudge running replicas over Redis (when
//! `REDIS_URL` is set; they also poll every [`crate::keyring::POLL_INTERVAL`]). `rotate` first
//! publishes the new key as `next` — every replica learns its public half — and only after
//! the propagation wait makes it `active`, so no replica ever meets a token under a key it does
//! not know yet: rotation costs no failed request.

use crate::config::Config;
use crate::db::signing_keys::{KeyStatus, SigningKeyRow};
use crate::db::Db;
use crate::keyring::{self, valid_until};
use crate::kms::Kms;
use cullis_shared::jose::access_token::TokenSigner;
use cullis_shared::keys::{Curve, KeyKind, KeyType, PrivateKey, PublicKey};
use std::time::Duration;

/// Default wait between publishing a new key and signing with it: two polls and a margin.
pub const DEFAULT_PROPAGATION: Duration = Duration::from_secs(5);

/// The key table and KMS as `serve` configures them.
pub struct KeyAdmin {
    db: Db,
    kms: Kms,
    redis_url: Option<String>,
    max_token_lifetime: i64,
}

/// One line of `keys list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyListing {
    pub row: SigningKeyRow,
    /// Whether the JWKS publishes it now.
    pub published: bool,
    /// For a rotated-out key: until when its tokens are accepted.
    pub accepted_until: Option<i64>,
}

impl KeyAdmin {
    /// Opens the database (applying migrations, as `serve` does) and the KMS of `config`; on a
    /// fresh key table the configured key is registered as the active one.
    pub async fn connect(config: &Config) -> Result<KeyAdmin, String> {
        let db = Db::connect(&config.database_url).await.map_err(|e| e.0)?;
        db.migrate().await.map_err(|e| e.0)?;
        let kms = Kms::new(config.kms.clone());
        let configured = kms.load().await.map_err(|e| e.0)?;
        keyring::register_configured(&db, &configured.signer, false).await?;
        Ok(KeyAdmin {
            db,
            kms,
            redis_url: config.redis_url.clone(),
            max_token_lifetime: keyring::max_token_lifetime(config.access_token_ttl_secs),
        })
    }

    /// Makes a new key (of `key_type`, default the active key's type) active; returns its kid.
    pub async fn rotate(
        &self,
        key_type: Option<KeyType>,
        propagation: Duration,
    ) -> Result<String, String> {
        let key_type = match key_type {
            Some(key_type) => key_type,
            None => self.active_key_type().await?,
        };
        let key = PrivateKey::generate(key_type).map_err(|e| format!("key generation: {e}"))?;
        let copy = PrivateKey::from_pem(&key.to_pkcs8_pem()).map_err(|e| format!("key: {e}"))?;
        let signer = TokenSigner::new(copy).map_err(|e| format!("signing key: {e}"))?;
        let kid = signer.kid().to_owned();
        self.kms
            .store_signing_key(&kid, &key)
            .await
            .map_err(|e| e.0)?;
        let now = crate::db::unix_now();
        self.db
            .add_signing_key(
                &kid,
                signer.alg().name(),
                &signer.public_key().to_spki_pem(),
                KeyStatus::Next,
                now,
            )
            .await
            .map_err(db_error)?;
        self.nudge().await;
        tokio::time::sleep(propagation).await;
        if !self
            .db
            .activate_signing_key(&kid, crate::db::unix_now())
            .await
            .map_err(db_error)?
        {
            return Err(format!(
                "key {kid} was retired before it could be activated"
            ));
        }
        self.nudge().await;
        Ok(kid)
    }

    /// Every known key with what the JWKS and the verifiers make of it now.
    pub async fn list(&self) -> Result<Vec<KeyListing>, String> {
        let now = crate::db::unix_now();
        let rows = self.db.signing_keys().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let accepted_until = (row.status == KeyStatus::Previous)
                    .then(|| valid_until(row.deactivated_at.unwrap_or(0), self.max_token_lifetime));
                let published = row.status != KeyStatus::Retired
                    && accepted_until.is_none_or(|until| now <= until);
                KeyListing {
                    row,
                    published,
                    accepted_until,
                }
            })
            .collect())
    }

    /// The emergency cut-off: tokens signed by `kid` are refused on every replica at once.
    pub async fn retire(&self, kid: &str) -> Result<(), String> {
        match self
            .db
            .retire_signing_key(kid, crate::db::unix_now())
            .await
            .map_err(db_error)?
        {
            None => Err(format!(
                "no broker signing key '{kid}' (see `cullis-broker keys list`)"
            )),
            Some(KeyStatus::Active) => Err(format!(
                "'{kid}' is the active key: run `cullis-broker keys rotate` first, then retire it"
            )),
            Some(_) => {
                self.nudge().await;
                Ok(())
            }
        }
    }

    async fn active_key_type(&self) -> Result<KeyType, String> {
        let rows = self.db.signing_keys().await.map_err(db_error)?;
        let active = rows
            .iter()
            .find(|row| row.status == KeyStatus::Active)
            .ok_or("no active broker key in the database")?;
        let public = PublicKey::from_spki_pem(&active.public_key_pem)
            .map_err(|e| format!("active key {}: {e}", active.kid))?;
        Ok(match public.kind() {
            KeyKind::Ec(Curve::P384) => KeyType::EcP384,
            KeyKind::Ec(_) => KeyType::EcP256,
            KeyKind::Rsa { bits } if bits > 3072 => KeyType::Rsa4096,
            KeyKind::Rsa { bits } if bits > 2048 => KeyType::Rsa3072,
            KeyKind::Rsa { .. } => KeyType::Rsa2048,
        })
    }

    async fn nudge(&self) {
        if let Some(url) = &self.redis_url {
            if let Err(error) = keyring::publish_nudge(url).await {
                eprintln!("cullis-broker: could not notify replicas over Redis ({error}); they pick the change up within {} s", keyring::POLL_INTERVAL.as_secs());
            }
        }
    }
}

fn db_error(error: sqlx::Error) -> String {
    format!("broker key table: {error}")
}
