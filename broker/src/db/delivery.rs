//! Acknowledged delivery on `session_messages` (`cullis-sdk` 0.2.x): finding the message an
//! idempotency key already names, and the recipient's acknowledgement. Neither is on the relay's
//! hot path: a send without a key and a poll never come here.

use super::{now_text, unix_now, Db};

/// What an acknowledgement found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Acknowledged now or before (acknowledging twice is not an error).
    Acked,
    /// No message with this number from the other participant in this session.
    NotFound,
    /// Its time to live ran out before anyone acknowledged it: it is no longer delivered.
    Expired,
}

impl Db {
    /// The sequence number of the message `sender` stored in `session_id` with `key`.
    pub async fn message_with_idempotency_key(
        &self,
        session_id: &str,
        sender: &str,
        key: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT seq FROM session_messages \
             WHERE session_id = $1 AND sender_agent_id = $2 AND idempotency_key = $3",
        )
        .bind(session_id)
        .bind(sender)
        .bind(key)
        .fetch_optional(self.pool())
        .await
    }

    /// Marks message `seq` of `session_id` acknowledged by `reader`, who must be its recipient
    /// (the other participant: only messages not sent by `reader` match).
    pub async fn ack_message(
        &self,
        session_id: &str,
        seq: i64,
        reader: &str,
    ) -> Result<Ack, sqlx::Error> {
        let now = unix_now();
        let acked = sqlx::query(
            "UPDATE session_messages SET acked_at = COALESCE(acked_at, $1) \
             WHERE session_id = $2 AND seq = $3 AND sender_agent_id <> $4 \
             AND (acked_at IS NOT NULL OR expires_at IS NULL OR expires_at > $5)",
        )
        .bind(now_text())
        .bind(session_id)
        .bind(seq)
        .bind(reader)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        if acked > 0 {
            return Ok(Ack::Acked);
        }
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM session_messages \
             WHERE session_id = $1 AND seq = $2 AND sender_agent_id <> $3",
        )
        .bind(session_id)
        .bind(seq)
        .bind(reader)
        .fetch_optional(self.pool())
        .await?;
        Ok(if exists.is_some() {
            Ack::Expired
        } else {
            Ack::NotFound
        })
    }
}
