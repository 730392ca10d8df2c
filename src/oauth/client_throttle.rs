//! Client-secret guessing at `/token`, `/introspect` and `/revoke`: every client authentication
//! reserves an attempt against the calling address (IPv6 by /64) and, for a registered client,
//! against that client, before the secret is checked; a success gives it back. So a burst is
//! held like a sequence, and ~90,000 guesses a second become a handful a minute.
//!
//! Policy (see `base::backoff` for how counts and locks work):
//! - an address: 20 failures free within 15 minutes, then locks from 30 s doubling to 15 minutes;
//! - a client id, from any address: 100 free, then locks of 1 s doubling to at most 10 s, so
//!   guessing spread over many addresses is slowed without shutting the real client (Alexa,
//!   Google) out for longer than a retry.
//!
//! Kept in memory: client secrets are long and random, so what matters is the guessing rate and
//! the CPU it costs (an argon2 `secret_hash`), not surviving a restart. Bounded in entries.
//!
//! Several nodes (PostgreSQL): failures — only failures, so a successful `/token` writes
//! nothing — are also counted in the shared store, and each node checks the shared counts of an
//! attempt's keys before the secret, reading a key again at most once a second. A guesser
//! spreading over N nodes is therefore held like one on one node, give or take one guess per
//! node when a lock begins (the second a node's copy may be old).

use crate::base::backoff::{Failures, Policy};
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const ADDRESS: Policy = Policy {
    free: 20,
    first_lock: 30,
    max_lock: 15 * 60,
};
pub const CLIENT: Policy = Policy {
    free: 100,
    first_lock: 1,
    max_lock: 10,
};
/// Entries kept at most; beyond that addresses are no longer counted (the per-client count
/// still holds) until old entries expire.
const MAX_ENTRIES: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Client(String),
}

/// How long a node uses its copy of a shared count.
const SHARED_FRESH: Duration = Duration::from_secs(1);

impl Key {
    /// The key of its shared count (distinct from the sign-in throttle's `p:`, `ip:`, `u:`).
    fn stored(&self) -> Vec<u8> {
        match self {
            Key::Address(ip) => format!("cs:a:{ip}").into_bytes(),
            Key::Client(id) => format!("cs:c:{id}").into_bytes(),
        }
    }
}

#[derive(Default)]
pub struct ClientThrottle {
    local: Mutex<Counts>,
    /// Copies of shared counts, and when each was read.
    shared: Mutex<HashMap<Key, (Failures, Instant)>>,
}

/// This node's counts. Two maps rather than one keyed by `Key`, so that an attempt looks each
/// key up once and allocates nothing.
#[derive(Default)]
struct Counts {
    /// By address (IPv6 by /64), at most `MAX_ENTRIES`.
    addresses: HashMap<IpAddr, Failures>,
    /// By registered client id: bounded by the config.
    clients: HashMap<String, Failures>,
}

fn keys(ip: IpAddr, client_id: Option<&str>) -> Vec<(Key, Policy)> {
    let mut keys = Vec::with_capacity(2);
    keys.push((
        Key::Address(crate::base::backoff::address_prefix(ip)),
        ADDRESS,
    ));
    if let Some(id) = client_id {
        keys.push((Key::Client(id.to_string()), CLIENT));
    }
    keys
}

/// An attempt in progress: give it back with `succeeded`, keep it with `failed`.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// `None` when the address table was full (the address is not counted then).
    address: Option<(IpAddr, Taken)>,
    client: Option<(&'a str, Taken)>,
}

/// One count before and after an attempt was reserved in it.
#[derive(Debug)]
struct Taken {
    before: Failures,
    after: Failures,
}

/// Reserves an attempt in `entry`, which was checked to allow one.
fn take(entry: &mut Failures, policy: Policy, now: u64) -> Taken {
    let before = *entry;
    let _ = entry.reserve(policy, now);
    Taken {
        before,
        after: *entry,
    }
}

/// Whether `entry` (if counted yet) allows another attempt, without taking it.
fn check(entry: Option<Failures>, policy: Policy, now: u64) -> Result<(), u64> {
    entry.map_or(Ok(()), |mut probe| probe.reserve(policy, now))
}

