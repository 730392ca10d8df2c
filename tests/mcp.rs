//! Alexa+ MCP add-ons (issue 33), black-box: linkgate as the authorization server of the
//! operator's MCP server. `client_credentials` for service-level calls, RFC 8707 resource
//! indicators on both grants (the token's audience, `aud` at `/introspect`), PKCE required, and
//! metadata that lists exactly the grant types configured. Names as in ../shared/CONTRACT.md.

mod common;
use common::*;
use sha2::{Digest, Sha256};

const PLUS_ID: &str = "alexa-plus";
const PLUS_SECRET: &str = "alexa-plus-secret-0123456789";
const PLUS_REDIRECT: &str = "https://alexa.amazon.com/api/mcp/oauth/callback";
const MCP: &str = "https://mcp.example-taxi.com/mcp";
const TWO_ID: &str = "two-servers";
const TWO_SECRET: &str = "two-servers-secret-0123456789";
const MCP_B: &str = "https://mcp-b.example-taxi.com/mcp";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K1e_pAyFz6IXzOo0M0gnTx6o8c";

fn challenge() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

fn plus_config() -> TestConfig {
    TestConfig::from_text(&config_text(&format!(
        r#"
[[clients]]
id = "{PLUS_ID}"
secret = "{PLUS_SECRET}"
name = "Example Taxi for Alexa+"
redirect_uris = ["{PLUS_REDIRECT}"]
require_pkce = true
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
resources = ["{MCP}"]
service_scopes = ["catalog", "status"]

[[clients]]
id = "{TWO_ID}"
secret = "{TWO_SECRET}"
name = "Two MCP servers"
grant_types = ["client_credentials"]
resources = ["{MCP}", "{MCP_B}"]
service_scopes = ["catalog"]
"#
    )))
    .set("server.metrics", true)
}

fn introspect(server: &Server, id: &str, secret: &str, token: &str) -> serde_json::Value {
    let answer = server.post_form(
        "/introspect",
        &[("Authorization", &basic(id, secret))],
        &[("token", token)],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

fn service_token(server: &Server, fields: &[(&str, &str)]) -> Response {
    let mut all = vec![("grant_type", "client_credentials")];
    all.extend_from_slice(fields);
    server.token_basic(PLUS_ID, PLUS_SECRET, &all)
}

#[test]
fn client_credentials_gives_a_service_token_for_the_resource_that_names_no_user() {
    let env = plus_config().env();
    let server = env.start();
    for (how, answer) in [
        ("basic", service_token(&server, &[])),
        (
            "basic, resource",
            service_token(&server, &[("resource", MCP)]),
        ),
        (
            "body",
            server.token_post(
                PLUS_ID,
                PLUS_SECRET,
                &[("grant_type", "client_credentials"), ("scope", "status")],
            ),
        ),
    ] {
        assert_eq!(answer.status, 200, "{how}: {}", answer.text());
        let json = answer.json();
        assert_eq!(json["token_type"], "Bearer", "{how}");
        assert_eq!(json["expires_in"], 3600, "{how}");
        assert!(json.get("refresh_token").is_none(), "{how}: {json}");
        assert_eq!(answer.header("Cache-Control"), Some("no-store"), "{how}");
    }
    let token = service_token(&server, &[]);
    assert_eq!(token.json_str("scope"), "catalog status");
    let access = token.json_str("access_token");
    let seen = introspect(&server, PLUS_ID, PLUS_SECRET, &access);
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["client_id"], PLUS_ID);
    assert_eq!(seen["sub"], PLUS_ID, "RFC 7662: the client is the subject");
    assert_eq!(seen["aud"], MCP);
    assert_eq!(seen["scope"], "catalog status");
    assert!(
        seen["exp"].as_u64().is_some() && seen.get("username").is_none(),
        "{seen}"
    );
    // Another client learns nothing; no user is named; it is no refresh token.
    assert_eq!(
        introspect(&server, ALEXA_ID, ALEXA_SECRET, &access)["active"],
        false
    );
    let userinfo = server.userinfo(&access);
    assert_eq!(userinfo.status, 401, "{}", userinfo.text());
    let refreshed = server.token_basic(
        PLUS_ID,
        PLUS_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &access)],
    );
    assert_eq!(refreshed.error(), "invalid_grant");
    // RFC 7009: revoked, it is inactive; a new one is not.
    let revoked = server.post_form(
        "/revoke",
        &[("Authorization", &basic(PLUS_ID, PLUS_SECRET))],
        &[("token", &access)],
    );
    assert_eq!(revoked.status, 200);
    assert_eq!(
        introspect(&server, PLUS_ID, PLUS_SECRET, &access)["active"],
        false
    );
    let fresh = service_token(&server, &[]).json_str("access_token");
    assert_eq!(
        introspect(&server, PLUS_ID, PLUS_SECRET, &fresh)["active"],
        true
    );
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains(
            "linkgate_token_grants_total{grant_type=\"client_credentials\",outcome=\"ok\"} 5"
        ),
        "{metrics}"
    );
}

