//! Linking from the operator's own iOS and Android apps (issue 22): Alexa app-to-app in both
//! directions and Google App Flip. The real binary runs; one stand-in server plays the operator's
//! session API, Login with Amazon, the Alexa API endpoint lookup and the skill enablement API
//! (`common::amazon`), and the tests then redeem the codes at `/token` as Alexa and Google do.

mod common;

use common::amazon::*;
use common::*;
use std::time::Duration;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const BACKEND_SECRET: &str = "backend-secret-0123456789abcdef";

fn config(amazon: &FakeAmazon) -> TestConfig {
    amazon
        .configure(TestConfig::new(), ALEXA_ID)
        .set("server.metrics", true)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A form POST to `/app/...` with the app's session.
fn app_post(server: &Server, path: &str, session: &str, fields: &[(&str, &str)]) -> Response {
    server.post_form(path, &[("Authorization", &bearer(session))], fields)
}

fn alexa_first_fields(state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", ALEXA_ID.into()),
        ("redirect_uri", ALEXA_REDIRECT.into()),
        ("state", state.into()),
        ("scope", "profile".into()),
    ]
}

fn borrow<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn metric(server: &Server, series: &str) -> u64 {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// The state Alexa passes is long (Amazon's are several hundred characters) and comes back as is.
fn long_state() -> String {
    "A2SAAEAE-state_".repeat(40)
}

#[test]
fn alexa_first_the_app_gets_a_code_alexa_redeems_for_the_signed_in_customer() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).env();
    let server = env.start();
    let state = long_state();
    let answer = app_post(
        &server,
        "/app/authorize",
        RITA,
        &borrow(&alexa_first_fields(&state)),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let code = answer.json_str("code");
    let redirect_to = answer.json_str("redirect_to");
    assert!(
        redirect_to.starts_with(&format!("{ALEXA_REDIRECT}?")),
        "{redirect_to}"
    );
    let query = redirect_to.split_once('?').unwrap().1;
    let params: Vec<(String, String)> = query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect();
    assert!(
        params.contains(&("code".into(), code.clone())),
        "{redirect_to}"
    );
    assert!(
        params.contains(&("state".into(), state.clone())),
        "{redirect_to}"
    );
    assert!(
        code.len() >= 43,
        "a code shorter than 256 bits of base64: {code}"
    );

    // Alexa redeems the code with its own redirect URI, as after a browser link.
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", ALEXA_REDIRECT),
    ];
    let tokens = server.token_basic(ALEXA_ID, ALEXA_SECRET, &fields);
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    let info = server.userinfo(&tokens.json_str("access_token"));
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["sub"], "cust-1001");
    assert_eq!(info.json()["preferred_username"], "Rita Rider");
    // Single use, like every code.
    let again = server.token_basic(ALEXA_ID, ALEXA_SECRET, &fields);
    assert_eq!(again.status, 400);
    assert_eq!(again.error(), "invalid_grant");

    // The session API was asked with the app's own Authorization header, and the session token
    // is not in the log.
    let asked = amazon.calls("GET", "/v1/me");
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].authorization.as_deref(),
        Some(bearer(RITA).as_str())
    );
    assert_eq!(metric(&server, "linkgate_app_codes_issued_total"), 1);
    let log = server.stop();
    assert!(!log.contains(RITA), "the session token is logged:\n{log}");
    assert!(!log.contains(&code), "the code is logged:\n{log}");
}

#[test]
fn app_flip_as_json_binds_the_code_to_the_pkce_challenge() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).env();
    let server = env.start();
    let body = serde_json::json!({
        "response_type": "code",
        "client_id": GOOGLE_ID,
        "redirect_uri": GOOGLE_REDIRECT,
        "state": "google-state-1",
        "scope": "profile",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    });
    let answer = server.request(
        "POST",
        "/app/authorize",
        &[
            ("Authorization", &bearer(BOB)),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let code = answer.json_str("code");
    assert!(answer.json_str("redirect_to").starts_with(GOOGLE_REDIRECT));

    let exchange = |verifier: &str| {
        server.token_post(
            GOOGLE_ID,
            GOOGLE_SECRET,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", GOOGLE_REDIRECT),
                ("code_verifier", verifier),
            ],
        )
    };
    // The PKCE challenge the Google app sent binds the code.
    let wrong = exchange("wrong-verifier-wrong-verifier-wrong-verifier-x");
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.error(), "invalid_grant");
    let code_answer = server.token_post(
        GOOGLE_ID,
        GOOGLE_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", GOOGLE_REDIRECT),
        ],
    );
    assert_eq!(
        code_answer.status, 400,
        "a code bound to PKCE redeemed without its verifier"
    );
}

