//! Where the throttles' counts are kept: one record per key (`base::backoff::Failures`), each
//! reserved atomically (a sled compare-and-swap per key) before anything is checked, so a burst
//! of concurrent attempts is held exactly like the same attempts in a row. Which keys an attempt
//! is counted under, with which policy, and how each outcome settles them is the caller's rule
//! (`accounts::throttle` for sign-ins); the store only keeps, reserves and settles counts.
//! Sign-in counts live here so a restart does not wipe the slate.
//!
//! Bounded: the tree holds at most `MAX_RECORDS`; past that, an attempt that would need a new
//! record is refused (429) until the sweep has forgotten old ones (a record is forgotten a
//! window after its last failure), while keys already counted go on as before. On PostgreSQL
//! the count is each node's estimate, made exact at every sweep.
//!
//! The tree also keeps a random key for hashing usernames into keys (`throttle_hash_key`), so
//! a password typed into the username field is never stored in clear.

use super::{decode, encode, Store, StoreError};
use crate::base::backoff::{Failures, Policy};
use crate::base::secret;
use std::sync::atomic::{AtomicU64, Ordering};
/// The most records the tree holds (some 300 bytes each on disk in sled: about 30 MB): reached only by
/// thousands of addresses guessing within one window.
pub const MAX_RECORDS: u64 = 100_000;
/// How long an attempt refused for a full tree is told to wait.
const FULL_WAIT_SECS: u64 = 60;
/// Where the key for hashing usernames lives (no counter key starts with a NUL byte).
const HASH_KEY: &[u8] = b"\0username-hash-key";

/// What is counted, under which policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    key: Vec<u8>,
    policy: Policy,
}

impl ThrottleKey {
    pub fn new(key: Vec<u8>, policy: Policy) -> Self {
        ThrottleKey { key, policy }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }
}

/// What becomes of one key's reservation when an attempt is settled (`Store::settle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// As if the attempt had never been made: its count given back, a record it created removed.
    Undo,
    /// Its count given back; the record stays.
    GiveBack,
    /// The key's whole count forgotten.
    Clear,
    /// Stays counted.
    Keep,
}

/// A reservation of every key of one attempt, to give back on success.
#[derive(Debug)]
pub struct Reservation {
    taken: Vec<(ThrottleKey, Failures, Failures)>,
}

impl Store {
    /// The random key usernames are hashed with into throttle keys, made on first use and kept
    /// in the tree (so counts survive a restart and travel with a backup).
    pub fn throttle_hash_key(&self) -> Result<[u8; 32], StoreError> {
        self.shared_secret(HASH_KEY)
    }

