//! Liveness, readiness and the JWKS.

use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use cullis_shared::wire::auth::Jwks;
use cullis_shared::wire::health::{
    BrokerReadyChecks, BrokerReadyResponse, HealthResponse, HealthzResponse, ReadyStatus,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/jwks.json", get(jwks))
}

async fn health(State(state): State<AppState>) -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        version: state.config.app_version.clone(),
    })
}

async fn healthz() -> Json<HealthzResponse> {
    Json(HealthzResponse {
        status: "ok".into(),
    })
}

/// Database, then Redis (when configured), then KMS; stops at the first failure.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<BrokerReadyResponse>) {
    let mut checks = BrokerReadyChecks::default();
    if state.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(BrokerReadyResponse {
                status: ReadyStatus::Draining,
                checks,
            }),
        );
    }
    let not_ready = |checks| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(BrokerReadyResponse {
                status: ReadyStatus::NotReady,
                checks,
            }),
        )
    };
    if let Err(error) = state.db.ping().await {
        tracing::warn!(%error, "readiness: database");
        checks.database = Some("error: database unreachable".into());
        return not_ready(checks);
    }
    checks.database = Some("ok".into());
    match &state.redis {
        Some(redis) => {
            let mut conn = redis.clone();
            let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
            if let Err(error) = pong {
                tracing::warn!(%error, "readiness: redis");
                checks.redis = Some("error: redis unreachable".into());
                return not_ready(checks);
            }
            checks.redis = Some("ok".into());
        }
        None => checks.redis = Some("not_configured".into()),
    }
    if let Err(error) = state.kms.check().await {
        tracing::warn!(%error, "readiness: kms");
        checks.kms = Some("error: key store unreachable".into());
        return not_ready(checks);
    }
    checks.kms = Some("ok".into());
    (
        StatusCode::OK,
        Json(BrokerReadyResponse {
            status: ReadyStatus::Ready,
            checks,
        }),
    )
}

async fn jwks(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok((
        // A minute, not the reference's hour: after `keys rotate` a new key must reach relying
        // parties that cache this document before it has signed for long.
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(Jwks {
            keys: state.keys.jwks(crate::db::unix_now()),
        }),
    ))
}