#[test]
fn app_flip_code_redeems_with_its_verifier_and_refreshes() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).env();
    let server = env.start();
    let answer = app_post(
        &server,
        "/app/authorize",
        BOB,
        &[
            ("response_type", "code"),
            ("client_id", GOOGLE_ID),
            ("redirect_uri", GOOGLE_REDIRECT),
            ("state", "s"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let tokens = server.token_post(
        GOOGLE_ID,
        GOOGLE_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &answer.json_str("code")),
            ("redirect_uri", GOOGLE_REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    let refreshed = server.token_post(
        GOOGLE_ID,
        GOOGLE_SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &tokens.json_str("refresh_token")),
        ],
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert!(refreshed.json()["expires_in"].as_u64().unwrap() > 0);
    let info = server.userinfo(&refreshed.json_str("access_token"));
    assert_eq!(info.json()["sub"], "cust-2002");
}

#[test]
fn the_app_gets_no_code_for_what_authorize_would_refuse() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).env();
    let server = env.start();
    let with = |change: &[(&'static str, &str)]| {
        let mut fields = alexa_first_fields("st");
        for (k, v) in change {
            fields.retain(|(name, _)| name != k);
            if !v.is_empty() {
                fields.push((k, v.to_string()));
            }
        }
        app_post(&server, "/app/authorize", RITA, &borrow(&fields))
    };
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("redirect_uri", "https://evil.example/cb")],
            "invalid_request",
        ),
        (&[("redirect_uri", APP_LINK)], ""), // registered for Alexa: allowed
        (&[("client_id", "nobody")], "invalid_request"),
        (&[("client_id", "")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (
            &[
                ("code_challenge_method", "plain"),
                ("code_challenge", CHALLENGE),
            ],
            "invalid_request",
        ),
    ];
    for (change, error) in cases {
        let answer = with(change);
        if error.is_empty() {
            assert_eq!(answer.status, 200, "{change:?}: {}", answer.text());
            continue;
        }
        assert_eq!(answer.status, 400, "{change:?}: {}", answer.text());
        assert_eq!(answer.json_str("error"), error, "{change:?}");
        assert!(!answer.json_str("message").is_empty());
        assert!(answer.json().get("code").is_none(), "{change:?}");
        assert!(answer.json().get("redirect_to").is_none(), "{change:?}");
        // Logged with its reason under the reference the app gets (issue 23).
        let reference = answer.header("X-Linkgate-Reference").expect("a reference");
        server.wait_for_log(reference, 1);
    }
    // Declining: the client's redirect URI with access_denied and the state, and no code.
    let denied = with(&[("decision", "deny")]);
    assert_eq!(denied.status, 200, "{}", denied.text());
    assert!(denied.json().get("code").is_none());
    let to = denied.json_str("redirect_to");
    assert!(to.starts_with(ALEXA_REDIRECT), "{to}");
    assert!(
        to.contains("error=access_denied") && to.contains("state=st"),
        "{to}"
    );
    // Repeated parameters and a body of the wrong kind.
    let repeated = server.post_form(
        "/app/authorize",
        &[("Authorization", &bearer(RITA))],
        &[("client_id", ALEXA_ID), ("client_id", GOOGLE_ID)],
    );
    assert_eq!(repeated.status, 400);
    let xml = server.request(
        "POST",
        "/app/authorize",
        &[
            ("Authorization", &bearer(RITA)),
            ("Content-Type", "text/xml"),
        ],
        b"<a/>",
    );
    assert_eq!(xml.status, 400);
    let bad_json = server.request(
        "POST",
        "/app/authorize",
        &[
            ("Authorization", &bearer(RITA)),
            ("Content-Type", "application/json"),
        ],
        b"{\"client_id\": [1]}",
    );
    assert_eq!(bad_json.status, 400);
    assert_eq!(bad_json.json_str("error"), "invalid_request");
    assert_eq!(server.get("/app/authorize").status, 405);
}

