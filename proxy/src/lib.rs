//! cullis-proxy library: the organisation's sidecar between local agents and the broker.

pub mod uplink;
