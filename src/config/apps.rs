//! `[apps]` and `[clients.alexa_app]`: linking from the operator's own iOS and Android apps
//! (Alexa app-to-app account linking, Google App Flip; `src/apps/`). Everything the server needs
//! to call the operator's session API and Amazon is checked here, at start-up and by
//! `--check-config`.

use super::login::{check_pointer, parse_target, Target};
use crate::base::secret::{self, Secret};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// The validated `[apps]` table.
#[derive(Debug, Clone)]
pub struct Apps {
    /// The operator's "who is this session" endpoint, called with the app's own
    /// `Authorization` header.
    pub session: Option<Target>,
    /// As configured, for messages.
    pub session_url: Option<String>,
    /// RFC 6901 pointer to the customer's stable id in the session answer.
    pub subject: String,
    pub display_name: Option<String>,
    pub timeout: Duration,
    /// The operator's backend authenticates with HTTP Basic `backend:<secret>`; an argon2 hash.
    pub backend_secret_hash: Option<String>,
    /// `TEAMID.bundle.id` of the iOS apps (apple-app-site-association).
    pub ios_app_ids: Vec<String>,
    /// The Android app (assetlinks.json), with its signing certificates' SHA-256.
    pub android_package: Option<String>,
    pub android_cert_fingerprints: Vec<String>,
}

/// A client's `[clients.alexa_app]`: Alexa app-to-app linking that starts in the operator's app.
#[derive(Debug, Clone)]
pub struct AlexaApp {
    pub skill_id: String,
    /// "development" or "live".
    pub stage: String,
    pub lwa_client_id: String,
    pub lwa_client_secret: Secret,
    /// The app's universal link, where Amazon sends the customer back; also a redirect URI.
    pub app_redirect_uri: String,
    pub alexa_app_url: String,
    pub lwa_authorize_url: String,
    pub lwa_token_url: Target,
    pub alexa_endpoint_url: Target,
}

pub const DEFAULT_ALEXA_APP_URL: &str =
    "https://alexa.amazon.com/spa/skill-account-linking-consent";
pub const DEFAULT_LWA_AUTHORIZE_URL: &str = "https://www.amazon.com/ap/oa";
pub const DEFAULT_LWA_TOKEN_URL: &str = "https://api.amazon.com/auth/o2/token";
/// Amazon's documentation names this host (the contract's example, `api.amazon.com`, answers
/// only Login with Amazon); see CHANGELOG.md.
pub const DEFAULT_ALEXA_ENDPOINT_URL: &str = "https://api.amazonalexa.com/v1/alexaApiEndpoint";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApps {
    session_url: Option<String>,
    subject: Option<String>,
    display_name: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    backend_secret_hash: Option<String>,
    #[serde(default)]
    ios_app_ids: Vec<String>,
    android_package: Option<String>,
    #[serde(default)]
    android_cert_fingerprints: Vec<String>,
}

