//! Tests of the whole pipeline (`load`, `parse` then `validate`), and the helpers the other
//! files' tests share: `GOOD`, a minimal valid config (also for the crate's other unit tests),
//! and `check`/`check_in`, which read a config from text as `load` would.

use super::parse::parse;
use super::validate::validate;
use super::*;
use std::path::Path;

pub(crate) const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "https://auth.example.com/"
[storage]
path = "data"
[[clients]]
id = "alexa-skill"
secret = "0123456789abcdef"
redirect_uris = ["https://pitangui.amazon.com/api/skill/link/M2X"]
"#;

pub(super) fn check(text: &str) -> Result<Config, String> {
    parse_for_tests(text)
}

pub(super) fn check_in(text: &str, dir: &Path) -> Result<Config, String> {
    validate(parse(text)?, dir).map_err(|p| p.join("\n"))
}

#[test]
fn accepts_a_minimal_config() {
    let config = check(GOOD).unwrap();
    assert_eq!(config.public_url, "https://auth.example.com");
    assert_eq!(config.storage_path, Path::new("/etc/linkgate/data"));
    assert_eq!(config.tokens.access_secs, 3600);
    assert_eq!(config.clients[0].name, "alexa-skill");
    assert_eq!(config.public_path(), "");
    let prefixed = GOOD.replace("auth.example.com", "example.com/auth/");
    let config = check(&prefixed).unwrap();
    assert_eq!(config.public_url, "https://example.com/auth");
    assert_eq!(config.public_path(), "/auth");
}

#[test]
fn a_database_password_in_a_readable_config_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let hash =
        crate::base::secret::hash_password(&crate::base::secret::Secret::new("x".repeat(16)));
    let text = GOOD
        .replace(
            "secret = \"0123456789abcdef\"",
            &format!("secret_hash = \"{hash}\""),
        )
        .replace(
            "path = \"data\"",
            "path = \"data\"\nbackend = \"postgres\"\nurl = \"postgres://u:hunter2-secret@db/x\"",
        );
    let mut config = check(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    config.file = dir.path().join("linkgate.toml");
    std::fs::write(&config.file, &text).unwrap();
    let mode = |m| std::fs::set_permissions(&config.file, std::fs::Permissions::from_mode(m));
    mode(0o644).unwrap();
    let warnings = config.permission_warnings().join("\n");
    assert!(
        warnings.contains("holds the database password"),
        "{warnings}"
    );
    assert!(!warnings.contains("hunter2"), "{warnings}");
    mode(0o600).unwrap();
    let warnings = config.permission_warnings().join("\n");
    assert!(!warnings.contains("database password"), "{warnings}");
    // 0640, what the warning itself recommends (a group only linkgate's user is in): quiet.
    mode(0o640).unwrap();
    let warnings = config.permission_warnings().join("\n");
    assert!(!warnings.contains("database password"), "{warnings}");
    mode(0o660).unwrap();
    let warnings = config.permission_warnings().join("\n");
    assert!(
        warnings.contains("database password"),
        "group-writable: {warnings}"
    );
}

#[test]
fn a_missing_config_file_says_how_to_choose_one() {
    let err = load(Path::new("/nonexistent/linkgate.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--config PATH") && err.contains("$LINKGATE_CONFIG"),
        "{err}"
    );
}

#[test]
fn refuses_bad_values() {
    let err = check(&GOOD.replace("127.0.0.1:8080", "localhost")).unwrap_err();
    assert!(err.contains("server.listen"), "{err}");
    let err = check(&GOOD.replace("https://auth", "ftp://auth")).unwrap_err();
    assert!(err.contains("server.public_url"), "{err}");
    let err = check(&GOOD.replace("https://pitangui", "http://pitangui")).unwrap_err();
    assert!(err.contains("redirect_uris[0]"), "{err}");
    let err = check(&GOOD.replace("0123456789abcdef", "short")).unwrap_err();
    assert!(err.contains("clients[0].secret"), "{err}");
    let dup = format!("{GOOD}{}", &GOOD[GOOD.find("[[clients]]").unwrap()..]);
    let err = check(&dup).unwrap_err();
    assert!(err.contains("duplicate client id"), "{err}");
}

#[test]
fn revocation_bound_ms_is_for_postgres_within_its_range_and_defaults_to_a_second() {
    let postgres = |extra: &str| {
        GOOD.replace(
            "path = \"data\"",
            &format!(
                "path = \"data\"\nbackend = \"postgres\"\nurl = \"postgres://u@db/x\"\n{extra}"
            ),
        )
    };
    let bound = |text: &str| check(text).map(|c| c.postgres.map(|p| p.revocation_bound));
    let secs = |ms| Ok(Some(std::time::Duration::from_millis(ms)));
    assert_eq!(bound(&postgres("")), secs(1000));
    assert_eq!(bound(&postgres("revocation_bound_ms = 0")), secs(0));
    assert_eq!(bound(&postgres("revocation_bound_ms = 60000")), secs(60000));
    let too_long = bound(&postgres("revocation_bound_ms = 60001")).unwrap_err();
    assert!(
        too_long.contains("storage.revocation_bound_ms"),
        "{too_long}"
    );
    let sled = GOOD.replace(
        "path = \"data\"",
        "path = \"data\"\nrevocation_bound_ms = 500",
    );
    let refused = bound(&sled).unwrap_err();
    assert!(
        refused.contains("storage.revocation_bound_ms") && refused.contains("postgres"),
        "{refused}"
    );
}
