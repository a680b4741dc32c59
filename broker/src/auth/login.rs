//! `POST /v1/auth/token`: x509 client assertion + DPoP proof → DPoP-bound access token, in the
//! order of ref-auth-crypto §2.3 (first failure wins), with every decision audited.

use super::dpop::verify_proof;
use crate::audit::{AuditEvent, Outcome};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use cullis_shared::jose::access_token::{self, AccessTokenClaims};
use cullis_shared::jose::assertion::{AssertionRules, ClientAssertion};
use cullis_shared::pki::{AgentLeaf, Certificate, LeafError};
use cullis_shared::wire::auth::TokenResponse;
use opentelemetry::KeyValue;
use serde_json::{Map, Value};

/// Runs the whole login. `proof` is the `DPoP` header, `htu` the URL it must name.
pub async fn issue_token(
    state: &AppState,
    proof: &str,
    htu: &str,
    client_assertion: &str,
) -> Result<TokenResponse, ApiError> {
    let jkt = verify_proof(state, proof, "POST", htu, None).await?;
    let now = crate::db::unix_now();

    // a–c: the assertion and its x5c leaf.
    let assertion = ClientAssertion::parse(client_assertion)
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    // c–d: identity from the certificate.
    let leaf = AgentLeaf::parse(assertion.leaf_der()).map_err(leaf_error)?;
    // e: the org that must have issued it.
    let org_id = leaf.org_id().to_owned();
    let org = state
        .db
        .org(&org_id)
        .await?
        .ok_or_else(|| ApiError::forbidden(format!("Organisation '{org_id}' not found")))?;
    if org.status != "active" {
        return Err(ApiError::forbidden(format!(
            "Organisation '{org_id}' not yet approved"
        )));
    }
    let cas = org.login_cas(now);
    if cas.is_empty() {
        return Err(ApiError::forbidden(format!(
            "CA not configured for org '{org_id}'"
        )));
    }
    // f–k against the current CA, then (inside a rotation's overlap window) the previous one;
    // the current CA's verdict is the one reported.
    let certificate = leaf.certificate();
    let verify_started = std::time::Instant::now();
    let leaf_key = tracing::info_span!(
        "auth.x509_verify",
        cert.thumbprint = certificate.thumbprint()
    )
    .in_scope(|| {
        let mut verdicts = cas
            .iter()
            .map(|ca_pem| verify_leaf(state, &leaf, ca_pem, now));
        let first = verdicts.next().expect("at least one CA");
        match first {
            Ok(key) => Ok(key),
            Err(err) => verdicts.find_map(Result::ok).ok_or(err),
        }
    })?;
    crate::telemetry::metrics()
        .x509_verify_duration
        .record(verify_started.elapsed().as_secs_f64() * 1000.0, &[]);
    // l: revocation by serial.
    if state.db.is_serial_revoked(certificate.serial_hex()).await? {
        crate::telemetry::metrics()
            .revoked_token_use_attempt
            .add(1, &[KeyValue::new("kind", "cert_revoked")]);
        return Err(ApiError::unauthorized("Certificate has been revoked"));
    }
    // m–o: the JWT itself.
    let spiffe_id = leaf
        .expected_spiffe_id(&state.config.trust_domain)
        .map_err(leaf_error)?;
    let claims = assertion
        .verify(
            &leaf_key,
            leaf.agent_id(),
            spiffe_id.as_str(),
            now,
            AssertionRules::default(),
        )
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    // p: SPIFFE SAN.
    leaf.check_spiffe_san(&state.config.trust_domain, state.config.require_spiffe_san)
        .map_err(leaf_error)?;
    // q–r: the assertion is single-use (burned from here on, whatever happens next).
    if !state
        .db
        .burn_assertion_jti(&claims.jti, claims.exp.max(now + 1), now)
        .await?
    {
        return Err(ApiError::unauthorized(
            "client_assertion already used (replay attack detected)",
        ));
    }

    let agent_id = leaf.agent_id().to_owned();
    let span = tracing::Span::current();
    span.record("agent.id", crate::telemetry::bounded(&agent_id));
    span.record("org.id", crate::telemetry::bounded(&org_id));
    let deny = |reason: &str| {
        AuditEvent::new("auth.token_request", Outcome::Denied)
            .agent(agent_id.clone())
            .org(org_id.clone())
            .detail("reason", reason.to_owned())
    };
    // 4. The agent must be registered under the certificate's org.
    let agent = match state.db.agent(&agent_id).await? {
        Some(agent) if agent.org_id == org_id => agent,
        _ => {
            state
                .audit
                .record(deny("agent not found or org mismatch"))
                .await?;
            return Err(ApiError::unauthorized("Agent not found or org mismatch"));
        }
    };
    // 5.
    if !agent.is_active {
        state.audit.record(deny("agent inactive")).await?;
        return Err(ApiError::forbidden("Agent not active"));
    }
    // 6. An approved binding gives the token its scope.
    let binding = match state.db.binding_for(&org_id, &agent_id).await? {
        Some(binding) if binding.status == "approved" => binding,
        _ => {
            state.audit.record(deny("no approved binding")).await?;
            return Err(ApiError::forbidden(
                "No approved binding for this agent and organization",
            ));
        }
    };
    // 7. Pinning: the first certificate that logs in is the only one until rotation.
    let thumbprint = certificate.thumbprint();
    let pinned_elsewhere = agent
        .cert_thumbprint
        .as_deref()
        .is_some_and(|pinned| !super::secrets_equal(pinned, thumbprint));
    let already_pinned = agent.cert_thumbprint.as_deref() == Some(thumbprint);
    if pinned_elsewhere
        || (!already_pinned
            && !state
                .db
                .pin_agent_cert(&agent_id, &certificate.to_pem(), thumbprint)
                .await?)
    {
        crate::telemetry::metrics()
            .cert_pinning_mismatch
            .add(1, &[KeyValue::new("org_id", org_id.clone())]);
        state
            .audit
            .record(deny("cert_thumbprint_mismatch").detail("presented", thumbprint.to_owned()))
            .await?;
        return Err(ApiError::unauthorized(
            "Certificate thumbprint mismatch — use the rotate-cert endpoint to update",
        ));
    }
    // 8. The token.
    let token_claims = AccessTokenClaims {
        iss: access_token::ISSUER.into(),
        aud: access_token::AUDIENCE.into(),
        sub: spiffe_id.as_str().to_owned(),
        agent_id: agent_id.clone(),
        org: org_id.clone(),
        scope: binding.scope.clone(),
        iat: now,
        exp: now + state.config.access_token_ttl_secs,
        jti: uuid::Uuid::new_v4().to_string(),
        cnf: Some(Map::from_iter([("jkt".to_owned(), Value::String(jkt))])),
    };
    let access_token = state
        .keys
        .signer()
        .sign(&token_claims)
        .map_err(ApiError::internal)?;
    state
        .audit
        .record(
            AuditEvent::new("auth.token_issued", Outcome::Ok)
                .agent(agent_id)
                .org(org_id.clone()),
        )
        .await?;
    crate::telemetry::metrics()
        .auth_success
        .add(1, &[KeyValue::new("org_id", org_id)]);
    Ok(TokenResponse {
        access_token,
        token_type: "DPoP".into(),
        expires_in: state.config.access_token_ttl_secs.max(0) as u64,
    })
}

