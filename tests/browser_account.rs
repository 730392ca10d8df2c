//! The account pages of issue 15 in a real browser: `tests/browser/account.mjs` drives headless
//! Chromium (phone size, keyboard only) through a one-time password link and `/account` (sign
//! in, see the linked app, unlink it), runs axe-core on every page, and measures reflow at
//! 320 px. This file starts linkgate, runs the script, and checks what it saw against the server
//! (the unlinked app's tokens are dead, the new password signs in).
//!
//! Needs Node.js and Chromium like `tests/browser.rs`; a missing tool fails, never skips.
//! Regenerate the README's screenshots of these pages with
//! `LINKGATE_SCREENSHOTS=docs/screenshots cargo test --test browser_account`.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
const NPM_TIMEOUT: Duration = Duration::from_secs(300);
const NEW_PASSWORD: &str = "bob chose this himself";

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("LINKGATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium is not installed at {} — `tools/test.sh` installs it, or set LINKGATE_CHROMIUM",
        path.display()
    );
    path
}

fn ensure_node_packages() {
    let dir = script_dir();
    if dir.join("node_modules/playwright-core").exists()
        && dir.join("node_modules/axe-core").exists()
    {
        return;
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir);
    let out = run_bounded(&mut npm, NPM_TIMEOUT, "npm ci in tests/browser");
    assert!(
        out.status.success(),
        "`npm ci` failed: {}",
        text(&out.stderr)
    );
}

/// The path of the link `--invite NAME` printed.
fn invite(env: &TestEnv, name: &str) -> String {
    let out = env.cli(&["--invite", name], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("http://127.0.0.1")
                .map(str::to_string)
        })
        .expect("a link")
}

fn axe_report(result: &Value) -> Vec<String> {
    let mut report = Vec::new();
    for (page, run) in result["axe"].as_object().expect("axe results") {
        assert!(
            run["passes"].as_u64().unwrap_or(0) > 0,
            "axe ran no rules on {page}"
        );
        for v in run["violations"].as_array().into_iter().flatten() {
            report.push(format!("{page}: {} — {}", v["id"], v["help"]));
            for node in v["nodes"].as_array().into_iter().flatten() {
                report.push(format!("    {}  {}", node["target"], node["html"]));
            }
        }
    }
    report
}

#[test]
fn a_phone_sets_its_password_and_unlinks_an_app_with_the_keyboard_alone() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    let (link, spare) = (invite(&env, "bob"), invite(&env, "carol"));
    let temp = tempfile::tempdir().expect("temp dir");
    let shots = match std::env::var_os("LINKGATE_SCREENSHOTS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        None => temp.path().to_path_buf(),
    };
    let chromium = chromium();
    ensure_node_packages();
    let mut node = Command::new("node");
    node.current_dir(script_dir())
        .arg("account.mjs")
        .args(["--base", &format!("http://{}", server.addr)])
        .args(["--link", &link, "--spare-link", &spare])
        .args(["--new-password", NEW_PASSWORD])
        .args(["--user", USER, "--password", PASSWORD])
        .arg("--chromium")
        .arg(&chromium)
        .arg("--screenshots")
        .arg(&shots);
    let out = run_bounded(&mut node, SCRIPT_TIMEOUT, "node tests/browser/account.mjs");
    assert!(
        out.status.success(),
        "account.mjs failed:\n{}",
        text(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("JSON from account.mjs");

    // The link, by keyboard: the password is set and the person can sign in with it.
    assert_eq!(result["link_status"], 200, "{result:#}");
    for step in [
        "tabs_to_new_password",
        "tabs_to_repeat",
        "tabs_to_username",
        "tabs_to_password",
        "tabs_to_unlink",
        "tabs_to_end_links",
        "tabs_to_totp_start",
        "tabs_to_totp_code",
    ] {
        assert!(
            result[step].is_u64(),
            "Tab never reached {step}: {result:#}"
        );
    }
    for focused in [
        "new_password_outline",
        "unlink_outline",
        "end_links_outline",
        "totp_code_outline",
    ] {
        let outline = &result[focused];
        assert!(
            outline["style"] != "none" && outline["width"] != "0px",
            "keyboard focus is invisible ({focused}): {result:#}"
        );
    }
    assert_eq!(result["password_saved"], true, "{result:#}");
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    let consent = browser.login(&login, "bob", NEW_PASSWORD);
    assert_eq!(consent.status, 200, "bob cannot sign in: {}", consent.html);

    // /account, by keyboard: signed in, one linked app, unlinked, its tokens dead.
    assert_eq!(result["signed_in"], true, "{result:#}");
    assert_eq!(result["linked_before"], 1, "{result:#}");
    assert!(
        result["activity_entries"].as_u64().unwrap_or(0) >= 2,
        "{result:#}"
    );
    assert_eq!(
        result["after_unlink_url"], "/account?done=unlinked",
        "{result:#}"
    );
    assert_eq!(result["linked_after"], 0, "{result:#}");
    assert_eq!(result["unlinked_notice"], true, "{result:#}");
    assert_eq!(server.userinfo(&access).status, 401);
    assert_eq!(refresh(&server, &refresh_token).error(), "invalid_grant");

    // No alerts, nothing from elsewhere, no accessibility violations, no sideways scrolling.
    for key in [
        "link_dialogs",
        "link_foreign",
        "account_dialogs",
        "account_foreign",
    ] {
        assert_eq!(result[key], serde_json::json!([]), "{key}: {result:#}");
    }
    let report = axe_report(&result);
    assert!(
        report.is_empty(),
        "axe-core found violations:\n{}",
        report.join("\n")
    );
    assert_eq!(
        result["axe"].as_object().map(|o| o.len()),
        Some(6),
        "{result:#}"
    );
    // The two-factor enrolment page shows its QR code (inline SVG).
    assert_eq!(result["totp_qr"], 1, "{result:#}");
    for (page, seen) in result["reflow"].as_object().expect("reflow") {
        let scroll = seen["scroll_width"].as_u64().unwrap_or(u64::MAX);
        let client = seen["client_width"].as_u64().unwrap_or(0);
        assert!(
            scroll <= client && seen["sticking_out"] == serde_json::json!([]),
            "{page} scrolls sideways at 320 px: {seen}"
        );
    }
    assert_eq!(result["reflow"].as_object().map(|o| o.len()), Some(5));
    // The screenshots are PNGs, 390 CSS px wide at scale 2.
    for name in ["set-password", "account-sign-in", "account", "account-totp"] {
        let file = shots.join(format!("{name}-phone.png"));
        let png = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(&png[16..20], &780u32.to_be_bytes(), "{}", file.display());
    }
}
