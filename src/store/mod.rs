//! Persistent state in an embedded sled database: users, pending authorization codes, grants
//! (one per account link) and tokens. Callers never see sled types; they get domain records and a
//! `StoreError` that says whether a fault is worth retrying.
//!
//! Codes (and the tokens of earlier releases) are stored under the SHA-256 of their value, never
//! the value itself. Access and refresh tokens are self-verifying (`oauth/tokens/sealed.rs`): issuing one
//! writes nothing, checking one reads its grant. The keys they are MAC'd under are in the store
//! (`keys.rs`, and each grant's own secret), so the data directory is as secret as the tokens.

mod accounts_sweep;
mod app_links;
mod backup;
mod codes;
mod events;
#[cfg(test)]
pub(crate) mod fixtures;
mod forms;
mod grants;
mod invites;
mod keys;
mod migrate;
pub mod postgres;
mod postgres_memory;
mod record;
pub mod reserve;
mod service_grants;
mod sessions;
mod shared;
mod sweep;
mod throttle;
mod tree;
mod users;

pub use app_links::AlexaLink;
pub use backup::RestoreError;
pub use codes::CodeRecord;
pub use codes::Redeemed;
pub use events::{Event, EventKind, MAX_EVENTS};
pub use grants::{Grant, GrantUpdate, Rotation, TokenKind, TokenRecord};
pub use invites::{LinkKind, LinkUsed, PasswordLink};
pub use migrate::{MigrateError, TreeSummary, TREES};
pub use postgres::Settings as PostgresSettings;
pub use sessions::{Session, LOGIN_API_CREDENTIALS};
pub use shared::Prefetched;
pub use throttle::{Reservation, Settle, ThrottleKey};
pub use users::{
    AddUserError, Generation, Totp, User, Username, LOGIN_API_GENERATION, SERVICE_GENERATION,
};

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use tree::Tree;

/// Where the trees live.
#[derive(Clone)]
enum Backend {
    /// The embedded database, and where it was opened with which cache (for `close`).
    Sled {
        db: sled::Db,
        path: PathBuf,
        cache_bytes: u64,
    },
    /// A PostgreSQL database that other nodes may share (`postgres.rs`).
    Postgres(postgres::Db),
}

/// The database and its trees. Cheap to clone (sled handles and the pool are reference-counted).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    users: Tree,
    codes: Tree,
    grants: Tree,
    tokens: Tree,
    throttle: Tree,
    /// About how many records `throttle` holds (`throttle.rs`): counted at open and by the
    /// sweep, kept up to date in between by the writes of this process.
    throttle_records: Arc<AtomicU64>,
    /// Server keys for access tokens (`keys.rs`), and in memory.
    keys: Tree,
    ring: Arc<RwLock<keys::KeyRing>>,
    /// When the keys were last read again for an unknown key id (PostgreSQL).
    keys_read_at: Arc<AtomicU64>,
    /// Access tokens revoked one by one (RFC 7009): token id → expiry, and in memory.
    denied: Tree,
    deny_list: Arc<Mutex<HashMap<[u8; 16], u64>>>,
    /// Users' current generations (`users.rs`), by username; `None`: no such user.
    generations: Arc<Mutex<users::GenerationCache>>,
    /// On PostgreSQL: the change counters (`linkgate.epochs`) the caches above (generations, deny
    /// list, token keys) were last made consistent with (`shared.rs`).
    seen: Arc<Mutex<Option<postgres::Epochs>>>,
    /// Grants whose "last refresh" this node noted, and when (`sessions.rs`), so a refresh
    /// reads nothing more to know the note is recent.
    noted: Arc<Mutex<HashMap<String, u64>>>,
    /// One-time password links (`invites.rs`).
    invites: Tree,
    /// `/account` sign-ins and each link's last refresh (`sessions.rs`).
    sessions: Tree,
    grant_activity: Tree,
    /// Each user's recent security events (`events.rs`).
    events: Tree,
    /// Authorization forms spent (`forms.rs`).
    forms: Tree,
    /// Alexa app-to-app links (`app_links.rs`).
    app_links: Tree,
    /// Writers hold it shared, a backup exclusively, so a backup sees a state between writes.
    gate: Arc<RwLock<()>>,
    /// Serialises the read-modify-write operations (code exchange, changes of users). sled's own
    /// transactions are not used: under concurrent refreshes with flushes they hung sled 0.34
    /// (transactions waiting for its concurrency-control write lock while its flusher waited for
    /// the read lock); 16 concurrent refreshing clients hung it within a second. On PostgreSQL
    /// an advisory lock is taken as well, so the operations are serialised across nodes.
    exclusive: Arc<Mutex<()>>,
    /// Group commit (see `flush`): flushes asked for, and the last request a flush covered.
    flush_requests: Arc<AtomicU64>,
    flushed: Arc<tokio::sync::Mutex<u64>>,
    /// The last write probe of `/healthz` (sled): when, and whether it could write.
    health: Arc<tokio::sync::Mutex<Option<(std::time::Instant, bool)>>>,
}

