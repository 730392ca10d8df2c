//! One table of keys and values, kept in sled (the embedded default) or in PostgreSQL (for more
//! than one node, `postgres.rs`). The store's logic is written once against this small set of
//! operations, each of which is atomic on its own in both backends: a compare-and-swap is a
//! conditional `UPDATE`/`INSERT … ON CONFLICT DO NOTHING`/`DELETE`, a remove returns what it
//! removed (`DELETE … RETURNING`), a fetch-and-update reads the row `FOR UPDATE` and writes it
//! in the same transaction.

use super::postgres::Table;
use super::StoreError;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// A sled tree, and for the one every token check reads (grants) the values last read
    /// (`Remembered`). This process is sled's only writer and every write goes through here, so
    /// what is remembered is dropped by the write itself.
    Sled(sled::Tree, Option<Arc<Remembered>>),
    Postgres(Table),
}

/// Values of a sled tree as last read, at most `REMEMBERED_VALUES`; past that it starts again
/// empty. `epoch` counts writes, so that a read racing a write does not keep what it read before
/// the write: a write is done in sled first, then forgotten here, so once it returns no reader
/// sees the old value again.
#[derive(Default)]
pub(super) struct Remembered(Mutex<Values>);

#[derive(Default)]
struct Values {
    epoch: u64,
    values: HashMap<Vec<u8>, sled::IVec>,
}

/// About 1 MB of grants (they are some 200 bytes each).
const REMEMBERED_VALUES: usize = 4096;

impl Remembered {
    fn lock(&self) -> MutexGuard<'_, Values> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        let seen = {
            let values = self.lock();
            if let Some(value) = values.values.get(key) {
                return Ok(Some(value.clone()));
            }
            values.epoch
        };
        let value = tree.get(key)?;
        if let Some(value) = &value {
            let mut values = self.lock();
            if values.epoch == seen {
                crate::base::bounded::insert(
                    &mut values.values,
                    key.to_vec(),
                    value.clone(),
                    REMEMBERED_VALUES,
                );
            }
        }
        Ok(value)
    }

    fn forget(&self, key: &[u8]) {
        let mut values = self.lock();
        values.epoch += 1;
        values.values.remove(key);
    }
}

