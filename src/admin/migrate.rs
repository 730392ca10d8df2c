//! `linkgate --config A --migrate-store --to-config B`: moves a deployment from one store to
//! another (sled to PostgreSQL when it grows to two nodes, PostgreSQL back to sled when it
//! shrinks). This is the command-line side: both configs, opening both stores with errors an
//! operator can act on, and the summary. The copy and its verification are the store's
//! (`store/migrate.rs`).

use crate::admin::{storage_description, AdminError};
use crate::config::Config;
use crate::store::{MigrateError, Store, StoreError, TreeSummary};
use std::path::Path;

/// Copies this config's store into the empty store of the config at `target_file`, verified.
pub fn run(config: &Config, target_file: &Path) -> Result<String, AdminError> {
    let target_config =
        crate::config::load(target_file).map_err(|e| AdminError(format!("--to-config: {e}")))?;
    let from = storage_description(config);
    let to = storage_description(&target_config);
    if same_store(config, &target_config) {
        return Err(AdminError(format!(
            "the source and the target are the same store ({from}): --to-config must name \
             the config of another store"
        )));
    }
    let source = open(config, Role::Source)?;
    let target = open(&target_config, Role::Target)?;
    let summary = source
        .migrate_into(&target)
        .map_err(|e| explain(e, &to, &target_config))?;
    drop(source);
    target
        .close()
        .map_err(|e| AdminError(format!("closing the target ({to}) failed: {e}")))?;
    Ok(report(&from, &to, config.postgres.is_some(), &summary))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    Target,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Target => "target",
        }
    }
}

/// Opens a config's store; a sled directory held by a running server is a clear refusal.
fn open(config: &Config, role: Role) -> Result<Store, AdminError> {
    Store::open_configured(
        &config.storage_path,
        config.cache_bytes,
        config.postgres.as_ref(),
    )
    .map_err(|e| match e {
        StoreError::Locked(path) => AdminError(format!(
            "the {} data directory {} is in use by a running linkgate (sled lets one process \
             open it): stop that server first, then run --migrate-store again{}",
            role.name(),
            path.display(),
            match role {
                Role::Source =>
                    " (a PostgreSQL source, by contrast, is copied while its nodes run)",
                Role::Target => "",
            }
        )),
        other => AdminError(format!(
            "the {} store ({}): {other}",
            role.name(),
            storage_description(config)
        )),
    })
}

/// Whether both configs name the same store: one sled directory, or one PostgreSQL database.
fn same_store(a: &Config, b: &Config) -> bool {
    match (&a.postgres, &b.postgres) {
        (None, None) => {
            let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            real(&a.storage_path) == real(&b.storage_path)
        }
        (Some(a), Some(b)) => a.describe() == b.describe(),
        _ => false,
    }
}

/// An error with what it means for the target and what to do next.
fn explain(e: MigrateError, to: &str, target: &Config) -> AdminError {
    let empty_it = match &target.postgres {
        // sled's files; the directory also holds the admin socket and the ACME cache.
        None => format!("remove {}", target.storage_path.join("db").display()),
        Some(_) => "use a new database, or drop the schema: DROP SCHEMA linkgate CASCADE".into(),
    };
    AdminError(match e {
        MigrateError::TargetNotEmpty(_) => format!(
            "{e}: {to}. --migrate-store copies only into an empty store and wrote nothing; \
             point the target config at a new, empty store or {empty_it}"
        ),
        MigrateError::Mismatch { written: false, .. } => {
            format!("{e}. Nothing was written to {to}.")
        }
        MigrateError::Mismatch { written: true, .. } => format!(
            "{e}. {to} holds a copy that does not match the source: do not start linkgate \
             on it; {empty_it} and run --migrate-store again"
        ),
        MigrateError::Store(e) => format!(
            "copying into {to} failed: {e}. {}",
            match &target.postgres {
                None =>
                    format!("The target may hold part of the copy: {empty_it} before trying again."),
                Some(_) => "The copy into PostgreSQL is one transaction: unless the failure came \
                            while reading it back after the commit, the target is still empty \
                            and --migrate-store can run again."
                    .into(),
            }
        ),
    })
}

/// The summary: each tree's entries and digest, then the verdict.
fn report(from: &str, to: &str, live_source: bool, summary: &[TreeSummary]) -> String {
    let mut out = format!("copied {from}\n  into {to}\n");
    out.push_str(&format!("{:<16}{:>9}  sha256\n", "tree", "entries"));
    for tree in summary {
        out.push_str(&format!(
            "{:<16}{:>9}  {}\n",
            tree.tree,
            tree.entries,
            &tree.sha256[..16]
        ));
    }
    let total: u64 = summary.iter().map(|t| t.entries).sum();
    out.push_str(&format!(
        "verified: {total} entries in {} trees; the target, read back, matches the source \
         entry for entry",
        summary.len()
    ));
    if live_source {
        out.push_str(
            "\nnote: the source was read in one snapshot; what its nodes wrote after that is \
             not in the target (stop them before switching over)",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_lists_every_tree_and_says_verified() {
        let summary = vec![
            TreeSummary {
                tree: "users",
                entries: 2,
                sha256: "ab".repeat(32),
            },
            TreeSummary {
                tree: "grant_activity",
                entries: 10,
                sha256: "cd".repeat(32),
            },
        ];
        let out = report("sled in /a", "PostgreSQL at h:5432", false, &summary);
        assert!(
            out.contains("users                   2  abababababababab\n"),
            "{out}"
        );
        assert!(
            out.contains("grant_activity         10  cdcdcdcdcdcdcdcd\n"),
            "{out}"
        );
        assert!(out.ends_with("verified: 12 entries in 2 trees; the target, read back, matches the source entry for entry"), "{out}");
        assert!(report("a", "b", true, &summary).contains("snapshot"));
    }
}
