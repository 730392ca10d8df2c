//! Path to handler. Each handler parses what it needs, calls `oauth`, and renders the result.

use super::request;
use super::resource_body::{introspection_body, userinfo_body};
use super::response::{self, Reply};
use super::token_body::token_body;
use crate::base::urlencoded::Params;
use crate::oauth::authorize::{self, Step};
use crate::oauth::client::Caller;
use crate::oauth::server::Server;
use crate::oauth::{linking_log, metadata, resource, token, OAuthError};
use crate::pages;
use hyper::body::Incoming;
use hyper::{Method, Request};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// `peer` is the TCP peer; `ip` the client as seen through trusted proxies.
pub async fn route(app: &Server, req: Request<Incoming>, peer: IpAddr, ip: IpAddr) -> Reply {
    // Behind a proxy that keeps a path prefix (public_url = "https://host/auth"), accept both.
    let path = req.uri().path();
    let path = path
        .strip_prefix(app.config.public_path())
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    match (path, req.method().clone()) {
        ("/authorize", Method::GET) => {
            let query = req.uri().query().unwrap_or("").as_bytes().to_vec();
            // The hint counts on error pages too, before any pending authorization exists.
            let hint = Params::parse(&query)
                .ok()
                .and_then(|params| authorize::user_locale(&params));
            let accept_language = accept_language(&req);
            let step = authorize::begin(app, &query);
            render(app, step, hint, accept_language.as_deref())
        }
        ("/authorize", Method::POST) => {
            let name = request::csrf_cookie_name(app.config.public_https());
            let cookie = request::csrf_cookie(req.headers(), name).map(str::to_string);
            let accept_language = accept_language(&req);
            cold(async move {
                match super::body::read(app, req).await {
                    Ok(body) => {
                        let step = authorize::submit(app, &body, cookie.as_deref(), ip).await;
                        render(app, step, None, accept_language.as_deref())
                    }
                    Err(reply) => reply,
                }
            })
            .await
        }
        ("/authorize", _) => response::method_not_allowed("GET, POST"),
        ("/token", Method::POST) => {
            form_endpoint(
                app,
                req,
                ip,
                linking_log::Step::Token,
                |app, params, caller| async move {
                    let issued = token::exchange(app, &params, caller).await?;
                    Ok(response::json_bytes(200, token_body(&issued)))
                },
            )
            .await
        }
        ("/token", _) => response::method_not_allowed("POST"),
        ("/userinfo", Method::GET | Method::POST) => {
            let result = match request::bearer_token(req.headers()) {
                Ok(token) => resource::userinfo(app, token).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(info) => response::json_bytes(200, userinfo_body(&info)),
                Err(error) => response::oauth_error(&error),
            }
        }
        ("/userinfo", _) => response::method_not_allowed("GET, POST"),
        ("/introspect", Method::POST) => {
            form_endpoint(
                app,
                req,
                ip,
                linking_log::Step::Introspect,
                |app, params, caller| async move {
                    let answer = resource::introspect(app, &params, caller).await?;
                    Ok(response::json_bytes(200, introspection_body(&answer)))
                },
            )
            .await
        }
        ("/introspect", _) => response::method_not_allowed("POST"),
        ("/revoke", Method::POST) => {
            form_endpoint(
                app,
                req,
                ip,
                linking_log::Step::Revoke,
                |app, params, caller| async move {
                    resource::revoke(app, &params, caller).await?;
                    Ok(response::json(200, &serde_json::json!({})))
                },
            )
            .await
        }
        ("/revoke", _) => response::method_not_allowed("POST"),
        ("/.well-known/oauth-authorization-server", Method::GET) => {
            response::json(200, &metadata::metadata(&app.config))
        }
        // Loopback only (and not a request a trusted proxy forwarded), or the scrape token.
        ("/metrics", Method::GET) if app.config.metrics && metrics_allowed(app, &req, peer) => {
            response::metrics(
                app.metrics.render() + &app.linking.render_metrics() + &app.store.render_metrics(),
            )
        }
        ("/healthz", Method::GET | Method::HEAD) => match app.store.is_healthy().await {
            true => response::text(200, "ok\n"),
            false => response::text(503, "store unavailable (cannot read or write)\n"),
        },
        (p, _) if super::account_routes::handles(p) => {
            let p = p.to_string();
            cold(super::account_routes::route(app, req, &p, ip)).await
        }
        (p, _) if super::app_routes::handles(p) => {
            let p = p.to_string();
            cold(super::app_routes::route(app, req, &p, ip)).await
        }
        ("/", Method::GET) => response::text(
            200,
            "linkgate: OAuth 2.0 account linking. See /.well-known/oauth-authorization-server\n",
        ),
        _ => response::text(404, "not found\n"),
    }
}

/// Who may read `/metrics`: a loopback peer whose request no trusted proxy forwarded (a proxy on
/// the same machine must not make the whole internet local), or anyone presenting
/// `server.metrics_token` as a bearer token.
fn metrics_allowed(app: &Server, req: &Request<Incoming>, peer: IpAddr) -> bool {
    if let Some(token) = &app.config.metrics_token {
        if let Ok(Some(given)) = request::bearer_token(req.headers()) {
            return crate::base::secret::ct_eq(
                &token.key(),
                &crate::base::secret::Secret::new(given).key(),
            );
        }
    }
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|name| req.headers().contains_key(*name));
    peer.is_loopback() && !(forwarded && app.config.trusted_proxies.contains(&peer))
}

