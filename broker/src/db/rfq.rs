//! `rfq_requests` and `rfq_responses`: requests for quotes and the quotes received.

use super::{json_list, now_text, Db};
use sqlx::Row;

/// An `rfq_requests` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfq {
    pub rfq_id: String,
    pub initiator_agent_id: String,
    pub initiator_org_id: String,
    pub capability_filter: Vec<String>,
    pub payload_json: String,
    pub status: String,
    pub timeout_seconds: i64,
    pub matched_agents: Vec<String>,
    pub created_at: String,
    pub closed_at: Option<String>,
}

impl Rfq {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Rfq, sqlx::Error> {
        Ok(Rfq {
            rfq_id: row.try_get("rfq_id")?,
            initiator_agent_id: row.try_get("initiator_agent_id")?,
            initiator_org_id: row.try_get("initiator_org_id")?,
            capability_filter: json_list(&row.try_get::<String, _>("capability_filter")?),
            payload_json: row.try_get("payload_json")?,
            status: row.try_get("status")?,
            timeout_seconds: row.try_get("timeout_seconds")?,
            matched_agents: json_list(&row.try_get::<String, _>("matched_agents_json")?),
            created_at: row.try_get("created_at")?,
            closed_at: row.try_get("closed_at")?,
        })
    }

    /// Whether `agent_id` may read this RFQ: its requester or an agent it was sent to.
    pub fn readable_by(&self, agent_id: &str) -> bool {
        self.initiator_agent_id == agent_id || self.matched_agents.iter().any(|a| a == agent_id)
    }
}

/// An `rfq_responses` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfqQuoteRow {
    pub responder_agent_id: String,
    pub responder_org_id: String,
    pub response_payload: String,
    pub received_at: String,
}

const COLUMNS: &str = "rfq_id, initiator_agent_id, initiator_org_id, capability_filter, payload_json, status, timeout_seconds, matched_agents_json, created_at, closed_at";

impl Db {
    pub async fn insert_rfq(&self, rfq: &Rfq) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO rfq_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&rfq.rfq_id)
        .bind(&rfq.initiator_agent_id)
        .bind(&rfq.initiator_org_id)
        .bind(serde_json::to_string(&rfq.capability_filter).expect("strings serialize"))
        .bind(&rfq.payload_json)
        .bind(&rfq.status)
        .bind(rfq.timeout_seconds)
        .bind(serde_json::to_string(&rfq.matched_agents).expect("strings serialize"))
        .bind(&rfq.created_at)
        .bind(&rfq.closed_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn rfq(&self, rfq_id: &str) -> Result<Option<Rfq>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM rfq_requests WHERE rfq_id = $1"
        ))
        .bind(rfq_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Rfq::from_row).transpose()
    }

    /// Marks a finished RFQ (`closed` or `timeout`) `approved`; the status it had, or `Err` with
    /// the status that prevented it (`open`, `approved`; `None` when it does not exist).
    pub async fn approve_rfq(
        &self,
        rfq_id: &str,
    ) -> Result<Result<String, Option<String>>, sqlx::Error> {
        let before = self.rfq(rfq_id).await?.map(|rfq| rfq.status);
        let done = sqlx::query(
            "UPDATE rfq_requests SET status = 'approved' WHERE rfq_id = $1 AND status = $2 AND status IN ('closed', 'timeout')",
        )
        .bind(rfq_id)
        .bind(before.as_deref().unwrap_or(""))
        .execute(self.pool())
        .await?;
        Ok(match (done.rows_affected(), before) {
            (1, Some(before)) => Ok(before),
            (_, before) => Err(before),
        })
    }

    /// Undoes [`Db::approve_rfq`] when the token could not be issued.
    pub async fn unapprove_rfq(&self, rfq_id: &str, status: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE rfq_requests SET status = $1 WHERE rfq_id = $2 AND status = 'approved'",
        )
        .bind(status)
        .bind(rfq_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Closes an open RFQ with `status`; `false` when it was no longer open.
    pub async fn close_rfq(&self, rfq_id: &str, status: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE rfq_requests SET status = $1, closed_at = $2 WHERE rfq_id = $3 AND status = 'open'",
        )
        .bind(status)
        .bind(now_text())
        .bind(rfq_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a quote if the RFQ is still open and the responder has not answered yet, in one
    /// statement (so a quote never lands after the RFQ closed); `false` otherwise.
    pub async fn insert_rfq_quote(
        &self,
        rfq_id: &str,
        responder_agent_id: &str,
        responder_org_id: &str,
        payload: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO rfq_responses (rfq_id, responder_agent_id, responder_org_id, response_payload, received_at) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM rfq_requests WHERE rfq_id = $1 AND status = 'open') \
             ON CONFLICT (rfq_id, responder_agent_id) DO NOTHING",
        )
        .bind(rfq_id)
        .bind(responder_agent_id)
        .bind(responder_org_id)
        .bind(payload)
        .bind(now_text())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The quotes of an RFQ in arrival order.
    pub async fn rfq_quotes(&self, rfq_id: &str) -> Result<Vec<RfqQuoteRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT responder_agent_id, responder_org_id, response_payload, received_at FROM rfq_responses WHERE rfq_id = $1 ORDER BY id",
        )
        .bind(rfq_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RfqQuoteRow {
                    responder_agent_id: row.try_get("responder_agent_id")?,
                    responder_org_id: row.try_get("responder_org_id")?,
                    response_payload: row.try_get("response_payload")?,
                    received_at: row.try_get("received_at")?,
                })
            })
            .collect()
    }

    /// How many quotes an RFQ has.
    pub async fn rfq_quote_count(&self, rfq_id: &str) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM rfq_responses WHERE rfq_id = $1")
            .bind(rfq_id)
            .fetch_one(self.pool())
            .await?;
        row.try_get("n")
    }
}

impl Db {
    /// RFQs sent by `org`'s agents (every org when `None`), newest first, at most `limit`.
    pub async fn rfqs_listed(
        &self,
        org: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Rfq>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM rfq_requests WHERE ($1 IS NULL OR initiator_org_id = $1) \
             ORDER BY created_at DESC LIMIT $2"
        ))
        .bind(org)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Rfq::from_row).collect()
    }
}
