//! Failed sign-ins, counted per username and per client address, so that password guessing gets
//! slower and then stops for a while. Kept in sled so a restart does not wipe the slate.
//!
//! Policy: failures within `WINDOW` of each other add up; from the `free`-th failure on, each
//! further failure locks the key for a doubling time (30 s, 60 s, …, at most 15 minutes).
//! Unknown usernames are counted like real ones, so the lockout reveals nothing.

use super::{decode, encode, Store, StoreError};
use serde::{Deserialize, Serialize};

/// Failures further apart than this start a new count.
pub const WINDOW_SECS: u64 = 15 * 60;
const FIRST_LOCK_SECS: u64 = 30;
const MAX_LOCK_SECS: u64 = 15 * 60;

/// What is counted, and how many failures are free before locks start.
#[derive(Debug, Clone)]
pub struct ThrottleKey {
    key: String,
    free: u32,
}

impl ThrottleKey {
    /// A username gets 5 free tries.
    pub fn user(name: &str) -> Self {
        ThrottleKey {
            key: format!("user:{name}"),
            free: 5,
        }
    }

    /// An address gets more (several customers may share one, behind carrier NAT).
    pub fn ip(ip: std::net::IpAddr) -> Self {
        ThrottleKey {
            key: format!("ip:{ip}"),
            free: 20,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Failures {
    count: u32,
    last: u64,
    locked_until: u64,
}

impl Store {
    /// Seconds until any of `keys` may try again, if one is locked.
    pub fn login_locked(&self, keys: &[ThrottleKey], now: u64) -> Result<Option<u64>, StoreError> {
        let mut wait = None;
        for key in keys {
            if let Some(bytes) = self.throttle.get(key.key.as_bytes())? {
                let failures: Failures = decode(&bytes)?;
                if failures.locked_until > now {
                    wait = wait.max(Some(failures.locked_until - now));
                }
            }
        }
        Ok(wait)
    }

    /// Counts a failed sign-in against every key.
    pub fn login_failed(&self, keys: &[ThrottleKey], now: u64) -> Result<(), StoreError> {
        let _writing = self.writing();
        for key in keys {
            self.throttle.fetch_and_update(key.key.as_bytes(), |old| {
                let mut failures: Failures = old.and_then(|b| decode(b).ok()).unwrap_or_default();
                if now.saturating_sub(failures.last) > WINDOW_SECS {
                    failures.count = 0;
                }
                failures.count = failures.count.saturating_add(1);
                failures.last = now;
                if failures.count > key.free {
                    let doublings = (failures.count - key.free - 1).min(16);
                    let lock = (FIRST_LOCK_SECS << doublings).min(MAX_LOCK_SECS);
                    failures.locked_until = now + lock;
                }
                Some(encode(&failures))
            })?;
        }
        Ok(())
    }

    /// A successful sign-in clears the username's count (not the address's: an attacker who
    /// owns one account must not reset the count of the address they guess from).
    pub fn login_succeeded(&self, user: &ThrottleKey) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.throttle.remove(user.key.as_bytes())?;
        Ok(())
    }
}

/// Whether a throttle entry can be forgotten (for the sweeper).
pub(super) fn stale(bytes: &[u8], now: u64) -> bool {
    decode::<Failures>(bytes)
        .is_ok_and(|f| f.locked_until <= now && now.saturating_sub(f.last) > WINDOW_SECS)
}
