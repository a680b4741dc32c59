//! Serde types for every request and response body of the broker API and the proxy egress API.
//!
//! One module per resource family; nothing is re-exported here, so call sites name the family:
//! `wire::broker::MessageEnvelope`, `wire::registry::AgentResponse`, `wire::ws::ServerFrame`, …
//!
//! Conventions shared by every module (see the reference specs under `shared/spec/`):
//! - JSON member names are exactly the reference's; struct field order is JSON emission order.
//! - Request (input) types never use `deny_unknown_fields`: unknown members are ignored, as
//!   pydantic does and as the SDK relies on. Optional members are `Option<T>` with
//!   `#[serde(default)]`; the defaults the reference applies are reproduced with
//!   `#[serde(default = …)]`. When a request type is *serialized* (a Rust client talking to
//!   the broker), `None` members are omitted (the reference treats absent and `null` alike).
//! - Response (output) types emit `null` for `None`, as FastAPI does, unless the reference
//!   omits the key (then the field is marked `skip_serializing_if` and documented).
//! - Timestamps are `String`s (ISO-8601 as the reference renders them; see each field) except
//!   integer Unix-second fields such as the envelope `timestamp`. Ids are `String`s: malformed
//!   ids (e.g. a non-UUID session id) must surface as the service's 400, not a serde error.
//! - Arbitrary JSON objects (message payloads, policy rules, contexts, metadata) are
//!   `serde_json::Map<String, Value>`. Without serde_json's `preserve_order` feature a `Map`
//!   re-serializes its keys in sorted order; no consumer depends on member order inside those
//!   objects (signatures are over canonical, sorted JSON).
//! - serde's derived struct deserializers also accept a JSON *array* of the members in field
//!   order (pydantic would answer 422); services that care must check the body is an object.
//! - No validation beyond serde's own typing lives here: lengths, ranges, regexes and
//!   cross-field rules belong to the services.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod egress;
pub mod error;
pub mod health;
pub mod ingress;
pub mod onboarding;
pub mod pdp;
pub mod policy;
pub mod registry;
pub mod ws;

#[cfg(test)]
pub(crate) mod test_util {
    use serde::{de::DeserializeOwned, Serialize};
    use serde_json::Value;

    /// Deserialize `json` into `T`, serialize it back, and assert that the result equals the
    /// input both as a `serde_json::Value` and (the literal being compact and in spec order)
    /// byte-for-byte. Returns the parsed value for further assertions.
    pub fn roundtrip_exact<T: DeserializeOwned + Serialize>(json: &str) -> T {
        let parsed: T = serde_json::from_str(json).expect("deserialize");
        let out = serde_json::to_string(&parsed).expect("serialize");
        let a: Value = serde_json::from_str(json).unwrap();
        let b: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(a, b, "value mismatch");
        assert_eq!(json, out, "member order / formatting mismatch");
        parsed
    }

    /// Serialize to a `serde_json::Value`.
    pub fn to_value<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).expect("serialize")
    }
}
