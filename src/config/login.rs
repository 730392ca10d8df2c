//! The `[login]` and `[login.api]` tables: where passwords are checked. Local users (from
//! `--add-user`) are the default; an operator who already has customer accounts points linkgate
//! at their existing login API instead (or as well). Everything the server needs to call that API
//! safely is checked here, at start-up and by `--check-config`, so a typo in a URL or a JSON
//! pointer is an error message rather than customers who cannot sign in.

use crate::base::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a typed username and password are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginSource {
    /// Users created with `--add-user` (the default).
    #[default]
    Local,
    /// The operator's login API only.
    Api,
    /// A local user of that name first; any other name goes to the API.
    Both,
}

impl LoginSource {
    pub fn name(self) -> &'static str {
        match self {
            LoginSource::Local => "local",
            LoginSource::Api => "api",
            LoginSource::Both => "both",
        }
    }

    pub fn uses_api(self) -> bool {
        self != LoginSource::Local
    }
}

/// The validated `[login]` table.
#[derive(Debug, Clone, Default)]
pub struct Login {
    pub source: LoginSource,
    /// `[login.api]`, when configured (required for `api` and `both`).
    pub api: Option<LoginApi>,
}

/// How the login API wants its request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
}

/// The validated `[login.api]` table.
#[derive(Debug, Clone)]
pub struct LoginApi {
    /// As configured.
    pub url: String,
    pub https: bool,
    /// Host name or IP address (IPv6 without brackets), for DNS, SNI and the loopback check.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// `/path?query` (at least `/`).
    pub path: String,
    pub body: BodyFormat,
    pub username_field: String,
    pub password_field: String,
    /// RFC 6901 JSON pointer to the user's stable id in a 2xx answer.
    pub subject: String,
    /// RFC 6901 JSON pointer to a name to show on the consent page.
    pub display_name: Option<String>,
    pub timeout: Duration,
    /// At most this many calls to the API at once.
    pub max_in_flight: usize,
    /// Extra request headers (an API key); the values are secrets and never logged.
    pub headers: Vec<(String, Secret)>,
    /// Extra CA certificates (DER) trusted for the API besides the webpki (Mozilla) roots.
    pub ca_file: Option<PathBuf>,
    pub extra_roots: Vec<Vec<u8>>,
    /// `check_url`: a customer's links are re-checked on refresh (`oauth::customer_check`).
    pub check: Option<CustomerCheck>,
    /// RFC 6901 JSON pointer that must be `true` in a 2xx answer for it to mean "signed in" (an
    /// API that answers 200 `{"ok": false}` to a wrong password).
    pub success: Option<String>,
}

/// `check_url` and `check_every_hours`: on a refresh, at most every `every_secs` per link,
/// linkgate asks the API whether the link's subject is still a customer (`GET`, same host and
/// headers as `url`); a 404 or 410 ends the link.
#[derive(Debug, Clone)]
pub struct CustomerCheck {
    /// As configured, with `{subject}`.
    pub url: String,
    /// The `/path?query` of `url`, with `{subject}` where the subject goes (percent-encoded).
    pub path: String,
    /// 0: on every refresh.
    pub every_secs: u64,
}

/// What `{subject}` in `check_url` becomes for `subject`: every byte outside RFC 3986's
/// unreserved set percent-encoded, so a subject cannot change the path or the query; `None` for
/// a subject that would be a dot-segment (`.`, `..`) or nothing.
pub fn check_path(check: &CustomerCheck, subject: &str) -> Option<String> {
    if ["", ".", ".."].contains(&subject) {
        return None;
    }
    let mut encoded = String::with_capacity(subject.len());
    for byte in subject.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Some(check.path.replace(SUBJECT_MARK, &encoded))
}

const SUBJECT_MARK: &str = "{subject}";
/// The longest `check_every_hours`: a year.
const MAX_CHECK_HOURS: u64 = 24 * 366;

/// Headers linkgate sets itself; configuring them would break the request.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    source: Option<String>,
    api: Option<RawLoginApi>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoginApi {
    url: String,
    #[serde(default = "default_body")]
    body: String,
    #[serde(default = "default_username_field")]
    username_field: String,
    #[serde(default = "default_password_field")]
    password_field: String,
    subject: String,
    display_name: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    ca_file: Option<PathBuf>,
    check_url: Option<String>,
    #[serde(default = "default_check_every_hours")]
    check_every_hours: u64,
    success: Option<String>,
}

fn default_check_every_hours() -> u64 {
    24
}

fn default_body() -> String {
    "json".into()
}
fn default_username_field() -> String {
    "username".into()
}
fn default_password_field() -> String {
    "password".into()
}
fn default_timeout_ms() -> u64 {
    3000
}
fn default_max_in_flight() -> usize {
    16
}

