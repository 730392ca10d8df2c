//! What the nodes share about authorizations in progress (`oauth::pending`): the key their forms
//! are sealed with, and which forms are spent. In the store, not in memory, so that behind a load
//! balancer without sticky sessions a sign-in may move between nodes at every step, and a form
//! spent on one node is spent on all (a consent form cannot mint a second code elsewhere).
//! Spent forms are removed by the sweeper once expired; backups carry them, so a restore does
//! not let a form be spent twice.

use super::{expired, Store, StoreError};

/// The form key's name, beside the username hash key (`throttle.rs`).
const FORM_KEY: &[u8] = b"\0form-key";

impl Store {
    /// The key authorization forms are sealed with: made once, the same for every node.
    pub fn form_key(&self) -> Result<[u8; 32], StoreError> {
        self.shared_secret(FORM_KEY)
    }

    /// Whether the form `nonce` was spent.
    pub fn form_spent(&self, nonce: &str) -> Result<bool, StoreError> {
        self.forms.contains_key(nonce.as_bytes())
    }

    /// Records the form `nonce` as spent until `expires_at`. `false` if it already was: of two
    /// submissions racing, on one node or two, one gets `true`.
    pub fn spend_form(&self, nonce: &str, expires_at: u64) -> Result<bool, StoreError> {
        let _writing = self.writing();
        Ok(self
            .forms
            .compare_and_swap(nonce.as_bytes(), None, Some(&expires_at.to_le_bytes()))?
            .is_ok())
    }

    /// Removes spent forms past their expiry, `pause` between batches. Returns how many.
    pub(super) fn sweep_forms(
        &self,
        now: u64,
        pause: &mut impl FnMut(),
    ) -> Result<usize, StoreError> {
        self.sweep_where(&self.forms, pause, |_, value| {
            <[u8; 8]>::try_from(value).is_ok_and(|b| expired(u64::from_le_bytes(b), now))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::fixtures;

    #[test]
    fn a_form_is_spent_once_and_forgotten_after_its_expiry() {
        let (_dir, store) = fixtures::temp_store();
        assert!(!store.form_spent("n1").unwrap());
        assert!(store.spend_form("n1", 100).unwrap());
        assert!(!store.spend_form("n1", 100).unwrap());
        assert!(store.form_spent("n1").unwrap());
        assert_eq!(store.sweep_forms(99, &mut || {}).unwrap(), 0);
        assert!(store.form_spent("n1").unwrap());
        assert_eq!(store.sweep_forms(100, &mut || {}).unwrap(), 1);
        assert!(!store.form_spent("n1").unwrap());
        assert_eq!(store.form_key().unwrap(), store.form_key().unwrap());
    }
}
