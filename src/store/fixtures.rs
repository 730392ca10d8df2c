//! Records for unit tests (the store's and the OAuth rules'), so each test states only what it
//! is about: `Grant { expires_at: 1000, ..grant("g") }`.

use super::{encode, users::User, CodeRecord, Grant, Rotation, Store};

/// Stores user `u` with `sub` `s` in generation 0, the user the records below belong to: codes
/// and grants of a user that does not exist (or is in another generation) are dead.
pub fn user(store: &Store) {
    let user = User {
        sub: "s".into(),
        username: "u".into(),
        password_hash: "hash".into(),
        created_at: 100,
        generation: 0,
        totp: None,
    };
    store
        .users
        .insert("u", encode(&user))
        .expect("store the fixture user");
}

/// A grant of user `s` (`u`) to client `c` for `profile`, made at 100, living forever.
pub fn grant(id: &str) -> Grant {
    Grant {
        id: id.into(),
        sub: "s".into(),
        username: "u".into(),
        client_id: "c".into(),
        scope: "profile".into(),
        created_at: 100,
        expires_at: 0,
        generation: 0,
        secret: Some([7; 32]),
        rotation: Rotation::default(),
        resource: None,
    }
}

/// An unused code for client `c` and `https://x/cb` (named in the request), for `profile`,
/// without PKCE.
pub fn code(expires_at: u64) -> CodeRecord {
    CodeRecord {
        client_id: "c".into(),
        redirect_uri: "https://x/cb".into(),
        redirect_uri_given: true,
        sub: "s".into(),
        username: "u".into(),
        scope: "profile".into(),
        code_challenge: None,
        expires_at,
        redeemed_by: None,
        generation: 0,
        resource: None,
    }
}

/// An empty store in a temporary directory (kept alive by the returned guard).
pub fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path(), 1 << 20).expect("open the store");
    (dir, store)
}

/// Opens the store in `dir` again after the previous handle was dropped: sled's background
/// flusher may hold the directory's lock a moment longer on a busy machine, so a `Locked` is
/// retried for up to 5 s.
pub fn reopen(dir: &std::path::Path) -> Store {
    for _ in 0..250 {
        match Store::open(dir, 1 << 20) {
            Err(crate::store::StoreError::Locked(_)) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other.expect("reopen the store"),
        }
    }
    panic!("the store in {} stayed locked", dir.display());
}
