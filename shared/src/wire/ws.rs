//! WebSocket frames of `GET /v1/broker/ws` (broker §6; auth spec §3.7, §6.7). Every frame is a
//! JSON object tagged by `"type"`; the tag is emitted first.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Client → server frame.
///
/// The first frame must be `auth`. Its members are optional here so that a missing or empty
/// `token` / `dpop_proof` reaches the handler, which answers `auth_error` with
/// `Missing or malformed auth message` / `DPoP proof required` (a serde error would lose that
/// distinction). Any other `type` deserializes as [`ClientFrame::Other`] and is ignored (but
/// counts toward the rate limit); a frame with no `type` at all fails to deserialize.
/// `Other` is receive-only and cannot be serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// `{"type":"auth","token":"<access token>","dpop_proof":"<proof>"}`.
    Auth {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dpop_proof: Option<String>,
    },
    /// `{"type":"ping"}` → server answers [`ServerFrame::Pong`].
    Ping,
    /// `{"type":"pong"}`: the answer to the server's [`ServerFrame::Ping`].
    Pong,
    /// `{"type":"resume","session_id","last_seq"}` (`cullis-sdk` 0.2.x, after a reconnect): the
    /// server replays the session's messages after `last_seq` as `new_message` frames with
    /// `replayed: true`. Members optional so a malformed resume is ignored, not fatal.
    Resume {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seq: Option<i64>,
    },
    /// Any other `type`.
    #[serde(other, skip_serializing)]
    Other,
}

/// Server → client frame (§6.3). No frame exists for session accepted/closed/expired or binding
/// changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// `{"type":"auth_ok","agent_id"}` — handshake success.
    AuthOk { agent_id: String },
    /// `{"type":"auth_error","detail"}` — handshake failure or token expiry; the socket closes.
    AuthError { detail: String },
    /// `{"type":"pong"}` — reply to ping.
    Pong,
    /// `{"type":"ping"}` — the server's heartbeat; `cullis-sdk` 0.2.x answers `pong`.
    Ping,
    /// New session targeting this agent.
    SessionPending {
        session_id: String,
        initiator_agent_id: String,
        initiator_org_id: String,
        capabilities: Vec<String>,
    },
    /// The target rejected a session this agent initiated.
    SessionRejected {
        session_id: String,
        rejected_by: String,
    },
    /// A message was stored for this agent (no nonce, no signature in the frame). `msg_id` and
    /// `queued: true` ask for an acknowledgement (`…/messages/{msg_id}/ack`, `cullis-sdk` 0.2.x
    /// sends it by itself); `replayed: true` marks a frame sent again for a `resume`.
    NewMessage {
        session_id: String,
        message: WsMessage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        msg_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queued: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replayed: Option<bool>,
    },
    /// RFQ broadcast to a matched supplier.
    RfqRequest {
        rfq_id: String,
        initiator_agent_id: String,
        initiator_org_id: String,
        capabilities: Vec<String>,
        payload: Map<String, Value>,
        timeout_seconds: i64,
    },
    /// Dashboard quote approval: `token_id` is the transaction-token JWT itself, `txn_type`
    /// `CREATE_ORDER`.
    TransactionToken {
        token_id: String,
        rfq_id: String,
        txn_type: String,
        target_agent_id: String,
        payload_hash: String,
    },
}

