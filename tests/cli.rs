//! The command line: config errors that name the file and key, and every admin command, both
//! with the server stopped (the CLI opens the data directory) and running (it asks the server
//! over the admin socket).

mod common;
use common::*;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn err(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

#[test]
fn version_and_help() {
    let env = TestEnv::new();
    assert!(ok(&env.cli(&["--version"], "")).starts_with("linkgate 0.1.0"));
    let help = ok(&env.cli(&["--help"], ""));
    for flag in [
        "--add-user",
        "--list-users",
        "--remove-user",
        "--set-password",
        "--unlink-user",
        "--check-config",
        "--backup",
        "--restore",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    assert!(err(&env.cli(&["--frobnicate"], "")).contains("--frobnicate"));
}

#[test]
fn add_user_takes_the_password_from_stdin_and_checks_it() {
    let env = TestEnv::new();
    assert!(ok(&env.cli(&["--add-user", "Bob"], "a good password\n")).contains("added user bob"));
    assert!(err(&env.cli(&["--add-user", "bob"], "another password\n")).contains("already exists"));
    assert!(
        err(&env.cli(&["--add-user", "bad name"], "a good password\n"))
            .contains("invalid username")
    );
    assert!(err(&env.cli(&["--add-user", "-x"], "a good password\n")).contains("invalid username"));
    assert!(err(&env.cli(&["--add-user", "carol"], "short\n")).contains("too short"));
    assert!(err(&env.cli(&["--add-user", "carol"], "")).contains("empty"));
    let list = ok(&env.cli(&["--list-users"], ""));
    assert!(list.contains("bob") && !list.contains("carol"), "{list}");
}

#[test]
fn config_problems_name_the_file_and_the_key() {
    let cases = [
        (TestConfig::new().remove("server.listen").set("server.listne", "127.0.0.1:0").text(), "listne"),
        (TestConfig::new().set("server.listen", "not-an-address").text(), "server.listen"),
        (TestConfig::new().set("server.public_url", "auth.example.com").text(), "server.public_url"),
        (config_text("[tokens]\ncode_ttl_secs = \"five\"\n"), "tokens.code_ttl_secs"),
        (config_text("[[clients]]\nid = \"x\"\nsecret = \"0123456789abcdef\"\nredirect_uris = []\n"), "redirect_uris"),
        (config_text("[[clients]]\nid = \"x\"\nsecret = \"0123456789abcdef\"\n"), "redirect_uris"),
        (config_text(&format!("[[clients]]\nid = \"{ALEXA_ID}\"\nsecret = \"0123456789abcdef\"\nredirect_uris = [\"https://a.example/cb\"]\n")), "duplicate client id"),
        (config_text("[[clients]]\nid = \"x\"\nsecret = \"short\"\nredirect_uris = [\"https://a.example/cb\"]\n"), "secret"),
        (config_text("[[clients]]\nid = \"x\"\nsecret = \"0123456789abcdef\"\nredirect_uris = [\"http://a.example/cb\"]\n"), "https"),
    ];
    for (config, expected) in cases {
        let env = TestEnv::with_config(&config);
        for args in [&["--check-config"][..], &[][..]] {
            let out = env.cli(args, "");
            assert_eq!(out.status.code(), Some(2), "{expected}");
            let stderr = text(&out.stderr);
            assert!(stderr.contains(expected), "{expected}: {stderr}");
            assert!(stderr.contains("linkgate.toml"), "{expected}: {stderr}");
        }
    }
    let missing = run_cli(std::path::Path::new("/nonexistent/linkgate.toml"), &[], "");
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("/nonexistent/linkgate.toml"));
}

#[test]
fn check_config_shows_what_would_be_served_with_warnings() {
    let env = TestConfig::new()
        .client(ALEXA_ID, "secret", "long-random-string")
        .env();
    let out = ok(&env.cli(&["--check-config"], ""));
    assert!(out.contains("listen      127.0.0.1:0"), "{out}");
    assert!(out.contains(ALEXA_REDIRECT), "{out}");
    assert!(out.contains("warning") && out.contains("example"), "{out}");
    assert!(out.contains("plain http"), "{out}");
}

/// Runs every admin command once with `server` in the given state.
fn admin_commands_work(running: bool) {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    let server = if running {
        Some(server)
    } else {
        server.stop();
        None
    };

    let list = ok(&env.cli(&["--list-users"], ""));
    assert!(
        list.contains(USER) && list.contains("1 linked client"),
        "{list}"
    );
    ok(&env.cli(&["--add-user", "bob"], "bob's password\n"));
    assert!(err(&env.cli(&["--add-user", "bob"], "bob's password\n")).contains("already exists"));
    let unlinked = ok(&env.cli(&["--unlink-user", USER], ""));
    assert!(unlinked.contains("revoked 1 grant(s)"), "{unlinked}");
    ok(&env.cli(&["--set-password", "bob"], "a new password\n"));
    assert!(err(&env.cli(&["--remove-user", "nobody"], "")).contains("no user"));
    ok(&env.cli(&["--remove-user", "bob"], ""));
    let list = ok(&env.cli(&["--list-users"], ""));
    assert!(
        list.contains(USER) && list.contains("0 linked clients") && !list.contains("bob"),
        "{list}"
    );

    let server = server.unwrap_or_else(|| env.start());
    assert_eq!(
        server.userinfo(&access).status,
        401,
        "unlinking revokes access tokens"
    );
    assert_eq!(refresh(&server, &refresh_token).error(), "invalid_grant");
}

#[test]
fn admin_commands_work_with_the_server_stopped() {
    admin_commands_work(false);
}

#[test]
fn admin_commands_work_while_the_server_runs() {
    admin_commands_work(true);
}

#[test]
fn the_admin_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let _server = env.start();
    let socket = env.data_dir().join("admin.sock");
    let mode = std::fs::metadata(&socket)
        .expect("admin socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(env.data_dir())
        .expect("data directory")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "the data directory is private");
}

