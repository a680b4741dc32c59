//! Python `repr` of JSON values, for the few reference error texts that embed one
//! (`unsupported algorithm 'HS256'`).

use serde_json::Value;

/// `repr()` of the Python object that `json.loads` would have produced for `value`.
pub(crate) fn repr(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "None".to_owned(),
        Some(Value::Bool(true)) => "True".to_owned(),
        Some(Value::Bool(false)) => "False".to_owned(),
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(text)) => repr_str(text),
        Some(other) => other.to_string(),
    }
}

fn repr_str(text: &str) -> String {
    // Python picks single quotes unless the text has a single quote and no double quote.
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reprs_match_python() {
        assert_eq!(repr(Some(&json!("HS256"))), "'HS256'");
        assert_eq!(repr(None), "None");
        assert_eq!(repr(Some(&json!(null))), "None");
        assert_eq!(repr(Some(&json!(5))), "5");
        assert_eq!(repr(Some(&json!(true))), "True");
        assert_eq!(repr(Some(&json!("it's"))), "\"it's\"");
        assert_eq!(repr(Some(&json!("a'b\"c"))), "'a\\'b\"c'");
    }
}