/// `message` of [`ServerFrame::NewMessage`]:
/// `{"seq","sender_agent_id","payload","timestamp"[,"client_seq"]}`. `timestamp` is the push time
/// as Python `isoformat()` (`+00:00`). `client_seq` is present only when the sender sent one
/// (`Some(0)` → `0`), so it is omitted when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WsMessage {
    pub seq: u64,
    pub sender_agent_id: String,
    pub payload: Map<String, Value>,
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_seq: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    const SID: &str = "11111111-2222-3333-4444-555555555555";

    #[test]
    fn client_auth_roundtrip() {
        let f: ClientFrame =
            roundtrip_exact(r#"{"type":"auth","token":"t.t.t","dpop_proof":"p.p.p"}"#);
        assert_eq!(
            f,
            ClientFrame::Auth {
                token: Some("t.t.t".into()),
                dpop_proof: Some("p.p.p".into())
            }
        );
    }

    #[test]
    fn client_auth_missing_members_reach_handler() {
        let f: ClientFrame = serde_json::from_str(r#"{"type":"auth","token":"t"}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Auth {
                token: Some("t".into()),
                dpop_proof: None
            }
        );
        let f: ClientFrame = serde_json::from_str(r#"{"type":"auth"}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Auth {
                token: None,
                dpop_proof: None
            }
        );
    }

    #[test]
    fn client_ping_other_and_untyped() {
        let p: ClientFrame = roundtrip_exact(r#"{"type":"ping"}"#);
        assert_eq!(p, ClientFrame::Ping);
        let o: ClientFrame = serde_json::from_str(r#"{"type":"subscribe","x":1}"#).unwrap();
        assert_eq!(o, ClientFrame::Other);
        assert!(serde_json::to_string(&ClientFrame::Other).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"token":"t"}"#).is_err());
    }

    #[test]
    fn server_simple_frames() {
        let ok: ServerFrame = roundtrip_exact(r#"{"type":"auth_ok","agent_id":"acme::buyer"}"#);
        assert_eq!(
            ok,
            ServerFrame::AuthOk {
                agent_id: "acme::buyer".into()
            }
        );
        let err: ServerFrame =
            roundtrip_exact(r#"{"type":"auth_error","detail":"Token invalid or expired"}"#);
        assert!(matches!(err, ServerFrame::AuthError { .. }));
        let pong: ServerFrame = roundtrip_exact(r#"{"type":"pong"}"#);
        assert_eq!(pong, ServerFrame::Pong);
        assert_eq!(
            serde_json::to_string(&ServerFrame::Pong).unwrap(),
            r#"{"type":"pong"}"#
        );
    }

    #[test]
    fn server_session_frames() {
        let p: ServerFrame = roundtrip_exact(&format!(
            r#"{{"type":"session_pending","session_id":"{SID}","initiator_agent_id":"acme::buyer","initiator_org_id":"acme","capabilities":["order.read"]}}"#
        ));
        assert!(
            matches!(p, ServerFrame::SessionPending { ref capabilities, .. } if capabilities == &["order.read"])
        );
        let r: ServerFrame = roundtrip_exact(&format!(
            r#"{{"type":"session_rejected","session_id":"{SID}","rejected_by":"beta::seller"}}"#
        ));
        assert!(
            matches!(r, ServerFrame::SessionRejected { ref rejected_by, .. } if rejected_by == "beta::seller")
        );
    }

    #[test]
    fn server_new_message_client_seq() {
        let with0: ServerFrame = roundtrip_exact(&format!(
            r#"{{"type":"new_message","session_id":"{SID}","message":{{"seq":3,"sender_agent_id":"acme::buyer","payload":{{"ciphertext":"Y3Q=","encrypted_key":"a2V5","iv":"AAEC"}},"timestamp":"2026-04-08T12:00:00.123456+00:00","client_seq":0}}}}"#
        ));
        match with0 {
            ServerFrame::NewMessage { message, .. } => assert_eq!(message.client_seq, Some(0)),
            other => panic!("unexpected {other:?}"),
        }
        let without: ServerFrame = roundtrip_exact(&format!(
            r#"{{"type":"new_message","session_id":"{SID}","message":{{"seq":4,"sender_agent_id":"acme::buyer","payload":{{}},"timestamp":"2026-04-08T12:00:01+00:00"}}}}"#
        ));
        match without {
            ServerFrame::NewMessage { message, .. } => assert_eq!(message.client_seq, None),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn server_rfq_and_transaction_frames() {
        let r: ServerFrame = roundtrip_exact(&format!(
            r#"{{"type":"rfq_request","rfq_id":"{SID}","initiator_agent_id":"acme::buyer","initiator_org_id":"acme","capabilities":["quote"],"payload":{{"sku":"X"}},"timeout_seconds":30}}"#
        ));
        assert!(matches!(
            r,
            ServerFrame::RfqRequest {
                timeout_seconds: 30,
                ..
            }
        ));
        let t: ServerFrame = roundtrip_exact(&format!(
            r#"{{"type":"transaction_token","token_id":"j.w.t","rfq_id":"{SID}","txn_type":"CREATE_ORDER","target_agent_id":"beta::seller","payload_hash":"abcd"}}"#
        ));
        assert!(
            matches!(t, ServerFrame::TransactionToken { ref txn_type, .. } if txn_type == "CREATE_ORDER")
        );
    }

    #[test]
    fn heartbeat_resume_and_acked_new_message() {
        let ping: ServerFrame = roundtrip_exact(r#"{"type":"ping"}"#);
        assert_eq!(ping, ServerFrame::Ping);
        let pong: ClientFrame = roundtrip_exact(r#"{"type":"pong"}"#);
        assert_eq!(pong, ClientFrame::Pong);
        let resume: ClientFrame = roundtrip_exact(&format!(
            r#"{{"type":"resume","session_id":"{SID}","last_seq":4}}"#
        ));
        assert_eq!(
            resume,
            ClientFrame::Resume {
                session_id: Some(SID.into()),
                last_seq: Some(4)
            }
        );
        let frame: ServerFrame = roundtrip_exact(&format!(
            r#"{{"type":"new_message","session_id":"{SID}","message":{{"seq":5,"sender_agent_id":"acme::buyer","payload":{{}},"timestamp":"2026-04-08T12:00:01+00:00"}},"msg_id":"5","queued":true,"replayed":true}}"#
        ));
        assert!(matches!(
            frame,
            ServerFrame::NewMessage { ref msg_id, queued: Some(true), replayed: Some(true), .. }
                if msg_id.as_deref() == Some("5")
        ));
    }

    #[test]
    fn server_unknown_fields_ignored_unknown_type_rejected() {
        let f: ServerFrame =
            serde_json::from_str(r#"{"type":"auth_ok","agent_id":"a::b","extra":1}"#).unwrap();
        assert_eq!(
            f,
            ServerFrame::AuthOk {
                agent_id: "a::b".into()
            }
        );
        assert!(serde_json::from_str::<ServerFrame>(r#"{"type":"nope"}"#).is_err());
    }
}
