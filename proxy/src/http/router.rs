//! Method + path → handler. Unknown paths are 404, known paths with another method 405.

use super::{ApiError, Reply, Request};
use crate::state::AppState;
use crate::{admin, egress, events, health, mcp, pdp_http};
use http::{Method, StatusCode};

pub async fn dispatch(state: &AppState, request: Request) -> Reply {
    let started = std::time::Instant::now();
    let method = request.method.clone();
    let path = request.path.clone();
    let cors = state.cors.as_ref();
    if let Some(preflight) = cors.and_then(|cors| cors.preflight(&request)) {
        return preflight;
    }
    let cors_headers = cors.map(|cors| cors.headers(request.header("origin")));
    let mut reply = route(state, request).await;
    if let Some(headers) = cors_headers {
        reply.add_headers(headers);
    }
    if let Reply::Whole(response) = &reply {
        tracing::debug!(%method, path, status = response.status.as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    }
    reply
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
