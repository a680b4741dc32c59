//! A local agent's view of its proxy: the egress REST API (`/v1/egress/*`) called with the
//! agent's API key, exactly as agents written for the reference proxy call it. No crypto here —
//! that is the proxy's job.

use crate::setup::json_of;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// An agent holding an API key for the proxy at `base`.
#[derive(Debug, Clone)]
pub struct EgressClient {
    pub base: String,
    pub api_key: String,
    pub http: Client,
}

impl EgressClient {
    pub fn new(base: &str, api_key: &str) -> EgressClient {
        EgressClient {
            base: base.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            http: Client::new(),
        }
    }

    /// Any egress call: status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-API-Key", &self.api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request.send().await.expect("proxy reachable")).await
    }

    pub async fn discover(&self, capabilities: &[&str]) -> (StatusCode, Value) {
        let body = json!({ "capabilities": capabilities });
        self.call(Method::POST, "/v1/egress/discover", Some(body))
            .await
    }

    pub async fn open_session(
        &self,
        target_agent_id: &str,
        target_org_id: &str,
        capabilities: &[&str],
    ) -> (StatusCode, Value) {
        let body = json!({"target_agent_id": target_agent_id, "target_org_id": target_org_id, "capabilities": capabilities});
        self.call(Method::POST, "/v1/egress/sessions", Some(body))
            .await
    }

    pub async fn sessions(&self, status: Option<&str>) -> (StatusCode, Value) {
        let path = match status {
            Some(status) => format!("/v1/egress/sessions?status={status}"),
            None => "/v1/egress/sessions".to_owned(),
        };
        self.call(Method::GET, &path, None).await
    }

    pub async fn accept(&self, session_id: &str) -> (StatusCode, Value) {
        let path = format!("/v1/egress/sessions/{session_id}/accept");
        self.call(Method::POST, &path, None).await
    }

    pub async fn close(&self, session_id: &str) -> (StatusCode, Value) {
        let path = format!("/v1/egress/sessions/{session_id}/close");
        self.call(Method::POST, &path, None).await
    }

    pub async fn send(
        &self,
        session_id: &str,
        recipient: &str,
        payload: &Value,
    ) -> (StatusCode, Value) {
        let body =
            json!({"session_id": session_id, "payload": payload, "recipient_agent_id": recipient});
        self.call(Method::POST, "/v1/egress/send", Some(body)).await
    }

    pub async fn messages(&self, session_id: &str, after: i64) -> (StatusCode, Value) {
        let path = format!("/v1/egress/messages/{session_id}?after={after}");
        self.call(Method::GET, &path, None).await
    }

    pub async fn ack(&self, session_id: &str, msg_id: &str) -> (StatusCode, Value) {
        let path = format!("/v1/egress/messages/{session_id}/{msg_id}/ack");
        self.call(Method::POST, &path, None).await
    }

    pub async fn invoke_tool(
        &self,
        session_id: &str,
        tool: &str,
        parameters: Value,
    ) -> (StatusCode, Value) {
        let body = json!({"session_id": session_id, "tool_name": tool, "parameters": parameters});
        self.call(Method::POST, "/v1/egress/tools/invoke", Some(body))
            .await
    }

    /// Polls `session_id` (from `after`) until a message satisfies `wanted`, for up to `wait`.
    pub async fn wait_for_message(
        &self,
        session_id: &str,
        after: i64,
        wait: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + wait;
        loop {
            let (status, body) = self.messages(session_id, after).await;
            if status == StatusCode::OK {
                if let Some(found) = body["messages"]
                    .as_array()
                    .and_then(|messages| messages.iter().find(|m| wanted(m)))
                {
                    return Ok(found.clone());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no matching message within {wait:?}: last answer {status} {body}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
