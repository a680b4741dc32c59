//! One error type for every handler: status, `{"detail": ...}` body (a string, or the 422
//! validation list of the reference) and extra headers, decided in one place.

use crate::uplink::UplinkError;
use cullis_shared::wire::error::{ErrorBody, LocItem};
use http::StatusCode;
use serde_json::{json, Value};

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub headers: Vec<(&'static str, String)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
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

    /// 500 for a broken invariant; the cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }

    /// 503 for a local dependency (database, secret store); the cause is logged, never sent.
    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(dependency = what, error = %cause, "dependency unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} unavailable — try again shortly"),
        )
    }

    /// 422 with one validation item, like FastAPI/pydantic.
    pub fn validation(
        kind: &str,
        loc: Vec<LocItem>,
        msg: impl Into<String>,
        input: Value,
    ) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody::validation(kind, loc, msg, input),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// The detail text when it is a plain string.
    pub fn detail_text(&self) -> Option<&str> {
        self.body.text()
    }

    /// The detail as one line: its text, or the validation list as JSON (MCP tool errors,
    /// console pages, logs).
    pub fn detail_line(&self) -> String {
        match &self.body {
            ErrorBody::Detail(detail) => detail.detail.clone(),
            ErrorBody::Validation(list) => serde_json::to_string(&list.detail).unwrap_or_default(),
        }
    }
}

impl From<UplinkError> for ApiError {
    /// Broker 4xx keep the broker's status and detail; broker 5xx, unreachable broker and
    /// crypto failures are 502 with a detail that says which.
    fn from(error: UplinkError) -> ApiError {
        match error {
            UplinkError::Broker { status, detail } if (400..500).contains(&status) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                ApiError::new(status, detail)
            }
            UplinkError::Broker { detail, .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("Broker error: {detail}"))
            }
            UplinkError::Unreachable(why) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("Broker unreachable: {why}"),
            ),
            UplinkError::Protocol(why) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("Broker error: unexpected answer: {why}"),
            ),
            UplinkError::Crypto(why) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("End-to-end crypto failed: {why}"),
            ),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        ApiError::unavailable("database", error)
    }
}

impl From<crate::custody::CustodyError> for ApiError {
    fn from(error: crate::custody::CustodyError) -> ApiError {
        ApiError::unavailable("secret store", error)
    }
}

/// Parses a JSON body into `T`, answering 422 lists like the broker on bad shapes.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let value: Value = serde_json::from_slice(body).map_err(|err| {
        ApiError::validation(
            "json_invalid",
            vec![
                LocItem::Key("body".into()),
                LocItem::Index(err.column() as u64),
            ],
            "JSON decode error",
            json!({}),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::validation(
            "model_attributes_type",
            vec![LocItem::Key("body".into())],
            "Input should be a valid dictionary or object to extract fields from",
            value,
        ));
    }
    serde_json::from_value(value.clone())
        .map_err(|err| serde_validation(&err.to_string(), echo(value)))
}

/// Largest body echoed back as a validation error's `input` (pydantic echoes it; a huge body
/// must not come back whole).
const MAX_ECHO_BYTES: usize = 1024;

fn echo(value: Value) -> Value {
    if serde_json::to_vec(&value).map_or(0, |v| v.len()) <= MAX_ECHO_BYTES {
        value
    } else {
        Value::Null
    }
}

/// A serde message such as "missing field `x`" or "invalid type: ... at line" as a 422 item.
fn serde_validation(message: &str, input: Value) -> ApiError {
    let mut loc = vec![LocItem::Key("body".into())];
    if let Some(field) = message
        .split_once("missing field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(field, _)| field)
    {
        loc.push(LocItem::Key(field.to_owned()));
        return ApiError::validation("missing", loc, "Field required", input);
    }
    ApiError::validation("value_error", loc, message.to_owned(), input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        session_id: String,
    }

    /// The `detail` member of an error's body.
    fn detail(err: &ApiError) -> serde_json::Value {
        serde_json::to_value(&err.body).unwrap()["detail"].clone()
    }

    #[test]
    fn json_problems_are_422_lists() {
        let err = parse_json::<Body>(b"{").unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(detail(&err)[0]["type"], "json_invalid");
        let err = parse_json::<Body>(b"{}").unwrap_err();
        assert_eq!(detail(&err)[0]["loc"], json!(["body", "session_id"]));
        assert_eq!(detail(&err)[0]["msg"], "Field required");
        let err = parse_json::<Body>(b"[1]").unwrap_err();
        assert_eq!(detail(&err)[0]["type"], "model_attributes_type");
        assert!(parse_json::<Body>(br#"{"session_id":"s","extra":1}"#).is_ok());
        let huge = format!(r#"{{"session_id":1,"pad":"{}"}}"#, "x".repeat(5000));
        let err = parse_json::<Body>(huge.as_bytes()).unwrap_err();
        assert_eq!(
            detail(&err)[0]["input"],
            Value::Null,
            "a huge body is not echoed"
        );
    }

    #[test]
    fn uplink_errors_map_to_statuses() {
        let e: ApiError = UplinkError::Broker {
            status: 403,
            detail: "Policy: denied".into(),
        }
        .into();
        assert_eq!(
            (e.status.as_u16(), e.detail_text()),
            (403, Some("Policy: denied"))
        );
        let e: ApiError = UplinkError::Broker {
            status: 503,
            detail: "db".into(),
        }
        .into();
        assert_eq!(
            (e.status.as_u16(), e.detail_text()),
            (502, Some("Broker error: db"))
        );
        let e: ApiError = UplinkError::Unreachable("refused".into()).into();
        assert_eq!(e.detail_text(), Some("Broker unreachable: refused"));
    }
}
