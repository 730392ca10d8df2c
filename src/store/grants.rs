//! Grants and tokens. A grant is one account link: a user allowed a client. Its access and
//! refresh tokens point at it, so revoking the grant (deleting it), or its user moving to a new
//! generation (`users.rs`), kills every token at once: a token whose grant is gone is dead on the
//! next read.
//!
//! Tokens are self-verifying (`sealed.rs`). A refresh writes nothing, except the first use of a
//! rotated refresh token, which writes its grant once (O(1), whatever the history): the grant
//! records the rotation sequence number and nonce of the refresh token in use; an older one, or a
//! sibling of the one in use, is a reuse and revokes the grant. Tokens stored by earlier releases
//! (the `tokens` tree) are still looked up by their hash until they expire.

use super::record::{decode, encode};
use super::sealed::{self, AccessClaims, Parsed, RefreshClaims};
use super::shared::Prefetched;
use super::{expired, Store, StoreError};
use crate::secret::{self, HmacKey, Secret};
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

/// What a refresh did.
#[derive(Debug)]
pub enum Refreshed {
    /// New tokens; `wrote`: something was stored, flush before answering.
    Issued {
        access: Secret,
        refresh: Option<Secret>,
        wrote: bool,
    },
    /// The refresh token is unknown, expired or revoked.
    Dead,
    /// A rotated-out token was presented after its successor was used: the grant (the whole
    /// token family) has been revoked (RFC 9700 §4.14.2).
    Reused,
}

/// What a checked refresh request gets.
pub struct Issue {
    /// Scope of the new access token.
    pub scope: String,
    pub access_secs: u64,
    /// Whether to hand out a new refresh token (rotation).
    pub rotate: bool,
}

/// A token found and checked, with where a sealed refresh token stands.
struct Found {
    token: TokenRecord,
    grant: Grant,
    /// A sealed refresh token: its sequence number and nonce.
    sealed: Option<(u64, [u8; 16])>,
}

/// Where the sealed refresh token `claims` stands in its grant's family as the grant is now;
/// `None` if it was never issued under this grant (a bad MAC, a sequence number ahead of the
/// family, no refresh secret).
fn sealed_refresh(claims: RefreshClaims, signed: &sealed::Signed, grant: Grant) -> Option<Found> {
    let key = grant.secret.map(|s| HmacKey::new(&s))?;
    if !signed.verify(&key) {
        return None;
    }
    let at = &grant.rotation;
    let retired = match claims.seq {
        s if s < at.seq => true,
        s if s == at.seq => at
            .used
            .is_some_and(|used| !secret::ct_eq(&used, &claims.nonce)),
        s if s == at.seq.saturating_add(1) => false,
        // Only the token in use has children: this was never issued.
        _ => return None,
    };
    let token = TokenRecord {
        kind: TokenKind::Refresh,
        grant_id: claims.grant_id,
        scope: grant.scope.clone(),
        issued_at: claims.issued_at,
        expires_at: grant.expires_at,
        parent: None,
        children: Vec::new(),
        retired,
    };
    Some(Found {
        token,
        grant,
        sealed: Some((claims.seq, claims.nonce)),
    })
}

/// What the locked part of a refresh decided.
enum Step {
    Issue {
        grant: Box<Grant>,
        refresh: Option<Secret>,
        wrote: bool,
        scope: String,
        access_secs: u64,
    },
    Dead,
    Reused,
}

impl Store {
    /// A live token with its grant; `None` if unknown, forged, expired or revoked (grant gone,
    /// user gone or moved to a new generation). A sealed token costs a MAC and one read of its
    /// grant (the user's generation is cached); a token of an earlier release one read more.
    pub fn token(
        &self,
        presented: &str,
        now: u64,
    ) -> Result<Option<(TokenRecord, Grant)>, StoreError> {
        self.token_prefetched(presented, now, None)
    }

