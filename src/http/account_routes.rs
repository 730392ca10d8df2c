//! The routes of the account pages (issue 15): parse the request, call `accounts`, render with
//! `pages`. Kept out of `routes.rs` so the OAuth routes and these change independently.

use super::request;
use super::response::{self, Reply};
use crate::accounts::links::{self, Step};
use crate::accounts::session::{self, ActionOutcome, Notice, SignInOutcome, SignedIn};
use crate::base::lang::Lang;
use crate::oauth::server::Server;
use crate::pages;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::{Method, Request};
use std::net::IpAddr;

/// The cookie carrying the CSRF token of an account form (not the authorization flow's, so a
/// sign-in open in another tab is not disturbed).
const CSRF_COOKIE: &str = "linkgate_account_csrf";
/// Over https: `__Host-` makes browsers insist on `Secure`, `Path=/` and no `Domain`.
const CSRF_COOKIE_HTTPS: &str = "__Host-linkgate_account_csrf";

/// The `/account` session cookie.
const SESSION_COOKIE: &str = "linkgate_session";
const SESSION_COOKIE_HTTPS: &str = "__Host-linkgate_session";

/// Whether `path` is one of these routes.
pub fn handles(path: &str) -> bool {
    path == links::PATH
        || path == session::PATH
        || path
            .strip_prefix(session::PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

pub async fn route(app: &Server, req: Request<Incoming>, path: &str, ip: IpAddr) -> Reply {
    if path != links::PATH {
        return account(app, req, path, ip).await;
    }
    let https = app.config.public_https();
    let cookie_name = if https {
        CSRF_COOKIE_HTTPS
    } else {
        CSRF_COOKIE
    };
    let lang = pages::i18n::choose(
        app.config.ui.language,
        None,
        req.headers()
            .get(hyper::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let step = match (path, req.method().clone()) {
        (links::PATH, Method::GET) => links::open(app, req.uri().query().unwrap_or("").as_bytes()),
        (links::PATH, Method::POST) => {
            let cookie = request::csrf_cookie(req.headers(), cookie_name).map(str::to_string);
            match super::body::read(app, req).await {
                Ok(body) => links::submit(app, &body, cookie.as_deref(), ip).await,
                Err(reply) => return reply,
            }
        }
        _ => return response::method_not_allowed("GET, POST"),
    };
    let cookie = match &step {
        Step::Form { csrf, .. } => Some(format!(
            "{cookie_name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600{}",
            csrf.expose(),
            if https { "; Secure" } else { "" }
        )),
        _ => None,
    };
    let frame = pages::Frame {
        ui: &app.config.ui,
        lang,
    };
    let action = format!("{}{}", app.config.public_path(), links::PATH);
    let mut reply = response::html(
        step.status(),
        pages::set_password(frame, &action, &step),
        cookie,
    );
    reply.headers_mut().insert(
        hyper::header::CONTENT_LANGUAGE,
        hyper::header::HeaderValue::from_static(lang.code()),
    );
    reply
}

/// `/account` and the forms it posts to `/account/…`.
async fn account(app: &Server, req: Request<Incoming>, path: &str, ip: IpAddr) -> Reply {
    let https = app.config.public_https();
    let (csrf_name, session_name) = match https {
        true => (CSRF_COOKIE_HTTPS, SESSION_COOKIE_HTTPS),
        false => (CSRF_COOKIE, SESSION_COOKIE),
    };
    let lang = language(app, &req);
    let base = format!("{}{}", app.config.public_path(), session::PATH);
    let cookie = |name| request::csrf_cookie(req.headers(), name).map(str::to_string);
    let (csrf_cookie, session_cookie) = (cookie(csrf_name), cookie(session_name));
    let signed = match session::current(app, session_cookie.as_deref()) {
        Ok(signed) => signed,
        Err(e) => {
            tracing::error!("reading a session failed: {e}");
            return problem(app, lang, Step::Unavailable);
        }
    };
    let action = path.strip_prefix(session::PATH).unwrap_or("");
    let method = req.method().clone();
    match (action, method, signed) {
        ("", Method::GET, Some(signed)) => {
            let notice = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("done="))
                .and_then(Notice::from_code);
            signed_in_page(app, lang, &base, &signed, notice, None)
        }
        ("", Method::GET, None) => sign_in_page(app, lang, &base, "", None),
        ("", _, _) => response::method_not_allowed("GET"),
        ("/sign-in", Method::POST, _) => {
            let body = match super::body::read(app, req).await {
                Ok(body) => body,
                Err(reply) => return reply,
            };
            match session::sign_in(app, &body, csrf_cookie.as_deref(), ip).await {
                SignInOutcome::Started(token) => {
                    let mut reply = response::redirect(&base);
                    set_cookie(
                        &mut reply,
                        &session_cookie_value(session_name, token.expose(), https),
                    );
                    reply
                }
                SignInOutcome::Failed { failure, username } => {
                    sign_in_page(app, lang, &base, &username, Some(failure))
                }
                SignInOutcome::Stale => problem(app, lang, Step::Stale),
            }
        }
        ("/unlink" | "/password" | "/sign-out", Method::POST, Some(signed)) => {
            let body = match super::body::read(app, req).await {
                Ok(body) => body,
                Err(reply) => return reply,
            };
            match session::act(app, &action[1..], &body, &signed, ip).await {
                ActionOutcome::Done(notice) => {
                    response::redirect(&format!("{base}?done={}", notice.code()))
                }
                ActionOutcome::PasswordChanged(token) => {
                    let mut reply = response::redirect(&format!(
                        "{base}?done={}",
                        Notice::PasswordChanged.code()
                    ));
                    set_cookie(
                        &mut reply,
                        &session_cookie_value(session_name, token.expose(), https),
                    );
                    reply
                }
                ActionOutcome::SignedOut => {
                    let mut reply = response::redirect(&base);
                    set_cookie(
                        &mut reply,
                        &format!(
                            "{session_name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
                            secure(https)
                        ),
                    );
                    reply
                }
                ActionOutcome::PasswordRefused(problem) => {
                    let mut reply = signed_in_page(app, lang, &base, &signed, None, Some(problem));
                    *reply.status_mut() = hyper::StatusCode::BAD_REQUEST;
                    reply
                }
                ActionOutcome::Stale => problem(app, lang, Step::Stale),
                ActionOutcome::Unavailable => problem(app, lang, Step::Unavailable),
            }
        }
        ("/totp-start" | "/totp-on" | "/totp-off", Method::POST, Some(signed)) => {
            let body = match super::body::read(app, req).await {
                Ok(body) => body,
                Err(reply) => return reply,
            };
            two_factor(app, lang, &base, action, &body, &signed, ip).await
        }
        // Signed out (or the session ended) while a form was open: sign in again.
        (
            "/unlink" | "/password" | "/sign-out" | "/totp-start" | "/totp-on" | "/totp-off",
            Method::POST,
            None,
        ) => response::redirect(&base),
        (
            "/sign-in" | "/unlink" | "/password" | "/sign-out" | "/totp-start" | "/totp-on"
            | "/totp-off",
            _,
            _,
        ) => response::method_not_allowed("POST"),
        _ => response::text(404, "not found\n"),
    }
}

/// The two-factor forms of `/account`.
async fn two_factor(
    app: &Server,
    lang: Lang,
    base: &str,
    action: &str,
    body: &[u8],
    signed: &SignedIn,
    ip: IpAddr,
) -> Reply {
    use crate::accounts::two_factor::{self, Disable, Enrol};
    let enrol = match action {
        "/totp-start" => two_factor::start(app, body, signed),
        "/totp-on" => two_factor::enable(app, body, signed, ip).await,
        _ => {
            return match two_factor::disable(app, body, signed, ip).await {
                Ok(Disable::Done) => {
                    response::redirect(&format!("{base}?done={}", Notice::TotpOff.code()))
                }
                Ok(Disable::Refused(failure)) => {
                    let mut reply =
                        signed_in_view(app, lang, base, signed, None, None, Some(failure));
                    *reply.status_mut() = match failure {
                        session::SignInFailure::Locked(_) => hyper::StatusCode::TOO_MANY_REQUESTS,
                        _ => hyper::StatusCode::BAD_REQUEST,
                    };
                    reply
                }
                Ok(Disable::Stale) => problem(app, lang, Step::Stale),
                Err(e) => {
                    tracing::error!("turning off two-factor sign-in failed: {e}");
                    problem(app, lang, Step::Unavailable)
                }
            };
        }
    };
    match enrol {
        Enrol::Form {
            key,
            qr_svg,
            wrong_code,
        } => {
            let csrf = session::csrf_for(signed.token.expose());
            let view = pages::Enrolment {
                base,
                csrf: &csrf,
                key: &key,
                qr_svg: &qr_svg,
                wrong_code,
            };
            let status = if wrong_code { 400 } else { 200 };
            with_language(
                response::html(status, pages::totp_enrol(frame(app, lang), &view), None),
                lang,
            )
        }
        Enrol::Enabled(codes) => with_language(
            response::html(
                200,
                pages::totp_recovery(frame(app, lang), base, &codes),
                None,
            ),
            lang,
        ),
        Enrol::Stale => problem(app, lang, Step::Stale),
        Enrol::Unavailable => problem(app, lang, Step::Unavailable),
    }
}

fn secure(https: bool) -> &'static str {
    if https {
        "; Secure"
    } else {
        ""
    }
}

fn session_cookie_value(name: &str, token: &str, https: bool) -> String {
    format!(
        "{name}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        session::SESSION_SECS,
        secure(https)
    )
}

fn set_cookie(reply: &mut Reply, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        reply.headers_mut().append(SET_COOKIE, value);
    }
}

fn language(app: &Server, req: &Request<Incoming>) -> Lang {
    pages::i18n::choose(
        app.config.ui.language,
        None,
        req.headers()
            .get(hyper::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

fn frame(app: &Server, lang: Lang) -> pages::Frame<'_> {
    pages::Frame {
        ui: &app.config.ui,
        lang,
    }
}

fn with_language(mut reply: Reply, lang: Lang) -> Reply {
    reply.headers_mut().insert(
        hyper::header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.code()),
    );
    reply
}

fn sign_in_page(
    app: &Server,
    lang: Lang,
    base: &str,
    username: &str,
    failure: Option<session::SignInFailure>,
) -> Reply {
    use session::SignInFailure::*;
    let https = app.config.public_https();
    let csrf = crate::base::secret::new_token("");
    let status = match failure {
        None => 200,
        Some(WrongCredentials) => 401,
        Some(Locked(_)) => 429,
        Some(Busy | Unavailable) => 503,
    };
    let markup = pages::account_sign_in(
        frame(app, lang),
        &format!("{base}/sign-in"),
        csrf.expose(),
        username,
        failure,
    );
    let name = if https {
        CSRF_COOKIE_HTTPS
    } else {
        CSRF_COOKIE
    };
    let cookie = format!(
        "{name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600{}",
        csrf.expose(),
        secure(https)
    );
    with_language(response::html(status, markup, Some(cookie)), lang)
}

fn signed_in_page(
    app: &Server,
    lang: Lang,
    base: &str,
    signed: &SignedIn,
    notice: Option<Notice>,
    password_problem: Option<session::PasswordFormProblem>,
) -> Reply {
    signed_in_view(app, lang, base, signed, notice, password_problem, None)
}

fn signed_in_view(
    app: &Server,
    lang: Lang,
    base: &str,
    signed: &SignedIn,
    notice: Option<Notice>,
    password_problem: Option<session::PasswordFormProblem>,
    totp_problem: Option<session::SignInFailure>,
) -> Reply {
    let apps = match session::linked_apps(app, signed) {
        Ok(apps) => apps,
        Err(e) => {
            tracing::error!("reading linked apps failed: {e}");
            return problem(app, lang, Step::Unavailable);
        }
    };
    let activity = match session::recent_activity(app, signed.sub()) {
        Ok(activity) => activity,
        Err(e) => {
            tracing::error!("reading recent activity failed: {e}");
            return problem(app, lang, Step::Unavailable);
        }
    };
    let csrf = session::csrf_for(signed.token.expose());
    let view = pages::AccountView {
        activity: &activity,
        base,
        username: signed.username(),
        csrf: &csrf,
        apps: &apps,
        notice,
        password_problem,
        totp_on: signed.user.as_ref().is_some_and(|u| u.totp.is_some()),
        managed_elsewhere: signed.user.is_none(),
        totp_problem,
    };
    with_language(
        response::html(200, pages::account(frame(app, lang), &view), None),
        lang,
    )
}

/// A page that only explains a problem (`Step::Stale` or `Step::Unavailable`).
fn problem(app: &Server, lang: Lang, step: Step) -> Reply {
    let markup = pages::set_password(frame(app, lang), "", &step);
    with_language(response::html(step.status(), markup, None), lang)
}
