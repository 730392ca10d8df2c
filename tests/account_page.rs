//! Issue 15, part 2: `/account`. The person signs in (through the authorization flow's login
//! throttle), sees the apps linked to their account, unlinks one (its tokens die at once), and
//! changes their password (their links stay unless they tick "sign out my apps").

mod common;
use common::account::{hidden_fields, Visitor};
use common::*;

const NEW_PASSWORD: &str = "a fresh passphrase";

/// The grant id of the unlink form next to `client_name`.
fn unlink_form<'p>(page: &'p str, client_name: &str) -> &'p str {
    let at = page
        .find(client_name)
        .unwrap_or_else(|| panic!("{client_name} not on the page: {page}"));
    &page[at..]
}

/// The "Linked apps" section of the page.
fn linked_apps(page: &str) -> &str {
    let start = page.find("Linked apps").expect("a Linked apps section");
    let end = page[start..].find("<h2>").map_or(page.len(), |e| start + e);
    &page[start..end]
}

/// The "Recent activity" section: one string per entry, newest first, tags stripped.
fn activity(page: &str) -> Vec<String> {
    let start = page
        .find("Recent activity")
        .expect("a Recent activity section");
    let list = &page[start
        ..page[start..]
            .find("</ul>")
            .map_or(page.len(), |e| start + e)];
    list.split("<li>")
        .skip(1)
        .map(|item| {
            let mut text = String::new();
            let mut in_tag = false;
            for ch in item.chars() {
                match ch {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text
        })
        .collect()
}

/// The whole "Recent activity" list as text, whatever the page's language.
fn activity_text(page: &str) -> &str {
    let start = page
        .find("class=\"apps activity\"")
        .expect("an activity list");
    &page[start..]
}

/// Links Google for the default user: (access, refresh).
fn google_tokens(server: &Server) -> (String, String) {
    let code = code_for(server, GOOGLE_ID, GOOGLE_REDIRECT);
    let json = server
        .token_post(
            GOOGLE_ID,
            GOOGLE_SECRET,
            &code_fields(&code, GOOGLE_REDIRECT),
        )
        .json();
    (
        string_field(&json, "access_token"),
        string_field(&json, "refresh_token"),
    )
}

#[test]
fn the_page_lists_linked_apps_and_unlinking_one_kills_its_tokens_at_once() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (alexa_access, alexa_refresh) = tokens_for(&server);
    let (google_access, google_refresh) = google_tokens(&server);
    assert_eq!(refresh(&server, &alexa_refresh).status, 200);
    let mut me = Visitor::new(&server);
    let page = me.sign_in(USER, PASSWORD);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("Signed in as <strong>alice</strong>"),
        "{html}"
    );
    // Both apps, when linked, and Alexa's refresh; Google has not refreshed yet.
    let alexa = unlink_form(&html, "Example Taxi for Alexa");
    let google = unlink_form(&html, "Example Taxi for Google");
    assert!(
        alexa.contains("Linked since") && alexa.contains(" UTC"),
        "{alexa}"
    );
    assert!(google[..google.find("</li>").unwrap()].contains("not yet"));
    assert!(!alexa[..alexa.find("</li>").unwrap()].contains("not yet"));
    // Unlink Alexa: its form is the one after its name.
    let unlinked = me.submit(alexa, "/unlink", &[]);
    assert_eq!(unlinked.status, 303);
    assert_eq!(unlinked.header("Location"), Some("/account?done=unlinked"));
    assert_eq!(server.userinfo(&alexa_access).status, 401);
    assert_eq!(refresh(&server, &alexa_refresh).error(), "invalid_grant");
    // Google is untouched.
    assert_eq!(server.userinfo(&google_access).status, 200);
    let refreshed = server.token_post(
        GOOGLE_ID,
        GOOGLE_SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &google_refresh),
        ],
    );
    assert_eq!(refreshed.status, 200);
    let html = me.get("/account?done=unlinked").text();
    assert!(html.contains("The app is unlinked"), "{html}");
    assert!(!linked_apps(&html).contains("Example Taxi for Alexa"));
    assert!(linked_apps(&html).contains("Example Taxi for Google"));
    // Posting the same unlink again (another tab) changes nothing and says so.
    let again = me.submit(alexa, "/unlink", &[]);
    assert_eq!(again.header("Location"), Some("/account?done=gone"));
    assert_eq!(server.userinfo(&google_access).status, 200);
    server.wait_for_log("event=\"unlink\" user=alice", 1);
}

