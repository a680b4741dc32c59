//! Every instrument of the broker, created once from the global meter. Labels stay bounded:
//! org ids, route templates, fixed reason and bucket names — never agent ids, session ids or
//! raw paths.

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::LazyLock;

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| Metrics::new(&opentelemetry::global::meter(cullis_telemetry::SCOPE)));

/// The instruments (no-ops until [`super::init`] installed a meter provider).
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Binds the instruments to the provider just installed and publishes the series that alert
/// rules expect to exist before the first event.
pub(super) fn install() {
    let m = metrics();
    m.dpop_jti_replay_attempt.add(0, &[]);
    m.kms_seal_check_failed.add(0, &[]);
    m.policy_dual_org_mismatch.add(0, &[]);
    m.messages_relayed.add(0, &[]);
}

/// Why a login was refused — a closed set, so `atn_auth_deny_total{reason}` stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    RateLimited,
    InvalidRequest,
    DpopInvalid,
    AssertionInvalid,
    AssertionReplay,
    CertInvalid,
    CertRevoked,
    CertPinningMismatch,
    OrgNotActive,
    AgentInvalid,
    NoBinding,
    Unavailable,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::RateLimited => "rate_limited",
            DenyReason::InvalidRequest => "invalid_request",
            DenyReason::DpopInvalid => "dpop_invalid",
            DenyReason::AssertionInvalid => "assertion_invalid",
            DenyReason::AssertionReplay => "assertion_replay",
            DenyReason::CertInvalid => "cert_invalid",
            DenyReason::CertRevoked => "cert_revoked",
            DenyReason::CertPinningMismatch => "cert_pinning_mismatch",
            DenyReason::OrgNotActive => "org_not_active",
            DenyReason::AgentInvalid => "agent_invalid",
            DenyReason::NoBinding => "no_binding",
            DenyReason::Unavailable => "unavailable",
        }
    }

    /// Classifies a refused login by its answer. The texts are the reference's (ref-auth-crypto
    /// §2.3); an unknown one counts as an invalid assertion rather than a new label.
    pub fn of(status: u16, detail: &str) -> DenyReason {
        let has = |needle: &str| detail.contains(needle);
        match status {
            429 => DenyReason::RateLimited,
            422 => DenyReason::InvalidRequest,
            500.. => DenyReason::Unavailable,
            _ if has("DPoP") => DenyReason::DpopInvalid,
            _ if has("already used") => DenyReason::AssertionReplay,
            _ if has("revoked") => DenyReason::CertRevoked,
            _ if has("thumbprint mismatch") => DenyReason::CertPinningMismatch,
            _ if has("Organisation") || has("CA not configured") => DenyReason::OrgNotActive,
            _ if has("binding") => DenyReason::NoBinding,
            _ if has("Agent not") => DenyReason::AgentInvalid,
            _ if has("ertificate") || has("chain") || has("SPIFFE") || has("x5c") => {
                DenyReason::CertInvalid
            }
            _ => DenyReason::AssertionInvalid,
        }
    }
}

