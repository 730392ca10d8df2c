//! `/account`: the person signs in (through the same login throttle as the authorization flow)
//! and manages their own account: the apps linked to it (unlink one), their password (change it,
//! optionally ending every link). Free of hyper: `http::account_routes` parses and renders.
//!
//! A session is a 256-bit token in an `HttpOnly` cookie, stored as its SHA-256 with an expiry
//! (`store::sessions`). The forms of a signed-in page carry a CSRF token derived from the session
//! token, which another site can neither read nor compute; the sign-in form, before there is a
//! session, uses a random token matched against a cookie.

use super::events;
use super::password_rules::{check_new_password, PasswordProblem};
use super::sign_in::{
    self, check_api, check_password, checker, queue_for, Attempt, Checker, Refused, Verdict,
};
use crate::app::Core;
use crate::base::secret::{self, Secret};
use crate::base::urlencoded::Params;
use crate::config::LoginSource;
use crate::metrics::count;
use crate::store::{
    now, EventKind, Grant, Session, StoreError, User, Username, LOGIN_API_GENERATION,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::net::IpAddr;

/// The page, under `public_url`; its forms post to `PATH/…`.
pub const PATH: &str = "/account";
/// How long a sign-in to `/account` lasts.
pub const SESSION_SECS: u64 = 30 * 60;
/// Prefix of session tokens.
const TOKEN_PREFIX: &str = "lgs_";
/// The longest username put back into the sign-in form after a failure.
const MAX_REFILL: usize = 256;

/// Why a password was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInFailure {
    WrongCredentials,
    /// Too many failures: seconds to wait.
    Locked(u64),
    Busy,
    Unavailable,
}

/// Who a password signed in: a local user, or a customer of the operator's login API (its
/// subject, and the name as they typed it, trimmed), as `[login] source` says.
pub enum Person {
    Local(User),
    Api { sub: String, username: String },
}

/// Checks `typed` and `password` exactly as the authorization flow's sign-in does: where
/// `[login] source` says (a local user, the login API, or a local user first), the attempt
/// reserved in the login throttle first, argon2 in a bounded queue with one check for an unknown
/// name too, the login API within its own in-flight limit.
pub async fn verify(
    app: &Core,
    typed: &str,
    password: Secret,
    ip: IpAddr,
) -> Result<Person, SignInFailure> {
    verify_with_code(app, typed, password, None, ip).await
}

/// `verify`, and for a user with two-factor sign-in, when `code` is given, the code too, under
/// the same throttle reservation: a right password with a wrong code counts as a failure, so a
/// person who knows the password cannot guess codes without limit.
pub async fn verify_with_code(
    app: &Core,
    typed: &str,
    password: Secret,
    code: Option<&str>,
    ip: IpAddr,
) -> Result<Person, SignInFailure> {
    let name = Username::parse(typed);
    let checker = checker(app, &name).map_err(|e| {
        tracing::error!("reading a user failed: {e}");
        SignInFailure::Unavailable
    })?;
    // argon2's queue bounds a local check; the login API has its own in-flight limit.
    let Ok(_queued) = queue_for(app, &checker) else {
        return Err(SignInFailure::Busy);
    };
    let typed_name = name.as_ref().map_or(typed, |n| n.as_str());
    let attempt = match sign_in::reserve(app, typed_name, ip, events::DETAIL_ACCOUNT) {
        Ok(attempt) => attempt,
        Err(Refused::Locked(wait)) => return Err(SignInFailure::Locked(wait)),
        Err(Refused::Store(e)) => {
            tracing::error!("the login throttle failed: {e}");
            return Err(SignInFailure::Unavailable);
        }
    };
    let user = match checker {
        Checker::Local(user) => user,
        Checker::Api => return verify_at_api(app, typed, password, attempt).await,
    };
    let known = user.as_ref().map(|u| (u.sub.clone(), u.username.clone()));
    let check = app
        .password_workers
        .run(move || check_password(user, &password, secret::verify_password))
        .await;
    match check {
        Some(Some(user)) => {
            if let (Some(code), Some(_), Ok(name)) =
                (code, &user.totp, Username::parse(&user.username))
            {
                match super::second_factor::check(&app.store, &name, code, now()) {
                    Ok(super::second_factor::SecondFactor::Wrong) => {
                        attempt.failed(Some((&user.sub, &user.username)));
                        return Err(SignInFailure::WrongCredentials);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!("checking a two-factor code failed: {e}");
                        return Err(SignInFailure::Unavailable);
                    }
                }
            }
            // The sign-in event is recorded once the session has started (`sign_in`).
            attempt.succeeded(None);
            Ok(Person::Local(user))
        }
        Some(None) => {
            if known.is_none() {
                tracing::info!(%ip, "account sign-in failed for an unknown user");
            }
            attempt.failed(known.as_ref().map(|(s, u)| (s.as_str(), u.as_str())));
            Err(SignInFailure::WrongCredentials)
        }
        None => {
            tracing::error!("the password workers are gone");
            Err(SignInFailure::Unavailable)
        }
    }
}

