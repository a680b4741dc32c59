//! The HTTP API, one router per resource, composed in [`router`].

pub mod admin;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod bindings;
pub mod delivery;
pub mod health;
pub mod metrics;
pub mod onboarding;
pub mod orgs;
pub mod policy;
pub mod rfq;
pub mod sessions;

use crate::state::AppState;
use axum::Router;

/// Every route of the broker.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(auth::router())
        .merge(onboarding::router())
        .merge(admin::router())
        .merge(audit::router())
        .merge(orgs::router())
        .merge(agents::router())
        .merge(bindings::router())
        .merge(policy::router())
        .merge(sessions::router())
        .merge(delivery::router())
        .merge(rfq::router())
        .merge(crate::ws::router())
        .merge(crate::dashboard::router())
        // Unknown paths and methods answer with a `detail` too, as FastAPI does.
        .fallback(|| async { crate::error::ApiError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async {
            crate::error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed",
            )
        })
}

/// Parses a stored enum-like status into its wire enum (stored values are written by us).
pub(crate) fn wire_enum<T: serde::de::DeserializeOwned>(
    stored: &str,
) -> Result<T, crate::error::ApiError> {
    serde_json::from_value(serde_json::Value::String(stored.to_owned())).map_err(|_| {
        crate::error::ApiError::internal(format!("unexpected stored status '{stored}'"))
    })
}

/// `display_name` is at most 256 characters, as in the reference models (422 otherwise).
pub(crate) fn check_display_name(display_name: &str) -> Result<(), crate::error::ApiError> {
    if display_name.chars().count() > 256 {
        return Err(crate::error::ApiError::validation(
            "string_too_long",
            &["body", "display_name"],
            "String should have at most 256 characters",
            serde_json::Value::Null,
        ));
    }
    Ok(())
}
