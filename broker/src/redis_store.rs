//! Redis-backed [`ReplayStore`]: single-use identifiers shared by every broker replica.
//!
//! `consume(key, ttl)` is `SET <key> 1 NX EX <ttl>`; a nil reply means the key was already
//! recorded, i.e. a replay. The caller passes full keys (`dpop:jti:<jti>`).

use std::time::Duration;

use cullis_shared::replay::{ConsumeFuture, Consumed, ReplayStore, ReplayStoreError};
use redis::aio::ConnectionManager;

/// Replay store over Redis; clones of the connection manager share one multiplexed connection.
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayStore").finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// A store using `conn`.
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn }
    }
}

/// `EX` seconds for `ttl`: rounded up (never shorter than asked, so a replay window cannot
/// open early) and at least 1 (Redis rejects `EX 0`).
fn ttl_secs(ttl: Duration) -> u64 {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    secs.max(1)
}

impl ReplayStore for RedisReplayStore {
    fn consume<'a>(&'a self, key: &'a str, ttl: Duration) -> ConsumeFuture<'a> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut command = redis::cmd("SET");
            command
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl_secs(ttl));
            let set = command.query_async::<Option<String>>(&mut conn);
            let reply = crate::telemetry::redis_call("SET NX replay", set)
                .await
                .map_err(|e| ReplayStoreError(e.to_string()))?;
            Ok(match reply {
                Some(_) => Consumed::Fresh,
                None => Consumed::Replay,
            })
        })
    }
}

/// A connection manager to the test Redis at 127.0.0.1:6379.
#[cfg(test)]
pub(crate) async fn test_redis() -> ConnectionManager {
    let client = redis::Client::open("redis://127.0.0.1:6379/").expect("redis url");
    ConnectionManager::new(client)
        .await
        .expect("Redis must run on 127.0.0.1:6379 for these tests")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        format!("test:{}:dpop:jti:abc", uuid::Uuid::new_v4().simple())
    }

    #[tokio::test]
    async fn first_fresh_then_replay_then_fresh_after_expiry() {
        let store = RedisReplayStore::new(test_redis().await);
        let key = key();
        let ttl = Duration::from_secs(1);
        assert_eq!(store.consume(&key, ttl).await.unwrap(), Consumed::Fresh);
        assert_eq!(store.consume(&key, ttl).await.unwrap(), Consumed::Replay);
        // Another key is independent.
        let other = format!("{key}-2");
        assert_eq!(store.consume(&other, ttl).await.unwrap(), Consumed::Fresh);
        // The value and TTL are as specified.
        let mut conn = test_redis().await;
        let (value, pttl): (String, i64) = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(value, "1");
        assert!(pttl > 0 && pttl <= 1000, "pttl {pttl}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(store.consume(&key, ttl).await.unwrap(), Consumed::Fresh);
        assert_eq!(store.consume(&key, ttl).await.unwrap(), Consumed::Replay);
    }

    #[tokio::test]
    async fn works_as_a_trait_object_and_sets_the_requested_ttl() {
        let store: Box<dyn ReplayStore> = Box::new(RedisReplayStore::new(test_redis().await));
        let key = key();
        assert_eq!(
            store.consume(&key, Duration::from_secs(300)).await.unwrap(),
            Consumed::Fresh
        );
        let mut conn = test_redis().await;
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((299..=300).contains(&ttl), "ttl {ttl}");
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn redis_errors_map_to_replay_store_error() {
        let store = RedisReplayStore::new(test_redis().await);
        // An expiry Redis cannot represent is refused by the server: the caller gets an error
        // (and fails closed), never `Fresh`.
        let err = store
            .consume(&key(), Duration::MAX)
            .await
            .expect_err("EX beyond i64 must fail");
        assert!(!err.0.is_empty());
        assert!(err.to_string().starts_with("replay store unavailable: "));
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds_and_at_least_one() {
        assert_eq!(ttl_secs(Duration::ZERO), 1);
        assert_eq!(ttl_secs(Duration::from_millis(1)), 1);
        assert_eq!(ttl_secs(Duration::from_secs(1)), 1);
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_secs(Duration::from_secs(300)), 300);
    }
}
