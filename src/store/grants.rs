//! Grants, as stored. A grant is one account link: a user allowed a client. Its access and
//! refresh tokens point at it, so revoking the grant (deleting it), or its user moving to a new
//! generation (`users.rs`), kills every token at once: a token whose grant is gone is dead on the
//! next read.
//!
//! The token rules (format, checks, rotation) are in `oauth/tokens/`; this file keeps what they
//! read and write: grants, the access tokens revoked one by one (the deny list), and the tokens
//! stored by earlier releases (the `tokens` tree, looked up by their hash until they expire).

use super::record::{decode, encode};
use super::shared::Prefetched;
use super::{expired, Store, StoreError};
use crate::base::secret;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub sub: String,
    pub username: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: u64,
    /// When the refresh token dies (0: never); the grant is swept after that.
    pub expires_at: u64,
    /// The user's generation when the grant was made; another one now means revoked.
    #[serde(default)]
    pub generation: u64,
    /// The key its refresh tokens are MAC'd under (`None`: a grant of an earlier release, whose
    /// refresh token is stored; it gets one when it first rotates).
    #[serde(skip)]
    pub secret: Option<[u8; 32]>,
    /// Where its refresh-token rotation stands.
    #[serde(skip)]
    pub rotation: Rotation,
    /// The RFC 8707 resource its tokens are for (their audience), if the client named one.
    #[serde(default)]
    pub resource: Option<String>,
}

/// The refresh token in use: its sequence number, and its nonce once a rotated token has been
/// used (`None`: the first refresh token, sequence 0, of which there is one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    pub seq: u64,
    pub used: Option<[u8; 16]>,
}

impl Grant {
    /// A new grant with a fresh refresh-token secret.
    pub fn new(
        sub: &str,
        username: &str,
        client_id: &str,
        scope: &str,
        generation: u64,
        now: u64,
        expires_at: u64,
    ) -> Grant {
        Grant {
            id: secret::new_id(),
            sub: sub.into(),
            username: username.into(),
            client_id: client_id.into(),
            scope: scope.into(),
            created_at: now,
            expires_at,
            generation,
            secret: Some(secret::random_bytes()),
            rotation: Rotation::default(),
            resource: None,
        }
    }

    /// Whether this is a client's own grant for `client_credentials` tokens (no user).
    pub fn is_service(&self) -> bool {
        self.generation == super::SERVICE_GENERATION
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub kind: TokenKind,
    pub grant_id: String,
    pub scope: String,
    pub issued_at: u64,
    /// 0: never.
    pub expires_at: u64,
    /// Rotation only: the refresh token this one replaced (hex of its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Rotation only: the refresh tokens issued in exchange for this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// Rotation only: a successor of this token has been used, so this one must not be again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
}

impl TokenRecord {
    /// An access token of the grant that lives `ttl_secs`.
    pub fn access(grant: &Grant, scope: &str, now: u64, ttl_secs: u64) -> Self {
        Self::new(TokenKind::Access, grant, scope, now, now + ttl_secs)
    }

    /// A refresh token of the grant; it lives as long as the grant.
    pub fn refresh(grant: &Grant, scope: &str, now: u64) -> Self {
        Self::new(TokenKind::Refresh, grant, scope, now, grant.expires_at)
    }

