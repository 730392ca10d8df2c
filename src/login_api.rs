//! Checking a password against the operator's existing login API (`[login.api]`), for operators
//! whose customers already have accounts in their own apps.
//!
//! The API is someone else's production system, so the client is careful with it: connections are
//! pooled and kept alive (no TCP + TLS handshake per sign-in), at most `max_in_flight` calls run at
//! once (a flood of sign-ins waits briefly, then gets "busy", and never multiplies into a flood at
//! the API), and every call ends within `timeout_ms`. Its answers are judged strictly: 2xx with a
//! subject signs the customer in; 400, 401 and 403 are a wrong password; anything else (a timeout,
//! a 5xx, a redirect, an answer that is not JSON or too large) means the API cannot tell right now,
//! which is never counted as a wrong guess. The password and the configured header values are
//! never logged; `Failure`'s `Display` says only what went wrong.
//!
//! The HTTP side is hyper's client connection API over tokio-rustls, like `doctor::https`.

use crate::base::secret::Secret;
use crate::base::tls_client;
use crate::config::{BodyFormat, LoginApi};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// Answers larger than this are refused: a login answer is a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// A sign-in waits at most this long for one of the `max_in_flight` slots (or the timeout, if
/// shorter) before it is turned away as busy.
const MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);
/// An idle pooled connection older than this is closed rather than reused (servers commonly close
/// idle keep-alive connections after 60 s or less; reusing one they just closed costs a retry).
const MAX_IDLE: Duration = Duration::from_secs(30);
/// The longest subject accepted: it becomes `sub` in every token answer.
const MAX_SUBJECT_CHARS: usize = 255;
/// The longest username or password sent to the API; longer input is a wrong password without a
/// call (the API would refuse it anyway).
const MAX_USERNAME_CHARS: usize = 320;
const MAX_PASSWORD_CHARS: usize = 1024;

/// What the API said about a username and password.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx with the subject: these are the customer's credentials.
    Accepted {
        subject: String,
        display_name: Option<String>,
    },
    /// 400, 401 or 403: wrong username or password.
    Refused(u16),
    /// The API could not say; the customer should try again later.
    Unavailable(Failure),
}

/// Why the API could not answer. `Display` is for the log: no password, no header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// All `max_in_flight` slots stayed busy.
    Busy,
    Timeout,
    Connect(String),
    Tls(String),
    /// A 3xx (never followed: the password would go wherever it points).
    Redirect(u16),
    /// A 5xx, or a 4xx other than 400/401/403.
    Status(u16),
    TooLarge,
    NotJson,
    /// A 2xx without a string or number at `subject`.
    NoSubject,
    /// The connection broke mid-answer.
    Broken(String),
}

impl Failure {
    /// Every reason, in the order `/metrics` lists them.
    pub const REASONS: [&'static str; 10] = [
        "busy",
        "timeout",
        "connect",
        "tls",
        "redirect",
        "status",
        "too_large",
        "not_json",
        "no_subject",
        "broken",
    ];

    /// Index into `REASONS` (the metrics label).
    pub fn reason(&self) -> usize {
        match self {
            Failure::Busy => 0,
            Failure::Timeout => 1,
            Failure::Connect(_) => 2,
            Failure::Tls(_) => 3,
            Failure::Redirect(_) => 4,
            Failure::Status(_) => 5,
            Failure::TooLarge => 6,
            Failure::NotJson => 7,
            Failure::NoSubject => 8,
            Failure::Broken(_) => 9,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Busy => write!(f, "all max_in_flight calls are busy"),
            Failure::Timeout => write!(f, "no answer within timeout_ms"),
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Failure::Redirect(s) => write!(f, "answered a redirect ({s}); redirects are not followed"),
            Failure::Status(s) => write!(f, "answered status {s}"),
            Failure::TooLarge => write!(f, "the answer is larger than {MAX_ANSWER_BYTES} bytes"),
            Failure::NotJson => write!(f, "a 2xx answer that is not JSON"),
            Failure::NoSubject => write!(
                f,
                "a 2xx answer without a string or number at `subject` (or one over {MAX_SUBJECT_CHARS} characters)"
            ),
            Failure::Broken(e) => write!(f, "the connection broke: {e}"),
        }
    }
}

