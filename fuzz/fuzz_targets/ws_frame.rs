//! WebSocket frames of `GET /v1/broker/ws`, both directions.
//!
//! Broker side: the first frame's auth handling of `broker/src/ws/mod.rs::authenticate`, step
//! for step — a text (first byte even) or binary (odd) frame parsed as JSON, then as
//! `wire::ws::ClientFrame`; an `auth` frame's token goes through the key ring's `kid` lookup and
//! `TokenVerifier::verify`, must be DPoP-bound (`cnf.jkt`), and its proof through the full DPoP
//! verification (`GET`, the WebSocket `htu`, `ath`, server nonces, replay store) whose key must
//! be the token's. `authenticate` itself is private and needs a live socket, database and key
//! ring, so the target calls the same public functions in the same order with fixed keys. Any
//! later frame takes the same JSON → `ClientFrame` path (ping / pong / resume / other).
//!
//! Proxy side: the same bytes as a broker → proxy frame (`wire::ws::ServerFrame`), as the
//! proxy's uplink (`proxy/src/uplink/events.rs`) reads them.
//!
//! Invariant: an authenticated socket's proof key is the key named by the token's `cnf.jkt`,
//! which only the broker key can sign (the seeds hold a valid token + proof pair made with the
//! fixtures).
#![no_main]

use cullis_fuzz::{ready, split_selector, BROKER_KEY, DPOP_KEY, NOW};
use cullis_shared::jose::access_token::{header_kid, TokenVerifier};
use cullis_shared::jose::dpop::{self, Expectations, IatWindow, ServerNonces};
use cullis_shared::jose::jwk;
use cullis_shared::replay::MemoryReplayStore;
use cullis_shared::wire::ws::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::LazyLock;

static VERIFIER: LazyLock<TokenVerifier> =
    LazyLock::new(|| TokenVerifier::new(BROKER_KEY.public_key().clone()).expect("P-256 verifier"));
static BROKER_KID: LazyLock<String> =
    LazyLock::new(|| jwk::key_thumbprint(BROKER_KEY.public_key()));
static DPOP_JKT: LazyLock<String> = LazyLock::new(|| jwk::key_thumbprint(DPOP_KEY.public_key()));

/// `BROKER_PUBLIC_URL` + the WebSocket path, as `expected_htu` builds it.
const WS_HTU: &str = "https://broker.example.com/v1/broker/ws";

/// The first frame's checks; `Err` carries the `auth_error` detail the broker would send.
fn authenticate(frame: ClientFrame) -> Result<String, &'static str> {
    let (token, proof) = match frame {
        ClientFrame::Auth {
            token: Some(token),
            dpop_proof,
        } if !token.is_empty() => (token, dpop_proof.unwrap_or_default()),
        _ => return Err("Missing or malformed auth message"),
    };
    // The key ring: the `kid` names a known key, which verifies the token.
    if header_kid(&token).as_deref() != Some(BROKER_KID.as_str()) {
        return Err("Token invalid or expired");
    }
    let claims = VERIFIER
        .verify(&token, NOW)
        .map_err(|_| "Token invalid or expired")?;
    if proof.is_empty() {
        return Err("DPoP proof required");
    }
    let jkt = claims.jkt().ok_or("Token is not DPoP-bound")?.to_owned();
    let expect = Expectations {
        htm: "GET",
        htu: WS_HTU,
        access_token: Some(&token),
        nonces: Some(ServerNonces {
            current: "ws-nonce-current",
            previous: Some("ws-nonce-previous"),
        }),
        now: NOW as f64,
        iat_window: IatWindow::default(),
    };
    let store = MemoryReplayStore::new();
    let proof_jkt =
        ready(dpop::verify(&proof, &expect, &store)).map_err(|_| "Invalid DPoP proof")?;
    if proof_jkt != jkt {
        return Err("DPoP proof key mismatch");
    }
    Ok(proof_jkt)
}

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = split_selector(data);
    let parsed = if selector & 1 == 0 {
        match cullis_fuzz::text(rest) {
            Some(text) => serde_json::from_str::<Value>(text).ok(),
            None => return,
        }
    } else {
        serde_json::from_slice::<Value>(rest).ok()
    };
    let Some(value) = parsed else {
        return;
    };
    if let Ok(frame) = serde_json::from_value::<ClientFrame>(value.clone()) {
        if let Ok(jkt) = authenticate(frame.clone()) {
            cullis_fuzz::trace("ws: authenticated");
            assert_eq!(jkt, *DPOP_JKT, "authenticated with the token's key");
        }
        match frame {
            ClientFrame::Ping | ClientFrame::Pong | ClientFrame::Other => {}
            ClientFrame::Resume {
                session_id,
                last_seq,
            } => {
                let _ = (session_id, last_seq.unwrap_or(-1));
            }
            ClientFrame::Auth { .. } => {
                // Every variant but `Other` serializes and reads back as itself.
                let text = serde_json::to_string(&frame).expect("a client frame serializes");
                let again: ClientFrame = serde_json::from_str(&text).expect("and parses back");
                assert_eq!(again, frame);
            }
        }
    }
    if let Ok(frame) = serde_json::from_value::<ServerFrame>(value) {
        if let ServerFrame::NewMessage { message, .. } = &frame {
            let _ = (message.seq, message.client_seq);
        }
        let _ = serde_json::to_string(&frame).expect("a server frame serializes");
    }
});