    fn new(kind: TokenKind, grant: &Grant, scope: &str, now: u64, expires_at: u64) -> Self {
        TokenRecord {
            kind,
            grant_id: grant.id.clone(),
            scope: scope.to_string(),
            issued_at: now,
            expires_at,
            parent: None,
            children: Vec::new(),
            retired: false,
        }
    }
}

/// What `Store::update_grant` does with the grant.
#[derive(Debug)]
pub enum GrantUpdate {
    Keep,
    Put(Box<Grant>),
    Delete,
}

impl Store {
    pub fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        match self.grants.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The grant a token names, or `None` if there is none or `token_id` (an access token's id)
    /// is in the deny list. On PostgreSQL it is one query, which also brings this node's caches
    /// up to date (`shared.rs`), so a check of the user's generation after it reads nothing
    /// more; a read done ahead (`prefetch_grant`) is used instead of a query.
    pub fn grant_for_token(
        &self,
        id: &str,
        token_id: Option<&[u8; 16]>,
        ahead: Option<&Prefetched>,
    ) -> Result<Option<Grant>, StoreError> {
        match self.read_grant(id, token_id, ahead)? {
            (Some(bytes), false) => Ok(Some(decode(&bytes)?)),
            _ => Ok(None),
        }
    }

    /// Reads the grant and stores what `f` makes of it, in one atomic step: under its row lock
    /// on PostgreSQL (other nodes' updates of this grant wait), a compare-and-swap in sled (`f`
    /// may then run more than once; what it returns last counts). Other grants do not wait.
    /// Returns `f`'s answer; a grant that does not decode is kept and is an error.
    pub fn update_grant<T>(
        &self,
        id: &str,
        mut f: impl FnMut(Option<Grant>) -> (GrantUpdate, T),
    ) -> Result<T, StoreError> {
        let _writing = self.writing();
        let mut answer: Option<Result<T, StoreError>> = None;
        self.grants.fetch_and_update(id.as_bytes(), |current| {
            let grant = match current.map(decode::<Grant>).transpose() {
                Ok(grant) => grant,
                Err(e) => {
                    answer = Some(Err(e));
                    return current.map(<[u8]>::to_vec);
                }
            };
            let (update, value) = f(grant);
            answer = Some(Ok(value));
            match update {
                GrantUpdate::Keep => current.map(<[u8]>::to_vec),
                GrantUpdate::Put(grant) => Some(encode(grant.as_ref())),
                GrantUpdate::Delete => None,
            }
        })?;
        answer.unwrap_or_else(|| Err(StoreError::Io("the grant update did not run".into())))
    }

    /// The grant `id` as a check read it ahead on PostgreSQL (`prefetch_grant`), for a write
    /// decided on it and stored with `swap_grant`; `None` when `ahead` is a read of another grant or found none.
    pub fn grant_read_ahead(
        &self,
        ahead: &Prefetched,
        id: &str,
    ) -> Result<Option<Grant>, StoreError> {
        match ahead.grant_bytes(id) {
            Some(bytes) => Ok(Some(decode(bytes)?)),
            None => Ok(None),
        }
    }

    /// Replaces the grant read ahead (`grant_read_ahead`) with `new`, if it is still stored as
    /// read: on PostgreSQL one conditional `UPDATE` awaited here (one commit, no row lock, no
    /// thread waiting). `false` when it changed meanwhile (or there is no read ahead): decide
    /// again under the lock (`update_grant`). Not on sled, whose `update_grant` is the same
    /// compare-and-swap in memory.
    pub async fn swap_grant(&self, ahead: &Prefetched, new: &Grant) -> Result<bool, StoreError> {
        let (super::tree::Tree::Postgres(table), Some(old)) =
            (&self.grants, ahead.grant_bytes(&new.id))
        else {
            return Ok(false);
        };
        // Boxed, as the prefetch: a large future on the refresh path.
        Box::pin(table.swap_async(new.id.as_bytes().to_vec(), old.to_vec(), encode(new))).await
    }

    /// A token stored by an earlier release, by the SHA-256 of its value.
    pub fn stored_token(&self, key: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        match self.tokens.get(key)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Removes a token stored by an earlier release (RFC 7009 for one of them).
    pub fn remove_stored_token(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tokens.remove(key)?;
        Ok(())
    }

    /// Denies the access token `token_id` until it expires at `expires_at` (RFC 7009); the
    /// entry is swept after that.
    pub fn deny_access(&self, token_id: [u8; 16], expires_at: u64) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.denied.insert(token_id, expires_at.to_le_bytes())?;
        self.deny_cache().insert(token_id, expires_at);
        Ok(())
    }

    /// Whether the access token `token_id` is denied, as the database says now (for the
    /// operator's log; a check reads it with its grant).
    pub fn is_denied(&self, token_id: &[u8; 16]) -> Result<bool, StoreError> {
        Ok(self.deny_cache().contains_key(token_id) || self.denied.get(token_id)?.is_some())
    }

    pub(super) fn deny_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 16], u64>> {
        self.deny_list.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn load_deny_list(
        tree: &super::tree::Tree,
    ) -> Result<std::collections::HashMap<[u8; 16], u64>, StoreError> {
        let mut list = std::collections::HashMap::new();
        for entry in tree.iter() {
            let (key, value) = entry?;
            if let (Ok(id), Ok(exp)) = (
                <[u8; 16]>::try_from(&key[..]),
                <[u8; 8]>::try_from(&value[..]),
            ) {
                list.insert(id, u64::from_le_bytes(exp));
            }
        }
        Ok(list)
    }

    /// Removes deny entries of tokens that have expired anyway. Returns how many.
    pub(super) fn sweep_denied(&self, now: u64) -> Result<usize, StoreError> {
        let list = if self.shared() {
            Store::load_deny_list(&self.denied)?
        } else {
            self.deny_cache().clone()
        };
        let dead: Vec<[u8; 16]> = list
            .iter()
            .filter(|(_, exp)| expired(**exp, now))
            .map(|(id, _)| *id)
            .collect();
        for id in &dead {
            let _writing = self.writing();
            self.denied.remove(id)?;
            self.deny_cache().remove(id);
        }
        Ok(dead.len())
    }

    /// Stores a token as earlier releases did (for tests and benchmarks of the upgrade path).
    #[doc(hidden)]
    pub fn put_stored_token(&self, key: &[u8; 32], token: &TokenRecord) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tokens.insert(key, encode(token))?;
        Ok(())
    }

