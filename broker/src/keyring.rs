//! The broker's token-signing keys as every replica holds them: the active signer, the public
//! keys that verify (picked by the token's `kid`), and the ones cut off.
//!
//! The truth is the `broker_signing_keys` table (private keys stay in the KMS); each replica
//! keeps an immutable [`Snapshot`] behind an [`ArcSwap`] so the request path never touches
//! the database: picking a key is one atomic load and one hash lookup. A background task
//! re-reads the table every [`POLL_INTERVAL`] and at once when `cullis-broker keys …` publishes
//! on [`NUDGE_CHANNEL`] (Redis), so all replicas switch within seconds without a restart.

use crate::db::signing_keys::{KeyStatus, SigningKeyRow};
use crate::db::Db;
use crate::kms::{BrokerKeys, Kms};
use arc_swap::ArcSwap;
use cullis_shared::jose::access_token::{
    header_kid, jwks_entry, AccessTokenClaims, TokenError, TokenSigner, TokenVerifier,
};
use cullis_shared::jose::transaction_token::TransactionTokenClaims;
use cullis_shared::keys::PublicKey;
use cullis_shared::wire::auth::JwksKey;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often each replica re-reads the key table (the Redis nudge makes it immediate).
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Redis channel `cullis-broker keys …` publishes on after changing the table.
pub const NUDGE_CHANNEL: &str = "cullis:broker-keys";
/// Longest transaction-token lifetime (`ttl_seconds` ≤ 300, ref-auth-crypto §4.4).
pub const MAX_TRANSACTION_TTL_SECS: i64 = 300;
/// Slack after a key stops signing before its public key leaves the JWKS: replicas that
/// had not yet switched, clock skew between replicas, tokens issued in the last second.
const PUBLISH_MARGIN_SECS: i64 = 60;

/// Why a token's key is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The token itself failed (signature, expiry, claims …).
    #[error("{0}")]
    Token(TokenError),
    /// No `kid`, or one this broker never published (or one that aged out).
    #[error("Token invalid or expired")]
    UnknownKey,
    /// Signed by a key the operator cut off with `cullis-broker keys retire`.
    #[error("Token signed by a retired broker signing key — log in again")]
    Retired,
}

/// One key as the verifiers see it.
#[derive(Debug)]
struct VerifyKey {
    verifier: TokenVerifier,
    status: KeyStatus,
    /// For a `previous` key: the last second its tokens can still be valid.
    valid_until: Option<i64>,
    jwk: JwksKey,
}

/// An immutable view of the key table.
#[derive(Debug)]
pub struct Snapshot {
    signer: Arc<TokenSigner>,
    keys: HashMap<String, VerifyKey>,
    /// What the snapshot was built from, to skip rebuilding when nothing changed.
    rows: Vec<SigningKeyRow>,
}

impl Snapshot {
    /// `Ok` when tokens under `kid` may be accepted at `now`.
    fn check(&self, kid: &str, now: i64) -> Result<&TokenVerifier, KeyError> {
        let key = self.keys.get(kid).ok_or(KeyError::UnknownKey)?;
        match key.status {
            KeyStatus::Retired => Err(KeyError::Retired),
            _ if key.valid_until.is_some_and(|until| now > until) => Err(KeyError::UnknownKey),
            _ => Ok(&key.verifier),
        }
    }
}

/// The replica's view of the broker keys.
pub struct KeyRing {
    current: ArcSwap<Snapshot>,
    db: Db,
    kms: Kms,
    /// The configured key (BROKER_CA_KEY_PATH / VAULT_SECRET_PATH), already loaded.
    configured: Arc<TokenSigner>,
    max_token_lifetime: i64,
    nudge: tokio::sync::Notify,
    reload_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing(active={})", self.signer().kid())
    }
}