impl ClientThrottle {
    /// Reserves an attempt for `client_id` (when registered) from `ip`, or says how long to wait.
    pub fn reserve<'a>(
        &self,
        ip: IpAddr,
        client_id: Option<&'a str>,
        now: u64,
    ) -> Result<Attempt<'a>, u64> {
        let mut counts = self.lock();
        let Counts { addresses, clients } = &mut *counts;
        if addresses.len() >= MAX_ENTRIES {
            addresses.retain(|_, f| !f.is_stale(now));
        }
        let ip = crate::base::backoff::address_prefix(ip);
        let full = addresses.len() >= MAX_ENTRIES;
        let address = addresses.get_mut(&ip);
        let client = client_id.and_then(|id| clients.get_mut(id));
        // Check every key first, so a refusal counts against none of them.
        check(address.as_deref().copied(), ADDRESS, now)?;
        check(client.as_deref().copied(), CLIENT, now)?;
        let address = match address {
            Some(entry) => Some((ip, take(entry, ADDRESS, now))),
            None if full => None,
            None => Some((ip, take(addresses.entry(ip).or_default(), ADDRESS, now))),
        };
        let client = match (client, client_id) {
            (Some(entry), Some(id)) => Some((id, take(entry, CLIENT, now))),
            (None, Some(id)) => {
                let entry = clients.entry(id.to_string()).or_default();
                Some((id, take(entry, CLIENT, now)))
            }
            (_, None) => None,
        };
        Ok(Attempt { address, client })
    }

    /// The secret was right: the attempt does not count.
    pub fn succeeded(&self, attempt: Attempt<'_>) {
        let mut counts = self.lock();
        if let Some((ip, taken)) = attempt.address {
            if let Some(entry) = counts.addresses.get_mut(&ip) {
                entry.refund(taken.before, taken.after);
            }
        }
        if let Some((id, taken)) = attempt.client {
            if let Some(entry) = counts.clients.get_mut(id) {
                entry.refund(taken.before, taken.after);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Several nodes: how long the shared counts say to wait, if any key is locked there.
    pub fn shared_wait(
        &self,
        store: &Store,
        ip: IpAddr,
        client_id: Option<&str>,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        for (key, policy) in keys(ip, client_id) {
            let mut failures = self.shared_count(store, &key)?;
            if let Err(wait) = failures.reserve(policy, now) {
                return Ok(Some(wait));
            }
        }
        Ok(None)
    }

    /// Several nodes: a wrong secret is counted in the shared store too.
    pub fn shared_failure(
        &self,
        store: &Store,
        ip: IpAddr,
        client_id: Option<&str>,
        now: u64,
    ) -> Result<(), StoreError> {
        for (key, policy) in keys(ip, client_id) {
            let after = store.count_client_failure(&key.stored(), policy, now)?;
            self.remember(key, after);
        }
        Ok(())
    }

    fn shared_count(&self, store: &Store, key: &Key) -> Result<Failures, StoreError> {
        let copies = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((failures, read_at)) = copies.get(key) {
            if read_at.elapsed() < SHARED_FRESH {
                return Ok(*failures);
            }
        }
        drop(copies);
        let failures = store.client_failures(&key.stored())?.unwrap_or_default();
        self.remember(key.clone(), failures);
        Ok(failures)
    }

    fn remember(&self, key: Key, failures: Failures) {
        let mut copies = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if copies.len() >= MAX_ENTRIES {
            copies.retain(|_, (_, read_at)| read_at.elapsed() < SHARED_FRESH);
        }
        copies.insert(key, (failures, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throttle in which `ip` has used its 21 attempts for client "alexa" at time 100.
    fn with_attempts_used(ip: IpAddr) -> ClientThrottle {
        let throttle = ClientThrottle::default();
        for _ in 0..21 {
            throttle.reserve(ip, Some("alexa"), 100).unwrap();
        }
        throttle
    }

    #[test]
    fn an_address_gets_20_free_failures_then_waits() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let throttle = with_attempts_used(ip);
        assert_eq!(throttle.reserve(ip, Some("alexa"), 100).unwrap_err(), 30);
        // Another address is not held up by it.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(throttle.reserve(other, Some("alexa"), 100).is_ok());
    }

    #[test]
    fn a_refusal_counts_against_neither_key() {
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let throttle = with_attempts_used(ip);
        // The address is locked: another client's attempt from it leaves that client uncounted.
        assert!(throttle.reserve(ip, Some("google"), 100).is_err());
        assert!(!throttle.lock().clients.contains_key("google"));
        let alexa = throttle.lock().clients["alexa"];
        assert!(throttle.reserve(ip, Some("alexa"), 100).is_err());
        assert_eq!(throttle.lock().clients["alexa"], alexa);
    }

    #[test]
    fn a_full_address_table_still_counts_the_client() {
        let throttle = ClientThrottle::default();
        for i in 0..MAX_ENTRIES as u32 {
            throttle
                .reserve(IpAddr::from(i.to_be_bytes()), None, 100)
                .unwrap();
        }
        let newcomer: IpAddr = "2001:db8::7".parse().unwrap();
        let attempt = throttle.reserve(newcomer, Some("alexa"), 100).unwrap();
        assert!(attempt.address.is_none());
        assert_eq!(throttle.lock().addresses.len(), MAX_ENTRIES);
        assert!(throttle.lock().clients.contains_key("alexa"));
    }

    #[test]
    fn successes_do_not_count() {
        let throttle = ClientThrottle::default();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..1000 {
            let attempt = throttle.reserve(ip, Some("alexa"), 100).unwrap();
            throttle.succeeded(attempt);
        }
        assert!(throttle.reserve(ip, Some("alexa"), 100).is_ok());
    }

    #[test]
    fn a_client_spread_over_many_addresses_is_slowed_for_seconds_only() {
        let throttle = ClientThrottle::default();
        let mut waits = Vec::new();
        for i in 0..300u32 {
            let ip = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            if let Err(wait) = throttle.reserve(ip, Some("alexa"), 100) {
                waits.push(wait);
            }
        }
        assert!(!waits.is_empty());
        assert!(waits.iter().all(|w| *w <= 10), "{waits:?}");
    }
}
