//! Agent lifecycle: create (key, SPIFFE certificate, broker registration + binding + approval,
//! pin login, API key printed once), list, rotate the API key, rotate the certificate, disable,
//! delete. Disable and delete also revoke the agent at the broker.

use crate::api_key;
use crate::audit::{self, AuditEntry, Outcome, ADMIN_ACTOR};
use crate::context::{keys, Context, OpError};
use crate::store::AgentRow;
use crate::uplink::{AgentCredentials, Uplink};
use cullis_shared::keys::{KeyType, PrivateKey};
use cullis_shared::pki::{spiffe, OrgCa};
use serde_json::{json, Value};
use std::sync::Arc;

/// Agent keys are P-256: every message is signed with them and ES256 is the fast path.
const AGENT_KEY_TYPE: KeyType = KeyType::EcP256;
/// Certificates expiring within this many days are listed by `org status`, `/readyz` and
/// `check`.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// What `agent create` answers (printed once: the API key is not stored in clear).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedAgent {
    pub org_id: String,
    pub agent_id: String,
    pub api_key: String,
}

/// A joined org with its CA and a live uplink: what agent operations need.
struct Joined {
    org: crate::uplink::OrgCredentials,
    ca: OrgCa,
    uplink: Uplink,
}

async fn joined(ctx: &Context) -> Result<Joined, OpError> {
    let broker_url = ctx.broker_url().await?.ok_or_else(|| {
        OpError::NotReady(
            "organisation has not joined a broker yet: run `cullis-proxy org join`".into(),
        )
    })?;
    let org = ctx.org_credentials().await?;
    let ca = ctx
        .org_ca()
        .await?
        .ok_or_else(|| OpError::NotReady("no org CA: run `cullis-proxy org init`".into()))?;
    Ok(Joined {
        org,
        ca,
        uplink: ctx.uplink_to(&broker_url)?,
    })
}

fn validate(name: &str, capabilities: &[String]) -> Result<(), OpError> {
    spiffe::validate_agent_name(name).map_err(|e| OpError::Invalid(e.to_string()))?;
    if capabilities.iter().any(|c| c.trim().is_empty()) {
        return Err(OpError::Invalid(
            "capabilities must be non-empty strings".into(),
        ));
    }
    Ok(())
}

/// Mints a key and certificate, registers and pins the agent at the broker, stores it. The name
/// is claimed in the store first, so of two concurrent creates of one name (CLI, admin API,
/// several processes) one runs and the other gets 409. Creating a name again after `delete`
/// works: the broker still knows the agent, so its new certificate replaces the pinned one.
pub async fn create(
    ctx: &Context,
    name: &str,
    capabilities: &[String],
    display_name: Option<&str>,
) -> Result<CreatedAgent, OpError> {
    validate(name, capabilities)?;
    let exists = || OpError::Conflict(format!("agent {name:?} already exists"));
    if ctx.store.agent_by_name(name).await?.is_some() {
        return Err(exists());
    }
    if !ctx.store.claim_agent_name(name).await? {
        return Err(OpError::Conflict(format!(
            "agent {name:?} is being created by another request"
        )));
    }
    let created = match ctx.store.agent_by_name(name).await {
        Ok(Some(_)) => Err(exists()),
        Ok(None) => create_claimed(ctx, name, capabilities, display_name).await,
        Err(err) => Err(err.into()),
    };
    if let Err(err) = ctx.store.release_agent_name(name).await {
        tracing::warn!(name, "could not release the create claim: {err}");
    }
    created
}

async fn create_claimed(
    ctx: &Context,
    name: &str,
    capabilities: &[String],
    display_name: Option<&str>,
) -> Result<CreatedAgent, OpError> {
    let joined = joined(ctx).await?;
    let agent_id = format!("{}::{name}", joined.org.org_id);
    let display_name = display_name.unwrap_or(name).to_owned();
    let (key, cert_pem) = issue(ctx, &joined.ca, &joined.org.org_id, name)?;
    let known = joined
        .uplink
        .register_agent(&joined.org, &agent_id, &display_name, capabilities)
        .await?;
    if known {
        // Created before (and deleted, or a create that failed after registering): the broker
        // pins the old certificate until it is rotated to this one.
        joined
            .uplink
            .rotate_cert(&joined.org, &agent_id, &cert_pem)
            .await?;
    }
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "agent.broker_bind", Outcome::Success)
            .detail(format!("agent={agent_id}")),
    )
    .await;
    // The first login pins the certificate at the broker, so peers can encrypt to the agent.
    let creds = credentials(&agent_id, &cert_pem, key.clone())?;
    joined.uplink.login(&creds).await?;
    let api_key = api_key::generate(name);
    ctx.custody
        .put(&keys::agent_key(&agent_id), key.to_pkcs8_pem().as_bytes())
        .await?;
    ctx.store
        .insert_agent(&AgentRow {
            agent_id: agent_id.clone(),
            name: name.to_owned(),
            display_name,
            capabilities: serde_json::to_string(capabilities).unwrap_or_else(|_| "[]".into()),
            api_key_hash: ctx.hasher.hash(&api_key),
            cert_pem: Some(cert_pem),
            created_at: audit::now_iso(),
            is_active: true,
        })
        .await?;
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "agent.create", Outcome::Success)
            .detail(format!("agent={agent_id} mode=x509+api_key")),
    )
    .await;
    Ok(CreatedAgent {
        org_id: joined.org.org_id,
        agent_id,
        api_key,
    })
}

