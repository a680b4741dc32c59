//! HTTP/1.1 to the broker over pingora's connector: one keep-alive pool for all agents,
//! sessions released back to the pool after each exchange, TLS per [`super::tls`], and a
//! per-request deadline. A small request/response pair keeps the rest of the uplink free of
//! pingora types.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method};
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use serde_json::Value;
use tracing::Instrument;

use super::error::{detail_of, UplinkError};
use super::tls::TlsSettings;

/// How long a resolved broker address is reused before asking DNS again.
const DNS_TTL: Duration = Duration::from_secs(30);
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// Broker answers are small JSON documents; anything larger is refused rather than buffered.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// One request to the broker. `path` is relative to the broker base URL and may carry a query.
pub(crate) struct Request {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    pub fn json(mut self, body: &Value) -> Request {
        self.body = Some(serde_json::to_vec(body).expect("a JSON value serializes"));
        self
    }
}

/// The broker's answer.
pub(crate) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON, or a protocol error naming what was expected.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, UplinkError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| UplinkError::Protocol(format!("unexpected {what} body from broker: {e}")))
    }

    /// This answer as an error (for non-2xx).
    pub fn into_error(self) -> UplinkError {
        UplinkError::Broker {
            status: self.status,
            detail: detail_of(&self.body),
        }
    }

    /// Ok for 2xx, the broker's status and detail otherwise.
    pub fn ok(self) -> Result<Response, UplinkError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.into_error())
        }
    }
}

/// Where the broker is, parsed once from its base URL.
#[derive(Debug, Clone)]
pub(crate) struct BrokerAddress {
    pub tls: bool,
    /// Host without IPv6 brackets: what is resolved and sent as SNI.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written in the URL, for the `Host` header.
    pub authority: String,
    /// Path prefix of the base URL ("" for a bare origin).
    pub base_path: String,
}

impl BrokerAddress {
    pub fn parse(url: &str) -> Result<BrokerAddress, UplinkError> {
        let bad = |why: &str| UplinkError::Protocol(format!("invalid broker URL {url:?}: {why}"));
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if uri.query().is_some() {
            return Err(bad("no query allowed"));
        }
        Ok(BrokerAddress {
            tls,
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: authority.as_str().to_owned(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            host,
        })
    }
}

/// The pooled HTTP client.
pub(crate) struct Transport {
    connector: Connector,
    address: BrokerAddress,
    /// Peer settings (TLS, timeouts); the socket address is filled in per request.
    template: HttpPeer,
    resolved: Mutex<Option<(SocketAddr, Instant)>>,
    timeout: Duration,
    /// Requests sent so far (observability and tests).
    pub sent: std::sync::atomic::AtomicU64,
}

impl Transport {
    pub fn new(address: BrokerAddress, tls: &TlsSettings, timeout: Duration) -> Transport {
        let placeholder = SocketAddr::from(([127, 0, 0, 1], address.port));
        // Always the host as SNI: pingora skips certificate checks when SNI is empty.
        let mut template = HttpPeer::new(placeholder, address.tls, address.host.clone());
        template.options.connection_timeout = Some(timeout);
        template.options.total_connection_timeout = Some(timeout);
        template.options.read_timeout = Some(timeout);
        template.options.write_timeout = Some(timeout);
        template.options.idle_timeout = Some(POOL_IDLE);
        tls.apply(&mut template);
        let mut options = ConnectorOptions::new(64);
        options.ca_file = None;
        Transport {
            connector: Connector::new(Some(options)),
            address,
            template,
            resolved: Mutex::new(None),
            timeout,
            sent: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Sends `request` and reads the whole answer within the configured deadline, in an
    /// `uplink.request` span whose context travels to the broker as `traceparent`.
    pub async fn send(&self, request: &Request) -> Result<Response, UplinkError> {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let span = tracing::info_span!(
            "uplink.request",
            otel.kind = "client",
            http.request.method = %request.method,
            url.path = bounded_path(&request.path),
            http.response.status_code = tracing::field::Empty,
        );
        let exchange = tokio::time::timeout(self.timeout, self.exchange(request));
        let result = match exchange.instrument(span.clone()).await {
            Ok(result) => result,
            Err(_) => Err(UplinkError::Unreachable(format!(
                "no answer from the broker within {} ms",
                self.timeout.as_millis()
            ))),
        };
        let outcome = match &result {
            Ok(response) => {
                span.record("http.response.status_code", response.status);
                match response.status {
                    200..=399 => "ok",
                    400..=499 => "status_4xx",
                    _ => "status_5xx",
                }
            }
            Err(UplinkError::Unreachable(_)) => "unreachable",
            Err(_) => "protocol",
        };
        let metrics = crate::telemetry::metrics();
        let outcome_label = [opentelemetry::KeyValue::new("outcome", outcome)];
        metrics
            .uplink_requests
            .record(started.elapsed().as_secs_f64(), &outcome_label);
        if outcome != "ok" {
            metrics
                .broker_errors
                .add(1, &[opentelemetry::KeyValue::new("kind", outcome)]);
        }
        result
    }

    async fn exchange(&self, request: &Request) -> Result<Response, UplinkError> {
        let peer = self.peer().await?;
        let (mut session, reused) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| self.unreachable(&e))?;
        match roundtrip(&mut session, request, &self.address).await {
            Ok(response) => {
                self.connector
                    .release_http_session(session, &peer, Some(POOL_IDLE))
                    .await;
                Ok(response)
            }
            // A pooled connection the broker closed meanwhile: one more try on a new one.
            Err(_) if reused => {
                let (mut fresh, _) = self
                    .connector
                    .get_http_session(&peer)
                    .await
                    .map_err(|e| self.unreachable(&e))?;
                let response = roundtrip(&mut fresh, request, &self.address)
                    .await
                    .map_err(|e| self.unreachable(&e))?;
                self.connector
                    .release_http_session(fresh, &peer, Some(POOL_IDLE))
                    .await;
                Ok(response)
            }
            Err(e) => Err(self.unreachable(&e)),
        }
    }

    fn unreachable(&self, error: &pingora::Error) -> UplinkError {
        // A refused connection may mean the broker moved: resolve again next time.
        *self.resolved.lock().expect("lock") = None;
        UplinkError::Unreachable(format!(
            "{}:{}: {error}",
            self.address.host, self.address.port
        ))
    }

    /// The peer with a (cached) resolved address. `HttpPeer::new` would resolve with blocking
    /// DNS and panic on failure, so resolution happens here.
    async fn peer(&self) -> Result<HttpPeer, UplinkError> {
        let mut peer = self.template.clone();
        peer._address = pingora::protocols::l4::socket::SocketAddr::Inet(self.resolve().await?);
        Ok(peer)
    }

    async fn resolve(&self) -> Result<SocketAddr, UplinkError> {
        if let Ok(ip) = self.address.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.address.port));
        }
        if let Some((addr, at)) = *self.resolved.lock().expect("lock") {
            if at.elapsed() < DNS_TTL {
                return Ok(addr);
            }
        }
        let host = (self.address.host.as_str(), self.address.port);
        let addr = tokio::net::lookup_host(host)
            .await
            .map_err(|e| UplinkError::Unreachable(format!("{}: {e}", self.address.host)))?
            .next()
            .ok_or_else(|| {
                UplinkError::Unreachable(format!("{}: no address", self.address.host))
            })?;
        *self.resolved.lock().expect("lock") = Some((addr, Instant::now()));
        Ok(addr)
    }
}

