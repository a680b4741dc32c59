//! Agent calls at the broker (ref-proxy §1.6): discovery, sessions, send and poll.

use cullis_shared::wire::broker::{InboxMessage, SessionResponse};
use cullis_shared::wire::egress::{AgentInfo, SessionInfo};
use http::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{path_segment, AgentCredentials, ReceivedMessage, Uplink, UplinkError};

/// `GET /v1/registry/agents/search` answer, agents read as the SDK's `AgentInfo`.
#[derive(Deserialize)]
pub struct DiscoveredPage {
    pub agents: Vec<AgentInfo>,
    /// Every match (a broker before paging sends the page's length).
    pub total: u64,
    /// Where the next page starts; `None` on the last (or from a broker without pages).
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Which page of a discovery to fetch (both unset: the broker's default first page).
#[derive(Debug, Default, Clone, Copy)]
pub struct PageRequest<'a> {
    pub limit: Option<u32>,
    pub cursor: Option<&'a str>,
}

impl Uplink {
    /// The first page of [`Uplink::discover_page`]'s agents.
    pub async fn discover(
        &self,
        agent: &AgentCredentials,
        capabilities: &[String],
        q: Option<&str>,
    ) -> Result<Vec<AgentInfo>, UplinkError> {
        let page = self
            .discover_page(agent, capabilities, q, PageRequest::default())
            .await?;
        Ok(page.agents)
    }

    /// `GET /v1/registry/agents/search?capability=…&q=…` (`pattern=*` when neither is given),
    /// with `limit` and `cursor` when asked.
    pub async fn discover_page(
        &self,
        agent: &AgentCredentials,
        capabilities: &[String],
        q: Option<&str>,
        page: PageRequest<'_>,
    ) -> Result<DiscoveredPage, UplinkError> {
        // Built in its own scope: the serializer is not `Send` and must not live across an await.
        let path = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for capability in capabilities {
                query.append_pair("capability", capability);
            }
            match q.filter(|q| !q.is_empty()) {
                Some(q) => {
                    query.append_pair("q", q);
                }
                None if capabilities.is_empty() => {
                    query.append_pair("pattern", "*");
                }
                None => {}
            }
            if let Some(limit) = page.limit {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(cursor) = page.cursor {
                query.append_pair("cursor", cursor);
            }
            format!("/v1/registry/agents/search?{}", query.finish())
        };
        let response = self
            .inner
            .auth
            .call(agent, Method::GET, &path, None)
            .await?;
        response.json::<DiscoveredPage>("agent search")
    }

    /// `POST /v1/broker/sessions`; returns the session id.
    pub async fn open_session(
        &self,
        agent: &AgentCredentials,
        target_agent_id: &str,
        target_org_id: &str,
        capabilities: &[String],
    ) -> Result<String, UplinkError> {
        let body = json!({
            "target_agent_id": target_agent_id,
            "target_org_id": target_org_id,
            "requested_capabilities": capabilities,
        });
        let response = self
            .inner
            .auth
            .call(agent, Method::POST, "/v1/broker/sessions", Some(&body))
            .await?;
        Ok(response.json::<SessionResponse>("session")?.session_id)
    }

    /// `GET /v1/broker/sessions[?status=…]` (status passed through).
    pub async fn list_sessions(
        &self,
        agent: &AgentCredentials,
        status: Option<&str>,
    ) -> Result<Vec<SessionInfo>, UplinkError> {
        let path = match status {
            Some(status) => format!(
                "/v1/broker/sessions?{}",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("status", status)
                    .finish()
            ),
            None => "/v1/broker/sessions".to_owned(),
        };
        let response = self
            .inner
            .auth
            .call(agent, Method::GET, &path, None)
            .await?;
        response.json("session list")
    }

    pub async fn accept_session(
        &self,
        agent: &AgentCredentials,
        session_id: &str,
    ) -> Result<(), UplinkError> {
        self.session_action(agent, session_id, "accept").await
    }

    pub async fn close_session(
        &self,
        agent: &AgentCredentials,
        session_id: &str,
    ) -> Result<(), UplinkError> {
        self.session_action(agent, session_id, "close").await
    }

    async fn session_action(
        &self,
        agent: &AgentCredentials,
        session_id: &str,
        action: &str,
    ) -> Result<(), UplinkError> {
        let path = format!("/v1/broker/sessions/{}/{action}", path_segment(session_id));
        self.inner
            .auth
            .call(agent, Method::POST, &path, None)
            .await?;
        Ok(())
    }

    /// Acknowledges message `msg_id` of `session_id` at the broker for `agent` (its recipient):
    /// the broker then stops redelivering it. Acknowledging twice is fine.
    pub async fn ack_message(
        &self,
        agent: &AgentCredentials,
        session_id: &str,
        msg_id: &str,
    ) -> Result<(), UplinkError> {
        let path = format!(
            "/v1/broker/sessions/{}/messages/{}/ack",
            path_segment(session_id),
            path_segment(msg_id)
        );
        self.inner
            .auth
            .call(agent, Method::POST, &path, None)
            .await?;
        Ok(())
    }

    /// Seal (E2E) and send; the caller allocates and persists `client_seq` per (agent, session).
    /// Any failure drops the cached recipient key, so the next attempt fetches it again.
    pub async fn send(
        &self,
        agent: &AgentCredentials,
        session_id: &str,
        recipient_agent_id: &str,
        payload: &Value,
        client_seq: u64,
    ) -> Result<(), UplinkError> {
        let envelope = self
            .seal_envelope(agent, session_id, recipient_agent_id, payload, client_seq)
            .await?;
        let body = serde_json::to_value(&envelope).expect("an envelope serializes");
        let path = format!("/v1/broker/sessions/{}/messages", path_segment(session_id));
        let sent = self
            .inner
            .auth
            .call(agent, Method::POST, &path, Some(&body))
            .await;
        if sent.is_err() {
            self.inner.keys.invalidate(recipient_agent_id);
        }
        sent.map(|_| ())
    }

    /// `GET /v1/broker/sessions/{sid}/messages?after=N`, each item decrypted and its inner
    /// signature checked.
    pub async fn poll(
        &self,
        agent: &AgentCredentials,
        session_id: &str,
        after: i64,
    ) -> Result<Vec<ReceivedMessage>, UplinkError> {
        let path = format!(
            "/v1/broker/sessions/{}/messages?after={after}",
            path_segment(session_id)
        );
        let response = self
            .inner
            .auth
            .call(agent, Method::GET, &path, None)
            .await?;
        let items: Vec<InboxMessage> = response.json("message list")?;
        let mut messages = Vec::with_capacity(items.len());
        for item in items {
            messages.push(self.open_item(agent, session_id, item).await);
        }
        Ok(messages)
    }
}
