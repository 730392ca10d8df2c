//! Hostile and broken input on every endpoint gets a clear 4xx, never a 5xx, a crash or a hang,
//! and never a redirect to an address the client did not register.

mod common;
use common::*;

/// After each bad request the server must still be up and healthy.
fn assert_4xx(server: &Server, response: &Response, what: &str) {
    assert!(
        (400..500).contains(&response.status),
        "{what}: expected a 4xx, got {} {}",
        response.status,
        response.text()
    );
    assert!(
        server.is_healthy(),
        "{what}: the server is not healthy afterwards"
    );
}

#[test]
fn unknown_clients_and_unregistered_redirect_uris_get_an_error_page_not_a_redirect() {
    let env = TestEnv::new();
    let server = env.start();
    let cases = [
        authorize_path("no-such-client", ALEXA_REDIRECT, "s", &[]),
        authorize_path(ALEXA_ID, "https://evil.example.com/cb", "s", &[]),
        authorize_path(ALEXA_ID, &format!("{ALEXA_REDIRECT}/extra"), "s", &[]),
        authorize_path(
            ALEXA_ID,
            "https://pitangui.amazon.com/api/skill/link/M2TES",
            "s",
            &[],
        ),
        "/authorize?response_type=code&redirect_uri=https%3A%2F%2Fevil.example.com&state=s"
            .to_string(),
        "/authorize".to_string(),
        format!(
            "/authorize?response_type=code&client_id={ALEXA_ID}&redirect_uri={}&redirect_uri={}",
            encode(ALEXA_REDIRECT),
            encode(ALEXA_REDIRECT)
        ),
        // Three redirect URIs registered, none given: ambiguous.
        format!("/authorize?response_type=code&client_id={ALEXA_ID}&state=s"),
    ];
    for path in cases {
        let response = server.get(&path);
        assert_eq!(response.status, 400, "{path}");
        assert!(response.header("Location").is_none(), "{path} redirected");
        assert!(response
            .expect_header("Content-Type")
            .starts_with("text/html"));
        assert!(response.text().contains("Something went wrong"));
    }
}

#[test]
fn other_authorize_errors_go_back_to_the_client_with_the_state() {
    let env = TestEnv::new();
    let server = env.start();
    let base = |extra: &str| {
        format!(
            "/authorize?client_id={ALEXA_ID}&redirect_uri={}&state=st{extra}",
            encode(ALEXA_REDIRECT)
        )
    };
    let cases = [
        (base("&response_type=token"), "unsupported_response_type"),
        (base(""), "invalid_request"),
        (
            base("&response_type=code&response_type=code"),
            "invalid_request",
        ),
        (
            base("&response_type=code&code_challenge=abc&code_challenge_method=plain"),
            "invalid_request",
        ),
        (base("&response_type=code&scope=%22bad%22"), "invalid_scope"),
    ];
    for (path, error) in cases {
        let response = server.get(&path);
        assert_eq!(response.status, 303, "{path}: {}", response.text());
        assert!(response
            .expect_header("Location")
            .starts_with(ALEXA_REDIRECT));
        let params = response.location_params();
        assert_eq!(params["error"], error, "{path}");
        assert_eq!(params["state"], "st");
        assert!(params.contains_key("error_description"));
    }
}

#[test]
fn a_non_utf8_query_is_a_readable_error_page() {
    let env = TestEnv::new();
    let server = env.start();
    let redirect = encode(ALEXA_REDIRECT);
    for path in [
        format!("/authorize?response_type=code&client_id=%FF%FE&redirect_uri={redirect}&state=s"),
        format!("/authorize?response_type=code&client_id={ALEXA_ID}&redirect_uri=%FF%FE&state=s"),
        format!(
            "/authorize?response_type=code&client_id=%FF&client_id=%FE&redirect_uri={redirect}"
        ),
    ] {
        let response = server.get(&path);
        assert_4xx(&server, &response, &path);
        assert_eq!(response.status, 400, "{path}");
        assert!(response.header("Location").is_none(), "{path} redirected");
    }
    // Raw bytes 0xff 0xfe in the request target: refused before any routing.
    let request =
        b"GET /authorize?client_id=\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let response = raw(server.addr, request).expect("an answer to raw non-UTF-8 bytes");
    assert_4xx(&server, &response, "raw non-UTF-8 request target");
}