    /// The same, with the grant read done ahead (`Store::prefetch`).
    pub fn token_prefetched(
        &self,
        presented: &str,
        now: u64,
        ahead: Option<&Prefetched>,
    ) -> Result<Option<(TokenRecord, Grant)>, StoreError> {
        Ok(self
            .find(presented, now, ahead)?
            .map(|f| (f.token, f.grant)))
    }

    fn find(
        &self,
        presented: &str,
        now: u64,
        ahead: Option<&Prefetched>,
    ) -> Result<Option<Found>, StoreError> {
        match sealed::parse(presented) {
            Parsed::Access(claims, signed) => {
                let verified = self.verifies_with(claims.key_id, now, |key| signed.verify(key))?;
                if !verified || expired(claims.expires_at, now) {
                    return Ok(None);
                }
                let Some(grant) =
                    self.live_grant(&claims.grant_id, Some(&claims.token_id), now, ahead)?
                else {
                    return Ok(None);
                };
                let token = TokenRecord {
                    kind: TokenKind::Access,
                    grant_id: claims.grant_id,
                    scope: claims.scope.unwrap_or_else(|| grant.scope.clone()),
                    issued_at: claims.issued_at,
                    expires_at: claims.expires_at,
                    parent: None,
                    children: Vec::new(),
                    retired: false,
                };
                Ok(Some(Found {
                    token,
                    grant,
                    sealed: None,
                }))
            }
            Parsed::Refresh(claims, signed) => {
                let Some(grant) = self.live_grant(&claims.grant_id, None, now, ahead)? else {
                    return Ok(None);
                };
                Ok(sealed_refresh(claims, &signed, grant))
            }
            Parsed::Stored => self.stored_token(&secret::sha256(presented.as_bytes()), now),
        }
    }

    /// A token stored by an earlier release, looked up by its hash.
    fn stored_token(&self, key: &[u8; 32], now: u64) -> Result<Option<Found>, StoreError> {
        let Some(bytes) = self.tokens.get(key)? else {
            return Ok(None);
        };
        let mut token: TokenRecord = decode(&bytes)?;
        if expired(token.expires_at, now) {
            return Ok(None);
        }
        let Some(grant) = self.live_grant(&token.grant_id, None, now, None)? else {
            return Ok(None);
        };
        // Once a sealed successor of this family is in use, a stored refresh token is an
        // ancestor of it.
        if token.kind == TokenKind::Refresh && grant.rotation.seq > 0 {
            token.retired = true;
        }
        Ok(Some(Found {
            token,
            grant,
            sealed: None,
        }))
    }

    /// The grant, if it exists, has not expired, and its user still exists in the generation
    /// it was made under.
    /// With `token_id`, also `None` if that access token was revoked on its own (RFC 7009).
    /// On PostgreSQL it is one query, which also brings this node's caches up to date
    /// (`shared.rs`), so the generation check below reads nothing more.
    fn live_grant(
        &self,
        id: &str,
        token_id: Option<&[u8; 16]>,
        now: u64,
        ahead: Option<&Prefetched>,
    ) -> Result<Option<Grant>, StoreError> {
        let (Some(bytes), false) = self.read_grant(id, token_id, ahead)? else {
            return Ok(None);
        };
        let grant: Grant = decode(&bytes)?;
        if expired(grant.expires_at, now)
            || !self.issued_to_current_user_cached(&grant.username, &grant.sub, grant.generation)?
        {
            return Ok(None);
        }
        Ok(Some(grant))
    }

    /// A new access token for the grant, signed with the current server key. Writes nothing
    /// (unless no key exists yet: then one is made and flushed).
    pub fn issue_access(
        &self,
        grant: &Grant,
        scope: &str,
        now: u64,
        ttl_secs: u64,
    ) -> Result<Secret, StoreError> {
        if self.key_ring().current().is_none() {
            self.ensure_token_key(now)?;
            self.flush_blocking()?;
        }
        let ring = self.key_ring();
        let (key_id, key) = ring
            .current()
            .ok_or_else(|| StoreError::Io("no token key".into()))?;
        let claims = AccessClaims {
            key_id,
            issued_at: now,
            expires_at: now + ttl_secs,
            token_id: secret::random_bytes(),
            grant_id: grant.id.clone(),
            scope: (scope != grant.scope).then(|| scope.to_string()),
        };
        Ok(Secret::new(sealed::seal_access(&claims, key)))
    }

