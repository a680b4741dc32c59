//! `GET /dashboard/sse`: live updates as server-sent events (spec §12): `event: connected`,
//! then one `event: update` with `{event_type, categories, ts}` per new audit entry the user may
//! see, and a `: keepalive` comment every 30 s.
//!
//! Entries are found by polling the audit log's newest id every second rather than by an
//! in-process signal: every replica writes to the same log, so a console connected to one
//! replica sees what another did, with one indexed query per open console per second.

use super::auth::ConsoleUser;
use crate::state::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures_util::stream::{self, StreamExt as _};
use std::convert::Infallible;
use std::time::Duration;

const POLL: Duration = Duration::from_secs(1);
/// Most entries one poll turns into events (a burst beyond it is one refresh anyway).
const BATCH: i64 = 50;

struct Cursor {
    state: AppState,
    org: Option<String>,
    after: i64,
    connected: bool,
}

pub async fn events(
    State(state): State<AppState>,
    user: ConsoleUser,
) -> Result<impl IntoResponse, super::error::ConsoleError> {
    let after = state.db.audit_head_id().await?;
    let cursor = Cursor {
        state,
        org: user.org_filter().map(str::to_owned),
        after,
        connected: false,
    };
    let stream = stream::unfold(cursor, next_events).flat_map(stream::iter);
    let sse = Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(30))
            .text("keepalive"),
    );
    // nginx (nginx-compat) would otherwise buffer the stream.
    Ok(([("x-accel-buffering", "no")], sse))
}

async fn next_events(mut cursor: Cursor) -> Option<(Vec<Result<Event, Infallible>>, Cursor)> {
    if !cursor.connected {
        cursor.connected = true;
        return Some((
            vec![Ok(Event::default().event("connected").data("{}"))],
            cursor,
        ));
    }
    loop {
        tokio::time::sleep(POLL).await;
        let Ok(rows) = cursor
            .state
            .db
            .audit_entries_after(cursor.after, BATCH)
            .await
        else {
            continue; // the database is away: try again next second, keep the stream open
        };
        let Some(last) = rows.last() else { continue };
        cursor.after = last.id;
        let events: Vec<_> = rows
            .iter()
            .filter(|row| cursor.org.is_none() || row.org_id == cursor.org)
            .map(|row| {
                let category = row.event_type.split('.').next().unwrap_or("");
                let data = serde_json::json!({
                    "event_type": row.event_type,
                    "categories": [category],
                    "ts": row.timestamp,
                });
                Ok(Event::default().event("update").data(data.to_string()))
            })
            .collect();
        if !events.is_empty() {
            return Some((events, cursor));
        }
    }
}
