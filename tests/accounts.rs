//! Issue 15, part 1: one-time password links. `--invite NAME` creates a user and prints a link
//! where the person chooses their own password; `--reset-password NAME` does the same for an
//! existing user. Single use, dead on expiry (unit-tested in `store::invites` with `now` passed
//! in), on removal, on a newer link and on `--set-password`; they work with the server running
//! and stopped.

mod common;
use common::*;

const NEW_PASSWORD: &str = "my own secret phrase";

/// Runs a CLI command that must succeed; its stdout.
fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs a CLI command that must fail; its stderr.
fn err(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "succeeded: {}", text(&out.stdout));
    text(&out.stderr)
}

/// The path (with query) of the link a `--invite` / `--reset-password` printed.
fn link_path(output: &str) -> String {
    let link = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("http://127.0.0.1"))
        .unwrap_or_else(|| panic!("no link in {output:?}"));
    assert!(link.starts_with("/set-password?token=lgp_"), "{link}");
    link.to_string()
}

/// Opens the link and submits `password` twice: the page after the submission.
fn use_link(server: &Server, path: &str, password: &str, repeat: &str) -> Page {
    let mut browser = Browser::new(server);
    let form = browser.open(path);
    assert_eq!(form.status, 200, "{}", form.html);
    browser.submit(&form, &[("password", password), ("repeat", repeat)])
}

/// Whether `username` can sign in with `password` in the authorization flow.
fn can_sign_in(server: &Server, username: &str, password: &str) -> bool {
    let mut browser = Browser::new(server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    let next = browser.login(&login, username, password);
    match next.status {
        200 => next.html.contains("name=\"decision\""),
        401 => false,
        other => panic!("sign-in answered {other}: {}", next.html),
    }
}

fn invitation_works(running: bool) {
    let env = TestEnv::new();
    let server = env.start();
    let server = if running {
        server
    } else {
        server.stop();
        let out = ok(&env.cli(&["--invite", "Bob"], ""));
        let path = link_path(&out);
        let server = env.start();
        return finish_invitation(&env, &server, &path, &out);
    };
    let out = ok(&env.cli(&["--invite", "Bob"], ""));
    finish_invitation(&env, &server, &link_path(&out), &out);
}

fn finish_invitation(env: &TestEnv, server: &Server, path: &str, out: &str) {
    assert!(
        out.contains("invited bob") && out.contains("valid until"),
        "{out}"
    );
    // The user exists at once, but nobody can sign in as them until they chose a password.
    assert!(ok(&env.cli(&["--list-users"], "")).contains("bob"));
    assert!(!can_sign_in(server, "bob", ""));
    // The form: the user's name, two password inputs, and nothing spent by opening it twice
    // (chat apps fetch links to preview them).
    let form = Page::from(server.get(path));
    assert_eq!(form.status, 200);
    assert!(form.html.contains("<strong>bob</strong>"), "{}", form.html);
    assert_eq!(form.html.matches("type=\"password\"").count(), 2);
    assert!(form.html.contains("autocomplete=\"new-password\""));
    let done = use_link(server, path, NEW_PASSWORD, NEW_PASSWORD);
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.html.contains("Password saved"), "{}", done.html);
    assert!(can_sign_in(server, "bob", NEW_PASSWORD));
    // Single use: the link is dead, whether opened or posted again.
    assert_eq!(server.get(path).status, 410);
    let again = Page::from(server.get(path));
    assert!(again.html.contains("no longer works"), "{}", again.html);
    // The token appears nowhere in the log.
    let token = path.split_once("token=").unwrap().1;
    assert!(!server.log().contains(token), "the link's token was logged");
    // The change is a security event in the log: who, what, how; never the password.
    server.wait_for_log(
        "event=\"password_changed\" user=bob ip=127.0.0.1 detail=\"invitation link\"",
        1,
    );
    assert!(!server.log().contains(NEW_PASSWORD));
}

#[test]
fn an_invitation_link_lets_the_person_choose_their_password_while_the_server_runs() {
    invitation_works(true);
}

#[test]
fn an_invitation_link_made_while_the_server_was_stopped_works_after_it_starts() {
    invitation_works(false);
}

