//! Customers sign in with the account they already have: linkgate checks their password against
//! the operator's login API (`[login] source = "api"` or `"both"`). A real HTTP(S) server stands in
//! for that API (`common::login_api`), and the real binary is driven the way a phone's web view and
//! Alexa drive it; `/account` signs in through the same source.

mod common;

use common::login_api::{FakeApi, Mode, API_KEY, API_NAME, API_PASSWORD, API_SUBJECT, API_USER};
use common::*;
use std::time::{Duration, Instant};

/// The test config with `[login] source` using `api`, and metrics on.
fn config_for(api: &FakeApi, source: &str) -> TestConfig {
    api.configure(TestConfig::new().set("server.metrics", true), source)
}

/// An env with `config`, and the fake API's CA file beside it (for HTTPS).
fn env_of(api: &FakeApi, config: TestConfig) -> TestEnv {
    let env = config.env();
    if api.ca_pem.is_some() {
        api.write_ca(env.dir.path());
    }
    env
}

fn env_for(api: &FakeApi, source: &str) -> TestEnv {
    env_of(api, config_for(api, source))
}

/// Opens the login page and signs in: the next page (consent, or the login page again).
fn sign_in(browser: &mut Browser<'_>, username: &str, password: &str) -> Page {
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "state-api", &[]);
    assert_eq!(login.status, 200, "{}", login.html);
    browser.login(&login, username, password)
}

const WRONG: &str = "Wrong username or password";
const UNAVAILABLE: &str = "Sign-in is unavailable right now";

fn metric(server: &Server, series: &str) -> u64 {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[test]
fn a_customer_of_the_login_api_links_alexa_and_userinfo_names_the_api_id() {
    let api = FakeApi::tls();
    let env = env_for(&api, "api");
    let server = env.start();
    let mut browser = Browser::new(&server);
    let consent = sign_in(&mut browser, API_USER, API_PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
    assert!(consent.html.contains("decision"), "{}", consent.html);
    assert!(
        consent.html.contains(API_NAME),
        "the display name: {}",
        consent.html
    );

    // What the API received: the configured fields as JSON, the API key, over one connection.
    let (headers, body) = api.last_request().expect("the API was called");
    let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(body["email"], API_USER);
    assert_eq!(body["password"], API_PASSWORD);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-api-key").as_deref(), Some(API_KEY));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));

    let redirect = browser.decide(&consent, "allow");
    assert_eq!(redirect.status, 303, "{redirect:?}");
    let code = redirect.location_params().remove("code").expect("a code");
    let tokens = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT));
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    let access = tokens.json_str("access_token");
    let refresh_token = tokens.json_str("refresh_token");

    let info = server.userinfo(&access);
    assert_eq!(info.status, 200, "{}", info.text());
    assert_eq!(info.json_str("sub"), API_SUBJECT);
    assert_eq!(info.json_str("preferred_username"), API_USER);
    let introspection = server.post_form(
        "/introspect",
        &[("Authorization", &basic(ALEXA_ID, ALEXA_SECRET))],
        &[("token", &access)],
    );
    assert_eq!(introspection.json_str("sub"), API_SUBJECT);
    assert_eq!(refresh(&server, &refresh_token).status, 200);

    // Two more sign-ins reuse the pooled, kept-alive connection.
    for _ in 0..2 {
        let again = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
        assert_eq!(again.status, 200, "{}", again.html);
    }
    assert_eq!(api.calls(), 3);
    assert_eq!(
        api.connections(),
        1,
        "connections to the API are kept alive"
    );

    // A code not yet redeemed, to show that unlinking kills it too.
    let mut late = Browser::new(&server);
    let consent = sign_in(&mut late, API_USER, API_PASSWORD);
    let pending_code = late
        .decide(&consent, "allow")
        .location_params()
        .remove("code")
        .expect("a code");

    // The admin sees the subject, and can unlink it: every token and code it holds dies.
    let list = env.cli(&["--list-users"], "");
    let listed = text(&list.stdout);
    assert!(
        listed.contains(API_SUBJECT) && listed.contains("login API") && listed.contains(API_USER),
        "{listed}"
    );
    let unlink = env.cli(&["--unlink-user", API_SUBJECT], "");
    assert!(unlink.status.success(), "{}", text(&unlink.stderr));
    let said = text(&unlink.stdout);
    assert!(said.contains("revoked 1 grant(s) and 1 code(s)"), "{said}");
    assert_eq!(refresh(&server, &refresh_token).error(), "invalid_grant");
    assert_eq!(server.userinfo(&access).status, 401);
    let exchange = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &code_fields(&pending_code, ALEXA_REDIRECT),
    );
    assert_eq!(exchange.error(), "invalid_grant", "{}", exchange.text());
    let again = env.cli(&["--unlink-user", API_SUBJECT], "");
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("no login API subject"),
        "{}",
        text(&again.stderr)
    );

    // Never a password or the API key in the log.
    let log = server.stop();
    assert!(log.contains("login succeeded"), "{log}");
    assert!(
        !log.contains(API_PASSWORD) && !log.contains(API_KEY),
        "{log}"
    );
}

