//! The global subscriber: log lines (text, or the JSON lines of `cullis_shared::logging` with
//! `trace_id` / `span_id` when a span is being exported) and, with OTel on, the layer that
//! turns `tracing` spans into OpenTelemetry spans.

use cullis_shared::logging::JsonLines;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::trace::Tracer;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

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

/// What becomes part of an exported trace, whatever `RUST_LOG` says of log lines: every span at
/// `info` and above (the request, auth, policy, database spans), and warnings and errors as
/// span events (info lines would crowd out the span's event budget).
fn exported(metadata: &tracing::Metadata<'_>) -> bool {
    let level = *metadata.level();
    let wanted = match metadata.is_span() {
        true => level <= tracing::Level::INFO,
        false => level <= tracing::Level::WARN,
    };
    wanted && not_from_the_sdk(metadata)
}

pub(crate) fn install(format: LogFormat, default_filter: &str, tracer: Option<Tracer>) {
    // `RUST_LOG` filters log lines only (per layer): a quiet log must not empty the traces.
    let filter = || {
        EnvFilter::try_from_env("RUST_LOG")
            .unwrap_or_else(|_| EnvFilter::new(default_filter))
            .and(filter_fn(not_from_the_sdk))
    };
    let exported_spans = tracer.is_some();
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    match format {
        LogFormat::Json => {
            let lines = match exported_spans {
                true => JsonLines::with_trace_ids(current_trace_ids),
                false => JsonLines::default(),
            };
            let json = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .event_format(lines);
            layers.push(json.with_filter(filter()).boxed());
        }
        LogFormat::Text => {
            let text = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
            layers.push(text.with_filter(filter()).boxed());
        }
    }
    if let Some(tracer) = tracer {
        let spans = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false);
        layers.push(spans.with_filter(filter_fn(exported)).boxed());
    }
    // A second install (tests in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// The exported trace and span id of the current span, as lowercase hex.
fn current_trace_ids() -> Option<(String, String)> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid()
        .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
}
