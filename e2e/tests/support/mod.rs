//! Helpers shared by the deployment tests: the repository's scripts and files, free loopback
//! ports, a real nginx running `nginx-compat/nginx.conf` on loopback, and TLS clients that trust
//! a test CA (never `danger_accept_invalid_certs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The repository root (the workspace directory above `e2e/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cullis-{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use cullis_e2e::stack::proxy::free_port;

/// The nginx binary; fails the test with the install command when it is missing.
pub fn nginx_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")]);
    for dir in candidates {
        let path = dir.join("nginx");
        if path.is_file() {
            return path;
        }
    }
    panic!("nginx is not installed: apt-get install -y nginx (CI installs it in .ci/run)");
}

/// Runs a repository script and returns (exit code, stdout, stderr).
pub fn run_script(script: &str, args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let output = Command::new(repo().join(script))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{script} runs: {e}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Where a site config from `nginx-compat/nginx.conf` is pointed at for a loopback run.
pub struct Render<'a> {
    pub upstream: &'a str,
    pub https_port: u16,
    pub http_port: u16,
    pub cert_dir: &'a Path,
    pub webroot: &'a Path,
}

/// Applies the substitutions documented at the top of `nginx-compat/nginx.conf`: upstream,
/// listeners on 127.0.0.1, the certificate directory, the ACME webroot and the redirect port.
pub fn render_site(template: &str, r: &Render) -> String {
    let replaced = template
        .replace("broker:8000", r.upstream)
        .replace(
            "listen 8443 ssl;",
            &format!("listen 127.0.0.1:{} ssl;", r.https_port),
        )
        .replace("listen 443 ssl;", "")
        .replace(
            "listen 8080;",
            &format!("listen 127.0.0.1:{};", r.http_port),
        )
        .replace("/etc/nginx/certs/", &format!("{}/", r.cert_dir.display()))
        .replace("/var/www/acme", &r.webroot.display().to_string())
        .replace(
            "https://$host:8443",
            &format!("https://$host:{}", r.https_port),
        );
    for token in ["broker:8000", "/etc/nginx/certs/", "/var/www/acme"] {
        assert!(
            !replaced.contains(token),
            "{token} left in the rendered config"
        );
    }
    replaced
}

/// A real nginx master process in the foreground with everything under its own directory.
pub struct NginxFront {
    child: Child,
    pub dir: PathBuf,
}

impl NginxFront {
    /// Starts nginx with `site` (an http-level config) and waits until `wait_port` accepts.
    pub fn start(site: &str, wait_port: u16) -> NginxFront {
        let nginx = nginx_binary();
        let dir = scratch("nginx");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("site.conf"), site).unwrap();
        let d = dir.display();
        // Everything nginx writes stays in `dir` (COMPONENTS.md §2: pid, logs, all temp paths).
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\nhttp {{\n    access_log {d}/access.log;\n\
             client_body_temp_path {d}/tmp/body;\n    proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi;\n    uwsgi_temp_path {d}/tmp/uwsgi;\n\
             scgi_temp_path {d}/tmp/scgi;\n    include {d}/site.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let conf = dir.join("nginx.conf");
        let test = Command::new(&nginx)
            .args(["-p", &format!("{d}/"), "-c"])
            .arg(&conf)
            .arg("-t")
            .output()
            .unwrap();
        assert!(
            test.status.success(),
            "nginx -t refused the config: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new(&nginx)
            .args(["-p", &format!("{d}/"), "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("nginx starts");
        let front = NginxFront { child, dir };
        front.wait_listening(wait_port);
        front
    }

    fn wait_listening(&self, port: u16) {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not listen on {port}: {}", self.error_log());
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for NginxFront {
    fn drop(&mut self) {
        // QUIT = graceful stop of the master and its workers.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        for _ in 0..60 {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A reqwest client trusting only `ca_pem` (no system roots), without redirects.
pub fn https_client(ca_pem: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca_pem).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A rustls client config trusting only `ca_pem`.
pub fn rustls_config(ca_pem: &Path) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
