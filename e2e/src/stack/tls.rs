//! A self-signed server certificate for tests of TLS listeners (the broker's
//! `BROKER_TLS_CERT`/`BROKER_TLS_KEY`): written to disk, plus a client that trusts it.

use super::Options;
use std::path::{Path, PathBuf};

pub struct ServerCert {
    /// The certificate, PEM (also the CA bundle that trusts it).
    pub pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl ServerCert {
    /// A fresh certificate for `localhost` and `127.0.0.1`, its files in `dir`.
    pub fn localhost(dir: &Path) -> ServerCert {
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("valid names");
        let cert = params.self_signed(&key).expect("a self-signed certificate");
        let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server-key.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("write the certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write the key");
        ServerCert {
            pem: cert.pem(),
            cert_path,
            key_path,
        }
    }

    /// `options` for a broker serving HTTPS with this certificate.
    pub fn broker_options(&self, options: Options) -> Options {
        options
            .env("BROKER_TLS_CERT", &self.cert_path.display().to_string())
            .env("BROKER_TLS_KEY", &self.key_path.display().to_string())
    }

    /// An HTTP client that trusts this certificate (and verifies it).
    pub fn trusting_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pem.as_bytes()).expect("PEM certificate"),
            )
            .build()
            .expect("an HTTP client")
    }
}
