//! Broker bodies (`/v1/broker/…`, DPoP-authenticated): sessions, message envelopes and the E2E
//! cipher blob, polled messages, notifications, RFQ (broker §1.8, §3.5–§3.9; auth spec §6).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Session status: `pending` → `active` → `closed`, or `pending` → `denied`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Pending,
    Active,
    Closed,
    Denied,
}

impl SessionStatus {
    /// The wire spelling (the "raw value" used e.g. in `Session is closed — polling not available`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Closed => "closed",
            Self::Denied => "denied",
        }
    }
}

/// `POST /v1/broker/sessions` request body:
/// `{target_agent_id, target_org_id, requested_capabilities = [], context = {}}`
/// (`context` ≤16 KB, nesting ≤4, validated by the service then ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionCreateRequest {
    pub target_agent_id: String,
    pub target_org_id: String,
    #[serde(default)]
    pub requested_capabilities: Vec<String>,
    #[serde(default)]
    pub context: Map<String, Value>,
}

/// `SessionResponse` = `{"session_id","status","initiator_agent_id","target_agent_id",
/// "created_at","expires_at","message":string|null}`: 201 of `POST /v1/broker/sessions`, 200 of
/// `POST /v1/broker/sessions/{id}/accept|reject|close`, elements of `GET /v1/broker/sessions`
/// (there `message` is `null`). No org ids. Timestamps ISO-8601 (`Z`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionResponse {
    pub session_id: String,
    pub status: SessionStatus,
    pub initiator_agent_id: String,
    pub target_agent_id: String,
    pub created_at: String,
    pub expires_at: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// Default `limit` of [`SessionListQuery`].
pub const DEFAULT_SESSION_LIST_LIMIT: i64 = 100;

fn default_limit() -> i64 {
    DEFAULT_SESSION_LIST_LIMIT
}

/// Query of `GET /v1/broker/sessions?status=&limit=100&offset=0`. A `status` outside the enum is
/// a serde error (422, as in the reference); `limit` (1..500) and `offset` (≥0) ranges are
/// checked by the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

impl Default for SessionListQuery {
    fn default() -> Self {
        Self {
            status: None,
            limit: DEFAULT_SESSION_LIST_LIMIT,
            offset: 0,
        }
    }
}

/// Message envelope, the body of `POST /v1/broker/sessions/{id}/messages`:
/// `{session_id, sender_agent_id, payload (object ≤1 MB), nonce (≤128), timestamp (int Unix
/// seconds, signed), signature (≤2048, b64url-padded outer signature), client_seq (int ≥0,
/// optional)}`. With the SDK the payload is a [`CipherBlob`]; the broker treats it as an opaque
/// object and never decrypts it.
///
/// `client_seq`: `None` (absent or `null` on input) and `Some(0)` are different — the signature
/// and AAD include `client_seq` whenever it is not null, 0 included. On input both the SDK form
/// (key always sent) and the test-factory form (key omitted when null) are accepted. On output
/// the key is emitted only when `Some` (`Some(0)` → `"client_seq":0`); `None` omits it, which the
/// reference reads exactly like `null`.
///
/// Note: `payload` is a `serde_json::Map`; integers beyond `u64`/`i64` become floats in
/// `serde_json`, so canonicalisation of such payloads cannot be bit-exact with Python.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEnvelope {
    pub session_id: String,
    pub sender_agent_id: String,
    pub payload: Map<String, Value>,
    pub nonce: String,
    pub timestamp: i64,
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_seq: Option<u64>,
}

/// The E2E cipher blob carried as [`MessageEnvelope::payload`] and returned in polled messages
/// (auth spec §6.5): `{"ciphertext","iv","encrypted_key"[,"ephemeral_pubkey"]}`, all b64url with
/// padding. Member order is the SDK's dict order. `ephemeral_pubkey` (b64url of an SPKI PEM) is
/// present only for EC recipients and is omitted when `None` (RSA recipients).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CipherBlob {
    pub ciphertext: String,
    pub iv: String,
    pub encrypted_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_pubkey: Option<String>,
}

/// 202 body of `POST /v1/broker/sessions/{id}/messages`: `{"status":"accepted","session_id",
/// "msg_id"}`, or, when the sender asked for acknowledged delivery (`ttl_seconds` or
/// `idempotency_key`, as `cullis-sdk` 0.2.x does), `{"status":"queued","session_id","msg_id",
/// "deduped"}`; `deduped: true` = this idempotency key was seen before and `msg_id` is the
/// first message's. `msg_id` is what `…/messages/{msg_id}/ack` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAccepted {
    pub status: String,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deduped: Option<bool>,
}