#[test]
fn a_wrong_password_is_the_usual_inline_error_and_the_lock_stops_calls_to_the_api() {
    let api = FakeApi::plain();
    let env = env_for(&api, "api");
    let server = env.start();
    for status in [400, 403] {
        api.set_mode(Mode::Status(status));
        let page = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
        assert_eq!(page.status, 401, "{status}: {}", page.html);
        assert!(page.html.contains(WRONG), "{status}: {}", page.html);
    }
    api.set_mode(Mode::Normal);
    let page = sign_in(&mut Browser::new(&server), API_USER, "not the password");
    assert_eq!(page.status, 401, "{}", page.html);
    assert!(page.html.contains(WRONG) && page.html.contains("aria-invalid"));
    // Five failures are free; the sixth locks the username. From then on, the API is not asked.
    for _ in 0..3 {
        let page = sign_in(&mut Browser::new(&server), API_USER, "still wrong");
        assert_eq!(page.status, 401, "{}", page.html);
    }
    assert_eq!(api.calls(), 6);
    let locked = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
    assert_eq!(locked.status, 429, "{}", locked.html);
    let locked = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
    assert_eq!(locked.status, 429, "{}", locked.html);
    assert_eq!(api.calls(), 6, "a locked sign-in must not reach the API");
    assert_eq!(
        metric(&server, "linkgate_logins_total{outcome=\"failed\"}"),
        6
    );
}

#[test]
fn a_burst_of_wrong_guesses_reaches_the_api_no_more_often_than_the_same_guesses_in_a_row() {
    let api = FakeApi::plain();
    let env = env_for(&api, "api");
    api.set_delay(Duration::from_millis(200));
    let server = env.start();
    let statuses = logins_at_once(&server, 20, "guess", |i| {
        (API_USER.to_string(), format!("guess {i}"))
    });
    // Five free failures for a username at an address, and the sixth that sets the lock.
    assert_eq!(api.calls(), 6, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        14,
        "{statuses:?}"
    );
}

