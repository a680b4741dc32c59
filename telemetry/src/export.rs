//! The OTLP exporters (traces and metrics, gRPC or HTTP/protobuf), each wrapped so that a
//! collector that is down costs one warning a minute — with how many exports failed since the
//! last one — instead of one per batch. Queues are bounded (see [`crate::init`]), so spans that
//! cannot be sent are dropped, never accumulated.

use crate::config::{Protocol, TelemetryConfig};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one warning per signal in this interval.
const REPORT_EVERY: Duration = Duration::from_secs(60);

pub(crate) fn span_exporter(
    config: &TelemetryConfig,
) -> Result<Reported<opentelemetry_otlp::SpanExporter>, String> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match config.protocol {
        Protocol::Grpc => builder
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        Protocol::HttpProtobuf => builder
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", config.endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
    };
    exporter
        .map(|inner| Reported::new(inner, "traces", &config.endpoint))
        .map_err(|e| {
            format!(
                "cannot set up the OTLP trace exporter for {}: {e}",
                config.endpoint
            )
        })
}

pub(crate) fn metric_exporter(
    config: &TelemetryConfig,
) -> Result<Reported<opentelemetry_otlp::MetricExporter>, String> {
    let builder = opentelemetry_otlp::MetricExporter::builder();
    let exporter = match config.protocol {
        Protocol::Grpc => builder
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        Protocol::HttpProtobuf => builder
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/metrics", config.endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
    };
    exporter
        .map(|inner| Reported::new(inner, "metrics", &config.endpoint))
        .map_err(|e| {
            format!(
                "cannot set up the OTLP metric exporter for {}: {e}",
                config.endpoint
            )
        })
}

/// An exporter whose failures are reported at most once per [`REPORT_EVERY`].
#[derive(Debug)]
pub(crate) struct Reported<E> {
    inner: E,
    signal: &'static str,
    endpoint: String,
    failures: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

impl<E> Reported<E> {
    fn new(inner: E, signal: &'static str, endpoint: &str) -> Reported<E> {
        Reported {
            inner,
            signal,
            endpoint: endpoint.to_owned(),
            failures: AtomicU64::new(0),
            last_report: Mutex::new(None),
        }
    }

    fn observe(&self, result: &OTelSdkResult) {
        let Err(error) = result else { return };
        let failed = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_report.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < REPORT_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        self.failures.store(0, Ordering::Relaxed);
        tracing::warn!(
            target: "cullis::telemetry",
            signal = self.signal,
            endpoint = %self.endpoint,
            failed_exports = failed,
            "OTLP export failing ({error}); data is dropped while the collector is unreachable — check OTEL_EXPORTER_OTLP_ENDPOINT (next report in a minute at the earliest)"
        );
    }
}

impl<E: SpanExporter> SpanExporter for Reported<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.observe(&result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Reported<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.observe(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
