//! Account linking in a real browser. `tests/browser/linking.mjs` drives headless Chromium
//! (Debian's `/usr/bin/chromium`, through playwright-core) through the pages the way the Alexa
//! app's web view does: a phone-sized window opens `/authorize` with a long state, the customer
//! types and taps, and the final redirect to Amazon is caught before it leaves the machine.
//! Each test here starts linkgate, runs one part of that script, asserts on what the browser saw,
//! and redeems the code the browser got at `/token` and `/userinfo`, as Alexa would.
//!
//! Needs Node.js and Chromium (`tools/test.sh` installs Chromium); a missing tool fails, never skips.
//! Regenerate the README's screenshots with
//! `LINKGATE_SCREENSHOTS=docs/screenshots cargo test --test browser screenshots`.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// The whole script; it gives up by itself after 240 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
const NPM_TIMEOUT: Duration = Duration::from_secs(300);

/// One Chromium at a time: CI machines have two cores, and the tests run in parallel threads.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("LINKGATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium is not installed at {} — the browser tests need it: \
         `tools/test.sh` installs it (Debian: `apt-get install -y chromium chromium-driver`), \
         or set LINKGATE_CHROMIUM to another Chromium",
        path.display()
    );
    path
}

/// Node.js must be there; playwright-core and axe-core are installed with `npm ci` when missing.
fn ensure_node_packages() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        matches!(&node, Ok(out) if out.status.success()),
        "Node.js (`node`) is not installed — the browser tests need Node 20 or newer: {node:?}"
    );
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
        "`npm ci` in {} failed:\n{}{}",
        dir.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Runs linking.mjs against `server` with `args`; returns the JSON it printed.
