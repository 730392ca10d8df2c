//! One table of keys and values, kept in sled (the embedded default) or in PostgreSQL (for more
//! than one node, `postgres.rs`). The store's logic is written once against this small set of
//! operations, each of which is atomic on its own in both backends: a compare-and-swap is a
//! conditional `UPDATE`/`INSERT … ON CONFLICT DO NOTHING`/`DELETE`, a remove returns what it
//! removed (`DELETE … RETURNING`), a fetch-and-update reads the row `FOR UPDATE` and writes it
//! in the same transaction.

use super::postgres::Table;
use super::StoreError;
use std::ops::Deref;

/// A stored key or value: sled's own buffer, or bytes read from PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Sled(sled::IVec),
    Owned(Vec<u8>),
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Value::Sled(v) => v,
            Value::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// A compare-and-swap that found something else: what was there instead.
pub(super) struct Conflict {
    pub current: Option<Value>,
}

#[derive(Clone)]
pub(super) enum Tree {
    Sled(sled::Tree),
    Postgres(Table),
}

impl Tree {
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.get(key)?.map(Value::Sled)),
            Tree::Postgres(t) => Ok(t.get(key.as_ref())?.map(Value::Owned)),
        }
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t) => {
                t.insert(key.as_ref(), value.as_ref())?;
                Ok(())
            }
            Tree::Postgres(t) => t.insert(key.as_ref(), value.as_ref()),
        }
    }

    /// Removes the entry and returns what it held: of two removals racing, one gets the value.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.remove(key)?.map(Value::Sled)),
            Tree::Postgres(t) => Ok(t.remove(key.as_ref())?.map(Value::Owned)),
        }
    }

    /// Writes `new` (or removes, for `None`) only if the entry is still `old` (`None`: absent).
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Conflict>, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.compare_and_swap(key, old, new)?.map_err(|e| Conflict {
                current: e.current.map(Value::Sled),
            })),
            Tree::Postgres(t) => {
                Ok(t.compare_and_swap(key.as_ref(), old, new)?
                    .map_err(|current| Conflict {
                        current: current.map(Value::Owned),
                    }))
            }
        }
    }

    /// Replaces the entry with `f(current)` atomically (`None` in or out: absent). `f` may be
    /// called more than once (sled retries a lost race); what it returns last is written.
    pub fn fetch_and_update(
        &self,
        key: impl AsRef<[u8]>,
        mut f: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t) => {
                t.fetch_and_update(key, &mut f)?;
                Ok(())
            }
            Tree::Postgres(t) => t.fetch_and_update(key.as_ref(), &mut f),
        }
    }

    /// Every entry in key order. sled walks its tree lazily; PostgreSQL is read in pages of
    /// `BATCH` rows by key, so a large table is never held in memory at once.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Result<(Value, Value), StoreError>> + '_> {
        match self {
            Tree::Sled(t) => Box::new(t.iter().map(|entry| {
                entry
                    .map(|(k, v)| (Value::Sled(k), Value::Sled(v)))
                    .map_err(StoreError::from)
            })),
            Tree::Postgres(t) => Box::new(
                t.iter()
                    .map(|entry| entry.map(|(k, v)| (Value::Owned(k), Value::Owned(v)))),
            ),
        }
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.is_empty()),
            Tree::Postgres(t) => t.is_empty(),
        }
    }

    /// Number of entries; walks the whole tree in sled, so for tests and tools.
    pub fn len(&self) -> Result<usize, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.len()),
            Tree::Postgres(t) => t.len(),
        }
    }
}
