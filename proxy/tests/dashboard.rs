//! The org admin's console (`/proxy/*`) over real HTTP against the real binaries: registration
//! and login, CSRF, security headers, static assets, signing-key changes, the setup wizard, and
//! agents created through the form whose key then works on the egress API.

mod common;

use common::*;
use reqwest::header::{HeaderMap, COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SIGNING_KEY: &str = "console-signing-key-one-0123456789abcdef";
const PASSWORD: &str = "correct horse battery";

/// A browser without JavaScript: no redirects followed, the session cookie sent by hand.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

/// What a request answered.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The CSRF token the page's forms carry.
    fn csrf(&self) -> String {
        between(&self.body, r#"name="csrf_token" value=""#, "\"")
            .unwrap_or_else(|| panic!("no CSRF field in:\n{}", self.body))
    }
}

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_owned())
}

impl Browser {
    fn new(proxy: &TestProxy) -> Browser {
        Browser {
            base: proxy.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header(COOKIE, cookie),
            None => request,
        };
        let response = request.send().await.expect("proxy reachable");
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(self.http.post(format!("{}{path}", self.base)).form(form))
            .await
    }

    /// POST with the session's CSRF token (read from `page_path`).
    async fn submit(&self, page_path: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(page_path).await.csrf();
        let mut fields = form.to_vec();
        fields.push(("csrf_token", &csrf));
        self.post(path, &fields).await
    }

    async fn register(&self) {
        let page = self
            .post(
                "/proxy/register",
                &[("password", PASSWORD), ("confirm_password", PASSWORD)],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location(), "/proxy/login");
    }