#[test]
fn every_failure_of_the_api_is_a_translated_503_page_never_a_wrong_guess() {
    let api = FakeApi::plain();
    let env = env_for(&api, "api");
    let server = env.start();
    let modes = [
        (Mode::Status(500), "status"),
        (Mode::Status(502), "status"),
        (Mode::Status(404), "status"),
        (Mode::Redirect, "redirect"),
        (Mode::Html, "not_json"),
        (Mode::Huge, "too_large"),
        (Mode::NoSubject, "no_subject"),
        (Mode::Close, "broken"),
    ];
    for (mode, _) in &modes {
        api.set_mode(mode.clone());
        let page = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
        assert_eq!(page.status, 503, "{mode:?}: {}", page.html);
        assert!(page.html.contains(UNAVAILABLE), "{mode:?}: {}", page.html);
        assert!(!page.html.contains(WRONG), "{mode:?}");
        // The form is there to try again.
        assert!(page.html.contains("name=\"password\""), "{mode:?}");
    }
    // In the customer's language.
    api.set_mode(Mode::Status(503));
    let mut german = Browser::with_language(&server, Some("de-DE"));
    let page = sign_in(&mut german, API_USER, API_PASSWORD);
    assert_eq!(page.status, 503);
    assert!(
        page.html.contains("Die Anmeldung ist gerade nicht möglich"),
        "{}",
        page.html
    );

    // Nine unavailable answers for one username did not lock it: they were not guesses.
    api.set_mode(Mode::Normal);
    let consent = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
    assert_eq!(
        metric(&server, "linkgate_logins_total{outcome=\"failed\"}"),
        0
    );
    assert_eq!(
        metric(&server, "linkgate_logins_total{outcome=\"unavailable\"}"),
        9
    );
    for (reason, n) in [
        ("status", 4),
        ("redirect", 1),
        ("not_json", 1),
        ("too_large", 1),
        ("no_subject", 1),
    ] {
        let series = format!("linkgate_login_api_unavailable_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&server, &series), n, "{reason}");
    }
    let broken = metric(
        &server,
        "linkgate_login_api_unavailable_total{reason=\"broken\"}",
    ) + metric(
        &server,
        "linkgate_login_api_unavailable_total{reason=\"connect\"}",
    );
    assert_eq!(broken, 1);
    let log = server.stop();
    assert!(log.contains("answered status 502"), "{log}");
    assert!(log.contains("redirects are not followed"), "{log}");
    assert!(log.contains("larger than 65536 bytes"), "{log}");
    assert!(
        !log.contains(API_PASSWORD) && !log.contains(API_KEY),
        "{log}"
    );
}

#[test]
fn an_unreachable_api_is_unavailable_not_a_wrong_password() {
    // A port that refuses connections while `closed` lives: bound, but not listening.
    let closed = tokio::net::TcpSocket::new_v4().expect("socket");
    closed
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let port = closed.local_addr().expect("local address").port();
    let api = FakeApi::plain();
    let config =
        config_for(&api, "api").set("login.api.url", format!("http://127.0.0.1:{port}/v1/login"));
    let env = env_of(&api, config);
    let server = env.start();
    let page = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
    assert_eq!(page.status, 503, "{}", page.html);
    assert!(page.html.contains(UNAVAILABLE));
    let log = server.stop();
    assert!(log.contains("cannot connect"), "{log}");
}

#[test]
fn an_api_whose_certificate_is_not_trusted_is_unavailable() {
    let api = FakeApi::tls();
    // Without ca_file the test CA is not among the trusted roots.
    let env = env_of(&api, config_for(&api, "api").remove("login.api.ca_file"));
    let server = env.start();
    let page = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
    assert_eq!(page.status, 503, "{}", page.html);
    assert!(page.html.contains(UNAVAILABLE));
    assert_eq!(api.calls(), 0, "no request before TLS verified");
    assert_eq!(
        metric(
            &server,
            "linkgate_login_api_unavailable_total{reason=\"tls\"}"
        ),
        1
    );
    let log = server.stop();
    assert!(log.contains("TLS handshake failed"), "{log}");
    assert!(
        !log.contains(API_PASSWORD) && !log.contains(API_KEY),
        "{log}"
    );
}

#[test]
fn a_slow_api_gets_the_page_within_the_timeout_plus_a_second() {
    let api = FakeApi::plain();
    let env = env_of(
        &api,
        config_for(&api, "api").set("login.api.timeout_ms", 500),
    );
    api.set_delay(Duration::from_secs(5));
    let server = env.start();
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "slow", &[]);
    let started = Instant::now();
    let page = browser.login(&login, API_USER, API_PASSWORD);
    let took = started.elapsed();
    assert_eq!(page.status, 503, "{}", page.html);
    assert!(page.html.contains(UNAVAILABLE));
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(
        metric(
            &server,
            "linkgate_login_api_unavailable_total{reason=\"timeout\"}"
        ),
        1
    );
}

