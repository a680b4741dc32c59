//! DPoP server nonce (RFC 9449 §8, as the reference simplifies it).
//!
//! A nonce is 16 random bytes as 32 lowercase hex characters. The manager holds a *current* and a
//! *previous* nonce; a proof is accepted with either. Rotation is lazy: [`NonceManager::current`]
//! (called when a response needs a `DPoP-Nonce` header) rotates when the current nonce is older
//! than the rotation period (default 300 s): previous ← current, current ← new. Reading the
//! accepted pair never rotates, so in idle periods a nonce stays valid indefinitely and under
//! traffic it lives one to two periods.
//!
//! * Memory backend: per process, as in the reference.
//! * Redis backend: the pair lives in the hash `dpop:nonce` (fields `current`, `previous`,
//!   `generated_at` in Redis server milliseconds) and is read and rotated by one Lua script using
//!   the server's `TIME`, so every broker replica agrees on the pair and on when it is due, and
//!   concurrent rotations cannot happen twice.
//!
//! ## Local cache (Redis backend)
//!
//! To avoid a Redis round trip per request, each manager caches the pair for at most
//! [`REDIS_CACHE_TTL`] (1 s), and also no longer than the current nonce's remaining lifetime as
//! the script reported it, so a replica goes back to Redis as soon as a rotation is due. The
//! trade-off: a rotation made by another replica becomes visible here within 1 s. Meanwhile this
//! replica may still hand out the old current nonce, which stays accepted everywhere as the new
//! previous one. A client that already got the *new* nonce from another replica would miss this
//! replica's stale cache, so [`NonceManager::is_accepted`] re-reads Redis once on a miss before
//! refusing; with that, no client sees a spurious `use_dpop_nonce` because of the cache.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use redis::aio::ConnectionManager;
use redis::Script;

/// How long a nonce stays current once handed out, by default.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(300);

/// Hash key of the Redis backend.
pub const DEFAULT_REDIS_KEY: &str = "dpop:nonce";

/// Longest time a Redis-backed manager answers from its local copy of the pair.
pub const REDIS_CACHE_TTL: Duration = Duration::from_secs(1);

/// The nonce store (Redis) did not answer; callers fail closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nonce store unavailable: {0}")]
pub struct NonceError(pub String);

/// A fresh nonce: 16 random bytes as 32 lowercase hex characters.
pub fn generate_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Reads (and with ARGV[3] = '1', rotates when due) the pair in hash KEYS[1].
/// ARGV[1] = rotation period in ms, ARGV[2] = candidate new nonce.
/// Returns {current, previous or '', age of current in ms}. Creates the pair when absent.
const REDIS_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'current', 'previous', 'generated_at')
local current, previous, gen = h[1], h[2], tonumber(h[3])
if (not current) or (not gen) or (ARGV[3] == '1' and now - gen > tonumber(ARGV[1])) then
  previous = current
  current = ARGV[2]
  gen = now
  redis.call('HSET', KEYS[1], 'current', current, 'generated_at', string.format('%.0f', now))
  if previous then
    redis.call('HSET', KEYS[1], 'previous', previous)
  else
    redis.call('HDEL', KEYS[1], 'previous')
  end
end
return {current, previous or '', now - gen}
";

/// Issues and checks DPoP server nonces, in memory or in Redis.
pub struct NonceManager {
    rotation: Duration,
    backend: Backend,
}

enum Backend {
    Memory(Mutex<MemoryState>),
    Redis {
        conn: ConnectionManager,
        key: String,
        script: Script,
        cache: Mutex<Option<Cached>>,
    },
}

struct MemoryState {
    current: String,
    previous: Option<String>,
    generated_at: Instant,
}

#[derive(Clone)]
struct Cached {
    current: String,
    previous: Option<String>,
    /// When the pair was asked for (an early bound, so the cache never outlives its limits).
    fetched_at: Instant,
    /// Earliest local instant at which the current nonce may be due for rotation.
    due_at: Instant,
}

