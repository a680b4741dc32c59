//! Outbound-URL guard for policy calls (PDP webhooks and OPA): which addresses a URL may reach.
//!
//! Two layers, so the address that is checked is the address that is connected to:
//! 1. [`check_url`] runs before a call and produces the reason a denial shows (scheme, host,
//!    loopback names, every resolved address).
//! 2. [`GuardedResolver`] is the HTTP client's DNS resolver: it resolves again at connect time
//!    and refuses the connection when any address is not allowed. A name that re-binds to a
//!    private address between the two lookups therefore still cannot be reached.
//!
//! IP-literal URLs never reach a resolver; the first layer checks them.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which destinations a caller may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPolicy {
    /// PDP webhooks (default): public unicast addresses only.
    PublicOnly,
    /// `POLICY_WEBHOOK_ALLOW_PRIVATE_IPS=true`: private and loopback too, but still never a
    /// cloud metadata endpoint (nothing legitimate answers policy questions there).
    AllowPrivate,
    /// `OPA_URL`: chosen by the operator, usually a sidecar, so private and loopback are fine;
    /// link-local, reserved and metadata addresses are not (reference §5.4).
    OperatorService,
}

/// What kind of address an IP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Public,
    Loopback,
    Private,
    LinkLocal,
    /// Unspecified, multicast, broadcast, documentation, benchmarking, IETF-reserved, …
    Reserved,
    /// A cloud instance-metadata or host-agent endpoint (AWS/GCP/Azure/Alibaba/ECS).
    Metadata,
}

impl AddressKind {
    fn describe(self) -> &'static str {
        match self {
            AddressKind::Public => "public",
            AddressKind::Loopback => "loopback",
            AddressKind::Private => "private",
            AddressKind::LinkLocal => "link-local",
            AddressKind::Reserved => "reserved",
            AddressKind::Metadata => "cloud metadata",
        }
    }
}

impl AddressPolicy {
    /// Whether `ip` may be connected to.
    pub fn allows(self, ip: IpAddr) -> bool {
        let kind = classify(ip);
        match self {
            AddressPolicy::PublicOnly => kind == AddressKind::Public,
            AddressPolicy::AllowPrivate => kind != AddressKind::Metadata,
            AddressPolicy::OperatorService => matches!(
                kind,
                AddressKind::Public | AddressKind::Private | AddressKind::Loopback
            ),
        }
    }
}

/// Cloud metadata and host-agent addresses, refused in every mode.
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack, …
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer
];
const METADATA_V6: [Ipv6Addr; 1] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254), // AWS IMDS over IPv6
];
/// Host names of metadata services, refused before any lookup.
const METADATA_NAMES: [&str; 3] = [
    "metadata.google.internal",
    "metadata.goog",
    "instance-data.ec2.internal",
];

/// Classifies an address (IPv4-mapped, NAT64 and 6to4 IPv6 addresses as the IPv4 inside).
pub fn classify(ip: IpAddr) -> AddressKind {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressKind {
    if METADATA_V4.contains(&ip) {
        return AddressKind::Metadata;
    }
    if ip.is_loopback() {
        return AddressKind::Loopback;
    }
    if ip.is_link_local() {
        return AddressKind::LinkLocal;
    }
    let private = [
        ([10, 0, 0, 0], 8),
        ([172, 16, 0, 0], 12),
        ([192, 168, 0, 0], 16),
        ([100, 64, 0, 0], 10), // carrier-grade NAT
    ];
    if private.iter().any(|(net, p)| in_v4(ip, *net, *p)) {
        return AddressKind::Private;
    }
    let reserved = [
        ([0, 0, 0, 0], 8),
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // TEST-NET-1
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // TEST-NET-2
        ([203, 0, 113, 0], 24),  // TEST-NET-3
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, incl. broadcast
    ];
    if reserved.iter().any(|(net, p)| in_v4(ip, *net, *p)) {
        return AddressKind::Reserved;
    }
    AddressKind::Public
}

fn classify_v6(ip: Ipv6Addr) -> AddressKind {
    if METADATA_V6.contains(&ip) {
        return AddressKind::Metadata;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    let bits = u128::from(ip);
    let in_net = |net: u128, prefix: u32| {
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix)
        };
        bits & mask == net & mask
    };
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that decides.
    if in_net(0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96) {
        return classify_v4(Ipv4Addr::from((bits & 0xffff_ffff) as u32));
    }
    if segments[0] == 0x2002 {
        let v4 = ((segments[1] as u32) << 16) | segments[2] as u32;
        return classify_v4(Ipv4Addr::from(v4));
    }
    if ip.is_loopback() {
        return AddressKind::Loopback;
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return AddressKind::Reserved;
    }
    if in_net(0xfe80 << 112, 10) {
        return AddressKind::LinkLocal;
    }
    if in_net(0xfc00 << 112, 7) || in_net(0xfec0 << 112, 10) {
        // unique local, deprecated site-local
        return AddressKind::Private;
    }
    let reserved: [(u128, u32); 5] = [
        (0, 96),                                         // IPv4-compatible (deprecated)
        (0x0100 << 112, 64),                             // discard-only
        (0x2001 << 112, 23),                             // IETF protocol assignments (incl. Teredo)
        (0x2001_0db8 << 96, 32),                         // documentation
        (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48), // local-use NAT64
    ];
    if reserved.iter().any(|(net, p)| in_net(*net, *p)) {
        return AddressKind::Reserved;
    }
    AddressKind::Public
}