    /// Logs in and keeps the cookie; returns the `Set-Cookie` line.
    async fn login(&mut self) -> String {
        let page = self.post("/proxy/login", &[("password", PASSWORD)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let set = page.header("set-cookie")[0].to_owned();
        self.cookie = Some(set.split(';').next().unwrap().to_owned());
        set
    }
}

async fn policy(proxy: &TestProxy) -> Value {
    let (status, body) = call(proxy.admin(Method::GET, "/v1/admin/policy")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn register_login_csrf_headers_assets_and_key_change() {
    let mut proxy = TestProxy::start(&[("MCP_PROXY_DASHBOARD_SIGNING_KEY", SIGNING_KEY)]).await;
    let mut browser = Browser::new(&proxy);

    // The entry state machine and the doors closed to strangers.
    let entry = browser.get("/proxy/").await;
    assert_eq!(entry.status, StatusCode::SEE_OTHER);
    assert_eq!(entry.location(), "/proxy/register");
    assert_eq!(
        browser.get("/proxy/agents").await.location(),
        "/proxy/login"
    );
    let fragment = browser
        .send(
            browser
                .http
                .get(format!("{}/proxy/org-status", browser.base))
                .header("HX-Request", "true"),
        )
        .await;
    assert_eq!(fragment.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fragment.header("hx-redirect"), ["/proxy/login"]);

    // Registration: refused when weak or mismatched, then once only.
    let short = browser
        .post(
            "/proxy/register",
            &[("password", "short"), ("confirm_password", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(
        short.body.contains("at least 12 characters"),
        "{}",
        short.body
    );
    let differ = browser
        .post(
            "/proxy/register",
            &[
                ("password", PASSWORD),
                ("confirm_password", "correct horse batterY"),
            ],
        )
        .await;
    assert_eq!(differ.status, StatusCode::BAD_REQUEST);
    browser.register().await;
    let again = browser
        .post(
            "/proxy/register",
            &[
                ("password", "another long password"),
                ("confirm_password", "another long password"),
            ],
        )
        .await;
    assert_eq!(
        again.location(),
        "/proxy/login",
        "register is closed once a password exists"
    );
    let wrong = browser
        .post("/proxy/login", &[("password", "another long password")])
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNAUTHORIZED,
        "the second registration changed nothing"
    );
    assert!(wrong.body.contains("Wrong password"));

    // Login: the cookie as specified.
    let set_cookie = browser.login().await;
    assert!(set_cookie.starts_with("mcp_proxy_session="), "{set_cookie}");
    for part in ["Path=/proxy", "HttpOnly", "SameSite=Lax", "Max-Age=28800"] {
        assert!(set_cookie.contains(part), "{part} missing: {set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain-HTTP console: {set_cookie}"
    );
    assert_eq!(browser.get("/proxy/").await.location(), "/proxy/setup");

    // Security headers on every HTML page, one value each.
    let page = browser.get("/proxy/policies").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csp = page.header("content-security-policy");
    assert_eq!(csp.len(), 1, "{csp:?}");
    assert!(csp[0].contains("script-src 'self'") && !csp[0].contains("unsafe-inline"));
    assert!(csp[0].contains("frame-ancestors 'none'"));
    assert_eq!(page.header("x-frame-options"), ["DENY"]);
    assert_eq!(page.header("referrer-policy"), ["same-origin"]);
    assert_eq!(page.header("cache-control"), ["no-store"]);
    assert!(page.header("content-type")[0].starts_with("text/html"));
    assert!(!page.body.contains("<script>"), "no inline script");

    // CSRF: missing or wrong → 403 and nothing saved; right → saved.
    let rules = r#"{"blocked_agents": ["evil::bot"]}"#;
    let missing = browser
        .post("/proxy/policies", &[("rules_json", rules)])
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(
        missing.body.contains("Invalid CSRF token"),
        "{}",
        missing.body
    );
    let forged = browser
        .post(
            "/proxy/policies",
            &[
                ("rules_json", rules),
                ("csrf_token", "00000000000000000000000000000000"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(policy(&proxy).await, json!({}), "nothing changed");
    let bad_json = browser
        .submit(
            "/proxy/policies",
            "/proxy/policies",
            &[("rules_json", "{\"blocked_agents\": [")],
        )
        .await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    assert!(
        bad_json.body.contains("not valid JSON"),
        "{}",
        bad_json.body
    );
    assert_eq!(policy(&proxy).await, json!({}), "bad JSON saves nothing");
    let saved = browser
        .submit(
            "/proxy/policies",
            "/proxy/policies",
            &[("rules_json", rules)],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(
        policy(&proxy).await,
        json!({"blocked_agents": ["evil::bot"]})
    );
    let shown = browser.get(saved.location()).await;
    assert!(shown.body.contains("Policy rules saved."));
    assert!(shown.body.contains("evil::bot"));

    // The audit chain verifies from the console.
    let verified = browser
        .submit("/proxy/audit", "/proxy/audit/verify", &[])
        .await;
    assert_eq!(verified.status, StatusCode::OK);
    assert!(
        verified.body.contains(r#"data-valid="true""#),
        "{}",
        verified.body
    );
    let audit = browser.get("/proxy/audit?action=policy.update_rules").await;
    assert!(audit.body.contains("policy.update_rules"));
    assert!(!audit.body.contains("auth.register"), "the filter applies");

    // Static assets: cacheable, with an ETag that revalidates to 304.
    let htmx = browser.get("/static/htmx.min.js").await;
    assert_eq!(htmx.status, StatusCode::OK);
    assert!(htmx.body.starts_with("var htmx="));
    assert!(htmx.header("content-type")[0].starts_with("text/javascript"));
    assert_eq!(htmx.header("cache-control"), ["public, max-age=86400"]);
    let etag = htmx.header("etag")[0].to_owned();
    let revalidated = browser
        .send(
            browser
                .http
                .get(format!("{}/static/htmx.min.js", browser.base))
                .header("If-None-Match", &etag),
        )
        .await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.header("etag"), [etag.as_str()]);
    assert_eq!(
        browser.get("/static/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser.get("/static/../Cargo.toml").await.status,
        StatusCode::NOT_FOUND
    );

    // Sessions survive a restart with the same key, not a key change.
    proxy.restart().await;
    assert_eq!(browser.get("/proxy/policies").await.status, StatusCode::OK);
    proxy.set_env(
        "MCP_PROXY_DASHBOARD_SIGNING_KEY",
        "console-signing-key-two-0123456789abcdef",
    );
    proxy.restart().await;
    let after = browser.get("/proxy/policies").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/proxy/login");

    // Logout clears the cookie (and needs the CSRF token too).
    browser.login().await;
    let out = browser.submit("/proxy/audit", "/proxy/logout", &[]).await;
    assert_eq!(out.location(), "/proxy/login");
    assert!(out.header("set-cookie")[0].contains("Max-Age=0"));

    // Guessing is rate-limited per client address.
    let mut limited = false;
    for _ in 0..12 {
        let guess = browser
            .post("/proxy/login", &[("password", "guess guess guess")])
            .await;
        if guess.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(!guess.header("retry-after").is_empty());
            limited = true;
            break;
        }
        assert_eq!(guess.status, StatusCode::UNAUTHORIZED);
    }
    assert!(limited, "12 attempts within a minute are not all answered");
}

#[tokio::test]
async fn console_joins_a_broker_and_manages_agents_whose_keys_work() {
    let broker = broker(Store::Sqlite).await;
    let proxy = TestProxy::start(&[("MCP_PROXY_DASHBOARD_SIGNING_KEY", SIGNING_KEY)]).await;
    let mut browser = Browser::new(&proxy);
    browser.register().await;
    browser.login().await;

    // The wizard: connection test (htmx fragment and plain form), then join.
    let setup = browser.get("/proxy/setup").await;
    assert!(setup.body.contains(r#"id="setup-form""#), "{}", setup.body);
    let csrf = setup.csrf();
    let ok = browser
        .send(
            browser
                .http
                .post(format!("{}/proxy/setup/test-connection", browser.base))
                .header("HX-Request", "true")
                .form(&[("broker_url", broker.base.as_str()), ("csrf_token", &csrf)]),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(
        ok.body.starts_with(r#"<div id="test-result""#),
        "a fragment: {}",
        ok.body
    );
    assert!(ok.body.contains(r#"data-result="ok""#), "{}", ok.body);
    let refused = browser
        .post(
            "/proxy/setup/test-connection",
            &[("broker_url", "http://127.0.0.1:1"), ("csrf_token", &csrf)],
        )
        .await;
    assert!(
        refused.body.contains("<html"),
        "without htmx: the whole page"
    );
    assert!(
        refused.body.contains(r#"data-result="error""#),
        "{}",
        refused.body
    );

    let invite = invite(&broker, "alpha").await;
    let joined = browser
        .post(
            "/proxy/setup",
            &[
                ("broker_url", broker.base.as_str()),
                ("invite_token", &invite),
                ("org_id", "alpha"),
                ("display_name", "Alpha Org"),
                ("contact_email", "ops@alpha.example"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    assert_eq!(joined.location(), "/proxy/agents?ok=joined");
    let agents = browser.get("/proxy/agents").await;
    assert!(
        agents.body.contains(r#"data-status="pending""#),
        "{}",
        agents.body
    );
    let (status, body) = broker
        .admin(Method::POST, "/v1/admin/orgs/alpha/approve", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let banner = browser.get("/proxy/org-status").await;
    assert!(
        banner.body.contains(r#"data-status="active""#),
        "{}",
        banner.body
    );
    assert_eq!(browser.get("/proxy/").await.location(), "/proxy/agents");

    // Create through the form; the display name is text, never markup.
    let evil = "<script>alert(1)</script>";
    let created = browser
        .submit(
            "/proxy/agents",
            "/proxy/agents",
            &[
                ("agent_name", "Buyer"),
                ("display_name", evil),
                ("capabilities", "procurement.read, procurement.write"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let key = between(&created.body, r#"id="new-api-key" class="mono">"#, "<")
        .unwrap_or_else(|| panic!("no key shown:\n{}", created.body));
    assert!(key.starts_with("sk_local_buyer_"), "{key}");
    assert!(created.body.contains(r#"data-copy="new-api-key""#));
    assert!(!created.body.contains(evil));
    assert!(created
        .body
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let listed = browser.get("/proxy/agents").await;
    assert!(!listed.body.contains(&key), "the key is shown once");
    assert!(listed.body.contains("&lt;script&gt;") && !listed.body.contains(evil));

    let sessions = |key: String| {
        let request = proxy.egress(Method::GET, "/v1/egress/sessions", &key);
        async move { call(request).await }
    };
    let (status, body) = sessions(key.clone()).await;
    assert_eq!(status, StatusCode::OK, "the shown key works: {body}");

    // The detail page: snippets, audit, and the buttons the browser tests press.
    let detail = browser.get("/proxy/agents/buyer").await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.body.contains(&format!("{}/mcp", proxy.base)));
    assert!(detail.body.contains("/v1/egress/sessions"));
    assert!(detail.body.contains("agent.create"), "recent audit rows");
    for label in ["Rotate key", "Rotate cert", "Disable", "Delete"] {
        assert!(
            detail.body.contains(&format!(">{label}</button>")),
            "{label}"
        );
    }
    assert!(!detail.body.contains(evil));

    // Rotate key: no CSRF → nothing; with it → the new key works and the old one does not.
    let forged = browser.post("/proxy/agents/buyer/rotate-key", &[]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        sessions(key.clone()).await.0,
        StatusCode::OK,
        "still the old key"
    );
    let rotated = browser
        .submit("/proxy/agents/buyer", "/proxy/agents/buyer/rotate-key", &[])
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_key = between(&rotated.body, r#"id="new-api-key" class="mono">"#, "<").unwrap();
    assert_ne!(new_key, key);
    assert!(
        rotated.body.contains(&format!("Bearer {new_key}")),
        "the MCP snippet carries it"
    );
    assert_eq!(sessions(key.clone()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(sessions(new_key.clone()).await.0, StatusCode::OK);

    // Rotate cert, then disable: the key stops working.
    let cert = browser
        .submit(
            "/proxy/agents/buyer",
            "/proxy/agents/buyer/rotate-cert",
            &[],
        )
        .await;
    assert_eq!(
        cert.location(),
        "/proxy/agents/buyer?ok=cert_rotated",
        "{}",
        cert.body
    );
    assert_eq!(
        sessions(new_key.clone()).await.0,
        StatusCode::OK,
        "works with the new cert"
    );
    let disabled = browser
        .submit("/proxy/agents/buyer", "/proxy/agents/buyer/disable", &[])
        .await;
    assert_eq!(
        disabled.location(),
        "/proxy/agents/buyer?ok=disabled",
        "{}",
        disabled.body
    );
    assert_eq!(sessions(new_key.clone()).await.0, StatusCode::UNAUTHORIZED);
    let page = browser.get(disabled.location()).await;
    assert!(page.body.contains("revoked at the broker"));
    assert!(
        !page.body.contains(">Rotate key</button>"),
        "a disabled agent only deletes"
    );
    let rows = audit(&proxy).await;
    assert!(has_action(&rows, "admin", "agent.deactivate", "success"));

    // Delete, and a bad name is a clear 400 that creates nothing.
    let deleted = browser
        .submit("/proxy/agents/buyer", "/proxy/agents/buyer/delete", &[])
        .await;
    assert_eq!(
        deleted.location(),
        "/proxy/agents?ok=deleted",
        "{}",
        deleted.body
    );
    let list = browser.get(deleted.location()).await;
    assert!(
        !list.body.contains(r#"data-agent="buyer""#),
        "{}",
        list.body
    );
    let bad = browser
        .submit("/proxy/agents", "/proxy/agents", &[("agent_name", "../x")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(
        browser.get("/proxy/agents/nobody").await.status,
        StatusCode::NOT_FOUND
    );

    // Broker health shows the live probe.
    let health = browser.get("/proxy/health").await;
    assert!(health.body.contains(&broker.base), "{}", health.body);
    assert!(
        health
            .body
            .contains(r#"<td id="broker-probe" colspan="2"><span class="badge good">ok</span>"#),
        "{}",
        health.body
    );
}