fn default_timeout_ms() -> u64 {
    3000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlexaApp {
    skill_id: String,
    #[serde(default = "default_stage")]
    stage: String,
    lwa_client_id: String,
    lwa_client_secret: Option<String>,
    lwa_client_secret_file: Option<std::path::PathBuf>,
    app_redirect_uri: String,
    alexa_app_url: Option<String>,
    lwa_authorize_url: Option<String>,
    lwa_token_url: Option<String>,
    alexa_endpoint_url: Option<String>,
}

fn default_stage() -> String {
    "development".into()
}

/// Checks `[apps]`; problems go through `problem(key, what)`.
pub(super) fn check_apps(raw: RawApps, problem: &mut impl FnMut(&str, String)) -> Option<Apps> {
    let mut failed = false;
    let mut bad = |key: &str, what: String| {
        failed = true;
        problem(&format!("apps.{key}"), what);
    };
    let session = match &raw.session_url {
        Some(url) => match parse_target(url) {
            Ok(target) => Some(target),
            Err(why) => {
                bad("session_url", format!("`{url}` {why}"));
                None
            }
        },
        None => None,
    };
    if raw.session_url.is_none() && raw.backend_secret_hash.is_none() {
        bad(
            "session_url",
            "missing: set `session_url` (the app's own session check) and/or `backend_secret_hash` (the operator's backend)".into(),
        );
    }
    let subject = raw.subject.unwrap_or_default();
    if raw.session_url.is_some() {
        if let Err(why) = check_pointer(&subject) {
            bad("subject", format!("`{subject}` {why}"));
        }
    }
    if let Some(pointer) = &raw.display_name {
        if let Err(why) = check_pointer(pointer) {
            bad("display_name", format!("`{pointer}` {why}"));
        }
    }
    if !(100..=30_000).contains(&raw.timeout_ms) {
        bad(
            "timeout_ms",
            format!("{} is out of range: use 100 to 30000", raw.timeout_ms),
        );
    }
    if let Some(hash) = &raw.backend_secret_hash {
        if !secret::is_phc_hash(hash) {
            bad(
                "backend_secret_hash",
                "is not an argon2 PHC string (\"$argon2id$v=19$...\")".into(),
            );
        }
    }
    for (i, id) in raw.ios_app_ids.iter().enumerate() {
        // TEAMID.bundle.identifier: a 10-character team id, a dot, a reverse-DNS bundle id.
        let ok = id.split_once('.').is_some_and(|(team, bundle)| {
            team.len() == 10
                && team.bytes().all(|b| b.is_ascii_alphanumeric())
                && !bundle.is_empty()
                && bundle
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        });
        if !ok {
            bad(
                &format!("ios_app_ids[{i}]"),
                format!("`{id}` is not TEAMID.bundle.id (e.g. \"ABCDE12345.com.example.taxi\")"),
            );
        }
    }
    if let Some(package) = &raw.android_package {
        let ok = package.contains('.')
            && package.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if !ok {
            bad(
                "android_package",
                format!("`{package}` is not an Android package name (e.g. \"com.example.taxi\")"),
            );
        }
        if raw.android_cert_fingerprints.is_empty() {
            bad(
                "android_cert_fingerprints",
                "at least one SHA-256 fingerprint of the app's signing certificate is required with android_package".into(),
            );
        }
    } else if !raw.android_cert_fingerprints.is_empty() {
        bad(
            "android_package",
            "missing: android_cert_fingerprints needs the package they sign".into(),
        );
    }
    let mut fingerprints = Vec::new();
    for (i, fp) in raw.android_cert_fingerprints.iter().enumerate() {
        match normalize_fingerprint(fp) {
            Some(fp) => fingerprints.push(fp),
            None => bad(
                &format!("android_cert_fingerprints[{i}]"),
                format!(
                    "`{fp}` is not a SHA-256 fingerprint (32 hex bytes, e.g. \"14:6D:E9:...\")"
                ),
            ),
        }
    }
    if failed {
        return None;
    }
    Some(Apps {
        session,
        session_url: raw.session_url,
        subject,
        display_name: raw.display_name,
        timeout: Duration::from_millis(raw.timeout_ms),
        backend_secret_hash: raw.backend_secret_hash,
        ios_app_ids: raw.ios_app_ids,
        android_package: raw.android_package,
        android_cert_fingerprints: fingerprints,
    })
}

/// An Amazon URL: https (or http to a loopback stand-in); the two the customer's phone opens
/// get linkgate's parameters appended, so they carry no query of their own.
fn amazon_url(value: &str, query_allowed: bool) -> Result<Target, String> {
    let target = parse_target(value)?;
    if !query_allowed && value.contains('?') {
        return Err("must not carry a query: linkgate adds the parameters".into());
    }
    Ok(target)
}

/// `14:6D:E9:…` (32 bytes) in the upper-case, colon-separated form assetlinks.json uses.
fn normalize_fingerprint(fp: &str) -> Option<String> {
    let hex: String = fp.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[i * 2..i * 2 + 2]).collect();
    Some(pairs.join(":"))
}

