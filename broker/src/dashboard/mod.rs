//! The network operator's console at `/dashboard` (spec §12): server-rendered HTML (maud), htmx
//! from `/static`, every action a plain form POST that also works without JavaScript.
//!
//! Handlers here only render and translate forms: every change they make goes through the same
//! domain function the JSON API calls (`routes::admin::decide_org`, `routes::audit::verify`, …),
//! so approving an org from the console and from `POST /v1/admin/orgs/{id}/approve` is one code
//! path with one audit row.
//!
//! Who sees what is decided on the server by [`auth::ConsoleUser::org_filter`]: the admin sees the
//! network, an org user only rows of its own org, whatever URL it types.

mod agents;
mod audit;
mod auth;
mod error;
mod live;
mod orgs;
mod overview;
mod render;
mod settings;
mod traffic;

pub use auth::ConsoleKeys;

use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

/// Every console route, and `/static/*` for its assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview::page))
        .route("/dashboard/", get(overview::page))
        .route("/dashboard/login", get(auth::login_page).post(auth::login))
        .route("/dashboard/logout", post(auth::logout))
        .route("/dashboard/sse", get(live::events))
        .route("/dashboard/badge/pending-orgs", get(orgs::pending_badge))
        .route("/dashboard/orgs", get(orgs::page))
        .route("/dashboard/orgs/onboard", post(orgs::onboard))
        .route("/dashboard/orgs/{org_id}/approve", post(orgs::approve))
        .route("/dashboard/orgs/{org_id}/reject", post(orgs::reject))
        .route("/dashboard/orgs/{org_id}/suspend", post(orgs::suspend))
        .route("/dashboard/orgs/{org_id}/upload-ca", post(orgs::upload_ca))
        .route("/dashboard/orgs/{org_id}/delete", post(orgs::delete))
        .route("/dashboard/invites/generate", post(orgs::generate_invite))
        .route(
            "/dashboard/invites/{invite_id}/revoke",
            post(orgs::revoke_invite),
        )
        .route("/dashboard/agents", get(agents::page))
        .route("/dashboard/agents/{agent_id}", get(agents::detail))
        .route(
            "/dashboard/agents/{agent_id}/rotate-cert",
            post(agents::rotate_cert),
        )
        .route(
            "/dashboard/agents/{agent_id}/revoke-cert",
            post(agents::revoke_cert),
        )
        .route(
            "/dashboard/agents/{agent_id}/revoke-tokens",
            post(agents::revoke_tokens),
        )
        .route("/dashboard/sessions", get(traffic::sessions))
        .route("/dashboard/rfqs", get(traffic::rfqs))
        .route("/dashboard/policies", get(traffic::policies))
        .route("/dashboard/audit", get(audit::page))
        .route("/dashboard/audit/export", get(audit::export))
        .route("/dashboard/audit/verify", post(audit::verify))
        .route("/dashboard/settings", get(settings::page))
        .route(
            "/dashboard/settings/password",
            post(settings::change_password),
        )
        .route("/static/{name}", get(static_asset))
        .layer(axum::middleware::map_response(security_headers))
}

/// The console's security headers on every console and asset response (set only where the
/// handler did not choose its own, e.g. `cache-control` on assets).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in cullis_console::headers::SECURITY_HEADERS {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// `/static/<name>`: an embedded asset, 304 when the browser's copy is current.
async fn static_asset(
    axum::extract::Path(name): axum::extract::Path<String>,
    request_headers: HeaderMap,
) -> Response {
    let Some(asset) = cullis_console::assets::asset(&name) else {
        return crate::error::ApiError::not_found("Not Found").into_response();
    };
    let if_none_match = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok());
    let caching = [
        (header::ETAG, asset.etag()),
        (header::CACHE_CONTROL, cullis_console::assets::CACHE_CONTROL),
    ];
    if cullis_console::assets::not_modified(asset, if_none_match) {
        return (StatusCode::NOT_MODIFIED, caching).into_response();
    }
    (
        caching,
        [(header::CONTENT_TYPE, asset.content_type)],
        asset.body,
    )
        .into_response()
}
