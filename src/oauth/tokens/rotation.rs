//! Refresh-token rotation and reuse detection (RFC 9700 §4.14.2), as pure rules: no store, no
//! clock. `refresh.rs` reads the grant and writes what `decide` says.
//!
//! A grant records the refresh token in use: its sequence number and, once a rotated token has
//! been used, that token's nonce (`Rotation`). Against it a presented sealed refresh token is
//! - older (a lower sequence number), or a sibling of the one in use (same number, another
//!   nonce): retired, and presenting it revokes the grant;
//! - the one in use, or the first token before any rotation was used: live;
//! - one ahead (a child of the one in use): live, and its first use makes it the one in use,
//!   which retires its parent and its unused siblings (responses that were lost or duplicated);
//! - further ahead: never issued under this grant.
//!
//! So the old token stays valid until one of its children is first used (Alexa retries a
//! refresh whose answer it lost), and the grant record stays one fixed size however long the
//! chain. Tokens stored by earlier releases are retired once a sealed successor is in use.

use super::sealed::{RefreshClaims, Signed};
use crate::base::secret;
use crate::store::{expired, Grant, Rotation};

/// Where a presented refresh token stands in its grant's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Replaced by rotation: presenting it is a reuse.
    pub retired: bool,
    /// A sealed token's sequence number and nonce (`None`: an earlier release's stored token).
    pub sealed: Option<(u64, [u8; 16])>,
    /// Its first use: it becomes the token in use (the grant is written).
    pub first_use: bool,
}

/// Where the sealed refresh token `claims` stands against `grant` as it is now; `None` if it was
/// never issued under this grant (a bad MAC, a sequence number ahead of the family, a grant
/// without a refresh secret).
pub fn position(claims: &RefreshClaims, signed: &Signed, grant: &Grant) -> Option<Position> {
    let key = grant.secret.map(|s| secret::remembered_hmac_key(&s))?;
    if !signed.verify(&key) {
        return None;
    }
    let at = &grant.rotation;
    let (retired, first_use) = match claims.seq {
        s if s < at.seq => (true, false),
        s if s == at.seq => (
            at.used
                .is_some_and(|used| !secret::ct_eq(&used, &claims.nonce)),
            false,
        ),
        s if s == at.seq.saturating_add(1) => (false, true),
        // Only the token in use has children: this was never issued.
        _ => return None,
    };
    Some(Position {
        retired,
        sealed: Some((claims.seq, claims.nonce)),
        first_use,
    })
}

/// Where an earlier release's stored refresh token stands: retired once a sealed successor of
/// its family is in use (or when its own record says so).
pub fn stored_position(grant: &Grant, retired: bool) -> Position {
    Position {
        retired: retired || grant.rotation.seq > 0,
        sealed: None,
        first_use: false,
    }
}

/// Whether a refresh from `position` must write (so must be decided again under the grant's
/// lock): a reuse, a first use, or a rotation. Every other refresh reads only.
pub fn must_write(position: &Position, rotate: bool) -> bool {
    rotate || position.retired || position.first_use
}

/// What a refresh does to its grant.
#[derive(Debug)]
pub enum Decision {
    /// The grant is gone or has expired.
    Dead,
    /// A retired token came back: the grant (the whole family) is revoked.
    Reused,
    /// Tokens are issued under `grant`; `write`: it changed and is stored first. `next_seq`: the
    /// sequence number of the new refresh token, when one is issued (rotation).
    Issue {
        grant: Box<Grant>,
        write: bool,
        next_seq: Option<u64>,
    },
}

/// The refresh of a token at `position` under `grant` as stored now, at `now`; `rotate`: the
/// client gets a new refresh token. The request itself (client, scope) has been checked first,
/// so another client cannot revoke a family.
pub fn decide(grant: Option<Grant>, position: Position, rotate: bool, now: u64) -> Decision {
    let Some(mut grant) = grant.filter(|g| !expired(g.expires_at, now)) else {
        return Decision::Dead;
    };
    if position.retired {
        return Decision::Reused;
    }
    let mut write = false;
    if let (true, Some((seq, nonce))) = (position.first_use, position.sealed) {
        grant.rotation = Rotation {
            seq,
            used: Some(nonce),
        };
        write = true;
    }
    let next_seq = rotate.then(|| {
        // A grant of an earlier release has no refresh secret until it first rotates.
        if grant.secret.is_none() {
            grant.secret = Some(secret::random_bytes());
            write = true;
        }
        grant.rotation.seq.saturating_add(1)
    });
    Decision::Issue {
        grant: Box::new(grant),
        write,
        next_seq,
    }
}

#[cfg(test)]
mod tests {
    use super::super::sealed::{parse, seal_refresh, Parsed};
    use super::*;

    fn grant(expires_at: u64) -> Grant {
        Grant::new("sub", "u", "c", "profile", 1, 100, expires_at)
    }