#[test]
fn only_a_session_the_operator_accepts_or_the_backend_gets_a_code() {
    let amazon = FakeAmazon::start();
    let hash =
        linkgate::base::secret::hash_password(&linkgate::base::secret::Secret::new(BACKEND_SECRET));
    let env = config(&amazon)
        .set("apps.backend_secret_hash", hash.as_str())
        .env();
    let server = env.start();
    let fields = alexa_first_fields("st");
    let fields = borrow(&fields);
    let post = |auth: Option<&str>, extra: &[(&str, &str)]| {
        let mut all = fields.clone();
        all.extend_from_slice(extra);
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        server.post_form("/app/authorize", &headers, &all)
    };
    let none = post(None, &[]);
    assert_eq!(none.status, 401);
    assert_eq!(none.json_str("error"), "unauthorized");
    let unknown = post(Some(&bearer("session-nobody-0000")), &[]);
    assert_eq!(unknown.status, 401, "{}", unknown.text());
    assert_eq!(unknown.expect_header("www-authenticate"), "Bearer");
    let not_backend = post(Some(&basic("admin", BACKEND_SECRET)), &[("subject", "c-9")]);
    assert_eq!(not_backend.status, 401);
    let wrong_secret = post(
        Some(&basic("backend", "wrong-secret")),
        &[("subject", "c-9")],
    );
    assert_eq!(wrong_secret.status, 401);
    let no_subject = post(Some(&basic("backend", BACKEND_SECRET)), &[]);
    assert_eq!(no_subject.status, 400, "{}", no_subject.text());
    let backend = post(
        Some(&basic("backend", BACKEND_SECRET)),
        &[("subject", "c-9")],
    );
    assert_eq!(backend.status, 200, "{}", backend.text());
    let tokens = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &backend.json_str("code")),
            ("redirect_uri", ALEXA_REDIRECT),
        ],
    );
    assert_eq!(
        server.userinfo(&tokens.json_str("access_token")).json()["sub"],
        "c-9"
    );

    // The operator's session API down or erroring: 503, and no code.
    amazon.script(|s| s.session_status = Some(500));
    let down = post(Some(&bearer(RITA)), &[]);
    assert_eq!(down.status, 503, "{}", down.text());
    assert_eq!(down.json_str("error"), "temporarily_unavailable");
    amazon.script(|s| s.session_status = Some(403));
    assert_eq!(post(Some(&bearer(RITA)), &[]).status, 401);
    let log = server.stop();
    assert!(
        !log.contains(BACKEND_SECRET),
        "the backend secret is logged:\n{log}"
    );
}

#[test]
fn a_burst_of_wrong_backend_secrets_is_held_like_a_sequence() {
    let amazon = FakeAmazon::start();
    let hash =
        linkgate::base::secret::hash_password(&linkgate::base::secret::Secret::new(BACKEND_SECRET));
    let env = config(&amazon)
        .set("apps.backend_secret_hash", hash.as_str())
        .env();
    let server = env.start();
    let fields = form(&[("client_id", ALEXA_ID), ("subject", "c-1")]);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let (server, fields) = (&server, &fields);
                scope.spawn(move || {
                    let auth = basic("backend", &format!("guess-{i}"));
                    server
                        .request(
                            "POST",
                            "/app/alexa/start",
                            &[
                                ("Authorization", &auth),
                                ("Content-Type", "application/x-www-form-urlencoded"),
                            ],
                            fields.as_bytes(),
                        )
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(refused + throttled, 40, "{statuses:?}");
    assert!(
        // 20 free failures, and the one that locks the address (as at /token).
        refused <= 21,
        "more than 21 guesses were checked: {statuses:?}"
    );
    // The address is locked now: even the right secret waits.
    let right = server.request(
        "POST",
        "/app/alexa/start",
        &[
            ("Authorization", &basic("backend", BACKEND_SECRET)),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        fields.as_bytes(),
    );
    assert_eq!(right.status, 429, "{}", right.text());
    assert!(right.header("retry-after").is_some());
}

/// `/app/alexa/start` then `/app/alexa/finish` for `session`, with Amazon's code for `amazon_user`.
fn start(server: &Server, session: &str) -> serde_json::Value {
    let started = app_post(server, "/app/alexa/start", session, &[]);
    assert_eq!(started.status, 200, "{}", started.text());
    started.json()
}

fn finish(server: &Server, session: &str, amazon_user: &str, state: &str) -> Response {
    let code = format!("{AMAZON_CODE}-{amazon_user}");
    app_post(
        server,
        "/app/alexa/finish",
        session,
        &[("code", &code), ("state", state)],
    )
}

/// Amazon redeems the code it was given in the enablement call, as it does after it.
fn amazon_redeems(server: &Server, amazon: &FakeAmazon) -> Response {
    server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &amazon.last_auth_code()),
            ("redirect_uri", APP_LINK),
        ],
    )
}

