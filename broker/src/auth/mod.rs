//! Who is calling: the network admin (`x-admin-secret`), an organisation (`x-org-id` +
//! `x-org-secret`), or an agent (DPoP-bound access token) — each an axum extractor, so a
//! handler's signature says which caller it serves. Also the token endpoint itself.

pub mod admin;
pub mod agent;
pub mod client_ip;
pub mod dpop;
pub mod leaf_cache;
pub mod login;
pub mod org;
pub mod token_cache;
pub mod verified_secrets;

use axum::http::HeaderMap;

/// A header's value as text, `None` when absent or not visible ASCII.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A credential header as sent: `None` when absent. A value that is not visible ASCII is
/// returned as lossy text with `garbled` set — a wrong credential (401/403), never a missing one
/// (422) and never an error.
pub(crate) fn credential_header(headers: &HeaderMap, name: &str) -> Option<Credential> {
    let value = headers.get(name)?;
    Some(match value.to_str() {
        Ok(text) => Credential {
            text: text.to_owned(),
            garbled: false,
        },
        Err(_) => Credential {
            text: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            garbled: true,
        },
    })
}

/// See [`credential_header`].
pub(crate) struct Credential {
    pub text: String,
    pub garbled: bool,
}

/// Constant-time equality of two secrets.
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
