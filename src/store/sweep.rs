//! Housekeeping: removes expired codes, grants that expired or whose user is gone or moved to a
//! new generation, stored tokens that are expired or whose grant was revoked, deny entries of
//! expired access tokens and server keys that no longer verify anything. Works in small batches
//! so that it never holds up requests for long.

use super::record;
use super::{
    decode, expired, CodeRecord, Generation, Grant, Store, StoreError, TokenRecord,
    LOGIN_API_GENERATION,
};

/// Entries examined per batch; the caller yields between batches.
pub const BATCH: usize = 1000;

#[derive(Debug, Clone, Copy, Default)]
pub struct Swept {
    pub codes: usize,
    pub grants: usize,
    pub tokens: usize,
}

impl Store {
    /// One pass over all trees, calling `pause` between batches. Returns what it removed.
    pub fn sweep(&self, now: u64, mut pause: impl FnMut()) -> Result<Swept, StoreError> {
        // On PostgreSQL one node sweeps at a time; the others skip this round. The lock's
        // session is kept from idling out between batches.
        let mut sweeping = match &self.backend {
            super::Backend::Postgres(db) => match db.try_lock(super::postgres::SWEEP_LOCK)? {
                Some(lock) => Some(lock),
                None => return Ok(Swept::default()),
            },
            super::Backend::Sled { .. } => None,
        };
        let mut pause = || {
            pause();
            if let Some(lock) = sweeping.as_mut() {
                if let Err(e) = lock.keep_alive() {
                    tracing::warn!("the sweep lost its lock's session: {e}");
                    sweeping = None;
                }
            }
        };
        let codes = self.sweep_tree(&self.codes, &mut pause, |bytes| {
            decode::<CodeRecord>(bytes).is_ok_and(|c| expired(c.expires_at, now))
        })?;
        let owners = Owners::default();
        let grants = self.sweep_tree(&self.grants, &mut pause, |bytes| {
            record::decode::<Grant>(bytes).is_ok_and(|g| {
                expired(g.expires_at, now) || owners.gone(self, &g).is_ok_and(|gone| gone)
            })
        })?;
        let tokens = self.sweep_tree(&self.tokens, &mut pause, |bytes| {
            record::decode::<TokenRecord>(bytes).is_ok_and(|t| {
                let revoked = !self
                    .grants
                    .contains_key(t.grant_id.as_bytes())
                    .unwrap_or(true);
                expired(t.expires_at, now) || revoked
            })
        })?;
        self.sweep_tree(&self.throttle, &mut pause, |bytes| {
            super::throttle::stale(bytes, now)
        })?;
        self.recount_throttle()?;
        self.sweep_accounts(now, &mut pause)?;
        self.sweep_denied(now)?;
        self.sweep_keys(now)?;
        let swept = Swept {
            codes,
            grants,
            tokens,
        };
        Ok(swept)
    }
}

/// Users' generations as read during one sweep: a grant whose user matches is kept without
/// another read; one that does not is only judged dead after a fresh read (the user may have
/// changed since), so a pass over a million grants reads each user about once, not once per
/// grant (on PostgreSQL, a query each).
#[derive(Default)]
struct Owners(std::cell::RefCell<std::collections::HashMap<String, Option<Generation>>>);

impl Owners {
    fn gone(&self, store: &Store, grant: &Grant) -> Result<bool, StoreError> {
        if grant.generation == LOGIN_API_GENERATION || grant.is_service() {
            return Ok(false);
        }
        let owns = |g: &Option<Generation>| {
            g.as_ref()
                .is_some_and(|g| g.sub == grant.sub && g.generation == grant.generation)
        };
        if self.0.borrow().get(&grant.username).is_some_and(owns) {
            return Ok(false);
        }
        let fresh = store.user_generation(&grant.username)?;
        let gone = !owns(&fresh);
        self.0.borrow_mut().insert(grant.username.clone(), fresh);
        Ok(gone)
    }
}

impl Store {
    /// Removes the entries `dead` picks, `BATCH` at a time. The removal is a compare-and-swap so an
    /// entry rewritten since it was read is left alone.
    fn sweep_tree(
        &self,
        tree: &super::tree::Tree,
        pause: &mut impl FnMut(),
        dead: impl Fn(&[u8]) -> bool,
    ) -> Result<usize, StoreError> {
        self.sweep_where(tree, pause, |_, value| dead(value))
    }
}

