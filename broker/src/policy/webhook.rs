//! The default backend: each organisation's own policy decision point, reached over HTTP
//! (reference §5.3). Both orgs are asked, concurrently; either one can deny; a missing,
//! unreachable, slow, oversized or unintelligible PDP denies.

use super::ssrf::{check_url, AddressPolicy, GuardedResolver};
use super::{error_chain, seconds, truncate_reason, Backend, Decision, SessionPolicyInput};
use cullis_shared::wire::pdp::{PdpRequest, PdpWebhookReply, SessionContext};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Largest PDP answer accepted (the reference's contract: allow ⇔ body ≤ 4096 bytes).
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// How the webhook client behaves.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Whole-call deadline per PDP (DNS, connect, request and response).
    pub timeout: Duration,
    /// Answers larger than this deny.
    pub max_response_bytes: usize,
    /// Which addresses a webhook URL may reach.
    pub addresses: AddressPolicy,
}

impl Default for WebhookOptions {
    fn default() -> WebhookOptions {
        WebhookOptions {
            timeout: super::DEFAULT_TIMEOUT,
            max_response_bytes: MAX_RESPONSE_BYTES,
            addresses: AddressPolicy::PublicOnly,
        }
    }
}

/// Calls PDP webhooks.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    options: WebhookOptions,
}

/// One org's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrgVerdict {
    pub allowed: bool,
    pub reason: String,
}

impl OrgVerdict {
    fn deny(reason: impl Into<String>) -> OrgVerdict {
        OrgVerdict {
            allowed: false,
            reason: reason.into(),
        }
    }
}

impl WebhookClient {
    pub fn new(options: WebhookOptions) -> Result<WebhookClient, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(options.addresses)))
            .connect_timeout(options.timeout)
            .timeout(options.timeout)
            .user_agent(concat!("cullis-broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the PDP webhook HTTP client: {e}"))?;
        Ok(WebhookClient { http, options })
    }

    pub fn options(&self) -> &WebhookOptions {
        &self.options
    }

    /// Asks both orgs' PDPs at the same time. The initiator's denial wins over the target's;
    /// the target's denial over an allow; allow only when both allow.
    pub async fn evaluate(&self, input: &SessionPolicyInput) -> Decision {
        let request = |context| PdpRequest {
            initiator_agent_id: input.initiator_agent_id.clone(),
            initiator_org_id: input.initiator_org_id.clone(),
            target_agent_id: input.target_agent_id.clone(),
            target_org_id: input.target_org_id.clone(),
            capabilities: input.capabilities.clone(),
            session_context: context,
        };
        let initiator_request = request(SessionContext::Initiator);
        let target_request = request(SessionContext::Target);
        let (initiator, target) = tokio::join!(
            self.ask(
                &input.initiator_org_id,
                input.initiator_webhook_url.as_deref(),
                &initiator_request
            ),
            self.ask(
                &input.target_org_id,
                input.target_webhook_url.as_deref(),
                &target_request
            ),
        );
        for (org, verdict) in [
            (&input.initiator_org_id, initiator),
            (&input.target_org_id, target),
        ] {
            if !verdict.allowed {
                return Decision::deny(verdict.reason, org.clone(), Backend::Webhook);
            }
        }
        Decision::allow("both PDPs allowed", Backend::Webhook)
    }

    /// One org's verdict; never fails (every failure is a denial with its reason).
    pub(crate) async fn ask(
        &self,
        org_id: &str,
        url: Option<&str>,
        request: &PdpRequest,
    ) -> OrgVerdict {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return OrgVerdict::deny(format!(
                "Organization '{org_id}' has no PDP webhook configured — denied by default"
            ));
        };
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "pdp.webhook_call",
            pdp.org_id = crate::telemetry::bounded(org_id),
            pdp.context = request.session_context.as_str(),
        );
        let verdict = match tokio::time::timeout(
            self.options.timeout,
            self.ask_unbounded(org_id, url, request).instrument(span),
        )
        .await
        {
            Ok(verdict) => verdict,
            Err(_) => OrgVerdict::deny(format!(
                "PDP webhook for '{org_id}' timed out after {}",
                seconds(self.options.timeout)
            )),
        };
        crate::telemetry::metrics().pdp_webhook_latency.record(
            started.elapsed().as_secs_f64() * 1000.0,
            &[opentelemetry::KeyValue::new("org_id", org_id.to_owned())],
        );
        tracing::debug!(
            pdp.org_id = org_id,
            pdp.context = request.session_context.as_str(),
            latency_ms = started.elapsed().as_millis() as u64,
            allowed = verdict.allowed,
            reason = %verdict.reason,
            "pdp.webhook_call"
        );
        if !verdict.allowed {
            tracing::info!(org_id, reason = %verdict.reason, "PDP webhook denied");
        }
        verdict
    }

    async fn ask_unbounded(&self, org_id: &str, url: &str, request: &PdpRequest) -> OrgVerdict {
        let url = match check_url(url, self.options.addresses, "Webhook URL").await {
            Ok(url) => url,
            Err(why) => {
                tracing::warn!(org_id, %why, "PDP webhook URL rejected");
                return OrgVerdict::deny(format!(
                    "PDP webhook URL rejected: {why} (org '{org_id}')"
                ));
            }
        };
        // The PDP's spans join this trace (its server span is a child of pdp.webhook_call).
        let mut call = self.http.post(url).json(request);
        for (name, value) in cullis_telemetry::outgoing_headers() {
            call = call.header(name, value);
        }
        let response = match call.send().await {
            Ok(response) => response,
            Err(error) => return transport_error(org_id, self.options.timeout, error),
        };
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return OrgVerdict::deny(format!(
                "PDP webhook for '{org_id}' returned HTTP {}",
                status.as_u16()
            ));
        }
        let body = match read_capped(response, self.options.max_response_bytes).await {
            Ok(Ok(body)) => body,
            Ok(Err(size)) => {
                return OrgVerdict::deny(format!(
                    "PDP webhook response too large ({size}) from '{org_id}'"
                ))
            }
            Err(error) => return transport_error(org_id, self.options.timeout, error),
        };
        interpret_reply(org_id, &body)
    }
}

