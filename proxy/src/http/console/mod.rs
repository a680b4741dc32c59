//! The org administrator's console under `/proxy/*`: server-rendered HTML (maud, escaped by
//! construction), enhanced by htmx where a browser runs it, and complete without JavaScript.
//!
//! Every action calls the same domain function the CLI and the admin API call (`org::join`,
//! `agents::create`, `pdp::set_rules`, `audit::verify`, ...): this module renders forms and
//! results, it implements no lifecycle of its own.
//!
//! Sessions are the shared `cullis-console` cookie (`mcp_proxy_session`, path `/proxy`, admin
//! role, 8 h). Every state-changing POST except login and register carries the session's CSRF
//! token as the form field `csrf_token`; without it the answer is 403 and nothing changes.

mod agents;
mod audit;
mod auth;
mod health;
mod pages;
mod policies;
mod setup;

use crate::config::{CommonSettings, ServeSettings};
use crate::http::{Reply, Request, Response};
use crate::ratelimit::RateLimiter;
use crate::state::AppState;
use cullis_console::headers::SECURITY_HEADERS;
use cullis_console::session::{CookieSpec, Role, Session, SessionKey};
use cullis_console::Markup;
use health::BrokerHealth;
use http::{Method, StatusCode};
use std::sync::Mutex;

/// The console's cookie name (the reference's).
pub const COOKIE_NAME: &str = "mcp_proxy_session";
/// Where the console lives; the cookie is scoped to it.
pub const BASE: &str = "/proxy";
/// Login attempts per client address per sliding minute: bcrypt makes each guess cost the
/// server ~0.25 s of a blocking thread, so the limit protects the CPU as much as the password.
const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

/// What the console keeps for the life of the process.
pub struct ConsoleState {
    key: SessionKey,
    cookie: CookieSpec,
    login_limiter: RateLimiter,
    /// The proxy's own URL as agents reach it (integration snippets).
    public_url: String,
    /// The last broker check the console made (health page).
    broker: Mutex<BrokerHealth>,
}

impl ConsoleState {
    /// The signing key comes from `MCP_PROXY_DASHBOARD_SIGNING_KEY`, or is random for this
    /// process (the warning is logged once at start-up, see `http::serve`).
    pub fn new(common: &CommonSettings, serve: &ServeSettings) -> ConsoleState {
        let (key, _generated) = SessionKey::from_config(serve.dashboard_signing_key.as_deref());
        let public_url = public_url(common, serve);
        ConsoleState {
            key,
            cookie: CookieSpec {
                name: COOKIE_NAME,
                path: BASE,
                secure: public_url.starts_with("https://"),
            },
            login_limiter: RateLimiter::new(LOGIN_ATTEMPTS_PER_MINUTE),
            public_url,
            broker: Mutex::new(BrokerHealth::default()),
        }
    }

    /// The admin session a request's cookie carries, if it is ours, unexpired and an admin's.
    fn session(&self, request: &Request) -> Option<Session> {
        let cookies = request
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok());
        let value = self.cookie.find(cookies)?;
        let session = self.key.open(value, now())?;
        (session.role == Role::Admin).then_some(session)
    }
}

/// `MCP_PROXY_PROXY_PUBLIC_URL`, else the listener's own address as a local agent would type it.
fn public_url(common: &CommonSettings, serve: &ServeSettings) -> String {
    match common.public_url.as_deref().filter(|url| !url.is_empty()) {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let scheme = if serve.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://localhost:{}", serve.port)
        }
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A logged-in request: who, and its form fields (POST bodies are urlencoded forms).
pub(crate) struct Call<'a> {
    pub state: &'a AppState,
    pub request: &'a Request,
    pub session: Session,
    pub form: Form,
}

impl Call<'_> {
    fn console(&self) -> &ConsoleState {
        &self.state.console
    }
}

/// Dispatches `/proxy/<rest>`.
pub async fn route(state: &AppState, request: &Request, rest: &[&str]) -> Reply {
    let m = &request.method;
    let response = match (m, rest) {
        (&Method::GET, [] | [""]) => auth::entry(state, request).await,
        (&Method::GET, ["login"]) => auth::login_page(state, request).await,
        (&Method::POST, ["login"]) => auth::login(state, request).await,
        (&Method::GET, ["register"]) => auth::register_page(state).await,
        (&Method::POST, ["register"]) => auth::register(state, request).await,
        _ => authenticated(state, request, rest).await,
    };
    response.into()
}

