//! Who checks a username and password, and what it came to: a local user's argon2id hash (an
//! unknown name costs the same check against a dummy hash), or the operator's login API. Used by
//! the browser's sign-in at `/authorize` and by `/account`.
//!
//! And how every check of a user's secret is held in the login throttle (`Attempt`): reserved
//! before anything is checked, then settled once by what the check came to. The five places that
//! check a secret go through it: the password and the two-factor code at `/authorize`, the
//! password (and code) at `/account`, and the code that turns two-factor sign-in off.

use super::throttle;
use crate::app::Core;
use crate::base::secret::{self, Secret};
use crate::config::LoginSource;
use crate::login_api::{Failure, Outcome};
use crate::metrics::count;
use crate::store::{now, EventKind, Reservation, StoreError, User, Username};
use std::net::IpAddr;
use tokio::sync::SemaphorePermit;

/// Who checks a password: a local user's hash (or, for an unknown name with `source = "local"`,
/// the equal-cost dummy check), or the operator's login API.
pub enum Checker {
    Local(Option<User>),
    Api,
}

/// `[login] source`: `local` checks every name here, `api` none, `both` the names of local users
/// here and any other name at the API.
pub fn checker(
    app: &Core,
    name: &Result<Username, String>,
) -> Result<Checker, crate::store::StoreError> {
    let source = app.config.login.source;
    if source == LoginSource::Api {
        return Ok(Checker::Api);
    }
    let user = match name {
        Ok(name) => app.store.user(name)?,
        Err(_) => None,
    };
    Ok(match (source, user) {
        (LoginSource::Both, None) => Checker::Api,
        (_, user) => Checker::Local(user),
    })
}

/// What checking a username and password came to.
pub enum Verdict {
    SignedIn {
        sub: String,
        /// What `/userinfo` reports as `preferred_username`.
        username: String,
        /// Shown on the consent page instead of `username` (from the login API's answer).
        display_name: Option<String>,
        /// What the consent form is bound to (`Stage::Consent`).
        credentials: String,
    },
    Wrong,
    /// No capacity to check right now (the login API's in-flight limit).
    Busy,
    /// The login API could not answer (already logged and counted by reason).
    Unavailable,
    /// A fault of our own (the worker pool), already logged.
    Fault,
}

/// The consent binding of a login API customer. They have no local record to check again at
/// consent (their password lives in the operator's system), so the sealed form's expiry bounds
/// it. A local user's binding is a 16-character fingerprint and never equals this.
pub const LOGIN_API_CREDENTIALS: &str = crate::store::LOGIN_API_CREDENTIALS;

/// A local user's argon2 hash (or, for an unknown name, a dummy check of the same cost);
/// `credentials` says what a consent form of the user is bound to (`oauth::pending`).
pub async fn check_local(
    app: &Core,
    user: Option<User>,
    password: Secret,
    credentials: impl FnOnce(&User) -> String,
) -> Verdict {
    let check = app
        .password_workers
        .run(move || check_password(user, &password, secret::verify_password))
        .await;
    match check {
        Some(Some(user)) => Verdict::SignedIn {
            credentials: credentials(&user),
            sub: user.sub,
            username: user.username,
            display_name: None,
        },
        Some(None) => Verdict::Wrong,
        None => {
            tracing::error!("the password workers are gone");
            Verdict::Fault
        }
    }
}

/// The operator's login API: its subject becomes the grant's `sub`; the name the customer typed
/// (trimmed) becomes `preferred_username`, as a local user's username does.
/// `context` names who asked in the log (a client id, or `account`).
pub async fn check_api(app: &Core, context: &str, typed: &str, password: Secret) -> Verdict {
    let Some(api) = &app.login_api else {
        tracing::error!("login.source needs the login API, but its client could not be built");
        return Verdict::Fault;
    };
    let typed = typed.trim();
    match api.verify(typed, &password).await {
        Outcome::Accepted {
            subject,
            display_name,
        } => Verdict::SignedIn {
            sub: subject,
            username: typed.to_string(),
            display_name,
            credentials: LOGIN_API_CREDENTIALS.to_string(),
        },
        Outcome::Refused(_) => Verdict::Wrong,
        Outcome::Unavailable(failure) => {
            app.metrics.login_api_unavailable(failure.reason());
            tracing::warn!(client = %context, reason = %failure, "the login API could not check a password");
            match failure {
                Failure::Busy => Verdict::Busy,
                _ => Verdict::Unavailable,
            }
        }
    }
}

