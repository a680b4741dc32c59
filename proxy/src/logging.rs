//! JSON line logs on stderr: `timestamp, level, logger, message` (+ fields), as the reference.

use tracing_subscriber::fmt::format::{FmtSpan, JsonFields};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (`RUST_LOG` filters; default `info`). pingora's `log` records
/// arrive through the `tracing-log` bridge.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .fmt_fields(JsonFields::new())
        .with_span_events(FmtSpan::NONE)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