impl KeyRing {
    /// Registers the configured key when the table does not know it — as the active key when
    /// the table is empty or `adopt` is set (`serve` after an operator replaced the key file:
    /// the new key signs, the old one keeps verifying until its tokens expire) — and loads the
    /// first snapshot.
    pub async fn open(
        db: Db,
        kms: Kms,
        configured: BrokerKeys,
        max_token_lifetime: i64,
        adopt: bool,
    ) -> Result<KeyRing, String> {
        let configured = Arc::new(configured.signer);
        register_configured(&db, &configured, adopt).await?;
        let rows = db.signing_keys().await.map_err(db_error)?;
        let snapshot = build(&rows, &kms, &configured, None, max_token_lifetime).await?;
        Ok(KeyRing {
            current: ArcSwap::from_pointee(snapshot),
            db,
            kms,
            configured,
            max_token_lifetime,
            nudge: tokio::sync::Notify::new(),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> Arc<TokenSigner> {
        self.current.load().signer.clone()
    }

    /// Verifies an access token under the key its `kid` names; returns the claims and the kid.
    pub fn verify_access(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(AccessTokenClaims, String), KeyError> {
        let kid = header_kid(token).ok_or(KeyError::UnknownKey)?;
        let snapshot = self.current.load();
        let claims = snapshot
            .check(&kid, now)?
            .verify(token, now)
            .map_err(KeyError::Token)?;
        Ok((claims, kid))
    }

    /// Verifies a transaction token under the key its `kid` names.
    pub fn verify_transaction(
        &self,
        token: &str,
        now: i64,
    ) -> Result<TransactionTokenClaims, KeyError> {
        let kid = header_kid(token).ok_or(KeyError::UnknownKey)?;
        let snapshot = self.current.load();
        snapshot
            .check(&kid, now)?
            .verify_transaction(token, now)
            .map_err(KeyError::Token)
    }

    /// Whether tokens signed under `kid` are still accepted (for tokens verified earlier).
    pub fn accepts(&self, kid: &str, now: i64) -> Result<(), KeyError> {
        self.current.load().check(kid, now).map(|_| ())
    }

    /// The JWKS: the active key first, then keys about to sign, then rotated-out keys whose
    /// tokens may still be valid. Retired keys are never published.
    pub fn jwks(&self, now: i64) -> Vec<JwksKey> {
        let snapshot = self.current.load();
        let rank = |status: KeyStatus| match status {
            KeyStatus::Active => 0,
            KeyStatus::Next => 1,
            _ => 2,
        };
        let mut keys: Vec<(&String, &VerifyKey)> = snapshot
            .keys
            .iter()
            .filter(|(kid, _)| snapshot.check(kid, now).is_ok())
            .collect();
        keys.sort_by_key(|(kid, key)| (rank(key.status), (*kid).clone()));
        keys.into_iter().map(|(_, key)| key.jwk.clone()).collect()
    }

    /// Re-reads the key table; rebuilds the snapshot when it changed. A new active key whose
    /// private half cannot be loaded leaves the old signer in place (its tokens stay valid
    /// while it is `previous`) and reports the error.
    pub async fn reload(&self) -> Result<(), String> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let rows = self.db.signing_keys().await.map_err(db_error)?;
        let current = self.current.load_full();
        if rows == current.rows {
            return Ok(());
        }
        let snapshot = build(
            &rows,
            &self.kms,
            &self.configured,
            Some(&current.signer),
            self.max_token_lifetime,
        )
        .await?;
        if snapshot.signer.kid() != current.signer.kid() {
            tracing::info!(kid = snapshot.signer.kid(), "broker signing key switched");
        }
        self.current.store(Arc::new(snapshot));
        Ok(())
    }

    /// Keeps this replica's snapshot current: a reload every [`POLL_INTERVAL`] and on every
    /// Redis nudge.
    pub fn spawn_watcher(self: &Arc<Self>, redis_url: Option<String>) {
        if let Some(url) = redis_url {
            let ring = self.clone();
            tokio::spawn(async move { ring.listen_for_nudges(&url).await });
        }
        let ring = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(POLL_INTERVAL) => {},
                    () = ring.nudge.notified() => {},
                }
                if let Err(error) = ring.reload().await {
                    tracing::warn!("broker keys: reload failed: {error}");
                }
            }
        });
    }

    async fn listen_for_nudges(&self, url: &str) {
        use futures_util::StreamExt;
        let Ok(client) = redis::Client::open(url) else {
            return;
        };
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(NUDGE_CHANNEL).await.is_ok() {
                        // Anything may have changed while unsubscribed.
                        self.nudge.notify_one();
                        let mut messages = pubsub.on_message();
                        while messages.next().await.is_some() {
                            self.nudge.notify_one();
                        }
                    }
                    tracing::warn!("broker keys: Redis pub/sub connection lost; reconnecting");
                }
                Err(error) => tracing::warn!("broker keys: Redis pub/sub: {error}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Tells running replicas that the key table changed (best effort: they poll anyway).
pub async fn publish_nudge(redis_url: &str) -> Result<(), String> {
    let client = redis::Client::open(redis_url).map_err(|e| format!("REDIS_URL: {e}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("Redis: {e}"))?;
    redis::cmd("PUBLISH")
        .arg(NUDGE_CHANNEL)
        .arg("changed")
        .query_async::<i64>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("Redis PUBLISH: {e}"))
}

/// The longest any broker token lives: access tokens or transaction tokens.
pub fn max_token_lifetime(access_token_ttl_secs: i64) -> i64 {
    access_token_ttl_secs.max(MAX_TRANSACTION_TTL_SECS)
}

/// Until when a key that stopped signing at `deactivated_at` must keep verifying.
pub fn valid_until(deactivated_at: i64, max_token_lifetime: i64) -> i64 {
    deactivated_at + max_token_lifetime + POLL_INTERVAL.as_secs() as i64 + PUBLISH_MARGIN_SECS
}

/// Adds the configured key to the table when it is not there (see [`KeyRing::open`]).
pub async fn register_configured(db: &Db, signer: &TokenSigner, adopt: bool) -> Result<(), String> {
    let rows = db.signing_keys().await.map_err(db_error)?;
    if rows.iter().any(|row| row.kid == signer.kid()) {
        return Ok(());
    }
    if !rows.is_empty() && !adopt {
        return Ok(());
    }
    let now = crate::db::unix_now();
    let pem = signer.public_key().to_spki_pem();
    let alg = signer.alg().name();
    if rows.is_empty()
        && db
            .add_signing_key(signer.kid(), alg, &pem, KeyStatus::Active, now)
            .await
            .map_err(db_error)?
    {
        return Ok(());
    }
    // A key table exists but not this key: the operator replaced the configured key.
    db.add_signing_key(signer.kid(), alg, &pem, KeyStatus::Next, now)
        .await
        .map_err(db_error)?;
    db.activate_signing_key(signer.kid(), now)
        .await
        .map_err(db_error)?;
    tracing::info!(
        kid = signer.kid(),
        "the configured broker key is new: it signs from now on"
    );
    Ok(())
}

async fn build(
    rows: &[SigningKeyRow],
    kms: &Kms,
    configured: &Arc<TokenSigner>,
    current: Option<&Arc<TokenSigner>>,
    max_token_lifetime: i64,
) -> Result<Snapshot, String> {
    let mut keys = HashMap::new();
    for row in rows {
        let public = PublicKey::from_spki_pem(&row.public_key_pem)
            .map_err(|e| format!("broker key {} in the database is unreadable: {e}", row.kid))?;
        let verifier = TokenVerifier::new(public.clone())
            .map_err(|e| format!("broker key {}: {e}", row.kid))?;
        keys.insert(
            row.kid.clone(),
            VerifyKey {
                verifier,
                status: row.status,
                valid_until: (row.status == KeyStatus::Previous)
                    .then(|| valid_until(row.deactivated_at.unwrap_or(0), max_token_lifetime)),
                jwk: jwks_entry(&public, &row.kid)
                    .ok_or_else(|| format!("broker key {}: no token algorithm fits it", row.kid))?,
            },
        );
    }
    let active = rows.iter().find(|row| row.status == KeyStatus::Active);
    let signer = match active {
        None => configured.clone(),
        Some(row) if row.kid == configured.kid() => configured.clone(),
        Some(row) if current.is_some_and(|c| c.kid() == row.kid) => current.unwrap().clone(),
        Some(row) => match kms.load_signing_key(&row.kid).await {
            Ok(loaded) => Arc::new(loaded.signer),
            Err(error) => match current {
                Some(current) => {
                    tracing::error!("broker keys: cannot load the new active key: {error}; still signing with {}", current.kid());
                    current.clone()
                }
                None => return Err(error.0),
            },
        },
    };
    Ok(Snapshot {
        signer,
        keys,
        rows: rows.to_vec(),
    })
}

fn db_error(error: sqlx::Error) -> String {
    format!("cannot read the broker key table: {error}")
}
