//! An organisation: `x-org-id` + `x-org-secret`, the secret checked with bcrypt (on a blocking
//! thread; a dummy hash is checked for unknown ids so timing reveals nothing).

use super::credential_header;
use crate::db::orgs::Org;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use zeroize::Zeroizing;

/// The org credential headers, not yet checked.
pub struct OrgCredentials {
    pub org_id: String,
    secret: Zeroizing<String>,
    /// A header had bytes outside visible ASCII: never valid (but checked as long).
    garbled: bool,
}

impl FromRequestParts<AppState> for OrgCredentials {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<OrgCredentials, ApiError> {
        let org_id = credential_header(&parts.headers, "x-org-id")
            .ok_or_else(|| ApiError::missing_header("x-org-id"))?;
        let secret = credential_header(&parts.headers, "x-org-secret")
            .ok_or_else(|| ApiError::missing_header("x-org-secret"))?;
        Ok(OrgCredentials {
            garbled: org_id.garbled || secret.garbled,
            org_id: org_id.text,
            secret: Zeroizing::new(secret.text),
        })
    }
}

impl OrgCredentials {
    /// Credentials typed into a form (the console's org login) rather than sent as headers.
    pub fn new(org_id: &str, secret: &str) -> OrgCredentials {
        let visible = |text: &str| text.bytes().all(|b| (0x20..0x7f).contains(&b));
        OrgCredentials {
            garbled: !visible(org_id) || !visible(secret),
            org_id: org_id.to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
        }
    }

    /// The org, if it exists and the secret matches (whatever its status). A secret that
    /// bcrypt accepted moments ago for the same stored hash is not checked again
    /// ([`super::verified_secrets`]).
    pub async fn verify(&self, state: &AppState) -> Result<Option<Org>, ApiError> {
        let org = match self.garbled {
            true => None,
            false => state.db.org(&self.org_id).await?,
        };
        let Some(org) = org else {
            // Unknown org: the same bcrypt work as a known one, so timing says nothing.
            let hash = state.dummy_secret_hash.clone();
            let secret = self.secret.clone();
            tokio::task::spawn_blocking(move || bcrypt::verify(secret.as_bytes(), &hash))
                .await
                .map_err(ApiError::internal)?
                .ok();
            return Ok(None);
        };
        let digest = state
            .verified_org_secrets
            .digest(&org.org_id, &self.secret, &org.secret_hash);
        if state.verified_org_secrets.contains(&digest) {
            return Ok(Some(org));
        }
        let _checking = state.verified_org_secrets.checking(&digest).await;
        if state.verified_org_secrets.contains(&digest) {
            return Ok(Some(org));
        }
        let hash = org.secret_hash.clone();
        let secret = self.secret.clone();
        let matches = tokio::task::spawn_blocking(move || {
            bcrypt::verify(secret.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .map_err(ApiError::internal)?;
        if !matches {
            return Ok(None);
        }
        state.verified_org_secrets.remember(digest);
        Ok(Some(org))
    }
}

/// An active organisation with valid credentials.
pub struct OrgAuth {
    pub org: Org,
}

impl FromRequestParts<AppState> for OrgAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<OrgAuth, ApiError> {
        let credentials = OrgCredentials::from_request_parts(parts, state).await?;
        match credentials.verify(state).await? {
            Some(org) if org.status == "active" => Ok(OrgAuth { org }),
            _ => Err(ApiError::forbidden("Invalid organization credentials")),
        }
    }
}

/// bcrypt of an org secret sent in body field `field`; secrets over bcrypt's 72-byte input
/// limit are refused (422) rather than silently truncated.
pub async fn hash_secret(state: &AppState, field: &str, secret: &str) -> Result<String, ApiError> {
    if secret.len() > 72 {
        return Err(ApiError::validation(
            "string_too_long",
            &["body", field],
            format!("{field} must be at most 72 bytes"),
            serde_json::Value::Null,
        ));
    }
    if secret.is_empty() {
        return Err(ApiError::validation(
            "string_too_short",
            &["body", field],
            format!("{field} must not be empty"),
            serde_json::Value::Null,
        ));
    }
    let secret = Zeroizing::new(secret.to_owned());
    let cost = state.config.bcrypt_cost;
    tokio::task::spawn_blocking(move || bcrypt::hash(secret.as_bytes(), cost))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}
