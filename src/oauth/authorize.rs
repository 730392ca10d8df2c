//! The browser side of the code grant (RFC 6749 §4.1.1–4.1.2): check the request, sign the
//! customer in, ask for consent, and send the browser back to the client with a code.
//!
//! Where an error goes is the rule that matters most (§4.1.2.1): while the client or its
//! redirect URI is in doubt, the customer sees an error page and is never redirected; after that,
//! errors go back to the client's registered redirect URI.

use super::pending::{Pending, Stage};
use super::{normalize_scope, OAuthError};
use crate::app::App;
use crate::config::Client;
use crate::metrics::count;
use crate::secret::{self, Secret};
use crate::store::{now, CodeRecord, ThrottleKey, Username};
use crate::urlencoded::{append_query, ParamError, Params};
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
    /// A redirect to the client (a code, or an error the client should see).
    Redirect(String),
    ErrorPage(ErrorPage),
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
}

impl ErrorPage {
    pub fn status(self) -> u16 {
        match self {
            ErrorPage::SignInUnavailable | ErrorPage::LinkingUnavailable => 503,
            _ => 400,
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

/// `GET /authorize`: validates the request and shows the login page.
pub fn begin(app: &App, query: &[u8]) -> Step {
    let params = match Params::parse(query) {
        Ok(params) => params,
        Err(_) => return Step::ErrorPage(ErrorPage::LinkNotUtf8),
    };
    let client = match params.single("client_id") {
        Err(_) => return Step::ErrorPage(ErrorPage::LinkRepeated("client_id")),
        Ok(None) => return Step::ErrorPage(ErrorPage::LinkMissing("client_id")),
        Ok(Some(id)) => match app.config.client(id) {
            Some(client) => client,
            None => return Step::ErrorPage(ErrorPage::UnknownClient),
        },
    };
    let (redirect_uri, redirect_uri_given) = match params.single("redirect_uri") {
        Err(_) => return Step::ErrorPage(ErrorPage::LinkRepeated("redirect_uri")),
        Ok(Some(uri)) if client.redirect_uris.iter().any(|r| r == uri) => (uri.to_string(), true),
        Ok(Some(_)) => return Step::ErrorPage(ErrorPage::UnregisteredRedirectUri),
        Ok(None) if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
        Ok(None) => return Step::ErrorPage(ErrorPage::LinkMissing("redirect_uri")),
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
        Step::Redirect(append_query(&redirect_uri, &query))
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
            );
            pending.locale = user_locale(&params);
            login_form(app, client, None, pending, None, None)
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
/// stands. `cookie_csrf` is the CSRF cookie the browser sent.
pub async fn submit(app: &App, body: &[u8], cookie_csrf: Option<&str>, ip: IpAddr) -> Step {
    let Ok(params) = Params::parse(body) else {
        return Step::ErrorPage(ErrorPage::FormNotUtf8);
    };
    let (Ok(Some(request)), Ok(Some(csrf))) = (params.single("request"), params.single("csrf"))
    else {
        return Step::ErrorPage(ErrorPage::FormIncomplete);
    };
    let Some(pending) = app.pending.take(request, csrf, cookie_csrf) else {
        return Step::ErrorPage(ErrorPage::FormExpired);
    };
    let Some(client) = app.config.client(&pending.client_id) else {
        return Step::ErrorPage(ErrorPage::ClientGone);
    };
    let request = request.to_string();
    match pending.stage.clone() {
        Stage::Login => login(app, client, request, pending, &params, ip).await,
        Stage::Consent { sub, username } => {
            consent(app, client, request, pending, &params, sub, username).await
        }
    }
}

async fn login(
    app: &App,
    client: &Client,
    request: String,
    mut pending: Pending,
    params: &Params,
    ip: IpAddr,
) -> Step {
    let typed = params
        .single("username")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let password = Secret::new(params.single("password").ok().flatten().unwrap_or(""));
    let name = Username::parse(&typed);
    let user_key = ThrottleKey::user(name.as_ref().map_or(typed.as_str(), |n| n.as_str()));
    let keys = [user_key.clone(), ThrottleKey::ip(ip)];
    let again = |pending, failure| {
        let typed = Some(typed.clone());
        login_form(
            app,
            client,
            Some(request.clone()),
            pending,
            typed,
            Some(failure),
        )
    };
    match app.store.login_locked(&keys, now()) {
        Ok(Some(wait)) => {
            count(&app.metrics.logins_refused);
            return again(pending, LoginFailure::Locked(wait));
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!("reading the login throttle failed: {e}");
            return Step::ErrorPage(ErrorPage::SignInUnavailable);
        }
    }
    // Bounded queue: a flood of logins is turned away at once (503) instead of piling up; the
    // ones admitted wait at most queue length × one argon2 check.
    let Ok(_queued) = app.login_queue.try_acquire() else {
        count(&app.metrics.logins_refused);
        return again(pending, LoginFailure::Busy);
    };
    let user = match name {
        Ok(name) => match app.store.user(&name) {
            Ok(user) => user,
            Err(e) => {
                tracing::error!("reading a user failed: {e}");
                return Step::ErrorPage(ErrorPage::SignInUnavailable);
            }
        },
        Err(_) => None,
    };
    let check = app
        .password_workers
        .run(move || match user {
            Some(user) => secret::verify_password(&password, &user.password_hash).then_some(user),
            None => {
                // Same cost as a real check, so timing does not reveal which usernames exist.
                secret::dummy_verify(&password);
                None
            }
        })
        .await;
    match check {
        Some(Some(user)) => {
            tracing::info!(client = %client.id, "login succeeded");
            count(&app.metrics.logins_ok);
            if let Err(e) = app.store.login_succeeded(&user_key) {
                tracing::warn!("clearing the login throttle failed: {e}");
            }
            pending.stage = Stage::Consent {
                sub: user.sub,
                username: user.username.clone(),
            };
            consent_form(app, client, request.clone(), pending, user.username)
        }
        Some(None) => {
            tracing::info!(client = %client.id, %ip, "login failed");
            count(&app.metrics.logins_failed);
            if let Err(e) = app.store.login_failed(&keys, now()) {
                tracing::warn!("recording a failed login failed: {e}");
            }
            again(pending, LoginFailure::WrongCredentials)
        }
        None => {
            tracing::error!("the password workers are gone");
            Step::ErrorPage(ErrorPage::SignInUnavailable)
        }
    }
}

async fn consent(
    app: &App,
    client: &Client,
    request: String,
    pending: Pending,
    params: &Params,
    sub: String,
    username: String,
) -> Step {
    let state = pending.state.clone();
    let with_state = |mut query: Vec<(&'static str, String)>| {
        if let Some(state) = &state {
            query.push(("state", state.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        append_query(&pending.redirect_uri, &query)
    };
    match params.single("decision") {
        Ok(Some("allow")) => {}
        Ok(Some("deny")) => {
            tracing::info!(client = %client.id, "consent denied");
            let error = OAuthError::AccessDenied;
            return Step::Redirect(with_state(vec![
                ("error", error.code().to_string()),
                ("error_description", error.description()),
            ]));
        }
        _ => return consent_form(app, client, request, pending, username),
    }
    // The user's generation now; hardening replaces this with the one seen at sign-in.
    let generation = match app.store.user_generation(&username) {
        Ok(Some(current)) if current.sub == sub => current.generation,
        Ok(_) => return Step::ErrorPage(ErrorPage::LinkingUnavailable),
        Err(e) => {
            tracing::error!("reading the user failed: {e}");
            return Step::ErrorPage(ErrorPage::LinkingUnavailable);
        }
    };
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
    };
    let stored = match app.store.put_code(&code.key(), &record) {
        Ok(()) => app.store.flush().await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        tracing::error!("storing an authorization code failed: {e}");
        return Step::ErrorPage(ErrorPage::LinkingUnavailable);
    }
    tracing::info!(client = %client.id, "authorization code issued");
    count(&app.metrics.codes_issued);
    Step::Redirect(with_state(vec![("code", code.expose().to_string())]))
}

fn login_form(
    app: &App,
    client: &Client,
    id: Option<String>,
    pending: Pending,
    username: Option<String>,
    failure: Option<LoginFailure>,
) -> Step {
    let scope = pending.scope.clone();
    let locale = pending.locale.clone();
    let (request, csrf) = app.pending.put(id, pending);
    Step::Login {
        form: Form {
            request,
            csrf,
            client_name: client.name.clone(),
            scope,
            username,
            locale,
        },
        failure,
    }
}

fn consent_form(
    app: &App,
    client: &Client,
    id: String,
    pending: Pending,
    username: String,
) -> Step {
    let scope = pending.scope.clone();
    let locale = pending.locale.clone();
    let (request, csrf) = app.pending.put(Some(id), pending);
    Step::Consent {
        form: Form {
            request,
            csrf,
            client_name: client.name.clone(),
            scope,
            username: None,
            locale,
        },
        username,
    }
}