/// The login API's half of `verify_with_code`, under the reservation already taken. A password
/// the API could not judge gives the reservation back: it is not counted as a guess.
async fn verify_at_api(
    app: &Core,
    typed: &str,
    password: Secret,
    attempt: Attempt<'_>,
) -> Result<Person, SignInFailure> {
    let verdict = check_api(app, events::DETAIL_ACCOUNT, typed, password).await;
    match verdict {
        Verdict::SignedIn { sub, username, .. } => {
            attempt.succeeded(None);
            Ok(Person::Api { sub, username })
        }
        Verdict::Wrong => {
            attempt.failed(None);
            tracing::info!("account sign-in refused by the login API");
            Err(SignInFailure::WrongCredentials)
        }
        Verdict::Busy | Verdict::Unavailable => {
            attempt.unchecked();
            if matches!(verdict, Verdict::Busy) {
                count(&app.metrics.logins_refused);
                Err(SignInFailure::Busy)
            } else {
                count(&app.metrics.logins_unavailable);
                Err(SignInFailure::Unavailable)
            }
        }
        Verdict::Fault => Err(SignInFailure::Unavailable),
    }
}

/// The CSRF token of a signed-in page's forms: derived from the session token.
pub fn csrf_for(session_token: &str) -> String {
    let key = secret::sha256(format!("linkgate account session\0{session_token}").as_bytes());
    URL_SAFE_NO_PAD.encode(secret::hmac_sha256(&key, &[b"csrf"]))
}

/// A signed-in request: the session, its local user (`None` for a login API customer, whose
/// password and two-factor sign-in live in the operator's system), and the cookie's token.
pub struct SignedIn {
    pub session: Session,
    pub user: Option<User>,
    pub token: Secret,
}

impl SignedIn {
    /// The person's `sub`: a local user's, or the login API's subject.
    pub fn sub(&self) -> &str {
        &self.session.sub
    }

    pub fn username(&self) -> &str {
        &self.session.username
    }
}

/// The session the cookie names, if it is live and its kind of person may still sign in under
/// `[login] source` (a local user's session ends when the source becomes `api`, an API
/// customer's when it becomes `local`).
pub fn current(app: &Core, cookie: Option<&str>) -> Result<Option<SignedIn>, StoreError> {
    let Some(token) = cookie.filter(|c| c.starts_with(TOKEN_PREFIX)) else {
        return Ok(None);
    };
    let token = Secret::new(token);
    let source = app.config.login.source;
    Ok(app
        .store
        .session(&token.key(), now())?
        .filter(|(_, user)| match user {
            Some(_) => source != LoginSource::Api,
            None => source.uses_api(),
        })
        .map(|(session, user)| SignedIn {
            session,
            user,
            token,
        }))
}

/// What the sign-in form's post led to.
pub enum SignInOutcome {
    /// Signed in: the new session's token for the cookie.
    Started(Secret),
    /// The form again, with the failure and the name typed.
    Failed {
        failure: SignInFailure,
        username: String,
    },
    /// The form's CSRF token does not match its cookie.
    Stale,
}

/// `POST /account/sign-in`.
pub async fn sign_in(
    app: &Core,
    body: &[u8],
    cookie_csrf: Option<&str>,
    ip: IpAddr,
) -> SignInOutcome {
    let Ok(params) = Params::parse(body) else {
        return SignInOutcome::Stale;
    };
    let field = |name| params.single(name).ok().flatten().unwrap_or("");
    if !double_submit_ok(field("csrf"), cookie_csrf) {
        return SignInOutcome::Stale;
    }
    let typed = field("username");
    let failed = |failure| SignInOutcome::Failed {
        failure,
        username: typed.chars().take(MAX_REFILL).collect(),
    };
    let password = Secret::new(field("password"));
    let person = match verify_with_code(app, typed, password, Some(field("code")), ip).await {
        Ok(person) => person,
        Err(failure) => return failed(failure),
    };
    match start_session(app, &person).await {
        Ok(token) => {
            // Kept for a local user's page; a login API customer has no record to keep it with.
            if let Person::Local(user) = &person {
                let kind = EventKind::SignIn;
                events::record(
                    &app.store,
                    &user.sub,
                    &user.username,
                    kind,
                    Some(ip),
                    events::DETAIL_ACCOUNT,
                );
            }
            SignInOutcome::Started(token)
        }
        Err(e) => {
            tracing::error!("starting a session failed: {e}");
            failed(SignInFailure::Unavailable)
        }
    }
}

