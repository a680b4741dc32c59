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

    /// Returns `seq` — just handed out for (agent, session) and refused by the broker, so never
    /// used — when it is still the last value handed out: the next send gets it again. When it
    /// was the very first value of the pair, the reservation is dropped entirely (memory and
    /// store), so sends to a session the broker never accepted leave no state behind.
    pub async fn give_back_client_seq(
        &self,
        agent_id: &str,
        session_id: &str,
        seq: u64,
    ) -> Result<(), StoreError> {
        let mut blocks = self.seq_blocks.0.lock().await;
        let key = (agent_id.to_owned(), session_id.to_owned());
        let Some(&(next, ceiling)) = blocks.get(&key) else {
            return Ok(());
        };
        let seq = i64::try_from(seq).map_err(|_| StoreError::Corrupt("client_seq".into()))?;
        if next != seq + 1 {
            // Another send of the pair took a value since: keep everything as it is.
            return Ok(());
        }
        if seq == 0 && ceiling == BLOCK {
            blocks.remove(&key);
            // Only if no other process reserved a further block meanwhile.
            sqlx::query(
                "DELETE FROM client_seq WHERE agent_id = ? AND session_id = ? AND next_seq = ?",
            )
            .bind(agent_id)
            .bind(session_id)
            .bind(BLOCK)
            .execute(self.pool())
            .await?;
        } else {
            blocks.insert(key, (seq, ceiling));
        }
        Ok(())
    }

    /// Rows of the `client_seq` table (tests and diagnostics).
    pub async fn client_seq_rows(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM client_seq")
            .fetch_one(self.pool())
            .await?)
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

    #[tokio::test]
    async fn a_refused_first_value_leaves_no_state_and_a_later_one_is_reused() {
        let file = crate::store::ScratchFile::new("seq-give-back");
        let store = Store::open(&file.url).await.unwrap();
        let first = store.next_client_seq("acme::a", "unknown").await.unwrap();
        store
            .give_back_client_seq("acme::a", "unknown", first)
            .await
            .unwrap();
        assert_eq!(store.client_seq_rows().await.unwrap(), 0);
        assert!(store.seq_blocks.0.lock().await.is_empty());

        assert_eq!(store.next_client_seq("acme::a", "s").await.unwrap(), 0);
        let refused = store.next_client_seq("acme::a", "s").await.unwrap();
        store
            .give_back_client_seq("acme::a", "s", refused)
            .await
            .unwrap();
        assert_eq!(
            store.next_client_seq("acme::a", "s").await.unwrap(),
            refused
        );
        assert_eq!(store.client_seq_rows().await.unwrap(), 1);
    }
}
