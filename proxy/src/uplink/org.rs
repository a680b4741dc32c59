//! Unauthenticated and org-credential calls (`X-Org-Id` / `X-Org-Secret`): health, join, org
//! status, agent provisioning (idempotent on 409), certificate rotation and broker-side
//! revocation.

use cullis_shared::wire::registry::BindingResponse;
use http::Method;
use serde_json::{json, Value};

use super::http::{Request, Response};
use super::{path_segment, OrgCredentials, Uplink, UplinkError};

impl Uplink {
    pub async fn healthz(&self) -> Result<(), UplinkError> {
        self.inner
            .auth
            .transport
            .send(&Request::new(Method::GET, "/healthz"))
            .await?
            .ok()?;
        Ok(())
    }

    /// `GET /.well-known/jwks.json`: the broker's token signing keys (the setup wizard's
    /// connection test: it proves the URL is a broker, not just an HTTP server).
    pub async fn jwks(&self) -> Result<Value, UplinkError> {
        self.inner
            .auth
            .transport
            .send(&Request::new(Method::GET, "/.well-known/jwks.json"))
            .await?
            .ok()?
            .json("jwks")
    }

    /// `POST /v1/onboarding/join` with the §2.2 join body; the broker's answer as is.
    pub async fn join(&self, body: &Value) -> Result<Value, UplinkError> {
        let response = self
            .inner
            .auth
            .send_with_nonce(|_| Request::new(Method::POST, "/v1/onboarding/join").json(body))
            .await?
            .ok()?;
        response.json("join")
    }

    /// `GET /v1/registry/orgs/me`: `{org_id, display_name, status, registered_at}`.
    pub async fn org_status(&self, org: &OrgCredentials) -> Result<Value, UplinkError> {
        let response = self
            .org_call(org, Method::GET, "/v1/registry/orgs/me", None)
            .await?
            .ok()?;
        response.json("org")
    }

    /// `POST /v1/registry/orgs/me/secret`: the broker replaces the org's secret (204).
    pub async fn rotate_org_secret(
        &self,
        org: &OrgCredentials,
        new_secret: &str,
    ) -> Result<(), UplinkError> {
        let body = json!({ "new_secret": new_secret });
        self.org_call(
            org,
            Method::POST,
            "/v1/registry/orgs/me/secret",
            Some(&body),
        )
        .await?
        .ok()?;
        Ok(())
    }

    /// Register agent (409 = already there is fine), create binding (409 fine), approve it (409
    /// fine; a binding revoked by an earlier delete is approved again). The binding's scope is
    /// the agent's capabilities. Returns whether the broker already knew the agent — its pinned
    /// certificate is then an old one, to be replaced through [`Uplink::rotate_cert`].
    pub async fn register_agent(
        &self,
        org: &OrgCredentials,
        agent_id: &str,
        display_name: &str,
        capabilities: &[String],
    ) -> Result<bool, UplinkError> {
        // Our agents open every envelope version (cullis_shared::envelope), so peers may seal
        // the newest one they know to them.
        let e2e: Vec<&str> = cullis_shared::envelope::E2eVersion::ALL
            .iter()
            .map(|v| v.as_str())
            .collect();
        let agent = json!({
            "agent_id": agent_id,
            "org_id": org.org_id,
            "display_name": display_name,
            "capabilities": capabilities,
            "metadata": {"e2e": e2e},
        });
        let registered = self
            .org_call(org, Method::POST, "/v1/registry/agents", Some(&agent))
            .await?
            .ok_or_conflict()?;
        let existed = registered.status == 409;
        let binding = self.ensure_binding(org, agent_id, capabilities).await?;
        if binding.status.as_str() != "approved" {
            let path = format!("/v1/registry/bindings/{}/approve", binding.id);
            self.org_call(org, Method::POST, &path, None)
                .await?
                .ok_or_conflict()?;
        }
        Ok(existed)
    }

