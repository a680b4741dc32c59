//! The `internal_agents` table.

use super::{Store, StoreError};

/// A local agent as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    pub agent_id: String,
    pub name: String,
    pub display_name: String,
    /// JSON array text.
    pub capabilities: String,
    pub api_key_hash: String,
    pub cert_pem: Option<String>,
    pub created_at: String,
    pub is_active: bool,
}

impl AgentRow {
    /// The capabilities as a list (an unreadable column reads as empty).
    pub fn capability_list(&self) -> Vec<String> {
        serde_json::from_str(&self.capabilities).unwrap_or_default()
    }
}

const COLUMNS: &str =
    "agent_id, name, display_name, capabilities, api_key_hash, cert_pem, created_at, is_active";

impl Store {
    pub async fn insert_agent(&self, row: &AgentRow) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO internal_agents({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&row.agent_id)
        .bind(&row.name)
        .bind(&row.display_name)
        .bind(&row.capabilities)
        .bind(&row.api_key_hash)
        .bind(&row.cert_pem)
        .bind(&row.created_at)
        .bind(row.is_active)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The agent whose API key carries `name` (the O(1) lookup of API-key auth).
    pub async fn agent_by_name(&self, name: &str) -> Result<Option<AgentRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM internal_agents WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM internal_agents ORDER BY name"
        ))
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn set_agent_api_key_hash(&self, name: &str, hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE internal_agents SET api_key_hash = ? WHERE name = ?")
            .bind(hash)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_agent_cert(&self, name: &str, cert_pem: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE internal_agents SET cert_pem = ? WHERE name = ?")
            .bind(cert_pem)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_agent_active(&self, name: &str, active: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE internal_agents SET is_active = ? WHERE name = ?")
            .bind(active)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_agent(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM internal_agents WHERE name = ?")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A claim older than this belongs to a create that died midway and may be taken over.
const STALE_CLAIM_SECONDS: i64 = 300;

impl Store {
    /// Claims `name` for a create; false when another create holds a live claim on it. One
    /// statement, so two processes sharing the store cannot both win.
    pub async fn claim_agent_name(&self, name: &str) -> Result<bool, StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let done = sqlx::query(
            "INSERT INTO agent_claims(name, claimed_at) VALUES (?, ?) \
             ON CONFLICT(name) DO UPDATE SET claimed_at = excluded.claimed_at \
             WHERE agent_claims.claimed_at < ?",
        )
        .bind(name)
        .bind(now)
        .bind(now - STALE_CLAIM_SECONDS)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the claim of a create, whatever its outcome.
    pub async fn release_agent_name(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM agent_claims WHERE name = ?")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
