//! Authorization codes between consent and `/token` (RFC 6749 §4.1.2): short-lived, single use.
//! A redeemed code is kept (marked with the grant it produced) until it expires, so that a second
//! use can be detected and the tokens from the first use revoked.

use super::record;
use super::tree::Tree;
use super::users::Issuer;
use super::{decode, encode, expired, Grant, Store, StoreError, TokenRecord};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeRecord {
    pub client_id: String,
    pub redirect_uri: String,
    /// Whether `/authorize` carried `redirect_uri` (then `/token` must repeat it, §4.1.3).
    pub redirect_uri_given: bool,
    pub sub: String,
    pub username: String,
    pub scope: String,
    /// PKCE S256 challenge (RFC 7636), if the client sent one.
    pub code_challenge: Option<String>,
    pub expires_at: u64,
    /// The grant this code was exchanged for, once it has been.
    pub redeemed_by: Option<String>,
    /// The user's generation when they signed in (`users.rs`); another one at the exchange
    /// means the user was removed, changed password or was unlinked since: the code is dead.
    #[serde(default)]
    pub generation: u64,
    /// The RFC 8707 resource `/authorize` named (or the client's only one): the grant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// A live code as `code_for_exchange` read it: the record, and the bytes it was stored as (the
/// exchange replaces exactly them).
pub struct ReadCode {
    pub record: CodeRecord,
    bytes: Vec<u8>,
}

/// What happened to a code on exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// Tokens stored; the code is now used.
    Issued,
    /// Someone used it before: the grant it produced (to revoke).
    AlreadyUsed(String),
    /// Unknown, expired, or its user was removed, changed password or was unlinked since.
    Unknown,
}