/// Checks `url` against `policy` and returns it parsed. `label` starts every message
/// ("Webhook URL", "OPA_URL"). Messages follow the reference (§5.3, §5.4).
pub async fn check_url(url: &str, policy: AddressPolicy, label: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("{label} is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{label} must use http or https scheme, got: '{}'",
            parsed.scheme()
        ));
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match parsed.host() {
        None => return Err(format!("{label} has no hostname")),
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_NAMES.contains(&name.as_str()) {
                return Err(format!(
                    "{label} points to a cloud metadata service: {name}"
                ));
            }
            if policy == AddressPolicy::PublicOnly
                && (name == "localhost" || name.ends_with(".localhost"))
            {
                return Err(format!("{label} points to loopback address: {name}"));
            }
            // "Cannot resolve webhook hostname: h" (reference), "Cannot resolve OPA_URL hostname: h".
            let what = label
                .strip_suffix(" URL")
                .map_or_else(|| label.to_owned(), str::to_lowercase);
            let unresolvable = || format!("Cannot resolve {what} hostname: {name}");
            let found = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|_| unresolvable())?;
            let found: Vec<IpAddr> = found.map(|a| a.ip()).collect();
            if found.is_empty() {
                return Err(unresolvable());
            }
            found
        }
    };
    for ip in addresses {
        if policy.allows(ip) {
            continue;
        }
        let kind = classify(ip);
        return Err(match (policy, kind) {
            (_, AddressKind::Metadata) => {
                format!("{label} points to a cloud metadata address: {ip}")
            }
            (AddressPolicy::PublicOnly, _)
                if is_literal(&parsed)
                    && (kind == AddressKind::Loopback || ip.is_unspecified()) =>
            {
                format!("{label} points to loopback address: {ip}")
            }
            (AddressPolicy::PublicOnly, _) => {
                format!("{label} resolves to private/reserved IP: {ip}")
            }
            _ => format!("{label} resolves to a {} address: {ip}", kind.describe()),
        });
    }
    Ok(parsed)
}

fn is_literal(url: &Url) -> bool {
    matches!(
        url.host(),
        Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_))
    )
}

/// DNS resolver for the policy HTTP clients: resolves with the system resolver and refuses
/// the whole name when any address is not allowed by its policy.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: AddressPolicy,
}

impl GuardedResolver {
    pub fn new(policy: AddressPolicy) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(resolve_guarded(self.policy, name.as_str().to_owned()))
    }
}

