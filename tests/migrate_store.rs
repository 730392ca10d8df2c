//! Issue 14: moving a deployment between sled and PostgreSQL. `--migrate-store` copies a store
//! with everything in it (users, a link whose refresh token rotated, a second link with an access
//! token revoked on its own, a two-factor user, an `/account` session) from sled to PostgreSQL and
//! back, verified; after each hop a server on the new store honours every token and refuses the
//! revoked one. A non-empty target is refused and left as it was; a running sled server's store
//! is refused as a source with what to do. A backup restores into either backend with the tokens
//! still valid. The database's password never appears in what linkgate prints or logs.

mod common;
use common::account::Visitor;
use common::postgres::PgCluster;
use common::*;
use linkgate::accounts::totp::{base32_decode, code_at_step, step_at};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

/// In every PostgreSQL URL of these tests; the throwaway cluster trusts without checking it.
const DB_PASSWORD: &str = "pw-Zq8-never-printed";
const BOB: &str = "bob";
const BOB_PASSWORD: &str = "bob's long passphrase";

/// A test config on sled (named, so that `LINKGATE_TEST_POSTGRES` leaves it on sled) whose Alexa
/// client rotates refresh tokens.
fn sled_env() -> TestEnv {
    TestConfig::new()
        .set("storage.backend", "sled")
        .client(ALEXA_ID, "rotate_refresh_tokens", true)
        .env()
}

/// The same on PostgreSQL database `database` of `cluster`, with the password in the URL.
fn postgres_env(cluster: &PgCluster, database: &str) -> TestEnv {
    TestConfig::new()
        .set("storage.backend", "postgres")
        .set("storage.url", postgres_url(cluster, database))
        .client(ALEXA_ID, "rotate_refresh_tokens", true)
        .env()
}

fn postgres_url(cluster: &PgCluster, database: &str) -> String {
    format!(
        "postgres://postgres:{DB_PASSWORD}@127.0.0.1:{}/{database}",
        cluster.port()
    )
}

fn new_database(cluster: &PgCluster, name: &str) {
    cluster.psql(&format!("CREATE DATABASE {name}"));
}

/// stdout and stderr of a CLI run, which must not hold the database password.
fn printed(out: &Output) -> String {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !all.contains(DB_PASSWORD),
        "the database password was printed:\n{all}"
    );
    all
}

fn migrate(from: &TestEnv, to: &TestEnv) -> Output {
    let target = to.config.to_str().expect("UTF-8 path");
    let out = from.cli(&["--migrate-store", "--to-config", target], "");
    printed(&out);
    out
}

/// The summary's `tree entries sha256` lines as tree → entries.
fn counts(summary: &str) -> BTreeMap<String, u64> {
    summary
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (tree, entries, digest) = (parts.next()?, parts.next()?, parts.next()?);
            let hex = digest.len() == 16 && digest.bytes().all(|b| b.is_ascii_hexdigit());
            Some((tree.to_string(), entries.parse().ok().filter(|_| hex)?))
        })
        .collect()
}

/// A migration that must succeed: its summary's counts, each tree listed, "verified".
fn migrated(from: &TestEnv, to: &TestEnv) -> BTreeMap<String, u64> {
    let out = migrate(from, to);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(stdout.contains("verified:"), "{stdout}");
    let counts = counts(&stdout);
    for tree in linkgate::store::TREES {
        assert!(counts.contains_key(tree), "tree {tree} missing: {stdout}");
    }
    counts
}

/// Turns two-factor sign-in on for `name` at `/account`; returns the recovery codes.
fn enrol_totp(server: &Server, name: &str, password: &str) -> Vec<String> {
    let mut visitor = Visitor::new(server);
    let page = visitor.sign_in(name, password);
    assert_eq!(page.status, 200);
    let enrol = visitor.submit(&page.text(), "/totp-start", &[]).text();
    let start = enrol.find("id=\"totp-key\">").expect("the key as text") + 14;
    let shown = &enrol[start..start + enrol[start..].find('<').expect("end of key")];
    let key = base32_decode(&shown.replace(' ', "")).expect("a base32 key");
    let now = linkgate::store::now();
    let done = visitor.submit(
        &enrol,
        "/totp-on",
        &[("code", &code_at_step(&key, step_at(now)))],
    );
    assert_eq!(done.status, 200);
    let done = done.text();
    let codes: Vec<String> = done
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest[..rest.find('<').expect("end of code")].to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{done}");
    codes
}

