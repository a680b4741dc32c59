//! The console session cookie: who is logged in, until when, and the CSRF token their forms carry.
//!
//! Value: `base64url(JSON payload) "." hex(HMAC-SHA256(key, base64url part))`. The payload is the
//! reference's (`{role, org_id, csrf_token, exp}`); it is base64url-encoded because raw JSON holds
//! quotes and commas, which RFC 6265 does not allow in a cookie value. The key is the operator's
//! signing key, so changing it logs everyone out (runbook §6), and a per-process random key when
//! none is set (sessions then end at restart).

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Sessions last 8 hours, as the reference's.
pub const LIFETIME_SECONDS: i64 = 8 * 3600;

/// Who a session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The network operator (broker) or the org's administrator (proxy).
    Admin,
    /// An organisation logged in to the broker's console with its org secret.
    Org,
}

/// What the cookie says once its signature checked out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    pub csrf_token: String,
    /// Unix seconds.
    pub exp: i64,
}

impl Session {
    /// A fresh session with its own random CSRF token (16 bytes, 32 hex characters).
    pub fn start(role: Role, org_id: Option<String>, now: i64) -> Self {
        let mut token = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut token);
        Self {
            role,
            org_id,
            csrf_token: hex::encode(token),
            exp: now + LIFETIME_SECONDS,
        }
    }

    /// True when a form's `csrf_token` field is this session's token (constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|token| {
            token.len() == self.csrf_token.len()
                && bool::from(token.as_bytes().ct_eq(self.csrf_token.as_bytes()))
        })
    }
}

/// Signs and opens session cookies.
pub struct SessionKey {
    key: hmac::Key,
}

impl SessionKey {
    /// The key from configuration, or a random one (returned with `true`) when none is set.
    pub fn from_config(configured: Option<&str>) -> (Self, bool) {
        match configured.filter(|value| !value.is_empty()) {
            Some(secret) => (Self::new(secret.as_bytes()), false),
            None => {
                let mut random = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut random);
                (Self::new(&random), true)
            }
        }
    }

    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The cookie value for `session`.
    pub fn seal(&self, session: &Session) -> String {
        let payload = serde_json::to_vec(session).expect("a session serialises");
        let encoded = URL_SAFE_NO_PAD.encode(payload);
        let tag = hmac::sign(&self.key, encoded.as_bytes());
        format!("{encoded}.{}", hex::encode(tag.as_ref()))
    }

    /// The session in `value` if its signature is ours and it has not expired at `now`.
    pub fn open(&self, value: &str, now: i64) -> Option<Session> {
        let (encoded, tag_hex) = value.rsplit_once('.')?;
        let tag = hex::decode(tag_hex).ok()?;
        hmac::verify(&self.key, encoded.as_bytes(), &tag).ok()?;
        let payload = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        let session: Session = serde_json::from_slice(&payload).ok()?;
        (session.exp > now).then_some(session)
    }
}

/// How a console's cookie is named and scoped.
#[derive(Clone, Copy, Debug)]
pub struct CookieSpec {
    pub name: &'static str,
    /// Only the console's own paths get the cookie.
    pub path: &'static str,
    /// `Secure` when the console is served over https.
    pub secure: bool,
}

impl CookieSpec {
    /// `Set-Cookie` for a new session.
    pub fn set(&self, value: &str) -> String {
        self.header(value, LIFETIME_SECONDS)
    }

    /// `Set-Cookie` that removes the session (logout).
    pub fn clear(&self) -> String {
        self.header("", 0)
    }

    fn header(&self, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path={}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            self.name, self.path
        )
    }

    /// This cookie's value in a request's `Cookie` headers.
    pub fn find<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        cookie_headers
            .into_iter()
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_sealed_session_opens_with_the_same_key_only() {
        let key = SessionKey::new(b"k1");
        let session = Session::start(Role::Org, Some("acme".into()), NOW);
        let value = key.seal(&session);
        assert_eq!(key.open(&value, NOW), Some(session));
        assert_eq!(SessionKey::new(b"k2").open(&value, NOW), None);
    }

    #[test]
    fn tampered_or_expired_sessions_do_not_open() {
        let key = SessionKey::new(b"k1");
        let value = key.seal(&Session::start(Role::Org, Some("acme".into()), NOW));
        let (payload, tag) = value.rsplit_once('.').unwrap();
        let admin = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap()
                .replace("\"org\"", "\"admin\""),
        );
        assert_eq!(key.open(&format!("{admin}.{tag}"), NOW), None);
        assert_eq!(key.open(&value, NOW + LIFETIME_SECONDS), None);
        assert_eq!(key.open("garbage", NOW), None);
        assert_eq!(key.open("a.b.c", NOW), None);
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let session = Session::start(Role::Admin, None, NOW);
        assert_eq!(session.csrf_token.len(), 32);
        assert!(session.csrf_matches(Some(&session.csrf_token.clone())));
        assert!(!session.csrf_matches(Some(&session.csrf_token[..31])));
        assert!(!session.csrf_matches(Some("")));
        assert!(!session.csrf_matches(None));
    }

    #[test]
    fn cookies_are_scoped_and_found_among_others() {
        let spec = CookieSpec {
            name: "atn_session",
            path: "/dashboard",
            secure: true,
        };
        let set = spec.set("v");
        assert!(set.starts_with("atn_session=v; Path=/dashboard; HttpOnly; SameSite=Lax"));
        assert!(set.ends_with("Max-Age=28800; Secure"));
        assert!(spec.clear().contains("Max-Age=0"));
        assert_eq!(
            spec.find(["a=1; atn_session=xyz.0f", "b=2"]),
            Some("xyz.0f")
        );
        assert_eq!(spec.find(["atn_sessionx=1"]), None);
    }

    #[test]
    fn an_unset_key_is_random_per_process() {
        let (first, generated) = SessionKey::from_config(None);
        let (second, _) = SessionKey::from_config(Some(""));
        assert!(generated);
        let value = first.seal(&Session::start(Role::Admin, None, NOW));
        assert_eq!(second.open(&value, NOW), None);
    }
}
