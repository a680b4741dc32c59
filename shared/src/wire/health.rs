//! Health and readiness bodies of the broker (§1.1, §9.1) and the proxy (§1.4, §1.9).

use serde::{Deserialize, Serialize};

/// `GET /health` (broker and proxy): `{"status":"ok","version":"0.1.0"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
    pub version: String,
}

/// `GET /healthz` (broker and proxy): `{"status":"ok"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthzResponse {
    pub status: String,
}

/// `status` of a `/readyz` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
    /// Broker only: shutdown in progress (503, empty `checks`).
    Draining,
}

impl ReadyStatus {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::NotReady => "not_ready",
            Self::Draining => "draining",
        }
    }
}

/// Broker `GET /readyz` (200 or 503):
/// `{"status":"ready","checks":{"database":"ok","redis":"ok"|"not_configured","kms":"ok"}}`;
/// on failure the checks run so far plus the failed one (`"error: <message>"`); when draining
/// `{"status":"draining","checks":{}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerReadyResponse {
    pub status: ReadyStatus,
    pub checks: BrokerReadyChecks,
}

/// `checks` of [`BrokerReadyResponse`], in check order. Checks that did not run are absent
/// (not `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerReadyChecks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
}

/// Proxy `GET /readyz` (200 or 503):
/// `{"status":"ready","checks":{"database":"ok","jwks_cache":"ok"|"not_configured"}}`; failures
/// carry `"error: …"` / `"stale (age=..s, max=..s)"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyReadyResponse {
    pub status: ReadyStatus,
    pub checks: ProxyReadyChecks,
}

/// `checks` of [`ProxyReadyResponse`]; checks that did not run are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyReadyChecks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_cache: Option<String>,
}

/// Proxy `GET /pdp/health`: `{"status":"ok","mode":"built-in"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdpHealthResponse {
    pub status: String,
    pub mode: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    #[test]
    fn health_roundtrips() {
        let h: HealthResponse = roundtrip_exact(r#"{"status":"ok","version":"0.1.0"}"#);
        assert_eq!(h.version, "0.1.0");
        let z: HealthzResponse = roundtrip_exact(r#"{"status":"ok"}"#);
        assert_eq!(z.status, "ok");
        let p: PdpHealthResponse = roundtrip_exact(r#"{"status":"ok","mode":"built-in"}"#);
        assert_eq!(p.mode, "built-in");
    }

    #[test]
    fn broker_ready_ok_order() {
        let r: BrokerReadyResponse = roundtrip_exact(
            r#"{"status":"ready","checks":{"database":"ok","redis":"not_configured","kms":"ok"}}"#,
        );
        assert_eq!(r.status, ReadyStatus::Ready);
        assert_eq!(r.checks.redis.as_deref(), Some("not_configured"));
    }

    #[test]
    fn broker_ready_partial_and_draining() {
        let r: BrokerReadyResponse = roundtrip_exact(
            r#"{"status":"not_ready","checks":{"database":"ok","redis":"error: connection refused"}}"#,
        );
        assert_eq!(r.status, ReadyStatus::NotReady);
        assert_eq!(r.checks.kms, None);
        let d = BrokerReadyResponse {
            status: ReadyStatus::Draining,
            checks: BrokerReadyChecks::default(),
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"status":"draining","checks":{}}"#
        );
    }

    #[test]
    fn proxy_ready_roundtrip() {
        let r: ProxyReadyResponse = roundtrip_exact(
            r#"{"status":"ready","checks":{"database":"ok","jwks_cache":"not_configured"}}"#,
        );
        assert_eq!(r.checks.jwks_cache.as_deref(), Some("not_configured"));
    }

    #[test]
    fn ready_status_as_str_matches_serde() {
        for s in [
            ReadyStatus::Ready,
            ReadyStatus::NotReady,
            ReadyStatus::Draining,
        ] {
            assert_eq!(to_value(&s), serde_json::Value::from(s.as_str()));
        }
    }

    #[test]
    fn unknown_fields_ignored() {
        let h: HealthResponse =
            serde_json::from_str(r#"{"status":"ok","version":"1","uptime":3}"#).unwrap();
        assert_eq!(h.status, "ok");
    }
}
