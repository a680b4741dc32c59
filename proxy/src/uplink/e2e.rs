//! End-to-end crypto on behalf of agents: the public-key cache (300 s TTL, invalidated on
//! failure), sealing a send, opening a poll.
//!
//! Which envelope version a recipient gets: `cullis-e2e-v2-aeskw` when the broker's public-key
//! answer lists it under `e2e` (the recipient's org declared it in the agent's registration
//! metadata), else `cullis-e2e-v1`, which every first-generation client opens. Opening takes
//! whichever arrives.
//!
//! An inbox item that cannot be opened does not fail the whole poll (one poisoned message would
//! otherwise block an agent's inbox forever): it is returned with `verified: false`, `error` set,
//! and the payload `{"cullis_error": "<why>"}`, and a warning is logged with its seq.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cullis_shared::envelope::{self, CipherBlob, E2eVersion, InnerSignature, MessageFields};
use cullis_shared::keys::PublicKey;
use cullis_shared::wire::broker::{InboxMessage, MessageEnvelope};
use cullis_shared::wire::registry::PublicKeyResponse;
use http::Method;
use serde_json::{json, Value};

use super::auth::unix_now;
use super::error::UplinkError;
use super::{path_segment, AgentCredentials, ReceivedMessage, Uplink};

/// How long a fetched public key is trusted without asking the broker again.
const KEY_TTL: Duration = Duration::from_secs(300);

/// A peer's public key and the newest envelope version it declared that we seal.
type PeerKey = (Arc<PublicKey>, E2eVersion);

/// Public keys by agent id. Keys are public and the same for every caller, so one cache
/// serves all local agents.
#[derive(Default)]
pub(crate) struct KeyCache(Mutex<HashMap<String, (PeerKey, Instant)>>);

impl KeyCache {
    fn get(&self, agent_id: &str) -> Option<PeerKey> {
        let entries = self.0.lock().expect("lock");
        entries
            .get(agent_id)
            .filter(|(_, at)| at.elapsed() < KEY_TTL)
            .map(|(peer, _)| peer.clone())
    }

    fn put(&self, agent_id: &str, peer: PeerKey) {
        self.0
            .lock()
            .expect("lock")
            .insert(agent_id.to_owned(), (peer, Instant::now()));
    }

    pub fn invalidate(&self, agent_id: &str) {
        self.0.lock().expect("lock").remove(agent_id);
    }
}

/// The newest version in the broker's `e2e` list that we seal; v1 when it lists none.
fn seal_version(declared: Option<&[String]>) -> E2eVersion {
    declared
        .unwrap_or_default()
        .iter()
        .filter_map(|name| E2eVersion::from_name(name))
        .max_by_key(|version| E2eVersion::ALL.iter().position(|v| v == version))
        .unwrap_or(E2eVersion::V1)
}

impl Uplink {
    /// `agent_id`'s public key, from the cache or `GET /v1/registry/agents/{id}/public-key`.
    pub(crate) async fn public_key(
        &self,
        caller: &AgentCredentials,
        agent_id: &str,
    ) -> Result<Arc<PublicKey>, UplinkError> {
        Ok(self.peer_key(caller, agent_id).await?.0)
    }

    /// `agent_id`'s public key and the envelope version to seal to it.
    async fn peer_key(
        &self,
        caller: &AgentCredentials,
        agent_id: &str,
    ) -> Result<PeerKey, UplinkError> {
        if let Some(peer) = self.inner.keys.get(agent_id) {
            return Ok(peer);
        }
        let path = format!("/v1/registry/agents/{}/public-key", path_segment(agent_id));
        let response = self
            .inner
            .auth
            .call(caller, Method::GET, &path, None)
            .await?;
        let body: PublicKeyResponse = response.json("public-key")?;
        let key = PublicKey::from_spki_pem(&body.public_key_pem).map_err(|e| {
            UplinkError::Protocol(format!("public key of {agent_id} unreadable: {e}"))
        })?;
        let peer = (Arc::new(key), seal_version(body.e2e.as_deref()));
        self.inner.keys.put(agent_id, peer.clone());
        Ok(peer)
    }

