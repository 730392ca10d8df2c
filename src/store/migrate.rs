//! `--migrate-store`: copies every entry of every tree from one store into another, empty one
//! (sled to PostgreSQL and back, or between two of a kind), then reads the target back and
//! compares it with what was copied, entry for entry, and per tree by count and SHA-256.
//!
//! Unlike a backup, a migration carries everything: besides users, codes, grants, tokens, the
//! throttle, the token keys and the deny list, also the account trees (one-time password links,
//! `/account` sessions, each link's last refresh, security events) and the authorization forms
//! already spent, so after the move nobody is signed out, no link already sent is void, and no
//! spent form can be submitted again.
//!
//! The source is read in one consistent snapshot (one REPEATABLE READ transaction on PostgreSQL,
//! so nodes may keep running; on sled the CLI holds the directory, so the server is stopped).
//! Into PostgreSQL the copy is one transaction that commits only after the tables read back
//! equal; into sled each entry is written, then flushed.

use super::postgres::{Entries, Loaded};
use super::tree::Tree;
use super::{to_hex, Backend, Store, StoreError};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// Every tree, in the order they are copied and reported.
pub const TREES: [&str; 13] = [
    "users",
    "codes",
    "grants",
    "tokens",
    "throttle",
    "keys",
    "denied",
    "invites",
    "sessions",
    "grant_activity",
    "events",
    "forms",
    "app_links",
];

/// One tree after a verified copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSummary {
    pub tree: &'static str,
    pub entries: u64,
    /// Lower-case hex SHA-256 over the tree's entries in key order, each key and value preceded
    /// by its length (8 bytes, big-endian).
    pub sha256: String,
}

