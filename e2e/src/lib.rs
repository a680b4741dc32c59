//! Full-stack tooling that speaks only the wire protocol: an agent client (what the reference
//! SDK does, in Rust), the organisation-side admin calls, and the load harness built on them.
//! The same code drives our broker in tests and any compatible broker in benchmarks.

pub mod browser;
pub mod client;
pub mod egress;
pub mod messaging;
pub mod otlp;
pub mod setup;
pub mod stack;
pub mod ws;
