//! `/v1/broker/rfq*`: requests for quotes. The requester's POST blocks until every matched
//! supplier answered or the timeout elapsed; suppliers answer with `…/respond`.
//!
//! Everything lives in the database: the waiting request wakes on an in-process signal when a
//! quote arrives on this replica and re-reads the database periodically, so quotes sent to
//! another replica count too. An RFQ is readable only by its requester and the agents it was
//! sent to; anyone else gets the same 404 as for an unknown id.

use super::auth::rate_limit;
use super::wire_enum;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::agent::AgentAuth;
use crate::auth::org::OrgAuth;
use crate::db::rfq::Rfq;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::policy::SessionPolicyInput;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cullis_shared::wire::auth::{TransactionTokenRequest, TransactionTokenResponse};
use cullis_shared::wire::broker::{
    RfqApproveRequest, RfqCreateRequest, RfqQuote, RfqRespondAccepted, RfqRespondRequest,
    RfqResponse,
};
use cullis_shared::wire::ws::ServerFrame;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/broker/rfq", post(create))
        .route("/v1/broker/rfq/{rfq_id}", get(fetch))
        .route("/v1/broker/rfq/{rfq_id}/respond", post(respond))
        .route("/v1/broker/rfq/{rfq_id}/approve", post(approve))
}

const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// How often a waiting RFQ re-reads the database (quotes received by other replicas).
const RECHECK: Duration = Duration::from_millis(250);

/// Wake-ups for RFQs whose POST is blocking on this replica.
fn waiters() -> &'static Mutex<HashMap<String, Arc<Notify>>> {
    static WAITERS: OnceLock<Mutex<HashMap<String, Arc<Notify>>>> = OnceLock::new();
    WAITERS.get_or_init(Default::default)
}

/// Removes the waiter of an RFQ when the blocking request ends (also on cancellation).
struct WaiterGuard(String);

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = waiters().lock() {
            map.remove(&self.0);
        }
    }
}

fn check_uuid(rfq_id: &str) -> ApiResult<()> {
    uuid::Uuid::try_parse(rfq_id)
        .ok()
        .filter(|_| rfq_id.len() == 36)
        .map(|_| ())
        .ok_or_else(|| ApiError::bad_request("Invalid rfq_id format (expected UUID)"))
}

fn invalid(field: &str, msg: &str) -> ApiError {
    ApiError::validation("value_error", &["body", field], msg, Value::Null)
}

async fn response(state: &AppState, rfq: Rfq) -> ApiResult<RfqResponse> {
    let quotes = state
        .db
        .rfq_quotes(&rfq.rfq_id)
        .await?
        .into_iter()
        .map(|q| RfqQuote {
            responder_agent_id: q.responder_agent_id,
            responder_org_id: q.responder_org_id,
            payload: serde_json::from_str(&q.response_payload).unwrap_or_default(),
            received_at: q.received_at,
        })
        .collect();
    Ok(RfqResponse {
        status: wire_enum(&rfq.status)?,
        rfq_id: rfq.rfq_id,
        matched_agents: rfq.matched_agents,
        quotes,
        created_at: rfq.created_at,
        closed_at: rfq.closed_at,
    })
}

async fn reload(state: &AppState, rfq_id: &str) -> ApiResult<Rfq> {
    state
        .db
        .rfq(rfq_id)
        .await?
        .ok_or_else(|| ApiError::internal("RFQ vanished"))
}