    /// A refresh token of the grant with rotation sequence number `seq` (0 for the first).
    pub fn issue_refresh(grant: &Grant, seq: u64, now: u64) -> Result<Secret, StoreError> {
        let key = grant
            .secret
            .ok_or_else(|| StoreError::Corrupt("the grant has no refresh-token secret".into()))?;
        let claims = RefreshClaims {
            seq,
            issued_at: now,
            nonce: secret::random_bytes(),
            grant_id: grant.id.clone(),
        };
        Ok(Secret::new(sealed::seal_refresh(
            &claims,
            &HmacKey::new(&key),
        )))
    }

    pub fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        match self.grants.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Exchanges the refresh token `presented`. The token and its grant are read and handed to
    /// `check`, which checks the request against them (client, scope) and says what to issue,
    /// or refuses with its own error. If the refresh must write (rotation, reuse), they are read
    /// and checked again under the store's lock for read-modify-write operations (see
    /// `Store::exclusive`), so racing refreshes of one family are serialised.
    ///
    /// Rotation follows the contract: the old token stays valid until one of its children is
    /// first used; that use (one write of the grant) retires the parent and the unused siblings
    /// (responses that were lost or duplicated); presenting a retired token revokes the grant.
    /// Without rotation, and for every refresh but a child's first, nothing is written.
    pub fn refresh<E: From<StoreError>>(
        &self,
        presented: &str,
        now: u64,
        check: impl FnMut(&TokenRecord, &Grant) -> Result<Issue, E>,
    ) -> Result<Refreshed, E> {
        self.refresh_prefetched(presented, now, None, check)
    }

    /// The same, with the first read of the grant done ahead (`Store::prefetch`).
    pub fn refresh_prefetched<E: From<StoreError>>(
        &self,
        presented: &str,
        now: u64,
        ahead: Option<&Prefetched>,
        mut check: impl FnMut(&TokenRecord, &Grant) -> Result<Issue, E>,
    ) -> Result<Refreshed, E> {
        // Before the locks: making a key takes them itself.
        self.ensure_token_key(now)?;
        // A refresh that changes nothing (no rotation, no first use, no reuse) only reads, so it
        // takes no lock: refreshes of non-rotating clients never wait for one another.
        let Some(found) = self.find(presented, now, ahead)? else {
            return Ok(Refreshed::Dead);
        };
        if found.token.kind != TokenKind::Refresh {
            return Ok(Refreshed::Dead);
        }
        let issue = check(&found.token, &found.grant)?;
        let first_use = found
            .sealed
            .is_some_and(|(seq, _)| seq == found.grant.rotation.seq.saturating_add(1));
        if !issue.rotate && !found.token.retired && !first_use {
            let access = self.issue_access(&found.grant, &issue.scope, now, issue.access_secs)?;
            return Ok(Refreshed::Issued {
                access,
                refresh: None,
                wrote: false,
            });
        }
        // Otherwise the grant is read again and written in one atomic step: under its row lock
        // on PostgreSQL (other nodes' refreshes of this family wait), a compare-and-swap in
        // sled. Racing refreshes of one family are serialised; other families do not wait.
        let _writing = self.writing();
        let mut step: Option<Result<Step, E>> = None;
        self.grants
            .fetch_and_update(found.grant.id.as_bytes(), |current| {
                let now_step = self.locked_refresh(presented, &found, current, now, &mut check);
                let write = match &now_step {
                    Ok(Step::Reused) => None,
                    Ok(Step::Issue {
                        grant, wrote: true, ..
                    }) => Some(encode(grant.as_ref())),
                    _ => current.map(<[u8]>::to_vec),
                };
                step = Some(now_step);
                write
            })
            .map_err(E::from)?;
        match step {
            None | Some(Ok(Step::Dead)) => Ok(Refreshed::Dead),
            Some(Ok(Step::Reused)) => {
                let cause = "reuse detection: a refresh token replaced by rotation came back";
                self.note_revoked(&found.grant.id, cause, now)?;
                Ok(Refreshed::Reused)
            }
            Some(Err(e)) => Err(e),
            Some(Ok(Step::Issue {
                grant,
                refresh,
                wrote,
                scope,
                access_secs,
            })) => {
                let access = self.issue_access(&grant, &scope, now, access_secs)?;
                Ok(Refreshed::Issued {
                    access,
                    refresh,
                    wrote,
                })
            }
        }
    }