/// The broker's instruments.
pub struct Metrics {
    // The reference's (ref-broker-api §9.2), exported under the same Prometheus names.
    pub auth_success: Counter<u64>,
    pub auth_deny: Counter<u64>,
    pub session_created: Counter<u64>,
    pub session_denied: Counter<u64>,
    pub policy_allow: Counter<u64>,
    pub policy_deny: Counter<u64>,
    pub ratelimit_reject: Counter<u64>,
    pub cert_pinning_mismatch: Counter<u64>,
    pub audit_chain_verify_failed: Counter<u64>,
    pub dpop_jti_replay_attempt: Counter<u64>,
    pub revoked_token_use_attempt: Counter<u64>,
    pub kms_seal_check_failed: Counter<u64>,
    pub policy_dual_org_mismatch: Counter<u64>,
    pub auth_duration: Histogram<f64>,
    pub x509_verify_duration: Histogram<f64>,
    pub pdp_webhook_latency: Histogram<f64>,
    // This implementation's.
    pub http_duration: Histogram<f64>,
    pub messages_relayed: Counter<u64>,
    pub audit_batch_size: Histogram<u64>,
    pub redis_errors: Counter<u64>,
    pub token_cache: Counter<u64>,
    pub org_secret_cache: Counter<u64>,
    /// WebSocket upgrades refused because the replica holds `WS_MAX_CONNECTIONS` sockets.
    pub websocket_refused: Counter<u64>,
    /// Open authenticated WebSockets on this replica (read by an observable gauge).
    pub websocket_connections: AtomicI64,
    /// Rows waiting for the audit writer (read by an observable gauge).
    pub audit_queue_depth: AtomicI64,
    /// Active sessions as last counted (read by an observable gauge).
    pub sessions_active: AtomicI64,
    /// Database pool connections (in use, idle) as last sampled.
    pub db_pool_in_use: AtomicU64,
    pub db_pool_idle: AtomicU64,
}

impl Metrics {
    fn new(meter: &Meter) -> Metrics {
        let counter = |name: &'static str, help: &'static str| {
            meter.u64_counter(name).with_description(help).build()
        };
        let millis = |name: &'static str, help: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("ms")
                .with_description(help)
                .build()
        };
        let metrics = Metrics {
            auth_success: counter("atn.auth.success", "Access tokens issued"),
            auth_deny: counter("atn.auth.deny", "Logins refused, by reason"),
            session_created: counter("atn.session.created", "Sessions opened, by initiator org"),
            session_denied: counter("atn.session.denied", "Session requests refused, by reason"),
            policy_allow: counter(
                "atn.policy.allow",
                "Policy decisions that allowed, by policy type",
            ),
            policy_deny: counter(
                "atn.policy.deny",
                "Policy decisions that denied, by policy type",
            ),
            ratelimit_reject: counter(
                "atn.ratelimit.reject",
                "Requests refused by a rate limit, by bucket",
            ),
            cert_pinning_mismatch: counter(
                "atn.cert_pinning.mismatch",
                "Logins with a certificate other than the pinned one",
            ),
            audit_chain_verify_failed: counter(
                "atn.audit_chain.verify_failed",
                "Audit chain verifications that found a broken entry",
            ),
            dpop_jti_replay_attempt: counter(
                "atn.dpop.jti_replay_attempt",
                "DPoP proofs presented a second time",
            ),
            revoked_token_use_attempt: counter(
                "atn.revoked_token.use_attempt",
                "Revoked tokens or certificates presented",
            ),
            kms_seal_check_failed: counter(
                "atn.kms.seal_check_failed",
                "KMS seal checks that failed (kept for the reference's alert rules)",
            ),
            policy_dual_org_mismatch: counter(
                "atn.policy.dual_org_mismatch",
                "Dual-org policy mismatches (kept for the reference's alert rules)",
            ),
            auth_duration: millis("atn.auth.duration", "Login (token issue) duration"),
            x509_verify_duration: millis(
                "atn.x509.verify_duration",
                "Agent certificate verification duration",
            ),
            pdp_webhook_latency: millis(
                "atn.pdp_webhook.latency",
                "PDP webhook call latency, by org",
            ),
            http_duration: meter
                .f64_histogram("cullis.http.server.duration")
                .with_unit("s")
                .with_description("HTTP request duration, by route template, method and status")
                .build(),
            messages_relayed: counter("cullis.messages.relayed", "E2E messages accepted for relay"),
            audit_batch_size: meter
                .u64_histogram("cullis.audit.batch_size")
                .with_unit("{row}")
                .with_description("Chained rows written per audit writer transaction")
                .build(),
            redis_errors: counter(
                "cullis.redis.errors",
                "Redis operations that failed, by operation",
            ),
            token_cache: counter(
                "cullis.token_cache.lookups",
                "Access token verifications, by result (hit: already verified)",
            ),
            org_secret_cache: counter(
                "cullis.org_secret_cache.lookups",
                "Org secret checks, by result (hit: verified with bcrypt within the TTL)",
            ),
            websocket_refused: counter(
                "cullis.websocket.refused",
                "WebSocket upgrades refused at the WS_MAX_CONNECTIONS cap",
            ),
            websocket_connections: AtomicI64::new(0),
            audit_queue_depth: AtomicI64::new(0),
            sessions_active: AtomicI64::new(0),
            db_pool_in_use: AtomicU64::new(0),
            db_pool_idle: AtomicU64::new(0),
        };
        observe_gauges(meter);
        metrics
    }

    /// One access-token verification: `hit` when it was answered from the verified-token memo.
    pub fn token_cache_lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.token_cache.add(1, &[KeyValue::new("result", result)]);
    }

    /// One org secret check: `hit` when it was answered from the verified-secret memo.
    pub fn org_secret_cache_lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.org_secret_cache
            .add(1, &[KeyValue::new("result", result)]);
    }

    /// A refused login.
    pub fn auth_denied(&self, reason: DenyReason) {
        self.auth_deny
            .add(1, &[KeyValue::new("reason", reason.as_str())]);
    }
}

