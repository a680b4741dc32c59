//! Rate limiting: a sliding-window log per (subject, bucket), in memory or in Redis.
//!
//! For a (subject, bucket) pair the limiter drops the hits older than `now − window`; if `max` hits
//! remain the request is rejected (and the rejected hit is **not** recorded), otherwise the hit is
//! recorded. Buckets that are not configured are unlimited.
//!
//! * Memory backend (default): a monotonic clock and one lock around a map of at most
//!   [`MEMORY_MAX_KEYS`] (subject, bucket) logs; when full, the oldest inserted key is evicted.
//!   Per process only.
//! * Redis backend (when a [`ConnectionManager`] is given): one ZSET per key
//!   `ratelimit:{subject}:{bucket}` and one Lua script doing
//!   `ZREMRANGEBYSCORE → ZCARD → reject | ZADD + EXPIRE window+10`, atomically, so every broker
//!   replica draws from the same budget. Scores come from the Redis server's `TIME`, not from the
//!   replicas' clocks, so clock skew between replicas cannot stretch or shrink a window.
//!
//! Every bucket can be configured from the environment (`RATE_LIMIT_AUTH_TOKEN=10/60s`), and
//! `RATE_LIMITS=off` turns all limits off; see [`RateLimitConfig::from_env_map`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::Script;

/// One bucket's budget: at most `max` requests per sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed within one window.
    pub max: u32,
    /// Length of the sliding window (whole seconds when configured from the environment).
    pub window: Duration,
}

impl RateLimit {
    /// `max` requests per `window`.
    pub const fn new(max: u32, window: Duration) -> Self {
        Self { max, window }
    }

    /// `max` requests per `secs` seconds.
    pub const fn per_secs(max: u32, secs: u64) -> Self {
        Self::new(max, Duration::from_secs(secs))
    }
}

/// `POST /v1/auth/token`, per client IP.
pub const AUTH_TOKEN: (&str, RateLimit) = ("auth.token", RateLimit::per_secs(10, 60));
/// `POST /v1/broker/sessions`, per agent (denied attempts count too).
pub const BROKER_SESSION: (&str, RateLimit) = ("broker.session", RateLimit::per_secs(20, 60));
/// `POST /v1/broker/sessions/{id}/messages`, per agent.
pub const BROKER_MESSAGE: (&str, RateLimit) = ("broker.message", RateLimit::per_secs(60, 60));
/// `POST /v1/broker/rfq`, per agent.
pub const BROKER_RFQ: (&str, RateLimit) = ("broker.rfq", RateLimit::per_secs(5, 60));
/// `POST /v1/broker/rfq/{id}/respond`, per agent.
pub const BROKER_RFQ_RESPOND: (&str, RateLimit) =
    ("broker.rfq_respond", RateLimit::per_secs(20, 60));
/// `POST /v1/onboarding/join`, per client IP.
pub const ONBOARDING_JOIN: (&str, RateLimit) = ("onboarding.join", RateLimit::per_secs(5, 300));
/// `POST /v1/auth/token/transaction`, per agent (not a reference bucket: its endpoint did not
/// work over HTTP there). One token per order-like send, so the message budget.
pub const AUTH_TRANSACTION_TOKEN: (&str, RateLimit) =
    ("auth.transaction_token", RateLimit::per_secs(60, 60));
/// Dashboard login, register and OIDC callback (shared), per client IP.
pub const DASHBOARD_LOGIN: (&str, RateLimit) = ("dashboard.login", RateLimit::per_secs(5, 300));

/// The reference's buckets with their default budgets, and the transaction-token bucket.
pub const REFERENCE_BUCKETS: [(&str, RateLimit); 8] = [
    AUTH_TOKEN,
    BROKER_SESSION,
    BROKER_MESSAGE,
    BROKER_RFQ,
    BROKER_RFQ_RESPOND,
    ONBOARDING_JOIN,
    DASHBOARD_LOGIN,
    AUTH_TRANSACTION_TOKEN,
];

/// Most (subject, bucket) logs the memory backend keeps; the oldest inserted is evicted beyond.
pub const MEMORY_MAX_KEYS: usize = 50_000;

/// Key prefix of the Redis backend: keys are `ratelimit:{subject}:{bucket}`.
pub const DEFAULT_REDIS_PREFIX: &str = "ratelimit:";

