//! `server.http_listen`: the plain-HTTP port. It answers ACME HTTP-01 validations
//! (`/.well-known/acme-challenge/TOKEN`, RFC 8555 §8.3) and sends everything else to the same
//! path on `public_url` with a 308 — always to `public_url`'s host, never to the request's `Host`
//! header, so it cannot be made to redirect anywhere else. Nothing else is served over plain HTTP.

use crate::http::admission::{Admission, Answered, ConnectionState};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
/// Plain HTTP only redirects: a few connections and short timeouts are plenty. A CA validates
/// from a few addresses with a request or two each, so a small share per address is enough, and
/// when strangers hold the rest, their silent connections make room (`http/admission.rs`).
const MAX_CONNECTIONS: usize = 256;
const MAX_CONNECTIONS_PER_ADDRESS: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP-01 tokens being validated → their key authorizations.
#[derive(Default)]
pub struct Http01Tokens(Mutex<HashMap<String, String>>);

impl Http01Tokens {
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), key_authorization.to_string());
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn get(&self, token: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }
}

/// Serves the listener until the task is aborted. `origin`: `https://host[:port]` of
/// `public_url`.
pub async fn serve(listener: TcpListener, origin: String, tokens: Arc<Http01Tokens>) {
    let admission = Admission::new(
        MAX_CONNECTIONS,
        MAX_CONNECTIONS_PER_ADDRESS,
        0,
        Arc::default(),
    );
    let origin: Arc<str> = origin.into();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("http_listen: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = admission.take_address(Some(peer.ip())) else {
            continue;
        };
        let (origin, tokens, admission) = (origin.clone(), tokens.clone(), admission.clone());
        tokio::spawn(async move {
            let state = Arc::new(ConnectionState::default());
            let Ok(admitted) = admission.admit(slot, state.clone()).await else {
                return;
            };
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let answering = Answered::start(state.clone());
                let reply = answer(&req, &origin, &tokens);
                drop(answering);
                async move { Ok::<_, std::convert::Infallible>(reply) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = tokio::time::timeout(TIMEOUT, connection) => {}
                _ = admitted.tracked.shed.notified() => {}
            }
            drop(admitted);
        });
    }
}

fn answer<B>(req: &Request<B>, origin: &str, tokens: &Http01Tokens) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if let Some(token) = path.strip_prefix(CHALLENGE_PREFIX) {
        return match tokens.get(token) {
            Some(key_authorization) => plain(StatusCode::OK, key_authorization),
            None => plain(StatusCode::NOT_FOUND, "no such challenge\n".into()),
        };
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let target = if target.starts_with('/') {
        target
    } else {
        "/".to_string()
    };
    let mut reply = plain(
        StatusCode::PERMANENT_REDIRECT,
        "linkgate is served over https\n".into(),
    );
    if let Ok(location) = format!("{origin}{target}").parse() {
        reply
            .headers_mut()
            .insert(hyper::header::LOCATION, location);
    }
    reply
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str, tokens: &Http01Tokens) -> Response<Full<Bytes>> {
        let req = Request::builder().uri(uri).body(()).unwrap();
        answer(&req, "https://auth.example.com", tokens)
    }

    #[test]
    fn challenges_are_answered_and_the_rest_goes_to_https_on_the_public_host() {
        let tokens = Http01Tokens::default();
        tokens.insert("tok", "tok.thumb");
        assert_eq!(
            get("/.well-known/acme-challenge/tok", &tokens).status(),
            200
        );
        assert_eq!(
            get("/.well-known/acme-challenge/other", &tokens).status(),
            404
        );
        let reply = get("/authorize?a=1&b=2", &tokens);
        assert_eq!(reply.status(), 308);
        assert_eq!(
            reply.headers()["location"],
            "https://auth.example.com/authorize?a=1&b=2"
        );
        // An absolute-form request line names another host: still our own.
        let reply = get("http://evil.example/x", &tokens);
        assert_eq!(reply.headers()["location"], "https://auth.example.com/x");
        tokens.clear();
        assert_eq!(
            get("/.well-known/acme-challenge/tok", &tokens).status(),
            404
        );
    }
}
