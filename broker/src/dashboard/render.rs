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

const ADMIN_NAV: &[NavItem] = &[
    NavItem {
        href: "/dashboard",
        label: "Overview",
    },
    NavItem {
        href: "/dashboard/orgs",
        label: "Organisations",
    },
    NavItem {
        href: "/dashboard/agents",
        label: "Agents",
    },
    NavItem {
        href: "/dashboard/sessions",
        label: "Sessions",
    },
    NavItem {
        href: "/dashboard/policies",
        label: "Policies",
    },
    NavItem {
        href: "/dashboard/rfqs",
        label: "RFQs",
    },
    NavItem {
        href: "/dashboard/audit",
        label: "Audit",
    },
    NavItem {
        href: "/dashboard/settings",
        label: "Settings",
    },
];

/// Org users have no organisations page (that is the operator's).
const ORG_NAV: &[NavItem] = &[
    NavItem {
        href: "/dashboard",
        label: "Overview",
    },
    NavItem {
        href: "/dashboard/agents",
        label: "Agents",
    },
    NavItem {
        href: "/dashboard/sessions",
        label: "Sessions",
    },
    NavItem {
        href: "/dashboard/policies",
        label: "Policies",
    },
    NavItem {
        href: "/dashboard/rfqs",
        label: "RFQs",
    },
    NavItem {
        href: "/dashboard/audit",
        label: "Audit",
    },
    NavItem {
        href: "/dashboard/settings",
        label: "Settings",
    },
];

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
        nav: if user.is_admin() { ADMIN_NAV } else { ORG_NAV },
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
