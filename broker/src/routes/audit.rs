//! `/v1/admin/audit/*` (network admin): the audit export (§8.4) and the Rust-only chain
//! verification (`GET /v1/admin/audit/verify`, additive to §8.3).

use crate::audit::verify_chain;
use crate::auth::admin::AdminAuth;
use crate::db::audit::{AuditFilter, StoredAuditEntry};
use crate::db::{timestamp_text, Db};
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cullis_shared::encoding::python::{parse_iso_datetime, stored_isoformat};
use cullis_shared::wire::audit::{AuditExportQuery, AuditVerifyResponse, AUDIT_EXPORT_COLUMNS};
use serde::Serialize;
use serde_json::Value;

/// Most rows one export returns, whatever `limit` asks for.
pub const MAX_EXPORT_LIMIT: i64 = 50_000;
/// Rows read per query while streaming an export.
const EXPORT_PAGE: i64 = 1_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/audit/verify", get(verify))
        .route("/v1/admin/audit/export", get(export))
}

async fn verify(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> ApiResult<Json<AuditVerifyResponse>> {
    Ok(Json(verify_audit_chain(&state).await?))
}

/// Verifies the whole chain (counting a failure in `atn_audit_chain_verify_failed_total`).
pub(crate) async fn verify_audit_chain(state: &AppState) -> ApiResult<AuditVerifyResponse> {
    let report = verify_chain(&state.db).await?;
    if !report.valid {
        crate::telemetry::metrics().audit_chain_verify_failed.add(
            1,
            &[opentelemetry::KeyValue::new("reason", "hash_mismatch")],
        );
    }
    Ok(AuditVerifyResponse {
        valid: report.valid,
        total: report.total,
        broken_id: report.broken_id.unwrap_or(0),
        reason: report.reason,
    })
}

/// Export format: `csv`, anything else is NDJSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Csv,
}

async fn export(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ApiQuery(query): ApiQuery<AuditExportQuery>,
) -> ApiResult<Response> {
    let filter = AuditFilter {
        start: time_bound(query.start.as_deref(), "start")?,
        end: time_bound(query.end.as_deref(), "end")?,
        org_id: query.org_id,
        event_type: query.event_type,
    };
    if query.limit < 0 {
        return Err(ApiError::validation(
            "greater_than_equal",
            &["query", "limit"],
            "Input should be greater than or equal to 0",
            Value::from(query.limit),
        ));
    }
    export_stream(&state, filter, query.format == "csv", query.limit).await
}

/// The export as a streamed attachment: CSV or NDJSON, at most `limit` rows (capped at
/// [`MAX_EXPORT_LIMIT`]) that match `filter`, oldest first.
pub(crate) async fn export_stream(
    state: &AppState,
    filter: AuditFilter,
    csv: bool,
    limit: i64,
) -> ApiResult<Response> {
    let format = if csv { Format::Csv } else { Format::Ndjson };
    let limit = limit.min(MAX_EXPORT_LIMIT);
    // The first page is read before the headers go out, so an unreachable database is a 503.
    let first = state
        .db
        .audit_page(&filter, 0, limit.min(EXPORT_PAGE))
        .await?;
    let cursor = ExportCursor {
        db: state.db.clone(),
        filter,
        format,
        pending: Some(first),
        header_pending: format == Format::Csv,
        after: 0,
        remaining: limit,
        done: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(cursor, ExportCursor::next));
    let (content_type, filename) = match format {
        Format::Ndjson => ("application/x-ndjson", "audit_export.ndjson"),
        Format::Csv => ("text/csv; charset=utf-8", "audit_export.csv"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename={filename}"),
            ),
        ],
        body,
    )
        .into_response())
}

/// A `start`/`end` query value as a stored-form timestamp; 422 when it is not a datetime.
fn time_bound(value: Option<&str>, name: &str) -> ApiResult<Option<String>> {
    let Some(value) = value else {
        return Ok(None);
    };
    match parse_iso_datetime(value) {
        Some(at) => Ok(Some(timestamp_text(at))),
        None => Err(ApiError::validation(
            "datetime_from_date_parsing",
            &["query", name],
            "Input should be a valid datetime or date (ISO 8601, e.g. 2026-04-08T12:00:00Z)",
            Value::from(value),
        )),
    }
}

/// Streams the export page by page.
struct ExportCursor {
    db: Db,
    filter: AuditFilter,
    format: Format,
    /// A page already read (the first one).
    pending: Option<Vec<StoredAuditEntry>>,
    header_pending: bool,
    after: i64,
    remaining: i64,
    done: bool,
}

