//! Users: a stable random `sub`, a username (the key), an argon2id PHC password hash and a
//! generation. The generation changes whenever what the user issued must die (password changed,
//! user unlinked); every code and grant records the generation it was issued under, so a lookup
//! that finds a different one (or no user, or another `sub`: removed, perhaps re-added) treats
//! them as revoked. Generations are cached in memory (the store has one process), so checking
//! one costs no read on the hot path.

use super::{decode, encode, now, Store, StoreError};
use crate::base::secret;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Stable identifier given to clients; never changes, not even with the password.
    pub sub: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: u64,
    /// Random at creation, incremented when the user's codes and grants must die. Users created
    /// before generations existed have 0, as do the grants and codes of that time.
    #[serde(default)]
    pub generation: u64,
    /// Two-factor sign-in, when the person turned it on. Kept across password changes; removed
    /// with the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<Totp>,
}

/// A user's two-factor state (`accounts::totp`). The secret is stored as it is (the server must
/// compute codes from it); recovery codes only as SHA-256 keys, hex.
#[derive(Clone, Serialize, Deserialize)]
pub struct Totp {
    /// The RFC 6238 secret, base32 as the authenticator got it.
    pub secret: String,
    /// The last time step a code was accepted for: a code for it or an earlier step is refused.
    pub last_step: u64,
    /// SHA-256 keys (hex) of the recovery codes not yet used.
    pub recovery: Vec<String>,
    pub enabled_at: u64,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("recovery_left", &self.recovery.len())
            .field("enabled_at", &self.enabled_at)
            .finish_non_exhaustive()
    }
}

/// What a code or grant must match to be alive: the user's `sub` and current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub sub: String,
    pub generation: u64,
}

/// The generation of what was issued to a customer who signed in through the operator's login
/// API (`[login.api]`): they have no local record whose generation could change, so their codes
/// and grants live until they expire or are revoked (`--unlink-user SUBJECT` deletes the grants
/// and the codes not yet redeemed). Local generations start below 2^63 and grow by one per
/// change, so they never reach it.
pub const LOGIN_API_GENERATION: u64 = u64::MAX;

/// The generation of a client's own grant for `client_credentials` tokens (`Store::service_grant`):
/// no user, so nothing a user does ends it; it lives until its tokens expire, or the key that
/// signed them is retired.
pub const SERVICE_GENERATION: u64 = u64::MAX - 1;

/// The generation cache holds at most this many users; past it, it starts again empty.
const GENERATION_CACHE: usize = 65_536;

/// Users' generations by username (`None`: no such user). `epoch` counts changes to users, so
/// that a lookup racing a change does not cache what it read before the change.
#[derive(Default)]
pub(super) struct GenerationCache {
    epoch: u64,
    users: std::collections::HashMap<String, Option<Generation>>,
}

/// A valid, normalised username: lower case (phones capitalise the first letter), 1 to 64 of
/// `a-z 0-9 . _ @ + -`, not starting with `-` (it would read as a CLI flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Username, String> {
        let name = input.trim().to_lowercase();
        if name.is_empty() || name.len() > 64 {
            return Err("a username must be 1 to 64 characters long".into());
        }
        if name.starts_with('-') {
            return Err("a username must not start with '-'".into());
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".-_@+".contains(*c)))
        {
            return Err(format!(
                "a username may contain only letters, digits and . _ @ + - (found {bad:?})"
            ));
        }
        Ok(Username(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug)]
pub enum AddUserError {
    Exists(Username),
    Store(StoreError),
}

impl fmt::Display for AddUserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddUserError::Exists(name) => write!(f, "user `{name}` already exists"),
            AddUserError::Store(e) => e.fmt(f),
        }
    }
}

impl Store {
    /// Creates a user; refuses an existing name atomically.
    pub fn add_user(&self, name: &Username, password_hash: String) -> Result<User, AddUserError> {
        let user = User {
            sub: secret::new_id(),
            username: name.to_string(),
            password_hash,
            created_at: now(),
            // Random, so that a user removed and added again shares nothing with the old one.
            generation: u64::from_le_bytes(secret::random_bytes::<8>()) >> 1,
            totp: None,
        };
        let _writing = self.writing();
        let swapped = self
            .users
            .compare_and_swap(name.as_str(), None, Some(&encode(&user)))
            .map_err(AddUserError::Store)?;
        self.forget_generation(name.as_str());
        match swapped {
            Ok(()) => Ok(user),
            Err(_) => Err(AddUserError::Exists(name.clone())),
        }
    }

    pub fn user(&self, name: &Username) -> Result<Option<User>, StoreError> {
        match self.users.get(name.as_str())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.users.iter().map(|entry| decode(&entry?.1)).collect()
    }

