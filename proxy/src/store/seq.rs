//! `client_seq` allocation per (agent, session), persisted so restarts never reuse a value.
//!
//! Values are handed out from blocks reserved in the database: the stored `next_seq` is the
//! ceiling of the block reserved last, so one write serves [`BLOCK`] sends, and a restart (or
//! a second process on the same store) starts above every value handed out before. The cost:
//! after a restart the sequence skips the unused rest of the old block — gaps, never reuse.

use super::{Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

/// Values reserved per database write.
pub const BLOCK: i64 = 64;

/// (agent id, session id).
type SeqKey = (String, String);

/// Reserved, unused ranges `[next, ceiling)` per (agent, session), shared by clones of a store.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqBlocks(Arc<tokio::sync::Mutex<HashMap<SeqKey, (i64, i64)>>>);

impl Store {
    /// Allocates the next `client_seq` for `agent_id` in `session_id` (0 for the first message).
    pub async fn next_client_seq(
        &self,
        agent_id: &str,
        session_id: &str,
    ) -> Result<u64, StoreError> {
        // Held across the reservation so two sends of one process never both reserve.
        let mut blocks = self.seq_blocks.0.lock().await;
        let key = (agent_id.to_owned(), session_id.to_owned());
        let (next, ceiling) = match blocks.get(&key) {
            Some(&(next, ceiling)) if next < ceiling => (next, ceiling),
            _ => {
                let ceiling = self.reserve_client_seqs(agent_id, session_id).await?;
                (ceiling - BLOCK, ceiling)
            }
        };
        blocks.insert(key, (next + 1, ceiling));
        u64::try_from(next).map_err(|_| StoreError::Corrupt("negative client_seq".into()))
    }

    /// Moves the stored ceiling up by one block and returns the new ceiling. One statement, so
    /// processes sharing the store never reserve overlapping blocks.
    async fn reserve_client_seqs(
        &self,
        agent_id: &str,
        session_id: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO client_seq(agent_id, session_id, next_seq) VALUES (?, ?, ?) \
             ON CONFLICT(agent_id, session_id) DO UPDATE SET next_seq = next_seq + excluded.next_seq \
             RETURNING next_seq",
        )
        .bind(agent_id)
        .bind(session_id)
        .bind(BLOCK)
        .fetch_one(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_continue_without_reuse_across_blocks_and_reopens() {
        let file = crate::store::ScratchFile::new("seq");
        let store = Store::open(&file.url).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..(BLOCK + 3) {
            seen.push(store.next_client_seq("acme::a", "s1").await.unwrap());
        }
        assert_eq!(seen, (0..(BLOCK as u64 + 3)).collect::<Vec<_>>());
        assert_eq!(store.next_client_seq("acme::a", "s2").await.unwrap(), 0);
        // A second process on the same file (or this one after a restart) never reuses a value.
        let reopened = Store::open(&file.url).await.unwrap();
        let next = reopened.next_client_seq("acme::a", "s1").await.unwrap();
        assert_eq!(next, 2 * BLOCK as u64, "starts above the reserved blocks");
        assert_eq!(
            store.next_client_seq("acme::a", "s1").await.unwrap(),
            BLOCK as u64 + 3
        );
    }
}
