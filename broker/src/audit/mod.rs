//! The one way any part of the broker records an audit event, and the tamper-evident hash
//! chain over the stored events (broker spec §8).
//!
//! | module | what |
//! |---|---|
//! | [`event`] | [`AuditEvent`] and [`Outcome`]: what a handler records |
//! | [`writer`] | [`ChainWriter`]: the one writer of chained rows, events and stored messages alike |
//! | [`verify`] | [`verify_chain`]: walks the log and names the first broken row |
//!
//! Every identity decision goes through [`ChainWriter::record`]. Each stored row carries
//! `entry_hash = sha256_hex(id|timestamp|event_type|agent_id|session_id|org_id|result|details|
//! previous_hash_or_"genesis")` (§8.2, [`cullis_shared::audit_chain`]) and the `entry_hash` of
//! the row before it as `previous_hash`. Appends are serialised *in the database* (see
//! [`Db::begin_chain`](crate::db::Db::begin_chain)), so several broker processes on one
//! PostgreSQL still write a single chain without forks.
//!
//! Append-only is enforced twice: no code path updates or deletes an audit row, and database
//! triggers (migration `0003_audit_chain`) refuse `UPDATE`, `DELETE` (and on PostgreSQL
//! `TRUNCATE`) on `audit_log`. The chain is what makes tampering by someone who can bypass the
//! triggers *detectable*; note that a plain SHA-256 chain cannot stop an attacker who rewrites
//! every row after the one they changed — anchoring the head hash elsewhere does.
//!
//! Storage (`crate::db::audit`) imports nothing from here: the formula lives in
//! `cullis-shared`, and rows go down as [`AuditRow`](crate::db::audit::AuditRow)s.

pub mod event;
pub mod verify;
pub mod writer;

pub use event::{AuditEvent, Outcome};
pub use verify::{verify_chain, ChainReport};
pub use writer::{ChainWriter, MessageWrite};
