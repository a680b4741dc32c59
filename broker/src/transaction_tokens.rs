//! Transaction tokens (ref-auth-crypto §4.4): issued on request by an agent for itself
//! (`POST /v1/auth/token/transaction`) or to an RFQ's requester when its org approves a quote,
//! and consumed once by the message that carries the approved payload.
//!
//! Unlike the reference, presentation works over HTTP: the sender keeps its own DPoP access
//! token and adds the transaction token in the `X-Transaction-Token` header; the token's
//! `payload_hash` binds the envelope `payload` the broker relays (the E2E cipher blob — the
//! only payload the broker ever sees). A transaction token is never an access token: it has no
//! `cnf.jkt`, and `token_type` = `transaction` is refused by the access-token verifier.

use crate::audit::{AuditEvent, Outcome};
use crate::db::transaction_tokens::NewTransactionToken;
use crate::error::{ApiError, ApiResult};
use crate::keyring::KeyError;
use crate::state::AppState;
use cullis_shared::jose::access_token::{TokenError, AUDIENCE, ISSUER};
use cullis_shared::jose::transaction_token::{self, Actor, TransactionTokenClaims};
use cullis_shared::wire::auth::{TransactionTokenRequest, TransactionTokenResponse};
use serde_json::{Map, Value};

/// Longest `txn_type` and `payload_hash` (the reference's column widths).
const MAX_FIELD_CHARS: usize = 64;
/// Longest optional id (`resource_id`, `rfq_id`, `target_agent_id`).
const MAX_ID_CHARS: usize = 256;

/// The agent a token is issued to.
pub struct Holder<'a> {
    pub agent_id: &'a str,
    pub org_id: &'a str,
    pub spiffe_id: &'a str,
}

/// Field checks of a request (422 in the reference's validation shape).
pub fn validate(request: &TransactionTokenRequest) -> ApiResult<()> {
    let too_long = |field: &str, max: usize| {
        ApiError::validation(
            "string_too_long",
            &["body", field],
            format!("String should have at most {max} characters"),
            Value::Null,
        )
    };
    if request.txn_type.chars().count() > MAX_FIELD_CHARS {
        return Err(too_long("txn_type", MAX_FIELD_CHARS));
    }
    if request.payload_hash.chars().count() > MAX_FIELD_CHARS {
        return Err(too_long("payload_hash", MAX_FIELD_CHARS));
    }
    for (field, value) in [
        ("target_agent_id", &request.target_agent_id),
        ("resource_id", &request.resource_id),
        ("rfq_id", &request.rfq_id),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().count() > MAX_ID_CHARS)
        {
            return Err(too_long(field, MAX_ID_CHARS));
        }
    }
    if !(10..=crate::keyring::MAX_TRANSACTION_TTL_SECS).contains(&request.ttl_seconds) {
        let (kind, msg) = if request.ttl_seconds < 10 {
            (
                "greater_than_equal",
                "Input should be greater than or equal to 10",
            )
        } else {
            (
                "less_than_equal",
                "Input should be less than or equal to 300",
            )
        };
        return Err(ApiError::validation(
            kind,
            &["body", "ttl_seconds"],
            msg,
            Value::from(request.ttl_seconds),
        ));
    }
    Ok(())
}

/// Signs and records a token for `holder`, approved by `approved_by`.
pub async fn issue(
    state: &AppState,
    holder: &Holder<'_>,
    request: &TransactionTokenRequest,
    approved_by: &str,
    parent_jti: Option<String>,
) -> ApiResult<TransactionTokenResponse> {
    validate(request)?;
    let now = crate::db::unix_now();
    let claims = TransactionTokenClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: holder.spiffe_id.into(),
        agent_id: holder.agent_id.into(),
        org: holder.org_id.into(),
        scope: Vec::new(),
        iat: now,
        exp: now + request.ttl_seconds,
        jti: uuid::Uuid::new_v4().to_string(),
        cnf: Map::new(),
        token_type: transaction_token::TOKEN_TYPE.into(),
        act: Actor {
            sub: approved_by.into(),
        },
        txn_type: request.txn_type.clone(),
        resource_id: request.resource_id.clone(),
        payload_hash: request.payload_hash.clone(),
        parent_jti: parent_jti.clone(),
    };
    let token = state
        .keys
        .signer()
        .sign(&claims)
        .map_err(ApiError::internal)?;
    state
        .db
        .insert_transaction_token(&NewTransactionToken {
            jti: claims.jti.clone(),
            txn_type: claims.txn_type.clone(),
            agent_id: claims.agent_id.clone(),
            org_id: claims.org.clone(),
            resource_id: claims.resource_id.clone(),
            payload_hash: claims.payload_hash.clone(),
            approved_by: approved_by.into(),
            parent_jti,
            rfq_id: request.rfq_id.clone(),
            target_agent_id: request.target_agent_id.clone(),
            expires_at: claims.exp,
        })
        .await?;
    state
        .audit
        .record(
            AuditEvent::new("auth.transaction_token_issued", Outcome::Ok)
                .agent(holder.agent_id)
                .org(holder.org_id)
                .detail("jti", claims.jti.clone())
                .detail("txn_type", claims.txn_type.clone())
                .detail("approved_by", approved_by),
        )
        .await?;
    Ok(TransactionTokenResponse {
        transaction_token: token,
        expires_in: request.ttl_seconds as u64,
        jti: claims.jti,
        txn_type: claims.txn_type,
    })
}

/// Consumes `token` for a message from `agent_id` whose envelope payload is `payload`.
/// Returns the jti (to [`release`] if the message is then not stored). Any failure is audited
/// and answers 403 `Transaction token invalid: <reason>` (X-04..X-07).
pub async fn consume(
    state: &AppState,
    agent_id: &str,
    org_id: &str,
    token: &str,
    payload: &Value,
) -> ApiResult<String> {
    let now = crate::db::unix_now();
    let outcome = match state.keys.verify_transaction(token, now) {
        Err(error) => Err(reason_for(&error).to_owned()),
        Ok(claims) if claims.agent_id != agent_id => {
            Err("Transaction token was issued to another agent".to_owned())
        }
        Ok(claims) => state
            .db
            .consume_transaction_token(&claims.jti, &transaction_token::payload_hash(payload), now)
            .await?
            .map(|()| claims.jti)
            .map_err(|error| error.to_string()),
    };
    match outcome {
        Ok(jti) => {
            state
                .audit
                .record(
                    AuditEvent::new("broker.transaction_executed", Outcome::Ok)
                        .agent(agent_id)
                        .org(org_id)
                        .detail("jti", jti.clone()),
                )
                .await?;
            Ok(jti)
        }
        Err(reason) => {
            state
                .audit
                .record(
                    AuditEvent::new("broker.transaction_rejected", Outcome::Denied)
                        .agent(agent_id)
                        .org(org_id)
                        .detail("reason", reason.clone()),
                )
                .await?;
            Err(ApiError::forbidden(format!(
                "Transaction token invalid: {reason}"
            )))
        }
    }
}

/// Gives a consumed token back (the message it was consumed for was not stored).
pub async fn release(state: &AppState, jti: &str) {
    if let Err(error) = state.db.release_transaction_token(jti).await {
        tracing::warn!(%error, jti, "could not release a transaction token");
    }
}

fn reason_for(error: &KeyError) -> &'static str {
    match error {
        KeyError::Token(TokenError::WrongTokenType) => "Not a transaction token",
        KeyError::Token(TokenError::Expired) => "Transaction token expired",
        KeyError::Retired => "signed by a retired broker signing key",
        _ => "signature or claims do not verify",
    }
}
