//! `/v1/broker/sessions*` and `/v1/broker/notifications`: opening sessions between agents of
//! two organisations (both orgs' policy must allow), accepting, rejecting, closing, and relaying
//! end-to-end encrypted, signed messages the broker cannot read.
//!
//! Everything is stored in the database: a restart loses no session and no message, and
//! several replicas agree on every session's state and message sequence.

use super::auth::rate_limit;
use super::delivery::Delivery;
use super::wire_enum;
use crate::audit::{AuditEvent, MessageWrite, Outcome};
use crate::auth::agent::AgentAuth;
use crate::db::sessions::{NewMessage, SendContext, Session, Stored};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::policy::{MessagePolicyRequest, SessionPolicyInput};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cullis_shared::signature::{self, SignedFields};
use cullis_shared::wire::broker::{
    InboxMessage, MessageAccepted, MessageEnvelope, MessagePollQuery, MessageSendQuery,
    Notification, SessionCreateRequest, SessionListQuery, SessionResponse,
};
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/broker/sessions", post(open).get(list))
        .route("/v1/broker/sessions/{session_id}/accept", post(accept))
        .route("/v1/broker/sessions/{session_id}/reject", post(reject))
        .route("/v1/broker/sessions/{session_id}/close", post(close))
        .route(
            "/v1/broker/sessions/{session_id}/messages",
            post(send).get(poll),
        )
        .route("/v1/broker/notifications", get(notifications))
}

/// Session lifetime (fixed, as the reference; not extended by activity).
const SESSION_TTL_MINUTES: i64 = 60;
/// Accepted distance between a message's signed timestamp and the broker clock.
const MESSAGE_WINDOW_SECS: i64 = 60;

fn response(session: Session, message: Option<&str>) -> ApiResult<SessionResponse> {
    Ok(SessionResponse {
        status: wire_enum(&session.status)?,
        session_id: session.session_id,
        initiator_agent_id: session.initiator_agent_id,
        target_agent_id: session.target_agent_id,
        created_at: session.created_at,
        expires_at: session.expires_at,
        message: message.map(str::to_owned),
    })
}

pub(super) fn check_uuid(session_id: &str) -> ApiResult<()> {
    uuid::Uuid::try_parse(session_id)
        .ok()
        .filter(|_| session_id.len() == 36)
        .map(|_| ())
        .ok_or_else(|| ApiError::bad_request("Invalid session_id format (expected UUID)"))
}

fn is_expired(session: &Session) -> bool {
    session.expires_at.as_str() <= crate::db::now_text().as_str()
}

/// Pending or active but past its expiry: to be closed before anything else is answered.
fn expired_open(session: &Session) -> bool {
    is_expired(session) && matches!(session.status.as_str(), "pending" | "active")
}

