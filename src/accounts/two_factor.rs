//! Turning two-factor sign-in on and off on `/account` (issue 15). Turning on: a fresh secret is
//! shown (QR code and key) and only switched on when the person sends a current code for it;
//! then ten recovery codes are shown once. The secret travels in the enrolment form's hidden
//! field until then (the page already shows it; the form is CSRF-bound to the session, and a
//! secret someone else chose could only be set by someone holding the session). Turning off
//! needs a current code or a recovery code, checked through the login throttle. Free of hyper.

use super::events;
use super::second_factor::{self, SecondFactor};
use super::session::{csrf_for, SignInFailure, SignedIn};
use super::sign_in::{self, Refused};
use super::totp;
use crate::app::Core;
use crate::base::secret;
use crate::base::urlencoded::Params;
use crate::store::{now, EventKind, StoreError, Username};
use std::net::IpAddr;

/// The issuer the authenticator app shows next to the account.
fn issuer(app: &Core) -> String {
    app.config.ui.title.clone()
}

pub enum Enrol {
    /// The enrolment page: the key (base32), its QR code, and whether a code was wrong.
    Form {
        key: String,
        qr_svg: String,
        wrong_code: bool,
    },
    /// Turned on: the recovery codes to show once.
    Enabled(Vec<String>),
    /// CSRF token wrong, form unreadable, or it was already on.
    Stale,
    Unavailable,
}

fn form(app: &Core, username: &str, key: &[u8], wrong_code: bool) -> Enrol {
    let uri = totp::otpauth_uri(&issuer(app), username, key);
    match totp::qr_svg(&uri) {
        Some(qr_svg) => Enrol::Form {
            key: totp::base32_encode(key),
            qr_svg,
            wrong_code,
        },
        None => Enrol::Unavailable,
    }
}

fn csrf_ok(params: &Params, signed: &SignedIn) -> bool {
    let given = params.single("csrf").ok().flatten().unwrap_or("");
    secret::ct_eq(given.as_bytes(), csrf_for(signed.token.expose()).as_bytes())
}

/// `POST /account/totp-start`: a new secret and the page to enrol it.
pub fn start(app: &Core, body: &[u8], signed: &SignedIn) -> Enrol {
    let Ok(params) = Params::parse(body) else {
        return Enrol::Stale;
    };
    // Only a local user: a login API customer signs in at the operator's system.
    let Some(user) = &signed.user else {
        return Enrol::Stale;
    };
    if !csrf_ok(&params, signed) || user.totp.is_some() {
        return Enrol::Stale;
    }
    form(app, &user.username, &totp::new_secret(), false)
}

/// `POST /account/totp-on`: the key from the enrolment page and a code for it.
pub async fn enable(app: &Core, body: &[u8], signed: &SignedIn, ip: IpAddr) -> Enrol {
    let Ok(params) = Params::parse(body) else {
        return Enrol::Stale;
    };
    let Some(user) = &signed.user else {
        return Enrol::Stale;
    };
    if !csrf_ok(&params, signed) {
        return Enrol::Stale;
    }
    let field = |name| params.single(name).ok().flatten().unwrap_or("");
    let Some(key) = totp::base32_decode(field("key")).filter(|k| k.len() == totp::SECRET_BYTES)
    else {
        return Enrol::Stale;
    };
    let Ok(name) = Username::parse(&user.username) else {
        return Enrol::Stale;
    };
    let (codes, keys) = totp::new_recovery_codes();
    let enabled = match second_factor::enable(&app.store, &name, &key, field("code"), &keys, now())
    {
        Ok(enabled) => enabled,
        Err(e) => {
            tracing::error!("turning on two-factor sign-in failed: {e}");
            return Enrol::Unavailable;
        }
    };
    if !enabled {
        // Already on (another tab) or the code was wrong: a wrong code shows the page again.
        return match app.store.user(&name) {
            Ok(Some(user)) if user.totp.is_some() => Enrol::Stale,
            Ok(_) => form(app, &user.username, &key, true),
            Err(e) => {
                tracing::error!("reading a user failed: {e}");
                Enrol::Unavailable
            }
        };
    }
    // The user's other sessions signed in with the password only; this browser's stays.
    if let Err(e) = app
        .store
        .end_sessions_of(&user.sub, Some(&signed.token.key()))
    {
        tracing::error!("ending the user's other sessions failed: {e}");
        return Enrol::Unavailable;
    }
    if let Err(e) = app.store.flush().await {
        tracing::error!("storing two-factor sign-in failed: {e}");
        return Enrol::Unavailable;
    }
    let kind = EventKind::TotpOn;
    events::record(
        &app.store,
        &user.sub,
        &user.username,
        kind,
        Some(ip),
        events::DETAIL_ACCOUNT,
    );
    Enrol::Enabled(codes)
}

pub enum Disable {
    Done,
    Refused(SignInFailure),
    Stale,
}

/// `POST /account/totp-off`: needs a current code or a recovery code; every try is reserved in
/// the login throttle first, like a password.
pub async fn disable(
    app: &Core,
    body: &[u8],
    signed: &SignedIn,
    ip: IpAddr,
) -> Result<Disable, StoreError> {
    let Ok(params) = Params::parse(body) else {
        return Ok(Disable::Stale);
    };
    let Some(user) = &signed.user else {
        return Ok(Disable::Stale);
    };
    if !csrf_ok(&params, signed) {
        return Ok(Disable::Stale);
    }
    let Ok(name) = Username::parse(&user.username) else {
        return Ok(Disable::Stale);
    };
    let attempt = match sign_in::reserve(app, name.as_str(), ip, events::DETAIL_ACCOUNT) {
        Ok(attempt) => attempt,
        Err(Refused::Locked(wait)) => return Ok(Disable::Refused(SignInFailure::Locked(wait))),
        Err(Refused::Store(e)) => return Err(e),
    };
    let code = params.single("code").ok().flatten().unwrap_or("");
    if second_factor::check(&app.store, &name, code, now())? == SecondFactor::Wrong {
        attempt.failed(None);
        return Ok(Disable::Refused(SignInFailure::WrongCredentials));
    }
    attempt.cleared();
    second_factor::disable(&app.store, &name)?;
    app.store.flush().await?;
    let kind = EventKind::TotpOff;
    events::record(
        &app.store,
        &user.sub,
        &user.username,
        kind,
        Some(ip),
        events::DETAIL_ACCOUNT,
    );
    Ok(Disable::Done)
}
