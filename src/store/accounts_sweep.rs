//! Housekeeping for the account trees (issue 15), called from `sweep`: expired `/account`
//! sessions and password links, and the "last refresh" and customer-check notes of grants that
//! no longer exist (revoked by an unlink, `--remove-user`, `--set-password`, reuse detection, or
//! expired).

use super::sessions::Session;
use super::sweep::BATCH;
use super::{decode, expired, PasswordLink, Store, StoreError};

impl Store {
    /// One pass over the account trees, calling `pause` between batches. Returns how many entries
    /// it removed.
    pub(super) fn sweep_accounts(
        &self,
        now: u64,
        pause: &mut impl FnMut(),
    ) -> Result<usize, StoreError> {
        let mut removed = 0;
        removed += self.sweep_where(&self.sessions, pause, |_, value| {
            decode::<Session>(value).is_ok_and(|s| expired(s.expires_at, now))
        })?;
        removed += self.sweep_where(&self.invites, pause, |_, value| {
            decode::<PasswordLink>(value).is_ok_and(|l| expired(l.expires_at, now))
        })?;
        removed += self.sweep_where(&self.grant_activity, pause, |key, value| {
            use super::sessions::{CHECK_NOTE_SUFFIX, REVOKED_NOTE_SECS, REVOKED_NOTE_SUFFIX};
            // Why a grant was revoked outlives it for a while.
            if key.ends_with(REVOKED_NOTE_SUFFIX) {
                let at = value
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_le_bytes);
                return expired(at.saturating_add(REVOKED_NOTE_SECS), now);
            }
            let grant = key.strip_suffix(CHECK_NOTE_SUFFIX).unwrap_or(key);
            !self.grants.contains_key(grant).unwrap_or(true)
        })?;
        removed += self.sweep_forms(now, pause)?;
        Ok(removed)
    }

    /// Removes the entries `dead` picks (by key and value), `BATCH` at a time. The removal is a
    /// compare-and-swap so an entry rewritten since it was read is left alone.
    pub(super) fn sweep_where(
        &self,
        tree: &super::tree::Tree,
        pause: &mut impl FnMut(),
        dead: impl Fn(&[u8], &[u8]) -> bool,
    ) -> Result<usize, StoreError> {
        let (mut removed, mut seen) = (0, 0);
        for entry in tree.iter() {
            let (key, value) = entry?;
            if dead(&key, &value) {
                let _writing = self.writing();
                if tree
                    .compare_and_swap(&key, Some(&value), None as Option<&[u8]>)?
                    .is_ok()
                {
                    removed += 1;
                }
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
    use crate::base::secret;
    use crate::store::{LinkKind, Store, Username};

    #[test]
    fn why_a_grant_was_revoked_is_kept_a_week_after_its_grant_is_gone() {
        let (_dir, store) = crate::store::fixtures::temp_store();
        store.note_revoked("recent", "test", 1_000_000).unwrap();
        store.note_revoked("long-ago", "test", 100).unwrap();
        let now = 1_000_000 + 86_400;
        assert_eq!(store.sweep_accounts(now, &mut || {}).unwrap(), 1);
        assert_eq!(
            store.revoked_note("recent").unwrap(),
            Some((1_000_000, "test".to_string()))
        );
        assert_eq!(store.revoked_note("long-ago").unwrap(), None);
    }

    #[test]
    fn the_sweep_removes_expired_sessions_and_links_and_notes_of_gone_grants() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let alice = store
            .add_user(&Username::parse("alice").unwrap(), "h".into())
            .unwrap();
        let bob = store
            .add_user(&Username::parse("bob").unwrap(), "h".into())
            .unwrap();
        store
            .create_session(&secret::sha256(b"old"), &alice, 100, 60)
            .unwrap();
        store
            .create_session(&secret::sha256(b"live"), &alice, 150, 60)
            .unwrap();
        store
            .put_password_link(&secret::sha256(b"l1"), &alice, LinkKind::Reset, 100, 60)
            .unwrap();
        store
            .put_password_link(&secret::sha256(b"l2"), &bob, LinkKind::Reset, 150, 60)
            .unwrap();
        let mut grant = crate::store::fixtures::grant("kept");
        grant.sub = alice.sub.clone();
        grant.username = "alice".into();
        grant.generation = alice.generation;
        store
            .grants
            .insert(b"kept", super::super::record::encode(&grant))
            .unwrap();
        store.note_refresh("kept", 120).unwrap();
        store.note_refresh("gone", 120).unwrap();
        store.note_customer_check("kept", 900).unwrap();
        store.note_customer_check("gone", 900).unwrap();
        let removed = store.sweep_accounts(170, &mut || {}).unwrap();
        assert_eq!(removed, 4, "one session, one link, two notes");
        assert_eq!(store.customer_check_due("kept").unwrap(), Some(900));
        assert_eq!(store.customer_check_due("gone").unwrap(), None);
        assert!(store
            .session(&secret::sha256(b"live"), 170)
            .unwrap()
            .is_some());
        assert!(store
            .password_link(&secret::sha256(b"l2"), 170)
            .unwrap()
            .is_some());
        assert_eq!(store.linked_apps(&alice.sub).unwrap()[0].1, Some(120));
    }
}
