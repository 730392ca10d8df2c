//! Failed sign-ins and failed client authentications, counted so that guessing gets slower and
//! then stops for a while. Sign-in counts are kept in sled so a restart does not wipe the slate.
//!
//! Policy: failures within `WINDOW_SECS` of each other add up; after a key's `free` failures,
//! each further failure locks it for a doubling time (`first_lock`, twice that, …, at most
//! `max_lock`). Unknown usernames are counted like real ones, so the lockout reveals nothing.
//!
//! An attempt is *reserved* before the password is checked: the count goes up atomically (a
//! sled compare-and-swap per key) and a locked key refuses before anything is checked, so a
//! burst of concurrent guesses is held exactly like the same guesses in a row. A successful
//! sign-in gives its reservation back.
//!
//! Sign-ins are counted under three keys, most specific first (so a refusal by an attacker's own
//! key never counts against the keys the owner shares):
//! - username *and* address (IPv6 by /64): 5 free, locks up to 15 minutes. This is what slows a
//!   guesser at one address.
//! - address alone: 20 free (carrier NAT puts many customers behind one), up to 15 minutes.
//! - username alone, from any address: 50 free, locks at most 60 s. It bounds guessing spread
//!   over many addresses without letting anyone lock the owner out for long: one address alone
//!   cannot even reach it (its own keys stop it first).
//!
//! Bounded: an address makes at most about 26 counted attempts per `WINDOW_SECS` (20 free, then
//! locks of 30 s doubling to 15 minutes), each writing at most two records of its own (pair and
//! username; the address record is one), so about 55 records per address (IPv6 /64), each
//! forgotten by the sweep a window after its last failure. In total the tree holds at most
//! `MAX_RECORDS`: past that, an attempt that would need a new record is refused (429) until the
//! sweep has forgotten old ones, while names and addresses already counted go on as before.
//! On PostgreSQL the count is each node's estimate, made exact at every sweep.
//!
//! Usernames are stored as a keyed hash (HMAC-SHA256 under a random key kept in this tree):
//! bounded in size, and a password typed into the username field is never stored in clear.

use super::{decode, encode, Store, StoreError};
use crate::base::secret;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Failures further apart than this start a new count.
pub const WINDOW_SECS: u64 = 15 * 60;
/// The most records the tree holds (some 300 bytes each on disk in sled: about 30 MB): reached only by
/// thousands of addresses guessing within one window.
pub const MAX_RECORDS: u64 = 100_000;
/// How long an attempt refused for a full tree is told to wait.
const FULL_WAIT_SECS: u64 = 60;
/// Where the key for hashing usernames lives (no counter key starts with a NUL byte).
const HASH_KEY: &[u8] = b"\0username-hash-key";

/// How many failures are free and how long the locks after them last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub free: u32,
    pub first_lock: u64,
    pub max_lock: u64,
}

/// Username and address together.
pub const PAIR: Policy = Policy {
    free: 5,
    first_lock: 30,
    max_lock: 15 * 60,
};
/// One address, any username.
pub const ADDRESS: Policy = Policy {
    free: 20,
    first_lock: 30,
    max_lock: 15 * 60,
};
/// One username, any address: looser, and it only slows.
pub const USERNAME: Policy = Policy {
    free: 50,
    first_lock: 30,
    max_lock: 60,
};

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
}

/// The address a limit counts: IPv4 as is, IPv6 by its /64 (one customer's network typically
/// gets a whole /64, so counting single IPv6 addresses would not slow anyone).
pub fn address_prefix(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
        v4 => v4,
    }
}

/// One key's count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    count: u32,
    last: u64,
    locked_until: u64,
}

impl Failures {
    /// Counts an attempt, or says how long the key is still locked. Pure: `now` is passed in.
    pub fn reserve(&mut self, policy: Policy, now: u64) -> Result<(), u64> {
        if self.locked_until > now {
            return Err(self.locked_until - now);
        }
        if now.saturating_sub(self.last) > WINDOW_SECS {
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.last = now;
        if self.count > policy.free {
            let doublings = (self.count - policy.free - 1).min(16);
            let lock = policy.first_lock.saturating_mul(1 << doublings);
            self.locked_until = now + lock.min(policy.max_lock);
        }
        Ok(())
    }

    /// Whether nothing is left to remember: unlocked and its window over.
    pub fn is_stale(&self, now: u64) -> bool {
        self.locked_until <= now && now.saturating_sub(self.last) > WINDOW_SECS
    }

    /// Gives back a reservation that turned out to be a success; `before` is the entry as it was
    /// before the reservation. A lock the reservation set is lifted; a lock a concurrent failure
    /// set since stays.
    pub fn refund(&mut self, before: Failures, reserved: Failures) {
        self.count = self.count.saturating_sub(1);
        if self.locked_until == reserved.locked_until {
            self.locked_until = before.locked_until;
        }
    }
}

/// A reservation of every key of one attempt, to give back on success.
#[derive(Debug)]
pub struct Reservation {
    taken: Vec<(ThrottleKey, Failures, Failures)>,
}

impl Store {
    /// The three keys a sign-in by `username` from `ip` is counted under.
    /// `username` is what was typed: the keys are made from it trimmed (as the login API
    /// receives it) and lowercased, so no spelling of one name (a leading space, a tab, a
    /// no-break space, other case) escapes that name's count. A valid local username is already
    /// in this form.
    pub fn login_keys(&self, username: &str, ip: IpAddr) -> Result<[ThrottleKey; 3], StoreError> {
        let username = username.trim().to_lowercase();
        let hash_key = self.username_hash_key()?;
        let prefix = address_prefix(ip).to_string();
        let name = secret::hmac_sha256(&hash_key, &[username.as_bytes()]);
        let pair = secret::hmac_sha256(&hash_key, &[username.as_bytes(), b"\0", prefix.as_bytes()]);
        Ok([
            ThrottleKey::new([b"p:".as_slice(), &pair[..16]].concat(), PAIR),
            ThrottleKey::new(format!("ip:{prefix}").into_bytes(), ADDRESS),
            ThrottleKey::new([b"u:".as_slice(), &name[..16]].concat(), USERNAME),
        ])
    }

