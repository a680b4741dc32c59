//! Agent identifiers: the internal `<org_id>::<agent_name>` form, the SPIFFE URI
//! `spiffe://<trust_domain>/<org_id>/<agent_name>`, and the registration rules for both
//! (ref-auth-crypto §1.2).
//!
//! Two alphabets apply, as in the reference:
//! * Registration (what an org may register, what a join may create) is lowercase only:
//!   `^[a-z0-9][a-z0-9._-]{0,127}$` per part, at most 256 characters for an agent id.
//! * The SPIFFE mapping accepts any path component of `[A-Za-z0-9._-]+`, so `orgA::sales` maps to
//!   `spiffe://atn.local/orgA/sales` even though it could not be registered.
//!
//! The parser is stricter than the reference's `urlparse`-based one: the scheme must be written
//! `spiffe` in lowercase, and any `?` or `#` is rejected even when nothing follows it. It also
//! applies the SPIFFE-ID limits the reference leaves out (no `.`/`..` segments, trust domain at
//! most 255 and the whole id at most 2048 bytes).

use std::fmt;
use std::str::FromStr;

const SCHEME_PREFIX: &str = "spiffe://";
const MAX_ID_LEN: usize = 2048;
const MAX_TRUST_DOMAIN_LEN: usize = 255;
const MAX_ID_PART_LEN: usize = 128;
const MAX_AGENT_ID_LEN: usize = 256;

/// Why a SPIFFE id, trust domain or internal agent id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    #[error("SPIFFE ID must not be empty")]
    Empty,
    #[error("SPIFFE ID longer than 2048 bytes")]
    TooLong,
    #[error("SPIFFE ID must start with 'spiffe://'")]
    InvalidScheme,
    #[error("SPIFFE ID must not contain a query or fragment")]
    QueryOrFragment,
    #[error("SPIFFE ID has no trust domain")]
    MissingTrustDomain,
    #[error("invalid trust domain {0:?}")]
    InvalidTrustDomain(String),
    #[error("SPIFFE ID has no path")]
    MissingPath,
    #[error("invalid SPIFFE path component {0:?}")]
    InvalidPathComponent(String),
    #[error("SPIFFE ID path must be /<org>/<agent>, got {0:?}")]
    NotAnAgentPath(String),
    #[error("agent id {0:?} has no '::' separator")]
    MissingSeparator(String),
}

/// Why an org id or agent id does not meet the registration rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("invalid org_id {0:?}: must match ^[a-z0-9][a-z0-9._-]{{0,127}}$")]
    InvalidOrgId(String),
    #[error("invalid agent name {0:?}: must match ^[a-z0-9][a-z0-9._-]{{0,127}}$")]
    InvalidAgentName(String),
    #[error("invalid agent_id {0:?}: must be '<org_id>::<agent_name>', at most 256 characters")]
    InvalidAgentId(String),
}

