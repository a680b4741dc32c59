//! `transaction_tokens`: one row per issued transaction token; consumed at most once.

use super::{now_text, Db};
use sqlx::Row;

/// A transaction token as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransactionToken {
    pub jti: String,
    pub txn_type: String,
    pub agent_id: String,
    pub org_id: String,
    pub resource_id: Option<String>,
    pub payload_hash: String,
    pub approved_by: String,
    pub parent_jti: Option<String>,
    pub rfq_id: Option<String>,
    pub target_agent_id: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Why a token could not be consumed (ref-auth-crypto X-04..X-07, the reference's texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    #[error("Transaction token not found")]
    NotFound,
    #[error("Transaction token already consumed")]
    AlreadyConsumed,
    #[error("Transaction token expired")]
    Expired,
    #[error("Payload hash mismatch — message does not match approved payload")]
    PayloadMismatch,
}

impl Db {
    pub async fn insert_transaction_token(
        &self,
        token: &NewTransactionToken,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO transaction_tokens (jti, txn_type, agent_id, org_id, resource_id, payload_hash, \
             approved_by, parent_jti, rfq_id, target_agent_id, status, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $12)",
        )
        .bind(&token.jti)
        .bind(&token.txn_type)
        .bind(&token.agent_id)
        .bind(&token.org_id)
        .bind(&token.resource_id)
        .bind(&token.payload_hash)
        .bind(&token.approved_by)
        .bind(&token.parent_jti)
        .bind(&token.rfq_id)
        .bind(&token.target_agent_id)
        .bind(now_text())
        .bind(token.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Consumes `jti` for a payload hashing to `payload_hash`, atomically: of two concurrent
    /// sends with one token exactly one wins. A failure says why (an expired row is marked so).
    pub async fn consume_transaction_token(
        &self,
        jti: &str,
        payload_hash: &str,
        now: i64,
    ) -> Result<Result<(), ConsumeError>, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE transaction_tokens SET status = 'consumed', consumed_at = $1 \
             WHERE jti = $2 AND status = 'active' AND expires_at > $3 AND payload_hash = $4",
        )
        .bind(now_text())
        .bind(jti)
        .bind(now)
        .bind(payload_hash)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Ok(()));
        }
        let row = sqlx::query(
            "SELECT status, expires_at, payload_hash FROM transaction_tokens WHERE jti = $1",
        )
        .bind(jti)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(Err(ConsumeError::NotFound));
        };
        let status: String = row.try_get("status")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let stored_hash: String = row.try_get("payload_hash")?;
        Ok(Err(match status.as_str() {
            "consumed" => ConsumeError::AlreadyConsumed,
            "expired" => ConsumeError::Expired,
            _ if expires_at <= now => {
                sqlx::query("UPDATE transaction_tokens SET status = 'expired' WHERE jti = $1 AND status = 'active'")
                    .bind(jti)
                    .execute(self.pool())
                    .await?;
                ConsumeError::Expired
            }
            _ if stored_hash != payload_hash => ConsumeError::PayloadMismatch,
            // Lost a race with a concurrent consumer between the UPDATE and this read.
            _ => ConsumeError::AlreadyConsumed,
        }))
    }

    /// Gives a consumed token back when the message it was consumed for was not stored (a
    /// replayed nonce, a session closed meanwhile), so a refused send costs no approval.
    pub async fn release_transaction_token(&self, jti: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE transaction_tokens SET status = 'active', consumed_at = NULL \
             WHERE jti = $1 AND status = 'consumed'",
        )
        .bind(jti)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_support::db;

    const NOW: i64 = 1_700_000_000;

    fn token(jti: &str) -> NewTransactionToken {
        NewTransactionToken {
            jti: jti.into(),
            txn_type: "CREATE_ORDER".into(),
            agent_id: "acme::buyer".into(),
            org_id: "acme".into(),
            resource_id: None,
            payload_hash: "aa".into(),
            approved_by: "acme::buyer".into(),
            parent_jti: None,
            rfq_id: None,
            target_agent_id: None,
            expires_at: NOW + 60,
        }
    }

    #[tokio::test]
    async fn x04_x07_consume_once_for_the_approved_hash_before_expiry() {
        let (db, _scratch) = db().await;
        db.insert_transaction_token(&token("t1")).await.unwrap();
        // another payload; the token stays usable.
        assert_eq!(
            db.consume_transaction_token("t1", "bb", NOW).await.unwrap(),
            Err(ConsumeError::PayloadMismatch)
        );
        assert_eq!(
            db.consume_transaction_token("t1", "aa", NOW).await.unwrap(),
            Ok(())
        );
        // once only; a release (the message was not stored) gives it back.
        assert_eq!(
            db.consume_transaction_token("t1", "aa", NOW).await.unwrap(),
            Err(ConsumeError::AlreadyConsumed)
        );
        db.release_transaction_token("t1").await.unwrap();
        assert_eq!(
            db.consume_transaction_token("t1", "aa", NOW).await.unwrap(),
            Ok(())
        );
        // expired, and the row says so.
        db.insert_transaction_token(&token("t2")).await.unwrap();
        assert_eq!(
            db.consume_transaction_token("t2", "aa", NOW + 60)
                .await
                .unwrap(),
            Err(ConsumeError::Expired)
        );
        assert_eq!(
            db.consume_transaction_token("t2", "aa", NOW).await.unwrap(),
            Err(ConsumeError::Expired),
            "an expired row stays expired"
        );
        //
        assert_eq!(
            db.consume_transaction_token("nope", "aa", NOW)
                .await
                .unwrap(),
            Err(ConsumeError::NotFound)
        );
        assert_eq!(
            ConsumeError::PayloadMismatch.to_string(),
            "Payload hash mismatch — message does not match approved payload"
        );
    }

    #[tokio::test]
    async fn of_concurrent_consumers_exactly_one_wins() {
        let (db, _scratch) = db().await;
        db.insert_transaction_token(&token("t")).await.unwrap();
        let attempts = (0..8).map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.consume_transaction_token("t", "aa", NOW).await.unwrap() })
        });
        let mut wins = 0;
        for attempt in attempts {
            if attempt.await.unwrap().is_ok() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
    }
}