#[test]
fn a_person_cannot_unlink_someone_elses_app_or_act_without_the_csrf_token() {
    let env = TestEnv::with_user();
    env.add_user("mallory", "mallory's password");
    let server = env.start();
    let (access, _) = tokens_for(&server);
    let mut alice = Visitor::new(&server);
    let alice_page = alice.sign_in(USER, PASSWORD).text();
    let grant: String = hidden_fields(&alice_page, "/unlink")
        .into_iter()
        .find(|(k, _)| k == "grant")
        .unwrap()
        .1;
    let mut mallory = Visitor::new(&server);
    let page = mallory.sign_in("mallory", "mallory's password").text();
    let csrf = hidden_fields(&page, "/password")[0].1.clone();
    let response = mallory.post("/account/unlink", &[("csrf", &csrf), ("grant", &grant)]);
    assert_eq!(response.header("Location"), Some("/account?done=gone"));
    assert_eq!(server.userinfo(&access).status, 200);
    // Alice's own session without the form's token (a cross-site post), or with Mallory's.
    for csrf in ["", csrf.as_str()] {
        let response = alice.post("/account/unlink", &[("csrf", csrf), ("grant", &grant)]);
        assert_eq!(response.status, 403, "csrf {csrf:?}");
    }
    assert_eq!(server.userinfo(&access).status, 200);
    // Not signed in at all: back to the sign-in page, nothing done.
    let stranger = server.post_form("/account/unlink", &[], &[("grant", &grant)]);
    assert_eq!(stranger.status, 303);
    assert_eq!(server.userinfo(&access).status, 200);
    // The sign-in form itself needs its CSRF cookie.
    let form = server.get("/account").text();
    let fields = hidden_fields(&form, "/sign-in");
    let response = server.post_form(
        "/account/sign-in",
        &[],
        &[
            ("csrf", fields[0].1.as_str()),
            ("username", USER),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(response.status, 403);
    assert!(response.header("Set-Cookie").is_none());
}

#[test]
fn a_password_change_keeps_the_links_unless_the_person_signs_out_their_apps() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    let mut me = Visitor::new(&server);
    let page = me.sign_in(USER, PASSWORD).text();
    // Wrong current password, short, mismatched: refused, nothing changes.
    for (current, new, repeat, says) in [
        (
            "wrong password",
            NEW_PASSWORD,
            NEW_PASSWORD,
            "current password is wrong",
        ),
        (PASSWORD, "short", "short", "too short"),
        (PASSWORD, NEW_PASSWORD, "something else", "not the same"),
    ] {
        let response = me.submit(
            &page,
            "/password",
            &[("current", current), ("password", new), ("repeat", repeat)],
        );
        assert_eq!(response.status, 400, "{says}");
        assert!(
            response.text().contains(says),
            "{says}: {}",
            response.text()
        );
    }
    let changed = me.submit(
        &page,
        "/password",
        &[
            ("current", PASSWORD),
            ("password", NEW_PASSWORD),
            ("repeat", NEW_PASSWORD),
        ],
    );
    assert_eq!(changed.status, 303, "{}", changed.text());
    assert_eq!(changed.header("Location"), Some("/account?done=password"));
    // This browser stays signed in (a new session); the links stay.
    let html = me.get("/account?done=password").text();
    assert!(html.contains("Your password is changed"), "{html}");
    assert_eq!(server.userinfo(&access).status, 200);
    assert_eq!(refresh(&server, &refresh_token).status, 200);
    // The old password is dead, the new one signs in; another browser's session ended.
    let mut other = Visitor::new(&server);
    assert_eq!(other.sign_in(USER, PASSWORD).status, 401);
    let page = other.sign_in(USER, NEW_PASSWORD).text();
    // Now with "sign out my apps": every token dies, as with --set-password, and so does a code
    // issued but not yet redeemed.
    let pending_code = {
        let mut browser = Browser::new(&server);
        let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
        let consent = browser.login(&login, USER, NEW_PASSWORD);
        browser.decide(&consent, "allow").location_params()["code"].clone()
    };
    let changed = other.submit(
        &page,
        "/password",
        &[
            ("current", NEW_PASSWORD),
            ("password", "a third passphrase"),
            ("repeat", "a third passphrase"),
            ("end_links", "yes"),
        ],
    );
    assert_eq!(changed.status, 303);
    assert_eq!(server.userinfo(&access).status, 401);
    let exchange = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &code_fields(&pending_code, ALEXA_REDIRECT),
    );
    assert_eq!(exchange.error(), "invalid_grant", "{}", exchange.text());
    assert_eq!(refresh(&server, &refresh_token).error(), "invalid_grant");
    // The first browser's session ended with the change.
    let html = me.get("/account").text();
    assert!(html.contains("name=\"password\"") && !html.contains("Signed in as"));
    server.wait_for_log(
        "event=\"password_changed\" user=alice ip=127.0.0.1 detail=\"account, apps signed out\"",
        1,
    );
}

