//! `cullis-telemetry`: what the broker and the proxy tell their operators — OpenTelemetry
//! traces over OTLP, metrics as Prometheus text at `/metrics` and over OTLP, and JSON log lines
//! that carry the `trace_id` and `span_id` of the span they were written in.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | `OTEL_*` and `PROMETHEUS_ENABLED` settings |
//! | [`sampler`] | which traces are kept (a caller's sampled flag is never trusted alone) |
//! | [`propagation`] | W3C `traceparent` in and out |
//! | [`metrics`] | the Prometheus registry and its text exposition |
//! | `export` | OTLP exporters whose failures are reported once a minute |
//! | `batch` | finished spans buffered for the exporter without a wake-up per span |
//! | `logs` | the subscriber: log lines plus the span pipeline |
//!
//! Off (the default) it installs only the log subscriber: no span pipeline, no-op instruments,
//! no thread, nothing sent anywhere. On, exports run on one background thread with its own
//! small runtime, so request threads only hand finished spans to a bounded queue.

mod batch;
pub mod config;
mod export;
mod logs;
pub mod metrics;
pub mod propagation;
pub mod sampler;

pub use config::{Protocol, TelemetryConfig, TelemetryConfigError};
pub use logs::LogFormat;
pub use propagation::{outgoing_headers, set_remote_parent, tracing_enabled};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanLimits};
use opentelemetry_sdk::Resource;
use std::time::Duration;

/// The instrumentation scope of every span and instrument (the reference's name, so its
/// dashboards and queries keep matching).
pub const SCOPE: &str = "agent_trust";

/// The running telemetry of a process. Dropping it flushes what is queued (best effort).
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Installs the log subscriber and, as configured, the span pipeline and metric readers.
    /// Call once, before the first request; a second call (tests) keeps the first subscriber.
    pub fn init(
        config: &TelemetryConfig,
        log_format: LogFormat,
        default_filter: &str,
    ) -> Result<Telemetry, String> {
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let runtime = config.otel_enabled.then(background_runtime).transpose()?;
        let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
        let tracer_provider = match config.otel_enabled {
            true => Some(tracer_provider(config, resource.clone())?),
            false => None,
        };
        let meter_provider = match config.metrics_enabled() {
            true => Some(meter_provider(config, resource)?),
            false => None,
        };
        let tracer = tracer_provider.as_ref().map(|p| p.tracer(SCOPE));
        logs::install(log_format, default_filter, tracer);
        if tracer_provider.is_some() {
            propagation::enable();
        }
        if let Some(provider) = &meter_provider {
            opentelemetry::global::set_meter_provider(provider.clone());
        }
        Ok(Telemetry {
            tracer_provider,
            meter_provider,
        })
    }

    /// Sends what is queued and stops the exporters (at process exit).
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            let _ = provider.shutdown_with_timeout(Duration::from_secs(3));
        }
        if let Some(provider) = self.meter_provider.take() {
            let _ = provider.shutdown_with_timeout(Duration::from_secs(3));
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One thread with a current-thread runtime for the exporters: batches leave from here, never
/// from a request's thread, and it works the same under tokio (broker) and pingora (proxy).
fn background_runtime() -> Result<tokio::runtime::Handle, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the telemetry runtime: {e}"))?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("cullis-telemetry".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|e| format!("cannot start the telemetry thread: {e}"))?;
    Ok(handle)
}

fn tracer_provider(
    config: &TelemetryConfig,
    resource: Resource,
) -> Result<SdkTracerProvider, String> {
    let exporter = export::span_exporter(config)?;
    let processor = batch::BufferedSpans::start(exporter, &resource);
    // Attribute values come from bounded sources (route templates, ids checked against their
    // grammar); the count limits are the second line of defence.
    let limits = SpanLimits {
        max_attributes_per_span: 32,
        max_events_per_span: 16,
        max_links_per_span: 4,
        max_attributes_per_event: 16,
        max_attributes_per_link: 4,
    };
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler::LocalRatioSampler::new(config.sample_ratio))
        .with_span_limits(limits)
        .with_resource(resource)
        .build())
}

fn meter_provider(
    config: &TelemetryConfig,
    resource: Resource,
) -> Result<SdkMeterProvider, String> {
    let mut builder = SdkMeterProvider::builder().with_resource(resource);
    if config.prometheus_enabled {
        builder = builder.with_reader(metrics::prometheus_reader()?);
    }
    if config.otel_enabled {
        use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
        let exporter = export::metric_exporter(config)?;
        let reader = PeriodicReader::builder(exporter, opentelemetry_sdk::runtime::Tokio)
            .with_interval(config.metrics_interval)
            .build();
        builder = builder.with_reader(reader);
    }
    Ok(builder.with_view(metrics::views()).build())
}
