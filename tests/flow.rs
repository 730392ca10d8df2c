//! The account-linking flow as Alexa and Google drive it, end to end against the real binary.

mod common;
use common::*;

#[test]
fn alexa_links_an_account_with_http_basic_and_refreshes() {
    let env = TestEnv::with_user();
    let server = env.start();
    let redirect = Browser::new(&server).link(ALEXA_ID, ALEXA_REDIRECT, "alexa-state", "allow");
    assert_eq!(redirect.status, 303);
    let location = redirect.expect_header("Location");
    assert!(
        location.starts_with(&format!("{ALEXA_REDIRECT}?")),
        "{location}"
    );
    let params = redirect.location_params();
    assert_eq!(params["state"], "alexa-state");
    let code = &params["code"];

    let response = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(code, ALEXA_REDIRECT));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("Cache-Control"), Some("no-store"));
    assert!(response
        .expect_header("Content-Type")
        .starts_with("application/json"));
    let tokens = response.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "profile");
    let access = string_field(&tokens, "access_token");
    let refresh_token = string_field(&tokens, "refresh_token");
    assert!(access.len() <= 2048 && refresh_token.len() <= 2048);

    let me = server.userinfo(&access);
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    assert_eq!(me["preferred_username"], USER);
    let sub = string_field(&me, "sub");

    // A refresh answers expires_in and, by default, keeps the same refresh token.
    let refreshed = refresh(&server, &refresh_token);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert_eq!(refreshed.header("Cache-Control"), Some("no-store"));
    let refreshed = refreshed.json();
    assert_eq!(refreshed["expires_in"], 3600);
    assert_eq!(refreshed["token_type"], "Bearer");
    assert_eq!(refreshed["refresh_token"], refresh_token.as_str());
    let new_access = string_field(&refreshed, "access_token");
    assert_ne!(new_access, access);
    assert_eq!(server.userinfo(&new_access).json_str("sub"), sub);
    // A retried refresh (a lost response) still works: the customer stays linked.
    assert_eq!(refresh(&server, &refresh_token).status, 200);
}

#[test]
fn google_links_with_credentials_in_the_body_and_extra_parameters() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut browser = Browser::new(&server);
    let login = browser.open(&authorize_path(
        GOOGLE_ID,
        GOOGLE_REDIRECT,
        "g-state",
        &[("user_locale", "en-US")],
    ));
    assert_eq!(login.status, 200, "{}", login.html);
    let consent = browser.submit(&login, &[("username", USER), ("password", PASSWORD)]);
    assert!(
        consent.html.contains("Example Taxi for Google"),
        "{}",
        consent.html
    );
    let redirect = browser.submit(&consent, &[("decision", "allow")]).response;
    let params = redirect.location_params();
    assert_eq!(params["state"], "g-state");
    let response = server.token_post(
        GOOGLE_ID,
        GOOGLE_SECRET,
        &code_fields(&params["code"], GOOGLE_REDIRECT),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let tokens = response.json();
    let refreshed = server.token_post(
        GOOGLE_ID,
        GOOGLE_SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &string_field(&tokens, "refresh_token")),
        ],
    );
    assert_eq!(refreshed.status, 200);
    assert_eq!(refreshed.json()["expires_in"], 3600);
}

#[test]
fn a_long_state_comes_back_byte_for_byte() {
    let env = TestEnv::with_user();
    let server = env.start();
    let jwt_like = format!("eyJhbGciOiJIUzI1NiJ9.{}.{}", "QUJD".repeat(1500), "sig_-");
    let odd = "a b+c/d=e&f%25g?h#i\u{e9}";
    for state in [jwt_like.as_str(), odd] {
        let redirect = Browser::new(&server).link(ALEXA_ID, ALEXA_REDIRECT, state, "allow");
        assert_eq!(redirect.location_params()["state"], state);
    }
    assert!(jwt_like.len() > 6000);
}

