//! The Python reference's own text forms, byte for byte: `json.dumps` of a dict (audit
//! details) and `datetime.isoformat()` (audit timestamps), and the ISO 8601 dates its query
//! parameters accept. Both feed the audit chain hash, so a row hashes the same here as in the
//! reference.

use super::canonical_json::{write_python_float, write_string};
use serde_json::Value;
use std::borrow::Cow;
use time::OffsetDateTime;

/// Python `json.dumps(dict)` with the default settings: members in insertion order, separators
/// `", "` and `": "`, everything outside printable ASCII escaped as `\uXXXX`, floats in `repr`
/// form.
pub fn python_json_object(members: &[(String, Value)]) -> String {
    let mut out = String::with_capacity(64);
    out.push('{');
    for (index, (key, value)) in members.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        write_string(key, &mut out);
        out.push_str(": ");
        write_python_value(value, &mut out);
    }
    out.push('}');
    out
}

fn write_python_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                out.push_str(&int.to_string());
            } else if let Some(int) = number.as_u64() {
                out.push_str(&int.to_string());
            } else if let Some(float) = number.as_f64() {
                write_python_float(float, out);
            }
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_python_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_python_value(item, out);
            }
            out.push('}');
        }
    }
}

// Timestamps.

/// Python `datetime.isoformat()` of a UTC-aware value: `YYYY-MM-DDTHH:MM:SS`, then `.ffffff`
/// only when the microseconds are not zero, then `+00:00`.
pub fn python_isoformat(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if at.microsecond() != 0 {
        out.push_str(&format!(".{:06}", at.microsecond()));
    }
    out.push_str("+00:00");
    out
}

/// The isoformat of a stored timestamp. Naive stored values count as UTC (§8.2); a value that
/// does not parse at all (only a hand edit could produce one) is used verbatim, so the hash
/// simply does not match.
pub fn stored_isoformat(stored: &str) -> Cow<'_, str> {
    match parse_iso_datetime(stored) {
        Some(at) => Cow::Owned(python_isoformat(at)),
        None => Cow::Borrowed(stored),
    }
}

/// Parses an ISO 8601 date or date-time the way the reference's query parameters accept them:
/// `YYYY-MM-DD`, or `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]]` with an optional `Z`/`±HH[:MM]`
/// offset. A value without an offset is UTC.
pub fn parse_iso_datetime(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if !text.is_ascii() || text.len() < 10 {
        return None;
    }
    let date = parse_date(&text[..10])?;
    if text.len() == 10 {
        return Some(date.midnight().assume_utc());
    }
    let separator = text.as_bytes()[10];
    if !matches!(separator, b'T' | b't' | b' ') {
        return None;
    }
    let rest = &text[11..];
    let (clock, offset) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, time::UtcOffset::UTC)
    } else if let Some(at) = rest.find(['+', '-']) {
        (&rest[..at], parse_offset(&rest[at..])?)
    } else {
        (rest, time::UtcOffset::UTC)
    };
    let clock = parse_clock(clock)?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_offset(offset)
            .to_offset(time::UtcOffset::UTC),
    )
}

fn digits(text: &str) -> Option<u32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn parse_date(text: &str) -> Option<time::Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&text[..4])? as i32;
    let month = time::Month::try_from(digits(&text[5..7])? as u8).ok()?;
    let day = digits(&text[8..10])? as u8;
    time::Date::from_calendar_date(year, month, day).ok()
}

fn parse_clock(text: &str) -> Option<time::Time> {
    let (main, fraction) = match text.split_once(['.', ',']) {
        Some((main, fraction)) => (main, Some(fraction)),
        None => (text, None),
    };
    let parts: Vec<&str> = main.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let hour = digits(parts[0])? as u8;
    let minute = digits(parts[1])? as u8;
    let second = match parts.get(2) {
        Some(second) => digits(second)? as u8,
        None if fraction.is_some() => return None,
        None => 0,
    };
    let nanos = match fraction {
        None => 0,
        Some(fraction) if (1..=9).contains(&fraction.len()) => {
            digits(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        Some(_) => return None,
    };
    time::Time::from_hms_nano(hour, minute, second, nanos).ok()
}

fn parse_offset(text: &str) -> Option<time::UtcOffset> {
    let sign: i8 = if text.starts_with('-') { -1 } else { 1 };
    let body = &text[1..];
    let (hours, minutes) = match body.len() {
        2 => (body, "00"),
        4 => (&body[..2], &body[2..]),
        5 if body.as_bytes()[2] == b':' => (&body[..2], &body[3..]),
        _ => return None,
    };
    let hours = digits(hours)? as i8;
    let minutes = digits(minutes)? as i8;
    time::UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn isoformat_is_pythons() {
        let at = parse_iso_datetime("2026-04-08T12:00:00.000000Z").unwrap();
        assert_eq!(python_isoformat(at), "2026-04-08T12:00:00+00:00");
        let at = parse_iso_datetime("2026-04-08T12:00:00.000001Z").unwrap();
        assert_eq!(python_isoformat(at), "2026-04-08T12:00:00.000001+00:00");
        // Naive values (SQLite via SQLAlchemy) are UTC; offsets are converted.
        assert_eq!(
            stored_isoformat("2026-04-08 12:00:00.5"),
            "2026-04-08T12:00:00.500000+00:00"
        );
        assert_eq!(
            stored_isoformat("2026-04-08T14:00:00+02:00"),
            "2026-04-08T12:00:00+00:00"
        );
        assert_eq!(stored_isoformat("garbage"), "garbage");
    }

    #[test]
    fn query_datetimes_parse_like_pydantic() {
        let utc = |s: &str| parse_iso_datetime(s).map(python_isoformat);
        assert_eq!(
            utc("2026-04-08").as_deref(),
            Some("2026-04-08T00:00:00+00:00")
        );
        assert_eq!(
            utc("2026-04-08T10:30").as_deref(),
            Some("2026-04-08T10:30:00+00:00")
        );
        assert_eq!(
            utc("2026-04-08T10:30:00-0130").as_deref(),
            Some("2026-04-08T12:00:00+00:00")
        );
        assert_eq!(
            utc("2026-04-08t10:30:00.1z").as_deref(),
            Some("2026-04-08T10:30:00.100000+00:00")
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-04-08T25:00",
            "2026-04-08X10:00",
            "2026-04-08T10:00:00+1",
            "2026-04-08T10:00.5",
            "２０２６-04-08",
        ] {
            assert_eq!(parse_iso_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn details_are_python_json_dumps() {
        let members = [
            ("zeta".to_owned(), json!("again")),
            ("alpha".to_owned(), json!(["a", 1, 2.5, null, true])),
            ("nested".to_owned(), json!({"b": {}, "a": []})),
        ];
        assert_eq!(
            python_json_object(&members),
            r#"{"zeta": "again", "alpha": ["a", 1, 2.5, null, true], "nested": {"a": [], "b": {}}}"#
        );
        assert_eq!(
            python_json_object(&[("k".into(), json!("\u{e9}\u{1F600}"))]),
            r#"{"k": "\u00e9\ud83d\ude00"}"#
        );
    }
}
