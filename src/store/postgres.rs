//! PostgreSQL as the store, for operators who run two or more linkgate nodes on one database
//! (`[storage] backend = "postgres"`). Each store tree is a table `linkgate.<tree>` of keys and
//! values (linkgate's own record encodings), created by the versioned migrations in
//! `migrations/`, which every node applies at start under an advisory lock.
//!
//! Driver: tokio-postgres, pooled by deadpool-postgres. tokio-postgres is the maintained
//! PostgreSQL driver for tokio with no macros and no database needed at compile time; deadpool
//! is a small pool that checks connections when they come back and replaces broken ones, so a
//! node recovers by itself when the database returns. TLS (`sslmode=require`) is rustls with
//! the Mozilla roots plus `storage.ca_file`, and always verifies the certificate and host name.
//!
//! The store's code is synchronous (sled answers from memory). A query here runs on this
//! module's own small runtime while the calling thread waits, inside `block_in_place` when it is
//! a worker of the server's runtime, so the server's other requests move to another thread.
//! Every wait is bounded: a query, a pool checkout and a connection attempt time out, and the
//! error is a `StoreError::Io` (the client gets 503 `server_error`, never `invalid_grant`).

pub use super::postgres_memory::Epochs;
pub(super) use super::postgres_memory::GrantRow;
use super::postgres_memory::{listen, Kept, Memory, Reading};
use super::StoreError;
use crate::base::tls_client;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// `[storage]` settings for PostgreSQL. The URL may hold a password: `Debug` and `describe` show
/// where the database is, never the password.
#[derive(Clone)]
pub struct Settings {
    pub url: String,
    pub pool_size: usize,
    pub ca_file: Option<PathBuf>,
    /// How long a revocation through another node may take to hold on this one
    /// (`postgres_memory.rs`); zero: every token check asks the database.
    pub revocation_bound: Duration,
}

impl Settings {
    /// Where the database is, for people: hosts and ports, database, user (never the password).
    pub fn describe(&self) -> String {
        match self.url.parse::<tokio_postgres::Config>() {
            Ok(config) => describe_config(&config),
            Err(_) => "PostgreSQL (storage.url cannot be read)".to_string(),
        }
    }

    /// Whether the connection must use TLS (`sslmode=require`); `None` when the URL cannot be
    /// read. Without it (`prefer`, the default), TLS is used only if the server offers it.
    pub fn tls_mode(&self) -> Option<&'static str> {
        let config = self.url.parse::<tokio_postgres::Config>().ok()?;
        Some(match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => "required",
            tokio_postgres::config::SslMode::Disable => "no",
            _ => "only if the server offers it",
        })
    }

    /// Whether the URL holds a password (then the config file is a secret).
    pub fn has_password(&self) -> bool {
        self.url
            .parse::<tokio_postgres::Config>()
            .is_ok_and(|c| c.get_password().is_some())
    }

    /// Whether every host is this machine (a Unix socket or a loopback address).
    pub fn is_local(&self) -> bool {
        use tokio_postgres::config::Host;
        let Ok(config) = self.url.parse::<tokio_postgres::Config>() else {
            return false;
        };
        config.get_hosts().iter().all(|host| match host {
            Host::Unix(_) => true,
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        })
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database", &self.describe())
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// `PostgreSQL at HOST:PORT, database DB, user USER` from a parsed URL.
fn describe_config(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            // One port for all hosts, or one per host; 5432 when none is given.
            let port = ports
                .get(i)
                .or_else(|| ports.first().filter(|_| ports.len() == 1))
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') && !name.starts_with('[') => {
                    format!("[{name}]:{port}")
                }
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("socket {}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_string()
    } else {
        hosts.join(", ")
    };
    let user = config.get_user().unwrap_or("(none)");
    let database = config.get_dbname().unwrap_or(user);
    format!("PostgreSQL at {hosts}, database {database}, user {user}")
}

/// The schema migrations, in order; a database records the versions applied to it.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_tables.sql")),
    (2, include_str!("migrations/0002_forms.sql")),
    (3, include_str!("migrations/0003_epochs.sql")),
    (4, include_str!("migrations/0004_app_links.sql")),
    (5, include_str!("migrations/0005_notify.sql")),
];

/// Advisory lock keys ("lnkg" and a number), for the whole database.
const MIGRATION_LOCK: i64 = 0x6c6e_6b67_0000_0001;
/// The store's read-modify-write operations (`Store::exclusive`), across nodes.
pub(super) const EXCLUSIVE_LOCK: i64 = 0x6c6e_6b67_0000_0002;
/// One sweeper at a time across nodes.
pub(super) const SWEEP_LOCK: i64 = 0x6c6e_6b67_0000_0003;

/// The longest one operation may take (the database's own `statement_timeout` is the same).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Waiting for a pooled connection, or for a new one to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows per page when a table is read in full (sweeps, listings).
const PAGE: i64 = 1000;
/// A fetch-and-update that lost a race to insert a new row tries again, this many times.
const ATTEMPTS: usize = 16;

