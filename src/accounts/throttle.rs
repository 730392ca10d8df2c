//! The sign-in throttle's policy: failed sign-ins (and two-factor codes) counted so that guessing
//! gets slower and then stops for a while. How a count locks is `base::backoff`; where the counts
//! are kept and reserved atomically is `store::throttle`; what calls it is `sign_in::Attempt`.
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
//! Unknown usernames are counted like real ones, so the lockout reveals nothing. An attempt is
//! reserved before the password is checked and a locked key refuses before anything is checked.
//! A successful sign-in gives its reservation back.
//!
//! Bounded: an address makes at most about 26 counted attempts per `WINDOW_SECS` (20 free, then
//! locks of 30 s doubling to 15 minutes), each writing at most two records of its own (pair and
//! username; the address record is one), so about 55 records per address (IPv6 /64), each
//! forgotten by the sweep a window after its last failure; the store bounds the total.
//!
//! Usernames are stored as a keyed hash (HMAC-SHA256 under a random key the store keeps):
//! bounded in size, and a password typed into the username field is never stored in clear.

use crate::base::backoff::{address_prefix, Policy};
use crate::base::secret;
use crate::store::{Reservation, Settle, Store, StoreError, ThrottleKey};
use std::net::IpAddr;

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

/// The three keys a sign-in by `username` from `ip` is counted under.
/// `username` is what was typed: the keys are made from it trimmed (as the login API
/// receives it) and lowercased, so no spelling of one name (a leading space, a tab, a
/// no-break space, other case) escapes that name's count. A valid local username is already
/// in this form.
pub fn login_keys(
    store: &Store,
    username: &str,
    ip: IpAddr,
) -> Result<[ThrottleKey; 3], StoreError> {
    let username = username.trim().to_lowercase();
    let hash_key = store.throttle_hash_key()?;
    let prefix = address_prefix(ip).to_string();
    let name = secret::hmac_sha256(&hash_key, &[username.as_bytes()]);
    let pair = secret::hmac_sha256(&hash_key, &[username.as_bytes(), b"\0", prefix.as_bytes()]);
    Ok([
        ThrottleKey::new([b"p:".as_slice(), &pair[..16]].concat(), PAIR),
        ThrottleKey::new(format!("ip:{prefix}").into_bytes(), ADDRESS),
        ThrottleKey::new([b"u:".as_slice(), &name[..16]].concat(), USERNAME),
    ])
}

/// A successful sign-in: the username's counts are cleared, the address gets its reservation
/// back (not cleared: an attacker who owns one account must not reset the count of the address
/// they guess from).
pub fn succeeded(store: &Store, reservation: Reservation) -> Result<(), StoreError> {
    store.settle(reservation, |key| {
        if key.policy() == ADDRESS {
            Settle::GiveBack
        } else {
            Settle::Clear
        }
    })
}

/// A right password that still needs a two-factor code: the address gets its reservation back
/// (a right password is no guess, and many people share a carrier's address), but the
/// username's keys stay counted until a right code clears them (`succeeded`), so someone who
/// knows the password cannot reset them between guesses of the code.
pub fn awaits_code(store: &Store, reservation: Reservation) -> Result<(), StoreError> {
    store.settle(reservation, |key| {
        if key.policy() == ADDRESS {
            Settle::GiveBack
        } else {
            Settle::Keep
        }
    })
}

/// An attempt whose password was never judged (the operator's login API was down, slow or
/// busy): every key gets its reservation back, so an outage is not counted as guesses.
pub fn unchecked(store: &Store, reservation: Reservation) -> Result<(), StoreError> {
    store.settle(reservation, |_| Settle::Undo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::backoff::Failures;

    fn store() -> Store {
        Store::in_memory().expect("an in-memory store")
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

    /// Issue 28: a refused attempt writes nothing. Before, the keys ahead of the locked one were
    /// counted: the owner's own address stayed locked after a username lock set by others, and
    /// fresh usernames from a locked address each stored a record.
    #[test]
    fn a_refused_attempt_counts_against_no_key_and_stores_nothing() {
        let store = store();
        let owner: IpAddr = "192.0.2.7".parse().unwrap();
        // Others lock the username from many addresses.
        for i in 0..=USERNAME.free {
            let ip: IpAddr = format!("198.51.100.{}", i % 200).parse().unwrap();
            let keys = login_keys(&store, "alice", ip).unwrap();
            let _ = store.reserve_attempt(&keys, 100).unwrap();
        }
        let keys = login_keys(&store, "alice", owner).unwrap();
        let records = store.throttle_records_stored();
        for _ in 0..10 {
            assert!(store.reserve_attempt(&keys, 100).unwrap().is_err());
        }
        assert_eq!(
            store.throttle_records_stored(),
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
            let keys = login_keys(&store, &format!("fresh{i}"), guesser).unwrap();
            let _ = store.reserve_attempt(&keys, 200).unwrap();
        }
        let records = store.throttle_records_stored();
        for i in 0..500 {
            let keys = login_keys(&store, &format!("other{i}"), guesser).unwrap();
            assert!(store.reserve_attempt(&keys, 200).unwrap().is_err());
        }
        assert_eq!(store.throttle_records_stored(), records);
    }

    #[test]
    fn every_spelling_of_a_name_is_counted_as_one() {
        let store = store();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let plain = login_keys(&store, "rita o'neil", ip).unwrap();
        for variant in [
            " rita o'neil",
            "rita o'neil ",
            "\u{a0}rita o'neil",
            "\trita o'neil",
            "rita o'neil\u{3000}",
            "Rita O'Neil",
        ] {
            assert_eq!(
                login_keys(&store, variant, ip).unwrap(),
                plain,
                "{variant:?}"
            );
        }
        assert_ne!(login_keys(&store, "rita o'neal", ip).unwrap(), plain);
    }

    /// A right password awaiting its code: the address is refunded, the username's pair key
    /// stays counted, so password-then-wrong-code cycles lock like wrong passwords.
    #[test]
    fn a_password_awaiting_its_code_stays_counted_for_the_username() {
        let store = store();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let keys = login_keys(&store, "alice", ip).unwrap();
        let address = [keys[1].clone()];
        for _ in 0..=PAIR.free {
            let reservation = store.reserve_attempt(&keys, 100).unwrap().unwrap();
            awaits_code(&store, reservation).unwrap();
        }
        assert!(
            store.reserve_attempt(&keys, 100).unwrap().is_err(),
            "the pair is locked"
        );
        // The address alone was given every reservation back.
        let other = login_keys(&store, "bob", ip).unwrap();
        assert!(store.reserve_attempt(&other, 100).unwrap().is_ok());
        for _ in 0..ADDRESS.free - 1 {
            assert!(store.reserve_attempt(&address, 100).unwrap().is_ok());
        }
    }
}
