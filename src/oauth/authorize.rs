//! The browser side of the code grant (RFC 6749 §4.1.1–4.1.2): check the request, sign the
//! customer in, ask for consent, and send the browser back to the client with a code.
//!
//! Where an error goes is the rule that matters most (§4.1.2.1): while the client or its
//! redirect URI is in doubt, the customer sees an error page and is never redirected; after that,
//! errors go back to the client's registered redirect URI.

use super::linking_log::{Reference, Step as LinkStep};
use super::pending::{Opened, Pending, Stage};
use super::{normalize_scope, OAuthError};
use crate::accounts::second_factor::{self, SecondFactor};
use crate::accounts::sign_in::{
    self, check_api, check_local, checker, queue_for, Checker, Refused, Verdict,
    LOGIN_API_CREDENTIALS,
};
use crate::base::secret::{self, Secret};
use crate::base::urlencoded::{append_query, ParamError, Params};
use crate::config::{Client, GrantType};
use crate::metrics::count;
use crate::oauth::server::Server;
use crate::store::{now, CodeRecord, Username};
use std::net::IpAddr;

/// What the browser gets next.
#[derive(Debug)]
pub enum Step {
    Login {
        form: Form,
        failure: Option<LoginFailure>,
    },
    Consent {
        form: Form,
        username: String,
    },
    /// The two-factor code page, after a right password.
    SecondFactor {
        form: Form,
        failure: Option<LoginFailure>,
    },
    /// Two-factor enrolment required by `[accounts] require_totp`: the key (base32), its QR
    /// code (SVG), and whether a code was wrong.
    Enrol {
        form: Form,
        key: String,
        qr_svg: String,
        wrong_code: bool,
    },
    /// Just enrolled: the recovery codes, shown once, and a form that goes on to consent.
    Recovery {
        form: Form,
        codes: Vec<String>,
    },
    /// A redirect to the client (a code, or an error the client should see).
    Redirect(String),
    /// A page for a fault on our side (503).
    ErrorPage(ErrorPage),
    /// A page for a refused request, with the reference the operator's log names it by.
    Refused {
        page: ErrorPage,
        reference: Reference,
    },
}

/// What a login or consent form needs.
#[derive(Debug)]
pub struct Form {
    pub request: String,
    pub csrf: Secret,
    pub client_name: String,
    pub scope: String,
    /// The username typed before a failed attempt, to fill the field again.
    pub username: Option<String>,
    /// The `user_locale` hint `/authorize` carried, for the page's language.
    pub locale: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong username or password (never which of the two).
    WrongCredentials,
    /// No capacity to check a password right now.
    Busy,
    /// Too many failures for this username or address: seconds to wait.
    Locked(u64),
    /// The operator's login API could not answer (down, slow, or a malformed answer); not the
    /// customer's fault and not counted as a failed guess.
    Unavailable,
}

/// Why the browser gets an error page instead of a redirect. The page explains it in the
/// customer's language (`pages::error`); the status is decided here, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPage {
    /// The `/authorize` query is not UTF-8.
    LinkNotUtf8,
    /// A parameter that must appear once appears more often.
    LinkRepeated(&'static str),
    /// A required parameter is missing.
    LinkMissing(&'static str),
    UnknownClient,
    UnregisteredRedirectUri,
    /// The posted form is not UTF-8.
    FormNotUtf8,
    /// The posted form lacks its hidden fields.
    FormIncomplete,
    /// The form is unknown, expired, already used, or its CSRF token does not match.
    FormExpired,
    /// The client was removed from the config while the customer was signing in.
    ClientGone,
    /// A storage fault while signing in.
    SignInUnavailable,
    /// A storage fault while issuing the code.
    LinkingUnavailable,
    /// The user was removed or their password changed while the consent page was open.
    SignInAgain,
}

impl ErrorPage {
    pub fn status(self) -> u16 {
        match self {
            ErrorPage::SignInUnavailable | ErrorPage::LinkingUnavailable => 503,
            _ => 400,
        }
    }

    /// The name the linking log gives it.
    pub fn code(self) -> &'static str {
        match self {
            ErrorPage::LinkNotUtf8 | ErrorPage::LinkRepeated(_) | ErrorPage::LinkMissing(_) => {
                "invalid_request"
            }
            ErrorPage::UnknownClient => "unknown_client",
            ErrorPage::UnregisteredRedirectUri => "unregistered_redirect_uri",
            ErrorPage::FormNotUtf8 | ErrorPage::FormIncomplete => "bad_form",
            ErrorPage::FormExpired => "form_expired",
            ErrorPage::ClientGone => "client_gone",
            ErrorPage::SignInUnavailable | ErrorPage::LinkingUnavailable => "server_error",
            ErrorPage::SignInAgain => "account_changed",
        }
    }

    /// What the operator is told about it, when the page itself is all there is to say.
    fn reason(self) -> &'static str {
        match self {
            ErrorPage::FormNotUtf8 => "the posted form is not UTF-8",
            ErrorPage::FormIncomplete => "the posted form lacks its hidden fields",
            ErrorPage::FormExpired => {
                "the form expired (15 minutes), was already used, or its CSRF cookie is missing \
                 or another (a web view that drops cookies?)"
            }
            ErrorPage::ClientGone => "the client was removed from the config during the sign-in",
            ErrorPage::SignInAgain => {
                "the account changed since sign-in (password changed, two-factor turned on, or \
                 user removed)"
            }
            _ => "the request is invalid",
        }
    }
}

