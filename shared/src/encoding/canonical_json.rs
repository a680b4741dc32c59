//! Canonical JSON, byte-identical to the reference's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`
//! (ref-auth-crypto §7.1). It is the input of every message signature, so one differing byte
//! means a signature that does not verify.
//!
//! Rules reproduced: object keys sorted by code point; no whitespace; every character outside
//! printable ASCII (including DEL) escaped as lowercase `\uXXXX`, non-BMP characters as UTF-16
//! surrogate pairs; `/` left alone; integers exact; floats in Python `repr` form (shortest
//! round-trip digits, always with `.` or an exponent, exponent written `e+16`/`e-05`).
//!
//! Limits, by design of the value type (`serde_json::Value` without `arbitrary_precision`):
//! * The integer/float distinction of the input text is kept (`1` vs `1.0`).
//! * Integers beyond the 64-bit range reach us as floats (serde_json's own fallback) and are
//!   written as Python would write that float, not as Python's big integer. No reference peer
//!   puts such numbers in a signed payload.
//! * serde_json reads the integer literal `-0` as the float `-0.0`; Python reads it as `0`.
//! * `NaN` and `Infinity`, which Python accepts, cannot be represented and are refused by the
//!   JSON parser before they get here.

use serde_json::Value;
use std::fmt::Write;

/// The canonical text of `value`.
pub fn to_string(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(value, &mut out);
    out
}

/// The canonical UTF-8 bytes of `value` (pure ASCII by construction).
pub fn to_vec(value: &Value) -> Vec<u8> {
    to_string(value).into_bytes()
}

/// Appends the canonical text of `value` to `out`.
pub fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's map keeps insertion order when any crate in the
            // build enables its `preserve_order` feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

fn write_number(number: &serde_json::Number, out: &mut String) {
    if let Some(int) = number.as_i64() {
        let _ = write!(out, "{int}");
    } else if let Some(int) = number.as_u64() {
        let _ = write!(out, "{int}");
    } else if let Some(float) = number.as_f64() {
        write_python_float(float, out);
    }
}

/// Python's `repr(float)`: shortest round-trip digits; fixed notation when
/// `1e-4 <= |x| < 1e16`, otherwise `d.ddde±XX`.
pub fn write_python_float(value: f64, out: &mut String) {
    if value.is_sign_negative() {
        out.push('-');
    }
    let magnitude = value.abs();
    if magnitude == 0.0 {
        out.push_str("0.0");
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "3.0000000000000004e-1".
    let scientific = format!("{magnitude:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("LowerExp output always has an exponent");
    let exponent: i32 = exponent.parse().expect("LowerExp exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Python's `decpt`: the value is 0.<digits> × 10^decpt.
    let decpt = exponent + 1;
    if (-3..=16).contains(&decpt) {
        write_fixed(&digits, decpt, out);
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.abs());
    }
}

fn write_fixed(digits: &str, decpt: i32, out: &mut String) {
    let count = digits.len() as i32;
    if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-decpt) as usize));
        out.push_str(digits);
    } else if decpt >= count {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (decpt - count) as usize));
        out.push_str(".0");
    } else {
        let split = decpt as usize;
        out.push_str(&digits[..split]);
        out.push('.');
        out.push_str(&digits[split..]);
    }
}

/// A JSON string literal with Python's `ensure_ascii=True` escaping.
pub fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        to_string(&serde_json::from_str(text).unwrap())
    }

    fn float(value: f64) -> String {
        let mut out = String::new();
        write_python_float(value, &mut out);
        out
    }

    #[test]
    fn keys_sort_by_code_point_not_utf16() {
        // U+FFFF sorts before U+1F600 by code point; UTF-16 order would reverse them.
        let value = json!({"\u{1F600}": 1, "\u{FFFF}": 2, "b": 3, "a": 4, "B": 5});
        assert_eq!(
            to_string(&value),
            r#"{"B":5,"a":4,"b":3,"\uffff":2,"\ud83d\ude00":1}"#
        );
    }

    #[test]
    fn strings_escape_like_ensure_ascii() {
        let value = json!("q\"b\\n\nr\rt\tb\u{8}f\u{c}c\u{1}d\u{7f}/é😀");
        assert_eq!(
            to_string(&value),
            r#""q\"b\\n\nr\rt\tb\bf\fc\u0001d\u007f/\u00e9\ud83d\ude00""#
        );
    }

    #[test]
    fn floats_follow_python_repr() {
        let cases = [
            (100.0, "100.0"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (3.25, "3.25"),
            (2.675, "2.675"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e22, "1e+22"),
            (1e300, "1e+300"),
            (1e-5, "1e-05"),
            (1.25e-5, "1.25e-05"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (5e-324, "5e-324"),
            (123456.789, "123456.789"),
            (-2.5, "-2.5"),
            (f64::MAX, "1.7976931348623157e+308"),
            (9007199254740993.0, "9007199254740992.0"),
        ];
        for (value, expected) in cases {
            assert_eq!(float(value), expected, "{value:?}");
        }
    }

    #[test]
    fn number_kind_of_the_input_text_is_kept() {
        assert_eq!(
            canon("[1, 1.0, 1.10, 1E2, -0.0, 18446744073709551615, -9223372036854775808]"),
            "[1,1.0,1.1,100.0,-0.0,18446744073709551615,-9223372036854775808]"
        );
    }

    #[test]
    fn nested_structures_have_no_whitespace() {
        assert_eq!(
            canon(r#"{ "z" : [ 1 , { "b" : null , "a" : true } ] , "a" : { } }"#),
            r#"{"a":{},"z":[1,{"a":true,"b":null}]}"#
        );
    }

    #[test]
    fn received_floats_keep_their_canonical_text() {
        // Found by fuzz/fuzz_targets/canonical_json.rs: serde_json's default float parser is
        // not correctly rounded, so Python's repr of a float could be read one ULP off and be
        // canonicalised to other digits than the sender signed (shared/Cargo.toml enables
        // `float_roundtrip`). Python reads each of these back to the same text.
        for text in [
            "1.2345678909234569e+29",
            "123456789092345678901234567890",
            "0.30000000000000004",
            "1.7976931348623157e+308",
            "9.999999999999999e+22",
            "2.2250738585072014e-308",
        ] {
            let once = canon(text);
            assert_eq!(canon(&once), once, "{text}");
        }
        assert_eq!(canon("1.2345678909234569e+29"), "1.2345678909234569e+29");
        assert_eq!(
            canon("123456789092345678901234567890"),
            "1.2345678909234569e+29"
        );
    }

    #[test]
    fn duplicate_keys_last_wins_like_python() {
        assert_eq!(canon(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
    }
}