    /// Seals `payload` for `recipient_agent_id` and builds the broker envelope.
    pub(crate) async fn seal_envelope(
        &self,
        agent: &AgentCredentials,
        session_id: &str,
        recipient_agent_id: &str,
        payload: &Value,
        client_seq: u64,
    ) -> Result<MessageEnvelope, UplinkError> {
        let (recipient, version) = self.peer_key(agent, recipient_agent_id).await?;
        let nonce = uuid::Uuid::new_v4().to_string();
        let timestamp = unix_now();
        let fields = MessageFields {
            session_id,
            sender_agent_id: &agent.agent_id,
            nonce: &nonce,
            timestamp,
            client_seq: Some(client_seq),
        };
        let sealed = tracing::info_span!("e2e.seal")
            .in_scope(|| envelope::seal_as(version, &agent.key, &recipient, &fields, payload));
        count("seal", sealed.is_ok());
        let sealed = sealed.map_err(|e| {
            self.inner.keys.invalidate(recipient_agent_id);
            UplinkError::Crypto(e.to_string())
        })?;
        let blob = match serde_json::to_value(&sealed.blob) {
            Ok(Value::Object(map)) => map,
            _ => return Err(UplinkError::Crypto("cipher blob is not an object".into())),
        };
        Ok(MessageEnvelope {
            session_id: session_id.to_owned(),
            sender_agent_id: agent.agent_id.clone(),
            payload: blob,
            nonce,
            timestamp,
            signature: sealed.signature,
            client_seq: Some(client_seq),
        })
    }

    /// Opens one inbox item; never fails (see the module doc).
    pub(crate) async fn open_item(
        &self,
        agent: &AgentCredentials,
        session_id: &str,
        item: InboxMessage,
    ) -> ReceivedMessage {
        let outcome = {
            use tracing::Instrument;
            let span = tracing::info_span!("e2e.open", message.seq = item.seq);
            self.try_open(agent, session_id, &item)
                .instrument(span)
                .await
        };
        count("open", outcome.is_ok());
        let (payload, verified, error) = match outcome {
            Ok((payload, verified)) => (payload, verified, None),
            Err(why) => {
                tracing::warn!(
                    agent_id = %agent.agent_id,
                    session_id,
                    seq = item.seq,
                    sender = %item.sender_agent_id,
                    "inbox message could not be opened: {why}"
                );
                (json!({ "cullis_error": why }), false, Some(why))
            }
        };
        ReceivedMessage {
            seq: item.seq as i64,
            msg_id: item.seq.to_string(),
            sender_agent_id: item.sender_agent_id,
            payload,
            nonce: item.nonce,
            timestamp: item.timestamp,
            signature: item.signature.unwrap_or_default(),
            client_seq: item.client_seq,
            verified,
            error,
        }
    }

    /// Decrypts and checks the inner signature; when it does not verify under a cached key, the
    /// sender may have rotated: fetch the key again and check once more.
    async fn try_open(
        &self,
        agent: &AgentCredentials,
        session_id: &str,
        item: &InboxMessage,
    ) -> Result<(Value, bool), String> {
        let blob: CipherBlob = serde_json::from_value(Value::Object(item.payload.clone()))
            .map_err(|_| format!("message {} is not an E2E cipher blob", item.seq))?;
        let signed = item.signed_timestamp.map(|ts| (item.nonce.as_str(), ts));
        let mut retried = false;
        loop {
            let sender_key = self.public_key(agent, &item.sender_agent_id).await.ok();
            let opened = envelope::open(
                &agent.key,
                session_id,
                &item.sender_agent_id,
                item.client_seq,
                &blob,
                signed,
                sender_key.as_deref(),
            )
            .map_err(|e| format!("message {}: {e}", item.seq))?;
            if opened.inner == InnerSignature::Invalid && !retried {
                self.inner.keys.invalidate(&item.sender_agent_id);
                retried = true;
                continue;
            }
            return Ok((opened.payload, opened.inner == InnerSignature::Verified));
        }
    }
}

/// `cullis_proxy_e2e_operations_total{operation, result}`.
fn count(operation: &'static str, ok: bool) {
    crate::telemetry::metrics().e2e.add(
        1,
        &[
            opentelemetry::KeyValue::new("operation", operation),
            opentelemetry::KeyValue::new("result", if ok { "ok" } else { "error" }),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_the_newest_declared_version_we_know_and_v1_by_default() {
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(seal_version(None), E2eVersion::V1);
        assert_eq!(seal_version(Some(&[])), E2eVersion::V1);
        assert_eq!(
            seal_version(Some(&names(&["cullis-e2e-v2-aeskw"]))),
            E2eVersion::V2AesKw
        );
        assert_eq!(
            seal_version(Some(&names(&["cullis-e2e-v2-aeskw", "cullis-e2e-v1"]))),
            E2eVersion::V2AesKw
        );
        assert_eq!(
            seal_version(Some(&names(&["cullis-e2e-v9", "cullis-e2e-v1"]))),
            E2eVersion::V1
        );
    }
}
