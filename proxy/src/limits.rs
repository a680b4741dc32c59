//! Bounds on what local agents and the broker's webhook may send: checked before any broker
//! call or store write, so an over-long id is a 422 naming the limit — never a broker round
//! trip, an unbounded audit row, or an error that echoes the input back.
//!
//! The limits follow the broker's own: agent ids `<org>::<name>` of at most 256 characters
//! (each half at most 128), at most 50 capabilities per agent. Session ids are the broker's
//! UUIDs; 128 leaves room without letting a 25,000-character id through.

use crate::http::{ApiError, ApiResult};
use cullis_shared::wire::error::{ErrorBody, LocItem, ValidationErrorBody, ValidationErrorItem};
use http::StatusCode;
use serde_json::{json, Value};

pub const MAX_AGENT_ID: usize = 256;
pub const MAX_ORG_ID: usize = 128;
pub const MAX_SESSION_ID: usize = 128;
pub const MAX_CAPABILITY: usize = 128;
pub const MAX_CAPABILITIES: usize = 50;
/// Free-text discovery query.
pub const MAX_QUERY: usize = 256;
/// A discovery `cursor` (the broker's are under 200 characters).
pub const MAX_CURSOR: usize = 512;
pub const MAX_TOOL_NAME: usize = 128;
/// A session-status filter (`pending`, `active`, …).
pub const MAX_STATUS: usize = 32;
/// Any text field written to the audit log (ids, tool names) is clipped to this many
/// characters there, whatever checks ran before (the `detail` keeps its 500).
pub const MAX_AUDIT_FIELD: usize = 256;

/// `value` at `loc` has at most `max` characters (422 `string_too_long` otherwise; the input
/// is not echoed, its length is).
pub fn text(loc: &[&str], value: &str, max: usize) -> ApiResult<()> {
    let length = value.chars().count();
    if length <= max {
        return Ok(());
    }
    Err(invalid(
        "string_too_long",
        loc,
        format!("String should have at most {max} characters (got {length})"),
        json!({"max_length": max}),
    ))
}

/// A list of capabilities: at most [`MAX_CAPABILITIES`] of at most [`MAX_CAPABILITY`] each.
pub fn capabilities(loc: &[&str], values: &[String]) -> ApiResult<()> {
    if values.len() > MAX_CAPABILITIES {
        return Err(invalid(
            "too_long",
            loc,
            format!(
                "List should have at most {MAX_CAPABILITIES} items (got {})",
                values.len()
            ),
            json!({"max_length": MAX_CAPABILITIES}),
        ));
    }
    values
        .iter()
        .try_for_each(|value| text(loc, value, MAX_CAPABILITY))
}

/// A registrable agent id (`<org>::<name>`, the broker's grammar and length).
pub fn agent_id(loc: &[&str], value: &str) -> ApiResult<()> {
    text(loc, value, MAX_AGENT_ID)?;
    cullis_shared::pki::spiffe::validate_agent_id(value)
        .map(|_| ())
        .map_err(|_| {
            pattern(
                loc,
                "^[a-z0-9][a-z0-9._-]{0,127}::[a-z0-9][a-z0-9._-]{0,127}$",
            )
        })
}

/// A registrable org id (the broker's grammar and length).
pub fn org_id(loc: &[&str], value: &str) -> ApiResult<()> {
    text(loc, value, MAX_ORG_ID)?;
    cullis_shared::pki::spiffe::validate_org_id(value)
        .map_err(|_| pattern(loc, "^[a-z0-9][a-z0-9._-]{0,127}$"))
}

/// `value` clipped to `max` characters, for text that is echoed in an error or a log line.
pub fn clip(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

fn pattern(loc: &[&str], regex: &str) -> ApiError {
    invalid(
        "string_pattern_mismatch",
        loc,
        format!("String should match pattern '{regex}'"),
        json!({"pattern": regex}),
    )
}

fn invalid(kind: &str, loc: &[&str], msg: String, ctx: Value) -> ApiError {
    let item = ValidationErrorItem {
        kind: kind.to_owned(),
        loc: loc.iter().map(|l| LocItem::Key((*l).to_owned())).collect(),
        msg,
        input: Value::Null,
        ctx: ctx.as_object().cloned(),
    };
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: ErrorBody::Validation(ValidationErrorBody { detail: vec![item] }),
        headers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_long_names_the_limit_without_the_input() {
        let err = text(&["body", "session_id"], &"x".repeat(25_000), MAX_SESSION_ID).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        let body = serde_json::to_value(&err.body).unwrap();
        let item = &body["detail"][0];
        assert_eq!(item["loc"], json!(["body", "session_id"]));
        assert_eq!(
            item["msg"],
            "String should have at most 128 characters (got 25000)"
        );
        assert_eq!(item["input"], Value::Null);
        assert!(err.detail_line().len() < 300);
        assert!(text(&["q"], "Zürich", 6).is_ok());
    }

    #[test]
    fn ids_follow_the_broker_grammar() {
        assert!(agent_id(&["a"], "alpha::buyer").is_ok());
        assert!(agent_id(&["a"], "alpha").is_err());
        assert!(agent_id(&["a"], "Alpha::buyer").is_err());
        assert!(agent_id(&["a"], &format!("alpha::{}", "b".repeat(300))).is_err());
        assert!(org_id(&["o"], "beta").is_ok());
        assert!(org_id(&["o"], "be ta").is_err());
        let many: Vec<String> = (0..51).map(|i| format!("c{i}")).collect();
        assert!(capabilities(&["c"], &many).is_err());
        assert!(capabilities(&["c"], &many[..50]).is_ok());
    }

    #[test]
    fn clip_keeps_whole_characters() {
        assert_eq!(clip("ab€cd", 3), "ab€…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
