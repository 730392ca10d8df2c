//! The TOML config file: its schema (unknown keys are errors, so typos cannot pass silently) and
//! the checks that turn it into a `Config` the server can trust. Every problem is reported as one
//! line naming the file, the key and what is wrong.

use crate::base::contrast::{self, Rgb};
use crate::base::lang::Lang;
use crate::base::secret::{self, Secret};
use crate::base::url;
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

mod apps;
mod grant_types;
mod login;
mod proxies;
mod served;
pub use apps::{AlexaApp, Apps};
pub use grant_types::{GrantType, DEFAULT_GRANT_TYPES};
pub use login::{
    check_path, is_loopback_host, parse_target, BodyFormat, CustomerCheck, Login, LoginApi,
    LoginSource, Target,
};
pub use proxies::{ProxyRange, TrustedProxies};
pub use served::Served;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub file: PathBuf,
    /// SHA-256 (hex) of the file's text when it was read (`served.rs`).
    pub file_sha256: String,
    pub listen: SocketAddr,
    /// `public_url` without a trailing slash.
    pub public_url: String,
    /// Its path ("" or "/prefix"), worked out once: every request is routed through it.
    public_path: String,
    /// Addresses and CIDR ranges whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Serve `/metrics` (to loopback clients only).
    pub metrics: bool,
    /// With it, `/metrics` also answers `Authorization: Bearer <token>` from anywhere.
    pub metrics_token: Option<crate::base::secret::Secret>,
    /// Serve HTTPS directly with these PEM files.
    pub tls: Option<TlsFiles>,
    /// Serve HTTPS with a certificate obtained and renewed over ACME (`[server.acme]`).
    pub acme: Option<AcmeConfig>,
    /// A plain-HTTP listener: ACME HTTP-01 challenges, and a redirect to https for the rest.
    pub http_listen: Option<SocketAddr>,
    pub limits: Limits,
    pub storage_path: PathBuf,
    /// sled's page cache in bytes.
    pub cache_bytes: u64,
    /// How often expired codes and tokens are swept.
    pub sweep_interval_secs: u64,
    /// `[storage] backend = "postgres"`: the database (`storage_path` then only holds the
    /// node's admin socket and ACME cache).
    pub postgres: Option<crate::store::PostgresSettings>,
    pub tokens: TokenTtls,
    pub ui: Ui,
    pub clients: Vec<Client>,
    /// `[login]`: where passwords are checked (local users, the operator's login API, or both).
    pub login: Login,
    /// `[accounts]`: invitations and password links (issue 15).
    pub accounts: Accounts,
    /// `[apps]`: linking from the operator's own iOS and Android apps.
    pub apps: Option<Apps>,
}

/// `[accounts]`.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// How long an `--invite` / `--reset-password` link lives, in seconds.
    pub invite_ttl_secs: u64,
    /// Every local user must use two-factor sign-in: one without it enrols at their next sign-in
    /// in the authorization flow, before consent.
    pub require_totp: bool,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[server.acme]`: where the certificate for `public_url`'s host comes from.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The account contact (`mailto:` is added).
    pub email: String,
    /// The ACME directory URL.
    pub directory: String,
    /// An extra CA (PEM) trusted for the ACME server's own HTTPS API.
    pub directory_ca: Option<PathBuf>,
    /// The DNS name the certificate is for: `public_url`'s host, lower case.
    pub domain: String,
}

/// Let's Encrypt's production directory, the default `server.acme.directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits) for trials.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_connections: usize,
    /// Open connections one client address (IPv6: one /64) may hold; trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Further connections from an address whose own share is full, for token clients: each
    /// must present valid client credentials at `/token`, `/introspect` or `/revoke` on its first
    /// request (`http/vetting.rs`). 0: none.
    pub max_client_connections_per_ip: usize,
    /// The whole request body must arrive within this.
    pub body_read_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct TokenTtls {
    pub code_secs: u64,
    pub access_secs: u64,
    /// 0: refresh tokens live until revoked.
    pub refresh_secs: u64,
}

/// How the customer-facing pages look and speak.
#[derive(Debug, Clone)]
pub struct Ui {
    pub title: String,
    /// Always this language, whatever the browser asks for.
    pub language: Option<Lang>,
    /// `#rrggbb`, lower case; readable under white text.
    pub accent_color: Option<String>,
    /// The SVG markup to inline, from `<svg` on; checked for scripts at start-up.
    pub logo: Option<String>,
    /// A contact line under the forms ("Help: help@example.com").
    pub support: Option<String>,
    /// The sign-in field asks for an email address, not a username: the login API's
    /// `username_field` is an email field (e.g. `email`), so the label says so.
    pub username_is_email: bool,
}

impl Default for Ui {
    fn default() -> Self {
        Ui {
            title: default_title(),
            language: None,
            accent_color: None,
            logo: None,
            support: None,
            username_is_email: false,
        }
    }
}

/// The largest logo accepted: it is inlined into every page.
pub const MAX_LOGO_BYTES: u64 = 64 * 1024;
/// The longest support line accepted.
pub const MAX_SUPPORT_CHARS: usize = 300;

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: ClientSecret,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub require_pkce: bool,
    pub rotate_refresh_tokens: bool,
    /// `[clients.alexa_app]`: Alexa app-to-app linking from the operator's app.
    pub alexa_app: Option<AlexaApp>,
    /// The grant types it may use at `/token` (sorted; default: the code flow and refreshes).
    pub grant_types: Vec<GrantType>,
    /// RFC 8707 resource indicators it may name: each becomes a token's audience.
    pub resources: Vec<String>,
    /// The scopes a `client_credentials` token may carry.
    pub service_scopes: Vec<String>,
}