#[test]
fn set_password_and_remove_user_revoke_tokens() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    let sub = server.userinfo(&access).json()["sub"].clone();
    ok(&env.cli(&["--set-password", USER], "a brand new password\n"));
    assert_eq!(server.userinfo(&access).status, 401);
    assert_eq!(refresh(&server, &refresh_token).error(), "invalid_grant");
    // The old password no longer works, the new one does; sub stays the same.
    let mut browser = Browser::new(&server);
    let login = browser.open(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]));
    let again = browser.submit(&login, &[("username", USER), ("password", PASSWORD)]);
    assert!(again.html.contains("Wrong username or password"));
    let consent = browser.submit(
        &again,
        &[("username", USER), ("password", "a brand new password")],
    );
    let redirect = browser.submit(&consent, &[("decision", "allow")]).response;
    let code = redirect.location_params()["code"].clone();
    let tokens = server
        .token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT))
        .json();
    assert_eq!(
        server
            .userinfo(&string_field(&tokens, "access_token"))
            .json()["sub"],
        sub
    );
    ok(&env.cli(&["--remove-user", USER], ""));
    assert_eq!(
        server
            .userinfo(&string_field(&tokens, "access_token"))
            .status,
        401
    );
}

/// Upgrading: data written before tokens and grants were stored in binary (JSON records) keeps
/// working, and is rewritten in the new encoding as it changes. The fixture is a real version-1
/// backup from the earlier release (tests/fixtures/README.md).
#[test]
fn a_backup_from_the_previous_record_format_restores_and_its_link_keeps_working() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/backup-v1.linkgate-backup"
    );
    let old_refresh = "lgrt_9Z3JeuJSTHy6ysVT0WBP6xrFWFA07uv6hOBz678-MxQ";
    let env = TestEnv::new();
    assert!(ok(&env.cli(&["--restore", fixture], "")).contains("restored 5 entries"));
    let server = env.start();
    let refreshed = refresh(&server, old_refresh);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let access = refreshed.json_str("access_token");
    let info = server.userinfo(&access).json();
    assert_eq!(info["sub"], "54FNwigYqEklJd9KqN8_kw");
    assert_eq!(info["preferred_username"], USER);
    // The old refresh token keeps working (no rotation for this client), and the password too.
    assert_eq!(refresh(&server, old_refresh).status, 200);
    let (new_access, _) = tokens_for(&server);
    assert_eq!(server.userinfo(&new_access).json()["sub"], info["sub"]);
    // A backup now is version 4, and restores too.
    let again = env.dir.path().join("v3.backup");
    ok(&env.cli(
        &["--backup", again.to_str().expect("a UTF-8 temp path")],
        "",
    ));
    let header = std::fs::read_to_string(&again).expect("read the backup");
    assert!(header.starts_with(r#"{"format":"linkgate-backup","version":4,"#));
    server.stop();
    let target = TestEnv::new();
    ok(&target.cli(
        &["--restore", again.to_str().expect("a UTF-8 temp path")],
        "",
    ));
    let restored = target.start();
    assert_eq!(restored.userinfo(&access).json()["sub"], info["sub"]);
    assert_eq!(refresh(&restored, old_refresh).status, 200);
}

/// Upgrading from the release that stored every token (backup version 2, tests/fixtures): its
/// stored access token and refresh token keep working, the link survives, and the tokens issued
/// now are self-verifying. A version-3 backup carries the server key: access tokens issued before
/// it still work after a restore.
#[test]
fn a_backup_of_stored_tokens_restores_and_its_tokens_keep_working() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/backup-v2.linkgate-backup"
    );
    let old_access = "lgat_lQVeGstmlWYzpVuV5DaUON5hEAvHvcChwG5HLGsl4-U";
    let old_refresh = "lgrt_NCQLFSypfLPFTDym9mqCvYNLLy7mnxR31NiXyCpVS30";
    let sub = "LhAg2iFNBSfYa9Sy01ALqg";
    let env = TestEnv::new();
    assert!(ok(&env.cli(&["--restore", fixture], "")).contains("restored 5 entries"));
    let server = env.start();
    // Stored by the earlier release, valid until 2027-11-25 (tests/fixtures/README.md).
    if linkgate::store::now() < 1_827_154_000 {
        let info = server.userinfo(old_access);
        assert_eq!(info.status, 200, "{}", info.text());
        assert_eq!(info.json()["sub"], sub);
    }
    let refreshed = refresh(&server, old_refresh);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let access = refreshed.json_str("access_token");
    assert!(access.len() > 60 && access.len() <= 2048, "{access}");
    assert_eq!(refreshed.json_str("refresh_token"), old_refresh);
    assert_eq!(server.userinfo(&access).json()["sub"], sub);
    // The password still signs in, and a new link gets self-verifying tokens.
    let (new_access, new_refresh) = tokens_for(&server);
    assert_eq!(server.userinfo(&new_access).json()["sub"], sub);
    assert_eq!(refresh(&server, &new_refresh).status, 200);
    let again = env.dir.path().join("v3.backup");
    ok(&env.cli(
        &["--backup", again.to_str().expect("a UTF-8 temp path")],
        "",
    ));
    server.stop();
    let target = TestEnv::new();
    ok(&target.cli(
        &["--restore", again.to_str().expect("a UTF-8 temp path")],
        "",
    ));
    let restored = target.start();
    assert_eq!(restored.userinfo(&access).json()["sub"], sub);
    assert_eq!(restored.userinfo(&new_access).json()["sub"], sub);
    assert_eq!(refresh(&restored, old_refresh).status, 200);
    assert_eq!(refresh(&restored, &new_refresh).status, 200);
}