/// §3.9: candidates (discoverable agents of other orgs with every capability), both orgs'
/// policy per candidate, store, notify, wait, close.
async fn create(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiJson(request): ApiJson<RfqCreateRequest>,
) -> ApiResult<(StatusCode, Json<RfqResponse>)> {
    if request.capability_filter.is_empty() {
        return Err(invalid(
            "capability_filter",
            "List should have at least 1 item after validation, not 0",
        ));
    }
    if request.capability_filter.len() > 50
        || request
            .capability_filter
            .iter()
            .any(|c| c.is_empty() || c.chars().count() > 256)
    {
        return Err(invalid(
            "capability_filter",
            "capability_filter must hold at most 50 non-empty capabilities of at most 256 characters",
        ));
    }
    let payload_json = Value::Object(request.payload.clone()).to_string();
    if payload_json.len() > MAX_PAYLOAD_BYTES {
        return Err(invalid("payload", "payload must be at most 64 KB of JSON"));
    }
    if !(5..=120).contains(&request.timeout_seconds) {
        return Err(invalid(
            "timeout_seconds",
            "timeout_seconds must be between 5 and 120",
        ));
    }
    if Value::Object(request.context.clone()).to_string().len() > 16 * 1024 {
        return Err(invalid("context", "context must be at most 16 KB of JSON"));
    }
    rate_limit(&state, "broker.rfq", caller.agent_id()).await?;

    let rfq_id = uuid::Uuid::new_v4().to_string();
    let candidates = rfq_candidates(&state, &caller, &request.capability_filter).await?;
    let created_at = crate::db::now_text();
    let mut rfq = Rfq {
        rfq_id: rfq_id.clone(),
        initiator_agent_id: caller.agent_id().to_owned(),
        initiator_org_id: caller.org_id().to_owned(),
        capability_filter: request.capability_filter.clone(),
        payload_json,
        status: "closed".into(),
        timeout_seconds: request.timeout_seconds,
        matched_agents: Vec::new(),
        created_at: created_at.clone(),
        closed_at: Some(created_at),
    };
    if candidates.is_empty() {
        state.db.insert_rfq(&rfq).await?;
        return Ok((StatusCode::CREATED, Json(response(&state, rfq).await?)));
    }

    let initiator_webhook = state
        .db
        .org(caller.org_id())
        .await?
        .and_then(|org| org.webhook_url);
    let mut matched = Vec::new();
    for candidate in &candidates {
        let target_webhook = state
            .db
            .org(&candidate.org_id)
            .await?
            .and_then(|org| org.webhook_url);
        let decision = state
            .policy
            .evaluate_session(&SessionPolicyInput {
                initiator_agent_id: caller.agent_id().to_owned(),
                initiator_org_id: caller.org_id().to_owned(),
                target_agent_id: candidate.agent_id.clone(),
                target_org_id: candidate.org_id.clone(),
                capabilities: request.capability_filter.clone(),
                context: request.context.clone(),
                initiator_webhook_url: initiator_webhook.clone(),
                target_webhook_url: target_webhook,
            })
            .await;
        if decision.allowed {
            matched.push(candidate);
        } else {
            state
                .audit
                .record(
                    AuditEvent::new("rfq.policy_denied", Outcome::Denied)
                        .agent(caller.agent_id())
                        .org(caller.org_id())
                        .detail("rfq_id", rfq_id.clone())
                        .detail("target", candidate.agent_id.clone())
                        .detail("reason", decision.reason.clone()),
                )
                .await?;
        }
    }

    rfq.matched_agents = matched.iter().map(|a| a.agent_id.clone()).collect();
    let notify = Arc::new(Notify::new());
    let _guard = WaiterGuard(rfq_id.clone());
    if matched.is_empty() {
        state.db.insert_rfq(&rfq).await?;
    } else {
        rfq.status = "open".into();
        rfq.closed_at = None;
        // Register the wake-up before the row exists, so no quote can slip past it.
        waiters()
            .lock()
            .map_err(|_| ApiError::internal("RFQ waiters poisoned"))?
            .insert(rfq_id.clone(), notify.clone());
        state.db.insert_rfq(&rfq).await?;
    }
    state
        .audit
        .record(
            AuditEvent::new("rfq.created", Outcome::Ok)
                .agent(caller.agent_id())
                .org(caller.org_id())
                .detail("rfq_id", rfq_id.clone())
                .detail("matched", rfq.matched_agents.clone())
                .detail("capabilities", request.capability_filter.clone()),
        )
        .await?;
    if matched.is_empty() {
        return Ok((StatusCode::CREATED, Json(response(&state, rfq).await?)));
    }
    for agent in &matched {
        // §3.9 step 6: the push first, the notification as the durable fallback.
        let frame = cullis_shared::wire::ws::ServerFrame::RfqRequest {
            rfq_id: rfq_id.clone(),
            initiator_agent_id: caller.agent_id().to_owned(),
            initiator_org_id: caller.org_id().to_owned(),
            capabilities: request.capability_filter.clone(),
            payload: request.payload.clone(),
            timeout_seconds: request.timeout_seconds,
        };
        state.hub.push(&agent.agent_id, frame).await;
        state
            .db
            .insert_notification(
                &agent.agent_id,
                &agent.org_id,
                "rfq_request",
                &format!("RFQ from {}", caller.agent_id()),
                &format!("Capabilities: {}", request.capability_filter.join(", ")),
                &rfq_id,
            )
            .await?;
        state
            .audit
            .record(
                AuditEvent::new("rfq.broadcast", Outcome::Ok)
                    .agent(agent.agent_id.clone())
                    .org(agent.org_id.clone())
                    .detail("rfq_id", rfq_id.clone())
                    .detail("initiator", caller.agent_id()),
            )
            .await?;
    }

    let expected = matched.len() as i64;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(request.timeout_seconds as u64);
    let mut received = state.db.rfq_quote_count(&rfq_id).await?;
    while received < expected {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        let wait = (deadline - now).min(RECHECK);
        let _ = tokio::time::timeout(wait, notify.notified()).await;
        received = state.db.rfq_quote_count(&rfq_id).await?;
    }
    let status = if received >= expected {
        "closed"
    } else {
        "timeout"
    };
    state.db.close_rfq(&rfq_id, status).await?;
    let closed = reload(&state, &rfq_id).await?;
    let result = response(&state, closed).await?;
    state
        .audit
        .record(
            AuditEvent::new("rfq.closed", Outcome::Ok)
                .agent(caller.agent_id())
                .org(caller.org_id())
                .detail("rfq_id", rfq_id.clone())
                .detail("status", result.status.as_str())
                .detail("quotes_received", result.quotes.len() as u64)
                .detail("matched", result.matched_agents.clone()),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(result)))
}