#[test]
fn sign_in_shares_the_authorization_flows_throttle() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut attacker = Visitor::new(&server);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(attacker.sign_in(USER, "a wrong guess").status);
    }
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // The same address is held in the authorization flow too.
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    assert_eq!(browser.login(&login, USER, PASSWORD).status, 429);
    let page = attacker.sign_in(USER, PASSWORD);
    assert_eq!(page.status, 429);
    assert!(page.text().contains("Too many failed sign-ins"));
}

#[test]
fn the_session_cookie_is_http_only_lax_stored_hashed_and_ends_on_sign_out_and_set_password() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut me = Visitor::new(&server);
    let form = me.get("/account").text();
    let response = me.submit(
        &form,
        "/sign-in",
        &[("username", USER), ("password", PASSWORD)],
    );
    assert_eq!(response.status, 303);
    let cookie = response.expect_header("Set-Cookie").to_string();
    assert!(cookie.starts_with("linkgate_session=lgs_"), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=1800"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let token = me.cookies["linkgate_session"].clone();
    // Only its hash is stored.
    let mut stored = Vec::new();
    for entry in walk(&env.data_dir()) {
        stored.extend(std::fs::read(entry).unwrap_or_default());
    }
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the session token is stored in clear"
    );
    // Sign out: the cookie is cleared and the token is dead even if replayed.
    let page = me.get("/account").text();
    let out = me.submit(&page, "/sign-out", &[]);
    assert_eq!(out.status, 303);
    assert!(out.expect_header("Set-Cookie").contains("Max-Age=0"));
    let replay = server.request(
        "GET",
        "/account",
        &[("Cookie", &format!("linkgate_session={token}"))],
        b"",
    );
    assert!(!replay.text().contains("Signed in as"));
    // --set-password by the admin ends a session too.
    let mut again = Visitor::new(&server);
    assert!(again
        .sign_in(USER, PASSWORD)
        .text()
        .contains("Signed in as"));
    let out = env.cli(&["--set-password", USER], "the admin's choice\n");
    assert!(out.status.success());
    assert!(!again.get("/account").text().contains("Signed in as"));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn over_https_the_cookies_are_host_prefixed_and_secure() {
    let (env, cert) = https_env();
    env.add_user(USER, PASSWORD);
    let mut server = env.start();
    server.tls = Some(tls_client(&cert));
    let mut me = Visitor::new(&server);
    let form = me.get("/account");
    let csrf = form.expect_header("Set-Cookie").to_string();
    assert!(csrf.starts_with("__Host-linkgate_account_csrf=") && csrf.contains("Secure"));
    let response = me.submit(
        &form.text(),
        "/sign-in",
        &[("username", USER), ("password", PASSWORD)],
    );
    let cookie = response.expect_header("Set-Cookie");
    assert!(
        cookie.starts_with("__Host-linkgate_session=lgs_"),
        "{cookie}"
    );
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"));
    assert!(me.get("/account").text().contains("Signed in as"));
}

#[test]
fn the_account_page_speaks_every_language() {
    let env = TestEnv::with_user();
    let server = env.start();
    // The heading, and the detail of the sign-in the activity list shows, in each language.
    for (language, heading, detail) in [
        ("en", "Your account", "account page"),
        ("de", "Ihr Konto", "Kontoseite"),
        ("fr", "Votre compte", "page du compte"),
        ("es", "Tu cuenta", "página de la cuenta"),
        ("it", "Il tuo account", "pagina dell’account"),
        ("ja", "あなたのアカウント", "アカウントページ"),
        ("pt-BR", "Sua conta", "página da conta"),
        ("hi", "आपका खाता", "खाता पेज"),
    ] {
        let mut me = Visitor::new(&server);
        me.language = Some(language);
        let page = me.get("/account");
        assert_eq!(page.header("Content-Language"), Some(language));
        assert!(page.text().contains(heading), "{language}");
        let signed = me.sign_in(USER, PASSWORD);
        assert_eq!(signed.header("Content-Language"), Some(language));
        assert!(signed.text().contains(heading), "{language}");
        assert!(activity_text(&signed.text()).contains(detail), "{language}");
    }
}

