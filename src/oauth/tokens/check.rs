//! Checking a presented token: which token it is, whether it is alive, and its grant. A sealed
//! token costs a MAC and one read of its grant (the user's generation is cached); a token of an
//! earlier release one read more. The grant has the last word: a token whose grant is gone,
//! expired, or was made for an earlier generation of its user (a changed password, an unlink)
//! is dead.

use super::rotation::{self, Position};
use super::sealed::{self, Parsed, Signed};
use crate::base::secret;
use crate::store::{expired, Grant, Prefetched, Store, StoreError, TokenKind, TokenRecord};

/// A token found and checked, with where a refresh token stands in its family.
pub(super) struct Found {
    pub token: TokenRecord,
    pub grant: Grant,
    /// A refresh token's position (`None` for an access token).
    pub position: Option<Position>,
}

/// What was done ahead of a check (`prefetch`), on PostgreSQL: the grant's read and, for an
/// access token, the check of its MAC, which the check itself then does not repeat.
pub struct Ahead {
    grant: Prefetched,
    /// The signed part of the access token whose MAC checked out.
    verified: Option<Signed>,
}

impl Ahead {
    pub(super) fn grant(&self) -> &Prefetched {
        &self.grant
    }

    /// Whether `signed` is what checked out ahead: the same bytes, so the same verdict, given a
    /// moment earlier in the same request (a key dropped in that moment holds from the next
    /// request on, as for a request that was already past its check).
    fn verified(&self, signed: &Signed) -> bool {
        self.verified.as_ref() == Some(signed)
    }
}

/// A live token with its grant; `None` if unknown, forged, expired or revoked.
pub fn token(
    store: &Store,
    presented: &str,
    now: u64,
    ahead: Option<&Ahead>,
) -> Result<Option<(TokenRecord, Grant)>, StoreError> {
    Ok(find(store, presented, now, ahead)?.map(|f| (f.token, f.grant)))
}

/// On PostgreSQL, the one query a check of `presented` needs (its grant, the change counters,
/// the deny list), awaited without holding a thread, so that the check itself then reads
/// nothing more in the usual case. `None` with sled (it answers from memory) and for what is
/// not a sealed token or fails its MAC: forged tokens cost no query.
pub async fn prefetch(
    store: &Store,
    presented: &str,
    now: u64,
) -> Result<Option<Ahead>, StoreError> {
    if !store.shared() {
        return Ok(None);
    }
    let (id, token_id, verified) = match sealed::parse(presented) {
        Parsed::Access(claims, signed) => {
            if !store.verifies_with(claims.key_id, now, |key| signed.verify(key))? {
                return Ok(None);
            }
            (claims.grant_id, Some(claims.token_id), Some(signed))
        }
        // The refresh token's MAC key is in its grant: read first, as in the check itself.
        Parsed::Refresh(claims, _) => (claims.grant_id, None, None),
        Parsed::Stored => return Ok(None),
    };
    let grant = store.prefetch_grant(id, token_id).await?;
    Ok(grant.map(|grant| Ahead { grant, verified }))
}

/// The token, if it is alive. A no from a PostgreSQL node's memory (`ahead` answered from it) is
/// asked of the database again: memory may be a moment behind another node's write (a rotation,
/// a new grant), and it is only ever trusted to say yes.
pub(super) fn find(
    store: &Store,
    presented: &str,
    now: u64,
    ahead: Option<&Ahead>,
) -> Result<Option<Found>, StoreError> {
    match find_with(store, presented, now, ahead)? {
        None if ahead.is_some_and(|a| a.grant.from_memory()) => {
            find_with(store, presented, now, None)
        }
        found => Ok(found),
    }
}

fn find_with(
    store: &Store,
    presented: &str,
    now: u64,
    ahead: Option<&Ahead>,
) -> Result<Option<Found>, StoreError> {
    let grant_ahead = ahead.map(Ahead::grant);
    match sealed::parse(presented) {
        Parsed::Access(claims, signed) => {
            let verified = ahead.is_some_and(|a| a.verified(&signed))
                || store.verifies_with(claims.key_id, now, |key| signed.verify(key))?;
            if !verified || expired(claims.expires_at, now) {
                return Ok(None);
            }
            let Some(grant) = live_grant(
                store,
                &claims.grant_id,
                Some(&claims.token_id),
                now,
                grant_ahead,
            )?
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
                position: None,
            }))
        }
        Parsed::Refresh(claims, signed) => {
            let Some(grant) = live_grant(store, &claims.grant_id, None, now, grant_ahead)? else {
                return Ok(None);
            };
            let Some(position) = rotation::position(&claims, &signed, &grant) else {
                return Ok(None);
            };
            Ok(Some(Found {
                token: sealed_refresh_record(&claims, &grant, position),
                grant,
                position: Some(position),
            }))
        }
        Parsed::Stored => stored(store, &secret::sha256(presented.as_bytes()), now),
    }
}

/// A sealed refresh token as a record: its scope and lifetime are its grant's.
pub(super) fn sealed_refresh_record(
    claims: &sealed::RefreshClaims,
    grant: &Grant,
    position: Position,
) -> TokenRecord {
    TokenRecord {
        kind: TokenKind::Refresh,
        grant_id: claims.grant_id.clone(),
        scope: grant.scope.clone(),
        issued_at: claims.issued_at,
        expires_at: grant.expires_at,
        parent: None,
        children: Vec::new(),
        retired: position.retired,
    }
}

/// A token stored by an earlier release, looked up by its hash.
fn stored(store: &Store, key: &[u8; 32], now: u64) -> Result<Option<Found>, StoreError> {
    let Some(mut token) = store.stored_token(key)? else {
        return Ok(None);
    };
    if expired(token.expires_at, now) {
        return Ok(None);
    }
    let Some(grant) = live_grant(store, &token.grant_id, None, now, None)? else {
        return Ok(None);
    };
    let position = (token.kind == TokenKind::Refresh).then(|| {
        let position = rotation::stored_position(&grant, token.retired);
        token.retired = position.retired;
        position
    });
    Ok(Some(Found {
        token,
        grant,
        position,
    }))
}

/// The grant, if it exists, has not expired, and its user still exists in the generation it
/// was made under. With `token_id`, also `None` if that access token was revoked on its own
/// (RFC 7009). On PostgreSQL the read is one query, which also brings this node's caches up to
/// date, so the generation check reads nothing more.
fn live_grant(
    store: &Store,
    id: &str,
    token_id: Option<&[u8; 16]>,
    now: u64,
    ahead: Option<&Prefetched>,
) -> Result<Option<Grant>, StoreError> {
    let Some(grant) = store.grant_for_token(id, token_id, ahead)? else {
        return Ok(None);
    };
    if expired(grant.expires_at, now)
        || !store.issued_to_current_user_cached(&grant.username, &grant.sub, grant.generation)?
    {
        return Ok(None);
    }
    Ok(Some(grant))
}

/// RFC 7009 for one access token: a sealed one is denied until it expires (a small entry,
/// swept after that); a stored one is removed.
pub fn revoke_access(store: &Store, presented: &str) -> Result<(), StoreError> {
    match sealed::parse(presented) {
        Parsed::Access(claims, _) => store.deny_access(claims.token_id, claims.expires_at),
        _ => store.remove_stored_token(&secret::sha256(presented.as_bytes())),
    }
}
