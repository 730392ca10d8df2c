//! One test per attack an internet-facing authorization server must withstand (RFC 9700 and
//! the usual login abuse), each driven over HTTP against the real binary.

mod common;
use common::*;
use std::time::{Duration, Instant};

const ROTATING: &str = "[[clients]]\nid = \"rotating\"\nsecret = \"rotating-secret-0123456789\"\nredirect_uris = [\"https://layla.amazon.com/api/skill/link/M2ROT\"]\nrotate_refresh_tokens = true\n";
const ROT_REDIRECT: &str = "https://layla.amazon.com/api/skill/link/M2ROT";

fn rotating_tokens(server: &Server) -> (String, String) {
    let code = code_for(server, "rotating", ROT_REDIRECT);
    let json = server
        .token_basic(
            "rotating",
            "rotating-secret-0123456789",
            &code_fields(&code, ROT_REDIRECT),
        )
        .json();
    (
        json["access_token"].as_str().unwrap().into(),
        json["refresh_token"].as_str().unwrap().into(),
    )
}

fn rotate(server: &Server, refresh_token: &str) -> Response {
    server.token_basic(
        "rotating",
        "rotating-secret-0123456789",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
}

#[test]
fn redirect_uri_variants_never_redirect() {
    let env = TestEnv::new();
    let server = env.start();
    let variants = [
        "https://pitangui.amazon.com/api/skill/link/M2TES", // prefix
        "https://pitangui.amazon.com/api/skill/link/M2TESTX", // suffix
        "https://pitangui.amazon.com/api/skill/link/M2TEST/", // trailing slash
        "https://pitangui.amazon.com/api/skill/link/M2TEST/../../evil", // path traversal
        "https://pitangui.amazon.com/api/skill/link/../link/M2TEST", // traversal to itself
        "https://pitangui.amazon.com@evil.example/api/skill/link/M2TEST", // @host
        "https://evil.example/https://pitangui.amazon.com/api/skill/link/M2TEST",
        "http://pitangui.amazon.com/api/skill/link/M2TEST", // scheme change
        "https://pitangui.amazon.com/api/skill/link/M2TEST?next=https://evil", // added query
        "https://PITANGUI.amazon.com/api/skill/link/M2TEST", // case change
        "https://pitangui.amazon.com/api/skill/link/m2test",
        "https://pitangui.amazon.com/api/skill/link/M2TEST#frag", // fragment
        "https://pitangui.amazon.com:443/api/skill/link/M2TEST",  // explicit port
        "https://pitangui.amazon.com/api/skill/link/M2TEST%00",
        "//evil.example/cb",
        "javascript:alert(1)",
    ];
    for uri in variants {
        let response = server.get(&authorize_path(ALEXA_ID, uri, "s", &[]));
        assert_eq!(response.status, 400, "{uri}");
        assert!(
            response.header("Location").is_none(),
            "{uri} was redirected to"
        );
    }
}

#[test]
fn a_code_redeemed_by_another_client_or_redirect_uri_fails() {
    let env = TestEnv::with_user();
    let server = env.start();
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let by_google = server.token_post(
        GOOGLE_ID,
        GOOGLE_SECRET,
        &code_fields(&code, ALEXA_REDIRECT),
    );
    assert_eq!(by_google.status, 400, "{}", by_google.text());
    assert_eq!(by_google.error(), "invalid_grant");
    let elsewhere =
        server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, GOOGLE_REDIRECT));
    assert_eq!(elsewhere.error(), "invalid_grant");

    // Another of the skill's own registered URIs is still not the one the code was issued for.
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let layla = "https://layla.amazon.com/api/skill/link/M2TEST";
    let elsewhere = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, layla));
    assert_eq!(elsewhere.status, 400, "{}", elsewhere.text());
    assert_eq!(elsewhere.error(), "invalid_grant");
}