/// A validated SPIFFE id (`spiffe://<trust domain>/<segment>[/<segment>…]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    uri: String,
    /// Byte offset where the path (its leading `/`) starts.
    path_start: usize,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE id.
    pub fn parse(text: &str) -> Result<SpiffeId, SpiffeError> {
        if text.is_empty() {
            return Err(SpiffeError::Empty);
        }
        if text.len() > MAX_ID_LEN {
            return Err(SpiffeError::TooLong);
        }
        let rest = text
            .strip_prefix(SCHEME_PREFIX)
            .ok_or(SpiffeError::InvalidScheme)?;
        if text.contains(['?', '#']) {
            return Err(SpiffeError::QueryOrFragment);
        }
        let (trust_domain, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        if trust_domain.is_empty() {
            return Err(SpiffeError::MissingTrustDomain);
        }
        validate_trust_domain(trust_domain)?;
        if path.is_empty() || path == "/" {
            return Err(SpiffeError::MissingPath);
        }
        for segment in path[1..].split('/') {
            validate_path_component(segment)?;
        }
        Ok(SpiffeId {
            uri: text.to_owned(),
            path_start: SCHEME_PREFIX.len() + trust_domain.len(),
        })
    }

    /// Builds `spiffe://<trust_domain>/<segments joined by '/'>`, validating every part.
    pub fn from_parts(trust_domain: &str, segments: &[&str]) -> Result<SpiffeId, SpiffeError> {
        validate_trust_domain(trust_domain)?;
        if segments.is_empty() {
            return Err(SpiffeError::MissingPath);
        }
        let mut uri = String::with_capacity(
            SCHEME_PREFIX.len()
                + trust_domain.len()
                + segments.iter().map(|s| s.len() + 1).sum::<usize>(),
        );
        uri.push_str(SCHEME_PREFIX);
        uri.push_str(trust_domain);
        for segment in segments {
            validate_path_component(segment)?;
            uri.push('/');
            uri.push_str(segment);
        }
        if uri.len() > MAX_ID_LEN {
            return Err(SpiffeError::TooLong);
        }
        Ok(SpiffeId {
            path_start: SCHEME_PREFIX.len() + trust_domain.len(),
            uri,
        })
    }

    /// The full URI.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The trust domain (the URI authority).
    pub fn trust_domain(&self) -> &str {
        &self.uri[SCHEME_PREFIX.len()..self.path_start]
    }

    /// The path, with its leading `/`.
    pub fn path(&self) -> &str {
        &self.uri[self.path_start..]
    }

    /// The path segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path()[1..].split('/')
    }

    /// The internal agent id `<org>::<agent>`: the path must have exactly two segments.
    pub fn to_internal(&self) -> Result<String, SpiffeError> {
        let mut segments = self.segments();
        match (segments.next(), segments.next(), segments.next()) {
            (Some(org), Some(agent), None) => Ok(format!("{org}::{agent}")),
            _ => Err(SpiffeError::NotAnAgentPath(self.path().to_owned())),
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeError;

    fn from_str(text: &str) -> Result<SpiffeId, SpiffeError> {
        SpiffeId::parse(text)
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.uri
    }
}

impl From<SpiffeId> for String {
    fn from(id: SpiffeId) -> String {
        id.uri
    }
}

/// `<org>::<agent>` → `spiffe://<trust_domain>/<org>/<agent>`, splitting on the FIRST `::`.
/// Both parts must be valid SPIFFE path components (so a second `::` in the name is refused).
pub fn internal_to_spiffe(agent_id: &str, trust_domain: &str) -> Result<SpiffeId, SpiffeError> {
    validate_trust_domain(trust_domain)?;
    let (org, agent) = agent_id
        .split_once("::")
        .ok_or_else(|| SpiffeError::MissingSeparator(agent_id.to_owned()))?;
    SpiffeId::from_parts(trust_domain, &[org, agent])
}

/// `spiffe://<td>/<org>/<agent>` → `<org>::<agent>`. The trust domain is not compared with any
/// expected value here; parse with [`SpiffeId::parse`] when the caller needs to check it.
pub fn spiffe_to_internal(spiffe_id: &str) -> Result<String, SpiffeError> {
    SpiffeId::parse(spiffe_id)?.to_internal()
}

/// Trust-domain rule `^[a-z0-9]([a-z0-9\-\.]*[a-z0-9])?$` (lowercase, no port, no userinfo),
/// at most 255 characters.
pub fn validate_trust_domain(trust_domain: &str) -> Result<(), SpiffeError> {
    let bytes = trust_domain.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let inner_ok = |b: &u8| edge_ok(b) || *b == b'-' || *b == b'.';
    let valid = match bytes {
        [] => false,
        [only] => edge_ok(only),
        [first, middle @ .., last] => {
            edge_ok(first) && edge_ok(last) && middle.iter().all(inner_ok)
        }
    };
    if valid && bytes.len() <= MAX_TRUST_DOMAIN_LEN {
        Ok(())
    } else {
        Err(SpiffeError::InvalidTrustDomain(trust_domain.to_owned()))
    }
}

/// Path-component rule `^[a-zA-Z0-9\-_\.]+$`, and not `.` or `..`.
fn validate_path_component(segment: &str) -> Result<(), SpiffeError> {
    let valid = !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(SpiffeError::InvalidPathComponent(segment.to_owned()))
    }
}

/// `^[a-z0-9][a-z0-9._-]{0,127}$`: one part of a registrable id.
fn is_registrable_part(part: &str) -> bool {
    let bytes = part.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= MAX_ID_PART_LEN
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        }
        None => false,
    }
}

/// The join-time org id rule: `^[a-z0-9][a-z0-9._-]{0,127}$`.
pub fn validate_org_id(org_id: &str) -> Result<(), IdError> {
    if is_registrable_part(org_id) {
        Ok(())
    } else {
        Err(IdError::InvalidOrgId(org_id.to_owned()))
    }
}

/// The agent-name half of a registrable agent id (same alphabet as an org id).
pub fn validate_agent_name(agent_name: &str) -> Result<(), IdError> {
    if is_registrable_part(agent_name) {
        Ok(())
    } else {
        Err(IdError::InvalidAgentName(agent_name.to_owned()))
    }
}

