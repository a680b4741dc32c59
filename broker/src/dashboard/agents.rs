//! `/dashboard/agents`: the registry (org users: their own agents), an agent's detail with its
//! binding and recent audit, and the operator's actions on it: rotate its certificate, revoke
//! its certificate for the network, revoke its tokens.

use super::audit;
use super::auth::{ConsoleUser, Posted};
use super::error::ConsoleError;
use super::render::{self, after_action, FlashQuery};
use crate::db::agents::Agent;
use crate::db::audit::AuditSearch;
use crate::routes;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use cullis_console::layout::{badge, csrf_field, post_button};
use cullis_console::{html, Markup};
use cullis_shared::pki::Certificate;
use serde::Deserialize;
use std::collections::HashMap;

const PAGE: &str = "/dashboard/agents";
/// Most agents one list shows; the filter narrows it.
const LIST_LIMIT: i64 = 500;

#[derive(Debug, Default, Deserialize)]
pub struct AgentFilter {
    /// Substring of the agent id, name or a capability.
    #[serde(default)]
    q: String,
    /// Org id (admin only; an org user's list is always its own org).
    #[serde(default)]
    org: String,
}

pub async fn page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(filter): Query<AgentFilter>,
) -> Result<Response, ConsoleError> {
    let org = match user.org_filter() {
        Some(own) => Some(own),
        None => Some(filter.org.as_str()).filter(|org| !org.is_empty()),
    };
    let q = Some(filter.q.as_str()).filter(|q| !q.is_empty());
    let agents = state.db.agents_listed(org, q, LIST_LIMIT).await?;
    let body = html! {
        form.filters method="get" action=(PAGE) {
            input name="q" value=(filter.q) placeholder="id, name or capability";
            @if user.is_admin() { input name="org" value=(filter.org) placeholder="org id"; }
            button type="submit" { "Filter" }
        }
        table id="agents" {
            tr { th { "Agent" } th { "Org" } th { "Name" } th { "Capabilities" } th { "State" } th { "Registered" } }
            @for agent in &agents {
                tr data-agent=(agent.agent_id) {
                    td.mono { a href=(agent_href(&agent.agent_id)) { (agent.agent_id) } }
                    td.mono { (agent.org_id) }
                    td { (agent.display_name) }
                    td { (agent.capabilities.join(", ")) }
                    td { (badge(if agent.is_active { "active" } else { "disabled" })) }
                    td.mono { (agent.registered_at) }
                }
            }
        }
        @if agents.len() as i64 == LIST_LIMIT { p.muted { "The first " (LIST_LIMIT) " agents; filter to narrow." } }
    };
    Ok(render::page(&user, PAGE, "Agents", None, body))
}

