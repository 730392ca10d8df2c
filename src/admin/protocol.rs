//! What the admin CLI and the running server say to each other over the admin socket: the
//! requests, the one-line answer, and the error both sides report. Its own module so that the CLI
//! side (`admin`) and the socket (`admin::socket`) both depend on it and not on each other.

use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An admin failure: the message to print; the process exits 1.
#[derive(Debug)]
pub struct AdminError(pub String);

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AdminError {}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError(e.to_string())
    }
}

/// One admin operation. The CLI builds it (reading and hashing any password itself, so no
/// plaintext password crosses the socket) and runs it on the store directly or, when the server
/// holds the store, through the server's admin socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    AddUser {
        name: String,
        password_hash: String,
    },
    ListUsers,
    RemoveUser {
        name: String,
    },
    SetPassword {
        name: String,
        password_hash: String,
    },
    UnlinkUser {
        name: String,
    },
    /// Streams a snapshot (see `store::backup`) after the response line.
    Backup,
    /// `--invite` / `--reset-password`: store a one-time password link. `key` is the base64url
    /// SHA-256 of the link's token; the token itself never crosses the socket.
    PasswordLink {
        name: String,
        kind: crate::store::LinkKind,
        key: String,
        ttl_secs: u64,
    },
    /// A new server key for access tokens; the current one verifies `access_secs` more.
    RotateTokenKey {
        access_secs: u64,
    },
    /// `--disable-totp`: turn off a user's two-factor sign-in and end their sessions.
    DisableTotp {
        name: String,
    },
    /// What the running server serves (`config::Served`, as JSON), for `--doctor` to compare
    /// with the file.
    Served,
    /// The running server's recent refusals and successes (`oauth::linking_log`), of one client
    /// or all; answered only over the socket (the log is in the server's memory).
    LinkingLog {
        client: Option<String>,
    },
}

/// The server's answer line: `ok` with the command's message, or not with the error's.
#[derive(Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub message: String,
}
