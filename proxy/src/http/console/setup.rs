//! The setup wizard (join a broker with an invite; the org CA is created on the way when
//! `org init` was skipped), its connection test, and the org status banner fragment.

use super::pages::{self, OrgView};
use super::{html, redirect, Call, Form};
use crate::http::Response;
use crate::org::{self, JoinParams};
use cullis_console::html;
use cullis_console::layout::{csrf_field, Flash};
use cullis_console::Markup;
use http::StatusCode;
use serde_json::Value;
use std::time::Duration;

/// The banner asks the broker with this deadline, so a slow broker never holds a page.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);
/// The connection test's deadline.
const TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /proxy/setup`.
pub async fn page(call: &Call<'_>) -> Response {
    render(call, StatusCode::OK, None, &call.form, None).await
}

async fn render(
    call: &Call<'_>,
    status: StatusCode,
    flash: Option<Flash>,
    values: &Form,
    test: Option<Markup>,
) -> Response {
    let org = OrgView::cached(call.state).await;
    let body = if org.joined() {
        joined_summary(&org)
    } else {
        join_form(call, values, test)
    };
    pages::render(call, status, "Setup", "/proxy/setup", flash, body).await
}

fn joined_summary(org: &OrgView) -> Markup {
    html! {
        p { "This proxy has joined a broker. Joining again is not possible from here; the "
            "org's CA can be rotated with " code { "cullis-proxy org rotate-ca" } "." }
        table id="org-summary" {
            tr { th { "Organisation" } td.mono { (org.org_id.as_deref().unwrap_or("")) } }
            tr { th { "Broker" } td.mono { (org.broker_url.as_deref().unwrap_or("")) } }
            tr { th { "Status" } td { (cullis_console::layout::badge(org.status.as_deref().unwrap_or("pending"))) } }
        }
        p { a href="/proxy/agents" { "Go to the agents" } }
    }
}

fn join_form(call: &Call<'_>, values: &Form, test: Option<Markup>) -> Markup {
    let field = |name: &str| values.text(name).to_owned();
    let webhook_default = call
        .state
        .ctx
        .settings
        .default_webhook_url()
        .unwrap_or_default();
    html! {
        p { "Join the Cullis network with the invite token the network operator gave you. "
            "The organisation's CA is created now if it does not exist yet." }
        form id="setup-form" class="stack" method="post" action="/proxy/setup" {
            (csrf_field(&call.session.csrf_token))
            label { "Broker URL"
                input id="broker_url" name="broker_url" type="url" required placeholder="https://broker.example.com" value=(field("broker_url"));
            }
            div class="actions" {
                // formnovalidate: the test needs only the URL, not the whole form filled in.
                button id="test-connection" type="submit" formaction="/proxy/setup/test-connection" formnovalidate
                    hx-post="/proxy/setup/test-connection" hx-target="#test-result" hx-swap="outerHTML" {
                    "Test connection"
                }
            }
            (test.unwrap_or_else(|| html! { div id="test-result" {} }))
            label { "Invite token"
                input id="invite_token" name="invite_token" required autocomplete="off" value=(field("invite_token"));
            }
            label { "Organisation id"
                input id="org_id" name="org_id" required pattern="[a-z0-9][a-z0-9._-]*" value=(field("org_id"));
            }
            label { "Display name"
                input id="display_name" name="display_name" required value=(field("display_name"));
            }
            label { "Contact e-mail"
                input id="contact_email" name="contact_email" type="email" required value=(field("contact_email"));
            }
            label { "PDP webhook URL (optional)"
                input id="webhook_url" name="webhook_url" type="url" placeholder=(webhook_default) value=(field("webhook_url"));
            }
            button id="join" type="submit" { "Join the broker" }
        }
    }
}

/// `POST /proxy/setup`: `org::join`, then to the agents page (the banner shows "pending").
pub async fn join(call: &Call<'_>) -> Response {
    let form = &call.form;
    let params = JoinParams {
        broker_url: form.text("broker_url").to_owned(),
        invite_token: form.text("invite_token").to_owned(),
        org_id: form.text("org_id").to_owned(),
        display_name: form.text("display_name").to_owned(),
        contact_email: form.text("contact_email").to_owned(),
        webhook_url: Some(form.text("webhook_url").to_owned()).filter(|url| !url.is_empty()),
    };
    match org::join(&call.state.ctx, params).await {
        Ok(_) => {
            call.console().broker_ok();
            redirect(&pages::done("/proxy/agents", "joined"))
        }
        Err(err) => {
            call.console().broker_error(&err);
            let (status, flash) = pages::failure(err);
            render(call, status, Some(flash), form, None).await
        }
    }
}

/// `POST /proxy/setup/test-connection`: fetches `<broker>/.well-known/jwks.json` with the
/// proxy's broker TLS settings. htmx gets the result box; a plain form post, the whole page.
pub async fn test_connection(call: &Call<'_>) -> Response {
    let result = probe(call, call.form.text("broker_url")).await;
    if call.request.header("hx-request").is_some() {
        return html(StatusCode::OK, result);
    }
    render(call, StatusCode::OK, None, &call.form, Some(result)).await
}

async fn probe(call: &Call<'_>, broker_url: &str) -> Markup {
    let outcome = match checked_url(broker_url) {
        Err(why) => Err(why),
        Ok(url) => match call.state.ctx.uplink_to(&url) {
            Err(err) => Err(err.to_string()),
            Ok(uplink) => match tokio::time::timeout(TEST_TIMEOUT, uplink.jwks()).await {
                Err(_) => Err(format!("no answer within {} s", TEST_TIMEOUT.as_secs())),
                Ok(Err(err)) => Err(match err.broker_status() {
                    Some(code) => format!("HTTP {code}"),
                    None => err.to_string(),
                }),
                Ok(Ok(jwks)) => Ok(jwks),
            },
        },
    };
    match outcome {
        Ok(jwks) => {
            let keys = jwks
                .get("keys")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            html! { div id="test-result" class="flash ok" role="status" data-result="ok" {
                "OK: the broker answered and publishes " (keys) " signing key(s)."
            } }
        }
        Err(why) => {
            html! { div id="test-result" class="flash error" role="alert" data-result="error" {
                "Connection failed: " (why)
            } }
        }
    }
}

/// Only absolute http(s) URLs are fetched (no `file:`, no relative path).
fn checked_url(text: &str) -> Result<String, String> {
    let trimmed = text.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("the broker URL must be http(s)://host[:port]".into());
    }
    Ok(trimmed.to_owned())
}

/// `GET /proxy/org-status`: the banner's content. While the org is pending the broker is asked
/// (and the answer stored), otherwise the stored status is shown.
pub async fn org_status(call: &Call<'_>) -> Response {
    let mut org = OrgView::cached(call.state).await;
    let pending = matches!(org.status.as_deref(), None | Some("pending"));
    if org.joined() && pending {
        match tokio::time::timeout(STATUS_TIMEOUT, org::status(&call.state.ctx)).await {
            Ok(Ok(answer)) => {
                call.console().broker_ok();
                org.status = answer
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            Ok(Err(err)) => {
                call.console().broker_error(&err);
                org.check_error = Some(err.to_string());
            }
            Err(_) => {
                org.check_error = Some(format!("no answer within {} s", STATUS_TIMEOUT.as_secs()));
            }
        }
    }
    html(StatusCode::OK, pages::banner_body(&org))
}

#[cfg(test)]
mod tests {
    use super::checked_url;

    #[test]
    fn only_http_urls_are_probed() {
        assert_eq!(
            checked_url(" https://broker.example/ ").as_deref(),
            Ok("https://broker.example")
        );
        assert!(checked_url("file:///etc/passwd").is_err());
        assert!(checked_url("broker.example").is_err());
    }
}