#[test]
fn linking_from_the_app_enables_the_skill_and_alexa_redeems_the_code() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).env();
    let server = env.start();
    let started = start(&server, RITA);
    let state = string_field(&started, "state");
    let consent = string_field(&started, "alexa_app_url");
    assert!(
        consent.starts_with("https://alexa.amazon.com/spa/skill-account-linking-consent?"),
        "{consent}"
    );
    for part in [
        "fragment=skill-account-linking-consent",
        "skill_stage=development",
        &format!("client_id={}", encode(LWA_CLIENT_ID)),
        &format!("redirect_uri={}", encode(APP_LINK)),
        "scope=alexa%3A%3Askills%3Aaccount_linking",
        "response_type=code",
        &format!("state={}", encode(&state)),
    ] {
        assert!(consent.contains(part), "{part} not in {consent}");
    }
    let lwa = string_field(&started, "lwa_url");
    assert!(lwa.starts_with("https://www.amazon.com/ap/oa?"), "{lwa}");
    assert!(lwa.contains(&format!("state={}", encode(&state))), "{lwa}");

    let finished = finish(&server, RITA, "rita", &state);
    assert_eq!(finished.status, 200, "{}", finished.text());
    assert_eq!(finished.json_str("status"), "linked");
    // What Amazon was sent: the code exchange with the skill's credentials and the universal
    // link, the lookup and the enablement with the customer's Amazon token, and linkgate's code.
    let exchange = amazon.calls("POST", "/auth/o2/token");
    assert_eq!(exchange.len(), 1);
    assert!(exchange[0].body.contains("grant_type=authorization_code"));
    assert!(exchange[0]
        .body
        .contains(&format!("redirect_uri={}", encode(APP_LINK))));
    let enable = amazon.enablements();
    assert_eq!(enable.len(), 1);
    assert_eq!(
        enable[0].authorization.as_deref(),
        Some("Bearer amz-access-1")
    );
    assert!(enable[0].path.contains(SKILL_ID));
    let body: serde_json::Value = serde_json::from_str(&enable[0].body).unwrap();
    assert_eq!(body["stage"], "development");
    assert_eq!(body["accountLinkRequest"]["type"], "AUTH_CODE");

    let tokens = amazon_redeems(&server, &amazon);
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    let info = server.userinfo(&tokens.json_str("access_token"));
    assert_eq!(info.json()["sub"], "cust-1001");
    // Alexa refreshes later, and gets expires_in every time.
    let refreshed = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &tokens.json_str("refresh_token")),
        ],
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert!(refreshed.json()["expires_in"].as_u64().unwrap() > 0);

    let status = server.request(
        "GET",
        "/app/alexa/status",
        &[("Authorization", &bearer(RITA))],
        b"",
    );
    assert_eq!(status.status, 200, "{}", status.text());
    assert_eq!(status.json_str("status"), "linked");
    assert_eq!(status.json()["linkgate_grant"], true);
    // Bob has linked nothing.
    let bob = server.request(
        "GET",
        "/app/alexa/status",
        &[("Authorization", &bearer(BOB))],
        b"",
    );
    assert_eq!(bob.json_str("status"), "not_linked", "{}", bob.text());
    assert_eq!(
        metric(
            &server,
            "linkgate_alexa_app_links_total{outcome=\"linked\"}"
        ),
        1
    );
    let log = server.stop();
    for secret in [LWA_SECRET, "amz-access-1", "amz-refresh-1", RITA] {
        assert!(!log.contains(secret), "{secret} is logged:\n{log}");
    }
}

