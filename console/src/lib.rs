//! What the broker's `/dashboard` and the proxy's `/proxy` consoles share.
//!
//! Nothing here knows an HTTP framework: the broker serves the consoles from axum and the proxy from
//! pingora, so this crate deals in header values, strings and [`maud::Markup`], and each side adapts
//! them to its own request and response types.
//!
//! - [`session`]: the signed `atn_session` / `mcp_proxy_session` cookie and its CSRF token.
//! - [`password`]: bcrypt hashing for console passwords (run it off the async threads).
//! - [`assets`]: htmx, the stylesheet and the enhancement script, embedded and served from `/static`.
//! - [`headers`]: the security headers every console response carries.
//! - [`layout`]: the page frame and the small form helpers every page uses.

pub mod assets;
pub mod headers;
pub mod layout;
pub mod password;
pub mod session;

pub use maud::{html, Markup, PreEscaped, DOCTYPE};