impl std::fmt::Debug for NonceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            Backend::Memory(_) => "memory".to_owned(),
            Backend::Redis { key, .. } => format!("redis ({key})"),
        };
        f.debug_struct("NonceManager")
            .field("rotation", &self.rotation)
            .field("backend", &backend)
            .finish()
    }
}

impl NonceManager {
    /// Redis backend (hash `dpop:nonce`) when `redis` is given, else memory.
    pub fn new(redis: Option<ConnectionManager>, rotation: Duration) -> Self {
        Self::with_key(redis, rotation, DEFAULT_REDIS_KEY)
    }

    /// As [`Self::new`] with another Redis hash key.
    pub fn with_key(
        redis: Option<ConnectionManager>,
        rotation: Duration,
        key: impl Into<String>,
    ) -> Self {
        match redis {
            Some(conn) => Self {
                rotation,
                backend: Backend::Redis {
                    conn,
                    key: key.into(),
                    script: Script::new(REDIS_SCRIPT),
                    cache: Mutex::new(None),
                },
            },
            None => Self::memory(rotation),
        }
    }

    /// Per-process manager; its first nonce is generated now.
    pub fn memory(rotation: Duration) -> Self {
        Self {
            rotation,
            backend: Backend::Memory(Mutex::new(MemoryState {
                current: generate_nonce(),
                previous: None,
                generated_at: Instant::now(),
            })),
        }
    }

    /// The rotation period.
    pub fn rotation(&self) -> Duration {
        self.rotation
    }

    /// `"memory"` or `"redis"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    /// The nonce to send in `DPoP-Nonce`, rotating first when the current one is older than the
    /// rotation period.
    pub async fn current(&self) -> Result<String, NonceError> {
        match &self.backend {
            Backend::Memory(state) => {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                if state.generated_at.elapsed() > self.rotation {
                    let new = generate_nonce();
                    state.previous = Some(std::mem::replace(&mut state.current, new));
                    state.generated_at = Instant::now();
                }
                Ok(state.current.clone())
            }
            Backend::Redis { cache, .. } => {
                let now = Instant::now();
                if let Some(c) = lock(cache).as_ref() {
                    if now < c.fetched_at + REDIS_CACHE_TTL && now < c.due_at {
                        return Ok(c.current.clone());
                    }
                }
                Ok(self.fetch(true).await?.current)
            }
        }
    }

    /// The accepted nonces: current and, after the first rotation, previous. Never rotates.
    pub async fn accepted(&self) -> Result<(String, Option<String>), NonceError> {
        match &self.backend {
            Backend::Memory(state) => {
                let state = state.lock().unwrap_or_else(|p| p.into_inner());
                Ok((state.current.clone(), state.previous.clone()))
            }
            Backend::Redis { cache, .. } => {
                if let Some(c) = lock(cache).as_ref() {
                    if c.fetched_at.elapsed() < REDIS_CACHE_TTL {
                        return Ok((c.current.clone(), c.previous.clone()));
                    }
                }
                let c = self.fetch(false).await?;
                Ok((c.current, c.previous))
            }
        }
    }

    /// Whether `nonce` is the current or the previous nonce. With Redis, a miss against the
    /// local cache is confirmed by reading Redis once (see the module docs).
    pub async fn is_accepted(&self, nonce: &str) -> Result<bool, NonceError> {
        let matches =
            |current: &str, previous: Option<&str>| current == nonce || previous == Some(nonce);
        if let Backend::Redis { cache, .. } = &self.backend {
            let cached = lock(cache).clone();
            if let Some(c) = cached {
                if c.fetched_at.elapsed() < REDIS_CACHE_TTL
                    && matches(&c.current, c.previous.as_deref())
                {
                    return Ok(true);
                }
            }
            let c = self.fetch(false).await?;
            return Ok(matches(&c.current, c.previous.as_deref()));
        }
        let (current, previous) = self.accepted().await?;
        Ok(matches(&current, previous.as_deref()))
    }