async fn start_session(app: &Core, person: &Person) -> Result<Secret, StoreError> {
    let token = secret::new_token(TOKEN_PREFIX);
    let key = token.key();
    match person {
        Person::Local(user) => app.store.create_session(&key, user, now(), SESSION_SECS)?,
        Person::Api { sub, username } => {
            app.store
                .create_api_session(&key, sub, username, now(), SESSION_SECS)?
        }
    };
    app.store.flush().await?;
    Ok(token)
}

/// A random CSRF token in the form matches the one in the cookie.
pub fn double_submit_ok(form: &str, cookie: Option<&str>) -> bool {
    !form.is_empty()
        && cookie.is_some_and(|c| secret::ct_eq(&Secret::new(c).key(), &Secret::new(form).key()))
}

/// One of the user's links, for the page.
pub struct LinkedApp {
    pub grant_id: String,
    pub client_name: String,
    pub linked_since: u64,
    pub last_refresh: Option<u64>,
}

/// The signed-in person's linked apps, named as the config names their clients.
pub fn linked_apps(app: &Core, signed: &SignedIn) -> Result<Vec<LinkedApp>, StoreError> {
    Ok(app
        .store
        .linked_apps(signed.sub())?
        .into_iter()
        .filter(|(grant, _)| own_kind(signed, grant))
        .map(|(grant, last_refresh): (Grant, Option<u64>)| LinkedApp {
            client_name: app
                .config
                .client(&grant.client_id)
                .map_or(grant.client_id.clone(), |c| c.name.clone()),
            grant_id: grant.id,
            linked_since: grant.created_at,
            last_refresh,
        })
        .collect())
}

/// One line of "recent activity".
pub struct Activity {
    pub kind: EventKind,
    pub at: u64,
    pub ip: Option<String>,
    /// A client's name, `account`, `--set-password`, …
    pub detail: String,
}

/// The user's recent security events, newest first, with clients named as the config names them.
pub fn recent_activity(app: &Core, sub: &str) -> Result<Vec<Activity>, StoreError> {
    Ok(app
        .store
        .recent_events(sub)?
        .into_iter()
        .map(|event| Activity {
            kind: event.kind,
            at: event.at,
            ip: event.ip,
            detail: app
                .config
                .client(&event.detail)
                .map_or(event.detail.clone(), |c| c.name.clone()),
        })
        .collect())
}

/// What a signed-in form's post did.
pub enum ActionOutcome {
    /// Done: back to the page with this notice.
    Done(Notice),
    /// The password changed: the browser's new session, and the notice.
    PasswordChanged(Secret),
    SignedOut,
    /// The password form again, with what was wrong.
    PasswordRefused(PasswordFormProblem),
    /// CSRF token missing or wrong, or the form is unreadable.
    Stale,
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Unlinked,
    /// Two-factor sign-in was turned off.
    TotpOff,
    PasswordChanged,
    /// The app was already unlinked (another tab, or it unlinked itself).
    AlreadyUnlinked,
}