/// The shape shared by `/token`, `/introspect` and `/revoke`: a form body plus client
/// credentials in, JSON or an OAuth error out. The handler authenticates the client
/// (`oauth::client::authenticate`, which also throttles secret guessing).
async fn form_endpoint<'a, F, Fut>(
    app: &'a Server,
    req: Request<Incoming>,
    ip: IpAddr,
    step: linking_log::Step,
    handle: F,
) -> Reply
where
    F: FnOnce(&'a Server, Params, Caller) -> Fut,
    Fut: std::future::Future<Output = Result<Reply, OAuthError>>,
{
    let basic = request::basic_credentials(req.headers());
    // What the handler refuses it logs itself; what is refused before it, here.
    let refused =
        |error| response::oauth_error(&crate::oauth::refusal::refusal(app, step, None, error));
    if !request::is_form(req.headers()) {
        return refused(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let body = match super::body::read(app, req).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let result = async {
        let params = Params::parse(&body)?;
        let basic = basic?;
        handle(app, params, Caller { basic, ip }).await
    };
    result.await.unwrap_or_else(refused)
}

/// The browser's `Accept-Language`, if it is readable text.
fn accept_language(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get(hyper::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Renders a step of the browser flow. The page's language: `ui.language`, else the
/// `user_locale` the authorization started with (carried in the pending request across the
/// login and consent posts), else this request's `Accept-Language`, else English.
fn render(app: &Server, step: Step, hint: Option<String>, accept_language: Option<&str>) -> Reply {
    let hint = match &step {
        Step::Login { form, .. } | Step::Consent { form, .. } | Step::SecondFactor { form, .. } => {
            form.locale.clone().or(hint)
        }
        _ => hint,
    };
    let lang = pages::i18n::choose(app.config.ui.language, hint.as_deref(), accept_language);
    let frame = pages::Frame {
        ui: &app.config.ui,
        lang,
    };
    let mut reply = render_in(app, frame, step);
    reply.headers_mut().insert(
        hyper::header::CONTENT_LANGUAGE,
        hyper::header::HeaderValue::from_static(lang.code()),
    );
    reply
}

fn render_in(app: &Server, frame: pages::Frame<'_>, step: Step) -> Reply {
    let action = format!("{}/authorize", app.config.public_path());
    let cookie = |csrf: &crate::base::secret::Secret| {
        let secure = if app.config.public_https() {
            "; Secure"
        } else {
            ""
        };
        Some(format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=900{secure}",
            request::csrf_cookie_name(app.config.public_https()),
            csrf.expose()
        ))
    };
    match step {
        Step::Login { form, failure } => {
            let status = match failure {
                None => 200,
                Some(authorize::LoginFailure::WrongCredentials) => 401,
                Some(authorize::LoginFailure::Locked(_)) => 429,
                Some(authorize::LoginFailure::Busy) => 503,
                Some(authorize::LoginFailure::Unavailable) => 503,
            };
            response::html(
                status,
                pages::login(frame, &action, &form, failure),
                cookie(&form.csrf),
            )
        }
        Step::SecondFactor { form, failure } => {
            let status = match failure {
                None => 200,
                Some(authorize::LoginFailure::WrongCredentials) => 401,
                Some(authorize::LoginFailure::Locked(_)) => 429,
                Some(authorize::LoginFailure::Busy | authorize::LoginFailure::Unavailable) => 503,
            };
            response::html(
                status,
                pages::totp_code(frame, &action, &form, failure),
                cookie(&form.csrf),
            )
        }
        Step::Enrol {
            form,
            key,
            qr_svg,
            wrong_code,
        } => response::html(
            if wrong_code { 400 } else { 200 },
            pages::totp_flow_enrol(frame, &action, &form, &key, &qr_svg, wrong_code),
            cookie(&form.csrf),
        ),
        Step::Recovery { form, codes } => response::html(
            200,
            pages::totp_flow_recovery(frame, &action, &form, &codes),
            cookie(&form.csrf),
        ),
        Step::Consent { form, username } => response::html(
            200,
            pages::consent(frame, &action, &form, &username),
            cookie(&form.csrf),
        ),
        Step::Redirect(location) => response::redirect(&location),
        Step::ErrorPage(page) => {
            response::html(page.status(), pages::error(frame, page, None), None)
        }
        Step::Refused { page, reference } => {
            let markup = pages::error(frame, page, Some(reference.as_str()));
            let mut reply = response::html(page.status(), markup, None);
            if let Ok(value) = hyper::header::HeaderValue::from_str(reference.as_str()) {
                reply.headers_mut().insert(response::REFERENCE, value);
            }
            reply
        }
    }
}

/// A rarely taken route's future, on the heap: the request future's size is its largest
/// route's, and hyper moves it once per request (the browser flow's and the account pages'
/// futures are kilobytes; the token checks' are a fraction of that).
fn cold<'a>(
    future: impl Future<Output = Reply> + Send + 'a,
) -> Pin<Box<dyn Future<Output = Reply> + Send + 'a>> {
    Box::pin(future)
}
