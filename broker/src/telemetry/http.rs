//! One server span and one duration sample per HTTP request. The span is named after the route
//! template (`POST /v1/broker/sessions/{session_id}/messages`), never the raw path, and takes
//! the caller's `traceparent` as its parent; it carries the `request_id` the logs show.

use super::metrics;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::KeyValue;
use std::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

/// The route of requests no route matched (404s): one label value, whatever the path was.
const UNMATCHED: &str = "unmatched";

/// The middleware (`Router::layer`, so the matched route is known).
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = cullis_telemetry::metrics::method_label(request.method());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|id| super::bounded(id).to_owned())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        request_id = %request_id,
        http.request.method = method,
        http.route = %route,
        http.response.status_code = Empty,
    );
    if cullis_telemetry::tracing_enabled() {
        span.record("otel.name", format!("{method} {route}"));
        cullis_telemetry::set_remote_parent(&span, request.headers());
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    // The access log line, at debug (`RUST_LOG=info,cullis_broker::telemetry::http=debug`), in
    // the request's span, so it carries the request id (and trace id).
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_us = started.elapsed().as_micros() as u64,
            "request"
        )
    });
    metrics().http_duration.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("route", route),
            KeyValue::new("method", method),
            KeyValue::new("status", i64::from(status)),
        ],
    );
    response
}
