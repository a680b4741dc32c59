//! `revoked_certs` (by serial) and `jti_blacklist` (used client-assertion ids).

use super::{now_text, Db};
use sqlx::Row;

/// A revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCert {
    pub serial_hex: String,
    pub org_id: String,
    pub revoked_at: String,
    pub revoked_by: String,
    pub reason: Option<String>,
    pub cert_not_after: String,
    pub agent_id: Option<String>,
}

impl RevokedCert {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<RevokedCert, sqlx::Error> {
        Ok(RevokedCert {
            serial_hex: row.try_get("serial_hex")?,
            org_id: row.try_get("org_id")?,
            revoked_at: row.try_get("revoked_at")?,
            revoked_by: row.try_get("revoked_by")?,
            reason: row.try_get("reason")?,
            cert_not_after: row.try_get("cert_not_after")?,
            agent_id: row.try_get("agent_id")?,
        })
    }
}

const COLUMNS: &str =
    "serial_hex, org_id, revoked_at, revoked_by, reason, cert_not_after, agent_id";

impl Db {
    /// Records a revocation (serial already normalised); `Ok(None)` when it was revoked before.
    /// Rows for certificates expired more than 30 minutes ago are cleaned up on the way.
    pub async fn revoke_cert(
        &self,
        cert: &RevokedCert,
    ) -> Result<Option<RevokedCert>, sqlx::Error> {
        let cutoff =
            super::timestamp_text(time::OffsetDateTime::now_utc() - time::Duration::minutes(30));
        sqlx::query("DELETE FROM revoked_certs WHERE cert_not_after < $1")
            .bind(cutoff)
            .execute(self.pool())
            .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO revoked_certs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (serial_hex) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(&cert.serial_hex)
        .bind(&cert.org_id)
        .bind(now_text())
        .bind(&cert.revoked_by)
        .bind(&cert.reason)
        .bind(&cert.cert_not_after)
        .bind(&cert.agent_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(RevokedCert::from_row).transpose()
    }

    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "select revoked serial"))]
    pub async fn is_serial_revoked(&self, serial_hex: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query("SELECT 1 AS hit FROM revoked_certs WHERE serial_hex = $1")
            .bind(serial_hex)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    pub async fn revoked_certs(
        &self,
        org_id: Option<&str>,
    ) -> Result<Vec<RevokedCert>, sqlx::Error> {
        let rows = match org_id {
            Some(org_id) => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM revoked_certs WHERE org_id = $1 ORDER BY revoked_at, serial_hex"))
                    .bind(org_id)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM revoked_certs ORDER BY revoked_at, serial_hex"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(RevokedCert::from_row).collect()
    }

    /// Burns a client-assertion `jti` until `expires_at` (Unix seconds); `Ok(false)` = replay.
    /// Expired rows are purged on the way, at most every ten seconds per process.
    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "insert assertion jti"))]
    pub async fn burn_assertion_jti(
        &self,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        if self.due_for_purge(now) {
            sqlx::query("DELETE FROM jti_blacklist WHERE expires_at <= $1")
                .bind(now)
                .execute(self.pool())
                .await?;
        }
        let done = sqlx::query("INSERT INTO jti_blacklist (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
