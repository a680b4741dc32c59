//! The org admin's console (`/proxy`) in a real browser, with the operator's console on the
//! other side: an org joins through its proxy's setup wizard, the operator approves it in
//! `/dashboard`, the proxy's banner turns active, and an agent created in the proxy console
//! works against `/v1/egress/*` with the key the page showed once.

use cullis_e2e::browser::Browser;
use cullis_e2e::egress::EgressClient;
use cullis_e2e::stack::broker::ADMIN_SECRET;
use cullis_e2e::stack::proxy::TestProxy;
use cullis_e2e::stack::{Store, TestBroker};
use reqwest::StatusCode;

const CONSOLE_PASSWORD: &str = "proxy-console-password";

#[tokio::test]
async fn an_org_joins_in_its_console_is_approved_by_the_operator_and_its_new_agent_works() {
    let broker = TestBroker::start(Store::Sqlite).await;
    let proxy = TestProxy::start(&[]).await;
    let browser = Browser::start().await;

    // The operator issues an invite in the broker's console; the token is shown once.
    browser
        .goto(&format!("{}/dashboard/login", broker.api.base))
        .await;
    browser.fill("form#login", "user_id", "admin").await;
    browser.fill("form#login", "password", ADMIN_SECRET).await;
    browser.press("form#login", "Log in").await;
    // The click returns before the login's navigation ends: going on at once races it (a
    // loaded machine showed the overview the login redirected to instead of the orgs page).
    browser.wait_for("#count-agents").await;
    browser
        .goto(&format!("{}/dashboard/orgs", broker.api.base))
        .await;
    browser.fill("form#generate-invite", "label", "acme").await;
    browser
        .press("form#generate-invite", "Generate invite")
        .await;
    let invite_token = browser.text("pre#new-invite-token").await;
    assert!(invite_token.len() >= 40, "{invite_token}");
    browser
        .goto(&format!("{}/dashboard/orgs", broker.api.base))
        .await;
    assert!(
        !browser.source().await.contains(&invite_token),
        "the token is not shown again"
    );

    // First visit: set the console password, log in, land on the setup wizard.
    browser.goto(&proxy.url("/proxy/")).await;
    assert_eq!(browser.current_path().await, "/proxy/register");
    browser
        .fill("form#register-form", "password", CONSOLE_PASSWORD)
        .await;
    browser
        .fill("form#register-form", "confirm_password", CONSOLE_PASSWORD)
        .await;
    browser.click("button#register").await;
    browser
        .fill("form#login-form", "password", CONSOLE_PASSWORD)
        .await;
    browser.click("button#login").await;
    browser.wait_for("form#setup-form").await;

    // Join with the invite (test the connection first).
    browser
        .fill("form#setup-form", "broker_url", &broker.api.base)
        .await;
    browser.click("button#test-connection").await;
    browser
        .wait_for_attr("#test-result", "data-result", "ok")
        .await;
    browser
        .fill("form#setup-form", "invite_token", &invite_token)
        .await;
    browser.fill("form#setup-form", "org_id", "acme").await;
    browser
        .fill("form#setup-form", "display_name", "Acme Corp")
        .await;
    browser
        .fill("form#setup-form", "contact_email", "ops@acme.example")
        .await;
    browser.screenshot("proxy-setup").await;
    browser.click("button#join").await;
    browser
        .wait_for_attr("#org-status [data-status]", "data-status", "pending")
        .await;

    // The operator approves in the broker's console (same browser, another cookie path).
    browser
        .goto(&format!("{}/dashboard/orgs", broker.api.base))
        .await;
    browser.wait_for_text("#pending-orgs", "acme").await;
    browser.press("#pending-orgs", "Approve").await;
    browser
        .wait_for_text("main", "Organization 'acme' approved.")
        .await;

    // Back in the proxy console the banner says active.
    browser.goto(&proxy.url("/proxy/agents")).await;
    browser.wait_for("#org-status [data-status='active']").await;

    // Create an agent; the key is shown once and works on the egress API.
    browser
        .fill("form#create-agent", "agent_name", "buyer")
        .await;
    browser
        .fill("form#create-agent", "display_name", "Buyer")
        .await;
    browser
        .fill("form#create-agent", "capabilities", "procurement.read")
        .await;
    browser.click("button#create-agent-submit").await;
    let api_key = browser.text("code#new-api-key").await;
    assert!(!api_key.is_empty());
    browser.screenshot("proxy-agents").await;
    let agent = EgressClient::new(&proxy.base, &api_key);
    let (status, body) = agent.sessions(None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the key from the page works: {body}"
    );
    let (status, found) = agent.discover(&["procurement.read"]).await;
    assert_eq!(status, StatusCode::OK, "{found}");

    // Its detail page has the integration snippets, with the proxy's URL.
    browser.click("#agents tr[data-agent='buyer'] a").await;
    let curl = browser.text("pre#snippet-curl").await;
    assert!(curl.contains(&proxy.base), "{curl}");
    browser.screenshot("proxy-agent-detail").await;

    // The other pages of the console.
    for (page, name) in [
        ("/proxy/policies", "proxy-policies"),
        ("/proxy/audit", "proxy-audit"),
        ("/proxy/health", "proxy-health"),
    ] {
        browser.goto(&proxy.url(page)).await;
        browser.wait_for("#org-status").await;
        browser.screenshot(name).await;
    }

    // A wrong key is refused: the page's key is the only one.
    let stranger = EgressClient::new(&proxy.base, "sk_local_buyer_not-the-key");
    let (status, _) = stranger.sessions(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
