//! Sign-ins to `/account`: a server-side session per browser, found by the SHA-256 of the random
//! token in its cookie (a copy of the data directory signs no one in). A session is bound to the
//! user's `sub` and to a hash of their password hash, so it ends when the user is removed or their
//! password changes, whoever changed it. Also here: what `/account` changes, each one read-modify-
//! write under the store's exclusive lock, and when each link last refreshed.

use super::{decode, encode, expired, Grant, Store, StoreError, User, Username};
use crate::base::secret;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub sub: String,
    pub username: String,
    /// Hex SHA-256 of the password hash the session signed in with.
    pub credentials: String,
    pub created_at: u64,
    pub expires_at: u64,
}

/// A link's last refresh is noted at most this often.
const NOTE_EVERY_SECS: u64 = 60;
/// Grants whose last note this node remembers at most (then it starts again, reading).
const NOTED_IN_MEMORY: usize = 100_000;

/// What a login API customer's session (and consent form) is bound to instead of a password
/// hash: they have no local record. A local user's binding is 64 hex digits, never this.
pub const LOGIN_API_CREDENTIALS: &str = "login-api";

/// Beside a grant's "last refresh" note in `grant_activity` (keyed by the grant id), the note
/// of its next customer check is keyed by the grant id and this suffix; the sweep removes both
/// once the grant is gone.
pub(super) const CHECK_NOTE_SUFFIX: &[u8] = b"#customer-check";
/// And why it was revoked, kept this long after (a client retrying a dead token gets the reason
/// in the log meanwhile).
pub(super) const REVOKED_NOTE_SUFFIX: &[u8] = b"#revoked";
pub(super) const REVOKED_NOTE_SECS: u64 = 7 * 86_400;

fn check_note_key(grant_id: &str) -> Vec<u8> {
    [grant_id.as_bytes(), CHECK_NOTE_SUFFIX].concat()
}

/// Hex SHA-256 of a password hash: what a session is bound to.
fn credentials(user: &User) -> String {
    super::to_hex(&secret::sha256(user.password_hash.as_bytes()))
}

impl Store {
    /// Starts a session for `user` under `key` (the SHA-256 of the cookie's token). Expired
    /// sessions are pruned on the way: only a correct password makes one, so they stay few.
    pub fn create_session(
        &self,
        key: &[u8; 32],
        user: &User,
        now: u64,
        ttl_secs: u64,
    ) -> Result<Session, StoreError> {
        let session = Session {
            sub: user.sub.clone(),
            username: user.username.clone(),
            credentials: credentials(user),
            created_at: now,
            expires_at: now + ttl_secs,
        };
        self.insert_session(key, session, now)
    }

    /// Starts a session for a customer of the operator's login API: `sub` is the API's subject.
    /// There is no local record to bind it to, so it lasts its `ttl_secs` (or until signed out).
    pub fn create_api_session(
        &self,
        key: &[u8; 32],
        sub: &str,
        username: &str,
        now: u64,
        ttl_secs: u64,
    ) -> Result<Session, StoreError> {
        let session = Session {
            sub: sub.to_string(),
            username: username.to_string(),
            credentials: LOGIN_API_CREDENTIALS.to_string(),
            created_at: now,
            expires_at: now + ttl_secs,
        };
        self.insert_session(key, session, now)
    }

    fn insert_session(
        &self,
        key: &[u8; 32],
        session: Session,
        now: u64,
    ) -> Result<Session, StoreError> {
        let _writing = self.writing();
        for entry in self.sessions.iter() {
            let (old_key, value) = entry?;
            let old: Session = decode(&value)?;
            if expired(old.expires_at, now) {
                self.sessions.remove(old_key)?;
            }
        }
        self.sessions.insert(key, encode(&session))?;
        Ok(session)
    }