/// Gauges read at collection time from values the broker keeps up to date.
fn observe_gauges(meter: &Meter) {
    meter
        .i64_observable_gauge("cullis.websocket.connections")
        .with_description("Open authenticated WebSockets on this replica")
        .with_callback(|gauge| {
            gauge.observe(METRICS.websocket_connections.load(Ordering::Relaxed), &[])
        })
        .build();
    meter
        .i64_observable_gauge("cullis.audit.queue_depth")
        .with_description("Rows waiting for the audit writer")
        .with_callback(|gauge| {
            gauge.observe(METRICS.audit_queue_depth.load(Ordering::Relaxed), &[])
        })
        .build();
    meter
        .i64_observable_gauge("cullis.sessions.active")
        .with_description("Active sessions in the database (sampled every 10 s)")
        .with_callback(|gauge| gauge.observe(METRICS.sessions_active.load(Ordering::Relaxed), &[]))
        .build();
    meter
        .u64_observable_gauge("cullis.db.pool.connections")
        .with_description("Database pool connections, by state (sampled every 10 s)")
        .with_callback(|gauge| {
            gauge.observe(
                METRICS.db_pool_in_use.load(Ordering::Relaxed),
                &[KeyValue::new("state", "in_use")],
            );
            gauge.observe(
                METRICS.db_pool_idle.load(Ordering::Relaxed),
                &[KeyValue::new("state", "idle")],
            );
        })
        .build();
}

#[cfg(test)]
mod tests {
    use super::DenyReason;

    #[test]
    fn login_refusals_map_to_a_closed_set_of_reasons() {
        let cases = [
            (429, "Too many requests", DenyReason::RateLimited),
            (
                401,
                "Invalid DPoP proof: bad signature",
                DenyReason::DpopInvalid,
            ),
            (
                401,
                "client_assertion already used (replay attack detected)",
                DenyReason::AssertionReplay,
            ),
            (401, "Certificate has been revoked", DenyReason::CertRevoked),
            (
                401,
                "Certificate thumbprint mismatch — use the rotate-cert endpoint to update",
                DenyReason::CertPinningMismatch,
            ),
            (
                403,
                "Organisation 'acme' not yet approved",
                DenyReason::OrgNotActive,
            ),
            (
                403,
                "No approved binding for this agent and organization",
                DenyReason::NoBinding,
            ),
            (
                401,
                "Agent not found or org mismatch",
                DenyReason::AgentInvalid,
            ),
            (
                401,
                "Certificate chain verification failed",
                DenyReason::CertInvalid,
            ),
            (401, "something new", DenyReason::AssertionInvalid),
        ];
        for (status, detail, reason) in cases {
            assert_eq!(DenyReason::of(status, detail), reason, "{detail}");
        }
    }
}
