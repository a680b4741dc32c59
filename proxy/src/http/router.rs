//! Method + path → handler. Unknown paths are 404, known paths with another method 405.

use super::{ApiError, Reply, Request};
use crate::state::AppState;
use crate::{admin, egress, events, health, mcp, pdp_http};
use http::{Method, StatusCode};
use tracing::field::Empty;
use tracing::Instrument;

/// Routes one request inside its server span (named after the route template, child of the
/// caller's `traceparent`), and records its duration by operation and status.
pub async fn dispatch(state: &AppState, request: Request) -> Reply {
    let started = std::time::Instant::now();
    let operation = operation(&request.path);
    let method = cullis_telemetry::metrics::method_label(&request.method);
    let span = tracing::info_span!(
        "request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = operation,
        http.response.status_code = Empty,
    );
    if cullis_telemetry::tracing_enabled() {
        span.record("otel.name", format!("{method} {operation}"));
        cullis_telemetry::set_remote_parent(&span, &request.headers);
    }
    // Boxed: the handlers' futures nest deeply, and one allocation per request keeps the
    // compiler's layout computation of the listener's future within its depth limit.
    let reply = Box::pin(answer(state, request))
        .instrument(span.clone())
        .await;
    let status = match &reply {
        Reply::Whole(response) => response.status.as_u16(),
        Reply::Stream(_) => 200,
    };
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    let elapsed = started.elapsed();
    crate::telemetry::metrics().request(operation, status, elapsed.as_secs_f64());
    tracing::debug!(
        method,
        operation,
        status,
        elapsed_us = elapsed.as_micros() as u64,
        "request"
    );
    reply
}

async fn answer(state: &AppState, request: Request) -> Reply {
    let cors = state.cors.as_ref();
    if let Some(preflight) = cors.and_then(|cors| cors.preflight(&request)) {
        return preflight;
    }
    let cors_headers = cors.map(|cors| cors.headers(request.header("origin")));
    let mut reply = route(state, request).await;
    if let Some(headers) = cors_headers {
        reply.add_headers(headers);
    }
    reply
}

/// The route template of a path: what spans are named after and metrics are labelled with
/// (ids replaced by their parameter name, unknown paths one value).
fn operation(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["health"] => "/health",
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        ["pdp", "policy"] => "/pdp/policy",
        ["pdp", "health"] => "/pdp/health",
        ["mcp"] => "/mcp",
        ["v1", "egress", "events"] => "/v1/egress/events",
        ["v1", "egress", "sessions"] => "/v1/egress/sessions",
        ["v1", "egress", "sessions", _, "accept"] => "/v1/egress/sessions/{session_id}/accept",
        ["v1", "egress", "sessions", _, "close"] => "/v1/egress/sessions/{session_id}/close",
        ["v1", "egress", "send"] => "/v1/egress/send",
        ["v1", "egress", "messages", _] => "/v1/egress/messages/{session_id}",
        ["v1", "egress", "messages", _, _, "ack"] => {
            "/v1/egress/messages/{session_id}/{msg_id}/ack"
        }
        ["v1", "egress", "discover"] => "/v1/egress/discover",
        ["v1", "egress", "tools", "invoke"] => "/v1/egress/tools/invoke",
        ["v1", "admin", ..] => "/v1/admin/*",
        _ => "unmatched",
    }
}

async fn route(state: &AppState, request: Request) -> Reply {
    let segments: Vec<String> = request
        .path
        .trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = &request.method;
    match segments.as_slice() {
        ["health"] => only(m, &Method::GET, health::health),
        ["healthz"] => only(m, &Method::GET, health::healthz),
        ["metrics"] => only(m, &Method::GET, health::metrics),
        ["readyz"] => match *m {
            Method::GET => health::readyz(state).await.into(),
            _ => not_allowed(),
        },
        ["pdp", "policy"] => match *m {
            Method::POST => pdp_http::policy(state, &request).await.into(),
            _ => not_allowed(),
        },
        ["pdp", "health"] => only(m, &Method::GET, pdp_http::health),
        ["v1", "egress", "events"] => match *m {
            Method::GET => events::stream(state, &request).await,
            _ => not_allowed(),
        },
        ["v1", "egress", ..] => egress::route(state, &request, &segments[2..]).await,
        ["mcp"] => mcp::route(state, &request).await.into(),
        ["v1", "admin", ..] => admin::route(state, &request, &segments[2..]).await.into(),
        _ => ApiError::not_found("Not Found").into(),
    }
}

fn only(method: &Method, allowed: &Method, handler: impl FnOnce() -> super::Response) -> Reply {
    if method == allowed {
        handler().into()
    } else {
        not_allowed()
    }
}

/// 405 as FastAPI answers it.
pub fn not_allowed() -> Reply {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into()
}

#[cfg(test)]
mod tests {
    use super::operation;

    #[test]
    fn ids_never_reach_the_operation_label() {
        let sid = "3f1c2d4e-0000-4000-8000-000000000000";
        assert_eq!(
            operation(&format!("/v1/egress/sessions/{sid}/accept")),
            "/v1/egress/sessions/{session_id}/accept"
        );
        assert_eq!(
            operation(&format!("/v1/egress/messages/{sid}")),
            "/v1/egress/messages/{session_id}"
        );
        assert_eq!(
            operation("/v1/admin/agents/buyer/rotate-key"),
            "/v1/admin/*"
        );
        assert_eq!(operation(&format!("/{}", "x".repeat(25_000))), "unmatched");
    }
}
