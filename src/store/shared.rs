//! On PostgreSQL other nodes change the store too. What this node keeps in memory (users'
//! generations, the deny list, the token keys) is made consistent with the database on every
//! grant read: the grant comes with `linkgate.epochs`, counters that every write to users,
//! denied or keys moves after it commits, in the same query; when a counter moved, the matching
//! cache is dropped (generations) or read again (deny list, keys). So a token check is one
//! round trip, and a change committed by another node (or the CLI) counts from the next check
//! on. With sled, this process is the only writer and updates its caches as it writes.

use super::postgres::Epochs;
use super::tree::{Tree, Value};
use super::{Store, StoreError};

impl Store {
    /// Reads a grant; on PostgreSQL also brings the caches up to date (see above).
    pub(super) fn read_grant(&self, id: &str) -> Result<Option<Value>, StoreError> {
        match &self.grants {
            Tree::Postgres(table) => {
                let (grant, epochs) = table.get_with_epochs(id.as_bytes())?;
                self.catch_up(epochs)?;
                Ok(grant.map(Value::Owned))
            }
            Tree::Sled(_) => self.grants.get(id.as_bytes()),
        }
    }

    /// Drops or reloads what moved since the caches were last made consistent. Concurrent callers
    /// with older counters only cause an extra reload, never a stale entry: a generation read
    /// from the database is cached only if no drop happened meanwhile (`users.rs`).
    fn catch_up(&self, now: Epochs) -> Result<(), StoreError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == Some(now) {
            return Ok(());
        }
        let before = *seen;
        // Until the reloads below succeed, nothing counts as seen.
        *seen = None;
        if before.map(|b| b.users) != Some(now.users) {
            self.forget_generations();
        }
        if before.map(|b| b.denied) != Some(now.denied) {
            let list = Store::load_deny_list(&self.denied)?;
            *self.deny_list.lock().unwrap_or_else(|p| p.into_inner()) = list;
        }
        if before.map(|b| b.keys) != Some(now.keys) {
            self.reload_keys()?;
        }
        *seen = Some(now);
        Ok(())
    }
}
