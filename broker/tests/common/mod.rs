//! Test harness: the real `cullis-broker` binary (started by `cullis_e2e::stack`) on a free port against a
//! fresh SQLite file or a fresh PostgreSQL database (and Redis when asked), and talks to it
//! over real HTTP like the reference SDK does.

#![allow(dead_code, unused_imports)]

pub use cullis_e2e::client;
pub use cullis_e2e::messaging;
pub use cullis_e2e::setup::{json_of, BrokerApi, OrgIdentity as TestOrg, TRUST_DOMAIN};
pub use cullis_e2e::stack::broker::*;