/// Google's `user_locale` parameter (e.g. `de_DE`), when it looks like a locale. Kept with the
/// pending authorization so every page of the flow speaks the language the app asked for.
pub fn user_locale(params: &Params) -> Option<String> {
    params
        .single("user_locale")
        .ok()
        .flatten()
        .filter(|l| {
            (1..=35).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .map(str::to_string)
}

/// `GET /authorize`: validates the request and shows the login page. A refusal is logged with
/// its reason (`linking_log`); an error page shows its reference.
pub fn begin(app: &Server, query: &[u8]) -> Step {
    match decide(&app.config.clients, query, now()) {
        Decision::Proceed { client, pending } => login_form(app, client, *pending, None, None),
        Decision::ErrorPage(page) => {
            let (client, reason) = explain_link(app, query, page);
            let known = client
                .as_deref()
                .is_some_and(|id| app.config.client(id).is_some());
            let reference = app.linking.refused(
                LinkStep::Authorize,
                client.as_deref(),
                known,
                page.code(),
                &reason,
            );
            Step::Refused { page, reference }
        }
        Decision::Redirect { to, error, reason } => {
            let client = Params::parse(query)
                .ok()
                .and_then(|p| p.single("client_id").ok().flatten().map(str::to_string));
            app.linking
                .refused(LinkStep::Authorize, client.as_deref(), true, error, &reason);
            Step::Redirect(to)
        }
    }
}

/// Who and why, for the log, of an `/authorize` request refused with `page`: the client id it
/// named and what exactly is wrong, with what is configured instead.
fn explain_link(app: &Server, query: &[u8], page: ErrorPage) -> (Option<String>, String) {
    let params = Params::parse(query).ok();
    let get = |name| {
        params
            .as_ref()
            .and_then(|p| p.single(name).ok().flatten())
            .map(|v| v.chars().take(300).collect::<String>())
    };
    let client = get("client_id");
    let configured = || {
        let ids: Vec<&str> = app.config.clients.iter().map(|c| c.id.as_str()).collect();
        ids.join(", ")
    };
    let registered = || {
        client
            .as_deref()
            .and_then(|id| app.config.client(id))
            .map_or(String::new(), |c| c.redirect_uris.join(", "))
    };
    let reason = match page {
        ErrorPage::LinkNotUtf8 => "the /authorize query is not UTF-8".to_string(),
        ErrorPage::LinkRepeated(name) => format!("parameter {name} appears more than once"),
        ErrorPage::LinkMissing("redirect_uri") => format!(
            "no redirect_uri, and the client has several registered: {}",
            registered()
        ),
        ErrorPage::LinkMissing(name) => format!("parameter {name} is missing"),
        ErrorPage::UnknownClient => format!(
            "client_id {} is not configured (configured: {})",
            client.clone().unwrap_or_default(),
            configured()
        ),
        ErrorPage::UnregisteredRedirectUri => format!(
            "redirect_uri {} is not registered for client {}; registered: {}",
            get("redirect_uri").unwrap_or_default(),
            client.clone().unwrap_or_default(),
            registered()
        ),
        other => format!("{other:?}"),
    };
    (client, reason)
}

/// What `GET /authorize` decided about a request, before anything is kept.
#[derive(Debug)]
pub enum Decision<'c> {
    /// A valid request from `client`: sign the customer in for `pending`.
    Proceed {
        client: &'c Client,
        pending: Box<Pending>,
    },
    /// The client or its redirect URI is in doubt: an error page, never a redirect.
    ErrorPage(ErrorPage),
    /// A bad request from a known client: the error goes back to its registered redirect URI.
    Redirect {
        to: String,
        error: &'static str,
        /// For the operator's log.
        reason: String,
    },
}

/// The rules of an authorization request (§4.1.1, RFC 7636, RFC 9700) against the configured
/// `clients`: which client, which redirect URI, and whether the rest of the request is valid.
/// `now` starts the authorization's clock.
pub fn decide<'c>(clients: &'c [Client], query: &[u8], now: u64) -> Decision<'c> {
    let params = match Params::parse(query) {
        Ok(params) => params,
        Err(_) => return Decision::ErrorPage(ErrorPage::LinkNotUtf8),
    };
    let client = match params.single("client_id") {
        Err(_) => return Decision::ErrorPage(ErrorPage::LinkRepeated("client_id")),
        Ok(None) => return Decision::ErrorPage(ErrorPage::LinkMissing("client_id")),
        Ok(Some(id)) => match clients.iter().find(|c| c.id == id) {
            Some(client) => client,
            None => return Decision::ErrorPage(ErrorPage::UnknownClient),
        },
    };
    let (redirect_uri, redirect_uri_given) = match params.single("redirect_uri") {
        Err(_) => return Decision::ErrorPage(ErrorPage::LinkRepeated("redirect_uri")),
        Ok(Some(uri)) if client.redirect_uris.iter().any(|r| r == uri) => (uri.to_string(), true),
        Ok(Some(_)) => return Decision::ErrorPage(ErrorPage::UnregisteredRedirectUri),
        Ok(None) if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
        Ok(None) => return Decision::ErrorPage(ErrorPage::LinkMissing("redirect_uri")),
    };
    // From here on the redirect URI is trusted: errors go back to the client.
    let state = params.single("state").ok().flatten().map(str::to_string);
    let fail = |error: OAuthError| {
        let mut query = vec![("error", error.code())];
        let description = error.description();
        query.push(("error_description", &description));
        if let Some(state) = &state {
            query.push(("state", state));
        }
        Decision::Redirect {
            to: append_query(&redirect_uri, &query),
            error: error.code(),
            reason: error.reason(),
        }
    };
    if !client.allows(GrantType::AuthorizationCode) {
        return fail(OAuthError::UnauthorizedClient(
            "this client may not use the authorization code flow (its grant_types)".into(),
        ));
    }
    let resource = match super::target::requested(client, &params) {
        Ok(resource) => resource,
        Err(error) => return fail(error),
    };
    match check_request(client, &params) {
        Ok((scope, code_challenge)) => {
            let mut pending = Pending::new(
                client.id.clone(),
                redirect_uri.clone(),
                redirect_uri_given,
                state.clone(),
                scope,
                code_challenge,
                now,
            );
            pending.locale = user_locale(&params);
            pending.resource = resource;
            Decision::Proceed {
                client,
                pending: Box::new(pending),
            }
        }
        Err(error) => fail(error),
    }
}