    /// Runs the script (rotating when due if `rotate`) and refreshes the local cache.
    async fn fetch(&self, rotate: bool) -> Result<Cached, NonceError> {
        let Backend::Redis {
            conn,
            key,
            script,
            cache,
        } = &self.backend
        else {
            unreachable!("fetch is only called for the Redis backend");
        };
        let rotation_ms = u64::try_from(self.rotation.as_millis()).unwrap_or(u64::MAX);
        let started = Instant::now();
        let mut conn = conn.clone();
        let mut invocation = script.key(key);
        invocation
            .arg(rotation_ms)
            .arg(generate_nonce())
            .arg(if rotate { "1" } else { "0" });
        let call = invocation.invoke_async::<(String, String, i64)>(&mut conn);
        let (current, previous, age_ms) = crate::telemetry::redis_call("EVALSHA nonce", call)
            .await
            .map_err(|e| NonceError(e.to_string()))?;
        let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
        // Due once its age exceeds the period; `started` is an early bound of when Redis measured
        // the age, so the local due time is never later than the real one.
        let due_at = started + self.rotation.saturating_sub(age) + Duration::from_millis(1);
        let fresh = Cached {
            current,
            previous: (!previous.is_empty()).then_some(previous),
            fetched_at: started,
            due_at,
        };
        *lock(cache) = Some(fresh.clone());
        Ok(fresh)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis_store::test_redis;

    fn unique_key() -> String {
        format!("test:{}:dpop:nonce", uuid::Uuid::new_v4().simple())
    }

    async fn redis_manager(key: &str, rotation: Duration) -> NonceManager {
        NonceManager::with_key(Some(test_redis().await), rotation, key)
    }

    async fn delete(key: &str) {
        let mut conn = test_redis().await;
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    fn assert_nonce_form(nonce: &str) {
        assert_eq!(nonce.len(), 32, "{nonce}");
        assert!(
            nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{nonce}"
        );
    }

    const PERIOD: Duration = Duration::from_millis(600);
    const PAST_PERIOD: Duration = Duration::from_millis(700);

    /// Stable within the period; rotation keeps the previous accepted and drops the one before.
    async fn rotation_scenario(m: &NonceManager) {
        let a = m.current().await.unwrap();
        assert_nonce_form(&a);
        for _ in 0..5 {
            assert_eq!(m.current().await.unwrap(), a);
        }
        assert_eq!(m.accepted().await.unwrap(), (a.clone(), None));
        assert!(m.is_accepted(&a).await.unwrap());
        assert!(!m.is_accepted(&generate_nonce()).await.unwrap());

        tokio::time::sleep(PAST_PERIOD).await;
        // Reading the accepted pair does not rotate.
        assert_eq!(m.accepted().await.unwrap().0, a);
        let b = m.current().await.unwrap();
        assert_nonce_form(&b);
        assert_ne!(b, a);
        assert_eq!(m.current().await.unwrap(), b);
        assert_eq!(m.accepted().await.unwrap(), (b.clone(), Some(a.clone())));
        assert!(m.is_accepted(&a).await.unwrap());
        assert!(m.is_accepted(&b).await.unwrap());

        tokio::time::sleep(PAST_PERIOD).await;
        let c = m.current().await.unwrap();
        assert_ne!(c, b);
        assert_ne!(c, a);
        assert_eq!(m.accepted().await.unwrap(), (c.clone(), Some(b.clone())));
        assert!(!m.is_accepted(&a).await.unwrap(), "two rotations ago");
        assert!(m.is_accepted(&b).await.unwrap());
        assert!(m.is_accepted(&c).await.unwrap());
    }

    #[test]
    fn generated_nonces_are_32_lowercase_hex_and_distinct() {
        let a = generate_nonce();
        assert_nonce_form(&a);
        assert_ne!(a, generate_nonce());
    }

    #[tokio::test]
    async fn memory_rotation() {
        let m = NonceManager::new(None, PERIOD);
        assert_eq!(m.backend_name(), "memory");
        rotation_scenario(&m).await;
    }

    #[tokio::test]
    async fn memory_default_period_is_stable() {
        let m = NonceManager::memory(DEFAULT_ROTATION);
        let a = m.current().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(m.current().await.unwrap(), a);
        // Two memory managers are two processes: they do not agree.
        assert_ne!(
            NonceManager::memory(DEFAULT_ROTATION)
                .current()
                .await
                .unwrap(),
            a
        );
    }

    #[tokio::test]
    async fn redis_rotation() {
        let key = unique_key();
        let m = redis_manager(&key, PERIOD).await;
        assert_eq!(m.backend_name(), "redis");
        rotation_scenario(&m).await;
        // The hash holds what the manager reports.
        let (c, b) = m.accepted().await.unwrap();
        let mut conn = test_redis().await;
        let (current, previous, generated_at): (String, String, String) = redis::cmd("HMGET")
            .arg(&key)
            .arg("current")
            .arg("previous")
            .arg("generated_at")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(current, c);
        assert_eq!(Some(previous), b);
        assert!(
            generated_at.parse::<u64>().unwrap() > 1_600_000_000_000,
            "{generated_at}"
        );
        delete(&key).await;
    }

    #[tokio::test]
    async fn two_redis_managers_agree() {
        let key = unique_key();
        let m1 = redis_manager(&key, PERIOD).await;
        let m2 = redis_manager(&key, PERIOD).await;
        // Concurrent first use creates one pair, not two.
        let (x, y) = tokio::join!(m1.current(), m2.current());
        let a = x.unwrap();
        assert_eq!(y.unwrap(), a);
        assert_eq!(m2.accepted().await.unwrap(), (a.clone(), None));

        tokio::time::sleep(PAST_PERIOD).await;
        let b = m1.current().await.unwrap();
        assert_ne!(b, a);
        // m2's copy is due as well, so it goes back to Redis and sees m1's rotation rather than
        // rotating again.
        assert_eq!(m2.current().await.unwrap(), b);
        assert_eq!(m2.accepted().await.unwrap(), (b.clone(), Some(a.clone())));
        assert_eq!(m1.accepted().await.unwrap(), (b.clone(), Some(a.clone())));

        tokio::time::sleep(PAST_PERIOD).await;
        let c = m2.current().await.unwrap();
        assert_ne!(c, b);
        assert_eq!(m1.current().await.unwrap(), c);
        assert!(!m1.is_accepted(&a).await.unwrap());
        assert!(m1.is_accepted(&b).await.unwrap());
        delete(&key).await;
    }

    #[tokio::test]
    async fn stale_cache_confirms_a_miss_with_redis() {
        let key = unique_key();
        // `slow` caches a pair that `fast` rotates behind its back (different periods stand in
        // for a rotation this replica has not noticed yet).
        let slow = redis_manager(&key, Duration::from_secs(60)).await;
        let fast = redis_manager(&key, Duration::from_millis(300)).await;
        let a = slow.current().await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let b = fast.current().await.unwrap();
        assert_ne!(b, a);
        assert!(
            slow.is_accepted(&b).await.unwrap(),
            "new nonce from another replica"
        );
        assert_eq!(slow.accepted().await.unwrap(), (b.clone(), Some(a.clone())));
        assert!(slow.is_accepted(&a).await.unwrap());
        delete(&key).await;
    }

    #[tokio::test]
    async fn redis_errors_are_nonce_errors() {
        let key = unique_key();
        let mut conn = test_redis().await;
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("not a hash")
            .arg("EX")
            .arg(60)
            .query_async(&mut conn)
            .await
            .unwrap();
        let m = redis_manager(&key, PERIOD).await;
        let err = m.current().await.unwrap_err();
        assert!(
            err.to_string().starts_with("nonce store unavailable: "),
            "{err}"
        );
        assert!(m.accepted().await.is_err());
        assert!(m.is_accepted("x").await.is_err());
    }
}
