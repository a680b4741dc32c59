//! The pingora side: a `Server` with one listening service whose app reads each request,
//! routes it, and writes the reply (whole, or streamed for SSE).

use super::{router, ApiError, Reply, Request, Response, StreamResponse, SECURITY_HEADERS};
use crate::config::{CommonSettings, ConfigError, ServeSettings};
use crate::context::Context;
use crate::state::AppState;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::listening::Service;
use pingora_http::ResponseHeader;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// How much of an oversized body is read and dropped before the connection is closed.
const DRAIN_CAP: usize = 16 * 1024 * 1024;

/// Keep-alive of idle client connections, seconds.
const KEEPALIVE_SECONDS: u64 = 60;

/// The app of the listening service. Its state is built on first use inside the service's own
/// runtime, because pingora runs each service on a runtime it creates after `run_forever`.
pub struct HttpApp {
    settings: CommonSettings,
    serve: ServeSettings,
    state: OnceCell<Arc<AppState>>,
}

impl HttpApp {
    pub fn new(settings: CommonSettings, serve: ServeSettings) -> HttpApp {
        HttpApp {
            settings,
            serve,
            state: OnceCell::new(),
        }
    }

    /// The state, opened on first use (the settings were already checked at start-up, so a
    /// failure here is a store that went away: answered 503 and retried on the next request).
    async fn state(&self) -> Result<Arc<AppState>, ApiError> {
        self.state
            .get_or_try_init(|| async {
                let ctx = Context::open(self.settings.clone())
                    .await
                    .map_err(|e| ApiError::unavailable("proxy store", e))?;
                Ok(Arc::new(AppState::new(ctx, self.serve.clone())))
            })
            .await
            .cloned()
    }
}

/// Runs the proxy until SIGTERM/SIGINT (pingora's graceful shutdown). Returns only when the
/// listener cannot be set up (an unusable TLS certificate or key).
pub fn serve(
    settings: CommonSettings,
    serve: ServeSettings,
) -> Result<std::convert::Infallible, ConfigError> {
    let conf = ServerConf {
        threads: serve.threads,
        // SIGTERM: stop accepting, let in-flight requests finish, then exit.
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let address = format!("{}:{}", serve.host, serve.port);
    let tls = serve.tls_files()?;
    let random_session_key = serve
        .dashboard_signing_key
        .as_deref()
        .unwrap_or("")
        .is_empty();
    let mut service = Service::new(
        "cullis-proxy http".to_owned(),
        HttpApp::new(settings, serve),
    );
    let scheme = match tls {
        Some((cert, key)) => {
            let unusable = |why: String| {
                ConfigError::new(
                    "MCP_PROXY_TLS_CERT",
                    format!("cannot use the certificate {cert} with the key {key}: {why}"),
                )
            };
            // pingora loads the files again when the listener starts and panics on a bad
            // pair; checking here turns that into a one-line refusal.
            check_tls_pair(&cert, &key).map_err(unusable)?;
            service
                .add_tls(&address, &cert, &key)
                .map_err(|e| unusable(e.to_string()))?;
            "https"
        }
        None => {
            service.add_tcp(&address);
            "http"
        }
    };
    // Warned only once the listener is set up: a refused start-up stays one line.
    if random_session_key {
        tracing::warn!(
            "MCP_PROXY_DASHBOARD_SIGNING_KEY is not set: console sessions are signed with a random \
             per-process key and end when the proxy restarts"
        );
    }
    server.add_service(service);
    tracing::info!(%address, scheme, version = env!("CARGO_PKG_VERSION"), "cullis-proxy listening");
    server.run_forever()
}

/// Whether `cert` (PEM chain) and `key` (PEM private key) load and belong together.
fn check_tls_pair(cert: &str, key: &str) -> Result<(), String> {
    let (certs, key) = pingora_core::tls::load_certs_and_key_files(cert, key)
        .map_err(|e| e.to_string())?
        .ok_or("no certificate or no private key found in the PEM files")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[async_trait]
impl HttpServerApp for HttpApp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(err) => {
                tracing::debug!("reading a request failed: {err}");
                return None;
            }
        }
        session.set_keepalive((!*shutdown.borrow()).then_some(KEEPALIVE_SECONDS));
        let reply = match self.state().await {
            Ok(state) => match read_request(&mut session, state.serve.max_body_bytes).await {
                Ok(request) => router::dispatch(&state, request).await,
                Err(error) => {
                    session.set_keepalive(None);
                    Reply::from(error)
                }
            },
            Err(error) => {
                session.set_keepalive(None);
                Reply::from(error)
            }
        };
        match reply {
            Reply::Whole(response) => write_whole(&mut session, response).await.ok()?,
            Reply::Stream(stream) => {
                write_stream(&mut session, stream, shutdown.clone()).await;
                return None;
            }
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(Some(stream)) => Some(ReusedHttpStream::from_reusable_stream(stream, settings)),
            _ => None,
        }
    }
}