/// A request path as a span attribute: without the query, at most 128 characters.
fn bounded_path(path: &str) -> &str {
    let path = path.split('?').next().unwrap_or("");
    match path.char_indices().nth(128) {
        Some((end, _)) => &path[..end],
        None => path,
    }
}

/// Writes the request and reads the complete response on one session.
async fn roundtrip(
    session: &mut HttpSession,
    request: &Request,
    address: &BrokerAddress,
) -> pingora::Result<Response> {
    let path = format!("{}{}", address.base_path, request.path);
    let mut header = RequestHeader::build(request.method.clone(), path.as_bytes(), Some(8))?;
    header.insert_header("Host", address.authority.as_str())?;
    header.insert_header("Accept", "application/json")?;
    header.insert_header(
        "User-Agent",
        concat!("cullis-proxy/", env!("CARGO_PKG_VERSION")),
    )?;
    for (name, value) in &request.headers {
        header.insert_header(*name, value.as_str())?;
    }
    for (name, value) in cullis_telemetry::outgoing_headers() {
        header.insert_header(name, value)?;
    }
    match &request.body {
        Some(body) => {
            header.insert_header("Content-Type", "application/json")?;
            header.insert_header("Content-Length", body.len().to_string())?;
        }
        None if request.method != Method::GET => {
            header.insert_header("Content-Length", "0")?;
        }
        None => {}
    }
    session.write_request_header(Box::new(header)).await?;
    if let Some(body) = &request.body {
        session
            .write_request_body(Bytes::copy_from_slice(body), true)
            .await?;
    }
    session.finish_request_body().await?;
    session.read_response_header().await?;
    let head = session.response_header().ok_or_else(|| {
        pingora::Error::explain(pingora::ErrorType::InvalidHTTPHeader, "no response header")
    })?;
    let (status, headers) = (head.status.as_u16(), head.headers.clone());
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_response_body().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return pingora::Error::e_explain(
                pingora::ErrorType::InvalidHTTPHeader,
                "broker response body too large",
            );
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body: body.freeze(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_address_parsing() {
        let a = BrokerAddress::parse("https://broker.example:8443").unwrap();
        assert!(a.tls);
        assert_eq!((a.host.as_str(), a.port), ("broker.example", 8443));
        assert_eq!(a.authority, "broker.example:8443");
        assert_eq!(a.base_path, "");
        let b = BrokerAddress::parse("http://[::1]/cullis/").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 80));
        assert_eq!(b.base_path, "/cullis");
        assert!(BrokerAddress::parse("ftp://x").is_err());
        assert!(BrokerAddress::parse("not a url").is_err());
    }
}