impl Client {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// A client `id` with the defaults (secret `0123456789abcdef`, no redirect URI), for unit
    /// tests to adjust.
    #[cfg(test)]
    pub fn for_tests(id: &str) -> Client {
        Client {
            id: id.into(),
            secret: ClientSecret::Plain(Secret::new("0123456789abcdef")),
            name: id.into(),
            redirect_uris: Vec::new(),
            require_pkce: false,
            rotate_refresh_tokens: false,
            alexa_app: None,
            grant_types: DEFAULT_GRANT_TYPES.to_vec(),
            resources: Vec::new(),
            service_scopes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum ClientSecret {
    Plain(Secret),
    /// An argon2 PHC string.
    Hash(String),
}

impl Config {
    /// Warnings about who else on this machine can read what linkgate keeps secret: a config
    /// holding plaintext secrets that others can read (or its group write), or a data directory (password
    /// hashes, tokens' hashes; sled makes its files 0644) that is not 0700. For the start-up log,
    /// `--check-config` and `--doctor`.
    pub fn permission_warnings(&self) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let mut warnings = Vec::new();
        let plaintext = self
            .clients
            .iter()
            .any(|c| matches!(c.secret, ClientSecret::Plain(_)))
            || self.metrics_token.is_some();
        if let Ok(meta) = std::fs::metadata(&self.file) {
            let mode = meta.permissions().mode() & 0o777;
            // 0640 with a group only linkgate's user is in (the install step, the package) is
            // what this warning recommends: only others, or a group that may write, are told.
            let exposed = mode & 0o027 != 0;
            if plaintext && exposed {
                warnings.push(format!(
                    "{} holds client secrets in plain text and is readable by others (mode {mode:04o}): `chmod 600 {}` (or 640 with a group only linkgate's user is in), or use secret_hash",
                    self.file.display(),
                    self.file.display()
                ));
            }
            let db_password = self.postgres.as_ref().is_some_and(|p| p.has_password());
            if db_password && !plaintext && exposed {
                warnings.push(format!(
                    "{} holds the database password (storage.url) and is readable by others (mode {mode:04o}): `chmod 600 {}` (or 640 with a group only linkgate's user is in)",
                    self.file.display(),
                    self.file.display()
                ));
            }
        }
        if let Ok(meta) = std::fs::metadata(&self.storage_path) {
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() && mode & 0o077 != 0 {
                warnings.push(format!(
                    "the data directory {} is mode {mode:04o}, not 0700: others on this machine can read password hashes and records from it; `chmod 700 {}`",
                    self.storage_path.display(),
                    self.storage_path.display()
                ));
            }
        }
        warnings
    }

    /// Whether the world reaches us over HTTPS (decides the cookies' `Secure` flag).
    pub fn public_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The path part of `public_url` ("" or "/prefix"), for form actions behind a proxy prefix.
    pub fn public_path(&self) -> &str {
        &self.public_path
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// Things that work but that an operator should fix, for `--check-config` and the log.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.public_https() {
            warnings.push(format!(
                "server.public_url `{}` is plain http: Alexa and Google only link over HTTPS with a trusted certificate",
                self.public_url
            ));
        } else if self.tls.is_none() && self.acme.is_none() && self.trusted_proxies.is_empty() {
            warnings.push(
                "no [server.tls] and no server.trusted_proxies: HTTPS must be terminated by a reverse proxy in front of linkgate; list its address in trusted_proxies so client addresses are seen".to_string(),
            );
        }
        if let Some(acme) = &self.acme {
            if let Some(warning) = acme_port_warning(acme, &self.public_url, self.http_listen) {
                warnings.push(warning);
            }
        }
        for client in &self.clients {
            if let ClientSecret::Plain(secret) = &client.secret {
                if EXAMPLE_SECRETS.contains(&secret.expose()) {
                    warnings.push(format!(
                        "clients `{}`: the secret is the example one from the documentation; generate your own (e.g. `openssl rand -hex 32`)",
                        client.id
                    ));
                }
            }
        }
        if self.login.source == LoginSource::Local && self.login.api.is_some() {
            warnings.push(
                "[login.api] is configured but login.source is \"local\" (the default): the API is not called; set source = \"api\" or \"both\"".to_string(),
            );
        }
        warnings
    }
}

/// Secrets that appear in our documentation and must never guard a real deployment.
pub const EXAMPLE_SECRETS: &[&str] = &[
    "long-random-string",
    "change-me-to-a-long-random-string",
    "example-google-secret-change-me",
];

/// A config problem: everything the operator needs in one line.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {problem}", self.file.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---- the file as written -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    storage: RawStorage,
    #[serde(default)]
    tokens: RawTokens,
    #[serde(default)]
    ui: RawUi,
    #[serde(default)]
    clients: Vec<RawClient>,
    #[serde(default)]
    login: login::RawLogin,
    #[serde(default)]
    accounts: RawAccounts,
    apps: Option<apps::RawApps>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    #[serde(default = "default_invite_ttl_secs")]
    invite_ttl_secs: u64,
    #[serde(default)]
    require_totp: bool,
}

impl Default for RawAccounts {
    fn default() -> Self {
        RawAccounts {
            invite_ttl_secs: default_invite_ttl_secs(),
            require_totp: false,
        }
    }
}

fn default_invite_ttl_secs() -> u64 {
    24 * 3600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    public_url: String,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    tls: Option<RawTls>,
    acme: Option<RawAcme>,
    http_listen: Option<String>,
    #[serde(default)]
    metrics: bool,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default = "default_max_header_bytes")]
    max_header_bytes: usize,
    #[serde(default = "default_header_read_timeout_secs")]
    header_read_timeout_secs: u64,
    #[serde(default = "default_idle_timeout_secs")]
    idle_timeout_secs: u64,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    /// Unset: 64, or `max_connections` when that is smaller.
    max_connections_per_ip: Option<usize>,
    /// Unset: 256, or `max_connections` when that is smaller.
    max_client_connections_per_ip: Option<usize>,
    #[serde(default = "default_body_read_timeout_secs")]
    body_read_timeout_secs: u64,
    metrics_token: Option<String>,
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_max_header_bytes() -> usize {
    64 * 1024
}
fn default_header_read_timeout_secs() -> u64 {
    10
}
fn default_idle_timeout_secs() -> u64 {
    60
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_connections_per_ip() -> usize {
    64
}
fn default_max_client_connections_per_ip() -> usize {
    256
}
fn default_body_read_timeout_secs() -> u64 {
    10
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcme {
    email: String,
    directory: Option<String>,
    directory_ca: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: PathBuf,
    #[serde(default = "default_cache_mib")]
    cache_mib: u64,
    #[serde(default = "default_sweep_interval_secs")]
    sweep_interval_secs: u64,
    #[serde(default = "default_backend")]
    backend: String,
    url: Option<String>,
    pool_size: Option<u64>,
    ca_file: Option<PathBuf>,
}

fn default_backend() -> String {
    "sled".into()
}

fn default_sweep_interval_secs() -> u64 {
    60
}

fn default_cache_mib() -> u64 {
    16
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    #[serde(default = "default_code_ttl")]
    code_ttl_secs: u64,
    #[serde(default = "default_access_ttl")]
    access_ttl_secs: u64,
    #[serde(default)]
    refresh_ttl_secs: u64,
}

impl Default for RawTokens {
    fn default() -> Self {
        RawTokens {
            code_ttl_secs: default_code_ttl(),
            access_ttl_secs: default_access_ttl(),
            refresh_ttl_secs: 0,
        }
    }
}

fn default_code_ttl() -> u64 {
    300
}
fn default_access_ttl() -> u64 {
    3600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    #[serde(default = "default_title")]
    title: String,
    language: Option<String>,
    accent_color: Option<String>,
    logo: Option<PathBuf>,
    support: Option<String>,
}

impl Default for RawUi {
    fn default() -> Self {
        RawUi {
            title: default_title(),
            language: None,
            accent_color: None,
            logo: None,
            support: None,
        }
    }
}

/// Not "Sign in": the sign-in page's heading says that already.
fn default_title() -> String {
    "Account linking".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: String,
    secret: Option<String>,
    secret_hash: Option<String>,
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    require_pkce: bool,
    #[serde(default)]
    rotate_refresh_tokens: bool,
    alexa_app: Option<apps::RawAlexaApp>,
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    service_scopes: Vec<String>,
}

// ---- loading and checking -----------------------------------------------------------------

/// Reads, parses and validates the file.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let fail = |problem: String| ConfigError {
        file: file.to_path_buf(),
        problems: vec![problem],
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        fail(match e.kind() {
            std::io::ErrorKind::NotFound => "no such file: choose the config with --config PATH \
                 or $LINKGATE_CONFIG (without either, ./linkgate.toml); config.example.toml is \
                 a start"
                .to_string(),
            _ => format!("cannot read: {e}"),
        })
    })?;
    let raw = parse(&text).map_err(fail)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut config = validate(raw, dir).map_err(|problems| ConfigError {
        file: file.to_path_buf(),
        problems,
    })?;
    config.file = file.to_path_buf();
    config.file_sha256 = crate::base::secret::to_hex(&crate::base::secret::sha256(text.as_bytes()));
    Ok(config)
}

