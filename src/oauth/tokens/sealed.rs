//! Self-verifying tokens: what the token needs to be checked travels inside it, under a MAC, so
//! issuing one writes nothing and checking one reads only its grant (which still has the last
//! word: a revoked grant or user kills every token at once).
//!
//! Both kinds are a prefix and the base64url (no padding) of a binary body, then a MAC over the
//! prefix and the body. Not a JWT (Google's linking checks warn about those): opaque to clients,
//! URL-safe, about 130 characters (access) and 125 (refresh), far below the contract's 2048.
//!
//! - Access (`lgat_`): format 1, key id (u32), issued, expires (u64), a random token id (16
//!   bytes, what a revocation denies), the grant id, and the scope if it is narrower than the
//!   grant's. MAC: HMAC-SHA-256 under the server key with that id (`keys.rs`).
//! - Refresh (`lgrt_`): format 1, rotation sequence number (u64), issued (u64), a random nonce
//!   (16 bytes), the grant id. MAC: HMAC-SHA-256 under the grant's own secret, so it outlives
//!   any rotation of the server keys and dies with the grant.
//!
//! Tokens of earlier releases are 32 random bytes after the same prefixes; their body decodes to
//! exactly 32 bytes, which no token here has, so the two never mix up.

use crate::base::secret::{ct_eq, HmacKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub const ACCESS_PREFIX: &str = "lgat_";
pub const REFRESH_PREFIX: &str = "lgrt_";
const FORMAT: u8 = 1;
const MAC_LEN: usize = 32;
/// Decoded length of an earlier release's token.
const LEGACY_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub key_id: u32,
    pub issued_at: u64,
    pub expires_at: u64,
    pub token_id: [u8; 16],
    pub grant_id: String,
    /// `None`: the grant's scope.
    pub scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaims {
    pub seq: u64,
    pub issued_at: u64,
    pub nonce: [u8; 16],
    pub grant_id: String,
}

/// A presented token, parsed but not yet verified.
pub enum Parsed {
    Access(AccessClaims, Signed),
    Refresh(RefreshClaims, Signed),
    /// An earlier release's token (or anything else): looked up by its hash.
    Stored,
}

/// The signed bytes and the MAC that came with them. Equal: the same bytes (a presented token
/// compared with itself, no secret on either side).
#[derive(PartialEq, Eq)]
pub struct Signed {
    prefix: &'static str,
    body: Vec<u8>,
    mac: [u8; MAC_LEN],
}

impl Signed {
    /// Constant-time check of the MAC under `key`.
    pub fn verify(&self, key: &HmacKey) -> bool {
        ct_eq(&key.mac(&[self.prefix.as_bytes(), &self.body]), &self.mac)
    }
}

pub fn seal_access(claims: &AccessClaims, key: &HmacKey) -> String {
    let scope_len = claims.scope.as_ref().map_or(0, |s| 2 + s.len());
    let mut body =
        Vec::with_capacity(1 + 20 + 16 + 2 + claims.grant_id.len() + 1 + scope_len + MAC_LEN);
    body.push(FORMAT);
    body.extend_from_slice(&claims.key_id.to_le_bytes());
    body.extend_from_slice(&claims.issued_at.to_le_bytes());
    body.extend_from_slice(&claims.expires_at.to_le_bytes());
    body.extend_from_slice(&claims.token_id);
    put_str(&mut body, &claims.grant_id);
    match &claims.scope {
        None => body.push(0),
        Some(scope) => {
            body.push(1);
            put_str(&mut body, scope);
        }
    }
    seal(ACCESS_PREFIX, body, key)
}

pub fn seal_refresh(claims: &RefreshClaims, key: &HmacKey) -> String {
    let mut body =
        Vec::with_capacity(1 + 16 + claims.nonce.len() + 2 + claims.grant_id.len() + MAC_LEN);
    body.push(FORMAT);
    body.extend_from_slice(&claims.seq.to_le_bytes());
    body.extend_from_slice(&claims.issued_at.to_le_bytes());
    body.extend_from_slice(&claims.nonce);
    put_str(&mut body, &claims.grant_id);
    seal(REFRESH_PREFIX, body, key)
}

fn seal(prefix: &'static str, mut body: Vec<u8>, key: &HmacKey) -> String {
    let mac = key.mac(&[prefix.as_bytes(), &body]);
    body.extend_from_slice(&mac);
    let mut token = String::with_capacity(prefix.len() + body.len().div_ceil(3) * 4);
    token.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(&body, &mut token);
    token
}

/// Strings are a u16 length and the bytes (grant ids are 22 characters, scopes short).
fn put_str(out: &mut Vec<u8>, value: &str) {
    let len = value.len().min(u16::MAX as usize);
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&value.as_bytes()[..len]);
}

