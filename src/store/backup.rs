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
use std::io::{BufRead, Write};

const FORMAT: &str = "linkgate-backup";
/// Version 2 holds tokens and grants in their binary encoding (`record.rs`); version 1 files,
/// whose records are all JSON, are still restored (those records are still read). Version 3
/// adds the server keys of self-verifying access tokens and their deny list (`keys`, `denied`),
/// and grants of record version 2; a version 1 or 2 file restores, and the server makes a key at
/// its first start.
const VERSION: u32 = 3;
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
    fn trees(&self) -> [(&'static str, &sled::Tree); 7] {
        [
            ("users", &self.users),
            ("codes", &self.codes),
            ("grants", &self.grants),
            ("tokens", &self.tokens),
            ("throttle", &self.throttle),
            ("keys", &self.keys),
            ("denied", &self.denied),
        ]
    }

    /// Writes a snapshot to `out`. Returns the number of entries.
    pub fn backup(&self, out: &mut impl Write) -> Result<u64, StoreError> {
        let snapshot: Vec<(&'static str, sled::IVec, sled::IVec)> = {
            let _paused = self.gate.write().unwrap_or_else(|p| p.into_inner());
            let mut all = Vec::new();
            for (name, tree) in self.trees() {
                for entry in tree.iter() {
                    let (key, value) = entry?;
                    all.push((name, key, value));
                }
            }
            all
        };
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
    pub fn is_empty(&self) -> bool {
        self.trees().iter().all(|(_, tree)| tree.is_empty())
    }

    /// Restores a backup into this (empty) store. The whole file is checked before anything is
    /// written. Returns the number of entries.
    pub fn restore(&self, input: impl BufRead) -> Result<u64, String> {
        if !self.is_empty() {
            return Err(
                "the data directory is not empty: restore only into a new, empty storage.path"
                    .into(),
            );
        }
        let mut lines = input.lines();
        let mut next = |what: &str| -> Result<String, String> {
            lines
                .next()
                .ok_or_else(|| format!("the backup ends early (missing {what})"))?
                .map_err(|e| format!("cannot read the backup: {e}"))
        };
        let header: Header = serde_json::from_str(&next("the header")?)
            .map_err(|_| "not a linkgate backup (bad header line)".to_string())?;
        if header.format != FORMAT || !(OLDEST_READABLE..=VERSION).contains(&header.version) {
            return Err(format!(
                "unsupported backup: format `{}` version {} (this linkgate reads `{FORMAT}` versions {OLDEST_READABLE} to {VERSION})",
                header.format, header.version
            ));
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
                    _ => return Err(format!("line {}: bad base64", entries.len() + 2)),
                }
            } else {
                break serde_json::from_str(&line).map_err(|_| {
                    format!(
                        "line {}: neither an entry nor the trailer",
                        entries.len() + 2
                    )
                })?;
            }
        };
        if trailer.entries != entries.len() as u64 || trailer.sha256 != to_hex(&digest.finalize()) {
            return Err("the backup is damaged (entry count or checksum does not match)".into());
        }
        let trees = self.trees();
        for (name, key, value) in &entries {
            let tree = trees
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .ok_or_else(|| format!("the backup names an unknown tree `{name}`"))?;
            tree.insert(key.as_slice(), value.as_slice())
                .map_err(|e| e.to_string())?;
        }
        self.flush_blocking().map_err(|e| e.to_string())?;
        self.reload_keys().map_err(|e| e.to_string())?;
        *self.deny_list.lock().unwrap_or_else(|p| p.into_inner()) =
            Store::load_deny_list(&self.denied).map_err(|e| e.to_string())?;
        self.forget_generations();
        Ok(entries.len() as u64)
    }
}
