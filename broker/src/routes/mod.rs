//! The HTTP API, one router per resource, composed in [`router`].

pub mod admin;
pub mod agents;
pub mod auth;
pub mod bindings;
pub mod health;
pub mod onboarding;
pub mod orgs;
pub mod policy;

use crate::state::AppState;
use axum::Router;

/// Every route of the broker.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(onboarding::router())
        .merge(admin::router())
        .merge(orgs::router())
        .merge(agents::router())
        .merge(bindings::router())
        .merge(policy::router())
}

/// Parses a stored enum-like status into its wire enum (stored values are written by us).
pub(crate) fn wire_enum<T: serde::de::DeserializeOwned>(
    stored: &str,
) -> Result<T, crate::error::ApiError> {
    serde_json::from_value(serde_json::Value::String(stored.to_owned())).map_err(|_| {
        crate::error::ApiError::internal(format!("unexpected stored status '{stored}'"))
    })
}