impl Notice {
    pub fn code(self) -> &'static str {
        match self {
            Notice::Unlinked => "unlinked",
            Notice::PasswordChanged => "password",
            Notice::AlreadyUnlinked => "gone",
            Notice::TotpOff => "totp-off",
        }
    }

    pub fn from_code(code: &str) -> Option<Notice> {
        [
            Notice::Unlinked,
            Notice::PasswordChanged,
            Notice::AlreadyUnlinked,
            Notice::TotpOff,
        ]
        .into_iter()
        .find(|n| n.code() == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordFormProblem {
    Current(SignInFailure),
    Rule(PasswordProblem),
    Mismatch,
}

/// `POST /account/{unlink,password,sign-out}` by a signed-in browser.
pub async fn act(
    app: &Core,
    action: &str,
    body: &[u8],
    signed: &SignedIn,
    ip: IpAddr,
) -> ActionOutcome {
    let Ok(params) = Params::parse(body) else {
        return ActionOutcome::Stale;
    };
    let field = |name| params.single(name).ok().flatten().unwrap_or("");
    let expected = csrf_for(signed.token.expose());
    if !secret::ct_eq(field("csrf").as_bytes(), expected.as_bytes()) {
        return ActionOutcome::Stale;
    }
    let result = match action {
        "unlink" => unlink(app, signed, field("grant"), ip).await,
        // A login API customer's password lives in the operator's system: no form, no change.
        "password" if signed.user.is_none() => Ok(ActionOutcome::Stale),
        "password" => {
            change_password(
                app,
                signed,
                field("current"),
                field("password"),
                field("repeat"),
                field("end_links") == "yes",
                ip,
            )
            .await
        }
        _ => sign_out(app, signed).await,
    };
    result.unwrap_or_else(|e| {
        tracing::error!("an account change failed: {e}");
        ActionOutcome::Unavailable
    })
}

async fn unlink(
    app: &Core,
    signed: &SignedIn,
    grant_id: &str,
    ip: IpAddr,
) -> Result<ActionOutcome, StoreError> {
    let grant = match app.store.grant(grant_id)? {
        // Only a grant of this kind of person: a login API subject spelled like a local user's
        // sub is someone else.
        Some(grant) if own_kind(signed, &grant) => grant,
        _ => return Ok(ActionOutcome::Done(Notice::AlreadyUnlinked)),
    };
    if !app.store.revoke_own_grant(signed.sub(), grant_id)? {
        return Ok(ActionOutcome::Done(Notice::AlreadyUnlinked));
    }
    app.store.flush().await?;
    if signed.user.is_some() {
        let kind = EventKind::Unlink;
        events::record(
            &app.store,
            signed.sub(),
            signed.username(),
            kind,
            Some(ip),
            &grant.client_id,
        );
    }
    Ok(ActionOutcome::Done(Notice::Unlinked))
}

/// Whether `grant` was issued to the kind of person signed in: a local user's grants carry their
/// generation, a login API customer's `LOGIN_API_GENERATION`.
fn own_kind(signed: &SignedIn, grant: &Grant) -> bool {
    (grant.generation == LOGIN_API_GENERATION) == signed.user.is_none()
}

async fn change_password(
    app: &Core,
    signed: &SignedIn,
    current: &str,
    new: &str,
    repeat: &str,
    end_links: bool,
    ip: IpAddr,
) -> Result<ActionOutcome, StoreError> {
    let refused = |problem| Ok(ActionOutcome::PasswordRefused(problem));
    if let Err(rule) = check_new_password(new) {
        return refused(PasswordFormProblem::Rule(rule));
    }
    if !secret::ct_eq(new.as_bytes(), repeat.as_bytes()) {
        return refused(PasswordFormProblem::Mismatch);
    }
    let Some(user) = &signed.user else {
        return Ok(ActionOutcome::Stale);
    };
    let verified = verify(app, &user.username, Secret::new(current), ip).await;
    match verified {
        Ok(Person::Local(checked)) if checked.sub == user.sub => {}
        Ok(_) => {
            return refused(PasswordFormProblem::Current(
                SignInFailure::WrongCredentials,
            ))
        }
        Err(failure) => return refused(PasswordFormProblem::Current(failure)),
    }
    let new = Secret::new(new);
    let Some(hash) = app
        .password_workers
        .run(move || secret::hash_password(&new))
        .await
    else {
        return Ok(ActionOutcome::Unavailable);
    };
    let Ok(name) = Username::parse(&user.username) else {
        return Ok(ActionOutcome::Stale);
    };
    let Some(changed) = app
        .store
        .change_password(&user.sub, &name, hash, end_links)?
    else {
        return Ok(ActionOutcome::Stale);
    };
    app.store.end_session(&signed.token.key())?;
    let token = start_session(app, &Person::Local(changed)).await?;
    let detail = match end_links {
        true => events::DETAIL_ACCOUNT_APPS_OUT,
        false => events::DETAIL_ACCOUNT,
    };
    let kind = EventKind::PasswordChanged;
    events::record(
        &app.store,
        &user.sub,
        &user.username,
        kind,
        Some(ip),
        detail,
    );
    Ok(ActionOutcome::PasswordChanged(token))
}

async fn sign_out(app: &Core, signed: &SignedIn) -> Result<ActionOutcome, StoreError> {
    app.store.end_session(&signed.token.key())?;
    app.store.flush().await?;
    Ok(ActionOutcome::SignedOut)
}