impl ExportCursor {
    async fn next(mut self) -> Option<(Result<Bytes, sqlx::Error>, ExportCursor)> {
        if self.done {
            return None;
        }
        let asked = self.remaining.min(EXPORT_PAGE);
        let page = match self.pending.take() {
            Some(page) => page,
            None if asked == 0 => Vec::new(),
            None => match self.db.audit_page(&self.filter, self.after, asked).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, "audit export failed mid-stream");
                    self.done = true;
                    return Some((Err(error), self));
                }
            },
        };
        if (page.len() as i64) < asked || asked == 0 {
            self.done = true;
        }
        let mut out = String::with_capacity(page.len() * 400 + 128);
        if std::mem::take(&mut self.header_pending) {
            out.push_str(&AUDIT_EXPORT_COLUMNS.join(","));
            out.push_str("\r\n");
        }
        if let Some(last) = page.last() {
            self.after = last.id;
            self.remaining -= page.len() as i64;
        }
        for entry in &page {
            match self.format {
                Format::Ndjson => ndjson_line(entry, &mut out),
                Format::Csv => csv_line(entry, &mut out),
            }
        }
        if out.is_empty() {
            return None;
        }
        Some((Ok(Bytes::from(out)), self))
    }
}

/// One NDJSON line: members in [`AUDIT_EXPORT_COLUMNS`] order, `details` as the raw stored
/// string, nulls as `null`.
#[derive(Serialize)]
struct NdjsonLine<'a> {
    id: i64,
    timestamp: &'a str,
    event_type: &'a str,
    agent_id: Option<&'a str>,
    session_id: Option<&'a str>,
    org_id: Option<&'a str>,
    result: &'a str,
    details: Option<&'a str>,
    entry_hash: Option<&'a str>,
    previous_hash: Option<&'a str>,
}

fn ndjson_line(entry: &StoredAuditEntry, out: &mut String) {
    let timestamp = stored_isoformat(&entry.timestamp);
    let line = NdjsonLine {
        id: entry.id,
        timestamp: &timestamp,
        event_type: &entry.event_type,
        agent_id: entry.agent_id.as_deref(),
        session_id: entry.session_id.as_deref(),
        org_id: entry.org_id.as_deref(),
        result: &entry.result,
        details: entry.details.as_deref(),
        entry_hash: entry.entry_hash.as_deref(),
        previous_hash: entry.previous_hash.as_deref(),
    };
    out.push_str(&serde_json::to_string(&line).expect("strings and integers serialise"));
    out.push('\n');
}

/// One CSV record, Python `csv` excel dialect: `,` separated, CRLF terminated, a field quoted
/// only when it holds `,`, `"`, CR or LF, quotes doubled; NULL is an empty field.
fn csv_line(entry: &StoredAuditEntry, out: &mut String) {
    let id = entry.id.to_string();
    let timestamp = stored_isoformat(&entry.timestamp);
    let fields: [&str; 10] = [
        &id,
        &timestamp,
        &entry.event_type,
        entry.agent_id.as_deref().unwrap_or(""),
        entry.session_id.as_deref().unwrap_or(""),
        entry.org_id.as_deref().unwrap_or(""),
        &entry.result,
        entry.details.as_deref().unwrap_or(""),
        entry.entry_hash.as_deref().unwrap_or(""),
        entry.previous_hash.as_deref().unwrap_or(""),
    ];
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        csv_field(field, out);
    }
    out.push_str("\r\n");
}

fn csv_field(field: &str, out: &mut String) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> StoredAuditEntry {
        StoredAuditEntry {
            id: 7,
            timestamp: "2026-04-08T12:00:00.000000Z".into(),
            event_type: "binding.created".into(),
            agent_id: Some("acme::buyer".into()),
            session_id: None,
            org_id: Some("acme".into()),
            details: Some(r#"{"binding_id": 1, "scope": ["a", "b"]}"#.into()),
            result: "ok".into(),
            entry_hash: Some("ab".into()),
            previous_hash: None,
        }
    }

    #[test]
    fn csv_quotes_minimally_with_crlf() {
        let mut out = String::new();
        csv_line(&entry(), &mut out);
        assert_eq!(
            out,
            "7,2026-04-08T12:00:00+00:00,binding.created,acme::buyer,,acme,ok,\"{\"\"binding_id\"\": 1, \"\"scope\"\": [\"\"a\"\", \"\"b\"\"]}\",ab,\r\n"
        );
        let mut out = String::new();
        csv_field("line\nbreak", &mut out);
        csv_field("plain text; ok", &mut out);
        assert_eq!(out, "\"line\nbreak\"plain text; ok");
    }

    #[test]
    fn ndjson_keeps_details_as_a_string() {
        let mut out = String::new();
        ndjson_line(&entry(), &mut out);
        assert_eq!(
            out,
            "{\"id\":7,\"timestamp\":\"2026-04-08T12:00:00+00:00\",\"event_type\":\"binding.created\",\"agent_id\":\"acme::buyer\",\"session_id\":null,\"org_id\":\"acme\",\"result\":\"ok\",\"details\":\"{\\\"binding_id\\\": 1, \\\"scope\\\": [\\\"a\\\", \\\"b\\\"]}\",\"entry_hash\":\"ab\",\"previous_hash\":null}\n"
        );
        let row: cullis_shared::wire::audit::AuditExportRow =
            serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(row.details, entry().details);
    }
}
