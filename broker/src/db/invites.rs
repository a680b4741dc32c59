//! `invite_tokens`: single-use onboarding invites, stored only as SHA-256 of the token.

use super::{flag, now_text, timestamp_text, Db};
use sqlx::Row;
use time::OffsetDateTime;

/// An invite row (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub id: String,
    pub label: String,
    pub created_at: String,
    pub expires_at: String,
    pub used: bool,
    pub used_by_org_id: Option<String>,
    pub revoked: bool,
}

impl Invite {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Invite, sqlx::Error> {
        Ok(Invite {
            id: row.try_get("id")?,
            label: row.try_get("label")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            used: flag(row, "used")?,
            used_by_org_id: row.try_get("used_by_org_id")?,
            revoked: flag(row, "revoked")?,
        })
    }
}

const COLUMNS: &str = "id, label, created_at, expires_at, used, used_by_org_id, revoked";

impl Db {
    pub async fn insert_invite(
        &self,
        id: &str,
        token_hash: &str,
        label: &str,
        expires_at: OffsetDateTime,
    ) -> Result<Invite, sqlx::Error> {
        let row = sqlx::query(&format!(
            "INSERT INTO invite_tokens (id, token_hash, label, created_at, expires_at, used, revoked) VALUES ($1, $2, $3, $4, $5, 0, 0) RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(token_hash)
        .bind(label)
        .bind(now_text())
        .bind(timestamp_text(expires_at))
        .fetch_one(self.pool())
        .await?;
        Invite::from_row(&row)
    }

    pub async fn invites(&self) -> Result<Vec<Invite>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM invite_tokens ORDER BY created_at DESC, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Invite::from_row).collect()
    }

    /// Whether an unused, unrevoked, unexpired invite has this hash (no state change).
    pub async fn valid_invite(&self, token_hash: &str) -> Result<Option<Invite>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM invite_tokens WHERE token_hash = $1 AND used = 0 AND revoked = 0 AND expires_at >= $2"
        ))
        .bind(token_hash)
        .bind(now_text())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Invite::from_row).transpose()
    }

    pub async fn revoke_invite(&self, id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE invite_tokens SET revoked = 1 WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Why an atomic join did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined { invite_id: String },
    InviteInvalid,
    OrgExists,
}

impl Db {
    /// Consumes the invite and creates the (pending) organisation in one transaction: either
    /// both happen or neither, so a failed join burns no invite and leaves no org behind.
    pub async fn join_with_invite(
        &self,
        token_hash: &str,
        org: &super::orgs::NewOrg<'_>,
    ) -> Result<JoinOutcome, sqlx::Error> {
        let now = now_text();
        let mut tx = self.pool().begin().await?;
        let invite = sqlx::query(
            "UPDATE invite_tokens SET used = 1, used_at = $1, used_by_org_id = $2 \
             WHERE token_hash = $3 AND used = 0 AND revoked = 0 AND expires_at >= $1 RETURNING id",
        )
        .bind(&now)
        .bind(org.org_id)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(invite) = invite else {
            tx.rollback().await?;
            return Ok(JoinOutcome::InviteInvalid);
        };
        let inserted = sqlx::query(
            "INSERT INTO organizations (org_id, display_name, secret_hash, status, registered_at, metadata_json, ca_certificate, webhook_url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(org.org_id)
        .bind(org.display_name)
        .bind(org.secret_hash)
        .bind(org.status)
        .bind(&now)
        .bind(org.metadata_json)
        .bind(org.ca_certificate)
        .bind(org.webhook_url)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(JoinOutcome::OrgExists);
        }
        tx.commit().await?;
        Ok(JoinOutcome::Joined {
            invite_id: invite.try_get("id")?,
        })
    }
}