pub fn parse(token: &str) -> Parsed {
    let (prefix, rest) = if let Some(rest) = token.strip_prefix(ACCESS_PREFIX) {
        (ACCESS_PREFIX, rest)
    } else if let Some(rest) = token.strip_prefix(REFRESH_PREFIX) {
        (REFRESH_PREFIX, rest)
    } else {
        return Parsed::Stored;
    };
    let Ok(mut bytes) = URL_SAFE_NO_PAD.decode(rest) else {
        return Parsed::Stored;
    };
    if bytes.len() == LEGACY_LEN || bytes.len() < 1 + MAC_LEN || bytes[0] != FORMAT {
        return Parsed::Stored;
    }
    let split = bytes.len() - MAC_LEN;
    let Ok(mac) = <[u8; MAC_LEN]>::try_from(&bytes[split..]) else {
        return Parsed::Stored;
    };
    // The decoded bytes, without their MAC, become the signed body: no second copy.
    bytes.truncate(split);
    let mut input = &bytes[1..];
    let claims = if prefix == ACCESS_PREFIX {
        read_access(&mut input).map(Claims::Access)
    } else {
        read_refresh(&mut input).map(Claims::Refresh)
    };
    // A malformed body cannot verify: it is treated as an unknown token.
    let Some(claims) = claims.filter(|_| input.is_empty()) else {
        return Parsed::Stored;
    };
    let signed = Signed {
        prefix,
        body: bytes,
        mac,
    };
    match claims {
        Claims::Access(claims) => Parsed::Access(claims, signed),
        Claims::Refresh(claims) => Parsed::Refresh(claims, signed),
    }
}

enum Claims {
    Access(AccessClaims),
    Refresh(RefreshClaims),
}

fn read_access(input: &mut &[u8]) -> Option<AccessClaims> {
    Some(AccessClaims {
        key_id: u32::from_le_bytes(take(input)?),
        issued_at: u64::from_le_bytes(take(input)?),
        expires_at: u64::from_le_bytes(take(input)?),
        token_id: take(input)?,
        grant_id: get_str(input)?,
        scope: match take::<1>(input)? {
            [0] => None,
            [1] => Some(get_str(input)?),
            _ => return None,
        },
    })
}

fn read_refresh(input: &mut &[u8]) -> Option<RefreshClaims> {
    Some(RefreshClaims {
        seq: u64::from_le_bytes(take(input)?),
        issued_at: u64::from_le_bytes(take(input)?),
        nonce: take(input)?,
        grant_id: get_str(input)?,
    })
}

fn take<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = input.split_first_chunk::<N>()?;
    *input = rest;
    Some(*head)
}