#[test]
fn code_replay_revokes_the_tokens_from_the_first_use() {
    let env = TestEnv::with_user();
    let server = env.start();
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let fields = code_fields(code.as_str(), ALEXA_REDIRECT);
    let first = server.token_basic(ALEXA_ID, ALEXA_SECRET, &fields).json();
    let access = first["access_token"].as_str().unwrap();
    let refresh_token = first["refresh_token"].as_str().unwrap();
    assert_eq!(server.userinfo(access).status, 200);
    let replay = server.token_basic(ALEXA_ID, ALEXA_SECRET, &fields);
    assert_eq!(replay.error(), "invalid_grant");
    assert_eq!(server.userinfo(access).status, 401);
    assert_eq!(refresh(&server, refresh_token).error(), "invalid_grant");
}

#[test]
fn racing_exchanges_of_one_code_give_tokens_once() {
    let env = TestEnv::with_user();
    let server = env.start();
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    server
                        .token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT))
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn pkce_code(server: &Server, extra: &[(&str, &str)]) -> String {
    let mut browser = Browser::new(server);
    let login = browser.open(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", extra));
    let consent = browser.submit(&login, &[("username", USER), ("password", PASSWORD)]);
    let redirect = browser.submit(&consent, &[("decision", "allow")]).response;
    redirect.location_params()["code"].clone()
}

#[test]
fn pkce_downgrade_and_wrong_verifiers_fail() {
    let env = TestEnv::with_user();
    let server = env.start();
    let s256 = [
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let exchange = |code: &str, verifier: Option<&str>| {
        let mut fields = code_fields(code, ALEXA_REDIRECT).to_vec();
        if let Some(v) = verifier {
            fields.push(("code_verifier", v));
        }
        server.token_basic(ALEXA_ID, ALEXA_SECRET, &fields)
    };
    // The right verifier works.
    let ok = exchange(&pkce_code(&server, &s256), Some(VERIFIER));
    assert_eq!(ok.status, 200, "{}", ok.text());
    // A wrong or missing verifier fails.
    let wrong = format!("{}x", &VERIFIER[..VERIFIER.len() - 1]);
    assert_eq!(
        exchange(&pkce_code(&server, &s256), Some(&wrong)).error(),
        "invalid_grant"
    );
    assert_eq!(
        exchange(&pkce_code(&server, &s256), None).error(),
        "invalid_grant"
    );
    // Downgrade: a verifier for a code that had no challenge.
    assert_eq!(
        exchange(&pkce_code(&server, &[]), Some(VERIFIER)).error(),
        "invalid_grant"
    );
    // `plain` and unknown methods are refused at /authorize.
    for method in ["plain", "S512"] {
        let path = authorize_path(
            ALEXA_ID,
            ALEXA_REDIRECT,
            "s",
            &[
                ("code_challenge", VERIFIER),
                ("code_challenge_method", method),
            ],
        );
        assert_eq!(
            server.get(&path).location_params()["error"],
            "invalid_request",
            "{method}"
        );
    }
    let no_method = authorize_path(
        ALEXA_ID,
        ALEXA_REDIRECT,
        "s",
        &[("code_challenge", CHALLENGE)],
    );
    assert_eq!(
        server.get(&no_method).location_params()["error"],
        "invalid_request"
    );
}

#[test]
fn a_client_that_requires_pkce_cannot_skip_it() {
    let extra = "[[clients]]\nid = \"strict\"\nsecret = \"strict-secret-0123456789\"\nredirect_uris = [\"https://layla.amazon.com/api/skill/link/M2PKCE\"]\nrequire_pkce = true\n";
    let env = TestEnv::with_config(&config_text(extra));
    let server = env.start();
    let response = server.get(&authorize_path(
        "strict",
        "https://layla.amazon.com/api/skill/link/M2PKCE",
        "s",
        &[],
    ));
    assert_eq!(response.status, 303);
    assert_eq!(response.location_params()["error"], "invalid_request");
    let with_pkce = authorize_path(
        "strict",
        "https://layla.amazon.com/api/skill/link/M2PKCE",
        "s",
        &[
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    assert_eq!(server.get(&with_pkce).status, 200);
}

#[test]
fn a_duplicated_refresh_keeps_the_customer_linked() {
    let env = TestEnv::with_config(&config_text(ROTATING));
    env.add_user(USER, PASSWORD);
    let server = env.start();
    // Default client: the same refresh token, again and again.
    let (_, refresh_token) = tokens_for(&server);
    for _ in 0..3 {
        let response = refresh(&server, &refresh_token);
        assert_eq!(response.status, 200);
        assert_eq!(response.json()["refresh_token"], refresh_token.as_str());
    }
    // Rotating client: Google sends the same refresh twice, seconds apart. Both succeed, and
    // whichever answer the client kept works afterwards.
    let (_, r1) = rotating_tokens(&server);
    let a = rotate(&server, &r1).json();
    let b = rotate(&server, &r1).json();
    let (ra, rb) = (
        a["refresh_token"].as_str().unwrap(),
        b["refresh_token"].as_str().unwrap(),
    );
    assert_ne!(ra, r1);
    assert_ne!(ra, rb);
    assert!(a["expires_in"].is_u64() && b["expires_in"].is_u64());
    let next = rotate(&server, rb);
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(
        server
            .userinfo(next.json()["access_token"].as_str().unwrap())
            .status,
        200
    );
}

#[test]
fn reuse_after_the_successor_was_used_revokes_the_family() {
    let env = TestEnv::with_config(&config_text(ROTATING));
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let (_, r1) = rotating_tokens(&server);
    let r2 = rotate(&server, &r1).json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // The old token still works until the new one is used (a lost response is survivable)...
    let r2b = rotate(&server, &r1).json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let after_r2 = rotate(&server, &r2).json();
    let r3 = after_r2["refresh_token"].as_str().unwrap().to_string();
    let access = after_r2["access_token"].as_str().unwrap().to_string();
    // ...but once the successor was used, presenting the old one is theft: the family dies.
    assert_eq!(rotate(&server, &r1).error(), "invalid_grant");
    assert_eq!(rotate(&server, &r3).error(), "invalid_grant");
    assert_eq!(rotate(&server, &r2b).error(), "invalid_grant");
    assert_eq!(server.userinfo(&access).status, 401);
}

#[test]
fn racing_refreshes_leave_one_consistent_family() {
    let env = TestEnv::with_config(&config_text(ROTATING));
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let (_, r1) = rotating_tokens(&server);
    let children: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| rotate(&server, &r1)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let response = h.join().unwrap();
                assert_eq!(
                    response.status,
                    200,
                    "a racing refresh failed: {}",
                    response.text()
                );
                response.json()["refresh_token"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    });
    let mut unique = children.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        children.len(),
        "every racer got its own successor"
    );
    // Every child is a recorded member of the family: any one of them continues the link...
    let next = rotate(&server, &children[3]);
    assert_eq!(next.status, 200);
    // ...and retires the parent and the other children, so that reusing them revokes it all.
    assert_eq!(rotate(&server, &children[5]).error(), "invalid_grant");
    assert_eq!(
        rotate(&server, next.json()["refresh_token"].as_str().unwrap()).error(),
        "invalid_grant"
    );
    // Without rotation, racing refreshes all succeed and the token stays.
    let (_, plain) = tokens_for(&server);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| refresh(&server, &plain).status))
            .collect();
        assert!(handles.into_iter().all(|h| h.join().unwrap() == 200));
    });
    assert_eq!(refresh(&server, &plain).status, 200);
}