    /// The agent's binding: created now, or the existing one on 409.
    async fn ensure_binding(
        &self,
        org: &OrgCredentials,
        agent_id: &str,
        capabilities: &[String],
    ) -> Result<BindingResponse, UplinkError> {
        let body = json!({"org_id": org.org_id, "agent_id": agent_id, "scope": capabilities});
        let response = self
            .org_call(org, Method::POST, "/v1/registry/bindings", Some(&body))
            .await?;
        if response.status != 409 {
            return response.ok()?.json("binding");
        }
        self.bindings_of(org, agent_id)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                UplinkError::Protocol(format!(
                    "broker reported a binding for {agent_id} but does not list it"
                ))
            })
    }

    /// The org's bindings of `agent_id`.
    async fn bindings_of(
        &self,
        org: &OrgCredentials,
        agent_id: &str,
    ) -> Result<Vec<BindingResponse>, UplinkError> {
        let path = format!(
            "/v1/registry/bindings?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("org_id", &org.org_id)
                .finish()
        );
        let all: Vec<BindingResponse> = self
            .org_call(org, Method::GET, &path, None)
            .await?
            .ok()?
            .json("binding list")?;
        Ok(all.into_iter().filter(|b| b.agent_id == agent_id).collect())
    }

    /// `POST /v1/registry/agents/{id}/rotate-cert` with the new leaf certificate (PEM).
    pub async fn rotate_cert(
        &self,
        org: &OrgCredentials,
        agent_id: &str,
        new_cert_pem: &str,
    ) -> Result<(), UplinkError> {
        let path = format!("/v1/registry/agents/{}/rotate-cert", path_segment(agent_id));
        let body = json!({ "new_certificate": new_cert_pem });
        self.org_call(org, Method::POST, &path, Some(&body))
            .await?
            .ok()?;
        // The pinned certificate changed: the next call logs in with the new one.
        self.inner.auth.tokens.forget(agent_id);
        self.inner.keys.invalidate(agent_id);
        Ok(())
    }

    /// `POST /v1/registry/orgs/{org}/ca/rotate`: `new_ca_pem` signs from now on; leaves of the
    /// current CA still log in for `overlap_seconds`. The broker's answer as is.
    pub async fn rotate_org_ca(
        &self,
        org: &OrgCredentials,
        new_ca_pem: &str,
        overlap_seconds: i64,
    ) -> Result<Value, UplinkError> {
        let path = format!("/v1/registry/orgs/{}/ca/rotate", path_segment(&org.org_id));
        let body = json!({"ca_certificate": new_ca_pem, "overlap_seconds": overlap_seconds});
        self.org_call(org, Method::POST, &path, Some(&body))
            .await?
            .ok()?
            .json("CA rotation")
    }

    /// Broker-side cut-off: revoke the agent's tokens (`POST /v1/auth/revoke-agent/{id}`) and
    /// its binding(s). An agent the broker does not know is already cut off. Also forgets the
    /// agent locally.
    pub async fn revoke_agent(
        &self,
        org: &OrgCredentials,
        agent_id: &str,
    ) -> Result<(), UplinkError> {
        let path = format!("/v1/auth/revoke-agent/{}", path_segment(agent_id));
        let response = self.org_call(org, Method::POST, &path, None).await?;
        if response.status == 404 {
            self.forget_agent(agent_id);
            return Ok(());
        }
        response.ok()?;
        for binding in self.bindings_of(org, agent_id).await? {
            if binding.status.as_str() != "revoked" {
                let path = format!("/v1/registry/bindings/{}/revoke", binding.id);
                self.org_call(org, Method::POST, &path, None).await?.ok()?;
            }
        }
        self.forget_agent(agent_id);
        Ok(())
    }

    /// A request with the org's credentials (retried once after a short `Retry-After`).
    async fn org_call(
        &self,
        org: &OrgCredentials,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, UplinkError> {
        self.inner
            .auth
            .send_with_nonce(|_| {
                let request = Request::new(method.clone(), path)
                    .header("X-Org-Id", org.org_id.clone())
                    .header("X-Org-Secret", org.secret.clone());
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await
    }
}

impl Response {
    /// Ok for 2xx and 409 (the thing already exists / is already in that state).
    fn ok_or_conflict(self) -> Result<Response, UplinkError> {
        if self.status == 409 {
            Ok(self)
        } else {
            self.ok()
        }
    }
}