/// Held for a read-modify-write operation.
pub(crate) struct Exclusive<'a> {
    _local: MutexGuard<'a, ()>,
    _shared: Option<postgres::Locked>,
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
    /// The store cannot be used as configured (a database schema newer than this binary, a bad
    /// URL or CA file): not transient, the operator must act.
    Unusable(String),
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
            StoreError::Unusable(e) => write!(f, "{e}"),
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
    /// A disk too full for sled to open frees the reserve (`reserve.rs`) and tries once more.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        private_dir(path)?;
        match Store::open_sled(path, cache_bytes) {
            Err(StoreError::Io(e)) if reserve::is_disk_full(&e) => {
                if !reserve::release(path) {
                    return Err(StoreError::Io(format!(
                        "cannot open {}: the disk is full (no space left on device) and \
                         linkgate's reserve is used up: make room, then start again",
                        path.display()
                    )));
                }
                tracing::warn!(
                    "the disk holding {} is full: freed linkgate's {} KiB reserve to open the \
                     store; make room (the reserve is written again at a start with room)",
                    path.display(),
                    reserve::RESERVE_BYTES / 1024
                );
                Store::open_sled(path, cache_bytes)
            }
            other => other,
        }
    }

    fn open_sled(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        remove_torn_snapshots(&path.join("db"))?;
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
        let trees = Trees::new(|name| Ok(Tree::sled(db.open_tree(name)?, name == "grants")))?;
        let backend = Backend::Sled {
            db,
            path: path.to_path_buf(),
            cache_bytes,
        };
        Store::with(backend, trees)
    }

    /// A store in memory, gone when dropped: sled's temporary mode, which keeps its file on
    /// tmpfs (`/dev/shm`) and removes it at drop. For unit tests of the rules that sit on the
    /// store (rotation, code redemption, two-factor codes, throttling): they run at any `now`
    /// with no data directory. `close` only drops it.
    pub fn in_memory() -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(4 << 20)
            .open()
            .map_err(|e| StoreError::Io(format!("cannot open a store in memory: {e}")))?;
        let trees = Trees::new(|name| Ok(Tree::sled(db.open_tree(name)?, name == "grants")))?;
        let backend = Backend::Sled {
            db,
            path: PathBuf::new(),
            cache_bytes: 0,
        };
        Store::with(backend, trees)
    }

    /// Connects to PostgreSQL (`[storage] backend = "postgres"`), creating or upgrading linkgate's
    /// tables first.
    pub fn connect(settings: &PostgresSettings) -> Result<Store, StoreError> {
        let db = postgres::Db::connect(settings)?;
        let trees = Trees::new(|name| Ok(Tree::Postgres(db.table(name))))?;
        Store::with(Backend::Postgres(db), trees)
    }

    /// The store the config names: sled in `storage.path`, or PostgreSQL.
    pub fn open_configured(
        path: &Path,
        cache_bytes: u64,
        postgres: Option<&PostgresSettings>,
    ) -> Result<Store, StoreError> {
        match postgres {
            // The node's own directory still holds its admin socket (and ACME cache).
            Some(settings) => private_dir(path).and_then(|()| Store::connect(settings)),
            None => Store::open(path, cache_bytes),
        }
    }

    fn with(backend: Backend, t: Trees) -> Result<Store, StoreError> {
        let ring = Store::load_keys(&t.keys)?;
        let deny_list = match backend {
            Backend::Sled { .. } => Store::load_deny_list(&t.denied)?,
            Backend::Postgres(_) => HashMap::new(),
        };
        Ok(Store {
            backend,
            users: t.users,
            codes: t.codes,
            grants: t.grants,
            tokens: t.tokens,
            throttle_records: Arc::new(AtomicU64::new(t.throttle.len()? as u64)),
            throttle: t.throttle,
            keys: t.keys,
            ring: Arc::new(RwLock::new(ring)),
            keys_read_at: Arc::new(AtomicU64::new(0)),
            denied: t.denied,
            deny_list: Arc::new(Mutex::new(deny_list)),
            generations: Arc::new(Mutex::new(users::GenerationCache::default())),
            seen: Arc::new(Mutex::new(None)),
            noted: Arc::new(Mutex::new(HashMap::new())),
            invites: t.invites,
            sessions: t.sessions,
            grant_activity: t.grant_activity,
            events: t.events,
            forms: t.forms,
            app_links: t.app_links,
            gate: Arc::new(RwLock::new(())),
            exclusive: Arc::new(Mutex::new(())),
            flush_requests: Arc::new(AtomicU64::new(0)),
            flushed: Arc::new(tokio::sync::Mutex::new(0)),
            health: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// Whether other processes may change the store underneath this one (PostgreSQL): then
    /// nothing another node can change is cached.
    pub fn shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
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
        // PostgreSQL commits each write durably before it returns.
        let Backend::Sled { db, .. } = &self.backend else {
            return Ok(());
        };
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Io(format!("flush task failed: {e}")))??;
        *flushed = target;
        Ok(())
    }

    /// The same, for callers outside the async runtime (CLI, shutdown).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        if let Backend::Sled { db, .. } = &self.backend {
            db.flush()?;
        }
        Ok(())
    }

    /// Closes the store at a clean stop: a last flush, then one reopen. sled 0.34 writes a
    /// snapshot of its page table only when it opens, so without this the next start replays
    /// every write made since the previous start (0.6 s for a store of 1M tokens, BENCHMARKS.md);
    /// with it, the next start reads the fresh snapshot (about 0.1 s). After a crash the replay
    /// still happens, once. If another handle is still open (the reopen finds the directory
    /// locked), the flush alone is done and that is fine.
    pub fn close(self) -> Result<(), StoreError> {
        let Backend::Sled {
            db,
            path,
            cache_bytes,
        } = self.backend.clone()
        else {
            return Ok(());
        };
        db.flush()?;
        drop(db);
        drop(self);
        if path.as_os_str().is_empty() {
            // In memory (`in_memory`): nothing to reopen.
            return Ok(());
        }
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

    /// Held for a read-modify-write operation; never across an `.await`. On PostgreSQL the
    /// process's lock is taken first, so at most one connection per node waits for the shared one.
    fn exclusive(&self) -> Result<Exclusive<'_>, StoreError> {
        let local = postgres_wait(self.shared(), || {
            self.exclusive
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        });
        let shared = match &self.backend {
            Backend::Sled { .. } => None,
            Backend::Postgres(db) => Some(db.lock(postgres::EXCLUSIVE_LOCK)?),
        };
        Ok(Exclusive {
            _local: local,
            _shared: shared,
        })
    }

    /// Whether the store can be read and written (for `/healthz`). sled: a marker written to
    /// its default tree (in no backup) and flushed, so a full disk shows here, at most once a
    /// second however often `/healthz` is asked (the answer is kept in between).
    pub async fn is_healthy(&self) -> bool {
        match &self.backend {
            Backend::Sled { db, .. } => {
                let mut last = self.health.lock().await;
                if let Some((at, healthy)) = *last {
                    if at.elapsed() < std::time::Duration::from_secs(1) {
                        return healthy;
                    }
                }
                let marker = db.insert(HEALTH_MARKER, &now().to_be_bytes());
                let healthy =
                    marker.is_ok() && self.flush().await.is_ok() && self.users.get(b"").is_ok();
                *last = Some((std::time::Instant::now(), healthy));
                healthy
            }
            Backend::Postgres(db) => db.is_healthy(),
        }
    }

    /// sled: whether the store has stopped writing and there is room on its disk again. sled
    /// 0.34 keeps the first I/O error of a flush (a full disk) and refuses every write after it
    /// for the life of the process; only reopening the store recovers. For the server's watch
    /// (`main.rs`), which then stops so that systemd starts it again. PostgreSQL: never.
    pub async fn stopped_writing_with_room_again(&self) -> bool {
        let Backend::Sled { path, .. } = &self.backend else {
            return false;
        };
        let room =
            reserve::free_bytes(path).is_some_and(|free| free >= 3 * reserve::RESERVE_BYTES as u64);
        room && !self.is_healthy().await
    }

    /// Number of stored tokens (access and refresh). Walks the whole tree (seconds for a million
    /// tokens), so it is for tests and tools, never on the start-up or request path.
    pub fn token_count(&self) -> usize {
        self.tokens.len().unwrap_or(0)
    }
}

