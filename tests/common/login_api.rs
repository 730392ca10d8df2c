//! A stand-in for an operator's login API: a real hyper server on 127.0.0.1:0, plain HTTP or
//! HTTPS with a certificate from a throw-away test CA (rcgen), whose behaviour a test switches at
//! run time (wrong answers, slowness, redirects, oversized bodies). It counts calls, connections
//! and the highest number of calls in flight at once, and keeps the last request it saw.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::rustls;

/// The customer the fake API knows, and what it answers for them.
pub const API_USER: &str = "rider@example.com";
pub const API_PASSWORD: &str = "taxi password 1";
pub const API_SUBJECT: &str = "cust-1001";
pub const API_NAME: &str = "Rita Rider";
/// The API key the fake API demands in `X-Api-Key`.
pub const API_KEY: &str = "test-api-key-do-not-log";

/// How the fake API answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Checks the credentials: `API_USER`/`API_PASSWORD` and `riderN@example.com` with
    /// `API_PASSWORD` get 200 `{"user":{"id":…,"name":…}}`, anything else 401.
    Normal,
    /// Always this status with `{"error":"…"}`.
    Status(u16),
    /// 302 to another address.
    Redirect,
    /// 200 with an HTML page.
    Html,
    /// 200 with a JSON answer larger than 64 KiB.
    Huge,
    /// 200 JSON without the subject.
    NoSubject,
    /// 200 with this JSON body, whatever the credentials.
    Answer(String),
    /// Closes the connection without answering (new connections at once, kept-alive ones after
    /// reading the request).
    Close,
}

/// Headers (lower-case names, values) and body of a request the fake API received.
pub type SeenRequest = (Vec<(String, String)>, String);

#[derive(Default)]
pub struct Stats {
    pub calls: AtomicUsize,
    pub connections: AtomicUsize,
    in_flight: AtomicUsize,
    pub peak_in_flight: AtomicUsize,
}

struct Shared {
    mode: Mutex<Mode>,
    /// Every answer waits this long first.
    delay: Mutex<Duration>,
    stats: Stats,
    /// Headers and body of the last request.
    last: Mutex<Option<SeenRequest>>,
    /// Subjects deleted from the operator's system: `GET /customers/{id}` answers 404.
    gone: Mutex<Vec<String>>,
    /// Paths of the `GET /customers/…` lookups received, in order.
    lookups: Mutex<Vec<String>>,
}

