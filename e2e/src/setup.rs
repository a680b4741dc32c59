//! Onboarding as an operator and an organisation admin do it, over the wire: invites, join,
//! approval, agent registration and bindings. Used by tests, the demo and the load harness.

use crate::client::AgentIdentity;
use cullis_shared::keys::{KeyType, PrivateKey};
use cullis_shared::pki::OrgCa;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};

/// SPIFFE trust domain the fixtures issue certificates in.
pub const TRUST_DOMAIN: &str = "atn.local";

/// A broker as seen from outside: its URL and the admin secret.
#[derive(Debug, Clone)]
pub struct BrokerApi {
    pub base: String,
    pub admin_secret: String,
    pub http: Client,
}

/// Status and JSON body (Null when the body is empty or not JSON).
pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An organisation as its admin holds it: id, secret and CA.
pub struct OrgIdentity {
    pub org_id: String,
    pub secret: String,
    pub ca: OrgCa,
}

impl OrgIdentity {
    /// A new org with a fresh P-384 CA and a random secret.
    pub fn new(org_id: &str) -> OrgIdentity {
        OrgIdentity {
            org_id: org_id.into(),
            secret: format!("{org_id}-secret-{}", uuid::Uuid::new_v4().simple()),
            ca: OrgCa::generate(org_id, KeyType::EcP384, 365).expect("org CA generation"),
        }
    }

    /// A fresh P-256 key and a certificate for `<org>::<name>` from this org's CA.
    pub fn agent_identity(&self, name: &str) -> AgentIdentity {
        self.agent_identity_with(name, KeyType::EcP256)
    }

    /// A fresh key of `key_type` and a certificate for `<org>::<name>` from this org's CA.
    pub fn agent_identity_with(&self, name: &str, key_type: KeyType) -> AgentIdentity {
        let key = PrivateKey::generate(key_type).expect("key generation");
        let cert = self
            .ca
            .issue_agent_cert(&self.org_id, name, TRUST_DOMAIN, key.public_key(), 30)
            .expect("agent certificate");
        AgentIdentity {
            agent_id: format!("{}::{name}", self.org_id),
            cert_der: cert.der().to_vec(),
            cert_pem: cert.to_pem(),
            key,
        }
    }
}

impl BrokerApi {
    pub fn new(base: &str, admin_secret: &str) -> BrokerApi {
        let http = Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .expect("HTTP client");
        BrokerApi::with_client(base, admin_secret, http)
    }

    /// With a client of the caller's (e.g. one that trusts a test CA).
    pub fn with_client(base: &str, admin_secret: &str, http: Client) -> BrokerApi {
        BrokerApi {
            base: base.trim_end_matches('/').to_owned(),
            admin_secret: admin_secret.to_owned(),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the admin secret.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("x-admin-secret", &self.admin_secret);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request.send().await.expect("broker reachable")).await
    }

    /// The audit rows of `event_type` as the operator exports them (NDJSON, oldest first),
    /// `details` parsed from its JSON text.
    pub async fn audit_events(&self, event_type: &str) -> Vec<Value> {
        let response = self
            .http
            .get(self.url("/v1/admin/audit/export"))
            .header("x-admin-secret", &self.admin_secret)
            .query(&[("event_type", event_type), ("limit", "50000")])
            .send()
            .await
            .expect("broker reachable");
        assert_eq!(response.status(), StatusCode::OK, "audit export");
        let text = response.text().await.expect("export body");
        text.lines()
            .map(|line| {
                let mut row: Value = serde_json::from_str(line).expect("NDJSON row");
                if let Some(details) = row["details"].as_str() {
                    row["details"] = serde_json::from_str(details).unwrap_or(Value::Null);
                }
                row
            })
            .collect()
    }

    /// A request with org credentials.
    pub async fn org(
        &self,
        org: &OrgIdentity,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("x-org-id", &org.org_id)
            .header("x-org-secret", &org.secret);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request.send().await.expect("broker reachable")).await
    }

    /// `POST /v1/onboarding/join` for `org` with an invite token.
    pub async fn join(&self, org: &OrgIdentity, invite_token: &str) -> (StatusCode, Value) {
        self.join_with_webhook(org, invite_token, None).await
    }

    /// As [`BrokerApi::join`], registering the org's PDP webhook URL.
    pub async fn join_with_webhook(
        &self,
        org: &OrgIdentity,
        invite_token: &str,
        webhook_url: Option<&str>,
    ) -> (StatusCode, Value) {
        let body = json!({
            "webhook_url": webhook_url,
            "org_id": org.org_id,
            "display_name": format!("{} Inc.", org.org_id),
            "secret": org.secret,
            "ca_certificate": org.ca.cert_pem(),
            "contact_email": format!("ops@{}.example", org.org_id),
            "invite_token": invite_token,
        });
        json_of(
            self.http
                .post(self.url("/v1/onboarding/join"))
                .json(&body)
                .send()
                .await
                .expect("broker reachable"),
        )
        .await
    }

    /// Invite, join, approve: an active org with a P-384 CA. Panics with the broker's answer
    /// when a step fails.
    pub async fn onboard(&self, org_id: &str) -> OrgIdentity {
        self.onboard_with_webhook(org_id, None).await
    }

    /// As [`BrokerApi::onboard`], with the org's PDP webhook URL.
    pub async fn onboard_with_webhook(
        &self,
        org_id: &str,
        webhook_url: Option<&str>,
    ) -> OrgIdentity {
        let org = OrgIdentity::new(org_id);
        let (status, invite) = self
            .admin(
                Method::POST,
                "/v1/admin/invites",
                Some(json!({"label": org_id})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{invite}");
        let token = invite["token"].as_str().expect("invite token");
        let (status, joined) = self.join_with_webhook(&org, token, webhook_url).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{joined}");
        let (status, approved) = self
            .admin(
                Method::POST,
                &format!("/v1/admin/orgs/{org_id}/approve"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{approved}");
        org
    }

    /// Registers `<org>::<name>` with capabilities, binds it with the same scope, approves it.
    pub async fn register_agent(
        &self,
        org: &OrgIdentity,
        name: &str,
        capabilities: &[&str],
    ) -> AgentIdentity {
        self.register_agent_as(org, name, capabilities, KeyType::EcP256, json!({}))
            .await
    }

    /// As [`BrokerApi::register_agent`], with a key of `key_type` and registration `metadata`
    /// (e.g. `{"e2e": ["cullis-e2e-v2-aeskw"]}` for an agent on `cullis-sdk` 0.2.x).
    pub async fn register_agent_as(
        &self,
        org: &OrgIdentity,
        name: &str,
        capabilities: &[&str],
        key_type: KeyType,
        metadata: Value,
    ) -> AgentIdentity {
        let agent_id = format!("{}::{name}", org.org_id);
        let body = json!({"agent_id": agent_id, "org_id": org.org_id, "display_name": name, "capabilities": capabilities, "description": "test agent", "metadata": metadata});
        let (status, agent) = self
            .org(org, Method::POST, "/v1/registry/agents", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{agent}");
        let binding_body =
            json!({"org_id": org.org_id, "agent_id": agent_id, "scope": capabilities});
        let (status, binding) = self
            .org(
                org,
                Method::POST,
                "/v1/registry/bindings",
                Some(binding_body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{binding}");
        let id = binding["id"].as_i64().expect("binding id");
        let (status, approved) = self
            .org(
                org,
                Method::POST,
                &format!("/v1/registry/bindings/{id}/approve"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{approved}");
        org.agent_identity_with(name, key_type)
    }
}
