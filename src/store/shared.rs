//! On PostgreSQL other nodes change the store too. What this node keeps in memory (users'
//! generations, the token keys) is made consistent with the database on every grant read: the
//! grant comes with `linkgate.epochs`, counters that every write to users or keys moves after it
//! commits, in the same query; when a counter moved, the matching cache is dropped (generations)
//! or read again (keys). The same query says whether the access token is in the deny list. So a
//! token check is one round trip, and a change committed by another node (or the CLI) counts
//! from the next check on. A server node answers most checks with none: the row read is kept
//! in memory and dropped by the database's notifications (`postgres_memory.rs`), so a change on
//! another node holds within `storage.revocation_bound_ms`. With sled, this process is the only writer and updates its caches
//! (the deny list among them) as it writes.

use super::postgres::Epochs;
use super::tree::{Tree, Value};
use super::{Store, StoreError};

/// A token check's grant read, done ahead and awaited on the caller's runtime, or answered from
/// memory (`prefetch_grant`).
pub struct Prefetched {
    id: String,
    token_id: Option<[u8; 16]>,
    row: super::postgres::GrantRow,
    from_memory: bool,
}

impl Prefetched {
    /// Whether this node's memory answered (`postgres_memory.rs`), not the database: then only
    /// a yes counts, and a check that comes out no asks the database again.
    pub fn from_memory(&self) -> bool {
        self.from_memory
    }

    /// The stored bytes of grant `id`, if this is its read and it was found.
    pub(super) fn grant_bytes(&self, id: &str) -> Option<&[u8]> {
        self.row.0.as_deref().filter(|_| self.id == id)
    }
}

impl Store {
    /// On PostgreSQL, the one query a check of a token of grant `id` needs (its grant, the
    /// change counters, whether the access token `token_id` is denied), answered from this
    /// node's memory when it can (`postgres_memory.rs`), else awaited without holding a thread,
    /// so that the check itself (`grant_for_token`) then reads nothing more in the usual case.
    /// `None` with sled: it answers from memory.
    pub async fn prefetch_grant(
        &self,
        id: String,
        token_id: Option<[u8; 16]>,
    ) -> Result<Option<Prefetched>, StoreError> {
        let Tree::Postgres(table) = &self.grants else {
            return Ok(None);
        };
        // Memory first, without building the database's future (boxed: it is large).
        let (row, from_memory) =
            match table.get_with_epochs_from_memory(id.as_bytes(), token_id.as_ref()) {
                Some(row) => (row, true),
                None => {
                    let deny_key = token_id.map_or(Vec::new(), |t| t.to_vec());
                    let read = table.get_with_epochs_async(id.as_bytes().to_vec(), deny_key);
                    (Box::pin(read).await?, false)
                }
            };
        Ok(Some(Prefetched {
            id,
            token_id,
            row,
            from_memory,
        }))
    }

    /// On PostgreSQL, starts answering token checks from this node's memory, kept right by
    /// the database's notifications (`postgres_memory.rs`). The server does, once; the CLI
    /// asks the database every time.
    pub fn listen_for_changes(&self) {
        if let super::Backend::Postgres(db) = &self.backend {
            db.listen();
        }
    }

    /// On PostgreSQL, where token checks found their grant, for `/metrics`.
    pub fn render_metrics(&self) -> String {
        match &self.grants {
            Tree::Postgres(table) => table.render_metrics(),
            Tree::Sled(..) => String::new(),
        }
    }

    /// Reads a grant and whether the access token `token_id` (if any) is denied; on PostgreSQL
    /// also brings the caches up to date (see above). A read done ahead for the same grant and
    /// token (`prefetch`) is used instead of a query.
    pub(super) fn read_grant(
        &self,
        id: &str,
        token_id: Option<&[u8; 16]>,
        ahead: Option<&Prefetched>,
    ) -> Result<(Option<Value>, bool), StoreError> {
        if let Some(p) = ahead.filter(|p| p.id == id && p.token_id.as_ref() == token_id) {
            let (grant, epochs, denied) = &p.row;
            self.catch_up(*epochs)?;
            return Ok((grant.clone().map(Value::Owned), *denied));
        }
        match &self.grants {
            Tree::Postgres(table) => {
                let deny_key = token_id.map_or(&[][..], |t| &t[..]);
                let (grant, epochs, denied) = table.get_with_epochs(id.as_bytes(), deny_key)?;
                self.catch_up(epochs)?;
                Ok((grant.map(Value::Owned), denied))
            }
            Tree::Sled(..) => {
                let denied = token_id.is_some_and(|t| self.deny_cache().contains_key(t));
                Ok((self.grants.get(id.as_bytes())?, denied))
            }
        }
    }

    /// Drops or reloads what moved since the caches were last made consistent. The lock on
    /// what was seen is not held while reloading (that reads the database): concurrent callers
    /// may reload twice, never wait on each other. A caller with older counters only causes an
    /// extra reload, never a stale entry: a generation read from the database is cached only if
    /// no drop happened meanwhile (`users.rs`).
    fn catch_up(&self, now: Epochs) -> Result<(), StoreError> {
        let before = {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == Some(now) {
                return Ok(());
            }
            *seen
        };
        if before.map(|b| b.users) != Some(now.users) {
            self.forget_generations();
        }
        if before.map(|b| b.keys) != Some(now.keys) {
            self.reload_keys()?;
        }
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        Ok(())
    }
}