async fn resolve_guarded(policy: AddressPolicy, host: String) -> Result<Addrs, BoxError> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    if found.is_empty() {
        return Err(format!("cannot resolve {host}").into());
    }
    if let Some(bad) = found.iter().find(|a| !policy.allows(a.ip())) {
        return Err(format!(
            "{host} resolves to a {} address ({}), refused",
            classify(bad.ip()).describe(),
            bad.ip()
        )
        .into());
    }
    Ok(Box::new(found.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ip: &str) -> AddressKind {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn classifies_addresses() {
        assert_eq!(kind("8.8.8.8"), AddressKind::Public);
        assert_eq!(kind("127.0.0.1"), AddressKind::Loopback);
        assert_eq!(kind("127.1.2.3"), AddressKind::Loopback);
        assert_eq!(kind("10.1.2.3"), AddressKind::Private);
        assert_eq!(kind("172.31.255.1"), AddressKind::Private);
        assert_eq!(kind("172.32.0.1"), AddressKind::Public);
        assert_eq!(kind("192.168.1.1"), AddressKind::Private);
        assert_eq!(kind("100.64.0.1"), AddressKind::Private);
        assert_eq!(kind("169.254.1.1"), AddressKind::LinkLocal);
        assert_eq!(kind("169.254.169.254"), AddressKind::Metadata);
        assert_eq!(kind("100.100.100.200"), AddressKind::Metadata);
        assert_eq!(kind("0.0.0.0"), AddressKind::Reserved);
        assert_eq!(kind("255.255.255.255"), AddressKind::Reserved);
        assert_eq!(kind("224.0.0.1"), AddressKind::Reserved);
        assert_eq!(kind("192.0.2.7"), AddressKind::Reserved);
        assert_eq!(kind("::1"), AddressKind::Loopback);
        assert_eq!(kind("::"), AddressKind::Reserved);
        assert_eq!(kind("fe80::1"), AddressKind::LinkLocal);
        assert_eq!(kind("fd12::1"), AddressKind::Private);
        assert_eq!(kind("fd00:ec2::254"), AddressKind::Metadata);
        assert_eq!(kind("ff02::1"), AddressKind::Reserved);
        assert_eq!(kind("2001:db8::1"), AddressKind::Reserved);
        assert_eq!(kind("2606:4700::1111"), AddressKind::Public);
        // IPv4 hidden in IPv6 is judged as the IPv4.
        assert_eq!(kind("::ffff:127.0.0.1"), AddressKind::Loopback);
        assert_eq!(kind("::ffff:169.254.169.254"), AddressKind::Metadata);
        assert_eq!(kind("64:ff9b::a00:1"), AddressKind::Private);
        assert_eq!(kind("64:ff9b::808:808"), AddressKind::Public);
        assert_eq!(kind("2002:7f00:1::"), AddressKind::Loopback);
    }

    #[test]
    fn policies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(AddressPolicy::PublicOnly.allows(ip("8.8.8.8")));
        assert!(!AddressPolicy::PublicOnly.allows(ip("10.0.0.1")));
        assert!(AddressPolicy::AllowPrivate.allows(ip("127.0.0.1")));
        assert!(AddressPolicy::AllowPrivate.allows(ip("10.0.0.1")));
        assert!(!AddressPolicy::AllowPrivate.allows(ip("169.254.169.254")));
        assert!(AddressPolicy::OperatorService.allows(ip("127.0.0.1")));
        assert!(AddressPolicy::OperatorService.allows(ip("192.168.0.9")));
        assert!(!AddressPolicy::OperatorService.allows(ip("169.254.0.9")));
        assert!(!AddressPolicy::OperatorService.allows(ip("240.0.0.1")));
    }

    #[tokio::test]
    async fn urls_are_checked_with_the_reference_messages() {
        let strict = AddressPolicy::PublicOnly;
        let label = "Webhook URL";
        let err =
            |url: &'static str| async move { check_url(url, strict, label).await.unwrap_err() };
        assert_eq!(
            err("http://127.0.0.1:9000/pdp").await,
            "Webhook URL points to loopback address: 127.0.0.1"
        );
        assert_eq!(
            err("http://localhost/pdp").await,
            "Webhook URL points to loopback address: localhost"
        );
        assert_eq!(
            err("http://[::1]/pdp").await,
            "Webhook URL points to loopback address: ::1"
        );
        assert_eq!(
            err("http://0.0.0.0:8080/pdp").await,
            "Webhook URL points to loopback address: 0.0.0.0"
        );
        assert_eq!(
            err("http://169.254.169.254/latest/meta-data").await,
            "Webhook URL points to a cloud metadata address: 169.254.169.254"
        );
        assert_eq!(
            err("http://10.0.0.5/pdp").await,
            "Webhook URL resolves to private/reserved IP: 10.0.0.5"
        );
        assert_eq!(
            err("ftp://example.com/pdp").await,
            "Webhook URL must use http or https scheme, got: 'ftp'"
        );
        assert!(err("not a url")
            .await
            .starts_with("Webhook URL is not a valid URL"));
        assert_eq!(
            err("http://metadata.google.internal/").await,
            "Webhook URL points to a cloud metadata service: metadata.google.internal"
        );
        assert_eq!(
            err("http://no-such-host.invalid/pdp").await,
            "Cannot resolve webhook hostname: no-such-host.invalid"
        );
        // The escape hatch lets loopback and private through, but never metadata.
        let relaxed = AddressPolicy::AllowPrivate;
        assert!(check_url("http://127.0.0.1:1/x", relaxed, label)
            .await
            .is_ok());
        assert!(check_url("http://localhost:1/x", relaxed, label)
            .await
            .is_ok());
        assert!(check_url("http://169.254.169.254/", relaxed, label)
            .await
            .is_err());
        // Public literal addresses pass without DNS.
        assert!(check_url("https://8.8.8.8/pdp", strict, label)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_forbidden_addresses() {
        let strict = GuardedResolver::new(AddressPolicy::PublicOnly);
        let error = strict
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost refused");
        assert!(error.to_string().contains("loopback"), "{error}");
        let relaxed = GuardedResolver::new(AddressPolicy::AllowPrivate);
        let addrs: Vec<SocketAddr> = relaxed
            .resolve("localhost".parse().unwrap())
            .await
            .expect("localhost allowed")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
