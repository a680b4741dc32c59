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
    /// Counts for the overview, in one round trip; `org` narrows every count to that org's
    /// rows (`$1 IS NULL` keeps one statement for both scopes).
    pub async fn console_counts(&self, org: Option<&str>) -> Result<ConsoleCounts, sqlx::Error> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM organizations WHERE status = 'active' AND ($1 IS NULL OR org_id = $1)) AS orgs_active, \
             (SELECT COUNT(*) FROM organizations WHERE status = 'pending' AND ($1 IS NULL OR org_id = $1)) AS orgs_pending, \
             (SELECT COUNT(*) FROM agents WHERE $1 IS NULL OR org_id = $1) AS agents, \
             (SELECT COUNT(*) FROM sessions WHERE status = 'active' \
                AND ($1 IS NULL OR initiator_org_id = $1 OR target_org_id = $1)) AS sessions_active, \
             (SELECT COUNT(*) FROM sessions WHERE status = 'denied' \
                AND ($1 IS NULL OR initiator_org_id = $1 OR target_org_id = $1)) AS sessions_denied, \
             (SELECT COUNT(*) FROM audit_log WHERE $1 IS NULL OR org_id = $1) AS audit_rows",
        )
        .bind(org)
        .fetch_one(self.pool())
        .await?;
        Ok(ConsoleCounts {
            orgs_active: row.try_get("orgs_active")?,
            orgs_pending: row.try_get("orgs_pending")?,
            agents: row.try_get("agents")?,
            sessions_active: row.try_get("sessions_active")?,
            sessions_denied: row.try_get("sessions_denied")?,
            audit_rows: row.try_get("audit_rows")?,
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
