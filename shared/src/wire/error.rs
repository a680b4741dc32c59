//! Error bodies (FastAPI shapes), shared by the broker and the proxy.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Body of every handled error (4xx, 429, 500 `Internal server error`, 502 `Broker error: …`):
/// `{"detail": "<string>"}`. Used by every endpoint of the broker and the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub detail: String,
}

/// Body of a 422 request-validation failure (pydantic v2 / FastAPI):
/// `{"detail": [{"type","loc","msg","input"[,"ctx"]}, …]}`. Any endpoint with a body, a
/// required header or a typed query parameter can answer with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationErrorBody {
    pub detail: Vec<ValidationErrorItem>,
}

/// One entry of [`ValidationErrorBody::detail`].
///
/// `input` is always emitted (FastAPI includes it; it is `null` e.g. for a missing header) and
/// defaults to `null` when absent on input. `ctx` is present only for errors that carry context
/// (e.g. `{"le": 300}`), so it is omitted when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationErrorItem {
    /// Pydantic error type, e.g. `missing`, `int_parsing`, `string_too_long`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Location, e.g. `["header","x-admin-secret"]`, `["body","org_id"]`, `["query","limit"]`.
    pub loc: Vec<LocItem>,
    pub msg: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Map<String, Value>>,
}

/// One segment of a validation-error `loc`: a member name or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocItem {
    Key(String),
    Index(u64),
}

/// What every error answer of the broker and the proxy carries: `{"detail": "<text>"}`, or the
/// 422 validation list. Both services build their error bodies here and nowhere else.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ErrorBody {
    Detail(ErrorDetail),
    Validation(ValidationErrorBody),
}

impl ErrorBody {
    /// `{"detail": text}`.
    pub fn detail(text: impl Into<String>) -> ErrorBody {
        ErrorBody::Detail(ErrorDetail {
            detail: text.into(),
        })
    }

    /// A 422 body with one item, as FastAPI/pydantic write it.
    pub fn validation(
        kind: &str,
        loc: Vec<LocItem>,
        msg: impl Into<String>,
        input: Value,
    ) -> ErrorBody {
        ErrorBody::Validation(ValidationErrorBody {
            detail: vec![ValidationErrorItem {
                kind: kind.to_owned(),
                loc,
                msg: msg.into(),
                input,
                ctx: None,
            }],
        })
    }

    /// The detail text, when the body is a plain detail.
    pub fn text(&self) -> Option<&str> {
        match self {
            ErrorBody::Detail(detail) => Some(&detail.detail),
            ErrorBody::Validation(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_serialise_as_the_reference_writes_them() {
        let detail = serde_json::to_string(&ErrorBody::detail("Agent not found")).unwrap();
        assert_eq!(detail, r#"{"detail":"Agent not found"}"#);
        let validation = ErrorBody::validation(
            "missing",
            vec![LocItem::Key("header".into()), LocItem::Key("dpop".into())],
            "Field required",
            Value::Null,
        );
        assert_eq!(validation.text(), None);
        assert_eq!(
            serde_json::to_string(&validation).unwrap(),
            r#"{"detail":[{"type":"missing","loc":["header","dpop"],"msg":"Field required","input":null}]}"#
        );
    }
    use crate::wire::test_util::*;

    #[test]
    fn error_detail_roundtrip_keeps_utf8_dash() {
        let e: ErrorDetail =
            roundtrip_exact(r#"{"detail":"Session is closed — polling not available"}"#);
        assert!(e.detail.contains('—'));
    }

    #[test]
    fn error_detail_ignores_unknown() {
        let e: ErrorDetail = serde_json::from_str(r#"{"detail":"x","extra":1}"#).unwrap();
        assert_eq!(e.detail, "x");
    }

    #[test]
    fn validation_missing_header_roundtrip() {
        let b: ValidationErrorBody = roundtrip_exact(
            r#"{"detail":[{"type":"missing","loc":["header","x-admin-secret"],"msg":"Field required","input":null}]}"#,
        );
        assert_eq!(b.detail[0].kind, "missing");
        assert_eq!(
            b.detail[0].loc,
            vec![
                LocItem::Key("header".into()),
                LocItem::Key("x-admin-secret".into())
            ]
        );
        assert_eq!(b.detail[0].ctx, None);
    }

    #[test]
    fn validation_with_ctx_and_index_loc() {
        let b: ValidationErrorBody = roundtrip_exact(
            r#"{"detail":[{"type":"less_than_equal","loc":["body","items",3],"msg":"Input should be less than or equal to 300","input":301,"ctx":{"le":300}}]}"#,
        );
        assert_eq!(b.detail[0].loc[2], LocItem::Index(3));
        assert_eq!(b.detail[0].input, Value::from(301));
        assert_eq!(b.detail[0].ctx.as_ref().unwrap()["le"], Value::from(300));
    }

    #[test]
    fn validation_input_defaults_to_null_and_is_emitted() {
        let b: ValidationErrorBody =
            serde_json::from_str(r#"{"detail":[{"type":"missing","loc":["body"],"msg":"m"}]}"#)
                .unwrap();
        let out = serde_json::to_string(&b).unwrap();
        assert_eq!(
            out,
            r#"{"detail":[{"type":"missing","loc":["body"],"msg":"m","input":null}]}"#
        );
    }
}
