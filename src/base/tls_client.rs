//! The one TLS client set-up of every outgoing connection that trusts what it connects to (the
//! login API, ACME, the calls to Amazon and Google, PostgreSQL, and `--doctor`'s root stores):
//! rustls with ring, Mozilla's roots (webpki-roots) and the CA certificates an operator adds.
//! `--doctor`'s inspecting client is the one exception: it must finish every handshake to judge
//! the certificate itself (`doctor/https.rs`).

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Mozilla's roots plus `extra`.
pub fn roots(
    extra: impl IntoIterator<Item = CertificateDer<'static>>,
) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        roots
            .add(cert)
            .map_err(|e| format!("a certificate is not usable: {e}"))?;
    }
    Ok(roots)
}

/// Mozilla's roots plus the certificates of an operator's CA file (PEM), when one is named.
pub fn roots_from(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    match ca_file {
        None => roots([]),
        Some(path) => pem_certificates(path).and_then(roots),
    }
}

/// A client trusting `roots`, TLS 1.2 and 1.3, no client certificate; `http1`: ALPN offers
/// `http/1.1` (the HTTPS clients; PostgreSQL negotiates none).
pub fn config(roots: RootCertStore, http1: bool) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if http1 {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(config)
}

/// The certificates of a PEM file (an operator's CA file): at least one, or why not.
pub fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate_and_mozillas_roots_are_always_there() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let err = pem_certificates(&empty).unwrap_err();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let missing = pem_certificates(&dir.path().join("missing.pem")).unwrap_err();
        assert!(missing.starts_with("cannot read"), "{missing}");
        let cert = rcgen::generate_simple_self_signed(vec!["db.example".into()]).unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, cert.cert.pem()).unwrap();
        let certs = pem_certificates(&pem).unwrap();
        assert_eq!(certs.len(), 1);
        let mozilla = roots([]).unwrap().len();
        assert!(mozilla > 100, "{mozilla} roots");
        assert_eq!(roots(certs).unwrap().len(), mozilla + 1);
        let config = config(roots([]).unwrap(), true).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