#[test]
fn the_state_is_single_use_and_only_for_the_customer_it_was_given_to() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).env();
    let server = env.start();
    let state = string_field(&start(&server, RITA), "state");
    // Bob cannot finish Rita's link (a state stolen from her app).
    let stolen = finish(&server, BOB, "bob", &state);
    assert_eq!(stolen.status, 400, "{}", stolen.text());
    assert_eq!(stolen.json_str("error"), "invalid_state");
    let mut forged = state.clone();
    forged.replace_range(..4, "AAAA");
    assert_eq!(
        finish(&server, RITA, "rita", &forged).json_str("error"),
        "invalid_state"
    );
    assert_eq!(finish(&server, RITA, "rita", "").status, 400);
    // A session the operator's API rejects: 401, and Amazon is not asked.
    let rejected = finish(&server, "session-expired-0000", "rita", &state);
    assert_eq!(rejected.status, 401, "{}", rejected.text());
    assert!(
        amazon.calls("POST", "/auth/o2/token").is_empty(),
        "Amazon was called for a bad state"
    );
    assert_eq!(finish(&server, RITA, "rita", &state).status, 200);
    let replay = finish(&server, RITA, "rita", &state);
    assert_eq!(replay.status, 400, "{}", replay.text());
    assert_eq!(replay.json_str("error"), "invalid_state");
    assert_eq!(amazon.enablements().len(), 1);
}

#[test]
fn a_burst_of_finishes_with_one_state_enables_the_skill_once() {
    let amazon = FakeAmazon::start();
    amazon.script(|s| s.enable_delay = Duration::from_millis(300));
    let env = config(&amazon).env();
    let server = env.start();
    let state = string_field(&start(&server, RITA), "state");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (server, state) = (&server, &state);
                scope.spawn(move || finish(server, RITA, "rita", state).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(amazon.enablements().len(), 1);
    assert_eq!(amazon.calls("POST", "/auth/o2/token").len(), 1);
}

#[test]
fn amazon_refusing_leaves_no_usable_code_and_says_what_amazon_said() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).set("apps.timeout_ms", 500).env();
    let server = env.start();

    // Login with Amazon refuses its code (used twice, expired): 400 with Amazon's words.
    amazon.script(|s| {
        s.lwa = Some((
            400,
            r#"{"error":"invalid_grant","error_description":"The request has an invalid grant parameter : code"}"#.into(),
        ))
    });
    let state = string_field(&start(&server, RITA), "state");
    let refused = finish(&server, RITA, "rita", &state);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json_str("error"), "amazon_error");
    assert!(
        refused
            .json_str("message")
            .contains("invalid grant parameter"),
        "{}",
        refused.text()
    );
    assert!(amazon.enablements().is_empty());
    amazon.script(|s| s.lwa = None);

    // The enablement refused (a development skill, a customer who is not a tester): 403, and
    // the code linkgate issued for it no longer redeems.
    let cases: [(u16, u16, &str); 4] = [
        (403, 403, "amazon_error"),
        (401, 403, "amazon_error"),
        (400, 400, "amazon_error"),
        (500, 502, "amazon_error"),
    ];
    for (amazon_status, ours, error) in cases {
        amazon.script(|s| {
            s.enable = Some((amazon_status, r#"{"message":"scripted refusal"}"#.into()))
        });
        let state = string_field(&start(&server, RITA), "state");
        let answer = finish(&server, RITA, "rita", &state);
        assert_eq!(
            answer.status,
            ours,
            "Amazon {amazon_status}: {}",
            answer.text()
        );
        assert_eq!(answer.json_str("error"), error);
        assert!(
            answer.json_str("message").contains("scripted refusal"),
            "{}",
            answer.text()
        );
        let late = amazon_redeems(&server, &amazon);
        assert_eq!(
            late.status,
            400,
            "a withdrawn code redeemed: {}",
            late.text()
        );
        assert_eq!(late.error(), "invalid_grant");
    }

    // Amazon does not answer in time: 504, and again nothing redeems.
    amazon.script(|s| {
        s.enable = None;
        s.enable_delay = Duration::from_millis(1500);
    });
    let state = string_field(&start(&server, RITA), "state");
    let slow = finish(&server, RITA, "rita", &state);
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert_eq!(slow.json_str("error"), "amazon_unavailable");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(amazon_redeems(&server, &amazon).status, 400);
    assert_eq!(
        server
            .request(
                "GET",
                "/app/alexa/status",
                &[("Authorization", &bearer(RITA))],
                b""
            )
            .json_str("status"),
        "not_linked"
    );
}

#[test]
fn an_unreachable_region_host_falls_to_the_next_and_an_enabled_skill_is_already_linked() {
    let amazon = FakeAmazon::start();
    // A closed port first: Amazon names hosts in order, linkgate tries each.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_host = closed.local_addr().unwrap().to_string();
    drop(closed);
    amazon.script(|s| {
        s.extra_hosts_first = vec![closed_host];
        s.lwa_expires_as_string = true;
    });
    let env = config(&amazon).env();
    let server = env.start();
    let state = string_field(&start(&server, RITA), "state");
    let linked = finish(&server, RITA, "rita", &state);
    assert_eq!(linked.json_str("status"), "linked", "{}", linked.text());
    assert_eq!(amazon_redeems(&server, &amazon).status, 200);
    // The customer links again (a second phone): Amazon answers 409, linkgate says so and the
    // second code is withdrawn.
    let state = string_field(&start(&server, RITA), "state");
    let again = finish(&server, RITA, "rita", &state);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json_str("status"), "already_linked");
    let second = amazon.enablements().len();
    assert_eq!(second, 2);
}

