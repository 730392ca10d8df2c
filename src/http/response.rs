//! Building responses, with the headers each kind must carry: HTML pages are unframeable and
//! uncached (they hold CSRF tokens), token responses are `no-store` (RFC 6749 §5.1), and OAuth
//! errors become RFC 6749 §5.2 JSON in exactly one place.

use crate::oauth::OAuthError;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

pub type Reply = Response<Full<Bytes>>;

/// No scripts, no external anything; forms may post only to us; never framed.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                   form-action 'self' https: http://localhost:* http://127.0.0.1:*; \
                   frame-ancestors 'none'; base-uri 'none'";

fn base(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = reply.headers_mut();
    // Room for these five and the two a page or a redirect adds, without growing.
    headers.reserve(8);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    reply
}

/// An HTML page, optionally setting the CSRF cookie.
pub fn html(status: u16, markup: maud::Markup, cookie: Option<String>) -> Reply {
    let mut reply = base(status, "text/html; charset=utf-8", markup.into_string());
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    reply
}

pub fn json(status: u16, value: &impl Serialize) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    base(status, "application/json", body)
}

/// JSON already written (`token_body.rs`).
pub fn json_bytes(status: u16, body: Vec<u8>) -> Reply {
    base(status, "application/json", body)
}

/// Prometheus text exposition format 0.0.4.
pub fn metrics(body: String) -> Reply {
    base(200, "text/plain; version=0.0.4; charset=utf-8", body)
}

pub fn text(status: u16, body: &'static str) -> Reply {
    base(status, "text/plain; charset=utf-8", body)
}

/// A refusal after which the connection closes (`Connection: close`): the request's head or
/// body was too large or too slow, and what is left of it is not worth reading.
pub fn closing(status: u16, body: &'static str) -> Reply {
    let mut reply = text(status, body);
    reply
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    reply
}

/// 431 (RFC 6585 §5): the request line and headers exceed `max_header_bytes`.
pub fn too_large_head() -> Reply {
    closing(431, "request header fields too large\n")
}

/// 303: the browser follows with a GET, whatever method brought it here.
pub fn redirect(location: &str) -> Reply {
    let mut reply = base(303, "text/plain; charset=utf-8", Bytes::new());
    match HeaderValue::from_str(location) {
        Ok(value) => {
            reply.headers_mut().insert(header::LOCATION, value);
            reply
        }
        // Cannot happen for URIs we build (all encoded), but never panic on it.
        Err(_) => text(500, "cannot build the redirect"),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
}

/// An OAuth error as JSON, with its status and `WWW-Authenticate` challenge.
pub fn oauth_error(error: &OAuthError) -> Reply {
    if error.code() == "server_error" {
        tracing::error!("server error: {}", error.reason());
    }
    let mut reply = json(
        error.status(),
        &ErrorBody {
            error: error.code(),
            error_description: error.description(),
        },
    );
    if let Some(challenge) = error
        .www_authenticate()
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        reply
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    if let Some(wait) = error.retry_after() {
        reply
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    if let Some(reference) = error
        .reference()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        reply.headers_mut().insert(REFERENCE, reference);
    }
    reply
}

/// The header carrying the reference of a refusal (`oauth::linking_log`), as the log names it.
pub const REFERENCE: &str = "x-linkgate-reference";

pub fn method_not_allowed(allow: &'static str) -> Reply {
    let mut reply = text(405, "method not allowed\n");
    reply
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    reply
}