/// The registration rule for agent ids:
/// `^[a-z0-9][a-z0-9._-]{0,127}::[a-z0-9][a-z0-9._-]{0,127}$`, at most 256 characters.
/// Returns the `(org_id, agent_name)` halves.
pub fn validate_agent_id(agent_id: &str) -> Result<(&str, &str), IdError> {
    let invalid = || IdError::InvalidAgentId(agent_id.to_owned());
    if agent_id.len() > MAX_AGENT_ID_LEN {
        return Err(invalid());
    }
    let (org, name) = agent_id.split_once("::").ok_or_else(invalid)?;
    if is_registrable_part(org) && is_registrable_part(name) {
        Ok((org, name))
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_example_maps_both_ways() {
        let id = internal_to_spiffe("orgA::sales", "atn.local").unwrap();
        assert_eq!(id.as_str(), "spiffe://atn.local/orgA/sales");
        assert_eq!(id.trust_domain(), "atn.local");
        assert_eq!(id.path(), "/orgA/sales");
        assert_eq!(id.segments().collect::<Vec<_>>(), ["orgA", "sales"]);
        assert_eq!(
            spiffe_to_internal("spiffe://atn.local/orgA/sales").unwrap(),
            "orgA::sales"
        );
        assert_eq!(id.to_string().parse::<SpiffeId>().unwrap(), id);
    }

    #[test]
    fn internal_to_spiffe_splits_on_the_first_separator() {
        // The name half keeps the second "::", whose ':' is not a valid path character.
        assert_eq!(
            internal_to_spiffe("a::b::c", "td").unwrap_err(),
            SpiffeError::InvalidPathComponent("b::c".into())
        );
        assert_eq!(
            internal_to_spiffe("acme::buyer.v2_x-1", "td")
                .unwrap()
                .as_str(),
            "spiffe://td/acme/buyer.v2_x-1"
        );
    }

    #[test]
    fn internal_to_spiffe_refuses_bad_input() {
        assert_eq!(
            internal_to_spiffe("no-separator", "atn.local").unwrap_err(),
            SpiffeError::MissingSeparator("no-separator".into())
        );
        assert_eq!(
            internal_to_spiffe("::agent", "atn.local").unwrap_err(),
            SpiffeError::InvalidPathComponent(String::new())
        );
        assert_eq!(
            internal_to_spiffe("org::", "atn.local").unwrap_err(),
            SpiffeError::InvalidPathComponent(String::new())
        );
        assert_eq!(
            internal_to_spiffe("org::a/b", "atn.local").unwrap_err(),
            SpiffeError::InvalidPathComponent("a/b".into())
        );
        assert_eq!(
            internal_to_spiffe("org::..", "atn.local").unwrap_err(),
            SpiffeError::InvalidPathComponent("..".into())
        );
        assert_eq!(
            internal_to_spiffe("org::agent", "ATN.local").unwrap_err(),
            SpiffeError::InvalidTrustDomain("ATN.local".into())
        );
    }

    #[test]
    fn trust_domain_rule() {
        for good in ["a", "0", "atn.local", "my-org.example.com", "a-b", "x1"] {
            assert_eq!(validate_trust_domain(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            ".a",
            "a.",
            "Atn.local",
            "atn.local:8443",
            "user@atn.local",
            "atn_local",
            "atn.local\n",
            "atn local",
        ] {
            assert!(validate_trust_domain(bad).is_err(), "{bad:?}");
        }
        assert!(validate_trust_domain(&"a".repeat(255)).is_ok());
        assert!(validate_trust_domain(&"a".repeat(256)).is_err());
    }

    #[test]
    fn parse_accepts_valid_ids() {
        let id = SpiffeId::parse("spiffe://atn.local/orgA/sales").unwrap();
        assert_eq!(id.to_internal().unwrap(), "orgA::sales");
        let deep = SpiffeId::parse("spiffe://td/a/b/c").unwrap();
        assert_eq!(deep.segments().count(), 3);
        assert_eq!(
            deep.to_internal().unwrap_err(),
            SpiffeError::NotAnAgentPath("/a/b/c".into())
        );
        let single = SpiffeId::parse("spiffe://td/workload").unwrap();
        assert!(single.to_internal().is_err());
    }

    #[test]
    fn parse_rejects_each_invalid_form() {
        let cases: &[(&str, SpiffeError)] = &[
            ("", SpiffeError::Empty),
            ("https://atn.local/a/b", SpiffeError::InvalidScheme),
            ("SPIFFE://atn.local/a/b", SpiffeError::InvalidScheme),
            ("spiffe:/atn.local/a/b", SpiffeError::InvalidScheme),
            ("atn.local/a/b", SpiffeError::InvalidScheme),
            ("spiffe://atn.local/a/b?x=1", SpiffeError::QueryOrFragment),
            ("spiffe://atn.local/a/b#frag", SpiffeError::QueryOrFragment),
            // The reference misses these two (empty query / fragment); we do not.
            ("spiffe://atn.local/a/b?", SpiffeError::QueryOrFragment),
            ("spiffe://atn.local/a/b#", SpiffeError::QueryOrFragment),
            ("spiffe:///a/b", SpiffeError::MissingTrustDomain),
            (
                "spiffe://atn.local:443/a/b",
                SpiffeError::InvalidTrustDomain("atn.local:443".into()),
            ),
            (
                "spiffe://u@atn.local/a/b",
                SpiffeError::InvalidTrustDomain("u@atn.local".into()),
            ),
            (
                "spiffe://Atn.local/a/b",
                SpiffeError::InvalidTrustDomain("Atn.local".into()),
            ),
            ("spiffe://atn.local", SpiffeError::MissingPath),
            ("spiffe://atn.local/", SpiffeError::MissingPath),
            (
                "spiffe://atn.local/a/b/",
                SpiffeError::InvalidPathComponent(String::new()),
            ),
            (
                "spiffe://atn.local/a//b",
                SpiffeError::InvalidPathComponent(String::new()),
            ),
            (
                "spiffe://atn.local/a/%41",
                SpiffeError::InvalidPathComponent("%41".into()),
            ),
            (
                "spiffe://atn.local/a/./b",
                SpiffeError::InvalidPathComponent(".".into()),
            ),
            (
                "spiffe://atn.local/a/b c",
                SpiffeError::InvalidPathComponent("b c".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(&SpiffeId::parse(input).unwrap_err(), expected, "{input:?}");
        }
        let long = format!("spiffe://td/{}", "a".repeat(2048));
        assert_eq!(SpiffeId::parse(&long).unwrap_err(), SpiffeError::TooLong);
    }

    #[test]
    fn spiffe_to_internal_needs_exactly_two_segments() {
        assert_eq!(spiffe_to_internal("spiffe://td/o/a").unwrap(), "o::a");
        assert_eq!(
            spiffe_to_internal("spiffe://td/o").unwrap_err(),
            SpiffeError::NotAnAgentPath("/o".into())
        );
        assert_eq!(
            spiffe_to_internal("spiffe://td/o/a/x").unwrap_err(),
            SpiffeError::NotAnAgentPath("/o/a/x".into())
        );
        assert_eq!(
            spiffe_to_internal("spiffe://td/o/a?").unwrap_err(),
            SpiffeError::QueryOrFragment
        );
    }

    #[test]
    fn registration_rules() {
        assert_eq!(validate_org_id("acme"), Ok(()));
        assert_eq!(validate_org_id("0rg.with_all-chars"), Ok(()));
        assert_eq!(validate_org_id(&"a".repeat(128)), Ok(()));
        for bad in [
            "", "Acme", "-acme", ".acme", "ac me", "acme\n", "a::b", "ácme",
        ] {
            assert_eq!(
                validate_org_id(bad),
                Err(IdError::InvalidOrgId(bad.into())),
                "{bad:?}"
            );
        }
        assert!(validate_org_id(&"a".repeat(129)).is_err());
        assert!(validate_agent_name("buyer").is_ok());
        assert!(validate_agent_name("Buyer").is_err());

        assert_eq!(validate_agent_id("acme::buyer"), Ok(("acme", "buyer")));
        let longest = format!("{}::{}", "a".repeat(127), "b".repeat(127));
        assert_eq!(longest.len(), 256);
        assert!(validate_agent_id(&longest).is_ok());
        let too_long = format!("{}::{}", "a".repeat(128), "b".repeat(127));
        assert!(validate_agent_id(&too_long).is_err());
        for bad in [
            "acme",
            "acme::",
            "::buyer",
            "Acme::buyer",
            "acme::Buyer",
            "acme::buyer::x",
            "acme:buyer",
            "acme::buyer\n",
            "acme::-buyer",
        ] {
            assert_eq!(
                validate_agent_id(bad),
                Err(IdError::InvalidAgentId(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn from_parts_validates_every_part() {
        assert_eq!(
            SpiffeId::from_parts("td", &["a", "b"]).unwrap().as_str(),
            "spiffe://td/a/b"
        );
        assert_eq!(
            SpiffeId::from_parts("td", &[]).unwrap_err(),
            SpiffeError::MissingPath
        );
        assert!(SpiffeId::from_parts("td", &["a?"]).is_err());
        assert!(SpiffeId::from_parts("t_d", &["a"]).is_err());
    }
}