/// Longest `ttl_seconds` of [`MessageSendQuery`] (a day, as `cullis-sdk` 0.2.x documents).
pub const MAX_MESSAGE_TTL_SECONDS: i64 = 86_400;

/// Query of `POST /v1/broker/sessions/{id}/messages` (both optional): `ttl_seconds` (1..=86400)
/// after which a message nobody acknowledged is no longer delivered; `idempotency_key` (1..=128
/// characters): a resend with the same key from the same sender in the same session returns the
/// first message instead of storing a second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSendQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Default `after` of [`MessagePollQuery`].
pub const DEFAULT_POLL_AFTER: i64 = -1;

fn default_after() -> i64 {
    DEFAULT_POLL_AFTER
}

/// Query of `GET /v1/broker/sessions/{id}/messages?after=-1` (also the proxy's
/// `GET /v1/egress/messages/{session_id}?after=-1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePollQuery {
    #[serde(default = "default_after")]
    pub after: i64,
}

impl Default for MessagePollQuery {
    fn default() -> Self {
        Self {
            after: DEFAULT_POLL_AFTER,
        }
    }
}

/// `InboxMessage` = `{"seq":int,"sender_agent_id","payload":{…},"nonce","timestamp",
/// "signature":string|null,"client_seq":int|null}`: elements of
/// `GET /v1/broker/sessions/{id}/messages` (and, with the payload decrypted, of the proxy's
/// `GET /v1/egress/messages/{session_id}`).
///
/// `timestamp` is the broker receive/storage time as ISO-8601 (e.g.
/// `2026-04-08T12:00:00.123456Z`), not the signed integer timestamp. Unlike the envelope,
/// `signature` and `client_seq` are always emitted (`null` when absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxMessage {
    pub seq: u64,
    pub sender_agent_id: String,
    pub payload: Map<String, Value>,
    pub nonce: String,
    pub timestamp: String,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub client_seq: Option<u64>,
    /// Cullis-in-Rust addition: the integer `timestamp` the sender signed (the reference only
    /// delivers the broker's receive time, so recipients could not check the inner signature).
    /// Absent from reference brokers; ignored by the reference SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_timestamp: Option<i64>,
}

/// `type` of a [`Notification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationType {
    SessionPending,
    RfqRequest,
}

impl NotificationType {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SessionPending => "session_pending",
            Self::RfqRequest => "rfq_request",
        }
    }
}

/// Element of `GET /v1/broker/notifications` (200, a plain JSON array, newest first, ≤50):
/// `{"id","type","title","body","reference_id","created_at"}`. `id` is 32 hex chars;
/// `reference_id` is the session id or rfq id; `created_at` is Python `isoformat()` (`+00:00`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: NotificationType,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub reference_id: Option<String>,
    pub created_at: String,
}

/// RFQ status (`rfq_requests.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RfqStatus {
    Open,
    Closed,
    Timeout,
    Approved,
}

impl RfqStatus {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Timeout => "timeout",
            Self::Approved => "approved",
        }
    }
}

/// `POST /v1/broker/rfq/{rfq_id}/approve` request body (org credentials of the requester's
/// organisation — the human approval the reference's dashboard gave): approves the quote of
/// `responder_agent_id` and issues the requester a `CREATE_ORDER` transaction token for the
/// order whose envelope payload hashes to `payload_hash`. `approved_by` names the person (the
/// token's `act.sub`; default the org id). Answer: [`crate::wire::auth::TransactionTokenResponse`];
/// the requester also gets a `transaction_token` WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfqApproveRequest {
    pub responder_agent_id: String,
    pub payload_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
}

/// Default `timeout_seconds` of [`RfqCreateRequest`].
pub const DEFAULT_RFQ_TIMEOUT_SECONDS: i64 = 30;

fn default_rfq_timeout() -> i64 {
    DEFAULT_RFQ_TIMEOUT_SECONDS
}

