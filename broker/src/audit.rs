//! The one way any part of the broker records an audit event, and the tamper-evident hash
//! chain over the stored events (broker spec §8).
//!
//! Every identity decision goes through [`Audit::record`]. Each stored row carries
//! `entry_hash = sha256_hex(id|timestamp|event_type|agent_id|session_id|org_id|result|details|
//! previous_hash_or_"genesis")` (§8.2, see [`entry_hash`]) and the `entry_hash` of the row before
//! it as `previous_hash`. Appends are serialised *in the database* (see
//! [`Db::begin_chain`](crate::db::Db::begin_chain)), so several broker processes on one
//! PostgreSQL still write a single chain without forks. [`verify_chain`] walks the whole log in
//! pages and reports the first broken entry.
//!
//! Append-only is enforced twice: no code path updates or deletes an audit row, and database
//! triggers (migration `0003_audit_chain`) refuse `UPDATE`, `DELETE` (and on PostgreSQL
//! `TRUNCATE`) on `audit_log`. The chain is what makes tampering by someone who can bypass the
//! triggers *detectable*; note that a plain SHA-256 chain cannot stop an attacker who rewrites
//! every row after the one they changed — anchoring the head hash elsewhere does.

use crate::db::audit::{AuditRow, ChainTx, StoredAuditEntry};
use crate::db::sessions::{NewMessage, Stored};
use crate::db::Db;
use cullis_shared::encoding::canonical_json::{write_python_float, write_string};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

/// Outcome recorded with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// An audit event under construction.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event_type: &'static str,
    pub outcome: Outcome,
    pub agent_id: Option<String>,
    pub org_id: Option<String>,
    pub session_id: Option<String>,
    /// Detail members in insertion order (stored like Python `json.dumps` of a dict would).
    pub details: Vec<(String, Value)>,
}

impl AuditEvent {
    pub fn new(event_type: &'static str, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            event_type,
            outcome,
            agent_id: None,
            org_id: None,
            session_id: None,
            details: Vec::new(),
        }
    }

    pub fn agent(mut self, agent_id: impl Into<String>) -> AuditEvent {
        self.agent_id = Some(agent_id.into());
        self
    }

    pub fn org(mut self, org_id: impl Into<String>) -> AuditEvent {
        self.org_id = Some(org_id.into());
        self
    }

    /// The row to store: details rendered the way the reference's `json.dumps` did.
    fn into_row(self) -> AuditRow {
        let details = (!self.details.is_empty()).then(|| python_json_object(&self.details));
        AuditRow {
            event_type: self.event_type,
            result: self.outcome.as_str(),
            agent_id: self.agent_id,
            session_id: self.session_id,
            org_id: self.org_id,
            details,
        }
    }

    /// Adds a detail member. Setting a key again replaces its value in place (a Python dict).
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> AuditEvent {
        let value = value.into();
        match self.details.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.details.push((key.to_owned(), value)),
        }
        self
    }
}

/// Writes audit events, and the rows that must commit together with one (stored messages).
///
/// Appends go through one writer task per process that takes everything queued while the
/// previous write ran and appends it as one batch (one chain lock, one commit): concurrent
/// requests share the cost of serialising the chain instead of queueing on it one by one
/// (group commit). `record` and `store_message` return only once their rows are committed.
#[derive(Debug, Clone)]
pub struct Audit {
    queue: mpsc::UnboundedSender<Job>,
}

/// A message to store in the same transaction as its audit rows (see [`Audit::store_message`]).
#[derive(Debug)]
pub struct MessageWrite {
    pub message: NewMessage,
    /// Recorded first, whatever the outcome (the `policy.evaluated` row of the send).
    pub evaluated: AuditEvent,
    /// Recorded when the message is stored; its `seq` detail is set to the assigned number.
    pub forwarded: AuditEvent,
    /// Recorded when the nonce turns out to be used already.
    pub replayed: AuditEvent,
}

#[derive(Debug)]
enum Job {
    Event {
        row: AuditRow,
        done: oneshot::Sender<Result<(), String>>,
    },
    Message {
        write: Box<QueuedMessage>,
        done: oneshot::Sender<Result<Stored, String>>,
    },
}

/// A [`MessageWrite`] with the rows that need no sequence number already rendered (on the
/// request's task, not on the one writer every request waits for).
#[derive(Debug)]
struct QueuedMessage {
    message: NewMessage,
    evaluated: AuditRow,
    forwarded: AuditEvent,
    replayed: AuditRow,
}

