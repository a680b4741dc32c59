//! First-run registration, login, logout, and the entry redirect of `GET /proxy/`.
//!
//! There is one account, the org's administrator. Its password is set once through
//! `/proxy/register` (closed as soon as a password exists) and stored as a bcrypt hash (cost 12)
//! in the proxy's settings; hashing and checking run on blocking threads.

use super::{html, now, pages, redirect, Call, Form, BASE};
use crate::audit::{self, AuditEntry, Outcome, ADMIN_ACTOR};
use crate::http::{Request, Response};
use crate::state::AppState;
use cullis_console::html;
use cullis_console::password;
use cullis_console::session::{Role, Session};
use cullis_console::Markup;
use http::StatusCode;

/// Settings key of the administrator's bcrypt hash (the reference's name).
pub const PASSWORD_KEY: &str = "admin_password_hash";
/// Shortest accepted password. The reference takes 8; 12 is where a password an attacker must
/// guess offline (a stolen store) stops being cheap even against bcrypt.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// bcrypt reads only the first 72 bytes; a longer password would be silently cut.
const MAX_PASSWORD_BYTES: usize = 72;

/// `GET /proxy/`: register → login → setup → agents, whichever comes first.
pub async fn entry(state: &AppState, request: &Request) -> Response {
    match stored_hash(state).await {
        Err(response) => response,
        Ok(None) => redirect(&format!("{BASE}/register")),
        Ok(Some(_)) if state.console.session(request).is_none() => {
            redirect(&format!("{BASE}/login"))
        }
        Ok(Some(_)) => match state.ctx.broker_url().await {
            Ok(Some(_)) => redirect(&format!("{BASE}/agents")),
            Ok(None) => redirect(&format!("{BASE}/setup")),
            Err(err) => unavailable(err),
        },
    }
}

/// The stored hash; an unreadable store is a 503 page.
async fn stored_hash(state: &AppState) -> Result<Option<String>, Response> {
    state
        .ctx
        .store
        .setting(PASSWORD_KEY)
        .await
        .map_err(unavailable)
}

fn unavailable(err: impl std::fmt::Display) -> Response {
    tracing::error!("console: store unavailable: {err}");
    pages::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Store unavailable",
        "The proxy's database did not answer. Try again shortly.",
    )
}

pub async fn login_page(state: &AppState, request: &Request) -> Response {
    match stored_hash(state).await {
        Err(response) => response,
        Ok(None) => redirect(&format!("{BASE}/register")),
        Ok(Some(_)) if state.console.session(request).is_some() => redirect(BASE),
        Ok(Some(_)) => html(StatusCode::OK, login_form(None)),
    }
}

fn login_form(error: Option<&str>) -> Markup {
    pages::bare(
        "Log in",
        html! {
            @if let Some(error) = error { p class="flash error" role="alert" { (error) } }
            form id="login-form" class="stack" method="post" action="/proxy/login" {
                label { "Administrator password"
                    input id="password" type="password" name="password" autocomplete="current-password" required autofocus;
                }
                button id="login" type="submit" { "Log in" }
            }
        },
    )
}

/// `POST /proxy/login`: rate-limited per client address, then checked against the hash.
pub async fn login(state: &AppState, request: &Request) -> Response {
    let hash = match stored_hash(state).await {
        Err(response) => return response,
        Ok(None) => return redirect(&format!("{BASE}/register")),
        Ok(Some(hash)) => hash,
    };
    let client = request
        .peer
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    if let Err(retry_after) = state.console.login_limiter.check(&client) {
        return pages::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many login attempts from this address. Wait a minute and try again.",
        )
        .with_header("Retry-After", retry_after.to_string());
    }
    let given = Form::parse(request)
        .get("password")
        .unwrap_or("")
        .to_owned();
    let matches = tokio::task::spawn_blocking(move || password::verify(&given, &hash))
        .await
        .unwrap_or(false);
    if !matches {
        audit::record_quietly(
            &state.ctx.store,
            AuditEntry::new(ADMIN_ACTOR, "auth.login", Outcome::Error).detail("wrong password"),
        )
        .await;
        return html(
            StatusCode::UNAUTHORIZED,
            login_form(Some("Wrong password.")),
        );
    }
    audit::record_quietly(
        &state.ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "auth.login", Outcome::Success),
    )
    .await;
    let session = Session::start(Role::Admin, None, now());
    let cookie = state.console.cookie.set(&state.console.key.seal(&session));
    redirect(BASE).with_header("Set-Cookie", cookie)
}

