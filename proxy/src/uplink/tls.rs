//! TLS to the broker, one set of settings for both transports: pingora's connector (REST) and
//! tokio-tungstenite (the WebSocket, which pingora cannot do). Verification is on by default
//! against the system roots plus an optional CA bundle; `insecure_tls` (dev only) turns it off
//! with a loud warning; an optional client certificate gives mTLS.

use std::path::Path;
use std::sync::Arc;

use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::error::UplinkError;
use super::UplinkConfig;

fn config_error(what: &str, path: &Path, why: impl std::fmt::Display) -> UplinkError {
    UplinkError::Protocol(format!(
        "invalid uplink configuration: {what} {}: {why}",
        path.display()
    ))
}

/// Loaded once at start-up.
pub(crate) struct TlsSettings {
    /// Extra trusted roots from `ca_bundle` (empty: system roots only).
    extra_roots: Vec<CertificateDer<'static>>,
    insecure: bool,
    /// Client certificate chain (leaf first) and key, DER.
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl TlsSettings {
    pub fn load(config: &UplinkConfig) -> Result<TlsSettings, UplinkError> {
        let extra_roots = match &config.ca_bundle {
            Some(path) => read_certs(path, "CA bundle")?,
            None => Vec::new(),
        };
        let client = match &config.client_cert {
            Some((cert, key)) => {
                let chain = read_certs(cert, "client certificate")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| config_error("client key", key, e))?;
                Some((chain, key))
            }
            None => None,
        };
        if config.insecure_tls {
            tracing::warn!(
                broker = %config.broker_url,
                "INSECURE: broker TLS certificate verification is DISABLED (--insecure-broker-tls); \
                 use only for development"
            );
        }
        Ok(TlsSettings {
            extra_roots,
            insecure: config.insecure_tls,
            client,
        })
    }

    /// System roots plus the bundle.
    fn root_store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(native_roots());
        tracing::debug!(added, "system root certificates loaded");
        store.add_parsable_certificates(self.extra_roots.iter().cloned());
        store
    }

    /// Sets the pingora peer's TLS options. The per-peer CA list replaces the connector's
    /// system roots, so with a bundle it carries both.
    pub fn apply(&self, peer: &mut HttpPeer) {
        if !self.extra_roots.is_empty() {
            let mut ders: Vec<Vec<u8>> = native_roots().into_iter().map(|c| c.to_vec()).collect();
            ders.extend(self.extra_roots.iter().map(|c| c.to_vec()));
            let list: Vec<WrappedX509> = ders
                .into_iter()
                .filter(|der| x509_parser::parse_x509_certificate(der).is_ok())
                .map(|der| WrappedX509::new(der, parse_x509))
                .collect();
            peer.options.ca = Some(Arc::from(list.into_boxed_slice()));
        }
        if self.insecure {
            peer.options.verify_cert = false;
            peer.options.verify_hostname = false;
        }
        if let Some((chain, key)) = &self.client {
            let certs = chain.iter().map(|c| c.to_vec()).collect();
            peer.client_cert_key = Some(Arc::new(CertKey::new(certs, key.secret_der().to_vec())));
        }
    }

    /// The rustls client configuration for the WebSocket, equivalent to [`Self::apply`].
    pub fn rustls_config(&self) -> Result<Arc<ClientConfig>, UplinkError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| UplinkError::Protocol(format!("TLS configuration: {e}")))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        } else {
            builder.with_root_certificates(self.root_store())
        };
        let config = match &self.client {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| UplinkError::Protocol(format!("TLS client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// The system roots; none (with a warning) when they cannot be read, so a CA bundle alone
/// still works.
fn native_roots() -> Vec<CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().unwrap_or_else(|e| {
        tracing::warn!("cannot read the system root certificates: {e}");
        Vec::new()
    })
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, UplinkError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| config_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(what, path, e))?;
    if certs.is_empty() {
        return Err(config_error(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// `insecure_tls` for the WebSocket: any certificate is accepted, but handshake signatures are
/// still checked so the session keys belong to the presented certificate.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
