//! The page frame both consoles render into, and the form pieces every page repeats.
//!
//! maud escapes every interpolated string, so org names, agent descriptions and audit details are
//! text wherever they appear; nothing here uses `PreEscaped` on caller input.

use maud::{html, Markup, DOCTYPE};

/// One console: its name in the title bar and where its pages live.
pub struct Console {
    /// "Cullis broker" or "Cullis proxy".
    pub product: &'static str,
    /// Where the logout form posts.
    pub logout: &'static str,
}

/// A link in the navigation bar.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
}

/// A one-line message above the page body, e.g. after an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flash {
    Ok(String),
    Error(String),
}

/// What a logged-in page shows around its body.
pub struct Frame<'a> {
    pub title: &'a str,
    pub nav: &'a [NavItem],
    /// The `href` of the current section, highlighted in the navigation.
    pub active: &'a str,
    /// Who is logged in, as shown in the header ("admin", "org acme").
    pub user: &'a str,
    pub csrf_token: &'a str,
    pub flash: Option<&'a Flash>,
    /// The console's server-sent-events URL; `console.js` turns its events into a `cullis:update`
    /// DOM event that `hx-trigger="cullis:update from:body"` elements refresh on.
    pub live_updates: Option<&'a str>,
}

fn head(title: &str, product: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            // No inline <style> from htmx: the CSP allows styles from /static only.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false}"#;
            title { (title) " · " (product) }
            link rel="stylesheet" href="/static/console.css";
            script src="/static/htmx.min.js" defer {}
            script src="/static/console.js" defer {}
        }
    }
}

/// A full page for a logged-in user.
pub fn page(console: &Console, frame: &Frame<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(frame.title, console.product))
            body data-live=[frame.live_updates] {
                header.topbar {
                    span.brand { (console.product) }
                    nav {
                        @for item in frame.nav {
                            a href=(item.href) class=[(item.href == frame.active).then_some("active")] {
                                (item.label)
                            }
                        }
                    }
                    span.user { (frame.user) }
                    form method="post" action=(console.logout) class="inline" {
                        (csrf_field(frame.csrf_token))
                        button.link type="submit" { "Log out" }
                    }
                }
                main {
                    h1 { (frame.title) }
                    @if let Some(message) = frame.flash { (flash(message)) }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation (login, first-run registration).
pub fn bare_page(console: &Console, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, console.product))
            body.bare {
                main.narrow {
                    p.brand { (console.product) }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(token); }
}

/// A one-button form that POSTs to `action`; `danger` asks the browser to confirm first.
pub fn post_button(action: &str, label: &str, csrf_token: &str, danger: bool) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            (csrf_field(csrf_token))
            @if danger {
                button.danger type="submit" data-confirm=(format!("{label}?")) { (label) }
            } @else {
                button type="submit" { (label) }
            }
        }
    }
}

/// The message box for a [`Flash`].
pub fn flash(message: &Flash) -> Markup {
    match message {
        Flash::Ok(text) => html! { p.flash.ok role="status" { (text) } },
        Flash::Error(text) => html! { p.flash.error role="alert" { (text) } },
    }
}

/// A coloured label for a status word (active, pending, denied, ...).
pub fn badge(status: &str) -> Markup {
    let tone = match status {
        "active" | "approved" | "ok" | "success" | "valid" | "open" | "closed_ok" => "good",
        "pending" | "requested" | "expiring" => "warn",
        "rejected" | "suspended" | "denied" | "error" | "revoked" | "broken" | "disabled" => "bad",
        _ => "plain",
    };
    html! { span class=(format!("badge {tone}")) { (status) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: Console = Console {
        product: "Cullis broker",
        logout: "/dashboard/logout",
    };

    #[test]
    fn caller_strings_are_escaped_everywhere() {
        let evil = "<script>alert(1)</script>";
        let frame = Frame {
            title: evil,
            nav: &[],
            active: "",
            user: evil,
            csrf_token: "\"><b>",
            flash: Some(&Flash::Error(evil.into())),
            live_updates: None,
        };
        let html = page(&CONSOLE, &frame, html! { p { (evil) } }).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("\"><b>"));
    }

    #[test]
    fn pages_load_scripts_from_static_only() {
        let html = bare_page(&CONSOLE, "Log in", html! {}).into_string();
        assert!(html.contains(r#"<script src="/static/htmx.min.js" defer>"#));
        assert_eq!(
            html.matches("<script").count(),
            2,
            "no inline script: {html}"
        );
    }

    #[test]
    fn post_buttons_carry_the_csrf_token() {
        let html = post_button("/dashboard/orgs/a/approve", "Approve", "tok", false).into_string();
        assert!(html.contains(r#"action="/dashboard/orgs/a/approve""#));
        assert!(html.contains(r#"name="csrf_token" value="tok""#));
    }
}
