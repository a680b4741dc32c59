//! The client address used for per-IP rate limits: the TCP peer, or the first
//! `X-Forwarded-For` entry when the peer is a trusted proxy (`FORWARDED_ALLOW_IPS`).

use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// The caller's IP as text (`unknown` when the transport gives none).
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ClientIp, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientIp(resolve(
            peer,
            super::header(&parts.headers, "x-forwarded-for"),
            &state.config.forwarded_allow_ips,
        )))
    }
}

fn resolve(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> String {
    match peer {
        Some(peer) if trusted.contains(&peer) => forwarded_for
            .and_then(|list| list.split(',').next())
            .map(str::trim)
            .and_then(|first| first.parse::<IpAddr>().ok())
            .unwrap_or(peer)
            .to_string(),
        Some(peer) => peer.to_string(),
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_trusted_only_from_listed_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            resolve(Some(proxy), Some("203.0.113.9, 10.0.0.1"), &[proxy]),
            "203.0.113.9"
        );
        assert_eq!(
            resolve(Some(other), Some("203.0.113.9"), &[proxy]),
            "10.0.0.2"
        );
        assert_eq!(resolve(Some(proxy), Some("garbage"), &[proxy]), "10.0.0.1");
        assert_eq!(resolve(None, None, &[]), "unknown");
    }
}