    /// The user's `sub` and current generation, `None` if there is no such user. Cached: after
    /// the first call for a user this reads nothing (every change of a user goes through this
    /// store, which updates the cache). A pending sign-in records it, and checks it again before
    /// it issues anything.
    pub fn user_generation(&self, name: &str) -> Result<Option<Generation>, StoreError> {
        if self.shared() {
            // Another node may have changed the user since the cache last caught up: read it.
            return self.read_generation(name);
        }
        self.cached_generation(name)
    }

    /// The same from the cache, which must be current: always with sled; on PostgreSQL right
    /// after a grant read brought it up to date (`shared.rs`).
    pub(super) fn cached_generation(&self, name: &str) -> Result<Option<Generation>, StoreError> {
        let epoch = {
            let cache = self.generation_cache();
            if let Some(cached) = cache.users.get(name) {
                return Ok(cached.clone());
            }
            cache.epoch
        };
        let found = self.read_generation(name)?;
        let mut cache = self.generation_cache();
        // A user changed since the read above: what was read may be stale, do not keep it.
        if cache.epoch == epoch {
            crate::base::bounded::insert(
                &mut cache.users,
                name.to_string(),
                found.clone(),
                GENERATION_CACHE,
            );
        }
        Ok(found)
    }

    fn read_generation(&self, name: &str) -> Result<Option<Generation>, StoreError> {
        self.users.get(name)?.map(|b| generation_of(&b)).transpose()
    }

    /// Whether what was issued to `sub` under `generation` (a code, a grant) is still alive.
    pub fn issued_to_current_user(
        &self,
        username: &str,
        sub: &str,
        generation: u64,
    ) -> Result<bool, StoreError> {
        self.issued_to(username, sub, generation, Store::user_generation)
    }

    /// What was issued to `username` / `sub` under `generation` finds of its user now, the row
    /// read from the database and awaited (PostgreSQL: the code exchange, `codes.rs`).
    pub(super) async fn issuer_row(
        &self,
        users: &super::postgres::Table,
        username: &str,
        sub: &str,
        generation: u64,
    ) -> Result<Issuer, StoreError> {
        if needs_no_user(generation) {
            return Ok(Issuer::NoUser);
        }
        let Some(bytes) = users.get_async(username.as_bytes().to_vec()).await? else {
            return Ok(Issuer::Gone);
        };
        if is_current(Some(generation_of(&bytes)?), sub, generation) {
            Ok(Issuer::Current(bytes))
        } else {
            Ok(Issuer::Gone)
        }
    }

    /// The same from the cache, right after a grant read (`shared.rs`).
    pub fn issued_to_current_user_cached(
        &self,
        username: &str,
        sub: &str,
        generation: u64,
    ) -> Result<bool, StoreError> {
        self.issued_to(username, sub, generation, Store::cached_generation)
    }

    /// A login API subject has no local user: its grants live until unlinked (nothing is read).
    fn issued_to(
        &self,
        username: &str,
        sub: &str,
        generation: u64,
        current: fn(&Store, &str) -> Result<Option<Generation>, StoreError>,
    ) -> Result<bool, StoreError> {
        if needs_no_user(generation) {
            return Ok(true);
        }
        Ok(is_current(current(self, username)?, sub, generation))
    }

    fn generation_cache(&self) -> std::sync::MutexGuard<'_, GenerationCache> {
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops a user's cached generation, after a change to the user has been written.
    fn forget_generation(&self, name: &str) {
        let mut cache = self.generation_cache();
        cache.epoch += 1;
        cache.users.remove(name);
    }

    /// Empties the generation cache (after a restore wrote the users underneath).
    pub(super) fn forget_generations(&self) {
        let mut cache = self.generation_cache();
        cache.epoch += 1;
        cache.users.clear();
    }

    /// Removes a user: every code, grant and token they had dies with the record (lookups find
    /// no user); their grants are deleted too. Returns false if there was no such user.
    pub fn remove_user(&self, name: &Username) -> Result<bool, StoreError> {
        let Some(user) = self.user(name)? else {
            return Ok(false);
        };
        {
            let _writing = self.writing();
            self.users.remove(name.as_str())?;
            self.forget_generation(name.as_str());
        }
        self.revoke_user_grants(&user.sub, &format!("user {name} was removed"))?;
        self.drop_password_links(name.as_str())?;
        self.drop_events(&user.sub)?;
        Ok(true)
    }

    /// Replaces a user's password hash and revokes everything the old password issued (a
    /// changed password must unlink devices that an attacker who knew the old one may have
    /// linked, and void codes not yet redeemed).
    pub fn set_password(&self, name: &Username, password_hash: String) -> Result<bool, StoreError> {
        let cause = format!("user {name}'s password was changed");
        Ok(self
            .change_user(name, &cause, |user| user.password_hash = password_hash)?
            .is_some())
    }

