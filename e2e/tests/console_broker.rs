//! The operator's console (`/dashboard`) in a real browser: headless Chromium driven over
//! WebDriver against the real broker binary (and a real proxy for the onboarding scenario).
//! Screenshots of the main pages land in `target/screenshots/` (not committed).

use cullis_e2e::browser::Browser;
use cullis_e2e::setup::{BrokerApi, OrgIdentity};
use cullis_e2e::stack::broker::ADMIN_SECRET;
use cullis_e2e::stack::proxy::TestProxy;
use cullis_e2e::stack::{Options, Store, TestBroker};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn admin_login(browser: &Browser, base: &str) {
    browser.goto(&format!("{base}/dashboard")).await;
    assert_eq!(browser.current_path().await, "/dashboard/login");
    browser.fill("form#login", "user_id", "admin").await;
    browser.fill("form#login", "password", ADMIN_SECRET).await;
    browser.press("form#login", "Log in").await;
    browser.wait_for("#count-agents").await;
}

async fn org_login(browser: &Browser, base: &str, org: &OrgIdentity) {
    browser.goto(&format!("{base}/dashboard/login")).await;
    browser.fill("form#login", "user_id", &org.org_id).await;
    browser.fill("form#login", "password", &org.secret).await;
    browser.press("form#login", "Log in").await;
    browser.wait_for("#count-agents").await;
}

/// An org onboarded over the API with one agent that has logged in once (so its certificate
/// is pinned), and that agent's identity.
async fn org_with_agent(
    api: &BrokerApi,
    org_id: &str,
    agent: &str,
) -> (OrgIdentity, cullis_e2e::client::AgentIdentity) {
    let org = api.onboard(org_id).await;
    let identity = api.register_agent(&org, agent, &["procurement.read"]).await;
    identity
        .login(&api.base, &api.http)
        .await
        .expect("first login pins the certificate");
    (org, identity)
}