    /// The locked part of a refresh: judges the presented token against its grant as stored now
    /// (`current`), checks the request again, and says what to write and issue. Reads nothing
    /// else (a lock is held): the user's generation was checked just before, and a change of
    /// the user since then kills the grant anyway.
    fn locked_refresh<E: From<StoreError>>(
        &self,
        presented: &str,
        before: &Found,
        current: Option<&[u8]>,
        now: u64,
        check: &mut impl FnMut(&TokenRecord, &Grant) -> Result<Issue, E>,
    ) -> Result<Step, E> {
        let Some(bytes) = current else {
            return Ok(Step::Dead);
        };
        let grant: Grant = decode(bytes)?;
        if expired(grant.expires_at, now) {
            return Ok(Step::Dead);
        }
        let found = match sealed::parse(presented) {
            Parsed::Refresh(claims, signed) => match sealed_refresh(claims, &signed, grant) {
                Some(found) => found,
                None => return Ok(Step::Dead),
            },
            // An earlier release's stored token: retired once a sealed successor is in use.
            _ => {
                let mut token = before.token.clone();
                token.retired |= grant.rotation.seq > 0;
                Found {
                    token,
                    grant,
                    sealed: None,
                }
            }
        };
        let Found {
            token,
            mut grant,
            sealed,
        } = found;
        // The request is checked first (client, scope): another client cannot revoke a family.
        let issue = check(&token, &grant)?;
        if token.retired {
            return Ok(Step::Reused);
        }
        let mut wrote = false;
        // First use of a rotated token: it becomes the one in use.
        if let Some((seq, nonce)) = sealed {
            if seq == grant.rotation.seq.saturating_add(1) {
                grant.rotation = Rotation {
                    seq,
                    used: Some(nonce),
                };
                wrote = true;
            }
        }
        let refresh = if issue.rotate {
            if grant.secret.is_none() {
                grant.secret = Some(secret::random_bytes());
                wrote = true;
            }
            Some(Store::issue_refresh(
                &grant,
                grant.rotation.seq.saturating_add(1),
                now,
            )?)
        } else {
            None
        };
        Ok(Step::Issue {
            grant: Box::new(grant),
            refresh,
            wrote,
            scope: issue.scope,
            access_secs: issue.access_secs,
        })
    }

