//! `broker_signing_keys`: which broker key signs tokens, which public keys verify them, and
//! which are cut off — shared by every replica (the private keys stay in the KMS).

use super::Db;
use sqlx::Row;

/// Where a signing key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// Published and accepted, not yet signing: every replica learns it before any signs with
    /// it, so no replica ever sees a token under a key it does not know.
    Next,
    /// Signs every new token.
    Active,
    /// Rotated out: its tokens stay valid until they expire, then it leaves the JWKS.
    Previous,
    /// Cut off in an emergency: its tokens are refused at once.
    Retired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Next => "next",
            KeyStatus::Active => "active",
            KeyStatus::Previous => "previous",
            KeyStatus::Retired => "retired",
        }
    }

    fn parse(text: &str) -> Result<KeyStatus, sqlx::Error> {
        match text {
            "next" => Ok(KeyStatus::Next),
            "active" => Ok(KeyStatus::Active),
            "previous" => Ok(KeyStatus::Previous),
            "retired" => Ok(KeyStatus::Retired),
            other => Err(sqlx::Error::Decode(
                format!("unknown signing-key status '{other}'").into(),
            )),
        }
    }
}

/// One row of `broker_signing_keys` (times in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub public_key_pem: String,
    pub status: KeyStatus,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub deactivated_at: Option<i64>,
    pub retired_at: Option<i64>,
}

impl SigningKeyRow {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<SigningKeyRow, sqlx::Error> {
        Ok(SigningKeyRow {
            kid: row.try_get("kid")?,
            alg: row.try_get("alg")?,
            public_key_pem: row.try_get("public_key_pem")?,
            status: KeyStatus::parse(&row.try_get::<String, _>("status")?)?,
            created_at: row.try_get("created_at")?,
            activated_at: row.try_get("activated_at")?,
            deactivated_at: row.try_get("deactivated_at")?,
            retired_at: row.try_get("retired_at")?,
        })
    }
}

const COLUMNS: &str =
    "kid, alg, public_key_pem, status, created_at, activated_at, deactivated_at, retired_at";

impl Db {
    /// Every known key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM broker_signing_keys ORDER BY created_at, kid"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(SigningKeyRow::from_row).collect()
    }

    /// Adds a key in `status` (`Next`, or `Active` for the very first key); `Ok(false)` when the
    /// kid is already known or another key is already active.
    pub async fn add_signing_key(
        &self,
        kid: &str,
        alg: &str,
        public_key_pem: &str,
        status: KeyStatus,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let activated_at = (status == KeyStatus::Active).then_some(now);
        let done = sqlx::query(
            "INSERT INTO broker_signing_keys (kid, alg, public_key_pem, status, created_at, activated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(kid)
        .bind(alg)
        .bind(public_key_pem)
        .bind(status.as_str())
        .bind(now)
        .bind(activated_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes `kid` (a `next` or `previous` key) the active key and the current active key
    /// `previous`, in one transaction. `Ok(false)`: no such key in a state that may sign.
    pub async fn activate_signing_key(&self, kid: &str, now: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE broker_signing_keys SET status = 'previous', deactivated_at = $1 \
             WHERE status = 'active' AND kid <> $2",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE broker_signing_keys SET status = 'active', activated_at = $1, deactivated_at = NULL \
             WHERE kid = $2 AND status IN ('next', 'previous', 'active')",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Cuts `kid` off (never the active key). `Ok(None)`: no such key; `Ok(Some(status))`: the
    /// status it had (`Active` means nothing was changed).
    pub async fn retire_signing_key(
        &self,
        kid: &str,
        now: i64,
    ) -> Result<Option<KeyStatus>, sqlx::Error> {
        let Some(row) = self
            .signing_keys()
            .await?
            .into_iter()
            .find(|row| row.kid == kid)
        else {
            return Ok(None);
        };
        if row.status != KeyStatus::Active {
            sqlx::query(
                "UPDATE broker_signing_keys SET status = 'retired', retired_at = $1 \
                 WHERE kid = $2 AND status <> 'active'",
            )
            .bind(now)
            .bind(kid)
            .execute(self.pool())
            .await?;
        }
        Ok(Some(row.status))
    }
}