/// A config from `text` as `load` would check it (relative paths under `/etc/linkgate`), for
/// unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn parse_for_tests(text: &str) -> Result<Config, String> {
    let raw = parse(text)?;
    validate(raw, Path::new("/etc/linkgate")).map_err(|p| p.join("\n"))
}

/// TOML into `RawConfig`, with the key path and line of the first problem.
fn parse(text: &str) -> Result<RawConfig, String> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let line = inner.span().map(|span| {
            text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        });
        let message = readable(inner.message().trim());
        let mut out = String::new();
        if let Some(line) = line {
            out.push_str(&format!("line {line}: "));
        }
        if path != "." && !path.is_empty() {
            out.push_str(&format!("key `{path}`: "));
        }
        out.push_str(&message);
        out
    })
}

/// serde's words made an operator's: "expected u64" is "expected a number" (and a number
/// written in quotes is named as such); an unknown key gets the closest valid one suggested.
fn readable(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, words) in [
        ("expected u64", "expected a number"),
        ("expected u32", "expected a number"),
        ("expected u16", "expected a number"),
        ("expected usize", "expected a number"),
        ("expected i64", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        (
            "expected a sequence",
            "expected a list in brackets, e.g. [\"a\", \"b\"]",
        ),
    ] {
        out = out.replace(rust, words);
    }
    if let Some(rest) = out.strip_prefix("invalid type: string ") {
        let quoted = rest.split(',').next().unwrap_or("");
        if quoted.trim_matches('"').parse::<f64>().is_ok() && out.contains("a number") {
            out = format!(
                "{out} (write it without quotes: {})",
                quoted.trim_matches('"')
            );
        }
    }
    // "unknown field `listne`, expected one of `listen`, `public_url`, …"
    if let Some(rest) = out.strip_prefix("unknown field `") {
        let typed = rest.split('`').next().unwrap_or("");
        let valid: Vec<&str> = rest
            .split('`')
            .skip(1)
            .filter(|part| !part.contains(' ') && !part.contains(',') && !part.is_empty())
            .collect();
        if let Some(closest) = valid
            .iter()
            .min_by_key(|v| edit_distance(typed, v))
            .filter(|v| edit_distance(typed, v) <= typed.len().max(2) / 2)
        {
            out = format!("unknown key `{typed}`; did you mean `{closest}`? ({out})");
        }
    }
    out
}

/// Levenshtein distance, for suggesting a key.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// The allowed range of a number in the config, written once: the check and its message both come
/// from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: u64,
    /// `u64::MAX`: no upper bound.
    pub max: u64,
    /// Read after the bounds in the message (" seconds").
    unit: &'static str,
}

impl Range {
    pub const fn new(min: u64, max: u64) -> Range {
        Range { min, max, unit: "" }
    }

    pub const fn at_least(min: u64) -> Range {
        Range::new(min, u64::MAX)
    }

    pub const fn seconds(min: u64, max: u64) -> Range {
        Range {
            min,
            max,
            unit: " seconds",
        }
    }

    pub fn contains(self, value: u64) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// Reports `key` through `problem` unless `value` is in range.
    fn check(self, key: &str, value: u64, problem: &mut impl FnMut(&str, String)) {
        if self.contains(value) {
            return;
        }
        let (min, max, unit) = (self.min, self.max, self.unit);
        if max == u64::MAX {
            problem(key, format!("must be at least {min}{unit}"));
        } else {
            problem(key, format!("must be between {min} and {max}{unit}"));
        }
    }
}

pub const MAX_BODY_BYTES: Range = Range::new(1024, 16 * 1024 * 1024);
pub const MAX_HEADER_BYTES: Range = Range::new(8192, 1024 * 1024);
pub const HEADER_READ_TIMEOUT_SECS: Range = Range::new(1, 300);
pub const IDLE_TIMEOUT_SECS: Range = Range::new(1, 3600);
pub const BODY_READ_TIMEOUT_SECS: Range = Range::new(1, 300);
pub const MAX_CONNECTIONS: Range = Range::at_least(1);
pub const SWEEP_INTERVAL_SECS: Range = Range::new(1, 86400);
pub const CACHE_MIB: Range = Range::at_least(1);
/// PostgreSQL connections per node.
pub const POOL_SIZE: Range = Range::new(1, 1024);
/// RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED."
pub const CODE_TTL_SECS: Range = Range::seconds(1, 600);
/// Up to a year (366 days).
pub const ACCESS_TTL_SECS: Range = Range::seconds(1, 366 * 86400);

fn validate(raw: RawConfig, dir: &Path) -> Result<Config, Vec<String>> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, what: String| problems.push(format!("key `{key}`: {what}"));
    let server = check_server(raw.server, dir, &mut problem);
    let storage = check_storage(raw.storage, dir, &mut problem);
    let tokens = check_tokens(raw.tokens, &mut problem);
    let mut ui = check_ui(raw.ui, dir, &mut problem);
    let clients = check_clients(raw.clients, dir, &mut problem);
    let login = login::check_login(raw.login, dir, &mut problem);
    // With `source = "api"` every name is the API's, so its field decides the label.
    ui.username_is_email = login.source == LoginSource::Api
        && login
            .api
            .as_ref()
            .is_some_and(|api| api.username_field.to_ascii_lowercase().contains("mail"));
    let accounts = check_accounts(raw.accounts, &mut problem);
    let apps = raw.apps.and_then(|raw| apps::check_apps(raw, &mut problem));
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        file: PathBuf::new(),
        file_sha256: String::new(),
        listen: server.listen,
        public_url: server.public_url,
        public_path: server.public_path,
        trusted_proxies: server.trusted_proxies,
        metrics: server.metrics,
        metrics_token: server.metrics_token,
        tls: server.tls,
        acme: server.acme,
        http_listen: server.http_listen,
        limits: server.limits,
        storage_path: storage.path,
        cache_bytes: storage.cache_bytes,
        sweep_interval_secs: storage.sweep_interval_secs,
        postgres: storage.postgres,
        tokens,
        ui,
        clients,
        login,
        accounts,
        apps,
    })
}