#[test]
fn status_refreshes_an_expired_amazon_token() {
    let amazon = FakeAmazon::start();
    // Shorter than linkgate's 30 s margin: the next status call refreshes first.
    amazon.script(|s| s.lwa_expires_in = 10);
    let env = config(&amazon).env();
    let server = env.start();
    let state = string_field(&start(&server, RITA), "state");
    assert_eq!(finish(&server, RITA, "rita", &state).status, 200);
    let status = server.request(
        "GET",
        "/app/alexa/status",
        &[("Authorization", &bearer(RITA))],
        b"",
    );
    assert_eq!(status.json_str("status"), "linked", "{}", status.text());
    let token_calls = amazon.calls("POST", "/auth/o2/token");
    assert_eq!(token_calls.len(), 2);
    assert!(
        token_calls[1].body.contains("grant_type=refresh_token"),
        "{}",
        token_calls[1].body
    );
    let last = amazon.calls("GET", "/enablement").pop().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer amz-access-2"));
}

#[test]
fn unlinking_from_the_app_revokes_every_token_and_disables_the_skill() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).env();
    let server = env.start();
    let state = string_field(&start(&server, RITA), "state");
    assert_eq!(finish(&server, RITA, "rita", &state).status, 200);
    let tokens = amazon_redeems(&server, &amazon);
    let (access, refresh) = (
        tokens.json_str("access_token"),
        tokens.json_str("refresh_token"),
    );
    // Also an Alexa-first link's code not yet redeemed, and Bob's link, which must survive.
    let pending = app_post(
        &server,
        "/app/authorize",
        RITA,
        &borrow(&alexa_first_fields("p")),
    );
    let pending_code = pending.json_str("code");
    let bob = app_post(
        &server,
        "/app/authorize",
        BOB,
        &borrow(&alexa_first_fields("b")),
    );
    let bob_tokens = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &bob.json_str("code")),
            ("redirect_uri", ALEXA_REDIRECT),
        ],
    );

    let unlinked = app_post(&server, "/app/alexa/unlink", RITA, &[]);
    assert_eq!(unlinked.status, 200, "{}", unlinked.text());
    assert_eq!(unlinked.json_str("status"), "unlinked");
    assert_eq!(unlinked.json()["skill_disabled"], true);
    assert_eq!(amazon.calls("DELETE", "/enablement").len(), 1);

    assert_eq!(
        server.userinfo(&access).status,
        401,
        "the access token still works"
    );
    let refreshed = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!(refreshed.status, 400, "{}", refreshed.text());
    assert_eq!(refreshed.error(), "invalid_grant");
    let late = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &pending_code),
            ("redirect_uri", ALEXA_REDIRECT),
        ],
    );
    assert_eq!(
        late.status,
        400,
        "a pending code survived the unlink: {}",
        late.text()
    );
    assert_eq!(
        server.userinfo(&bob_tokens.json_str("access_token")).status,
        200
    );
    let status = server.request(
        "GET",
        "/app/alexa/status",
        &[("Authorization", &bearer(RITA))],
        b"",
    );
    assert_eq!(status.json_str("status"), "not_linked");
    assert_eq!(status.json()["linkgate_grant"], false);

    // Amazon failing the disable still ends linkgate's side, and says so.
    let state = string_field(&start(&server, BOB), "state");
    assert_eq!(finish(&server, BOB, "bob", &state).status, 200);
    amazon.script(|s| s.disable_status = 500);
    let half = app_post(&server, "/app/alexa/unlink", BOB, &[]);
    assert_eq!(half.status, 200, "{}", half.text());
    assert_eq!(half.json()["skill_disabled"], false);
    assert_eq!(
        server.userinfo(&bob_tokens.json_str("access_token")).status,
        401
    );
}

