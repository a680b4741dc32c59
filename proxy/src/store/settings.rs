//! Key/value settings (organisation config, policy rules).

use super::{Store, StoreError};

impl Store {
    /// A setting, if present.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// [`Store::setting`] for values every request reads (the broker URL), answered from
    /// memory when read within [`super::CROSS_PROCESS_TTL`] (see `hot`).
    pub async fn hot_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(value) = self.hot.setting(key) {
            return Ok(Some(value));
        }
        let read = self.hot.begin_read();
        let value = self.setting(key).await?;
        if let Some(value) = &value {
            self.hot.remember_setting(read, key, value);
        }
        Ok(value)
    }

    /// Writes several settings in one transaction, so a multi-field change is all or nothing.
    pub async fn set_settings(&self, pairs: &[(&str, &str)]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (key, value) in pairs {
            sqlx::query("INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.hot.settings_changed();
        Ok(())
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.set_settings(&[(key, value)]).await
    }

    /// Writes `key` only if it has no value yet (one statement, so of two racing writers one
    /// wins); whether this call wrote it.
    pub async fn insert_setting_if_absent(
        &self,
        key: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        self.hot.settings_changed();
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Removes a setting (absent is fine).
    pub async fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM settings WHERE key = ?")
            .bind(key)
            .execute(self.pool())
            .await?;
        self.hot.settings_changed();
        Ok(())
    }
}