/// The checks after the client and redirect URI are known. Returns the scope and PKCE challenge.
fn check_request(client: &Client, params: &Params) -> Result<(String, Option<String>), OAuthError> {
    if let Err(ParamError::Repeated(name)) = params.single("state") {
        return Err(OAuthError::InvalidRequest(format!(
            "parameter `{name}` must not be repeated"
        )));
    }
    match params.single("response_type")? {
        None => {
            return Err(OAuthError::InvalidRequest(
                "response_type is required".into(),
            ))
        }
        Some("code") => {}
        Some(other) => {
            return Err(OAuthError::UnsupportedResponseType(format!(
                "response_type `{other}` is not supported; use `code`"
            )))
        }
    }
    let scope = normalize_scope(params.single("scope")?.unwrap_or("")).ok_or_else(|| {
        OAuthError::InvalidScope("scope contains characters that are not allowed".into())
    })?;
    let challenge = params.single("code_challenge")?;
    let method = params.single("code_challenge_method")?;
    let code_challenge = match (challenge, method) {
        (None, None) if client.require_pkce => {
            return Err(OAuthError::InvalidRequest(
                "this client must use PKCE: send code_challenge with code_challenge_method=S256"
                    .into(),
            ))
        }
        (None, None) => None,
        (None, Some(_)) => {
            return Err(OAuthError::InvalidRequest(
                "code_challenge_method without code_challenge".into(),
            ))
        }
        // RFC 9700 §2.1.1: `plain` offers no protection once the request leaks; only S256.
        (Some(_), method) if method != Some("S256") => {
            return Err(OAuthError::InvalidRequest(
                "code_challenge_method must be S256".into(),
            ))
        }
        (Some(challenge), _) => {
            // RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters.
            if challenge.len() != 43
                || !challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(OAuthError::InvalidRequest("code_challenge must be the base64url SHA-256 of the code_verifier (43 characters)".into()));
            }
            Some(challenge.to_string())
        }
    };
    Ok((scope, code_challenge))
}

/// `POST /authorize`: the login form or the consent form, depending on where the authorization
/// stands. `cookie_csrf` is the CSRF cookie the browser sent. An error page for a refused form
/// is logged with its reason (`linking_log`) and shows its reference.
pub async fn submit(app: &Server, body: &[u8], cookie_csrf: Option<&str>, ip: IpAddr) -> Step {
    let (client, step) = match open_form(app, body, cookie_csrf) {
        Ok((params, opened)) => {
            let client = opened.pending.client_id.clone();
            (Some(client), go_on(app, &params, opened, ip).await)
        }
        Err(page) => (None, Step::ErrorPage(page)),
    };
    match step {
        Step::ErrorPage(page) if page.status() < 500 => {
            let known = client
                .as_deref()
                .is_some_and(|id| app.config.client(id).is_some());
            let stage = match page {
                ErrorPage::SignInAgain => LinkStep::Consent,
                _ => LinkStep::SignIn,
            };
            let reference =
                app.linking
                    .refused(stage, client.as_deref(), known, page.code(), page.reason());
            Step::Refused { page, reference }
        }
        step => step,
    }
}

/// The posted form's fields and its opened seal, or the page refusing it.
fn open_form(
    app: &Server,
    body: &[u8],
    cookie_csrf: Option<&str>,
) -> Result<(Params, Opened), ErrorPage> {
    let params = Params::parse(body).map_err(|_| ErrorPage::FormNotUtf8)?;
    let (Ok(Some(request)), Ok(Some(csrf))) = (params.single("request"), params.single("csrf"))
    else {
        return Err(ErrorPage::FormIncomplete);
    };
    let opened = match app.pending.open(request, csrf, cookie_csrf, now()) {
        Ok(Some(opened)) => opened,
        Ok(None) => return Err(ErrorPage::FormExpired),
        Err(e) => {
            tracing::error!("reading spent forms failed: {e}");
            return Err(ErrorPage::SignInUnavailable);
        }
    };
    Ok((params, opened))
}