/// Loads a session; one found expired while pending or active is closed on the way.
pub(super) async fn load(state: &AppState, session_id: &str) -> ApiResult<Session> {
    check_uuid(session_id)?;
    let session = state
        .db
        .session(session_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Session not found"))?;
    if expired_open(&session) {
        if let Some(closed) = state
            .db
            .transition_session(session_id, &["pending", "active"], "closed")
            .await?
        {
            return Ok(closed);
        }
        return state
            .db
            .session(session_id)
            .await?
            .ok_or_else(|| ApiError::not_found("Session not found"));
    }
    Ok(session)
}

/// Records a denial of `caller`'s request.
async fn deny(
    state: &AppState,
    caller: &AgentAuth,
    event: &'static str,
    detail: &[(&str, Value)],
) -> ApiResult<()> {
    state
        .audit
        .record(denial_event(caller, event, detail))
        .await?;
    Ok(())
}

fn denial_event(caller: &AgentAuth, event: &'static str, detail: &[(&str, Value)]) -> AuditEvent {
    let mut audit = AuditEvent::new(event, Outcome::Denied)
        .agent(caller.agent_id())
        .org(caller.org_id());
    for (key, value) in detail {
        audit = audit.detail(key, value.clone());
    }
    audit
}

/// `POST /v1/broker/sessions`, in the `broker.create_session` span, counted as created or
/// denied (by a closed set of reasons).
async fn open(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiJson(request): ApiJson<SessionCreateRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    use crate::telemetry::bounded;
    use tracing::Instrument;
    let span = tracing::info_span!(
        "broker.create_session",
        initiator.agent_id = bounded(caller.agent_id()),
        target.agent_id = bounded(&request.target_agent_id),
    );
    let opened = open_session(&state, &caller, request)
        .instrument(span)
        .await;
    let metrics = crate::telemetry::metrics();
    match &opened {
        Ok(_) => metrics.session_created.add(
            1,
            &[opentelemetry::KeyValue::new(
                "initiator_org",
                caller.org_id().to_owned(),
            )],
        ),
        Err(error) => {
            let reason = match (error.status().as_u16(), error.detail().unwrap_or("")) {
                (404, _) => "target_not_found",
                (403, detail) if detail.starts_with("Policy:") => "pdp_denied",
                (403, _) => "scope_denied",
                (429, _) => "rate_limited",
                (500.., _) => "unavailable",
                _ => "invalid_request",
            };
            metrics
                .session_denied
                .add(1, &[opentelemetry::KeyValue::new("reason", reason)]);
        }
    }
    opened
}

/// §5.1 in order: rate limit, target exists and is active, org matches, target approved,
/// scopes, not self, both orgs' policy, then store.
async fn open_session(
    state: &AppState,
    caller: &AgentAuth,
    request: SessionCreateRequest,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let context_len = Value::Object(request.context.clone()).to_string().len();
    if context_len > 16 * 1024 || depth(&Value::Object(request.context.clone())) > 4 {
        return Err(ApiError::validation(
            "value_error",
            &["body", "context"],
            "context must be at most 16 KB and 4 levels deep",
            Value::Null,
        ));
    }
    rate_limit(state, "broker.session", caller.agent_id()).await?;
    let target = match state.db.agent(&request.target_agent_id).await? {
        Some(agent) if agent.is_active => agent,
        _ => {
            deny(
                state,
                caller,
                "broker.session_request",
                &[
                    ("target", request.target_agent_id.clone().into()),
                    ("reason", "target not found".into()),
                ],
            )
            .await?;
            return Err(ApiError::not_found("Target agent not found or inactive"));
        }
    };
    if target.org_id != request.target_org_id {
        return Err(ApiError::bad_request(
            "target_org_id does not match the registered agent",
        ));
    }
    let target_binding = match state
        .db
        .binding_for(&target.org_id, &target.agent_id)
        .await?
    {
        Some(binding) if binding.status == "approved" => binding,
        _ => {
            deny(
                state,
                caller,
                "broker.session_request",
                &[
                    ("target", target.agent_id.clone().into()),
                    ("reason", "target has no approved binding".into()),
                ],
            )
            .await?;
            return Err(ApiError::forbidden("Target has no approved binding"));
        }
    };
    if state.policy.configured_enforcement() {
        for cap in &request.requested_capabilities {
            if !caller.claims.scope.contains(cap) {
                deny(
                    state,
                    caller,
                    "broker.session_request",
                    &[
                        ("cap", cap.clone().into()),
                        ("reason", "capability not in initiator scope".into()),
                    ],
                )
                .await?;
                return Err(ApiError::forbidden(format!(
                    "Capability '{cap}' not authorized in your scope"
                )));
            }
            if !target_binding.scope.contains(cap) {
                deny(
                    state,
                    caller,
                    "broker.session_request",
                    &[
                        ("cap", cap.clone().into()),
                        ("reason", "capability not in target scope".into()),
                    ],
                )
                .await?;
                return Err(ApiError::forbidden(format!(
                    "Capability '{cap}' not authorized in the target's scope"
                )));
            }
        }
        for cap in &request.requested_capabilities {
            if !target.capabilities.contains(cap) {
                deny(
                    state,
                    caller,
                    "broker.session_request",
                    &[
                        ("cap", cap.clone().into()),
                        ("reason", "target does not advertise capability".into()),
                    ],
                )
                .await?;
                return Err(ApiError::bad_request(format!(
                    "Target does not advertise capability '{cap}'"
                )));
            }
        }
    }
    if target.agent_id == caller.agent_id() {
        return Err(ApiError::bad_request(
            "You cannot open a session with yourself",
        ));
    }
    let initiator_org = state.db.org(caller.org_id()).await?;
    let target_org = state.db.org(&target.org_id).await?;
    let decision = state
        .policy
        .evaluate_session(&SessionPolicyInput {
            initiator_agent_id: caller.agent_id().to_owned(),
            initiator_org_id: caller.org_id().to_owned(),
            target_agent_id: target.agent_id.clone(),
            target_org_id: target.org_id.clone(),
            capabilities: request.requested_capabilities.clone(),
            context: request.context.clone(),
            initiator_webhook_url: initiator_org.and_then(|org| org.webhook_url),
            target_webhook_url: target_org.and_then(|org| org.webhook_url),
        })
        .await;
    if !decision.allowed {
        deny(
            state,
            caller,
            "policy.session_denied",
            &[
                ("reason", decision.reason.clone().into()),
                ("denied_by", decision.decided_by().into()),
            ],
        )
        .await?;
        return Err(ApiError::forbidden(format!("Policy: {}", decision.reason)));
    }
    let now = time::OffsetDateTime::now_utc();
    let session = Session {
        session_id: uuid::Uuid::new_v4().to_string(),
        initiator_agent_id: caller.agent_id().to_owned(),
        initiator_org_id: caller.org_id().to_owned(),
        target_agent_id: target.agent_id.clone(),
        target_org_id: target.org_id.clone(),
        status: "pending".into(),
        requested_capabilities: request.requested_capabilities.clone(),
        created_at: crate::db::timestamp_text(now),
        expires_at: crate::db::timestamp_text(now + time::Duration::minutes(SESSION_TTL_MINUTES)),
        closed_at: None,
    };
    state.db.insert_session(&session).await?;
    let mut created = AuditEvent::new("broker.session_created", Outcome::Ok)
        .agent(caller.agent_id())
        .org(caller.org_id())
        .detail("target", target.agent_id.clone())
        .detail("caps", request.requested_capabilities.clone());
    created.session_id = Some(session.session_id.clone());
    state.audit.record(created).await?;
    state
        .db
        .insert_notification(
            &target.agent_id,
            &target.org_id,
            "session_pending",
            &format!("Session request from {}", caller.agent_id()),
            &format!(
                "Capabilities: {}",
                request.requested_capabilities.join(", ")
            ),
            &session.session_id,
        )
        .await?;
    let pending = cullis_shared::wire::ws::ServerFrame::SessionPending {
        session_id: session.session_id.clone(),
        initiator_agent_id: session.initiator_agent_id.clone(),
        initiator_org_id: session.initiator_org_id.clone(),
        capabilities: session.requested_capabilities.clone(),
    };
    state.hub.push(&session.target_agent_id, pending).await;
    Ok((
        StatusCode::CREATED,
        Json(response(
            session,
            Some("Session created — waiting for acceptance from the target"),
        )?),
    ))
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.values().map(|v| 1 + depth(v)).max().unwrap_or(0),
        Value::Array(items) => items.iter().map(|v| 1 + depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

async fn list(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiQuery(query): ApiQuery<SessionListQuery>,
) -> ApiResult<Json<Vec<SessionResponse>>> {
    if !(1..=500).contains(&query.limit) || query.offset < 0 {
        return Err(ApiError::validation(
            "value_error",
            &["query", "limit"],
            "limit must be 1..500 and offset ≥ 0",
            Value::Null,
        ));
    }
    let status = query.status.map(|s| s.as_str());
    let sessions = state
        .db
        .sessions_of(caller.agent_id(), status, query.limit, query.offset)
        .await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| response(s, None))
            .collect::<ApiResult<_>>()?,
    ))
}

