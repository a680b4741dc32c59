//! Acknowledged delivery, as `cullis-sdk` 0.2.x expects it: the send's `ttl_seconds` and
//! `idempotency_key` (checked here, applied by `sessions::send`), the answer that names the
//! message (`msg_id`, `queued`, `deduped`), and `POST …/messages/{msg_id}/ack`.
//!
//! A message's `msg_id` is its broker sequence number in decimal: unique within the session,
//! already in every poll answer and push, and free to produce on the relay's hot path.

use super::sessions::{check_uuid, load};
use crate::auth::agent::AgentAuth;
use crate::db::delivery::Ack;
use crate::error::{ApiError, ApiPath, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use cullis_shared::wire::broker::{MessageAccepted, MessageSendQuery, MAX_MESSAGE_TTL_SECONDS};
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/broker/sessions/{session_id}/messages/{msg_id}/ack",
        post(ack),
    )
}

/// Longest idempotency key, in characters.
const MAX_KEY_CHARS: usize = 128;

/// A send's delivery options, checked.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    pub idempotency_key: Option<String>,
    pub ttl_seconds: Option<i64>,
}

impl Delivery {
    /// 422 for a time to live outside 1..=86400 or an empty or over-long key.
    pub(crate) fn checked(query: MessageSendQuery) -> ApiResult<Delivery> {
        if let Some(ttl) = query.ttl_seconds {
            if !(1..=MAX_MESSAGE_TTL_SECONDS).contains(&ttl) {
                return Err(ApiError::validation(
                    "value_error",
                    &["query", "ttl_seconds"],
                    format!("ttl_seconds must be between 1 and {MAX_MESSAGE_TTL_SECONDS}"),
                    ttl.into(),
                ));
            }
        }
        if let Some(key) = &query.idempotency_key {
            let chars = key.chars().count();
            if chars == 0 || chars > MAX_KEY_CHARS {
                return Err(ApiError::validation(
                    "value_error",
                    &["query", "idempotency_key"],
                    format!("idempotency_key must be 1 to {MAX_KEY_CHARS} characters"),
                    Value::String(key.clone()),
                ));
            }
        }
        Ok(Delivery {
            idempotency_key: query.idempotency_key,
            ttl_seconds: query.ttl_seconds,
        })
    }

    /// Whether the sender asked for acknowledged delivery (the answer then says `queued`).
    fn requested(&self) -> bool {
        self.idempotency_key.is_some() || self.ttl_seconds.is_some()
    }

    /// Unix seconds after which an unacknowledged message is no longer delivered.
    pub(crate) fn expires_at(&self) -> Option<i64> {
        self.ttl_seconds.map(|ttl| crate::db::unix_now() + ttl)
    }

    /// The 202 body for message `seq` (`deduped`: a resend of the key that stored it).
    pub(crate) fn accepted(&self, session_id: String, seq: i64, deduped: bool) -> MessageAccepted {
        let queued = self.requested();
        MessageAccepted {
            status: if queued { "queued" } else { "accepted" }.into(),
            session_id,
            msg_id: Some(msg_id(seq)),
            deduped: queued.then_some(deduped),
        }
    }
}

/// The `msg_id` of the message with broker sequence number `seq`.
pub(crate) fn msg_id(seq: i64) -> String {
    seq.to_string()
}

/// `POST /v1/broker/sessions/{session_id}/messages/{msg_id}/ack`: the recipient confirms a
/// message. 204, also when it was confirmed before; 404 for no such message to the caller; 409
/// when its time to live ran out first.
async fn ack(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath((session_id, msg_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    check_uuid(&session_id)?;
    let session = load(&state, &session_id).await?;
    if !session.is_participant(caller.agent_id()) {
        return Err(ApiError::forbidden(
            "You are not a participant of this session",
        ));
    }
    let not_found = || ApiError::not_found("Message not found");
    let seq: i64 = msg_id
        .parse()
        .ok()
        .filter(|seq| *seq >= 0)
        .ok_or_else(not_found)?;
    match state
        .db
        .ack_message(&session_id, seq, caller.agent_id())
        .await?
    {
        Ack::Acked => Ok(StatusCode::NO_CONTENT),
        Ack::NotFound => Err(not_found()),
        Ack::Expired => Err(ApiError::conflict(
            "Message expired before it was acknowledged",
        )),
    }
}