#[test]
fn client_credentials_refuses_what_the_client_may_not_have() {
    let env = plus_config().env();
    let server = env.start();
    let cases: Vec<(&str, Response, u16, &str)> = vec![
        (
            "a client without the grant",
            server.token_basic(
                ALEXA_ID,
                ALEXA_SECRET,
                &[("grant_type", "client_credentials")],
            ),
            400,
            "unauthorized_client",
        ),
        (
            "a wrong secret",
            server.token_basic(
                PLUS_ID,
                "not the secret",
                &[("grant_type", "client_credentials")],
            ),
            401,
            "invalid_client",
        ),
        (
            "a scope outside service_scopes",
            service_token(&server, &[("scope", "catalog profile")]),
            400,
            "invalid_scope",
        ),
        (
            "another resource",
            service_token(&server, &[("resource", "https://evil.example/mcp")]),
            400,
            "invalid_target",
        ),
        (
            "two resources",
            service_token(&server, &[("resource", MCP), ("resource", MCP)]),
            400,
            "invalid_target",
        ),
        (
            "no resource from a client with several",
            server.token_basic(TWO_ID, TWO_SECRET, &[("grant_type", "client_credentials")]),
            400,
            "invalid_target",
        ),
        (
            "a code grant for a client_credentials-only client",
            server.token_basic(
                TWO_ID,
                TWO_SECRET,
                &[("grant_type", "authorization_code"), ("code", "x")],
            ),
            400,
            "unauthorized_client",
        ),
    ];
    for (what, answer, status, error) in cases {
        assert_eq!(answer.status, status, "{what}: {}", answer.text());
        assert_eq!(answer.error(), error, "{what}: {}", answer.text());
    }
    // Naming one of its resources works, and the audience is that one.
    let b = server.token_basic(
        TWO_ID,
        TWO_SECRET,
        &[("grant_type", "client_credentials"), ("resource", MCP_B)],
    );
    assert_eq!(b.status, 200, "{}", b.text());
    let seen = introspect(&server, TWO_ID, TWO_SECRET, &b.json_str("access_token"));
    assert_eq!(seen["aud"], MCP_B);
    // /authorize for a client that has no code flow: no redirect anywhere, a page.
    let page = server.get(&authorize_path(TWO_ID, PLUS_REDIRECT, "s", &[]));
    assert_eq!(page.status, 400, "{}", page.text());
}

