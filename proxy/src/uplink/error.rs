//! [`UplinkError`]: what can go wrong talking to the broker, shaped so the proxy can answer its
//! local agent precisely (the broker's own status and `detail`, or a clear 502).

use serde_json::Value;

/// Why an uplink call failed.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// The broker answered non-2xx: its status and its `detail` text.
    #[error("broker answered {status}: {detail}")]
    Broker { status: u16, detail: String },
    /// Connect/TLS/timeout: the broker could not be reached.
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    /// The broker answered something we could not understand.
    #[error("broker protocol error: {0}")]
    Protocol(String),
    /// Sealing/opening failed (e.g. undecryptable message).
    #[error("E2E crypto error: {0}")]
    Crypto(String),
}

impl UplinkError {
    /// Whether the broker certainly stored nothing: it refused the request (4xx other than
    /// 409 — a conflict may mean a duplicate of something stored), or sealing failed before
    /// anything was sent. Unreachable/timeouts and 5xx are not: the request may have landed.
    pub fn never_sent(&self) -> bool {
        match self {
            UplinkError::Broker { status, .. } => (400..500).contains(status) && *status != 409,
            UplinkError::Crypto(_) => true,
            UplinkError::Unreachable(_) | UplinkError::Protocol(_) => false,
        }
    }

    /// The broker's HTTP status, when it answered.
    pub fn broker_status(&self) -> Option<u16> {
        match self {
            UplinkError::Broker { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The `detail` of a broker error body as text: a string as is, anything else (FastAPI-style
/// validation lists) as compact JSON, and the raw body when it is not JSON at all.
pub(crate) fn detail_of(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => match map.get("detail") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => Value::Object(map).to_string(),
        },
        Ok(other) => other.to_string(),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                "(empty body)".to_owned()
            } else {
                text.chars().take(512).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_of_shapes() {
        assert_eq!(
            detail_of(br#"{"detail":"Agent not found"}"#),
            "Agent not found"
        );
        assert_eq!(
            detail_of(br#"{"detail":[{"loc":["body"]}]}"#),
            r#"[{"loc":["body"]}]"#
        );
        assert_eq!(detail_of(b"Bad Gateway"), "Bad Gateway");
        assert_eq!(detail_of(b""), "(empty body)");
    }
}