#[test]
fn basic_credentials_are_form_decoded() {
    let id = "skill id:+%/é";
    let secret = "s3cret with spaces+plus:colon%";
    let extra = format!(
        "[[clients]]\nid = \"{id}\"\nsecret = \"{secret}\"\nredirect_uris = [\"https://layla.amazon.com/api/skill/link/M2ODD\"]\n"
    );
    let env = TestEnv::with_config(&config_text(&extra));
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let code = code_for(&server, id, "https://layla.amazon.com/api/skill/link/M2ODD");
    let response = server.token_basic(
        id,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            (
                "redirect_uri",
                "https://layla.amazon.com/api/skill/link/M2ODD",
            ),
        ],
    );
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn a_wrong_password_shows_the_page_again_with_a_generic_error() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut browser = Browser::new(&server);
    let login = browser.open(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]));
    let again = browser.submit(
        &login,
        &[("username", USER), ("password", "not the password")],
    );
    assert_eq!(again.status, 401, "{}", again.html);
    assert!(again.response.header("Location").is_none());
    assert!(
        again.html.contains("Wrong username or password"),
        "{}",
        again.html
    );
    assert!(again.html.contains("name=\"password\""));
    // The page works again: the right password now gets to consent.
    let consent = browser.submit(&again, &[("username", USER), ("password", PASSWORD)]);
    assert_eq!(consent.status, 200);
    assert!(consent.html.contains("value=\"allow\""), "{}", consent.html);
}

#[test]
fn usernames_are_case_insensitive() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut browser = Browser::new(&server);
    let login = browser.open(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]));
    let consent = browser.submit(&login, &[("username", "Alice"), ("password", PASSWORD)]);
    assert_eq!(consent.status, 200, "{}", consent.html);
}

#[test]
fn deny_redirects_with_access_denied_and_the_state() {
    let env = TestEnv::with_user();
    let server = env.start();
    let redirect = Browser::new(&server).link(ALEXA_ID, ALEXA_REDIRECT, "deny-state", "deny");
    assert_eq!(redirect.status, 303);
    let params = redirect.location_params();
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "deny-state");
    assert!(!params.contains_key("code"));
}

#[test]
fn a_consent_without_its_cookie_or_csrf_field_gives_no_code() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    let consent = browser.login(&login, USER, PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
    let cookie = consent
        .cookie
        .clone()
        .expect("the consent page sets a fresh CSRF cookie");
    let forged_field: Vec<(&str, &str)> = consent
        .hidden
        .iter()
        .map(|(n, v)| match n.as_str() {
            "csrf" => ("csrf", "forged"),
            _ => (n.as_str(), v.as_str()),
        })
        .chain([("decision", "allow")])
        .collect();
    let allow = [("decision", "allow")];
    let attempts = [
        ("no cookie", consent.submit(&server, None, &allow)),
        (
            "a guessed cookie",
            consent.submit(&server, Some("linkgate_csrf=guess"), &allow),
        ),
        (
            "the login page's stale cookie",
            consent.submit(&server, login.cookie.as_deref(), &allow),
        ),
        (
            "a forged csrf field",
            server.post_form(&consent.action, &[("Cookie", &cookie)], &forged_field),
        ),
    ];
    for (what, response) in attempts {
        assert_refused_without_redirect(&response, what);
    }
    // The forgeries did not spoil the customer's own form: it still links.
    let redirect = browser.decide(&consent, "allow");
    assert_eq!(redirect.status, 303, "{}", redirect.text());
    assert!(redirect.location_params().contains_key("code"));
}

#[test]
fn a_consent_form_submitted_twice_gives_a_code_only_once() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    let consent = browser.login(&login, USER, PASSWORD);
    let first = browser.decide(&consent, "allow");
    assert_eq!(first.status, 303, "{}", first.text());
    assert!(first.location_params().contains_key("code"));
    for decision in ["allow", "deny"] {
        let again = consent.submit(
            &server,
            consent.cookie.as_deref(),
            &[("decision", decision)],
        );
        assert_refused_without_redirect(&again, &format!("second {decision}"));
    }
}

