//! Housekeeping: removes expired codes, expired grants and tokens that are expired or whose grant
//! was revoked. Works in small batches so that it never holds up requests for long.

use super::record;
use super::{decode, expired, CodeRecord, Grant, Store, StoreError, TokenRecord};

/// Entries examined per batch; the caller yields between batches.
pub const BATCH: usize = 1000;

#[derive(Debug, Clone, Copy)]
pub struct Swept {
    pub codes: usize,
    pub grants: usize,
    pub tokens: usize,
}

impl Store {
    /// One pass over all trees, calling `pause` between batches. Returns what it removed.
    pub fn sweep(&self, now: u64, mut pause: impl FnMut()) -> Result<Swept, StoreError> {
        let codes = self.sweep_tree(&self.codes, &mut pause, |bytes| {
            decode::<CodeRecord>(bytes).is_ok_and(|c| expired(c.expires_at, now))
        })?;
        let grants = self.sweep_tree(&self.grants, &mut pause, |bytes| {
            record::decode::<Grant>(bytes).is_ok_and(|g| expired(g.expires_at, now))
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
        self.sweep_accounts(now, &mut pause)?;
        let swept = Swept {
            codes,
            grants,
            tokens,
        };
        Ok(swept)
    }
}

impl Store {
    /// Removes the entries `dead` picks, `BATCH` at a time. The removal is a compare-and-swap so an
    /// entry rewritten since it was read is left alone.
    fn sweep_tree(
        &self,
        tree: &sled::Tree,
        pause: &mut impl FnMut(),
        dead: impl Fn(&[u8]) -> bool,
    ) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut seen = 0;
        for entry in tree.iter() {
            let (key, value) = entry?;
            if dead(&value) && {
                let _writing = self.writing();
                tree.compare_and_swap(&key, Some(&value), None as Option<&[u8]>)?
                    .is_ok()
            } {
                removed += 1;
            }
            seen += 1;
            if seen % BATCH == 0 {
                pause();
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use crate::secret;
    use crate::store::{fixtures, Store, TokenRecord};

    #[test]
    fn sweeping_removes_expired_and_revoked_entries_and_keeps_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
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
        store.revoke_grant("revoked").unwrap();
        let swept = store.sweep(5000, || {}).unwrap();
        assert_eq!(swept.codes, 2, "both codes expired at 1000/1001");
        // live: its access token expired; revoked: both tokens are dead.
        assert_eq!(swept.tokens, 3);
        assert!(store
            .token(&secret::sha256(&[0, 2]), 5000)
            .unwrap()
            .is_some());
        assert_eq!(store.token_count(), 1);
    }
}