/// `POST /v1/broker/rfq` request body:
/// `{capability_filter (≥1 item), payload (object ≤64 KB), timeout_seconds = 30 (5..120),
/// context = {}}`. Ranges are checked by the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfqCreateRequest {
    pub capability_filter: Vec<String>,
    pub payload: Map<String, Value>,
    #[serde(default = "default_rfq_timeout")]
    pub timeout_seconds: i64,
    #[serde(default)]
    pub context: Map<String, Value>,
}

/// `POST /v1/broker/rfq/{rfq_id}/respond` request body: `{payload (object ≤64 KB)}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfqRespondRequest {
    pub payload: Map<String, Value>,
}

/// `POST /v1/broker/rfq/{rfq_id}/respond` 202 body: `{"status":"accepted","rfq_id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfqRespondAccepted {
    pub status: String,
    pub rfq_id: String,
}

/// One quote of [`RfqResponse`]: `{"responder_agent_id","responder_org_id","payload":{…},
/// "received_at"}` (reference names; the SDK's `RfqQuote` reads `agent_id`/`org_id`/
/// `submitted_at` and gets empty strings — a reference quirk kept for parity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfqQuote {
    pub responder_agent_id: String,
    pub responder_org_id: String,
    pub payload: Map<String, Value>,
    pub received_at: String,
}

