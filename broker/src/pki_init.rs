//! `cullis-broker pki init`: the broker's signing key and CA certificate (the reference's
//! `generate_certs.py`), written once with mode 0600.
//!
//! The key signs access tokens: P-256 (ES256) by default, since every authenticated request
//! verifies one; RSA keys (RS256, as the reference) on request.

use cullis_shared::keys::{KeyType, PrivateKey};
use std::path::Path;

/// What `pki init` did.
#[derive(Debug, PartialEq, Eq)]
pub enum PkiInit {
    Created,
    AlreadyPresent,
}

/// Creates `key_path` and `cert_path` unless both exist. Refuses to overwrite one without the
/// other (that would orphan tokens or the certificate).
pub fn init(key_path: &Path, cert_path: &Path, key_type: KeyType) -> Result<PkiInit, String> {
    match (key_path.exists(), cert_path.exists()) {
        (true, true) => return Ok(PkiInit::AlreadyPresent),
        (true, false) | (false, true) => {
            return Err(format!(
                "only one of {} and {} exists: restore the missing file or move both away before `pki init`",
                key_path.display(),
                cert_path.display()
            ))
        }
        (false, false) => {}
    }
    let key = PrivateKey::generate(key_type).map_err(|e| format!("key generation failed: {e}"))?;
    let cert_pem = self_signed_ca(&key)?;
    for path in [key_path, cert_path] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    write_private(key_path, key.to_pkcs8_pem().as_bytes())?;
    write_private(cert_path, cert_pem.as_bytes())?;
    Ok(PkiInit::Created)
}

fn self_signed_ca(key: &PrivateKey) -> Result<String, String> {
    let key_pair = rcgen::KeyPair::try_from(key.pkcs8_der())
        .map_err(|e| format!("key not usable for a certificate: {e}"))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Agent Trust Network Root CA");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Agent Trust Network");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(3650);
    params
        .self_signed(&key_pair)
        .map(|cert| cert.pem())
        .map_err(|e| format!("certificate generation failed: {e}"))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_with_private_modes_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("cullis-pki-{}", uuid::Uuid::new_v4()));
        let (key, cert) = (dir.join("k/broker-ca-key.pem"), dir.join("k/broker-ca.pem"));
        assert_eq!(init(&key, &cert, KeyType::EcP256), Ok(PkiInit::Created));
        assert_eq!(
            init(&key, &cert, KeyType::EcP256),
            Ok(PkiInit::AlreadyPresent)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let loaded = PrivateKey::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
        let ca =
            cullis_shared::pki::Certificate::from_pem(&std::fs::read_to_string(&cert).unwrap())
                .unwrap();
        assert!(ca.is_ca());
        assert_eq!(&ca.public_key().unwrap(), loaded.public_key());
        std::fs::remove_file(&cert).unwrap();
        assert!(init(&key, &cert, KeyType::EcP256)
            .unwrap_err()
            .contains("only one of"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