/// Accept or reject: the target only, from `pending`.
async fn decide(
    state: &AppState,
    caller: &AgentAuth,
    session_id: &str,
    to: &str,
    verb: &str,
) -> ApiResult<Session> {
    let session = load(state, session_id).await?;
    if session.target_agent_id != caller.agent_id() {
        return Err(ApiError::forbidden(format!(
            "Only the target can {verb} this session"
        )));
    }
    let changed = state
        .db
        .transition_session(session_id, &["pending"], to)
        .await?;
    let Some(session) = changed else {
        let current = state
            .db
            .session(session_id)
            .await?
            .map(|s| s.status)
            .unwrap_or_default();
        return Err(ApiError::conflict(format!(
            "Session is in state '{current}', cannot be {verb}ed"
        )));
    };
    state
        .db
        .mark_notifications_acted(caller.agent_id(), session_id)
        .await?;
    let event = if to == "active" {
        "broker.session_accepted"
    } else {
        "broker.session_rejected"
    };
    let mut audit = AuditEvent::new(event, Outcome::Ok)
        .agent(caller.agent_id())
        .org(caller.org_id());
    audit.session_id = Some(session_id.to_owned());
    state.audit.record(audit).await?;
    Ok(session)
}

async fn accept(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath(session_id): ApiPath<String>,
) -> ApiResult<Json<SessionResponse>> {
    let session = decide(&state, &caller, &session_id, "active", "accept").await?;
    Ok(Json(response(session, Some("Session active"))?))
}

