//! `cullis-broker`: the central Cullis broker as a library, so the binary, the integration tests
//! and the benchmark all start the same service.
//!
//! Modules follow the resources of the API (`routes::*`) and the machinery behind them
//! (`auth`, `db`, `kms`, `limits`, `audit`). Handlers are thin: they extract, call a service
//! function, and map errors through [`error::ApiError`].

pub mod limits;
pub mod nonce;
pub mod redis_store;
