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
    /// The CA a rotation replaced, still accepted for logins until `previous_ca_until`.
    pub previous_ca_certificate: Option<String>,
    pub previous_ca_until: Option<i64>,
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
            previous_ca_certificate: row.try_get("previous_ca_certificate")?,
            previous_ca_until: row.try_get("previous_ca_until")?,
        })
    }

    /// The CAs whose leaves may log in at `now`: the current one, then — inside a rotation's
    /// overlap window — the one it replaced.
    pub fn login_cas(&self, now: i64) -> Vec<&str> {
        let previous = self
            .previous_ca_certificate
            .as_deref()
            .filter(|_| self.previous_ca_until.is_some_and(|until| now < until));
        self.ca_certificate
            .as_deref()
            .into_iter()
            .chain(previous)
            .collect()
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

const COLUMNS: &str = "org_id, display_name, secret_hash, status, registered_at, metadata_json, ca_certificate, webhook_url, previous_ca_certificate, previous_ca_until";

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
    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "select org"))]
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

    /// Replaces the org's secret hash if it is still `current` (two concurrent rotations
    /// cannot both win); `false` when it was not.
    pub async fn replace_org_secret(
        &self,
        org_id: &str,
        current: &str,
        new_hash: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE organizations SET secret_hash = $1 WHERE org_id = $2 AND secret_hash = $3",
        )
        .bind(new_hash)
        .bind(org_id)
        .bind(current)
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
        // A hard replacement also ends any rotation window: the old CA stops at once.
        sqlx::query("UPDATE organizations SET ca_certificate = $1, previous_ca_certificate = NULL, previous_ca_until = NULL WHERE org_id = $2")
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

    /// Makes `ca_pem` the org's CA while the current one keeps signing valid logins until
    /// `until` (pins and tokens stay: the org re-issues its agents' certificates meanwhile).
    /// `false` when the org has no CA to rotate from.
    pub async fn rotate_org_ca(
        &self,
        org_id: &str,
        ca_pem: &str,
        until: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE organizations SET previous_ca_certificate = ca_certificate, \
             previous_ca_until = $1, ca_certificate = $2 \
             WHERE org_id = $3 AND ca_certificate IS NOT NULL",
        )
        .bind(until)
        .bind(ca_pem)
        .bind(org_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Db {
    /// Deletes an org that never became a member: pending or rejected, without agents.
    /// `Ok(false)` when `org_id` is not such an org.
    pub async fn delete_unused_org(&self, org_id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM organizations WHERE org_id = $1 AND status IN ('pending', 'rejected') \
             AND NOT EXISTS (SELECT 1 FROM agents WHERE agents.org_id = $1)",
        )
        .bind(org_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every organisation, newest first (the console's list).
    pub async fn all_orgs(&self) -> Result<Vec<Org>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM organizations ORDER BY registered_at DESC, org_id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Org::from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(previous_until: Option<i64>) -> Org {
        Org {
            org_id: "acme".into(),
            display_name: "Acme".into(),
            secret_hash: String::new(),
            status: "active".into(),
            registered_at: String::new(),
            metadata_json: "{}".into(),
            ca_certificate: Some("new".into()),
            webhook_url: None,
            previous_ca_certificate: previous_until.map(|_| "old".into()),
            previous_ca_until: previous_until,
        }
    }

    #[test]
    fn the_previous_ca_logs_in_only_inside_the_window() {
        assert_eq!(org(Some(1_000)).login_cas(999), ["new", "old"]);
        assert_eq!(org(Some(1_000)).login_cas(1_000), ["new"]);
        assert_eq!(org(None).login_cas(0), ["new"]);
        let mut none = org(None);
        none.ca_certificate = None;
        assert!(none.login_cas(0).is_empty());
    }
}