#[test]
fn recent_activity_shows_the_persons_own_security_events_newest_first() {
    let env = TestEnv::with_user();
    env.add_user("bob", "bob's password");
    let server = env.start();
    let _ = tokens_for(&server);
    // A wrong password in the linking flow, a sign-in for bob (not shown to alice).
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    assert_eq!(browser.login(&login, USER, "a wrong guess").status, 401);
    assert_eq!(
        Visitor::new(&server)
            .sign_in("bob", "bob's password")
            .status,
        200
    );
    let out = env.cli(&["--unlink-user", USER], "");
    assert!(out.status.success());
    let mut me = Visitor::new(&server);
    let html = me.sign_in(USER, PASSWORD).text();
    let entries = activity(&html);
    let expected = [
        "Signed in · account page",
        "Changed by the administrator · --unlink-user",
        "Failed sign-in · Example Taxi for Alexa",
        "App linked · Example Taxi for Alexa",
        "Signed in · Example Taxi for Alexa",
    ];
    assert_eq!(entries.len(), expected.len(), "{entries:#?}");
    for (entry, what) in entries.iter().zip(expected) {
        assert!(
            entry.starts_with(what),
            "{entry:?} should be {what:?}; all: {entries:#?}"
        );
    }
    // Browser actions carry the address and a time; admin actions a time only.
    assert!(entries[0].contains("UTC · 127.0.0.1"), "{}", entries[0]);
    assert!(entries[1].trim_end().ends_with("UTC"), "{}", entries[1]);
    server.wait_for_log("event=\"admin\" user=alice detail=\"--unlink-user\"", 1);
}

#[test]
fn a_burst_of_wrong_passwords_at_account_sign_in_is_held_like_a_sequence() {
    let env = TestEnv::with_user();
    let server = env.start();
    // 24 sign-in forms, prepared first, posted at once from one address.
    let forms: Vec<(String, String)> = (0..24)
        .map(|_| {
            let page = server.get("/account");
            let cookie = page.cookie().expect("a CSRF cookie");
            (page.text(), cookie)
        })
        .collect();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = forms
            .iter()
            .map(|(page, cookie)| {
                let server = &server;
                scope.spawn(move || {
                    let csrf = hidden_fields(page, "/sign-in")[0].1.clone();
                    server
                        .post_form(
                            "/account/sign-in",
                            &[("Cookie", cookie)],
                            &[
                                ("csrf", &csrf),
                                ("username", USER),
                                ("password", "a wrong guess"),
                            ],
                        )
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let held = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    // As many are checked as in a sequence (the authorization flow's limit), the rest held.
    assert!(
        checked <= 6,
        "{checked} of 24 guesses checked: {statuses:?}"
    );
    assert!(held >= 18, "{statuses:?}");
    eprintln!("/account sign-in burst: {checked} of 24 checked, {held} held (429)");
}

/// Issue 26: a backup holds what a restore needs to look the same to customers — the person
/// signed in to `/account` stays signed in, with their recent activity, and an invitation
/// already sent still opens.
#[test]
fn a_backup_restores_open_sessions_invitations_and_recent_activity() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, _) = tokens_for(&server);
    let mut me = Visitor::new(&server);
    assert_eq!(me.sign_in(USER, PASSWORD).status, 200);
    let cookies = me.cookies.clone();
    let invite = env.cli(&["--invite", "bob"], "");
    assert!(invite.status.success(), "{}", text(&invite.stderr));
    let link = text(&invite.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("http://127.0.0.1")
                .map(str::to_string)
        })
        .expect("an invitation link");
    let file = env.dir.path().join("all.backup");
    let out = env.cli(&["--backup", file.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    server.stop();

    let target = TestEnv::new();
    let out = target.cli(&["--restore", file.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let restored = target.start();
    // Same cookie, same page: still signed in, the sign-in in the recent activity.
    let mut again = Visitor::new(&restored);
    again.cookies = cookies;
    let page = again.get("/account");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("Signed in as <strong>alice</strong>"),
        "{html}"
    );
    assert!(html.contains("Example Taxi for Alexa"), "{html}");
    assert!(!html.contains("No activity yet."), "{html}");
    assert!(
        html.contains("App linked") && html.contains("account page"),
        "{html}"
    );
    // The invitation opens its form, and the link's token still answers.
    let form = restored.get(&link);
    assert_eq!(form.status, 200, "{}", form.text());
    assert!(form.text().contains("name=\"password\""));
    assert_eq!(restored.userinfo(&access).status, 200);
}
