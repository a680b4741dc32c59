//! [`Hub`]: this process's sockets (one per agent; a new one replaces the old), the per-org and
//! per-replica caps, and cross-process delivery through Redis pub/sub.

use cullis_shared::wire::ws::ServerFrame;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const CHANNEL_PREFIX: &str = "ws:agent:";

/// What a registered socket's task is told to do.
#[derive(Debug)]
pub(super) enum Command {
    /// Boxed: the channel allocates its first block of 32 slots with the socket, so the slot
    /// size is paid by every idle socket (a frame inline made it ~6 KiB).
    Frame(Box<ServerFrame>),
    Close(u16, String),
}

struct Connection {
    id: u64,
    org_id: String,
    tx: mpsc::UnboundedSender<Command>,
}

/// What travels over Redis.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Envelope {
    Frame { frame: ServerFrame },
    Disconnect,
}

/// This process's sockets, plus cross-process delivery through Redis.
#[derive(Clone)]
pub struct Hub(Arc<HubInner>);

struct HubInner {
    sockets: Mutex<Sockets>,
    next_id: AtomicU64,
    redis: Option<redis::aio::ConnectionManager>,
    /// Sockets one organisation may hold on this replica (`WS_MAX_CONNECTIONS_PER_ORG`).
    max_per_org: usize,
    /// Sockets this replica holds in all, authenticated or not (`WS_MAX_CONNECTIONS`).
    max_total: usize,
    /// Upgraded sockets alive now (each holds a [`Slot`]).
    open: AtomicUsize,
}

/// The registered (authenticated) sockets, with a count per org so that registering stays
/// O(1) with thousands of sockets.
#[derive(Default)]
struct Sockets {
    by_agent: HashMap<String, Connection>,
    per_org: HashMap<String, usize>,
}

impl Sockets {
    fn insert(&mut self, agent_id: &str, connection: Connection) -> Option<Connection> {
        *self.per_org.entry(connection.org_id.clone()).or_default() += 1;
        let previous = self.by_agent.insert(agent_id.to_owned(), connection);
        if let Some(previous) = &previous {
            self.forget_org_socket(&previous.org_id);
        }
        previous
    }

    fn remove(&mut self, agent_id: &str) -> Option<Connection> {
        let removed = self.by_agent.remove(agent_id)?;
        self.forget_org_socket(&removed.org_id);
        Some(removed)
    }

    fn forget_org_socket(&mut self, org_id: &str) {
        if let Some(count) = self.per_org.get_mut(org_id) {
            *count -= 1;
            if *count == 0 {
                self.per_org.remove(org_id);
            }
        }
    }

    /// Publishes the number of registered sockets (after any change).
    fn publish_count(&self) {
        crate::telemetry::metrics()
            .websocket_connections
            .store(self.by_agent.len() as i64, Ordering::Relaxed);
    }
}

