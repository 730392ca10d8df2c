//! Running linkgate for real: the APIs a skill backend uses (introspection, revocation), built-in
//! HTTPS with certificate reload on SIGHUP, metrics, and connection limits.

mod common;
use common::*;
use std::time::Duration;

fn introspect(server: &Server, id: &str, secret: &str, token: &str) -> serde_json::Value {
    let response = server.post_form(
        "/introspect",
        &[("Authorization", &basic(id, secret))],
        &[("token", token)],
    );
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

fn revoke(server: &Server, id: &str, secret: &str, token: &str) -> Response {
    server.post_form(
        "/revoke",
        &[("Authorization", &basic(id, secret))],
        &[("token", token)],
    )
}

#[test]
fn introspection_reports_own_tokens_only() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    let active = introspect(&server, ALEXA_ID, ALEXA_SECRET, &access);
    assert_eq!(active["active"], true);
    assert_eq!(active["username"], USER);
    assert_eq!(active["client_id"], ALEXA_ID);
    assert_eq!(active["scope"], "profile");
    assert_eq!(active["token_type"], "Bearer");
    assert!(active["exp"].as_u64().unwrap() > active["iat"].as_u64().unwrap());
    assert_eq!(active["sub"], server.userinfo(&access).json()["sub"]);
    let refresh_info = introspect(&server, ALEXA_ID, ALEXA_SECRET, &refresh_token);
    assert_eq!(refresh_info["active"], true);
    assert_eq!(refresh_info["token_type"], "refresh_token");
    // Another client learns nothing; unknown tokens are inactive; no credentials, no answer.
    assert_eq!(
        introspect(&server, GOOGLE_ID, GOOGLE_SECRET, &access),
        serde_json::json!({"active": false})
    );
    assert_eq!(
        introspect(&server, ALEXA_ID, ALEXA_SECRET, "lgat_unknown"),
        serde_json::json!({"active": false})
    );
    let anonymous = server.post_form("/introspect", &[], &[("token", access.as_str())]);
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.error(), "invalid_client");
    // Google-style credentials in the body work too.
    let body_auth = server.post_form(
        "/introspect",
        &[],
        &[
            ("token", access.as_str()),
            ("client_id", ALEXA_ID),
            ("client_secret", ALEXA_SECRET),
        ],
    );
    assert_eq!(body_auth.json()["active"], true);
}

#[test]
fn revoking_an_access_token_kills_just_that_token() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    assert_eq!(revoke(&server, ALEXA_ID, ALEXA_SECRET, &access).status, 200);
    assert_eq!(server.userinfo(&access).status, 401);
    assert_eq!(
        introspect(&server, ALEXA_ID, ALEXA_SECRET, &access)["active"],
        false
    );
    assert_eq!(refresh(&server, &refresh_token).status, 200);
}

#[test]
fn revoking_a_refresh_token_kills_its_access_tokens() {
    let env = TestEnv::with_user();
    let server = env.start();
    let (access, refresh_token) = tokens_for(&server);
    let second_access = refresh(&server, &refresh_token).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Another client cannot revoke it (answered 200, nothing happens).
    assert_eq!(
        revoke(&server, GOOGLE_ID, GOOGLE_SECRET, &refresh_token).status,
        200
    );
    assert_eq!(server.userinfo(&access).status, 200);
    assert_eq!(
        revoke(&server, ALEXA_ID, ALEXA_SECRET, &refresh_token).status,
        200
    );
    assert_eq!(refresh(&server, &refresh_token).error(), "invalid_grant");
    assert_eq!(server.userinfo(&access).status, 401);
    assert_eq!(server.userinfo(&second_access).status, 401);
    // Unknown tokens: 200 as RFC 7009 says. Missing token: invalid_request.
    assert_eq!(
        revoke(&server, ALEXA_ID, ALEXA_SECRET, "lgrt_unknown").status,
        200
    );
    let missing = server.post_form(
        "/revoke",
        &[("Authorization", &basic(ALEXA_ID, ALEXA_SECRET))],
        &[],
    );
    assert_eq!(missing.error(), "invalid_request");
    let bad_client = revoke(&server, ALEXA_ID, "wrong-secret-0123456789", "x");
    assert_eq!(bad_client.status, 401);
}