async fn reject(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath(session_id): ApiPath<String>,
) -> ApiResult<Json<SessionResponse>> {
    let session = decide(&state, &caller, &session_id, "denied", "reject").await?;
    let rejected = cullis_shared::wire::ws::ServerFrame::SessionRejected {
        session_id: session.session_id.clone(),
        rejected_by: caller.agent_id().to_owned(),
    };
    state.hub.push(&session.initiator_agent_id, rejected).await;
    Ok(Json(response(session, Some("Session rejected"))?))
}

async fn close(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath(session_id): ApiPath<String>,
) -> ApiResult<Json<SessionResponse>> {
    let session = load(&state, &session_id).await?;
    if !session.is_participant(caller.agent_id()) {
        return Err(ApiError::forbidden(
            "You are not a participant of this session",
        ));
    }
    if session.status == "closed" {
        return Ok(Json(response(session, Some("Session already closed"))?));
    }
    let Some(closed) = state
        .db
        .transition_session(&session_id, &["active"], "closed")
        .await?
    else {
        return Err(ApiError::conflict(format!(
            "Session is in state '{}', cannot be closed",
            session.status
        )));
    };
    let mut audit = AuditEvent::new("session_closed", Outcome::Ok)
        .agent(caller.agent_id())
        .org(caller.org_id());
    audit.session_id = Some(session_id);
    state.audit.record(audit).await?;
    Ok(Json(response(closed, Some("Session closed"))?))
}