/// Checks `[login]`; problems are reported through `problem(key, what)`.
pub(super) fn check_login(
    raw: RawLogin,
    dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> Login {
    let source = match raw.source.as_deref() {
        None | Some("local") => LoginSource::Local,
        Some("api") => LoginSource::Api,
        Some("both") => LoginSource::Both,
        Some(other) => {
            problem(
                "login.source",
                format!("`{other}` is not a login source; use \"local\", \"api\" or \"both\""),
            );
            LoginSource::Local
        }
    };
    let api = raw.api.and_then(|api| check_api(api, dir, problem));
    if source.uses_api() && api.is_none() {
        problem(
            "login.source",
            format!(
                "\"{}\" needs a valid [login.api] table (url, subject, ...); see config.example.toml",
                source.name()
            ),
        );
    }
    Login { source, api }
}

fn check_api(
    raw: RawLoginApi,
    dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> Option<LoginApi> {
    let mut failed = false;
    let mut bad = |key: &str, what: String| {
        failed = true;
        problem(&format!("login.api.{key}"), what);
    };
    let target = match parse_target(&raw.url) {
        Ok(target) => Some(target),
        Err(why) => {
            bad("url", format!("`{}` {why}", raw.url));
            None
        }
    };
    let body = match raw.body.as_str() {
        "json" => BodyFormat::Json,
        "form" => BodyFormat::Form,
        other => {
            bad(
                "body",
                format!("`{other}` is not a body format; use \"json\" or \"form\""),
            );
            BodyFormat::Json
        }
    };
    for (key, field) in [
        ("username_field", &raw.username_field),
        ("password_field", &raw.password_field),
    ] {
        if field.is_empty() || field.chars().any(char::is_control) {
            bad(key, "must be a non-empty field name".into());
        }
    }
    if raw.username_field == raw.password_field {
        bad(
            "password_field",
            format!(
                "is the same as username_field (`{}`); the API needs two fields",
                raw.password_field
            ),
        );
    }
    if let Err(why) = check_pointer(&raw.subject) {
        bad("subject", format!("`{}` {why}", raw.subject));
    }
    for (key, pointer) in [
        ("display_name", &raw.display_name),
        ("success", &raw.success),
    ] {
        if let Some(pointer) = pointer {
            if let Err(why) = check_pointer(pointer) {
                bad(key, format!("`{pointer}` {why}"));
            }
        }
    }
    if !(100..=30_000).contains(&raw.timeout_ms) {
        bad(
            "timeout_ms",
            format!(
                "{} is out of range: use 100 to 30000 (Alexa's web view waits for the page)",
                raw.timeout_ms
            ),
        );
    }
    if !(1..=1024).contains(&raw.max_in_flight) {
        bad("max_in_flight", "must be between 1 and 1024".into());
    }
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        let key = format!("headers.{name}");
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            bad(&key, format!("`{name}` is not a valid HTTP header name"));
        } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            bad(&key, format!("`{name}` is set by linkgate itself"));
        } else if hyper::header::HeaderValue::from_str(&value).is_err() {
            // The value is a secret: say what is wrong with it, never what it is.
            bad(
                &key,
                "the value is not a valid HTTP header value (printable ASCII, no line breaks)"
                    .into(),
            );
        } else {
            headers.push((name, Secret::new(value)));
        }
    }
    let ca_file = raw.ca_file.map(|path| {
        if path.is_absolute() {
            path
        } else {
            dir.join(path)
        }
    });
    let mut extra_roots = Vec::new();
    if let Some(path) = &ca_file {
        match read_ca_file(path) {
            Ok(certs) => extra_roots = certs,
            Err(why) => bad("ca_file", format!("{}: {why}", path.display())),
        }
    }
    let check = raw.check_url.as_ref().and_then(|url| {
        let why = match (parse_target(url), &target) {
            (Err(why), _) => format!("`{url}` {why}"),
            (Ok(_), _) if url.matches(SUBJECT_MARK).count() != 1 => {
                format!("`{url}` must contain {SUBJECT_MARK} once, where the subject goes")
            }
            (Ok(check), Some(login))
                if (check.https, &check.host, check.port)
                    != (login.https, &login.host, login.port) =>
            {
                format!(
                    "`{url}` must be on the same scheme, host and port as login.api.url \
                     (the configured headers go to that host only)"
                )
            }
            (Ok(check), _) => {
                return Some(CustomerCheck {
                    url: url.clone(),
                    path: check.path,
                    every_secs: raw.check_every_hours * 3600,
                })
            }
        };
        bad("check_url", why);
        None
    });
    if raw.check_every_hours > MAX_CHECK_HOURS {
        bad(
            "check_every_hours",
            format!(
                "{} is out of range: use 0 (every refresh) to {MAX_CHECK_HOURS}",
                raw.check_every_hours
            ),
        );
    }
    let target = target?;
    if failed {
        return None;
    }
    Some(LoginApi {
        url: raw.url,
        https: target.https,
        host: target.host,
        port: target.port,
        authority: target.authority,
        path: target.path,
        body,
        username_field: raw.username_field,
        password_field: raw.password_field,
        subject: raw.subject,
        display_name: raw.display_name,
        timeout: Duration::from_millis(raw.timeout_ms),
        max_in_flight: raw.max_in_flight,
        headers,
        ca_file,
        extra_roots,
        check,
        success: raw.success,
    })
}

