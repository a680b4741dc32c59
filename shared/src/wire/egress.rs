//! Proxy egress API (`/v1/egress/*`, `X-API-Key`; proxy §1.5) and the SDK-side views of broker
//! data it returns (proxy §6.2). Every egress success is HTTP 200. Errors use
//! [`crate::wire::error::ErrorDetail`] (401/429/503, 502 `Broker error: …`).
//!
//! Polled messages reuse [`crate::wire::broker::InboxMessage`] (payload decrypted); the
//! `?after=` query reuses [`crate::wire::broker::MessagePollQuery`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::broker::InboxMessage;

/// `POST /v1/egress/sessions` request body: `{target_agent_id, target_org_id, capabilities}`
/// (all required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSessionRequest {
    pub target_agent_id: String,
    pub target_org_id: String,
    pub capabilities: Vec<String>,
}

/// `POST /v1/egress/sessions` 200 body: `{"session_id":"<uuid>","status":"opened"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSessionResponse {
    pub session_id: String,
    pub status: String,
}

/// Query of `GET /v1/egress/sessions?status=` — passed through to the broker verbatim, so a
/// `String`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// SDK `SessionInfo` (proxy §6.2), element of [`SessionListResponse`]:
/// `{session_id, status, initiator_agent_id, target_agent_id, initiator_org_id, target_org_id,
/// created_at, expires_at}`. The broker list carries no org ids, so they default to `""` (and
/// `created_at` to `""`); `expires_at` may be `null`. `status` is the broker's session status,
/// passed through as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: String,
    pub status: String,
    pub initiator_agent_id: String,
    pub target_agent_id: String,
    #[serde(default)]
    pub initiator_org_id: String,
    #[serde(default)]
    pub target_org_id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `GET /v1/egress/sessions` 200 body: `{"sessions":[SessionInfo]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionListResponse {
    pub sessions: Vec<SessionInfo>,
}

/// 200 body of `POST /v1/egress/sessions/{session_id}/accept` (`"accepted"`),
/// `…/close` (`"closed"`) and `POST /v1/egress/send` (`"sent"`): `{"status","session_id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatusResponse {
    pub status: String,
    pub session_id: String,
}

/// `POST /v1/egress/send` request body: `{session_id, payload (object), recipient_agent_id}`.
/// `payload` is the plaintext; the proxy encrypts it for `recipient_agent_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    pub session_id: String,
    pub payload: Map<String, Value>,
    pub recipient_agent_id: String,
}

/// `GET /v1/egress/messages/{session_id}` 200 body: `{"messages":[InboxMessage],"count":n}`,
/// each `payload` being the decrypted plaintext object and `signature` the outer signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    pub messages: Vec<InboxMessage>,
    pub count: u64,
}

/// `POST /v1/egress/discover` request body: `{capabilities?: [str]|null, q?: str|null}`
/// (neither ⇒ the SDK searches with `pattern=*`), and this proxy's paging: `limit` and the
/// `next_cursor` of the previous answer as `cursor`, passed to the broker's discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// SDK `AgentInfo` (proxy §6.2), element of [`DiscoverResponse`]:
/// `{agent_id, org_id, display_name, capabilities, description, status}`. `status` is always
/// `null` in the reference (the broker sends `is_active`; the SDK maps a non-existent key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub agent_id: String,
    pub org_id: String,
    pub display_name: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// `POST /v1/egress/discover` 200 body: `{"agents":[AgentInfo],"count":n}` (this page), plus