/// §3.7 in order; the broker verifies the outer signature with the sender's pinned certificate
/// and stores the message with the session's next sequence number. With an idempotency key
/// already used by this sender in this session, the first message's answer instead.
async fn send(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath(session_id): ApiPath<String>,
    headers: axum::http::HeaderMap,
    ApiQuery(query): ApiQuery<MessageSendQuery>,
    ApiJson(mut envelope): ApiJson<MessageEnvelope>,
) -> ApiResult<(StatusCode, Json<MessageAccepted>)> {
    let (payload, payload_text) = checked_payload(&mut envelope)?;
    let delivery = Delivery::checked(query)?;
    rate_limit(&state, "broker.message", caller.agent_id()).await?;
    check_uuid(&session_id)?;
    if envelope.session_id != session_id {
        return Err(ApiError::bad_request(
            "session_id in envelope does not match URL path",
        ));
    }
    let context = state
        .db
        .send_context(&session_id, caller.agent_id(), &envelope.nonce)
        .await?
        .ok_or_else(|| ApiError::not_found("Session not found"))?;
    if is_expired(&context.session) {
        state
            .db
            .transition_session(&session_id, &["pending", "active"], "closed")
            .await?;
        return Err(ApiError::conflict("Session has expired"));
    }
    if context.session.status != "active" {
        return Err(ApiError::conflict("Session not active"));
    }
    check_sender(&state, &caller, &context, &envelope, &payload).await?;
    if let Some(seq) = first_with_key(&state, &caller, &session_id, &delivery).await? {
        return Ok((
            StatusCode::ACCEPTED,
            Json(delivery.accepted(session_id, seq, true)),
        ));
    }
    let transaction = consume_transaction(&state, &caller, &headers, &payload).await?;
    let evaluated = match check_message_policy(&state, &caller, &session_id, &payload).await {
        Ok(evaluated) => evaluated,
        Err(error) => return Err(release(&state, transaction, error).await),
    };
    let write = message_write(
        &caller,
        &envelope,
        &payload,
        payload_text,
        evaluated,
        &delivery,
    );
    let stored = match state.audit.store_message(write).await {
        Ok(stored) => stored,
        Err(error) => return Err(release(&state, transaction, error.into()).await),
    };
    let seq = match stored {
        Stored::Ok { seq, .. } => seq,
        // Raced with the first send of the same key (the writer decides): its answer.
        Stored::Duplicate { seq } => {
            give_back(&state, transaction).await;
            return Ok((
                StatusCode::ACCEPTED,
                Json(delivery.accepted(session_id, seq, true)),
            ));
        }
        Stored::NonceReused => {
            let error = ApiError::conflict("Nonce already used — possible replay attack");
            return Err(release(&state, transaction, error).await);
        }
        Stored::NotActive => {
            let error = ApiError::conflict("Session not active");
            return Err(release(&state, transaction, error).await);
        }
    };
    crate::telemetry::metrics().messages_relayed.add(1, &[]);
    let Value::Object(payload) = payload else {
        unreachable!("built from an object by checked_payload")
    };
    let frame = crate::ws::new_message(
        &session_id,
        caller.agent_id(),
        seq,
        payload,
        envelope.client_seq,
    );
    state
        .hub
        .push(context.session.peer_of(caller.agent_id()), frame)
        .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(delivery.accepted(session_id, seq, false)),
    ))
}

/// §3.7 step 15: a transaction token presented beside the access token is consumed for this
/// payload (`None` when none was presented).
async fn consume_transaction(
    state: &AppState,
    caller: &AgentAuth,
    headers: &axum::http::HeaderMap,
    payload: &Value,
) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(cullis_shared::wire::auth::TRANSACTION_TOKEN_HEADER) else {
        return Ok(None);
    };
    let token = String::from_utf8_lossy(value.as_bytes());
    let jti = crate::transaction_tokens::consume(
        state,
        caller.agent_id(),
        caller.org_id(),
        &token,
        payload,
    )
    .await?;
    Ok(Some(jti))
}

/// A send that consumed a transaction token failed after all: the token is given back.
async fn release(state: &AppState, transaction: Option<String>, error: ApiError) -> ApiError {
    give_back(state, transaction).await;
    error
}

/// The consumed transaction token, if any, becomes usable again (its message was not stored).
async fn give_back(state: &AppState, transaction: Option<String>) {
    if let Some(jti) = transaction {
        crate::transaction_tokens::release(state, &jti).await;
    }
}

/// The message this sender already stored in this session under the send's idempotency key.
async fn first_with_key(
    state: &AppState,
    caller: &AgentAuth,
    session_id: &str,
    delivery: &Delivery,
) -> ApiResult<Option<i64>> {
    let Some(key) = &delivery.idempotency_key else {
        return Ok(None);
    };
    Ok(state
        .db
        .message_with_idempotency_key(session_id, caller.agent_id(), key)
        .await?)
}

