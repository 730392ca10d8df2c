//! The TLS listener's certificate under ACME: rustls asks this resolver on every handshake, so a
//! renewal is one `Arc` swapped under a lock — new handshakes get the new certificate, open
//! connections keep theirs, nothing is dropped. It also answers TLS-ALPN-01 validations (RFC 8737):
//! a handshake that offers ALPN `acme-tls/1` gets the challenge certificate for its SNI name.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use tokio_rustls::rustls::crypto::ring::sign::any_supported_type;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// RFC 8737 §6.2.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Default)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// Lower-case DNS name → the `acme-tls/1` certificate for it, while a validation is pending.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertResolver")
    }
}

impl CertResolver {
    /// Serves `chain` with `key` from the next handshake on.
    pub fn set(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), String> {
        let certified = certified_key(chain, &key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(certified));
        Ok(())
    }

    pub fn has_certificate(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Starts answering a TLS-ALPN-01 validation for `domain` (`digest`: SHA-256 of the key
    /// authorization).
    pub fn add_challenge(&self, domain: &str, digest: &[u8]) -> Result<(), String> {
        let certified = challenge_certificate(domain, digest)?;
        self.challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_ascii_lowercase(), Arc::new(certified));
        Ok(())
    }

    pub fn clear_challenges(&self) {
        self.challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|protocol| protocol == ACME_TLS_ALPN));
        if validation {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .cloned();
        }
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    let signing = any_supported_type(key).map_err(|e| format!("unusable private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("the certificate and its key do not match: {e}"))?;
    Ok(certified)
}

/// RFC 8737 §3: a self-signed certificate for `domain` with the critical acmeIdentifier
/// extension holding the key authorization's SHA-256 digest.
fn challenge_certificate(domain: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let fail = |e: rcgen::Error| format!("cannot make the TLS-ALPN-01 certificate: {e}");
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(fail)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `certified_key`: its key check parses the certificate with webpki, which refuses the
    // critical acmeIdentifier extension. The pair was made together just above.
    let signing = any_supported_type(&key).map_err(|e| format!("unusable private key: {e}"))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}