impl Tree {
    /// A sled tree; `remember`: keep the values last read in memory.
    pub fn sled(tree: sled::Tree, remember: bool) -> Tree {
        Tree::Sled(tree, remember.then(Default::default))
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, StoreError> {
        match self {
            Tree::Sled(t, None) => Ok(t.get(key)?.map(Value::Sled)),
            Tree::Sled(t, Some(remembered)) => {
                Ok(remembered.read(t, key.as_ref())?.map(Value::Sled))
            }
            Tree::Postgres(t) => Ok(t.get(key.as_ref())?.map(Value::Owned)),
        }
    }

    /// After a write of `key`: what was remembered of it is gone.
    fn written(&self, key: &[u8]) {
        if let Tree::Sled(_, Some(remembered)) = self {
            remembered.forget(key);
        }
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t, _) => {
                let inserted = t.insert(key.as_ref(), value.as_ref());
                self.written(key.as_ref());
                inserted?;
                Ok(())
            }
            Tree::Postgres(t) => t.insert(key.as_ref(), value.as_ref()),
        }
    }

    /// Removes the entry and returns what it held: of two removals racing, one gets the value.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, StoreError> {
        match self {
            Tree::Sled(t, _) => {
                let removed = t.remove(key.as_ref());
                self.written(key.as_ref());
                Ok(removed?.map(Value::Sled))
            }
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
            Tree::Sled(t, _) => {
                let swapped = t.compare_and_swap(key.as_ref(), old, new);
                self.written(key.as_ref());
                Ok(swapped?.map_err(|e| Conflict {
                    current: e.current.map(Value::Sled),
                }))
            }
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
            Tree::Sled(t, _) => {
                let updated = t.fetch_and_update(key.as_ref(), &mut f);
                self.written(key.as_ref());
                updated?;
                Ok(())
            }
            Tree::Postgres(t) => t.fetch_and_update(key.as_ref(), &mut f),
        }
    }

    /// Every entry in key order. sled walks its tree lazily; PostgreSQL is read in pages of
    /// `BATCH` rows by key, so a large table is never held in memory at once.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Result<(Value, Value), StoreError>> + '_> {
        match self {
            Tree::Sled(t, _) => Box::new(t.iter().map(|entry| {
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
            Tree::Sled(t, _) => Ok(t.is_empty()),
            Tree::Postgres(t) => t.is_empty(),
        }
    }

    /// Number of entries; walks the whole tree in sled, so for tests and tools.
    pub fn len(&self) -> Result<usize, StoreError> {
        match self {
            Tree::Sled(t, _) => Ok(t.len()),
            Tree::Postgres(t) => t.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remembering() -> (sled::Db, Tree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = Tree::sled(db.open_tree("grants").unwrap(), true);
        (db, tree)
    }

    fn read(tree: &Tree, key: &[u8]) -> Option<Vec<u8>> {
        tree.get(key).unwrap().map(|v| v.to_vec())
    }

    #[test]
    fn every_kind_of_write_is_seen_by_the_next_read() {
        let (_db, tree) = remembering();
        tree.insert(b"g", b"1").unwrap();
        assert_eq!(read(&tree, b"g"), Some(b"1".to_vec()));
        assert_eq!(read(&tree, b"g"), Some(b"1".to_vec()), "from memory");
        tree.insert(b"g", b"2").unwrap();
        assert_eq!(read(&tree, b"g"), Some(b"2".to_vec()));
        tree.compare_and_swap(b"g", Some(b"2"), Some(b"3"))
            .unwrap()
            .ok()
            .unwrap();
        assert_eq!(read(&tree, b"g"), Some(b"3".to_vec()));
        tree.fetch_and_update(b"g", |_| Some(b"4".to_vec()))
            .unwrap();
        assert_eq!(read(&tree, b"g"), Some(b"4".to_vec()));
        tree.remove(b"g").unwrap();
        assert_eq!(read(&tree, b"g"), None, "a revoked grant stays revoked");
        tree.compare_and_swap(b"g", None, Some(b"5"))
            .unwrap()
            .ok()
            .unwrap();
        assert_eq!(read(&tree, b"g"), Some(b"5".to_vec()));
        tree.fetch_and_update(b"g", |_| None).unwrap();
        assert_eq!(read(&tree, b"g"), None);
    }

    /// Readers racing a writer: once the writer is done, every read sees its last write (a read
    /// that began before a write never keeps what it read).
    #[test]
    fn a_read_racing_a_write_never_keeps_the_old_value() {
        let (_db, tree) = remembering();
        tree.insert(b"g", 0u32.to_be_bytes()).unwrap();
        for round in 0..20u32 {
            let done = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|scope| {
                for _ in 0..3 {
                    scope.spawn(|| {
                        while !done.load(std::sync::atomic::Ordering::Relaxed) {
                            let _ = read(&tree, b"g");
                        }
                    });
                }
                for i in 0..500u32 {
                    tree.insert(b"g", (round * 1000 + i).to_be_bytes()).unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            let last = (round * 1000 + 499).to_be_bytes().to_vec();
            for _ in 0..3 {
                assert_eq!(read(&tree, b"g"), Some(last.clone()), "round {round}");
            }
        }
    }

    #[test]
    fn it_holds_at_most_its_bound() {
        let (_db, tree) = remembering();
        for i in 0..(REMEMBERED_VALUES as u32 * 2 + 10) {
            tree.insert(i.to_be_bytes(), b"v").unwrap();
            assert_eq!(read(&tree, &i.to_be_bytes()), Some(b"v".to_vec()));
        }
        let Tree::Sled(_, Some(remembered)) = &tree else {
            panic!("a remembering tree");
        };
        assert!(remembered.lock().values.len() <= REMEMBERED_VALUES);
    }
}
