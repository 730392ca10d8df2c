//! The requests Amazon's and Google's account-linking services send, replayed from
//! tests/fixtures/{alexa,google}/*.http over a raw TCP socket (kept alive, as a pooled HTTP
//! client would) to the real binary, with the answers each service needs checked exactly. The
//! sign-in and Allow in between are the harness's `Browser`. Sources for every request are cited
//! at the top of its fixture.

mod common;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A client id and secret that need form-encoding inside HTTP Basic (RFC 6749 §2.3.1).
const ALEXA_ODD_ID: &str = "Example Taxi: Alexa+1/é";
const ALEXA_ODD_SECRET: &str = "s3cret with spaces+plus:colon%/=";
const ALEXA_REGIONS: [&str; 3] = [
    "https://pitangui.amazon.com/api/skill/link/M2FIXTURE12345",
    "https://layla.amazon.com/api/skill/link/M2FIXTURE12345",
    "https://alexa.amazon.co.jp/api/skill/link/M2FIXTURE12345",
];
const GOOGLE_LINK_ID: &str = "google-linking";
const GOOGLE_LINK_SECRET: &str = "google-linking-secret-0123456789";
const GOOGLE_HOSTS: [&str; 2] = [
    "https://oauth-redirect.googleusercontent.com/r/example-taxi-1234",
    "https://oauth-redirect-sandbox.googleusercontent.com/r/example-taxi-1234",
];
/// Alexa answers within 4.5 s or gives up (configure-authorization-code-grant.html).
const ALEXA_DEADLINE: Duration = Duration::from_millis(4500);
const READ_TIMEOUT: Duration = Duration::from_secs(20);

fn env() -> TestEnv {
    let regions = ALEXA_REGIONS.map(|r| format!("\"{r}\"")).join(", ");
    let hosts = GOOGLE_HOSTS.map(|h| format!("\"{h}\"")).join(", ");
    let extra = format!(
        r#"
[[clients]]
id = "{ALEXA_ODD_ID}"
secret = "{ALEXA_ODD_SECRET}"
name = "Example Taxi for Alexa"
redirect_uris = [{regions}]
require_pkce = true

[[clients]]
id = "{GOOGLE_LINK_ID}"
secret = "{GOOGLE_LINK_SECRET}"
name = "Example Taxi for Google"
redirect_uris = [{hosts}]
"#
    );
    let env = TestEnv::with_config(&config_text(&extra));
    env.add_user(USER, PASSWORD);
    env
}

/// A fixture's request with its placeholders filled in: header lines end in CRLF, the body is
/// sent as written (without the file's final newline), `{{CONTENT_LENGTH}}` is the body's
/// length. Leading `#` lines are comments.
fn request(name: &str, vars: &[(&str, &str)]) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut text: String = file
        .lines()
        .skip_while(|line| line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for (key, value) in vars {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    // A request without a body ends at the empty line after the headers.
    let text = text.trim_end_matches('\n');
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let head = head.replace("{{CONTENT_LENGTH}}", &body.len().to_string());
    assert!(
        !head.contains("{{") && !body.contains("{{"),
        "{name}: unfilled placeholder in {head}\n\n{body}"
    );
    format!("{}\r\n\r\n{body}", head.replace('\n', "\r\n")).into_bytes()
}

/// One kept-alive connection: each request gets exactly one response, read by its length.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        Connection {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Sends `request` and returns the response and how long it took.
    fn exchange(&mut self, request: &[u8]) -> (Response, Duration) {
        let started = Instant::now();
        self.stream.write_all(request).expect("send request");
        let head_end = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill();
        };
        let head = parse_response(&self.buffer[..head_end]).expect("response head");
        let length: usize = head
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length: {:?}", head.headers));
        while self.buffer.len() < head_end + length {
            self.fill();
        }
        let whole: Vec<u8> = self.buffer.drain(..head_end + length).collect();
        let response = parse_response(&whole).expect("response");
        (response, started.elapsed())
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk).expect("read response");
        assert!(
            n > 0,
            "connection closed mid-response: {}",
            text(&self.buffer)
        );
        self.buffer.extend_from_slice(&chunk[..n]);
    }
}

/// A JWT-like state of more than 4 KiB, as Alexa sends (only URL-safe characters).
fn alexa_state(region: usize) -> String {
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}{region}.c2lnbmF0dXJlLXBhcnQ_-",
        "eyJza2lsbCI6Ik0yRklYVFVSRSJ9".repeat(160)
    )
}

/// An opaque state of more than 4 KiB with characters that need encoding.
fn google_state(host: usize) -> String {
    format!("G{host}:{}", "AbC+/=~.-_ %é&?#".repeat(280))
}

fn pkce() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-fixture-verifier".to_string();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The authorize fixture, then sign-in and Allow in the browser; returns the redirect.
fn authorize(server: &Server, fixture: &str, vars: &[(&str, &str)]) -> Response {
    let (login, _) = Connection::open(server.addr).exchange(&request(fixture, vars));
    assert_eq!(login.status, 200, "{fixture}: {}", login.text());
    assert!(login.expect_header("Content-Type").starts_with("text/html"));
    let login = Page::from(login);
    let mut browser = Browser::new(server);
    browser.cookie = login.cookie.clone();
    let consent = browser.login(&login, USER, PASSWORD);
    assert_eq!(consent.status, 200, "consent page: {}", consent.html);
    let redirect = browser.decide(&consent, "allow");
    assert_eq!(redirect.status, 303, "{redirect:?}");
    redirect
}