#[test]
fn a_burst_of_sign_ins_never_has_more_than_max_in_flight_calls_at_the_api() {
    let api = FakeApi::plain();
    let env = env_of(
        &api,
        config_for(&api, "api").set("login.api.max_in_flight", 2),
    );
    api.set_delay(Duration::from_millis(300));
    let server = env.start();
    // 12 customers at once, each with a login page open.
    let statuses = logins_at_once(&server, 12, "burst", |i| {
        (format!("rider{i}@example.com"), API_PASSWORD.to_string())
    });
    let signed_in = statuses.iter().filter(|s| **s == 200).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(signed_in + busy, 12, "{statuses:?}");
    assert!(signed_in >= 2, "{statuses:?}");
    assert_eq!(
        api.peak_in_flight(),
        2,
        "at most max_in_flight calls, and the burst did overlap"
    );
    assert_eq!(
        api.calls(),
        signed_in,
        "a busy sign-in never reaches the API"
    );
    assert!(api.connections() <= 2, "{} connections", api.connections());
}

#[test]
fn with_source_both_local_users_come_first_then_the_api() {
    let api = FakeApi::plain();
    let env = env_for(&api, "both");
    env.add_user(USER, PASSWORD);
    let server = env.start();
    // A local user signs in locally: the API is not asked.
    let consent = sign_in(&mut Browser::new(&server), USER, PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
    let wrong = sign_in(&mut Browser::new(&server), USER, API_PASSWORD);
    assert_eq!(wrong.status, 401);
    assert_eq!(api.calls(), 0);
    // Any other name goes to the API.
    let mut browser = Browser::new(&server);
    let consent = sign_in(&mut browser, API_USER, API_PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
    assert_eq!(api.calls(), 1);
    let redirect = browser.decide(&consent, "allow");
    let code = redirect.location_params().remove("code").expect("code");
    let tokens = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT));
    assert_eq!(
        server
            .userinfo(&tokens.json_str("access_token"))
            .json_str("sub"),
        API_SUBJECT
    );
    // The local user's tokens name the local user.
    let (access, _) = tokens_for(&server);
    let local = server.userinfo(&access);
    assert_eq!(local.json_str("preferred_username"), USER);
    assert_ne!(local.json_str("sub"), API_SUBJECT);
    let wrong = sign_in(&mut Browser::new(&server), API_USER, "nope");
    assert_eq!(wrong.status, 401);
    assert_eq!(api.calls(), 2);
}

