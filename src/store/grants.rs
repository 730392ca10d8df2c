//! Grants and tokens. A grant is one account link: a user allowed a client. Its access and
//! refresh tokens point at it, so revoking the grant (deleting it) kills every token at once, and
//! a token whose grant is gone is dead on the next read.

use super::record::{decode, encode};
use super::{expired, from_hex, to_hex, Store, StoreError};
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

/// What a refresh did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// New tokens stored.
    Issued,
    /// The refresh token is unknown, expired or revoked.
    Dead,
    /// A rotated-out token was presented after its successor was used: the grant (the whole
    /// token family) has been revoked (RFC 9700 §4.14.2).
    Reused,
}

/// The tokens a refresh stores: a new access token and, with rotation, a new refresh token.
pub struct Replacement {
    pub access: ([u8; 32], TokenRecord),
    pub refresh: Option<([u8; 32], TokenRecord)>,
}

impl Store {
    /// A live token with its grant; `None` if unknown, expired or revoked.
    pub fn token(
        &self,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<(TokenRecord, Grant)>, StoreError> {
        let Some(bytes) = self.tokens.get(key)? else {
            return Ok(None);
        };
        let token: TokenRecord = decode(&bytes)?;
        if expired(token.expires_at, now) {
            return Ok(None);
        }
        let Some(grant) = self.grant(&token.grant_id)? else {
            return Ok(None);
        };
        if expired(grant.expires_at, now) {
            return Ok(None);
        }
        Ok(Some((token, grant)))
    }

    /// Removes one token (RFC 7009 revocation of an access token).
    pub fn remove_token(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tokens.remove(key)?;
        Ok(())
    }

    pub fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        match self.grants.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Exchanges the refresh token `key`. The token and its grant are read once, under the
    /// store's lock for read-modify-write operations (see `Store::exclusive`), and handed to
    /// `replace`, which checks the request against them (client, scope) and says what to store,
    /// or refuses with its own error. Racing refreshes of one token are serialised, so the family
    /// stays consistent: every child is recorded.
    ///
    /// Rotation follows the contract: the old token stays valid until one of its children is
    /// first used; that use retires the parent and the unused siblings (responses that were lost
    /// or duplicated); presenting a retired token revokes the grant.
    pub fn refresh<E: From<StoreError>>(
        &self,
        key: &[u8; 32],
        now: u64,
        replace: impl FnOnce(&TokenRecord, &Grant) -> Result<Replacement, E>,
    ) -> Result<Refreshed, E> {
        let _exclusive = self.exclusive();
        let _writing = self.writing();
        let Some((token, grant)) = self.token(key, now)? else {
            return Ok(Refreshed::Dead);
        };
        if token.kind != TokenKind::Refresh {
            return Ok(Refreshed::Dead);
        }
        let replacement = replace(&token, &grant)?;
        Ok(self.replace_token(key, token, replacement)?)
    }

    /// The writes of `refresh`, once the request has been checked.
    fn replace_token(
        &self,
        key: &[u8; 32],
        mut token: TokenRecord,
        Replacement { access, refresh }: Replacement,
    ) -> Result<Refreshed, StoreError> {
        if token.retired {
            self.grants.remove(token.grant_id.as_bytes())?;
            return Ok(Refreshed::Reused);
        }
        self.tokens.insert(&access.0[..], encode(&access.1))?;
        if let Some((child_key, mut child)) = refresh {
            child.parent = Some(to_hex(key));
            token.children.push(to_hex(&child_key));
            self.tokens.insert(&child_key[..], encode(&child))?;
            self.tokens.insert(&key[..], encode(&token))?;
        }
        // First use of a rotated token: its parent and unused siblings are retired.
        if let Some(parent_hex) = &token.parent {
            self.retire_family(parent_hex, &to_hex(key))?;
        }
        Ok(Refreshed::Issued)
    }

    /// Retires a rotated-out refresh token and its children other than `used` (hex keys).
    fn retire_family(&self, parent_hex: &str, used: &str) -> Result<(), StoreError> {
        let parent_key = from_hex(parent_hex)?;
        let Some(parent_bytes) = self.tokens.get(&parent_key)? else {
            return Ok(());
        };
        let mut parent: TokenRecord = decode(&parent_bytes)?;
        if parent.retired {
            return Ok(());
        }
        for sibling_hex in parent.children.iter().filter(|c| *c != used) {
            let sibling_key = from_hex(sibling_hex)?;
            if let Some(sibling_bytes) = self.tokens.get(&sibling_key)? {
                let mut sibling: TokenRecord = decode(&sibling_bytes)?;
                sibling.retired = true;
                self.tokens.insert(sibling_key, encode(&sibling))?;
            }
        }
        parent.retired = true;
        self.tokens.insert(parent_key, encode(&parent))?;
        Ok(())
    }

    /// Revokes a grant and so every token issued under it. The tokens themselves are removed by
    /// the sweeper; until then `token()` refuses them because their grant is gone.
    pub fn revoke_grant(&self, id: &str) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.grants.remove(id.as_bytes())?;
        Ok(())
    }

