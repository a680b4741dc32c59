//! The local audit log: filters, pages of 50 newest first, and "Verify chain" (the same
//! `audit::verify` as `cullis-proxy audit verify` and `GET /v1/admin/audit/verify`).

use super::pages;
use super::Call;
use crate::audit;
use crate::http::Response;
use crate::store::AuditRow;
use cullis_console::html;
use cullis_console::layout::{badge, csrf_field, Flash};
use cullis_console::Markup;
use http::StatusCode;

const PAGE_SIZE: i64 = 50;
/// Beyond this a page number is clamped (the offset stays a small integer).
const MAX_PAGE: i64 = 100_000;

/// The filters of the audit page, read from the query.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Filters {
    agent: Option<String>,
    action: Option<String>,
    status: Option<String>,
    page: i64,
}

impl Filters {
    fn read(call: &Call<'_>) -> Filters {
        let param = |name: &str| {
            call.request
                .query_param(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Filters {
            agent: param("agent"),
            action: param("action"),
            status: param("status"),
            page: param("page")
                .and_then(|p| p.parse::<i64>().ok())
                .unwrap_or(1)
                .clamp(1, MAX_PAGE),
        }
    }

    /// The query string of page `page` with the same filters.
    fn link(&self, page: i64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("agent", &self.agent),
            ("action", &self.action),
            ("status", &self.status),
        ] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        query.append_pair("page", &page.to_string());
        format!("/proxy/audit?{}", query.finish())
    }
}

/// `GET /proxy/audit`.
pub async fn page(call: &Call<'_>) -> Response {
    render(call, StatusCode::OK, None, None).await
}

async fn render(
    call: &Call<'_>,
    status: StatusCode,
    flash: Option<Flash>,
    verified: Option<Markup>,
) -> Response {
    let filters = Filters::read(call);
    let rows = call
        .state
        .ctx
        .store
        .audit_page(
            filters.agent.as_deref(),
            filters.action.as_deref(),
            filters.status.as_deref(),
            PAGE_SIZE + 1,
            (filters.page - 1) * PAGE_SIZE,
        )
        .await;
    let (mut rows, flash, status) = match rows {
        Ok(rows) => (rows, flash, status),
        Err(err) => {
            let (status, flash) = pages::failure(err.into());
            (Vec::new(), Some(flash), status)
        }
    };
    // One row more than a page was asked for: its presence says whether a next page exists.
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let body = html! {
        (verify_form(call))
        @if let Some(result) = verified { (result) }
        (filter_form(&filters))
        (table(&rows))
        nav class="actions" id="audit-pages" {
            @if filters.page > 1 { a id="prev-page" href=(filters.link(filters.page - 1)) { "← Newer" } }
            span class="muted" { "Page " (filters.page) }
            @if more { a id="next-page" href=(filters.link(filters.page + 1)) { "Older →" } }
        }
    };
    pages::render(call, status, "Audit", "/proxy/audit", flash, body).await
}

fn verify_form(call: &Call<'_>) -> Markup {
    html! {
        form id="verify-chain" method="post" action="/proxy/audit/verify" class="actions" {
            (csrf_field(&call.session.csrf_token))
            button type="submit" { "Verify chain" }
        }
    }
}

fn filter_form(filters: &Filters) -> Markup {
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        form id="audit-filters" class="filters" method="get" action="/proxy/audit" {
            input name="agent" placeholder="agent id" value=(value(&filters.agent));
            input name="action" placeholder="action (e.g. agent.create)" value=(value(&filters.action));
            select name="status" {
                option value="" { "any status" }
                @for choice in ["success", "error", "denied"] {
                    option value=(choice) selected[filters.status.as_deref() == Some(choice)] { (choice) }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

/// Audit rows as a table (also on an agent's page).
pub fn table(rows: &[AuditRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p class="muted" { "No audit rows." }
        } @else {
            table class="audit" {
                thead { tr { th { "Id" } th { "Time" } th { "Agent" } th { "Action" } th { "Status" } th { "Detail" } } }
                tbody {
                    @for row in rows {
                        tr data-id=(row.id) {
                            td { (row.id) }
                            td.mono { (row.timestamp) }
                            td.mono { (row.agent_id) }
                            td { (row.action) @if let Some(tool) = &row.tool_name { " (" (tool) ")" } }
                            td { (badge(&row.status)) }
                            td.mono { (row.detail.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /proxy/audit/verify`: the whole chain, checked now.
pub async fn verify(call: &Call<'_>) -> Response {
    match audit::verify(&call.state.ctx.store).await {
        Ok(report) => {
            let result = html! {
                @if report.valid {
                    p id="verify-result" class="flash ok" role="status" data-valid="true" {
                        (badge("valid")) " The audit chain is intact (" (report.rows) " rows)."
                    }
                } @else {
                    p id="verify-result" class="flash error" role="alert" data-valid="false" {
                        (badge("broken")) " The audit chain is broken at row "
                        strong id="broken-at" { (report.broken_at_id.unwrap_or_default()) }
                        ": that row or one before it was changed, removed or reordered."
                    }
                }
            };
            render(call, StatusCode::OK, None, Some(result)).await
        }
        Err(err) => {
            let (status, flash) = pages::failure(err.into());
            render(call, status, Some(flash), None).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_keep_the_filters_encoded() {
        let filters = Filters {
            agent: Some("acme::a b&c".into()),
            action: None,
            status: Some("error".into()),
            page: 2,
        };
        assert_eq!(
            filters.link(3),
            "/proxy/audit?agent=acme%3A%3Aa+b%26c&status=error&page=3"
        );
    }
}