impl Store {
    /// Deletes the codes not yet redeemed that were issued to a login API subject (`--unlink-user
    /// SUBJECT`; a local user's codes die with their generation instead). Codes live minutes, so
    /// the tree is small. Returns how many.
    pub fn revoke_subject_codes(&self, sub: &str) -> Result<usize, StoreError> {
        let _writing = self.writing();
        let mut revoked = 0;
        for entry in self.codes.iter() {
            let (key, bytes) = entry?;
            let code: CodeRecord = decode(&bytes)?;
            if code.sub == sub
                && code.generation == super::LOGIN_API_GENERATION
                && code.redeemed_by.is_none()
            {
                self.codes.remove(key)?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Deletes the code if it has not been redeemed (a link that failed after its code was
    /// issued: nothing may be left half-done). `true` if it was deleted.
    pub fn withdraw_code(&self, key: &[u8; 32]) -> Result<bool, StoreError> {
        let _writing = self.writing();
        let Some(bytes) = self.codes.get(key)? else {
            return Ok(false);
        };
        let code: CodeRecord = decode(&bytes)?;
        if code.redeemed_by.is_some() {
            return Ok(false);
        }
        Ok(self
            .codes
            .compare_and_swap(key, Some(&bytes[..]), None)?
            .is_ok())
    }

    pub fn put_code(&self, key: &[u8; 32], code: &CodeRecord) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.codes.insert(key, encode(code))?;
        Ok(())
    }

    /// A live code as read for its exchange (`redeem_read_code`); on PostgreSQL awaited, no
    /// thread waits for it.
    pub async fn code_for_exchange(
        &self,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<ReadCode>, StoreError> {
        let bytes = match &self.codes {
            Tree::Postgres(table) => Box::pin(table.get_async(key.to_vec())).await?,
            Tree::Sled(..) => self.codes.get(key)?.map(|bytes| bytes.to_vec()),
        };
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let record: CodeRecord = decode(&bytes)?;
        Ok((!expired(record.expires_at, now)).then_some(ReadCode { record, bytes }))
    }

    /// Exchanges a code read by `code_for_exchange` for `grant`, with `redeem_code`'s outcome.
    /// sled: `redeem_code` itself (the code read again under the store's lock). PostgreSQL,
    /// without the lock and awaited: the user read, then one statement that marks the code
    /// and stores the grant only if the code and the user's row are still as read, holding the
    /// user's row meanwhile (`FOR SHARE`). Of racing exchanges exactly one wins; a code deleted
    /// meanwhile (`revoke_subject_codes`) stores nothing; a user change either commits first
    /// (the exchange is refused) or waits for the grant and then revokes it, as under the lock.
    pub async fn redeem_read_code(
        &self,
        key: &[u8; 32],
        read: &ReadCode,
        now: u64,
        grant: &Grant,
    ) -> Result<Redeemed, StoreError> {
        let (Tree::Postgres(codes), Tree::Postgres(grants), Tree::Postgres(users)) =
            (&self.codes, &self.grants, &self.users)
        else {
            return self.redeem_code(key, now, grant, &[]);
        };
        let code = &read.record;
        if let Some(previous) = &code.redeemed_by {
            return Ok(Redeemed::AlreadyUsed(previous.clone()));
        }
        let mut marked = code.clone();
        marked.redeemed_by = Some(grant.id.clone());
        let (marked, grant_value) = (encode(&marked), record::encode(grant));
        // Again when only the user's row changed (a second factor's state): bounded.
        for _ in 0..3 {
            let issuer = self.issuer_row(users, &code.username, &code.sub, code.generation);
            let user = match Box::pin(issuer).await? {
                Issuer::Gone => return Ok(Redeemed::Unknown),
                Issuer::NoUser => None,
                Issuer::Current(row) => Some((code.username.as_bytes().to_vec(), row)),
            };
            let redeemed = codes.redeem_async(
                grants,
                key.to_vec(),
                read.bytes.clone(),
                marked.clone(),
                grant.id.as_bytes().to_vec(),
                grant_value.clone(),
                user,
            );
            if Box::pin(redeemed).await? {
                return Ok(Redeemed::Issued);
            }
            // Changed since it was read: used by a racing exchange, or deleted; or the user.
            let stored = Box::pin(codes.get_async(key.to_vec())).await?;
            match stored {
                Some(bytes) if bytes == read.bytes => continue,
                Some(bytes) => {
                    return Ok(match decode::<CodeRecord>(&bytes)?.redeemed_by {
                        Some(previous) => Redeemed::AlreadyUsed(previous),
                        None => Redeemed::Unknown,
                    })
                }
                None => return Ok(Redeemed::Unknown),
            }
        }
        Ok(Redeemed::Unknown)
    }

    /// A live code (unknown and expired codes are `None`).
    pub fn code(&self, key: &[u8; 32], now: u64) -> Result<Option<CodeRecord>, StoreError> {
        let Some(bytes) = self.codes.get(key)? else {
            return Ok(None);
        };
        let code: CodeRecord = decode(&bytes)?;
        Ok((!expired(code.expires_at, now)).then_some(code))
    }

    /// Marks the code used and stores the grant (and `tokens`: stored tokens, as earlier releases
    /// issued; today's are self-verifying and the list is empty), as one step among the store's
    /// read-modify-write operations: of two racing exchanges of one code, exactly one gets
    /// `Issued`, and a user changed at the same moment either sees the grant (and revokes it) or
    /// the exchange sees the change (and refuses).
    pub fn redeem_code(
        &self,
        key: &[u8; 32],
        now: u64,
        grant: &Grant,
        tokens: &[([u8; 32], TokenRecord)],
    ) -> Result<Redeemed, StoreError> {
        let _exclusive = self.exclusive()?;
        let _writing = self.writing();
        let Some(bytes) = self.codes.get(key)? else {
            return Ok(Redeemed::Unknown);
        };
        let mut code: CodeRecord = decode(&bytes)?;
        if expired(code.expires_at, now) {
            return Ok(Redeemed::Unknown);
        }
        if let Some(previous) = code.redeemed_by {
            return Ok(Redeemed::AlreadyUsed(previous));
        }
        if !self.issued_to_current_user(&code.username, &code.sub, code.generation)? {
            return Ok(Redeemed::Unknown);
        }
        // Tokens and grant first, the code's mark last: sled recovers a prefix of the writes
        // after a crash, and a prefix without the mark only leaves unused tokens behind.
        for (token_key, token) in tokens {
            self.tokens.insert(&token_key[..], record::encode(token))?;
        }
        self.grants
            .insert(grant.id.as_bytes(), record::encode(grant))?;
        code.redeemed_by = Some(grant.id.clone());
        // The mark is a compare-and-swap against the code as read: single use holds even if the
        // lock above were lost mid-way (a PostgreSQL session dropped during a failover).
        if let Err(conflict) =
            self.codes
                .compare_and_swap(&key[..], Some(&bytes[..]), Some(&encode(&code)))?
        {
            self.grants.remove(grant.id.as_bytes())?;
            let winner = conflict
                .current
                .and_then(|now| decode::<CodeRecord>(&now).ok())
                .and_then(|c| c.redeemed_by);
            return Ok(match winner {
                Some(previous) => Redeemed::AlreadyUsed(previous),
                None => Redeemed::Unknown,
            });
        }
        Ok(Redeemed::Issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::secret;
    use crate::store::fixtures;

    /// A code issued at 100 with `code_ttl_secs = 60`.
    fn code() -> CodeRecord {
        fixtures::code(160)
    }

    fn grant() -> Grant {
        fixtures::grant("g")
    }

    #[test]
    fn an_expired_code_is_refused_by_lookup_and_by_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        fixtures::user(&store);
        let key = secret::sha256(b"code");
        store.put_code(&key, &code()).unwrap();
        assert!(store.code(&key, 159).unwrap().is_some(), "live until 160");
        assert!(store.code(&key, 160).unwrap().is_none(), "dead at 160");
        assert!(store.code(&key, 10_000).unwrap().is_none());
        let tokens = [(
            secret::sha256(b"access"),
            TokenRecord::access(&grant(), "profile", 160, 3600),
        )];
        assert_eq!(
            store.redeem_code(&key, 160, &grant(), &tokens).unwrap(),
            Redeemed::Unknown
        );
        assert!(store.grant("g").unwrap().is_none(), "nothing was stored");
        assert_eq!(store.token_count(), 0);
        // The same code a second earlier is exchanged, once.
        assert_eq!(
            store.redeem_code(&key, 159, &grant(), &tokens).unwrap(),
            Redeemed::Issued
        );
        assert_eq!(
            store.redeem_code(&key, 159, &grant(), &tokens).unwrap(),
            Redeemed::AlreadyUsed("g".into())
        );
    }
}
