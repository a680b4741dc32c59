//! What the broker tells its operator: logs, traces and metrics (`cullis-telemetry` does the
//! plumbing; this module knows the broker's spans and instruments).
//!
//! - [`init`] installs logging and, as `OTEL_*` / `PROMETHEUS_ENABLED` say, the OTLP pipeline
//!   and the Prometheus registry.
//! - [`metrics()`] holds every instrument: the reference's `atn.*` ones (same exported names, so
//!   its alert rules keep working) and this implementation's `cullis.*` ones.
//! - [`http`] is the middleware that gives every request a server span and a duration.

pub mod http;
mod instruments;

pub use instruments::{metrics, DenyReason, Metrics};

use crate::config::Config;
use cullis_telemetry::Telemetry;

/// The log filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,tower_http=warn,sqlx=warn";

/// Installs logging, traces and metrics for this process. Call before the state is built, so
/// instruments bind to the configured meter provider.
pub fn init(config: &Config) -> Result<Telemetry, String> {
    let telemetry = Telemetry::init(&config.telemetry, config.log_format, DEFAULT_FILTER)?;
    instruments::install();
    Ok(telemetry)
}

/// Samples what is cheaper to count now and then than on every change: active sessions and the
/// database pool, every 10 s, while metrics are on.
pub fn spawn_samplers(state: &crate::state::AppState) {
    if !state.config.telemetry.metrics_enabled() {
        return;
    }
    let db = state.db.clone();
    tokio::spawn(async move {
        use std::sync::atomic::Ordering::Relaxed;
        let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            every.tick().await;
            let m = metrics();
            let (in_use, idle) = db.pool_usage();
            m.db_pool_in_use.store(u64::from(in_use), Relaxed);
            m.db_pool_idle.store(u64::from(idle), Relaxed);
            match db.count_active_sessions().await {
                Ok(count) => m.sessions_active.store(count, Relaxed),
                Err(error) => tracing::debug!(%error, "metrics: cannot count active sessions"),
            }
        }
    });
}

/// Runs one Redis round trip in a `redis.command` span and counts it in
/// `cullis_redis_errors_total{operation}` when it fails.
pub async fn redis_call<T, E>(
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "redis.command",
        db.system = "redis",
        db.operation = operation
    );
    let result = call.instrument(span).await;
    if result.is_err() {
        metrics()
            .redis_errors
            .add(1, &[opentelemetry::KeyValue::new("operation", operation)]);
    }
    result
}

/// An id from a request, cut to a length that is safe as a span attribute (the attribute is
/// for finding a trace, not for storing what a caller sent).
pub fn bounded(value: &str) -> &str {
    const MAX: usize = 128;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}