    /// The user's live grants.
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

    /// Revokes every grant of a user (unlinks them everywhere). Returns how many.
    pub fn revoke_user_grants(&self, sub: &str) -> Result<usize, StoreError> {
        let grants = self.user_grants(sub)?;
        for grant in &grants {
            self.revoke_grant(&grant.id)?;
        }
        Ok(grants.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret;
    use crate::store::fixtures;

    /// A link made at 100 whose refresh token lives until `refresh_expires_at` (0: forever), with
    /// an access token that lives 60 s; returns the keys of (access, refresh).
    fn link(store: &Store, refresh_expires_at: u64) -> ([u8; 32], [u8; 32]) {
        let grant = Grant {
            expires_at: refresh_expires_at,
            ..fixtures::grant("g")
        };
        let (access, refresh) = (secret::sha256(b"access"), secret::sha256(b"refresh"));
        let code = secret::sha256(b"code");
        store.put_code(&code, &fixtures::code(200)).unwrap();
        let tokens = [
            (access, TokenRecord::access(&grant, "profile", 100, 60)),
            (refresh, TokenRecord::refresh(&grant, "profile", 100)),
        ];
        store.redeem_code(&code, 100, &grant, &tokens).unwrap();
        (access, refresh)
    }

    /// A refresh at `now` that asks for a new access token.
    fn refresh_at(store: &Store, key: &[u8; 32], now: u64) -> Refreshed {
        store
            .refresh(key, now, |_, grant| {
                Ok::<_, StoreError>(Replacement {
                    access: (
                        secret::sha256(&now.to_be_bytes()),
                        TokenRecord::access(grant, "profile", now, 60),
                    ),
                    refresh: None,
                })
            })
            .unwrap()
    }

    #[test]
    fn an_expired_access_token_is_refused_but_its_refresh_token_still_works() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let (access, refresh) = link(&store, 0);
        assert!(
            store.token(&access, 159).unwrap().is_some(),
            "live until 160"
        );
        assert!(store.token(&access, 160).unwrap().is_none(), "dead at 160");
        // Years later the refresh token (no refresh_ttl_secs) still refreshes.
        let later = 100 + 10 * 366 * 86400;
        assert!(store.token(&refresh, later).unwrap().is_some());
        assert_eq!(refresh_at(&store, &refresh, later), Refreshed::Issued);
        let new_access = secret::sha256(&later.to_be_bytes());
        assert!(store.token(&new_access, later + 59).unwrap().is_some());
        assert!(store.token(&new_access, later + 60).unwrap().is_none());
    }

    #[test]
    fn a_refresh_token_dies_with_its_grant_at_refresh_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let (access, refresh) = link(&store, 1000);
        assert_eq!(refresh_at(&store, &refresh, 999), Refreshed::Issued);
        assert_eq!(refresh_at(&store, &refresh, 1000), Refreshed::Dead);
        assert!(store.token(&refresh, 1000).unwrap().is_none());
        // An access token never outlives its grant either.
        assert!(store.token(&access, 120).unwrap().is_some());
        let issued_at_999 = secret::sha256(&999u64.to_be_bytes());
        assert!(store.token(&issued_at_999, 1000).unwrap().is_none());
    }
}