impl Job {
    /// Hands the outcome of its write to the waiting request.
    fn finish(self, outcome: Result<Option<Stored>, sqlx::Error>) {
        let outcome = outcome.map_err(|error| {
            tracing::error!(event = self.event_type(), %error, "audit write failed");
            error.to_string()
        });
        match self {
            Job::Event { done, .. } => {
                let _ = done.send(outcome.map(|_| ()));
            }
            Job::Message { done, .. } => {
                let stored = outcome.and_then(|stored| {
                    stored.ok_or_else(|| "the message write had no outcome".to_owned())
                });
                let _ = done.send(stored);
            }
        }
    }

    fn event_type(&self) -> &'static str {
        match self {
            Job::Event { row, .. } => row.event_type,
            Job::Message { write, .. } => write.forwarded.event_type,
        }
    }
}

/// The most jobs one transaction writes.
const MAX_BATCH: usize = 256;

impl Audit {
    /// Starts the writer: a task on the current Tokio runtime, or on a SQLite file an OS
    /// thread of its own, since its batches run there without awaiting anything
    /// ([`crate::db::direct`]) and must not hold up a runtime worker. Either stops when the
    /// last `Audit` clone is dropped.
    pub fn new(db: Db) -> Audit {
        let (queue, inbox) = mpsc::unbounded_channel();
        if db.direct().is_some() {
            std::thread::Builder::new()
                .name("cullis-audit-writer".into())
                .spawn(move || {
                    // Only channels are awaited here: a runtime without I/O or timers suffices.
                    match tokio::runtime::Builder::new_current_thread().build() {
                        Ok(runtime) => runtime.block_on(write_batches(db, inbox)),
                        Err(error) => tracing::error!(%error, "the audit writer cannot start"),
                    }
                })
                .expect("the operating system refused to start the audit writer thread");
        } else {
            tokio::spawn(write_batches(db, inbox));
        }
        Audit { queue }
    }

    /// Appends `event` to the hash chain. A failure is logged and returned: callers treat an
    /// unrecordable decision as a failed request (503), never as silently unaudited.
    pub async fn record(&self, event: AuditEvent) -> Result<(), sqlx::Error> {
        let (done, committed) = oneshot::channel();
        let row = event.into_row();
        self.queue
            .send(Job::Event { row, done })
            .map_err(|_| writer_stopped())?;
        committed_outcome(committed).await
    }

    /// Stores a message with the next sequence number of its session and its audit rows in one
    /// transaction: a message is never stored unaudited, nor audited as forwarded unstored.
    pub async fn store_message(&self, write: MessageWrite) -> Result<Stored, sqlx::Error> {
        let (done, committed) = oneshot::channel();
        let write = Box::new(QueuedMessage {
            message: write.message,
            evaluated: write.evaluated.into_row(),
            forwarded: write.forwarded,
            replayed: write.replayed.into_row(),
        });
        self.queue
            .send(Job::Message { write, done })
            .map_err(|_| writer_stopped())?;
        committed_outcome(committed).await
    }
}

fn writer_stopped() -> sqlx::Error {
    sqlx::Error::Protocol("the audit writer has stopped".into())
}

async fn committed_outcome<T>(
    committed: oneshot::Receiver<Result<T, String>>,
) -> Result<T, sqlx::Error> {
    match committed.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(sqlx::Error::Protocol(message)),
        Err(_) => Err(writer_stopped()),
    }
}

async fn write_batches(db: Db, mut inbox: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let metrics = crate::telemetry::metrics();
    while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics.audit_batch_size.record(batch.len() as u64, &[]);
        metrics
            .audit_queue_depth
            .store(inbox.len() as i64, std::sync::atomic::Ordering::Relaxed);
        match write_batch(&db, &batch).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    job.finish(Ok(outcome));
                }
            }
            // One bad job must not fail its neighbours: retry them one by one.
            Err(_) if batch.len() > 1 => {
                for job in batch.drain(..) {
                    let outcome = write_batch(&db, std::slice::from_ref(&job)).await;
                    job.finish(outcome.map(|mut outcomes| outcomes.pop().flatten()));
                }
            }
            Err(error) => {
                for job in batch.drain(..) {
                    job.finish(Err(sqlx::Error::Protocol(error.to_string())));
                }
            }
        }
    }
}

/// Writes `jobs` in one chain transaction; per job, the stored message (for message jobs).
async fn write_batch(db: &Db, jobs: &[Job]) -> Result<Vec<Option<Stored>>, sqlx::Error> {
    let mut chain = db.begin_chain().await?;
    let messages: Vec<&NewMessage> = jobs
        .iter()
        .filter_map(|job| match job {
            Job::Message { write, .. } => Some(&write.message),
            Job::Event { .. } => None,
        })
        .collect();
    let mut stored = chain.insert_messages(&messages).await?.into_iter();
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(match job {
            Job::Event { row, .. } => {
                chain.append(row.clone());
                None
            }
            Job::Message { write, .. } => {
                let stored = stored.next().ok_or_else(|| {
                    sqlx::Error::Protocol("a queued message got no outcome".into())
                })?;
                append_message_rows(&mut chain, write, &stored);
                Some(stored)
            }
        });
    }
    chain.commit().await?;
    Ok(outcomes)
}