/// A place in argon2's bounded queue for a local check (the login API has its own in-flight
/// limit, so an API check needs none): `Err` when the queue is full, counted as refused. A flood
/// of logins is turned away at once instead of piling up.
pub fn queue_for<'a>(
    app: &'a Core,
    checker: &Checker,
) -> Result<Option<SemaphorePermit<'a>>, Busy> {
    match checker {
        Checker::Local(_) => match app.login_queue.try_acquire() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                count(&app.metrics.logins_refused);
                Err(Busy)
            }
        },
        Checker::Api => Ok(None),
    }
}

/// The login queue is full.
pub struct Busy;

/// Why an attempt could not be reserved.
pub enum Refused {
    /// Too many failures for this name or address: seconds to wait (counted as refused).
    Locked(u64),
    /// The throttle's store failed.
    Store(StoreError),
}

/// One check of a user's secret, counted in the login throttle before it is made, so a burst of
/// concurrent guesses is held exactly like the same guesses in a row (`accounts::throttle`); for
/// the login API, a locked sign-in never reaches it. Settled by one of its methods; dropped
/// unsettled (a fault after the reservation), it stays counted as a failure.
pub struct Attempt<'a> {
    app: &'a Core,
    reservation: Reservation,
    ip: IpAddr,
    /// The security event's detail: the client's id, or `events::DETAIL_ACCOUNT`.
    via: &'a str,
}

/// Reserves an attempt for `name` (what was typed, when it is no valid username) from `ip`.
pub fn reserve<'a>(
    app: &'a Core,
    name: &str,
    ip: IpAddr,
    via: &'a str,
) -> Result<Attempt<'a>, Refused> {
    let throttled = throttle::login_keys(&app.store, name, ip)
        .and_then(|keys| app.store.reserve_attempt(&keys, now()));
    match throttled {
        Ok(Ok(reservation)) => Ok(Attempt {
            app,
            reservation,
            ip,
            via,
        }),
        Ok(Err(wait)) => {
            count(&app.metrics.logins_refused);
            Err(Refused::Locked(wait))
        }
        Err(e) => Err(Refused::Store(e)),
    }
}

impl Attempt<'_> {
    /// Signed in: counted, the throttle cleared, and for a local user (`who`: sub and username)
    /// the sign-in kept among their security events.
    pub fn succeeded(self, who: Option<(&str, &str)>) {
        self.record(who, EventKind::SignIn);
        count(&self.app.metrics.logins_ok);
        self.cleared();
    }

    /// The secret was wrong: counted, and kept among a local user's events; the reservation
    /// stays counted, which is what slows a guesser.
    pub fn failed(self, who: Option<(&str, &str)>) {
        self.record(who, EventKind::SignInFailed);
        count(&self.app.metrics.logins_failed);
    }

    /// The throttle cleared, with nothing counted or recorded: the password was right and what
    /// comes next (enrolling a second factor, turning it off) records its own event.
    pub fn cleared(self) {
        if let Err(e) = throttle::succeeded(&self.app.store, self.reservation) {
            tracing::warn!("clearing the login throttle failed: {e}");
        }
    }

    /// The password was right and a two-factor code is still to come: the address's count is
    /// given back, the username's stays until a right code clears it, so someone who knows the
    /// password cannot reset it between guesses of the code by signing in again.
    pub fn awaits_code(self) {
        if let Err(e) = throttle::awaits_code(&self.app.store, self.reservation) {
            tracing::warn!("giving back the address's throttle reservation failed: {e}");
        }
    }

    /// The secret was never judged (the login API busy or unavailable): given back, not counted
    /// as a guess.
    pub fn unchecked(self) {
        if let Err(e) = throttle::unchecked(&self.app.store, self.reservation) {
            tracing::warn!("giving back a login throttle reservation failed: {e}");
        }
    }

    fn record(&self, who: Option<(&str, &str)>, kind: EventKind) {
        if let Some((sub, username)) = who {
            super::events::record(
                &self.app.store,
                sub,
                username,
                kind,
                Some(self.ip),
                self.via,
            );
        }
    }
}