/// An absolute URL split for an outgoing HTTP client.
#[derive(Debug, Clone)]
pub struct Target {
    pub https: bool,
    /// Host name or IP address (IPv6 without brackets), for DNS, SNI and the loopback check.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// `/path?query` (at least `/`).
    pub path: String,
}

/// `https://host[:port]/path[?query]`, or `http://` to a loopback address only: a password must
/// not cross a network in the clear.
pub fn parse_target(url: &str) -> Result<Target, String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(
            "is not an absolute https URL (e.g. \"https://api.example.com/v1/login\")".into(),
        );
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let path = &rest[end..];
    if path.contains('#') {
        return Err("must not contain a fragment (#)".into());
    }
    if authority.is_empty() {
        return Err("has no host".into());
    }
    if authority.contains('@') {
        return Err(
            "must not carry user info (user@host); put credentials in login.api.headers".into(),
        );
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let close = bracketed.find(']').ok_or("has an unclosed IPv6 bracket")?;
        let host = &bracketed[..close];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("has an invalid IPv6 address `{host}`"));
        }
        (host, &bracketed[close + 1..])
    } else {
        match authority.find(':') {
            Some(colon) => (&authority[..colon], &authority[colon..]),
            None => (authority, ""),
        }
    };
    let port = match port {
        "" => {
            if https {
                443
            } else {
                80
            }
        }
        p => p
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("has an invalid port `{}`", p.trim_start_matches(':')))?,
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if !https && !is_loopback_host(host) {
        return Err("must use https: plain http is allowed only to a loopback address (127.0.0.1, [::1], localhost), because it carries passwords".into());
    }
    Ok(Target {
        https,
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        path: if path.is_empty() {
            "/".into()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        },
    })
}

/// `localhost`, or a literal loopback address (127.0.0.0/8, ::1).
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// RFC 6901: empty (the whole document) is refused, since an id is never the whole answer;
/// otherwise `/`-separated tokens where `~` is only `~0` or `~1`.
pub(super) fn check_pointer(pointer: &str) -> Result<(), &'static str> {
    if !pointer.starts_with('/') {
        return Err("is not a JSON pointer (RFC 6901): it must start with `/`, e.g. \"/user/id\"");
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("is not a JSON pointer (RFC 6901): `~` must be followed by 0 or 1");
        }
    }
    Ok(())
}

