//! `/dashboard/orgs` (admin): organisations waiting for approval and their decisions, every
//! org's status, invites, onboarding an org by hand and installing its CA.

use super::auth::{ConsoleUser, Posted};
use super::error::ConsoleError;
use super::render::{self, after_action, FlashQuery, PartQuery};
use crate::routes::{admin, orgs};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use cullis_console::layout::{badge, csrf_field, post_button, Flash};
use cullis_console::{html, Markup};
use cullis_shared::wire::admin::InviteCreateRequest;
use cullis_shared::wire::registry::OrgCreateRequest;
use serde::Deserialize;
use std::collections::HashMap;

const PAGE: &str = "/dashboard/orgs";

pub async fn page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(flash): Query<FlashQuery>,
    Query(part): Query<PartQuery>,
) -> Result<Response, ConsoleError> {
    user.require_admin()?;
    if let Some(part) = part.part.as_deref() {
        let all = state.db.all_orgs().await?;
        let csrf = &user.session.csrf_token;
        let pending: Vec<_> = all.iter().filter(|org| org.status == "pending").collect();
        return Ok(render::fragment(match part {
            "pending" => pending_table(&pending, csrf),
            _ => orgs_table(&all, csrf),
        }));
    }
    render_page(&state, &user, render::flash_from(&flash).as_ref(), None).await
}

/// The page, optionally with a just-created invite token (shown once, never in a URL).
async fn render_page(
    state: &AppState,
    user: &ConsoleUser,
    flash: Option<&Flash>,
    new_invite: Option<&str>,
) -> Result<Response, ConsoleError> {
    let all = state.db.all_orgs().await?;
    let invites = state.db.invites().await?;
    let csrf = &user.session.csrf_token;
    let pending: Vec<_> = all.iter().filter(|org| org.status == "pending").collect();
    let body = html! {
        h2 { "Waiting for approval" }
        div id="pending-orgs" hx-get="/dashboard/orgs?part=pending" hx-trigger="cullis:update from:body" {
            (pending_table(&pending, csrf))
        }
        h2 { "All organisations" }
        div hx-get="/dashboard/orgs?part=all" hx-trigger="cullis:update from:body" {
            (orgs_table(&all, csrf))
        }
        h2 { "Invites" }
        @if let Some(token) = new_invite {
            div.secret {
                p { "The invite token, shown once. Send it to the organisation's admin:" }
                pre id="new-invite-token" { (token) }
                button type="button" data-copy="new-invite-token" hidden { "Copy" }
            }
        }
        (invite_table(&invites, csrf))
        form.stack method="post" action="/dashboard/invites/generate" id="generate-invite" {
            (csrf_field(csrf))
            label { "Label" input name="label" maxlength="256" placeholder="acme onboarding"; }
            label { "Valid for (hours)" input name="ttl_hours" type="number" min="1" max="8760" value="72"; }
            button type="submit" { "Generate invite" }
        }
        h2 { "Onboard an organisation directly" }
        form.stack method="post" action="/dashboard/orgs/onboard" id="onboard-org" {
            (csrf_field(csrf))
            label { "Org id" input name="org_id" required pattern="[a-z0-9][a-z0-9._-]{0,127}"; }
            label { "Display name" input name="display_name" required maxlength="256"; }
            label { "Org secret" input name="secret" type="password" required maxlength="72"; }
            label { "Contact email" input name="contact_email" type="email"; }
            button type="submit" { "Onboard (active at once)" }
        }
    };
    Ok(render::page(user, PAGE, "Organisations", flash, body))
}

fn pending_table(pending: &[&crate::db::orgs::Org], csrf: &str) -> Markup {
    html! {
        @if pending.is_empty() {
            p.muted { "No organisation is waiting." }
        } @else {
            table {
                tr { th { "Org id" } th { "Name" } th { "Contact" } th { "Joined" } th { "Decision" } }
                @for org in pending {
                    tr data-org=(org.org_id) {
                        td.mono { (org.org_id) }
                        td { (org.display_name) }
                        td { (org.contact_email()) }
                        td.mono { (org.registered_at) }
                        td.actions {
                            (post_button(&format!("/dashboard/orgs/{}/approve", org.org_id), "Approve", csrf, false))
                            (post_button(&format!("/dashboard/orgs/{}/reject", org.org_id), "Reject", csrf, true))
                        }
                    }
                }
            }
        }
    }
}

fn orgs_table(all: &[crate::db::orgs::Org], csrf: &str) -> Markup {
    html! {
        table id="orgs" {
            tr { th { "Org id" } th { "Name" } th { "Status" } th { "CA" } th { "Registered" } th { "Actions" } }
            @for org in all {
                tr data-org=(org.org_id) {
                    td.mono { (org.org_id) }
                    td { (org.display_name) }
                    td { (badge(&org.status)) }
                    td { @if org.ca_certificate.is_some() { "installed" } @else { span.muted { "none" } } }
                    td.mono { (org.registered_at) }
                    td.actions { (org_actions(&org.org_id, &org.status, csrf)) }
                }
            }
        }
    }
}

fn org_actions(org_id: &str, status: &str, csrf: &str) -> Markup {
    let action = |verb: &str| format!("/dashboard/orgs/{org_id}/{verb}");
    html! {
        @match status {
            "active" => (post_button(&action("suspend"), "Suspend", csrf, true)),
            "pending" => (post_button(&action("approve"), "Approve", csrf, false)),
            "suspended" => (post_button(&action("approve"), "Reactivate", csrf, false)),
            "rejected" => (post_button(&action("approve"), "Reactivate", csrf, false)),
            _ => {}
        }
        @if status == "pending" || status == "rejected" {
            (post_button(&action("delete"), "Delete", csrf, true))
        }
        details {
            summary { "Install CA" }
            form.stack method="post" action=(action("upload-ca")) {
                (csrf_field(csrf))
                label { "CA certificate (PEM)" textarea name="ca_certificate" required {} }
                button type="submit" { "Install CA" }
            }
        }
    }
}

