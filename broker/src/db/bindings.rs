//! `bindings`: an organisation's approval of one of its agents, with the scope its tokens get.

use super::{json_list, now_text, Db};
use sqlx::Row;

/// A binding row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub id: i64,
    pub org_id: String,
    pub agent_id: String,
    pub status: String,
    pub scope: Vec<String>,
    pub approved_at: Option<String>,
    pub approved_by: Option<String>,
    pub created_at: String,
}

impl Binding {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Binding, sqlx::Error> {
        Ok(Binding {
            id: row.try_get("id")?,
            org_id: row.try_get("org_id")?,
            agent_id: row.try_get("agent_id")?,
            status: row.try_get("status")?,
            scope: json_list(&row.try_get::<String, _>("scope_json")?),
            approved_at: row.try_get("approved_at")?,
            approved_by: row.try_get("approved_by")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const COLUMNS: &str =
    "id, org_id, agent_id, status, scope_json, approved_at, approved_by, created_at";

impl Db {
    pub async fn binding(&self, id: i64) -> Result<Option<Binding>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM bindings WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(Binding::from_row).transpose()
    }

    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "select binding"))]
    pub async fn binding_for(
        &self,
        org_id: &str,
        agent_id: &str,
    ) -> Result<Option<Binding>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM bindings WHERE org_id = $1 AND agent_id = $2"
        ))
        .bind(org_id)
        .bind(agent_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Binding::from_row).transpose()
    }

    pub async fn bindings_of_org(&self, org_id: &str) -> Result<Vec<Binding>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM bindings WHERE org_id = $1 ORDER BY id"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Binding::from_row).collect()
    }

    /// Creates a pending binding; `Ok(None)` when one exists for (org, agent) in any state.
    pub async fn insert_binding(
        &self,
        org_id: &str,
        agent_id: &str,
        scope: &[String],
    ) -> Result<Option<Binding>, sqlx::Error> {
        let scope_json = serde_json::to_string(scope).expect("strings serialize");
        let row = sqlx::query(&format!(
            "INSERT INTO bindings (org_id, agent_id, status, scope_json, created_at) VALUES ($1, $2, 'pending', $3, $4) \
             ON CONFLICT (org_id, agent_id) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(org_id)
        .bind(agent_id)
        .bind(scope_json)
        .bind(now_text())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Binding::from_row).transpose()
    }

    /// Moves a binding to `approved` unless it already is; returns the row after the change,
    /// or `None` when it was already approved (compare-and-set, safe under concurrency).
    pub async fn approve_binding(
        &self,
        id: i64,
        approved_by: &str,
    ) -> Result<Option<Binding>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "UPDATE bindings SET status = 'approved', approved_at = $1, approved_by = $2 WHERE id = $3 AND status <> 'approved' RETURNING {COLUMNS}"
        ))
        .bind(now_text())
        .bind(approved_by)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Binding::from_row).transpose()
    }

    /// Revokes a binding and the agent's tokens in one transaction.
    pub async fn revoke_binding(
        &self,
        id: i64,
        invalidate_at: i64,
    ) -> Result<Option<Binding>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE bindings SET status = 'revoked' WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let binding = row.as_ref().map(Binding::from_row).transpose()?;
        if let Some(binding) = &binding {
            sqlx::query("UPDATE agents SET token_invalidated_at = $1 WHERE agent_id = $2")
                .bind(invalidate_at)
                .bind(&binding.agent_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(binding)
    }
}
