//! `GET /metrics`: the Prometheus text exposition when `PROMETHEUS_ENABLED=true`, otherwise
//! the reference's 404. Unauthenticated like the reference's: keep it off the public listener
//! (the nginx front in `nginx-compat/` answers it only to the addresses it allows).

use crate::state::AppState;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics() -> impl IntoResponse {
    match cullis_telemetry::metrics::render() {
        Some(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                cullis_telemetry::metrics::CONTENT_TYPE,
            )],
            text,
        ),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Prometheus exporter disabled\n".to_owned(),
        ),
    }
}
