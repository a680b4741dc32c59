//! What the operator's console reads beyond the API's queries: counts for the overview, and
//! the console's own settings (the admin's console password hash).

use super::Db;
use sqlx::Row;

/// The overview's numbers, for the network or one org.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsoleCounts {
    pub orgs_active: i64,
    pub orgs_pending: i64,
    pub agents: i64,
    pub sessions_active: i64,
    pub sessions_denied: i64,
    pub audit_rows: i64,
}

impl Db {
    /// Counts for the overview; `org` narrows every count to that org's rows.
    pub async fn console_counts(&self, org: Option<&str>) -> Result<ConsoleCounts, sqlx::Error> {
        // `$1 IS NULL` keeps one statement per count for both scopes.
        let count = |sql: &'static str| async move {
            let row = sqlx::query(sql).bind(org).fetch_one(self.pool()).await?;
            row.try_get::<i64, _>("n")
        };
        Ok(ConsoleCounts {
            orgs_active: count(
                "SELECT COUNT(*) AS n FROM organizations WHERE status = 'active' AND ($1 IS NULL OR org_id = $1)",
            )
            .await?,
            orgs_pending: count(
                "SELECT COUNT(*) AS n FROM organizations WHERE status = 'pending' AND ($1 IS NULL OR org_id = $1)",
            )
            .await?,
            agents: count("SELECT COUNT(*) AS n FROM agents WHERE ($1 IS NULL OR org_id = $1)")
                .await?,
            sessions_active: count(
                "SELECT COUNT(*) AS n FROM sessions WHERE status = 'active' \
                 AND ($1 IS NULL OR initiator_org_id = $1 OR target_org_id = $1)",
            )
            .await?,
            sessions_denied: count(
                "SELECT COUNT(*) AS n FROM sessions WHERE status = 'denied' \
                 AND ($1 IS NULL OR initiator_org_id = $1 OR target_org_id = $1)",
            )
            .await?,
            audit_rows: count("SELECT COUNT(*) AS n FROM audit_log WHERE ($1 IS NULL OR org_id = $1)")
                .await?,
        })
    }

    /// A console setting, if set.
    pub async fn console_setting(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT value FROM console_settings WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| row.try_get("value")).transpose()
    }

    /// Sets a console setting (insert or replace).
    pub async fn set_console_setting(&self, name: &str, value: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO console_settings (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(super::now_text())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