async fn respond(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath(rfq_id): ApiPath<String>,
    ApiJson(request): ApiJson<RfqRespondRequest>,
) -> ApiResult<(StatusCode, Json<RfqRespondAccepted>)> {
    let payload_json = Value::Object(request.payload).to_string();
    if payload_json.len() > MAX_PAYLOAD_BYTES {
        return Err(invalid("payload", "payload must be at most 64 KB of JSON"));
    }
    check_uuid(&rfq_id)?;
    rate_limit(&state, "broker.rfq_respond", caller.agent_id()).await?;
    let refused = || {
        ApiError::conflict(
            "RFQ not found, already closed, not in matched set, or already responded",
        )
    };
    let rfq = state.db.rfq(&rfq_id).await?.ok_or_else(refused)?;
    if rfq.status != "open" || !rfq.matched_agents.iter().any(|a| a == caller.agent_id()) {
        return Err(refused());
    }
    if !state
        .db
        .insert_rfq_quote(&rfq_id, caller.agent_id(), caller.org_id(), &payload_json)
        .await?
    {
        return Err(refused());
    }
    state
        .audit
        .record(
            AuditEvent::new("rfq.response_received", Outcome::Ok)
                .agent(caller.agent_id())
                .org(caller.org_id())
                .detail("rfq_id", rfq_id.clone()),
        )
        .await?;
    let notify = waiters()
        .lock()
        .ok()
        .and_then(|map| map.get(&rfq_id).cloned());
    if let Some(notify) = notify {
        notify.notify_one();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(RfqRespondAccepted {
            status: "accepted".into(),
            rfq_id,
        }),
    ))
}

async fn fetch(
    State(state): State<AppState>,
    caller: AgentAuth,
    ApiPath(rfq_id): ApiPath<String>,
) -> ApiResult<Json<RfqResponse>> {
    check_uuid(&rfq_id)?;
    let rfq = state
        .db
        .rfq(&rfq_id)
        .await?
        .filter(|rfq| rfq.readable_by(caller.agent_id()))
        .ok_or_else(|| ApiError::not_found("RFQ not found"))?;
    Ok(Json(response(&state, rfq).await?))
}

