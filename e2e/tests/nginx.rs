//! The nginx TLS front (`nginx-compat/nginx.conf`, `generate_tls_cert.sh`) in front of the real
//! broker: onboarding, DPoP login, authenticated calls and a WebSocket session all through
//! `https://localhost:<port>`, the HTTP→HTTPS redirect, the body-size limit, and the diagnosis a
//! wrong URL gets (401 `Invalid DPoP proof: htu mismatch` plus the broker's log hint).
//! Needs the Debian `nginx` package (`apt-get install -y nginx`; `.ci/run` installs it).

mod support;

use cullis_e2e::messaging;
use cullis_e2e::setup::BrokerApi;
use cullis_e2e::stack::broker::ADMIN_SECRET;
use cullis_e2e::stack::{Options, Store, TestBroker};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::{free_port, render_site, repo, run_script, scratch, NginxFront, Render};
use tokio_tungstenite::tungstenite::Message;

/// The broker behind a real nginx, and a client that trusts the dev CA.
struct Front {
    broker: TestBroker,
    _nginx: NginxFront,
    api: BrokerApi,
    public: String,
    https_port: u16,
    http_port: u16,
    certs: std::path::PathBuf,
    webroot: std::path::PathBuf,
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.certs);
        let _ = std::fs::remove_dir_all(&self.webroot);
    }
}