/// The step after the form `opened`, by the stage it was sealed at.
async fn go_on(app: &Server, params: &Params, opened: Opened, ip: IpAddr) -> Step {
    let Some(client) = app.config.client(&opened.pending.client_id) else {
        return Step::ErrorPage(ErrorPage::ClientGone);
    };
    match opened.pending.stage.clone() {
        Stage::Login => login(app, client, opened, params, ip).await,
        Stage::Consent {
            sub,
            username,
            credentials,
        } => consent(app, client, opened, params, sub, username, credentials).await,
        Stage::SecondFactor {
            sub,
            username,
            credentials,
        } => {
            let signed = SignedInAs {
                sub,
                username,
                credentials,
            };
            second_factor(app, client, opened, params, signed, ip).await
        }
        Stage::Enrol {
            sub,
            username,
            credentials,
            key,
        } => {
            let signed = SignedInAs {
                sub,
                username,
                credentials,
            };
            enrol(app, client, opened, params, signed, key, ip).await
        }
    }
}

async fn login(app: &Server, client: &Client, opened: Opened, params: &Params, ip: IpAddr) -> Step {
    let Opened { mut pending, nonce } = opened;
    let typed = params
        .single("username")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let password = Secret::new(params.single("password").ok().flatten().unwrap_or(""));
    let name = Username::parse(&typed);
    let again = |pending, failure| {
        // Refilled into the field, but never longer than a username can be.
        let typed = Some(typed.chars().take(MAX_REFILL).collect());
        login_form(app, client, pending, typed, Some(failure))
    };
    // Where the password is checked decides what bounds the work: argon2's queue for a local
    // user, the login API's own in-flight limit (`login_api`) for everyone else.
    let checker = match checker(app, &name) {
        Ok(checker) => checker,
        Err(e) => {
            tracing::error!("reading a user failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    };
    // Bounded queue: a flood of logins is turned away at once (503) instead of piling up; the
    // ones admitted wait at most queue length × one argon2 check.
    let Ok(_queued) = queue_for(app, &checker) else {
        return again(pending, LoginFailure::Busy);
    };
    // The attempt is counted before the password is checked (accounts/sign_in.rs).
    let typed_name = name.as_ref().map_or(typed.as_str(), |n| n.as_str());
    let attempt = match sign_in::reserve(app, typed_name, ip, &client.id) {
        Ok(attempt) => attempt,
        Err(Refused::Locked(wait)) => {
            app.linking.refused(
                LinkStep::SignIn,
                Some(&client.id),
                true,
                "sign_in_locked",
                &format!("too many failed sign-ins for this name or address: locked for {wait} s"),
            );
            return again(pending, LoginFailure::Locked(wait));
        }
        Err(Refused::Store(e)) => {
            tracing::error!("the login throttle failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    };
    // For the linking log: a local user's name (not a secret); never what else was typed, which
    // may be a password typed into the wrong field.
    let who = match &checker {
        Checker::Local(Some(user)) => format!("the wrong password for user {}", user.username),
        Checker::Local(None) => "a username that is no local user".to_string(),
        Checker::Api => "a username and password the login API refused".to_string(),
    };
    // A local user's security events are kept for their /account page; login API users have none.
    let known = match &checker {
        Checker::Local(Some(user)) => Some((user.sub.clone(), user.username.clone())),
        _ => None,
    };
    let two_factor = matches!(&checker, Checker::Local(Some(user)) if user.totp.is_some());
    let must_enrol = app.config.accounts.require_totp
        && matches!(&checker, Checker::Local(Some(user)) if user.totp.is_none());
    let verdict = match checker {
        Checker::Local(user) => {
            let bound_to = |user: &_| app.pending.credentials_fingerprint(user);
            check_local(app, user, password, bound_to).await
        }
        Checker::Api => check_api(app, &client.id, &typed, password).await,
    };
    match verdict {
        Verdict::SignedIn {
            sub,
            username,
            display_name,
            credentials,
        } => {
            // The login form is spent once it signed someone in; of two racing submissions of
            // it, one goes on.
            if let Some(refused) = spend(app, &nonce, pending.expires_at) {
                return refused;
            }
            if two_factor {
                attempt.awaits_code();
                tracing::info!(client = %client.id, "password accepted; asking for the two-factor code");
                pending.stage = Stage::SecondFactor {
                    sub,
                    username,
                    credentials,
                };
                return code_form(app, client, pending, None);
            }
            if must_enrol {
                attempt.cleared();
                tracing::info!(client = %client.id, "password accepted; two-factor enrolment required");
                pending.stage = Stage::Enrol {
                    sub,
                    username: username.clone(),
                    credentials,
                    key: crate::accounts::totp::base32_encode(&crate::accounts::totp::new_secret()),
                };
                return enrol_form(app, client, pending, &username, false);
            }
            tracing::info!(client = %client.id, "login succeeded");
            attempt.succeeded(known.as_ref().map(|(s, u)| (s.as_str(), u.as_str())));
            pending.stage = Stage::Consent {
                sub,
                username: username.clone(),
                credentials,
            };
            pending.display_name = display_name;
            consent_form(app, client, pending, username)
        }
        Verdict::Wrong => {
            tracing::info!(client = %client.id, %ip, "login failed");
            let reason = format!("sign-in with {who}");
            app.linking.refused(
                LinkStep::SignIn,
                Some(&client.id),
                true,
                "wrong_credentials",
                &reason,
            );
            attempt.failed(known.as_ref().map(|(s, u)| (s.as_str(), u.as_str())));
            again(pending, LoginFailure::WrongCredentials)
        }
        // The password was never judged: the attempt is given back, not counted as a guess.
        Verdict::Busy | Verdict::Unavailable => {
            attempt.unchecked();
            if matches!(verdict, Verdict::Busy) {
                count(&app.metrics.logins_refused);
                again(pending, LoginFailure::Busy)
            } else {
                count(&app.metrics.logins_unavailable);
                again(pending, LoginFailure::Unavailable)
            }
        }
        Verdict::Fault => Step::ErrorPage(ErrorPage::SignInUnavailable),
    }
}

/// Who a form in `Stage::SecondFactor` signed in as.
struct SignedInAs {
    sub: String,
    username: String,
    credentials: String,
}

/// The code page's post: a current TOTP code or a recovery code moves on to consent. Every try
/// is reserved in the login throttle (under the username and the address, as a password is)
/// before the code is checked, so a burst of guesses is held like the same guesses in a row.
async fn second_factor(
    app: &Server,
    client: &Client,
    opened: Opened,
    params: &Params,
    signed: SignedInAs,
    ip: IpAddr,
) -> Step {
    let Opened { mut pending, nonce } = opened;
    let SignedInAs {
        sub,
        username,
        credentials,
    } = signed;
    let typed = params.single("code").ok().flatten().unwrap_or("");
    let Ok(name) = Username::parse(&username) else {
        return Step::ErrorPage(ErrorPage::SignInAgain);
    };
    match still_signed_in(app, &username, &credentials) {
        Ok(true) => {}
        Ok(false) => return Step::ErrorPage(ErrorPage::SignInAgain),
        Err(e) => {
            tracing::error!("reading a user failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    }
    let attempt = match sign_in::reserve(app, name.as_str(), ip, &client.id) {
        Ok(attempt) => attempt,
        Err(Refused::Locked(wait)) => {
            app.linking.refused(
                LinkStep::SignIn,
                Some(&client.id),
                true,
                "sign_in_locked",
                &format!("too many wrong two-factor codes for user {name}: locked for {wait} s"),
            );
            return code_form(app, client, pending, Some(LoginFailure::Locked(wait)));
        }
        Err(Refused::Store(e)) => {
            tracing::error!("the login throttle failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    };
    let found = match second_factor::check(&app.store, &name, typed, now()) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!("checking a two-factor code failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    };
    if found == SecondFactor::Wrong {
        tracing::info!(client = %client.id, %ip, "two-factor code wrong");
        app.linking.refused(
            LinkStep::SignIn,
            Some(&client.id),
            true,
            "wrong_code",
            &format!("a wrong two-factor code for user {name}"),
        );
        attempt.failed(Some((&sub, &username)));
        return code_form(app, client, pending, Some(LoginFailure::WrongCredentials));
    }
    if let Err(e) = app.store.flush().await {
        tracing::error!("storing a used two-factor code failed: {e}");
        return Step::ErrorPage(ErrorPage::SignInUnavailable);
    }
    if let Some(refused) = spend(app, &nonce, pending.expires_at) {
        return refused;
    }
    tracing::info!(client = %client.id, recovery = (found == SecondFactor::Recovery), "login succeeded");
    attempt.succeeded(Some((&sub, &username)));
    pending.stage = Stage::Consent {
        sub,
        username: username.clone(),
        credentials,
    };
    consent_form(app, client, pending, username)
}

/// The enrolment page's post (`[accounts] require_totp`): a code for the key turns two-factor
/// sign-in on, then the recovery codes are shown once before consent. Until then the user
/// cannot link: the sealed form only moves on to `Consent` from here.
async fn enrol(
    app: &Server,
    client: &Client,
    opened: Opened,
    params: &Params,
    signed: SignedInAs,
    key: String,
    ip: IpAddr,
) -> Step {
    let Opened { mut pending, nonce } = opened;
    let SignedInAs {
        sub,
        username,
        credentials,
    } = signed;
    let typed = params.single("code").ok().flatten().unwrap_or("");
    let (Ok(name), Some(raw_key)) = (
        Username::parse(&username),
        crate::accounts::totp::base32_decode(&key),
    ) else {
        return Step::ErrorPage(ErrorPage::SignInAgain);
    };
    match still_signed_in(app, &username, &credentials) {
        Ok(true) => {}
        Ok(false) => return Step::ErrorPage(ErrorPage::SignInAgain),
        Err(e) => {
            tracing::error!("reading a user failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    }
    let (codes, keys) = crate::accounts::totp::new_recovery_codes();
    let enabled = second_factor::enable(&app.store, &name, &raw_key, typed, &keys, now());
    let enabled = match enabled {
        Ok(true) => app.store.flush().await.map(|()| true),
        other => other,
    };
    match enabled {
        Ok(true) => {}
        Ok(false) => {
            // Turned on meanwhile (another tab): the code page; else the code was wrong.
            return match app.store.user(&name) {
                Ok(Some(user)) if user.totp.is_some() => {
                    pending.stage = Stage::SecondFactor {
                        sub,
                        username,
                        credentials,
                    };
                    code_form(app, client, pending, None)
                }
                Ok(_) => {
                    pending.stage = Stage::Enrol {
                        sub,
                        username: username.clone(),
                        credentials,
                        key,
                    };
                    enrol_form(app, client, pending, &username, true)
                }
                Err(e) => {
                    tracing::error!("reading a user failed: {e}");
                    Step::ErrorPage(ErrorPage::SignInUnavailable)
                }
            };
        }
        Err(e) => {
            tracing::error!("turning on two-factor sign-in failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    }
    if let Some(refused) = spend(app, &nonce, pending.expires_at) {
        return refused;
    }
    // Bound from now on to the password and the second factor just turned on.
    let credentials = match app.store.user(&name) {
        Ok(Some(user)) if user.sub == sub => app.pending.credentials_fingerprint(&user),
        Ok(_) => return Step::ErrorPage(ErrorPage::SignInAgain),
        Err(e) => {
            tracing::error!("reading a user failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    };
    // Other /account sessions signed in with the password only end, as at a password change.
    if let Err(e) = app.store.end_sessions_of(&sub, None) {
        tracing::warn!("ending the user's other sessions failed: {e}");
    }
    tracing::info!(client = %client.id, "two-factor sign-in turned on; login succeeded");
    for kind in [
        crate::store::EventKind::TotpOn,
        crate::store::EventKind::SignIn,
    ] {
        crate::accounts::events::record(&app.store, &sub, &username, kind, Some(ip), &client.id);
    }
    count(&app.metrics.logins_ok);
    pending.stage = Stage::Consent {
        sub,
        username,
        credentials,
    };
    Step::Recovery {
        form: sealed_form(app, client, pending, None),
        codes,
    }
}

fn enrol_form(
    app: &Server,
    client: &Client,
    pending: Pending,
    username: &str,
    wrong_code: bool,
) -> Step {
    let Stage::Enrol { key, .. } = &pending.stage else {
        return Step::ErrorPage(ErrorPage::SignInUnavailable);
    };
    let key = key.clone();
    let raw = crate::accounts::totp::base32_decode(&key).unwrap_or_default();
    let uri = crate::accounts::totp::otpauth_uri(&app.config.ui.title, username, &raw);
    let Some(qr_svg) = crate::accounts::totp::qr_svg(&uri) else {
        return Step::ErrorPage(ErrorPage::SignInUnavailable);
    };
    Step::Enrol {
        form: sealed_form(app, client, pending, None),
        key,
        qr_svg,
        wrong_code,
    }
}

/// Records the form `nonce` as spent (on every node); the page to answer instead when it
/// already was (a racing or replayed submission) or the store failed.
fn spend(app: &Server, nonce: &str, expires_at: u64) -> Option<Step> {
    match app.pending.spend(nonce, expires_at) {
        Ok(true) => None,
        Ok(false) => Some(Step::ErrorPage(ErrorPage::FormExpired)),
        Err(e) => {
            tracing::error!("recording a spent form failed: {e}");
            Some(Step::ErrorPage(ErrorPage::SignInUnavailable))
        }
    }
}

/// Seals `pending` into the hidden fields of the next page's form (`oauth::pending`).
fn sealed_form(app: &Server, client: &Client, pending: Pending, username: Option<String>) -> Form {
    let scope = pending.scope.clone();
    let locale = pending.locale.clone();
    let (request, csrf) = app.pending.seal(pending);
    Form {
        request,
        csrf,
        client_name: client.name.clone(),
        scope,
        username,
        locale,
    }
}

fn code_form(
    app: &Server,
    client: &Client,
    pending: Pending,
    failure: Option<LoginFailure>,
) -> Step {
    Step::SecondFactor {
        form: sealed_form(app, client, pending, None),
        failure,
    }
}

async fn consent(
    app: &Server,
    client: &Client,
    opened: Opened,
    params: &Params,
    sub: String,
    username: String,
    credentials: String,
) -> Step {
    let Opened { pending, nonce } = opened;
    let state = pending.state.clone();
    let with_state = |mut query: Vec<(&'static str, String)>| {
        if let Some(state) = &state {
            query.push(("state", state.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        append_query(&pending.redirect_uri, &query)
    };
    let allow = match params.single("decision") {
        Ok(Some("allow")) => true,
        Ok(Some("deny")) => false,
        _ => return consent_form(app, client, pending, username),
    };
    // One decision per consent form: of two racing submissions, one goes on.
    if let Some(refused) = spend(app, &nonce, pending.expires_at) {
        return refused;
    }
    if !allow {
        tracing::info!(client = %client.id, "consent denied");
        app.linking.refused(
            LinkStep::Consent,
            Some(&client.id),
            true,
            "access_denied",
            "the customer pressed Deny on the consent page",
        );
        let error = OAuthError::AccessDenied;
        return Step::Redirect(with_state(vec![
            ("error", error.code().to_string()),
            ("error_description", error.description()),
        ]));
    }
    // Only the user as they signed in may allow: not after a removal or a password change.
    match still_signed_in(app, &username, &credentials) {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(client = %client.id, "consent refused: the account changed since sign-in");
            return Step::ErrorPage(ErrorPage::SignInAgain);
        }
        Err(e) => {
            tracing::error!("reading a user failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    }
    // The user's generation now; hardening replaces this with the one seen at sign-in. A login
    // API customer has no local record: their codes and grants carry LOGIN_API_GENERATION.
    let generation = match app.store.user_generation(&username) {
        _ if credentials == LOGIN_API_CREDENTIALS => crate::store::LOGIN_API_GENERATION,
        Ok(Some(current)) if current.sub == sub => current.generation,
        Ok(_) => return Step::ErrorPage(ErrorPage::LinkingUnavailable),
        Err(e) => {
            tracing::error!("reading the user failed: {e}");
            return Step::ErrorPage(ErrorPage::LinkingUnavailable);
        }
    };
    let code = match issue_code(app, client, &pending, sub, username, generation).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("storing an authorization code failed: {e}");
            return Step::ErrorPage(ErrorPage::LinkingUnavailable);
        }
    };
    app.linking
        .succeeded(LinkStep::Consent, &client.id, "allowed: code issued");
    Step::Redirect(with_state(vec![("code", code.expose().to_string())]))
}

/// Issues a single-use code for the request in `pending`, bound to the customer `sub` (as
/// `username`, with the user's `generation`), the client, the redirect URI and the PKCE
/// challenge; durable before it is returned. Counted, and recorded for a local user's /account.
/// The browser's consent and the operator's app (`apps::authorize`) both issue codes here.
pub(crate) async fn issue_code(
    app: &Server,
    client: &Client,
    pending: &Pending,
    sub: String,
    username: String,
    generation: u64,
) -> Result<Secret, crate::store::StoreError> {
    let code = secret::new_token("lgc_");
    let record = CodeRecord {
        client_id: client.id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        redirect_uri_given: pending.redirect_uri_given,
        sub,
        username,
        scope: pending.scope.clone(),
        code_challenge: pending.code_challenge.clone(),
        expires_at: now() + app.config.tokens.code_secs,
        redeemed_by: None,
        generation,
        resource: pending.resource.clone(),
    };
    app.store.put_code(&code.key(), &record)?;
    app.store.flush().await?;
    tracing::info!(client = %client.id, "authorization code issued");
    // Kept for the person's /account page; login API users have none (and no record to end it).
    if record.generation != crate::store::LOGIN_API_GENERATION {
        let kind = crate::store::EventKind::Link;
        crate::accounts::events::record(
            &app.store,
            &record.sub,
            &record.username,
            kind,
            None,
            &client.id,
        );
    }
    count(&app.metrics.codes_issued);
    Ok(code)
}

/// Whether `username` still exists with the password it signed in with.
fn still_signed_in(
    app: &Server,
    username: &str,
    credentials: &str,
) -> Result<bool, crate::store::StoreError> {
    if credentials == LOGIN_API_CREDENTIALS {
        return Ok(true);
    }
    let Ok(name) = Username::parse(username) else {
        return Ok(false);
    };
    Ok(app.store.user(&name)?.is_some_and(|user| {
        secret::ct_eq(
            app.pending.credentials_fingerprint(&user).as_bytes(),
            credentials.as_bytes(),
        )
    }))
}

/// The longest username put back into the login form after a failure.
const MAX_REFILL: usize = 256;

fn login_form(
    app: &Server,
    client: &Client,
    pending: Pending,
    username: Option<String>,
    failure: Option<LoginFailure>,
) -> Step {
    Step::Login {
        form: sealed_form(app, client, pending, username),
        failure,
    }
}

fn consent_form(app: &Server, client: &Client, pending: Pending, username: String) -> Step {
    let username = pending.display_name.clone().unwrap_or(username);
    Step::Consent {
        form: sealed_form(app, client, pending, None),
        username,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALEXA: &str = "https://pitangui.amazon.com/api/skill/link/M2X";
    const LAYLA: &str = "https://layla.amazon.com/api/skill/link/M2X";
    const GOOGLE: &str = "https://oauth-redirect.googleusercontent.com/r/p";
    /// A valid S256 challenge (RFC 7636 appendix B).
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client(id: &str, redirect_uris: &[&str], require_pkce: bool) -> Client {
        Client {
            redirect_uris: redirect_uris.iter().map(|u| u.to_string()).collect(),
            require_pkce,
            ..Client::for_tests(id)
        }
    }

    fn clients() -> Vec<Client> {
        vec![
            client("alexa", &[ALEXA, LAYLA], false),
            client("google", &[GOOGLE], true),
        ]
    }

    /// The decision for a query of `params`, as a browser would send it.
    fn decide_on(params: &[(&str, &str)]) -> String {
        let clients = clients();
        let query = append_query("", params);
        match decide(&clients, query.trim_start_matches('?').as_bytes(), 1000) {
            Decision::Proceed { client, pending } => format!(
                "proceed {} {} given={} scope={:?} challenge={:?} state={:?}",
                client.id,
                pending.redirect_uri,
                pending.redirect_uri_given,
                pending.scope,
                pending.code_challenge,
                pending.state
            ),
            Decision::ErrorPage(page) => format!("page {page:?}"),
            Decision::Redirect { to, .. } => format!("redirect {to}"),
        }
    }

    /// A valid Alexa request with `changes` (a value of "" removes the parameter).
    fn alexa(changes: &[(&'static str, &'static str)]) -> String {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", "alexa"),
            ("redirect_uri", ALEXA),
            ("state", "s1"),
            ("scope", "profile"),
        ];
        for (name, value) in changes {
            params.retain(|(n, _)| n != name);
            if !value.is_empty() {
                params.push((name, value));
            }
        }
        decide_on(&params)
    }

    #[test]
    fn a_valid_request_proceeds_to_the_login() {
        assert_eq!(
            alexa(&[]),
            format!(
                "proceed alexa {ALEXA} given=true scope=\"profile\" challenge=None state=Some(\"s1\")"
            )
        );
        assert!(alexa(&[("redirect_uri", LAYLA)]).starts_with(&format!("proceed alexa {LAYLA}")));
        assert!(alexa(&[("scope", "  profile   email ")]).contains("scope=\"profile email\""));
        assert!(alexa(&[("state", "")]).ends_with("state=None"));
    }

    #[test]
    fn an_unknown_client_or_unregistered_redirect_uri_gets_a_page_never_a_redirect() {
        assert_eq!(alexa(&[("client_id", "nobody")]), "page UnknownClient");
        assert_eq!(
            alexa(&[("client_id", "")]),
            "page LinkMissing(\"client_id\")"
        );
        for uri in [
            "https://evil.example/cb",
            "https://pitangui.amazon.com/api/skill/link/M2X/",
            "https://pitangui.amazon.com/api/skill/link/m2x",
            GOOGLE,
        ] {
            assert_eq!(
                alexa(&[("redirect_uri", uri)]),
                "page UnregisteredRedirectUri",
                "{uri}"
            );
        }
        // Even with other errors in the request: the redirect URI is judged first.
        assert_eq!(
            alexa(&[
                ("redirect_uri", "https://evil.example/cb"),
                ("response_type", "token")
            ]),
            "page UnregisteredRedirectUri"
        );
        let repeated = "response_type=code&client_id=alexa&client_id=google";
        assert!(matches!(
            decide(&clients(), repeated.as_bytes(), 1000),
            Decision::ErrorPage(ErrorPage::LinkRepeated("client_id"))
        ));
        assert!(matches!(
            decide(&clients(), b"client_id=%FF", 1000),
            Decision::ErrorPage(ErrorPage::LinkNotUtf8)
        ));
    }

    #[test]
    fn a_missing_redirect_uri_is_the_only_registered_one_or_a_page() {
        assert_eq!(
            alexa(&[("redirect_uri", "")]),
            "page LinkMissing(\"redirect_uri\")"
        );
        let google = decide_on(&[
            ("response_type", "code"),
            ("client_id", "google"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        assert!(
            google.starts_with(&format!("proceed google {GOOGLE} given=false")),
            "{google}"
        );
    }

    #[test]
    fn bad_requests_from_a_known_client_go_back_to_it_with_the_state() {
        let back = |changes: &[(&'static str, &'static str)], error: &str| {
            let decided = alexa(changes);
            let expected = format!("redirect {ALEXA}?error={error}&error_description=");
            assert!(decided.starts_with(&expected), "{changes:?}: {decided}");
            assert!(decided.ends_with("&state=s1"), "{decided}");
        };
        back(&[("response_type", "token")], "unsupported_response_type");
        back(&[("response_type", "")], "invalid_request");
        back(&[("scope", "bad\\scope")], "invalid_scope");
        back(&[("code_challenge_method", "S256")], "invalid_request");
        back(
            &[
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        );
        back(&[("code_challenge", CHALLENGE)], "invalid_request");
        back(
            &[
                ("code_challenge", "short"),
                ("code_challenge_method", "S256"),
            ],
            "invalid_request",
        );
        assert!(alexa(&[
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256")
        ])
        .contains(&format!("challenge=Some(\"{CHALLENGE}\")")));
    }

    #[test]
    fn a_client_that_requires_pkce_is_refused_without_it() {
        let google = |extra: &[(&str, &str)]| {
            let mut params = vec![
                ("response_type", "code"),
                ("client_id", "google"),
                ("redirect_uri", GOOGLE),
            ];
            params.extend_from_slice(extra);
            decide_on(&params)
        };
        let refused = google(&[]);
        assert!(
            refused.starts_with(&format!("redirect {GOOGLE}?error=invalid_request")),
            "{refused}"
        );
        assert!(refused.contains("PKCE"), "{refused}");
        assert!(google(&[
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256")
        ])
        .starts_with("proceed google"));
    }
}