#[test]
fn the_form_enforces_the_password_rules_and_csrf() {
    let env = TestEnv::new();
    let server = env.start();
    let path = link_path(&ok(&env.cli(&["--invite", "bob"], "")));
    for (password, repeat, says) in [
        ("short", "short", "too short"),
        ("", "", "enter a password"),
        ("a long enough one", "a long enough two", "not the same"),
    ] {
        let page = use_link(&server, &path, password, repeat);
        assert_eq!(page.status, 400, "{password:?}");
        assert!(
            page.html.to_lowercase().contains(says),
            "{says}: {}",
            page.html
        );
        assert!(page.html.contains("aria-invalid=\"true\""));
    }
    let long = "x".repeat(1025);
    assert_eq!(use_link(&server, &path, &long, &long).status, 400);
    // Without the CSRF cookie, or with another form's, the post is refused and nothing is set.
    let form = Page::from(server.get(&path));
    let fields = [("password", NEW_PASSWORD), ("repeat", NEW_PASSWORD)];
    assert_eq!(form.submit(&server, None, &fields).status, 403);
    let other = Page::from(server.get(&path));
    assert_eq!(
        form.submit(&server, other.cookie.as_deref(), &fields)
            .status,
        403
    );
    // A forged token with a valid CSRF pair: the link is dead, no password set.
    let mut forged = Page::from(server.get(&path));
    for (name, value) in &mut forged.hidden {
        if name == "token" {
            *value = format!("{value}x");
        }
    }
    assert_eq!(
        forged
            .submit(&server, forged.cookie.as_deref(), &fields)
            .status,
        410
    );
    assert!(!can_sign_in(&server, "bob", NEW_PASSWORD));
    // The link survived all of that and still works once.
    assert_eq!(
        use_link(&server, &path, NEW_PASSWORD, NEW_PASSWORD).status,
        200
    );
    assert!(can_sign_in(&server, "bob", NEW_PASSWORD));
}

#[test]
fn a_reset_link_sets_a_new_password_and_ends_every_link_the_old_one_made() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    let out = ok(&env.cli(&["--reset-password", USER], ""));
    assert!(out.contains("password reset for alice"), "{out}");
    let path = link_path(&out);
    // Until the link is used, nothing changes.
    assert_eq!(server.userinfo(&access).status, 200);
    assert!(can_sign_in(&server, USER, PASSWORD));
    let sub = server.userinfo(&access).json()["sub"].clone();
    let pending_code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    assert_eq!(
        use_link(&server, &path, NEW_PASSWORD, NEW_PASSWORD).status,
        200
    );
    // A code issued but not yet redeemed dies too.
    let exchange = server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &code_fields(&pending_code, ALEXA_REDIRECT),
    );
    assert_eq!(exchange.error(), "invalid_grant", "{}", exchange.text());
    // As with --set-password: the tokens die, the old password too; `sub` stays.
    assert_eq!(server.userinfo(&access).status, 401);
    assert_eq!(refresh(&server, &refresh_token).error(), "invalid_grant");
    assert!(!can_sign_in(&server, USER, PASSWORD));
    assert!(can_sign_in(&server, USER, NEW_PASSWORD));
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    let consent = browser.login(&login, USER, NEW_PASSWORD);
    let code = browser.decide(&consent, "allow").location_params()["code"].clone();
    let tokens = server
        .token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT))
        .json();
    let access = string_field(&tokens, "access_token");
    assert_eq!(server.userinfo(&access).json()["sub"], sub);
}

#[test]
fn a_link_dies_with_its_user_with_a_newer_link_and_with_set_password() {
    let env = TestEnv::with_user();
    let server = env.start();
    // Removal.
    let path = link_path(&ok(&env.cli(&["--invite", "bob"], "")));
    ok(&env.cli(&["--remove-user", "bob"], ""));
    assert_eq!(server.get(&path).status, 410);
    // A user of the same name added later does not inherit the link.
    env.add_user("bob", "bob's password");
    assert_eq!(server.get(&path).status, 410);
    assert_eq!(use_link_status(&server, &path), 410);
    // A newer link replaces the older.
    let first = link_path(&ok(&env.cli(&["--reset-password", USER], "")));
    let second = link_path(&ok(&env.cli(&["--reset-password", USER], "")));
    assert_eq!(server.get(&first).status, 410);
    assert_eq!(server.get(&second).status, 200);
    // A password set by the admin supersedes the reset.
    ok(&env.cli(&["--set-password", USER], "the admin's choice\n"));
    assert_eq!(server.get(&second).status, 410);
    assert!(can_sign_in(&server, USER, "the admin's choice"));
}

