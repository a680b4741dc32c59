//! `/dashboard`: counts and the latest activity, refreshed live.

use super::auth::ConsoleUser;
use super::error::ConsoleError;
use super::{audit, render};
use crate::db::audit::AuditSearch;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use cullis_console::html;

pub async fn page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<render::PartQuery>,
) -> Result<Response, ConsoleError> {
    let counts = state.db.console_counts(user.org_filter()).await?;
    let recent = state
        .db
        .audit_recent(
            &AuditSearch {
                org_id: user.org_filter(),
                ..AuditSearch::default()
            },
            15,
        )
        .await?;
    let cards = html! {
        div.cards {
            @if user.is_admin() {
                a.card href="/dashboard/orgs" {
                    div.value id="count-orgs" { (counts.orgs_active) }
                    div.label { "active organisations" }
                }
                a.card href="/dashboard/orgs" {
                    div.value id="count-pending-orgs" { (counts.orgs_pending) }
                    div.label { "organisations waiting for approval" }
                }
            }
            a.card href="/dashboard/agents" {
                div.value id="count-agents" { (counts.agents) }
                div.label { "agents" }
            }
            a.card href="/dashboard/sessions?status=active" {
                div.value id="count-sessions" { (counts.sessions_active) }
                div.label { "active sessions" }
            }
            a.card href="/dashboard/sessions?status=denied" {
                div.value { (counts.sessions_denied) }
                div.label { "denied sessions" }
            }
            a.card href="/dashboard/audit" {
                div.value { (counts.audit_rows) }
                div.label { "audit entries" }
            }
        }
    };
    let activity = audit::table(&recent, false);
    match query.part.as_deref() {
        Some("cards") => return Ok(render::fragment(cards)),
        Some("activity") => return Ok(render::fragment(activity)),
        _ => {}
    }
    Ok(render::page(
        &user,
        "/dashboard",
        "Overview",
        None,
        html! {
            div hx-get="/dashboard?part=cards" hx-trigger="cullis:update from:body" { (cards) }
            h2 { "Latest activity" }
            div id="activity" hx-get="/dashboard?part=activity" hx-trigger="cullis:update from:body" {
                (activity)
            }
        },
    ))
}
