//! Stage 5: live WebSockets — one authenticated socket per agent (the broker keeps one per
//! agent id), held open; the broker's memory per idle socket and its CPU while they idle;
//! send → push latency across the sockets that are session targets; and the
//! `WS_MAX_CONNECTIONS` cap (upgrades past it refused with HTTP 503).

use crate::measure::{self, Failure, Tally, Timed};
use crate::sessions::Pair;
use crate::world::Agent;
use cullis_e2e::client::AgentSession;
use cullis_e2e::{messaging, ws};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{self, Message};

/// Upgrade + auth answer, and a push after its send, must come within this.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends waiting for their push: ciphertext (unique per envelope; push frames carry no
/// nonce) → where to report the arrival time.
type Pending = Mutex<HashMap<String, oneshot::Sender<Instant>>>;

/// One open socket: the write half (to close it) and the task reading it.
struct Held {
    sink: SplitSink<ws::Socket, Message>,
    reader: tokio::task::JoinHandle<()>,
}

/// The sockets held open, and what their readers share.
pub struct Sockets {
    held: Vec<Held>,
    pending: Arc<Pending>,
    /// Set before the harness closes its sockets: a close after that is not a drop.
    closing: Arc<AtomicBool>,
    /// Sockets the broker closed (or lost) while the harness held them.
    pub dropped: Arc<Tally>,
}

impl Sockets {
    pub fn len(&self) -> usize {
        self.held.len()
    }
}

/// Why a socket did not open.
enum OpenError {
    /// The upgrade was answered with an HTTP error (the cap's 503), with its `detail`.
    Refused(u16, String),
    /// Upgraded, then the first-frame auth was refused (e.g. the per-org cap).
    AuthRefused(String),
    Failed(Failure),
}

/// Connects and authenticates with the first frame (token + DPoP proof), as agents do;
/// errors are answers, not panics.
async fn open(session: &AgentSession, base: &str) -> Result<ws::Socket, OpenError> {
    let url = format!("{}/v1/broker/ws", base.replacen("http", "ws", 1));
    let mut socket =
        match tokio::time::timeout(SOCKET_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
            Err(_) => return Err(OpenError::Failed(Failure::Timeout)),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response.body().as_deref().unwrap_or_default();
                let detail = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v["detail"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
                return Err(OpenError::Refused(response.status().as_u16(), detail));
            }
            Ok(Err(error)) => {
                return Err(OpenError::Failed(Failure::Error(format!(
                    "upgrade: {error}"
                ))))
            }
            Ok(Ok((socket, _))) => socket,
        };
    let auth = ws::auth_frame(session, base).to_string();
    if let Err(error) = socket.send(Message::Text(auth.into())).await {
        return Err(OpenError::Failed(Failure::Error(format!(
            "auth send: {error}"
        ))));
    }
    loop {
        match tokio::time::timeout(SOCKET_TIMEOUT, socket.next()).await {
            Err(_) => return Err(OpenError::Failed(Failure::Timeout)),
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                return match frame["type"].as_str() {
                    Some("auth_ok") => Ok(socket),
                    _ => Err(OpenError::AuthRefused(
                        frame["detail"].as_str().unwrap_or(&text).to_owned(),
                    )),
                };
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(OpenError::AuthRefused(format!(
                    "closed before auth_ok: {frame:?}"
                )))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => {
                return Err(OpenError::Failed(Failure::Error(format!(
                    "auth answer: {error}"
                ))))
            }
            Ok(None) => {
                return Err(OpenError::Failed(Failure::Error(
                    "closed before auth_ok".into(),
                )))
            }
        }
    }
}