#[cfg(test)]
mod tests {
    use crate::base::secret;
    use crate::store::{fixtures, Store, TokenRecord};

    #[test]
    fn sweeping_removes_expired_and_revoked_entries_and_keeps_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        fixtures::user(&store);
        let grant = fixtures::grant;
        let code = |n: u8| fixtures::code(1000 + u64::from(n));
        // Two links made at time 100: tokens that expire at 200 (access) and never (refresh).
        for (n, id) in [(0u8, "live"), (1, "revoked")] {
            let key = secret::sha256(&[n]);
            store.put_code(&key, &code(n)).unwrap();
            let g = grant(id);
            let tokens = [
                (
                    secret::sha256(&[n, 1]),
                    TokenRecord::access(&g, "", 100, 100),
                ),
                (secret::sha256(&[n, 2]), TokenRecord::refresh(&g, "", 100)),
            ];
            store.redeem_code(&key, 100, &g, &tokens).unwrap();
        }
        store.revoke_grant("revoked", "test").unwrap();
        let swept = store.sweep(5000, || {}).unwrap();
        assert_eq!(swept.codes, 2, "both codes expired at 1000/1001");
        // live: its access token expired; revoked: both tokens are dead.
        assert_eq!(swept.tokens, 3);
        assert_eq!(store.token_count(), 1);
        assert!(store.grant("live").unwrap().is_some());
        // A user moved to a new generation: their grants go, and a code issued before is dead.
        let name = crate::store::Username::parse("u").unwrap();
        store.set_password(&name, "other".into()).unwrap();
        assert!(store.grant("live").unwrap().is_none());
        store.put_code(&secret::sha256(&[9]), &code(9)).unwrap();
        let g = grant("again");
        assert!(matches!(
            store
                .redeem_code(&secret::sha256(&[9]), 100, &g, &[])
                .unwrap(),
            crate::store::Redeemed::Unknown
        ));
    }

    #[test]
    fn a_login_api_subjects_grant_has_no_local_user_and_survives_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let api_grant = crate::store::Grant::new(
            "cust-1001",
            "rider@example.com",
            "c",
            "",
            crate::store::LOGIN_API_GENERATION,
            100,
            0,
        );
        // The same grant under a local generation: no such user, so it is dead and swept.
        let orphan = crate::store::Grant::new("cust-1002", "nobody", "c", "", 7, 100, 0);
        for (n, g) in [(1u8, &api_grant), (2, &orphan)] {
            let key = secret::sha256(&[n]);
            let mut c = fixtures::code(1000);
            c.sub = g.sub.clone();
            c.username = g.username.clone();
            c.generation = g.generation;
            store.put_code(&key, &c).unwrap();
            let redeemed = store.redeem_code(&key, 100, g, &[]).unwrap();
            let expect = if n == 1 {
                crate::store::Redeemed::Issued
            } else {
                crate::store::Redeemed::Unknown
            };
            assert_eq!(redeemed, expect, "{n}");
        }
        store.sweep(500, || {}).unwrap();
        assert!(store.grant(&api_grant.id).unwrap().is_some());
        assert_eq!(store.revoke_user_grants("cust-1001", "test").unwrap(), 1);
        assert!(store.grant(&api_grant.id).unwrap().is_none());
    }

    #[test]
    fn sweeping_drops_deny_entries_and_keys_once_nothing_they_cover_lives() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let name = crate::store::Username::parse("u").unwrap();
        let user = store.add_user(&name, "hash".into()).unwrap();
        let _grant = crate::store::Grant::new(&user.sub, "u", "c", "", user.generation, 100, 0);
        store.ensure_token_key(100).unwrap();
        // An access token issued at 100 for 60 s, revoked on its own.
        store.deny_access([7; 16], 160).unwrap();
        assert_eq!(store.denied_count(), 1);
        store.rotate_token_key(100, 60).unwrap();
        assert_eq!(store.token_key_count(), 2);
        store.sweep(150, || {}).unwrap();
        assert_eq!((store.denied_count(), store.token_key_count()), (1, 2));
        store.sweep(161, || {}).unwrap();
        assert_eq!((store.denied_count(), store.token_key_count()), (0, 1));
    }
}