fn issue(
    ctx: &Context,
    ca: &OrgCa,
    org_id: &str,
    name: &str,
) -> Result<(Arc<PrivateKey>, String), OpError> {
    let key = PrivateKey::generate(AGENT_KEY_TYPE)
        .map_err(|e| OpError::Internal(format!("key generation failed: {e}")))?;
    issue_for(ctx, ca, org_id, name, Arc::new(key))
}

/// A certificate from `ca` for an existing key pair.
fn issue_for(
    ctx: &Context,
    ca: &OrgCa,
    org_id: &str,
    name: &str,
    key: Arc<PrivateKey>,
) -> Result<(Arc<PrivateKey>, String), OpError> {
    let cert = ca
        .issue_agent_cert(
            org_id,
            name,
            &ctx.settings.trust_domain,
            key.public_key(),
            ctx.settings.agent_cert_days,
        )
        .map_err(|e| OpError::Internal(format!("certificate issue failed: {e}")))?;
    Ok((key, cert.to_pem()))
}

fn credentials(
    agent_id: &str,
    cert_pem: &str,
    key: Arc<PrivateKey>,
) -> Result<AgentCredentials, OpError> {
    let cert = cullis_shared::pki::Certificate::from_pem(cert_pem)
        .map_err(|e| OpError::Internal(e.to_string()))?;
    Ok(AgentCredentials {
        agent_id: agent_id.to_owned(),
        cert_der: cert.der().to_vec(),
        key,
    })
}

/// The stored agents (no secrets).
pub async fn list(ctx: &Context) -> Result<Vec<Value>, OpError> {
    Ok(ctx
        .store
        .list_agents()
        .await?
        .iter()
        .map(describe)
        .collect())
}

/// The public view of an agent row.
pub fn describe(row: &AgentRow) -> Value {
    json!({
        "agent_id": row.agent_id,
        "name": row.name,
        "display_name": row.display_name,
        "capabilities": row.capability_list(),
        "created_at": row.created_at,
        "is_active": row.is_active,
    })
}

async fn existing(ctx: &Context, name: &str) -> Result<AgentRow, OpError> {
    ctx.store
        .agent_by_name(name)
        .await?
        .ok_or_else(|| OpError::NotFound(format!("agent {name:?} not found")))
}

/// A new API key; the old one stops working at once.
pub async fn rotate_api_key(ctx: &Context, name: &str) -> Result<CreatedAgent, OpError> {
    let row = existing(ctx, name).await?;
    if !row.is_active {
        return Err(OpError::Conflict(format!("agent {name:?} is disabled")));
    }
    let api_key = api_key::generate(name);
    ctx.store
        .set_agent_api_key_hash(name, &ctx.hasher.hash(&api_key))
        .await?;
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "agent.rotate_key", Outcome::Success)
            .detail(format!("agent={}", row.agent_id)),
    )
    .await;
    let org_id = row
        .agent_id
        .split_once("::")
        .map(|(o, _)| o.to_owned())
        .unwrap_or_default();
    Ok(CreatedAgent {
        org_id,
        agent_id: row.agent_id,
        api_key,
    })
}

/// What a re-issued certificate certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPair {
    /// A new key pair (`agent rotate-cert`: the old key may be compromised).
    New,
    /// The agent's current key pair (`org rotate-ca`: only the issuer changes, so the public
    /// key other organisations' proxies cached for sealing stays right — a new key would make
    /// messages sealed to the old one unreadable until their cache expires).
    Keep,
}