/// What the store's customers hold, checked on every store it moves to.
struct Holdings {
    /// Alice's Alexa tokens; the refresh token is the successor of a rotation, not yet used.
    access: String,
    refresh: String,
    /// Her Google access token, revoked on its own at /revoke (the deny list).
    revoked: String,
    /// Her Google refresh token, alive.
    google_refresh: String,
    /// Bob's recovery codes: each hop spends one.
    recovery: Vec<String>,
    /// Alice's `/account` session cookies.
    session: BTreeMap<String, String>,
}

/// Builds the holdings on a running server.
fn hold(server: &Server) -> Holdings {
    let (_, first_refresh) = tokens_for(server);
    let rotated = refresh(server, &first_refresh);
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let (access, refresh_token) = (
        rotated.json_str("access_token"),
        rotated.json_str("refresh_token"),
    );
    assert_ne!(refresh_token, first_refresh, "the refresh token rotated");
    let code = code_for(server, GOOGLE_ID, GOOGLE_REDIRECT);
    let google = server.token_post(
        GOOGLE_ID,
        GOOGLE_SECRET,
        &code_fields(&code, GOOGLE_REDIRECT),
    );
    assert_eq!(google.status, 200, "{}", google.text());
    let revoked = google.json_str("access_token");
    let out = server.post_form(
        "/revoke",
        &[("Authorization", &basic(GOOGLE_ID, GOOGLE_SECRET))],
        &[("token", &revoked)],
    );
    assert_eq!(out.status, 200);
    assert_eq!(server.userinfo(&revoked).status, 401);
    let recovery = enrol_totp(server, BOB, BOB_PASSWORD);
    let mut visitor = Visitor::new(server);
    assert_eq!(visitor.sign_in(USER, PASSWORD).status, 200);
    Holdings {
        access,
        refresh: refresh_token,
        revoked,
        google_refresh: google.json_str("refresh_token"),
        recovery,
        session: visitor.cookies,
    }
}

/// Everything held still works on `server` (the store's `hop`-th home), and the revoked token
/// still does not; the refresh token rotates once more.
fn still_holds(server: &Server, held: &mut Holdings, hop: usize) {
    let info = server.userinfo(&held.access);
    assert_eq!(info.status, 200, "hop {hop}: access token: {}", info.text());
    assert_eq!(info.json()["preferred_username"], USER);
    assert_eq!(server.userinfo(&held.revoked).status, 401, "hop {hop}");
    let refreshed = refresh(server, &held.refresh);
    assert_eq!(refreshed.status, 200, "hop {hop}: {}", refreshed.text());
    held.access = refreshed.json_str("access_token");
    held.refresh = refreshed.json_str("refresh_token");
    assert_eq!(server.userinfo(&held.access).status, 200, "hop {hop}");
    let google = server.token_post(
        GOOGLE_ID,
        GOOGLE_SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &held.google_refresh),
        ],
    );
    assert_eq!(google.status, 200, "hop {hop}: {}", google.text());

    // Bob still needs his second factor; the recovery code spent on the last store stays spent.
    let mut bob = Visitor::new(server);
    assert_eq!(bob.sign_in(BOB, BOB_PASSWORD).status, 401, "hop {hop}");
    let with = |code: &str| {
        Visitor::new(server)
            .sign_in_with(&[
                ("username", BOB),
                ("password", BOB_PASSWORD),
                ("code", code),
            ])
            .status
    };
    if hop > 0 {
        assert_eq!(with(&held.recovery[hop - 1]), 401, "hop {hop}: spent code");
    }
    assert_eq!(with(&held.recovery[hop]), 200, "hop {hop}: fresh code");

    // Alice's /account session goes on.
    let mut alice = Visitor::new(server);
    alice.cookies = held.session.clone();
    let page = alice.get("/account");
    assert_eq!(page.status, 200, "hop {hop}");
    assert!(
        page.text().contains("Two-factor sign-in is off."),
        "hop {hop}: signed in: {}",
        page.text()
    );
}

