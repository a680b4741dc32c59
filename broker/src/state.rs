//! The one typed state every handler shares.

use crate::audit::ChainWriter;
use crate::auth::token_cache::CachedTokenVerifier;
use crate::config::Config;
use crate::db::Db;
use crate::keyring::KeyRing;
use crate::kms::Kms;
use crate::limits::RateLimiter;
use crate::nonce::NonceManager;
use cullis_shared::replay::ReplayStore;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared broker state (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    pub config: Config,
    pub db: Db,
    /// Appends every chained row: audit events, and messages stored together with theirs.
    pub audit: ChainWriter,
    pub kms: Kms,
    /// The broker's signing keys (active signer, verifiers by `kid`), kept current in the
    /// background.
    pub keys: Arc<KeyRing>,
    /// Checks agents' access tokens (remembering ones already verified).
    pub token_verifier: CachedTokenVerifier,
    pub nonces: NonceManager,
    pub dpop_replay: Arc<dyn ReplayStore>,
    pub limiter: RateLimiter,
    /// Session policy: both orgs' PDPs, OPA or embedded Rego, plus local rules.
    pub policy: crate::policy::PolicyEngine,
    pub redis: Option<redis::aio::ConnectionManager>,
    /// WebSocket connections of this process and cross-process push (`ws`).
    pub hub: crate::ws::Hub,
    /// Agent certificates already verified against their org CA.
    pub leaf_cache: crate::auth::leaf_cache::LeafCache,
    /// A bcrypt hash checked when an org is unknown, so timing does not reveal which ids exist.
    pub dummy_secret_hash: String,
    /// Org secrets bcrypt accepted within `ORG_SECRET_CACHE_SECONDS`.
    pub verified_org_secrets: crate::auth::verified_secrets::VerifiedSecrets,
    /// The operator console's cookie key and scope.
    pub console: crate::dashboard::ConsoleKeys,
    draining: AtomicBool,
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        db: Db,
        kms: Kms,
        keys: Arc<KeyRing>,
        nonces: NonceManager,
        dpop_replay: Arc<dyn ReplayStore>,
        limiter: RateLimiter,
        policy: crate::policy::PolicyEngine,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> AppState {
        let hub = crate::ws::Hub::new(
            redis.clone(),
            config.ws_max_connections_per_org,
            config.ws_max_connections,
        );
        let dummy_secret_hash = bcrypt::hash("cullis-dummy-secret", config.bcrypt_cost)
            .expect("bcrypt with a valid cost");
        let token_verifier = CachedTokenVerifier::new(keys.clone(), 100_000);
        let verified_org_secrets = crate::auth::verified_secrets::VerifiedSecrets::new(
            std::time::Duration::from_secs(config.org_secret_cache_secs),
        );
        let console = crate::dashboard::ConsoleKeys::new(
            config.dashboard_signing_key.as_deref().map(String::as_str),
            config.broker_public_url.as_deref(),
        );
        AppState(Arc::new(Inner {
            audit: ChainWriter::new(db.clone()),
            config,
            db,
            kms,
            keys,
            token_verifier,
            nonces,
            dpop_replay,
            limiter,
            policy,
            hub,
            redis,
            dummy_secret_hash,
            verified_org_secrets,
            console,
            leaf_cache: crate::auth::leaf_cache::LeafCache::new(100_000),
            draining: AtomicBool::new(false),
        }))
    }

    /// Marks the broker as shutting down (`/readyz` answers 503 from now on).
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    /// The scheme clients use to reach this listener (for the expected DPoP `htu`).
    pub fn scheme(&self) -> &'static str {
        if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