#[test]
fn check_config_shows_the_section_and_refuses_plain_http_to_another_host() {
    let api = FakeApi::tls();
    let env = env_for(&api, "api");
    let out = env.cli(&["--check-config"], "");
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(shown.contains(&format!("POST {}", api.url)), "{shown}");
    assert!(shown.contains("X-Api-Key (values not shown)"), "{shown}");
    assert!(!shown.contains(API_KEY), "{shown}");

    let bad = env_of(
        &api,
        config_for(&api, "api").set("login.api.url", "http://api.example.com/login"),
    );
    let out = bad.cli(&["--check-config"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("key `login.api.url`") && err.contains("loopback"),
        "{err}"
    );
}

#[test]
fn the_doctor_calls_the_api_with_a_wrong_password_and_reports_the_answer() {
    let api = FakeApi::tls();
    let env = env_for(&api, "api");
    let line = |env: &TestEnv| {
        let out = env.cli(&["--doctor"], "");
        let report = text(&out.stdout);
        report
            .lines()
            .find(|l| l.contains("login_api"))
            .unwrap_or_else(|| panic!("no login_api line:\n{report}"))
            .to_string()
    };
    let ok = line(&env);
    assert!(
        ok.starts_with("ok") && ok.contains("answered 401") && ok.contains("TLS verified"),
        "{ok}"
    );
    let (_, body) = api.last_request().expect("the doctor called the API");
    assert!(body.contains("linkgate-doctor-probe@invalid"), "{body}");

    api.set_mode(Mode::NoSubject);
    let accepts = line(&env);
    assert!(
        accepts.starts_with("FAIL") && accepts.contains("400, 401 or 403"),
        "{accepts}"
    );
    api.set_mode(Mode::Status(503));
    let down = line(&env);
    assert!(down.starts_with("FAIL") && down.contains("503"), "{down}");

    // Without the test CA the certificate is not trusted.
    let untrusted = env_of(&api, config_for(&api, "api").remove("login.api.ca_file"));
    api.set_mode(Mode::Normal);
    let tls = line(&untrusted);
    assert!(
        tls.starts_with("FAIL") && tls.contains("TLS") && tls.contains("ca_file"),
        "{tls}"
    );
}

/// `n` customers open a login page each, then all post their credentials (`who(i)`) at once:
/// the statuses of the answers.
fn logins_at_once(
    server: &Server,
    n: usize,
    state: &str,
    who: impl Fn(usize) -> (String, String) + Sync,
) -> Vec<u16> {
    let pages: Vec<(Browser<'_>, Page)> = (0..n)
        .map(|_| {
            let mut browser = Browser::new(server);
            let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, state, &[]);
            (browser, login)
        })
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = pages
            .into_iter()
            .enumerate()
            .map(|(i, (mut browser, login))| {
                let who = &who;
                scope.spawn(move || {
                    let (user, password) = who(i);
                    browser.login(&login, &user, &password).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Security round 3 (issue 28): an API username that is no valid local username was throttled
/// under the raw typed text while the API received it trimmed, so whitespace variants went on
/// guessing after the lock.
#[test]
fn no_spelling_of_a_locked_name_reaches_the_api() {
    let api = FakeApi::plain();
    let env = env_for(&api, "api");
    let server = env.start();
    let name = "Rita O'Neil@example.com";
    for _ in 0..6 {
        let page = sign_in(&mut Browser::new(&server), name, "wrong");
        assert_eq!(page.status, 401, "{}", page.html);
    }
    let calls = api.calls();
    assert_eq!(calls, 6);
    for variant in [
        format!(" {name}"),
        format!("{name} "),
        format!("\u{a0}{name}"),
        format!("\t{name}"),
        format!("{name}\u{3000}"),
        name.to_uppercase(),
        name.to_string(),
    ] {
        let page = sign_in(&mut Browser::new(&server), &variant, "another guess");
        assert_eq!(page.status, 429, "{variant:?}: {}", page.html);
    }
    assert_eq!(
        api.calls(),
        calls,
        "a variant of the locked name reached the API"
    );
}

/// Issue 28: numeric ids beyond 64 bits used to be rounded through a float, so two customers
/// (`…617` and `…618`) became one subject. Such an id is refused; an id that fits is kept as
/// written.
#[test]
fn numeric_subjects_are_kept_exactly_or_refused() {
    let api = FakeApi::plain();
    let env = env_for(&api, "api");
    let server = env.start();
    for big in ["18446744073709551617", "18446744073709551618", "1.5"] {
        api.set_mode(Mode::Answer(format!(r#"{{"user":{{"id":{big}}}}}"#)));
        let page = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
        assert_eq!(page.status, 503, "{big}: {}", page.html);
        assert!(page.html.contains(UNAVAILABLE), "{big}: {}", page.html);
    }
    api.set_mode(Mode::Answer(r#"{"user":{"id":9007199254740993}}"#.into()));
    let mut browser = Browser::new(&server);
    let consent = sign_in(&mut browser, API_USER, API_PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
    let redirect = browser.decide(&consent, "allow");
    let code = redirect.location_params()["code"].clone();
    let tokens = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", ALEXA_REDIRECT),
        ],
    );
    let info = server.userinfo(&tokens.json_str("access_token"));
    // 2^53 + 1: a float would have made it …992.
    assert_eq!(info.json()["sub"], "9007199254740993");
}

/// Issue 28: an API subject spelled like a local user could not be unlinked, and a customer's
/// typed name reached the operator's terminal with its ESC sequences.
#[test]
fn a_subject_named_like_a_local_user_is_unlinked_by_its_own_form_and_names_print_safely() {
    let api = FakeApi::plain();
    let env = env_for(&api, "both");
    env.add_user(USER, PASSWORD);
    let server = env.start();
    api.set_mode(Mode::Answer(format!(r#"{{"user":{{"id":"{USER}"}}}}"#)));
    let typed = "evil\u{1b}[2J@example.com";
    let mut browser = Browser::new(&server);
    let consent = sign_in(&mut browser, typed, API_PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
    let code = browser.decide(&consent, "allow").location_params()["code"].clone();
    let tokens = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", ALEXA_REDIRECT),
        ],
    );
    let access = tokens.json_str("access_token");
    let listed = text(&env.cli(&["--list-users"], "").stdout);
    assert!(!listed.contains('\u{1b}'), "raw ESC printed: {listed:?}");
    assert!(listed.contains("evil\\u{1b}[2J@example.com"), "{listed}");
    // `alice` is the local user; `api:alice` the API subject.
    let out = env.cli(&["--unlink-user", &format!("api:{USER}")], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("login API subject"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(server.userinfo(&access).status, 401);
}

/// A login API customer's Alexa link: (access token, refresh token).
fn api_tokens(server: &Server) -> (String, String) {
    let mut browser = Browser::new(server);
    let consent = sign_in(&mut browser, API_USER, API_PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
    let redirect = browser.decide(&consent, "allow");
    let code = redirect.location_params().remove("code").expect("code");
    let tokens = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT));
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    (
        tokens.json_str("access_token"),
        tokens.json_str("refresh_token"),
    )
}

const MANAGED_ELSEWHERE: &str = "managed where you created your account";

#[test]
fn account_follows_source_api_local_users_are_not_consulted_and_customers_unlink_there() {
    let api = FakeApi::plain();
    let env = env_for(&api, "api");
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let (access, refresh_token) = api_tokens(&server);
    let calls = api.calls();
    // A local user's right password is not a sign-in: the API is asked, and says no.
    let mut local = common::account::Visitor::new(&server);
    let refused = local.sign_in(USER, PASSWORD);
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert!(refused.text().contains(WRONG), "{}", refused.text());
    assert_eq!(api.calls(), calls + 1);
    // The API's customer signs in and sees their link, without a password or two-factor form.
    let mut me = common::account::Visitor::new(&server);
    let page = me.sign_in(API_USER, API_PASSWORD);
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(
        html.contains(&format!("Signed in as <strong>{API_USER}</strong>")),
        "{html}"
    );
    assert!(html.contains("Example Taxi for Alexa"), "{html}");
    assert!(html.contains(MANAGED_ELSEWHERE), "{html}");
    assert!(
        !html.contains("/account/password") && !html.contains("/account/totp-start"),
        "{html}"
    );
    assert_eq!(api.calls(), calls + 2);
    // Posting the forms the page does not show changes nothing.
    let csrf = common::account::hidden_fields(&html, "/sign-out")
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .expect("csrf")
        .1;
    for action in ["/account/password", "/account/totp-start"] {
        let fields = [
            ("csrf", csrf.as_str()),
            ("current", API_PASSWORD),
            ("password", "a brand new password"),
            ("repeat", "a brand new password"),
        ];
        let answer = me.post(action, &fields);
        assert!(answer.status >= 400, "{action}: {}", answer.status);
    }
    // Unlinking there ends the link: the refresh token and the access token die.
    let unlinked = me.submit(&html, "/unlink", &[]);
    assert_eq!(unlinked.status, 303, "{}", unlinked.text());
    assert_eq!(unlinked.header("Location"), Some("/account?done=unlinked"));
    assert_eq!(server.userinfo(&access).status, 401);
    assert_eq!(refresh(&server, &refresh_token).error(), "invalid_grant");
    let after = me.get("/account").text();
    assert!(after.contains("Signed in as") && !after.contains("Example Taxi for Alexa"));
    // The session is the customer's only: signing out ends it.
    let out = me.submit(&after, "/sign-out", &[]);
    assert_eq!(out.status, 303);
    assert!(!me.get("/account").text().contains("Signed in as"));
}

#[test]
fn with_source_both_the_account_page_signs_in_local_users_here_and_customers_at_the_api() {
    let api = FakeApi::plain();
    let env = env_for(&api, "both");
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let (_, local_refresh) = tokens_for(&server);
    let (_, api_refresh) = api_tokens(&server);
    let calls = api.calls();
    // The local user: their own page, with the password form; the API is not asked.
    let mut alice = common::account::Visitor::new(&server);
    let page = alice.sign_in(USER, PASSWORD).text();
    assert!(page.contains("/account/password") && !page.contains(MANAGED_ELSEWHERE));
    assert_eq!(api.calls(), calls);
    // The customer: only their own link (not alice's), at the API.
    let mut rita = common::account::Visitor::new(&server);
    let page = rita.sign_in(API_USER, API_PASSWORD).text();
    assert!(page.contains(MANAGED_ELSEWHERE), "{page}");
    assert_eq!(
        page.matches("action=\"/account/unlink\"").count(),
        1,
        "{page}"
    );
    assert_eq!(api.calls(), calls + 1);
    let unlinked = rita.submit(&page, "/unlink", &[]);
    assert_eq!(unlinked.status, 303);
    assert_eq!(refresh(&server, &api_refresh).error(), "invalid_grant");
    assert_eq!(refresh(&server, &local_refresh).status, 200);
    // A wrong password at the API is the usual refusal.
    let wrong = common::account::Visitor::new(&server).sign_in(API_USER, "not it");
    assert_eq!(wrong.status, 401);
}

/// Rewrites `[login] source` in `env`'s config file.
fn set_source(env: &TestEnv, from: &str, to: &str) {
    let text = std::fs::read_to_string(&env.config).expect("config");
    let (before, after) = (format!("source = \"{from}\""), format!("source = \"{to}\""));
    assert!(text.contains(&before), "{text}");
    std::fs::write(&env.config, text.replace(&before, &after)).expect("write config");
}

#[test]
fn changing_source_ends_the_account_sessions_it_no_longer_allows() {
    let api = FakeApi::plain();
    let env = env_for(&api, "both");
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let mut alice = common::account::Visitor::new(&server);
    let mut rita = common::account::Visitor::new(&server);
    assert_eq!(alice.sign_in(USER, PASSWORD).status, 200);
    assert_eq!(rita.sign_in(API_USER, API_PASSWORD).status, 200);
    let (alice_jar, rita_jar) = (alice.cookies.clone(), rita.cookies.clone());
    drop(server);
    let signed_in = |server: &Server, jar: &std::collections::BTreeMap<String, String>| {
        let mut visitor = common::account::Visitor::new(server);
        visitor.cookies = jar.clone();
        visitor.get("/account").text().contains("Signed in as")
    };
    // `api`: local users are not consulted, not even through a session they already had.
    set_source(&env, "both", "api");
    let server = env.start();
    assert!(!signed_in(&server, &alice_jar), "alice under source = api");
    assert!(
        signed_in(&server, &rita_jar),
        "the API customer under source = api"
    );
    drop(server);
    // `local`: the API's customers are no one here.
    set_source(&env, "api", "local");
    let server = env.start();
    assert!(
        !signed_in(&server, &rita_jar),
        "the API customer under source = local"
    );
    let mut again = common::account::Visitor::new(&server);
    assert_eq!(again.sign_in(USER, PASSWORD).status, 200);
}

/// `[login.api] check_url` on this API, every `hours` (0: every refresh).
fn checking_env(api: &FakeApi, hours: u64) -> TestEnv {
    env_of(
        api,
        config_for(api, "both")
            .set("login.api.check_url", api.check_url().as_str())
            .set("login.api.check_every_hours", hours as i64),
    )
}

#[test]
fn a_customer_deleted_in_the_api_loses_the_link_at_the_next_checked_refresh() {
    let api = FakeApi::plain();
    let env = checking_env(&api, 0);
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let (access, refresh_token) = api_tokens(&server);
    let (local_access, local_refresh) = tokens_for(&server);
    // Still a customer: the refresh asks the API (with its key) and goes on.
    let refreshed = refresh(&server, &refresh_token);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert_eq!(api.lookups(), [format!("/v1/customers/{API_SUBJECT}")]);
    let newer_access = refreshed.json_str("access_token");
    // An API that cannot answer keeps the link: a server error there is not "gone".
    api.set_mode(Mode::Status(503));
    let during = refresh(&server, &refresh_token);
    assert_eq!(during.status, 200, "{}", during.text());
    api.set_mode(Mode::Normal);
    // A local user's refresh never asks.
    let lookups = api.lookups().len();
    assert_eq!(refresh(&server, &local_refresh).status, 200);
    assert_eq!(api.lookups().len(), lookups);
    // Deleted: the next refresh ends the link, and everything it issued dies.
    api.delete_customer(API_SUBJECT);
    let ended = refresh(&server, &refresh_token);
    assert_eq!(ended.status, 400, "{}", ended.text());
    assert_eq!(ended.error(), "invalid_grant");
    assert_eq!(refresh(&server, &refresh_token).error(), "invalid_grant");
    for token in [&access, &newer_access] {
        assert_eq!(server.userinfo(token).status, 401);
    }
    // The local user is untouched.
    assert_eq!(server.userinfo(&local_access).status, 200);
    let metrics = server.get("/metrics").text();
    for series in [
        "linkgate_customer_checks_total{outcome=\"exists\"} 1",
        "linkgate_customer_checks_total{outcome=\"unavailable\"} 1",
        "linkgate_customer_checks_total{outcome=\"gone\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    server.wait_for_log("the login API no longer knows this customer", 1);
}

#[test]
fn a_link_is_checked_at_most_every_check_every_hours() {
    let api = FakeApi::plain();
    let env = checking_env(&api, 1);
    let server = env.start();
    let (_, refresh_token) = api_tokens(&server);
    api.delete_customer(API_SUBJECT);
    // A burst of refreshes within the hour after linking: none asks the API.
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| refresh(&server, &refresh_token).status))
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap(), 200);
        }
    });
    assert!(api.lookups().is_empty(), "{:?}", api.lookups());
}

#[test]
fn check_url_must_name_the_subject_on_the_api_host() {
    let api = FakeApi::plain();
    for (url, says) in [
        (
            "http://127.0.0.1:9/v1/customers/1".to_string(),
            "{subject} once",
        ),
        (
            "https://other.example/v1/customers/{subject}".to_string(),
            "same scheme, host and port",
        ),
    ] {
        let env = env_of(
            &api,
            config_for(&api, "api").set("login.api.check_url", url.as_str()),
        );
        let out = env.cli(&["--check-config"], "");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: {text}");
        assert!(
            text.contains("login.api.check_url") && text.contains(says),
            "{url}: {text}"
        );
    }
    let good = checking_env(&api, 12);
    let out = good.cli(&["--check-config"], "");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("recheck   GET {}", api.check_url()))
            && text.contains("at most every 12 h per link"),
        "{text}"
    );
}

/// `[login.api] success`: an API that answers 200 `{"ok": false}` to a wrong password is a wrong
/// password, not a sign-in (nor an outage); with `username_field = "email"` and `source = "api"`
/// the page asks for an email address.
#[test]
fn a_success_pointer_maps_200_ok_false_to_a_wrong_password_and_the_label_says_email() {
    let api = FakeApi::plain();
    let env = env_of(
        &api,
        config_for(&api, "api").set("login.api.success", "/ok"),
    );
    let server = env.start();
    api.set_mode(Mode::Answer(
        r#"{"ok":false,"user":{"id":"cust-1"}}"#.into(),
    ));
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    assert!(login.html.contains(">Email</label>"), "{}", login.html);
    let refused = browser.login(&login, API_USER, API_PASSWORD);
    assert_eq!(refused.status, 401, "{}", refused.html);
    assert!(refused.html.contains(WRONG), "{}", refused.html);
    api.set_mode(Mode::Answer(r#"{"ok":true,"user":{"id":"cust-1"}}"#.into()));
    let consent = sign_in(&mut Browser::new(&server), API_USER, API_PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
}
