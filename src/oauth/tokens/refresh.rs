//! A refresh (RFC 6749 §6) against the store: find the token, let the caller check the request,
//! and issue what `rotation::decide` says. A refresh that changes nothing (no rotation, no first
//! use, no reuse) only reads, so it takes no lock: refreshes of non-rotating clients never wait
//! for one another. One that writes decides again on the grant as stored, in one atomic step
//! (`Store::update_grant`: a row lock on PostgreSQL, a compare-and-swap in sled), so racing
//! refreshes of one family are serialised and other families do not wait.

use super::check::{self, Ahead, Found};
use super::issue;
use super::rotation::{self, Decision};
use super::sealed::{self, Parsed};
use crate::base::secret::Secret;
use crate::store::{expired, Grant, GrantUpdate, Store, StoreError, TokenRecord};

/// What a checked refresh request gets.
pub struct Issue {
    /// Scope of the new access token.
    pub scope: String,
    pub access_secs: u64,
    /// Whether to hand out a new refresh token (rotation).
    pub rotate: bool,
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

/// Why a family is revoked, for the operator's log when one of its tokens comes back.
const REUSED: &str = "reuse detection: a refresh token replaced by rotation came back";

/// Exchanges the refresh token `presented` at `now`. The token and its grant are handed to
/// `check`, which checks the request against them (client, scope) and says what to issue, or
/// refuses with its own error. `ahead`: what was done ahead (`check::prefetch`).
pub async fn refresh<E: From<StoreError>>(
    store: &Store,
    presented: &str,
    now: u64,
    ahead: Option<&Ahead>,
    mut check: impl FnMut(&TokenRecord, &Grant) -> Result<Issue, E>,
) -> Result<Refreshed, E> {
    // Before any lock: making a key takes them itself.
    store.ensure_token_key(now)?;
    let Some(found) = check::find(store, presented, now, ahead)? else {
        return Ok(Refreshed::Dead);
    };
    let Some(position) = found.position else {
        // An access token is not a refresh token.
        return Ok(Refreshed::Dead);
    };
    let mut issue = check(&found.token, &found.grant)?;
    if !rotation::must_write(&position, issue.rotate) {
        let access = issue::access(store, &found.grant, &issue.scope, now, issue.access_secs)?;
        return Ok(Refreshed::Issued {
            access,
            refresh: None,
            wrote: false,
        });
    }
    let step = match swapped(store, presented, &found, ahead, now, &mut check, &mut issue).await? {
        Some(decision) => decision,
        None => store
            .update_grant(&found.grant.id, |current| {
                locked(presented, &found, current, now, &mut check, &mut issue)
            })
            .map_err(E::from)??,
    };
    match step {
        Decision::Dead => Ok(Refreshed::Dead),
        Decision::Reused => {
            store.record_revocation(&found.grant.id, REUSED, now)?;
            Ok(Refreshed::Reused)
        }
        Decision::Issue {
            grant,
            write,
            next_seq,
        } => {
            let refresh = match next_seq {
                Some(seq) => Some(issue::refresh(&grant, seq, now)?),
                None => None,
            };
            let access = issue::access(store, &grant, &issue.scope, now, issue.access_secs)?;
            Ok(Refreshed::Issued {
                access,
                refresh,
                wrote: write,
            })
        }
    }
}

/// On PostgreSQL, a rotation or first use decided on the grant as read ahead (`ahead`, by the
/// check or from memory) and stored with a compare-and-swap awaited here: one statement and
/// one commit, no row lock, no thread waiting. `None` when there is no read ahead, when it is
/// not a plain update (a reuse, a dead token: the locked path decides those), or when the grant
/// changed since it was read (another refresh of the family got there first): then the locked
/// path decides again on the grant as stored.
async fn swapped<E: From<StoreError>>(
    store: &Store,
    presented: &str,
    found: &Found,
    ahead: Option<&Ahead>,
    now: u64,
    check: &mut impl FnMut(&TokenRecord, &Grant) -> Result<Issue, E>,
    issue: &mut Issue,
) -> Result<Option<Decision>, E> {
    let Some(ahead) = ahead else {
        return Ok(None);
    };
    let Some(read) = store.grant_read_ahead(ahead.grant(), &found.grant.id)? else {
        return Ok(None);
    };
    let (GrantUpdate::Put(grant), Ok(decision)) =
        locked(presented, found, Some(read), now, check, issue)
    else {
        return Ok(None);
    };
    Ok(store
        .swap_grant(ahead.grant(), &grant)
        .await?
        .then_some(decision))
}

/// The locked part: the presented token judged again against its grant as stored now
/// (`current`), the request checked again (its answer replaces `issue`), and what to write.
/// Reads nothing else (a lock is held): the user's generation was checked just before, and a
/// change of the user since then kills the grant anyway.
fn locked<E>(
    presented: &str,
    before: &Found,
    current: Option<Grant>,
    now: u64,
    check: &mut impl FnMut(&TokenRecord, &Grant) -> Result<Issue, E>,
    issue: &mut Issue,
) -> (GrantUpdate, Result<Decision, E>) {
    let keep = |decision| (GrantUpdate::Keep, Ok(decision));
    let Some(grant) = current.filter(|g| !expired(g.expires_at, now)) else {
        return keep(Decision::Dead);
    };
    let (token, position) = match sealed::parse(presented) {
        Parsed::Refresh(claims, signed) => match rotation::position(&claims, &signed, &grant) {
            Some(p) => (check::sealed_refresh_record(&claims, &grant, p), p),
            None => return keep(Decision::Dead),
        },
        // An earlier release's stored token.
        _ => {
            let position = rotation::stored_position(&grant, before.token.retired);
            let mut token = before.token.clone();
            token.retired = position.retired;
            (token, position)
        }
    };
    // The request is checked first (client, scope): another client cannot revoke a family.
    match check(&token, &grant) {
        Ok(again) => *issue = again,
        Err(e) => return (GrantUpdate::Keep, Err(e)),
    }
    let decision = rotation::decide(Some(grant), position, issue.rotate, now);
    let update = match &decision {
        Decision::Reused => GrantUpdate::Delete,
        Decision::Issue {
            grant, write: true, ..
        } => GrantUpdate::Put(grant.clone()),
        _ => GrantUpdate::Keep,
    };
    (update, Ok(decision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::secret;
    use crate::store::StoreError;

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
        let access = issue::access(store, &grant, "profile", 100, 60).unwrap();
        let refresh = issue::refresh(&grant, 0, 100).unwrap();
        (access.expose().into(), refresh.expose().into())
    }

    fn block_on<F: std::future::Future>(work: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(work)
    }

    /// A refresh at `now` that asks for a new access token: the token, or `None` if refused.
    fn refresh_at(store: &Store, token: &str, now: u64) -> Option<String> {
        let outcome = block_on(super::refresh(store, token, now, None, |_, _| {
            Ok::<_, StoreError>(Issue {
                scope: "profile".into(),
                access_secs: 60,
                rotate: false,
            })
        }))
        .unwrap();
        match outcome {
            Refreshed::Issued { access, .. } => Some(access.expose().into()),
            _ => None,
        }
    }

    #[test]
    fn an_expired_access_token_is_refused_but_its_refresh_token_still_works() {
        let store = Store::in_memory().unwrap();
        let (access, refresh) = link(&store, 0);
        assert!(
            check::token(&store, &access, 159, None).unwrap().is_some(),
            "live until 160"
        );
        assert!(
            check::token(&store, &access, 160, None).unwrap().is_none(),
            "dead at 160"
        );
        // Years later the refresh token (no refresh_ttl_secs) still refreshes.
        let later = 100 + 10 * 366 * 86400;
        assert!(check::token(&store, &refresh, later, None)
            .unwrap()
            .is_some());
        let new_access = refresh_at(&store, &refresh, later).expect("refreshed");
        assert!(check::token(&store, &new_access, later + 59, None)
            .unwrap()
            .is_some());
        assert!(check::token(&store, &new_access, later + 60, None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_refresh_token_dies_with_its_grant_at_refresh_ttl() {
        let store = Store::in_memory().unwrap();
        let (access, refresh) = link(&store, 1000);
        let issued_at_999 = refresh_at(&store, &refresh, 999).expect("refreshed at 999");
        assert_eq!(refresh_at(&store, &refresh, 1000), None);
        assert!(check::token(&store, &refresh, 1000, None)
            .unwrap()
            .is_none());
        // An access token never outlives its grant either.
        assert!(check::token(&store, &access, 120, None).unwrap().is_some());
        assert!(check::token(&store, &issued_at_999, 999, None)
            .unwrap()
            .is_some());
        assert!(check::token(&store, &issued_at_999, 1000, None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_rotation_chain_of_any_length_keeps_one_fixed_size_record() {
        let store = Store::in_memory().unwrap();
        let (_, mut refresh) = link(&store, 0);
        let rotate = |token: &str| {
            block_on(super::refresh(&store, token, 200, None, |_, _| {
                Ok::<_, StoreError>(Issue {
                    scope: "profile".into(),
                    access_secs: 60,
                    rotate: true,
                })
            }))
            .unwrap()
        };
        let grant_id = check::token(&store, &refresh, 200, None)
            .unwrap()
            .unwrap()
            .1
            .id;
        let size = || store.grant_record_len(&grant_id);
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