#[tokio::test]
async fn admin_approves_a_proxy_joined_org_that_appears_live_and_turns_active() {
    let broker = TestBroker::start(Store::Sqlite).await;
    let proxy = TestProxy::start(&[]).await;
    let browser = Browser::start().await;
    admin_login(&browser, &broker.api.base).await;
    browser.screenshot("broker-overview").await;
    browser
        .goto(&format!("{}/dashboard/orgs", broker.api.base))
        .await;
    assert!(browser
        .text("#pending-orgs")
        .await
        .contains("No organisation is waiting"));

    // The org joins through its proxy while the page is open: it appears without a reload.
    let (status, invite) = broker
        .api
        .admin(
            Method::POST,
            "/v1/admin/invites",
            Some(json!({"label": "acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invite}");
    let joined = proxy
        .join(&broker.api.base, invite["token"].as_str().unwrap(), "acme")
        .await;
    assert!(joined.success, "{}\n{}", joined.stdout, joined.stderr);
    browser.wait_for_text("#pending-orgs", "acme").await;
    browser.screenshot("broker-orgs-pending").await;

    browser.press("#pending-orgs", "Approve").await;
    browser
        .wait_for_text("main", "Organization 'acme' approved.")
        .await;
    let row = browser.text("#orgs tr[data-org='acme']").await;
    assert!(row.contains("active"), "{row}");
    let status = proxy.cli_ok(&["org", "status"]).await;
    assert_eq!(status["status"], "active", "{status}");
    let audit = broker.api.audit_events("onboarding.approved").await;
    assert_eq!(audit.len(), 1, "one approval, one audit row: {audit:?}");
}

#[tokio::test]
async fn admin_rotates_one_agent_certificate_and_revokes_another() {
    let broker = TestBroker::start(Store::Sqlite).await;
    let api = &broker.api;
    let (org, buyer) = org_with_agent(api, "gamma", "buyer").await;
    let seller = api
        .register_agent(&org, "seller", &["procurement.read"])
        .await;
    let seller_session = seller
        .login(&api.base, &api.http)
        .await
        .expect("seller login");

    let browser = Browser::start().await;
    admin_login(&browser, &api.base).await;
    browser
        .goto(&format!("{}/dashboard/agents", api.base))
        .await;
    browser.screenshot("broker-agents").await;

    // Rotate the buyer's certificate: paste a new one from the org's CA.
    let rotated = org.agent_identity("buyer");
    browser.click("#agents a[href$='gamma%3A%3Abuyer']").await;
    browser.click("#rotate-cert summary").await;
    browser
        .fill("#rotate-cert form", "new_certificate", &rotated.cert_pem)
        .await;
    browser.press("#rotate-cert", "Rotate certificate").await;
    browser.wait_for_text("main", "Certificate rotated.").await;
    browser.screenshot("broker-agent-detail").await;
    rotated
        .login(&api.base, &api.http)
        .await
        .expect("the new certificate logs in");
    let (status, _) = buyer
        .login(&api.base, &api.http)
        .await
        .err()
        .expect("old cert refused");
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Revoke the seller's certificate: its live token stops working at once.
    browser
        .goto(&format!("{}/dashboard/agents/gamma%3A%3Aseller", api.base))
        .await;
    browser.press("main", "Revoke certificate and tokens").await;
    browser.accept_dialog().await;
    browser
        .wait_for_text("main", "Its tokens are revoked.")
        .await;
    let (status, body) = seller_session
        .call(Method::GET, "/v1/broker/sessions", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(seller.login(&api.base, &api.http).await.is_err());

    // The other pages render for the operator.
    for (page, name) in [
        ("sessions", "broker-sessions"),
        ("policies", "broker-policies"),
        ("rfqs", "broker-rfqs"),
        ("settings", "broker-settings"),
    ] {
        browser
            .goto(&format!("{}/dashboard/{page}", api.base))
            .await;
        browser.wait_for("main h1").await;
        browser.screenshot(name).await;
    }
}

#[tokio::test]
async fn audit_verify_shows_intact_then_the_tampered_entry() {
    let broker = TestBroker::start(Store::Sqlite).await;
    org_with_agent(&broker.api, "gamma", "buyer").await;
    let browser = Browser::start().await;
    admin_login(&browser, &broker.api.base).await;
    browser
        .goto(&format!("{}/dashboard/audit", broker.api.base))
        .await;
    browser
        .press("form#verify-chain", "Verify Hash Chain")
        .await;
    browser
        .wait_for_attr("#verify-result", "data-valid", "true")
        .await;
    browser.screenshot("broker-audit").await;

    let tampered = tamper_audit_row(&broker.database_url).await;
    browser
        .press("form#verify-chain", "Verify Hash Chain")
        .await;
    browser
        .wait_for_attr("#verify-result", "data-valid", "false")
        .await;
    browser
        .wait_for_attr("#verify-result", "data-broken-id", &tampered.to_string())
        .await;
    browser.wait_for_text("#verify-result", "broken").await;
}

/// Rewrites the details of the third audit row, as an intruder with write access to the
/// database file would (dropping the append-only trigger first).
async fn tamper_audit_row(database_url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url).await.unwrap();
    let id = 3i64;
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET details = '{\"tampered\": true}' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    id
}

#[tokio::test]
async fn org_users_see_only_their_own_org_whatever_the_url() {
    let broker = TestBroker::start(Store::Sqlite).await;
    let api = &broker.api;
    let (gamma, _) = org_with_agent(api, "gamma", "buyer").await;
    org_with_agent(api, "delta", "seller").await;
    let browser = Browser::start().await;
    org_login(&browser, &api.base, &gamma).await;

    browser
        .goto(&format!("{}/dashboard/agents", api.base))
        .await;
    let agents = browser.text("#agents").await;
    assert!(
        agents.contains("gamma::buyer") && !agents.contains("delta"),
        "{agents}"
    );
    browser
        .goto(&format!("{}/dashboard/agents/delta%3A%3Aseller", api.base))
        .await;
    assert!(browser.text("#error").await.contains("Agent not found"));
    browser
        .goto(&format!("{}/dashboard/agents?org=delta", api.base))
        .await;
    assert!(!browser.text("#agents").await.contains("delta"));
    browser
        .goto(&format!("{}/dashboard/audit?q=delta", api.base))
        .await;
    assert!(
        !browser.text("main").await.contains("delta::"),
        "another org's audit rows"
    );
    browser.goto(&format!("{}/dashboard/orgs", api.base)).await;
    assert!(browser
        .text("#error")
        .await
        .contains("network administrator"));

    // The export is scoped too (fetched with the browser's cookie, over plain HTTP).
    let cookie = browser
        .client
        .get_named_cookie("atn_session")
        .await
        .expect("session cookie");
    let export = reqwest::Client::new()
        .get(format!("{}/dashboard/audit/export?format=ndjson", api.base))
        .header("cookie", format!("atn_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    let text = export.text().await.unwrap();
    assert!(
        text.contains("\"gamma\"") && !text.contains("\"delta\""),
        "{text}"
    );
}

#[tokio::test]
async fn an_org_named_like_a_script_renders_as_text() {
    let broker = TestBroker::start(Store::Sqlite).await;
    let evil = "<script>alert(1)</script>";
    let (status, body) = broker
        .api
        .admin(
            Method::POST,
            "/v1/registry/orgs",
            Some(json!({"org_id": "evil", "display_name": evil, "secret": "evil-secret-1234"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let browser = Browser::start().await;
    admin_login(&browser, &broker.api.base).await;
    browser
        .goto(&format!("{}/dashboard/orgs", broker.api.base))
        .await;
    let row = browser.text("#orgs tr[data-org='evil']").await;
    assert!(row.contains(evil), "shown as text: {row}");
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "no script ran"
    );
    assert!(browser
        .source()
        .await
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[tokio::test]
async fn a_new_signing_key_logs_everyone_out() {
    let mut broker = TestBroker::start_with(
        Store::Sqlite,
        Options::default().env(
            "DASHBOARD_SIGNING_KEY",
            "first-signing-key-0123456789abcdef",
        ),
    )
    .await;
    let browser = Browser::start().await;
    admin_login(&browser, &broker.api.base).await;
    broker.set_env(
        "DASHBOARD_SIGNING_KEY",
        "second-signing-key-0123456789abcdef",
    );
    broker.restart().await;
    browser
        .goto(&format!("{}/dashboard/agents", broker.api.base))
        .await;
    assert_eq!(browser.current_path().await, "/dashboard/login");
}

/// The form checks no browser can skip, over plain HTTP with the session cookie.
mod http {
    use super::*;

    /// Logs in as admin; returns the cookie header and the session's CSRF token.
    async fn login(base: &str, http: &reqwest::Client) -> (String, String) {
        let response = http
            .post(format!("{base}/dashboard/login"))
            .form(&[("user_id", "admin"), ("password", ADMIN_SECRET)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
        assert!(
            !set_cookie.contains("Secure"),
            "http public URL: no Secure flag"
        );
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let page = http
            .get(format!("{base}/dashboard/orgs"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = page
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a csrf field on the page")
            .to_owned();
        (cookie, csrf)
    }

    /// POSTs `form` to `url` with the session cookie, if any (redirects are not followed).
    async fn post(
        http: &reqwest::Client,
        url: String,
        cookie: Option<&str>,
        form: Vec<(&str, String)>,
    ) -> reqwest::Response {
        let mut request = http.post(url).form(&form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    /// Where a post/redirect/get action sends the browser.
    fn location(response: &reqwest::Response) -> &str {
        response.headers()["location"].to_str().unwrap()
    }

    fn no_redirects() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
        let broker = TestBroker::start(Store::Sqlite).await;
        let org = OrgIdentity::new("pending-co");
        let (status, invite) = broker
            .api
            .admin(
                Method::POST,
                "/v1/admin/invites",
                Some(json!({"label": "p"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = broker
            .api
            .join(&org, invite["token"].as_str().unwrap())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let http = no_redirects();
        let (cookie, csrf) = login(&broker.api.base, &http).await;
        let approve = format!("{}/dashboard/orgs/pending-co/approve", broker.api.base);
        for form in [vec![], vec![("csrf_token", "0".repeat(32))]] {
            let response = http
                .post(&approve)
                .header("cookie", &cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            assert!(response
                .text()
                .await
                .unwrap()
                .contains("Invalid CSRF token"));
        }
        let (_, pending) = broker
            .api
            .admin(Method::GET, "/v1/admin/orgs/pending", None)
            .await;
        assert_eq!(
            pending[0]["org_id"], "pending-co",
            "still pending: {pending}"
        );
        assert!(broker
            .api
            .audit_events("onboarding.approved")
            .await
            .is_empty());

        // With the token it goes through.
        let response = http
            .post(&approve)
            .header("cookie", &cookie)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let (_, pending) = broker
            .api
            .admin(Method::GET, "/v1/admin/orgs/pending", None)
            .await;
        assert_eq!(pending, json!([]));
    }

    #[tokio::test]
    async fn only_a_registration_that_never_became_a_member_can_be_deleted() {
        let broker = TestBroker::start(Store::Sqlite).await;
        let base = &broker.api.base;
        let (status, invite) = broker
            .api
            .admin(
                Method::POST,
                "/v1/admin/invites",
                Some(json!({"label": "p"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let spam = OrgIdentity::new("spam-co");
        let (status, _) = broker
            .api
            .join(&spam, invite["token"].as_str().unwrap())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        broker.api.onboard("member-co").await;
        let http = no_redirects();
        let (cookie, csrf) = login(base, &http).await;
        let delete = |org: &str| {
            http.post(format!("{base}/dashboard/orgs/{org}/delete"))
                .header("cookie", &cookie)
                .form(&[("csrf_token", csrf.as_str())])
                .send()
        };
        let refused = delete("member-co").await.unwrap();
        let location = refused.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.contains("error=Only+a+pending"), "{location}");
        let deleted = delete("spam-co").await.unwrap();
        assert!(deleted.headers()["location"]
            .to_str()
            .unwrap()
            .contains("ok="));
        let (status, _) = broker
            .api
            .admin(Method::GET, "/v1/registry/orgs/spam-co", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = broker
            .api
            .admin(Method::GET, "/v1/registry/orgs/member-co", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(broker.api.audit_events("org.deleted").await.len(), 1);
    }

    /// Every page and filter on PostgreSQL (the console's SQL runs on both engines), and the
    /// actions' refusals: each ends in a flash with the API's detail, nothing changed.
    #[tokio::test]
    async fn pages_render_on_postgres_and_refused_actions_say_why() {
        let broker = TestBroker::start(Store::PostgresRedis).await;
        let base = &broker.api.base;
        let api = &broker.api;
        let (org, _) = super::org_with_agent(api, "gamma", "buyer").await;
        let http = no_redirects();
        let (cookie, csrf) = login(base, &http).await;
        for page in [
            "/dashboard",
            "/dashboard?part=cards",
            "/dashboard/orgs?part=all",
            "/dashboard/agents?q=BUY&org=gamma",
            "/dashboard/agents/gamma%3A%3Abuyer",
            "/dashboard/sessions?status=active&org=gamma",
            "/dashboard/policies",
            "/dashboard/rfqs",
            "/dashboard/audit?q=50%25_off",
            "/dashboard/audit?q=registry",
            "/dashboard/settings",
            "/dashboard/badge/pending-orgs",
        ] {
            let response = http
                .get(format!("{base}{page}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{page}");
        }
        let agents = http
            .get(format!("{base}/dashboard/agents?q=BUY"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(agents.contains("gamma::buyer"), "case-insensitive search");

        let act = |path: &str, fields: Vec<(&'static str, String)>| {
            let mut form = vec![("csrf_token", csrf.clone())];
            form.extend(fields);
            post(&http, format!("{base}{path}"), Some(&cookie), form)
        };
        let flash = |response: reqwest::Response| location(&response).to_owned();
        let bad_pem = act(
            "/dashboard/agents/gamma%3A%3Abuyer/rotate-cert",
            vec![("new_certificate", "not a certificate".into())],
        )
        .await;
        assert!(flash(bad_pem).contains("error="));
        let wrong_org = act(
            "/dashboard/agents/gamma%3A%3Abuyer/rotate-cert",
            vec![(
                "new_certificate",
                OrgIdentity::new("other").agent_identity("buyer").cert_pem,
            )],
        )
        .await;
        assert!(flash(wrong_org).contains("error="));
        let taken = act(
            "/dashboard/orgs/onboard",
            vec![
                ("org_id", "gamma".into()),
                ("display_name", "G".into()),
                ("secret", "gamma-secret-2".into()),
            ],
        )
        .await;
        assert!(flash(taken).contains("already+registered"));
        let unknown = act("/dashboard/orgs/nope/approve", vec![]).await;
        assert!(flash(unknown).contains("Organization+not+found"));
        let suspended = act("/dashboard/orgs/gamma/suspend", vec![]).await;
        assert!(flash(suspended).contains("suspended"));
        let (status, _) = api
            .org(&org, Method::GET, "/v1/registry/agents?org_id=gamma", None)
            .await;
        assert_ne!(
            status,
            StatusCode::OK,
            "a suspended org's credentials no longer work"
        );
        let again = act("/dashboard/orgs/gamma/suspend", vec![]).await;
        assert!(flash(again).contains("already+in+state"));
        let reactivated = act("/dashboard/orgs/gamma/approve", vec![]).await;
        assert!(flash(reactivated).contains("approved"));
        let revoked = act("/dashboard/invites/no-such-invite/revoke", vec![]).await;
        assert!(flash(revoked).contains("Invite+not+found"));
        let bad_ttl = act(
            "/dashboard/invites/generate",
            vec![("label", "x".into()), ("ttl_hours", "soon".into())],
        )
        .await;
        assert_eq!(bad_ttl.status(), StatusCode::BAD_REQUEST);
        let mismatch = act(
            "/dashboard/settings/password",
            vec![
                ("new_password", "a-long-console-password".into()),
                ("confirm_password", "a-long-console-passworD".into()),
            ],
        )
        .await;
        assert!(flash(mismatch).contains("differ"));
    }

    #[tokio::test]
    async fn console_logins_are_rate_limited_per_client() {
        let broker = TestBroker::start(Store::Sqlite).await;
        let http = no_redirects();
        let attempt = || {
            http.post(format!("{}/dashboard/login", broker.api.base))
                .form(&[("user_id", "admin"), ("password", "guess")])
                .send()
        };
        for _ in 0..5 {
            assert_eq!(attempt().await.unwrap().status(), StatusCode::OK);
        }
        let limited = attempt().await.unwrap();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(limited.headers().get("set-cookie").is_none());
    }

    #[tokio::test]
    async fn login_failures_and_unauthenticated_requests() {
        let broker = TestBroker::start(Store::Sqlite).await;
        let http = no_redirects();
        let base = &broker.api.base;
        let page = http
            .get(format!("{base}/dashboard/audit"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::SEE_OTHER);
        assert_eq!(page.headers()["location"], "/dashboard/login");
        let post = http
            .post(format!("{base}/dashboard/audit/verify"))
            .form(&[("csrf_token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            post.status(),
            StatusCode::SEE_OTHER,
            "no session: to the login form"
        );
        let sse = http
            .get(format!("{base}/dashboard/sse"))
            .send()
            .await
            .unwrap();
        assert_eq!(sse.status(), StatusCode::SEE_OTHER);
        for (user, password) in [("admin", "wrong"), ("nobody", "x"), ("", "")] {
            let response = http
                .post(format!("{base}/dashboard/login"))
                .form(&[("user_id", user), ("password", password)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.headers().get("set-cookie").is_none());
            assert!(response
                .text()
                .await
                .unwrap()
                .contains("Invalid credentials."));
        }
        let forged = http
            .get(format!("{base}/dashboard"))
            .header("cookie", "atn_session=eyJyb2xlIjoiYWRtaW4ifQ.00")
            .send()
            .await
            .unwrap();
        assert_eq!(
            forged.status(),
            StatusCode::SEE_OTHER,
            "a forged cookie is no session"
        );
    }

    #[tokio::test]
    async fn console_pages_carry_security_headers_and_assets_are_cached() {
        let broker = TestBroker::start(Store::Sqlite).await;
        let http = no_redirects();
        let base = &broker.api.base;
        let login = http
            .get(format!("{base}/dashboard/login"))
            .send()
            .await
            .unwrap();
        let csp = login.headers()["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(login.headers()["x-frame-options"], "DENY");
        assert!(login.headers().contains_key("referrer-policy"));
        let asset = http
            .get(format!("{base}/static/htmx.min.js"))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), StatusCode::OK);
        let etag = asset.headers()["etag"].to_str().unwrap().to_owned();
        assert!(asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"));
        let again = http
            .get(format!("{base}/static/htmx.min.js"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let missing = http
            .get(format!("{base}/static/..%2FCargo.toml"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_console_password_replaces_the_admin_secret_for_the_console_only() {
        let broker = TestBroker::start(Store::Sqlite).await;
        let http = no_redirects();
        let base = &broker.api.base;
        let (cookie, csrf) = login(base, &http).await;
        let change = |password: &'static str| {
            post(
                &http,
                format!("{base}/dashboard/settings/password"),
                Some(&cookie),
                vec![
                    ("csrf_token", csrf.clone()),
                    ("new_password", password.into()),
                    ("confirm_password", password.into()),
                ],
            )
        };
        assert!(location(&change("short").await).contains("error="));
        assert!(location(&change("a-long-console-password").await).contains("ok="));
        let log_in = |password: &'static str| {
            post(
                &http,
                format!("{base}/dashboard/login"),
                None,
                vec![("user_id", "admin".into()), ("password", password.into())],
            )
        };
        assert_eq!(
            log_in(ADMIN_SECRET).await.status(),
            StatusCode::OK,
            "ADMIN_SECRET no longer opens the console"
        );
        assert_eq!(
            log_in("a-long-console-password").await.status(),
            StatusCode::SEE_OTHER
        );
        let (status, _) = broker
            .api
            .admin(Method::GET, "/v1/admin/invites", None)
            .await;
        assert_eq!(status, StatusCode::OK, "the API secret is unchanged");
    }
}