#[test]
fn csrf_token_missing_wrong_or_reused_is_refused() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut browser = Browser::new(&server);
    let login = browser.open(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]));
    let creds = [("username", USER), ("password", PASSWORD)];
    let without_field: Vec<(&str, &str)> = login
        .hidden
        .iter()
        .filter(|(n, _)| n != "csrf")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain(creds)
        .collect();
    let cookie = [("Cookie", browser.cookie.clone().unwrap())];
    let cookie: Vec<(&str, &str)> = cookie.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(
        server
            .post_form(&login.action, &cookie, &without_field)
            .status,
        400
    );
    assert_eq!(login.submit(&server, None, &creds).status, 400);
    assert_eq!(
        login
            .submit(&server, Some("linkgate_csrf=guess"), &creds)
            .status,
        400
    );
    let consent = browser.submit(&login, &creds);
    assert_eq!(consent.status, 200);
    // The login form is spent once it led to consent.
    assert_eq!(
        login
            .submit(&server, browser.cookie.as_deref(), &creds)
            .status,
        400
    );
    let redirect = browser.submit(&consent, &[("decision", "allow")]);
    assert_eq!(redirect.status, 303);
    let replay = consent.submit(&server, browser.cookie.as_deref(), &[("decision", "allow")]);
    assert_eq!(replay.status, 400);
    assert!(replay.header("Location").is_none());
}