/// `path` as written if absolute, else relative to the config file's directory.
fn relative(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// The checked `[server]` table.
struct Server {
    listen: SocketAddr,
    public_url: String,
    public_path: String,
    trusted_proxies: TrustedProxies,
    metrics: bool,
    metrics_token: Option<Secret>,
    tls: Option<TlsFiles>,
    acme: Option<AcmeConfig>,
    http_listen: Option<SocketAddr>,
    limits: Limits,
}

/// The `[server]` table: where to listen, how the world reaches us, and the connection limits.
fn check_server(raw: RawServer, dir: &Path, problem: &mut impl FnMut(&str, String)) -> Server {
    let listen = raw.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
        problem(
            "server.listen",
            format!(
                "`{}` is not a socket address (expected e.g. \"127.0.0.1:8080\" or \"[::]:443\")",
                raw.listen
            ),
        );
        SocketAddr::from(([127, 0, 0, 1], 0))
    });

    let public_url = raw.public_url.trim_end_matches('/').to_string();
    let parsed = url::parse(&public_url);
    match parsed {
        Some(url) if url.query_or_fragment => problem(
            "server.public_url",
            format!("`{public_url}` must not carry a query or fragment"),
        ),
        Some(_) => {}
        None => problem(
            "server.public_url",
            format!("`{public_url}` is not an absolute http(s) URL such as \"https://auth.example.com\""),
        ),
    }
    let public_path = parsed.map_or("", |url| url.path).to_string();

    let mut trusted_proxies = Vec::new();
    for (i, proxy) in raw.trusted_proxies.iter().enumerate() {
        match ProxyRange::parse(proxy.trim()) {
            Ok(range) => trusted_proxies.push(range),
            Err(why) => problem(&format!("server.trusted_proxies[{i}]"), why),
        }
    }
    let trusted_proxies = TrustedProxies::new(trusted_proxies);
    let tls = raw.tls.map(|tls| TlsFiles {
        cert: relative(dir, &tls.cert),
        key: relative(dir, &tls.key),
    });
    if let Some(tls) = &tls {
        for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
            if let Err(e) = std::fs::metadata(path) {
                problem(key, format!("cannot read {}: {e}", path.display()));
            }
        }
    }
    let (acme, http_listen) = check_acme(
        raw.acme,
        raw.http_listen.as_deref(),
        tls.is_some(),
        &public_url,
        dir,
        problem,
    );
    let limits = Limits {
        max_body_bytes: raw.max_body_bytes,
        max_header_bytes: raw.max_header_bytes,
        header_read_timeout_secs: raw.header_read_timeout_secs,
        idle_timeout_secs: raw.idle_timeout_secs,
        max_connections: raw.max_connections,
        max_connections_per_ip: raw
            .max_connections_per_ip
            .unwrap_or_else(|| default_max_connections_per_ip().min(raw.max_connections)),
        max_client_connections_per_ip: raw
            .max_client_connections_per_ip
            .unwrap_or_else(|| default_max_client_connections_per_ip().min(raw.max_connections)),
        body_read_timeout_secs: raw.body_read_timeout_secs,
    };
    check_hardening_limits(&limits, &raw.metrics_token, problem);
    let as_u64 = |n: usize| n as u64;
    MAX_BODY_BYTES.check(
        "server.max_body_bytes",
        as_u64(limits.max_body_bytes),
        problem,
    );
    MAX_HEADER_BYTES.check(
        "server.max_header_bytes",
        as_u64(limits.max_header_bytes),
        problem,
    );
    let timeout = limits.header_read_timeout_secs;
    HEADER_READ_TIMEOUT_SECS.check("server.header_read_timeout_secs", timeout, problem);
    IDLE_TIMEOUT_SECS.check(
        "server.idle_timeout_secs",
        limits.idle_timeout_secs,
        problem,
    );
    MAX_CONNECTIONS.check(
        "server.max_connections",
        as_u64(limits.max_connections),
        problem,
    );
    Server {
        listen,
        public_url,
        public_path,
        trusted_proxies,
        metrics: raw.metrics,
        metrics_token: raw.metrics_token.map(Secret::new),
        tls,
        acme,
        http_listen,
        limits,
    }
}

/// The checked `[storage]` table.
struct Storage {
    path: PathBuf,
    cache_bytes: u64,
    sweep_interval_secs: u64,
    postgres: Option<crate::store::PostgresSettings>,
}

/// The `[storage]` table: where the data lives and how it is kept.
fn check_storage(raw: RawStorage, dir: &Path, problem: &mut impl FnMut(&str, String)) -> Storage {
    if raw.path.as_os_str().is_empty() {
        problem("storage.path", "must not be empty".into());
    }
    SWEEP_INTERVAL_SECS.check(
        "storage.sweep_interval_secs",
        raw.sweep_interval_secs,
        problem,
    );
    CACHE_MIB.check("storage.cache_mib", raw.cache_mib, problem);
    let postgres = check_postgres(&raw, dir, problem);
    Storage {
        path: relative(dir, &raw.path),
        cache_bytes: raw.cache_mib.saturating_mul(1024 * 1024),
        sweep_interval_secs: raw.sweep_interval_secs,
        postgres,
    }
}

/// `[storage] backend`, and for `"postgres"` its `url`, `pool_size` and `ca_file`. The URL may
/// hold a password: problems name the key, never the value.
fn check_postgres(
    raw: &RawStorage,
    dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> Option<crate::store::PostgresSettings> {
    match raw.backend.as_str() {
        "sled" => {
            for (key, set) in [
                ("storage.url", raw.url.is_some()),
                ("storage.pool_size", raw.pool_size.is_some()),
                ("storage.ca_file", raw.ca_file.is_some()),
            ] {
                if set {
                    problem(key, "is only used with `backend = \"postgres\"`".into());
                }
            }
            None
        }
        "postgres" => {
            let pool_size = raw.pool_size.unwrap_or(16);
            POOL_SIZE.check("storage.pool_size", pool_size, problem);
            let Some(url) = &raw.url else {
                problem(
                    "storage.url",
                    "is required with `backend = \"postgres\"` (postgres://user@host/database)"
                        .into(),
                );
                return None;
            };
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
                || url.parse::<tokio_postgres::Config>().is_err()
            {
                problem(
                    "storage.url",
                    "is not a PostgreSQL URL like postgres://user@host:5432/database".into(),
                );
            }
            let ca_file = raw.ca_file.as_ref().map(|p| relative(dir, p));
            if let Some(path) = &ca_file {
                if !path.is_file() {
                    problem(
                        "storage.ca_file",
                        format!("{} is not a file", path.display()),
                    );
                }
            }
            Some(crate::store::PostgresSettings {
                url: url.clone(),
                pool_size: pool_size as usize,
                ca_file,
            })
        }
        other => {
            problem(
                "storage.backend",
                format!("`{other}` is not a backend: \"sled\" (the default) or \"postgres\""),
            );
            None
        }
    }
}

/// The `[tokens]` table: how long codes and tokens live.
fn check_tokens(raw: RawTokens, problem: &mut impl FnMut(&str, String)) -> TokenTtls {
    let tokens = TokenTtls {
        code_secs: raw.code_ttl_secs,
        access_secs: raw.access_ttl_secs,
        refresh_secs: raw.refresh_ttl_secs,
    };
    CODE_TTL_SECS.check("tokens.code_ttl_secs", tokens.code_secs, problem);
    ACCESS_TTL_SECS.check("tokens.access_ttl_secs", tokens.access_secs, problem);
    if tokens.refresh_secs != 0 && tokens.refresh_secs <= tokens.access_secs {
        problem(
            "tokens.refresh_ttl_secs",
            "must be 0 (until revoked) or longer than tokens.access_ttl_secs".into(),
        );
    }
    tokens
}

/// The `[[clients]]`: at least one, unique ids, a usable secret and registered redirect URIs each.
fn check_clients(
    raw: Vec<RawClient>,
    dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    if raw.is_empty() {
        problem(
            "clients",
            "no [[clients]] configured: add one for your Alexa skill (see config.example.toml)"
                .into(),
        );
    }
    for (i, c) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("clients[{i}].{k}");
        if c.id.is_empty() || c.id.len() > 256 || c.id.chars().any(|ch| ch.is_control()) {
            problem(&key("id"), "must be 1 to 256 printable characters".into());
        }
        if clients.iter().any(|other| other.id == c.id) {
            problem(&key("id"), format!("duplicate client id `{}`", c.id));
        }
        let secret = check_secret(c.secret, c.secret_hash, &key, problem);
        let grants =
            grant_types::check(c.grant_types, c.resources, c.service_scopes, &key, problem);
        // A client that only gets service tokens never redirects a browser.
        if c.redirect_uris.is_empty() && grants.grant_types.contains(&GrantType::AuthorizationCode)
        {
            problem(
                &key("redirect_uris"),
                "at least one redirect URI is required".into(),
            );
        }
        for (j, uri) in c.redirect_uris.iter().enumerate() {
            if let Err(why) = check_redirect_uri(uri) {
                problem(
                    &format!("clients[{i}].redirect_uris[{j}]"),
                    format!("`{uri}` {why}"),
                );
            }
        }
        let alexa_app = c
            .alexa_app
            .and_then(|raw| apps::check_alexa_app(raw, &c.redirect_uris, dir, &key, problem));
        if let Some(secret) = secret {
            clients.push(Client {
                name: c.name.unwrap_or_else(|| c.id.clone()),
                id: c.id,
                secret,
                redirect_uris: c.redirect_uris,
                require_pkce: c.require_pkce,
                rotate_refresh_tokens: c.rotate_refresh_tokens,
                alexa_app,
                grant_types: grants.grant_types,
                resources: grants.resources,
                service_scopes: grants.service_scopes,
            });
        }
    }
    clients
}

