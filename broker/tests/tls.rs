//! The native TLS listener (`--tls-cert/--tls-key`): HTTPS with a certificate the client
//! verifies (no verification shortcuts), and the whole login over it.

mod common;

use common::{BrokerApi, Options, Store, TestBroker, ADMIN_SECRET};
use cullis_e2e::stack::tls::ServerCert;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn login_and_calls_work_over_verified_https() {
    let dir = std::env::temp_dir().join(format!("cullis-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = ServerCert::localhost(&dir);
    let options = cert.broker_options(Options::default());
    let broker = TestBroker::start_with(Store::Sqlite, options).await;
    assert!(broker.base.starts_with("https://"), "{}", broker.base);

    // A client that does not trust the certificate is refused.
    assert!(reqwest::get(broker.url("/health")).await.is_err());

    let api = BrokerApi::with_client(&broker.base, ADMIN_SECRET, cert.trusting_client());
    let (status, _) = api.admin(Method::GET, "/v1/admin/invites", None).await;
    assert_eq!(status, StatusCode::OK);
    let org = api.onboard("acme").await;
    let agent = api.register_agent(&org, "buyer", &["quote"]).await;
    let session = agent
        .login(&api.base, &api.http)
        .await
        .expect("login over https");
    let (status, body) = session.call(Method::GET, "/v1/registry/agents", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}
