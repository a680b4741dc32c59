//! W3C Trace Context across processes: `traceparent` / `tracestate` read from incoming requests
//! and written on outgoing ones, so agent → proxy → broker → PDP webhook → other proxy is one
//! trace. Nothing is read or written while tracing is off.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Set once when the OTLP pipeline starts.
static TRACING_ON: AtomicBool = AtomicBool::new(false);

pub(crate) fn enable() {
    TRACING_ON.store(true, Ordering::Release);
}

/// Whether spans are exported (and so worth propagating).
pub fn tracing_enabled() -> bool {
    TRACING_ON.load(Ordering::Relaxed)
}

/// The longest `tracestate` carried on: the W3C limit is 32 members of ≤ 256 bytes; an
/// untrusted caller's longer header is dropped rather than stored on every span.
const MAX_TRACESTATE: usize = 512;

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key)?.to_str().ok()?;
        (key != "tracestate" || value.len() <= MAX_TRACESTATE).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes the caller's trace (if its headers carry a valid `traceparent`) the parent of `span`.
/// A missing or malformed header leaves `span` the root of a new trace.
pub fn set_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if !tracing_enabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

struct Pairs<'a>(&'a mut Vec<(&'static str, String)>);

impl Injector for Pairs<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((name, value));
    }
}

/// The `traceparent` (and `tracestate`) headers that make the receiver's spans children of the
/// current span; empty while tracing is off or outside any sampled span.
pub fn outgoing_headers() -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if tracing_enabled() {
        let context = tracing::Span::current().context();
        TraceContextPropagator::new().inject_context(&context, &mut Pairs(&mut headers));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_tracestate_is_not_read() {
        let mut map = http::HeaderMap::new();
        map.insert("tracestate", "a=".repeat(400).parse().unwrap());
        map.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let headers = Headers(&map);
        assert!(headers.get("tracestate").is_none());
        assert!(headers.get("traceparent").is_some());
    }

    #[test]
    fn nothing_is_propagated_while_tracing_is_off() {
        assert!(outgoing_headers().is_empty());
    }
}
