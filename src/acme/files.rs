//! What ACME keeps in the data directory, under `acme/`: the account (its private key), the
//! certificate with its key, and the renewal state `--doctor` reads. Secrets are written 0600 in
//! a 0700 directory, each file replaced atomically (written beside, synced, renamed), so a crash
//! never leaves a certificate without its key or half a file.

use super::schedule::Validity;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const ACCOUNT: &str = "account.json";
const CERTIFICATE: &str = "certificate.json";
const STATE: &str = "state.json";

/// The certificate for one domain from one ACME directory, with its private key.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredCertificate {
    pub domain: String,
    pub directory: String,
    /// PEM: the leaf first, then the intermediates.
    pub chain: String,
    /// PEM (PKCS #8).
    pub key: String,
}

impl StoredCertificate {
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.chain.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the certificate chain is not PEM: {e}"))?;
        if chain.is_empty() {
            return Err("the certificate chain is empty".into());
        }
        Ok(chain)
    }

    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, String> {
        PrivateKeyDer::from_pem_slice(self.key.as_bytes())
            .map_err(|e| format!("the certificate's private key is not PEM: {e}"))
    }

    /// The leaf's validity.
    pub fn validity(&self) -> Result<Validity, String> {
        let chain = self.chain_der()?;
        let leaf = crate::base::der::Certificate::parse(&chain[0])
            .ok_or("the certificate cannot be read (not X.509 DER)")?;
        Ok(Validity {
            not_before: leaf.not_before,
            not_after: leaf.not_after,
        })
    }
}

/// How renewal went, for `--doctor` and the log after a restart. Times are Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalState {
    pub last_attempt: Option<u64>,
    pub last_success: Option<u64>,
    /// The last failure's message (with the ACME server's problem document), until a success.
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

/// The `acme/` directory inside the data directory.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub fn new(storage_path: &Path) -> Files {
        Files {
            dir: storage_path.join("acme"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn read_account(&self) -> Result<Option<Vec<u8>>, String> {
        self.read(ACCOUNT)
    }

    pub fn write_account(&self, json: &[u8]) -> Result<(), String> {
        self.write(ACCOUNT, json)
    }

    pub fn remove_account(&self) -> Result<(), String> {
        let path = self.dir.join(ACCOUNT);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {e}", path.display()))
            }
            _ => Ok(()),
        }
    }

    pub fn read_certificate(&self) -> Result<Option<StoredCertificate>, String> {
        self.read_json(CERTIFICATE)
    }

    pub fn write_certificate(&self, cert: &StoredCertificate) -> Result<(), String> {
        self.write_json(CERTIFICATE, cert)
    }

    pub fn read_state(&self) -> Result<Option<RenewalState>, String> {
        self.read_json(STATE)
    }

    pub fn write_state(&self, state: &RenewalState) -> Result<(), String> {
        self.write_json(STATE, state)
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Option<T>, String> {
        match self.read(name)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", self.dir.join(name).display())),
        }
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
        self.write(name, &json)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes `name` with mode 0600: to a temporary file first, synced, then renamed over.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let path = self.dir.join(name);
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(fail)?;
        let temporary = self.dir.join(format!(".{name}.new"));
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(fail)?;
        file.write_all(bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&temporary, &path).map_err(fail)?;
        // The rename itself survives a crash only once the directory is synced.
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_round_trip() {
        let data = tempfile::tempdir().unwrap();
        let files = Files::new(data.path());
        assert_eq!(files.read_state().unwrap(), None);
        let state = RenewalState {
            last_attempt: Some(5),
            last_error: Some("connection refused".into()),
            consecutive_failures: 2,
            ..RenewalState::default()
        };
        files.write_state(&state).unwrap();
        files.write_state(&state).unwrap();
        assert_eq!(files.read_state().unwrap(), Some(state));
        files.write_account(b"{}").unwrap();
        for name in [STATE, ACCOUNT] {
            let mode = std::fs::metadata(files.dir().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let mode = std::fs::metadata(files.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
