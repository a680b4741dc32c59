//! Broker connection health: the stored connection, a live `/healthz` probe, the uplink's
//! counters, and the last broker failure any console action met.

use super::pages::{self, OrgView};
use super::{Call, ConsoleState};
use crate::audit;
use crate::context::OpError;
use crate::http::Response;
use cullis_console::html;
use cullis_console::layout::badge;
use http::StatusCode;
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the console last saw of the broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerHealth {
    /// When a broker call last succeeded (RFC 3339).
    pub last_ok: Option<String>,
    /// When and how one last failed.
    pub last_error: Option<(String, String)>,
}

impl ConsoleState {
    pub(super) fn broker_ok(&self) {
        self.broker_health().last_ok = Some(audit::now_iso());
    }

    /// Remembers `error` when it came from talking to the broker (not a local refusal).
    pub(super) fn broker_error(&self, error: &OpError) {
        if let OpError::Uplink(err) = error {
            self.broker_health().last_error = Some((audit::now_iso(), err.to_string()));
        }
    }

    fn broker_health(&self) -> std::sync::MutexGuard<'_, BrokerHealth> {
        self.broker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `GET /proxy/health`.
pub async fn page(call: &Call<'_>) -> Response {
    let org = OrgView::cached(call.state).await;
    let probe = match &org.broker_url {
        None => None,
        Some(_) => Some(probe(call).await),
    };
    let seen = call.console().broker_health().clone();
    let uplink = call.state.uplink().await.ok();
    let body = html! {
        table id="broker-health" {
            tr { th { "Broker" } td.mono { (org.broker_url.as_deref().unwrap_or("not joined")) } }
            tr { th { "Organisation" } td.mono { (org.org_id.as_deref().unwrap_or("")) }
                 td { (badge(org.status.as_deref().unwrap_or("unknown"))) } }
            tr { th { "Broker /healthz now" } td id="broker-probe" colspan="2" {
                @match &probe {
                    None => span class="muted" { "not joined" },
                    Some(Ok(())) => (badge("ok")),
                    Some(Err(why)) => { (badge("error")) " " (why) },
                }
            } }
            @if let Some(uplink) = &uplink {
                tr { th { "Uplink" } td colspan="2" {
                    (uplink.request_count()) " broker requests, " (uplink.login_count()) " agent logins since start"
                } }
            }
            tr { th { "Last success seen by the console" } td.mono colspan="2" { (seen.last_ok.as_deref().unwrap_or("none yet")) } }
            tr { th { "Last broker error" } td id="last-error" class="mono" colspan="2" {
                @match &seen.last_error {
                    None => "none",
                    Some((when, what)) => { (when) ": " (what) },
                }
            } }
        }
    };
    pages::render(
        call,
        StatusCode::OK,
        "Broker connection",
        "/proxy/health",
        None,
        body,
    )
    .await
}

/// `GET <broker>/healthz` now, with a short deadline; failures are remembered.
async fn probe(call: &Call<'_>) -> Result<(), String> {
    let uplink = call.state.uplink().await.map_err(|e| {
        e.detail_text()
            .map_or_else(|| "uplink unavailable".to_owned(), str::to_owned)
    })?;
    let outcome = match tokio::time::timeout(PROBE_TIMEOUT, uplink.healthz()).await {
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        Ok(result) => result.map_err(|err| {
            let text = err.to_string();
            call.console().broker_error(&OpError::Uplink(err));
            text
        }),
    };
    if outcome.is_ok() {
        call.console().broker_ok();
    }
    outcome
}
