//! linkgate as the authorization server of an MCP server, driven by the official MCP Python SDK
//! (PyPI `mcp`, pinned in tests/python/mcp_requirements.txt) through tests/python/mcp_e2e.py:
//!
//! - the SDK's `MCPServer` (streamable HTTP) publishes RFC 9728 protected-resource metadata
//!   naming linkgate, answers 401 without a token, and accepts a bearer token only when
//!   linkgate's `/introspect` says it is active with `aud` = the MCP server's URL;
//! - the SDK's `OAuthClientProvider`, with the `alexa-plus` client pre-registered (no dynamic
//!   registration), discovers linkgate from that 401, signs the person in on linkgate's own
//!   login and consent pages (PKCE S256, RFC 8707 `resource`), exchanges the code and calls a
//!   tool, which answers with the person's `sub`;
//! - the SDK's `ClientCredentialsOAuthProvider` gets a `client_credentials` token for the same
//!   resource and calls the tool as a service.
//!
//! The venv (tests/common/python.rs) is made once per version of the requirements file. No
//! Python, no venv module or no PyPI is a FAILED test with the reason, never a skip.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const CLIENT_ID: &str = "alexa-plus";
const CLIENT_SECRET: &str = "alexa-plus-secret-0123456789";
const TOOL: &str = "where_is_my_driver";

/// Whether an introspection `aud` (a string or a list) names `resource`.
fn aud_names(aud: &Value, resource: &str) -> bool {
    match aud {
        Value::String(s) => s == resource,
        Value::Array(list) => list.iter().any(|a| a == resource),
        _ => false,
    }
}