#[derive(Clone)]
pub(super) struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Connections that hold advisory locks (the cross-node lock, the sweeper's): apart from
    /// `pool`, so a lock holder never waits for a connection of its own (with `pool_size = 1`
    /// it would wait forever). Two: one of each kind per node at most.
    locks: Pool,
    runtime: Option<tokio::runtime::Runtime>,
    /// How the listener connects (`listen`), and once it runs, what it keeps right.
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    bound: Duration,
    memory: std::sync::OnceLock<Arc<Memory>>,
}

/// A session holding an advisory lock is ended by the server when it has been idle this long:
/// a node that froze (or lost the network without a reset) while holding the cross-node lock
/// stalls the other nodes this long at most, not until TCP gives up (hours). A holder never
/// leaves its lock's session idle for longer than its own queries take (`QUERY_TIMEOUT`).
const LOCK_IDLE_LIMIT: &str = "20s";

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Db {
    /// Connects (one connection, to check), applies missing migrations and refuses a schema newer
    /// than this binary knows.
    pub fn connect(settings: &Settings) -> Result<Db, StoreError> {
        let db = Db::pool_for(settings)?;
        db.migrate()?;
        Ok(db)
    }

    /// The pool and its runtime; nothing is asked of the database yet.
    fn pool_for(settings: &Settings) -> Result<Db, StoreError> {
        let mut config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e| StoreError::Unusable(format!("storage.url: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("linkgate");
        }
        let timeout_ms = QUERY_TIMEOUT.as_millis();
        let options = format!(
            "{} -c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
            config.get_options().unwrap_or("")
        );
        config.options(options.trim());
        let tls = tls_connector(settings)?;
        let manager = |config: &tokio_postgres::Config| {
            Manager::from_config(
                config.clone(),
                tls.clone(),
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            )
        };
        let (manager, lock_manager) = (manager(&config), manager(&config));
        let tls_for_listener = tls.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("linkgate-db")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("cannot start the database runtime: {e}")))?;
        let build = |manager: Manager, size: usize| {
            let _entered = runtime.enter();
            Pool::builder(manager)
                .max_size(size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| StoreError::Unusable(format!("database pool: {e}")))
        };
        let pool = build(manager, settings.pool_size.max(1))?;
        let locks = build(lock_manager, 2)?;
        Ok(Db {
            inner: Arc::new(Inner {
                pool,
                locks,
                runtime: Some(runtime),
                config,
                tls: tls_for_listener,
                bound: settings.revocation_bound,
                memory: std::sync::OnceLock::new(),
            }),
        })
    }

    fn pool(&self) -> Pool {
        self.inner.pool.clone()
    }

    /// Starts answering token checks from memory, kept right by the database's notifications
    /// (`postgres_memory.rs`); for the server, once (the CLI asks the database every time). Not
    /// with `storage.revocation_bound_ms = 0`.
    pub fn listen(&self) {
        let (Some(runtime), false) = (&self.inner.runtime, self.inner.bound.is_zero()) else {
            return;
        };
        let memory = Arc::new(Memory::new(self.inner.bound));
        if self.inner.memory.set(memory.clone()).is_ok() {
            let (config, tls) = (self.inner.config.clone(), self.inner.tls.clone());
            runtime.spawn(listen(memory, config, tls, QUERY_TIMEOUT));
        }
    }

    /// What the listener keeps, once it runs.
    pub(super) fn memory(&self) -> Option<&Memory> {
        self.inner.memory.get().map(|m| &**m)
    }

    /// Runs `work` on the database runtime and waits for it, at most `QUERY_TIMEOUT`.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run_for(QUERY_TIMEOUT, work)
    }

    fn run_for<T: Send + 'static>(
        &self,
        limit: Duration,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(runtime) = &self.inner.runtime else {
            return Err(StoreError::Io("the database runtime has stopped".into()));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let outcome = match tokio::time::timeout(limit, work).await {
                Ok(outcome) => outcome,
                Err(_) => Err(StoreError::Io(format!(
                    "the database did not answer within {} s",
                    limit.as_secs()
                ))),
            };
            let _ = tx.send(outcome);
        });
        let wait = move || {
            rx.recv()
                .unwrap_or_else(|_| Err(StoreError::Io("the database task stopped".into())))
        };
        blocking(wait)
    }

    /// Runs `work` on the database runtime, like `run`, but awaits it instead of waiting: the
    /// caller's thread goes on with other tasks. The query and every connection stay on the
    /// database runtime, so they make progress even when all of the caller's runtime workers
    /// are busy or blocked (a connection driven by the server's runtime could not).
    async fn run_async<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(runtime) = &self.inner.runtime else {
            return Err(StoreError::Io("the database runtime has stopped".into()));
        };
        let task = runtime.spawn(async move {
            tokio::time::timeout(QUERY_TIMEOUT, work)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Io(format!(
                        "the database did not answer within {} s",
                        QUERY_TIMEOUT.as_secs()
                    )))
                })
        });
        task.await
            .unwrap_or_else(|_| Err(StoreError::Io("the database task stopped".into())))
    }

    /// Whether the database answers (for `/healthz`).
    pub fn is_healthy(&self) -> bool {
        let pool = self.pool();
        self.run_for(Duration::from_secs(3), async move {
            let client = connection(&pool).await?;
            client.simple_query("SELECT 1").await.map_err(db_error)?;
            Ok(())
        })
        .is_ok()
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let pool = self.pool();
        self.run_for(Duration::from_secs(60), async move {
            let client = connection(&pool).await?;
            client
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(db_error)?;
            let outcome = apply_migrations(&client).await;
            let unlocked = client
                .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                .await;
            if unlocked.is_err() {
                drop(Object::take(client));
            }
            outcome
        })
    }

    /// Takes the advisory lock `key` (waiting for it, at most `QUERY_TIMEOUT`); it is held until
    /// the returned guard is dropped.
    pub fn lock(&self, key: i64) -> Result<Locked, StoreError> {
        let pool = self.inner.locks.clone();
        let client = self.run(async move {
            let client = lock_connection(&pool).await?;
            client
                .execute("SELECT pg_advisory_lock($1)", &[&key])
                .await
                .map_err(db_error)?;
            Ok(client)
        })?;
        Ok(Locked {
            db: self.clone(),
            client: Some(client),
            key,
        })
    }

    /// The same without waiting: `None` when another session holds it.
    pub fn try_lock(&self, key: i64) -> Result<Option<Locked>, StoreError> {
        let pool = self.inner.locks.clone();
        let taken = self.run(async move {
            let client = lock_connection(&pool).await?;
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
                .map_err(db_error)?;
            if row.get::<_, bool>(0) {
                return Ok(Some(client));
            }
            // Not taken: back to the pool without the holder's idle limit.
            let reset = client.batch_execute("SET idle_session_timeout = 0").await;
            if reset.is_err_and(|e| e.as_db_error().is_none()) {
                drop(Object::take(client));
            }
            Ok(None)
        })?;
        Ok(taken.map(|client| Locked {
            db: self.clone(),
            client: Some(client),
            key,
        }))
    }

    /// Every entry of `tables`, read in one REPEATABLE READ transaction: a consistent snapshot
    /// while nodes go on writing (for backups and `--migrate-store`).
    pub fn snapshot(&self, tables: &[&'static str]) -> Result<Entries, StoreError> {
        let pool = self.pool();
        let tables = tables.to_vec();
        self.run_for(Duration::from_secs(3600), async move {
            let client = connection(&pool).await?;
            client
                .batch_execute(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = 0",
                )
                .await
                .map_err(db_error)?;
            let mut all = Vec::new();
            for table in tables {
                let rows = client
                    .query(
                        &format!("SELECT key, value FROM linkgate.{table} ORDER BY key"),
                        &[],
                    )
                    .await
                    .map_err(db_error)?;
                all.extend(rows.iter().map(|row| (table, row.get(0), row.get(1))));
            }
            client.batch_execute("COMMIT").await.map_err(db_error)?;
            Ok(all)
        })
    }

    /// Writes `entries` into `tables`, which must all be empty, in one transaction; reads each
    /// table back inside it and commits only if it holds exactly what was given: all or nothing
    /// (for `--migrate-store` and `--restore`).
    pub fn load_into_empty(
        &self,
        tables: &[&'static str],
        entries: Arc<Entries>,
    ) -> Result<Loaded, StoreError> {
        let pool = self.pool();
        let tables = tables.to_vec();
        self.run_for(Duration::from_secs(3600), async move {
            let client = connection(&pool).await?;
            let outcome = load(&client, &tables, &entries).await;
            let end = match outcome {
                Ok(Loaded::Done) => "COMMIT",
                _ => "ROLLBACK",
            };
            match client.batch_execute(end).await {
                Ok(()) => outcome,
                Err(e) => {
                    drop(Object::take(client));
                    outcome.and(Err(db_error(e)))
                }
            }
        })
    }

    pub fn table(&self, name: &'static str) -> Table {
        Table {
            db: self.clone(),
            sql: Arc::new(Statements::for_table(name)),
            counted: matches!(name, "users" | "keys"),
            kept: match name {
                "grants" => Some(Kept::Grants),
                "denied" => Some(Kept::Denied),
                _ => None,
            },
        }
    }
}

/// Waits for `wait` on this thread; on a worker of a multi-threaded runtime the worker's other
/// tasks move to another thread meanwhile.
pub(super) fn blocking<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

async fn connection(pool: &Pool) -> Result<Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Io(format!("database: {}", with_causes(&e))))
}