/// `total` (every match) and `next_cursor` (null on the last page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverResponse {
    pub agents: Vec<AgentInfo>,
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /v1/egress/tools/invoke` request body: `{session_id, tool_name, parameters = {}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInvokeRequest {
    pub session_id: String,
    pub tool_name: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// `POST /v1/egress/tools/invoke` 200 body:
/// `{"status":"sent","request_id","session_id","tool","recipient"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInvokeResponse {
    pub status: String,
    pub request_id: String,
    pub session_id: String,
    pub tool: String,
    pub recipient: String,
}

/// Plaintext message payload built by `POST /v1/egress/tools/invoke` and sent E2E in the
/// session: `{"type":"tool_call","tool","parameters","request_id"}` (uuid4 `request_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallPayload {
    #[serde(rename = "type")]
    pub kind: String,
    pub tool: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::broker::MessagePollQuery;
    use crate::wire::test_util::*;

    const SID: &str = "11111111-2222-3333-4444-555555555555";

    #[test]
    fn open_session_roundtrip() {
        let r: OpenSessionRequest = roundtrip_exact(
            r#"{"target_agent_id":"beta::seller","target_org_id":"beta","capabilities":["order.read"]}"#,
        );
        assert_eq!(r.capabilities, vec!["order.read"]);
        assert!(serde_json::from_str::<OpenSessionRequest>(
            r#"{"target_agent_id":"b","target_org_id":"beta"}"#
        )
        .is_err());
        let s: OpenSessionResponse =
            roundtrip_exact(&format!(r#"{{"session_id":"{SID}","status":"opened"}}"#));
        assert_eq!(s.status, "opened");
    }

    #[test]
    fn session_list_roundtrip_and_sdk_defaults() {
        let l: SessionListResponse = roundtrip_exact(&format!(
            r#"{{"sessions":[{{"session_id":"{SID}","status":"pending","initiator_agent_id":"acme::buyer","target_agent_id":"beta::seller","initiator_org_id":"","target_org_id":"","created_at":"2026-04-08T12:00:00Z","expires_at":"2026-04-08T13:00:00Z"}}]}}"#
        ));
        assert_eq!(l.sessions[0].initiator_org_id, "");
        // Reading a broker SessionResponse as SDK SessionInfo: org ids default to "".
        let s: SessionInfo = serde_json::from_str(&format!(
            r#"{{"session_id":"{SID}","status":"active","initiator_agent_id":"a::b","target_agent_id":"c::d","created_at":"t","expires_at":"u","message":null}}"#
        ))
        .unwrap();
        assert_eq!(s.target_org_id, "");
        assert_eq!(s.expires_at.as_deref(), Some("u"));
        let q: SessionListQuery = serde_json::from_str("{}").unwrap();
        assert_eq!(q.status, None);
    }

    #[test]
    fn status_responses_roundtrip() {
        for st in ["accepted", "closed", "sent"] {
            let r: SessionStatusResponse =
                roundtrip_exact(&format!(r#"{{"status":"{st}","session_id":"{SID}"}}"#));
            assert_eq!(r.status, st);
        }
    }

    #[test]
    fn send_request_roundtrip() {
        let r: SendRequest = roundtrip_exact(&format!(
            r#"{{"session_id":"{SID}","payload":{{"text":"hello","type":"message"}},"recipient_agent_id":"beta::seller"}}"#
        ));
        assert_eq!(r.payload["text"], "hello");
        assert!(serde_json::from_str::<SendRequest>(&format!(
            r#"{{"session_id":"{SID}","payload":"not-an-object","recipient_agent_id":"x"}}"#
        ))
        .is_err());
    }

    #[test]
    fn messages_response_roundtrip() {
        let m: MessagesResponse = roundtrip_exact(
            r#"{"messages":[{"seq":1,"sender_agent_id":"beta::seller","payload":{"text":"hi"},"nonce":"n","timestamp":"2026-04-08T12:00:00Z","signature":"c2ln","client_seq":0}],"count":1}"#,
        );
        assert_eq!(m.count, 1);
        assert_eq!(m.messages[0].client_seq, Some(0));
        let q: MessagePollQuery = serde_json::from_str(r#"{"after":5}"#).unwrap();
        assert_eq!(q.after, 5);
    }

    #[test]
    fn discover_roundtrip_and_defaults() {
        let d: DiscoverRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(d, DiscoverRequest::default());
        let d: DiscoverRequest =
            serde_json::from_str(r#"{"capabilities":null,"q":"sell"}"#).unwrap();
        assert_eq!(d.capabilities, None);
        assert_eq!(d.q.as_deref(), Some("sell"));
        let r: DiscoverResponse = roundtrip_exact(
            r#"{"agents":[{"agent_id":"beta::seller","org_id":"beta","display_name":"Seller","capabilities":["order.read"],"description":"","status":null}],"count":1}"#,
        );
        assert_eq!(r.agents[0].status, None);
        assert_eq!(r.agents[0].description.as_deref(), Some(""));
    }

    #[test]
    fn agent_info_reads_broker_agent_response() {
        let a: AgentInfo = serde_json::from_str(
            r#"{"agent_id":"beta::seller","org_id":"beta","display_name":"Seller","description":"d","capabilities":["x"],"is_active":true,"registered_at":"t","metadata":{},"agent_uri":"spiffe://atn.local/beta/seller"}"#,
        )
        .unwrap();
        assert_eq!(a.capabilities, vec!["x"]);
        assert_eq!(a.status, None);
    }

    #[test]
    fn tool_invoke_roundtrip_and_default_parameters() {
        let r: ToolInvokeRequest = serde_json::from_str(&format!(
            r#"{{"session_id":"{SID}","tool_name":"check_erp_inventory"}}"#
        ))
        .unwrap();
        assert!(r.parameters.is_empty());
        let r: ToolInvokeRequest = roundtrip_exact(&format!(
            r#"{{"session_id":"{SID}","tool_name":"check_erp_inventory","parameters":{{"sku":"A-1"}}}}"#
        ));
        assert_eq!(r.parameters["sku"], "A-1");
        let resp: ToolInvokeResponse = roundtrip_exact(&format!(
            r#"{{"status":"sent","request_id":"r-1","session_id":"{SID}","tool":"check_erp_inventory","recipient":"beta::seller"}}"#
        ));
        assert_eq!(resp.recipient, "beta::seller");
        let p: ToolCallPayload = roundtrip_exact(
            r#"{"type":"tool_call","tool":"check_erp_inventory","parameters":{"sku":"A-1"},"request_id":"r-1"}"#,
        );
        assert_eq!(p.kind, "tool_call");
    }
}
