//! What a console request can end in besides a page: a redirect to the login form, or an
//! HTML error page with the status the JSON API would have given.

use super::render;
use crate::error::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cullis_console::html;

#[derive(Debug)]
pub enum ConsoleError {
    /// No valid session: 303 to the login form.
    LoginRequired,
    /// 403: not allowed (wrong role, other org, bad CSRF token).
    Forbidden(String),
    /// 400: the form did not parse.
    BadRequest(String),
    /// 404.
    NotFound(String),
    /// A domain function refused (4xx) or failed (5xx): its status and detail.
    Api(ApiError),
    /// 500, logged; the page says only that something failed.
    Internal(String),
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        ConsoleError::Api(error)
    }
}

impl From<sqlx::Error> for ConsoleError {
    fn from(error: sqlx::Error) -> Self {
        ConsoleError::Api(ApiError::from(error))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ConsoleError::LoginRequired => return Redirect::to("/dashboard/login").into_response(),
            ConsoleError::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            ConsoleError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            ConsoleError::NotFound(message) => (StatusCode::NOT_FOUND, message),
            ConsoleError::Api(error) => (
                error.status(),
                error
                    .detail()
                    .unwrap_or("The request was not valid.")
                    .to_owned(),
            ),
            ConsoleError::Internal(cause) => {
                tracing::error!(%cause, "console request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something failed on the server; the log has the details.".to_owned(),
                )
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        render::status_page(
            status,
            title,
            html! {
                p.flash.error role="alert" id="error" { (message) }
                p { a href="/dashboard" { "Back to the dashboard" } }
            },
        )
    }
}