pub struct FakeApi {
    pub addr: SocketAddr,
    /// The URL to put into `[login.api] url`.
    pub url: String,
    /// PEM of the test CA (HTTPS only), for `ca_file`.
    pub ca_pem: Option<String>,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeApi {
    /// Plain HTTP on 127.0.0.1.
    pub fn plain() -> FakeApi {
        FakeApi::start(None)
    }

    /// HTTPS as `localhost`, with a certificate from a fresh test CA.
    pub fn tls() -> FakeApi {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "linkgate test login API CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
        let mut api = FakeApi::start(Some(Arc::new(config)));
        api.ca_pem = Some(ca.pem());
        api
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> FakeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Normal),
            delay: Mutex::new(Duration::ZERO),
            stats: Stats::default(),
            last: Mutex::new(None),
            gone: Mutex::new(Vec::new()),
            lookups: Mutex::new(Vec::new()),
        });
        let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
        runtime.spawn(accept_loop(listener, acceptor, shared.clone()));
        let url = match tls {
            Some(_) => format!("https://localhost:{}/v1/login", addr.port()),
            None => format!("http://127.0.0.1:{}/v1/login", addr.port()),
        };
        FakeApi {
            addr,
            url,
            ca_pem: None,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Deletes the customer `subject`: lookups of it answer 404 from now on.
    pub fn delete_customer(&self, subject: &str) {
        self.shared.gone.lock().unwrap().push(subject.to_string());
    }

    /// The paths of the customer lookups (`GET /customers/…`) received so far.
    pub fn lookups(&self) -> Vec<String> {
        self.shared.lookups.lock().unwrap().clone()
    }

    /// The URL to put into `[login.api] check_url`.
    pub fn check_url(&self) -> String {
        let base = &self.url[..self.url.rfind('/').expect("a path")];
        format!("{base}/customers/{{subject}}")
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn calls(&self) -> usize {
        self.shared.stats.calls.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.shared.stats.connections.load(Ordering::SeqCst)
    }

    pub fn peak_in_flight(&self) -> usize {
        self.shared.stats.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Headers (lower-case names) and body of the last request.
    pub fn last_request(&self) -> Option<SeenRequest> {
        self.shared.last.lock().unwrap().clone()
    }

    /// Writes the CA certificate next to a config and returns the file name.
    pub fn write_ca(&self, dir: &Path) -> String {
        let pem = self.ca_pem.as_ref().expect("an HTTPS fake API");
        std::fs::write(dir.join("api-ca.pem"), pem).expect("write CA");
        "api-ca.pem".to_string()
    }

    /// `config` with `[login] source` and a `[login.api]` table for this API: JSON with the
    /// fields `email` and `password`, subject `/user/id`, display name `/user/name`, the API key
    /// header, and (for HTTPS) `ca_file = "api-ca.pem"` (see `write_ca`).
    pub fn configure(&self, config: super::TestConfig, source: &str) -> super::TestConfig {
        let config = config
            .set("login.source", source)
            .set("login.api.url", self.url.as_str())
            .set("login.api.body", "json")
            .set("login.api.username_field", "email")
            .set("login.api.password_field", "password")
            .set("login.api.subject", "/user/id")
            .set("login.api.display_name", "/user/name")
            .set("login.api.timeout_ms", 3000)
            .set("login.api.headers.X-Api-Key", API_KEY);
        match self.ca_pem {
            Some(_) => config.set("login.api.ca_file", "api-ca.pem"),
            None => config,
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_millis(100));
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        shared.stats.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            if *shared.mode.lock().unwrap() == Mode::Close {
                drop(tcp);
                return;
            }
            let service = hyper::service::service_fn(move |req| answer(shared.clone(), req));
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                Some(tls) => {
                    if let Ok(stream) = tls.accept(tcp).await {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
                None => {
                    let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}

async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let stats = &shared.stats;
    stats.calls.fetch_add(1, Ordering::SeqCst);
    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stats.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let lookup = (req.method() == hyper::Method::GET)
        .then(|| {
            req.uri()
                .path()
                .strip_prefix("/v1/customers/")
                .map(str::to_string)
        })
        .flatten();
    let body = req.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    *shared.last.lock().unwrap() = Some((headers.clone(), body.clone()));
    let delay = *shared.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let mode = shared.mode.lock().unwrap().clone();
    let response = match &lookup {
        Some(subject) => {
            shared
                .lookups
                .lock()
                .unwrap()
                .push(format!("/v1/customers/{subject}"));
            let gone = shared.gone.lock().unwrap().contains(subject);
            look_up(&mode, &headers, subject, gone)
        }
        None => respond(&mode, &headers, &body),
    };
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    if mode == Mode::Close {
        // hyper drops the connection without an answer when the service fails.
        return Err("scripted: close without answering".into());
    }
    Ok(response)
}

/// `GET /customers/{subject}`: 200 for a customer it knows (`API_SUBJECT`, `cust-N`) that was
/// not deleted, 404 otherwise; `Mode::Status` answers its status.
fn look_up(
    mode: &Mode,
    headers: &[(String, String)],
    subject: &str,
    gone: bool,
) -> Response<Full<Bytes>> {
    let status = match mode {
        Mode::Status(status) => *status,
        _ if !headers
            .iter()
            .any(|(n, v)| n == "x-api-key" && v == API_KEY) =>
        {
            500
        }
        _ if gone => 404,
        _ if subject == API_SUBJECT
            || subject
                .strip_prefix("cust-")
                .is_some_and(|n| n.parse::<u32>().is_ok()) =>
        {
            200
        }
        _ => 404,
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{{\"status\":{status}}}"))))
        .expect("response")
}

fn respond(mode: &Mode, headers: &[(String, String)], body: &str) -> Response<Full<Bytes>> {
    let reply = |status: u16, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    let json =
        |status: u16, body: serde_json::Value| reply(status, "application/json", body.to_string());
    match mode {
        Mode::Status(status) => json(*status, serde_json::json!({"error": "scripted"})),
        Mode::Redirect => Response::builder()
            .status(302)
            .header("location", "https://elsewhere.example/login")
            .body(Full::new(Bytes::new()))
            .expect("response"),
        Mode::Html => reply(
            200,
            "text/html",
            "<html><body>Welcome!</body></html>".into(),
        ),
        Mode::Huge => json(
            200,
            serde_json::json!({"user": {"id": API_SUBJECT, "padding": "x".repeat(70 * 1024)}}),
        ),
        Mode::NoSubject => json(200, serde_json::json!({"user": {"name": API_NAME}})),
        Mode::Answer(body) => reply(200, "application/json", body.clone()),
        Mode::Close => json(500, serde_json::json!({})),
        Mode::Normal => {
            let key = headers
                .iter()
                .find(|(n, _)| n == "x-api-key")
                .map(|(_, v)| v.as_str());
            if key != Some(API_KEY) {
                return json(500, serde_json::json!({"error": "no api key"}));
            }
            let Ok(credentials) = serde_json::from_str::<serde_json::Value>(body) else {
                return json(400, serde_json::json!({"error": "bad json"}));
            };
            let email = credentials["email"].as_str().unwrap_or("");
            let password = credentials["password"].as_str().unwrap_or("");
            let subject = if email == API_USER {
                Some(API_SUBJECT.to_string())
            } else {
                email
                    .strip_prefix("rider")
                    .and_then(|rest| rest.strip_suffix("@example.com"))
                    .filter(|n| n.parse::<u32>().is_ok())
                    .map(|n| format!("cust-{n}"))
            };
            match subject {
                Some(id) if password == API_PASSWORD => json(
                    200,
                    serde_json::json!({"user": {"id": id, "name": API_NAME}, "token": "ignored"}),
                ),
                _ => json(401, serde_json::json!({"error": "invalid credentials"})),
            }
        }
    }
}
