//! The Prometheus side: one registry per process, filled by the OpenTelemetry instruments
//! (names like `atn.auth.success` are exported as `atn_auth_success_total`, milliseconds
//! histograms as `…_milliseconds_*`, exactly as the reference's exporter did) plus the process
//! collector (`process_resident_memory_bytes`, `process_open_fds`, CPU seconds).

use opentelemetry_sdk::metrics::{Aggregation, Instrument, InstrumentKind, Stream};
use std::sync::OnceLock;

static REGISTRY: OnceLock<prometheus::Registry> = OnceLock::new();

/// The method of a request as a metric label: the standard ones, anything else one value (a
/// caller choosing methods must not choose series).
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "_OTHER",
    }
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets for durations in milliseconds: sub-millisecond steps where this broker's requests
/// live, up to the 10 s of a PDP or database timeout.
const MILLISECOND_BUCKETS: [f64; 17] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0, 30000.0,
];

/// The same steps for durations in seconds (this implementation's own histograms use the base
/// unit Prometheus recommends; the reference's `atn_*` ones keep their milliseconds).
const SECOND_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

/// Buckets for counts per batch (audit writer batch sizes).
const COUNT_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

pub(crate) fn prometheus_reader() -> Result<opentelemetry_prometheus::PrometheusExporter, String> {
    let registry = REGISTRY.get_or_init(prometheus::Registry::new).clone();
    #[cfg(target_os = "linux")]
    {
        let process = prometheus::process_collector::ProcessCollector::for_self();
        let _ = registry.register(Box::new(process));
    }
    opentelemetry_prometheus::exporter()
        .with_registry(registry)
        .without_target_info()
        .scope_info_enabled(false)
        .build()
        .map_err(|e| format!("cannot set up the Prometheus exporter: {e}"))
}

/// The text exposition of every metric, or `None` when Prometheus is not enabled.
pub fn render() -> Option<String> {
    let registry = REGISTRY.get()?;
    let mut text = String::new();
    let encoder = prometheus::TextEncoder::new();
    encoder
        .encode_utf8(&registry.gather(), &mut text)
        .map_err(|e| tracing::warn!("cannot encode metrics: {e}"))
        .ok()?;
    Some(text)
}

/// Histogram buckets by unit: `ms` and `s` durations and `{batch}`-style counts.
pub(crate) fn views() -> impl Fn(&Instrument) -> Option<Stream> + Send + Sync + 'static {
    |instrument: &Instrument| {
        if instrument.kind() != InstrumentKind::Histogram {
            return None;
        }
        let boundaries = match instrument.unit() {
            "ms" => MILLISECOND_BUCKETS.to_vec(),
            "s" => SECOND_BUCKETS.to_vec(),
            "" | "1" | "{message}" | "{row}" => COUNT_BUCKETS.to_vec(),
            _ => return None,
        };
        Stream::builder()
            .with_aggregation(Aggregation::ExplicitBucketHistogram {
                boundaries,
                record_min_max: false,
            })
            .build()
            .ok()
    }
}
