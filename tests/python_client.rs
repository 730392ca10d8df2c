//! linkgate driven by a Python OAuth client nobody here wrote: authlib's `OAuth2Session` (requests
//! integration) runs tests/python/authlib_flow.py against the real binary — authorization URL
//! with state and PKCE, code exchange with `client_secret_basic` (as Alexa) and
//! `client_secret_post` (as Google), refresh, `/userinfo`.
//!
//! The venv (tests/common/python.rs) is made once per version of tests/python/requirements.txt
//! and reused while the file is unchanged. No Python, no venv module or no PyPI is a FAILED test
//! with the reason, never a skip.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn authlib_links_with_basic_and_body_credentials_refreshes_and_reads_userinfo() {
    let python = python::venv_python("requirements.txt");
    let env = TestEnv::with_user();
    let server = env.start();
    let config = serde_json::json!({
        "base_url": format!("http://{}", server.addr),
        "username": USER,
        "password": PASSWORD,
        "clients": [
            {"client_id": ALEXA_ID, "client_secret": ALEXA_SECRET, "redirect_uri": ALEXA_REDIRECT,
             "auth_method": "client_secret_basic"},
            {"client_id": GOOGLE_ID, "client_secret": GOOGLE_SECRET, "redirect_uri": GOOGLE_REDIRECT,
             "auth_method": "client_secret_post", "extra": {"user_locale": "en-US"}},
        ],
    });
    let out = run_ok(
        Command::new(&python)
            .arg(python::python_dir().join("authlib_flow.py"))
            .arg(config.to_string()),
        SCRIPT_TIMEOUT,
        "running tests/python/authlib_flow.py",
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(report["authlib"], "1.9.10", "the pinned authlib ran");

    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for (run, redirect) in runs.iter().zip([ALEXA_REDIRECT, GOOGLE_REDIRECT]) {
        let who = format!("{} / {}", run["client_id"], run["auth_method"]);
        assert_eq!(
            run["authorize_params"]["code_challenge_method"], "S256",
            "{who}"
        );
        assert_eq!(run["redirect_status"], 303, "{who}");
        let location = run["location"].as_str().unwrap_or("");
        assert!(
            location.starts_with(&format!("{redirect}?")),
            "{who}: {location}"
        );
        assert_eq!(run["state_back"], run["state_sent"], "{who}");

        for step in ["code_exchange", "refresh"] {
            let answer = &run[step];
            assert_eq!(answer["status"], 200, "{who} {step}: {answer}");
            assert_eq!(answer["content_type"], "application/json", "{who} {step}");
            assert_eq!(answer["cache_control"], "no-store", "{who} {step}");
            let body = &answer["body"];
            assert_eq!(body["token_type"], "Bearer", "{who} {step}: {body}");
            assert_eq!(body["expires_in"], 3600, "{who} {step}: {body}");
            assert_eq!(body["scope"], "profile", "{who} {step}: {body}");
            assert!(body["access_token"].is_string(), "{who} {step}: {body}");
            assert!(body["refresh_token"].is_string(), "{who} {step}: {body}");
            let basic = run["auth_method"] == "client_secret_basic";
            assert_eq!(answer["sent_basic"], basic, "{who} {step}");
            assert_eq!(answer["sent_secret_in_body"], !basic, "{who} {step}");
        }
        assert_eq!(
            run["refresh"]["body"]["refresh_token"], run["code_exchange"]["body"]["refresh_token"],
            "{who}: the refresh token stays the same by default"
        );
        assert_eq!(run["refresh_token_kept"], true, "{who}");
        assert_eq!(run["access_token_changed"], true, "{who}");
        for when in ["userinfo_before", "userinfo_after"] {
            assert_eq!(run[when]["status"], 200, "{who} {when}: {}", run[when]);
            assert_eq!(
                run[when]["body"]["preferred_username"], USER,
                "{who} {when}"
            );
        }
        assert_eq!(
            run["userinfo_before"]["body"]["sub"], run["userinfo_after"]["body"]["sub"],
            "{who}"
        );
        assert_eq!(
            run["dead_code_errors"],
            serde_json::json!(["invalid_grant", "invalid_grant"]),
            "{who}: a used and a made-up code"
        );
    }
    assert_eq!(runs[1]["authorize_params"]["user_locale"], "en-US");
}
