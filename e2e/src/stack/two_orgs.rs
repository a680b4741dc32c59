//! The whole system as an operator and two organisation admins bring it up: one broker, one
//! proxy per organisation, each org onboarded by invite through its own proxy (the proxy's PDP
//! webhook registered at join), approved by the operator, and agents created by the proxies.
//! Used by the demo and the full-stack scenario.

use super::proxy::TestProxy;
use super::{Options, Store, TestBroker};
use crate::egress::EgressClient;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A broker and the proxies of `alpha` and `beta`.
pub struct TwoOrgs {
    pub broker: TestBroker,
    pub alpha: TestProxy,
    pub beta: TestProxy,
}

impl TwoOrgs {
    /// Starts the broker on `store` (webhook PDPs on loopback allowed) and two proxies.
    pub async fn start(store: Store, options: Options) -> TwoOrgs {
        TwoOrgs::start_with_proxies(store, options, &[], &[]).await
    }

    /// As [`TwoOrgs::start`], with extra settings for alpha's and beta's proxies.
    pub async fn start_with_proxies(
        store: Store,
        options: Options,
        alpha_env: &[(&str, &str)],
        beta_env: &[(&str, &str)],
    ) -> TwoOrgs {
        let broker = TestBroker::start_with(
            store,
            options.env("POLICY_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
        )
        .await;
        TwoOrgs {
            broker,
            alpha: TestProxy::start(alpha_env).await,
            beta: TestProxy::start(beta_env).await,
        }
    }

    /// A fresh invite token from the operator.
    pub async fn invite(&self, label: &str) -> String {
        let (status, invite) = self
            .broker
            .admin(
                Method::POST,
                "/v1/admin/invites",
                Some(json!({"label": label, "ttl_hours": 1})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{invite}");
        invite["token"].as_str().expect("invite token").to_owned()
    }

    /// Invite → `org join` on the org's proxy → operator approval.
    pub async fn onboard(&self, proxy: &TestProxy, org_id: &str) {
        let invite = self.invite(org_id).await;
        let joined = proxy.join(&self.broker.base, &invite, org_id).await;
        assert!(
            joined.success,
            "org join {org_id}: {}\n{}",
            joined.stdout, joined.stderr
        );
        self.approve(org_id).await;
    }

    pub async fn approve(&self, org_id: &str) {
        let (status, body) = self
            .broker
            .admin(
                Method::POST,
                &format!("/v1/admin/orgs/{org_id}/approve"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Creates an agent on `proxy` and returns its egress client (API key).
    pub async fn agent(
        &self,
        proxy: &TestProxy,
        name: &str,
        capabilities: &[&str],
    ) -> (String, EgressClient) {
        let (agent_id, api_key) = proxy.create_agent(name, capabilities).await;
        (agent_id, EgressClient::new(&proxy.base, &api_key))
    }

    /// Onboards both orgs, creates `alpha::buyer` and `beta::seller` with `capabilities`, and
    /// has the buyer open a session that the seller accepts.
    pub async fn accepted_session(&self, capabilities: &[&str]) -> Session {
        self.onboard(&self.alpha, "alpha").await;
        self.onboard(&self.beta, "beta").await;
        let (buyer_id, buyer) = self.agent(&self.alpha, "buyer", capabilities).await;
        let (seller_id, seller) = self.agent(&self.beta, "seller", capabilities).await;
        let (status, opened) = buyer.open_session(&seller_id, "beta", capabilities).await;
        assert_eq!(status, StatusCode::OK, "{opened}");
        let session_id = opened["session_id"]
            .as_str()
            .expect("session_id")
            .to_owned();
        let (status, body) = seller.accept(&session_id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        Session {
            buyer_id,
            buyer,
            seller_id,
            seller,
            session_id,
        }
    }

    /// The ciphertext rows the broker stores for `session_id` (read straight from its
    /// database: what an operator with full access to the broker can see).
    pub async fn stored_payloads(&self, session_id: &str) -> Vec<Value> {
        self.broker.stored_payloads(session_id).await
    }
}

/// An accepted session between `alpha::buyer` and `beta::seller` ([`TwoOrgs::accepted_session`]).
pub struct Session {
    pub buyer_id: String,
    pub buyer: EgressClient,
    pub seller_id: String,
    pub seller: EgressClient,
    pub session_id: String,
}
