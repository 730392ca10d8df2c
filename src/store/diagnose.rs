//! Why a token the checks refused is dead, in words for the operator's log (issue 23): read
//! only on the refusal path, so the checks themselves stay as fast as they are. Says what can
//! be known from the token's own claims and what is stored — never the token.

use super::sealed::{self, Parsed};
use super::{decode, expired, Grant, Store, StoreError, LOGIN_API_GENERATION, SERVICE_GENERATION};
use crate::secret::{self, HmacKey};

impl Store {
    /// Completes "the token …": e.g. "expired at 2026-12-07 10:00:00 UTC".
    pub fn why_dead(&self, presented: &str, now: u64) -> Result<String, StoreError> {
        Ok(match sealed::parse(presented) {
            Parsed::Access(claims, signed) => {
                if !self.verifies_with(claims.key_id, now, |key| signed.verify(key))? {
                    "does not verify: altered, made up, or signed by a token key retired by \
                     --rotate-token-key"
                        .into()
                } else if expired(claims.expires_at, now) {
                    format!(
                        "expired at {}",
                        crate::admin::format_time(claims.expires_at)
                    )
                } else if self.deny_cache().contains_key(&claims.token_id)
                    || self.denied.get(claims.token_id)?.is_some()
                {
                    "was revoked on its own at /revoke (RFC 7009)".into()
                } else {
                    self.why_grant_dead(&claims.grant_id, now)?
                }
            }
            Parsed::Refresh(claims, signed) => match self.grant(&claims.grant_id)? {
                None => self.gone(&claims.grant_id)?,
                Some(grant) => {
                    let verifies = grant
                        .secret
                        .is_some_and(|s| signed.verify(&HmacKey::new(&s)));
                    if !verifies {
                        "does not verify: altered or made up".into()
                    } else if claims.seq < grant.rotation.seq {
                        "was replaced by rotation and its successor has been used".into()
                    } else {
                        self.why_grant_dead(&claims.grant_id, now)?
                    }
                }
            },
            Parsed::Stored => match self.tokens.get(secret::sha256(presented.as_bytes()))? {
                None => "is not one this server issued (or it was revoked or swept)".into(),
                Some(bytes) => {
                    let token: super::TokenRecord = decode(&bytes)?;
                    if expired(token.expires_at, now) {
                        format!("expired at {}", crate::admin::format_time(token.expires_at))
                    } else {
                        self.why_grant_dead(&token.grant_id, now)?
                    }
                }
            },
        })
    }

    /// Why the grant `id` no longer carries tokens.
    fn why_grant_dead(&self, id: &str, now: u64) -> Result<String, StoreError> {
        let Some(grant) = self.grant(id)? else {
            return self.gone(id);
        };
        if expired(grant.expires_at, now) {
            return Ok(format!(
                "belongs to a link that expired at {} (tokens.refresh_ttl_secs)",
                crate::admin::format_time(grant.expires_at)
            ));
        }
        owner(self, &grant)
    }
}

impl Store {
    /// A grant that is not there: why it was revoked, if that is still noted.
    fn gone(&self, id: &str) -> Result<String, StoreError> {
        Ok(match self.revoked_note(id)? {
            Some((at, cause)) => format!(
                "belongs to a link revoked at {}: {cause}",
                crate::admin::format_time(at)
            ),
            None => gone().into(),
        })
    }
}

fn gone() -> &'static str {
    "belongs to a link that no longer exists: unlinked (--unlink-user, /account, the client's \
     /revoke), revoked by reuse detection or a replayed code, its user removed, or its login API \
     customer gone"
}

/// What happened to the user a live grant was issued to.
fn owner(store: &Store, grant: &Grant) -> Result<String, StoreError> {
    if grant.generation == LOGIN_API_GENERATION || grant.generation == SERVICE_GENERATION {
        return Ok("was refused although its link exists (a race with a revocation?)".into());
    }
    Ok(match store.user_generation(&grant.username)? {
        None => format!(
            "was issued to user {}, who was removed",
            grant.username.escape_default()
        ),
        Some(now) if now.sub != grant.sub => format!(
            "was issued to a user {} who was removed; the name now belongs to another user",
            grant.username.escape_default()
        ),
        Some(_) => format!(
            "was issued before user {}'s password was changed or the user was unlinked \
             (--set-password, --unlink-user, /account, a reset link)",
            grant.username.escape_default()
        ),
    })
}
