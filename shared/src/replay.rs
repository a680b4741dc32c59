//! Single-use identifiers (DPoP `jti`, client-assertion `jti`, message nonces) are consumed
//! through one trait, so the broker can plug in an in-process store or Redis
//! (`SET key 1 NX EX ttl`) without the verification code knowing which.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The replay store could not answer (e.g. Redis unreachable). Callers must fail closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replay store unavailable: {0}")]
pub struct ReplayStoreError(pub String);

/// What [`ReplayStore::consume`] returns.
pub type ConsumeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Consumed, ReplayStoreError>> + Send + 'a>>;

/// Outcome of consuming a single-use identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// First use: the identifier is now recorded for its TTL.
    Fresh,
    /// Already recorded and not yet expired: a replay.
    Replay,
}

/// Atomic check-and-insert of single-use identifiers with a time to live.
pub trait ReplayStore: Send + Sync {
    /// Records `key` for `ttl` if it is not recorded already.
    fn consume<'a>(&'a self, key: &'a str, ttl: Duration) -> ConsumeFuture<'a>;
}

/// In-process store: a map of key → expiry, purged lazily. Per process only, so several
/// broker replicas need the Redis store instead.
#[derive(Debug, Default)]
pub struct MemoryReplayStore {
    entries: Mutex<HashMap<String, Instant>>,
}

impl MemoryReplayStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Synchronous form of [`ReplayStore::consume`].
    pub fn consume_now(&self, key: &str, ttl: Duration) -> Consumed {
        let now = Instant::now();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Amortised purge: only when the map has grown, so the common path stays O(1).
        if entries.len() >= 1024 && entries.len().is_power_of_two() {
            entries.retain(|_, expiry| *expiry > now);
        }
        match entries.get(key) {
            Some(expiry) if *expiry > now => Consumed::Replay,
            _ => {
                entries.insert(key.to_owned(), now + ttl);
                Consumed::Fresh
            }
        }
    }

    /// Number of recorded entries, expired ones included until purged.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .map(|entries| entries.len())
            .unwrap_or(0)
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayStore for MemoryReplayStore {
    fn consume<'a>(&'a self, key: &'a str, ttl: Duration) -> ConsumeFuture<'a> {
        let outcome = self.consume_now(key, ttl);
        Box::pin(std::future::ready(Ok(outcome)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_is_a_replay_until_expiry() {
        let store = MemoryReplayStore::new();
        assert_eq!(
            store.consume_now("a", Duration::from_secs(60)),
            Consumed::Fresh
        );
        assert_eq!(
            store.consume_now("a", Duration::from_secs(60)),
            Consumed::Replay
        );
        assert_eq!(
            store.consume_now("b", Duration::from_secs(60)),
            Consumed::Fresh
        );
        assert_eq!(store.consume_now("gone", Duration::ZERO), Consumed::Fresh);
        assert_eq!(store.consume_now("gone", Duration::ZERO), Consumed::Fresh);
    }

    #[test]
    fn expired_entries_are_purged_as_the_map_grows() {
        let store = MemoryReplayStore::new();
        for i in 0..5000 {
            store.consume_now(&i.to_string(), Duration::ZERO);
        }
        assert!(store.len() < 5000, "purge never ran: {}", store.len());
    }
}