#[test]
fn https_is_served_directly_and_the_certificate_reloads_on_sighup() {
    let (env, first) = https_env();
    env.add_user(USER, PASSWORD);
    let mut server = env.start();
    server.tls = Some(tls_client(&first));

    // The whole flow and a refresh over HTTPS; the CSRF cookie is Secure.
    let login = Page::from(server.get(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[])));
    assert!(login
        .response
        .header("Set-Cookie")
        .unwrap()
        .contains("Secure"));
    let (access, refresh_token) = tokens_for(&server);
    assert_eq!(server.userinfo(&access).status, 200);
    assert_eq!(refresh(&server, &refresh_token).status, 200);

    // Plain HTTP on the TLS port gets no HTTP answer at all.
    let plain = raw(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // Renewal: new files, SIGHUP, and new connections get the new certificate.
    let second = write_self_signed(env.dir.path(), &["second.example"]);
    server.signal("HUP");
    let second_client = tls_client(&second);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if presented_certificate(server.addr, &second_client)
            .ok()
            .as_deref()
            == Some(&second[..])
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the certificate was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.tls = Some(second_client);
    assert!(server.is_healthy());
    assert_eq!(server.userinfo(&access).status, 200);

    // A broken renewal keeps the old certificate and the server up.
    std::fs::write(env.dir.path().join("cert.pem"), "not a certificate").unwrap();
    server.signal("HUP");
    server.wait_for_log("certificate reload failed, keeping the old one", 1);
    assert!(server.is_running());
    assert!(server.is_healthy());
}

