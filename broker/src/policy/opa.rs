//! `POLICY_BACKEND=opa`: one call per decision to a remote Open Policy Agent,
//! `POST {OPA_URL}/v1/data/atn/session/allow` with `{"input": …}` (reference §5.4).

use super::ssrf::{check_url, AddressPolicy, GuardedResolver};
use super::webhook::read_capped;
use super::{error_chain, interpret_result, seconds, Backend, Decision, SessionPolicyInput};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Largest OPA answer read (OPA answers are small; anything bigger is not ours).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Who a denial is attributed to (the reference's decision org id for OPA).
pub const DECIDER: &str = "opa";

/// A remote OPA.
#[derive(Debug, Clone)]
pub struct OpaClient {
    http: reqwest::Client,
    /// `OPA_URL` as configured (checked on every call).
    base: String,
    endpoint: String,
    timeout: Duration,
}

impl OpaClient {
    /// Checks the form of `OPA_URL` (http/https with a host); the addresses it resolves to
    /// are checked on every call.
    pub fn new(opa_url: &str, timeout: Duration) -> Result<OpaClient, String> {
        let parsed = reqwest::Url::parse(opa_url)
            .map_err(|e| format!("OPA_URL '{opa_url}' is not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "OPA_URL must use http or https scheme, got: '{}'",
                parsed.scheme()
            ));
        }
        if parsed.host().is_none() {
            return Err(format!("OPA_URL '{opa_url}' has no hostname"));
        }
        if matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) {
            tracing::warn!(
                "OPA_URL points to loopback ({opa_url}): fine for a sidecar, wrong for a shared OPA"
            );
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(
                AddressPolicy::OperatorService,
            )))
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the OPA HTTP client: {e}"))?;
        let base = opa_url.trim_end_matches('/').to_owned();
        Ok(OpaClient {
            http,
            endpoint: format!("{base}/v1/data/atn/session/allow"),
            base,
            timeout,
        })
    }

    /// The URL decisions are POSTed to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Asks OPA; every failure is a denial attributed to `opa`.
    pub async fn evaluate(&self, input: &SessionPolicyInput) -> Decision {
        let body = json!({ "input": super::policy_input(input) });
        let span = tracing::info_span!(
            "pdp.opa_call",
            pdp.backend = "opa",
            pdp.initiator_org = crate::telemetry::bounded(&input.initiator_org_id),
            pdp.target_org = crate::telemetry::bounded(&input.target_org_id),
        );
        let outcome = tokio::time::timeout(self.timeout, self.ask(&body).instrument(span)).await;
        let (allowed, reason) = match outcome {
            Ok(result) => result,
            Err(_) => (
                false,
                format!("OPA timed out after {}", seconds(self.timeout)),
            ),
        };
        tracing::debug!(
            pdp.backend = "opa",
            pdp.initiator_org = %input.initiator_org_id,
            pdp.target_org = %input.target_org_id,
            allowed,
            reason = %reason,
            "pdp.opa_call"
        );
        if allowed {
            Decision::allow(reason, Backend::Opa)
        } else {
            Decision::deny(reason, DECIDER, Backend::Opa)
        }
    }

    async fn ask(&self, body: &Value) -> (bool, String) {
        if let Err(why) = check_url(&self.base, AddressPolicy::OperatorService, "OPA_URL").await {
            tracing::warn!(%why, "OPA_URL rejected");
            return (false, why);
        }
        let mut call = self.http.post(&self.endpoint).json(body);
        for (name, value) in cullis_telemetry::outgoing_headers() {
            call = call.header(name, value);
        }
        let response = match call.send().await {
            Ok(response) => response,
            Err(error) => return (false, self.transport_error(error)),
        };
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return (false, format!("OPA returned HTTP {}", status.as_u16()));
        }
        let body = match read_capped(response, MAX_RESPONSE_BYTES).await {
            Ok(Ok(body)) => body,
            Ok(Err(size)) => return (false, format!("OPA error: response too large ({size})")),
            Err(error) => return (false, self.transport_error(error)),
        };
        let document: Value = match serde_json::from_slice(&body) {
            Ok(Value::Object(document)) => Value::Object(document),
            Ok(_) => return (false, "OPA error: response is not a JSON object".into()),
            Err(error) => return (false, format!("OPA error: response is not JSON ({error})")),
        };
        interpret_result(document.get("result"), &super::OPA_LABELS)
    }

    fn transport_error(&self, error: reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("OPA timed out after {}", seconds(self.timeout));
        }
        if error.is_redirect() {
            return "OPA error: redirects are not followed".into();
        }
        format!("OPA error: {}", error_chain(&error.without_url()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_form_is_checked_at_start() {
        assert_eq!(
            OpaClient::new("ftp://opa:8181", Duration::from_secs(5)).unwrap_err(),
            "OPA_URL must use http or https scheme, got: 'ftp'"
        );
        assert!(OpaClient::new("opa:8181", Duration::from_secs(5)).is_err());
        let client = OpaClient::new("http://opa:8181/", Duration::from_secs(5)).unwrap();
        assert_eq!(
            client.endpoint(),
            "http://opa:8181/v1/data/atn/session/allow"
        );
    }

    #[tokio::test]
    async fn metadata_and_link_local_opa_urls_deny() {
        let client = OpaClient::new("http://169.254.169.254", Duration::from_secs(5)).unwrap();
        let decision = client.evaluate(&SessionPolicyInput::default()).await;
        assert!(!decision.allowed);
        assert_eq!(decision.denied_by.as_deref(), Some("opa"));
        assert_eq!(
            decision.reason,
            "OPA_URL points to a cloud metadata address: 169.254.169.254"
        );
        let client = OpaClient::new("http://169.254.3.4:8181", Duration::from_secs(5)).unwrap();
        let decision = client.evaluate(&SessionPolicyInput::default()).await;
        assert_eq!(
            decision.reason,
            "OPA_URL resolves to a link-local address: 169.254.3.4"
        );
    }
}