/// A place under `WS_MAX_CONNECTIONS`, held by one upgraded socket for its whole life.
pub struct Slot(Arc<HubInner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hub {
    pub fn new(
        redis: Option<redis::aio::ConnectionManager>,
        max_per_org: usize,
        max_total: usize,
    ) -> Hub {
        Hub(Arc::new(HubInner {
            sockets: Mutex::new(Sockets::default()),
            next_id: AtomicU64::new(1),
            redis,
            max_per_org,
            max_total,
            open: AtomicUsize::new(0),
        }))
    }

    /// A place for one more socket, `None` when this replica holds `WS_MAX_CONNECTIONS`.
    /// Taken before the upgrade, so a refused client gets an HTTP answer, not a dropped socket.
    pub fn reserve(&self) -> Option<Slot> {
        let taken = self
            .0
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.0.max_total).then_some(open + 1)
            });
        taken.ok().map(|_| Slot(self.0.clone()))
    }

    /// The `WS_MAX_CONNECTIONS` cap.
    pub fn capacity(&self) -> usize {
        self.0.max_total
    }

    /// Sends `frame` to the agent's socket, wherever it is connected (dropped if nowhere).
    pub async fn push(&self, agent_id: &str, frame: ServerFrame) {
        self.dispatch(agent_id, Envelope::Frame { frame }).await;
    }

    /// Closes the agent's socket (code 1000), wherever it is connected.
    pub async fn disconnect(&self, agent_id: &str) {
        self.dispatch(agent_id, Envelope::Disconnect).await;
    }

    /// Whether the agent has a socket on this process.
    pub fn is_connected_here(&self, agent_id: &str) -> bool {
        self.lock().by_agent.contains_key(agent_id)
    }

    async fn dispatch(&self, agent_id: &str, envelope: Envelope) {
        if let Some(mut redis) = self.0.redis.clone() {
            let channel = format!("{CHANNEL_PREFIX}{agent_id}");
            match serde_json::to_string(&envelope) {
                Ok(text) => {
                    let mut command = redis::cmd("PUBLISH");
                    command.arg(&channel).arg(text);
                    let publish = command.query_async::<i64>(&mut redis);
                    let published = crate::telemetry::redis_call("PUBLISH", publish).await;
                    match published {
                        Ok(_) => return,
                        Err(e) => tracing::warn!(
                            "ws: PUBLISH to {channel} failed ({e}); delivering locally only"
                        ),
                    }
                }
                Err(e) => tracing::error!("ws: cannot encode push: {e}"),
            }
        }
        self.deliver_local(agent_id, envelope);
    }

    /// Hands an envelope to this process's socket for `agent_id`, if any.
    fn deliver_local(&self, agent_id: &str, envelope: Envelope) {
        let command = match envelope {
            Envelope::Frame { frame } => Command::Frame(Box::new(frame)),
            Envelope::Disconnect => Command::Close(1000, String::new()),
        };
        let mut sockets = self.lock();
        let dead = match sockets.by_agent.get(agent_id) {
            Some(connection) => connection.tx.send(command).is_err(),
            None => false,
        };
        if dead {
            sockets.remove(agent_id);
            sockets.publish_count();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sockets> {
        self.0
            .sockets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a socket, closing the agent's previous one. `None` when the org is at its cap.
    pub(super) fn register(
        &self,
        agent_id: &str,
        org_id: &str,
    ) -> Option<(u64, mpsc::UnboundedReceiver<Command>)> {
        let mut sockets = self.lock();
        let replaces_own = sockets
            .by_agent
            .get(agent_id)
            .is_some_and(|c| c.org_id == org_id);
        let org_count = sockets.per_org.get(org_id).copied().unwrap_or(0);
        if org_count - usize::from(replaces_own) >= self.0.max_per_org {
            return None;
        }
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let previous = sockets.insert(
            agent_id,
            Connection {
                id,
                org_id: org_id.to_owned(),
                tx,
            },
        );
        sockets.publish_count();
        if let Some(previous) = previous {
            let _ = previous.tx.send(Command::Close(1000, String::new()));
        }
        Some((id, rx))
    }

    pub(super) fn unregister(&self, agent_id: &str, id: u64) {
        let mut sockets = self.lock();
        if sockets.by_agent.get(agent_id).is_some_and(|c| c.id == id) {
            sockets.remove(agent_id);
            sockets.publish_count();
        }
    }

    /// Closes every local socket (shutdown: 1012 `server restarting`).
    pub fn close_all(&self, code: u16, reason: &str) {
        let mut sockets = self.lock();
        for (_, connection) in sockets.by_agent.drain() {
            let _ = connection.tx.send(Command::Close(code, reason.to_owned()));
        }
        sockets.per_org.clear();
        sockets.publish_count();
    }

    /// Subscribes to `ws:agent:*` on a dedicated pub/sub connection (the subscription is in place
    /// when this returns) and forwards what arrives to local sockets, reconnecting on loss.
    pub async fn start_redis_listener(&self, url: &str) -> Result<(), String> {
        let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}"))?;
        let pubsub = subscribe(&client).await?;
        let hub = self.clone();
        tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            loop {
                if let Some(mut connection) = pubsub.take() {
                    use futures_util::StreamExt;
                    let mut messages = connection.on_message();
                    while let Some(message) = messages.next().await {
                        hub.on_redis_message(&message);
                    }
                    tracing::warn!("ws: Redis pub/sub connection lost; reconnecting");
                    crate::telemetry::metrics()
                        .redis_errors
                        .add(1, &[opentelemetry::KeyValue::new("operation", "SUBSCRIBE")]);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                match subscribe(&client).await {
                    Ok(connection) => pubsub = Some(connection),
                    Err(e) => tracing::warn!("ws: {e}"),
                }
            }
        });
        Ok(())
    }

    fn on_redis_message(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let Some(agent_id) = channel.strip_prefix(CHANNEL_PREFIX) else {
            return;
        };
        let Ok(text) = message.get_payload::<String>() else {
            return;
        };
        match serde_json::from_str::<Envelope>(&text) {
            Ok(envelope) => self.deliver_local(agent_id, envelope),
            Err(e) => tracing::warn!("ws: ignoring malformed message on {channel}: {e}"),
        }
    }
}

async fn subscribe(client: &redis::Client) -> Result<redis::aio::PubSub, String> {
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| format!("Redis pub/sub connection: {e}"))?;
    pubsub
        .psubscribe(format!("{CHANNEL_PREFIX}*"))
        .await
        .map_err(|e| format!("Redis PSUBSCRIBE: {e}"))?;
    Ok(pubsub)
}

/// File descriptors the broker needs besides its sockets: database and Redis connections,
/// listeners, log files, the HTTP clients of PDP calls.
const SPARE_FILES: u64 = 1024;

/// Raises the soft open-files limit towards what `WS_MAX_CONNECTIONS` sockets need (up to the
/// hard limit), and says so when even that is short: past the limit `accept` fails for every
/// client, not only WebSockets.
pub fn fit_open_files_limit(max_sockets: usize) {
    let needed = max_sockets as u64 + SPARE_FILES;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur >= needed {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: needed.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        limit.rlim_cur = raised.rlim_cur;
    }
    if limit.rlim_cur < needed {
        tracing::warn!(
            "the open-files limit ({}) is below WS_MAX_CONNECTIONS ({max_sockets}) + {SPARE_FILES}: raise it (ulimit -n, LimitNOFILE=) or lower WS_MAX_CONNECTIONS",
            limit.rlim_cur
        );
    }
}