/// `POST /proxy/logout` (CSRF-checked by the caller).
pub fn logout(call: &Call<'_>) -> Response {
    redirect(&format!("{BASE}/login")).with_header("Set-Cookie", call.console().cookie.clear())
}

pub async fn register_page(state: &AppState) -> Response {
    match stored_hash(state).await {
        Err(response) => response,
        Ok(Some(_)) => redirect(&format!("{BASE}/login")),
        Ok(None) => html(StatusCode::OK, register_form(None)),
    }
}

fn register_form(error: Option<&str>) -> Markup {
    pages::bare(
        "Create the administrator password",
        html! {
            p { "This proxy has no administrator yet. Choose the password of its console (at least "
                (MIN_PASSWORD_CHARS) " characters). It can be set only once here." }
            @if let Some(error) = error { p class="flash error" role="alert" { (error) } }
            form id="register-form" class="stack" method="post" action="/proxy/register" {
                label { "Password"
                    input id="password" type="password" name="password" autocomplete="new-password"
                        minlength=(MIN_PASSWORD_CHARS) required autofocus;
                }
                label { "Repeat the password"
                    input id="confirm_password" type="password" name="confirm_password" autocomplete="new-password" required;
                }
                button id="register" type="submit" { "Create password" }
            }
        },
    )
}

/// Why a new password is refused, if it is.
fn weak(password: &str, confirm: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Some(format!(
            "The password must have at least {MIN_PASSWORD_CHARS} characters."
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Some(format!(
            "The password must fit in {MAX_PASSWORD_BYTES} bytes (bcrypt ignores the rest)."
        ));
    }
    (password != confirm).then(|| "The two passwords differ.".to_owned())
}

/// `POST /proxy/register`: only while no password exists; the write itself is "insert if
/// absent", so of two racing registrations one wins and the other is sent to the login page.
pub async fn register(state: &AppState, request: &Request) -> Response {
    match stored_hash(state).await {
        Err(response) => return response,
        Ok(Some(_)) => return redirect(&format!("{BASE}/login")),
        Ok(None) => {}
    }
    let form = Form::parse(request);
    let given = form.get("password").unwrap_or("").to_owned();
    if let Some(why) = weak(&given, form.get("confirm_password").unwrap_or("")) {
        return html(StatusCode::BAD_REQUEST, register_form(Some(&why)));
    }
    let hashed = tokio::task::spawn_blocking(move || password::hash(&given, password::COST)).await;
    let hash = match hashed {
        Ok(Ok(hash)) => hash,
        other => {
            tracing::error!("console: password hashing failed: {other:?}");
            return pages::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "The password could not be stored.",
            );
        }
    };
    match state
        .ctx
        .store
        .insert_setting_if_absent(PASSWORD_KEY, &hash)
        .await
    {
        Err(err) => return unavailable(err),
        Ok(false) => return redirect(&format!("{BASE}/login")),
        Ok(true) => {}
    }
    audit::record_quietly(
        &state.ctx.store,
        AuditEntry::new(ADMIN_ACTOR, "auth.register", Outcome::Success),
    )
    .await;
    redirect(&format!("{BASE}/login"))
}

#[cfg(test)]
mod tests {
    use super::weak;

    #[test]
    fn passwords_are_checked_for_length_and_confirmation() {
        assert!(weak("short", "short").is_some());
        assert!(weak("correct horse", "correct horsE").is_some());
        assert!(weak(&"x".repeat(73), &"x".repeat(73)).is_some());
        assert_eq!(weak("correct horse", "correct horse"), None);
        // Characters, not bytes: twelve umlauts are twelve characters.
        assert_eq!(weak(&"ü".repeat(12), &"ü".repeat(12)), None);
    }
}