/// A client's `secret` or `secret_hash`: exactly one, a long enough secret or an argon2 hash.
fn check_secret(
    secret: Option<String>,
    secret_hash: Option<String>,
    key: &dyn Fn(&str) -> String,
    problem: &mut impl FnMut(&str, String),
) -> Option<ClientSecret> {
    match (secret, secret_hash) {
        (Some(_), Some(_)) => {
            problem(
                &key("secret"),
                "set either `secret` or `secret_hash`, not both".into(),
            );
            None
        }
        (None, None) => {
            problem(
                &key("secret"),
                "missing: every client needs a `secret` (or `secret_hash`)".into(),
            );
            None
        }
        (Some(s), None) if s.chars().count() < 16 => {
            problem(
                &key("secret"),
                "too short: use at least 16 random characters".into(),
            );
            None
        }
        (Some(s), None) => Some(ClientSecret::Plain(Secret::new(s))),
        (None, Some(h)) if !secret::is_phc_hash(&h) => {
            problem(
                &key("secret_hash"),
                "is not an argon2 PHC string (\"$argon2id$v=19$...\")".into(),
            );
            None
        }
        (None, Some(h)) => Some(ClientSecret::Hash(h)),
    }
}

/// `[accounts]`: a password link must live long enough to reach its person and not for ever.
fn check_accounts(raw: RawAccounts, problem: &mut impl FnMut(&str, String)) -> Accounts {
    if !(60..=30 * 86400).contains(&raw.invite_ttl_secs) {
        problem(
            "accounts.invite_ttl_secs",
            "must be between 60 seconds and 30 days (2592000)".into(),
        );
    }
    Accounts {
        invite_ttl_secs: raw.invite_ttl_secs,
        require_totp: raw.require_totp,
    }
}

/// The `[ui]` table: branding the operator chose, checked so that a typo or an unreadable colour
/// is caught at start-up rather than seen by customers.
/// The limits against connection exhaustion and the metrics token (issue 12).
fn check_hardening_limits(
    limits: &Limits,
    metrics_token: &Option<String>,
    problem: &mut impl FnMut(&str, String),
) {
    if !(1..=limits.max_connections.max(1)).contains(&limits.max_connections_per_ip) {
        problem(
            "server.max_connections_per_ip",
            format!(
                "must be between 1 and server.max_connections ({})",
                limits.max_connections
            ),
        );
    }
    if limits.max_client_connections_per_ip > limits.max_connections {
        problem(
            "server.max_client_connections_per_ip",
            format!(
                "must be between 0 and server.max_connections ({})",
                limits.max_connections
            ),
        );
    }
    BODY_READ_TIMEOUT_SECS.check(
        "server.body_read_timeout_secs",
        limits.body_read_timeout_secs,
        problem,
    );
    if metrics_token
        .as_ref()
        .is_some_and(|t| t.chars().count() < 16)
    {
        problem(
            "server.metrics_token",
            "must be at least 16 characters (a long random string)".into(),
        );
    }
}

fn check_ui(raw: RawUi, dir: &Path, problem: &mut impl FnMut(&str, String)) -> Ui {
    let language = raw.language.and_then(|name| {
        let lang = Lang::from_tag(&name);
        if lang.is_none() {
            let known: Vec<&str> = Lang::ALL.iter().map(|l| l.code()).collect();
            problem(
                "ui.language",
                format!(
                    "`{name}` is not a supported language; use one of {}",
                    known.join(", ")
                ),
            );
        }
        lang
    });
    let accent_color = raw
        .accent_color
        .and_then(|colour| match check_accent(&colour) {
            Ok(rgb) => Some(rgb.hex()),
            Err(why) => {
                problem("ui.accent_color", why);
                None
            }
        });
    let logo = raw.logo.and_then(|path| {
        let path = relative(dir, &path);
        match read_logo(&path) {
            Ok(svg) => Some(svg),
            Err(why) => {
                problem("ui.logo", format!("{}: {why}", path.display()));
                None
            }
        }
    });
    let support = raw.support.map(|s| s.trim().to_string());
    if let Some(line) = &support {
        if line.chars().count() > MAX_SUPPORT_CHARS {
            problem(
                "ui.support",
                format!("is longer than {MAX_SUPPORT_CHARS} characters; keep it to one line"),
            );
        } else if line.chars().any(char::is_control) {
            problem(
                "ui.support",
                "must be one line without control characters".into(),
            );
        }
    }
    Ui {
        title: raw.title,
        language,
        accent_color,
        logo,
        support: support.filter(|s| !s.is_empty()),
        username_is_email: false,
    }
}

/// TLS-ALPN-01 validations arrive on port 443 of the name (RFC 8737 §3); HTTP-01 ones on port 80.
fn acme_port_warning(
    acme: &AcmeConfig,
    public_url: &str,
    http_listen: Option<SocketAddr>,
) -> Option<String> {
    let port = url::parse(public_url).map_or(443, |url| url.port_or_default());
    (port != 443 && http_listen.is_none()).then(|| format!(
        "server.public_url is on port {port}, but the CA validates {} over TLS-ALPN-01 on port 443: make port 443 reach this listener (or set server.http_listen for HTTP-01 on port 80)",
        acme.domain
    ))
}

