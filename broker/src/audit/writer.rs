//! The one writer of the hash chain: every chained row — audit events, and the messages that
//! are stored together with theirs — is appended here.

use super::event::AuditEvent;
use crate::db::audit::{AuditRow, ChainTx};
use crate::db::sessions::{NewMessage, Stored};
use crate::db::Db;
use tokio::sync::{mpsc, oneshot};

/// Writes audit events, and the rows that must commit together with one (stored messages).
///
/// Appends go through one writer task per process that takes everything queued while the
/// previous write ran and appends it as one batch (one chain lock, one commit): concurrent
/// requests share the cost of serialising the chain instead of queueing on it one by one
/// (group commit). `record` and `store_message` return only once their rows are committed.
#[derive(Debug, Clone)]
pub struct ChainWriter {
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

impl ChainWriter {
    /// Starts the writer: a task on the current Tokio runtime, or on a SQLite file an OS
    /// thread of its own, since its batches run there without awaiting anything
    /// ([`crate::db::direct`]) and must not hold up a runtime worker. Either stops when the
    /// last `ChainWriter` clone is dropped.
    pub fn new(db: Db) -> ChainWriter {
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
        ChainWriter { queue }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{verify_chain, Outcome};
    use serde_json::Value;

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
        let audit = ChainWriter::new(db.clone());
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
        let audit = ChainWriter::new(db.clone());

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
        let audit = ChainWriter::new(db.clone());
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
        let audit = ChainWriter::new(db.clone());
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
        let audit = ChainWriter::new(db.clone());
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
}
