//! The proxy's own listener: HTTPS with `MCP_PROXY_TLS_CERT`/`MCP_PROXY_TLS_KEY` (verified by a
//! client that trusts only that certificate), the one-line refusal of an unusable certificate,
//! and CORS for the origins in `MCP_PROXY_ALLOWED_ORIGINS` (preflight and actual requests)
//! against the real binary.

use cullis_e2e::stack::proxy::TestProxy;
use cullis_e2e::stack::tls::ServerCert;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let mut proxy = TestProxy::prepare(&[]);
    let cert = ServerCert::localhost(&proxy.dir);
    proxy.use_tls(&cert);
    proxy.spawn().await;

    let health = proxy.http.get(proxy.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/health", proxy.port))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.unwrap().status() != StatusCode::OK,
        "plain HTTP must not be served on the TLS listener"
    );
    // A client that does not trust the certificate refuses the connection.
    let untrusting = reqwest::Client::new()
        .get(format!("https://127.0.0.1:{}/health", proxy.port))
        .send()
        .await;
    assert!(untrusting.is_err(), "verification is on by default");
}

#[tokio::test]
async fn an_unusable_certificate_refuses_start_up_in_one_line() {
    let proxy = TestProxy::prepare(&[]);
    let garbage = proxy.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let garbage = garbage.display().to_string();
    let mut proxy = proxy;
    proxy.set_env("MCP_PROXY_TLS_CERT", &garbage);
    proxy.set_env("MCP_PROXY_TLS_KEY", &garbage);
    let out = proxy.cli(&["serve"]).await;
    assert!(!out.success, "started with a garbage certificate");
    let stderr = out.stderr.trim();
    assert!(
        stderr.starts_with("cullis-proxy: MCP_PROXY_TLS_CERT:") && stderr.contains(&garbage),
        "{stderr}"
    );

    proxy.set_env("MCP_PROXY_TLS_KEY", "/nonexistent/key.pem");
    let out = proxy.cli(&["serve"]).await;
    assert!(
        !out.success
            && out
                .stderr
                .contains("MCP_PROXY_TLS_KEY: cannot read /nonexistent/key.pem"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let proxy = TestProxy::start(&[(
        "MCP_PROXY_ALLOWED_ORIGINS",
        "https://app.example,https://ops.example",
    )])
    .await;
    let preflight = |origin: &str| {
        proxy
            .http
            .request(Method::OPTIONS, proxy.url("/v1/egress/send"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "x-api-key, content-type")
            .send()
    };
    let allowed = preflight("https://ops.example").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some("https://ops.example")
    );
    assert_eq!(
        header(&allowed, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let allowed_headers = header(&allowed, "access-control-allow-headers").unwrap();
    assert!(allowed_headers.contains("X-API-Key"), "{allowed_headers}");

    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["detail"], "Disallowed CORS origin");

    // Actual requests: the listed origin is named, another gets no CORS header, and an error
    // answer (401 without a key) carries the header too so the page can read the detail.
    let get = |origin: &str| {
        proxy
            .http
            .get(proxy.url("/v1/egress/sessions"))
            .header("Origin", origin)
            .send()
    };
    let listed = get("https://app.example").await.unwrap();
    assert_eq!(listed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&listed, "access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    assert_eq!(header(&listed, "vary").as_deref(), Some("Origin"));
    let other = get("https://evil.example").await.unwrap();
    assert_eq!(header(&other, "access-control-allow-origin"), None);

    // Without the setting there is no CORS at all: OPTIONS is just a method not allowed.
    let plain = TestProxy::start(&[]).await;
    let response = plain
        .http
        .request(Method::OPTIONS, plain.url("/v1/egress/send"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
}