    /// The refresh token with sequence number `seq` of `grant`, presented against `at`.
    fn presented(grant: &Grant, seq: u64, nonce: u8) -> (RefreshClaims, Signed) {
        let claims = RefreshClaims {
            seq,
            issued_at: 100,
            nonce: [nonce; 16],
            grant_id: grant.id.clone(),
        };
        let token = seal_refresh(
            &claims,
            &crate::base::secret::HmacKey::new(&grant.secret.unwrap()),
        );
        match parse(&token) {
            Parsed::Refresh(claims, signed) => (claims, signed),
            _ => panic!("not a refresh token"),
        }
    }

    fn at(grant: &Grant, seq: u64, nonce: u8) -> Option<Position> {
        let (claims, signed) = presented(grant, seq, nonce);
        position(&claims, &signed, grant)
    }

    #[test]
    fn a_family_retires_its_past_and_siblings_and_knows_no_future() {
        let mut g = grant(0);
        // Before any rotation was used: the first token lives, its children are first uses.
        assert_eq!(at(&g, 0, 1).map(|p| p.retired), Some(false));
        assert_eq!(at(&g, 1, 2).map(|p| p.first_use), Some(true));
        assert_eq!(at(&g, 2, 3), None, "two ahead was never issued");
        // Child 1 (nonce 2) is in use: its parent and its siblings are retired.
        g.rotation = Rotation {
            seq: 1,
            used: Some([2; 16]),
        };
        assert_eq!(at(&g, 0, 1).map(|p| p.retired), Some(true));
        assert_eq!(at(&g, 1, 9).map(|p| p.retired), Some(true), "a sibling");
        let in_use = at(&g, 1, 2).unwrap();
        assert!(!in_use.retired && !in_use.first_use);
        assert!(!must_write(&in_use, false), "a repeat refresh only reads");
        assert!(must_write(&in_use, true), "a rotation writes");
    }

    #[test]
    fn a_token_under_another_secret_is_not_of_the_family() {
        let g = grant(0);
        let other = grant(0);
        let (claims, signed) = presented(&other, 0, 1);
        assert_eq!(position(&claims, &signed, &g), None);
        let mut legacy = g.clone();
        legacy.secret = None;
        let (claims, signed) = presented(&g, 0, 1);
        assert_eq!(position(&claims, &signed, &legacy), None);
    }

    #[test]
    fn first_use_records_the_token_in_use_and_rotation_issues_the_next() {
        let g = grant(0);
        let first_use = at(&g, 1, 7).unwrap();
        let Decision::Issue {
            grant,
            write,
            next_seq,
        } = decide(Some(g.clone()), first_use, true, 500)
        else {
            panic!("refused");
        };
        assert!(write);
        assert_eq!(
            grant.rotation,
            Rotation {
                seq: 1,
                used: Some([7; 16])
            }
        );
        assert_eq!(next_seq, Some(2));
        // Without rotation the token in use writes nothing and gets no new refresh token.
        let in_use = at(&grant, 1, 7).unwrap();
        assert!(matches!(
            decide(Some(*grant), in_use, false, 500),
            Decision::Issue {
                write: false,
                next_seq: None,
                ..
            }
        ));
    }

    #[test]
    fn a_retired_token_revokes_and_an_expired_or_missing_grant_is_dead() {
        let mut g = grant(1000);
        g.rotation = Rotation {
            seq: 3,
            used: Some([1; 16]),
        };
        let old = at(&g, 2, 1).unwrap();
        assert!(matches!(
            decide(Some(g.clone()), old, false, 999),
            Decision::Reused
        ));
        let live = at(&g, 3, 1).unwrap();
        assert!(matches!(
            decide(Some(g.clone()), live, false, 999),
            Decision::Issue { .. }
        ));
        // Expiry wins over everything, at the second it is reached.
        assert!(matches!(
            decide(Some(g.clone()), old, false, 1000),
            Decision::Dead
        ));
        assert!(matches!(
            decide(Some(g.clone()), live, true, 1000),
            Decision::Dead
        ));
        assert!(matches!(decide(None, live, false, 0), Decision::Dead));
    }

    #[test]
    fn an_earlier_release_s_token_retires_once_a_sealed_successor_is_in_use() {
        let mut g = grant(0);
        g.secret = None;
        let stored = stored_position(&g, false);
        assert!(!stored.retired);
        // Its first rotation gives the grant a secret to MAC the new token under.
        let Decision::Issue {
            grant,
            write,
            next_seq,
        } = decide(Some(g.clone()), stored, true, 200)
        else {
            panic!("refused");
        };
        assert!(write && grant.secret.is_some());
        assert_eq!(next_seq, Some(1));
        g.rotation.seq = 1;
        assert!(stored_position(&g, false).retired);
        assert!(stored_position(&grant, true).retired);
    }
}