/// Everything behind the login: the session is checked first (so an unknown path reveals
/// nothing to a stranger), then, for a POST, its CSRF token.
async fn authenticated(state: &AppState, request: &Request, rest: &[&str]) -> Response {
    let Some(session) = state.console.session(request) else {
        return unauthenticated(request);
    };
    let form = Form::parse(request);
    if request.method == Method::POST && !session.csrf_matches(form.get("csrf_token")) {
        return pages::message(
            StatusCode::FORBIDDEN,
            "Invalid CSRF token",
            "This form was not sent from a page of this session. Reload the page and try again; nothing was changed.",
        );
    }
    let call = Call {
        state,
        request,
        session,
        form,
    };
    let m = &request.method;
    match (m, rest) {
        (&Method::POST, ["logout"]) => auth::logout(&call),
        (&Method::GET, ["setup"]) => setup::page(&call).await,
        (&Method::POST, ["setup"]) => setup::join(&call).await,
        (&Method::POST, ["setup", "test-connection"]) => setup::test_connection(&call).await,
        (&Method::GET, ["org-status"]) => setup::org_status(&call).await,
        (&Method::GET, ["agents"]) => agents::list(&call).await,
        (&Method::POST, ["agents"]) => agents::create(&call).await,
        (&Method::GET, ["agents", name]) => agents::detail(&call, name).await,
        (&Method::POST, ["agents", name, action]) => agents::act(&call, name, action).await,
        (&Method::GET, ["policies"]) => policies::page(&call).await,
        (&Method::POST, ["policies"]) => policies::save(&call).await,
        (&Method::GET, ["audit"]) => audit::page(&call).await,
        (&Method::POST, ["audit", "verify"]) => audit::verify(&call).await,
        (&Method::GET, ["health"]) => health::page(&call).await,
        _ if known_path(rest) => pages::message(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "This page does not take that kind of request.",
        ),
        _ => pages::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such page in the console.",
        ),
    }
}

fn known_path(rest: &[&str]) -> bool {
    matches!(
        rest,
        ["logout"]
            | ["setup"]
            | ["setup", "test-connection"]
            | ["org-status"]
            | ["agents"]
            | ["agents", _]
            | ["agents", _, _]
            | ["policies"]
            | ["audit"]
            | ["audit", "verify"]
            | ["health"]
    )
}

/// No session: a page load goes to the login page; an htmx request gets 401 and an
/// `HX-Redirect` (htmx then loads the login page instead of swapping an error into a fragment);
/// a plain form POST is sent to the login page too (its session expired mid-way).
fn unauthenticated(request: &Request) -> Response {
    let login = format!("{BASE}/login");
    if request.header("hx-request").is_some() {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::bare(
                "Log in required",
                cullis_console::html! {
                    p { "Your session has ended. " a href=(login) { "Log in" } " again." }
                },
            ),
        )
        .with_header("HX-Redirect", login);
    }
    redirect(&login)
}

/// An HTML answer with the console's security headers.
pub(crate) fn html(status: StatusCode, markup: Markup) -> Response {
    Response {
        status,
        headers: security_headers(),
        body: markup.into_string().into_bytes(),
        content_type: "text/html; charset=utf-8",
    }
}

/// 303 to `location` (POST-redirect-GET: reloading the result page repeats nothing).
pub(crate) fn redirect(location: &str) -> Response {
    Response {
        status: StatusCode::SEE_OTHER,
        headers: security_headers(),
        body: Vec::new(),
        content_type: "text/html; charset=utf-8",
    }
    .with_header("Location", location)
}

fn security_headers() -> Vec<(&'static str, String)> {
    SECURITY_HEADERS
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect()
}

/// The fields of an `application/x-www-form-urlencoded` body (or of the query for a GET).
#[derive(Debug, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    fn parse(request: &Request) -> Form {
        let bytes: &[u8] = if request.method == Method::GET {
            request.query.as_deref().unwrap_or("").as_bytes()
        } else {
            &request.body
        };
        Form(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, trimmed, or "" when absent.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("").trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    fn post(body: &str) -> Request {
        Request {
            method: Method::POST,
            path: "/proxy/agents".into(),
            query: Some("a=query".into()),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            peer: None,
        }
    }

    #[test]
    fn forms_are_read_from_the_body_of_a_post() {
        let form = Form::parse(&post("agent_name=%3Cb%3E+x&csrf_token=t&a=1&a=2"));
        assert_eq!(form.get("agent_name"), Some("<b> x"));
        assert_eq!(form.get("a"), Some("1"), "the first value wins");
        assert_eq!(form.text("missing"), "");
    }

    #[test]
    fn html_answers_carry_the_console_headers() {
        let response = html(StatusCode::OK, cullis_console::html! { p { "x" } });
        let csp = response
            .headers
            .iter()
            .find(|(name, _)| *name == "content-security-policy")
            .map(|(_, value)| value.as_str());
        assert!(csp.is_some_and(|csp| csp.contains("script-src 'self'")));
        let found = redirect("/proxy/login");
        assert_eq!(found.status, StatusCode::SEE_OTHER);
        assert!(found
            .headers
            .iter()
            .any(|(name, value)| *name == "Location" && value == "/proxy/login"));
    }
}
