//! Serde types for every request and response body of the broker API and the proxy egress API.
