//! The egress REST API of the reference (local agent → proxy → broker), wire-identical: the 8
//! routes of §1.5 with `X-API-Key` auth, 200 bodies, and audit rows with its action names.
//! Broker errors keep the broker's status and `detail` (see `ApiError: From<UplinkError>`).

pub(crate) mod ops;

use crate::http::{ApiError, ApiResult, Reply, Request, Response};
use crate::state::AppState;
use http::Method;

pub use ops::{Egress, MessageView};

const MISSING_KEY: &str = "X-API-Key header required";

/// Dispatches `/v1/egress/<rest>`.
pub async fn route(state: &AppState, request: &Request, rest: &[&str]) -> Reply {
    let m = &request.method;
    let known_path = matches!(
        rest,
        ["sessions"]
            | ["sessions", _, "accept" | "close"]
            | ["send"]
            | ["messages", _]
            | ["messages", _, _, "ack"]
            | ["discover"]
            | ["tools", "invoke"]
    );
    let result = match (m, rest) {
        (&Method::POST, ["sessions"]) => ops::open_session(state, request).await,
        (&Method::GET, ["sessions"]) => ops::list_sessions(state, request).await,
        (&Method::POST, ["sessions", sid, "accept"]) => ops::accept(state, request, sid).await,
        (&Method::POST, ["sessions", sid, "close"]) => ops::close(state, request, sid).await,
        (&Method::POST, ["send"]) => ops::send(state, request).await,
        (&Method::GET, ["messages", sid]) => ops::messages(state, request, sid).await,
        (&Method::POST, ["messages", sid, msg_id, "ack"]) => {
            ops::ack(state, request, sid, msg_id).await
        }
        (&Method::POST, ["discover"]) => ops::discover(state, request).await,
        (&Method::POST, ["tools", "invoke"]) => ops::tools_invoke(state, request).await,
        _ if known_path => Err(ApiError::new(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        )),
        _ => Err(ApiError::not_found("Not Found")),
    };
    Reply::from(result)
}

/// Authenticates the `X-API-Key` of `request` and binds the uplink for that agent.
pub async fn egress_for(state: &AppState, request: &Request) -> ApiResult<Egress> {
    let agent = state
        .authenticate(request.header("x-api-key"), MISSING_KEY)
        .await?;
    Ok(Egress::new(agent))
}

/// Shorthand used by the handlers.
pub(crate) fn ok(body: serde_json::Value) -> ApiResult<Response> {
    Ok(Response::ok(&body))
}