    /// The random key usernames are hashed with, made on first use and kept in the tree (so
    /// counts survive a restart and travel with a backup).
    fn username_hash_key(&self) -> Result<[u8; 32], StoreError> {
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
                removed = before == Failures::default() && now.count == 0;
                (!removed).then(|| encode(&now))
            })?;
            if removed {
                self.forget_throttle_record();
            }
        }
        Ok(())
    }

    /// A successful sign-in: the username's counts are cleared, the address gets its
    /// reservation back (not cleared: an attacker who owns one account must not reset the count
    /// of the address they guess from).
    pub fn login_succeeded(&self, reservation: Reservation) -> Result<(), StoreError> {
        let _writing = self.writing();
        for (key, before, reserved) in reservation.taken {
            if key.policy == ADDRESS {
                self.throttle.fetch_and_update(&key.key, |old| {
                    let mut now: Failures = old.and_then(|b| decode(b).ok())?;
                    now.refund(before, reserved);
                    Some(encode(&now))
                })?;
            } else if self.throttle.remove(&key.key)?.is_some() {
                self.forget_throttle_record();
            }
        }
        Ok(())
    }

    /// A right password that still needs a two-factor code: the address gets its reservation
    /// back (a right password is no guess, and many people share a carrier's address), but the
    /// username's keys stay counted until a right code clears them (`login_succeeded`), so
    /// someone who knows the password cannot reset them between guesses of the code.
    pub fn login_awaits_code(&self, reservation: Reservation) -> Result<(), StoreError> {
        let _writing = self.writing();
        for (key, before, reserved) in reservation.taken {
            if key.policy == ADDRESS {
                self.throttle.fetch_and_update(&key.key, |old| {
                    let mut now: Failures = old.and_then(|b| decode(b).ok())?;
                    now.refund(before, reserved);
                    Some(encode(&now))
                })?;
            }
        }
        Ok(())
    }

    /// An attempt whose password was never judged (the operator's login API was down, slow or
    /// busy): every key gets its reservation back, so an outage is not counted as guesses.
    pub fn login_unchecked(&self, reservation: Reservation) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.give_back(reservation.taken)
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
    use std::sync::Arc;

    #[test]
    fn a_key_allows_its_free_failures_then_one_more_that_locks_it() {
        let mut f = Failures::default();
        for _ in 0..PAIR.free {
            assert_eq!(f.reserve(PAIR, 1000), Ok(()));
        }
        // The sixth attempt is checked and sets a 30 s lock; the seventh waits for it.
        assert_eq!(f.reserve(PAIR, 1000), Ok(()));
        assert_eq!(f.reserve(PAIR, 1000), Err(30));
        assert_eq!(f.reserve(PAIR, 1030), Ok(()));
        assert_eq!(f.reserve(PAIR, 1030), Err(60));
    }

    #[test]
    fn the_username_lock_never_exceeds_a_minute() {
        let mut f = Failures::default();
        let mut now = 0;
        for _ in 0..200 {
            match f.reserve(USERNAME, now) {
                Ok(()) => {}
                Err(wait) => {
                    assert!(wait <= 60);
                    now += wait;
                }
            }
        }
    }

    #[test]
    fn a_refund_lifts_the_lock_its_own_reservation_set() {
        let mut f = Failures::default();
        for _ in 0..ADDRESS.free {
            f.reserve(ADDRESS, 10).unwrap();
        }
        let before = f;
        f.reserve(ADDRESS, 10).unwrap();
        let reserved = f;
        assert!(f.locked_until > 10);
        f.refund(before, reserved);
        assert_eq!(f.reserve(ADDRESS, 11), Ok(()));
    }

    /// Issue 28: a refused attempt writes nothing. Before, the keys ahead of the locked one were
    /// counted: the owner's own address stayed locked after a username lock set by others, and
    /// fresh usernames from a locked address each stored a record.
    #[test]
    fn a_refused_attempt_counts_against_no_key_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let owner: IpAddr = "192.0.2.7".parse().unwrap();
        // Others lock the username from many addresses.
        for i in 0..=USERNAME.free {
            let ip: IpAddr = format!("198.51.100.{}", i % 200).parse().unwrap();
            let keys = store.login_keys("alice", ip).unwrap();
            let _ = store.reserve_attempt(&keys, 100).unwrap();
        }
        let keys = store.login_keys("alice", owner).unwrap();
        let records = store.throttle.iter().count();
        for _ in 0..10 {
            assert!(store.reserve_attempt(&keys, 100).unwrap().is_err());
        }
        assert_eq!(
            store.throttle.iter().count(),
            records,
            "refusals stored records"
        );
        // The owner's address and pair keys were not counted: once the username lock is over,
        // the owner is in at once.
        assert!(store
            .reserve_attempt(&keys, 100 + USERNAME.max_lock + 1)
            .unwrap()
            .is_ok());

        // A locked address and a stream of fresh usernames: nothing more is stored.
        let guesser: IpAddr = "203.0.113.9".parse().unwrap();
        for i in 0..=ADDRESS.free {
            let keys = store.login_keys(&format!("fresh{i}"), guesser).unwrap();
            let _ = store.reserve_attempt(&keys, 200).unwrap();
        }
        let records = store.throttle.iter().count();
        for i in 0..500 {
            let keys = store.login_keys(&format!("other{i}"), guesser).unwrap();
            assert!(store.reserve_attempt(&keys, 200).unwrap().is_err());
        }
        assert_eq!(store.throttle.iter().count(), records);
    }

    #[test]
    fn every_spelling_of_a_name_is_counted_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let plain = store.login_keys("rita o'neil", ip).unwrap();
        for variant in [
            " rita o'neil",
            "rita o'neil ",
            "\u{a0}rita o'neil",
            "\trita o'neil",
            "rita o'neil\u{3000}",
            "Rita O'Neil",
        ] {
            assert_eq!(store.login_keys(variant, ip).unwrap(), plain, "{variant:?}");
        }
        assert_ne!(store.login_keys("rita o'neal", ip).unwrap(), plain);
    }

    /// A right password awaiting its code: the address is refunded, the username's pair key
    /// stays counted, so password-then-wrong-code cycles lock like wrong passwords.
    #[test]
    fn a_password_awaiting_its_code_stays_counted_for_the_username() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let keys = store.login_keys("alice", ip).unwrap();
        let address = [keys[1].clone()];
        for _ in 0..=PAIR.free {
            let reservation = store.reserve_attempt(&keys, 100).unwrap().unwrap();
            store.login_awaits_code(reservation).unwrap();
        }
        assert!(
            store.reserve_attempt(&keys, 100).unwrap().is_err(),
            "the pair is locked"
        );
        // The address alone was given every reservation back.
        let other = store.login_keys("bob", ip).unwrap();
        assert!(store.reserve_attempt(&other, 100).unwrap().is_ok());
        for _ in 0..ADDRESS.free - 1 {
            assert!(store.reserve_attempt(&address, 100).unwrap().is_ok());
        }
    }

    #[test]
    fn ipv6_is_counted_by_its_64_prefix() {
        let a = address_prefix("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = address_prefix("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = address_prefix("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = address_prefix("::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(mapped.to_string(), "192.0.2.7");
    }

    #[test]
    fn at_its_bound_the_tree_takes_no_new_record_but_counted_keys_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
        let known: IpAddr = "192.0.2.7".parse().unwrap();
        let keys = store.login_keys("alice", known).unwrap();
        let first = store.reserve_attempt(&keys, 100).unwrap().unwrap();
        store.login_unchecked(first).unwrap();
        let first = store.reserve_attempt(&keys, 100).unwrap();
        assert!(first.is_ok());
        let counted = store.throttle_records.load(Ordering::Relaxed);
        // The tree as full as a flood from thousands of addresses leaves it, minus a little.
        let room = 30;
        store
            .throttle_records
            .store(MAX_RECORDS - room, Ordering::Relaxed);
        let before = store.throttle.iter().count();
        // A burst of 64 fresh names from 64 fresh addresses, all at once.
        let threads: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let ip: IpAddr = format!("198.51.100.{i}").parse().unwrap();
                    let keys = store.login_keys(&format!("fresh{i}"), ip).unwrap();
                    store.reserve_attempt(&keys, 100).unwrap().is_ok()
                })
            })
            .collect();
        let admitted = threads
            .into_iter()
            .map(|t| t.join().unwrap_or(false))
            .filter(|ok| *ok)
            .count();
        let written = (store.throttle.iter().count() - before) as u64;
        eprintln!("at the bound: {admitted} of 64 fresh attempts admitted, {written} records");
        // Each admitted attempt wrote three records; a burst overshoots by at most the attempts
        // in flight between the check and the write.
        assert!(
            written <= room + 3 * 8,
            "{written} records written past the bound"
        );
        assert!(admitted < 64);
        let full = store
            .login_keys("bob", "203.0.113.1".parse().unwrap())
            .unwrap();
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