#[test]
fn the_token_endpoint_answers_garbage_with_oauth_errors() {
    let env = TestEnv::new();
    let server = env.start();
    let auth = basic(ALEXA_ID, ALEXA_SECRET);
    let form_headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"\x00\x01\x02 not a form at all ===&&&".to_vec(), "invalid_request"),
        ("non-UTF-8", b"grant_type=\xff\xfe&code=%FF".to_vec(), "invalid_request"),
        ("missing grant_type", b"code=abc".to_vec(), "invalid_request"),
        ("unknown grant_type", b"grant_type=password&username=a&password=b".to_vec(), "unsupported_grant_type"),
        ("repeated parameter", b"grant_type=refresh_token&refresh_token=a&refresh_token=b".to_vec(), "invalid_request"),
        ("missing code", b"grant_type=authorization_code".to_vec(), "invalid_request"),
        ("unknown code", b"grant_type=authorization_code&code=lgc_nope&redirect_uri=x".to_vec(), "invalid_grant"),
        ("unknown refresh token", b"grant_type=refresh_token&refresh_token=lgrt_nope".to_vec(), "invalid_grant"),
        ("absurd refresh token", format!("grant_type=refresh_token&refresh_token={}", "A".repeat(20_000)).into_bytes(), "invalid_grant"),
        ("both auth methods", format!("grant_type=refresh_token&refresh_token=x&client_id={ALEXA_ID}&client_secret={ALEXA_SECRET}").into_bytes(), "invalid_request"),
    ];
    for (what, body, error) in cases {
        let response = server.request("POST", "/token", &form_headers, &body);
        assert_4xx(&server, &response, what);
        assert_eq!(response.error(), error, "{what}");
        assert!(response.json()["error_description"].is_string(), "{what}");
    }
    let json_body = server.request(
        "POST",
        "/token",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        b"{\"grant_type\":\"refresh_token\"}",
    );
    assert_4xx(&server, &json_body, "JSON body");
    assert_eq!(json_body.error(), "invalid_request");
    assert_4xx(&server, &server.get("/token"), "GET /token");
}

#[test]
fn malformed_basic_headers_are_invalid_client() {
    let env = TestEnv::new();
    let server = env.start();
    for header in [
        "Basic !!!",
        "Basic ",
        "Basic bm9jb2xvbg==",
        "Basic /w==",
        "Bearer abc",
        "Digest x",
    ] {
        let response = server.request(
            "POST",
            "/token",
            &[
                ("Authorization", header),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            b"grant_type=refresh_token&refresh_token=x",
        );
        assert_4xx(&server, &response, header);
        assert_eq!(response.status, 401, "{header}");
        assert_eq!(response.error(), "invalid_client", "{header}");
    }
}

#[test]
fn oversized_requests_are_refused_and_the_server_stays_up() {
    let env = TestEnv::new();
    let server = env.start();
    let two_mb = vec![b'a'; 2 * 1024 * 1024];
    for path in ["/token", "/authorize", "/introspect", "/revoke"] {
        let response = server.request(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &two_mb,
        );
        assert_4xx(&server, &response, path);
        assert_eq!(response.status, 413, "{path}");
    }
    let long_path = format!("/{}", "a".repeat(100_000));
    let response = raw(
        server.addr,
        format!("GET {long_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    // hyper answers 414/431, or closes the connection: either way no 5xx and no crash.
    if let Ok(response) = response {
        assert_4xx(&server, &response, "100 KB path");
    }
    assert!(server.is_healthy());
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\nConnection: close\r\n\r\n",
        "j".repeat(200_000)
    );
    if let Ok(response) = raw(server.addr, huge_header.as_bytes()) {
        assert_4xx(&server, &response, "200 KB header");
    }
    assert!(server.is_healthy());
}

#[test]
fn bad_bearer_tokens_are_401() {
    let env = TestEnv::new();
    let server = env.start();
    let long = "x".repeat(10_000);
    for header in [
        format!("Bearer {long}"),
        "Bearer".to_string(),
        "Basic abc".to_string(),
        "Bearer a b c".to_string(),
    ] {
        let response = server.request("GET", "/userinfo", &[("Authorization", &header)], b"");
        assert_4xx(&server, &response, &header[..header.len().min(20)]);
        assert_eq!(response.status, 401);
        assert!(response
            .expect_header("WWW-Authenticate")
            .starts_with("Bearer"));
    }
}

#[test]
fn broken_form_posts_get_a_readable_page() {
    let env = TestEnv::new();
    let server = env.start();
    let cases: [&[u8]; 4] = [
        b"",
        b"\xff\xfe",
        b"request=nope&csrf=nope&username=a&password=b",
        b"request=a&request=b&csrf=c",
    ];
    for body in cases {
        let response = server.request(
            "POST",
            "/authorize",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body,
        );
        assert_4xx(&server, &response, "login form");
        assert!(response.header("Location").is_none());
        assert!(response.text().contains("Something went wrong"));
    }
}

#[test]
fn unknown_paths_and_methods() {
    let env = TestEnv::new();
    let server = env.start();
    assert_eq!(server.get("/nope").status, 404);
    let put = server.request("PUT", "/token", &[], b"x");
    assert_eq!(put.status, 405);
    assert_eq!(put.header("Allow"), Some("POST"));
    assert_eq!(server.request("DELETE", "/authorize", &[], b"").status, 405);
    let garbage = raw(server.addr, b"\x16\x03\x01 not http at all\r\n\r\n");
    if let Ok(response) = garbage {
        assert_4xx(&server, &response, "not HTTP");
    }
    assert!(server.is_healthy());
}
