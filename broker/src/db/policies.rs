//! `policies`: an organisation's local `session` / `message` rules (`/v1/policy/rules`), read
//! by the local policy engine. Deactivation is a soft delete.

use super::{flag, now_text, Db};
use serde_json::{Map, Value};
use sqlx::Row;

/// A policy row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPolicy {
    pub id: i64,
    pub policy_id: String,
    pub org_id: String,
    pub policy_type: String,
    /// The `rules` object as stored (`Value::Null` if the stored text is not JSON, which only
    /// a hand edit of the database could produce; the engine treats that as invalid rules).
    pub rules: Value,
    pub is_active: bool,
    pub created_at: String,
}

impl StoredPolicy {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredPolicy, sqlx::Error> {
        let rules_json: String = row.try_get("rules_json")?;
        Ok(StoredPolicy {
            id: row.try_get("id")?,
            policy_id: row.try_get("policy_id")?,
            org_id: row.try_get("org_id")?,
            policy_type: row.try_get("policy_type")?,
            rules: serde_json::from_str(&rules_json).unwrap_or(Value::Null),
            is_active: flag(row, "is_active")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// The rules as an object (empty when the stored value is not one).
    pub fn rules_object(&self) -> Map<String, Value> {
        match &self.rules {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        }
    }
}

const COLUMNS: &str = "id, policy_id, org_id, policy_type, rules_json, is_active, created_at";

impl Db {
    /// Stores a new active policy; `Ok(None)` when `policy_id` exists (in any org).
    pub async fn insert_policy(
        &self,
        policy_id: &str,
        org_id: &str,
        policy_type: &str,
        rules: &Map<String, Value>,
    ) -> Result<Option<StoredPolicy>, sqlx::Error> {
        let rules_json = Value::Object(rules.clone()).to_string();
        let row = sqlx::query(&format!(
            "INSERT INTO policies (policy_id, org_id, policy_type, rules_json, is_active, created_at) \
             VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (policy_id) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(policy_id)
        .bind(org_id)
        .bind(policy_type)
        .bind(rules_json)
        .bind(now_text())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(StoredPolicy::from_row).transpose()
    }

    /// A policy by id, active or not.
    pub async fn policy(&self, policy_id: &str) -> Result<Option<StoredPolicy>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policies WHERE policy_id = $1"
        ))
        .bind(policy_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(StoredPolicy::from_row).transpose()
    }

    /// An org's active policies, optionally of one type, oldest first (the order the local
    /// engine evaluates them in).
    pub async fn active_policies(
        &self,
        org_id: &str,
        policy_type: Option<&str>,
    ) -> Result<Vec<StoredPolicy>, sqlx::Error> {
        let rows = match policy_type {
            Some(policy_type) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM policies WHERE org_id = $1 AND policy_type = $2 AND is_active = 1 ORDER BY id"
                ))
                .bind(org_id)
                .bind(policy_type)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM policies WHERE org_id = $1 AND is_active = 1 ORDER BY id"
                ))
                .bind(org_id)
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(StoredPolicy::from_row).collect()
    }

    /// Deactivates a policy (idempotent); `None` when it does not exist.
    pub async fn deactivate_policy(
        &self,
        policy_id: &str,
    ) -> Result<Option<StoredPolicy>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "UPDATE policies SET is_active = 0 WHERE policy_id = $1 RETURNING {COLUMNS}"
        ))
        .bind(policy_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(StoredPolicy::from_row).transpose()
    }
}

impl Db {
    /// Every policy of `org` (every org when `None`), active or not, newest first.
    pub async fn policies_listed(
        &self,
        org: Option<&str>,
    ) -> Result<Vec<StoredPolicy>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policies WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at DESC, id DESC"
        ))
        .bind(org)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(StoredPolicy::from_row).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::test_support::db;
    use serde_json::json;

    fn rules(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn create_list_get_deactivate() {
        let (db, _scratch) = db().await;
        let first = db
            .insert_policy(
                "acme::s1",
                "acme",
                "session",
                &rules(json!({"effect": "allow"})),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(first.is_active);
        assert_eq!(first.rules, json!({"effect": "allow"}));
        assert!(db
            .insert_policy("acme::s1", "beta", "message", &Map::new())
            .await
            .unwrap()
            .is_none());
        db.insert_policy("acme::m1", "acme", "message", &Map::new())
            .await
            .unwrap()
            .unwrap();
        db.insert_policy("beta::s1", "beta", "session", &Map::new())
            .await
            .unwrap()
            .unwrap();
        let ids =
            |list: Vec<StoredPolicy>| list.into_iter().map(|p| p.policy_id).collect::<Vec<_>>();
        assert_eq!(
            ids(db.active_policies("acme", None).await.unwrap()),
            ["acme::s1", "acme::m1"]
        );
        assert_eq!(
            ids(db.active_policies("acme", Some("session")).await.unwrap()),
            ["acme::s1"]
        );
        let off = db.deactivate_policy("acme::s1").await.unwrap().unwrap();
        assert!(!off.is_active);
        assert!(
            !db.deactivate_policy("acme::s1")
                .await
                .unwrap()
                .unwrap()
                .is_active
        );
        assert!(db.deactivate_policy("nope").await.unwrap().is_none());
        assert_eq!(
            ids(db.active_policies("acme", None).await.unwrap()),
            ["acme::m1"]
        );
        assert!(!db.policy("acme::s1").await.unwrap().unwrap().is_active);
        assert!(db.policy("nope").await.unwrap().is_none());
    }
}
