//! `/dashboard/audit`: the latest entries with a substring search, the export (NDJSON/CSV),
//! and **Verify Hash Chain** (`POST /dashboard/audit/verify`, admin). Org users see and export
//! only their own org's rows.

use super::auth::{ConsoleUser, Posted};
use super::error::ConsoleError;
use super::render;
use crate::db::audit::AuditSearch;
use crate::db::audit::{AuditFilter, StoredAuditEntry};
use crate::routes;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use cullis_console::layout::{badge, csrf_field, Flash};
use cullis_console::{html, Markup};
use serde::Deserialize;
use std::collections::HashMap;

const PAGE: &str = "/dashboard/audit";
/// Rows the page shows (newest first), as the reference's.
const PAGE_ROWS: i64 = 200;
/// Longest search string, as the reference's.
const MAX_QUERY_CHARS: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    q: String,
}

pub async fn page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ConsoleError> {
    render_page(&state, &user, &query.q, None).await
}

async fn render_page(
    state: &AppState,
    user: &ConsoleUser,
    q: &str,
    verdict: Option<Markup>,
) -> Result<Response, ConsoleError> {
    let q: String = q.chars().take(MAX_QUERY_CHARS).collect();
    let search = Some(q.as_str()).filter(|q| !q.is_empty());
    let rows = state
        .db
        .audit_recent(
            &AuditSearch {
                org_id: user.org_filter(),
                text: search,
                ..AuditSearch::default()
            },
            PAGE_ROWS,
        )
        .await?;
    let body = html! {
        @if let Some(verdict) = verdict { (verdict) }
        div.actions {
            form.filters method="get" action=(PAGE) {
                input name="q" value=(q) maxlength="100" placeholder="event, agent, org, result or detail";
                button type="submit" { "Search" }
            }
            a href="/dashboard/audit/export?format=ndjson" download { "Export NDJSON" }
            a href="/dashboard/audit/export?format=csv" download { "Export CSV" }
            @if user.is_admin() {
                form method="post" action="/dashboard/audit/verify" class="inline" id="verify-chain" {
                    (csrf_field(&user.session.csrf_token))
                    button type="submit" { "Verify Hash Chain" }
                }
            }
        }
        (table(&rows, true))
    };
    Ok(render::page(user, PAGE, "Audit", None, body))
}

/// Audit rows as a table; `with_hash` adds the chain hash column.
pub fn table(rows: &[StoredAuditEntry], with_hash: bool) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { "No audit entries." }
        } @else {
            table.audit {
                tr {
                    th { "Id" } th { "Time" } th { "Event" } th { "Result" } th { "Org" } th { "Agent" }
                    th { "Details" }
                    @if with_hash { th { "Hash" } }
                }
                @for row in rows {
                    tr data-audit-id=(row.id) {
                        td.mono.nowrap { (row.id) }
                        td.mono.nowrap { (row.timestamp.get(..19).unwrap_or(&row.timestamp)) }
                        td { (row.event_type) }
                        td { (badge(&row.result)) }
                        td.mono { (row.org_id.as_deref().unwrap_or("")) }
                        td.mono { (row.agent_id.as_deref().unwrap_or("")) }
                        td.mono { (row.details.as_deref().unwrap_or("")) }
                        @if with_hash { td.mono { (row.entry_hash.as_deref().map_or("", |h| &h[..h.len().min(12)])) } }
                    }
                }
            }
        }
    }
}

/// `POST /dashboard/audit/verify`: the same verification as `GET /v1/admin/audit/verify`.
pub async fn verify(
    State(state): State<AppState>,
    posted: Posted<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    posted.user.require_admin()?;
    let report = routes::audit::verify_audit_chain(&state).await?;
    let verdict = if report.valid {
        html! { div id="verify-result" data-valid="true" {
            (cullis_console::layout::flash(&Flash::Ok(format!(
                "The hash chain is intact: {} entries verified.", report.total))))
        } }
    } else {
        html! { div id="verify-result" data-valid="false" data-broken-id=(report.broken_id) {
            (cullis_console::layout::flash(&Flash::Error(format!(
                "The hash chain is broken at entry {}: {}",
                report.broken_id,
                report.reason.as_deref().unwrap_or("hash mismatch")))))
        } }
    };
    render_page(&state, &posted.user, "", Some(verdict)).await
}

#[derive(Debug, Default, Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    format: String,
}

/// `GET /dashboard/audit/export?format=ndjson|csv`: the API's export, scoped to the user.
pub async fn export(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ConsoleError> {
    let filter = AuditFilter {
        org_id: user.org_filter().map(str::to_owned),
        ..AuditFilter::default()
    };
    let csv = query.format == "csv";
    Ok(routes::audit::export_stream(&state, filter, csv, routes::audit::MAX_EXPORT_LIMIT).await?)
}
