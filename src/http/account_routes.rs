//! The routes of the account pages (issue 15): parse the request, call `accounts`, render with
//! `pages`. Kept out of `routes.rs` so the OAuth routes and these change independently.

use super::request;
use super::response::{self, Reply};
use crate::accounts::links::{self, Step};
use crate::app::App;
use crate::pages;
use hyper::body::Incoming;
use hyper::{Method, Request};

/// The cookie carrying the CSRF token of an account form (not the authorization flow's, so a
/// sign-in open in another tab is not disturbed).
const CSRF_COOKIE: &str = "linkgate_account_csrf";
/// Over https: `__Host-` makes browsers insist on `Secure`, `Path=/` and no `Domain`.
const CSRF_COOKIE_HTTPS: &str = "__Host-linkgate_account_csrf";

/// Whether `path` is one of these routes.
pub fn handles(path: &str) -> bool {
    path == links::PATH
}

pub async fn route(app: &App, req: Request<Incoming>, path: &str) -> Reply {
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
            match super::routes::read_body(app, req).await {
                Ok(body) => links::submit(app, &body, cookie.as_deref()).await,
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