#[derive(Debug)]
pub enum MigrateError {
    /// The target already holds entries (tree, how many); nothing was written.
    TargetNotEmpty(Vec<(&'static str, u64)>),
    /// The target, read back, is not what was copied. `written`: whether the target now holds
    /// (part of) the copy; a PostgreSQL target rolls back before commit and holds nothing.
    Mismatch {
        tree: &'static str,
        problem: String,
        written: bool,
    },
    /// Reading or writing failed. The target may hold part of the copy if it is sled.
    Store(StoreError),
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateError::TargetNotEmpty(held) => {
                let held: Vec<String> = held.iter().map(|(t, n)| format!("{t}: {n}")).collect();
                write!(f, "the target is not empty ({})", held.join(", "))
            }
            MigrateError::Mismatch { tree, problem, .. } => {
                write!(f, "verification failed in tree `{tree}`: {problem}")
            }
            MigrateError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for MigrateError {}

impl From<StoreError> for MigrateError {
    fn from(e: StoreError) -> Self {
        MigrateError::Store(e)
    }
}

impl Store {
    /// Every tree with its name, in the order of `TREES`.
    pub(super) fn every_tree(&self) -> [(&'static str, &Tree); 13] {
        [
            ("users", &self.users),
            ("codes", &self.codes),
            ("grants", &self.grants),
            ("tokens", &self.tokens),
            ("throttle", &self.throttle),
            ("keys", &self.keys),
            ("denied", &self.denied),
            ("invites", &self.invites),
            ("sessions", &self.sessions),
            ("grant_activity", &self.grant_activity),
            ("events", &self.events),
            ("forms", &self.forms),
            ("app_links", &self.app_links),
        ]
    }

    /// Every entry of `trees`, read consistently: in one REPEATABLE READ transaction on
    /// PostgreSQL (nodes go on writing), with this process's writers paused on sled.
    pub(super) fn snapshot_of(
        &self,
        trees: &[(&'static str, &Tree)],
    ) -> Result<Entries, StoreError> {
        match &self.backend {
            Backend::Postgres(db) => {
                let names: Vec<&'static str> = trees.iter().map(|(n, _)| *n).collect();
                db.snapshot(&names)
            }
            Backend::Sled { .. } => {
                let _paused = self.gate.write().unwrap_or_else(|p| p.into_inner());
                let mut all = Vec::new();
                for (name, tree) in trees {
                    for entry in tree.iter() {
                        let (key, value) = entry?;
                        all.push((*name, key.to_vec(), value.to_vec()));
                    }
                }
                Ok(all)
            }
        }
    }

    /// Copies every entry of every tree into `target`, which must be empty, then reads the
    /// target back and compares. Returns each tree's count and digest.
    pub fn migrate_into(&self, target: &Store) -> Result<Vec<TreeSummary>, MigrateError> {
        let snapshot = Arc::new(self.snapshot_of(&self.every_tree())?);
        target.load_every_tree(snapshot.clone())?;
        target.verify_every_tree(&snapshot)
    }

    /// Writes `entries` into this store, which must be empty in every tree.
    fn load_every_tree(&self, entries: Arc<Entries>) -> Result<(), MigrateError> {
        if let Backend::Postgres(db) = &self.backend {
            return match db.load_into_empty(&TREES, entries)? {
                Loaded::Done => Ok(()),
                Loaded::NotEmpty(held) => Err(MigrateError::TargetNotEmpty(held)),
                Loaded::ReadBackDiffers(tree) => Err(MigrateError::Mismatch {
                    tree,
                    problem: "read back before commit, it differed from what was written \
                              (rolled back: the target holds nothing)"
                        .into(),
                    written: false,
                }),
            };
        }
        let trees = self.every_tree();
        let mut held = Vec::new();
        for (name, tree) in &trees {
            if !tree.is_empty()? {
                held.push((*name, tree.len()? as u64));
            }
        }
        if !held.is_empty() {
            return Err(MigrateError::TargetNotEmpty(held));
        }
        for (name, key, value) in entries.iter() {
            let (_, tree) = trees
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| StoreError::Corrupt(format!("no tree `{name}`")))?;
            tree.insert(key.as_slice(), value.as_slice())?;
        }
        self.flush_blocking()?;
        Ok(())
    }

    /// Reads every tree back and compares it with `copied`, entry for entry.
    fn verify_every_tree(&self, copied: &Entries) -> Result<Vec<TreeSummary>, MigrateError> {
        let mut summaries = Vec::new();
        for (name, tree) in self.every_tree() {
            let mut expected: Vec<(&[u8], &[u8])> = copied
                .iter()
                .filter(|(t, _, _)| *t == name)
                .map(|(_, k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            expected.sort();
            summaries.push(compare(name, &expected, tree.iter())?);
        }
        Ok(summaries)
    }
}

/// SHA-256 over entries in the order given, each key and value preceded by its length.
fn digest<'a>(entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> String {
    let mut hash = Sha256::new();
    for (key, value) in entries {
        add_entry(&mut hash, key, value);
    }
    to_hex(&hash.finalize())
}

fn add_entry(hash: &mut Sha256, key: &[u8], value: &[u8]) {
    hash.update((key.len() as u64).to_be_bytes());
    hash.update(key);
    hash.update((value.len() as u64).to_be_bytes());
    hash.update(value);
}

/// Walks `actual` (the target read back, in key order) along `expected` (what was copied,
/// sorted by key): the first difference is a mismatch; then count and digest, each computed
/// from its own side, must agree too.
fn compare<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    tree: &'static str,
    expected: &[(&[u8], &[u8])],
    actual: impl Iterator<Item = Result<(K, V), StoreError>>,
) -> Result<TreeSummary, MigrateError> {
    let mismatch = |problem: String| MigrateError::Mismatch {
        tree,
        problem,
        written: true,
    };
    let mut hash = Sha256::new();
    let mut count = 0usize;
    for entry in actual {
        let (key, value) = entry?;
        let (key, value) = (key.as_ref(), value.as_ref());
        match expected.get(count) {
            None => {
                return Err(mismatch(format!(
                    "the target holds more than the {} entries copied",
                    expected.len()
                )))
            }
            Some((k, _)) if *k != key => {
                return Err(mismatch(format!(
                    "entry {} has another key in the target than in the source",
                    count + 1
                )))
            }
            Some((_, v)) if *v != value => {
                return Err(mismatch(format!(
                    "entry {} has another value in the target than in the source",
                    count + 1
                )))
            }
            Some(_) => {}
        }
        add_entry(&mut hash, key, value);
        count += 1;
    }
    if count != expected.len() {
        return Err(mismatch(format!(
            "the target holds {count} entries, the source {}",
            expected.len()
        )));
    }
    let target_digest = to_hex(&hash.finalize());
    if target_digest != digest(expected.iter().copied()) {
        return Err(mismatch("the digests differ".into()));
    }
    Ok(TreeSummary {
        tree,
        entries: count as u64,
        sha256: target_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Username;

    /// A tree read back: entries, or a failed read.
    type ReadBack = Vec<Result<(Vec<u8>, Vec<u8>), StoreError>>;

    fn read(entries: &[(&'static [u8], &'static [u8])]) -> ReadBack {
        entries
            .iter()
            .map(|(k, v)| Ok((k.to_vec(), v.to_vec())))
            .collect()
    }

    #[test]
    fn compare_finds_every_kind_of_difference() {
        let source: Vec<(&[u8], &[u8])> = vec![(b"a", b"1"), (b"b", b"2")];
        let same = compare(
            "users",
            &source,
            read(&[(b"a", b"1"), (b"b", b"2")]).into_iter(),
        );
        let same = same.unwrap();
        assert_eq!(same.entries, 2);
        assert_eq!(same.sha256, digest(source.iter().copied()));
        let problem = |target: &[(&'static [u8], &'static [u8])]| match compare(
            "users",
            &source,
            read(target).into_iter(),
        ) {
            Err(MigrateError::Mismatch { tree, problem, .. }) => {
                assert_eq!(tree, "users");
                problem
            }
            other => panic!("not a mismatch: {other:?}"),
        };
        assert!(problem(&[(b"a", b"1")]).contains("holds 1 entries, the source 2"));
        assert!(problem(&[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]).contains("more than"));
        assert!(problem(&[(b"a", b"1"), (b"c", b"2")]).contains("entry 2 has another key"));
        assert!(problem(&[(b"a", b"9"), (b"b", b"2")]).contains("entry 1 has another value"));
        // Lengths are hashed: moving a byte from key to value changes the digest.
        assert_ne!(
            digest([(&b"ab"[..], &b"c"[..])]),
            digest([(&b"a"[..], &b"bc"[..])])
        );
        let failed = compare(
            "users",
            &source,
            vec![Err::<(Vec<u8>, Vec<u8>), _>(StoreError::Io("gone".into()))].into_iter(),
        );
        assert!(matches!(failed, Err(MigrateError::Store(_))));
    }

    /// A tree added to the store (a sled tree, a key-value table in a migration) but not to
    /// `TREES` would silently stay behind in a migration.
    #[test]
    fn every_tree_of_both_backends_is_copied() {
        let (_dir, store) = crate::store::fixtures::temp_store();
        let Backend::Sled { db, .. } = &store.backend else {
            panic!("a sled fixture")
        };
        let mut sled: Vec<String> = db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| n != "__sled__default")
            .collect();
        sled.sort();
        let mut trees: Vec<String> = TREES.iter().map(|t| t.to_string()).collect();
        trees.sort();
        assert_eq!(sled, trees);
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/migrations");
        let mut tables = Vec::new();
        for file in std::fs::read_dir(folder).unwrap() {
            let sql = std::fs::read_to_string(file.unwrap().path()).unwrap();
            for part in sql.split("CREATE TABLE linkgate.").skip(1) {
                let (name, rest) = part.split_once(' ').unwrap();
                if rest.starts_with("(key bytea") {
                    tables.push(name.to_string());
                }
            }
        }
        tables.sort();
        assert_eq!(tables, trees);
    }

    #[test]
    fn a_sled_store_migrates_into_an_empty_one_and_never_into_a_full_one() {
        let (_a, source) = crate::store::fixtures::temp_store();
        let name = Username::parse("alice").unwrap();
        source.add_user(&name, "hash".into()).unwrap();
        source.ensure_token_key(1).unwrap();
        let (_b, target) = crate::store::fixtures::temp_store();
        let summary = source.migrate_into(&target).unwrap();
        assert_eq!(summary.len(), TREES.len());
        let count = |tree: &str| summary.iter().find(|s| s.tree == tree).unwrap().entries;
        assert_eq!((count("users"), count("keys"), count("grants")), (1, 1, 0));
        assert!(target.user(&name).unwrap().is_some());
        match source.migrate_into(&target) {
            Err(MigrateError::TargetNotEmpty(held)) => {
                assert_eq!(held, vec![("users", 1), ("keys", 1)])
            }
            other => panic!("{other:?}"),
        }
    }
}
