//! The console's page frame: navigation, the org status banner, flash messages and error pages.

use super::{html, Call, BASE};
use crate::context::keys;
use crate::http::{ApiError, Response};
use crate::state::AppState;
use cullis_console::html;
use cullis_console::layout::{self, Console, Flash, Frame, NavItem};
use cullis_console::Markup;
use http::StatusCode;

pub const CONSOLE: Console = Console {
    product: "Cullis proxy",
    logout: "/proxy/logout",
};

const NAV: &[NavItem] = &[
    NavItem {
        href: "/proxy/agents",
        label: "Agents",
    },
    NavItem {
        href: "/proxy/policies",
        label: "Policies",
    },
    NavItem {
        href: "/proxy/audit",
        label: "Audit",
    },
    NavItem {
        href: "/proxy/health",
        label: "Broker",
    },
    NavItem {
        href: "/proxy/setup",
        label: "Setup",
    },
];

/// A logged-in page: navigation, the org status banner, an optional flash, then `body`.
pub async fn render(
    call: &Call<'_>,
    status: StatusCode,
    title: &str,
    active: &str,
    flash: Option<Flash>,
    body: Markup,
) -> Response {
    let flash = flash.or_else(|| flash_from_query(call));
    let org = OrgView::cached(call.state).await;
    let frame = Frame {
        title,
        nav: NAV,
        active,
        user: "admin",
        csrf_token: &call.session.csrf_token,
        flash: flash.as_ref(),
        live_updates: None,
    };
    let body = html! {
        (org_banner(&org))
        (body)
    };
    html(status, layout::page(&CONSOLE, &frame, body))
}

/// A page without navigation (login, register, errors outside a session).
pub fn bare(title: &str, body: Markup) -> Markup {
    layout::bare_page(&CONSOLE, title, body)
}

/// A short page that says what went wrong (403 CSRF, 404, 405, 429).
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html(
        status,
        bare(
            title,
            html! {
                p role="alert" { (text) }
                p { a href=(BASE) { "Back to the console" } }
            },
        ),
    )
}

/// Messages a redirect can ask the next page to show (`?ok=<code>`): fixed texts, so a link
/// cannot make the console display words of the link's author.
const DONE: &[(&str, &str)] = &[
    (
        "joined",
        "Joined the broker. The network operator must now approve the organisation.",
    ),
    (
        "cert_rotated",
        "New key pair and certificate issued and registered at the broker.",
    ),
    ("disabled", "Agent disabled here and revoked at the broker."),
    ("deleted", "Agent revoked at the broker and deleted."),
    ("policy_saved", "Policy rules saved."),
];

/// The `?ok=` path a redirect adds for `code` (one of [`DONE`]).
pub fn done(path: &str, code: &str) -> String {
    debug_assert!(DONE.iter().any(|(known, _)| *known == code));
    format!("{path}?ok={code}")
}

fn flash_from_query(call: &Call<'_>) -> Option<Flash> {
    let code = call.request.query_param("ok")?;
    DONE.iter()
        .find(|(known, _)| *known == code)
        .map(|(_, text)| Flash::Ok((*text).to_owned()))
}

/// An error of a domain function, as the status and text the page shows (the same mapping
/// as the JSON API's; internal causes are logged there, never shown).
pub fn failure(error: crate::context::OpError) -> (StatusCode, Flash) {
    let api: ApiError = crate::state::op_error(error);
    (api.status, Flash::Error(api.detail_line()))
}

/// What the banner knows about the organisation.
#[derive(Debug, Clone, Default)]
pub struct OrgView {
    pub org_id: Option<String>,
    pub broker_url: Option<String>,
    pub status: Option<String>,
    /// Why the broker could not be asked just now.
    pub check_error: Option<String>,
}

impl OrgView {
    /// The stored view, without asking the broker.
    pub async fn cached(state: &AppState) -> OrgView {
        let store = &state.ctx.store;
        let read = |key: &'static str| async move { store.setting(key).await.ok().flatten() };
        OrgView {
            org_id: read(keys::ORG_ID).await,
            broker_url: read(keys::BROKER_URL).await,
            status: read(keys::ORG_STATUS).await,
            check_error: None,
        }
    }

    pub fn joined(&self) -> bool {
        self.broker_url.is_some()
    }
}

/// The banner on every page; htmx refreshes its content on load and every 10 s (the fragment
/// asks the broker while the org is pending). Without JavaScript it shows the stored status.
pub fn org_banner(org: &OrgView) -> Markup {
    html! {
        div id="org-status" hx-get="/proxy/org-status" hx-trigger="load, every 10s" hx-swap="innerHTML" {
            (banner_body(org))
        }
    }
}

/// The banner's content (also the `/proxy/org-status` fragment).
pub fn banner_body(org: &OrgView) -> Markup {
    let org_id = org.org_id.as_deref().unwrap_or("this organisation");
    html! {
        @if !org.joined() {
            p class="flash error" {
                "Not joined to a broker yet. " a href="/proxy/setup" { "Set up the connection" } "."
            }
        } @else {
            @match org.status.as_deref() {
                Some("active") => p class="flash ok" data-status="active" {
                    (layout::badge("active")) " Organisation " strong { (org_id) } " is active at the broker."
                },
                Some("pending") | None => p class="flash" data-status="pending" {
                    (layout::badge("pending")) " Organisation " strong { (org_id) }
                    " is waiting for the network operator's approval. Agents can be created once it is active."
                },
                Some(other) => p class="flash error" data-status=(other) {
                    (layout::badge(other)) " Organisation " strong { (org_id) } " is " (other) " at the broker."
                },
            }
            @if let Some(error) = &org.check_error {
                p class="muted" { "Could not ask the broker just now: " (error) }
            }
        }
    }
}