/// `[server.acme]` and `server.http_listen`: exclusive with `[server.tls]`, for an https
/// `public_url` whose host is a DNS name (the name the certificate is for).
fn check_acme(
    raw: Option<RawAcme>,
    http_listen: Option<&str>,
    has_tls: bool,
    public_url: &str,
    dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> (Option<AcmeConfig>, Option<SocketAddr>) {
    let http_listen = http_listen.and_then(|addr| match addr.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problem(
                "server.http_listen",
                format!("`{addr}` is not a socket address (expected e.g. \"[::]:80\")"),
            );
            None
        }
    });
    if http_listen.is_some() && raw.is_none() && !has_tls {
        problem(
            "server.http_listen",
            "redirects plain HTTP to https, which needs [server.acme] or [server.tls]".into(),
        );
    }
    let Some(raw) = raw else {
        return (None, http_listen);
    };
    if has_tls {
        problem(
            "server.acme",
            "[server.acme] and [server.tls] are mutually exclusive: [server.acme] obtains and renews the certificate itself, [server.tls] serves certificate files you manage; keep one of them".into(),
        );
    }
    let email = raw.email.trim().to_string();
    let valid_email = email.split_once('@').is_some_and(|(user, host)| {
        !user.is_empty() && host.contains('.') && !host.starts_with('.') && !host.ends_with('.')
    }) && !email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',');
    if !valid_email {
        problem(
            "server.acme.email",
            format!("`{email}` is not an email address (the ACME account's contact, e.g. \"ops@example.com\")"),
        );
    }
    let directory = raw.directory.unwrap_or_else(|| LETS_ENCRYPT.to_string());
    if !directory.starts_with("https://") || url::parse(&directory).is_none() {
        problem(
            "server.acme.directory",
            format!("`{directory}` is not an https URL (RFC 8555 §6.1: ACME runs over HTTPS); Let's Encrypt's is \"{LETS_ENCRYPT}\""),
        );
    }
    let directory_ca = raw.directory_ca.map(|path| {
        let path = if path.is_absolute() {
            path
        } else {
            dir.join(path)
        };
        if let Err(e) = std::fs::metadata(&path) {
            problem(
                "server.acme.directory_ca",
                format!("cannot read {}: {e}", path.display()),
            );
        }
        path
    });
    let host = url::parse(public_url)
        .filter(|url| url.https)
        .map(|url| url.host.to_ascii_lowercase());
    let domain = match host {
        None => {
            problem(
                "server.acme",
                format!("needs an https server.public_url (the certificate is for its host), not `{public_url}`"),
            );
            String::new()
        }
        Some(host)
            if host.starts_with('[') || host.parse::<IpAddr>().is_ok() || !host.contains('.') =>
        {
            problem(
                "server.acme",
                format!("server.public_url's host `{host}` is not a public DNS name such as \"auth.example.com\"; ACME certificates here are for DNS names"),
            );
            String::new()
        }
        Some(host) => host,
    };
    (
        Some(AcmeConfig {
            email,
            directory,
            directory_ca,
            domain,
        }),
        http_listen,
    )
}

/// `#rrggbb`, dark enough that the white button text on it keeps WCAG AA contrast (4.5:1).
fn check_accent(colour: &str) -> Result<Rgb, String> {
    let rgb = Rgb::parse(colour).ok_or_else(|| {
        format!("`{colour}` is not a colour written as \"#rrggbb\" (e.g. \"#1a5fb4\")")
    })?;
    let ratio = contrast::ratio(rgb, contrast::WHITE);
    if ratio < contrast::MIN_TEXT_CONTRAST {
        // Rounded down, so a colour just short of the limit never reads as "4.50:1".
        let shown = (ratio * 100.0).floor() / 100.0;
        return Err(format!(
            "`{colour}` is too light: white button text on it has a contrast of {shown:.2}:1, \
             and WCAG AA needs at least 4.5:1; pick a darker colour"
        ));
    }
    Ok(rgb)
}