#[test]
fn a_backup_restores_into_a_new_server_that_accepts_old_tokens_and_passwords() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    let sub = server.userinfo(&access).json()["sub"].clone();
    // From the running server, over the admin socket.
    let live = env.dir.path().join("live.backup");
    ok(&env.cli(&["--backup", live.to_str().expect("a UTF-8 temp path")], ""));
    server.stop();
    // And from the stopped one, directly.
    let offline = env.dir.path().join("offline.backup");
    ok(&env.cli(
        &["--backup", offline.to_str().expect("a UTF-8 temp path")],
        "",
    ));

    for backup in [&live, &offline] {
        let target = TestEnv::new();
        let out = target.cli(
            &["--restore", backup.to_str().expect("a UTF-8 temp path")],
            "",
        );
        assert!(ok(&out).contains("restored"));
        // Restoring twice is refused: only into an empty data directory.
        assert!(err(&target.cli(
            &["--restore", backup.to_str().expect("a UTF-8 temp path")],
            ""
        ))
        .contains("not empty"));
        let restored = target.start();
        assert_eq!(restored.userinfo(&access).json()["sub"], sub);
        let refreshed = refresh(&restored, &refresh_token);
        assert_eq!(refreshed.status, 200, "{}", refreshed.text());
        assert_eq!(refreshed.json()["expires_in"], 3600);
        tokens_for(&restored); // the password still works
    }

    let damaged = env.dir.path().join("damaged.backup");
    let mut bytes = std::fs::read(&offline).expect("read the backup");
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&damaged, bytes).expect("write the damaged backup");
    assert!(!TestEnv::new()
        .cli(
            &["--restore", damaged.to_str().expect("a UTF-8 temp path")],
            ""
        )
        .status
        .success());
}

/// `--new-client NAME --preset P`: the printed block, pasted into the config, is accepted, and
/// the printed secret (shown once) is the client's.
#[test]
fn a_new_client_block_pasted_into_the_config_works_with_the_printed_secret() {
    let env = TestEnv::new();
    for preset in ["alexa", "google"] {
        let out = env.cli(
            &["--new-client", &format!("new-{preset}"), "--preset", preset],
            "",
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("secret_hash = \"$argon2id$") && text.contains("/token"),
            "{text}"
        );
    }
    let out = env.cli(&["--new-client", "plus", "--preset", "alexa-plus"], "");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let start = text.find("\n[[clients]]\n").expect("a block") + 1;
    let block: String = text[start..]
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace(
            "REDIRECT-URL-FROM-THE-ALEXA-PLUS-CONSOLE",
            "alexa.example/cb",
        );
    let secret = text
        .lines()
        .find(|l| l.trim_start().starts_with("Client secret"))
        .and_then(|l| l.split_whitespace().last())
        .expect("the secret")
        .to_string();
    assert!(!block.contains(&secret), "the block holds the hash only");
    let config = std::fs::read_to_string(&env.config).unwrap() + "\n" + &block;
    std::fs::write(&env.config, config).unwrap();
    let checked = env.cli(&["--check-config"], "");
    assert!(checked.status.success(), "{checked:?}");
    let server = env.start();
    let token = server.token_basic("plus", &secret, &[("grant_type", "client_credentials")]);
    assert_eq!(token.status, 200, "{}", token.text());
    // A name the config already has is refused; so is an unknown preset.
    assert!(!env.cli(&["--new-client", "plus"], "").status.success());
    let unknown = env.cli(&["--new-client", "x", "--preset", "siri"], "");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not a preset"));
}
