//! Organisation lifecycle: create or import the org CA, join a broker with an invite, poll the
//! org's status. A failed join changes no stored state: everything is written only after the
//! broker accepted the join.

use crate::audit::{self, AuditEntry, Outcome, ADMIN_ACTOR};
use crate::context::{keys, Context, OpError};
use cullis_shared::keys::KeyType;
use cullis_shared::pki::{spiffe, OrgCa};
use rand::RngCore;
use serde_json::{json, Value};

/// The org CA key type an operator can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaKeyType {
    /// EC P-384 (default: fast to verify, small).
    P384,
    /// RSA-4096, as the reference's generated CA.
    Rsa,
}

impl CaKeyType {
    fn key_type(self) -> KeyType {
        match self {
            CaKeyType::P384 => KeyType::EcP384,
            CaKeyType::Rsa => KeyType::Rsa4096,
        }
    }
}

/// What `org init` should do.
#[derive(Debug, Clone)]
pub enum CaSource {
    Generate { org_id: String, key_type: CaKeyType },
    Import { cert_pem: String, key_pem: String },
}

/// `org join` parameters (the §2.2 form).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct JoinParams {
    pub broker_url: String,
    pub invite_token: String,
    pub org_id: String,
    pub display_name: String,
    pub contact_email: String,
    #[serde(default)]
    pub webhook_url: Option<String>,
}

/// Creates (or imports) the org CA and stores it; refused once the org has joined a broker.
pub async fn init(ctx: &Context, source: CaSource) -> Result<Value, OpError> {
    if ctx.broker_url().await?.is_some() {
        return Err(OpError::Conflict(
            "organisation already joined a broker; its CA cannot be replaced here".into(),
        ));
    }
    let (ca, action) = match source {
        CaSource::Generate { org_id, key_type } => {
            spiffe::validate_org_id(&org_id).map_err(|e| OpError::Invalid(e.to_string()))?;
            let ca = OrgCa::generate(
                &org_id,
                key_type.key_type(),
                cullis_shared::pki::ca::DEFAULT_ORG_CA_DAYS,
            )
            .map_err(|e| OpError::Internal(format!("CA generation failed: {e}")))?;
            (ca, "ca.generate")
        }
        CaSource::Import { cert_pem, key_pem } => {
            let ca = OrgCa::load(&cert_pem, &key_pem)
                .map_err(|e| OpError::Invalid(format!("cannot import the CA: {e}")))?;
            (ca, "ca.import")
        }
    };
    let org_id = ca
        .org_id()
        .ok_or_else(|| {
            OpError::Invalid("the CA certificate has no O (organisation) attribute".into())
        })?
        .to_owned();
    spiffe::validate_org_id(&org_id).map_err(|e| OpError::Invalid(e.to_string()))?;
    store_ca(ctx, &ca).await?;
    ctx.store.set_setting(keys::ORG_ID, &org_id).await?;
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, action, Outcome::Success).detail(format!("org_id={org_id}")),
    )
    .await;
    Ok(json!({"org_id": org_id, "ca_certificate": ca.cert_pem()}))
}

async fn store_ca(ctx: &Context, ca: &OrgCa) -> Result<(), OpError> {
    ctx.custody
        .put(keys::SECRET_CA_KEY, ca.key_pem().as_bytes())
        .await?;
    ctx.store
        .set_setting(keys::ORG_CA_CERT, &ca.cert_pem())
        .await?;
    Ok(())
}

