//! DPoP `htu` derivation and normalisation, as the reference compares them
//! (ref-auth-crypto §3.2).
//!
//! Both the proof's `htu` and the broker's expected URL go through [`normalize`] before string
//! equality: `wss://`/`ws://` become `https://`/`http://`, scheme and authority are lowercased,
//! the path is kept byte for byte, and `;params`, query and fragment are dropped. Default ports
//! are *not* stripped (`http://h:80/x` ≠ `http://h/x`), as in the reference.

/// The normalised form of `url` used for comparison.
pub fn normalize(url: &str) -> String {
    let url = url
        .replace("wss://", "https://")
        .replace("ws://", "http://");
    let (scheme, rest) = match url.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => (scheme.to_ascii_lowercase(), rest),
        _ => (String::new(), url.as_str()),
    };
    let (netloc, path_and_more) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            (after[..end].to_ascii_lowercase(), &after[end..])
        }
        None => (String::new(), rest),
    };
    let path_end = path_and_more
        .find(['?', '#'])
        .unwrap_or(path_and_more.len());
    let mut path = &path_and_more[..path_end];
    // Python's urlparse takes `;params` only from the last path segment.
    let last_segment = path.rfind('/').map_or(0, |i| i);
    if let Some(semicolon) = path[last_segment..].find(';') {
        path = &path[..last_segment + semicolon];
    }
    let mut out = String::with_capacity(scheme.len() + netloc.len() + path.len() + 3);
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&netloc);
    out.push_str(path);
    out
}

/// The URL the broker expects in `htu` for a request: `BROKER_PUBLIC_URL` (trailing `/`
/// removed) plus the percent-decoded request path when configured, otherwise the URL the
/// request itself names (scheme, `Host` header verbatim, path).
pub fn expected(public_url: Option<&str>, scheme: &str, host: &str, decoded_path: &str) -> String {
    match public_url.map(str::trim).filter(|url| !url.is_empty()) {
        Some(base) => format!("{}{}", base.trim_end_matches('/'), decoded_path),
        None => format!("{scheme}://{host}{decoded_path}"),
    }
}

/// Whether a proof's `htu` names the same resource as the broker's expected URL.
pub fn matches(proof_htu: &str, expected_url: &str) -> bool {
    normalize(proof_htu) == normalize(expected_url)
}

fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_follows_the_reference() {
        let cases = [
            ("HTTP://Test/v1/Auth", "http://test/v1/Auth"),
            (
                "wss://broker.example/v1/broker/ws",
                "https://broker.example/v1/broker/ws",
            ),
            ("ws://b:8000/v1/broker/ws", "http://b:8000/v1/broker/ws"),
            ("http://test/v1/x?a=1#frag", "http://test/v1/x"),
            ("http://test/v1/x;p=1?q", "http://test/v1/x"),
            ("http://test/a;b/c", "http://test/a;b/c"),
            ("http://test/v1/%41/../x/", "http://test/v1/%41/../x/"),
            ("http://User@Host:80/x", "http://user@host:80/x"),
            ("http://test", "http://test"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input), expected, "{input}");
        }
    }

    #[test]
    fn default_ports_and_trailing_slashes_are_significant() {
        assert!(!matches("http://test:80/x", "http://test/x"));
        assert!(!matches("http://test/x/", "http://test/x"));
        assert!(!matches("https://test/x", "http://test/x"));
        assert!(matches(
            "ws://test/v1/broker/ws",
            "http://test/v1/broker/ws"
        ));
        assert!(matches("http://test/x?query=1", "http://test/x"));
    }

    #[test]
    fn expected_url_prefers_the_public_url() {
        assert_eq!(
            expected(
                Some("https://broker.example.com/"),
                "http",
                "127.0.0.1:8000",
                "/v1/auth/token"
            ),
            "https://broker.example.com/v1/auth/token"
        );
        assert_eq!(
            expected(Some(""), "http", "test", "/v1/x"),
            "http://test/v1/x"
        );
        assert_eq!(
            expected(None, "https", "Host:8443", "/v1/x"),
            "https://Host:8443/v1/x"
        );
    }
}