fn try_login(server: &Server, username: &str, password: &str) -> Page {
    let mut browser = Browser::new(server);
    let login = browser.open(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]));
    browser.submit(&login, &[("username", username), ("password", password)])
}

#[test]
fn login_lockout_holds_across_a_restart() {
    let env = TestEnv::with_user();
    let server = env.start();
    for _ in 0..5 {
        assert_eq!(try_login(&server, USER, "wrong password").status, 401);
    }
    // The sixth failure locks the name; now even the right password is refused for a while.
    assert_eq!(try_login(&server, USER, "wrong password").status, 401);
    let locked = try_login(&server, USER, PASSWORD);
    assert_eq!(locked.status, 429, "{}", locked.html);
    assert!(locked.html.contains("Too many failed sign-ins"));
    let server = server.restart();
    let still = try_login(&server, USER, PASSWORD);
    assert_eq!(still.status, 429, "the lockout did not survive a restart");
    // Other users are not affected by alice's lock.
    drop(server);
    env.add_user("bob", "bob's password");
    let server = env.start();
    assert_eq!(try_login(&server, "bob", "bob's password").status, 200);
}

/// The same answer; the same cost is checked structurally in `oauth::authorize` (an unknown user
/// gets one argon2 check against a hash with a real user's parameters), because timing a few
/// requests on a shared machine cannot tell reliably.
#[test]
fn user_enumeration_gets_the_same_answer() {
    let env = TestEnv::with_user();
    let server = env.start();
    for round in 0..4 {
        let a = try_login(&server, &format!("nobody{round}"), "some password");
        let b = try_login(&server, USER, &format!("wrong password {round}"));
        assert_eq!(a.status, b.status);
        let message = |p: &Page| {
            p.html
                .split("role=\"alert\"")
                .nth(1)
                .map(|s| s.split('<').next().unwrap_or("").to_string())
        };
        assert_eq!(message(&a), message(&b));
        assert!(a.html.contains("Wrong username or password"));
    }
}

#[test]
fn a_login_flood_is_turned_away_quickly_and_the_token_endpoints_keep_answering() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, _) = tokens_for(&server);
    let pages: Vec<Page> = (0..60)
        .map(|_| Page::from(server.get(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]))))
        .collect();
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let flood: Vec<_> = pages
            .iter()
            .enumerate()
            .map(|(i, page)| {
                let name = format!("flood{i}");
                let cookie = page.cookie.clone();
                let server = &server;
                scope.spawn(move || {
                    page.submit(
                        server,
                        cookie.as_deref(),
                        &[("username", &name), ("password", "guess")],
                    )
                    .status
                })
            })
            .collect();
        // While the flood runs, the skill backend still gets answers.
        for _ in 0..20 {
            assert_eq!(server.userinfo(&access).status, 200);
        }
        flood.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503 || *s == 429),
        "{statuses:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(server.is_healthy());
}