/// `RfqResponse` = `{"rfq_id","status","matched_agents":[…],"quotes":[RfqQuote],"created_at",
/// "closed_at"|null}`: 201 of `POST /v1/broker/rfq`, 200 of `GET /v1/broker/rfq/{rfq_id}`.
/// Timestamps ISO-8601.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfqResponse {
    pub rfq_id: String,
    pub status: RfqStatus,
    pub matched_agents: Vec<String>,
    pub quotes: Vec<RfqQuote>,
    pub created_at: String,
    #[serde(default)]
    pub closed_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::*;

    const SID: &str = "11111111-2222-3333-4444-555555555555";

    #[test]
    fn session_create_roundtrip_and_defaults() {
        let r: SessionCreateRequest = roundtrip_exact(
            r#"{"target_agent_id":"beta::seller","target_org_id":"beta","requested_capabilities":["order.write"],"context":{"a":{"b":{"c":{"d":"ok"}}}}}"#,
        );
        assert_eq!(r.requested_capabilities, vec!["order.write"]);
        let d: SessionCreateRequest = serde_json::from_str(
            r#"{"target_agent_id":"beta::seller","target_org_id":"beta","initiator":"ignored"}"#,
        )
        .unwrap();
        assert!(d.requested_capabilities.is_empty());
        assert!(d.context.is_empty());
    }

    #[test]
    fn session_response_roundtrip() {
        let s: SessionResponse = roundtrip_exact(&format!(
            r#"{{"session_id":"{SID}","status":"pending","initiator_agent_id":"acme::buyer","target_agent_id":"beta::seller","created_at":"2026-04-08T12:00:00Z","expires_at":"2026-04-08T13:00:00Z","message":"Session created — waiting for acceptance from the target"}}"#
        ));
        assert_eq!(s.status, SessionStatus::Pending);
        let listed: Vec<SessionResponse> = roundtrip_exact(&format!(
            r#"[{{"session_id":"{SID}","status":"active","initiator_agent_id":"a::b","target_agent_id":"c::d","created_at":"x","expires_at":"y","message":null}}]"#
        ));
        assert_eq!(listed[0].message, None);
    }

    #[test]
    fn session_status_spellings() {
        for s in [
            SessionStatus::Pending,
            SessionStatus::Active,
            SessionStatus::Closed,
            SessionStatus::Denied,
        ] {
            assert_eq!(to_value(&s), Value::from(s.as_str()));
        }
        for s in [
            RfqStatus::Open,
            RfqStatus::Closed,
            RfqStatus::Timeout,
            RfqStatus::Approved,
        ] {
            assert_eq!(to_value(&s), Value::from(s.as_str()));
        }
        for s in [
            NotificationType::SessionPending,
            NotificationType::RfqRequest,
        ] {
            assert_eq!(to_value(&s), Value::from(s.as_str()));
        }
    }

    #[test]
    fn session_list_query_defaults_and_bad_status() {
        let q: SessionListQuery = serde_json::from_str("{}").unwrap();
        assert_eq!(q, SessionListQuery::default());
        assert_eq!(q.limit, 100);
        assert_eq!(q.offset, 0);
        let q: SessionListQuery =
            serde_json::from_str(r#"{"status":"denied","limit":0,"offset":-1}"#).unwrap();
        assert_eq!(q.status, Some(SessionStatus::Denied));
        // Out-of-range values are left to the service.
        assert_eq!(q.limit, 0);
        assert!(serde_json::from_str::<SessionListQuery>(r#"{"status":"expired"}"#).is_err());
    }

    fn sdk_envelope(client_seq: &str) -> String {
        format!(
            r#"{{"session_id":"{SID}","sender_agent_id":"acme::buyer","payload":{{"ciphertext":"Y3Q=","encrypted_key":"a2V5","iv":"AAECAwQFBgcICQoL"}},"nonce":"5f0c8f8e-6a7e-4b8e-9b7a-0d7f1c2b3a4d","timestamp":1700000000,"signature":"c2ln"{client_seq}}}"#
        )
    }

    #[test]
    fn envelope_client_seq_some_zero_roundtrips_as_zero() {
        let json = sdk_envelope(r#","client_seq":0"#);
        let e: MessageEnvelope = roundtrip_exact(&json);
        assert_eq!(e.client_seq, Some(0));
        assert_eq!(e.timestamp, 1_700_000_000);
        assert!(serde_json::to_string(&e)
            .unwrap()
            .ends_with(r#""client_seq":0}"#));
    }

    #[test]
    fn envelope_client_seq_absent_is_none_and_omitted() {
        let e: MessageEnvelope = roundtrip_exact(&sdk_envelope(""));
        assert_eq!(e.client_seq, None);
        assert!(!serde_json::to_string(&e).unwrap().contains("client_seq"));
    }

    #[test]
    fn envelope_client_seq_null_is_none() {
        let e: MessageEnvelope =
            serde_json::from_str(&sdk_envelope(r#","client_seq":null"#)).unwrap();
        assert_eq!(e.client_seq, None);
        assert_ne!(
            e,
            serde_json::from_str::<MessageEnvelope>(&sdk_envelope(r#","client_seq":0"#)).unwrap()
        );
    }

    #[test]
    fn envelope_rejects_negative_client_seq_and_missing_signature() {
        assert!(
            serde_json::from_str::<MessageEnvelope>(&sdk_envelope(r#","client_seq":-1"#)).is_err()
        );
        let no_sig = sdk_envelope("").replace(r#","signature":"c2ln""#, "");
        assert!(serde_json::from_str::<MessageEnvelope>(&no_sig).is_err());
    }

    #[test]
    fn envelope_ignores_unknown_and_keeps_arbitrary_payload() {
        let e: MessageEnvelope = serde_json::from_str(&format!(
            r#"{{"session_id":"{SID}","sender_agent_id":"a::b","payload":{{"action":"rfq","amount":1000,"f":1.5}},"nonce":"n","timestamp":-5,"signature":"s","client_seq":7,"extra":{{}}}}"#
        ))
        .unwrap();
        assert_eq!(e.payload["amount"], Value::from(1000));
        assert!(e.payload["amount"].is_u64());
        assert!(e.payload["f"].is_f64());
        assert_eq!(e.timestamp, -5);
        assert_eq!(e.client_seq, Some(7));
    }

    #[test]
    fn cipher_blob_rsa_omits_ephemeral_pubkey() {
        let b: CipherBlob = roundtrip_exact(
            r#"{"ciphertext":"Y3Q=","iv":"AAECAwQFBgcICQoL","encrypted_key":"a2V5"}"#,
        );
        assert_eq!(b.ephemeral_pubkey, None);
        assert!(!serde_json::to_string(&b)
            .unwrap()
            .contains("ephemeral_pubkey"));
    }

    #[test]
    fn cipher_blob_ec_from_spec_appendix_a1() {
        let json = r#"{"ciphertext":"PCC_dauAsET-KPDl0J0NH-b0vRajMhheFEWV5GQFb9NlMpSHjbV34ACGRc_g4kRUgXsd8HWMfKS5lIJ9m3Z2xh78Ei4=","iv":"AAECAwQFBgcICQoL","encrypted_key":"_pRo54WSpXp8CVikdKNyekEIggxo5LNkQ-Kktroo2Co=","ephemeral_pubkey":"LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KTUZrd0V3WUhLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFdlRkYmxacnlIMG9EejF1YVJ1M1hiZW5yZVFMNgpTa0M1MEVxa2VWeFBqay9ZMU91d2hsdUhqcEpqTFhwWVFnOGN3a0cvSzk3SlRUQTREZS84L1NETmNRPT0KLS0tLS1FTkQgUFVCTElDIEtFWS0tLS0tCg=="}"#;
        let b: CipherBlob = roundtrip_exact(json);
        assert!(b.ephemeral_pubkey.as_deref().unwrap().starts_with("LS0t"));
        // The same blob carried as an envelope payload converts losslessly.
        let as_map: Map<String, Value> = serde_json::from_str(json).unwrap();
        let back: CipherBlob = serde_json::from_value(Value::Object(as_map)).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn message_accepted_roundtrip() {
        let a: MessageAccepted =
            roundtrip_exact(&format!(r#"{{"status":"accepted","session_id":"{SID}"}}"#));
        assert_eq!(a.status, "accepted");
    }

    #[test]
    fn poll_query_default_after() {
        let q: MessagePollQuery = serde_json::from_str("{}").unwrap();
        assert_eq!(q.after, -1);
        assert_eq!(q, MessagePollQuery::default());
    }

    #[test]
    fn inbox_message_emits_nulls_and_keeps_zero() {
        let m: Vec<InboxMessage> = roundtrip_exact(
            r#"[{"seq":0,"sender_agent_id":"acme::buyer","payload":{"ciphertext":"Y3Q=","encrypted_key":"a2V5","iv":"AAEC"},"nonce":"n1","timestamp":"2026-04-08T12:00:00.123456Z","signature":"c2ln","client_seq":0},{"seq":2,"sender_agent_id":"acme::buyer","payload":{},"nonce":"n2","timestamp":"2026-04-08T12:00:00Z","signature":null,"client_seq":null}]"#,
        );
        assert_eq!(m[0].client_seq, Some(0));
        assert_eq!(m[1].client_seq, None);
        assert_eq!(m[1].signature, None);
    }

    #[test]
    fn notification_roundtrip() {
        let n: Vec<Notification> = roundtrip_exact(&format!(
            r#"[{{"id":"0123456789abcdef0123456789abcdef","type":"session_pending","title":"Session request from acme::buyer","body":"Capabilities: order.read, order.write","reference_id":"{SID}","created_at":"2026-04-08T12:00:00.123456+00:00"}}]"#
        ));
        assert_eq!(n[0].kind, NotificationType::SessionPending);
        assert_eq!(n[0].reference_id.as_deref(), Some(SID));
    }

    #[test]
    fn rfq_create_defaults_and_roundtrip() {
        let r: RfqCreateRequest =
            serde_json::from_str(r#"{"capability_filter":["quote"],"payload":{"sku":"X"}}"#)
                .unwrap();
        assert_eq!(r.timeout_seconds, 30);
        assert!(r.context.is_empty());
        let r: RfqCreateRequest = roundtrip_exact(
            r#"{"capability_filter":["quote","ship"],"payload":{"qty":5,"sku":"X"},"timeout_seconds":5,"context":{"k":"v"}}"#,
        );
        assert_eq!(r.timeout_seconds, 5);
    }

    #[test]
    fn rfq_respond_roundtrip() {
        let r: RfqRespondRequest = roundtrip_exact(r#"{"payload":{"price":9.5}}"#);
        assert_eq!(r.payload["price"], Value::from(9.5));
        let a: RfqRespondAccepted =
            roundtrip_exact(&format!(r#"{{"status":"accepted","rfq_id":"{SID}"}}"#));
        assert_eq!(a.rfq_id, SID);
    }

    #[test]
    fn rfq_response_roundtrip() {
        let r: RfqResponse = roundtrip_exact(&format!(
            r#"{{"rfq_id":"{SID}","status":"closed","matched_agents":["beta::seller"],"quotes":[{{"responder_agent_id":"beta::seller","responder_org_id":"beta","payload":{{"price":10}},"received_at":"2026-04-08T12:00:03Z"}}],"created_at":"2026-04-08T12:00:00Z","closed_at":"2026-04-08T12:00:03Z"}}"#
        ));
        assert_eq!(r.status, RfqStatus::Closed);
        assert_eq!(r.quotes[0].responder_org_id, "beta");
        let empty: RfqResponse = roundtrip_exact(&format!(
            r#"{{"rfq_id":"{SID}","status":"open","matched_agents":[],"quotes":[],"created_at":"t","closed_at":null}}"#
        ));
        assert_eq!(empty.closed_at, None);
    }
}