/// The requester's organisation approves one quote (the reference's dashboard "approve
/// quote", here over the API with org credentials): the RFQ becomes `approved`, the requester
/// gets a single-use `CREATE_ORDER` transaction token for the order payload the org approved,
/// in the answer and as a `transaction_token` WebSocket frame.
async fn approve(
    State(state): State<AppState>,
    caller: OrgAuth,
    ApiPath(rfq_id): ApiPath<String>,
    ApiJson(request): ApiJson<RfqApproveRequest>,
) -> ApiResult<Json<TransactionTokenResponse>> {
    check_uuid(&rfq_id)?;
    let org_id = caller.org.org_id.as_str();
    let rfq = state
        .db
        .rfq(&rfq_id)
        .await?
        .filter(|rfq| rfq.initiator_org_id == org_id)
        .ok_or_else(|| ApiError::not_found("RFQ not found"))?;
    let quoted = state
        .db
        .rfq_quotes(&rfq_id)
        .await?
        .iter()
        .any(|quote| quote.responder_agent_id == request.responder_agent_id);
    if !quoted {
        return Err(ApiError::not_found(format!(
            "No quote from '{}' for this RFQ",
            request.responder_agent_id
        )));
    }
    let approved_by = request.approved_by.as_deref().unwrap_or(org_id);
    if approved_by.chars().count() > 256 {
        return Err(invalid(
            "approved_by",
            "String should have at most 256 characters",
        ));
    }
    let token_request = TransactionTokenRequest {
        agent_id: rfq.initiator_agent_id.clone(),
        txn_type: "CREATE_ORDER".into(),
        payload_hash: request.payload_hash.clone(),
        target_agent_id: Some(request.responder_agent_id.clone()),
        resource_id: None,
        rfq_id: Some(rfq_id.clone()),
        ttl_seconds: request
            .ttl_seconds
            .unwrap_or(cullis_shared::wire::auth::DEFAULT_TRANSACTION_TTL_SECONDS),
    };
    crate::transaction_tokens::validate(&token_request)?;
    let previous = match state.db.approve_rfq(&rfq_id).await? {
        Ok(previous) => previous,
        Err(Some(status)) if status == "open" => {
            return Err(ApiError::conflict("RFQ is still collecting quotes"))
        }
        Err(_) => return Err(ApiError::conflict("RFQ already approved")),
    };
    let spiffe_id = cullis_shared::pki::spiffe::internal_to_spiffe(
        &rfq.initiator_agent_id,
        &state.config.trust_domain,
    )
    .map_err(ApiError::internal)?;
    let holder = crate::transaction_tokens::Holder {
        agent_id: &rfq.initiator_agent_id,
        org_id,
        spiffe_id: spiffe_id.as_str(),
    };
    let issued =
        crate::transaction_tokens::issue(&state, &holder, &token_request, approved_by, None).await;
    let response = match issued {
        Ok(response) => response,
        Err(error) => {
            state.db.unapprove_rfq(&rfq_id, &previous).await?;
            return Err(error);
        }
    };
    state
        .audit
        .record(
            AuditEvent::new("rfq.approved", Outcome::Ok)
                .agent(rfq.initiator_agent_id.clone())
                .org(org_id)
                .detail("rfq_id", rfq_id.clone())
                .detail("responder_agent_id", request.responder_agent_id.clone())
                .detail("approved_by", approved_by)
                .detail("jti", response.jti.clone()),
        )
        .await?;
    let frame = ServerFrame::TransactionToken {
        token_id: response.transaction_token.clone(),
        rfq_id,
        txn_type: response.txn_type.clone(),
        target_agent_id: request.responder_agent_id,
        payload_hash: request.payload_hash,
    };
    state.hub.push(&rfq.initiator_agent_id, frame).await;
    Ok(Json(response))
}

/// Every agent of another org an RFQ goes to: discoverable, with all of `capabilities` (the
/// discovery query, page by page).
async fn rfq_candidates(
    state: &AppState,
    caller: &AgentAuth,
    capabilities: &[String],
) -> ApiResult<Vec<crate::db::agents::Agent>> {
    let mut query = crate::db::search::Discovery {
        capabilities: capabilities.iter().map(String::as_str).collect(),
        exclude_org: Some(caller.org_id()),
        trust_domain: &state.config.trust_domain,
        limit: 1_000,
        ..Default::default()
    };
    let mut candidates = Vec::new();
    loop {
        let page = state.db.discover(&query).await?;
        candidates.extend(page.agents);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(candidates),
        }
    }
}