/// The envelope's size limits; its payload as a JSON value and as the text to store.
fn checked_payload(envelope: &mut MessageEnvelope) -> ApiResult<(Value, String)> {
    if envelope.nonce.chars().count() > 128 || envelope.signature.chars().count() > 2048 {
        return Err(ApiError::validation(
            "string_too_long",
            &["body"],
            "nonce must be ≤ 128 and signature ≤ 2048 characters",
            Value::Null,
        ));
    }
    let payload = Value::Object(std::mem::take(&mut envelope.payload));
    let payload_text = payload.to_string();
    if payload_text.len() > 1_048_576 {
        return Err(ApiError::validation(
            "value_error",
            &["body", "payload"],
            "payload must be at most 1 MB of JSON",
            Value::Null,
        ));
    }
    Ok((payload, payload_text))
}

/// §3.7 steps on the sender: a participant, the token's agent, a fresh nonce, a timestamp in
/// the window, and an outer signature by the pinned certificate. Denials are audited.
async fn check_sender(
    state: &AppState,
    caller: &AgentAuth,
    context: &SendContext,
    envelope: &MessageEnvelope,
    payload: &Value,
) -> ApiResult<()> {
    let denied = |reason: &str| {
        [
            ("reason", Value::from(reason.to_owned())),
            ("nonce", Value::from(envelope.nonce.clone())),
        ]
    };
    if !context.session.is_participant(caller.agent_id()) {
        let reason = [("reason", "not a participant".into())];
        deny(state, caller, "broker.message_send", &reason).await?;
        return Err(ApiError::forbidden(
            "You are not a participant of this session",
        ));
    }
    if envelope.sender_agent_id != caller.agent_id() {
        return Err(ApiError::bad_request(
            "sender_agent_id does not match the token",
        ));
    }
    if context.nonce_used {
        deny(
            state,
            caller,
            "broker.message_send",
            &denied("replay attack detected"),
        )
        .await?;
        return Err(ApiError::conflict(
            "Nonce already used — possible replay attack",
        ));
    }
    if (crate::db::unix_now() - envelope.timestamp).abs() > MESSAGE_WINDOW_SECS {
        let reason = [
            ("reason", "timestamp out of window".into()),
            ("ts", envelope.timestamp.into()),
        ];
        deny(state, caller, "broker.message_send", &reason).await?;
        return Err(ApiError::conflict(
            "Message timestamp too old or in the future — possible replay attack",
        ));
    }
    let pem = context.sender_cert_pem.as_deref().ok_or_else(|| {
        ApiError::unauthorized("Agent certificate not found — log in before sending messages")
    })?;
    let sender_key = state
        .leaf_cache
        .pinned_key(pem)
        .ok_or_else(|| ApiError::unauthorized("Signature verification failed"))?;
    let fields = SignedFields {
        session_id: &context.session.session_id,
        sender_agent_id: caller.agent_id(),
        nonce: &envelope.nonce,
        timestamp: envelope.timestamp,
        client_seq: envelope.client_seq,
    };
    if let Err(error) = signature::verify(&sender_key, &fields, payload, &envelope.signature) {
        // Beyond the reference: a forged or tampered envelope leaves a trace.
        deny(
            state,
            caller,
            "broker.message_send",
            &denied("invalid signature"),
        )
        .await?;
        return Err(ApiError::unauthorized(error.to_string()));
    }
    Ok(())
}