/// Reads the logo and returns the markup to inline. The file is the operator's, but it goes into
/// every page, so anything that could run (scripts, event handlers, `javascript:` links) is
/// refused rather than trusted to the CSP alone.
fn read_logo(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_LOGO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_LOGO_BYTES {
        return Err(format!(
            "is larger than 64 KiB ({MAX_LOGO_BYTES} bytes); it is inlined into every page, so use a smaller (or optimised) SVG"
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| "is not an SVG file (it is not UTF-8 text)".to_string())?;
    inline_svg(&text)
}

/// The `<svg>…</svg>` element of an SVG file, without the XML prolog, comments or doctype before
/// it (they mean nothing inside HTML), or why it cannot be inlined.
fn inline_svg(text: &str) -> Result<String, String> {
    let not_svg = "is not an SVG file (it must start with an <svg> element)";
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` are valid in `text`.
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<svg").ok_or(not_svg)?;
    let after = lower.as_bytes().get(start + 4).copied().unwrap_or(b' ');
    if !(after.is_ascii_whitespace() || after == b'>' || after == b'/') {
        return Err(not_svg.into());
    }
    // Before the root element only a prolog, comments, a doctype and whitespace may come.
    let mut before = lower[..start].trim_start_matches('\u{feff}').trim();
    while !before.is_empty() {
        let end = if before.starts_with("<!--") {
            before.find("-->").map(|i| i + 3)
        } else if before.starts_with("<?") || before.starts_with("<!doctype") {
            before.find('>').map(|i| i + 1)
        } else {
            None
        };
        before = before[end.ok_or(not_svg)?..].trim_start();
    }
    let svg = text[start..].trim_end();
    let rest = lower[start..].trim_end();
    let self_closing = rest.ends_with("/>") && !rest[1..].contains('<');
    if !(rest.ends_with("</svg>") || self_closing) {
        return Err(format!("{not_svg}; it does not end with </svg>"));
    }
    if lower.contains("<script") {
        return Err("contains a <script> element; a logo must not carry scripts".into());
    }
    if let Some(handler) = event_handler(&lower) {
        return Err(format!(
            "has an event-handler attribute (`{handler}=`); a logo must not carry scripts"
        ));
    }
    if lower.contains("javascript:") {
        return Err("contains a `javascript:` link; a logo must not carry scripts".into());
    }
    Ok(svg.to_string())
}

/// The first `on…=` attribute (`onload=`, `onclick =`) in lower-cased markup.
fn event_handler(lower: &str) -> Option<&str> {
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(found) = lower[from..].find("on") {
        let at = from + found;
        from = at + 2;
        let boundary = at == 0
            || matches!(
                bytes[at - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'/'
            );
        let letters = bytes[at + 2..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let name_end = at + 2 + letters;
        let equals = bytes[name_end..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'=');
        if boundary && letters > 0 && equals {
            return Some(&lower[at..name_end]);
        }
    }
    None
}

/// RFC 6749 §3.1.2 and RFC 9700 §2.1: absolute, no fragment, https unless on this machine.
fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let url = url::parse(uri).ok_or("is not an absolute https URL")?;
    if uri.contains('#') {
        return Err("must not contain a fragment (#)");
    }
    let loopback = matches!(url.host, "localhost" | "[::1]")
        || url
            .host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !url.https && !loopback {
        return Err("must use https (plain http is allowed only for localhost)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
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

    fn check(text: &str) -> Result<Config, String> {
        let raw = parse(text)?;
        validate(raw, Path::new("/etc/linkgate")).map_err(|p| p.join("\n"))
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
    fn names_an_unknown_key() {
        let err = check(&GOOD.replace("listen =", "listne =")).unwrap_err();
        assert!(err.contains("listne"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("did you mean `listen`?"), "{err}");
        // Nothing close: no guess.
        let err = check(&GOOD.replace("listen =", "zzzzzzzzzz =")).unwrap_err();
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn names_a_badly_typed_key() {
        let err = check(&format!("{GOOD}\n[tokens]\ncode_ttl_secs = \"five\"\n")).unwrap_err();
        assert!(err.contains("tokens.code_ttl_secs"), "{err}");
        assert!(
            err.contains("expected a number") && !err.contains("u64"),
            "{err}"
        );
        let err = check(&format!("{GOOD}\n[tokens]\ncode_ttl_secs = \"2000\"\n")).unwrap_err();
        assert!(err.contains("write it without quotes: 2000"), "{err}");
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
    fn connection_and_metrics_limits() {
        let server = |extra: &str| GOOD.replacen("[server]\n", &format!("[server]\n{extra}\n"), 1);
        let config = check(&server("max_connections = 10")).unwrap();
        assert_eq!(
            config.limits.max_connections_per_ip, 10,
            "the default follows a smaller total"
        );
        assert_eq!(check(GOOD).unwrap().limits.max_connections_per_ip, 64);
        let err = check(&server("max_connections = 10\nmax_connections_per_ip = 11")).unwrap_err();
        assert!(err.contains("server.max_connections_per_ip"), "{err}");
        let err = check(&server("body_read_timeout_secs = 0")).unwrap_err();
        assert!(err.contains("server.body_read_timeout_secs"), "{err}");
        let err = check(&server("metrics_token = \"short\"")).unwrap_err();
        assert!(err.contains("server.metrics_token"), "{err}");
    }

    fn check_in(text: &str, dir: &Path) -> Result<Config, String> {
        validate(parse(text)?, dir).map_err(|p| p.join("\n"))
    }

    const LOGO: &str = r#"<?xml version="1.0"?>
<!-- made by hand -->
<!DOCTYPE svg>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4"/></svg>
"#;

    #[test]
    fn ui_branding_is_read_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("logo.svg"), LOGO).unwrap();
        let text = format!(
            "{GOOD}[ui]\ntitle = \"Taxi\"\nlanguage = \"pt-BR\"\naccent_color = \"#0B6E4F\"\nlogo = \"logo.svg\"\nsupport = \"  Help: help@example.com \"\n"
        );
        let ui = check_in(&text, dir.path()).unwrap().ui;
        assert_eq!(ui.title, "Taxi");
        assert_eq!(ui.language, Some(Lang::PtBr));
        assert_eq!(ui.accent_color.as_deref(), Some("#0b6e4f"));
        let logo = ui.logo.unwrap();
        assert!(
            logo.starts_with("<svg xmlns") && logo.ends_with("</svg>"),
            "{logo}"
        );
        assert_eq!(ui.support.as_deref(), Some("Help: help@example.com"));
        let defaults = check(GOOD).unwrap().ui;
        assert!(defaults.language.is_none() && defaults.logo.is_none());
    }

    #[test]
    fn ui_problems_name_the_key() {
        let ui = |line: &str| check(&format!("{GOOD}[ui]\n{line}\n")).unwrap_err();
        let err = ui("language = \"klingon\"");
        assert!(
            err.contains("key `ui.language`") && err.contains("pt-BR"),
            "{err}"
        );
        let err = ui("accent_color = \"#ffcc00\"");
        assert!(err.contains("key `ui.accent_color`"), "{err}");
        assert!(err.contains("4.5:1") && err.contains("1.5"), "{err}");
        let err = ui("accent_color = \"blue\"");
        assert!(
            err.contains("key `ui.accent_color`") && err.contains("#rrggbb"),
            "{err}"
        );
        // #777777 is 4.48:1 against white: just short, and must not read as "4.50".
        let err = ui("accent_color = \"#777777\"");
        assert!(err.contains("4.47:1") || err.contains("4.48:1"), "{err}");
        assert!(check(&format!("{GOOD}[ui]\naccent_color = \"#767676\"\n")).is_ok());
        let err = ui("support = \"line one\\nline two\"");
        assert!(err.contains("key `ui.support`"), "{err}");
        let err = ui("colour = \"#000000\"");
        assert!(err.contains("colour"), "{err}");
        let err = ui("logo = \"missing.svg\"");
        assert!(
            err.contains("key `ui.logo`") && err.contains("/etc/linkgate/missing.svg"),
            "{err}"
        );
    }

    #[test]
    fn logo_rules() {
        let dir = tempfile::tempdir().unwrap();
        let try_logo = |content: &[u8]| {
            std::fs::write(dir.path().join("logo.svg"), content).unwrap();
            check_in(&format!("{GOOD}[ui]\nlogo = \"logo.svg\"\n"), dir.path())
                .map(|c| c.ui.logo.unwrap())
        };
        assert!(try_logo(LOGO.as_bytes()).is_ok());
        assert!(try_logo(b"<svg/>").is_ok());
        let big = format!("<svg>{}</svg>", " ".repeat(64 * 1024));
        let err = try_logo(big.as_bytes()).unwrap_err();
        assert!(
            err.contains("key `ui.logo`") && err.contains("64 KiB"),
            "{err}"
        );
        for (content, expect) in [
            (&b"\x89PNG\r\n\x1a\n\0\0"[..], "not UTF-8"),
            (b"<html><svg></svg></html>", "not an SVG"),
            (b"hello", "not an SVG"),
            (b"<svgx></svgx>", "not an SVG"),
            (b"<svg><circle/>", "</svg>"),
            (b"<svg><SCRIPT>alert(1)</SCRIPT></svg>", "<script>"),
            (b"<svg onload=\"alert(1)\"></svg>", "onload="),
            (
                b"<svg><a xlink:href=\"#\" onClick = \"x()\">a</a></svg>",
                "onclick=",
            ),
            (
                b"<svg><a href=\"JavaScript:alert(1)\">a</a></svg>",
                "javascript:",
            ),
        ] {
            let err = try_logo(content).unwrap_err();
            assert!(
                err.contains("key `ui.logo`") && err.contains(expect),
                "{expect}: {err}"
            );
        }
        // Words that merely contain "on" are fine.
        assert!(try_logo(b"<svg><text font=\"x\">one done on time</text></svg>").is_ok());
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
        let example = include_str!("../config.example.toml");
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

    /// The commented-out Alexa+ client of config.example.toml works once uncommented.
    #[test]
    fn the_example_alexa_plus_client_is_valid() {
        let example = include_str!("../config.example.toml");
        let start = example
            .find("# [[clients]]                             # an Alexa+")
            .expect("the Alexa+ client");
        let section: String = example[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .filter(|line| !line.starts_with("# Linking"))
            .map(|line| format!("{}\n", line.trim_start_matches("# ")))
            .collect();
        let config = check(&format!("{GOOD}{section}")).unwrap();
        let plus = config.client("alexa-plus").expect("the client");
        assert!(plus.require_pkce && plus.allows(GrantType::ClientCredentials));
        assert_eq!(plus.resources, ["https://mcp.example-taxi.com/mcp"]);
        assert_eq!(plus.service_scopes, ["catalog"]);
        // The skill's client keeps the defaults.
        let skill = config.client("alexa-skill").expect("the skill");
        assert_eq!(skill.grant_types, DEFAULT_GRANT_TYPES);
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

    #[test]
    fn acme_takes_its_name_from_public_url_and_excludes_static_tls() {
        let acme = "[server.acme]\nemail = \"ops@example.com\"\n";
        let with = |text: &str| GOOD.replace("[storage]", &format!("{text}[storage]"));
        let config = check(&with(acme)).unwrap();
        let settings = config.acme.unwrap();
        assert_eq!(settings.domain, "auth.example.com");
        assert_eq!(settings.directory, LETS_ENCRYPT);
        assert_eq!(settings.email, "ops@example.com");
        assert!(config.http_listen.is_none());
        let text = with(&format!(
            "http_listen = \"[::]:80\"\n{acme}directory = \"{LETS_ENCRYPT_STAGING}\"\ndirectory_ca = \"ca.pem\"\n"
        ));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "").unwrap();
        let config = check_in(&text, dir.path()).unwrap();
        assert_eq!(config.http_listen, Some("[::]:80".parse().unwrap()));
        let settings = config.acme.unwrap();
        assert_eq!(settings.directory, LETS_ENCRYPT_STAGING);
        assert_eq!(settings.directory_ca, Some(dir.path().join("ca.pem")));
        // No "terminate HTTPS in a proxy" warning: linkgate serves it.
        assert!(check(&with(acme)).unwrap().warnings().is_empty());
        // TLS-ALPN-01 is validated on port 443 only.
        let other_port = with(acme).replace("auth.example.com/", "auth.example.com:8443/");
        let warnings = check(&other_port).unwrap().warnings();
        assert!(
            warnings.len() == 1 && warnings[0].contains("port 8443") && warnings[0].contains("443"),
            "{warnings:?}"
        );
        let http01 =
            other_port.replace("[server.acme]", "http_listen = \"[::]:80\"\n[server.acme]");
        assert!(check(&http01).unwrap().warnings().is_empty());
    }

    #[test]
    fn acme_problems_name_the_key() {
        let acme = "[server.acme]\nemail = \"ops@example.com\"\n";
        let with = |text: &str| GOOD.replace("[storage]", &format!("{text}[storage]"));
        let dir = tempfile::tempdir().unwrap();
        for file in ["cert.pem", "key.pem"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        let both = with(&format!(
            "[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n{acme}"
        ));
        let err = check_in(&both, dir.path()).unwrap_err();
        assert!(
            err.contains("key `server.acme`") && err.contains("mutually exclusive"),
            "{err}"
        );
        let err = check(&with("[server.acme]\nemail = \"nobody\"\n")).unwrap_err();
        assert!(err.contains("key `server.acme.email`"), "{err}");
        let err = check(&with("[server.acme]\n")).unwrap_err();
        assert!(err.contains("email"), "{err}");
        let err = check(&with(&format!(
            "{acme}directory = \"http://ca.example/dir\"\n"
        )))
        .unwrap_err();
        assert!(err.contains("key `server.acme.directory`"), "{err}");
        let err = check(&with(&format!("{acme}directory_ca = \"missing.pem\"\n"))).unwrap_err();
        assert!(
            err.contains("key `server.acme.directory_ca`")
                && err.contains("/etc/linkgate/missing.pem"),
            "{err}"
        );
        let err = check(&with(&format!("{acme}typo = 1\n"))).unwrap_err();
        assert!(err.contains("typo"), "{err}");
        for url in [
            "http://auth.example.com",
            "https://127.0.0.1",
            "https://localhost",
        ] {
            let text = with(acme).replace("https://auth.example.com/", url);
            let err = check(&text).unwrap_err();
            assert!(err.contains("key `server.acme`"), "{url}: {err}");
        }
        let err = check(&with("http_listen = \"[::]:80\"\n")).unwrap_err();
        assert!(
            err.contains("key `server.http_listen`") && err.contains("[server.acme]"),
            "{err}"
        );
        let err = check(&with(&format!("http_listen = \"port 80\"\n{acme}"))).unwrap_err();
        assert!(err.contains("key `server.http_listen`"), "{err}");
    }

    #[test]
    fn limits_are_checked_and_named_from_one_definition() {
        let server = |line: &str| {
            check(&GOOD.replace("[storage]", &format!("{line}\n[storage]"))).unwrap_err()
        };
        assert_eq!(
            server("max_body_bytes = 1023"),
            "key `server.max_body_bytes`: must be between 1024 and 16777216"
        );
        assert_eq!(
            server("max_connections = 0\nmax_connections_per_ip = 1"),
            "key `server.max_connections`: must be at least 1"
        );
        let err = check(&format!("{GOOD}[tokens]\ncode_ttl_secs = 601\n")).unwrap_err();
        assert_eq!(
            err,
            "key `tokens.code_ttl_secs`: must be between 1 and 600 seconds"
        );
        for (range, inside, outside) in [
            (MAX_BODY_BYTES, 16 * 1024 * 1024, 16 * 1024 * 1024 + 1),
            (CODE_TTL_SECS, 600, 0),
            (ACCESS_TTL_SECS, 366 * 86400, 366 * 86400 + 1),
            (MAX_CONNECTIONS, u64::MAX, 0),
        ] {
            assert!(range.contains(inside) && !range.contains(outside));
        }
    }

    #[test]
    fn redirect_uri_rules() {
        assert!(check_redirect_uri("https://layla.amazon.com/api/skill/link/M2X").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:9000/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("http://example.com/cb").is_err());
        assert!(check_redirect_uri("https://example.com/cb#frag").is_err());
        assert!(check_redirect_uri("https://user@example.com/cb").is_err());
        assert!(check_redirect_uri("/relative").is_err());
        assert!(check_redirect_uri("https://").is_err());
    }

    #[test]
    fn accounts_invite_ttl() {
        let config = check(GOOD).unwrap();
        assert_eq!(config.accounts.invite_ttl_secs, 86400);
        let config = check(&format!("{GOOD}[accounts]\ninvite_ttl_secs = 600\n")).unwrap();
        assert_eq!(config.accounts.invite_ttl_secs, 600);
        for bad in ["59", "2592001", "\"a day\""] {
            let err = check(&format!("{GOOD}[accounts]\ninvite_ttl_secs = {bad}\n")).unwrap_err();
            assert!(err.contains("accounts.invite_ttl_secs"), "{err}");
        }
        let err = check(&format!("{GOOD}[accounts]\ninvite_ttl = 600\n")).unwrap_err();
        assert!(err.contains("invite_ttl"), "{err}");
    }
}
