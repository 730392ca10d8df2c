//! Security events: sign-in ok or failed, link, unlink, password change, admin action. Each is
//! one structured log line (target `linkgate::security`, field `event`, the user, the address;
//! never a password or token) and an entry in the user's bounded "recent activity" list shown on
//! `/account` (`store::events`). Recording never fails the action it records: a storage fault
//! here is logged and the action goes on.

use crate::store::{now, Event, EventKind, Store};
use std::net::IpAddr;

/// Records `kind` for the user `sub` / `username`. `detail`: the client id, `account`, or the
/// admin command.
pub fn record(
    store: &Store,
    sub: &str,
    username: &str,
    kind: EventKind,
    ip: Option<IpAddr>,
    detail: &str,
) {
    let name = name(kind);
    match ip {
        Some(ip) => {
            tracing::info!(target: "linkgate::security", event = name, user = %username, %ip, detail, "security event")
        }
        None => {
            tracing::info!(target: "linkgate::security", event = name, user = %username, detail, "security event")
        }
    }
    let event = Event {
        kind,
        at: now(),
        ip: ip.map(|ip| ip.to_string()),
        detail: detail.to_string(),
    };
    if let Err(e) = store.add_event(sub, event) {
        tracing::warn!("storing a security event failed: {e}");
    }
}

/// The details recorded for browser actions (the rest are client ids and admin commands).
pub const DETAIL_ACCOUNT: &str = "account";
pub const DETAIL_ACCOUNT_APPS_OUT: &str = "account, apps signed out";
pub const DETAIL_INVITATION: &str = "invitation link";
pub const DETAIL_RESET: &str = "password reset link";

/// The `event` field of the log line.
pub fn name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::SignIn => "sign_in",
        EventKind::SignInFailed => "sign_in_failed",
        EventKind::Link => "link",
        EventKind::Unlink => "unlink",
        EventKind::PasswordChanged => "password_changed",
        EventKind::Admin => "admin",
        EventKind::TotpOn => "totp_on",
        EventKind::TotpOff => "totp_off",
    }
}