/// The client: one per server, shared by every sign-in.
pub struct LoginApiClient {
    api: LoginApi,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Idle keep-alive connections, most recently used last.
    idle: Mutex<Vec<(SendRequest<Full<Bytes>>, Instant)>>,
    in_flight: Semaphore,
}

impl LoginApiClient {
    /// Builds the client (TLS roots: webpki's Mozilla roots plus `ca_file`). No connection yet.
    pub fn new(api: LoginApi) -> Result<LoginApiClient, String> {
        let tls = if api.https {
            let extra = api.extra_roots.iter().map(|der| der.clone().into());
            let roots = tls_client::roots(extra).map_err(|e| format!("login.api.ca_file: {e}"))?;
            let config = tls_client::config(roots, true)?;
            let name = ServerName::try_from(api.host.clone())
                .map_err(|e| format!("login.api.url: `{}`: {e}", api.host))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(LoginApiClient {
            in_flight: Semaphore::new(api.max_in_flight),
            api,
            tls,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Asks the API whether `username` and `password` belong together. Waits at most briefly for
    /// a slot, then at most `timeout_ms` for the answer.
    pub async fn verify(&self, username: &str, password: &Secret) -> Outcome {
        if username.is_empty()
            || username.chars().count() > MAX_USERNAME_CHARS
            || password.expose().is_empty()
            || password.expose().chars().count() > MAX_PASSWORD_CHARS
        {
            return Outcome::Refused(0);
        }
        let wait = MAX_QUEUE_WAIT.min(self.api.timeout);
        let Ok(Ok(_slot)) = tokio::time::timeout(wait, self.in_flight.acquire()).await else {
            return Outcome::Unavailable(Failure::Busy);
        };
        let body = request_body(&self.api, username, password);
        let request = self.request(hyper::Method::POST, &self.api.path, Some(body));
        match tokio::time::timeout(self.api.timeout, self.call(request)).await {
            Ok(Ok((status, answer))) => judge(&self.api, status, answer),
            Ok(Err(failure)) => Outcome::Unavailable(failure),
            Err(_) => Outcome::Unavailable(Failure::Timeout),
        }
    }

    /// Asks `check_url` whether `subject` is still a customer: 2xx yes, 404 or 410 no, anything
    /// else (or no `check_url`) cannot say. Within the same in-flight limit and timeout as a
    /// sign-in.
    pub async fn lookup(&self, subject: &str) -> Lookup {
        let Some(check) = &self.api.check else {
            return Lookup::Unavailable(Failure::Connect("no login.api.check_url".into()));
        };
        let wait = MAX_QUEUE_WAIT.min(self.api.timeout);
        let Ok(Ok(_slot)) = tokio::time::timeout(wait, self.in_flight.acquire()).await else {
            return Lookup::Unavailable(Failure::Busy);
        };
        let Some(path) = crate::config::check_path(check, subject) else {
            return Lookup::Unavailable(Failure::NoSubject);
        };
        let request = self.request(hyper::Method::GET, &path, None);
        match tokio::time::timeout(self.api.timeout, self.call(request)).await {
            Ok(Ok((status, _))) => judge_lookup(status),
            Ok(Err(failure)) => Lookup::Unavailable(failure),
            Err(_) => Lookup::Unavailable(Failure::Timeout),
        }
    }

    /// One request; the answer's status and body (or `TooLarge`).
    async fn call(
        &self,
        request: Result<hyper::Request<Full<Bytes>>, Failure>,
    ) -> Result<(u16, Result<Bytes, Failure>), Failure> {
        let mut request = Some(request?);
        // A pooled connection the server closed meanwhile gives the request back unsent: try the
        // next one, and finally a fresh connection. A request that was sent is never sent again.
        loop {
            let (mut sender, reused) = match self.pooled() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            let Some(req) = request.take() else {
                return Err(Failure::Broken("no request".into()));
            };
            if sender.ready().await.is_err() {
                request = Some(req);
                if reused {
                    continue;
                }
                return Err(Failure::Broken("the new connection closed at once".into()));
            }
            let response = match sender.try_send_request(req).await {
                Ok(response) => response,
                Err(mut e) => match e.take_message() {
                    Some(req) if reused => {
                        request = Some(req);
                        continue;
                    }
                    _ => return Err(Failure::Broken(e.into_error().to_string())),
                },
            };
            let status = response.status().as_u16();
            let limited = Limited::new(response.into_body(), MAX_ANSWER_BYTES);
            let answer = match limited.collect().await {
                Ok(collected) => Ok(collected.to_bytes()),
                Err(e)
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some() =>
                {
                    Err(Failure::TooLarge)
                }
                Err(e) => return Err(Failure::Broken(e.to_string())),
            };
            // The whole answer was read: the connection can serve the next sign-in.
            if answer.is_ok() && !sender.is_closed() {
                self.park(sender);
            }
            return Ok((status, answer));
        }
    }

    fn request(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<hyper::Request<Full<Bytes>>, Failure> {
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.api.authority.as_str());
        if let Some((_, content_type)) = &body {
            builder = builder.header(hyper::header::CONTENT_TYPE, *content_type);
        }
        let body = body.map(|(bytes, _)| bytes).unwrap_or_default();
        builder = builder
            .header(hyper::header::ACCEPT, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("linkgate/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in &self.api.headers {
            let mut value = hyper::header::HeaderValue::from_str(value.expose())
                .map_err(|_| Failure::Connect("a configured header value is invalid".into()))?;
            value.set_sensitive(true);
            builder = builder.header(name.as_str(), value);
        }
        builder
            .body(Full::new(body))
            .map_err(|e| Failure::Connect(format!("cannot build the request: {e}")))
    }

    /// A live idle connection, if one is parked.
    fn pooled(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && since.elapsed() < MAX_IDLE {
                return Some(sender);
            }
        }
        None
    }

    fn park(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|(s, since)| !s.is_closed() && since.elapsed() < MAX_IDLE);
        if idle.len() < self.api.max_in_flight {
            idle.push((sender, Instant::now()));
        }
    }

    /// A new connection: DNS, TCP, TLS (for https), HTTP/1.1 handshake.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((self.api.host.as_str(), self.api.port))
                .await
                .map_err(|e| Failure::Connect(format!("cannot resolve {}: {e}", self.api.host)))?
                .take(4)
                .collect();
        // Plain http is allowed only to this machine (config checks the name; this checks where
        // the name leads).
        if !self.api.https && addresses.iter().any(|a| !a.ip().is_loopback()) {
            return Err(Failure::Connect(format!(
                "{} resolves to a non-loopback address; plain http is refused",
                self.api.host
            )));
        }
        let mut last = format!("{} resolves to no address", self.api.host);
        let mut tcp = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = format!("{address}: {e}"),
            }
        }
        let tcp = tcp.ok_or(Failure::Connect(last))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| Failure::Tls(e.to_string()))?;
                handshake(stream).await
            }
            None => handshake(tcp).await,
        }
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::Connect(format!("HTTP handshake: {e}")))?;
    tokio::spawn(async move {
        // Ends when the server closes or the sender (pooled or not) is dropped.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The request body: JSON `{"<username_field>": …, "<password_field>": …}` or the same as a form.
fn request_body(api: &LoginApi, username: &str, password: &Secret) -> (Bytes, &'static str) {
    match api.body {
        BodyFormat::Json => {
            let mut object = serde_json::Map::new();
            object.insert(api.username_field.clone(), username.into());
            object.insert(api.password_field.clone(), password.expose().into());
            let bytes = serde_json::to_vec(&object).unwrap_or_default();
            (Bytes::from(bytes), "application/json")
        }
        BodyFormat::Form => {
            use crate::base::urlencoded::encode;
            let body = format!(
                "{}={}&{}={}",
                encode(&api.username_field),
                encode(username),
                encode(&api.password_field),
                encode(password.expose())
            );
            (Bytes::from(body), "application/x-www-form-urlencoded")
        }
    }
}

/// What the API said about a subject at `check_url`.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// 2xx: still a customer.
    Exists,
    /// 404 or 410: the customer is gone.
    Gone(u16),
    /// Anything else: the API could not say (the link is kept).
    Unavailable(Failure),
}

/// What a `check_url` answer's status means. Pure: 2xx exists, 404/410 gone, a redirect is not
/// followed, the rest cannot say.
pub fn judge_lookup(status: u16) -> Lookup {
    match status {
        200..=299 => Lookup::Exists,
        404 | 410 => Lookup::Gone(status),
        300..=399 => Lookup::Unavailable(Failure::Redirect(status)),
        _ => Lookup::Unavailable(Failure::Status(status)),
    }
}

/// What an answer means. Pure, so every case is unit-tested.
pub fn judge(api: &LoginApi, status: u16, answer: Result<Bytes, Failure>) -> Outcome {
    match status {
        400 | 401 | 403 => return Outcome::Refused(status),
        200..=299 => {}
        300..=399 => return Outcome::Unavailable(Failure::Redirect(status)),
        _ => return Outcome::Unavailable(Failure::Status(status)),
    }
    let answer = match answer {
        Ok(answer) => answer,
        Err(failure) => return Outcome::Unavailable(failure),
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&answer) else {
        return Outcome::Unavailable(Failure::NotJson);
    };
    // `success`: an API that answers 200 for a wrong password too, with e.g. `{"ok": false}`.
    if let Some(pointer) = &api.success {
        if json.pointer(pointer) != Some(&serde_json::Value::Bool(true)) {
            return Outcome::Refused(status);
        }
    }
    let text = |pointer: &str| match json.pointer(pointer) {
        Some(serde_json::Value::String(s)) => Some(s.trim().to_string()),
        // An integer id as written; a number JSON cannot carry exactly (beyond 64 bits, or a
        // fraction) is refused rather than rounded into someone else's id.
        Some(serde_json::Value::Number(n)) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    };
    let subject = text(&api.subject)
        .filter(|s| !s.is_empty() && s.chars().count() <= MAX_SUBJECT_CHARS)
        .filter(|s| !s.chars().any(char::is_control));
    let Some(subject) = subject else {
        return Outcome::Unavailable(Failure::NoSubject);
    };
    let display_name = api
        .display_name
        .as_deref()
        .and_then(text)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(100).collect());
    Outcome::Accepted {
        subject,
        display_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> LoginApi {
        LoginApi {
            url: "https://api.example.com/login".into(),
            https: true,
            host: "api.example.com".into(),
            port: 443,
            authority: "api.example.com".into(),
            path: "/login".into(),
            body: BodyFormat::Json,
            username_field: "email".into(),
            password_field: "password".into(),
            subject: "/user/id".into(),
            display_name: Some("/user/name".into()),
            timeout: Duration::from_secs(3),
            max_in_flight: 4,
            headers: Vec::new(),
            ca_file: None,
            extra_roots: Vec::new(),
            check: None,
            success: None,
        }
    }

    #[test]
    fn with_success_a_2xx_signs_in_only_when_the_pointer_is_true() {
        let api = LoginApi {
            success: Some("/ok".into()),
            ..api()
        };
        let judged = |body: &str| judge(&api, 200, Ok(Bytes::from(body.to_string())));
        assert_eq!(
            judged(r#"{"ok":false,"error":"wrong password"}"#),
            Outcome::Refused(200)
        );
        assert_eq!(judged(r#"{"user":{"id":"c-1"}}"#), Outcome::Refused(200));
        assert_eq!(
            judged(r#"{"ok":"true","user":{"id":"c-1"}}"#),
            Outcome::Refused(200)
        );
        assert!(matches!(
            judged(r#"{"ok":true,"user":{"id":"c-1"}}"#),
            Outcome::Accepted { .. }
        ));
    }

    #[test]
    fn a_lookup_is_gone_only_on_404_or_410_and_a_subject_cannot_leave_its_path_segment() {
        assert_eq!(judge_lookup(200), Lookup::Exists);
        assert_eq!(judge_lookup(204), Lookup::Exists);
        assert_eq!(judge_lookup(404), Lookup::Gone(404));
        assert_eq!(judge_lookup(410), Lookup::Gone(410));
        for status in [301, 400, 401, 403, 429, 500, 503] {
            assert!(
                matches!(judge_lookup(status), Lookup::Unavailable(_)),
                "{status}"
            );
        }
        let check = crate::config::CustomerCheck {
            url: "https://api.example.com/v1/customers/{subject}?full=1".into(),
            path: "/v1/customers/{subject}?full=1".into(),
            every_secs: 0,
        };
        assert_eq!(
            crate::config::check_path(&check, "cust-1001").as_deref(),
            Some("/v1/customers/cust-1001?full=1")
        );
        assert_eq!(
            crate::config::check_path(&check, "../admin?x=1#é/ {subject}").as_deref(),
            Some("/v1/customers/..%2Fadmin%3Fx%3D1%23%C3%A9%2F%20%7Bsubject%7D?full=1")
        );
        for dots in ["", ".", ".."] {
            assert_eq!(crate::config::check_path(&check, dots), None);
        }
    }

    fn answer(status: u16, body: &str) -> Outcome {
        judge(&api(), status, Ok(Bytes::from(body.to_string())))
    }

    #[test]
    fn a_2xx_with_a_subject_signs_in() {
        assert_eq!(
            answer(200, r#"{"user":{"id":"c-42","name":"Alice A."}}"#),
            Outcome::Accepted {
                subject: "c-42".into(),
                display_name: Some("Alice A.".into())
            }
        );
        assert_eq!(
            answer(201, r#"{"user":{"id":42}}"#),
            Outcome::Accepted {
                subject: "42".into(),
                display_name: None
            }
        );
    }

    #[test]
    fn wrong_passwords_are_400_401_403_only() {
        for status in [400, 401, 403] {
            assert_eq!(answer(status, "{}"), Outcome::Refused(status));
        }
        for status in [404, 405, 429, 500, 502, 503] {
            assert_eq!(
                answer(status, "{}"),
                Outcome::Unavailable(Failure::Status(status))
            );
        }
        for status in [301, 302, 303, 307, 308] {
            assert_eq!(
                answer(status, ""),
                Outcome::Unavailable(Failure::Redirect(status))
            );
        }
    }

    #[test]
    fn a_2xx_that_does_not_name_the_user_is_unavailable() {
        for body in [
            "<html>ok</html>",
            "",
            "{}",
            r#"{"user":{"id":null}}"#,
            r#"{"user":{"id":""}}"#,
            r#"{"user":{"id":{"n":1}}}"#,
            r#"{"user":{"id":true}}"#,
            r#"{"user":{"id":"a\nb"}}"#,
        ] {
            let outcome = answer(200, body);
            assert!(
                matches!(
                    outcome,
                    Outcome::Unavailable(Failure::NotJson | Failure::NoSubject)
                ),
                "{body}: {outcome:?}"
            );
        }
        let long = format!(r#"{{"user":{{"id":"{}"}}}}"#, "x".repeat(256));
        assert_eq!(answer(200, &long), Outcome::Unavailable(Failure::NoSubject));
        assert_eq!(
            judge(&api(), 200, Err(Failure::TooLarge)),
            Outcome::Unavailable(Failure::TooLarge)
        );
    }

    #[test]
    fn bodies_carry_the_configured_fields() {
        let password = Secret::new("p&ss=w\"rd");
        let (json, kind) = request_body(&api(), "a@b.c", &password);
        assert_eq!(kind, "application/json");
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["email"], "a@b.c");
        assert_eq!(value["password"], "p&ss=w\"rd");
        let form_api = LoginApi {
            body: BodyFormat::Form,
            ..api()
        };
        let (form, kind) = request_body(&form_api, "a@b.c", &password);
        assert_eq!(kind, "application/x-www-form-urlencoded");
        assert_eq!(&form[..], b"email=a%40b.c&password=p%26ss%3Dw%22rd");
    }

    #[test]
    fn failures_never_print_secrets() {
        for failure in [Failure::Busy, Failure::Timeout, Failure::NotJson] {
            assert!(Failure::REASONS.get(failure.reason()).is_some());
            assert!(!failure.to_string().is_empty());
        }
    }
}
