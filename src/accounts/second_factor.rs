//! A user's second factor, kept by the store (`store::Totp`): turning it on, checking a code at
//! sign-in, turning it off. The code arithmetic is in `totp.rs`; each step here is one
//! read-modify-write of the user (`Store::update_user`), so two concurrent uses of one code
//! cannot both pass.

use super::totp;
use crate::base::secret;
use crate::store::{Store, StoreError, Totp, Username};

/// What a second-factor check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A current code, not used before.
    Code,
    /// A recovery code, now used up.
    Recovery,
    /// Neither (or the user has no two-factor sign-in).
    Wrong,
}

/// Turns two-factor sign-in on with `secret` (raw bytes) and the recovery code keys, if the
/// person proved they hold the secret: `code` must be a current code for it. The step it matched
/// is remembered, so that code cannot be used again to sign in. Returns false (and changes
/// nothing) if the code is wrong, the user is gone or already has it on. Does not change the
/// generation: nothing issued before becomes less trustworthy.
pub fn enable(
    store: &Store,
    name: &Username,
    secret: &[u8],
    code: &str,
    recovery: &[[u8; 32]],
    now: u64,
) -> Result<bool, StoreError> {
    let Some(step) = totp::verify(secret, code, now, None) else {
        return Ok(false);
    };
    let enabled = store.update_user(name, |user| {
        if user.totp.is_some() {
            return (false, false);
        }
        user.totp = Some(Totp {
            secret: totp::base32_encode(secret),
            last_step: step,
            recovery: recovery.iter().map(|key| secret::to_hex(key)).collect(),
            enabled_at: now,
        });
        (true, true)
    })?;
    Ok(enabled == Some(true))
}

/// Checks a second factor for the user: a current TOTP code not used before (its step is then
/// remembered) or a recovery code (then removed).
pub fn check(
    store: &Store,
    name: &Username,
    typed: &str,
    now: u64,
) -> Result<SecondFactor, StoreError> {
    let found = store.update_user(name, |user| {
        let Some(state) = user.totp.as_mut() else {
            return (false, Ok(SecondFactor::Wrong));
        };
        let Some(key) = totp::base32_decode(&state.secret) else {
            let e = StoreError::Corrupt(format!("the two-factor secret of `{name}` is not base32"));
            return (false, Err(e));
        };
        let found = judge(state, &key, typed, now);
        (found != SecondFactor::Wrong, Ok(found))
    })?;
    found.unwrap_or(Ok(SecondFactor::Wrong))
}

/// What `typed` is for the user's two-factor state, which it updates: a code's step is used up,
/// a recovery code removed.
fn judge(state: &mut Totp, key: &[u8], typed: &str, now: u64) -> SecondFactor {
    if let Some(step) = totp::verify(key, typed, now, Some(state.last_step)) {
        state.last_step = step;
        return SecondFactor::Code;
    }
    let Some(typed_key) = totp::recovery_key(typed) else {
        return SecondFactor::Wrong;
    };
    let typed_hex = secret::to_hex(&typed_key);
    let before = state.recovery.len();
    state
        .recovery
        .retain(|stored| !secret::ct_eq(stored.as_bytes(), typed_hex.as_bytes()));
    if state.recovery.len() < before {
        SecondFactor::Recovery
    } else {
        SecondFactor::Wrong
    }
}