/// What both services need from every successful token answer; returns the JSON.
fn assert_token_answer(what: &str, response: &Response, took: Duration) -> serde_json::Value {
    assert_eq!(response.status, 200, "{what}: {}", response.text());
    assert!(took < ALEXA_DEADLINE, "{what} took {took:?}");
    assert_eq!(
        response.header("Content-Type"),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(response.header("Cache-Control"), Some("no-store"), "{what}");
    let json = response.json();
    assert_eq!(json["token_type"], "Bearer", "{what}: {json}");
    assert_eq!(json["expires_in"], 3600, "{what}: {json}");
    for key in ["access_token", "refresh_token"] {
        let token = string_field(&json, key);
        assert!(
            !token.is_empty() && token.len() <= 2048,
            "{what}: {key} {token}"
        );
        // Google's validation tool rejects JWT access tokens; opaque ones pass.
        assert!(
            !token.starts_with("eyJ") && token.matches('.').count() < 2,
            "{what}: {key} looks like a JWT: {token}"
        );
    }
    json
}

/// The OAuth error JSON of a failed token request, with its status.
fn assert_token_error(what: &str, response: &Response, status: u16, error: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.text());
    assert_eq!(
        response.header("Content-Type"),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(response.header("Cache-Control"), Some("no-store"), "{what}");
    assert_eq!(
        response.json()["error"],
        error,
        "{what}: {}",
        response.text()
    );
}

#[test]
fn alexa_links_in_all_three_regions_with_the_requests_it_sends() {
    let env = env();
    let server = env.start();
    let host = server.addr.to_string();
    let basic = STANDARD.encode(format!(
        "{}:{}",
        encode(ALEXA_ODD_ID),
        encode(ALEXA_ODD_SECRET)
    ));
    let (verifier, challenge) = pkce();
    for (region, redirect_uri) in ALEXA_REGIONS.iter().enumerate() {
        let state = alexa_state(region);
        assert!(state.len() > 4096);
        let (client_id, redirect) = (encode(ALEXA_ODD_ID), encode(redirect_uri));
        let mut vars = vec![
            ("HOST", host.as_str()),
            ("CLIENT_ID", client_id.as_str()),
            ("REDIRECT_URI", redirect.as_str()),
            ("STATE", state.as_str()),
            ("CODE_CHALLENGE", challenge.as_str()),
            ("CODE_VERIFIER", verifier.as_str()),
            ("BASIC", basic.as_str()),
        ];
        let back = authorize(&server, "alexa/authorize.http", &vars);
        let location = back.expect_header("Location");
        // The state comes back byte for byte (it is URL-safe, so not even re-encoded).
        assert!(
            location.starts_with(&format!("{redirect_uri}?"))
                && location.contains(&format!("state={state}")),
            "{location}"
        );
        let params = back.location_params();
        assert_eq!(params["state"], state);
        let code = params["code"].clone();

        let mut connection = Connection::open(server.addr);
        vars.push(("CODE", &code));
        let (answer, took) = connection.exchange(&request("alexa/token-code.http", &vars));
        let tokens = assert_token_answer(redirect_uri, &answer, took);
        assert_eq!(tokens["scope"], "profile postal_code");
        let access = string_field(&tokens, "access_token");
        let refresh_token = string_field(&tokens, "refresh_token");

        vars.push(("REFRESH_TOKEN", &refresh_token));
        let (answer, took) = connection.exchange(&request("alexa/token-refresh.http", &vars));
        let refreshed = assert_token_answer("refresh", &answer, took);
        assert_eq!(refreshed["refresh_token"], refresh_token.as_str());
        let new_access = string_field(&refreshed, "access_token");
        assert_ne!(new_access, access);
        assert_eq!(
            server.userinfo(&new_access).json_str("preferred_username"),
            USER
        );

        // The same refresh again seconds later (a lost response, a retry) still works.
        let (answer, took) = connection.exchange(&request("alexa/token-refresh.http", &vars));
        let retried = assert_token_answer("retried refresh", &answer, took);
        assert_eq!(retried["refresh_token"], refresh_token.as_str());

        // A code sent again is refused, and what its first use gave is revoked (RFC 6749
        // §4.1.2): the refresh token is dead now, so it too is invalid_grant.
        let (answer, _) = connection.exchange(&request("alexa/token-code.http", &vars));
        assert_token_error("code used twice", &answer, 400, "invalid_grant");
        let (answer, _) = connection.exchange(&request("alexa/token-refresh.http", &vars));
        assert_token_error(
            "refresh after a replayed code",
            &answer,
            400,
            "invalid_grant",
        );
    }
}

#[test]
fn alexa_gets_invalid_grant_only_for_a_dead_refresh_token_and_invalid_client_for_a_bad_secret() {
    let env = env();
    let server = env.start();
    let host = server.addr.to_string();
    let good = STANDARD.encode(format!(
        "{}:{}",
        encode(ALEXA_ODD_ID),
        encode(ALEXA_ODD_SECRET)
    ));
    let wrong = STANDARD.encode(format!("{}:not-the-secret-0123", encode(ALEXA_ODD_ID)));
    let redirect = encode(ALEXA_REGIONS[0]);
    let verifier = pkce().0;
    let vars = |basic| {
        [
            ("HOST", host.as_str()),
            ("BASIC", basic),
            ("REFRESH_TOKEN", "lgrt_revoked-or-never-issued"),
            ("CODE", "lgc_made-up"),
            ("REDIRECT_URI", redirect.as_str()),
            ("CODE_VERIFIER", verifier.as_str()),
        ]
    };
    let mut connection = Connection::open(server.addr);

    let (answer, _) = connection.exchange(&request("alexa/token-refresh.http", &vars(&good)));
    assert_token_error("dead refresh token", &answer, 400, "invalid_grant");
    assert!(answer.header("WWW-Authenticate").is_none());

    for name in ["alexa/token-refresh.http", "alexa/token-code.http"] {
        let (answer, _) = connection.exchange(&request(name, &vars(&wrong)));
        assert_token_error(name, &answer, 401, "invalid_client");
        assert!(
            answer
                .expect_header("WWW-Authenticate")
                .starts_with("Basic "),
            "{:?}",
            answer.headers
        );
    }
}

#[test]
fn google_links_on_both_redirect_hosts_with_the_requests_it_sends_and_user_locale_is_ignored() {
    let env = env();
    let server = env.start();
    let host = server.addr.to_string();
    let (client_id, client_secret) = (encode(GOOGLE_LINK_ID), encode(GOOGLE_LINK_SECRET));
    for (index, redirect_uri) in GOOGLE_HOSTS.iter().enumerate() {
        let state = google_state(index);
        assert!(state.len() > 4096);
        let (state_form, redirect) = (encode(&state), encode(redirect_uri));
        let mut vars = vec![
            ("HOST", host.as_str()),
            ("CLIENT_ID", client_id.as_str()),
            ("CLIENT_SECRET", client_secret.as_str()),
            ("REDIRECT_URI", redirect.as_str()),
            ("STATE", state_form.as_str()),
        ];
        let back = authorize(&server, "google/authorize.http", &vars);
        let location = back.expect_header("Location");
        assert!(
            location.starts_with(&format!("{redirect_uri}?")),
            "{location}"
        );
        let params = back.location_params();
        let mut keys: Vec<&str> = params.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["code", "state"],
            "user_locale is not echoed: {location}"
        );
        assert_eq!(params["state"], state, "the state comes back byte for byte");

        let mut connection = Connection::open(server.addr);
        vars.push(("CODE", &params["code"]));
        let (answer, took) = connection.exchange(&request("google/token-code.http", &vars));
        let tokens = assert_token_answer(redirect_uri, &answer, took);
        assert_eq!(tokens["scope"], "profile email");
        let access = string_field(&tokens, "access_token");
        let refresh_token = string_field(&tokens, "refresh_token");

        vars.push(("REFRESH_TOKEN", &refresh_token));
        let (answer, took) = connection.exchange(&request("google/token-refresh.http", &vars));
        let refreshed = assert_token_answer("refresh", &answer, took);
        // The validation tool: a new access token, and the refresh token does not rotate.
        assert_ne!(refreshed["access_token"], access.as_str());
        assert_eq!(refreshed["refresh_token"], refresh_token.as_str());
        let new_access = string_field(&refreshed, "access_token");
        assert_eq!(server.userinfo(&new_access).status, 200);
    }
}

