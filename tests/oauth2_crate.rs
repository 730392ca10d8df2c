//! linkgate driven by OAuth client code nobody here wrote: the `oauth2` crate (5.x) builds the
//! authorization URL (with `state` and PKCE S256), exchanges the code and refreshes — once with
//! HTTP Basic as Alexa does, once with the credentials in the body as Google does. Only the
//! browser part (sign-in, Allow) is the harness's `Browser`. The crate brings no HTTP stack here:
//! `Wire` is a small std `TcpStream` client implementing its `SyncHttpClient`.

mod common;
use common::*;
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::url::Url;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, RevocationUrl, Scope, StandardRevocableToken, TokenResponse,
    TokenUrl,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// A client with authorization, token and revocation URLs set.
type LinkClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet, EndpointSet>;

/// The crate's HTTP requests, sent to the server over a plain socket or TLS; every raw request is
/// kept so a test can check how the crate authenticated.
struct Wire {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    sent: RefCell<Vec<String>>,
}

#[derive(Debug)]
struct WireError(String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

impl oauth2::SyncHttpClient for Wire {
    type Error = WireError;

    fn call(&self, request: HttpRequest) -> Result<HttpResponse, WireError> {
        let uri = request.uri();
        let authority = uri
            .authority()
            .ok_or_else(|| WireError(format!("no authority in {uri}")))?
            .as_str();
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut bytes = format!(
            "{} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n",
            request.method()
        )
        .into_bytes();
        for (name, value) in request.headers() {
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(
            format!("Content-Length: {}\r\n\r\n", request.body().len()).as_bytes(),
        );
        bytes.extend_from_slice(request.body());
        self.sent.borrow_mut().push(text(&bytes));

        let response = match &self.tls {
            None => raw(self.addr, &bytes),
            Some(tls) => https_exchange(self.addr, tls, &bytes).and_then(|d| parse_response(&d)),
        }
        .map_err(WireError)?;
        let mut builder = oauth2::http::Response::builder().status(response.status);
        for (name, value) in &response.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(response.body)
            .map_err(|e| WireError(e.to_string()))
    }
}

impl Wire {
    fn to(server: &Server) -> Wire {
        Wire {
            addr: server.addr,
            tls: server.tls.clone(),
            sent: RefCell::default(),
        }
    }

    /// Where the crate is pointed: `https://localhost:PORT` when the server speaks TLS.
    fn base_url(&self) -> String {
        match self.tls {
            None => format!("http://{}", self.addr),
            Some(_) => format!("https://localhost:{}", self.addr.port()),
        }
    }

    fn last_request(&self) -> String {
        self.sent.borrow().last().cloned().unwrap_or_default()
    }
}

fn client(wire: &Wire, id: &str, secret: &str, redirect: &str, auth: AuthType) -> LinkClient {
    let base = wire.base_url();
    BasicClient::new(ClientId::new(id.into()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_auth_uri(AuthUrl::new(format!("{base}/authorize")).expect("auth url"))
        .set_token_uri(TokenUrl::new(format!("{base}/token")).expect("token url"))
        .set_revocation_url(RevocationUrl::new(format!("{base}/revoke")).expect("revoke url"))
        .set_redirect_uri(RedirectUrl::new(redirect.into()).expect("redirect url"))
        .set_auth_type(auth)
}

/// The crate builds the authorization URL; the customer signs in and allows in the harness's
/// browser; the crate's state comes back. Returns the code and the PKCE verifier.
fn authorize(
    server: &Server,
    client: &LinkClient,
    extra: &[(&'static str, &'static str)],
) -> (String, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    for (name, value) in extra {
        request = request.add_extra_param(*name, *value);
    }
    let (url, state) = request.url();
    let sent: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(sent["code_challenge_method"], "S256", "{url}");
    assert_eq!(sent["response_type"], "code", "{url}");

    let mut browser = Browser::new(server);
    let login = browser.open(&format!("{}?{}", url.path(), url.query().unwrap_or("")));
    assert_eq!(login.status, 200, "login page for {url}: {}", login.html);
    let consent = browser.login(&login, USER, PASSWORD);
    assert_eq!(consent.status, 200, "consent page: {}", consent.html);
    let redirect = browser.decide(&consent, "allow");
    assert_eq!(redirect.status, 303, "{redirect:?}");

    let location = Url::parse(redirect.expect_header("Location")).expect("Location is a URL");
    let expected = client.redirect_uri().expect("redirect uri").url();
    assert_eq!(
        (location.scheme(), location.host_str(), location.path()),
        (expected.scheme(), expected.host_str(), expected.path())
    );
    let params: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(params.get("state"), Some(state.secret()), "{location}");
    let code = params.get("code").cloned().expect("code in Location");
    (code, verifier)
}

/// Code exchange, token checks, refresh and a dead code: what both services go through.
fn link_and_refresh(server: &Server, client: &LinkClient, wire: &Wire) -> RefreshToken {
    let (code, verifier) = authorize(server, client, &[("user_locale", "en-US")]);
    let token = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request(wire)
        .unwrap_or_else(|e| panic!("code exchange: {e:?}\n{}", wire.last_request()));
    assert_eq!(*token.token_type(), BasicTokenType::Bearer);
    assert_eq!(token.expires_in(), Some(Duration::from_secs(3600)));
    assert_eq!(token.scopes(), Some(&vec![Scope::new("profile".into())]));
    let access = token.access_token().secret().clone();
    let refresh = token.refresh_token().expect("refresh_token").clone();
    let me = server.userinfo(&access);
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["preferred_username"], USER);

    let refreshed = client
        .exchange_refresh_token(&refresh)
        .request(wire)
        .unwrap_or_else(|e| panic!("refresh: {e:?}\n{}", wire.last_request()));
    assert_eq!(*refreshed.token_type(), BasicTokenType::Bearer);
    assert_eq!(refreshed.expires_in(), Some(Duration::from_secs(3600)));
    assert_ne!(refreshed.access_token().secret(), &access);
    assert_eq!(
        refreshed.refresh_token().map(|t| t.secret()),
        Some(refresh.secret()),
        "the refresh token stays the same by default"
    );
    assert_eq!(
        server.userinfo(refreshed.access_token().secret()).status,
        200
    );

    // The used code and a made-up one are the crate's typed invalid_grant.
    for dead in [code, "lgc_not-a-code".to_string()] {
        match client
            .exchange_code(AuthorizationCode::new(dead))
            .request(wire)
        {
            Err(RequestTokenError::ServerResponse(err)) => {
                assert_eq!(
                    *err.error(),
                    BasicErrorResponseType::InvalidGrant,
                    "{err:?}"
                );
            }
            other => panic!("expected invalid_grant, got {other:?}"),
        }
    }
    refresh
}

#[test]
fn the_oauth2_crate_links_with_http_basic_as_alexa_does() {
    let env = TestEnv::with_user();
    let server = env.start();
    let wire = Wire::to(&server);
    let client = client(
        &wire,
        ALEXA_ID,
        ALEXA_SECRET,
        ALEXA_REDIRECT,
        AuthType::BasicAuth,
    );
    link_and_refresh(&server, &client, &wire);
    let sent = wire.last_request().to_ascii_lowercase();
    assert!(sent.contains("\r\nauthorization: basic "), "{sent}");
    assert!(!sent.contains("client_secret"), "{sent}");
}

/// Over HTTPS, as Google calls it: the crate refuses to send a revocation to a plain-http URL.
#[test]
fn the_oauth2_crate_links_with_credentials_in_the_body_as_google_does() {
    let (env, cert) = https_env();
    env.add_user(USER, PASSWORD);
    let mut server = env.start();
    server.tls = Some(tls_client(&cert));
    let wire = Wire::to(&server);
    let client = client(
        &wire,
        GOOGLE_ID,
        GOOGLE_SECRET,
        GOOGLE_REDIRECT,
        AuthType::RequestBody,
    );
    let refresh = link_and_refresh(&server, &client, &wire);
    let sent = wire.last_request();
    assert!(
        !sent.to_ascii_lowercase().contains("\r\nauthorization:"),
        "{sent}"
    );
    assert!(
        sent.contains("client_secret=google-secret-0123456789"),
        "{sent}"
    );

    // Google unlinks through RFC 7009; afterwards the refresh token is invalid_grant.
    client
        .revoke_token(StandardRevocableToken::RefreshToken(refresh.clone()))
        .expect("revocation request")
        .request(&wire)
        .unwrap_or_else(|e| panic!("revoke: {e:?}\n{}", wire.last_request()));
    match client.exchange_refresh_token(&refresh).request(&wire) {
        Err(RequestTokenError::ServerResponse(err)) => {
            assert_eq!(
                *err.error(),
                BasicErrorResponseType::InvalidGrant,
                "{err:?}"
            );
        }
        other => panic!("expected invalid_grant after revocation, got {other:?}"),
    }
}

#[test]
fn the_oauth2_crate_sees_a_wrong_secret_as_invalid_client() {
    let env = TestEnv::with_user();
    let server = env.start();
    let wire = Wire::to(&server);
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = client(
            &wire,
            ALEXA_ID,
            "wrong-secret-0123456789",
            ALEXA_REDIRECT,
            auth,
        );
        let refresh = RefreshToken::new("lgrt_whatever".into());
        match client.exchange_refresh_token(&refresh).request(&wire) {
            Err(RequestTokenError::ServerResponse(err)) => {
                assert_eq!(
                    *err.error(),
                    BasicErrorResponseType::InvalidClient,
                    "{err:?}"
                );
            }
            other => panic!("expected invalid_client, got {other:?}"),
        }
    }
}

#[test]
fn the_oauth2_crate_form_encodes_odd_basic_credentials_and_linkgate_decodes_them() {
    let id = "skill id:+%/é";
    let secret = "s3cret with spaces+plus:colon%";
    let redirect = "https://layla.amazon.com/api/skill/link/M2ODD";
    let extra = format!(
        "[[clients]]\nid = \"{id}\"\nsecret = \"{secret}\"\nredirect_uris = [\"{redirect}\"]\n"
    );
    let env = TestEnv::with_config(&config_text(&extra));
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let wire = Wire::to(&server);
    let client = client(&wire, id, secret, redirect, AuthType::BasicAuth);
    link_and_refresh(&server, &client, &wire);
}