#[test]
fn a_code_used_twice_is_refused() {
    let env = TestEnv::with_user();
    let server = env.start();
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let fields = code_fields(code.as_str(), ALEXA_REDIRECT);
    assert_eq!(
        server.token_basic(ALEXA_ID, ALEXA_SECRET, &fields).status,
        200
    );
    let second = server.token_basic(ALEXA_ID, ALEXA_SECRET, &fields);
    assert_eq!(second.status, 400);
    assert_eq!(second.error(), "invalid_grant");
}

#[test]
fn a_wrong_client_secret_is_invalid_client_with_a_challenge() {
    let env = TestEnv::with_user();
    let server = env.start();
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let fields = code_fields(code.as_str(), ALEXA_REDIRECT);
    for response in [
        server.token_basic(ALEXA_ID, "wrong-secret-0123456789", &fields),
        server.token_post(ALEXA_ID, "wrong-secret-0123456789", &fields),
        server.token_basic("no-such-client", ALEXA_SECRET, &fields),
        server.post_form("/token", &[], &fields),
    ] {
        assert_eq!(response.status, 401, "{}", response.text());
        assert_eq!(response.error(), "invalid_client");
        assert!(response.header("WWW-Authenticate").is_some());
    }
    // The code was not spent by the failed attempts.
    assert_eq!(
        server.token_basic(ALEXA_ID, ALEXA_SECRET, &fields).status,
        200
    );
}

#[test]
fn userinfo_refuses_missing_and_bad_tokens() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (_, refresh_token) = tokens_for(&server);
    let missing = server.get("/userinfo");
    assert_eq!(missing.status, 401);
    assert!(missing
        .expect_header("WWW-Authenticate")
        .starts_with("Bearer"));
    for bad in ["lgat_nonsense", refresh_token.as_str()] {
        let response = server.userinfo(bad);
        assert_eq!(response.status, 401);
        assert!(response
            .expect_header("WWW-Authenticate")
            .contains("error=\"invalid_token\""));
    }
}

/// Expiry itself (codes, access and refresh tokens) is decided by the store with `now` passed in
/// and tested there (`store::codes`, `store::grants`); here, that the configured lifetime is the
/// one the server announces.
#[test]
fn token_responses_announce_the_configured_access_token_lifetime() {
    let env = TestConfig::new()
        .set("tokens.access_ttl_secs", 120)
        .set("tokens.code_ttl_secs", 30)
        .env();
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let issued = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT));
    assert_eq!(issued.status, 200, "{}", issued.text());
    assert_eq!(issued.json()["expires_in"], 120);
    let refreshed = refresh(&server, &issued.json_str("refresh_token"));
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert_eq!(refreshed.json()["expires_in"], 120);
}

#[test]
fn a_restart_keeps_users_and_tokens() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    let sub = server.userinfo(&access).json()["sub"].clone();
    let server = server.restart();
    assert_eq!(server.userinfo(&access).json()["sub"], sub);
    let refreshed = refresh(&server, &refresh_token);
    assert_eq!(refreshed.status, 200);
    let new_access = refreshed.json_str("access_token");
    assert_eq!(server.userinfo(&new_access).json()["sub"], sub);
    // And a new link works after the restart (the user is still there).
    tokens_for(&server);
}

#[test]
fn health_and_metadata() {
    let env = TestEnv::new();
    let server = env.start();
    let health = server.get("/healthz");
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    let meta = server.get("/.well-known/oauth-authorization-server").json();
    assert_eq!(meta["issuer"], "http://127.0.0.1");
    assert_eq!(meta["token_endpoint"], "http://127.0.0.1/token");
    assert_eq!(meta["authorization_endpoint"], "http://127.0.0.1/authorize");
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
}

