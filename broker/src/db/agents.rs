//! `agents`.

use super::{json_list, now_text, Columns, Db};
use rusqlite::{named_params, OptionalExtension};
use sqlx::Row;
use std::sync::LazyLock;

/// An agent row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub agent_id: String,
    pub org_id: String,
    pub display_name: String,
    pub description: String,
    pub capabilities: Vec<String>,
    pub metadata_json: String,
    pub is_active: bool,
    pub registered_at: String,
    pub cert_pem: Option<String>,
    pub cert_thumbprint: Option<String>,
    /// Tokens with `iat` ≤ this (Unix seconds) are revoked.
    pub token_invalidated_at: Option<i64>,
}

impl Agent {
    pub(super) fn from_row<R: Columns>(row: &R) -> Result<Agent, R::Error> {
        Ok(Agent {
            agent_id: row.column("agent_id")?,
            org_id: row.column("org_id")?,
            display_name: row.column("display_name")?,
            description: row.column("description")?,
            capabilities: json_list(&row.column::<String>("capabilities_json")?),
            metadata_json: row.column("metadata_json")?,
            is_active: row.column::<i64>("is_active")? != 0,
            registered_at: row.column("registered_at")?,
            cert_pem: row.column("cert_pem")?,
            cert_thumbprint: row.column("cert_thumbprint")?,
            token_invalidated_at: row.column("token_invalidated_at")?,
        })
    }
}

const COLUMNS: &str = "agent_id, org_id, display_name, description, capabilities_json, metadata_json, is_active, registered_at, cert_pem, cert_thumbprint, token_invalidated_at";

/// [`Db::agent`] (a read on every login and registry lookup): `$1` agent id.
static AGENT_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM agents WHERE agent_id = $1"));

/// What a new agent starts with.
#[derive(Debug, Clone)]
pub struct NewAgent<'a> {
    pub agent_id: &'a str,
    pub org_id: &'a str,
    pub display_name: &'a str,
    pub description: &'a str,
    pub capabilities_json: &'a str,
    pub metadata_json: &'a str,
}

impl Db {
    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "select agent"))]
    pub async fn agent(&self, agent_id: &str) -> Result<Option<Agent>, sqlx::Error> {
        if let Some(direct) = self.direct() {
            return direct.read(|c| {
                c.prepare_cached(&AGENT_BY_ID)?
                    .query_row(named_params! { "$1": agent_id }, |row| Agent::from_row(row))
                    .optional()
            });
        }
        let row = sqlx::query(&AGENT_BY_ID)
            .bind(agent_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(Agent::from_row).transpose()
    }

    pub async fn agents_of_org(&self, org_id: &str) -> Result<Vec<Agent>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agents WHERE org_id = $1 ORDER BY registered_at, agent_id"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Agent::from_row).collect()
    }

    /// Inserts an agent with one `agent_capabilities` row per distinct capability (what
    /// discovery looks up), in one transaction; `Ok(false)` when the id is taken.
    pub async fn insert_agent(
        &self,
        agent: &NewAgent<'_>,
        capabilities: &[String],
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "INSERT INTO agents (agent_id, org_id, display_name, description, capabilities_json, metadata_json, is_active, registered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7) ON CONFLICT (agent_id) DO NOTHING",
        )
        .bind(agent.agent_id)
        .bind(agent.org_id)
        .bind(agent.display_name)
        .bind(agent.description)
        .bind(agent.capabilities_json)
        .bind(agent.metadata_json)
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let mut distinct: Vec<&str> = capabilities.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if !distinct.is_empty() {
            let sql = format!(
                "INSERT INTO agent_capabilities (capability, agent_id) VALUES {}",
                super::values_placeholders(distinct.len(), 2)
            );
            let mut insert = sqlx::query(&sql);
            for capability in distinct {
                insert = insert.bind(capability).bind(agent.agent_id);
            }
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Pins `cert_pem` with its thumbprint. With `expected_thumbprint`, only if the pin is still
    /// that value (or unset), so two concurrent first logins cannot pin two certificates.
    pub async fn pin_agent_cert(
        &self,
        agent_id: &str,
        cert_pem: &str,
        thumbprint: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE agents SET cert_pem = $1, cert_thumbprint = $2 WHERE agent_id = $3 AND (cert_thumbprint IS NULL OR cert_thumbprint = $2)",
        )
        .bind(cert_pem)
        .bind(thumbprint)
        .bind(agent_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Rotation: a new pin and a revocation watermark, together.
    pub async fn rotate_agent_cert(
        &self,
        agent_id: &str,
        cert_pem: &str,
        thumbprint: &str,
        invalidate_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE agents SET cert_pem = $1, cert_thumbprint = $2, token_invalidated_at = $3 WHERE agent_id = $4")
            .bind(cert_pem)
            .bind(thumbprint)
            .bind(invalidate_at)
            .bind(agent_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Revokes every token of the agent issued at or before `at` (Unix seconds).
    pub async fn invalidate_agent_tokens(
        &self,
        agent_id: &str,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE agents SET token_invalidated_at = $1 WHERE agent_id = $2")
            .bind(at)
            .bind(agent_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The revocation watermark alone (the hot path of every authenticated request).
    #[tracing::instrument(name = "db.query", level = "info", skip_all, fields(db.operation = "select token watermark"))]
    pub async fn agent_token_watermark(&self, agent_id: &str) -> Result<Option<i64>, sqlx::Error> {
        const WATERMARK: &str = "SELECT token_invalidated_at FROM agents WHERE agent_id = $1";
        if let Some(direct) = self.direct() {
            return direct.read(|c| {
                c.prepare_cached(WATERMARK)?
                    .query_row(named_params! { "$1": agent_id }, |row| row.get(0))
                    .optional()
                    .map(Option::flatten)
            });
        }
        let row = sqlx::query(WATERMARK)
            .bind(agent_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<i64>, _>("token_invalidated_at")?,
            None => None,
        })
    }
}

impl Db {
    /// Agents for the console: of `org` (every org when `None`), whose id, name or
    /// capabilities contain `text` (case-insensitive), by id, at most `limit`.
    pub async fn agents_listed(
        &self,
        org: Option<&str>,
        text: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Agent>, sqlx::Error> {
        let pattern = text.map(super::like_pattern);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agents WHERE ($1 IS NULL OR org_id = $1) \
             AND ($2 IS NULL OR LOWER(agent_id || ' ' || display_name || ' ' || capabilities_json) LIKE $2 ESCAPE '\\') \
             ORDER BY agent_id LIMIT $3"
        ))
        .bind(org)
        .bind(pattern)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Agent::from_row).collect()
    }
}