fn get_str(input: &mut &[u8]) -> Option<String> {
    let len = usize::from(u16::from_le_bytes(take(input)?));
    let (bytes, rest) = input.split_at_checked(len)?;
    *input = rest;
    String::from_utf8(bytes.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> AccessClaims {
        AccessClaims {
            key_id: 7,
            issued_at: 1_764_000_000,
            expires_at: 1_764_003_600,
            token_id: [3; 16],
            grant_id: "BtAbdobw2mnQo-NXHXyHUQ".into(),
            scope: Some("profile".into()),
        }
    }

    #[test]
    fn tokens_round_trip_and_verify_only_under_their_key() {
        let key = HmacKey::new(&[1; 32]);
        let other = HmacKey::new(&[2; 32]);
        for claims in [
            access(),
            AccessClaims {
                scope: None,
                ..access()
            },
        ] {
            let token = seal_access(&claims, &key);
            // 131 characters with the grant's scope, 143 with a narrower one of its own.
            assert!(token.len() <= 160, "{} characters", token.len());
            assert!(token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            let Parsed::Access(back, signed) = parse(&token) else {
                panic!("not parsed as an access token")
            };
            assert_eq!(back, claims);
            assert!(signed.verify(&key));
            assert!(!signed.verify(&other));
        }
        let refresh = RefreshClaims {
            seq: 3,
            issued_at: 5,
            nonce: [9; 16],
            grant_id: "g".into(),
        };
        let token = seal_refresh(&refresh, &key);
        let Parsed::Refresh(back, signed) = parse(&token) else {
            panic!("not parsed as a refresh token")
        };
        assert_eq!(back, refresh);
        assert!(signed.verify(&key));
    }

    /// The exact tokens of fixed claims under a fixed key, as computed independently (Python's
    /// standard `hmac` over this format): tokens sealed by any earlier release, whatever HMAC
    /// code it ran, still verify and read the same.
    #[test]
    fn tokens_are_byte_for_byte_what_earlier_releases_sealed() {
        let key = HmacKey::new(&[1; 32]);
        let access_token =
            "lgat_AQcAAAAAgSRpAAAAABCPJGkAAAAAAwMDAwMDAwMDAwMDAwMDAxYAQnRBYmRvYncybW5Rby1\
                            OWEhYeUhVUQEHAHByb2ZpbGVGm4yUblGmDnD2S-u1dlQHbljucezMe27p9XSHqDLGcQ";
        assert_eq!(seal_access(&access(), &key), access_token);
        let refresh = RefreshClaims {
            seq: 3,
            issued_at: 5,
            nonce: [9; 16],
            grant_id: "g".into(),
        };
        let refresh_token =
            "lgrt_AQMAAAAAAAAABQAAAAAAAAAJCQkJCQkJCQkJCQkJCQkJAQBnKvvOgTXZnAokVClQ2nU8IEAjSNGO\
                             hN5mmb0BUmjCy8E";
        assert_eq!(seal_refresh(&refresh, &key), refresh_token);
        let Parsed::Access(claims, signed) = parse(access_token) else {
            panic!("not an access token")
        };
        assert_eq!(claims, access());
        assert!(signed.verify(&key));
    }

    /// A check on PostgreSQL skips the MAC it checked ahead only for equal signed parts
    /// (`check::Ahead`): equal means the same bytes, so any changed character differs.
    #[test]
    fn signed_parts_are_equal_only_for_the_same_token() {
        let key = HmacKey::new(&[1; 32]);
        let token = seal_access(&access(), &key);
        let signed = |token: &str| match parse(token) {
            Parsed::Access(_, signed) => Some(signed),
            _ => None,
        };
        assert!(signed(&token).is_some() && signed(&token) == signed(&token));
        for at in ACCESS_PREFIX.len()..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if let Some(other) = signed(&changed) {
                assert!(signed(&token) != Some(other), "changed at {at}");
            }
        }
    }

    #[test]
    fn an_access_token_cannot_pass_for_a_refresh_token() {
        let key = HmacKey::new(&[1; 32]);
        let token = seal_access(&access(), &key);
        let swapped = token.replacen(ACCESS_PREFIX, REFRESH_PREFIX, 1);
        if let Parsed::Refresh(_, signed) = parse(&swapped) {
            assert!(!signed.verify(&key));
        }
    }

    #[test]
    fn any_changed_character_fails_verification() {
        let key = HmacKey::new(&[1; 32]);
        let token = seal_access(&access(), &key);
        for at in ACCESS_PREFIX.len()..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if let Parsed::Access(_, signed) = parse(&changed) {
                assert!(!signed.verify(&key), "changed at {at} still verifies");
            }
        }
    }

    #[test]
    fn earlier_tokens_and_garbage_are_looked_up_not_parsed() {
        for token in [
            "lgat_lQVeGstmlWYzpVuV5DaUON5hEAvHvcChwG5HLGsl4-U",
            "lgrt_NCQLFSypfLPFTDym9mqCvYNLLy7mnxR31NiXyCpVS30",
            "lgat_",
            "lgat_AQ",
            "lgat_%%%",
            "Bearer",
            "",
        ] {
            assert!(matches!(parse(token), Parsed::Stored), "{token}");
        }
    }
}