    /// A random secret kept under `name` in this tree (which backups carry): made on first use,
    /// then the same for every caller, on every node. Two first uses racing: the first written
    /// wins, both use it.
    pub(super) fn shared_secret(&self, name: &[u8]) -> Result<[u8; 32], StoreError> {
        if let Some(bytes) = self.throttle.get(name)? {
            if let Ok(key) = <[u8; 32]>::try_from(bytes.as_ref()) {
                return Ok(key);
            }
        }
        let fresh = secret::random_bytes::<32>();
        let _writing = self.writing();
        match self
            .throttle
            .compare_and_swap(name, None::<&[u8]>, Some(&fresh[..]))?
        {
            Ok(()) => Ok(fresh),
            Err(current) => current
                .current
                .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_ref()).ok())
                .ok_or_else(|| StoreError::Io("a stored key is unreadable".into())),
        }
    }

    /// Reserves an attempt against every key, in order, atomically per key. `Ok(Err(wait))` when
    /// a key is locked: nothing may be checked, and nothing is written — a refused attempt
    /// counts against no key (not the owner's address, not a fresh username) and stores nothing,
    /// so a flood of refused guesses with fresh usernames cannot fill the disk. The keys are read
    /// first; a key that locks between that read and its reservation (a concurrent attempt)
    /// refuses too, and the reservations already taken are given back.
    pub fn reserve_attempt(
        &self,
        keys: &[ThrottleKey],
        now: u64,
    ) -> Result<Result<Reservation, u64>, StoreError> {
        let mut new_records = 0;
        for key in keys {
            match self.throttle.get(&key.key)? {
                Some(bytes) => {
                    let mut current: Failures = decode(&bytes).unwrap_or_default();
                    if let Err(wait) = current.reserve(key.policy, now) {
                        return Ok(Err(wait));
                    }
                }
                None => new_records += 1,
            }
        }
        if new_records > 0 && self.throttle_records.load(Ordering::Relaxed) >= MAX_RECORDS {
            self.warn_throttle_full();
            return Ok(Err(FULL_WAIT_SECS));
        }
        let _writing = self.writing();
        let mut taken = Vec::with_capacity(keys.len());
        for key in keys {
            let mut outcome = Ok((Failures::default(), Failures::default()));
            let mut created = false;
            self.throttle.fetch_and_update(&key.key, |old| {
                let before: Failures = old.and_then(|b| decode(b).ok()).unwrap_or_default();
                let mut after = before;
                match after.reserve(key.policy, now) {
                    Ok(()) => {
                        outcome = Ok((before, after));
                        created = old.is_none();
                        Some(encode(&after))
                    }
                    Err(wait) => {
                        outcome = Err(wait);
                        created = false;
                        old.map(|b| b.to_vec())
                    }
                }
            })?;
            if created {
                self.throttle_records.fetch_add(1, Ordering::Relaxed);
            }
            match outcome {
                Ok((before, after)) => taken.push((key.clone(), before, after)),
                Err(wait) => {
                    self.give_back(taken)?;
                    return Ok(Err(wait));
                }
            }
        }
        Ok(Ok(Reservation { taken }))
    }

    /// Undoes reservations: each count as it was, and a record this attempt created removed.
    fn give_back(&self, taken: Vec<(ThrottleKey, Failures, Failures)>) -> Result<(), StoreError> {
        for (key, before, reserved) in taken {
            let mut removed = false;
            self.throttle.fetch_and_update(&key.key, |old| {
                let mut now: Failures = old.and_then(|b| decode(b).ok())?;
                now.refund(before, reserved);
                removed = before == Failures::default() && now.is_zero();
                (!removed).then(|| encode(&now))
            })?;
            if removed {
                self.forget_throttle_record();
            }
        }
        Ok(())
    }

    /// Settles an attempt's reservation, each key as `how` says.
    pub fn settle(
        &self,
        reservation: Reservation,
        how: impl Fn(&ThrottleKey) -> Settle,
    ) -> Result<(), StoreError> {
        let _writing = self.writing();
        let mut undo = Vec::new();
        for (key, before, reserved) in reservation.taken {
            match how(&key) {
                Settle::Undo => undo.push((key, before, reserved)),
                Settle::GiveBack => {
                    self.throttle.fetch_and_update(&key.key, |old| {
                        let mut now: Failures = old.and_then(|b| decode(b).ok())?;
                        now.refund(before, reserved);
                        Some(encode(&now))
                    })?;
                }
                Settle::Clear => {
                    if self.throttle.remove(&key.key)?.is_some() {
                        self.forget_throttle_record();
                    }
                }
                Settle::Keep => {}
            }
        }
        self.give_back(undo)
    }
}

impl Store {
    /// A shared count of client-secret failures (`oauth::client_throttle`, several nodes).
    pub fn client_failures(&self, key: &[u8]) -> Result<Option<Failures>, StoreError> {
        Ok(self
            .throttle
            .get(key)?
            .and_then(|bytes| decode(&bytes).ok()))
    }

    /// Counts a client-secret failure under `key` in the shared tree (a locked key is left as
    /// it is); the count after it.
    pub fn count_client_failure(
        &self,
        key: &[u8],
        policy: Policy,
        now: u64,
    ) -> Result<Failures, StoreError> {
        let _writing = self.writing();
        let mut after = Failures::default();
        let mut created = false;
        self.throttle.fetch_and_update(key, |old| {
            let mut failures: Failures = old.and_then(|b| decode(b).ok()).unwrap_or_default();
            let _ = failures.reserve(policy, now);
            after = failures;
            created = old.is_none();
            Some(encode(&failures))
        })?;
        if created {
            self.throttle_records.fetch_add(1, Ordering::Relaxed);
        }
        Ok(after)
    }