/// Joins the broker; on success stores broker URL, org id, org secret, CA and status.
pub async fn join(ctx: &Context, params: JoinParams) -> Result<Value, OpError> {
    let broker_url = validate_join(&params)?;
    if let Some(existing) = ctx.broker_url().await? {
        return Err(OpError::Conflict(format!(
            "organisation already joined the broker at {existing}"
        )));
    }
    let (ca, generated) = ca_for_join(ctx, &params.org_id).await?;
    let secret = match ctx.custody.get(keys::SECRET_ORG).await? {
        Some(secret) => String::from_utf8(secret.to_vec())
            .map_err(|_| OpError::Internal("stored org secret unreadable".into()))?,
        None => new_org_secret(),
    };
    let webhook_url = params
        .webhook_url
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| ctx.settings.default_webhook_url());
    if webhook_url.is_none() {
        tracing::warn!("no PDP webhook URL (MCP_PROXY_PROXY_PUBLIC_URL / --webhook-url): the broker will deny every session of this org");
    }
    let broker_webhook_url = webhook_url
        .as_deref()
        .map(|url| ctx.settings.webhook_url_for_broker(url))
        .transpose()
        .map_err(|e| OpError::Invalid(e.to_string()))?;
    let body = json!({
        "org_id": params.org_id,
        "display_name": params.display_name,
        "secret": secret,
        "ca_certificate": ca.cert_pem(),
        "contact_email": params.contact_email,
        "webhook_url": broker_webhook_url,
        "invite_token": params.invite_token,
    });
    let uplink = ctx.uplink_to(&broker_url)?;
    let answer = match uplink.join(&body).await {
        Ok(answer) => answer,
        Err(err) => {
            audit::record_quietly(
                &ctx.store,
                AuditEntry::new(ADMIN_ACTOR, "org.register", Outcome::Error)
                    .detail(err.to_string()),
            )
            .await;
            return Err(err.into());
        }
    };
    let status = answer
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("pending")
        .to_owned();
    // Written only now: a refused join leaves the stored config exactly as it was.
    ctx.custody.put(keys::SECRET_ORG, secret.as_bytes()).await?;
    if generated {
        store_ca(ctx, &ca).await?;
    }
    let webhook = webhook_url.clone().unwrap_or_default();
    ctx.store
        .set_settings(&[
            (keys::ORG_ID, params.org_id.as_str()),
            (keys::DISPLAY_NAME, params.display_name.as_str()),
            (keys::CONTACT_EMAIL, params.contact_email.as_str()),
            (keys::WEBHOOK_URL, webhook.as_str()),
            (keys::ORG_STATUS, status.as_str()),
            (keys::BROKER_URL, broker_url.as_str()),
        ])
        .await?;
    if generated {
        audit::record_quietly(
            &ctx.store,
            AuditEntry::new(ADMIN_ACTOR, "ca.generate", Outcome::Success)
                .detail(format!("org_id={}", params.org_id)),
        )
        .await;
    }
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "org.register", Outcome::Success)
            .detail(format!("org_id={} status={status}", params.org_id)),
    )
    .await;
    Ok(json!({
        "phase": "org",
        "org_id": params.org_id,
        "status": "registered",
        "org_status": status,
        "broker_url": broker_url,
        "webhook_url": webhook_url,
    }))
}

/// The broker URL without a trailing `/`, after checking the form fields.
fn validate_join(params: &JoinParams) -> Result<String, OpError> {
    spiffe::validate_org_id(&params.org_id).map_err(|e| OpError::Invalid(e.to_string()))?;
    let broker_url = params.broker_url.trim().trim_end_matches('/').to_owned();
    let parsed = url::Url::parse(&broker_url)
        .map_err(|e| OpError::Invalid(format!("broker URL {broker_url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(OpError::Invalid(format!(
            "broker URL {broker_url:?} must be http(s)://host[:port]"
        )));
    }
    for (field, value) in [
        ("invite_token", &params.invite_token),
        ("display_name", &params.display_name),
        ("contact_email", &params.contact_email),
    ] {
        if value.trim().is_empty() {
            return Err(OpError::Invalid(format!("{field} is required")));
        }
    }
    Ok(broker_url)
}

/// The stored CA (which must be this org's) or a fresh P-384 one (stored only if the join works).
async fn ca_for_join(ctx: &Context, org_id: &str) -> Result<(OrgCa, bool), OpError> {
    if let Some(ca) = ctx.org_ca().await? {
        if ca.org_id() != Some(org_id) {
            return Err(OpError::Conflict(format!(
                "the stored org CA belongs to {:?}, not {org_id:?}",
                ca.org_id().unwrap_or("")
            )));
        }
        return Ok((ca, false));
    }
    let ca = OrgCa::generate(
        org_id,
        KeyType::EcP384,
        cullis_shared::pki::ca::DEFAULT_ORG_CA_DAYS,
    )
    .map_err(|e| OpError::Internal(format!("CA generation failed: {e}")))?;
    Ok((ca, true))
}

/// 32 random bytes, base64url (43 characters), as the reference's `token_urlsafe(32)`.
fn new_org_secret() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    cullis_shared::encoding::b64::url_unpadded(&raw)
}

/// Asks the broker for the org's status and stores it.
pub async fn status(ctx: &Context) -> Result<Value, OpError> {
    let broker_url = ctx.broker_url().await?.ok_or_else(|| {
        OpError::NotReady(
            "organisation has not joined a broker yet: run `cullis-proxy org join`".into(),
        )
    })?;
    let creds = ctx.org_credentials().await?;
    let mut answer = ctx.uplink_to(&broker_url)?.org_status(&creds).await?;
    if let Some(status) = answer.get("status").and_then(Value::as_str) {
        ctx.store.set_setting(keys::ORG_STATUS, status).await?;
    }
    let expiring = crate::agents::expiring_certificates(ctx).await?;
    if !expiring.is_empty() {
        tracing::warn!(
            count = expiring.len(),
            "agent certificates expire within {} days: run `cullis-proxy agent rotate-cert --all`",
            crate::agents::EXPIRY_WARNING_DAYS
        );
    }
    if let Value::Object(map) = &mut answer {
        map.insert("expiring_certificates".into(), Value::Array(expiring));
    }
    Ok(answer)
}

