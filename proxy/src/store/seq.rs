//! `client_seq` allocation per (agent, session), persisted so restarts never reuse a value.

use super::{Store, StoreError};

impl Store {
    /// Allocates the next `client_seq` for `agent_id` in `session_id` (0 for the first message).
    pub async fn next_client_seq(
        &self,
        agent_id: &str,
        session_id: &str,
    ) -> Result<u64, StoreError> {
        // One statement, so concurrent senders of one agent never get the same value.
        let next: i64 = sqlx::query_scalar(
            "INSERT INTO client_seq(agent_id, session_id, next_seq) VALUES (?, ?, 1) \
             ON CONFLICT(agent_id, session_id) DO UPDATE SET next_seq = next_seq + 1 \
             RETURNING next_seq",
        )
        .bind(agent_id)
        .bind(session_id)
        .fetch_one(self.pool())
        .await?;
        u64::try_from(next - 1).map_err(|_| StoreError::Corrupt("negative client_seq".into()))
    }
}