/// Posts a form with a valid CSRF pair and a good password to `path`, whose link may be dead.
fn use_link_status(server: &Server, path: &str) -> u16 {
    // A live form from another link supplies the CSRF pair; the token is this path's.
    let token = path.split_once("token=").unwrap().1;
    let csrf = "a-csrf-token-of-our-own";
    let cookie = format!("linkgate_account_csrf={csrf}");
    server
        .post_form(
            "/set-password",
            &[("Cookie", &cookie)],
            &[
                ("token", &decode(token)),
                ("csrf", csrf),
                ("password", NEW_PASSWORD),
                ("repeat", NEW_PASSWORD),
            ],
        )
        .status
}

#[test]
fn of_a_burst_of_uses_of_one_link_exactly_one_sets_the_password() {
    let env = TestEnv::new();
    let server = env.start();
    let path = link_path(&ok(&env.cli(&["--invite", "bob"], "")));
    let forms: Vec<Page> = (0..8).map(|_| Page::from(server.get(&path))).collect();
    let results: Vec<(String, u16)> = std::thread::scope(|scope| {
        let handles: Vec<_> = forms
            .iter()
            .enumerate()
            .map(|(i, form)| {
                let server = &server;
                scope.spawn(move || {
                    let password = format!("password number {i}");
                    let fields = [
                        ("password", password.as_str()),
                        ("repeat", password.as_str()),
                    ];
                    let status = form.submit(server, form.cookie.as_deref(), &fields).status;
                    (password, status)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<&(String, u16)> = results.iter().filter(|(_, s)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results.iter().all(|(_, s)| [200, 410, 503].contains(s)),
        "{results:?}"
    );
    // The password that won is the one set; a loser's is not (one check: failures are throttled).
    assert!(can_sign_in(&server, "bob", &winners[0].0));
    let loser = results.iter().find(|(_, s)| *s != 200).unwrap();
    assert!(!can_sign_in(&server, "bob", &loser.0));
}

#[test]
fn the_cli_refuses_what_it_cannot_do() {
    let env = TestEnv::with_user();
    assert!(err(&env.cli(&["--invite", USER], "")).contains("--reset-password"));
    assert!(err(&env.cli(&["--reset-password", "nobody"], "")).contains("no user"));
    assert!(err(&env.cli(&["--invite", "-rf"], "")).contains("invalid username"));
    let bad = TestConfig::new().set("accounts.invite_ttl_secs", 5).env();
    assert!(err(&bad.cli(&["--invite", "bob"], "")).contains("accounts.invite_ttl_secs"));
    // A custom lifetime is what the link says.
    let short = TestConfig::new()
        .set("accounts.invite_ttl_secs", 3600)
        .env();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = ok(&short.cli(&["--invite", "bob"], ""));
    assert!(
        (now..now + 10).any(|t| out.contains(&linkgate::admin::format_time(t + 3600))),
        "{out}"
    );
}

#[test]
fn the_pages_speak_every_language() {
    let env = TestEnv::new();
    let server = env.start();
    let path = link_path(&ok(&env.cli(&["--invite", "bob"], "")));
    for (language, heading) in [
        ("en", "Choose your password"),
        ("de", "Passwort festlegen"),
        ("fr", "Choisir votre mot de passe"),
        ("es", "Elige tu contraseña"),
        ("it", "Scegli la tua password"),
        ("ja", "パスワードの設定"),
        ("pt-BR", "Escolha sua senha"),
        ("hi", "अपना पासवर्ड चुनें"),
    ] {
        let page = server.request("GET", &path, &[("Accept-Language", language)], b"");
        assert_eq!(
            page.header("Content-Language"),
            Some(language),
            "{language}"
        );
        assert!(page.text().contains(heading), "{language}: {}", page.text());
    }
    let dead = server.request(
        "GET",
        "/set-password?token=lgp_nope",
        &[("Accept-Language", "de")],
        b"",
    );
    assert_eq!(dead.status, 410);
    assert!(dead.text().contains("Dieser Link funktioniert nicht mehr"));
}
