//! Persistent state in an embedded sled database: users, pending authorization codes, grants
//! (one per account link) and tokens. Callers never see sled types; they get domain records and a
//! `StoreError` that says whether a fault is worth retrying.
//!
//! Codes (and the tokens of earlier releases) are stored under the SHA-256 of their value, never
//! the value itself. Access and refresh tokens are self-verifying (`sealed.rs`): issuing one
//! writes nothing, checking one reads its grant. The keys they are MAC'd under are in the store
//! (`keys.rs`, and each grant's own secret), so the data directory is as secret as the tokens.

mod accounts_sweep;
mod backup;
mod codes;
mod events;
#[cfg(test)]
pub(crate) mod fixtures;
mod grants;
mod invites;
mod keys;
mod record;
pub mod sealed;
mod sessions;
mod sweep;
mod throttle;
mod users;

pub use backup::RestoreError;
pub use codes::CodeRecord;
pub use codes::Redeemed;
pub use events::{Event, EventKind, MAX_EVENTS};
pub use grants::{Grant, Issue, Refreshed, Rotation, TokenKind, TokenRecord};
pub use invites::{LinkKind, LinkUsed, PasswordLink};
pub use sessions::Session;
pub use throttle::{address_prefix, Failures, Policy, Reservation, ThrottleKey};
pub use users::{
    AddUserError, Generation, SecondFactor, Totp, User, Username, LOGIN_API_GENERATION,
};

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// The database and its trees. Cheap to clone (sled handles are reference-counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Where it was opened, and with which cache, for `close`.
    path: PathBuf,
    cache_bytes: u64,
    users: sled::Tree,
    codes: sled::Tree,
    grants: sled::Tree,
    tokens: sled::Tree,
    throttle: sled::Tree,
    /// Server keys for access tokens (`keys.rs`), and in memory.
    keys: sled::Tree,
    ring: Arc<RwLock<keys::KeyRing>>,
    /// Access tokens revoked one by one (RFC 7009): token id → expiry, and in memory.
    denied: sled::Tree,
    deny_list: Arc<Mutex<HashMap<[u8; 16], u64>>>,
    /// Users' current generations (`users.rs`), by username; `None`: no such user.
    generations: Arc<Mutex<users::GenerationCache>>,
    /// One-time password links (`invites.rs`); not in backups: a restore revives no link.
    invites: sled::Tree,
    /// `/account` sign-ins and each link's last refresh (`sessions.rs`); not in backups either.
    sessions: sled::Tree,
    grant_activity: sled::Tree,
    /// Each user's recent security events (`events.rs`).
    events: sled::Tree,
    /// Writers hold it shared, a backup exclusively, so a backup sees a state between writes.
    gate: Arc<RwLock<()>>,
    /// Serialises the read-modify-write operations (code exchange, refresh). sled's own
    /// transactions are not used: under concurrent refreshes with flushes they hung sled 0.34
    /// (transactions waiting for its concurrency-control write lock while its flusher waited for
    /// the read lock); 16 concurrent refreshing clients hung it within a second.
    exclusive: Arc<Mutex<()>>,
    /// Group commit (see `flush`): flushes asked for, and the last request a flush covered.
    flush_requests: Arc<AtomicU64>,
    flushed: Arc<tokio::sync::Mutex<u64>>,
}

