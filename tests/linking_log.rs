//! Why a link failed (issue 23), black-box: each refusal an operator meets while setting up a
//! skill logs one `link refused:` line (target `linkgate::linking`) with the client, the step, the error, a reason that
//! names the exact cause, and a reference that the customer's page (or the client's answer, as
//! the `X-Linkgate-Reference` header) carries too — never a secret. `--linking-log` shows the
//! recent refusals and successes from the running server; a flood is logged in bounded lines.

mod common;
use common::*;
use sha2::{Digest, Sha256};

/// The log line of `reference`.
fn line_of(server: &Server, reference: &str) -> String {
    server.wait_for_log(reference, 1);
    server
        .log()
        .lines()
        .find(|l| l.contains(reference))
        .unwrap_or_default()
        .to_string()
}

/// The reference a page shows ("Reference: XXXX-XXXX").
fn page_reference(html: &str) -> String {
    let at = html
        .find("Reference: <code>")
        .expect("a reference on the page")
        + 17;
    html[at..at + 9].to_string()
}

fn cli_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = env.cli(args, "");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_common_setup_mistakes_each_log_their_exact_cause_with_the_reference_shown() {
    let env = TestEnv::with_user();
    let server = env.start();

    // 1. A client id typed wrong in the console: a page with a reference; the line says which
    //    ids are configured.
    let page = server.get(&authorize_path("alexa-skil", ALEXA_REDIRECT, "s", &[]));
    assert_eq!(page.status, 400);
    let reference = page_reference(&page.text());
    assert_eq!(
        page.header("X-Linkgate-Reference"),
        Some(reference.as_str())
    );
    let line = line_of(&server, &reference);
    assert!(
        line.contains("link refused: ")
            && line.contains("step=\"authorize\"")
            && line.contains(
                "client_id alexa-skil is not configured (configured: alexa-skill, google-home)"
            ),
        "{line}"
    );

    // 2. The skill's vendor id wrong in the redirect URI (Amazon's M2… part).
    let wrong_uri = "https://pitangui.amazon.com/api/skill/link/M2WRONG";
    let page = server.get(&authorize_path(ALEXA_ID, wrong_uri, "s", &[]));
    let line = line_of(&server, &page_reference(&page.text()));
    assert!(
        line.contains(&format!(
            "redirect_uri {wrong_uri} is not registered for client {ALEXA_ID}; registered: {ALEXA_REDIRECT}, "
        )),
        "{line}"
    );

    // 3. The client secret pasted wrong: 401 with the reference; the secret is not logged.
    let wrong_secret = "a-wrong-secret-pasted-0123456789";
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let refused = server.token_basic(ALEXA_ID, wrong_secret, &code_fields(&code, ALEXA_REDIRECT));
    assert_eq!(refused.status, 401);
    let reference = refused
        .header("X-Linkgate-Reference")
        .expect("a reference")
        .to_string();
    let line = line_of(&server, &reference);
    assert!(
        line.contains("step=\"code exchange\"")
            && line.contains("error=\"invalid_client\"")
            && line.contains("the client secret does not match"),
        "{line}"
    );
    assert!(
        !server.log().contains(wrong_secret),
        "the secret was logged"
    );

    // 4. A code sent twice (a retried exchange): the second is refused as used, and says so.
    let tokens = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT));
    assert_eq!(tokens.status, 200);
    let again = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT));
    let line = line_of(
        &server,
        again.header("X-Linkgate-Reference").expect("reference"),
    );
    assert!(line.contains("already used"), "{line}");
    assert!(!server.log().contains(&code), "the code was logged");

    // 5. A link that was ended: the refresh says how (a password change here).
    let (_, refresh_token) = tokens_for(&server);
    for _ in 0..3 {
        assert_eq!(refresh(&server, &refresh_token).status, 200);
    }
    let out = env.cli(&["--set-password", USER], "a brand new password 1\n");
    assert!(out.status.success(), "{out:?}");
    let dead = refresh(&server, &refresh_token);
    assert_eq!(dead.error(), "invalid_grant");
    let line = line_of(
        &server,
        dead.header("X-Linkgate-Reference").expect("reference"),
    );
    assert!(
        line.contains("step=\"refresh\"")
            && line.contains("belongs to a link revoked at ")
            && line.contains("user alice's password was changed"),
        "{line}"
    );
    assert!(
        !server.log().contains(&refresh_token),
        "the token was logged"
    );

    // 6. PKCE: the verifier does not match.
    let challenge = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(
            b"a verifier of enough length, more than 43 chars",
        ))
    };
    let mut browser = Browser::new(&server);
    let login = browser.authorize(
        GOOGLE_ID,
        GOOGLE_REDIRECT,
        "s",
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let consent = browser.login(&login, USER, "a brand new password 1");
    let code = browser
        .decide(&consent, "allow")
        .location_params()
        .remove("code")
        .expect("code");
    let mut fields = code_fields(&code, GOOGLE_REDIRECT).to_vec();
    fields.push((
        "code_verifier",
        "another verifier of enough length, more than 43 chars",
    ));
    let refused = server.token_post(GOOGLE_ID, GOOGLE_SECRET, &fields);
    let line = line_of(
        &server,
        refused.header("X-Linkgate-Reference").expect("reference"),
    );
    assert!(line.contains("code_verifier does not match"), "{line}");

    // 7. A wrong password: the line names the user, never what was typed.
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    let typed = "my-old-password-typed-by-mistake";
    assert_eq!(browser.login(&login, USER, typed).status, 401);
    server.wait_for_log("sign-in with the wrong password for user alice", 1);
    assert!(!server.log().contains(typed), "the password was logged");

    // --linking-log: the refusals with their references, and the successes, per client;
    // refreshes are counted (not listed one by one).
    let table = cli_ok(&env, &["--linking-log", ALEXA_ID]);
    assert!(
        table.contains(&format!("{ALEXA_ID}: 3 refresh ok, the last at ")),
        "{table}"
    );
    assert!(
        table.contains("TIME (UTC)\tCLIENT\tSTEP\tOUTCOME\tREFERENCE\tREASON"),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "{ALEXA_ID}\tcode exchange\tinvalid_client\t{reference}"
        )),
        "{table}"
    );
    assert!(table.contains("\tcode exchange\tok\t-\t"), "{table}");
    assert!(
        table.contains("\tconsent\tok\t-\tallowed: code issued"),
        "{table}"
    );
    assert!(!table.contains(GOOGLE_ID), "{table}");
    let all = cli_ok(&env, &["--linking-log"]);
    assert!(
        all.contains("alexa-skil\tauthorize\tunknown_client"),
        "{all}"
    );
    assert!(
        all.contains(&format!("{GOOGLE_ID}\tcode exchange\tinvalid_grant")),
        "{all}"
    );

    // Kept in memory: a restarted server starts empty; a stopped one is asked in vain.
    drop(server);
    let out = env.cli(&["--linking-log"], "");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && said.contains("kept in the running server's memory"),
        "{said}"
    );
    let _server = env.start();
    let fresh = cli_ok(&env, &["--linking-log"]);
    assert!(
        fresh.contains("since the server started") && fresh.contains("nothing yet"),
        "{fresh}"
    );
}

#[test]
fn a_flood_of_bad_requests_is_logged_in_a_bounded_number_of_lines() {
    let env = TestConfig::new().set("server.metrics", true).env();
    let server = env.start();
    let sent = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let server = &server;
                scope.spawn(move || {
                    let mut sent = 0;
                    for i in 0..1250 {
                        let id = format!("stranger-{t}-{i}");
                        let answer = server.token_basic(
                            &id,
                            "0123456789abcdef",
                            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
                        );
                        assert!([401, 429].contains(&answer.status), "{}", answer.status);
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    let metrics = server.get("/metrics").text();
    let count = |outcome: &str| -> u64 {
        let prefix = format!("linkgate_linking_log_lines_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
    };
    let lines = server
        .log()
        .lines()
        .filter(|l| l.contains("link refused: "))
        .count();
    eprintln!(
        "{sent} bad requests: {lines} linking-log lines, {} written, {} dropped",
        count("written"),
        count("dropped")
    );
    assert_eq!(sent, 10_000);
    assert_eq!(count("written") + count("dropped"), 10_000);
    // Two reasons (unknown client, then throttled), each 20 at once plus 2 a second.
    assert!(lines <= 120, "{lines} lines");
    assert_eq!(lines as u64, count("written"));
}