/// The audit rows of one message, in the reference's order: the policy evaluation, then the
/// forwarding (with its sequence number) or the replay denial.
fn append_message_rows(chain: &mut ChainTx, write: &QueuedMessage, stored: &Stored) {
    chain.append(write.evaluated.clone());
    match stored {
        Stored::Ok { seq, .. } => {
            let forwarded = write.forwarded.clone().detail("seq", *seq);
            chain.append(forwarded.into_row());
        }
        Stored::NonceReused => chain.append(write.replayed.clone()),
        // A resend of an idempotency key: the first message's rows already tell its story.
        Stored::NotActive | Stored::Duplicate { .. } => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Details: Python `json.dumps(details)`.

/// Python `json.dumps(dict)` with the default settings: members in insertion order, separators
/// `", "` and `": "`, everything outside printable ASCII escaped as `\uXXXX`, floats in `repr`
/// form.
pub fn python_json_object(members: &[(String, Value)]) -> String {
    let mut out = String::with_capacity(64);
    out.push('{');
    for (index, (key, value)) in members.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        write_string(key, &mut out);
        out.push_str(": ");
        write_python_value(value, &mut out);
    }
    out.push('}');
    out
}

fn write_python_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                out.push_str(&int.to_string());
            } else if let Some(int) = number.as_u64() {
                out.push_str(&int.to_string());
            } else if let Some(float) = number.as_f64() {
                write_python_float(float, out);
            }
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_python_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_python_value(item, out);
            }
            out.push('}');
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps.

/// Python `datetime.isoformat()` of a UTC-aware value: `YYYY-MM-DDTHH:MM:SS`, then `.ffffff`
/// only when the microseconds are not zero, then `+00:00`.
pub fn python_isoformat(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if at.microsecond() != 0 {
        out.push_str(&format!(".{:06}", at.microsecond()));
    }
    out.push_str("+00:00");
    out
}

/// The isoformat of a stored timestamp. Naive stored values count as UTC (§8.2); a value that
/// does not parse at all (only a hand edit could produce one) is used verbatim, so the hash
/// simply does not match.
pub fn stored_isoformat(stored: &str) -> Cow<'_, str> {
    match parse_iso_datetime(stored) {
        Some(at) => Cow::Owned(python_isoformat(at)),
        None => Cow::Borrowed(stored),
    }
}

/// Parses an ISO 8601 date or date-time the way the reference's query parameters accept them:
/// `YYYY-MM-DD`, or `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]]` with an optional `Z`/`±HH[:MM]`
/// offset. A value without an offset is UTC.
pub fn parse_iso_datetime(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if !text.is_ascii() || text.len() < 10 {
        return None;
    }
    let date = parse_date(&text[..10])?;
    if text.len() == 10 {
        return Some(date.midnight().assume_utc());
    }
    let separator = text.as_bytes()[10];
    if !matches!(separator, b'T' | b't' | b' ') {
        return None;
    }
    let rest = &text[11..];
    let (clock, offset) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, time::UtcOffset::UTC)
    } else if let Some(at) = rest.find(['+', '-']) {
        (&rest[..at], parse_offset(&rest[at..])?)
    } else {
        (rest, time::UtcOffset::UTC)
    };
    let clock = parse_clock(clock)?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_offset(offset)
            .to_offset(time::UtcOffset::UTC),
    )
}

fn digits(text: &str) -> Option<u32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn parse_date(text: &str) -> Option<time::Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&text[..4])? as i32;
    let month = time::Month::try_from(digits(&text[5..7])? as u8).ok()?;
    let day = digits(&text[8..10])? as u8;
    time::Date::from_calendar_date(year, month, day).ok()
}