fn transport_error(org_id: &str, timeout: Duration, error: reqwest::Error) -> OrgVerdict {
    if error.is_timeout() {
        return OrgVerdict::deny(format!(
            "PDP webhook for '{org_id}' timed out after {}",
            seconds(timeout)
        ));
    }
    let detail = if error.is_redirect() {
        "redirects are not followed".to_owned()
    } else {
        error_chain(&error.without_url())
    };
    OrgVerdict::deny(format!("PDP webhook for '{org_id}' error: {detail}"))
}

/// Reads at most `max` bytes of a body; `Ok(Err(size))` when it is larger (`size` is the
/// declared length when known).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Result<Vec<u8>, String>, reqwest::Error> {
    if let Some(length) = response.content_length() {
        if length > max as u64 {
            return Ok(Err(format!("{length} bytes")));
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(Err(format!("more than {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

/// Turns a 200 body into a verdict: a JSON object whose `decision` (case-insensitive string)
/// is `allow`; anything else denies.
pub(crate) fn interpret_reply(org_id: &str, body: &[u8]) -> OrgVerdict {
    let reply: PdpWebhookReply = match serde_json::from_slice(body) {
        Ok(reply) => reply,
        Err(error) => {
            return OrgVerdict::deny(format!(
                "PDP webhook for '{org_id}' error: response is not a JSON object ({error})"
            ))
        }
    };
    let decision = match &reply.decision {
        None => "deny".to_owned(),
        Some(Value::String(decision)) => decision.to_ascii_lowercase(),
        Some(_) => {
            return OrgVerdict::deny(format!(
                "PDP webhook for '{org_id}' error: 'decision' must be a string"
            ))
        }
    };
    if decision == "allow" {
        return OrgVerdict {
            allowed: true,
            reason: reply
                .reason
                .as_ref()
                .and_then(truncate_reason)
                .unwrap_or_else(|| format!("Allowed by org '{org_id}' PDP")),
        };
    }
    OrgVerdict::deny(
        reply
            .reason
            .as_ref()
            .and_then(truncate_reason)
            .unwrap_or_else(|| format!("Denied by org '{org_id}' PDP")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_leniently_and_deny_by_default() {
        let v = |body: &str| interpret_reply("acme", body.as_bytes());
        assert!(v(r#"{"decision":"allow"}"#).allowed);
        assert!(v(r#"{"decision":"ALLOW","reason":"ok"}"#).allowed);
        assert_eq!(
            v(r#"{"decision":"deny","reason":"no trading on Sundays"}"#),
            OrgVerdict::deny("no trading on Sundays")
        );
        assert_eq!(
            v(r#"{"decision":"deny"}"#).reason,
            "Denied by org 'acme' PDP"
        );
        assert_eq!(v(r#"{}"#).reason, "Denied by org 'acme' PDP");
        assert_eq!(
            v(r#"{"decision":"maybe","reason":42}"#),
            OrgVerdict::deny("42")
        );
        assert_eq!(
            v(r#"{"decision":true}"#).reason,
            "PDP webhook for 'acme' error: 'decision' must be a string"
        );
        let garbage = v("<html>nope</html>");
        assert!(!garbage.allowed);
        assert!(
            garbage
                .reason
                .starts_with("PDP webhook for 'acme' error: response is not a JSON object"),
            "{}",
            garbage.reason
        );
        assert!(!v(r#"["allow"]"#).allowed);
        let long = "x".repeat(600);
        let verdict = v(&format!(r#"{{"decision":"deny","reason":"{long}"}}"#));
        assert_eq!(verdict.reason.chars().count(), 512);
    }

    #[tokio::test]
    async fn an_org_without_webhook_is_denied_by_default() {
        let client = WebhookClient::new(WebhookOptions::default()).unwrap();
        let input = SessionPolicyInput {
            initiator_agent_id: "acme::buyer".into(),
            initiator_org_id: "acme".into(),
            target_agent_id: "beta::seller".into(),
            target_org_id: "beta".into(),
            capabilities: vec!["order.read".into()],
            ..Default::default()
        };
        let decision = client.evaluate(&input).await;
        assert!(!decision.allowed);
        assert_eq!(decision.denied_by.as_deref(), Some("acme"));
        assert_eq!(
            decision.reason,
            "Organization 'acme' has no PDP webhook configured — denied by default"
        );
    }
}