    /// Deny entries held (for tests).
    pub fn denied_count(&self) -> usize {
        if self.shared() {
            return self.denied.len().unwrap_or(0);
        }
        self.deny_cache().len()
    }

    /// Revokes a grant and so every token issued under it. The tokens themselves are removed by
    /// the sweeper; until then `token()` refuses them because their grant is gone.
    /// Deletes the grant (every token of it dies) and notes why, for the operator's log when a
    /// token of it comes back (`diagnose.rs`; kept `REVOKED_NOTE_SECS`).
    pub fn revoke_grant(&self, id: &str, cause: &str) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.grants.remove(id.as_bytes())?;
        self.note_revoked(id, cause, super::now())
    }

    /// The user's grants.
    pub fn user_grants(&self, sub: &str) -> Result<Vec<Grant>, StoreError> {
        let mut found = Vec::new();
        for entry in self.grants.iter() {
            let grant: Grant = decode(&entry?.1)?;
            if grant.sub == sub {
                found.push(grant);
            }
        }
        Ok(found)
    }

    /// Every live grant (its user exists in the grant's generation), in one pass over the
    /// grants: for listing users without a pass per user.
    pub fn live_grants(&self, now: u64) -> Result<Vec<Grant>, StoreError> {
        let mut found = Vec::new();
        for entry in self.grants.iter() {
            let grant: Grant = decode(&entry?.1)?;
            if !expired(grant.expires_at, now)
                && !grant.is_service()
                && self.issued_to_current_user(&grant.username, &grant.sub, grant.generation)?
            {
                found.push(grant);
            }
        }
        Ok(found)
    }

    /// Revokes every grant of a user (unlinks them everywhere). Returns how many.
    pub fn revoke_user_grants(&self, sub: &str, cause: &str) -> Result<usize, StoreError> {
        let grants = self.user_grants(sub)?;
        for grant in &grants {
            self.revoke_grant(&grant.id, cause)?;
        }
        Ok(grants.len())
    }

    /// How many bytes the grant's record takes (for tests: it must not grow with rotations).
    #[cfg(test)]
    pub(crate) fn grant_record_len(&self, id: &str) -> usize {
        self.grants
            .get(id.as_bytes())
            .ok()
            .flatten()
            .map_or(0, |v| v.len())
    }
}
