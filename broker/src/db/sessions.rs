//! `sessions`, `session_messages` and `notifications`: everything between two agents, durable,
//! so a broker restart loses no session and no message.

use super::audit::{ChainConn, ChainTx};
use super::direct::into_sqlx;
use super::{json_list, now_text, values_placeholders, Columns, Db};
use rusqlite::{named_params, OptionalExtension};
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// A session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub session_id: String,
    pub initiator_agent_id: String,
    pub initiator_org_id: String,
    pub target_agent_id: String,
    pub target_org_id: String,
    pub status: String,
    pub requested_capabilities: Vec<String>,
    pub created_at: String,
    pub expires_at: String,
    pub closed_at: Option<String>,
}

impl Session {
    fn from_row<R: Columns>(row: &R) -> Result<Session, R::Error> {
        Ok(Session {
            session_id: row.column("session_id")?,
            initiator_agent_id: row.column("initiator_agent_id")?,
            initiator_org_id: row.column("initiator_org_id")?,
            target_agent_id: row.column("target_agent_id")?,
            target_org_id: row.column("target_org_id")?,
            status: row.column("status")?,
            requested_capabilities: json_list(&row.column::<String>("requested_capabilities")?),
            created_at: row.column("created_at")?,
            expires_at: row.column("expires_at")?,
            closed_at: row.column("closed_at")?,
        })
    }

    pub fn is_participant(&self, agent_id: &str) -> bool {
        self.initiator_agent_id == agent_id || self.target_agent_id == agent_id
    }

    /// The other participant.
    pub fn peer_of(&self, agent_id: &str) -> &str {
        if self.initiator_agent_id == agent_id {
            &self.target_agent_id
        } else {
            &self.initiator_agent_id
        }
    }
}

const COLUMNS: &str = "session_id, initiator_agent_id, initiator_org_id, target_agent_id, target_org_id, status, requested_capabilities, created_at, expires_at, closed_at";

/// [`Db::send_context`]: `$1` session, `$2` sender, `$3` nonce.
static SEND_CONTEXT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS}, \
         (SELECT cert_pem FROM agents WHERE agent_id = $2) AS sender_cert_pem, \
         (SELECT COUNT(*) FROM session_messages WHERE nonce = $3) AS nonce_uses \
         FROM sessions WHERE session_id = $1"
    )
});

/// [`Db::session_with_messages`]: `$1` session, `$2` after, `$3` reader, `$4` now (Unix
/// seconds): a message past its time to live that nobody acknowledged is no longer delivered.
static POLL_SQL: LazyLock<String> = LazyLock::new(|| {
    let session_columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("s.{c}")).collect();
    format!(
        "SELECT {}, m.seq AS m_seq, m.sender_agent_id AS m_sender, m.payload AS m_payload, \
         m.nonce AS m_nonce, m.timestamp AS m_timestamp, m.signed_timestamp AS m_signed_timestamp, \
         m.signature AS m_signature, m.client_seq AS m_client_seq \
         FROM sessions s LEFT JOIN session_messages m \
         ON m.session_id = s.session_id AND m.seq > $2 AND m.sender_agent_id <> $3 \
         AND (m.expires_at IS NULL OR m.expires_at > $4 OR m.acked_at IS NOT NULL) \
         WHERE s.session_id = $1 ORDER BY m.seq",
        session_columns.join(", ")
    )
});

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub seq: i64,
    pub sender_agent_id: String,
    pub payload: String,
    pub nonce: String,
    pub timestamp: String,
    pub signed_timestamp: i64,
    pub signature: Option<String>,
    pub client_seq: Option<i64>,
}

impl StoredMessage {
    /// The message columns of a poll row ([`POLL_SQL`]); `None` for the LEFT JOIN's single
    /// all-NULL row when there is nothing new.
    fn from_poll_row<R: Columns>(row: &R) -> Result<Option<StoredMessage>, R::Error> {
        let Some(seq) = row.column::<Option<i64>>("m_seq")? else {
            return Ok(None);
        };
        Ok(Some(StoredMessage {
            seq,
            sender_agent_id: row.column("m_sender")?,
            payload: row.column("m_payload")?,
            nonce: row.column("m_nonce")?,
            timestamp: row.column("m_timestamp")?,
            signed_timestamp: row.column("m_signed_timestamp")?,
            signature: row.column("m_signature")?,
            client_seq: row.column("m_client_seq")?,
        }))
    }
}