#[test]
fn a_hashed_client_secret_works_and_a_wrong_one_does_not() {
    let phc = linkgate::base::secret::hash_password(&linkgate::base::secret::Secret::new(
        "hashed-secret-0123456789",
    ));
    let extra = format!(
        "[[clients]]\nid = \"hashed\"\nsecret_hash = \"{phc}\"\nredirect_uris = [\"https://layla.amazon.com/api/skill/link/M2HASH\"]\n"
    );
    let env = TestEnv::with_config(&config_text(&extra));
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let redirect = "https://layla.amazon.com/api/skill/link/M2HASH";
    let code = code_for(&server, "hashed", redirect);
    let fields = code_fields(code.as_str(), redirect);
    let wrong = server.token_basic("hashed", "hashed-secret-0123456780", &fields);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error(), "invalid_client");
    let right = server.token_basic("hashed", "hashed-secret-0123456789", &fields);
    assert_eq!(right.status, 200, "{}", right.text());
    // Cached after the first success, still checked: the wrong secret stays wrong.
    let refresh_token = right.json()["refresh_token"].as_str().unwrap().to_string();
    let again = server.token_basic(
        "hashed",
        "hashed-secret-0123456789",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    );
    assert_eq!(again.status, 200);
    let wrong_again = server.token_basic(
        "hashed",
        "nope-nope-nope-nope",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    );
    assert_eq!(wrong_again.status, 401);
}

#[test]
fn connections_beyond_the_limit_get_a_503_or_make_room() {
    let env = TestConfig::new()
        .set("server.max_connections", 2)
        .set("server.metrics", true)
        .env();
    let server = env.start();
    use std::io::{Read, Write};
    // Both slots answer a request: a body is still being sent on each.
    let busy = |_| {
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant")
            .unwrap();
        stream
    };
    let held: Vec<std::net::TcpStream> = (0..2).map(busy).collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    // From another address: the total is what is full, not this address's share.
    let from_other = |request: &[u8]| {
        let mut stream = connect_from("127.0.0.2", server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut data = Vec::new();
        let _ = stream.read_to_end(&mut data);
        parse_response(&data)
    };
    let extra = from_other(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("the third connection got no HTTP answer");
    assert_eq!(extra.status, 503, "{}", extra.text());
    assert_eq!(extra.expect_header("retry-after"), "1");
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(held);
    // The server notices the closes asynchronously: poll to a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    while !raw(server.addr, healthz).is_ok_and(|r| r.status == 200) {
        assert!(
            Instant::now() < deadline,
            "capacity did not come back when connections closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Two idle keep-alive connections hold both slots: the oldest makes room for a new one.
    // (Until the server has seen the busy connections go, one of the two may still be refused:
    // made again, to a deadline.)
    let idle_pair = || -> Option<Vec<std::net::TcpStream>> {
        let mut pair = Vec::new();
        for _ in 0..2 {
            let mut stream = std::net::TcpStream::connect(server.addr).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .ok()?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .ok()?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).ok()?;
            if &head != b"HTTP/1.1 200" {
                return None;
            }
            pair.push(stream);
        }
        Some(pair)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let idle = loop {
        if let Some(pair) = idle_pair() {
            break pair;
        }
        assert!(Instant::now() < deadline, "two connections never got in");
        std::thread::sleep(Duration::from_millis(50));
    };
    let third = from_other(healthz).expect("no answer");
    assert_eq!(third.status, 200);
    let metrics = raw(
        server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let metrics = metrics.text();
    let counted = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert!(counted("linkgate_connections_refused_total{reason=\"busy\"}") >= 1);
    assert!(counted("linkgate_connections_shed_total") >= 1);
    drop(idle);
}