/// A connection for holding a lock, which the server ends once idle for `LOCK_IDLE_LIMIT`
/// while it holds the lock (PostgreSQL 14 and later; on older servers the lock lasts as long as
/// the session). Releasing the lock lifts the limit again.
async fn lock_connection(pool: &Pool) -> Result<Object, StoreError> {
    let client = connection(pool).await?;
    let limit = format!("SET idle_session_timeout = '{LOCK_IDLE_LIMIT}'");
    if let Err(e) = client.batch_execute(&limit).await {
        if e.as_db_error().is_none() {
            return Err(db_error(e));
        }
    }
    Ok(client)
}

fn db_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Io(format!("database: {}", db.message())),
        None => StoreError::Io(format!("database: {}", with_causes(&e))),
    }
}

/// An error with the errors it came from ("error connecting to server: Connection refused"; "TLS
/// handshake: invalid peer certificate: UnknownIssuer"): the outer message alone rarely says
/// what to fix. None of them carry the URL's password.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(next) = cause {
        let more = next.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = next.source();
    }
    text
}

/// The newest schema version this linkgate knows (and migrates a database to at start).
pub const NEWEST_SCHEMA: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Connects once, changing nothing (for `--doctor`): the database's linkgate schema version,
/// `None` when it has no linkgate tables yet.
pub fn schema_version(settings: &Settings) -> Result<Option<i32>, StoreError> {
    let db = Db::pool_for(settings)?;
    let pool = db.pool();
    db.run(async move {
        let client = connection(&pool).await?;
        current_version(&client).await
    })
}

