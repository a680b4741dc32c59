//! One error type for every handler: [`ApiError`] decides status, `{"detail": …}` body and extra
//! headers in one place, so `?` works everywhere and no handler formats an error body itself.
//!
//! Request-shape problems (malformed JSON, wrong types, missing headers) are 422 with the
//! FastAPI/pydantic list body the reference SDK expects; oversized bodies are 413.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cullis_shared::wire::error::{ErrorDetail, LocItem, ValidationErrorBody, ValidationErrorItem};
use serde_json::Value;

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Body,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug)]
enum Body {
    Detail(String),
    Validation(Vec<ValidationErrorItem>),
}

/// `WWW-Authenticate` for DPoP-protected endpoints.
pub const DPOP_CHALLENGE: &str = r#"DPoP realm="agent-trust", algs="ES256 PS256""#;

impl ApiError {
    /// An error with a `detail` string.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: Body::Detail(detail.into()),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail)
    }

    /// 503 for a dependency that did not answer (database, Redis, KMS). The cause is logged,
    /// never sent: it may name internal hosts.
    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(dependency = what, error = %cause, "dependency unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} unavailable — try again shortly"),
        )
    }

    /// 500 for a broken invariant. The cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }

    /// 422 with one validation item.
    pub fn validation(kind: &str, loc: &[&str], msg: impl Into<String>, input: Value) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: Body::Validation(vec![ValidationErrorItem {
                kind: kind.to_owned(),
                loc: loc
                    .iter()
                    .map(|part| LocItem::Key((*part).to_owned()))
                    .collect(),
                msg: msg.into(),
                input,
                ctx: None,
            }]),
            headers: Vec::new(),
        }
    }

    /// 422 for a required header that is absent.
    pub fn missing_header(name: &str) -> ApiError {
        ApiError::validation("missing", &["header", name], "Field required", Value::Null)
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> ApiError {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// Adds the DPoP `WWW-Authenticate` challenge.
    pub fn with_dpop_challenge(self) -> ApiError {
        self.with_header(header::WWW_AUTHENTICATE, DPOP_CHALLENGE)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `detail` text, when the body is a plain detail.
    pub fn detail(&self) -> Option<&str> {
        match &self.body {
            Body::Detail(detail) => Some(detail),
            Body::Validation(_) => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Body::Detail(detail) => {
                (self.status, axum::Json(ErrorDetail { detail })).into_response()
            }
            Body::Validation(detail) => {
                (self.status, axum::Json(ValidationErrorBody { detail })).into_response()
            }
        };
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::JsonDataError(error) => {
                // serde names the field in its message: "missing field `org_id` at line 1 …".
                let message = std::error::Error::source(&error)
                    .map(|source| source.to_string())
                    .unwrap_or_else(|| error.body_text());
                let field = message.split('`').nth(1).unwrap_or("");
                let kind = if message.starts_with("missing field") {
                    "missing"
                } else {
                    "type_error"
                };
                let mut loc = vec!["body"];
                if !field.is_empty() {
                    loc.push(field);
                }
                ApiError::validation(kind, &loc, message.clone(), Value::Null)
            }
            JsonRejection::JsonSyntaxError(error) => ApiError::validation(
                "json_invalid",
                &["body"],
                format!(
                    "JSON decode error: {}",
                    std::error::Error::source(&error)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                ),
                Value::Null,
            ),
            JsonRejection::MissingJsonContentType(_) => ApiError::validation(
                "model_attributes_type",
                &["body"],
                "Input should be a JSON object with Content-Type: application/json",
                Value::Null,
            ),
            JsonRejection::BytesRejection(error)
                if error.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
            }
            other => {
                ApiError::validation("body_invalid", &["body"], other.body_text(), Value::Null)
            }
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::validation(
            "query_invalid",
            &["query"],
            rejection.body_text(),
            Value::Null,
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::validation(
            "path_invalid",
            &["path"],
            rejection.body_text(),
            Value::Null,
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> ApiError {
        ApiError::unavailable("database", error)
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s (422 list bodies, 413 for size).
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;
