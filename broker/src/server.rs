//! Wiring: builds the state from a [`Config`], applies the middleware every response gets, binds
//! the listener and serves until a shutdown signal, draining in-flight requests.

use crate::config::{Config, KmsConfig};
use crate::db::Db;
use crate::keyring::KeyRing;
use crate::kms::Kms;
use crate::limits::{RateLimitConfig, RateLimiter};
use crate::nonce::NonceManager;
use crate::redis_store::RedisReplayStore;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use cullis_shared::replay::{MemoryReplayStore, ReplayStore};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// Request correlation id: taken from the client when sent, generated otherwise, echoed back.
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Why the broker could not start; one line that says what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Builds the shared state: database (migrated unless `migrate` is false), Redis when
/// configured, the broker key, nonces, replay store and rate limits.
pub async fn build_state(config: Config, migrate: bool) -> Result<AppState, StartError> {
    let db = Db::connect(&config.database_url)
        .await
        .map_err(|e| StartError(e.0))?;
    if migrate {
        db.migrate().await.map_err(|e| StartError(e.0))?;
    }
    let redis = match &config.redis_url {
        Some(url) => Some(connect_redis(url).await?),
        None => None,
    };
    let kms = Kms::new(config.kms.clone());
    let configured = kms.load().await.map_err(|e| StartError(e.0))?;
    let keys = Arc::new(
        KeyRing::open(
            db.clone(),
            kms.clone(),
            configured,
            crate::keyring::max_token_lifetime(config.access_token_ttl_secs),
            true,
        )
        .await
        .map_err(StartError)?,
    );
    keys.spawn_watcher(config.redis_url.clone());
    if config.environment == crate::config::Environment::Production {
        refuse_failing_checklist(&config, &db).await?;
    }
    let limits =
        RateLimitConfig::from_env_map(&config.env).map_err(|e| StartError(e.to_string()))?;
    if !limits.is_enabled() {
        let loud = if config.environment == crate::config::Environment::Production {
            " IN PRODUCTION"
        } else {
            ""
        };
        tracing::warn!("RATE_LIMITS=off: every rate limit is disabled{loud}");
    }
    let limiter = RateLimiter::new(limits, redis.clone());
    let policy =
        crate::policy::PolicyEngine::from_config(&config).map_err(|e| StartError(e.to_string()))?;
    for warning in policy.warnings() {
        tracing::warn!("{warning}");
    }
    let nonces = NonceManager::new(redis.clone(), Duration::from_secs(300));
    let dpop_replay: Arc<dyn ReplayStore> = match &redis {
        Some(conn) => Arc::new(RedisReplayStore::new(conn.clone())),
        None => Arc::new(MemoryReplayStore::new()),
    };
    let redis_url = config.redis_url.clone();
    let state = AppState::new(
        config,
        db,
        kms,
        keys,
        nonces,
        dpop_replay,
        limiter,
        policy,
        redis,
    );
    crate::telemetry::spawn_samplers(&state);
    crate::ws::fit_open_files_limit(state.config.ws_max_connections);
    if let Some(url) = redis_url {
        state
            .hub
            .start_redis_listener(&url)
            .await
            .map_err(StartError)?;
    }
    Ok(state)
}

/// `ENVIRONMENT=production`: the runbook's checklist must pass; the error names each failing
/// item and how to fix it (`cullis-broker check` prints the whole list).
async fn refuse_failing_checklist(config: &Config, db: &Db) -> Result<(), StartError> {
    let mut items = crate::checklist::settings(config);
    items.extend(crate::checklist::database(config, db).await);
    let failed: Vec<String> = items
        .iter()
        .filter(|item| !item.passed)
        .map(|item| format!("{}: {}", item.name, item.detail))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(StartError(format!(
        "ENVIRONMENT=production and the production checklist fails ({}) — run `cullis-broker check` for the full list",
        failed.join("; ")
    )))
}

async fn connect_redis(url: &str) -> Result<redis::aio::ConnectionManager, StartError> {
    let fix = "check REDIS_URL (e.g. redis://127.0.0.1:6379) or unset it to run without Redis";
    let client = redis::Client::open(url)
        .map_err(|e| StartError(format!("REDIS_URL is not a valid Redis URL ({e}): {fix}")))?;
    let connect = redis::aio::ConnectionManager::new(client);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(StartError(format!("cannot connect to Redis ({e}): {fix}"))),
        Err(_) => Err(StartError(format!(
            "Redis did not answer within 5 s: {fix}"
        ))),
    }
}

