//! Built-in HTTPS with rustls: TLS 1.2 and 1.3 only, rustls' modern cipher suites (AEAD with
//! forward secrecy; nothing else is offered), HTTP/1.1 by ALPN. The certificate is re-read on
//! SIGHUP so Let's Encrypt renewals apply without a restart; connections already open keep the
//! configuration they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::ResolvesServerCert;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    acceptor: RwLock<TlsAcceptor>,
}

impl Tls {
    /// HTTPS whose certificate comes from `resolver` (ACME, `crate::acme`), which swaps it itself
    /// and also answers TLS-ALPN-01 challenges (RFC 8737: ALPN `acme-tls/1`). Nothing to re-read
    /// on SIGHUP.
    pub fn with_resolver(resolver: Arc<dyn ResolvesServerCert>) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"http/1.1".to_vec(), b"acme-tls/1".to_vec()];
        Ok(Tls {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            acceptor: RwLock::new(TlsAcceptor::from(Arc::new(config))),
        })
    }
}

impl Tls {
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, String> {
        Ok(Tls {
            acceptor: RwLock::new(TlsAcceptor::from(server_config(cert, key)?)),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-reads the certificate and key; on any error the old ones stay in use.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = TlsAcceptor::from(server_config(&self.cert, &self.key)?);
        *self
            .acceptor
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect())
        .map_err(|e| format!("key `server.tls.cert`: cannot read {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "key `server.tls.cert`: {} holds no PEM certificate",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "key `server.tls.key`: cannot read a private key from {}: {e}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            format!("key `server.tls`: the certificate and key do not work together: {e}")
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
