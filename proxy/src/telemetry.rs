//! What the proxy tells its operator: JSON log lines (the broker's shape, with `trace_id` /
//! `span_id` while traces are exported), OpenTelemetry traces (`OTEL_*`, service name
//! `cullis-proxy`), and metrics at `/metrics` (`MCP_PROXY_PROMETHEUS_ENABLED=true`) and over OTLP.
//! `cullis-telemetry` does the plumbing; this module knows the proxy's spans and instruments.

use cullis_telemetry::{LogFormat, Telemetry, TelemetryConfig};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::LazyLock;

/// The log filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info";

/// Reads the telemetry settings from the environment (and `./proxy.env`).
pub fn config() -> Result<TelemetryConfig, String> {
    TelemetryConfig::from_env(
        |name| std::env::var(name).ok(),
        "cullis-proxy",
        "MCP_PROXY_PROMETHEUS_ENABLED",
    )
    .map_err(|e| e.to_string())
}

/// Installs logging and, for `serve` (`Some(--prometheus-enabled)`), the trace and metric
/// pipelines as configured. pingora's `log` records arrive through the `tracing-log` bridge.
pub fn init(serving: Option<bool>) -> Result<Telemetry, String> {
    let config = match serving {
        Some(prometheus_enabled) => TelemetryConfig {
            prometheus_enabled,
            ..config()?
        },
        // Operator commands write logs only; they must not start exporters or a listener.
        None => TelemetryConfig {
            otel_enabled: false,
            prometheus_enabled: false,
            ..config().unwrap_or_else(|_| quiet_config())
        },
    };
    let telemetry = Telemetry::init(&config, LogFormat::Json, DEFAULT_FILTER)?;
    LazyLock::force(&METRICS);
    Ok(telemetry)
}

fn quiet_config() -> TelemetryConfig {
    TelemetryConfig::from_env(|_| None, "cullis-proxy", "MCP_PROXY_PROMETHEUS_ENABLED")
        .expect("the defaults are valid")
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| Metrics::new(&opentelemetry::global::meter(cullis_telemetry::SCOPE)));

/// The proxy's instruments (no-ops until [`init`] installed a meter provider).
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The proxy's instruments. Labels are operations (route templates), statuses and fixed
/// kinds — never agent ids, session ids or raw paths.
pub struct Metrics {
    pub request_duration: Histogram<f64>,
    pub uplink_logins: Counter<u64>,
    pub uplink_requests: Histogram<f64>,
    pub broker_errors: Counter<u64>,
    pub pdp_decisions: Counter<u64>,
    pub e2e: Counter<u64>,
    /// Open SSE streams (read by an observable gauge).
    pub sse_subscribers: AtomicI64,
}

impl Metrics {
    fn new(meter: &Meter) -> Metrics {
        meter
            .i64_observable_gauge("cullis.proxy.sse.subscribers")
            .with_description("Open SSE event streams of local agents")
            .with_callback(|gauge| {
                gauge.observe(METRICS.sse_subscribers.load(Ordering::Relaxed), &[])
            })
            .build();
        Metrics {
            request_duration: meter
                .f64_histogram("cullis.proxy.request.duration")
                .with_unit("s")
                .with_description(
                    "Local requests (egress, MCP, PDP, admin), by operation and status",
                )
                .build(),
            uplink_logins: meter
                .u64_counter("cullis.proxy.uplink.logins")
                .with_description("Logins at the broker (first login and refreshes), by result")
                .build(),
            uplink_requests: meter
                .f64_histogram("cullis.proxy.uplink.request.duration")
                .with_unit("s")
                .with_description("Requests to the broker, by outcome")
                .build(),
            broker_errors: meter
                .u64_counter("cullis.proxy.broker.errors")
                .with_description(
                    "Broker calls that failed, by kind (unreachable, status class, protocol)",
                )
                .build(),
            pdp_decisions: meter
                .u64_counter("cullis.proxy.pdp.decisions")
                .with_description("PDP webhook decisions for this org, by decision")
                .build(),
            e2e: meter
                .u64_counter("cullis.proxy.e2e.operations")
                .with_description("Messages sealed and opened, by operation and result")
                .build(),
            sse_subscribers: AtomicI64::new(0),
        }
    }

    /// One answered local request.
    pub fn request(&self, operation: &'static str, status: u16, elapsed_seconds: f64) {
        self.request_duration.record(
            elapsed_seconds,
            &[
                KeyValue::new("operation", operation),
                KeyValue::new("status", i64::from(status)),
            ],
        );
    }
}

/// Counts an open SSE stream for as long as this guard lives.
pub struct SseSubscriber(());

impl SseSubscriber {
    pub fn open() -> SseSubscriber {
        metrics().sse_subscribers.fetch_add(1, Ordering::Relaxed);
        SseSubscriber(())
    }
}

impl Drop for SseSubscriber {
    fn drop(&mut self) {
        metrics().sse_subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}