/// Reads a held socket until it ends: stamps `new_message` pushes the fan-out waits for
/// (stamped on arrival, before parsing), and counts a close the harness did not ask for.
async fn read(
    mut stream: SplitStream<ws::Socket>,
    pending: Arc<Pending>,
    closing: Arc<AtomicBool>,
    dropped: Arc<Tally>,
) {
    let mut why = "the connection ended".to_owned();
    while let Some(message) = stream.next().await {
        let arrived = Instant::now();
        match message {
            Ok(Message::Text(text)) => {
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if frame["type"] != "new_message" {
                    continue;
                }
                if let Some(ciphertext) = frame["message"]["payload"]["ciphertext"].as_str() {
                    if let Some(waiting) = pending.lock().unwrap().remove(ciphertext) {
                        let _ = waiting.send(arrived);
                    }
                }
            }
            // Keep reading after a Close: the library sends its echo as the stream goes on.
            Ok(Message::Close(frame)) => why = format!("closed by the broker: {frame:?}"),
            Ok(_) => {}
            Err(error) => {
                why = format!("read error: {error}");
                break;
            }
        }
    }
    if !closing.load(Ordering::Relaxed) {
        dropped.fail(Failure::Error(why));
    }
}

pub struct OpenResult {
    pub tried: usize,
    pub tally: Arc<Tally>,
    pub elapsed: Duration,
    /// Agent positions (in the list given) whose socket is open.
    pub open: Vec<bool>,
}