/// `org rotate-ca`: a new org CA (same key type as the current one) registered at the broker
/// with an overlap window in which leaves of both CAs log in; then every active agent's
/// certificate is re-issued by the new CA and re-pinned (`rotate-cert`). Agents keep working
/// throughout: until its turn an agent logs in with its old certificate under the old CA.
/// After the window the broker drops the old CA. Audited as `ca.rotate` (and `org.ca_rotated`
/// at the broker).
pub async fn rotate_ca(ctx: &Context, overlap_seconds: i64) -> Result<Value, OpError> {
    let broker_url = ctx.broker_url().await?.ok_or_else(|| {
        OpError::NotReady(
            "organisation has not joined a broker yet: run `cullis-proxy org join`".into(),
        )
    })?;
    let org = ctx.org_credentials().await?;
    let current = ctx
        .org_ca()
        .await?
        .ok_or_else(|| OpError::NotReady("no org CA: run `cullis-proxy org init`".into()))?;
    // The new CA keeps the current one's kind (an imported RSA CA stays RSA).
    let key_type = match current.private_key().public_key().kind() {
        cullis_shared::keys::KeyKind::Rsa { .. } => KeyType::Rsa4096,
        cullis_shared::keys::KeyKind::Ec(_) => KeyType::EcP384,
    };
    let new_ca = OrgCa::generate(
        &org.org_id,
        key_type,
        cullis_shared::pki::ca::DEFAULT_ORG_CA_DAYS,
    )
    .map_err(|e| OpError::Internal(format!("CA generation failed: {e}")))?;
    let answer = match ctx
        .uplink_to(&broker_url)?
        .rotate_org_ca(&org, &new_ca.cert_pem(), overlap_seconds)
        .await
    {
        Ok(answer) => answer,
        Err(err) => {
            audit::record_quietly(
                &ctx.store,
                AuditEntry::new(ADMIN_ACTOR, "ca.rotate", Outcome::Error).detail(err.to_string()),
            )
            .await;
            return Err(err.into());
        }
    };
    // The broker already signs with the new CA: store it before re-issuing anything.
    store_ca(ctx, &new_ca).await?;
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "ca.rotate", Outcome::Success).detail(format!(
            "org_id={} old_ca={} new_ca={} overlap_seconds={overlap_seconds}",
            org.org_id,
            current.certificate().thumbprint(),
            new_ca.certificate().thumbprint()
        )),
    )
    .await;
    let agents = crate::agents::rotate_all_certs(ctx, crate::agents::KeyPair::Keep).await?;
    Ok(json!({
        "org_id": org.org_id,
        "status": "rotated",
        "previous_ca_valid_until": answer.get("previous_ca_valid_until"),
        "agents": agents.get("rotated"),
    }))
}

/// `org rotate-secret`: a new random org secret, registered at the broker (which stops
/// accepting the old one at once, on every replica) and then stored. The new secret is kept
/// under its own name until the broker has it, so a stop in between loses neither.
pub async fn rotate_secret(ctx: &Context) -> Result<Value, OpError> {
    let broker_url = ctx.broker_url().await?.ok_or_else(|| {
        OpError::NotReady(
            "organisation has not joined a broker yet: run `cullis-proxy org join`".into(),
        )
    })?;
    let org = ctx.org_credentials().await?;
    let new_secret = zeroize::Zeroizing::new(new_org_secret());
    ctx.custody
        .put(keys::SECRET_ORG_NEXT, new_secret.as_bytes())
        .await?;
    if let Err(err) = ctx
        .uplink_to(&broker_url)?
        .rotate_org_secret(&org, &new_secret)
        .await
    {
        ctx.custody.delete(keys::SECRET_ORG_NEXT).await?;
        audit::record_quietly(
            &ctx.store,
            AuditEntry::new(ADMIN_ACTOR, "org.rotate_secret", Outcome::Error)
                .detail(err.to_string()),
        )
        .await;
        return Err(err.into());
    }
    ctx.custody
        .put(keys::SECRET_ORG, new_secret.as_bytes())
        .await?;
    ctx.custody.delete(keys::SECRET_ORG_NEXT).await?;
    audit::record_quietly(
        &ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "org.rotate_secret", Outcome::Success)
            .detail(format!("org_id={}", org.org_id)),
    )
    .await;
    Ok(json!({"org_id": org.org_id, "status": "rotated"}))
}

/// The stored org config (no secrets).
pub async fn config(ctx: &Context) -> Result<Value, OpError> {
    let mut out = serde_json::Map::new();
    for key in [
        keys::ORG_ID,
        keys::BROKER_URL,
        keys::DISPLAY_NAME,
        keys::CONTACT_EMAIL,
        keys::WEBHOOK_URL,
        keys::ORG_STATUS,
    ] {
        out.insert(
            key.to_owned(),
            ctx.store
                .setting(key)
                .await?
                .map_or(Value::Null, Value::String),
        );
    }
    out.insert(
        "ca_initialised".into(),
        Value::Bool(ctx.store.setting(keys::ORG_CA_CERT).await?.is_some()),
    );
    Ok(Value::Object(out))
}