/// A message about to be stored (owned: it travels to the writer task, see `crate::audit::writer`).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub session_id: String,
    pub sender_agent_id: String,
    /// The envelope payload as JSON text.
    pub payload: String,
    pub nonce: String,
    pub signed_timestamp: i64,
    pub signature: String,
    pub client_seq: Option<i64>,
    /// The sender's idempotency key: one message per (session, sender, key).
    pub idempotency_key: Option<String>,
    /// Unix seconds after which the message, unless acknowledged, is no longer delivered.
    pub expires_at: Option<i64>,
}

/// Outcome of storing a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored with this broker sequence number and receive time.
    Ok { seq: i64, timestamp: String },
    /// The nonce was used before (in any session).
    NonceReused,
    /// The session is no longer active.
    NotActive,
    /// The sender's idempotency key names a message already stored: its sequence number.
    Duplicate { seq: i64 },
}

/// (session, sender, idempotency key): what makes a resend the same message.
type IdempotencyKey<'m> = (&'m str, &'m str, &'m str);

fn idempotency_key(message: &NewMessage) -> Option<IdempotencyKey<'_>> {
    message.idempotency_key.as_deref().map(|key| {
        (
            message.session_id.as_str(),
            message.sender_agent_id.as_str(),
            key,
        )
    })
}