/// Environment variable that turns every limit off (`off`, `false` or `0`).
pub const RATE_LIMITS_ENV: &str = "RATE_LIMITS";

/// Prefix of the per-bucket variables (`RATE_LIMIT_AUTH_TOKEN` for `auth.token`).
pub const RATE_LIMIT_ENV_PREFIX: &str = "RATE_LIMIT_";

/// The environment variable that configures `bucket`: `RATE_LIMIT_` + the bucket upper-cased
/// with `.` → `_`.
pub fn env_var_name(bucket: &str) -> String {
    format!(
        "{RATE_LIMIT_ENV_PREFIX}{}",
        bucket.to_ascii_uppercase().replace('.', "_")
    )
}

/// A rate-limit variable whose value could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}=\"{value}\" is not {expected}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: String,
    /// Its value as given.
    pub value: String,
    /// What was expected, e.g. `of the form <count>/<seconds>s (e.g. 10/60s)`.
    pub expected: &'static str,
}

const EXPECTED_LIMIT: &str = "of the form <count>/<seconds>s (e.g. 10/60s)";
const EXPECTED_SWITCH: &str = "one of on, off, true, false, 1, 0";

/// Which buckets are limited and how much; or everything off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    enabled: bool,
    buckets: BTreeMap<String, RateLimit>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self::reference()
    }
}

impl RateLimitConfig {
    /// The reference buckets ([`REFERENCE_BUCKETS`]), enabled.
    pub fn reference() -> Self {
        Self {
            enabled: true,
            buckets: REFERENCE_BUCKETS
                .iter()
                .map(|(name, limit)| ((*name).to_owned(), *limit))
                .collect(),
        }
    }

    /// Every request allowed (what `RATE_LIMITS=off` gives).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::reference()
        }
    }

    /// Adds or replaces one bucket.
    pub fn with_bucket(mut self, bucket: impl Into<String>, limit: RateLimit) -> Self {
        self.buckets.insert(bucket.into(), limit);
        self
    }

    /// Whether limits are enforced at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The budget of `bucket` if it is limited (`None` when unknown or when limits are off).
    pub fn get(&self, bucket: &str) -> Option<RateLimit> {
        if !self.enabled {
            return None;
        }
        self.buckets.get(bucket).copied()
    }

    /// The configured buckets, whether or not limits are enabled.
    pub fn buckets(&self) -> impl Iterator<Item = (&str, RateLimit)> {
        self.buckets
            .iter()
            .map(|(name, limit)| (name.as_str(), *limit))
    }

    /// The process environment through [`Self::from_env_map`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_map(&std::env::vars().collect())
    }

    /// The reference buckets overridden by `RATE_LIMIT_<BUCKET>=<count>/<seconds>s` (or
    /// `<count>/<minutes>m`) and switched off entirely by `RATE_LIMITS=off|false|0`. Variable
    /// names are matched case-insensitively, as all the broker's settings are. Count and window
    /// must be at least 1. `RATE_LIMIT_*` variables naming no known bucket are ignored with a
    /// warning.
    pub fn from_env_map(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let lookup = |name: &str| -> Option<(&str, &str)> {
            env.get_key_value(name)
                .or_else(|| env.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .map(|(k, v)| (k.as_str(), v.as_str()))
        };

        let mut config = Self::reference();
        if let Some((var, value)) = lookup(RATE_LIMITS_ENV) {
            match value.trim().to_ascii_lowercase().as_str() {
                "off" | "false" | "0" => config.enabled = false,
                "" | "on" | "true" | "1" => {}
                _ => {
                    return Err(ConfigError {
                        var: var.to_owned(),
                        value: value.to_owned(),
                        expected: EXPECTED_SWITCH,
                    })
                }
            }
        }

        let known: HashMap<String, String> = config
            .buckets
            .keys()
            .map(|bucket| (env_var_name(bucket), bucket.clone()))
            .collect();
        for (var, value) in env {
            let upper = var.to_ascii_uppercase();
            if !upper.starts_with(RATE_LIMIT_ENV_PREFIX) {
                continue;
            }
            let Some(bucket) = known.get(&upper) else {
                tracing::warn!(variable = %var, "ignoring rate-limit variable for an unknown bucket");
                continue;
            };
            let limit = parse_limit(value).ok_or_else(|| ConfigError {
                var: var.clone(),
                value: value.clone(),
                expected: EXPECTED_LIMIT,
            })?;
            config.buckets.insert(bucket.clone(), limit);
        }
        Ok(config)
    }
}