#[test]
fn mcp_sdk_signs_in_through_linkgate_and_calls_a_tool_as_a_person_and_as_a_service() {
    let python = python::venv_python("mcp_requirements.txt");
    let port = free_port();
    let mcp_port = free_port();
    let base_url = format!("http://127.0.0.1:{port}");
    let mcp_url = format!("http://127.0.0.1:{mcp_port}/mcp");
    // Another resource of the same client: its tokens must not open the MCP server.
    let other_resource = format!("http://127.0.0.1:{mcp_port}/other");
    // Any registered URI: the script never listens on it, it reads the 303's Location.
    let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
    let extra = format!(
        r#"
[[clients]]
id = "{CLIENT_ID}"
secret = "{CLIENT_SECRET}"
name = "Alexa+ add-on"
redirect_uris = ["{redirect_uri}"]
require_pkce = true
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
resources = ["{mcp_url}", "{other_resource}"]
service_scopes = ["catalog"]
"#
    );
    // The issuer and endpoints in linkgate's metadata must be where it really listens: the SDK
    // follows them and compares the issuer with the one the MCP server names.
    let env = TestConfig::from_text(&config_text(&extra))
        .set("server.listen", format!("127.0.0.1:{port}"))
        .set("server.public_url", base_url.clone())
        .env();
    env.add_user(USER, PASSWORD);
    let server = env.start();

    let config = serde_json::json!({
        "base_url": base_url,
        "mcp_port": mcp_port,
        "username": USER,
        "password": PASSWORD,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": redirect_uri,
        "user_auth_method": "client_secret_basic",
        "service_auth_method": "client_secret_post",
        "other_resource": other_resource,
    });
    let out = run_ok(
        Command::new(&python)
            .arg(python::python_dir().join("mcp_e2e.py"))
            .arg(config.to_string()),
        SCRIPT_TIMEOUT,
        "running tests/python/mcp_e2e.py",
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "script output is not JSON ({e}): {}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    let pretty = serde_json::to_string_pretty(&report).unwrap_or_default();
    eprintln!("mcp_e2e.py report:\n{pretty}");
    let why = |what: &str| {
        format!(
            "{what}\nreport:\n{pretty}\nscript stderr (tail):\n{}\nlinkgate log (tail):\n{}",
            tail(&text(&out.stderr), 60),
            tail(&server.log(), 40)
        )
    };
    assert_eq!(report["mcp"], "2.3.0", "{}", why("the pinned SDK ran"));
    assert!(report["timed_out"].is_null(), "{}", why("timed out"));

    // Before any token: 401 pointing at the metadata, which names linkgate.
    let unauthenticated = &report["unauthenticated"];
    assert_eq!(unauthenticated["status"], 401, "{}", why("no token"));
    assert!(
        unauthenticated["www_authenticate"]
            .as_str()
            .is_some_and(|h| h.contains("resource_metadata=")),
        "{}",
        why("WWW-Authenticate names the resource metadata")
    );
    assert_eq!(
        report["made_up_token"]["status"],
        401,
        "{}",
        why("made-up token")
    );
    let prm = &report["protected_resource_metadata"];
    assert_eq!(prm["resource"], mcp_url.as_str(), "{}", why("PRM resource"));
    assert_eq!(
        prm["authorization_servers"],
        serde_json::json!([base_url]),
        "{}",
        why("PRM names linkgate")
    );
    let asm = &report["authorization_server_metadata"];
    assert_eq!(
        asm["issuer"],
        base_url.as_str(),
        "{}",
        why("linkgate's issuer")
    );
    assert_eq!(
        asm["code_challenge_methods_supported"],
        serde_json::json!(["S256"]),
        "{}",
        why("S256 only")
    );
    assert!(
        asm["grant_types_supported"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "client_credentials")),
        "{}",
        why("metadata lists client_credentials")
    );

    // The person: discovery, linkgate's pages, the code, the tool.
    let user = &report["user"];
    assert!(user["error"].is_null(), "{}", why("user-level run failed"));
    assert_eq!(
        user["discovered_issuer"],
        base_url.as_str(),
        "{}",
        why("issuer")
    );
    let params = &user["authorize_params"];
    assert_eq!(params["client_id"], CLIENT_ID, "{}", why("client_id"));
    assert_eq!(params["code_challenge_method"], "S256", "{}", why("PKCE"));
    assert!(params["code_challenge"].is_string(), "{}", why("PKCE"));
    assert_eq!(
        params["resource"],
        mcp_url.as_str(),
        "{}",
        why("RFC 8707 resource")
    );
    assert_eq!(user["login_page_status"], 200, "{}", why("login page"));
    assert_eq!(user["consent_page_status"], 200, "{}", why("consent page"));
    assert_eq!(user["redirect_status"], 303, "{}", why("redirect"));
    assert_eq!(
        user["redirect_to"],
        redirect_uri.as_str(),
        "{}",
        why("redirect")
    );
    assert_eq!(user["state_matches"], true, "{}", why("state"));
    let requests = user["requests"].as_array().cloned().unwrap_or_default();
    assert!(
        !requests
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("/register"))),
        "{}",
        why("no dynamic client registration")
    );
    assert_eq!(user["client_info_writes"], 0, "{}", why("no registration"));
    let exchange = &user["token_requests"][0];
    assert_eq!(
        exchange["grant_type"],
        "authorization_code",
        "{}",
        why("code")
    );
    assert_eq!(
        exchange["resource"],
        mcp_url.as_str(),
        "{}",
        why("resource")
    );
    assert_eq!(
        exchange["sent_basic"],
        true,
        "{}",
        why("client_secret_basic")
    );
    assert_eq!(
        user["token"]["has_refresh_token"],
        true,
        "{}",
        why("refresh")
    );
    assert!(
        user["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == TOOL)),
        "{}",
        why("tools/list")
    );
    assert_eq!(user["tool_result"]["is_error"], false, "{}", why("tool"));

    // The `sub` the tool answered is the person's, as linkgate tells another client.
    let (access, _) = tokens_for(&server);
    let sub = server.userinfo(&access).json()["sub"]
        .as_str()
        .expect("sub")
        .to_string();
    let answer = user["tool_result"]["text"].as_str().unwrap_or("");
    assert!(
        answer.starts_with("Your driver is 3 minutes away")
            && answer.contains(&format!("sub={sub},")),
        "{}",
        why(&format!("the tool answered for {sub}"))
    );

    // Every token the MCP server accepted was introspected with aud = its URL; the person's and
    // the service's among them.
    let introspections = report["introspections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let accepted: Vec<&Value> = introspections
        .iter()
        .filter(|i| i["accepted"] == true)
        .collect();
    for entry in &accepted {
        assert!(
            aud_names(&entry["answer"]["aud"], &mcp_url),
            "{}",
            why("aud")
        );
    }
    assert!(
        accepted
            .iter()
            .any(|i| i["answer"]["username"] == USER && i["answer"]["sub"] == sub.as_str()),
        "{}",
        why("the user's token introspects as the user")
    );
    assert!(
        accepted
            .iter()
            .any(|i| i["answer"]["scope"] == "catalog" && i["answer"]["username"].is_null()),
        "{}",
        why("a service token (scope catalog, no username) was accepted")
    );

    // The service: client_credentials through the SDK, then tools/list and the tool.
    let service = &report["service"];
    assert!(
        service["error"].is_null(),
        "{}",
        why("service-level run failed")
    );
    let grant = &service["token_requests"][0];
    assert_eq!(
        grant["grant_type"],
        "client_credentials",
        "{}",
        why("grant")
    );
    assert_eq!(grant["resource"], mcp_url.as_str(), "{}", why("resource"));
    assert_eq!(
        grant["sent_secret_in_body"],
        true,
        "{}",
        why("client_secret_post")
    );
    assert_eq!(
        service["token"]["has_refresh_token"],
        false,
        "{}",
        why("no refresh")
    );
    assert!(
        service["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == TOOL)),
        "{}",
        why("service tools/list")
    );
    assert_eq!(
        service["tool_result"]["is_error"],
        false,
        "{}",
        why("service tool")
    );
    assert!(
        service["tool_result"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Your driver is 3 minutes away")),
        "{}",
        why("service tool answer")
    );

    // A token for the client's other resource is refused by the MCP server (the verifier checks
    // `aud`, not just `active`).
    let other = &report["token_for_other_resource"];
    assert_eq!(
        other["token_status"],
        200,
        "{}",
        why("client_credentials for the other resource")
    );
    assert!(
        aud_names(&other["aud"], &other_resource),
        "{}",
        why("its aud")
    );
    assert_eq!(
        other["mcp_status"],
        401,
        "{}",
        why("a token for another audience")
    );
    // Asked for without `resource`, linkgate picks the audience (or refuses); the MCP server takes
    // such a token only when that audience is its own URL.
    let unnamed = &report["token_without_resource"];
    if unnamed["token_status"] == 200 {
        // 401 is the refusal; a token it takes gets past the auth check (to a 400 here: the
        // probe's tools/list has no MCP session).
        let refused = unnamed["mcp_status"] == 401;
        assert_eq!(
            refused,
            !aud_names(&unnamed["aud"], &mcp_url),
            "{}",
            why("a token asked for without resource")
        );
    }
    assert!(report["server_error"].is_null(), "{}", why("MCP server"));
}

/// The last `lines` lines of `s`.
fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
