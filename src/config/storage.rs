//! The `[storage]` table: the sled data directory and its tuning, or a PostgreSQL database.

use super::ranges::{CACHE_MIB, POOL_SIZE, REVOCATION_BOUND_MS, SWEEP_INTERVAL_SECS};
use super::schema::RawStorage;
use super::values::relative;
use std::path::{Path, PathBuf};

/// The checked `[storage]` table.
pub(super) struct Storage {
    pub(super) path: PathBuf,
    pub(super) cache_bytes: u64,
    pub(super) sweep_interval_secs: u64,
    pub(super) postgres: Option<crate::store::PostgresSettings>,
}

/// The `[storage]` table: where the data lives and how it is kept.
pub(super) fn check_storage(
    raw: RawStorage,
    dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> Storage {
    if raw.path.as_os_str().is_empty() {
        problem("storage.path", "must not be empty".into());
    }
    SWEEP_INTERVAL_SECS.check(
        "storage.sweep_interval_secs",
        raw.sweep_interval_secs,
        problem,
    );
    CACHE_MIB.check("storage.cache_mib", raw.cache_mib, problem);
    let postgres = check_postgres(&raw, dir, problem);
    Storage {
        path: relative(dir, &raw.path),
        cache_bytes: raw.cache_mib.saturating_mul(1024 * 1024),
        sweep_interval_secs: raw.sweep_interval_secs,
        postgres,
    }
}

/// `[storage] backend`, and for `"postgres"` its `url`, `pool_size`, `ca_file` and
/// `revocation_bound_ms`. The URL may
/// hold a password: problems name the key, never the value.
fn check_postgres(
    raw: &RawStorage,
    dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> Option<crate::store::PostgresSettings> {
    match raw.backend.as_str() {
        "sled" => {
            for (key, set) in [
                ("storage.url", raw.url.is_some()),
                ("storage.pool_size", raw.pool_size.is_some()),
                ("storage.ca_file", raw.ca_file.is_some()),
                (
                    "storage.revocation_bound_ms",
                    raw.revocation_bound_ms.is_some(),
                ),
            ] {
                if set {
                    problem(key, "is only used with `backend = \"postgres\"`".into());
                }
            }
            None
        }
        "postgres" => {
            let pool_size = raw.pool_size.unwrap_or(16);
            POOL_SIZE.check("storage.pool_size", pool_size, problem);
            let bound_ms = raw.revocation_bound_ms.unwrap_or(1000);
            REVOCATION_BOUND_MS.check("storage.revocation_bound_ms", bound_ms, problem);
            let Some(url) = &raw.url else {
                problem(
                    "storage.url",
                    "is required with `backend = \"postgres\"` (postgres://user@host/database)"
                        .into(),
                );
                return None;
            };
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
                || url.parse::<tokio_postgres::Config>().is_err()
            {
                problem(
                    "storage.url",
                    "is not a PostgreSQL URL like postgres://user@host:5432/database".into(),
                );
            }
            let ca_file = raw.ca_file.as_ref().map(|p| relative(dir, p));
            if let Some(path) = &ca_file {
                if !path.is_file() {
                    problem(
                        "storage.ca_file",
                        format!("{} is not a file", path.display()),
                    );
                }
            }
            Some(crate::store::PostgresSettings {
                url: url.clone(),
                pool_size: pool_size as usize,
                ca_file,
                revocation_bound: std::time::Duration::from_millis(bound_ms),
            })
        }
        other => {
            problem(
                "storage.backend",
                format!("`{other}` is not a backend: \"sled\" (the default) or \"postgres\""),
            );
            None
        }
    }
}
