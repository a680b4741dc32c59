//! Logging: human-readable text, or one JSON object per line (`LOG_FORMAT=json`) with the fields
//! log pipelines expect: `timestamp`, `level`, `logger`, `message`, `request_id` (from the
//! request span), plus the event's own fields. Secrets are never logged by the broker; this
//! module only shapes the output.

use crate::config::LogFormat;
use cullis_shared::logging::JsonLines;

/// Installs the global subscriber. `RUST_LOG` overrides the default filter.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| "info,tower_http=warn,sqlx=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.with_ansi(false).event_format(JsonLines).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
