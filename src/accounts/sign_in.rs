//! Who checks a username and password, and what it came to: a local user's argon2id hash (an
//! unknown name costs the same check against a dummy hash), or the operator's login API. Used by
//! the browser's sign-in at `/authorize` and by `/account`.

use crate::app::App;
use crate::base::secret::{self, Secret};
use crate::config::LoginSource;
use crate::login_api::{Failure, Outcome};
use crate::store::{User, Username};

/// Who checks a password: a local user's hash (or, for an unknown name with `source = "local"`,
/// the equal-cost dummy check), or the operator's login API.
pub enum Checker {
    Local(Option<User>),
    Api,
}

/// `[login] source`: `local` checks every name here, `api` none, `both` the names of local users
/// here and any other name at the API.
pub fn checker(
    app: &App,
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

/// A local user's argon2 hash (or, for an unknown name, a dummy check of the same cost).
pub async fn check_local(app: &App, user: Option<User>, password: Secret) -> Verdict {
    let check = app
        .password_workers
        .run(move || check_password(user, &password, secret::verify_password))
        .await;
    match check {
        Some(Some(user)) => Verdict::SignedIn {
            credentials: app.pending.credentials_fingerprint(&user),
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
pub async fn check_api(app: &App, context: &str, typed: &str, password: Secret) -> Verdict {
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