/// `10/60s` → 10 per 60 s; `5/5m` → 5 per 300 s. `None` when malformed or zero.
fn parse_limit(value: &str) -> Option<RateLimit> {
    let (count, window) = value.trim().split_once('/')?;
    let count = count.trim();
    if !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let max: u32 = count.parse().ok()?;
    let window = window.trim();
    let (number, unit_secs) = if let Some(n) = window.strip_suffix('s') {
        (n, 1)
    } else if let Some(n) = window.strip_suffix('m') {
        (n, 60)
    } else {
        return None;
    };
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = number.parse::<u64>().ok()?.checked_mul(unit_secs)?;
    (max >= 1 && secs >= 1).then(|| RateLimit::per_secs(max, secs))
}

/// Why [`RateLimiter::check`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The budget is spent: answer 429 with this text as `detail` and `Retry-After`.
    #[error("Rate limit exceeded for '{bucket}': max {max} req/{window_secs}s")]
    Exceeded {
        /// The bucket's name.
        bucket: String,
        /// Its budget per window.
        max: u32,
        /// Its window in seconds.
        window_secs: u64,
    },
    /// The shared store did not answer; callers fail closed (503).
    #[error("rate limit store unavailable: {0}")]
    Backend(String),
}

impl LimitError {
    /// Value of the `Retry-After` header: the bucket's window, as the reference sends
    /// (`None` for backend failures).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            LimitError::Exceeded { window_secs, .. } => Some(*window_secs),
            LimitError::Backend(_) => None,
        }
    }
}

/// Sliding window in Redis. KEYS[1] = the ZSET; ARGV = window (s, float), max, unique member.
/// Returns 1 when allowed (and recorded), 0 when rejected (not recorded).
const REDIS_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 10)
return 1
";

/// Enforces a [`RateLimitConfig`] in memory or in Redis.
pub struct RateLimiter {
    config: RateLimitConfig,
    backend: Backend,
}

