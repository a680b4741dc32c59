//! Security headers for console pages.
//!
//! Scripts come only from `/static` (no inline script, no `eval`), so an org name or an audit detail
//! that slips past escaping still cannot run. Styles are ours too: htmx is told not to inject its
//! indicator `<style>` (see the `htmx-config` meta tag in [`crate::layout`]).

/// `(name, value)` pairs to set on every console response.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
];
