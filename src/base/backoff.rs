//! A count of failures that locks for doubling times: the arithmetic of both throttles, the
//! sign-in throttle (`accounts::throttle`, counts kept in the store) and the client-secret
//! throttle (`oauth::client_throttle`, counts kept in memory). Pure: `now` is passed in.
//!
//! Failures within `WINDOW_SECS` of each other add up; after a key's `free` failures, each
//! further failure locks it for a doubling time (`first_lock`, twice that, …, at most
//! `max_lock`).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Failures further apart than this start a new count.
pub const WINDOW_SECS: u64 = 15 * 60;

/// How many failures are free and how long the locks after them last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub free: u32,
    pub first_lock: u64,
    pub max_lock: u64,
}

/// One key's count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    count: u32,
    last: u64,
    locked_until: u64,
}

impl Failures {
    /// Counts an attempt, or says how long the key is still locked.
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

    /// Whether no failure is counted.
    pub fn is_zero(&self) -> bool {
        self.count == 0
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The sign-in throttle's policy for a username at one address.
    const PAIR: Policy = Policy {
        free: 5,
        first_lock: 30,
        max_lock: 15 * 60,
    };
    /// Its policy for an address.
    const ADDRESS: Policy = Policy {
        free: 20,
        first_lock: 30,
        max_lock: 15 * 60,
    };

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
}
