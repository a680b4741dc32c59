//! Console login, the session cookie, and the CSRF check on every POST.
//!
//! - `admin` logs in with the console password: the bcrypt hash stored by
//!   `/dashboard/settings/password`, or — until one is set — `ADMIN_SECRET` itself (constant-time).
//!   Changing the console password never changes `ADMIN_SECRET`, the API credential.
//! - An org logs in with its id and org secret; only active orgs get in.
//! - Logins are rate-limited per client address (bucket `dashboard.login`).

use super::error::ConsoleError;
use super::render;
use crate::auth::client_ip::ClientIp;
use crate::auth::org::OrgCredentials;
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use cullis_console::layout::Flash;
use cullis_console::session::{CookieSpec, Role, Session, SessionKey};
use cullis_console::{html, Markup};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;
use zeroize::Zeroizing;

/// The console's cookie key and scope, made once at start-up.
pub struct ConsoleKeys {
    key: SessionKey,
    cookie: CookieSpec,
}

impl ConsoleKeys {
    /// From `DASHBOARD_SIGNING_KEY` (random when unset: sessions end at restart, and each
    /// replica has its own) and whether `BROKER_PUBLIC_URL` is https.
    pub fn new(signing_key: Option<&str>, public_url: Option<&str>) -> ConsoleKeys {
        let (key, generated) = SessionKey::from_config(signing_key);
        if generated {
            tracing::warn!(
                "DASHBOARD_SIGNING_KEY is not set: console sessions use a random key and end at \
                 restart; set DASHBOARD_SIGNING_KEY (e.g. `openssl rand -hex 32`) on every replica"
            );
        }
        ConsoleKeys {
            key,
            cookie: CookieSpec {
                name: "atn_session",
                path: "/dashboard",
                secure: public_url.is_some_and(|url| url.starts_with("https://")),
            },
        }
    }
}

/// Who is logged in to the console.
pub struct ConsoleUser {
    pub session: Session,
}

impl ConsoleUser {
    pub fn is_admin(&self) -> bool {
        self.session.role == Role::Admin
    }

    /// The org filter for queries: `None` for the admin (every org), the user's org otherwise.
    /// An org session without an org id (only a bug could make one) matches no org: fail closed.
    pub fn org_filter(&self) -> Option<&str> {
        match self.session.role {
            Role::Org => Some(self.session.org_id.as_deref().unwrap_or("")),
            Role::Admin => None,
        }
    }

    /// True when this user may see or act on rows of `org_id`.
    pub fn may_see(&self, org_id: &str) -> bool {
        self.org_filter().is_none_or(|own| own == org_id)
    }

    /// Refuses org users on admin-only pages and actions.
    pub fn require_admin(&self) -> Result<(), ConsoleError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "This page is for the network administrator.".into(),
            ))
        }
    }

    /// As shown in the header.
    pub fn label(&self) -> String {
        match self.org_filter() {
            None => "admin".to_owned(),
            Some(org) => format!("org {org}"),
        }
    }
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ConsoleUser, ConsoleError> {
        session_of(&parts.headers, state)
            .map(|session| ConsoleUser { session })
            .ok_or(ConsoleError::LoginRequired)
    }
}

fn session_of(headers: &HeaderMap, state: &AppState) -> Option<Session> {
    let keys = &state.console;
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let value = keys.cookie.find(cookies)?;
    keys.key.open(value, crate::db::unix_now())
}

/// A POSTed form from a logged-in user whose `csrf_token` field matched the session's. A
/// missing or wrong token is a 403 before the handler runs, so nothing changes.
pub struct Posted<T> {
    pub user: ConsoleUser,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = request.into_parts();
        let user = ConsoleUser::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let Form(fields) = Form::<HashMap<String, String>>::from_request(request, state)
            .await
            .map_err(|rejection| ConsoleError::BadRequest(rejection.body_text()))?;
        if !user
            .session
            .csrf_matches(fields.get("csrf_token").map(String::as_str))
        {
            return Err(ConsoleError::Forbidden("Invalid CSRF token".into()));
        }
        let form = serde_json::to_value(&fields)
            .and_then(serde_json::from_value)
            .map_err(|e| ConsoleError::BadRequest(format!("Form is incomplete: {e}")))?;
        Ok(Posted { user, form })
    }
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    password: String,
}

pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if session_of(&headers, &state).is_some() {
        return Redirect::to("/dashboard").into_response();
    }
    render::bare("Log in", login_form(None, "")).into_response()
}

fn login_form(error: Option<&str>, user_id: &str) -> Markup {
    html! {
        @if let Some(message) = error { (cullis_console::layout::flash(&Flash::Error(message.into()))) }
        form.stack method="post" action="/dashboard/login" id="login" {
            label { "User" input name="user_id" value=(user_id) autocomplete="username" required
                placeholder="admin, or your org id"; }
            label { "Password or org secret"
                input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Log in" }
        }
    }
}

/// `POST /dashboard/login`: 303 to `/dashboard` with a fresh session, or the form again with
/// `Invalid credentials.` (one message for every failure, so it tells nothing).
pub async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Form(form): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    if let Err(limited) = state
        .limiter
        .check(crate::limits::DASHBOARD_LOGIN.0, &client)
        .await
    {
        return Ok(render::status_page(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "Log in",
            login_form(Some(&limited.to_string()), &form.user_id),
        ));
    }
    let password = Zeroizing::new(form.password);
    let session = match form.user_id.as_str() {
        "admin" => admin_password_ok(&state, &password)
            .await?
            .then(|| Session::start(Role::Admin, None, crate::db::unix_now())),
        org_id => OrgCredentials::new(org_id, &password)
            .verify(&state)
            .await?
            .filter(|org| org.status == "active")
            .map(|org| Session::start(Role::Org, Some(org.org_id), crate::db::unix_now())),
    };
    let Some(session) = session else {
        tracing::info!(user_id = %form.user_id, "console login refused");
        return Ok(render::bare(
            "Log in",
            login_form(Some("Invalid credentials."), &form.user_id),
        )
        .into_response());
    };
    let cookie = state.console.cookie.set(&state.console.key.seal(&session));
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response())
}

/// Checks the admin's console password: the stored hash once one is set, else `ADMIN_SECRET`.
async fn admin_password_ok(state: &AppState, password: &str) -> Result<bool, ConsoleError> {
    match state.db.console_setting(ADMIN_PASSWORD_HASH).await? {
        Some(hash) => {
            let password = Zeroizing::new(password.to_owned());
            tokio::task::spawn_blocking(move || cullis_console::password::verify(&password, &hash))
                .await
                .map_err(|e| ConsoleError::Internal(e.to_string()))
        }
        None => Ok(crate::auth::secrets_equal(
            password,
            &state.config.admin_secret,
        )),
    }
}

/// Where the console password's bcrypt hash is stored (`console_settings`).
pub const ADMIN_PASSWORD_HASH: &str = "admin_password_hash";

/// `POST /dashboard/logout`: clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    posted: Posted<HashMap<String, String>>,
) -> Response {
    drop(posted);
    (
        [(header::SET_COOKIE, state.console.cookie.clear())],
        Redirect::to("/dashboard/login"),
    )
        .into_response()
}