    /// The live session under `key` and its local user, if the user still exists with the
    /// password the session signed in with; a login API customer's session has no user (`None`).
    pub fn session(
        &self,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<(Session, Option<User>)>, StoreError> {
        let Some(bytes) = self.sessions.get(key)? else {
            return Ok(None);
        };
        let session: Session = decode(&bytes)?;
        if expired(session.expires_at, now) {
            return Ok(None);
        }
        if session.credentials == LOGIN_API_CREDENTIALS {
            return Ok(Some((session, None)));
        }
        let Ok(name) = Username::parse(&session.username) else {
            return Ok(None);
        };
        Ok(self.user(&name)?.and_then(|user| {
            let same = user.sub == session.sub
                && secret::ct_eq(
                    credentials(&user).as_bytes(),
                    session.credentials.as_bytes(),
                );
            same.then_some((session, Some(user)))
        }))
    }

    /// Ends every session of the user `sub` but the one under `keep` (turning two-factor
    /// sign-in on: sessions signed in with the password only must not outlive it). Returns how
    /// many ended.
    pub fn end_sessions_of(&self, sub: &str, keep: Option<&[u8; 32]>) -> Result<usize, StoreError> {
        let _writing = self.writing();
        let mut ended = 0;
        for entry in self.sessions.iter() {
            let (key, value) = entry?;
            let key: &[u8] = key.as_ref();
            if keep.is_some_and(|k| k.as_slice() == key) {
                continue;
            }
            let session: Session = decode(&value)?;
            if session.sub == sub {
                self.sessions.remove(key)?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    pub fn end_session(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.sessions.remove(key)?;
        Ok(())
    }

    /// Sets a user's password from `/account`: their sessions end (the caller starts a new one
    /// for the browser that changed it) and outstanding password links die. Their links stay
    /// unless `end_links`, which revokes every grant as `set_password` does. `None` if the user
    /// is gone or is another person now.
    pub fn change_password(
        &self,
        sub: &str,
        name: &Username,
        password_hash: String,
        end_links: bool,
    ) -> Result<Option<User>, StoreError> {
        if end_links {
            // Exactly the admin's --set-password, so whatever that revokes, this revokes.
            let Some(user) = self.user(name)?.filter(|u| u.sub == sub) else {
                return Ok(None);
            };
            self.set_password(name, password_hash)?;
            return Ok(self.user(name)?.filter(|u| u.sub == user.sub));
        }
        let user = {
            let _exclusive = self.exclusive()?;
            let _writing = self.writing();
            let Some(mut user) = self.user(name)?.filter(|u| u.sub == sub) else {
                return Ok(None);
            };
            user.password_hash = password_hash;
            self.users.insert(name.as_str(), encode(&user))?;
            user
        };
        self.drop_password_links(name.as_str())?;
        Ok(Some(user))
    }

    /// Revokes one grant of the user `sub` (unlinks that app). `false` if it is not theirs or
    /// already gone.
    pub fn revoke_own_grant(&self, sub: &str, grant_id: &str) -> Result<bool, StoreError> {
        match self.grant(grant_id)? {
            Some(grant) if grant.sub == sub => {
                self.revoke_grant(grant_id, "unlinked by the customer on /account")?;
                let _writing = self.writing();
                self.grant_activity.remove(grant_id.as_bytes())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records that a grant's refresh token was used at `now` (for "last refresh" on `/account`).
    /// At most once a minute per grant: refreshes are the hot path, and a refresh without rotation
    /// otherwise writes nothing.
    /// What this node noted last is remembered in memory, so within the minute a refresh reads
    /// nothing for it (on PostgreSQL that is a round trip saved per refresh).
    pub fn note_refresh(&self, grant_id: &str, now: u64) -> Result<(), StoreError> {
        let recent = |last: u64| now < last.saturating_add(NOTE_EVERY_SECS);
        if self.noted_at(grant_id).is_some_and(recent) {
            return Ok(());
        }
        let last = self
            .grant_activity
            .get(grant_id.as_bytes())?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_le_bytes);
        let noted = match last {
            Some(last) if recent(last) => last,
            _ => {
                let _writing = self.writing();
                self.grant_activity
                    .insert(grant_id.as_bytes(), now.to_le_bytes())?;
                now
            }
        };
        let mut memo = self.noted.lock().unwrap_or_else(|p| p.into_inner());
        if memo.len() >= NOTED_IN_MEMORY {
            memo.clear();
        }
        memo.insert(grant_id.to_string(), noted);
        Ok(())
    }

    /// When the login API is to be asked next whether a link's customer still exists
    /// (`oauth::customer_check`), if that was noted.
    pub fn customer_check_due(&self, grant_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .grant_activity
            .get(check_note_key(grant_id))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_le_bytes))
    }

    pub fn note_customer_check(&self, grant_id: &str, next_at: u64) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.grant_activity
            .insert(check_note_key(grant_id), next_at.to_le_bytes())?;
        Ok(())
    }

    /// Notes that the grant `grant_id` was revoked at `now` because of `cause` (by a caller that
    /// removed it through `update_grant`).
    pub fn record_revocation(
        &self,
        grant_id: &str,
        cause: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.note_revoked(grant_id, cause, now)
    }

    /// The same for a caller that holds `writing()` (it revoked the grant under it).
    pub(super) fn note_revoked(
        &self,
        grant_id: &str,
        cause: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let value = [&now.to_le_bytes()[..], cause.as_bytes()].concat();
        self.grant_activity
            .insert([grant_id.as_bytes(), REVOKED_NOTE_SUFFIX].concat(), value)?;
        Ok(())
    }

    /// When and why the grant `grant_id` was revoked, if that is still noted.
    pub fn revoked_note(&self, grant_id: &str) -> Result<Option<(u64, String)>, StoreError> {
        let key = [grant_id.as_bytes(), REVOKED_NOTE_SUFFIX].concat();
        Ok(self.grant_activity.get(key)?.and_then(|v| {
            let (at, cause) = v.split_at_checked(8)?;
            let at = u64::from_le_bytes(at.try_into().ok()?);
            Some((at, String::from_utf8_lossy(cause).into_owned()))
        }))
    }

    fn noted_at(&self, grant_id: &str) -> Option<u64> {
        let memo = self.noted.lock().unwrap_or_else(|p| p.into_inner());
        memo.get(grant_id).copied()
    }

    /// The user's links with when each last refreshed (`None`: not yet), oldest first.
    pub fn linked_apps(&self, sub: &str) -> Result<Vec<(Grant, Option<u64>)>, StoreError> {
        let mut apps = Vec::new();
        for grant in self.user_grants(sub)? {
            // A grant of an earlier generation is dead (the password changed, the user was
            // unlinked) even before the sweeper removes it.
            if !self.issued_to_current_user(&grant.username, &grant.sub, grant.generation)? {
                continue;
            }
            let last = self
                .grant_activity
                .get(grant.id.as_bytes())?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(u64::from_le_bytes);
            apps.push((grant, last));
        }
        apps.sort_by(|a, b| (a.0.created_at, &a.0.id).cmp(&(b.0.created_at, &b.0.id)));
        Ok(apps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        crate::store::fixtures::temp_store()
    }

    #[test]
    fn a_session_lives_until_expiry_and_ends_with_a_password_change_or_removal() {
        let (_dir, store) = store();
        let name = Username::parse("alice").unwrap();
        let alice = store.add_user(&name, "hash-1".into()).unwrap();
        let key = secret::sha256(b"session");
        store.create_session(&key, &alice, 100, 60).unwrap();
        assert!(store.session(&key, 159).unwrap().is_some());
        assert!(
            store.session(&key, 160).unwrap().is_none(),
            "dead at expiry"
        );
        store.create_session(&key, &alice, 200, 60).unwrap();
        store.set_password(&name, "hash-2".into()).unwrap();
        assert!(
            store.session(&key, 201).unwrap().is_none(),
            "password changed"
        );
        let alice = store.user(&name).unwrap().unwrap();
        store.create_session(&key, &alice, 200, 60).unwrap();
        store.remove_user(&name).unwrap();
        store.add_user(&name, "hash-2".into()).unwrap();
        assert!(store.session(&key, 201).unwrap().is_none(), "another alice");
    }

    #[test]
    fn expired_sessions_are_pruned_when_another_starts() {
        let (_dir, store) = store();
        let alice = store
            .add_user(&Username::parse("alice").unwrap(), "h".into())
            .unwrap();
        for i in 0..5u8 {
            store
                .create_session(&secret::sha256(&[i]), &alice, 100, 60)
                .unwrap();
        }
        store
            .create_session(&secret::sha256(b"new"), &alice, 500, 60)
            .unwrap();
        assert_eq!(store.sessions.len().unwrap(), 1);
    }
}
