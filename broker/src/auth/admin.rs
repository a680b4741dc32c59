//! The network admin: `x-admin-secret`, compared in constant time with `ADMIN_SECRET`. A value
//! with bytes outside visible ASCII is a wrong secret (403), not a missing one.

use super::{credential_header, secrets_equal};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// Proof that the caller holds the admin secret.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<AdminAuth, ApiError> {
        let presented = credential_header(&parts.headers, "x-admin-secret")
            .ok_or_else(|| ApiError::missing_header("x-admin-secret"))?;
        if !presented.garbled && secrets_equal(&presented.text, &state.config.admin_secret) {
            Ok(AdminAuth)
        } else {
            Err(ApiError::forbidden("Invalid admin secret"))
        }
    }
}
