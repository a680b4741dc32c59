//! One error type for every handler: [`ApiError`] decides status, `{"detail": …}` body and extra
//! headers in one place, so `?` works everywhere and no handler formats an error body itself.
//!
//! Request-shape problems (malformed JSON, wrong types, missing headers) are 422 with the
//! FastAPI/pydantic list body the reference SDK expects; oversized bodies are 413.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cullis_shared::wire::error::{ErrorBody, LocItem};
use serde_json::Value;

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// `WWW-Authenticate` for DPoP-protected endpoints.
pub const DPOP_CHALLENGE: &str = r#"DPoP realm="agent-trust", algs="ES256 PS256""#;

impl ApiError {
    /// An error with a `detail` string.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody::detail(detail),
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
            body: ErrorBody::validation(
                kind,
                loc.iter()
                    .map(|part| LocItem::Key((*part).to_owned()))
                    .collect(),
                msg,
                input,
            ),
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
        self.body.text()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
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
                // serde_path_to_error writes "<path>: <serde message>", the path omitted at the
                // top level; a missing field is named in the message: "missing field `org_id`".
                let message = std::error::Error::source(&error)
                    .map(|source| source.to_string())
                    .unwrap_or_else(|| error.body_text());
                let (path, inner) = split_serde_path(&message);
                let mut loc = vec![LocItem::Key("body".into())];
                loc.extend(path);
                let kind = if inner.starts_with("missing field") {
                    if let Some(field) = inner.split('`').nth(1) {
                        loc.push(LocItem::Key(field.to_owned()));
                    }
                    "missing"
                } else {
                    "type_error"
                };
                ApiError {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    body: ErrorBody::validation(kind, loc, message.clone(), Value::Null),
                    headers: Vec::new(),
                }
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

/// Splits serde_path_to_error's "<path>: <message>" into `loc` items (`a.b[0]` → `a`, `b`, 0)
/// and the message; no path when the message starts with serde's own text.
fn split_serde_path(message: &str) -> (Vec<LocItem>, &str) {
    const SERDE_STARTS: [&str; 8] = [
        "missing field",
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
        "unknown field",
        "duplicate field",
        "data did not match",
    ];
    let Some((path, inner)) = message.split_once(": ") else {
        return (Vec::new(), message);
    };
    if path.contains(' ') || SERDE_STARTS.iter().any(|start| message.starts_with(start)) {
        return (Vec::new(), message);
    }
    let mut items = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(open) = rest.find('[') {
            if open > 0 {
                items.push(LocItem::Key(rest[..open].to_owned()));
            }
            let close = rest[open..].find(']').map_or(rest.len(), |c| open + c);
            match rest[open + 1..close].parse::<u64>() {
                Ok(index) => items.push(LocItem::Index(index)),
                Err(_) => items.push(LocItem::Key(rest[open + 1..close].to_owned())),
            }
            rest = rest.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            items.push(LocItem::Key(rest.to_owned()));
        }
    }
    (items, inner)
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        let text = rejection.body_text();
        // "Failed to deserialize query string: missing field `org_id`" names the parameter.
        match text
            .split_once("missing field `")
            .and_then(|(_, rest)| rest.split('`').next())
        {
            Some(field) => {
                ApiError::validation("missing", &["query", field], text.clone(), Value::Null)
            }
            None => ApiError::validation("query_invalid", &["query"], text, Value::Null),
        }
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
        // SQLSTATE class 22 ("data exception": a NUL character in text, a number out of range)
        // is the client's input that PostgreSQL cannot store, not an outage.
        if error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code.starts_with("22"))
        {
            tracing::info!(%error, "input refused by the database");
            return ApiError::bad_request(
                "Invalid input: a value cannot be stored (for example, it contains a NUL character)",
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths_become_loc_items() {
        let (loc, inner) = split_serde_path("client_assertion: invalid type: integer `42`");
        assert_eq!(loc, vec![LocItem::Key("client_assertion".into())]);
        assert_eq!(inner, "invalid type: integer `42`");
        let (loc, _) = split_serde_path("capabilities[3]: invalid type: integer `1`");
        assert_eq!(
            loc,
            vec![LocItem::Key("capabilities".into()), LocItem::Index(3)]
        );
        let (loc, inner) = split_serde_path("missing field `org_id` at line 1 column 2");
        assert!(loc.is_empty());
        assert!(inner.starts_with("missing field"));
    }
}