/// Reads the request head and body (refusing bodies over `limit` with 413).
async fn read_request(session: &mut ServerSession, limit: usize) -> Result<Request, ApiError> {
    let head = session.req_header();
    let method = head.method.clone();
    let path = head.uri.path().to_owned();
    let query = head.uri.query().map(str::to_owned);
    let headers = head.headers.clone();
    let peer = session
        .client_addr()
        .and_then(|addr| addr.as_inet())
        .map(|addr| addr.ip());
    let mut body = BytesMut::new();
    // An oversized body is read to its end (up to a cap) and dropped, so the client, still
    // sending, reads a clean 413 instead of a reset connection.
    let mut oversized = false;
    let mut drained = 0usize;
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if oversized || body.len() + chunk.len() > limit => {
                oversized = true;
                drained += chunk.len();
                if drained > DRAIN_CAP {
                    break;
                }
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => {
                return Err(ApiError::bad_request(format!(
                    "could not read the request body: {err}"
                )))
            }
        }
    }
    if oversized {
        return Err(too_large(limit));
    }
    Ok(Request {
        method,
        path,
        query,
        headers,
        body: body.freeze(),
        peer,
    })
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body too large (limit {limit} bytes)"),
    )
}

fn head(
    status: StatusCode,
    content_type: &str,
    extra: &[(&'static str, String)],
) -> pingora_core::Result<ResponseHeader> {
    let mut header = ResponseHeader::build(status, Some(8 + extra.len()))?;
    for (name, value) in SECURITY_HEADERS {
        header.insert_header(*name, *value)?;
    }
    header.insert_header("Content-Type", content_type)?;
    // The role this binary plays, as `cullis-sdk` 0.2.x reads it (docs/sdk-generations.md).
    header.insert_header("x-cullis-role", "proxy")?;
    for (name, value) in extra {
        // A handler's value for a default header (the console's stricter Referrer-Policy, an
        // asset's Cache-Control) replaces the default instead of doubling it.
        if overrides_default(name) {
            header.insert_header(*name, value.as_str())?;
        } else {
            header.append_header(*name, value.as_str())?;
        }
    }
    Ok(header)
}

fn overrides_default(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-type")
        || SECURITY_HEADERS
            .iter()
            .any(|(default, _)| default.eq_ignore_ascii_case(name))
}

async fn write_whole(session: &mut ServerSession, response: Response) -> pingora_core::Result<()> {
    let mut header = head(response.status, response.content_type, &response.headers)?;
    // A 304 has no body and must not claim the length of the body it stands for.
    if response.status != StatusCode::NOT_MODIFIED {
        header.insert_header("Content-Length", response.body.len().to_string())?;
    }
    session.write_response_header(Box::new(header)).await?;
    if !response.body.is_empty() {
        session
            .write_response_body(Bytes::from(response.body), true)
            .await?;
    }
    Ok(())
}

/// Streams chunks until the producer ends, the client goes away, or the server shuts down.
async fn write_stream(
    session: &mut ServerSession,
    mut stream: StreamResponse,
    mut shutdown: ShutdownWatch,
) {
    session.set_keepalive(None);
    let Ok(mut header) = head(StatusCode::OK, stream.content_type, &stream.headers) else {
        return;
    };
    if header
        .insert_header("Transfer-Encoding", "chunked")
        .is_err()
        || session
            .write_response_header(Box::new(header))
            .await
            .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            chunk = stream.chunks.recv() => match chunk {
                Some(chunk) => {
                    if session.write_response_body(chunk, false).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            _ = shutdown.changed() => break,
        }
    }
    let _ = session.finish_body().await;
}
