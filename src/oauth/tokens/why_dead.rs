//! Why a token the checks refused is dead, in words for the operator's log (issue 23): read
//! only on the refusal path, so the checks themselves stay as fast as they are. Says what can
//! be known from the token's own claims and what is stored — never the token.

use super::sealed::{self, Parsed};
use crate::base::civil::format_time;
use crate::base::secret::{self, HmacKey};
use crate::store::{expired, Grant, Store, StoreError, LOGIN_API_GENERATION, SERVICE_GENERATION};

/// Completes "the token …": e.g. "expired at 2026-12-07 10:00:00 UTC".
pub fn why_dead(store: &Store, presented: &str, now: u64) -> Result<String, StoreError> {
    Ok(match sealed::parse(presented) {
        Parsed::Access(claims, signed) => {
            if !store.verifies_with(claims.key_id, now, |key| signed.verify(key))? {
                "does not verify: altered, made up, or signed by a token key retired by \
                     --rotate-token-key"
                    .into()
            } else if expired(claims.expires_at, now) {
                format!("expired at {}", format_time(claims.expires_at))
            } else if store.is_denied(&claims.token_id)? {
                "was revoked on its own at /revoke (RFC 7009)".into()
            } else {
                why_grant_dead(store, &claims.grant_id, now)?
            }
        }
        Parsed::Refresh(claims, signed) => match store.grant(&claims.grant_id)? {
            None => gone(store, &claims.grant_id)?,
            Some(grant) => {
                let verifies = grant
                    .secret
                    .is_some_and(|s| signed.verify(&HmacKey::new(&s)));
                if !verifies {
                    "does not verify: altered or made up".into()
                } else if claims.seq < grant.rotation.seq {
                    "was replaced by rotation and its successor has been used".into()
                } else {
                    why_grant_dead(store, &claims.grant_id, now)?
                }
            }
        },
        Parsed::Stored => match store.stored_token(&secret::sha256(presented.as_bytes()))? {
            None => "is not one this server issued (or it was revoked or swept)".into(),
            Some(token) => {
                if expired(token.expires_at, now) {
                    format!("expired at {}", format_time(token.expires_at))
                } else {
                    why_grant_dead(store, &token.grant_id, now)?
                }
            }
        },
    })
}

/// Why the grant `id` no longer carries tokens.
fn why_grant_dead(store: &Store, id: &str, now: u64) -> Result<String, StoreError> {
    let Some(grant) = store.grant(id)? else {
        return gone(store, id);
    };
    if expired(grant.expires_at, now) {
        return Ok(format!(
            "belongs to a link that expired at {} (tokens.refresh_ttl_secs)",
            format_time(grant.expires_at)
        ));
    }
    owner(store, &grant)
}

/// A grant that is not there: why it was revoked, if that is still noted.
fn gone(store: &Store, id: &str) -> Result<String, StoreError> {
    Ok(match store.revoked_note(id)? {
        Some((at, cause)) => format!("belongs to a link revoked at {}: {cause}", format_time(at)),
        None => unknown_cause().into(),
    })
}

fn unknown_cause() -> &'static str {
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