/// sled 0.34 writes a snapshot to `snap.N.generating`, then renames it to `snap.N`; when the
/// write fails (a full disk) the torn `.generating` file stays, and the next open takes it for
/// the newest snapshot and refuses the store as corrupt ("Read corrupted data"). sled itself
/// deletes such files after its next good snapshot; they hold nothing the log does not, so they
/// go before sled opens.
fn remove_torn_snapshots(db: &Path) -> Result<(), StoreError> {
    let Ok(entries) = std::fs::read_dir(db) else {
        return Ok(()); // a new store
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path()).map_err(|e| {
                StoreError::Io(format!("cannot remove {}: {e}", entry.path().display()))
            })?;
            tracing::warn!("removed sled's torn snapshot {name} (a write that failed)");
        }
    }
    Ok(())
}

/// The key of `/healthz`'s write probe in sled's default tree.
const HEALTH_MARKER: &[u8] = b"linkgate-health";

/// The data directory holds password hashes (or, with PostgreSQL, the admin socket): private
/// to the service's user when we create it.
fn private_dir(path: &Path) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", path.display())))
}

/// The trees, before they become a `Store`.
struct Trees {
    users: Tree,
    codes: Tree,
    grants: Tree,
    tokens: Tree,
    throttle: Tree,
    keys: Tree,
    denied: Tree,
    invites: Tree,
    sessions: Tree,
    grant_activity: Tree,
    events: Tree,
    forms: Tree,
    app_links: Tree,
}