#[test]
fn the_link_survives_a_restart() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).env();
    let server = env.start();
    let state = string_field(&start(&server, RITA), "state");
    assert_eq!(finish(&server, RITA, "rita", &state).status, 200);
    let server = server.restart();
    let status = server.request(
        "GET",
        "/app/alexa/status",
        &[("Authorization", &bearer(RITA))],
        b"",
    );
    assert_eq!(status.json_str("status"), "linked", "{}", status.text());
    let tokens = amazon_redeems(&server, &amazon);
    assert_eq!(
        tokens.status,
        200,
        "the pending code did not survive: {}",
        tokens.text()
    );
}

#[test]
fn association_files_describe_the_apps_and_are_absent_without_them() {
    let amazon = FakeAmazon::start();
    let fingerprint = "14:6d:e9:83:c5:73:06:50:d8:ee:b9:95:2f:34:fc:64:16:a0:83:42:e6:1d:be:a8:8a:04:96:b2:3f:cf:44:e5";
    let env = config(&amazon)
        .set(
            "apps.ios_app_ids",
            toml::Value::Array(vec!["ABCDE12345.com.example.taxi".into()]),
        )
        .set("apps.android_package", "com.example.taxi")
        .set(
            "apps.android_cert_fingerprints",
            toml::Value::Array(vec![fingerprint.into()]),
        )
        .env();
    let server = env.start();
    let aasa = server.get("/.well-known/apple-app-site-association");
    assert_eq!(aasa.status, 200);
    assert!(aasa
        .expect_header("content-type")
        .starts_with("application/json"));
    let text = aasa.text();
    assert!(text.contains("ABCDE12345.com.example.taxi"), "{text}");
    assert!(text.contains("/app/*"), "{text}");
    let links = server.get("/.well-known/assetlinks.json");
    assert_eq!(links.status, 200);
    let links = links.json();
    assert_eq!(links[0]["target"]["package_name"], "com.example.taxi");
    assert_eq!(
        links[0]["target"]["sha256_cert_fingerprints"][0],
        fingerprint.to_ascii_uppercase()
    );
    assert_eq!(server.get("/app/alexa").status, 200);

    let plain = TestEnv::new();
    let server = plain.start();
    assert_eq!(
        server.get("/.well-known/apple-app-site-association").status,
        404
    );
    assert_eq!(server.get("/.well-known/assetlinks.json").status, 404);
    let off = app_post(
        &server,
        "/app/authorize",
        RITA,
        &borrow(&alexa_first_fields("s")),
    );
    assert_eq!(off.status, 404, "{}", off.text());
    assert_eq!(off.json_str("error"), "not_configured");
}

#[test]
fn check_config_refuses_an_app_link_that_is_not_a_redirect_uri() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon)
        .client(
            ALEXA_ID,
            "redirect_uris",
            toml::Value::Array(vec![ALEXA_REDIRECT.into()]),
        )
        .env();
    let out = env.cli(&["--check-config"], "");
    assert!(!out.status.success());
    let err = text(&out.stderr) + &text(&out.stdout);
    assert!(err.contains("alexa_app.app_redirect_uri"), "{err}");
    assert!(err.contains("redirect_uris"), "{err}");
    let env = config(&amazon)
        .set(
            "apps.ios_app_ids",
            toml::Value::Array(vec!["com.example.taxi".into()]),
        )
        .env();
    let out = env.cli(&["--check-config"], "");
    assert!(!out.status.success());
    let err = text(&out.stderr) + &text(&out.stdout);
    assert!(err.contains("apps.ios_app_ids[0]"), "{err}");
}

