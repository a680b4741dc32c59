//! `/health`, `/healthz` (liveness), `/readyz` (the store answers) and `/metrics`.

use crate::http::{ApiResult, Response};
use crate::state::AppState;
use http::StatusCode;
use serde_json::json;

pub fn health() -> Response {
    Response::ok(&json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

pub fn healthz() -> Response {
    Response::ok(&json!({"status": "ok"}))
}

/// `GET /metrics`: Prometheus text when `MCP_PROXY_PROMETHEUS_ENABLED=true`, else 404.
pub fn metrics() -> Response {
    match cullis_telemetry::metrics::render() {
        Some(text) => Response {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: text.into_bytes(),
            content_type: cullis_telemetry::metrics::CONTENT_TYPE,
        },
        None => Response {
            status: StatusCode::NOT_FOUND,
            headers: Vec::new(),
            body: b"Prometheus exporter disabled\n".to_vec(),
            content_type: "text/plain; charset=utf-8",
        },
    }
}

/// 200 `ready` when the database answers, else 503 `not_ready` with the failing check. The
/// details list agent certificates expiring within 14 days (a warning: still ready).
pub async fn readyz(state: &AppState) -> ApiResult<Response> {
    Ok(match state.ctx.store.ping().await {
        Ok(()) => {
            let expiring = crate::agents::expiring_certificates(&state.ctx)
                .await
                .unwrap_or_default();
            Response::ok(&json!({
                "status": "ready",
                "checks": {"database": "ok", "jwks_cache": "not_configured"},
                "details": {"expiring_certificates": expiring},
            }))
        }
        Err(err) => {
            tracing::error!("readiness: database check failed: {err}");
            Response::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "not_ready", "checks": {"database": "error: database unavailable"}}),
            )
        }
    })
}