fn invite_table(invites: &[crate::db::invites::Invite], csrf: &str) -> Markup {
    html! {
        table id="invites" {
            tr { th { "Label" } th { "Created" } th { "Expires" } th { "State" } th {} }
            @for invite in invites {
                tr {
                    td { (invite.label) }
                    td.mono { (invite.created_at) }
                    td.mono { (invite.expires_at) }
                    td {
                        @if invite.revoked { (badge("revoked")) }
                        @else if invite.used { "used by " (invite.used_by_org_id.as_deref().unwrap_or("?")) }
                        @else { (badge("open")) }
                    }
                    td {
                        @if !invite.revoked && !invite.used {
                            (post_button(&format!("/dashboard/invites/{}/revoke", invite.id), "Revoke", csrf, true))
                        }
                    }
                }
            }
        }
    }
}

/// `GET /dashboard/badge/pending-orgs`: the count for the navigation (empty for org users).
pub async fn pending_badge(
    State(state): State<AppState>,
    user: ConsoleUser,
) -> Result<Response, ConsoleError> {
    if !user.is_admin() {
        return Ok(render::fragment(html! {}));
    }
    let pending = state.db.console_counts(None).await?.orgs_pending;
    Ok(render::fragment(html! { @if pending > 0 { (pending) } }))
}

type NoFields = Posted<HashMap<String, String>>;

pub async fn approve(
    State(state): State<AppState>,
    Path(org_id): Path<String>,
    posted: NoFields,
) -> Result<Response, ConsoleError> {
    decide(&state, &posted.user, org_id, &admin::APPROVE).await
}

pub async fn reject(
    State(state): State<AppState>,
    Path(org_id): Path<String>,
    posted: NoFields,
) -> Result<Response, ConsoleError> {
    decide(&state, &posted.user, org_id, &admin::REJECT).await
}

pub async fn suspend(
    State(state): State<AppState>,
    Path(org_id): Path<String>,
    posted: NoFields,
) -> Result<Response, ConsoleError> {
    decide(&state, &posted.user, org_id, &admin::SUSPEND).await
}

async fn decide(
    state: &AppState,
    user: &ConsoleUser,
    org_id: String,
    decision: &admin::OrgDecision,
) -> Result<Response, ConsoleError> {
    user.require_admin()?;
    let outcome = admin::decide_org(state, org_id, decision)
        .await
        .map(|decided| decided.message);
    Ok(after_action(PAGE, outcome))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(org_id): Path<String>,
    posted: NoFields,
) -> Result<Response, ConsoleError> {
    posted.user.require_admin()?;
    Ok(after_action(PAGE, admin::delete_org(&state, org_id).await))
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    ttl_hours: String,
}

pub async fn generate_invite(
    State(state): State<AppState>,
    posted: Posted<InviteForm>,
) -> Result<Response, ConsoleError> {
    posted.user.require_admin()?;
    let ttl_hours = match posted.form.ttl_hours.trim() {
        "" => 72,
        text => text
            .parse()
            .map_err(|_| ConsoleError::BadRequest("Valid for (hours) must be a number.".into()))?,
    };
    let request = InviteCreateRequest {
        label: posted.form.label,
        ttl_hours,
    };
    match admin::issue_invite(&state, request).await {
        Ok(invite) => {
            let flash = Flash::Ok("Invite created.".into());
            render_page(&state, &posted.user, Some(&flash), invite.token.as_deref()).await
        }
        Err(error) => Ok(after_action(PAGE, Err(error))),
    }
}

pub async fn revoke_invite(
    State(state): State<AppState>,
    Path(invite_id): Path<String>,
    posted: NoFields,
) -> Result<Response, ConsoleError> {
    posted.user.require_admin()?;
    let outcome = admin::revoke_invite_by_id(&state, invite_id)
        .await
        .map(|revoked| revoked.message);
    Ok(after_action(PAGE, outcome))
}

#[derive(Deserialize)]
pub struct OnboardForm {
    org_id: String,
    display_name: String,
    secret: String,
    #[serde(default)]
    contact_email: String,
}

pub async fn onboard(
    State(state): State<AppState>,
    posted: Posted<OnboardForm>,
) -> Result<Response, ConsoleError> {
    posted.user.require_admin()?;
    let form = posted.form;
    let mut metadata = serde_json::Map::new();
    if !form.contact_email.is_empty() {
        metadata.insert("contact_email".into(), form.contact_email.into());
    }
    let request = OrgCreateRequest {
        org_id: form.org_id,
        display_name: form.display_name,
        secret: form.secret,
        metadata,
    };
    let outcome = orgs::create(&state, request)
        .await
        .map(|org| format!("Organization '{}' onboarded.", org.org_id));
    Ok(after_action(PAGE, outcome))
}

#[derive(Deserialize)]
pub struct CaForm {
    ca_certificate: String,
}

pub async fn upload_ca(
    State(state): State<AppState>,
    Path(org_id): Path<String>,
    posted: Posted<CaForm>,
) -> Result<Response, ConsoleError> {
    posted.user.require_admin()?;
    let outcome = orgs::install_ca(&state, org_id.clone(), posted.form.ca_certificate)
        .await
        .map(|_| format!("CA installed for '{org_id}'."));
    Ok(after_action(PAGE, outcome))
}