fn parse_clock(text: &str) -> Option<time::Time> {
    let (main, fraction) = match text.split_once(['.', ',']) {
        Some((main, fraction)) => (main, Some(fraction)),
        None => (text, None),
    };
    let parts: Vec<&str> = main.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let hour = digits(parts[0])? as u8;
    let minute = digits(parts[1])? as u8;
    let second = match parts.get(2) {
        Some(second) => digits(second)? as u8,
        None if fraction.is_some() => return None,
        None => 0,
    };
    let nanos = match fraction {
        None => 0,
        Some(fraction) if (1..=9).contains(&fraction.len()) => {
            digits(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        Some(_) => return None,
    };
    time::Time::from_hms_nano(hour, minute, second, nanos).ok()
}

fn parse_offset(text: &str) -> Option<time::UtcOffset> {
    let sign: i8 = if text.starts_with('-') { -1 } else { 1 };
    let body = &text[1..];
    let (hours, minutes) = match body.len() {
        2 => (body, "00"),
        4 => (&body[..2], &body[2..]),
        5 if body.as_bytes()[2] == b':' => (&body[..2], &body[3..]),
        _ => return None,
    };
    let hours = digits(hours)? as i8;
    let minutes = digits(minutes)? as i8;
    time::UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

// ---------------------------------------------------------------------------------------------
// The hash chain.

/// The chained fields of one audit row, as stored.
#[derive(Debug, Clone, Copy)]
pub struct ChainFields<'a> {
    pub id: i64,
    /// The stored timestamp (RFC 3339 text); hashed in its Python isoformat.
    pub timestamp: &'a str,
    pub event_type: &'a str,
    pub agent_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub org_id: Option<&'a str>,
    pub result: &'a str,
    pub details: Option<&'a str>,
    pub previous_hash: Option<&'a str>,
}

/// §8.2: lowercase hex SHA-256 of the nine fields joined by `|` (absent ⇒ empty, no previous
/// hash ⇒ `genesis`).
pub fn entry_hash(fields: &ChainFields<'_>) -> String {
    let id = fields.id.to_string();
    let timestamp = stored_isoformat(fields.timestamp);
    let parts: [&str; 9] = [
        &id,
        &timestamp,
        fields.event_type,
        fields.agent_id.unwrap_or(""),
        fields.session_id.unwrap_or(""),
        fields.org_id.unwrap_or(""),
        fields.result,
        fields.details.unwrap_or(""),
        fields.previous_hash.unwrap_or("genesis"),
    ];
    hex::encode(Sha256::digest(parts.join("|").as_bytes()))
}

/// Outcome of [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub valid: bool,
    /// Intact: every row (unhashed legacy rows included). Broken: the zero-based position of
    /// the first broken row (§8.3).
    pub total: u64,
    /// Id of the first broken row.
    pub broken_id: Option<i64>,
    /// Why it is broken: `previous_hash_mismatch: …`, `entry_hash_mismatch: …` or
    /// `unhashed_row: …`.
    pub reason: Option<String>,
}

/// Rows read per query while verifying, so a large log never sits in memory.
pub const VERIFY_PAGE: i64 = 1_000;

/// Walks the whole log by id (§8.3): each hashed row must name the previous hashed row's hash
/// as `previous_hash` and hash to its stored `entry_hash`. Rows without a hash are skipped only
/// *before* the first hashed row (rows written before the chain existed); after it, a row
/// without a hash can only be an insertion by hand and breaks the chain.
pub async fn verify_chain(db: &Db) -> Result<ChainReport, sqlx::Error> {
    let mut walker = ChainWalker::default();
    let mut after = 0i64;
    loop {
        let page = db.audit_entries_after(after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        for entry in &page {
            if let Some(report) = walker.check(entry) {
                tracing::warn!(
                    broken_id = report.broken_id,
                    reason = report.reason.as_deref(),
                    "audit chain verification failed"
                );
                return Ok(report);
            }
        }
    }
    Ok(ChainReport {
        valid: true,
        total: walker.seen,
        broken_id: None,
        reason: None,
    })
}

/// The verification state carried from row to row.
#[derive(Debug, Default)]
struct ChainWalker {
    expected_previous: Option<String>,
    started: bool,
    seen: u64,
}

impl ChainWalker {
    /// Checks the next row; `Some` is the report for a break at this row.
    fn check(&mut self, entry: &StoredAuditEntry) -> Option<ChainReport> {
        let broken = |reason: String| ChainReport {
            valid: false,
            total: self.seen,
            broken_id: Some(entry.id),
            reason: Some(reason),
        };
        match &entry.entry_hash {
            None if self.started => {
                return Some(broken(
                    "unhashed_row: a row without entry_hash follows hashed rows".into(),
                ))
            }
            None => {}
            Some(stored) => {
                if entry.previous_hash != self.expected_previous {
                    return Some(broken(format!(
                        "previous_hash_mismatch: expected {}, found {}",
                        self.expected_previous.as_deref().unwrap_or("none"),
                        entry.previous_hash.as_deref().unwrap_or("none"),
                    )));
                }
                let recomputed = entry_hash(&entry.chain_fields());
                if &recomputed != stored {
                    return Some(broken(format!(
                        "entry_hash_mismatch: stored {stored}, recomputed {recomputed}"
                    )));
                }
                self.expected_previous = Some(stored.clone());
                self.started = true;
            }
        }
        self.seen += 1;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(session_id: &str, nonce: &str) -> MessageWrite {
        let mut forwarded = AuditEvent::new("broker.message_forwarded", Outcome::Ok)
            .detail("seq", Value::Null)
            .detail("nonce", nonce);
        forwarded.session_id = Some(session_id.to_owned());
        MessageWrite {
            message: NewMessage {
                session_id: session_id.to_owned(),
                sender_agent_id: "acme::buyer".into(),
                payload: r#"{"ciphertext":"x"}"#.into(),
                nonce: nonce.to_owned(),
                signed_timestamp: 1_700_000_000,
                signature: "sig".into(),
                client_seq: None,
                idempotency_key: None,
                expires_at: None,
            },
            evaluated: AuditEvent::new("policy.evaluated", Outcome::Ok),
            forwarded,
            replayed: AuditEvent::new("broker.message_send", Outcome::Denied)
                .detail("reason", "replay attack detected (DB)"),
        }
    }

    async fn events(db: &Db) -> Vec<(String, String, Option<String>)> {
        db.audit_entries_after(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.event_type, e.result, e.details))
            .collect()
    }

    async fn active_session(db: &Db, session_id: &str) {
        let session = crate::db::sessions::Session {
            session_id: session_id.into(),
            initiator_agent_id: "acme::buyer".into(),
            initiator_org_id: "acme".into(),
            target_agent_id: "beta::seller".into(),
            target_org_id: "beta".into(),
            status: "active".into(),
            requested_capabilities: vec![],
            created_at: crate::db::now_text(),
            expires_at: "9999-01-01T00:00:00.000000Z".into(),
            closed_at: None,
        };
        db.insert_session(&session).await.unwrap();
    }

    /// A resent idempotency key — in a later batch or in the same one — stores nothing and
    /// answers the first message's number; another key, sender or session is a new message.
    /// A message past its time to live is not delivered unless it was acknowledged.
    #[tokio::test]
    async fn an_idempotency_key_stores_one_message_and_expiry_hides_unacked_ones() {
        let (db, _scratch) = crate::db::test_support::db().await;
        active_session(&db, "s-1").await;
        let audit = Audit::new(db.clone());
        let keyed = |nonce: &str, key: &str| {
            let mut write = message("s-1", nonce);
            write.message.idempotency_key = Some(key.into());
            write
        };
        let first = audit.store_message(keyed("n-1", "k-1")).await.unwrap();
        assert!(matches!(first, Stored::Ok { seq: 0, .. }), "{first:?}");
        let resent = audit.store_message(keyed("n-2", "k-1")).await.unwrap();
        assert_eq!(resent, Stored::Duplicate { seq: 0 });
        let (a, b, c) = tokio::join!(
            audit.store_message(keyed("n-3", "k-2")),
            audit.store_message(keyed("n-4", "k-2")),
            audit.store_message(keyed("n-5", "k-3")),
        );
        let mut outcomes = [a.unwrap(), b.unwrap(), c.unwrap()];
        outcomes.sort_by_key(|o| format!("{o:?}"));
        let stored: Vec<i64> = outcomes
            .iter()
            .filter_map(|o| match o {
                Stored::Ok { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        let duplicates: Vec<&Stored> = outcomes
            .iter()
            .filter(|o| matches!(o, Stored::Duplicate { .. }))
            .collect();
        assert_eq!(stored.len(), 2, "{outcomes:?}");
        assert_eq!(duplicates.len(), 1, "{outcomes:?}");

        let mut expired = message("s-1", "n-6");
        expired.message.expires_at = Some(crate::db::unix_now() - 1);
        let Stored::Ok {
            seq: expired_seq, ..
        } = audit.store_message(expired).await.unwrap()
        else {
            panic!("stored")
        };
        let (_, delivered) = db
            .session_with_messages("s-1", "beta::seller", -1)
            .await
            .unwrap()
            .unwrap();
        let seqs: Vec<i64> = delivered.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [0, 1, 2], "one row per key, the expired one left out");
        assert!(!seqs.contains(&expired_seq));
    }

    /// Stored, replayed and too-late messages each leave exactly their rows, and a chain that
    /// verifies; only a stored message takes a sequence number.
    #[tokio::test]
    async fn a_message_commits_with_its_audit_rows_or_not_at_all() {
        let (db, _scratch) = crate::db::test_support::db().await;
        active_session(&db, "s-1").await;
        let audit = Audit::new(db.clone());

        let first = audit.store_message(message("s-1", "n-1")).await.unwrap();
        assert!(matches!(first, Stored::Ok { seq: 0, .. }), "{first:?}");
        let second = audit.store_message(message("s-1", "n-2")).await.unwrap();
        assert!(matches!(second, Stored::Ok { seq: 1, .. }), "{second:?}");
        let replay = audit.store_message(message("s-1", "n-1")).await.unwrap();
        assert_eq!(replay, Stored::NonceReused);
        db.transition_session("s-1", &["active"], "closed")
            .await
            .unwrap();
        let late = audit.store_message(message("s-1", "n-3")).await.unwrap();
        assert_eq!(late, Stored::NotActive);

        let (_, stored) = db
            .session_with_messages("s-1", "beta::seller", -1)
            .await
            .unwrap()
            .unwrap();
        let seqs: Vec<(i64, &str)> = stored.iter().map(|m| (m.seq, m.nonce.as_str())).collect();
        assert_eq!(
            seqs,
            [(0, "n-1"), (1, "n-2")],
            "nothing stored for the replay or after close"
        );
        let rows = events(&db).await;
        let kinds: Vec<(&str, &str)> = rows
            .iter()
            .map(|(kind, result, _)| (kind.as_str(), result.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("policy.evaluated", "ok"),
                ("broker.message_forwarded", "ok"),
                ("policy.evaluated", "ok"),
                ("broker.message_forwarded", "ok"),
                ("policy.evaluated", "ok"),
                ("broker.message_send", "denied"),
                ("policy.evaluated", "ok"),
            ]
        );
        assert_eq!(
            rows[3].2.as_deref(),
            Some(r#"{"seq": 1, "nonce": "n-2"}"#),
            "the writer fills in the assigned sequence number, in place"
        );
        assert!(verify_chain(&db).await.unwrap().valid);
    }

    /// Many writes queued at once go into one batch (three statements for its messages, one
    /// for its audit rows): each still gets its own outcome — replays of a stored nonce and of
    /// a nonce earlier in the same batch, a closed session — sequences per session stay
    /// gap-free in queue order, and the rows chain in queue order.
    #[tokio::test]
    async fn a_batch_of_queued_writes_keeps_each_outcome_and_the_order() {
        let (db, _scratch) = crate::db::test_support::db().await;
        for sid in ["s-a", "s-b", "s-closed"] {
            active_session(&db, sid).await;
        }
        let audit = Audit::new(db.clone());
        assert!(matches!(
            audit.store_message(message("s-a", "old")).await.unwrap(),
            Stored::Ok { seq: 0, .. }
        ));
        db.transition_session("s-closed", &["active"], "closed")
            .await
            .unwrap();

        // Queued before the writer task runs again (this runtime has one thread), so they
        // are taken as one batch.
        let writes = [
            ("s-a", "a1"),
            ("s-b", "b1"),
            ("s-a", "old"),
            ("s-a", "a2"),
            ("s-closed", "c1"),
            ("s-b", "b1"),
            ("s-b", "b2"),
        ];
        let event = audit.record(AuditEvent::new("org.registered", Outcome::Ok));
        let outcomes = futures_util::future::join_all(
            writes
                .iter()
                .map(|(sid, nonce)| audit.store_message(message(sid, nonce))),
        );
        let (recorded, outcomes) = tokio::join!(event, outcomes);
        recorded.unwrap();
        let seqs: Vec<Option<i64>> = outcomes
            .into_iter()
            .map(|outcome| match outcome.unwrap() {
                Stored::Ok { seq, .. } => Some(seq),
                Stored::NonceReused => Some(-1),
                Stored::NotActive | Stored::Duplicate { .. } => None,
            })
            .collect();
        assert_eq!(
            seqs,
            [Some(1), Some(0), Some(-1), Some(2), None, Some(-1), Some(1)],
            "a1 a2 follow the stored seq 0 of s-a; both replays refused; closed session refused"
        );

        for (sid, expected) in [("s-a", vec!["old", "a1", "a2"]), ("s-b", vec!["b1", "b2"])] {
            let (_, stored) = db
                .session_with_messages(sid, "beta::seller", -1)
                .await
                .unwrap()
                .unwrap();
            let nonces: Vec<&str> = stored.iter().map(|m| m.nonce.as_str()).collect();
            assert_eq!(nonces, expected, "{sid}");
        }
        let kinds: Vec<String> = events(&db)
            .await
            .into_iter()
            .skip(2) // the first message's two rows
            .map(|(kind, result, _)| format!("{kind}:{result}"))
            .collect();
        let forwarded = "broker.message_forwarded:ok";
        let evaluated = "policy.evaluated:ok";
        let replay = "broker.message_send:denied";
        assert_eq!(
            kinds,
            [
                "org.registered:ok",
                evaluated,
                forwarded, // a1
                evaluated,
                forwarded, // b1
                evaluated,
                replay, // old
                evaluated,
                forwarded, // a2
                evaluated, // c1: closed, no second row
                evaluated,
                replay, // b1 again
                evaluated,
                forwarded, // b2
            ]
        );
        assert!(verify_chain(&db).await.unwrap().valid);
    }

    /// Concurrent writers on several runtime threads: every write completes, sequences are
    /// gap-free per session and the chain verifies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_from_several_threads_all_complete_in_order() {
        let (db, _scratch) = crate::db::test_support::db().await;
        for sid in ["s-0", "s-1", "s-2", "s-3"] {
            active_session(&db, sid).await;
        }
        let audit = Audit::new(db.clone());
        let tasks: Vec<_> = (0..400)
            .map(|i| {
                let audit = audit.clone();
                tokio::spawn(async move {
                    let sid = format!("s-{}", i % 4);
                    audit.store_message(message(&sid, &format!("n-{i}"))).await
                })
            })
            .collect();
        for task in tasks {
            assert!(matches!(task.await.unwrap().unwrap(), Stored::Ok { .. }));
        }
        for sid in ["s-0", "s-1", "s-2", "s-3"] {
            let (_, stored) = db
                .session_with_messages(sid, "nobody", -1)
                .await
                .unwrap()
                .unwrap();
            let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (0..100).collect::<Vec<_>>(), "{sid}");
        }
        assert!(verify_chain(&db).await.unwrap().valid);
    }

    /// A batch that cannot be written fails each of its jobs (after the one-by-one retry):
    /// every waiting request gets an error, none hangs, and nothing is half written.
    #[tokio::test]
    async fn a_failed_batch_fails_each_waiting_request() {
        let (db, _scratch) = crate::db::test_support::db().await;
        active_session(&db, "s-1").await;
        let audit = Audit::new(db.clone());
        // Every append now fails: the table is gone.
        sqlx::query("ALTER TABLE audit_log RENAME TO audit_log_away")
            .execute(db.pool())
            .await
            .unwrap();
        let event = audit.record(AuditEvent::new("org.registered", Outcome::Ok));
        let message = audit.store_message(message("s-1", "n-1"));
        let (recorded, stored) = tokio::join!(event, message);
        assert!(recorded.is_err(), "{recorded:?}");
        assert!(stored.is_err(), "{stored:?}");
        // Nothing half written: the message did not commit without its audit rows.
        let (_, messages) = db
            .session_with_messages("s-1", "nobody", -1)
            .await
            .unwrap()
            .unwrap();
        assert!(messages.is_empty());
    }

    #[test]
    fn hash_of_a_fixed_row_matches_the_reference_formula() {
        // Values computed with the reference formula in Python:
        // hashlib.sha256("|".join([str(id), ts.isoformat(), ...]).encode()).hexdigest()
        let first = ChainFields {
            id: 1,
            timestamp: "2026-04-08T12:00:00.123456Z",
            event_type: "binding.created",
            agent_id: Some("acme::buyer"),
            session_id: None,
            org_id: Some("acme"),
            result: "ok",
            details: Some(r#"{"binding_id": 1}"#),
            previous_hash: None,
        };
        // 1|2026-04-08T12:00:00.123456+00:00|binding.created|acme::buyer||acme|ok|{"binding_id": 1}|genesis
        let previous = entry_hash(&first);
        assert_eq!(
            previous,
            "54a3c1367856942f57c4b77c5e0e95224d9e6dd52ba515fe428f0d72ebc6a22b"
        );
        // A whole second (no fraction in the isoformat), nothing optional, previous chained:
        // 2|2026-04-08T12:00:01+00:00|auth.token_issued||||ok||54a3…a22b
        let second = ChainFields {
            id: 2,
            timestamp: "2026-04-08T12:00:01.000000Z",
            event_type: "auth.token_issued",
            agent_id: None,
            session_id: None,
            org_id: None,
            result: "ok",
            details: None,
            previous_hash: Some(&previous),
        };
        assert_eq!(
            entry_hash(&second),
            "603f0d8fd43446e208832db316fe1b81af9165ca1fcf89cc57f30f40b56afe78"
        );
    }

    #[test]
    fn isoformat_is_pythons() {
        let at = parse_iso_datetime("2026-04-08T12:00:00.000000Z").unwrap();
        assert_eq!(python_isoformat(at), "2026-04-08T12:00:00+00:00");
        let at = parse_iso_datetime("2026-04-08T12:00:00.000001Z").unwrap();
        assert_eq!(python_isoformat(at), "2026-04-08T12:00:00.000001+00:00");
        // Naive values (SQLite via SQLAlchemy) are UTC; offsets are converted.
        assert_eq!(
            stored_isoformat("2026-04-08 12:00:00.5"),
            "2026-04-08T12:00:00.500000+00:00"
        );
        assert_eq!(
            stored_isoformat("2026-04-08T14:00:00+02:00"),
            "2026-04-08T12:00:00+00:00"
        );
        assert_eq!(stored_isoformat("garbage"), "garbage");
    }

    #[test]
    fn query_datetimes_parse_like_pydantic() {
        let utc = |s: &str| parse_iso_datetime(s).map(python_isoformat);
        assert_eq!(
            utc("2026-04-08").as_deref(),
            Some("2026-04-08T00:00:00+00:00")
        );
        assert_eq!(
            utc("2026-04-08T10:30").as_deref(),
            Some("2026-04-08T10:30:00+00:00")
        );
        assert_eq!(
            utc("2026-04-08T10:30:00-0130").as_deref(),
            Some("2026-04-08T12:00:00+00:00")
        );
        assert_eq!(
            utc("2026-04-08t10:30:00.1z").as_deref(),
            Some("2026-04-08T10:30:00.100000+00:00")
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-04-08T25:00",
            "2026-04-08X10:00",
            "2026-04-08T10:00:00+1",
            "2026-04-08T10:00.5",
            "２０２６-04-08",
        ] {
            assert_eq!(parse_iso_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn details_are_python_json_dumps() {
        let event = AuditEvent::new("x", Outcome::Ok)
            .detail("zeta", "é/\"q\"")
            .detail("alpha", json!(["a", 1, 2.5, null, true]))
            .detail("nested", json!({"b": {}, "a": []}))
            .detail("zeta", "again");
        assert_eq!(
            python_json_object(&event.details),
            r#"{"zeta": "again", "alpha": ["a", 1, 2.5, null, true], "nested": {"a": [], "b": {}}}"#
        );
        assert_eq!(
            python_json_object(&[("k".into(), json!("\u{e9}\u{1F600}"))]),
            r#"{"k": "\u00e9\ud83d\ude00"}"#
        );
    }

    fn stored(id: i64, previous: Option<&str>) -> StoredAuditEntry {
        let mut entry = StoredAuditEntry {
            id,
            timestamp: "2026-04-08T12:00:00.000000Z".into(),
            event_type: "auth.token_issued".into(),
            agent_id: Some("acme::a".into()),
            session_id: None,
            org_id: Some("acme".into()),
            details: None,
            result: "ok".into(),
            entry_hash: None,
            previous_hash: previous.map(str::to_owned),
        };
        entry.entry_hash = Some(entry_hash(&entry.chain_fields()));
        entry
    }

    #[test]
    fn walker_finds_each_kind_of_break() {
        let a = stored(1, None);
        let b = stored(2, a.entry_hash.as_deref());
        let c = stored(3, b.entry_hash.as_deref());
        let walk = |rows: &[&StoredAuditEntry]| {
            let mut walker = ChainWalker::default();
            rows.iter()
                .find_map(|row| walker.check(row))
                .map(|r| (r.total, r.broken_id, r.reason.unwrap()))
        };
        assert_eq!(walk(&[&a, &b, &c]), None);
        // A deleted middle row breaks the next one's link.
        let (index, id, reason) = walk(&[&a, &c]).unwrap();
        assert_eq!((index, id), (1, Some(3)));
        assert!(reason.starts_with("previous_hash_mismatch"), "{reason}");
        // An edited field breaks that row's own hash.
        let mut edited = b.clone();
        edited.details = Some("{}".into());
        let (index, id, reason) = walk(&[&a, &edited, &c]).unwrap();
        assert_eq!((index, id), (1, Some(2)));
        assert!(reason.starts_with("entry_hash_mismatch"), "{reason}");
        // Unhashed rows count but are skipped before the chain starts, and break it after.
        let mut legacy = stored(0, None);
        legacy.entry_hash = None;
        assert_eq!(walk(&[&legacy, &a, &b]), None);
        let mut inserted = stored(4, None);
        inserted.entry_hash = None;
        let (_, id, reason) = walk(&[&a, &b, &c, &inserted]).unwrap();
        assert_eq!(id, Some(4));
        assert!(reason.starts_with("unhashed_row"), "{reason}");
    }
}
