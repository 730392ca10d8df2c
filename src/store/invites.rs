//! One-time password links (`--invite`, `--reset-password`): where a person sets their own
//! password, so the admin never chooses or sees it.
//!
//! A link's token is stored only as its SHA-256 (a copy of the data directory holds no working
//! link), together with the user it is for (name and `sub`, so a link outlives neither the user
//! nor a new user of the same name) and its expiry. A user has at most one live link: a new one
//! replaces the old. A link dies when it is used, when it expires, when its user is removed, and
//! when the user's password is set another way (`--set-password`).

use super::{decode, encode, expired, Store, StoreError, User, Username};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// A new user sets their first password.
    Invite,
    /// An existing user sets a new one.
    Reset,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordLink {
    pub kind: LinkKind,
    pub username: String,
    pub sub: String,
    pub created_at: u64,
    pub expires_at: u64,
}

/// What using a link did.
#[derive(Debug)]
pub enum LinkUsed {
    /// The password is set (and, as with `--set-password`, the user's grants are revoked).
    PasswordSet(PasswordLink),
    /// Unknown, expired, already used, replaced, or its user is gone.
    Dead,
}

impl Store {
    /// Stores a link for `user` under `key`, replacing any link the user had. Expired links of
    /// other users are pruned on the way (links are few: one per user at most).
    pub fn put_password_link(
        &self,
        key: &[u8; 32],
        user: &User,
        kind: LinkKind,
        now: u64,
        ttl_secs: u64,
    ) -> Result<PasswordLink, StoreError> {
        let link = PasswordLink {
            kind,
            username: user.username.clone(),
            sub: user.sub.clone(),
            created_at: now,
            expires_at: now + ttl_secs,
        };
        let _exclusive = self.exclusive()?;
        let _writing = self.writing();
        for (old_key, old) in self.password_links()? {
            if old.username == user.username || expired(old.expires_at, now) {
                self.invites.remove(old_key)?;
            }
        }
        self.invites.insert(key, encode(&link))?;
        Ok(link)
    }

    /// The live link under `key`, if any (its user must still be the one it was made for).
    pub fn password_link(
        &self,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<PasswordLink>, StoreError> {
        let Some(bytes) = self.invites.get(key)? else {
            return Ok(None);
        };
        let link: PasswordLink = decode(&bytes)?;
        if expired(link.expires_at, now) || !self.link_user_exists(&link)? {
            return Ok(None);
        }
        Ok(Some(link))
    }

    /// Uses the link: if it is live, removes it and sets the user's password (revoking their
    /// grants as `set_password` does). Of two racing uses, exactly one sets the password.
    pub fn use_password_link(
        &self,
        key: &[u8; 32],
        now: u64,
        password_hash: String,
    ) -> Result<LinkUsed, StoreError> {
        let link = {
            let _exclusive = self.exclusive()?;
            let _writing = self.writing();
            let Some(bytes) = self.invites.get(key)? else {
                return Ok(LinkUsed::Dead);
            };
            let link: PasswordLink = decode(&bytes)?;
            // Spent before anything else: a crash after this leaves a dead link, never a
            // reusable one.
            self.invites.remove(key)?;
            if expired(link.expires_at, now) || !self.link_user_exists(&link)? {
                return Ok(LinkUsed::Dead);
            }
            link
        };
        let Ok(name) = Username::parse(&link.username) else {
            return Ok(LinkUsed::Dead);
        };
        if !self.set_password(&name, password_hash)? {
            return Ok(LinkUsed::Dead);
        }
        Ok(LinkUsed::PasswordSet(link))
    }

    /// Removes every link of `username` (on removal and on a password set another way).
    /// Returns how many there were.
    pub fn drop_password_links(&self, username: &str) -> Result<usize, StoreError> {
        let _writing = self.writing();
        let mut dropped = 0;
        for (key, link) in self.password_links()? {
            if link.username == username {
                self.invites.remove(key)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    fn password_links(&self) -> Result<Vec<(super::tree::Value, PasswordLink)>, StoreError> {
        self.invites
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                Ok((key, decode(&value)?))
            })
            .collect()
    }

    fn link_user_exists(&self, link: &PasswordLink) -> Result<bool, StoreError> {
        let Ok(name) = Username::parse(&link.username) else {
            return Ok(false);
        };
        Ok(self.user(&name)?.is_some_and(|user| user.sub == link.sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::secret;

    fn store() -> (tempfile::TempDir, Store) {
        crate::store::fixtures::temp_store()
    }

    fn user(store: &Store, name: &str) -> User {
        store
            .add_user(&Username::parse(name).unwrap(), "unusable".into())
            .unwrap()
    }

    #[test]
    fn a_link_lives_until_its_expiry_and_is_used_once() {
        let (_dir, store) = store();
        let alice = user(&store, "alice");
        let key = secret::sha256(b"link");
        store
            .put_password_link(&key, &alice, LinkKind::Invite, 1000, 60)
            .unwrap();
        assert!(store.password_link(&key, 1059).unwrap().is_some());
        assert!(
            store.password_link(&key, 1060).unwrap().is_none(),
            "dead at expiry"
        );
        assert!(matches!(
            store.use_password_link(&key, 1060, "h1".into()).unwrap(),
            LinkUsed::Dead
        ));
        store
            .put_password_link(&key, &alice, LinkKind::Invite, 1000, 60)
            .unwrap();
        assert!(matches!(
            store.use_password_link(&key, 1001, "h2".into()).unwrap(),
            LinkUsed::PasswordSet(_)
        ));
        let name = Username::parse("alice").unwrap();
        assert_eq!(store.user(&name).unwrap().unwrap().password_hash, "h2");
        assert!(matches!(
            store.use_password_link(&key, 1002, "h3".into()).unwrap(),
            LinkUsed::Dead
        ));
        assert_eq!(store.user(&name).unwrap().unwrap().password_hash, "h2");
    }

    #[test]
    fn a_new_link_replaces_the_old_and_removal_kills_it() {
        let (_dir, store) = store();
        let alice = user(&store, "alice");
        let bob = user(&store, "bob");
        let (first, second, bobs) = (
            secret::sha256(b"1"),
            secret::sha256(b"2"),
            secret::sha256(b"3"),
        );
        store
            .put_password_link(&first, &alice, LinkKind::Reset, 10, 60)
            .unwrap();
        store
            .put_password_link(&bobs, &bob, LinkKind::Reset, 10, 60)
            .unwrap();
        store
            .put_password_link(&second, &alice, LinkKind::Reset, 11, 60)
            .unwrap();
        assert!(store.password_link(&first, 12).unwrap().is_none());
        assert!(store.password_link(&second, 12).unwrap().is_some());
        assert!(store.password_link(&bobs, 12).unwrap().is_some());
        // A user removed and added again under the same name is another person.
        let name = Username::parse("alice").unwrap();
        store.users.remove(name.as_str()).unwrap();
        user(&store, "alice");
        assert!(store.password_link(&second, 12).unwrap().is_none());
        assert!(matches!(
            store.use_password_link(&second, 12, "h".into()).unwrap(),
            LinkUsed::Dead
        ));
        assert_eq!(store.drop_password_links("bob").unwrap(), 1);
        assert!(store.password_link(&bobs, 12).unwrap().is_none());
    }
}
