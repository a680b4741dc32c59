//! The HTTP surface: one pingora listener, requests read whole (up to the body limit), routed
//! by method and path, answered as a whole body (JSON, or HTML for the console) or as a stream
//! (SSE). The domain modules (context, org, agents, pdp, audit, store, uplink) import nothing
//! from here; the handlers that exist only for HTTP live here: `events` (SSE), `pdp_webhook`,
//! `console` (`/proxy/*`) and `assets` (`/static/*`).

mod assets;
pub mod console;
mod cors;
pub mod error;
mod events;
mod pdp_webhook;
mod router;
mod server;

pub use cors::Cors;
pub use error::{parse_json, ApiError, ApiResult};
pub use server::{serve, HttpApp};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;

/// A request as the handlers see it.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address (the TCP peer), when known: the console's login limit is per address.
    pub peer: Option<std::net::IpAddr>,
}

impl Request {
    /// A header as text (absent or non-UTF-8 → `None`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A whole response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

impl Response {
    pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
        match serde_json::to_vec(body) {
            Ok(body) => Response {
                status,
                headers: Vec::new(),
                body,
                content_type: "application/json",
            },
            Err(err) => Response::from(ApiError::internal(err)),
        }
    }

    pub fn ok<T: Serialize>(body: &T) -> Response {
        Response::json(StatusCode::OK, body)
    }

    /// A response without a body.
    pub fn empty(status: StatusCode) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            content_type: "application/json",
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_headers(mut self, headers: Vec<(&'static str, String)>) -> Response {
        self.headers.extend(headers);
        self
    }
}

impl From<ApiError> for Response {
    fn from(error: ApiError) -> Response {
        let mut response = Response::json(error.status, &error.body);
        response.headers.extend(error.headers);
        response
    }
}

/// A streamed response: headers now, then each chunk as it arrives, until the sender is dropped.
#[derive(Debug)]
pub struct StreamResponse {
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub chunks: mpsc::Receiver<Bytes>,
}

/// What a handler answers.
#[derive(Debug)]
pub enum Reply {
    Whole(Response),
    Stream(StreamResponse),
}

impl Reply {
    /// Adds headers to the answer, whole or streamed.
    pub fn add_headers(&mut self, headers: Vec<(&'static str, String)>) {
        match self {
            Reply::Whole(response) => response.headers.extend(headers),
            Reply::Stream(stream) => stream.headers.extend(headers),
        }
    }
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply::Whole(response)
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Reply {
        Reply::Whole(error.into())
    }
}

impl<T: Into<Reply>> From<ApiResult<T>> for Reply {
    fn from(result: ApiResult<T>) -> Reply {
        match result {
            Ok(reply) => reply.into(),
            Err(error) => error.into(),
        }
    }
}

/// The reference's security headers, on every response.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    (
        "Permissions-Policy",
        "camera=(), microphone=(), geolocation=()",
    ),
    (
        "Strict-Transport-Security",
        "max-age=31536000; includeSubDomains",
    ),
    ("Cache-Control", "no-store"),
];
