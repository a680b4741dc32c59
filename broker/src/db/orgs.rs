//! `organizations`.

use super::{now_text, Db};
use sqlx::Row;

/// An organisation row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub org_id: String,
    pub display_name: String,
    pub secret_hash: String,
    pub status: String,
    pub registered_at: String,
    pub metadata_json: String,
    pub ca_certificate: Option<String>,
    pub webhook_url: Option<String>,
}

impl Org {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Org, sqlx::Error> {
        Ok(Org {
            org_id: row.try_get("org_id")?,
            display_name: row.try_get("display_name")?,
            secret_hash: row.try_get("secret_hash")?,
            status: row.try_get("status")?,
            registered_at: row.try_get("registered_at")?,
            metadata_json: row.try_get("metadata_json")?,
            ca_certificate: row.try_get("ca_certificate")?,
            webhook_url: row.try_get("webhook_url")?,
        })
    }

    /// `contact_email` from the metadata, or "".
    pub fn contact_email(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.metadata_json)
            .ok()
            .and_then(|m| {
                m.get("contact_email")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    }
}

const COLUMNS: &str = "org_id, display_name, secret_hash, status, registered_at, metadata_json, ca_certificate, webhook_url";

/// What a new organisation starts with.
#[derive(Debug, Clone)]
pub struct NewOrg<'a> {
    pub org_id: &'a str,
    pub display_name: &'a str,
    pub secret_hash: &'a str,
    pub status: &'a str,
    pub metadata_json: &'a str,
    pub ca_certificate: Option<&'a str>,
    pub webhook_url: Option<&'a str>,
}

impl Db {
    pub async fn org(&self, org_id: &str) -> Result<Option<Org>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM organizations WHERE org_id = $1"
        ))
        .bind(org_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Org::from_row).transpose()
    }

    pub async fn orgs_with_status(&self, status: &str) -> Result<Vec<Org>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM organizations WHERE status = $1 ORDER BY registered_at, org_id"
        ))
        .bind(status)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Org::from_row).collect()
    }

    /// Inserts an organisation; `Ok(false)` when the id is taken.
    pub async fn insert_org(&self, org: &NewOrg<'_>) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO organizations (org_id, display_name, secret_hash, status, registered_at, metadata_json, ca_certificate, webhook_url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(org.org_id)
        .bind(org.display_name)
        .bind(org.secret_hash)
        .bind(org.status)
        .bind(now_text())
        .bind(org.metadata_json)
        .bind(org.ca_certificate)
        .bind(org.webhook_url)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves the org to `status` if it is in `from` (compare-and-set, so two concurrent
    /// decisions cannot both win); `false` when it was not.
    pub async fn transition_org_status(
        &self,
        org_id: &str,
        from: &[&str],
        status: &str,
    ) -> Result<bool, sqlx::Error> {
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE organizations SET status = $1 WHERE org_id = $2 AND status IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(status).bind(org_id);
        for state in from {
            query = query.bind(*state);
        }
        Ok(query.execute(self.pool()).await?.rows_affected() == 1)
    }

    /// Replaces the org CA. When one was already set, every agent's pin is cleared and its
    /// tokens invalidated, in the same transaction (a cert from the old CA must not log in).
    pub async fn replace_org_ca(
        &self,
        org_id: &str,
        ca_pem: &str,
        invalidate_at: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let previous: Option<Option<String>> =
            sqlx::query("SELECT ca_certificate FROM organizations WHERE org_id = $1")
                .bind(org_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("ca_certificate"))
                .transpose()?;
        sqlx::query("UPDATE organizations SET ca_certificate = $1 WHERE org_id = $2")
            .bind(ca_pem)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        if matches!(previous, Some(Some(_))) {
            sqlx::query("UPDATE agents SET cert_pem = NULL, cert_thumbprint = NULL, token_invalidated_at = $1 WHERE org_id = $2")
                .bind(invalidate_at)
                .bind(org_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}