fn list_users(env: &TestEnv) -> String {
    let out = env.cli(&["--list-users"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    printed(&out);
    text(&out.stdout)
}

#[test]
fn a_store_moves_from_sled_to_postgres_and_back_and_every_token_keeps_working() {
    let cluster = PgCluster::start();
    let sled_a = sled_env();
    sled_a.add_user(USER, PASSWORD);
    sled_a.add_user(BOB, BOB_PASSWORD);
    let server = sled_a.start();
    let mut held = hold(&server);
    still_holds(&server, &mut held, 0);
    // sled allows one process: the running server's store is refused as a source, clearly.
    let pg_b = postgres_env(&cluster, "linkgate");
    let out = migrate(&sled_a, &pg_b);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("in use by a running linkgate") && said.contains("stop that server"),
        "{said}"
    );
    server.stop();
    let users = list_users(&sled_a);

    // Hop 1: sled → PostgreSQL.
    let counts = migrated(&sled_a, &pg_b);
    assert_eq!(counts["users"], 2);
    assert_eq!(counts["keys"], 1);
    assert_eq!(counts["denied"], 1);
    assert!(counts["grants"] >= 2, "{counts:?}");
    assert!(counts["sessions"] >= 1, "{counts:?}");
    assert!(counts["events"] >= 1, "{counts:?}");
    assert!(
        counts["forms"] >= 1,
        "spent authorization forms: {counts:?}"
    );
    // The summary's counts are what the database holds, read by psql.
    for (tree, entries) in &counts {
        let sql = format!("SELECT count(*) FROM linkgate.{tree}");
        assert_eq!(cluster.psql(&sql), entries.to_string(), "{tree}");
    }
    assert_eq!(list_users(&pg_b), users);

    // A second copy into the now full database is refused, and changes nothing there.
    let again = migrate(&sled_a, &pg_b);
    assert!(!again.status.success());
    let said = text(&again.stderr);
    assert!(
        said.contains("not empty") && said.contains("wrote nothing"),
        "{said}"
    );
    assert_eq!(cluster.psql("SELECT count(*) FROM linkgate.users"), "2");

    // On PostgreSQL, everything still works; the source may keep running while it is copied.
    let server = pg_b.start();
    still_holds(&server, &mut held, 1);
    let sled_c = sled_env();
    let counts_c = migrated(&pg_b, &sled_c);
    assert_eq!(counts_c["users"], 2);
    assert_eq!(counts_c["denied"], 1);
    server.stop();

    // Hop 2: PostgreSQL → sled.
    assert_eq!(list_users(&sled_c), users);
    let server = sled_c.start();
    still_holds(&server, &mut held, 2);
    // A full sled directory is refused as a target too.
    let out = migrate(&pg_b, &sled_a);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
    server.stop();
}

#[test]
fn help_shows_the_command_and_a_missing_target_is_explained() {
    let help = std::process::Command::new(binary())
        .arg("--help")
        .output()
        .expect("run linkgate --help");
    assert!(help.status.success());
    assert!(
        text(&help.stdout).contains("--migrate-store --to-config OTHER"),
        "{}",
        text(&help.stdout)
    );
    let env = sled_env();
    let out = env.cli(&["--migrate-store"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--to-config PATH"),
        "{}",
        text(&out.stderr)
    );
    let out = env.cli(&["--migrate-store", "--to-config", "missing.toml"], "");
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(
        said.contains("--to-config") && said.contains("missing.toml"),
        "{said}"
    );
    let itself = env.config.to_str().unwrap();
    let out = env.cli(&["--migrate-store", "--to-config", itself], "");
    assert!(
        text(&out.stderr).contains("the same store"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_backup_restores_into_either_backend_with_every_token_valid() {
    let cluster = PgCluster::start();
    let sled_a = sled_env();
    sled_a.add_user(USER, PASSWORD);
    let server = sled_a.start();
    let (access, refresh_token) = tokens_for(&server);
    let file = sled_a.dir.path().join("a.backup");
    let out = sled_a.cli(&["--backup", file.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    server.stop();

    // sled → PostgreSQL.
    new_database(&cluster, "restored_b");
    let pg_b = postgres_env(&cluster, "restored_b");
    let restored = restore(&pg_b, &file);
    assert!(
        restored.contains("into PostgreSQL at 127.0.0.1"),
        "{restored}"
    );
    let server = pg_b.start();
    assert_eq!(server.userinfo(&access).status, 200);
    let refreshed = refresh(&server, &refresh_token);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let (access, refresh_token) = (
        refreshed.json_str("access_token"),
        refreshed.json_str("refresh_token"),
    );
    // A restore into the full database is refused.
    let out = pg_b.cli(&["--restore", file.to_str().unwrap()], "");
    assert!(!out.status.success());
    assert!(printed(&out).contains("not empty"), "{}", printed(&out));

    // PostgreSQL → sled, backed up while the node runs.
    let file_b = pg_b.dir.path().join("b.backup");
    let out = pg_b.cli(&["--backup", file_b.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", printed(&out));
    server.stop();
    let sled_c = sled_env();
    restore(&sled_c, &file_b);
    let server = sled_c.start();
    assert_eq!(server.userinfo(&access).status, 200);
    let refreshed = refresh(&server, &refresh_token);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert_eq!(
        server.userinfo(&refreshed.json_str("access_token")).status,
        200
    );
    server.stop();
}

/// `--restore FILE` that must succeed; what it printed.
fn restore(env: &TestEnv, file: &Path) -> String {
    let out = env.cli(&["--restore", file.to_str().unwrap()], "");
    let said = printed(&out);
    assert!(out.status.success(), "{said}");
    said
}

#[test]
fn the_database_password_is_never_printed_or_logged() {
    let cluster = PgCluster::start();
    let env = postgres_env(&cluster, "linkgate");
    let where_ = format!(
        "PostgreSQL at 127.0.0.1:{}, database linkgate, user postgres",
        cluster.port()
    );

    let out = env.cli(&["--check-config"], "");
    let said = printed(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("storage     {where_}")), "{said}");
    assert!(
        said.contains("  TLS       only if the server offers it"),
        "{said}"
    );
    assert!(
        said.contains("  pool      16 connections per node"),
        "{said}"
    );

    // The doctor: a database without linkgate's tables yet, then one at the current schema.
    let doctor = |env: &TestEnv| -> String {
        let out = env.cli(&["--doctor"], "");
        let said = printed(&out);
        said.lines()
            .find(|l| l.contains(" storage "))
            .unwrap_or_else(|| panic!("no storage line: {said}"))
            .to_string()
    };
    let line = doctor(&env);
    assert!(
        line.starts_with("warn") && line.contains("no linkgate tables yet"),
        "{line}"
    );
    env.add_user(USER, PASSWORD);
    let line = doctor(&env);
    let current = format!(
        "schema version {} (current)",
        linkgate::store::postgres::NEWEST_SCHEMA
    );
    assert!(line.starts_with("ok") && line.contains(&current), "{line}");
    assert!(line.contains(&where_), "{line}");

    // The server's log through start, a link, a refresh and a stop.
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    assert_eq!(server.userinfo(&access).status, 200);
    assert_eq!(refresh(&server, &refresh_token).status, 200);
    let log = server.stop();
    assert!(log.contains("listening on"), "{log}");
    assert!(!log.contains(DB_PASSWORD), "in the log:\n{log}");

    // A schema newer than this linkgate: the doctor fails, and so does a start, clearly.
    cluster.psql("INSERT INTO linkgate.schema_version (version) VALUES (999)");
    let line = doctor(&env);
    assert!(
        line.starts_with("FAIL") && line.contains("version 999, newer"),
        "{line}"
    );
    let out = env.cli(&[], "");
    assert!(!out.status.success());
    assert!(
        printed(&out).contains("newer than this linkgate"),
        "{}",
        printed(&out)
    );
    cluster.psql("DELETE FROM linkgate.schema_version WHERE version = 999");

    // A database that does not answer: a failed start and the doctor's FAIL, no password.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = TestConfig::new()
        .set("storage.backend", "postgres")
        .set(
            "storage.url",
            format!("postgres://postgres:{DB_PASSWORD}@127.0.0.1:{closed}/linkgate"),
        )
        .env();
    let out = down.cli(&[], "");
    assert!(!out.status.success());
    assert!(
        printed(&out).contains("Connection refused"),
        "{}",
        printed(&out)
    );
    let line = doctor(&down);
    assert!(
        line.starts_with("FAIL") && line.contains("Connection refused"),
        "{line}"
    );
    let out = down.cli(&["--list-users"], "");
    assert!(!out.status.success());
    printed(&out);
}