/// The user-level tier: authorization code + PKCE + resource, the audience kept by refreshes.
#[test]
fn a_user_link_carries_the_resource_through_the_code_and_every_refresh() {
    let env = plus_config().env();
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let challenge = challenge();
    let pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // PKCE is required; a resource not registered is invalid_target, back at the redirect URI.
    let mut browser = Browser::new(&server);
    for (extra, error) in [
        (vec![("resource", MCP)], "invalid_request"),
        (
            [
                pkce.to_vec(),
                vec![("resource", "https://evil.example/mcp")],
            ]
            .concat(),
            "invalid_target",
        ),
    ] {
        let refused = server.get(&authorize_path(PLUS_ID, PLUS_REDIRECT, "st-1", &extra));
        assert_eq!(refused.status, 303, "{}", refused.text());
        let params = refused.location_params();
        assert!(
            refused
                .header("Location")
                .is_some_and(|l| l.starts_with(PLUS_REDIRECT)),
            "{refused:?}"
        );
        assert_eq!(params["error"], error);
        assert_eq!(params["state"], "st-1");
    }
    let with_resource = [pkce.to_vec(), vec![("resource", MCP)]].concat();
    let login = browser.authorize(PLUS_ID, PLUS_REDIRECT, "st-2", &with_resource);
    assert_eq!(login.status, 200, "{}", login.html);
    let consent = browser.login(&login, USER, PASSWORD);
    let redirect = browser.decide(&consent, "allow");
    let code = redirect.location_params().remove("code").expect("code");
    let tokens = server.token_basic(
        PLUS_ID,
        PLUS_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", PLUS_REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", MCP),
        ],
    );
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    let access = tokens.json_str("access_token");
    let refresh_token = tokens.json_str("refresh_token");
    let seen = introspect(&server, PLUS_ID, PLUS_SECRET, &access);
    assert_eq!(
        (seen["aud"].as_str(), seen["username"].as_str()),
        (Some(MCP), Some(USER))
    );
    assert_eq!(
        server.userinfo(&access).json_str("preferred_username"),
        USER
    );
    // Refreshes keep the audience; naming another resource is invalid_target, not invalid_grant.
    let refresh = |fields: &[(&str, &str)]| {
        let mut all = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ];
        all.extend_from_slice(fields);
        server.token_basic(PLUS_ID, PLUS_SECRET, &all)
    };
    for fields in [vec![], vec![("resource", MCP)]] {
        let again = refresh(&fields);
        assert_eq!(again.status, 200, "{}", again.text());
        let seen = introspect(
            &server,
            PLUS_ID,
            PLUS_SECRET,
            &again.json_str("access_token"),
        );
        assert_eq!(seen["aud"], MCP, "{seen}");
    }
    let other = refresh(&[("resource", MCP_B)]);
    assert_eq!(other.error(), "invalid_target", "{}", other.text());
    assert_eq!(refresh(&[]).status, 200, "the link lives on");

    // Without `resource`, the client's only resource; a code exchange naming another one is
    // invalid_target (and the code stays unused, so the right exchange then works).
    let mut browser = Browser::new(&server);
    let login = browser.authorize(PLUS_ID, PLUS_REDIRECT, "st-3", &pkce);
    let consent = browser.login(&login, USER, PASSWORD);
    let code = browser
        .decide(&consent, "allow")
        .location_params()
        .remove("code")
        .expect("code");
    let exchange = |resource: Option<&str>| {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", PLUS_REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        fields.extend(resource.map(|r| ("resource", r)));
        server.token_basic(PLUS_ID, PLUS_SECRET, &fields)
    };
    assert_eq!(exchange(Some(MCP_B)).error(), "invalid_target");
    let tokens = exchange(None);
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    let seen = introspect(
        &server,
        PLUS_ID,
        PLUS_SECRET,
        &tokens.json_str("access_token"),
    );
    assert_eq!(seen["aud"], MCP);
    // A classic skill's link has no audience.
    let (alexa, _) = tokens_for(&server);
    assert!(introspect(&server, ALEXA_ID, ALEXA_SECRET, &alexa)
        .get("aud")
        .is_none());
}