    /// How many records the tree holds, counted one by one (for tests).
    #[cfg(test)]
    pub(crate) fn throttle_records_stored(&self) -> usize {
        self.throttle.iter().count()
    }

    fn forget_throttle_record(&self) {
        let _ = self
            .throttle_records
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// The sweep's exact count (it has just forgotten the stale records).
    pub(super) fn recount_throttle(&self) -> Result<(), StoreError> {
        let records = self.throttle.len()? as u64;
        self.throttle_records.store(records, Ordering::Relaxed);
        Ok(())
    }

    /// Says, at most once a minute, that the tree is at its bound.
    fn warn_throttle_full(&self) {
        static LAST: AtomicU64 = AtomicU64::new(0);
        let now = super::now();
        let last = LAST.load(Ordering::Relaxed);
        if now >= last + 60
            && LAST
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "the sign-in throttle holds {MAX_RECORDS} records (its bound): sign-ins under new \
                 names or from new addresses are refused (429) until the sweep forgets old ones"
            );
        }
    }
}

/// Whether a throttle entry can be forgotten (for the sweeper).
pub(super) fn stale(bytes: &[u8], now: u64) -> bool {
    decode::<Failures>(bytes).is_ok_and(|f| f.is_stale(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::sync::Arc;

    /// Three keys per attempt, as a sign-in has (`accounts::throttle` tests the real ones); the
    /// policies do not matter here, only that every attempt may need three new records.
    fn three_keys(name: &str, ip: IpAddr) -> [ThrottleKey; 3] {
        let policy = Policy {
            free: 1000,
            first_lock: 1,
            max_lock: 1,
        };
        [
            ThrottleKey::new(format!("p:{name}\0{ip}").into_bytes(), policy),
            ThrottleKey::new(format!("ip:{ip}").into_bytes(), policy),
            ThrottleKey::new(format!("u:{name}").into_bytes(), policy),
        ]
    }

    fn records(store: &Store) -> usize {
        store.throttle_records_stored()
    }

    #[test]
    fn at_its_bound_the_tree_takes_no_new_record_but_counted_keys_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
        let known: IpAddr = "192.0.2.7".parse().unwrap();
        let keys = three_keys("alice", known);
        let first = store.reserve_attempt(&keys, 100).unwrap().unwrap();
        store.settle(first, |_| Settle::Undo).unwrap();
        let first = store.reserve_attempt(&keys, 100).unwrap();
        assert!(first.is_ok());
        let counted = store.throttle_records.load(Ordering::Relaxed);
        // The tree as full as a flood from thousands of addresses leaves it, minus a little.
        let room = 30;
        store
            .throttle_records
            .store(MAX_RECORDS - room, Ordering::Relaxed);
        let before = records(&store);
        // A burst of 64 fresh names from 64 fresh addresses, all at once.
        let threads: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let ip: IpAddr = format!("198.51.100.{i}").parse().unwrap();
                    let keys = three_keys(&format!("fresh{i}"), ip);
                    store.reserve_attempt(&keys, 100).unwrap().is_ok()
                })
            })
            .collect();
        let admitted = threads
            .into_iter()
            .map(|t| t.join().unwrap_or(false))
            .filter(|ok| *ok)
            .count();
        let written = (records(&store) - before) as u64;
        eprintln!("at the bound: {admitted} of 64 fresh attempts admitted, {written} records");
        // Each admitted attempt wrote three records; a burst overshoots by at most the attempts
        // in flight between the check and the write.
        assert!(
            written <= room + 3 * 8,
            "{written} records written past the bound"
        );
        assert!(admitted < 64);
        let full = three_keys("bob", "203.0.113.1".parse().unwrap());
        assert_eq!(
            store.reserve_attempt(&full, 100).unwrap().unwrap_err(),
            FULL_WAIT_SECS
        );
        // A name and address already counted are judged as ever.
        assert!(store.reserve_attempt(&keys, 100).unwrap().is_ok());
        // The sweep counts again: with the real number, there is room.
        store.recount_throttle().unwrap();
        assert!(store.throttle_records.load(Ordering::Relaxed) < counted + 3 * 64 + 10);
        assert!(store.reserve_attempt(&full, 100).unwrap().is_ok());
    }
}