    /// Revokes everything the user has issued (codes, grants, tokens) and deletes their grants.
    /// Returns how many grants were deleted, `None` if there is no such user.
    pub fn unlink_user(&self, name: &Username) -> Result<Option<usize>, StoreError> {
        self.change_user(
            name,
            &format!("user {name} was unlinked (--unlink-user)"),
            |_| {},
        )
    }

    /// Applies `change` to the user as one of the store's read-modify-write operations (two
    /// concurrent changes of one user see each other) and stores it if `change` says so (its
    /// first answer); the generation stays. Returns `change`'s second answer, `None` if there is
    /// no such user. For state that does not void what the user issued (two-factor sign-in).
    pub fn update_user<T>(
        &self,
        name: &Username,
        change: impl FnOnce(&mut User) -> (bool, T),
    ) -> Result<Option<T>, StoreError> {
        let _exclusive = self.exclusive()?;
        let _writing = self.writing();
        let Some(mut user) = self.user(name)? else {
            return Ok(None);
        };
        let (write, answer) = change(&mut user);
        if write {
            self.users.insert(name.as_str(), encode(&user))?;
        }
        Ok(Some(answer))
    }

    /// Applies `change` to the user and moves them to a new generation, as one step among the
    /// store's read-modify-write operations (a code redeemed at the same moment sees either the
    /// old user and is then revoked with its grant, or the new one and is refused): everything
    /// issued before dies, its grants revoked with `cause`. Returns how many grants were
    /// revoked, `None` if there is no such user.
    fn change_user(
        &self,
        name: &Username,
        cause: &str,
        change: impl FnOnce(&mut User),
    ) -> Result<Option<usize>, StoreError> {
        let user = {
            let _exclusive = self.exclusive()?;
            let _writing = self.writing();
            let Some(mut user) = self.user(name)? else {
                return Ok(None);
            };
            change(&mut user);
            user.generation = user.generation.wrapping_add(1);
            self.users.insert(name.as_str(), encode(&user))?;
            self.forget_generation(name.as_str());
            user
        };
        let revoked = self.revoke_user_grants(&user.sub, cause)?;
        // A password set another way supersedes an outstanding reset link.
        self.drop_password_links(name.as_str())?;
        Ok(Some(revoked))
    }
}

/// `Store::issuer_row`'s answer.
pub(super) enum Issuer {
    /// Issued under a login API subject or to a service: no local user to be current.
    NoUser,
    /// The user, current: the row's bytes as read.
    Current(Vec<u8>),
    /// Removed, or changed password or was unlinked since (another sub or generation).
    Gone,
}

/// What was issued under a login API subject or to a service needs no local user.
fn needs_no_user(generation: u64) -> bool {
    generation == LOGIN_API_GENERATION || generation == SERVICE_GENERATION
}

/// Whether `current` (the user as stored now) is the `sub` and `generation` something was
/// issued under.
fn is_current(current: Option<Generation>, sub: &str, generation: u64) -> bool {
    current.is_some_and(|g| g.sub == sub && g.generation == generation)
}

/// A stored user's subject and generation.
fn generation_of(bytes: &[u8]) -> Result<Generation, StoreError> {
    let user: User = decode(bytes)?;
    Ok(Generation {
        sub: user.sub,
        generation: user.generation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_follows_every_change_of_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let name = Username::parse("alice").unwrap();
        assert_eq!(store.user_generation("alice").unwrap(), None);
        let user = store.add_user(&name, "h1".into()).unwrap();
        let first = store.user_generation("alice").unwrap().unwrap();
        assert_eq!(
            (first.sub.as_str(), first.generation),
            (user.sub.as_str(), user.generation)
        );
        assert!(store
            .issued_to_current_user("alice", &user.sub, user.generation)
            .unwrap());
        store.set_password(&name, "h2".into()).unwrap();
        let second = store.user_generation("alice").unwrap().unwrap();
        assert_eq!(second.sub, first.sub, "sub stays");
        assert_ne!(second.generation, first.generation);
        assert!(!store
            .issued_to_current_user("alice", &user.sub, user.generation)
            .unwrap());
        assert_eq!(store.unlink_user(&name).unwrap(), Some(0));
        let third = store.user_generation("alice").unwrap().unwrap();
        assert_ne!(third.generation, second.generation);
        assert!(store.remove_user(&name).unwrap());
        assert_eq!(store.user_generation("alice").unwrap(), None);
        store.add_user(&name, "h3".into()).unwrap();
        let again = store.user_generation("alice").unwrap().unwrap();
        assert_ne!(again.sub, first.sub);
        // What the cache says is what a fresh store reads.
        drop(store);
        let store = crate::store::fixtures::reopen(dir.path());
        assert_eq!(store.user_generation("alice").unwrap(), Some(again));
    }

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("bob@example.com").is_ok());
        assert!(Username::parse("").is_err());
        assert!(Username::parse("-rf").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse(&"x".repeat(65)).is_err());
    }
}