/// Turns two-factor sign-in off. Returns false if it was not on (or there is no such user).
pub fn disable(store: &Store, name: &Username) -> Result<bool, StoreError> {
    let off = store.update_user(name, |user| {
        let was_on = user.totp.take().is_some();
        (was_on, was_on)
    })?;
    Ok(off == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_factor_survives_a_password_change_and_each_code_works_once() {
        let store = Store::in_memory().unwrap();
        let name = Username::parse("alice").unwrap();
        store.add_user(&name, "h1".into()).unwrap();
        let key = totp::new_secret();
        let (codes, keys) = totp::new_recovery_codes();
        let now = 1_000_000_000;
        let step = totp::step_at(now);
        assert!(!enable(&store, &name, &key, "000000x", &keys, now).unwrap());
        let wrong = format!("{:06}", (totp::hotp(&key, step, 6) + 1) % 1_000_000);
        assert!(!enable(&store, &name, &key, &wrong, &keys, now).unwrap());
        assert!(store.user(&name).unwrap().unwrap().totp.is_none());
        let code = totp::code_at_step(&key, step);
        assert!(enable(&store, &name, &key, &code, &keys, now).unwrap());
        assert!(
            !enable(&store, &name, &key, &code, &keys, now).unwrap(),
            "already on"
        );
        // The enrolment code is used up; the next step's code works once.
        assert_eq!(
            check(&store, &name, &code, now).unwrap(),
            SecondFactor::Wrong
        );
        let next = totp::code_at_step(&key, step + 1);
        assert_eq!(
            check(&store, &name, &next, now + 30).unwrap(),
            SecondFactor::Code
        );
        assert_eq!(
            check(&store, &name, &next, now + 30).unwrap(),
            SecondFactor::Wrong
        );
        // Recovery codes: once each.
        assert_eq!(
            check(&store, &name, &codes[3], now).unwrap(),
            SecondFactor::Recovery
        );
        assert_eq!(
            check(&store, &name, &codes[3], now).unwrap(),
            SecondFactor::Wrong
        );
        let left = store.user(&name).unwrap().unwrap().totp.unwrap().recovery;
        assert_eq!(left.len(), 9);
        // A password change keeps it; removing the user removes it.
        assert!(store.set_password(&name, "h2".into()).unwrap());
        assert!(store.user(&name).unwrap().unwrap().totp.is_some());
        assert!(disable(&store, &name).unwrap());
        assert!(!disable(&store, &name).unwrap());
        let later = totp::code_at_step(&key, step + 5);
        assert!(enable(&store, &name, &key, &later, &keys, now + 150).unwrap());
        assert!(store.remove_user(&name).unwrap());
        store.add_user(&name, "h3".into()).unwrap();
        assert!(store.user(&name).unwrap().unwrap().totp.is_none());
        // No such user: nothing to check, turn on or off.
        let nobody = Username::parse("nobody").unwrap();
        assert_eq!(
            check(&store, &nobody, &later, now).unwrap(),
            SecondFactor::Wrong
        );
        assert!(!disable(&store, &nobody).unwrap());
    }

    #[test]
    fn a_code_is_judged_at_any_now_without_a_store() {
        let key = totp::new_secret();
        let now = 2_000_000_000;
        let step = totp::step_at(now);
        let mut state = Totp {
            secret: totp::base32_encode(&key),
            last_step: step - 1,
            recovery: Vec::new(),
            enabled_at: 0,
        };
        let code = totp::code_at_step(&key, step);
        // A minute late it is out of the drift window.
        assert_eq!(
            judge(&mut state, &key, &code, now + 90),
            SecondFactor::Wrong
        );
        assert_eq!(judge(&mut state, &key, &code, now), SecondFactor::Code);
        assert_eq!(state.last_step, step);
        assert_eq!(judge(&mut state, &key, &code, now), SecondFactor::Wrong);
    }

    #[test]
    fn concurrent_uses_of_one_code_pass_once() {
        let store = Store::in_memory().unwrap();
        let name = Username::parse("alice").unwrap();
        store.add_user(&name, "h1".into()).unwrap();
        let key = totp::new_secret();
        let now = 1_000_000_000;
        let step = totp::step_at(now);
        let enrol = totp::code_at_step(&key, step);
        assert!(enable(&store, &name, &key, &enrol, &[], now).unwrap());
        let code = totp::code_at_step(&key, step + 1);
        let passed: usize = std::thread::scope(|s| {
            let runs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| check(&store, &name, &code, now + 30).unwrap()))
                .collect();
            runs.into_iter()
                .map(|r| r.join().unwrap())
                .filter(|found| *found == SecondFactor::Code)
                .count()
        });
        assert_eq!(passed, 1);
    }
}
