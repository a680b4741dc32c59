//! The global subscriber: log lines (text, or the JSON lines of `cullis_shared::logging` with
//! `trace_id` / `span_id` when a span is being exported) and, with OTel on, the layer that
//! turns `tracing` spans into OpenTelemetry spans.

use cullis_shared::logging::JsonLines;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::trace::Tracer;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The OpenTelemetry SDK reports its own troubles through `tracing`; exporter failures are
/// summarised by `export::Reported` instead, and nothing of the SDK's becomes a span event.
fn not_from_the_sdk(metadata: &tracing::Metadata<'_>) -> bool {
    !metadata.target().starts_with("opentelemetry")
}

pub(crate) fn install(format: LogFormat, default_filter: &str, tracer: Option<Tracer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let exported = tracer.is_some();
    let json = (format == LogFormat::Json).then(|| {
        let lines = if exported {
            JsonLines::with_trace_ids(current_trace_ids)
        } else {
            JsonLines::default()
        };
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .event_format(lines)
            .with_filter(filter_fn(not_from_the_sdk))
    });
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter_fn(not_from_the_sdk))
    });
    let spans = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(filter_fn(not_from_the_sdk))
    });
    // A second install (tests in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(text)
        .with(spans)
        .try_init();
}

/// The exported trace and span id of the current span, as lowercase hex.
fn current_trace_ids() -> Option<(String, String)> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid()
        .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
}