enum Backend {
    Memory(Mutex<MemoryLog>),
    Redis {
        conn: ConnectionManager,
        prefix: String,
        script: Script,
    },
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.config)
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl RateLimiter {
    /// Redis backend when `redis` is given (keys `ratelimit:{subject}:{bucket}`), else memory.
    pub fn new(config: RateLimitConfig, redis: Option<ConnectionManager>) -> Self {
        Self::with_key_prefix(config, redis, DEFAULT_REDIS_PREFIX)
    }

    /// As [`Self::new`] with another Redis key prefix (keys `{prefix}{subject}:{bucket}`).
    pub fn with_key_prefix(
        config: RateLimitConfig,
        redis: Option<ConnectionManager>,
        prefix: impl Into<String>,
    ) -> Self {
        let backend = match redis {
            Some(conn) => Backend::Redis {
                conn,
                prefix: prefix.into(),
                script: Script::new(REDIS_SCRIPT),
            },
            None => Backend::Memory(Mutex::new(MemoryLog::new(MEMORY_MAX_KEYS))),
        };
        Self { config, backend }
    }

    /// Memory backend holding at most `max_keys` (subject, bucket) logs.
    pub fn memory_with_capacity(config: RateLimitConfig, max_keys: usize) -> Self {
        Self {
            config,
            backend: Backend::Memory(Mutex::new(MemoryLog::new(max_keys.max(1)))),
        }
    }

    /// The configuration being enforced.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// `"memory"` or `"redis"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    /// Counts one request of `subject` against `bucket`, or refuses it. Unknown buckets and a
    /// disabled configuration always pass.
    pub async fn check(&self, bucket: &str, subject: &str) -> Result<(), LimitError> {
        let Some(limit) = self.config.get(bucket) else {
            return Ok(());
        };
        let allowed = match &self.backend {
            Backend::Memory(log) => log
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .hit(bucket, subject, limit, Instant::now()),
            Backend::Redis {
                conn,
                prefix,
                script,
            } => {
                let mut conn = conn.clone();
                let mut invocation = script.key(format!("{prefix}{subject}:{bucket}"));
                invocation
                    .arg(limit.window.as_secs_f64())
                    .arg(limit.max)
                    .arg(uuid::Uuid::new_v4().simple().to_string());
                let call = invocation.invoke_async::<i64>(&mut conn);
                let allowed = crate::telemetry::redis_call("EVALSHA ratelimit", call)
                    .await
                    .map_err(|e| LimitError::Backend(e.to_string()))?;
                allowed == 1
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(LimitError::Exceeded {
                bucket: bucket.to_owned(),
                max: limit.max,
                window_secs: limit.window.as_secs(),
            })
        }
    }
}

type LogKey = (String, String);

/// The memory backend: hit times per (subject, bucket), plus insertion order for eviction.
struct MemoryLog {
    max_keys: usize,
    logs: HashMap<LogKey, VecDeque<Instant>>,
    /// Keys in insertion order; holds exactly the keys of `logs`.
    order: VecDeque<LogKey>,
}

impl MemoryLog {
    fn new(max_keys: usize) -> Self {
        Self {
            max_keys,
            logs: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether the hit is allowed; records it only if so.
    fn hit(&mut self, bucket: &str, subject: &str, limit: RateLimit, now: Instant) -> bool {
        let key = (subject.to_owned(), bucket.to_owned());
        if let Some(log) = self.logs.get_mut(&key) {
            while log
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= limit.window)
            {
                log.pop_front();
            }
            if log.len() >= limit.max as usize {
                return false;
            }
            log.push_back(now);
            return true;
        }
        if limit.max == 0 {
            return false;
        }
        while self.logs.len() >= self.max_keys {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.logs.remove(&oldest);
                }
                None => break,
            }
        }
        self.order.push_back(key.clone());
        self.logs.insert(key, VecDeque::from([now]));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis_store::test_redis;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn unique() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    async fn redis_limiter(config: RateLimitConfig, prefix: &str) -> RateLimiter {
        RateLimiter::with_key_prefix(config, Some(test_redis().await), prefix)
    }

    fn test_prefix() -> String {
        format!("test:{}:ratelimit:", unique())
    }

    const SLIDE: &str = "test.slide";

    fn slide_config() -> RateLimitConfig {
        RateLimitConfig::reference().with_bucket(SLIDE, RateLimit::per_secs(2, 2))
    }

    // ---- scenarios shared by both backends ----

    async fn n_then_rejected_with_reference_text(limiter: &RateLimiter, subject: &str) {
        for i in 0..10 {
            limiter
                .check("auth.token", subject)
                .await
                .unwrap_or_else(|e| panic!("hit {} refused: {e}", i + 1));
        }
        let err = limiter.check("auth.token", subject).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Rate limit exceeded for 'auth.token': max 10 req/60s"
        );
        assert_eq!(err.retry_after_secs(), Some(60));
        assert_eq!(
            err,
            LimitError::Exceeded {
                bucket: "auth.token".into(),
                max: 10,
                window_secs: 60
            }
        );
        // Other subjects and other buckets of the same subject are untouched.
        let other = format!("{subject}-other");
        for _ in 0..10 {
            limiter.check("auth.token", &other).await.unwrap();
        }
        for _ in 0..5 {
            limiter.check("onboarding.join", subject).await.unwrap();
        }
        let err = limiter.check("onboarding.join", subject).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Rate limit exceeded for 'onboarding.join': max 5 req/300s"
        );
        assert_eq!(err.retry_after_secs(), Some(300));
        // Unknown buckets are unlimited.
        for _ in 0..100 {
            limiter.check("broker.poll", subject).await.unwrap();
        }
    }

    /// Window 2 s, max 2. Hit at t0; at t1 one more is allowed and the next refused; at t2.2 the
    /// t0 hit has left the window. If the refused hit at t1 had been recorded, the log would
    /// still hold two hits and the request at t2.2 would be refused.
    async fn rejected_hits_not_counted_and_window_slides(limiter: &RateLimiter, subject: &str) {
        limiter.check(SLIDE, subject).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        limiter.check(SLIDE, subject).await.unwrap();
        for _ in 0..5 {
            assert!(matches!(
                limiter.check(SLIDE, subject).await,
                Err(LimitError::Exceeded { .. })
            ));
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        limiter
            .check(SLIDE, subject)
            .await
            .expect("the oldest hit slid out and refused hits were not recorded");
        let err = limiter.check(SLIDE, subject).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Rate limit exceeded for 'test.slide': max 2 req/2s"
        );
    }

    async fn disabled_allows_everything(limiter: &RateLimiter, subject: &str) {
        assert!(!limiter.config().is_enabled());
        for _ in 0..200 {
            limiter.check("auth.token", subject).await.unwrap();
        }
    }

    // ---- memory ----

    #[tokio::test]
    async fn memory_allows_max_then_rejects_with_reference_text() {
        let limiter = RateLimiter::new(RateLimitConfig::reference(), None);
        assert_eq!(limiter.backend_name(), "memory");
        n_then_rejected_with_reference_text(&limiter, "10.0.0.1").await;
    }

    #[tokio::test]
    async fn memory_rejected_hits_not_counted_and_window_slides() {
        let limiter = RateLimiter::new(slide_config(), None);
        rejected_hits_not_counted_and_window_slides(&limiter, "agent-a").await;
    }

    #[tokio::test]
    async fn memory_disabled_by_env() {
        let config = RateLimitConfig::from_env_map(&env(&[("RATE_LIMITS", "off")])).unwrap();
        disabled_allows_everything(&RateLimiter::new(config, None), "10.0.0.1").await;
    }

    #[tokio::test]
    async fn memory_evicts_the_oldest_key_when_full() {
        let config = RateLimitConfig::reference().with_bucket("one", RateLimit::per_secs(1, 60));
        let limiter = RateLimiter::memory_with_capacity(config, 3);
        for s in ["s0", "s1", "s2"] {
            limiter.check("one", s).await.unwrap();
            limiter.check("one", s).await.unwrap_err();
        }
        // A fourth key evicts s0, the oldest; s1 and s2 keep their logs.
        limiter.check("one", "s3").await.unwrap();
        limiter.check("one", "s1").await.unwrap_err();
        limiter.check("one", "s2").await.unwrap_err();
        limiter.check("one", "s0").await.unwrap();
        // Re-inserting s0 evicted s1, the oldest left.
        limiter.check("one", "s1").await.unwrap();
        limiter.check("one", "s3").await.unwrap_err();
    }

    // ---- Redis ----

    #[tokio::test]
    async fn redis_allows_max_then_rejects_with_reference_text() {
        let limiter = redis_limiter(RateLimitConfig::reference(), &test_prefix()).await;
        assert_eq!(limiter.backend_name(), "redis");
        n_then_rejected_with_reference_text(&limiter, &unique()).await;
    }

    #[tokio::test]
    async fn redis_rejected_hits_not_counted_and_window_slides() {
        let limiter = redis_limiter(slide_config(), &test_prefix()).await;
        rejected_hits_not_counted_and_window_slides(&limiter, &unique()).await;
    }

    #[tokio::test]
    async fn redis_disabled_by_env() {
        let config = RateLimitConfig::from_env_map(&env(&[("RATE_LIMITS", "false")])).unwrap();
        disabled_allows_everything(&redis_limiter(config, &test_prefix()).await, &unique()).await;
    }

    #[tokio::test]
    async fn redis_key_layout_and_expiry() {
        let prefix = test_prefix();
        let limiter = redis_limiter(RateLimitConfig::reference(), &prefix).await;
        limiter.check("broker.rfq", "agent-x").await.unwrap();
        let mut conn = test_redis().await;
        let key = format!("{prefix}agent-x:broker.rfq");
        let (card, ttl): (i64, i64) = redis::pipe()
            .zcard(&key)
            .ttl(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(card, 1);
        assert!((60..=70).contains(&ttl), "ttl {ttl}");
    }

    #[tokio::test]
    async fn two_redis_limiters_share_the_budget() {
        let prefix = test_prefix();
        let subject = unique();
        let a = redis_limiter(RateLimitConfig::reference(), &prefix).await;
        let b = redis_limiter(RateLimitConfig::reference(), &prefix).await;
        // broker.rfq: 5 per 60 s across both replicas.
        for i in 0..5 {
            let replica = if i % 2 == 0 { &a } else { &b };
            replica.check("broker.rfq", &subject).await.unwrap();
        }
        for replica in [&a, &b] {
            let err = replica.check("broker.rfq", &subject).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "Rate limit exceeded for 'broker.rfq': max 5 req/60s"
            );
        }
        // A memory limiter would not have shared anything: the same sequence passes on each.
        let m = RateLimiter::new(RateLimitConfig::reference(), None);
        for _ in 0..5 {
            m.check("broker.rfq", &subject).await.unwrap();
        }
    }

    #[tokio::test]
    async fn redis_errors_are_backend_errors() {
        let prefix = test_prefix();
        let limiter = redis_limiter(RateLimitConfig::reference(), &prefix).await;
        // A key of the wrong type makes the script fail inside Redis.
        let mut conn = test_redis().await;
        let key = format!("{prefix}agent-y:broker.rfq");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("x")
            .arg("EX")
            .arg(60)
            .query_async(&mut conn)
            .await
            .unwrap();
        let err = limiter.check("broker.rfq", "agent-y").await.unwrap_err();
        assert!(matches!(err, LimitError::Backend(_)), "{err:?}");
        assert_eq!(err.retry_after_secs(), None);
    }

    // ---- configuration ----

    #[test]
    fn reference_buckets() {
        let c = RateLimitConfig::reference();
        let get = |b| c.get(b).unwrap();
        assert_eq!(get("auth.token"), RateLimit::per_secs(10, 60));
        assert_eq!(get("broker.session"), RateLimit::per_secs(20, 60));
        assert_eq!(get("broker.message"), RateLimit::per_secs(60, 60));
        assert_eq!(get("broker.rfq"), RateLimit::per_secs(5, 60));
        assert_eq!(get("broker.rfq_respond"), RateLimit::per_secs(20, 60));
        assert_eq!(get("onboarding.join"), RateLimit::per_secs(5, 300));
        assert_eq!(get("dashboard.login"), RateLimit::per_secs(5, 300));
        assert_eq!(get("auth.transaction_token"), RateLimit::per_secs(60, 60));
        assert_eq!(c.get("broker.poll"), None);
        assert_eq!(
            env_var_name("broker.rfq_respond"),
            "RATE_LIMIT_BROKER_RFQ_RESPOND"
        );
    }

    #[test]
    fn env_overrides_buckets() {
        let c = RateLimitConfig::from_env_map(&env(&[
            ("RATE_LIMIT_AUTH_TOKEN", "3/2m"),
            ("rate_limit_broker_rfq_respond", " 7/30s "),
            ("RATE_LIMIT_NO_SUCH_BUCKET", "garbage"),
            ("PATH", "/usr/bin"),
        ]))
        .unwrap();
        assert!(c.is_enabled());
        assert_eq!(c.get("auth.token"), Some(RateLimit::per_secs(3, 120)));
        assert_eq!(
            c.get("broker.rfq_respond"),
            Some(RateLimit::per_secs(7, 30))
        );
        assert_eq!(c.get("broker.rfq"), Some(RateLimit::per_secs(5, 60)));
        assert_eq!(
            RateLimitConfig::from_env_map(&HashMap::new()).unwrap(),
            RateLimitConfig::reference()
        );
    }

    #[test]
    fn env_switch() {
        for off in ["off", "OFF", "false", "0", " Off "] {
            let c = RateLimitConfig::from_env_map(&env(&[("RATE_LIMITS", off)])).unwrap();
            assert!(!c.is_enabled(), "{off}");
            assert_eq!(c.get("auth.token"), None);
        }
        for on in ["on", "true", "1", ""] {
            let c = RateLimitConfig::from_env_map(&env(&[("RATE_LIMITS", on)])).unwrap();
            assert!(c.is_enabled(), "{on}");
        }
        let err = RateLimitConfig::from_env_map(&env(&[("RATE_LIMITS", "maybe")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "RATE_LIMITS=\"maybe\" is not one of on, off, true, false, 1, 0"
        );
    }

    #[test]
    fn malformed_env_values_name_the_variable_and_the_form() {
        let err =
            RateLimitConfig::from_env_map(&env(&[("RATE_LIMIT_AUTH_TOKEN", "ten")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "RATE_LIMIT_AUTH_TOKEN=\"ten\" is not of the form <count>/<seconds>s (e.g. 10/60s)"
        );
        for bad in [
            "10",
            "10/60",
            "10/60h",
            "/60s",
            "10/s",
            "0/60s",
            "10/0s",
            "-1/60s",
            "10/-5s",
            "10/+5s",
            "+5/60s",
            "1.5/60s",
            "10/60ss",
            "99999999999/60s",
        ] {
            let err = RateLimitConfig::from_env_map(&env(&[("RATE_LIMIT_BROKER_SESSION", bad)]))
                .expect_err(bad);
            assert_eq!(err.var, "RATE_LIMIT_BROKER_SESSION");
            assert_eq!(err.value, bad);
            assert!(err.to_string().contains("<count>/<seconds>s"), "{err}");
        }
    }
}