#[test]
fn pages_are_uncached_unframeable_and_show_who_asks() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut browser = Browser::new(&server);
    let login = browser.open(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]));
    let consent = browser.submit(&login, &[("username", USER), ("password", PASSWORD)]);
    for page in [&login, &consent] {
        let r = &page.response;
        assert_eq!(r.header("Cache-Control"), Some("no-store"));
        assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
        assert!(r
            .expect_header("Content-Security-Policy")
            .contains("frame-ancestors 'none'"));
        assert_eq!(r.header("Referrer-Policy"), Some("no-referrer"));
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
        let cookie = r.expect_header("Set-Cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        assert!(page.html.contains("Example Taxi"));
        assert!(page.html.contains("name=\"viewport\""));
        assert!(!page.html.contains("<script"));
    }
    assert!(login.html.contains("autocomplete=\"username\""));
    assert!(login.html.contains("autocomplete=\"current-password\""));
    assert!(login.html.contains("<label for=\"username\""));
    assert!(consent.html.contains("Example Taxi for Alexa"));
    assert!(consent.html.contains(USER));
    assert!(consent.html.contains("name=\"decision\" value=\"allow\""));
    assert!(consent.html.contains("name=\"decision\" value=\"deny\""));
}

#[test]
fn sigterm_stops_cleanly() {
    let env = TestEnv::new();
    let server = env.start();
    assert!(server.is_healthy());
    let log = server.stop();
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn the_log_holds_no_secrets() {
    let env = TestEnv::with_user();
    let server = env.start();
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let response = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT));
    let tokens = response.json();
    let log = server.stop();
    assert!(log.contains("path=/token status=200"), "{log}");
    for secret in [
        code.as_str(),
        PASSWORD,
        ALEXA_SECRET,
        &string_field(&tokens, "access_token"),
        &string_field(&tokens, "refresh_token"),
        "state-1",
    ] {
        assert!(!log.contains(secret), "the log contains {secret}");
    }
}

#[test]
fn sustained_concurrent_refreshes_all_succeed() {
    // Regression: concurrent durable writes once hung the store (sled's I/O threads all waiting
    // in flushes). 16 clients refreshing back to back for two seconds must all be answered.
    let env = TestEnv::with_user();
    let server = env.start();
    let (_, refresh_token) = tokens_for(&server);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let counts: Vec<usize> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    let mut ok = 0;
                    while std::time::Instant::now() < deadline {
                        let response = refresh(&server, &refresh_token);
                        assert_eq!(response.status, 200, "{}", response.text());
                        ok += 1;
                    }
                    ok
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect()
    });
    assert!(counts.iter().all(|c| *c > 0), "{counts:?}");
    assert!(server.is_healthy());
}

/// RFC 6749 §6: a refresh is checked against the token's own client and granted scope; a refused
/// refresh leaves the token working for its client.
#[test]
fn a_refresh_is_refused_to_another_client_and_may_not_widen_the_scope() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (_, refresh_token) = tokens_for(&server);
    let refresh_with = |id, secret, scope: Option<&str>| {
        let mut fields = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ];
        fields.extend(scope.map(|s| ("scope", s)));
        server.token_basic(id, secret, &fields)
    };

    let stolen = refresh_with(GOOGLE_ID, GOOGLE_SECRET, None);
    assert_eq!(
        (stolen.status, stolen.error()),
        (400, "invalid_grant".into())
    );
    assert!(
        stolen.text().contains("another client"),
        "{}",
        stolen.text()
    );

    let wider = refresh_with(ALEXA_ID, ALEXA_SECRET, Some("profile email"));
    assert_eq!((wider.status, wider.error()), (400, "invalid_scope".into()));

    for scope in [Some("profile"), None] {
        let ok = refresh_with(ALEXA_ID, ALEXA_SECRET, scope);
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(ok.json()["scope"], "profile");
        assert_eq!(ok.json()["refresh_token"], refresh_token.as_str());
        let info = server.userinfo(&ok.json_str("access_token"));
        assert_eq!(info.json()["preferred_username"], USER);
    }
}

/// A refused form post: a 4xx, and no redirect anywhere (not even back to the client).
fn assert_refused_without_redirect(response: &Response, what: &str) {
    assert!(
        (400..500).contains(&response.status),
        "{what}: expected a 4xx, got {} {}",
        response.status,
        response.text()
    );
    assert!(
        response.header("Location").is_none(),
        "{what}: redirected to {:?}",
        response.header("Location")
    );
}
