//! Secrets: random tokens, the SHA-256 keys they are stored under, constant-time comparison and
//! argon2id password hashing. Everything that touches a secret value lives here so the rest of the
//! code never handles raw bytes or hashes by hand.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use subtle::ConstantTimeEq;

pub use super::random::random_bytes;

/// A secret string (token, code, password). `Debug` prints `***` so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key a token or code is stored under: SHA-256 of its value, never the value itself.
    pub fn key(&self) -> [u8; 32] {
        sha256(self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A secret that stays (a client secret from the config) with its `key` worked out once, so
/// comparing a presented secret against it costs one SHA-256, not two.
#[derive(Clone)]
pub struct KnownSecret {
    secret: Secret,
    key: [u8; 32],
}

impl KnownSecret {
    pub fn new(secret: Secret) -> Self {
        KnownSecret {
            key: secret.key(),
            secret,
        }
    }

    pub fn expose(&self) -> &str {
        self.secret.expose()
    }

    /// `Secret::key` of it.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }
}

impl fmt::Debug for KnownSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A new 256-bit random token, base64url-encoded (43 characters) after `prefix`.
/// The prefix says what the token is (`lgat_` access, `lgrt_` refresh, `lgc_` code) so that a
/// leaked value is recognisable by secret scanners and by `/introspect`.
pub fn new_token(prefix: &str) -> Secret {
    Secret(format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    ))
}

/// A random identifier that is not secret (user `sub`, grant ids): 128 bits, base64url.
pub fn new_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA-256 (RFC 2104, the `hmac` crate) under one key, keyed once: the padded key's hash
/// states are computed at `new`, so each MAC costs the hashing of the message and two blocks
/// more. `Debug` is not derived: the states are as good as the key.
#[derive(Clone)]
pub struct HmacKey(Hmac<Sha256>);

impl HmacKey {
    pub fn new(key: &[u8]) -> HmacKey {
        // HMAC takes a key of any length (a long one is hashed first): this cannot fail.
        HmacKey(<Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length"))
    }

    /// The MAC of the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// `HmacKey::new` of a 256-bit key, remembered. Keying costs two SHA-256 blocks, and every
/// refresh keys with its grant's secret. A pure function of the key, so nothing ever needs
/// invalidating; bounded: past `REMEMBERED_KEYS` it starts again empty.
pub fn remembered_hmac_key(key: &[u8; 32]) -> HmacKey {
    const REMEMBERED_KEYS: usize = 4096;
    static KEYS: OnceLock<Mutex<HashMap<[u8; 32], HmacKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    let mut keys = keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = keys.get(key) {
        return known.clone();
    }
    if keys.len() >= REMEMBERED_KEYS {
        keys.clear();
    }
    let fresh = HmacKey::new(key);
    keys.insert(*key, fresh.clone());
    fresh
}

/// HMAC-SHA256 (RFC 2104): a keyed hash, for values that must not be guessable from what is
/// stored (throttle keys) and for sealing forms that must come back unchanged.
pub fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    HmacKey::new(key).mac(parts)
}

/// Compares two secrets in constant time (for equal lengths; the length itself is not secret
/// because callers compare fixed-size hashes or tokens of a fixed format).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// argon2id with the OWASP minimum parameters (m = 19456 KiB, t = 2, p = 1).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`). CPU-heavy: call
/// from a blocking thread.
pub fn hash_password(password: &Secret) -> String {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes is a valid salt");
    argon2()
        .hash_password(password.expose().as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters cannot fail")
        .to_string()
}

/// Checks a password against a PHC string. A malformed hash counts as a mismatch. CPU-heavy.
pub fn verify_password(password: &Secret, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => argon2()
            .verify_password(password.expose().as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// The hash of a random password, made (once) with the same parameters as every user's: checking
/// a password against it costs what a real check costs, for usernames that do not exist, so that
/// response time does not tell an attacker which usernames are real.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&Secret::new(new_id())))
}

/// Whether a string is a PHC string that `verify_password` understands.
pub fn is_phc_hash(s: &str) -> bool {
    PasswordHash::new(s).is_ok()
}

#[cfg(test)]
mod hmac_tests {
    #[test]
    fn hmac_matches_rfc_4231_test_case_1() {
        // RFC 4231 test case 1 uses a 20-byte key; padded with zeros it is the same HMAC key.
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        let mac = super::hmac_sha256(&key, &[b"Hi ", b"There"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_256_bit() {
        let a = new_token("lgat_");
        let b = new_token("lgat_");
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 5 + 43);
    }

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4231 §4: test cases 1, 2, 3, 4, 6 and 7 (case 5 is truncated output).
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let long_key = vec![0xaa; 131];
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                long_key.clone(),
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                long_key,
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(HmacKey::new(&key).mac(&[&data]).to_vec(), unhex(expected));
            // Split input gives the same MAC.
            let (a, b) = data.split_at(data.len() / 2);
            assert_eq!(HmacKey::new(&key).mac(&[a, b]).to_vec(), unhex(expected));
        }
    }

    #[test]
    fn a_remembered_key_macs_as_a_fresh_one() {
        for n in 0..5000u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&n.to_le_bytes());
            let data = n.to_be_bytes();
            let fresh = HmacKey::new(&key).mac(&[&data]);
            assert_eq!(remembered_hmac_key(&key).mac(&[&data]), fresh);
            assert_eq!(
                remembered_hmac_key(&key).mac(&[&data]),
                fresh,
                "from memory"
            );
        }
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }

    #[test]
    fn password_round_trip() {
        let hash = hash_password(&Secret::new("correct horse"));
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(&Secret::new("correct horse"), &hash));
        assert!(!verify_password(&Secret::new("wrong horse"), &hash));
        assert!(!verify_password(&Secret::new("x"), "not a hash"));
    }
}