/// The user, if `password` is theirs. An unknown user costs the same: the password is checked
/// against `secret::dummy_hash()`, so timing does not reveal which usernames exist. `verify` is
/// the argon2 check (`secret::verify_password`; a recording stand-in in tests).
pub fn check_password(
    user: Option<User>,
    password: &Secret,
    verify: impl Fn(&Secret, &str) -> bool,
) -> Option<User> {
    match user {
        Some(user) => verify(password, &user.password_hash).then_some(user),
        None => {
            let _ = verify(password, secret::dummy_hash());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::sync::atomic::Ordering;

    fn app() -> Core {
        let config =
            crate::config::parse_for_tests(crate::config::tests::GOOD).expect("the test config");
        let store = crate::store::Store::in_memory().expect("an in-memory store");
        crate::store::fixtures::user(&store);
        Core::new(config, store)
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const USER: Option<(&str, &str)> = Some(("s", "u"));

    fn kinds(app: &Core) -> Vec<EventKind> {
        let events = app.store.recent_events("s").expect("events");
        events.into_iter().map(|e| e.kind).collect()
    }

    #[test]
    fn failures_count_until_the_name_and_address_lock_and_each_is_kept_as_an_event() {
        let app = app();
        for _ in 0..6 {
            let Ok(attempt) = reserve(&app, "u", IP, "alexa-skill") else {
                panic!("5 free failures, and a sixth that locks");
            };
            attempt.failed(USER);
        }
        let Err(Refused::Locked(wait)) = reserve(&app, "u", IP, "alexa-skill") else {
            panic!("the seventh attempt must be refused");
        };
        assert!(wait > 0);
        assert_eq!(app.metrics.logins_failed.load(Ordering::Relaxed), 6);
        assert_eq!(app.metrics.logins_refused.load(Ordering::Relaxed), 1);
        assert_eq!(kinds(&app), vec![EventKind::SignInFailed; 6]);
    }

    #[test]
    fn a_success_clears_the_count_and_is_kept_as_a_sign_in() {
        let app = app();
        for _ in 0..5 {
            reserve(&app, "u", IP, "account")
                .ok()
                .expect("free")
                .failed(None);
        }
        reserve(&app, "u", IP, "account")
            .ok()
            .expect("free")
            .succeeded(USER);
        for _ in 0..6 {
            let attempt = reserve(&app, "u", IP, "account");
            attempt.ok().expect("the count starts again").failed(None);
        }
        assert!(reserve(&app, "u", IP, "account").is_err());
        assert_eq!(kinds(&app), vec![EventKind::SignIn]);
        assert_eq!(app.metrics.logins_ok.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_secret_never_judged_is_given_back_not_counted() {
        let app = app();
        for _ in 0..60 {
            reserve(&app, "u", IP, "account")
                .ok()
                .expect("never counted")
                .unchecked();
        }
        assert_eq!(app.metrics.logins_failed.load(Ordering::Relaxed), 0);
        assert!(kinds(&app).is_empty());
    }

    #[test]
    fn a_burst_of_concurrent_guesses_is_held_like_the_same_guesses_in_a_row() {
        let app = app();
        let admitted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..16 {
                scope.spawn(|| {
                    if let Ok(attempt) = reserve(&app, "u", IP, "alexa-skill") {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        attempt.failed(USER);
                    }
                });
            }
        });
        assert_eq!(
            admitted.load(Ordering::Relaxed),
            6,
            "5 free and one that locks"
        );
        assert_eq!(app.metrics.logins_refused.load(Ordering::Relaxed), 10);
    }

    /// Runs `check_password` with a stand-in for argon2 that records the hashes it was given.
    fn checked(user: Option<User>, password: &str, matches: bool) -> (Option<User>, Vec<String>) {
        let hashes = RefCell::new(Vec::new());
        let found = check_password(user, &Secret::new(password), |_, phc| {
            hashes.borrow_mut().push(phc.to_string());
            matches
        });
        (found, hashes.into_inner())
    }

    fn alice() -> User {
        User {
            sub: "sub-alice".into(),
            username: "alice".into(),
            password_hash: secret::hash_password(&Secret::new("correct horse")),
            created_at: 0,
            generation: 0,
            totp: None,
        }
    }

    /// The argon2 parameters of a PHC string: `$argon2id$v=19$m=19456,t=2,p=1$…`.
    fn parameters(phc: &str) -> String {
        phc.split('$').take(4).collect::<Vec<_>>().join("$")
    }

    #[test]
    fn an_unknown_user_costs_one_argon2_check_with_a_real_users_parameters() {
        let (found, hashes) = checked(None, "some password", true);
        assert!(found.is_none(), "an unknown user never signs in");
        assert_eq!(hashes.len(), 1, "exactly one check, as for a real user");
        assert!(secret::is_phc_hash(&hashes[0]));
        assert_eq!(parameters(&hashes[0]), parameters(&alice().password_hash));
        assert_eq!(parameters(&hashes[0]), "$argon2id$v=19$m=19456,t=2,p=1");
        // The dummy check runs for real, at full cost, in production.
        assert!(!secret::verify_password(
            &Secret::new("x"),
            secret::dummy_hash()
        ));
    }

    #[test]
    fn a_known_user_is_checked_against_their_own_hash() {
        let user = alice();
        let (found, hashes) = checked(Some(user.clone()), "wrong horse", false);
        assert!(found.is_none());
        assert_eq!(hashes, vec![user.password_hash.clone()]);
        let (found, _) = checked(Some(user), "correct horse", true);
        assert_eq!(found.map(|u| u.sub).as_deref(), Some("sub-alice"));
    }
}