async fn start_front() -> Front {
    support::nginx_binary();
    let certs = scratch("tls");
    let (code, _, stderr) = run_script(
        "nginx-compat/generate_tls_cert.sh",
        &["--out", certs.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "generate_tls_cert.sh: {stderr}");
    let (https_port, http_port) = (free_port(), free_port());
    let public = format!("https://localhost:{https_port}");
    let broker = TestBroker::start_with(
        Store::Sqlite,
        Options::default()
            .env("BROKER_PUBLIC_URL", &public)
            .env("FORWARDED_ALLOW_IPS", "127.0.0.1")
            .env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
    )
    .await;
    let upstream = broker.base.trim_start_matches("http://").to_owned();
    let template = std::fs::read_to_string(repo().join("nginx-compat/nginx.conf")).unwrap();
    let webroot = scratch("acme-webroot");
    let site = render_site(
        &template,
        &Render {
            upstream: &upstream,
            https_port,
            http_port,
            cert_dir: &certs,
            webroot: &webroot,
        },
    );
    let nginx = NginxFront::start(&site, https_port);
    let http = support::https_client(&certs.join("ca.pem"));
    Front {
        api: BrokerApi::with_client(&public, ADMIN_SECRET, http),
        broker,
        _nginx: nginx,
        public,
        https_port,
        http_port,
        certs,
        webroot,
    }
}

/// A WebSocket over TLS to nginx, trusting the dev CA.
async fn wss_connect(
    front: &Front,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", front.https_port))
        .await
        .unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(support::rustls_config(&front.certs.join("ca.pem")));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS to nginx");
    let url = format!("wss://localhost:{}/v1/broker/ws", front.https_port);
    let (socket, response) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WebSocket upgrade through nginx");
    assert_eq!(response.status(), 101);
    socket
}

async fn next_json<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn broker_behind_nginx_login_calls_websocket_redirect_and_limits() {
    let front = start_front().await;
    let api = &front.api;

    // Health through TLS, with the security headers nginx adds.
    let health = api.http.get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(health.headers()["x-frame-options"], "DENY");
    let ready = api.http.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    // Onboarding (admin secret, org credentials) and DPoP logins, all through nginx.
    let acme = api
        .onboard_with_webhook("acme", Some(&messaging::pdp("allow").await))
        .await;
    let globex = api
        .onboard_with_webhook("globex", Some(&messaging::pdp("allow").await))
        .await;
    let buyer = api.register_agent(&acme, "buyer", &["order.place"]).await;
    let seller = api
        .register_agent(&globex, "seller", &["order.place"])
        .await;
    let buyer_session = buyer.login(&front.public, &api.http).await.unwrap();
    let seller_session = seller.login(&front.public, &api.http).await.unwrap();

    // An authenticated call: the DPoP htu is https://localhost:<port>/..., as BROKER_PUBLIC_URL.
    let (status, found) = buyer_session
        .call(
            Method::GET,
            "/v1/registry/agents/search?capability=order.place",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert!(found.to_string().contains("globex::seller"), "{found}");

    // A WebSocket through nginx: first-frame auth with htu https://localhost:<port>/v1/broker/ws,
    // then a push when the buyer opens a session to the seller.
    let mut seller_ws = wss_connect(&front).await;
    let frame = cullis_e2e::ws::auth_frame(&seller_session, &front.public);
    seller_ws
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    let ok = next_json(&mut seller_ws).await;
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    let open = json!({"target_agent_id": "globex::seller", "target_org_id": "globex", "requested_capabilities": ["order.place"]});
    let (status, created) = buyer_session
        .call(Method::POST, "/v1/broker/sessions", Some(open))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let pending = next_json(&mut seller_ws).await;
    assert_eq!(pending["type"], "session_pending", "{pending}");
    assert_eq!(pending["session_id"], created["session_id"], "{pending}");

    // Plain HTTP is redirected to the HTTPS listener, path and query kept.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = plain
        .get(format!(
            "http://localhost:{}/v1/registry/agents?x=1",
            front.http_port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        redirect.headers()["location"],
        format!(
            "https://localhost:{}/v1/registry/agents?x=1",
            front.https_port
        )
        .as_str()
    );
    // ... except /healthz, for load balancers and the container health check.
    let plain_health = plain
        .get(format!("http://localhost:{}/healthz", front.http_port))
        .send()
        .await
        .unwrap();
    assert_eq!(plain_health.status(), StatusCode::OK);

    // A body over 2 MiB never reaches the broker: nginx answers 413 with a JSON detail.
    let big = vec![b'x'; 3 * 1024 * 1024];
    let too_large = api
        .http
        .post(api.url("/v1/onboarding/join"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let detail: Value = too_large.json().await.unwrap();
    assert_eq!(
        detail["detail"],
        "Request body too large (the TLS front accepts at most 2 MiB)"
    );

    // TLS 1.2 is accepted as well as 1.3.
    let tls12 = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(front.certs.join("ca.pem")).unwrap())
                .unwrap(),
        )
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    let over_12 = tls12.get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(over_12.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_url_gets_the_htu_mismatch_diagnosis() {
    let front = start_front().await;
    let org = front.api.onboard("acme").await;
    let agent = front.api.register_agent(&org, "buyer", &["x"]).await;

    // The classic misconfiguration (reference §10 item 9): a client talks to the broker at
    // http://127.0.0.1:<port> while BROKER_PUBLIC_URL says https://localhost:<nginx port>.
    let direct = reqwest::Client::new();
    let Err((status, body)) = agent.login(&front.broker.base, &direct).await else {
        panic!("a login signed for the wrong URL is refused");
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["detail"], "Invalid DPoP proof: htu mismatch");

    // The broker's log names the cure.
    let mut log = String::new();
    for _ in 0..50 {
        log = front.broker.stderr();
        if log.contains("htu mismatch") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        log.contains("DPoP htu mismatch — if clients reach the broker through a proxy, set BROKER_PUBLIC_URL to the URL they use"),
        "{log}"
    );
    assert!(
        log.contains(&front.public),
        "expected htu in the log: {log}"
    );

    // The same agent through the URL the broker advertises logs in.
    assert!(agent.login(&front.public, &front.api.http).await.is_ok());
}

#[test]
fn generated_leaf_is_not_a_ca_and_covers_the_names() {
    let out = scratch("tls-names");
    let (code, stdout, stderr) = run_script(
        "nginx-compat/generate_tls_cert.sh",
        &[
            "--out",
            out.to_str().unwrap(),
            "--name",
            "broker.example.test",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("DNS:broker.example.test,DNS:localhost,IP:127.0.0.1"),
        "{stdout}"
    );
    let text = openssl_text(&out.join("server.pem"));
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert_eq!(mode(&out.join("server-key.pem")), 0o600);
    // Idempotent: a second run keeps the files.
    let before = std::fs::read(out.join("server.pem")).unwrap();
    let (code, stdout, _) = run_script(
        "nginx-compat/generate_tls_cert.sh",
        &["--out", out.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("already present"), "{stdout}");
    assert_eq!(before, std::fs::read(out.join("server.pem")).unwrap());
    let _ = std::fs::remove_dir_all(out);
}

fn openssl_text(cert: &Path) -> String {
    let output = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
