//! CORS for browser clients, only when `MCP_PROXY_ALLOWED_ORIGINS` is set (reference §1.3):
//! methods GET, POST, DELETE, PATCH, OPTIONS; headers Authorization, Content-Type, DPoP,
//! X-API-Key; credentials allowed unless the list contains `*`. A preflight from an origin not
//! on the list is refused with 400, and an actual request from one gets no CORS headers (the
//! browser then withholds the answer from the page).

use super::{ApiError, Reply, Request, Response};
use http::{Method, StatusCode};

const ALLOW_METHODS: &str = "GET, POST, DELETE, PATCH, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, DPoP, X-API-Key";
/// How long a browser may reuse a preflight answer, seconds.
const MAX_AGE: &str = "600";

#[derive(Debug, Clone)]
pub struct Cors {
    origins: Vec<String>,
    any: bool,
}

impl Cors {
    /// The policy for `allowed` origins; `None` (CORS off) when the list is empty.
    pub fn new(allowed: &[String]) -> Option<Cors> {
        let origins: Vec<String> = allowed
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        let any = origins.iter().any(|origin| origin == "*");
        (!origins.is_empty()).then_some(Cors { origins, any })
    }

    /// The answer to a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`);
    /// `None` when `request` is not one.
    pub fn preflight(&self, request: &Request) -> Option<Reply> {
        if request.method != Method::OPTIONS {
            return None;
        }
        let origin = request.header("origin")?;
        request.header("access-control-request-method")?;
        if !self.allows(origin) {
            return Some(ApiError::bad_request("Disallowed CORS origin").into());
        }
        let mut response = Response::empty(StatusCode::OK)
            .with_header("Access-Control-Allow-Methods", ALLOW_METHODS)
            .with_header("Access-Control-Allow-Headers", ALLOW_HEADERS)
            .with_header("Access-Control-Max-Age", MAX_AGE);
        response.headers.extend(self.headers(Some(origin)));
        Some(response.into())
    }

    /// The CORS headers of an actual response to a request from `origin`.
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        match origin {
            Some(_) if self.any => vec![("Access-Control-Allow-Origin", "*".to_owned())],
            Some(origin) if self.allows(origin) => vec![
                ("Access-Control-Allow-Origin", origin.to_owned()),
                ("Access-Control-Allow-Credentials", "true".to_owned()),
                ("Vary", "Origin".to_owned()),
            ],
            _ => Vec::new(),
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|allowed| allowed == origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, headers: &[(&'static str, &str)]) -> Request {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Request {
            method,
            path: "/v1/egress/send".into(),
            query: None,
            headers: map,
            body: Default::default(),
            peer: None,
        }
    }

    fn whole(reply: Reply) -> Response {
        match reply {
            Reply::Whole(response) => response,
            Reply::Stream(_) => panic!("a preflight is answered whole"),
        }
    }

    fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn off_without_origins() {
        assert!(Cors::new(&[]).is_none());
        assert!(Cors::new(&[" ".into()]).is_none());
    }

    #[test]
    fn listed_origins_get_credentials_others_nothing() {
        let cors = Cors::new(&["https://app.example/".into()]).unwrap();
        let preflight = request(
            Method::OPTIONS,
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
            ],
        );
        let answer = whole(cors.preflight(&preflight).expect("a preflight"));
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            header(&answer, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(
            header(&answer, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            header(&answer, "access-control-allow-headers"),
            Some(ALLOW_HEADERS)
        );

        let foreign = request(
            Method::OPTIONS,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
        );
        let refused = whole(cors.preflight(&foreign).expect("a preflight"));
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(cors.headers(Some("https://evil.example")).is_empty());
        assert!(cors.headers(None).is_empty());

        let plain_options = request(Method::OPTIONS, &[("origin", "https://app.example")]);
        assert!(cors.preflight(&plain_options).is_none(), "not a preflight");
        assert!(cors.preflight(&request(Method::POST, &[])).is_none());
    }

    #[test]
    fn a_wildcard_allows_any_origin_without_credentials() {
        let cors = Cors::new(&["https://a.example".into(), "*".into()]).unwrap();
        let headers = cors.headers(Some("https://anything.example"));
        assert_eq!(
            headers,
            vec![("Access-Control-Allow-Origin", "*".to_owned())]
        );
    }
}