/// What `openssl s_client` gets from the server with `version` (`-tls1_1`, `-tls1_2`, …):
/// `Ok(())` for a completed handshake, `Err(stderr)` otherwise.
fn openssl_handshake(addr: std::net::SocketAddr, version: &str) -> Result<(), String> {
    let mut child = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
            version,
        ])
        // Let the client offer old protocols, so that a refusal is the server's.
        .args(["-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl (installed by tools/test.sh) must be on PATH");
    drop(child.stdin.take()); // EOF: s_client quits after the handshake
    let out = child.wait_with_output().expect("openssl");
    let stdout = text(&out.stdout);
    if out.status.success() && stdout.contains("Cipher is") && !stdout.contains("Cipher is (NONE)")
    {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

#[test]
fn only_tls_1_2_and_1_3_are_offered() {
    let env = TestConfig::new().tls().env();
    write_self_signed(env.dir.path(), &[]);
    let server = env.start();
    assert_eq!(openssl_handshake(server.addr, "-tls1_3"), Ok(()));
    assert_eq!(openssl_handshake(server.addr, "-tls1_2"), Ok(()));
    for old in ["-tls1_1", "-tls1"] {
        let refused = openssl_handshake(server.addr, old).expect_err(old);
        // "SSL alert number N": the client sent its hello and the *server* answered with an alert.
        assert!(refused.contains("SSL alert number"), "{old}: {refused}");
    }
}

#[test]
fn check_config_refuses_an_unreadable_certificate() {
    let env = TestConfig::new().tls().env();
    let out = env.cli(&["--check-config"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("server.tls.cert"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(env.dir.path().join("cert.pem"), "garbage").unwrap();
    std::fs::write(env.dir.path().join("key.pem"), "garbage").unwrap();
    let out = env.cli(&["--check-config"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("server.tls"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn metrics_are_off_by_default_and_count_when_on() {
    let env = TestEnv::with_user();
    let server = env.start();
    assert_eq!(server.get("/metrics").status, 404);
    drop(server);
    let env = TestConfig::new().set("server.metrics", true).env();
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let (_, refresh_token) = tokens_for(&server);
    refresh(&server, &refresh_token);
    refresh(&server, "lgrt_unknown");
    let metrics = server.get("/metrics").text();
    for line in [
        "linkgate_logins_total{outcome=\"ok\"} 1",
        "linkgate_codes_issued_total 1",
        "linkgate_token_grants_total{grant_type=\"authorization_code\",outcome=\"ok\"} 1",
        "linkgate_token_grants_total{grant_type=\"refresh_token\",outcome=\"ok\"} 1",
        "linkgate_token_grants_total{grant_type=\"refresh_token\",outcome=\"error\"} 1",
        "linkgate_request_duration_seconds_count",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
}

#[test]
fn idle_and_slow_connections_are_closed() {
    let env = TestConfig::new()
        .set("server.header_read_timeout_secs", 1)
        .set("server.idle_timeout_secs", 1)
        .env();
    let server = env.start();
    use std::io::{Read, Write};
    // Slowloris: half a request line, then nothing.
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "slow client kept for {:?}",
        started.elapsed()
    );
    // Keep-alive: one request, then idle.
    let mut idle = std::net::TcpStream::connect(server.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut all = Vec::new();
    let _ = idle.read_to_end(&mut all);
    assert!(text(&all).starts_with("HTTP/1.1 200"), "{}", text(&all));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "idle connection kept for {:?}",
        started.elapsed()
    );
    assert!(server.is_healthy());
}

#[test]
fn sighup_without_tls_does_not_stop_the_server() {
    let env = TestEnv::new();
    let mut server = env.start();
    server.signal("HUP");
    server.wait_for_log("SIGHUP: no [server.tls] certificate to reload", 1);
    assert!(server.is_running());
    assert!(server.is_healthy());
}

/// SIGHUP reloads only the certificate files: after an edit of the config, the log says which
/// edits need a restart (and does not claim a reload it did not do), the server keeps serving
/// what it started with, and `--doctor` says the file is not what is served.
#[test]
fn sighup_after_editing_the_config_names_what_needs_a_restart() {
    let env = TestConfig::new().tls().env();
    let cert = write_self_signed(env.dir.path(), &[]);
    let mut server = env.start();
    server.tls = Some(tls_client(&cert));
    let new_uri = "https://pitangui.amazon.com/api/skill/link/M2NEW";
    let text = std::fs::read_to_string(&env.config).unwrap();
    let edited = text.replacen(
        &format!("\"{ALEXA_REDIRECT}\","),
        &format!("\"{ALEXA_REDIRECT}\", \"{new_uri}\","),
        1,
    );
    assert_ne!(edited, text, "the redirect URI was added");
    std::fs::write(&env.config, &edited).unwrap();
    server.signal("HUP");
    server.wait_for_log("SIGHUP: reloaded the TLS certificate from", 1);
    server.wait_for_log(
        &format!("restart linkgate to apply (systemctl restart linkgate): client {ALEXA_ID}: redirect_uri {new_uri} is not served yet"),
        1,
    );
    // Not applied: the running server still refuses the new URI.
    let page = server.get(&authorize_path(ALEXA_ID, new_uri, "s", &[]));
    assert_eq!(page.status, 400);
    let doctor = env.cli(&["--doctor"], "");
    let said = String::from_utf8_lossy(&doctor.stdout).to_string();
    let line = said
        .lines()
        .find(|l| l.contains(" served "))
        .unwrap_or_default();
    assert!(
        line.starts_with("warn")
            && line.contains(&format!("redirect_uri {new_uri} is not served yet")),
        "{said}"
    );
    // A new certificate path: the old certificate stays, and the log says so.
    std::fs::copy(
        env.dir.path().join("cert.pem"),
        env.dir.path().join("other.pem"),
    )
    .unwrap();
    let moved = edited.replacen("cert = \"cert.pem\"", "cert = \"other.pem\"", 1);
    assert_ne!(moved, edited);
    std::fs::write(&env.config, &moved).unwrap();
    server.signal("HUP");
    server.wait_for_log("the old certificate stays in service until a restart", 1);
    server.wait_for_log("server.tls: the certificate or key path changed", 1);
    assert!(server.is_healthy());
    // Restarted, it serves the file: the doctor agrees.
    drop(server);
    let _server = env.start();
    let doctor = env.cli(&["--doctor"], "");
    let said = String::from_utf8_lossy(&doctor.stdout).to_string();
    let line = said
        .lines()
        .find(|l| l.contains(" served "))
        .unwrap_or_default();
    assert!(
        line.starts_with("ok") && line.contains("serves this config file"),
        "{said}"
    );
}