impl Trees {
    /// Every tree, each made by `tree` from its name (a sled tree, a PostgreSQL table).
    fn new(
        mut tree: impl FnMut(&'static str) -> Result<Tree, StoreError>,
    ) -> Result<Trees, StoreError> {
        Ok(Trees {
            users: tree("users")?,
            codes: tree("codes")?,
            grants: tree("grants")?,
            tokens: tree("tokens")?,
            throttle: tree("throttle")?,
            keys: tree("keys")?,
            denied: tree("denied")?,
            invites: tree("invites")?,
            sessions: tree("sessions")?,
            grant_activity: tree("grant_activity")?,
            events: tree("events")?,
            forms: tree("forms")?,
            app_links: tree("app_links")?,
        })
    }
}

/// Runs `wait` (taking a lock that a PostgreSQL operation may hold for milliseconds) so that it
/// does not stall a worker of the server's runtime; with sled the lock is only ever held for
/// microseconds and is taken directly.
fn postgres_wait<T>(shared: bool, wait: impl FnOnce() -> T) -> T {
    if shared {
        postgres::blocking(wait)
    } else {
        wait()
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
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(corrupt());
    }
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| corrupt()))
        .collect()
}

/// Whether `expires_at` has been reached at `now`; an expiry of 0 means "never".
pub fn expired(expires_at: u64, now: u64) -> bool {
    expires_at != 0 && expires_at <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_in_memory_are_apart_and_need_no_directory() {
        let one = Store::in_memory().unwrap();
        let two = Store::in_memory().unwrap();
        let name = Username::parse("alice").unwrap();
        one.add_user(&name, "h".into()).unwrap();
        assert!(one.user(&name).unwrap().is_some());
        assert!(two.user(&name).unwrap().is_none());
        one.close().unwrap();
    }

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
