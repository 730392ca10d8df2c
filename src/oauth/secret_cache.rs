//! Client secrets that passed an argon2 check (`oauth::client`): kept in the app's state, so it
//! is its own room, below both.

use std::collections::HashSet;
use std::sync::Mutex;

/// SHA-256 keys of `(client id, secret)` pairs that passed an argon2 check, so a client with a
/// `secret_hash` pays for argon2 once per process rather than on every token request.
#[derive(Default)]
pub struct SecretCache(Mutex<HashSet<[u8; 32]>>);

impl SecretCache {
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        lock(self).contains(key)
    }

    pub fn insert(&self, key: [u8; 32]) {
        lock(self).insert(key);
    }
}

fn lock(cache: &SecretCache) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
    cache
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