    /// RFC 7009 for one access token: a sealed one is denied until it expires (a small entry,
    /// swept after that); a stored one is removed.
    pub fn revoke_access(&self, presented: &str) -> Result<(), StoreError> {
        let _writing = self.writing();
        match sealed::parse(presented) {
            Parsed::Access(claims, _) => {
                self.denied
                    .insert(claims.token_id, claims.expires_at.to_le_bytes())?;
                self.deny_cache().insert(claims.token_id, claims.expires_at);
            }
            _ => {
                self.tokens.remove(secret::sha256(presented.as_bytes()))?;
            }
        }
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link made at 100 whose refresh token lives until `refresh_expires_at` (0: forever), with
    /// an access token that lives 60 s; returns (access, refresh).
    fn link(store: &Store, refresh_expires_at: u64) -> (String, String) {
        let name = crate::store::Username::parse("u").unwrap();
        let user = store.add_user(&name, "hash".into()).unwrap();
        let grant = Grant::new(
            &user.sub,
            "u",
            "c",
            "profile",
            user.generation,
            100,
            refresh_expires_at,
        );
        let code = secret::sha256(b"code");
        store
            .put_code(
                &code,
                &crate::store::CodeRecord {
                    client_id: "c".into(),
                    redirect_uri: "https://x/cb".into(),
                    redirect_uri_given: true,
                    sub: user.sub.clone(),
                    username: "u".into(),
                    scope: "profile".into(),
                    code_challenge: None,
                    expires_at: 200,
                    redeemed_by: None,
                    generation: user.generation,
                    resource: None,
                },
            )
            .unwrap();
        store.redeem_code(&code, 100, &grant, &[]).unwrap();
        let access = store.issue_access(&grant, "profile", 100, 60).unwrap();
        let refresh = Store::issue_refresh(&grant, 0, 100).unwrap();
        (access.expose().into(), refresh.expose().into())
    }

    /// A refresh at `now` that asks for a new access token: the token, or `None` if refused.
    fn refresh_at(store: &Store, token: &str, now: u64) -> Option<String> {
        let outcome = store
            .refresh(token, now, |_, _| {
                Ok::<_, StoreError>(Issue {
                    scope: "profile".into(),
                    access_secs: 60,
                    rotate: false,
                })
            })
            .unwrap();
        match outcome {
            Refreshed::Issued { access, .. } => Some(access.expose().into()),
            _ => None,
        }
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
        let new_access = refresh_at(&store, &refresh, later).expect("refreshed");
        assert!(store.token(&new_access, later + 59).unwrap().is_some());
        assert!(store.token(&new_access, later + 60).unwrap().is_none());
    }

    #[test]
    fn a_refresh_token_dies_with_its_grant_at_refresh_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let (access, refresh) = link(&store, 1000);
        let issued_at_999 = refresh_at(&store, &refresh, 999).expect("refreshed at 999");
        assert_eq!(refresh_at(&store, &refresh, 1000), None);
        assert!(store.token(&refresh, 1000).unwrap().is_none());
        // An access token never outlives its grant either.
        assert!(store.token(&access, 120).unwrap().is_some());
        assert!(store.token(&issued_at_999, 999).unwrap().is_some());
        assert!(store.token(&issued_at_999, 1000).unwrap().is_none());
    }

    #[test]
    fn a_rotation_chain_of_any_length_keeps_one_fixed_size_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let (_, mut refresh) = link(&store, 0);
        let rotate = |token: &str| {
            store
                .refresh(token, 200, |_, _| {
                    Ok::<_, StoreError>(Issue {
                        scope: "profile".into(),
                        access_secs: 60,
                        rotate: true,
                    })
                })
                .unwrap()
        };
        let grant_id = store.token(&refresh, 200).unwrap().unwrap().1.id;
        let size = || {
            store
                .grants
                .get(grant_id.as_bytes())
                .unwrap()
                .unwrap()
                .len()
        };
        let first = refresh.clone();
        let mut initial = 0;
        for i in 0..1000 {
            let Refreshed::Issued {
                refresh: Some(next),
                ..
            } = rotate(&refresh)
            else {
                panic!("rotation refused");
            };
            refresh = next.expose().into();
            // From the first rotated token's use on, the record holds a nonce and stays that size.
            if i == 1 {
                initial = size();
            }
        }
        assert_eq!(size(), initial, "the grant record does not grow");
        // An ancestor 1000 rotations back is still recognised, and revokes the family.
        assert!(matches!(rotate(&first), Refreshed::Reused));
        assert!(matches!(rotate(&refresh), Refreshed::Dead));
    }
}
