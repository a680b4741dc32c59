//! `cullis-proxy`: the per-organisation Cullis sidecar on pingora. It holds the org CA and the
//! agents' keys so local agents need no cryptography: they call the egress REST API or the MCP
//! endpoint with a local API key, and the proxy logs in, signs, encrypts, decrypts and verifies
//! towards the broker for them. It also answers the broker's policy webhook for its org.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | `MCP_PROXY_*` settings and start-up refusals |
//! | [`store`] | SQLite (WAL) store: settings, agents, audit, client_seq, sealed secrets |
//! | [`custody`] | secrets at rest: AES-256-GCM locally, or Vault/OpenBao KV v2 |
//! | [`context`] | what every entry point works on |
//! | [`org`], [`agents`] | organisation and agent lifecycle (CLI and admin API) |
//! | [`limits`] | bounds on ids and text from agents and the webhook, checked before any broker call |
//! | [`api_key`] | local API keys: HMAC-stored, O(1) lookup, constant-time check |
//! | [`http`] | the pingora listener, router, error type, and the handlers that are only HTTP: SSE events, the PDP webhook, the console (`/proxy/*`), static assets |
//! | [`egress`], [`mcp`] | local agent → broker: REST, MCP |
//! | [`pdp`] | broker → org: the policy rules the webhook evaluates |
//! | [`admin`] | the admin HTTP API |
//! | [`audit`] | the hash-chained local audit log |
//! | [`check`] | the production checklist (`cullis-proxy check`) |
//! | [`uplink`] | the broker client |
//! | [`telemetry`] | logs, traces and metrics (`/metrics`) |

pub mod admin;
pub mod agents;
pub mod api_key;
pub mod audit;
pub mod check;
pub mod config;
pub mod context;
pub mod custody;
pub mod egress;
pub mod health;
pub mod http;
pub mod limits;
pub mod mcp;
pub mod org;
pub mod pdp;
pub mod ratelimit;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod uplink;
