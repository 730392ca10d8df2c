//! Backups: a consistent, versioned snapshot of every tree as JSON lines, and its restore into an
//! empty data directory. Consistent because writers pause (briefly: the snapshot is copied to
//! memory, then written out) while the trees are read, so the file never holds, say, a token
//! whose grant was written after the tokens were read.
//!
//! Format: a header line `{"format":"linkgate-backup","version":2,"created":SECS}`, one line per
//! entry `{"tree":NAME,"key":B64,"value":B64}`, and a trailer `{"entries":N,"sha256":HEX}` over
//! all entry lines, so a truncated or edited file is refused on restore.

use super::{to_hex, Store, StoreError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{BufRead, Write};

const FORMAT: &str = "linkgate-backup";

/// Why a backup was not restored. Nothing has been written unless it is `Store`.
#[derive(Debug)]
pub enum RestoreError {
    /// The data directory already holds data.
    NotEmpty,
    /// Reading the file failed.
    Unreadable(String),
    /// The file stops before this part.
    EndsEarly(&'static str),
    /// The first line is not a backup header.
    NotABackup,
    /// A backup of another format or version.
    Unsupported { format: String, version: u32 },
    /// An entry whose key or value is not base64 (line number, from 1).
    BadBase64 { line: usize },
    /// A line that is neither an entry nor the trailer.
    BadLine { line: usize },
    /// The entry count or checksum does not match: truncated or edited.
    Damaged,
    /// An entry for a tree this linkgate does not have.
    UnknownTree(String),
    /// Writing the entries failed.
    Store(StoreError),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::NotEmpty => f.write_str(
                "the data directory is not empty: restore only into a new, empty storage.path",
            ),
            RestoreError::Unreadable(e) => write!(f, "cannot read the backup: {e}"),
            RestoreError::EndsEarly(what) => write!(f, "the backup ends early (missing {what})"),
            RestoreError::NotABackup => f.write_str("not a linkgate backup (bad header line)"),
            RestoreError::Unsupported { format, version } => write!(
                f,
                "unsupported backup: format `{format}` version {version} (this linkgate reads `{FORMAT}` versions {OLDEST_READABLE} to {VERSION})"
            ),
            RestoreError::BadBase64 { line } => write!(f, "line {line}: bad base64"),
            RestoreError::BadLine { line } => {
                write!(f, "line {line}: neither an entry nor the trailer")
            }
            RestoreError::Damaged => {
                f.write_str("the backup is damaged (entry count or checksum does not match)")
            }
            RestoreError::UnknownTree(name) => {
                write!(f, "the backup names an unknown tree `{name}`")
            }
            RestoreError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RestoreError {}

impl From<StoreError> for RestoreError {
    fn from(e: StoreError) -> Self {
        RestoreError::Store(e)
    }
}
/// Version 2 holds tokens and grants in their binary encoding (`record.rs`); version 1 files,
/// whose records are all JSON, are still restored (those records are still read). Version 3
/// adds the server keys of self-verifying access tokens and their deny list (`keys`, `denied`),
/// and grants of record version 2; a version 1 or 2 file restores, and the server makes a key at
/// its first start. Version 4 holds every tree, so that a restore looks the same to customers:
/// one-time password links still open, `/account` sessions, each link's last refresh, security
/// events, spent authorization forms (a form is not spent twice) and Alexa app-to-app links;
/// files of versions 1 to 3 restore, and those start afresh.
const VERSION: u32 = 4;
const OLDEST_READABLE: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    created: u64,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    tree: String,
    key: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    entries: u64,
    sha256: String,
}

impl Store {
    fn trees(&self) -> [(&'static str, &super::tree::Tree); 13] {
        self.every_tree()
    }

    /// Writes a snapshot to `out`. Returns the number of entries.
    pub fn backup(&self, out: &mut impl Write) -> Result<u64, StoreError> {
        // One REPEATABLE READ transaction on PostgreSQL, writers paused on sled.
        let snapshot = self.snapshot_of(&self.trees())?;
        let io = |e: std::io::Error| StoreError::Io(format!("writing the backup failed: {e}"));
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            created: super::now(),
        };
        writeln!(
            out,
            "{}",
            serde_json::to_string(&header).unwrap_or_default()
        )
        .map_err(io)?;
        let mut digest = Sha256::new();
        for (tree, key, value) in &snapshot {
            let line = serde_json::to_string(&Entry {
                tree: tree.to_string(),
                key: STANDARD.encode(key),
                value: STANDARD.encode(value),
            })
            .unwrap_or_default();
            digest.update(line.as_bytes());
            digest.update(b"\n");
            writeln!(out, "{line}").map_err(io)?;
        }
        let trailer = Trailer {
            entries: snapshot.len() as u64,
            sha256: to_hex(&digest.finalize()),
        };
        writeln!(
            out,
            "{}",
            serde_json::to_string(&trailer).unwrap_or_default()
        )
        .map_err(io)?;
        out.flush().map_err(io)?;
        Ok(snapshot.len() as u64)
    }

    /// Whether the store holds nothing (restore only goes into an empty data directory).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        for (_, tree) in self.trees() {
            if !tree.is_empty()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Restores a backup into this (empty) store. The whole file is checked before anything is
    /// written. Returns the number of entries.
    pub fn restore(&self, input: impl BufRead) -> Result<u64, RestoreError> {
        if !self.is_empty()? {
            return Err(RestoreError::NotEmpty);
        }
        let mut lines = input.lines();
        let mut next = |what: &'static str| -> Result<String, RestoreError> {
            lines
                .next()
                .ok_or(RestoreError::EndsEarly(what))?
                .map_err(|e| RestoreError::Unreadable(e.to_string()))
        };
        let header: Header =
            serde_json::from_str(&next("the header")?).map_err(|_| RestoreError::NotABackup)?;
        if header.format != FORMAT || !(OLDEST_READABLE..=VERSION).contains(&header.version) {
            return Err(RestoreError::Unsupported {
                format: header.format,
                version: header.version,
            });
        }
        let mut digest = Sha256::new();
        let mut entries = Vec::new();
        let trailer: Trailer = loop {
            let line = next("the trailer")?;
            if let Ok(entry) = serde_json::from_str::<Entry>(&line) {
                digest.update(line.as_bytes());
                digest.update(b"\n");
                let key = STANDARD.decode(&entry.key);
                let value = STANDARD.decode(&entry.value);
                match (key, value) {
                    (Ok(key), Ok(value)) => entries.push((entry.tree, key, value)),
                    _ => {
                        return Err(RestoreError::BadBase64 {
                            line: entries.len() + 2,
                        })
                    }
                }
            } else {
                break serde_json::from_str(&line).map_err(|_| RestoreError::BadLine {
                    line: entries.len() + 2,
                })?;
            }
        };
        if trailer.entries != entries.len() as u64 || trailer.sha256 != to_hex(&digest.finalize()) {
            return Err(RestoreError::Damaged);
        }
        let trees = self.trees();
        let mut named = Vec::with_capacity(entries.len());
        for (name, key, value) in entries {
            let (tree_name, tree) = trees
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or(RestoreError::UnknownTree(name))?;
            named.push((*tree_name, *tree, key, value));
        }
        let count = named.len() as u64;
        match &self.backend {
            // One transaction, committed only when the tables read back equal: all or nothing.
            super::Backend::Postgres(db) => {
                let names: Vec<&'static str> = trees.iter().map(|(n, _)| *n).collect();
                let rows = named.into_iter().map(|(n, _, k, v)| (n, k, v)).collect();
                match db.load_into_empty(&names, std::sync::Arc::new(rows))? {
                    super::postgres::Loaded::Done => {}
                    super::postgres::Loaded::NotEmpty(_) => return Err(RestoreError::NotEmpty),
                    super::postgres::Loaded::ReadBackDiffers(tree) => {
                        return Err(RestoreError::Store(StoreError::Io(format!(
                            "table {tree} read back differently from what was written; \
                             rolled back, nothing restored"
                        ))))
                    }
                }
            }
            super::Backend::Sled { .. } => {
                for (_, tree, key, value) in &named {
                    tree.insert(key.as_slice(), value.as_slice())?;
                }
            }
        }
        self.flush_blocking()?;
        self.reload_keys()?;
        *self.deny_list.lock().unwrap_or_else(|p| p.into_inner()) =
            Store::load_deny_list(&self.denied)?;
        self.forget_generations();
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Username;

    fn store() -> (tempfile::TempDir, Store) {
        crate::store::fixtures::temp_store()
    }

    #[test]
    fn a_backup_restores_and_each_refusal_says_why() {
        let (_a, source) = store();
        let name = Username::parse("alice").unwrap();
        source.add_user(&name, "hash".into()).unwrap();
        let mut file = Vec::new();
        source.backup(&mut file).unwrap();

        let (_b, target) = store();
        assert_eq!(target.restore(&file[..]).unwrap(), 1);
        assert!(target.user(&name).unwrap().is_some());
        assert!(matches!(
            target.restore(&file[..]),
            Err(RestoreError::NotEmpty)
        ));

        let refused = |bytes: &[u8]| store().1.restore(bytes).unwrap_err();
        assert!(matches!(
            refused(b""),
            RestoreError::EndsEarly("the header")
        ));
        assert!(matches!(refused(b"hello\n"), RestoreError::NotABackup));
        let text = String::from_utf8(file.clone()).unwrap();
        let header = text.lines().next().unwrap();
        assert!(matches!(
            refused(format!("{header}\n").as_bytes()),
            RestoreError::EndsEarly("the trailer")
        ));
        let other = header.replace("linkgate-backup", "other-backup");
        assert!(matches!(
            refused(text.replace(header, &other).as_bytes()),
            RestoreError::Unsupported { .. }
        ));
        let lines: Vec<&str> = text.lines().collect();
        let without_entry = format!("{}\n{}\n", lines[0], lines[lines.len() - 1]);
        assert!(matches!(
            refused(without_entry.as_bytes()),
            RestoreError::Damaged
        ));
        let garbage = format!("{}\nnot json\n", lines[0]);
        let err = refused(garbage.as_bytes());
        assert!(matches!(err, RestoreError::BadLine { line: 2 }), "{err}");
        assert_eq!(err.to_string(), "line 2: neither an entry nor the trailer");
    }

    #[test]
    fn version_4_carries_every_tree_and_a_version_3_file_still_restores() {
        let (_a, source) = store();
        let name = Username::parse("alice").unwrap();
        source.add_user(&name, "hash".into()).unwrap();
        let user = source.user(&name).unwrap().unwrap();
        source
            .create_session(&[7u8; 32], &user, crate::store::now(), 600)
            .unwrap();
        let mut file = Vec::new();
        source.backup(&mut file).unwrap();
        let text = String::from_utf8(file).unwrap();
        assert!(text.starts_with(r#"{"format":"linkgate-backup","version":4,"#));
        assert!(text.contains(r#""tree":"sessions""#), "{text}");
        let (_b, target) = store();
        target.restore(text.as_bytes()).unwrap();
        assert!(target
            .session(&[7u8; 32], crate::store::now())
            .unwrap()
            .is_some());

        // A version 3 file: the seven trees it had, its own trailer.
        let mut lines = vec![text
            .lines()
            .next()
            .unwrap()
            .replace(r#""version":4"#, r#""version":3"#)];
        let mut digest = Sha256::new();
        let mut entries = 0;
        for line in text.lines().skip(1) {
            if let Ok(entry) = serde_json::from_str::<Entry>(line) {
                let old = [
                    "users", "codes", "grants", "tokens", "throttle", "keys", "denied",
                ];
                if old.contains(&entry.tree.as_str()) {
                    digest.update(line.as_bytes());
                    digest.update(b"\n");
                    entries += 1;
                    lines.push(line.to_string());
                }
            }
        }
        let trailer = Trailer {
            entries,
            sha256: to_hex(&digest.finalize()),
        };
        lines.push(serde_json::to_string(&trailer).unwrap());
        let v3 = lines.join("\n") + "\n";
        let (_c, old) = store();
        assert_eq!(old.restore(v3.as_bytes()).unwrap(), entries);
        assert!(old.user(&name).unwrap().is_some());
        assert!(old
            .session(&[7u8; 32], crate::store::now())
            .unwrap()
            .is_none());
    }
}