impl OpenResult {
    pub fn rate(&self) -> f64 {
        self.tally.oks() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Opens one socket per session in `sessions`, `concurrency` upgrades in flight, and keeps
/// them open with a reader task each.
pub async fn open_all(
    base: &str,
    sessions: &[Arc<AgentSession>],
    concurrency: usize,
    pid: Option<u32>,
) -> (Sockets, OpenResult) {
    let pending: Arc<Pending> = Arc::default();
    let closing = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(Tally::default());
    let tally = Arc::new(Tally::default());
    let _progress = measure::Progress::start("sockets", sessions.len(), tally.clone(), pid);
    let start = Instant::now();
    let opened: Vec<Option<Held>> = futures_util::stream::iter(sessions)
        .map(|session| {
            let (pending, closing, dropped, tally) = (
                pending.clone(),
                closing.clone(),
                dropped.clone(),
                tally.clone(),
            );
            async move {
                match open(session, base).await {
                    Ok(socket) => {
                        tally.ok();
                        let (sink, stream) = socket.split();
                        let reader = tokio::spawn(read(stream, pending, closing, dropped));
                        Some(Held { sink, reader })
                    }
                    Err(error) => {
                        tally.fail(match error {
                            OpenError::Refused(status, detail) => {
                                Failure::Error(format!("upgrade refused: HTTP {status} {detail}"))
                            }
                            OpenError::AuthRefused(detail) => {
                                Failure::Error(format!("auth refused: {detail}"))
                            }
                            OpenError::Failed(failure) => failure,
                        });
                        None
                    }
                }
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let elapsed = start.elapsed();
    let open = opened.iter().map(Option::is_some).collect();
    let held = opened.into_iter().flatten().collect();
    (
        Sockets {
            held,
            pending,
            closing,
            dropped,
        },
        OpenResult {
            tried: sessions.len(),
            tally,
            elapsed,
            open,
        },
    )
}

/// Send → push latency: `clients` workers each send a sealed envelope from an initiator and
/// wait for its `new_message` push at the target's socket, cycling over the `targets` (pair
/// indexes whose target holds a socket) so the pushes fan out across the sockets. The time
/// runs from just before the POST (the sealing is the client's and not timed) to the push's
/// arrival.
pub async fn fanout(
    pairs: &Arc<Vec<Pair>>,
    targets: Vec<usize>,
    sockets: &Sockets,
    clients: usize,
    seconds: Duration,
    pid: Option<u32>,
) -> Timed {
    let targets = Arc::new(targets);
    let client_seq: Arc<Vec<AtomicU64>> =
        Arc::new(pairs.iter().map(|_| AtomicU64::new(1)).collect());
    let pending = sockets.pending.clone();
    let pairs = pairs.clone();
    let workers = clients.max(1);
    let work = Arc::new(move |worker: usize, iteration: usize| {
        let (pairs, targets, client_seq, pending) = (
            pairs.clone(),
            targets.clone(),
            client_seq.clone(),
            pending.clone(),
        );
        async move {
            let k = targets[(worker + iteration * workers) % targets.len()];
            let pair = &pairs[k];
            let session_id = pair.session_id.as_deref().unwrap_or_default();
            let payload = json!({"order": format!("PO-{iteration}"), "items": [{"sku": "WIDGET-42", "qty": 100}]});
            let envelope = messaging::seal(
                &pair.initiator.identity,
                pair.target.identity.key.public_key(),
                session_id,
                &payload,
                client_seq[k].fetch_add(1, Ordering::Relaxed),
            );
            let key = envelope["payload"]["ciphertext"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let (arrival, arrived) = oneshot::channel();
            pending.lock().unwrap().insert(key.clone(), arrival);
            let forget = || pending.lock().unwrap().remove(&key);
            let path = format!("/v1/broker/sessions/{session_id}/messages");
            let start = Instant::now();
            match pair
                .initiator
                .session
                .try_call_raw(Method::POST, &path, Some(&envelope))
                .await
            {
                Ok((StatusCode::ACCEPTED, _)) => {}
                Ok((status, body)) => {
                    forget();
                    return Err(Failure::status("send", status, &body));
                }
                Err(error) => {
                    forget();
                    return Err(error.into());
                }
            }
            match tokio::time::timeout(SOCKET_TIMEOUT, arrived).await {
                Ok(Ok(at)) => Ok(at.saturating_duration_since(start)),
                _ => {
                    forget();
                    Err(Failure::Timeout)
                }
            }
        }
    });
    measure::timed(workers, seconds, pid, work).await
}

/// The cap check: with `held` sockets open and the broker's cap at `cap`, opens sockets for
/// `extra` agents (more than the room left) and sorts the answers.
pub struct CapCheck {
    pub cap: usize,
    pub held: usize,
    pub tried: usize,
    pub opened: usize,
    /// Upgrades refused with an HTTP status: how many, and the first status and detail.
    pub refused: usize,
    pub first_refusal: Option<(u16, String)>,
    /// Upgraded, then refused at auth (e.g. the per-org cap).
    pub auth_refused: usize,
    pub failed: Tally,
}

pub async fn cap_check(base: &str, extra: &[Agent], cap: usize, held: usize) -> CapCheck {
    let mut check = CapCheck {
        cap,
        held,
        tried: extra.len(),
        opened: 0,
        refused: 0,
        first_refusal: None,
        auth_refused: 0,
        failed: Tally::default(),
    };
    let mut sockets = Vec::new();
    // One at a time: the answers then say exactly where the cap bit.
    for agent in extra {
        match open(&agent.session, base).await {
            Ok(socket) => {
                check.opened += 1;
                sockets.push(socket);
            }
            Err(OpenError::Refused(status, detail)) => {
                check.refused += 1;
                check.first_refusal.get_or_insert((status, detail));
            }
            Err(OpenError::AuthRefused(detail)) => {
                check.auth_refused += 1;
                check
                    .failed
                    .fail(Failure::Error(format!("auth refused: {detail}")));
            }
            Err(OpenError::Failed(failure)) => check.failed.fail(failure),
        }
    }
    for mut socket in sockets {
        let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
    }
    check
}

/// Closes every held socket as a client does (Close frame, then the broker's echo ends the
/// stream), `concurrency` at a time; a socket not closed within 5 s is dropped. Returns the
/// numbers closed cleanly and dropped.
pub async fn close_all(sockets: Sockets, concurrency: usize) -> (usize, usize) {
    sockets.closing.store(true, Ordering::Relaxed);
    let outcomes: Vec<bool> = futures_util::stream::iter(sockets.held)
        .map(|mut held| async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), held.sink.send(Message::Close(None)))
                    .await;
            match tokio::time::timeout(Duration::from_secs(5), &mut held.reader).await {
                Ok(_) => true,
                Err(_) => {
                    held.reader.abort();
                    false
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let clean = outcomes.iter().filter(|c| **c).count();
    (clean, outcomes.len() - clean)
}