/// The detail URL of an agent (ids contain `::`, which is fine in a path segment).
fn agent_href(agent_id: &str) -> String {
    let encoded: String =
        percent_encoding::utf8_percent_encode(agent_id, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    format!("{PAGE}/{encoded}")
}

/// The agent, if it exists and this user may see it. Another org's agent is "not found", the
/// same answer as an unknown id, so its existence is not revealed.
async fn visible_agent(
    state: &AppState,
    user: &ConsoleUser,
    agent_id: &str,
) -> Result<Agent, ConsoleError> {
    state
        .db
        .agent(agent_id)
        .await?
        .filter(|agent| user.may_see(&agent.org_id))
        .ok_or_else(|| ConsoleError::NotFound("Agent not found".into()))
}

pub async fn detail(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(agent_id): Path<String>,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, ConsoleError> {
    let agent = visible_agent(&state, &user, &agent_id).await?;
    let binding = state.db.binding_for(&agent.org_id, &agent.agent_id).await?;
    let recent = state
        .db
        .audit_recent(
            &AuditSearch {
                org_id: Some(&agent.org_id),
                agent_id: Some(&agent.agent_id),
                ..AuditSearch::default()
            },
            20,
        )
        .await?;
    let certificate = agent
        .cert_pem
        .as_deref()
        .and_then(|pem| Certificate::from_pem(pem).ok());
    let csrf = &user.session.csrf_token;
    let href = agent_href(&agent.agent_id);
    let body = html! {
        table id="agent" {
            tr { th { "Agent id" } td.mono { (agent.agent_id) } }
            tr { th { "Organisation" } td.mono { (agent.org_id) } }
            tr { th { "Name" } td { (agent.display_name) } }
            tr { th { "Description" } td { (agent.description) } }
            tr { th { "Capabilities" } td { (agent.capabilities.join(", ")) } }
            tr { th { "State" } td { (badge(if agent.is_active { "active" } else { "disabled" })) } }
            tr { th { "Binding" } td {
                @match &binding {
                    Some(binding) => { (badge(&binding.status)) " scope: " (binding.scope.join(", ")) }
                    None => span.muted { "none" },
                }
            } }
            (certificate_rows(certificate.as_ref(), agent.cert_thumbprint.as_deref()))
            tr { th { "Tokens revoked up to" } td.mono {
                (agent.token_invalidated_at.and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok())
                    .map_or("never".to_owned(), crate::db::timestamp_text))
            } }
        }
        h2 { "Actions" }
        div.actions {
            (post_button(&format!("{href}/revoke-tokens"), "Revoke tokens", csrf, true))
            @if user.is_admin() && certificate.is_some() {
                (post_button(&format!("{href}/revoke-cert"), "Revoke certificate and tokens", csrf, true))
            }
        }
        details id="rotate-cert" {
            summary { "Rotate certificate" }
            form.stack method="post" action=(format!("{href}/rotate-cert")) {
                (csrf_field(csrf))
                p.muted { "A certificate for this agent's SPIFFE id, signed by its organisation's CA. \
                           The proxy's `cullis-proxy agent rotate-cert` makes one." }
                label { "New certificate (PEM)" textarea name="new_certificate" required {} }
                button type="submit" { "Rotate certificate" }
            }
        }
        h2 { "Recent audit" }
        (audit::table(&recent, false))
    };
    Ok(render::page(
        &user,
        PAGE,
        if agent.display_name.is_empty() {
            &agent.agent_id
        } else {
            &agent.display_name
        },
        render::flash_from(&flash).as_ref(),
        body,
    ))
}

fn certificate_rows(certificate: Option<&Certificate>, thumbprint: Option<&str>) -> Markup {
    let Some(certificate) = certificate else {
        return html! { tr { th { "Certificate" } td.muted { "none pinned yet (the agent has not logged in)" } } };
    };
    let not_after = time::OffsetDateTime::from_unix_timestamp(certificate.not_after())
        .map(crate::db::timestamp_text)
        .unwrap_or_default();
    html! {
        tr { th { "Certificate serial" } td.mono id="cert-serial" { (certificate.serial_hex()) } }
        tr { th { "Not after" } td.mono { (not_after) } }
        tr { th { "SPIFFE id" } td.mono { (certificate.spiffe_uris().collect::<Vec<_>>().join(" ")) } }
        tr { th { "Thumbprint" } td.mono id="cert-thumbprint" { (thumbprint.unwrap_or("")) } }
    }
}

#[derive(Deserialize)]
pub struct RotateForm {
    new_certificate: String,
}

pub async fn rotate_cert(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    posted: Posted<RotateForm>,
) -> Result<Response, ConsoleError> {
    let agent = visible_agent(&state, &posted.user, &agent_id).await?;
    let org = state
        .db
        .org(&agent.org_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound("Organization not found".into()))?;
    let outcome =
        routes::agents::rotate_agent_cert(&state, &org, &agent_id, &posted.form.new_certificate)
            .await
            .map(|_| "Certificate rotated.".to_owned());
    Ok(after_action(&agent_href(&agent_id), outcome))
}

pub async fn revoke_cert(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    posted: Posted<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    posted.user.require_admin()?;
    let agent = visible_agent(&state, &posted.user, &agent_id).await?;
    let certificate = agent
        .cert_pem
        .as_deref()
        .and_then(|pem| Certificate::from_pem(pem).ok())
        .ok_or_else(|| ConsoleError::BadRequest("The agent has no certificate pinned.".into()))?;
    let not_after = time::OffsetDateTime::from_unix_timestamp(certificate.not_after())
        .map(crate::db::timestamp_text)
        .ok();
    let request = cullis_shared::wire::admin::CertRevokeRequest {
        serial_hex: certificate.serial_hex().to_owned(),
        org_id: agent.org_id.clone(),
        agent_id: Some(agent.agent_id.clone()),
        reason: Some("revoked from the dashboard".into()),
        revoked_by: "dashboard:admin".into(),
        cert_not_after: not_after,
    };
    // The API's revocation only stops new logins (as the reference's); an operator who
    // revokes a certificate from the console means "this agent stops now", so its tokens go too.
    let outcome = match routes::admin::revoke_certificate(&state, request).await {
        Ok(revoked) => routes::auth::revoke_agent_tokens(&state, &agent, "dashboard:admin")
            .await
            .map(|()| format!("{} Its tokens are revoked.", revoked.message)),
        Err(error) => Err(error),
    };
    Ok(after_action(&agent_href(&agent_id), outcome))
}

pub async fn revoke_tokens(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    posted: Posted<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let agent = visible_agent(&state, &posted.user, &agent_id).await?;
    let actor = format!("dashboard:{}", posted.user.label());
    let outcome = routes::auth::revoke_agent_tokens(&state, &agent, &actor)
        .await
        .map(|()| "Every token of this agent is revoked; its sockets are closed.".to_owned());
    Ok(after_action(&agent_href(&agent_id), outcome))
}
