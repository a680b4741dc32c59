//! What flows between orgs: sessions (by status), RFQs, and the policies that decide session
//! opens with each org's PDP webhook and its latest denials and errors.

use super::auth::ConsoleUser;
use super::error::ConsoleError;
use super::{audit, render};
use crate::db::audit::AuditSearch;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use cullis_console::html;
use cullis_console::layout::badge;
use serde::Deserialize;

/// Most rows a list shows.
const LIST_LIMIT: i64 = 200;
const SESSION_STATUSES: &[&str] = &["pending", "active", "denied", "closed"];

#[derive(Debug, Default, Deserialize)]
pub struct SessionFilter {
    #[serde(default)]
    status: String,
    /// Org id (admin only; an org user's list is always its own org's).
    #[serde(default)]
    org: String,
}

pub async fn sessions(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(filter): Query<SessionFilter>,
) -> Result<Response, ConsoleError> {
    let status = Some(filter.status.as_str()).filter(|s| !s.is_empty());
    let org = user
        .org_filter()
        .or(Some(filter.org.as_str()).filter(|org| !org.is_empty()));
    let rows = state.db.sessions_listed(org, status, LIST_LIMIT).await?;
    let body = html! {
        form.filters method="get" action="/dashboard/sessions" {
            select name="status" {
                option value="" { "any status" }
                @for candidate in SESSION_STATUSES {
                    option value=(candidate) selected[status == Some(*candidate)] { (candidate) }
                }
            }
            @if user.is_admin() { input name="org" value=(filter.org) placeholder="org id"; }
            button type="submit" { "Filter" }
        }
        table id="sessions" {
            tr { th { "Session" } th { "Status" } th { "Initiator" } th { "Target" } th { "Capabilities" } th { "Created" } th { "Closed" } }
            @for session in &rows {
                tr {
                    td.mono { (session.session_id) }
                    td { (badge(&session.status)) }
                    td.mono { (session.initiator_agent_id) }
                    td.mono { (session.target_agent_id) }
                    td { (session.requested_capabilities.join(", ")) }
                    td.mono { (session.created_at) }
                    td.mono { (session.closed_at.as_deref().unwrap_or("")) }
                }
            }
        }
    };
    Ok(render::page(
        &user,
        "/dashboard/sessions",
        "Sessions",
        None,
        body,
    ))
}

pub async fn rfqs(
    State(state): State<AppState>,
    user: ConsoleUser,
) -> Result<Response, ConsoleError> {
    let rows = state.db.rfqs_listed(user.org_filter(), LIST_LIMIT).await?;
    let body = html! {
        table id="rfqs" {
            tr { th { "RFQ" } th { "Status" } th { "Requester" } th { "Capabilities" } th { "Sent to" } th { "Created" } }
            @for rfq in &rows {
                tr {
                    td.mono { (rfq.rfq_id) }
                    td { (badge(&rfq.status)) }
                    td.mono { (rfq.initiator_agent_id) }
                    td { (rfq.capability_filter.join(", ")) }
                    td { (rfq.matched_agents.len()) " agents" }
                    td.mono { (rfq.created_at) }
                }
            }
        }
    };
    Ok(render::page(&user, "/dashboard/rfqs", "RFQs", None, body))
}

pub async fn policies(
    State(state): State<AppState>,
    user: ConsoleUser,
) -> Result<Response, ConsoleError> {
    let rules = state.db.policies_listed(user.org_filter()).await?;
    let orgs = match user.org_filter() {
        Some(own) => state.db.org(own).await?.into_iter().collect(),
        None => state.db.all_orgs().await?,
    };
    let refusals = state
        .db
        .audit_recent(
            &AuditSearch {
                org_id: user.org_filter(),
                event_type: Some("policy.evaluated"),
                failures_only: true,
                ..AuditSearch::default()
            },
            20,
        )
        .await?;
    let body = html! {
        h2 { "Session policies" }
        table id="policies" {
            tr { th { "Policy" } th { "Org" } th { "Type" } th { "Rules" } th { "State" } th { "Created" } }
            @for policy in &rules {
                tr {
                    td.mono { (policy.policy_id) }
                    td.mono { (policy.org_id) }
                    td { (policy.policy_type) }
                    td.mono { (policy.rules.to_string()) }
                    td { (badge(if policy.is_active { "active" } else { "disabled" })) }
                    td.mono { (policy.created_at) }
                }
            }
        }
        h2 { "Policy decision points" }
        table id="pdps" {
            tr { th { "Org" } th { "PDP webhook" } }
            @for org in &orgs {
                tr {
                    td.mono { (org.org_id) }
                    td.mono { @match &org.webhook_url { Some(url) => (url), None => span.muted { "none (default deny unless a rule allows)" } } }
                }
            }
        }
        h2 { "Latest denials and PDP errors" }
        (audit::table(&refusals, false))
    };
    Ok(render::page(
        &user,
        "/dashboard/policies",
        "Policies",
        None,
        body,
    ))
}