#[test]
fn metadata_lists_exactly_the_grant_types_some_client_enables() {
    let metadata = |server: &Server| {
        let answer = server.get("/.well-known/oauth-authorization-server");
        assert_eq!(answer.status, 200);
        answer.json()
    };
    let server = plus_config().env().start();
    let plus = metadata(&server);
    assert_eq!(
        plus["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        plus["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    drop(server);
    let classic = metadata(&TestEnv::new().start());
    assert_eq!(
        classic["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
}

/// A service token dies like any access token: once expired, and its key retired by
/// `--rotate-token-key` (kept for access_ttl_secs so tokens in flight still verify).
#[test]
fn a_service_token_dies_after_access_ttl_secs_and_a_key_rotation() {
    let env = plus_config().set("tokens.access_ttl_secs", 2).env();
    let server = env.start();
    let access = service_token(&server, &[]).json_str("access_token");
    let said = env.cli(&["--rotate-token-key"], "");
    assert!(said.status.success(), "{said:?}");
    assert_eq!(
        introspect(&server, PLUS_ID, PLUS_SECRET, &access)["active"],
        true
    );
    let after = service_token(&server, &[]).json_str("access_token");
    assert_ne!(
        access.get(5..12),
        after.get(5..12),
        "signed with the new key"
    );
    std::thread::sleep(std::time::Duration::from_millis(3100));
    assert_eq!(
        introspect(&server, PLUS_ID, PLUS_SECRET, &access)["active"],
        false
    );
    assert_eq!(
        introspect(&server, PLUS_ID, PLUS_SECRET, &after)["active"],
        false
    );
    let fresh = service_token(&server, &[]).json_str("access_token");
    assert_eq!(
        introspect(&server, PLUS_ID, PLUS_SECRET, &fresh)["active"],
        true
    );
}

#[test]
fn check_config_refuses_bad_grant_types_resources_and_scopes() {
    for (client, says) in [
        (
            "grant_types = [\"password\"]",
            "`password` is not a grant type",
        ),
        (
            "grant_types = [\"refresh_token\"]",
            "refresh_token needs authorization_code",
        ),
        (
            "resources = [\"http://mcp.example.com/mcp\"]",
            "must use https",
        ),
        (
            "resources = [\"https://mcp.example.com/mcp#x\"]",
            "fragment",
        ),
        (
            "grant_types = [\"client_credentials\"]\nservice_scopes = [\"a b\"]",
            "not one scope token",
        ),
        (
            "grant_types = [\"authorization_code\"]\nservice_scopes = [\"a\"]",
            "only used by client_credentials",
        ),
    ] {
        let env = TestEnv::with_config(&config_text(&format!(
            "[[clients]]\nid = \"x\"\nsecret = \"0123456789abcdef\"\nredirect_uris = [\"https://x.example/cb\"]\n{client}\n"
        )));
        let out = env.cli(&["--check-config"], "");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{client}: {text}");
        assert!(text.contains(says), "{client}: {text}");
    }
}

/// A `client_credentials` request is a secret check like any other: a burst of wrong secrets
/// from one address is held by the guessing throttle exactly as the same guesses in a row.
#[test]
fn a_burst_of_wrong_secrets_for_service_tokens_is_throttled() {
    let server = plus_config().env().start();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let server = &server;
                scope.spawn(move || {
                    let wrong = format!("wrong-secret-{i:04}-0123456789");
                    server
                        .token_basic(PLUS_ID, &wrong, &[("grant_type", "client_credentials")])
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let held = statuses.iter().filter(|s| **s == 429).count();
    eprintln!("40 wrong client_credentials secrets at once: {checked} checked, {held} held (429)");
    assert_eq!(checked + held, 40, "{statuses:?}");
    assert!(checked <= 21, "{checked} checked: {statuses:?}");
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains(
            "linkgate_token_grants_total{grant_type=\"client_credentials\",outcome=\"ok\"} 0"
        ),
        "{metrics}"
    );
}
