//! Real processes for tests, benchmarks and the demo: the broker and the proxy binaries started
//! on free loopback ports with their own data, stopped (and their data removed) on drop.

pub mod broker;
pub mod openbao;
pub mod proxy;
pub mod sdk022;
pub mod tls;
pub mod two_orgs;

pub use broker::{Options, Store, TestBroker};
use std::path::PathBuf;

/// The path of a workspace binary (`cullis-broker`, `cullis-proxy`) built beside the running
/// executable: test binaries live in `target/<profile>/deps/`, tools in `target/<profile>/`.
/// `CULLIS_BIN_DIR` overrides the directory.
pub fn binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("CULLIS_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("own executable path");
            let dir = exe.parent().expect("executable directory").to_path_buf();
            if dir.ends_with("deps") {
                dir.parent().expect("profile directory").to_path_buf()
            } else {
                dir
            }
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build it first (cargo build -p {name}, add --release for release tools) or set CULLIS_BIN_DIR",
        path.display()
    );
    path
}