#[test]
fn an_app_link_is_listed_and_dies_with_unlink_user() {
    let amazon = FakeAmazon::start();
    let env = config(&amazon).env();
    let server = env.start();
    let state = string_field(&start(&server, RITA), "state");
    assert_eq!(finish(&server, RITA, "rita", &state).status, 200);
    let tokens = amazon_redeems(&server, &amazon);
    let flip = app_post(
        &server,
        "/app/authorize",
        RITA,
        &borrow(&alexa_first_fields("x")),
    );
    let flip_tokens = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &flip.json_str("code")),
            ("redirect_uri", ALEXA_REDIRECT),
        ],
    );
    let listed = env.cli(&["--list-users"], "");
    let listed = text(&listed.stdout);
    let line = listed
        .lines()
        .find(|l| l.contains("cust-1001"))
        .unwrap_or_else(|| panic!("the app's customer is not listed:\n{listed}"));
    assert!(
        line.contains("Rita Rider") && line.contains("1 linked client"),
        "{line}"
    );

    let out = env.cli(&["--unlink-user", "cust-1001"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    for access in [
        tokens.json_str("access_token"),
        flip_tokens.json_str("access_token"),
    ] {
        assert_eq!(server.userinfo(&access).status, 401);
    }
    for refresh in [
        tokens.json_str("refresh_token"),
        flip_tokens.json_str("refresh_token"),
    ] {
        let answer = server.token_basic(
            ALEXA_ID,
            ALEXA_SECRET,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        );
        assert_eq!(answer.status, 400, "a refresh token survived --unlink-user");
    }
    // The customer's Amazon tokens are forgotten with the link.
    let status = server.request(
        "GET",
        "/app/alexa/status",
        &[("Authorization", &bearer(RITA))],
        b"",
    );
    assert_eq!(status.json_str("status"), "not_linked", "{}", status.text());
    assert_eq!(amazon.calls("GET", "/enablement").len(), 0);
}

#[test]
fn doctor_checks_the_session_api_the_lwa_credentials_and_the_association_files() {
    let amazon = FakeAmazon::start();
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let link = format!("{origin}/app/alexa");
    let env = config(&amazon)
        .set("server.listen", format!("127.0.0.1:{port}"))
        .set("server.public_url", origin.as_str())
        .client(
            ALEXA_ID,
            "redirect_uris",
            toml::Value::Array(vec![ALEXA_REDIRECT.into(), link.as_str().into()]),
        )
        .set(
            "apps.ios_app_ids",
            toml::Value::Array(vec!["ABCDE12345.com.example.taxi".into()]),
        )
        .env();
    // The client's alexa_app with the universal link on linkgate's own host.
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(APP_LINK, &link);
    std::fs::write(&env.config, text).unwrap();
    let _server = env.start();
    let out = env.cli(&["--doctor"], "");
    let report = common::text(&out.stdout);
    let lines: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("app_to_app"))
        .collect();
    let has = |status: &str, needle: &str| {
        lines
            .iter()
            .any(|l| l.contains(status) && l.contains(needle))
    };
    assert!(
        has("ok", "answered 401 to a made-up session token"),
        "{report}"
    );
    assert!(
        has("ok", "Login with Amazon knows lwa_client_id"),
        "{report}"
    );
    assert!(has("ok", "association files are served"), "{report}");
    // The doctor's probes never enable anything.
    assert!(amazon.enablements().is_empty());

    // A wrong LWA secret, and a session API that accepts anything, fail.
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(LWA_SECRET, "not-the-lwa-secret-0000")
        .replace("/v1/me", "/v1/alexaApiEndpoint-missing");
    std::fs::write(&env.config, text).unwrap();
    let out = env.cli(&["--doctor"], "");
    assert!(!out.status.success());
    let report = common::text(&out.stdout);
    assert!(
        report.contains("refused lwa_client_id/lwa_client_secret"),
        "{report}"
    );
    assert!(
        report.contains("answered 404 to a made-up session token"),
        "{report}"
    );
    assert!(
        !report.contains("not-the-lwa-secret"),
        "the doctor prints the secret:\n{report}"
    );
}
