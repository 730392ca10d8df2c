//! Users: a stable random `sub`, a username (the key) and an argon2id PHC password hash.

use super::{decode, encode, now, Store, StoreError};
use crate::secret;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Stable identifier given to clients; never changes, not even with the password.
    pub sub: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: u64,
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
        };
        let _writing = self.writing();
        let swapped = self
            .users
            .compare_and_swap(name.as_str(), None as Option<&[u8]>, Some(encode(&user)))
            .map_err(|e| AddUserError::Store(e.into()))?;
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

    /// Removes a user and revokes every grant they gave. Returns false if there was no such user.
    pub fn remove_user(&self, name: &Username) -> Result<bool, StoreError> {
        let Some(user) = self.user(name)? else {
            return Ok(false);
        };
        self.revoke_user_grants(&user.sub)?;
        self.drop_password_links(name.as_str())?;
        self.drop_events(&user.sub)?;
        let _writing = self.writing();
        self.users.remove(name.as_str())?;
        Ok(true)
    }

    /// Replaces a user's password hash and revokes their grants (a changed password must unlink
    /// devices that an attacker who knew the old one may have linked).
    pub fn set_password(&self, name: &Username, password_hash: String) -> Result<bool, StoreError> {
        let Some(mut user) = self.user(name)? else {
            return Ok(false);
        };
        user.password_hash = password_hash;
        {
            let _writing = self.writing();
            self.users.insert(name.as_str(), encode(&user))?;
        }
        self.revoke_user_grants(&user.sub)?;
        // A password set another way supersedes an outstanding reset link.
        self.drop_password_links(name.as_str())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
