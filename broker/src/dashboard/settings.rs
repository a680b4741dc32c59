//! `/dashboard/settings`: the admin changes the console password (never the API's
//! `ADMIN_SECRET`); an org user sees its org's record and CA.

use super::auth::{ConsoleUser, Posted, ADMIN_PASSWORD_HASH};
use super::error::ConsoleError;
use super::render::{self, after_action, FlashQuery};
use crate::audit::{AuditEvent, Outcome};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use cullis_console::layout::{badge, csrf_field};
use cullis_console::{html, Markup};
use cullis_shared::pki::Certificate;
use serde::Deserialize;
use zeroize::Zeroizing;

const PAGE: &str = "/dashboard/settings";
/// Shortest console password (the reference's rule).
const MIN_PASSWORD_CHARS: usize = 12;

pub async fn page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, ConsoleError> {
    let body = match user.org_filter() {
        None => admin_settings(&user),
        Some(org_id) => org_settings(&state, org_id).await?,
    };
    Ok(render::page(
        &user,
        PAGE,
        "Settings",
        render::flash_from(&flash).as_ref(),
        body,
    ))
}

fn admin_settings(user: &ConsoleUser) -> Markup {
    html! {
        h2 { "Console password" }
        p.muted { "Until a console password is set, the admin logs in with ADMIN_SECRET. Changing \
                   it here does not change ADMIN_SECRET, which the API keeps using." }
        form.stack method="post" action="/dashboard/settings/password" id="change-password" {
            (csrf_field(&user.session.csrf_token))
            label { "New password (at least 12 characters)"
                input type="password" name="new_password" minlength="12" required autocomplete="new-password"; }
            label { "Repeat it" input type="password" name="confirm_password" required autocomplete="new-password"; }
            button type="submit" { "Change password" }
        }
        h2 { "Session signing key" }
        p.muted { "Console sessions are signed with DASHBOARD_SIGNING_KEY. Changing it (and restarting \
                   the replicas) logs everyone out." }
    }
}

async fn org_settings(state: &AppState, org_id: &str) -> Result<Markup, ConsoleError> {
    let org = state
        .db
        .org(org_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound("Organization not found".into()))?;
    let ca = org
        .ca_certificate
        .as_deref()
        .and_then(|pem| Certificate::from_pem(pem).ok());
    Ok(html! {
        table {
            tr { th { "Org id" } td.mono { (org.org_id) } }
            tr { th { "Name" } td { (org.display_name) } }
            tr { th { "Status" } td { (badge(&org.status)) } }
            tr { th { "Contact" } td { (org.contact_email()) } }
            tr { th { "PDP webhook" } td.mono { (org.webhook_url.as_deref().unwrap_or("none")) } }
            tr { th { "CA thumbprint" } td.mono { (ca.as_ref().map_or("none", |ca| ca.thumbprint())) } }
        }
        p.muted { "The CA and the org secret are managed from your proxy (`cullis-proxy org rotate-ca`)." }
    })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    new_password: String,
    confirm_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    posted: Posted<PasswordForm>,
) -> Result<Response, ConsoleError> {
    posted.user.require_admin()?;
    let password = Zeroizing::new(posted.form.new_password);
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Ok(after_action(
            PAGE,
            Err(ApiError::bad_request(format!(
                "The password must have at least {MIN_PASSWORD_CHARS} characters."
            ))),
        ));
    }
    if password.len() > 72 {
        return Ok(after_action(
            PAGE,
            Err(ApiError::bad_request(
                "The password must be at most 72 bytes (bcrypt's limit).",
            )),
        ));
    }
    if *password != posted.form.confirm_password {
        return Ok(after_action(
            PAGE,
            Err(ApiError::bad_request("The two passwords differ.")),
        ));
    }
    let cost = state.config.bcrypt_cost;
    let hash = tokio::task::spawn_blocking(move || cullis_console::password::hash(&password, cost))
        .await
        .map_err(|e| ConsoleError::Internal(e.to_string()))?
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    state
        .db
        .set_console_setting(ADMIN_PASSWORD_HASH, &hash)
        .await?;
    state
        .audit
        .record(AuditEvent::new("dashboard.password_changed", Outcome::Ok))
        .await?;
    Ok(after_action(PAGE, Ok("Console password changed.".into())))
}