/// The application: routes plus the middleware every response goes through.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    crate::routes::router()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            response_headers,
        ))
        // Enforced by the body extractors, so an oversized body is a JSON 413 (`detail`) that
        // still gets the headers above; a body no handler reads is never buffered.
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(cors(&state.config.allowed_origins))
        // After routing (Router::layer), so the span and the duration know the route template.
        .layer(middleware::from_fn(crate::telemetry::http::observe))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// CORS for browser clients, only when `ALLOWED_ORIGINS` is set (reference §0): the DPoP
/// headers are allowed; org and admin secrets are not sent cross-origin; `*` allows any origin
/// without credentials.
fn cors(allowed: &[String]) -> tower::util::Either<CorsLayer, tower::layer::util::Identity> {
    use axum::http::Method;
    if allowed.is_empty() {
        return tower::util::Either::Right(tower::layer::util::Identity::new());
    }
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("dpop"),
        ]);
    let layer = if allowed.iter().any(|origin| origin == "*") {
        layer.allow_origin(tower_http::cors::Any)
    } else {
        let origins = allowed
            .iter()
            .filter_map(|origin| HeaderValue::from_str(origin).ok());
        layer
            .allow_origin(tower_http::cors::AllowOrigin::list(origins))
            .allow_credentials(true)
    };
    tower::util::Either::Left(layer)
}

/// Security headers on every response, and the current DPoP nonce on every API response so
/// clients can refresh theirs from any answer (ref-broker-api §0).
async fn response_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    // The role this binary plays, as `cullis-sdk` 0.2.x reads it (docs/sdk-generations.md).
    headers.insert(
        HeaderName::from_static("x-cullis-role"),
        HeaderValue::from_static("broker"),
    );
    // Responses are not cached unless their handler says otherwise (the JWKS, console assets).
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let nonce_free = [
        "/dashboard",
        "/static/",
        "/health",
        "/.well-known/",
        "/readyz",
        "/metrics",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix));
    if !nonce_free && !headers.contains_key(&crate::auth::dpop::DPOP_NONCE) {
        if let Ok(nonce) = state.nonces.current().await {
            if let Ok(value) = HeaderValue::from_str(&nonce) {
                headers.insert(crate::auth::dpop::DPOP_NONCE.clone(), value);
            }
        }
    }
    response
}

/// Binds `host:port` (port 0 = any free port) and serves — over TLS when `BROKER_TLS_CERT` /
/// `BROKER_TLS_KEY` are set — until SIGINT/SIGTERM, then stops accepting, lets in-flight
/// requests finish, and returns. `on_bound` receives the address and scheme.
pub async fn serve(
    state: AppState,
    on_bound: impl FnOnce(SocketAddr, &str),
) -> Result<(), StartError> {
    let address = format!("{}:{}", state.config.host, state.config.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| StartError(format!("cannot listen on {address} ({e}): choose another --port / BROKER_PORT or stop the process using it")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;
    let tls = match &state.config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    on_bound(bound, if tls.is_some() { "https" } else { "http" });
    let draining = state.clone();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: draining in-flight requests");
        draining.start_draining();
        // Sockets are upgraded connections the HTTP drain does not wait for: tell their
        // clients to reconnect elsewhere (1012 Service Restart) and let the frames go out.
        draining.hub.close_all(1012, "Service restart");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    match tls {
        None => axum::serve(
            listener.tap_io(no_delay),
            app(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| StartError(format!("server error: {e}"))),
        Some(acceptor) => {
            serve_tls(listener, acceptor, app(state), shutdown).await;
            Ok(())
        }
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, StartError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            StartError(format!(
                "cannot read the TLS certificate chain {} ({e}): check --tls-cert",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(StartError(format!(
            "{} holds no certificate: check --tls-cert",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        StartError(format!(
            "cannot read the TLS private key {} ({e}): check --tls-key",
            key.display()
        ))
    })?;
    // One crypto backend for TLS, named explicitly (several providers are compiled in).
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError(format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            StartError(format!(
                "TLS certificate and key do not fit together ({e}): check --tls-cert and --tls-key"
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Answers and pushes are small writes that should leave at once, not wait for the peer's ACK
/// of the previous one (Nagle).
fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set");
    }
}

/// The TLS accept loop: a rustls handshake per connection, then hyper (HTTP/1.1 and HTTP/2,
/// with upgrades for WebSocket) over the axum app; graceful on shutdown.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower::ServiceExt;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        no_delay(&mut stream);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    app.clone().oneshot(request.map(axum::body::Body::new))
                },
            );
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// Where `--dev` keeps what it generates.
pub fn describe_kms(kms: &KmsConfig) -> String {
    match kms {
        KmsConfig::Local {
            key_path,
            cert_path,
        } => format!(
            "local files (key {}, cert {})",
            key_path.display(),
            cert_path.display()
        ),
        KmsConfig::Vault {
            addr, secret_path, ..
        } => format!("Vault at {addr} ({secret_path})"),
    }
}
