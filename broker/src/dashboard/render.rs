//! The broker console's frame: its navigation per role, and HTML responses.

use super::auth::ConsoleUser;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use cullis_console::layout::{self, Console, Flash, Frame, NavItem};
use cullis_console::Markup;

const CONSOLE: Console = Console {
    product: "Cullis broker",
    logout: "/dashboard/logout",
};

/// The sections, and whether only the admin has them (org users have no organisations page).
const SECTIONS: &[(&str, &str, bool)] = &[
    ("/dashboard", "Overview", false),
    ("/dashboard/orgs", "Organisations", true),
    ("/dashboard/agents", "Agents", false),
    ("/dashboard/sessions", "Sessions", false),
    ("/dashboard/policies", "Policies", false),
    ("/dashboard/rfqs", "RFQs", false),
    ("/dashboard/audit", "Audit", false),
    ("/dashboard/settings", "Settings", false),
];

fn navigation(admin: bool) -> Vec<NavItem> {
    SECTIONS
        .iter()
        .filter(|(_, _, admin_only)| admin || !admin_only)
        .map(|&(href, label, _)| NavItem { href, label })
        .collect()
}

/// A logged-in page in section `active`.
pub fn page(
    user: &ConsoleUser,
    active: &str,
    title: &str,
    flash: Option<&Flash>,
    body: Markup,
) -> Response {
    let label = user.label();
    let frame = Frame {
        title,
        nav: &navigation(user.is_admin()),
        active,
        user: &label,
        csrf_token: &user.session.csrf_token,
        flash,
        live_updates: Some("/dashboard/sse"),
    };
    Html(layout::page(&CONSOLE, &frame, body).into_string()).into_response()
}

/// A page without navigation (login).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(layout::bare_page(&CONSOLE, title, body).into_string())
}

/// A page without navigation, with a status other than 200.
pub fn status_page(status: StatusCode, title: &str, body: Markup) -> Response {
    (status, bare(title, body)).into_response()
}

/// An HTML fragment (htmx swaps).
pub fn fragment(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// The flash message an action redirected with (`?ok=` / `?error=`), if any.
pub fn flash_from(query: &FlashQuery) -> Option<Flash> {
    match (&query.ok, &query.error) {
        (_, Some(error)) => Some(Flash::Error(error.clone())),
        (Some(ok), None) => Some(Flash::Ok(ok.clone())),
        _ => None,
    }
}

/// `?ok=…` or `?error=…` after an action (post/redirect/get).
#[derive(Debug, Default, serde::Deserialize)]
pub struct FlashQuery {
    pub ok: Option<String>,
    pub error: Option<String>,
}

/// 303 back to `path` with the outcome of an action as a flash message.
pub fn after_action(path: &str, outcome: Result<String, crate::error::ApiError>) -> Response {
    let (key, message) = match outcome {
        Ok(message) => ("ok", message),
        Err(error) => (
            "error",
            error.detail().unwrap_or("The action failed.").to_owned(),
        ),
    };
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, &message)
        .finish();
    let separator = if path.contains('?') { '&' } else { '?' };
    axum::response::Redirect::to(&format!("{path}{separator}{query}")).into_response()
}

/// `?part=…`: only one part of a page, for an htmx refresh.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PartQuery {
    pub part: Option<String>,
}
