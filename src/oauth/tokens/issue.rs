//! Issuing tokens: sealed (`sealed.rs`), so issuing writes nothing.

use super::sealed::{self, AccessClaims, RefreshClaims};
use crate::base::secret::{self, Secret};
use crate::store::{Grant, Store, StoreError};

/// A new access token for the grant that lives `ttl_secs`, signed with the current server key.
/// Writes nothing (unless no key exists yet: then one is made and flushed).
pub fn access(
    store: &Store,
    grant: &Grant,
    scope: &str,
    now: u64,
    ttl_secs: u64,
) -> Result<Secret, StoreError> {
    store.with_signing_key(now, |key_id, key| {
        let claims = AccessClaims {
            key_id,
            issued_at: now,
            expires_at: now + ttl_secs,
            token_id: secret::random_bytes(),
            grant_id: grant.id.clone(),
            scope: (scope != grant.scope).then(|| scope.to_string()),
        };
        Secret::new(sealed::seal_access(&claims, key))
    })
}

/// A refresh token of the grant with rotation sequence number `seq` (0 for the first), MAC'd
/// under the grant's own secret.
pub fn refresh(grant: &Grant, seq: u64, now: u64) -> Result<Secret, StoreError> {
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
        &secret::remembered_hmac_key(&key),
    )))
}