/// The highest migration applied, `None` before the first.
async fn current_version(client: &Object) -> Result<Option<i32>, StoreError> {
    let known = client
        .query_one(
            "SELECT to_regclass('linkgate.schema_version') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db_error)?
        .get::<_, bool>(0);
    if !known {
        return Ok(None);
    }
    let version = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM linkgate.schema_version",
            &[],
        )
        .await
        .map_err(db_error)?
        .get(0);
    Ok(Some(version))
}

async fn apply_migrations(client: &Object) -> Result<(), StoreError> {
    let current = current_version(client).await?.unwrap_or(0);
    let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > newest {
        return Err(StoreError::Unusable(format!(
            "the database's linkgate schema is version {current}, newer than this linkgate {} \
             knows (up to {newest}): a newer linkgate has upgraded it; run that version on this \
             node too",
            env!("CARGO_PKG_VERSION")
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        client.batch_execute("BEGIN").await.map_err(db_error)?;
        let applied = async {
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO linkgate.schema_version (version) VALUES ($1)",
                    &[version],
                )
                .await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if let Err(e) = applied {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(StoreError::Unusable(format!(
                "schema migration {version} failed: {}",
                db_error(e)
            )));
        }
        tracing::info!("database schema migrated to version {version}");
    }
    Ok(())
}

fn tls_connector(
    settings: &Settings,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let ca_file = settings.ca_file.as_deref();
    let roots = tls_client::roots_from(ca_file).map_err(|e| {
        let path = ca_file.map(|p| p.display().to_string()).unwrap_or_default();
        format!("storage.ca_file {path}: {e}")
    });
    let config = roots
        .and_then(|roots| tls_client::config(roots, false))
        .map_err(StoreError::Unusable)?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// What `Db::load_into_empty` did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Loaded {
    /// Written, read back equal, committed.
    Done,
    /// Nothing written: these tables already hold entries (how many).
    NotEmpty(Vec<(&'static str, u64)>),
    /// Nothing written: this table read back differently from what was written.
    ReadBackDiffers(&'static str),
}

/// The body of `load_into_empty`'s transaction; the caller commits or rolls back.
async fn load(
    client: &Object,
    tables: &[&'static str],
    entries: &Entries,
) -> Result<Loaded, StoreError> {
    client
        .batch_execute("BEGIN; SET LOCAL statement_timeout = 0")
        .await
        .map_err(db_error)?;
    let mut held = Vec::new();
    for table in tables {
        let sql = format!("SELECT count(*) FROM linkgate.{table}");
        let row = client.query_one(&sql, &[]).await.map_err(db_error)?;
        let count = row.get::<_, i64>(0);
        if count > 0 {
            held.push((*table, count as u64));
        }
    }
    if !held.is_empty() {
        return Ok(Loaded::NotEmpty(held));
    }
    for table in tables {
        let mut rows: Vec<(&[u8], &[u8])> = entries
            .iter()
            .filter(|(t, _, _)| t == table)
            .map(|(_, k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        rows.sort();
        let insert = client
            .prepare(&format!(
                "INSERT INTO linkgate.{table} (key, value) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[])"
            ))
            .await
            .map_err(db_error)?;
        for chunk in rows.chunks(PAGE as usize) {
            let keys: Vec<&[u8]> = chunk.iter().map(|(k, _)| *k).collect();
            let values: Vec<&[u8]> = chunk.iter().map(|(_, v)| *v).collect();
            client
                .execute(&insert, &[&keys, &values])
                .await
                .map_err(db_error)?;
        }
        let sql = format!("SELECT key, value FROM linkgate.{table} ORDER BY key");
        let back = client.query(&sql, &[]).await.map_err(db_error)?;
        let same = back.len() == rows.len()
            && back
                .iter()
                .zip(&rows)
                .all(|(row, (k, v))| row.get::<_, &[u8]>(0) == *k && row.get::<_, &[u8]>(1) == *v);
        if !same {
            return Ok(Loaded::ReadBackDiffers(table));
        }
    }
    // Like every write to users and keys: a node that cached them reads them again.
    client
        .batch_execute("UPDATE linkgate.epochs SET users = users + 1, keys = keys + 1")
        .await
        .map_err(db_error)?;
    Ok(Loaded::Done)
}

/// Entries as (table, key, value).
pub(super) type Entries = Vec<(&'static str, Vec<u8>, Vec<u8>)>;
/// A fetch-and-update's change: the current value (`None`: absent) to the new one.
type Update<'a> = &'a mut dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>>;
/// Keys and values, in key order.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// An advisory lock held on one pooled connection; released (or, if that fails, the connection
/// closed, which releases it too) when dropped.
pub(super) struct Locked {
    db: Db,
    client: Option<Object>,
    key: i64,
}

impl Locked {
    /// Keeps the lock's session from counting as idle (`LOCK_IDLE_LIMIT`) while its holder
    /// works on other connections for longer (a sweep of a large table).
    pub fn keep_alive(&mut self) -> Result<(), StoreError> {
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        let client = self.db.run(async move {
            match client.simple_query("SELECT 1").await {
                Ok(_) => Ok(client),
                Err(e) => {
                    drop(Object::take(client));
                    Err(db_error(e))
                }
            }
        })?;
        self.client = Some(client);
        Ok(())
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let key = self.key;
            let _ = self.db.run(async move {
                // Back in the pool the session may idle as long as it likes: only a holder's
                // session is ended for idling (`lock_connection`).
                let unlocked = client
                    .batch_execute(&format!(
                        "SELECT pg_advisory_unlock({key}); SET idle_session_timeout = 0"
                    ))
                    .await;
                // A server error here is the `SET` on PostgreSQL before 14 (no such setting):
                // the lock is released. Anything else may have left it held: close the session.
                if unlocked.is_err_and(|e| e.as_db_error().is_none()) {
                    drop(Object::take(client));
                }
                Ok(())
            });
        }
    }
}

/// The SQL for one table, formatted once.
struct Statements {
    get: String,
    upsert: String,
    remove: String,
    insert_new: String,
    update_if: String,
    delete_if: String,
    lock: String,
    update: String,
    delete: String,
    first_page: String,
    next_page: String,
    count: String,
    any: String,
    with_epochs: String,
    bump: String,
}

impl Statements {
    fn for_table(name: &str) -> Statements {
        let t = format!("linkgate.{name}");
        Statements {
            get: format!("SELECT value FROM {t} WHERE key = $1"),
            upsert: format!(
                "INSERT INTO {t} (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            remove: format!("DELETE FROM {t} WHERE key = $1 RETURNING value"),
            insert_new: format!(
                "INSERT INTO {t} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
            ),
            update_if: format!("UPDATE {t} SET value = $3 WHERE key = $1 AND value = $2"),
            delete_if: format!("DELETE FROM {t} WHERE key = $1 AND value = $2"),
            lock: format!("SELECT value FROM {t} WHERE key = $1 FOR UPDATE"),
            update: format!("UPDATE {t} SET value = $2 WHERE key = $1"),
            delete: format!("DELETE FROM {t} WHERE key = $1"),
            first_page: format!("SELECT key, value FROM {t} ORDER BY key LIMIT {PAGE}"),
            next_page: format!(
                "SELECT key, value FROM {t} WHERE key > $1 ORDER BY key LIMIT {PAGE}"
            ),
            count: format!("SELECT count(*) FROM {t}"),
            any: format!("SELECT EXISTS (SELECT 1 FROM {t})"),
            with_epochs: format!(
                "SELECT (SELECT value FROM {t} WHERE key = $1), users, keys, \
                 EXISTS (SELECT 1 FROM linkgate.denied WHERE key = $2) FROM linkgate.epochs"
            ),
            bump: format!("UPDATE linkgate.epochs SET {name} = {name} + 1"),
        }
    }
}

/// Reads a grant with the change counters and a deny-list check (`Table::get_with_epochs`).
async fn grant_row(
    pool: Pool,
    sql: Arc<Statements>,
    key: Vec<u8>,
    denied: Vec<u8>,
) -> Result<GrantRow, StoreError> {
    let client = connection(&pool).await?;
    let statement = client
        .prepare_cached(&sql.with_epochs)
        .await
        .map_err(db_error)?;
    let row = client
        .query_one(&statement, &[&key, &denied])
        .await
        .map_err(db_error)?;
    Ok((
        row.get(0),
        Epochs {
            users: row.get(1),
            keys: row.get(2),
        },
        row.get(3),
    ))
}

/// One store tree as a table.
#[derive(Clone)]
pub(super) struct Table {
    db: Db,
    sql: Arc<Statements>,
    /// Whether writes move the table's change counter in `linkgate.epochs` (users and keys:
    /// what nodes cache).
    counted: bool,
    /// Whether the listener's memory keeps rows of it (grants, the deny list), which this
    /// node's own writes then drop at once.
    kept: Option<Kept>,
}

/// Drops what memory kept of a row when a write of it ends, whatever its outcome (a write
/// that timed out may still have committed).
struct Wrote<'a>(&'a Table, &'a [u8]);

impl Drop for Wrote<'_> {
    fn drop(&mut self) {
        if let (Some(table), Some(memory)) = (self.0.kept, self.0.db.memory()) {
            memory.wrote(table, self.1);
        }
    }
}

type Pick = fn(&Statements) -> &str;

/// `Table::redeem_async`: the code's mark and its grant, one statement (a data-modifying CTE:
/// the grant is inserted only from the row the conditional `UPDATE` changed).
const REDEEM_CODE: &str = "WITH marked AS (\
     UPDATE linkgate.codes SET value = $3 WHERE key = $1 AND value = $2 RETURNING key) \
     INSERT INTO linkgate.grants (key, value) SELECT $4, $5 FROM marked";

/// The same for a code of a local user: only if the user's row is still `$7`, and holding it
/// (`FOR SHARE`) until the commit, so that a change of the user (`users.rs`, which rewrites the
/// row and then revokes the user's grants) either commits first and this stores nothing, or
/// waits and then finds this grant to revoke.
const REDEEM_USER_CODE: &str = "WITH still AS (\
     SELECT 1 FROM linkgate.users WHERE key = $6 AND value = $7 FOR SHARE), \
     marked AS (\
     UPDATE linkgate.codes SET value = $3 WHERE key = $1 AND value = $2 \
     AND EXISTS (SELECT 1 FROM still) RETURNING key) \
     INSERT INTO linkgate.grants (key, value) SELECT $4, $5 FROM marked";

impl Table {
    /// Runs one statement with byte-string parameters and returns the first column of each row.
    fn query(&self, pick: Pick, params: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, StoreError> {
        let (pool, sql) = (self.db.pool(), self.sql.clone());
        self.db.run(async move {
            let client = connection(&pool).await?;
            let statement = client.prepare_cached(pick(&sql)).await.map_err(db_error)?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            let rows = client.query(&statement, &refs).await.map_err(db_error)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    /// Runs one statement and returns how many rows it changed.
    fn execute(&self, pick: Pick, params: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        let (pool, sql) = (self.db.pool(), self.sql.clone());
        self.db.run(async move {
            let client = connection(&pool).await?;
            let statement = client.prepare_cached(pick(&sql)).await.map_err(db_error)?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            client.execute(&statement, &refs).await.map_err(db_error)
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.query(|s| &s.get, vec![key.to_vec()])?.pop())
    }

    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let _wrote = Wrote(self, key);
        self.execute(|s| &s.upsert, vec![key.to_vec(), value.to_vec()])?;
        self.changed()
    }

    pub fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let _wrote = Wrote(self, key);
        let removed = self.query(|s| &s.remove, vec![key.to_vec()])?.pop();
        if removed.is_some() {
            self.changed()?;
        }
        Ok(removed)
    }

    /// After a write has committed: moves the table's change counter, if it has one, so that
    /// every node drops what it cached of the table before it next reads a grant.
    fn changed(&self) -> Result<(), StoreError> {
        if self.counted {
            self.execute(|s| &s.bump, Vec::new())?;
        }
        Ok(())
    }

    /// The entry, the change counters and whether `denied` (an access token's id; empty: none)
    /// is in the deny list, in one query (one snapshot). Kept in memory if the listener runs.
    pub fn get_with_epochs(&self, key: &[u8], denied: &[u8]) -> Result<GrantRow, StoreError> {
        let reading = self.db.memory().map(Memory::reading);
        let work = grant_row(
            self.db.pool(),
            self.sql.clone(),
            key.to_vec(),
            denied.to_vec(),
        );
        let row = self.db.run(work)?;
        self.keep(reading, key, denied, &row);
        Ok(row)
    }

    /// The same from this node's memory (`postgres_memory.rs`), if it can answer: no query, no
    /// allocation but the grant's bytes (token checks, the hot path; `shared.rs`).
    pub fn get_with_epochs_from_memory(
        &self,
        key: &[u8],
        token: Option<&[u8; 16]>,
    ) -> Option<GrantRow> {
        self.db.memory()?.answer(key, token)
    }

    /// The same from the database, awaited on the caller's runtime: no thread waits for it.
    pub async fn get_with_epochs_async(
        &self,
        key: Vec<u8>,
        denied: Vec<u8>,
    ) -> Result<GrantRow, StoreError> {
        let reading = self.db.memory().map(Memory::reading);
        let work = grant_row(
            self.db.pool(),
            self.sql.clone(),
            key.clone(),
            denied.clone(),
        );
        let row = self.db.run_async(work).await?;
        self.keep(reading, &key, &denied, &row);
        Ok(row)
    }

    fn keep(&self, reading: Option<Reading>, key: &[u8], denied: &[u8], row: &GrantRow) {
        if let (Some(memory), Some(reading)) = (self.db.memory(), reading) {
            let token = <[u8; 16]>::try_from(denied).ok();
            memory.keep(reading, key, token.as_ref(), row);
        }
    }

    /// The listener's counts for `/metrics` (empty before it runs).
    pub fn render_metrics(&self) -> String {
        self.db
            .memory()
            .map(Memory::render_metrics)
            .unwrap_or_default()
    }

    /// The row, awaited on the caller's runtime: no thread waits for it.
    pub async fn get_async(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let (pool, sql) = (self.db.pool(), self.sql.clone());
        self.db
            .run_async(async move {
                let client = connection(&pool).await?;
                let statement = client.prepare_cached(&sql.get).await.map_err(db_error)?;
                let row = client
                    .query_opt(&statement, &[&key])
                    .await
                    .map_err(db_error)?;
                Ok(row.map(|row| row.get(0)))
            })
            .await
    }

    /// The code exchange's write, for the codes table: replaces the code `old` with `new` (the
    /// same, marked used) and stores `grant` under `grant_key` in the grants table, in one
    /// statement and one commit — both or neither, awaited on the caller's runtime, no lock —
    /// if the code is still `old` and `user` (the users table's key and row, when the code has
    /// a local user) still as given. Of racing exchanges of one code exactly one finds it
    /// still `old`. Whether it did.
    #[allow(clippy::too_many_arguments)]
    pub async fn redeem_async(
        &self,
        grants: &Table,
        key: Vec<u8>,
        old: Vec<u8>,
        new: Vec<u8>,
        grant_key: Vec<u8>,
        grant: Vec<u8>,
        user: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<bool, StoreError> {
        debug_assert!(!self.counted && !grants.counted, "no counter moves here");
        let reading = grants.reading_for_write();
        let pool = self.db.pool();
        let (k, value) = (grant_key.clone(), grant.clone());
        let stored = self
            .db
            .run_async(async move {
                let client = connection(&pool).await?;
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&key, &old, &new, &k, &value];
                let sql = match &user {
                    None => REDEEM_CODE,
                    Some((name, row)) => {
                        params.extend([name as &(dyn ToSql + Sync), row]);
                        REDEEM_USER_CODE
                    }
                };
                let statement = client.prepare_cached(sql).await.map_err(db_error)?;
                let rows = client
                    .execute(&statement, &params)
                    .await
                    .map_err(db_error)?;
                Ok(rows == 1)
            })
            .await;
        grants.after_write(reading, &grant_key, matches!(stored, Ok(true)), grant);
        stored
    }

    /// `Err(current)` when the entry was not `old`.
    pub fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Vec<u8>>>, StoreError> {
        let _wrote = Wrote(self, key);
        let k = key.to_vec();
        let swapped = match (old, new) {
            (None, Some(new)) => self.execute(|s| &s.insert_new, vec![k, new.to_vec()])? == 1,
            (Some(old), Some(new)) => {
                self.execute(|s| &s.update_if, vec![k, old.to_vec(), new.to_vec()])? == 1
            }
            (Some(old), None) => self.execute(|s| &s.delete_if, vec![k, old.to_vec()])? == 1,
            (None, None) => self.get(key)?.is_none(),
        };
        if swapped {
            if old.is_some() || new.is_some() {
                self.changed()?;
            }
            Ok(Ok(()))
        } else {
            Ok(Err(self.get(key)?))
        }
    }

    /// Replaces `old` with `new` if the row is still `old` (one statement, its own commit),
    /// awaited on the caller's runtime; what memory keeps of the row becomes `new` (if no
    /// notification came meanwhile). Whether it swapped. Not for a counted table.
    pub async fn swap_async(
        &self,
        key: Vec<u8>,
        old: Vec<u8>,
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        debug_assert!(
            !self.counted,
            "a counted table's writes must move its counter"
        );
        let reading = self.reading_for_write();
        let (pool, sql) = (self.db.pool(), self.sql.clone());
        let (k, value) = (key.clone(), new.clone());
        let swapped = self
            .db
            .run_async(async move {
                let client = connection(&pool).await?;
                let statement = client
                    .prepare_cached(&sql.update_if)
                    .await
                    .map_err(db_error)?;
                let rows = client
                    .execute(&statement, &[&k, &old, &value])
                    .await
                    .map_err(db_error)?;
                Ok(rows == 1)
            })
            .await;
        self.after_write(reading, &key, matches!(swapped, Ok(true)), new);
        swapped
    }

    /// Before an awaited write of a row memory keeps: memory's reading (`None`: nothing kept).
    fn reading_for_write(&self) -> Option<Reading> {
        self.kept.and(self.db.memory()).map(Memory::reading)
    }

    /// After it, whatever its outcome: what memory keeps of the row becomes `value` if the
    /// write `stored` it (and no notification came meanwhile); otherwise it is dropped (a write
    /// that failed may still have committed).
    fn after_write(&self, reading: Option<Reading>, key: &[u8], stored: bool, value: Vec<u8>) {
        if let (Some(table), Some(memory), Some(reading)) = (self.kept, self.db.memory(), reading) {
            if stored {
                memory.wrote_value(reading, table, key, value);
            } else {
                memory.wrote(table, key);
            }
        }
    }

    /// Reads the row `FOR UPDATE` (other writers of it wait), calls `f` on this thread, writes
    /// what it returns and commits: one transaction, one row lock.
    pub fn fetch_and_update(&self, key: &[u8], f: Update<'_>) -> Result<(), StoreError> {
        let _wrote = Wrote(self, key);
        for _ in 0..ATTEMPTS {
            let (pool, sql, k) = (self.db.pool(), self.sql.clone(), key.to_vec());
            let (client, current) = self.db.run(async move {
                let client = connection(&pool).await?;
                client.batch_execute("BEGIN").await.map_err(db_error)?;
                let statement = client.prepare_cached(&sql.lock).await.map_err(db_error)?;
                match client.query_opt(&statement, &[&k]).await {
                    Ok(row) => Ok((client, row.map(|r| r.get::<_, Vec<u8>>(0)))),
                    Err(e) => {
                        drop(Object::take(client));
                        Err(db_error(e))
                    }
                }
            })?;
            let mut open = Open {
                client: Some(client),
            };
            let new = f(current.as_deref());
            let client = open.client.take();
            let (sql, k, had) = (self.sql.clone(), key.to_vec(), current.is_some());
            let unchanged = new.as_deref() == current.as_deref();
            let written = self.db.run(async move {
                let Some(client) = client else {
                    return Err(StoreError::Io("lost the database connection".into()));
                };
                let wrote = async {
                    let rows = match (had, new) {
                        _ if unchanged => 1,
                        (true, Some(value)) => {
                            let st = client.prepare_cached(&sql.update).await?;
                            client.execute(&st, &[&k, &value]).await?
                        }
                        (true, None) => {
                            let st = client.prepare_cached(&sql.delete).await?;
                            client.execute(&st, &[&k]).await?
                        }
                        (false, Some(value)) => {
                            let st = client.prepare_cached(&sql.insert_new).await?;
                            client.execute(&st, &[&k, &value]).await?
                        }
                        (false, None) => 1,
                    };
                    client
                        .batch_execute(if rows == 1 { "COMMIT" } else { "ROLLBACK" })
                        .await?;
                    Ok::<bool, tokio_postgres::Error>(rows == 1)
                }
                .await;
                match wrote {
                    Ok(done) => Ok(done),
                    Err(e) => {
                        drop(Object::take(client));
                        Err(db_error(e))
                    }
                }
            })?;
            if written {
                return if unchanged { Ok(()) } else { self.changed() };
            }
        }
        Err(StoreError::Io(
            "a new row kept being written by others during an update".into(),
        ))
    }

    /// Every entry in key order, read a page at a time.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        let mut page: std::vec::IntoIter<(Vec<u8>, Vec<u8>)> = Vec::new().into_iter();
        let mut after: Option<Vec<u8>> = None;
        let mut done = false;
        std::iter::from_fn(move || {
            if let Some(entry) = page.next() {
                return Some(Ok(entry));
            }
            if done {
                return None;
            }
            match self.page(after.take()) {
                Ok(rows) => {
                    done = rows.len() < PAGE as usize;
                    after = rows.last().map(|(k, _)| k.clone());
                    page = rows.into_iter();
                    page.next().map(Ok)
                }
                Err(e) => {
                    done = true;
                    Some(Err(e))
                }
            }
        })
    }

    fn page(&self, after: Option<Vec<u8>>) -> Result<Rows, StoreError> {
        let (pool, sql) = (self.db.pool(), self.sql.clone());
        self.db.run(async move {
            let client = connection(&pool).await?;
            let rows = match after {
                None => {
                    let st = client
                        .prepare_cached(&sql.first_page)
                        .await
                        .map_err(db_error)?;
                    client.query(&st, &[]).await
                }
                Some(key) => {
                    let st = client
                        .prepare_cached(&sql.next_page)
                        .await
                        .map_err(db_error)?;
                    client.query(&st, &[&key]).await
                }
            }
            .map_err(db_error)?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let (pool, sql) = (self.db.pool(), self.sql.clone());
        self.db.run(async move {
            let client = connection(&pool).await?;
            let row = client.query_one(&sql.any, &[]).await.map_err(db_error)?;
            Ok(!row.get::<_, bool>(0))
        })
    }

    pub fn len(&self) -> Result<usize, StoreError> {
        let (pool, sql) = (self.db.pool(), self.sql.clone());
        self.db.run(async move {
            let client = connection(&pool).await?;
            let row = client.query_one(&sql.count, &[]).await.map_err(db_error)?;
            Ok(row.get::<_, i64>(0) as usize)
        })
    }
}

/// A transaction between its two halves; if the caller never finishes it (an error, a panic),
/// the connection is closed, which rolls it back, rather than going back to the pool mid-way.
struct Open {
    client: Option<Object>,
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Settings {
        Settings {
            url: url.into(),
            pool_size: 4,
            ca_file: None,
            revocation_bound: Duration::from_secs(1),
        }
    }

    #[test]
    fn where_the_database_is_is_shown_never_the_password() {
        for (url, shown, tls, local) in [
            (
                "postgres://linkgate:hunter2-secret@db.internal/linkgate?sslmode=require",
                "PostgreSQL at db.internal:5432, database linkgate, user linkgate",
                "required",
                false,
            ),
            (
                "postgresql://u:hunter2-secret@[::1]:6543/x",
                "PostgreSQL at [::1]:6543, database x, user u",
                "only if the server offers it",
                true,
            ),
            (
                "postgres://u@a:1,localhost:2/x?password=hunter2-secret&sslmode=disable",
                "PostgreSQL at a:1, localhost:2, database x, user u",
                "no",
                false,
            ),
            (
                "postgres://u:hunter2-secret@127.0.0.1",
                "PostgreSQL at 127.0.0.1:5432, database u, user u",
                "only if the server offers it",
                true,
            ),
        ] {
            let s = settings(url);
            assert_eq!(s.describe(), shown, "{url}");
            assert_eq!(s.tls_mode(), Some(tls), "{url}");
            assert_eq!(s.is_local(), local, "{url}");
            assert!(s.has_password(), "{url}");
            let debug = format!("{s:?}");
            assert!(!debug.contains("hunter2"), "{debug}");
            assert!(debug.contains(shown), "{debug}");
        }
        assert!(!settings("postgres://u@h/x").has_password());
        let bad = settings("postgres://u:hunter2-secret@h:notaport/x");
        assert!(!bad.describe().contains("hunter2"));
        assert_eq!(bad.tls_mode(), None);
    }
}