#[derive(Debug)]
pub enum StoreError {
    /// Another process (normally the running server) holds the database.
    Locked(PathBuf),
    /// An I/O or storage fault. Transient from a client's point of view: answer 5xx, never
    /// `invalid_grant` (which makes Alexa unlink the customer).
    Io(String),
    /// A record that cannot be decoded.
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Locked(path) => write!(
                f,
                "the data directory {} is in use by another linkgate process (is the server running?)",
                path.display()
            ),
            StoreError::Io(e) => write!(f, "storage error: {e}"),
            StoreError::Corrupt(e) => write!(f, "corrupt record: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl Store {
    /// Opens (or creates) the database in `path`, with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        // The directory holds password hashes: private to the service's user when we create it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", path.display())))?;
        let db = sled::Config::new()
            .path(path.join("db"))
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    StoreError::Locked(path.to_path_buf())
                }
                other => StoreError::Io(format!("cannot open {}: {other}", path.display())),
            })?;
        let keys = db.open_tree("keys")?;
        let denied = db.open_tree("denied")?;
        let ring = Store::load_keys(&keys)?;
        let deny_list = Store::load_deny_list(&denied)?;
        Ok(Store {
            keys,
            ring: Arc::new(RwLock::new(ring)),
            denied,
            deny_list: Arc::new(Mutex::new(deny_list)),
            generations: Arc::new(Mutex::new(users::GenerationCache::default())),
            users: db.open_tree("users")?,
            codes: db.open_tree("codes")?,
            grants: db.open_tree("grants")?,
            tokens: db.open_tree("tokens")?,
            throttle: db.open_tree("throttle")?,
            invites: db.open_tree("invites")?,
            sessions: db.open_tree("sessions")?,
            grant_activity: db.open_tree("grant_activity")?,
            events: db.open_tree("events")?,
            gate: Arc::new(RwLock::new(())),
            exclusive: Arc::new(Mutex::new(())),
            flush_requests: Arc::new(AtomicU64::new(0)),
            flushed: Arc::new(tokio::sync::Mutex::new(0)),
            db,
            path: path.to_path_buf(),
            cache_bytes,
        })
    }

    /// Makes every write so far durable (fsync). Call before answering a request whose response
    /// hands out something stored.
    ///
    /// Group commit: at most one flush runs at a time, and a caller whose writes were covered by
    /// a flush that started after them returns without flushing again. Besides saving fsyncs,
    /// this matters for correctness: many concurrent `sled::Db::flush_async` calls occupy all of
    /// sled 0.34's I/O threads waiting for a buffer that only those threads can write, and hang.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mine = self.flush_requests.fetch_add(1, Ordering::SeqCst) + 1;
        let mut flushed = self.flushed.lock().await;
        if *flushed >= mine {
            return Ok(());
        }
        let target = self.flush_requests.load(Ordering::SeqCst);
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Io(format!("flush task failed: {e}")))??;
        *flushed = target;
        Ok(())
    }

    /// The same, for callers outside the async runtime (CLI, shutdown).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Closes the store at a clean stop: a last flush, then one reopen. sled 0.34 writes a
    /// snapshot of its page table only when it opens, so without this the next start replays
    /// every write made since the previous start (0.6 s for a store of 1M tokens, BENCHMARKS.md);
    /// with it, the next start reads the fresh snapshot (about 0.1 s). After a crash the replay
    /// still happens, once. If another handle is still open (the reopen finds the directory
    /// locked), the flush alone is done and that is fine.
    pub fn close(self) -> Result<(), StoreError> {
        self.db.flush()?;
        let (path, cache_bytes) = (self.path.clone(), self.cache_bytes);
        drop(self);
        match Store::open(&path, cache_bytes) {
            Ok(reopened) => reopened.flush_blocking(),
            Err(StoreError::Locked(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Held while writing, so that a backup waits for writes in progress and holds new ones.
    fn writing(&self) -> RwLockReadGuard<'_, ()> {
        self.gate
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Held for a read-modify-write operation; never across an `.await`.
    fn exclusive(&self) -> MutexGuard<'_, ()> {
        self.exclusive
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the store can be read (for `/healthz`).
    pub fn is_healthy(&self) -> bool {
        self.users.first().is_ok()
    }

    /// Number of stored tokens (access and refresh). Walks the whole tree (seconds for a million
    /// tokens), so it is for tests and tools, never on the start-up or request path.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialize")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Lower-case hex, for token keys inside records and for backup checksums.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string written by `to_hex`. Anything else (an odd length, a character that
/// is not a hex digit) means the record holding it is corrupt: an error, never a shorter key.
fn from_hex(hex: &str) -> Result<Vec<u8>, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("`{hex}` is not a hex key"));
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(corrupt());
    }
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| corrupt()))
        .collect()
}

/// An expiry of 0 means "never".
fn expired(expires_at: u64, now: u64) -> bool {
    expires_at != 0 && expires_at <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_bad_hex_is_corrupt() {
        let bytes = [0u8, 1, 0x7f, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert_eq!(from_hex("ABcd").unwrap(), [0xab, 0xcd]);
        assert_eq!(from_hex("").unwrap(), Vec::<u8>::new());
        for bad in ["abc", "zz", "0g", "+f", "-1", " a", "é1"] {
            assert!(
                matches!(from_hex(bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}
