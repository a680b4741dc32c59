//! JSON line logs on stderr: `timestamp, level, logger, message, request_id` (+ fields), the
//! same shape as the broker's (`cullis_shared::logging`).

use cullis_shared::logging::JsonLines;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (`RUST_LOG` filters; default `info`). pingora's `log` records
/// arrive through the `tracing-log` bridge.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .event_format(JsonLines)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
