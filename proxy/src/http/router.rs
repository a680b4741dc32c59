//! Method + path → handler. One table says which paths exist, which handler takes each, and
//! the route template it is reported as (span name, metric label); unknown paths are 404 and
//! known paths with another method 405.

use super::{assets, console, events, pdp_webhook, ApiError, Reply, Request};
use crate::state::AppState;
use crate::{admin, egress, health, mcp};
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

/// Which handler a route goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    Healthz,
    Readyz,
    Metrics,
    PdpPolicy,
    PdpHealth,
    Mcp,
    Events,
    /// `/v1/egress/...` (the egress module checks the method per route).
    Egress,
    Admin,
    Console,
    Static,
}

/// One segment of a path pattern.
#[derive(Debug, Clone, Copy)]
enum Seg {
    /// Exactly this text.
    Lit(&'static str),
    /// Any one segment (an id).
    Param,
    /// Any remaining segments, none included.
    Rest,
}

use Seg::{Lit, Param, Rest};

/// A route: its pattern, its template (what spans and metrics call it: ids replaced by their
/// parameter name), its handler.
struct Route {
    pattern: &'static [Seg],
    template: &'static str,
    endpoint: Endpoint,
}

const fn r(pattern: &'static [Seg], template: &'static str, endpoint: Endpoint) -> Route {
    Route {
        pattern,
        template,
        endpoint,
    }
}

const V1: Seg = Lit("v1");
const EGRESS: Seg = Lit("egress");

/// Every path the proxy answers, first match wins.
static ROUTES: &[Route] = &[
    r(&[Lit("health")], "/health", Endpoint::Health),
    r(&[Lit("healthz")], "/healthz", Endpoint::Healthz),
    r(&[Lit("readyz")], "/readyz", Endpoint::Readyz),
    r(&[Lit("metrics")], "/metrics", Endpoint::Metrics),
    r(
        &[Lit("pdp"), Lit("policy")],
        "/pdp/policy",
        Endpoint::PdpPolicy,
    ),
    r(
        &[Lit("pdp"), Lit("health")],
        "/pdp/health",
        Endpoint::PdpHealth,
    ),
    r(&[Lit("mcp")], "/mcp", Endpoint::Mcp),
    r(
        &[V1, EGRESS, Lit("events")],
        "/v1/egress/events",
        Endpoint::Events,
    ),
    r(
        &[V1, EGRESS, Lit("sessions")],
        "/v1/egress/sessions",
        Endpoint::Egress,
    ),
    r(
        &[V1, EGRESS, Lit("sessions"), Param, Lit("accept")],
        "/v1/egress/sessions/{session_id}/accept",
        Endpoint::Egress,
    ),
    r(
        &[V1, EGRESS, Lit("sessions"), Param, Lit("close")],
        "/v1/egress/sessions/{session_id}/close",
        Endpoint::Egress,
    ),
    r(
        &[V1, EGRESS, Lit("send")],
        "/v1/egress/send",
        Endpoint::Egress,
    ),
    r(
        &[V1, EGRESS, Lit("messages"), Param],
        "/v1/egress/messages/{session_id}",
        Endpoint::Egress,
    ),
    r(
        &[V1, EGRESS, Lit("messages"), Param, Param, Lit("ack")],
        "/v1/egress/messages/{session_id}/{msg_id}/ack",
        Endpoint::Egress,
    ),
    r(
        &[V1, EGRESS, Lit("discover")],
        "/v1/egress/discover",
        Endpoint::Egress,
    ),
    r(
        &[V1, EGRESS, Lit("tools"), Lit("invoke")],
        "/v1/egress/tools/invoke",
        Endpoint::Egress,
    ),
    r(&[V1, Lit("admin"), Rest], "/v1/admin/*", Endpoint::Admin),
    r(&[Lit("proxy"), Rest], "/proxy/*", Endpoint::Console),
    r(&[Lit("static"), Param], "/static/{name}", Endpoint::Static),
];

fn matches(pattern: &[Seg], segments: &[&str]) -> bool {
    match (pattern.split_first(), segments.split_first()) {
        (Some((Rest, _)), _) => true,
        (None, None) => true,
        (Some((Lit(text), pattern)), Some((segment, segments))) if text == segment => {
            matches(pattern, segments)
        }
        (Some((Param, pattern)), Some((_, segments))) => matches(pattern, segments),
        _ => false,
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

fn find(segments: &[&str]) -> Option<&'static Route> {
    ROUTES.iter().find(|route| matches(route.pattern, segments))
}

/// The route template of a path (unknown paths are one value, "unmatched").
fn operation(path: &str) -> &'static str {
    find(&segments(path)).map_or("unmatched", |route| route.template)
}

async fn route(state: &AppState, request: Request) -> Reply {
    let path = request.path.clone();
    let segments = segments(&path);
    let Some(found) = find(&segments) else {
        return ApiError::not_found("Not Found").into();
    };
    let m = &request.method;
    match found.endpoint {
        Endpoint::Health => only(m, &Method::GET, health::health),
        Endpoint::Healthz => only(m, &Method::GET, health::healthz),
        Endpoint::Metrics => only(m, &Method::GET, health::metrics),
        Endpoint::Readyz => match *m {
            Method::GET => health::readyz(state).await.into(),
            _ => not_allowed(),
        },
        Endpoint::PdpPolicy => match *m {
            Method::POST => pdp_webhook::policy(state, &request).await.into(),
            _ => not_allowed(),
        },
        Endpoint::PdpHealth => only(m, &Method::GET, pdp_webhook::health),
        Endpoint::Events => match *m {
            Method::GET => events::stream(state, &request).await,
            _ => not_allowed(),
        },
        Endpoint::Egress => egress::route(state, &request, &segments[2..]).await,
        Endpoint::Mcp => mcp::route(state, &request).await.into(),
        Endpoint::Admin => admin::route(state, &request, &segments[2..]).await.into(),
        Endpoint::Console => console::route(state, &request, &segments[1..]).await,
        Endpoint::Static => assets::serve(&request, segments[1]),
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
    use super::*;

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
        assert_eq!(operation("/proxy/agents/buyer"), "/proxy/*");
        assert_eq!(operation("/static/htmx.min.js"), "/static/{name}");
        assert_eq!(operation(&format!("/{}", "x".repeat(25_000))), "unmatched");
    }

    #[test]
    fn patterns_match_whole_paths_only() {
        let route = |path: &str| find(&segments(path)).map(|r| r.endpoint);
        assert_eq!(route("/health"), Some(Endpoint::Health));
        assert_eq!(route("/health/x"), None);
        assert_eq!(
            route("/v1/egress/sessions/s/accept"),
            Some(Endpoint::Egress)
        );
        assert_eq!(route("/v1/egress/sessions/s"), None);
        assert_eq!(route("/v1/egress/nope"), None);
        assert_eq!(route("/v1/admin"), Some(Endpoint::Admin));
        assert_eq!(route("/proxy"), Some(Endpoint::Console));
        assert_eq!(route("/static/a/b"), None);
    }
}
