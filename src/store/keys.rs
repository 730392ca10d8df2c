//! The server keys that access tokens are MAC'd under (`oauth/tokens/sealed.rs`). Generated on first start
//! from the OS's random source and kept in the store's `keys` tree, so a backup carries them
//! (and tokens stay valid after a restore). They are never logged: no type here prints them.
//!
//! Rotation (`--rotate-token-key`): a new key signs from then on; the previous one keeps
//! verifying until the longest-lived token it signed has expired (`access_ttl_secs` after the
//! rotation), then the sweeper drops it. The keys are held in memory too, so checking a token
//! reads nothing; every change goes through this store, which updates both.

use super::{decode, encode, expired, Store, StoreError};
use crate::base::secret::{self, HmacKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A key as stored. `valid_until` 0: the current key.
#[derive(Serialize, Deserialize)]
struct KeyRecord {
    secret: String,
    created_at: u64,
    valid_until: u64,
}

/// The keys in memory.
#[derive(Default)]
pub(super) struct KeyRing {
    current: Option<u32>,
    keys: HashMap<u32, (HmacKey, u64)>,
}

impl KeyRing {
    fn load(tree: &super::tree::Tree) -> Result<KeyRing, StoreError> {
        let mut ring = KeyRing::default();
        for entry in tree.iter() {
            let (id, value) = entry?;
            let id = id_of(&id)?;
            let record: KeyRecord = decode(&value)?;
            let bytes = super::from_hex(&record.secret)?;
            if record.valid_until == 0 && ring.current.is_none_or(|c| c < id) {
                ring.current = Some(id);
            }
            ring.keys
                .insert(id, (HmacKey::new(&bytes), record.valid_until));
        }
        Ok(ring)
    }

    /// The key that signs new tokens.
    pub(super) fn current(&self) -> Option<(u32, &HmacKey)> {
        let id = self.current?;
        self.keys.get(&id).map(|(key, _)| (id, key))
    }

    /// The key with this id, if it still verifies at `now`.
    pub(super) fn verifying(&self, id: u32, now: u64) -> Option<&HmacKey> {
        match self.keys.get(&id) {
            Some((key, valid_until)) if !expired(*valid_until, now) => Some(key),
            _ => None,
        }
    }
}

fn id_of(bytes: &[u8]) -> Result<u32, StoreError> {
    <[u8; 4]>::try_from(bytes)
        .map(u32::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("a token key id is not 4 bytes".into()))
}

impl Store {
    pub(super) fn load_keys(tree: &super::tree::Tree) -> Result<KeyRing, StoreError> {
        KeyRing::load(tree)
    }

    /// Reads the keys again (after a restore wrote the tree underneath).
    pub(super) fn reload_keys(&self) -> Result<(), StoreError> {
        let ring = KeyRing::load(&self.keys)?;
        *self.key_ring_mut() = ring;
        Ok(())
    }

    pub(super) fn key_ring(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }

    fn key_ring_mut(&self) -> std::sync::RwLockWriteGuard<'_, KeyRing> {
        self.ring.write().unwrap_or_else(|p| p.into_inner())
    }

    /// `f` with the key that signs new access tokens and its id. Reads nothing (unless no key
    /// exists yet: then one is made and flushed).
    pub fn with_signing_key<T>(
        &self,
        now: u64,
        f: impl FnOnce(u32, &HmacKey) -> T,
    ) -> Result<T, StoreError> {
        if self.key_ring().current().is_none() {
            self.ensure_token_key(now)?;
            self.flush_blocking()?;
        }
        let ring = self.key_ring();
        let (id, key) = ring
            .current()
            .ok_or_else(|| StoreError::Io("no token key".into()))?;
        Ok(f(id, key))
    }

    /// Makes sure a signing key exists (the server calls this at start, then flushes).
    pub fn ensure_token_key(&self, now: u64) -> Result<(), StoreError> {
        if self.key_ring().current().is_none() {
            self.add_key(now)?;
        }
        Ok(())
    }

    /// `--rotate-token-key`: a new key signs from now on; the current one verifies for
    /// `access_secs` more, the longest any token it signed can live. Returns the new key's id.
    pub fn rotate_token_key(&self, now: u64, access_secs: u64) -> Result<u32, StoreError> {
        // On PostgreSQL another node may have rotated them since this process read them.
        if self.shared() {
            self.reload_keys()?;
        }
        let retiring = self.key_ring().current;
        if let Some(old) = retiring {
            if let Some(bytes) = self.keys.get(old.to_be_bytes())? {
                let mut record: KeyRecord = decode(&bytes)?;
                // At least one second, so that 0 ("current") is never written here.
                record.valid_until = (now + access_secs).max(1);
                let _writing = self.writing();
                self.keys.insert(old.to_be_bytes(), encode(&record))?;
            }
            let mut ring = self.key_ring_mut();
            if let Some(entry) = ring.keys.get_mut(&old) {
                entry.1 = (now + access_secs).max(1);
            }
            ring.current = None;
        }
        self.add_key(now)
    }

    /// Adds a key under the next free id. Written with a compare-and-swap: on PostgreSQL two
    /// nodes starting at once on an empty database must not both write key 1 with different
    /// secrets. The one that loses reads the keys again and signs with the winner's.
    fn add_key(&self, now: u64) -> Result<u32, StoreError> {
        let bytes = secret::random_bytes::<32>();
        let record = KeyRecord {
            secret: super::to_hex(&bytes),
            created_at: now,
            valid_until: 0,
        };
        let mut ring = self.key_ring_mut();
        let id = ring.keys.keys().max().map_or(1, |max| max.wrapping_add(1));
        let written = {
            let _writing = self.writing();
            self.keys
                .compare_and_swap(id.to_be_bytes(), None, Some(&encode(&record)))?
        };
        if written.is_err() {
            *ring = KeyRing::load(&self.keys)?;
            return ring
                .current
                .ok_or_else(|| StoreError::Io("another node is changing the token keys".into()));
        }
        ring.keys.insert(id, (HmacKey::new(&bytes), 0));
        ring.current = Some(id);
        Ok(id)
    }

    /// Whether `check` passes with the key `id`, if that key verifies at `now`. On PostgreSQL a
    /// key id this node does not know may have been made by another node (`--rotate-token-key`
    /// there): the keys are read again, at most once a second whatever tokens arrive.
    pub fn verifies_with(
        &self,
        id: u32,
        now: u64,
        check: impl Fn(&HmacKey) -> bool,
    ) -> Result<bool, StoreError> {
        let unknown = {
            let ring = self.key_ring();
            if let Some(key) = ring.verifying(id, now) {
                return Ok(check(key));
            }
            !ring.keys.contains_key(&id)
        };
        if unknown && self.shared() && self.keys_read_before(now) {
            self.reload_keys()?;
            return Ok(self.key_ring().verifying(id, now).is_some_and(check));
        }
        Ok(false)
    }

    /// Whether the keys were last read before `now` (and notes that they are read now).
    fn keys_read_before(&self, now: u64) -> bool {
        let last = self
            .keys_read_at
            .swap(now, std::sync::atomic::Ordering::Relaxed);
        last < now
    }

    /// Drops keys that no longer verify anything. Returns how many.
    pub(super) fn sweep_keys(&self, now: u64) -> Result<usize, StoreError> {
        let dead: Vec<u32> = self
            .key_ring()
            .keys
            .iter()
            .filter(|(_, (_, until))| expired(*until, now))
            .map(|(id, _)| *id)
            .collect();
        for id in &dead {
            {
                let _writing = self.writing();
                self.keys.remove(id.to_be_bytes())?;
            }
            self.key_ring_mut().keys.remove(id);
        }
        Ok(dead.len())
    }

    /// Number of keys held (for tests and `--rotate-token-key`'s message).
    pub fn token_key_count(&self) -> usize {
        self.key_ring().keys.len()
    }
}