/// A new certificate (and, with [`KeyPair::New`], key pair) from the current org CA,
/// registered through the broker's rotate-cert.
pub async fn rotate_cert(ctx: &Context, name: &str, key_pair: KeyPair) -> Result<Value, OpError> {
    let row = existing(ctx, name).await?;
    let joined = joined(ctx).await?;
    let (key, cert_pem) = match key_pair {
        KeyPair::New => issue(ctx, &joined.ca, &joined.org.org_id, name)?,
        KeyPair::Keep => {
            let current = ctx.agent_key(&row.agent_id).await?;
            issue_for(ctx, &joined.ca, &joined.org.org_id, name, current)?
        }
    };
    joined
        .uplink
        .rotate_cert(&joined.org, &row.agent_id, &cert_pem)
        .await?;
    ctx.custody
        .put(
            &keys::agent_key(&row.agent_id),
            key.to_pkcs8_pem().as_bytes(),
        )
        .await?;
    ctx.store.set_agent_cert(name, &cert_pem).await?;
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "agent.rotate_cert", Outcome::Success)
            .detail(format!("agent={}", row.agent_id)),
    )
    .await;
    Ok(json!({"agent_id": row.agent_id, "status": "rotated"}))
}

/// `rotate-cert` for every active agent, one after the other (each is independent: a failure
/// is reported and the others still rotate). Disabled agents are left alone — they are
/// revoked at the broker.
pub async fn rotate_all_certs(ctx: &Context, key_pair: KeyPair) -> Result<Value, OpError> {
    let mut rotated = Vec::new();
    let mut failed = Vec::new();
    for row in ctx.store.list_agents().await? {
        if !row.is_active {
            continue;
        }
        match rotate_cert(ctx, &row.name, key_pair).await {
            Ok(_) => rotated.push(row.agent_id),
            Err(err) => failed.push(json!({"agent_id": row.agent_id, "error": err.to_string()})),
        }
    }
    if failed.is_empty() {
        Ok(json!({"rotated": rotated, "status": "rotated"}))
    } else {
        Err(OpError::Conflict(format!(
            "rotated {} agent(s); failed: {}",
            rotated.len(),
            Value::Array(failed)
        )))
    }
}

/// Stored agent certificates that expire within [`EXPIRY_WARNING_DAYS`] (or already did):
/// `[{agent_id, not_after, days_left}]`, soonest first.
pub async fn expiring_certificates(ctx: &Context) -> Result<Vec<Value>, OpError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let horizon = now + EXPIRY_WARNING_DAYS * 86_400;
    let mut soon: Vec<(i64, Value)> = Vec::new();
    for row in ctx.store.list_agents().await? {
        let Some(pem) = row.cert_pem.as_deref() else {
            continue;
        };
        let Ok(cert) = cullis_shared::pki::Certificate::from_pem(pem) else {
            continue;
        };
        let not_after = cert.not_after();
        if not_after <= horizon {
            let when = time::OffsetDateTime::from_unix_timestamp(not_after)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
            soon.push((
                not_after,
                json!({
                    "agent_id": row.agent_id,
                    "not_after": when,
                    "days_left": (not_after - now).div_euclid(86_400),
                }),
            ));
        }
    }
    soon.sort_by_key(|(not_after, _)| *not_after);
    Ok(soon.into_iter().map(|(_, v)| v).collect())
}

/// Disables locally first (the local cut-off cannot fail on the network), then at the broker.
pub async fn disable(ctx: &Context, name: &str) -> Result<Value, OpError> {
    let row = existing(ctx, name).await?;
    ctx.store.set_agent_active(name, false).await?;
    revoke_at_broker(ctx, &row.agent_id).await?;
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "agent.deactivate", Outcome::Success)
            .detail(format!("agent={}", row.agent_id)),
    )
    .await;
    Ok(json!({"agent_id": row.agent_id, "status": "disabled"}))
}

/// Disables, revokes at the broker, then forgets the agent and its key.
pub async fn delete(ctx: &Context, name: &str) -> Result<Value, OpError> {
    let row = existing(ctx, name).await?;
    ctx.store.set_agent_active(name, false).await?;
    revoke_at_broker(ctx, &row.agent_id).await?;
    ctx.custody.delete(&keys::agent_key(&row.agent_id)).await?;
    ctx.store.delete_agent(name).await?;
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "agent.delete", Outcome::Success)
            .detail(format!("agent={}", row.agent_id)),
    )
    .await;
    Ok(json!({"agent_id": row.agent_id, "status": "deleted"}))
}

async fn revoke_at_broker(ctx: &Context, agent_id: &str) -> Result<(), OpError> {
    let Some(broker_url) = ctx.broker_url().await? else {
        return Ok(());
    };
    let org = ctx.org_credentials().await?;
    ctx.uplink_to(&broker_url)?
        .revoke_agent(&org, agent_id)
        .await
        .map_err(|err| {
            tracing::warn!(agent_id, "broker revocation failed: {err}");
            OpError::from(err)
        })
}
