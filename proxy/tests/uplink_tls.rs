//! The uplink against a broker serving TLS with a self-signed certificate: refused by default,
//! accepted with the certificate as CA bundle (REST and WebSocket, full DPoP login over TLS),
//! and accepted with `insecure_tls`.

mod uplink_common;

use cullis_e2e::stack::tls::ServerCert;
use cullis_e2e::stack::{Options, Store};
use cullis_proxy::uplink::{Uplink, UplinkConfig, UplinkError};
use uplink_common::*;

#[tokio::test]
async fn self_signed_broker_refused_unless_trusted() {
    let dir = std::env::temp_dir().join(format!("cullis-uplink-tls-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = ServerCert::localhost(&dir);
    let broker = broker_with(Store::Sqlite, cert.broker_options(Options::default())).await;
    assert!(broker.base.starts_with("https://"), "{}", broker.base);
    // The harness's own client must trust the certificate too.
    let api = cullis_e2e::setup::BrokerApi::with_client(
        &broker.base,
        cullis_e2e::stack::broker::ADMIN_SECRET,
        cert.trusting_client(),
    );

    // Default: verification against the system roots refuses the self-signed certificate.
    let default = Uplink::new(UplinkConfig::new(&broker.base)).unwrap();
    match default.healthz().await {
        Err(UplinkError::Unreachable(detail)) => assert!(!detail.is_empty()),
        other => panic!("self-signed broker accepted by default: {other:?}"),
    }

    // Trusted through the CA bundle: the whole agent flow, REST and push.
    let mut config = UplinkConfig::new(&broker.base);
    config.ca_bundle = Some(cert.cert_path.clone());
    let trusted = Uplink::new(config).unwrap();
    trusted.healthz().await.unwrap();
    let alpha = api
        .onboard_with_webhook("alpha", Some(&cullis_e2e::messaging::pdp("allow").await))
        .await;
    let buyer = provision(&trusted, &alpha, "buyer").await;
    let found = trusted.discover(&buyer, &caps(), None).await.unwrap();
    assert!(found.is_empty(), "no other org yet: {found:?}");
    let _events = trusted
        .subscribe(&buyer)
        .await
        .expect("wss with the CA bundle");

    // Insecure (dev only): accepted without verification.
    let mut config = UplinkConfig::new(&broker.base);
    config.insecure_tls = true;
    let insecure = Uplink::new(config).unwrap();
    insecure.healthz().await.unwrap();
    insecure.discover(&buyer, &caps(), None).await.unwrap();
    insecure.subscribe(&buyer).await.expect("wss, insecure");

    // A bundle that is not PEM is a configuration error.
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let mut config = UplinkConfig::new(&broker.base);
    config.ca_bundle = Some(junk);
    assert!(matches!(Uplink::new(config), Err(UplinkError::Protocol(_))));
    let _ = std::fs::remove_dir_all(&dir);
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