fn run_script(server: &Server, args: &[&str]) -> Value {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let chromium = chromium();
    ensure_node_packages();
    let base = format!("http://{}", server.addr);
    let mut node = Command::new("node");
    node.current_dir(script_dir())
        .arg("linking.mjs")
        .args([
            "--base",
            &base,
            "--client",
            ALEXA_ID,
            "--redirect",
            ALEXA_REDIRECT,
        ])
        .args(["--user", USER, "--password", PASSWORD])
        .arg("--chromium")
        .arg(&chromium)
        .args(args);
    let out = run_bounded(&mut node, SCRIPT_TIMEOUT, "node tests/browser/linking.mjs");
    assert!(
        out.status.success(),
        "linking.mjs failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "linking.mjs printed no JSON ({e}):\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// What the browser saw on one path, and the server it saw it on (stopped before its folder goes).
struct Observed {
    result: Value,
    server: Server,
    _env: TestEnv,
}

/// Runs one check of the script against its own server with the test user.
fn observe(check: &str) -> Observed {
    let env = TestEnv::with_user();
    let server = env.start();
    let json = run_script(&server, &["--checks", check]);
    let result = json["checks"][check].clone();
    if let Some(failure) = result["failed"].as_str() {
        panic!("the browser could not finish the {check:?} path:\n{failure}");
    }
    Observed {
        result,
        server,
        _env: env,
    }
}

/// The browser behaved as a web view must: no alert boxes, no pop-ups, nothing loaded from
/// anywhere but linkgate.
fn assert_no_surprises(result: &Value) {
    assert_eq!(
        result["dialogs"],
        serde_json::json!([]),
        "JavaScript dialogs"
    );
    assert_eq!(result["popups"], 0, "pop-up windows");
    assert_eq!(
        result["foreign_requests"],
        serde_json::json!([]),
        "requests to other hosts"
    );
}

/// The redirect back to Alexa carried a code and the state exactly as sent (over 4 KiB).
fn assert_code_redirect(redirect: &Value) -> String {
    assert_eq!(
        redirect["redirects"], 1,
        "one redirect to Alexa: {redirect:#}"
    );
    assert_eq!(redirect["redirect_target"], ALEXA_REDIRECT, "{redirect:#}");
    assert_eq!(redirect["error"], Value::Null, "{redirect:#}");
    assert_eq!(
        redirect["state_identical"], true,
        "state changed: {redirect:#}"
    );
    assert!(
        redirect["state_bytes_sent"].as_u64().unwrap_or(0) >= 4096,
        "{redirect:#}"
    );
    string_field(redirect, "code")
}

/// The code is real: Alexa's exchange (HTTP Basic) gives tokens, and /userinfo knows the user.
fn assert_code_is_real(server: &Server, code: &str) {
    let response = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(code, ALEXA_REDIRECT));
    assert_eq!(response.status, 200, "/token: {}", response.text());
    let access_token = response.json_str("access_token");
    assert!(response.json_str("refresh_token").starts_with("lgrt_"));
    let userinfo = server.userinfo(&access_token);
    assert_eq!(userinfo.status, 200, "/userinfo: {}", userinfo.text());
    assert_eq!(userinfo.json_str("preferred_username"), USER);
}

#[test]
fn a_phone_links_an_account_and_alexa_redeems_the_code() {
    let seen = observe("success");
    let (result, server) = (&seen.result, &seen.server);
    assert_eq!(result["login"]["status"], 200, "{result:#}");
    let consent = &result["consent"];
    assert_eq!(consent["status"], 200, "{result:#}");
    assert_eq!(consent["on_linkgate"], true, "{result:#}");
    assert_eq!(consent["has_allow"], true, "{result:#}");
    assert_eq!(consent["has_deny"], true, "{result:#}");
    let code = assert_code_redirect(result);
    assert_no_surprises(result);
    assert_code_is_real(server, &code);
}

#[test]
fn a_wrong_password_is_shown_inline_and_the_retry_links() {
    let seen = observe("wrong_password");
    let (result, server) = (&seen.result, &seen.server);
    assert_eq!(result["status"], 401, "{result:#}");
    assert_eq!(result["on_linkgate"], true, "left linkgate: {result:#}");
    assert_eq!(result["redirects_after_wrong"], 0, "{result:#}");
    assert_eq!(result["alert_visible"], true, "no inline error: {result:#}");
    assert!(
        result["alert_text_length"].as_u64().unwrap_or(0) > 0,
        "{result:#}"
    );
    assert_eq!(result["username_kept"], USER, "{result:#}");
    assert_eq!(result["password_cleared"], true, "{result:#}");
    assert_eq!(result["username_describedby_alert"], true, "{result:#}");
    assert_no_surprises(result);

    assert_eq!(result["retry_status"], 200, "{result:#}");
    let code = assert_code_redirect(&result["retry"]);
    assert_code_is_real(server, &code);
}

#[test]
fn deny_sends_access_denied_and_the_state_back() {
    let seen = observe("reject");
    let result = &seen.result;
    assert_eq!(result["redirects"], 1, "{result:#}");
    assert_eq!(result["redirect_target"], ALEXA_REDIRECT, "{result:#}");
    assert_eq!(result["error"], "access_denied", "{result:#}");
    assert_eq!(result["code"], Value::Null, "a code after Deny: {result:#}");
    assert_eq!(result["state_identical"], true, "{result:#}");
    assert_no_surprises(result);
}

#[test]
fn the_keyboard_alone_links_an_account() {
    let seen = observe("keyboard");
    let (result, server) = (&seen.result, &seen.server);
    for step in ["tabs_to_username", "tabs_to_password", "tabs_to_allow"] {
        assert!(
            result[step].is_u64(),
            "Tab never reached {step}: {result:#}"
        );
    }
    for focused in ["username_outline", "allow_outline"] {
        let outline = &result[focused];
        assert!(
            outline["style"] != "none" && outline["width"] != "0px",
            "keyboard focus is invisible ({focused}): {result:#}"
        );
    }
    assert_eq!(result["sign_in_status"], 200, "{result:#}");
    let code = assert_code_redirect(result);
    assert_no_surprises(result);
    assert_code_is_real(server, &code);
}

#[test]
fn pages_need_no_horizontal_scrolling_at_320_px_or_200_percent_zoom() {
    let seen = observe("reflow");
    let result = &seen.result;
    let pages = result.as_object().expect("reflow results");
    assert_eq!(pages.len(), 8, "{result:#}");
    let mut problems = Vec::new();
    for (page, seen) in pages {
        let scroll = seen["scroll_width"].as_u64().unwrap_or(u64::MAX);
        let client = seen["client_width"].as_u64().unwrap_or(0);
        if scroll > client || seen["sticking_out"] != serde_json::json!([]) {
            problems.push(format!("{page}: {seen}"));
        }
    }
    assert!(
        problems.is_empty(),
        "horizontal overflow:\n{}",
        problems.join("\n")
    );
}

#[test]
fn axe_finds_no_wcag_a_or_aa_violations() {
    let seen = observe("axe");
    let result = &seen.result;
    let pages = result.as_object().expect("axe results");
    assert_eq!(pages.len(), 4, "{result:#}");
    let mut report = Vec::new();
    for (page, run) in pages {
        assert!(
            run["passes"].as_u64().unwrap_or(0) > 0,
            "axe ran no rules on {page}"
        );
        for violation in run["violations"].as_array().into_iter().flatten() {
            report.push(format!(
                "{page}: {} ({}) — {}",
                violation["id"].as_str().unwrap_or("?"),
                violation["impact"].as_str().unwrap_or("?"),
                violation["help"].as_str().unwrap_or("?"),
            ));
            for node in violation["nodes"].as_array().into_iter().flatten() {
                report.push(format!(
                    "    {}  {}",
                    node["target"].as_str().unwrap_or("?"),
                    node["html"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    assert!(
        report.is_empty(),
        "axe-core found accessibility violations:\n{}",
        report.join("\n")
    );
}

/// Passes once the pages are translated: a German phone must get `<html lang="de">`.
#[test]
fn a_german_phone_gets_german_pages_lang_de() {
    let seen = observe("locale_de");
    let (result, server) = (&seen.result, &seen.server);
    let code = assert_code_redirect(result);
    assert_code_is_real(server, &code);
    assert_eq!(
        result["login"]["lang"], "de",
        "login page for Accept-Language: de-DE: {result:#}"
    );
    assert_eq!(
        result["consent"]["lang"], "de",
        "consent page for Accept-Language: de-DE: {result:#}"
    );
}

/// Takes the README's screenshots; into a temporary folder unless LINKGATE_SCREENSHOTS names one.
#[test]
fn screenshots_of_every_page_at_phone_and_desktop_sizes() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = match std::env::var_os("LINKGATE_SCREENSHOTS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        None => temp.path().to_path_buf(),
    };
    let env = TestEnv::with_user();
    let server = env.start();
    let dir_arg = dir.to_string_lossy().into_owned();
    let json = run_script(&server, &["--screenshots", &dir_arg]);
    assert_eq!(
        json["screenshots"].as_array().map(Vec::len),
        Some(8),
        "{json:#}"
    );
    for page in ["login", "consent", "wrong-password", "error"] {
        // The phone is 390 CSS px at device scale 2; the desktop 1280 at scale 1.
        for (size, width) in [("phone", 780), ("desktop", 1280)] {
            let file = dir.join(format!("{page}-{size}.png"));
            let png = std::fs::read(&file)
                .unwrap_or_else(|e| panic!("no screenshot {}: {e}", file.display()));
            assert!(
                png.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{} is no PNG",
                file.display()
            );
            let ihdr_width = png
                .get(16..20)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            assert_eq!(ihdr_width, Some(width), "{}", file.display());
        }
    }
}