#[test]
fn google_gets_400_invalid_grant_for_a_dead_refresh_token_and_401_for_a_wrong_secret() {
    let env = env();
    let server = env.start();
    let host = server.addr.to_string();
    let mut connection = Connection::open(server.addr);
    let client_id = encode(GOOGLE_LINK_ID);
    let vars = [
        ("HOST", host.as_str()),
        ("CLIENT_ID", client_id.as_str()),
        ("CLIENT_SECRET", GOOGLE_LINK_SECRET),
        ("REFRESH_TOKEN", "lgrt_unknown"),
    ];
    let (answer, _) = connection.exchange(&request("google/token-refresh.http", &vars));
    // Exactly what the validation tool checks: HTTP 400 and {"error": "invalid_grant"}.
    assert_token_error("dead refresh token", &answer, 400, "invalid_grant");

    let wrong = [
        ("HOST", host.as_str()),
        ("CLIENT_ID", client_id.as_str()),
        ("CLIENT_SECRET", "not-the-secret-0123456789"),
        ("REFRESH_TOKEN", "lgrt_unknown"),
    ];
    let (answer, _) = connection.exchange(&request("google/token-refresh.http", &wrong));
    assert_token_error("wrong secret in the body", &answer, 401, "invalid_client");
    assert!(
        answer.header("WWW-Authenticate").is_some(),
        "{:?}",
        answer.headers
    );
}
