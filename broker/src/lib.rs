//! `cullis-broker`: the central Cullis broker as a library, so the binary, the integration tests
//! and the benchmark all start the same service.
//!
//! Modules follow the resources of the API (`routes::*`) and the machinery behind them
//! (`auth`, `db`, `kms`, `limits`, `nonce`, `audit`). Handlers are thin: they extract, call a
//! service function, and map errors through [`error::ApiError`].

pub mod audit;
pub mod auth;
pub mod checklist;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod key_admin;
pub mod keyring;
pub mod kms;
pub mod limits;
pub mod nonce;
pub mod pki_init;
pub mod policy;
pub mod redis_store;
pub mod routes;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod transaction_tokens;
pub mod ws;