/// The message row and its audit rows, for the writer to commit together.
fn message_write(
    caller: &AgentAuth,
    envelope: &MessageEnvelope,
    payload: &Value,
    payload_text: String,
    evaluated: AuditEvent,
    delivery: &Delivery,
) -> MessageWrite {
    let payload_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        cullis_shared::encoding::canonical_json::to_string(payload),
    ));
    let mut forwarded = AuditEvent::new("broker.message_forwarded", Outcome::Ok)
        .agent(caller.agent_id())
        .org(caller.org_id())
        .detail("seq", Value::Null) // set by the writer once the number is assigned
        .detail("nonce", envelope.nonce.clone())
        .detail("payload_hash", payload_hash)
        .detail("signature", envelope.signature.clone());
    forwarded.session_id = Some(envelope.session_id.clone());
    let replayed = denial_event(
        caller,
        "broker.message_send",
        &[
            ("reason", "replay attack detected (DB)".into()),
            ("nonce", envelope.nonce.clone().into()),
        ],
    );
    MessageWrite {
        message: NewMessage {
            session_id: envelope.session_id.clone(),
            sender_agent_id: caller.agent_id().to_owned(),
            payload: payload_text,
            nonce: envelope.nonce.clone(),
            signed_timestamp: envelope.timestamp,
            signature: envelope.signature.clone(),
            client_seq: envelope.client_seq.map(|seq| seq as i64),
            idempotency_key: delivery.idempotency_key.clone(),
            expires_at: delivery.expires_at(),
        },
        evaluated,
        forwarded,
        replayed,
    }
}

/// The sender org's local `message` policies (spec §5.6) over the envelope payload. Allowed:
/// the `policy.evaluated` event, to be recorded with the message. Denied: both rows recorded
/// now and a 403.
async fn check_message_policy(
    state: &AppState,
    caller: &AgentAuth,
    session_id: &str,
    payload: &Value,
) -> ApiResult<AuditEvent> {
    let request = MessagePolicyRequest {
        sender_org_id: caller.org_id(),
        payload,
        sender_agent_id: Some(caller.agent_id()),
        session_id: Some(session_id),
    };
    let (decision, evaluated) = state
        .policy
        .evaluate_message_rules(&state.db, &request)
        .await?;
    if decision.allowed {
        return Ok(evaluated);
    }
    state.audit.record(evaluated).await?;
    let mut details = vec![("reason", Value::from(decision.reason.clone()))];
    if let Some(policy_id) = &decision.policy_id {
        details.push(("policy_id", Value::from(policy_id.clone())));
    }
    deny(state, caller, "broker.message_send", &details).await?;
    Err(ApiError::forbidden(format!(
        "Message policy: {}",
        decision.reason
    )))
}

async fn poll(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath(session_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MessagePollQuery>,
) -> ApiResult<Json<Vec<InboxMessage>>> {
    check_uuid(&session_id)?;
    let (session, messages) = state
        .db
        .session_with_messages(&session_id, caller.agent_id(), query.after)
        .await?
        .ok_or_else(|| ApiError::not_found("Session not found"))?;
    // An expired session is closed first (rare), so the answer names its new status.
    let session = if expired_open(&session) {
        load(&state, &session_id).await?
    } else {
        session
    };
    if session.status != "active" {
        return Err(ApiError::conflict(format!(
            "Session is {} — polling not available",
            session.status
        )));
    }
    if !session.is_participant(caller.agent_id()) {
        return Err(ApiError::forbidden(
            "You are not a participant of this session",
        ));
    }
    let inbox = messages
        .into_iter()
        .map(|m| InboxMessage {
            seq: m.seq.max(0) as u64,
            sender_agent_id: m.sender_agent_id,
            payload: serde_json::from_str(&m.payload).unwrap_or_default(),
            nonce: m.nonce,
            timestamp: m.timestamp,
            signature: m.signature,
            client_seq: m.client_seq.map(|seq| seq.max(0) as u64),
            signed_timestamp: Some(m.signed_timestamp),
        })
        .collect();
    Ok(Json(inbox))
}

async fn notifications(
    State(state): State<AppState>,
    caller: AgentAuth,
) -> ApiResult<Json<Vec<Notification>>> {
    let rows = state
        .db
        .notifications_for(caller.agent_id(), caller.org_id())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for [id, kind, title, body, reference_id, created_at] in rows {
        out.push(Notification {
            id: id.unwrap_or_default(),
            kind: wire_enum(kind.as_deref().unwrap_or(""))?,
            title: title.unwrap_or_default(),
            body,
            reference_id,
            created_at: created_at.unwrap_or_default(),
        });
    }
    Ok(Json(out))
}
