//! The agent behind a DPoP-bound access token (ref-auth-crypto §3.6), as an extractor.

use super::dpop::{expected_htu, verify_proof};
use super::header;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use cullis_shared::jose::access_token::AccessTokenClaims;
use cullis_shared::jose::dpop::DpopError;

/// An authenticated agent.
#[derive(Debug, Clone)]
pub struct AgentAuth {
    pub claims: AccessTokenClaims,
}

impl AgentAuth {
    pub fn agent_id(&self) -> &str {
        &self.claims.agent_id
    }

    pub fn org_id(&self) -> &str {
        &self.claims.org
    }
}

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<AgentAuth, ApiError> {
        // 1. `Authorization: DPoP <token>` (case-insensitive scheme, token not trimmed).
        // A value that is not visible ASCII cannot be a token: the same answer as no token.
        let authorization = header(&parts.headers, AUTHORIZATION.as_str()).unwrap_or("");
        let token = match authorization.get(..5) {
            Some(scheme) if scheme.eq_ignore_ascii_case("dpop ") => &authorization[5..],
            _ => {
                return Err(ApiError::unauthorized(
                    "DPoP token required — plain Bearer is not accepted",
                )
                .with_dpop_challenge());
            }
        };
        // 2. The token itself.
        let claims = state
            .token_verifier
            .verify(token, crate::db::unix_now())
            .map_err(|error| {
                ApiError::unauthorized(error.to_string()).with_header(WWW_AUTHENTICATE, "Bearer")
            })?;
        // 3. Bound to a key.
        let Some(jkt) = claims.jkt().map(str::to_owned) else {
            return Err(
                ApiError::unauthorized("Token is not DPoP-bound (missing cnf.jkt)")
                    .with_dpop_challenge(),
            );
        };
        // 4–5. A proof for this request, by that key.
        let proof = match parts.headers.get("dpop") {
            None => {
                return Err(
                    ApiError::unauthorized("DPoP proof header required").with_dpop_challenge()
                )
            }
            // Present but not visible ASCII: a malformed proof, not a missing one.
            Some(value) => value
                .to_str()
                .map_err(|_| ApiError::unauthorized(DpopError::Malformed.to_string()))?,
        };
        let htu = expected_htu(
            state,
            header(&parts.headers, HOST.as_str()),
            parts.uri.path(),
        );
        let proof_jkt =
            verify_proof(state, proof, parts.method.as_str(), &htu, Some(token)).await?;
        // 6.
        if !super::secrets_equal(&proof_jkt, &jkt) {
            return Err(
                ApiError::unauthorized("DPoP proof key does not match token binding")
                    .with_dpop_challenge(),
            );
        }
        // 7. Revocation watermark (second precision: a token of the same second is revoked).
        if let Some(watermark) = state.db.agent_token_watermark(&claims.agent_id).await? {
            if claims.iat <= watermark {
                crate::telemetry::metrics()
                    .revoked_token_use_attempt
                    .add(1, &[opentelemetry::KeyValue::new("kind", "token_revoked")]);
                return Err(ApiError::unauthorized("Token has been revoked").with_dpop_challenge());
            }
        }
        Ok(AgentAuth { claims })
    }
}