impl ChainTx {
    /// Stores messages, in order, each with the next sequence number of its session, inside
    /// the chain transaction. Every message write holds the chain lock (it always comes with an
    /// audit row), so across any number of senders and broker replicas they are serialised: the
    /// nonce check cannot race, and the counter bumps and the inserts commit together —
    /// sequences have no gaps or duplicates. Only messages whose outcome is `Ok` are written.
    ///
    /// On PostgreSQL three statements for the whole batch (each a round trip): the nonces
    /// already taken, one counter update for every session involved, one multi-row insert. On
    /// SQLite the same steps with one cached statement per message or session, none of which
    /// is a round trip.
    pub async fn insert_messages(
        &mut self,
        messages: &[&NewMessage],
    ) -> Result<Vec<Stored>, sqlx::Error> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let taken = self.taken_nonces(messages).await?;
        let mut stored_keys = self.stored_idempotency_keys(messages).await?;
        let mut seen = HashSet::with_capacity(messages.len());
        let mut seen_keys = HashSet::new();
        // Per message: not a replay (of a stored message or of one earlier in this batch), and
        // not a resend of an idempotency key (likewise).
        let replayed: Vec<bool> = messages
            .iter()
            .map(|m| taken.contains(&m.nonce) || !seen.insert(m.nonce.as_str()))
            .collect();
        let resent: Vec<bool> = messages
            .iter()
            .zip(&replayed)
            .map(|(m, replayed)| match idempotency_key(m) {
                Some(key) if !replayed => stored_keys.contains_key(&key) || !seen_keys.insert(key),
                _ => false,
            })
            .collect();
        let fresh: Vec<bool> = replayed
            .iter()
            .zip(&resent)
            .map(|(replayed, resent)| !replayed && !resent)
            .collect();
        let mut next_seq = self.advance_counters(messages, &fresh).await?;
        let timestamp = self.timestamp.clone();
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut to_insert = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            outcomes.push(if replayed[index] {
                Stored::NonceReused
            } else if resent[index] {
                // Stored before, or earlier in this batch (its number is assigned by now).
                let key = idempotency_key(message).expect("only keyed messages are resent");
                match stored_keys.get(&key) {
                    Some(seq) => Stored::Duplicate { seq: *seq },
                    None => Stored::NotActive,
                }
            } else if let Some(next) = next_seq.get_mut(message.session_id.as_str()) {
                *next += 1;
                to_insert.push((*message, *next - 1));
                if let Some(key) = idempotency_key(message) {
                    stored_keys.insert(key, *next - 1);
                }
                Stored::Ok {
                    seq: *next - 1,
                    timestamp: timestamp.clone(),
                }
            } else {
                Stored::NotActive
            });
        }
        self.insert_rows(&to_insert).await?;
        Ok(outcomes)
    }

    /// The sequence numbers of stored messages carrying one of the batch's idempotency keys.
    /// Messages without a key (every first-generation send) cost nothing here.
    async fn stored_idempotency_keys<'m>(
        &mut self,
        messages: &[&'m NewMessage],
    ) -> Result<HashMap<IdempotencyKey<'m>, i64>, sqlx::Error> {
        let keyed: Vec<IdempotencyKey<'m>> =
            messages.iter().filter_map(|m| idempotency_key(m)).collect();
        let mut found = HashMap::new();
        if keyed.is_empty() {
            return Ok(found);
        }
        const SQL: &str = "SELECT seq FROM session_messages \
             WHERE session_id = $1 AND sender_agent_id = $2 AND idempotency_key = $3";
        for key in keyed {
            let seq: Option<i64> = match &mut self.conn {
                ChainConn::Direct(tx) => tx
                    .connection()
                    .prepare_cached(&SQL.replace('$', "?"))
                    .and_then(|mut lookup| {
                        lookup
                            .query_row(rusqlite::params![key.0, key.1, key.2], |row| row.get(0))
                            .optional()
                    })
                    .map_err(into_sqlx)?,
                ChainConn::Pool(tx) => {
                    sqlx::query_scalar(SQL)
                        .bind(key.0)
                        .bind(key.1)
                        .bind(key.2)
                        .fetch_optional(&mut **tx)
                        .await?
                }
            };
            if let Some(seq) = seq {
                found.insert(key, seq);
            }
        }
        Ok(found)
    }

    /// The nonces of `messages` that a stored message already carries.
    async fn taken_nonces(
        &mut self,
        messages: &[&NewMessage],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let tx = match &mut self.conn {
            ChainConn::Direct(tx) => {
                let mut taken = HashSet::new();
                let mut lookup = tx
                    .connection()
                    .prepare_cached("SELECT 1 FROM session_messages WHERE nonce = ?1")
                    .map_err(into_sqlx)?;
                for message in messages {
                    if lookup.exists([&message.nonce]).map_err(into_sqlx)? {
                        taken.insert(message.nonce.clone());
                    }
                }
                return Ok(taken);
            }
            ChainConn::Pool(tx) => tx,
        };
        let sql = format!(
            "SELECT nonce FROM session_messages WHERE nonce IN {}",
            values_placeholders(1, messages.len())
        );
        let mut query = sqlx::query(&sql);
        for message in messages {
            query = query.bind(&message.nonce);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        rows.iter().map(|row| row.try_get("nonce")).collect()
    }

    /// Moves the counter of every active session by its number of fresh messages; per active
    /// session, the first sequence number this batch hands out. Closed sessions are absent.
    async fn advance_counters<'m>(
        &mut self,
        messages: &[&'m NewMessage],
        fresh: &[bool],
    ) -> Result<HashMap<&'m str, i64>, sqlx::Error> {
        let mut counts: Vec<(&'m str, i64)> = Vec::new();
        for (message, _) in messages.iter().zip(fresh).filter(|(_, fresh)| **fresh) {
            match counts
                .iter_mut()
                .find(|(sid, _)| *sid == message.session_id)
            {
                Some((_, count)) => *count += 1,
                None => counts.push((&message.session_id, 1)),
            }
        }
        if counts.is_empty() {
            return Ok(HashMap::new());
        }
        let tx = match &mut self.conn {
            ChainConn::Direct(tx) => {
                let mut first_seq = HashMap::with_capacity(counts.len());
                let mut advance = tx
                    .connection()
                    .prepare_cached(
                        "UPDATE sessions SET next_seq = next_seq + ?2 \
                         WHERE session_id = ?1 AND status = 'active' RETURNING next_seq",
                    )
                    .map_err(into_sqlx)?;
                for (session_id, count) in counts {
                    let next: Option<i64> = advance
                        .query_row(rusqlite::params![session_id, count], |row| row.get(0))
                        .optional()
                        .map_err(into_sqlx)?;
                    if let Some(next) = next {
                        first_seq.insert(session_id, next - count);
                    }
                }
                return Ok(first_seq);
            }
            ChainConn::Pool(tx) => tx,
        };
        // `CASE session_id WHEN $1 THEN $2 …` numbers parameters in order of appearance, and
        // the IN list reuses the odd ones.
        let mut sql = String::from("UPDATE sessions SET next_seq = next_seq + CASE session_id");
        for index in 0..counts.len() {
            sql.push_str(&format!(" WHEN ${} THEN ${}", 2 * index + 1, 2 * index + 2));
        }
        sql.push_str(" END WHERE status = 'active' AND session_id IN (");
        for index in 0..counts.len() {
            if index > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", 2 * index + 1));
        }
        sql.push_str(") RETURNING session_id, next_seq");
        let mut query = sqlx::query(&sql);
        for (session_id, count) in &counts {
            query = query.bind(*session_id).bind(*count);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        let mut first_seq = HashMap::with_capacity(rows.len());
        for row in rows {
            let session_id: String = row.try_get("session_id")?;
            let next: i64 = row.try_get("next_seq")?;
            if let Some((sid, count)) = counts.iter().find(|(sid, _)| *sid == session_id) {
                first_seq.insert(*sid, next - count);
            }
        }
        Ok(first_seq)
    }

    async fn insert_rows(&mut self, rows: &[(&NewMessage, i64)]) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = match &mut self.conn {
            ChainConn::Direct(tx) => {
                let mut insert = tx
                    .connection()
                    .prepare_cached(
                        "INSERT INTO session_messages (session_id, seq, sender_agent_id, payload, nonce, timestamp, signed_timestamp, signature, client_seq, idempotency_key, expires_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .map_err(into_sqlx)?;
                for (message, seq) in rows {
                    insert
                        .execute(rusqlite::params![
                            message.session_id,
                            seq,
                            message.sender_agent_id,
                            message.payload,
                            message.nonce,
                            self.timestamp,
                            message.signed_timestamp,
                            message.signature,
                            message.client_seq,
                            message.idempotency_key,
                            message.expires_at,
                        ])
                        .map_err(into_sqlx)?;
                }
                return Ok(());
            }
            ChainConn::Pool(tx) => tx,
        };
        let sql = format!(
            "INSERT INTO session_messages (session_id, seq, sender_agent_id, payload, nonce, timestamp, signed_timestamp, signature, client_seq, idempotency_key, expires_at) VALUES {}",
            values_placeholders(rows.len(), 11)
        );
        let timestamp = self.timestamp.clone();
        let mut query = sqlx::query(&sql);
        for (message, seq) in rows {
            query = query
                .bind(&message.session_id)
                .bind(*seq)
                .bind(&message.sender_agent_id)
                .bind(&message.payload)
                .bind(&message.nonce)
                .bind(&timestamp)
                .bind(message.signed_timestamp)
                .bind(&message.signature)
                .bind(message.client_seq)
                .bind(&message.idempotency_key)
                .bind(message.expires_at);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }
}

/// What the send path needs to know before it verifies a message, read in one query.
#[derive(Debug)]
pub struct SendContext {
    pub session: Session,
    /// The sender's pinned certificate, if it has one.
    pub sender_cert_pem: Option<String>,
    /// Whether a stored message already carries the envelope's nonce.
    pub nonce_used: bool,
}

impl SendContext {
    fn from_row<R: Columns>(row: &R) -> Result<SendContext, R::Error> {
        Ok(SendContext {
            session: Session::from_row(row)?,
            sender_cert_pem: row.column("sender_cert_pem")?,
            nonce_used: row.column::<i64>("nonce_uses")? > 0,
        })
    }
}

impl Db {
    /// The session, the sender's certificate and whether the nonce is taken — one round trip
    /// for the three reads every send makes. `None` when the session does not exist.
    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "select send context"))]
    pub async fn send_context(
        &self,
        session_id: &str,
        sender_agent_id: &str,
        nonce: &str,
    ) -> Result<Option<SendContext>, sqlx::Error> {
        if let Some(direct) = self.direct() {
            return direct.read(|c| {
                c.prepare_cached(&SEND_CONTEXT_SQL)?
                    .query_row(
                        named_params! { "$1": session_id, "$2": sender_agent_id, "$3": nonce },
                        |row| SendContext::from_row(row),
                    )
                    .optional()
            });
        }
        let row = sqlx::query(&SEND_CONTEXT_SQL)
            .bind(session_id)
            .bind(sender_agent_id)
            .bind(nonce)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(SendContext::from_row).transpose()
    }

    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "insert session"))]
    pub async fn insert_session(&self, session: &Session) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO sessions ({COLUMNS}, next_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)"
        ))
        .bind(&session.session_id)
        .bind(&session.initiator_agent_id)
        .bind(&session.initiator_org_id)
        .bind(&session.target_agent_id)
        .bind(&session.target_org_id)
        .bind(&session.status)
        .bind(serde_json::to_string(&session.requested_capabilities).expect("strings serialize"))
        .bind(&session.created_at)
        .bind(&session.expires_at)
        .bind(&session.closed_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "select session"))]
    pub async fn session(&self, session_id: &str) -> Result<Option<Session>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE session_id = $1"
        ))
        .bind(session_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Session::from_row).transpose()
    }

    /// Moves a session from one of `from` to `to` (compare-and-set); `None` when its status was
    /// not one of `from` any more. `closed_at` is set for terminal states.
    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "update session"))]
    pub async fn transition_session(
        &self,
        session_id: &str,
        from: &[&str],
        to: &str,
    ) -> Result<Option<Session>, sqlx::Error> {
        let terminal = matches!(to, "closed" | "denied");
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "UPDATE sessions SET status = $1, closed_at = CASE WHEN $2 = 1 THEN $3 ELSE closed_at END \
             WHERE session_id = ${} AND status IN ({}) RETURNING {COLUMNS}",
            from.len() + 4,
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(to)
            .bind(i64::from(terminal))
            .bind(now_text());
        for status in from {
            query = query.bind(*status);
        }
        let row = query.bind(session_id).fetch_optional(self.pool()).await?;
        row.as_ref().map(Session::from_row).transpose()
    }

    /// The caller's sessions (initiator or target), oldest first, optionally by status.
    pub async fn sessions_of(
        &self,
        agent_id: &str,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Session>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE (initiator_agent_id = $1 OR target_agent_id = $1) \
             AND ($2 = '' OR status = $2) ORDER BY created_at, session_id LIMIT $3 OFFSET $4"
        ))
        .bind(agent_id)
        .bind(status.unwrap_or(""))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Session::from_row).collect()
    }

    /// The session and the messages `reader` has not seen (seq > `after`, sent by the other
    /// participant) — one round trip for a poll. `None` when the session does not exist.
    pub async fn session_with_messages(
        &self,
        session_id: &str,
        reader: &str,
        after: i64,
    ) -> Result<Option<(Session, Vec<StoredMessage>)>, sqlx::Error> {
        let now = super::unix_now();
        if let Some(direct) = self.direct() {
            return direct.read(|c| {
                let mut statement = c.prepare_cached(&POLL_SQL)?;
                let mut rows = statement.query(
                    named_params! { "$1": session_id, "$2": after, "$3": reader, "$4": now },
                )?;
                let Some(first) = rows.next()? else {
                    return Ok(None);
                };
                let session = Session::from_row(first)?;
                let mut messages = Vec::new();
                let mut row = Some(first);
                while let Some(current) = row {
                    messages.extend(StoredMessage::from_poll_row(current)?);
                    row = rows.next()?;
                }
                Ok(Some((session, messages)))
            });
        }
        let rows = sqlx::query(&POLL_SQL)
            .bind(session_id)
            .bind(after)
            .bind(reader)
            .bind(now)
            .fetch_all(self.pool())
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let session = Session::from_row(first)?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            messages.extend(StoredMessage::from_poll_row(row)?);
        }
        Ok(Some((session, messages)))
    }

    pub async fn insert_notification(
        &self,
        recipient: &str,
        org_id: &str,
        kind: &str,
        title: &str,
        body: &str,
        reference_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO notifications (id, recipient_type, recipient_id, org_id, notification_type, title, body, reference_id, created_at) \
             VALUES ($1, 'agent', $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .bind(recipient)
        .bind(org_id)
        .bind(kind)
        .bind(title)
        .bind(body)
        .bind(reference_id)
        .bind(now_text())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn mark_notifications_acted(
        &self,
        recipient: &str,
        reference_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE notifications SET is_acted = 1, acted_at = $1 WHERE recipient_id = $2 AND reference_id = $3")
            .bind(now_text())
            .bind(recipient)
            .bind(reference_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Open notifications of an agent, newest first, at most 50:
    /// `(id, type, title, body, reference_id, created_at)`.
    pub async fn notifications_for(
        &self,
        recipient: &str,
        org_id: &str,
    ) -> Result<Vec<[Option<String>; 6]>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, notification_type, title, body, reference_id, created_at FROM notifications \
             WHERE recipient_type = 'agent' AND recipient_id = $1 AND org_id = $2 AND is_acted = 0 ORDER BY created_at DESC LIMIT 50",
        )
        .bind(recipient)
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok([
                    row.try_get("id")?,
                    row.try_get("notification_type")?,
                    row.try_get("title")?,
                    row.try_get("body")?,
                    row.try_get("reference_id")?,
                    row.try_get("created_at")?,
                ])
            })
            .collect()
    }
}

impl Db {
    /// Sessions for the console, newest first: those `org` takes part in (every org when
    /// `None`), of `status` when given, at most `limit`.
    pub async fn sessions_listed(
        &self,
        org: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Session>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE ($1 IS NULL OR initiator_org_id = $1 OR target_org_id = $1) \
             AND ($2 IS NULL OR status = $2) ORDER BY created_at DESC LIMIT $3"
        ))
        .bind(org)
        .bind(status)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Session::from_row).collect()
    }
}