/// The certificates of a PEM file, DER-encoded; at least one.
fn read_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let certs = crate::base::tls_client::pem_certificates(path)?;
    Ok(certs.iter().map(|c| c.as_ref().to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{check, GOOD};

    #[test]
    fn targets() {
        let t = parse_target("https://api.example.com/v1/login").unwrap();
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("api.example.com", 443));
        assert_eq!(t.path, "/v1/login");
        assert_eq!(t.authority, "api.example.com");
        let t = parse_target("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 9000, "/")
        );
        let t = parse_target("http://[::1]:81/login?v=2").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 81));
        assert_eq!(t.path, "/login?v=2");
        assert!(parse_target("http://localhost:8000/x").is_ok());
        for (url, why) in [
            ("http://api.example.com/login", "loopback"),
            ("http://10.0.0.1/login", "loopback"),
            ("ftp://api.example.com", "absolute https URL"),
            ("api.example.com/login", "absolute https URL"),
            ("https://user:pw@api.example.com/", "user info"),
            ("https://api.example.com/#x", "fragment"),
            ("https://api.example.com:99999/", "port"),
            ("https://:443/", "no host"),
            ("https://[::1/", "bracket"),
        ] {
            let err = parse_target(url).err().unwrap_or_default();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn pointers() {
        assert!(check_pointer("/user/id").is_ok());
        assert!(check_pointer("/a~1b/~0c").is_ok());
        assert!(check_pointer("user/id").is_err());
        assert!(check_pointer("").is_err());
        assert!(check_pointer("/a~2").is_err());
        assert!(check_pointer("/a~").is_err());
    }

    const LOGIN_API: &str = r#"
[login]
source = "api"
[login.api]
url = "https://api.example-taxi.com/v1/login"
username_field = "email"
subject = "/user/id"
display_name = "/user/name"
headers = { "X-Api-Key" = "very-secret-key" }
"#;

    #[test]
    fn login_api_is_read() {
        let login = check(&format!("{GOOD}{LOGIN_API}")).unwrap().login;
        assert_eq!(login.source, LoginSource::Api);
        let api = login.api.unwrap();
        assert_eq!(api.host, "api.example-taxi.com");
        assert_eq!((api.port, api.path.as_str()), (443, "/v1/login"));
        assert_eq!(api.body, BodyFormat::Json);
        assert_eq!(
            (api.username_field.as_str(), api.password_field.as_str()),
            ("email", "password")
        );
        assert_eq!(api.timeout, std::time::Duration::from_millis(3000));
        assert_eq!(api.max_in_flight, 16);
        assert_eq!(api.headers[0].0, "X-Api-Key");
        assert!(!format!("{api:?}").contains("very-secret-key"));
        let local = check(GOOD).unwrap();
        assert_eq!(local.login.source, LoginSource::Local);
        assert!(local.warnings().iter().all(|w| !w.contains("login")));
        let unused = check(&format!(
            "{GOOD}{}",
            LOGIN_API.replace("\"api\"", "\"local\"")
        ))
        .unwrap();
        assert!(unused.warnings().iter().any(|w| w.contains("[login.api]")));
    }

    /// The commented-out `[login]` section of config.example.toml works once uncommented.
    #[test]
    fn the_example_login_section_is_valid() {
        let example = include_str!("../../config.example.toml");
        let start = example.find("# [login]").expect("a [login] section");
        let section: String = example[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .filter(|line| !line.contains("ca_file"))
            .map(|line| format!("{}\n", line.trim_start_matches("# ")))
            .collect();
        let section = section.replacen("source = \"local\"", "source = \"api\"", 1);
        let config = check(&format!("{GOOD}{section}")).unwrap();
        let api = config.login.api.unwrap();
        assert_eq!(api.subject, "/user/id");
        assert_eq!(api.headers.len(), 1);
    }

    #[test]
    fn login_api_problems_name_the_key() {
        let with = |from: &str, to: &str| {
            check(&format!("{GOOD}{}", LOGIN_API.replace(from, to))).unwrap_err()
        };
        let err = with("\"api\"", "\"ldap\"");
        assert!(
            err.contains("key `login.source`") && err.contains("\"both\""),
            "{err}"
        );
        let err = with(
            "https://api.example-taxi.com",
            "http://api.example-taxi.com",
        );
        assert!(
            err.contains("key `login.api.url`") && err.contains("loopback"),
            "{err}"
        );
        let err = with("\"/user/id\"", "\"user.id\"");
        assert!(
            err.contains("key `login.api.subject`") && err.contains("RFC 6901"),
            "{err}"
        );
        let err = with("display_name = \"/user/name\"", "display_name = \"name\"");
        assert!(err.contains("key `login.api.display_name`"), "{err}");
        let err = with("subject =", "body = \"xml\"\nsubject =");
        assert!(err.contains("key `login.api.body`"), "{err}");
        let err = with("subject =", "timeout_ms = 0\nsubject =");
        assert!(err.contains("key `login.api.timeout_ms`"), "{err}");
        let err = with("subject =", "max_in_flight = 0\nsubject =");
        assert!(err.contains("key `login.api.max_in_flight`"), "{err}");
        let err = with(
            "\"X-Api-Key\" = \"very-secret-key\"",
            "\"X-Api-Key\" = \"very-secret\\nkey\"",
        );
        assert!(err.contains("key `login.api.headers.X-Api-Key`"), "{err}");
        assert!(
            !err.contains("very-secret"),
            "a header value is printed: {err}"
        );
        let err = with("\"X-Api-Key\"", "\"Content-Type\"");
        assert!(err.contains("set by linkgate"), "{err}");
        let err = with("subject =", "ca_file = \"missing.pem\"\nsubject =");
        assert!(
            err.contains("key `login.api.ca_file`") && err.contains("/etc/linkgate/missing.pem"),
            "{err}"
        );
        let err = with("subject =", "colour = 1\nsubject =");
        assert!(err.contains("colour"), "{err}");
        let err = check(&format!("{GOOD}[login]\nsource = \"both\"\n")).unwrap_err();
        assert!(
            err.contains("key `login.source`") && err.contains("[login.api]"),
            "{err}"
        );
    }
}
