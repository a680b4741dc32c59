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

use axum::http::HeaderMap;

/// A header's value as text, `None` when absent or not visible ASCII.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Constant-time equality of two secrets.
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