/// f–k: chain, key, EKU, validity — the time-independent part memoised per (leaf, CA).
fn verify_leaf(
    state: &AppState,
    leaf: &AgentLeaf,
    ca_pem: &str,
    now: i64,
) -> Result<cullis_shared::keys::PublicKey, ApiError> {
    let certificate = leaf.certificate();
    match state.leaf_cache.get(certificate.thumbprint(), ca_pem) {
        Some(key) if certificate.is_valid_at(now) => Ok(key),
        Some(_) => Err(leaf_error(LeafError::OutsideValidity)),
        None => {
            // f: the stored CA was validated on upload; failing here is a broker-side problem.
            let org_ca =
                Certificate::from_pem(ca_pem).map_err(|_| leaf_error(LeafError::InvalidOrgCa))?;
            let key = tracing::info_span!("auth.x509_chain_verify")
                .in_scope(|| leaf.verify_chain(&org_ca, now))
                .map_err(leaf_error)?;
            state
                .leaf_cache
                .insert(certificate.thumbprint(), ca_pem, key.clone());
            Ok(key)
        }
    }
}

fn leaf_error(error: LeafError) -> ApiError {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
    if status.is_server_error() {
        tracing::error!(%error, "org CA or trust-domain configuration is broken");
    }
    ApiError::new(status, error.to_string())
}