/// Checks a client's `[clients.alexa_app]`. `key` names the client's keys; `redirect_uris` are
/// the client's, which must hold the app's universal link.
pub(super) fn check_alexa_app(
    raw: RawAlexaApp,
    redirect_uris: &[String],
    dir: &Path,
    key: &dyn Fn(&str) -> String,
    problem: &mut impl FnMut(&str, String),
) -> Option<AlexaApp> {
    let mut failed = false;
    let mut bad = |k: &str, what: String| {
        failed = true;
        problem(&key(&format!("alexa_app.{k}")), what);
    };
    if !raw.skill_id.starts_with("amzn1.ask.skill.") {
        bad(
            "skill_id",
            format!(
                "`{}` is not a skill id (\"amzn1.ask.skill.…\", from the Alexa developer console)",
                raw.skill_id
            ),
        );
    }
    if raw.stage != "development" && raw.stage != "live" {
        bad(
            "stage",
            format!(
                "`{}` is not a skill stage; use \"development\" or \"live\"",
                raw.stage
            ),
        );
    }
    if raw.lwa_client_id.trim().is_empty() || raw.lwa_client_id.chars().any(char::is_control) {
        bad(
            "lwa_client_id",
            "must be the skill's Alexa Client Id (account linking, in the console)".into(),
        );
    }
    let secret = match (raw.lwa_client_secret, raw.lwa_client_secret_file) {
        (Some(_), Some(_)) => {
            bad(
                "lwa_client_secret",
                "set either `lwa_client_secret` or `lwa_client_secret_file`, not both".into(),
            );
            None
        }
        (None, None) => {
            bad(
                "lwa_client_secret",
                "missing: the skill's Alexa Client Secret (`lwa_client_secret` or `lwa_client_secret_file`)".into(),
            );
            None
        }
        (Some(s), None) => Some(s),
        (None, Some(path)) => {
            let path = if path.is_absolute() {
                path
            } else {
                dir.join(path)
            };
            match std::fs::read_to_string(&path) {
                Ok(text) => Some(text.trim().to_string()),
                Err(e) => {
                    bad(
                        "lwa_client_secret_file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            }
        }
    };
    let secret = match secret {
        Some(s) if s.is_empty() || s.chars().any(char::is_control) => {
            // A secret: say what is wrong with it, never what it is.
            bad(
                "lwa_client_secret",
                "must be one line of printable characters".into(),
            );
            None
        }
        other => other,
    };
    if !redirect_uris.iter().any(|r| r == &raw.app_redirect_uri) {
        bad(
            "app_redirect_uri",
            format!(
                "`{}` must also be one of the client's redirect_uris (Alexa redeems the code with it)",
                raw.app_redirect_uri
            ),
        );
    }
    let mut url = |k: &str, value: Option<String>, default: &str, query_allowed: bool| {
        let value = value.unwrap_or_else(|| default.to_string());
        match amazon_url(&value, query_allowed) {
            Ok(target) => Some((value, target)),
            Err(why) => {
                bad(k, format!("`{value}` {why}"));
                None
            }
        }
    };
    let alexa_app_url = url(
        "alexa_app_url",
        raw.alexa_app_url,
        DEFAULT_ALEXA_APP_URL,
        false,
    );
    let lwa_authorize_url = url(
        "lwa_authorize_url",
        raw.lwa_authorize_url,
        DEFAULT_LWA_AUTHORIZE_URL,
        false,
    );
    let lwa_token_url = url(
        "lwa_token_url",
        raw.lwa_token_url,
        DEFAULT_LWA_TOKEN_URL,
        true,
    );
    let alexa_endpoint_url = url(
        "alexa_endpoint_url",
        raw.alexa_endpoint_url,
        DEFAULT_ALEXA_ENDPOINT_URL,
        true,
    );
    let (
        Some(secret),
        Some(alexa_app_url),
        Some(lwa_authorize_url),
        Some(lwa_token_url),
        Some(alexa_endpoint_url),
    ) = (
        secret,
        alexa_app_url,
        lwa_authorize_url,
        lwa_token_url,
        alexa_endpoint_url,
    )
    else {
        return None;
    };
    if failed {
        return None;
    }
    Some(AlexaApp {
        skill_id: raw.skill_id,
        stage: raw.stage,
        lwa_client_id: raw.lwa_client_id,
        lwa_client_secret: Secret::new(secret),
        app_redirect_uri: raw.app_redirect_uri,
        alexa_app_url: alexa_app_url.0,
        lwa_authorize_url: lwa_authorize_url.0,
        lwa_token_url: lwa_token_url.1,
        alexa_endpoint_url: alexa_endpoint_url.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_take_either_form_and_come_out_colon_separated() {
        let plain = "146de983c5730650d8eeb4bd1b0e0a8f0d8d9c1f1e1d1c1b1a19181716151413";
        let fp = normalize_fingerprint(plain).unwrap();
        assert!(fp.starts_with("14:6D:E9:83:"));
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert_eq!(normalize_fingerprint(&fp).unwrap(), fp);
        assert!(normalize_fingerprint("14:6D").is_none());
        assert!(normalize_fingerprint(&"zz".repeat(32)).is_none());
    }
}
