//! One-time password links: `--invite NAME` (a new user) and `--reset-password NAME` (an existing
//! one) print a link; the person opens it and sets their own password.
//!
//! The CLI makes the 256-bit token and sends only its SHA-256 to the store (directly, or over the
//! admin socket while the server runs), so the token exists nowhere but in the printed link. The
//! form at the link is protected by a CSRF token in a cookie and a hidden field; the token is
//! checked before any password is hashed, so strangers cannot make the server run argon2.

use super::events;
use super::password_rules::{check_new_password, PasswordProblem};
use crate::app::Core;
use crate::base::secret::{self, Secret};
use crate::base::urlencoded::Params;
use crate::store::{now, EventKind, LinkKind, LinkUsed};
use std::net::IpAddr;

/// The path of the form, under `public_url`.
pub const PATH: &str = "/set-password";
/// Prefix of link tokens, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "lgp_";

// ---- the browser side ----------------------------------------------------------------------

/// What the browser gets at the link.
#[derive(Debug)]
pub enum Step {
    /// The form (again, with what was wrong).
    Form {
        token: Secret,
        csrf: Secret,
        username: String,
        problem: Option<FormProblem>,
    },
    /// The password is set.
    Done { username: String },
    /// Unknown, used, expired or replaced link, or its user is gone.
    Dead,
    /// The form's CSRF token does not match its cookie (or is missing).
    Stale,
    /// Too many password checks queued right now.
    Busy,
    /// A storage fault.
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormProblem {
    Rule(PasswordProblem),
    /// The two fields differ.
    Mismatch,
}

impl Step {
    pub fn status(&self) -> u16 {
        match self {
            Step::Form { problem: None, .. } | Step::Done { .. } => 200,
            Step::Form { .. } => 400,
            Step::Dead => 410,
            Step::Stale => 403,
            Step::Busy | Step::Unavailable => 503,
        }
    }
}

/// `GET /set-password?token=…`: the form, if the link is live. Opening it spends nothing (chat
/// apps fetch links to preview them).
pub fn open(app: &Core, query: &[u8]) -> Step {
    let Some(token) = Params::parse(query)
        .ok()
        .and_then(|p| p.single("token").ok().flatten().map(Secret::new))
    else {
        return Step::Dead;
    };
    match app.store.password_link(&token.key(), now()) {
        Ok(Some(link)) => Step::Form {
            token,
            csrf: secret::new_token(""),
            username: link.username,
            problem: None,
        },
        Ok(None) => Step::Dead,
        Err(e) => {
            tracing::error!("reading a password link failed: {e}");
            Step::Unavailable
        }
    }
}

/// `POST /set-password`: checks the CSRF token, the link and the password rules, then sets the
/// password and spends the link.
pub async fn submit(app: &Core, body: &[u8], cookie_csrf: Option<&str>, ip: IpAddr) -> Step {
    let Ok(params) = Params::parse(body) else {
        return Step::Stale;
    };
    let field = |name| params.single(name).ok().flatten().unwrap_or("");
    let form_csrf = field("csrf");
    let csrf_ok = !form_csrf.is_empty()
        && cookie_csrf
            .is_some_and(|c| secret::ct_eq(&Secret::new(c).key(), &Secret::new(form_csrf).key()));
    if !csrf_ok {
        return Step::Stale;
    }
    let token = Secret::new(field("token"));
    let link = match app.store.password_link(&token.key(), now()) {
        Ok(Some(link)) => link,
        Ok(None) => return Step::Dead,
        Err(e) => {
            tracing::error!("reading a password link failed: {e}");
            return Step::Unavailable;
        }
    };
    let password = Secret::new(field("password"));
    let problem = match check_new_password(password.expose()) {
        Err(rule) => Some(FormProblem::Rule(rule)),
        Ok(()) if !secret::ct_eq(password.expose().as_bytes(), field("repeat").as_bytes()) => {
            Some(FormProblem::Mismatch)
        }
        Ok(()) => None,
    };
    if let Some(problem) = problem {
        return Step::Form {
            token,
            csrf: secret::new_token(""),
            username: link.username,
            problem: Some(problem),
        };
    }
    let Ok(_queued) = app.login_queue.try_acquire() else {
        return Step::Busy;
    };
    let Some(hash) = app
        .password_workers
        .run(move || secret::hash_password(&password))
        .await
    else {
        tracing::error!("the password workers are gone");
        return Step::Unavailable;
    };
    let used = match app.store.use_password_link(&token.key(), now(), hash) {
        Ok(used) => app.store.flush().await.map(|()| used),
        Err(e) => Err(e),
    };
    match used {
        Ok(LinkUsed::PasswordSet(link)) => {
            let detail = match link.kind {
                LinkKind::Invite => events::DETAIL_INVITATION,
                LinkKind::Reset => events::DETAIL_RESET,
            };
            let kind = EventKind::PasswordChanged;
            events::record(
                &app.store,
                &link.sub,
                &link.username,
                kind,
                Some(ip),
                detail,
            );
            Step::Done {
                username: link.username,
            }
        }
        Ok(LinkUsed::Dead) => Step::Dead,
        Err(e) => {
            tracing::error!("setting a password from a link failed: {e}");
            Step::Unavailable
        }
    }
}
