//! The TOML config file: its schema (unknown keys are errors, so typos cannot pass silently) and
//! the checks that turn it into a `Config` the server can trust. Every problem is reported as one
//! line naming the file, the key and what is wrong.
//!
//! Which file holds what:
//! - `config.rs` (here): the validated `Config` and its plain parts (`Limits`, `TokenTtls`,
//!   `TlsFiles`, `AcmeConfig`, `Accounts`), its warnings, `ConfigError` and `load`.
//! - `schema.rs`: the file as written, the serde `Raw*` structs and the defaults of left-out keys.
//! - `parse.rs`: TOML into the schema, with readable errors and "did you mean" for unknown keys.
//! - `ranges.rs`: `Range` and the allowed range of every number.
//! - `validate.rs`: `validate`, and the `[server]` (limits, `[server.acme]`), `[tokens]` and
//!   `[accounts]` checks.
//! - `storage.rs`: `[storage]`, sled or PostgreSQL.
//! - `clients.rs`: `[[clients]]`, `Client`, `ClientSecret`;
//!   `grant_types.rs`: their `grant_types`, `resources` and `service_scopes`.
//! - `values.rs`: checks several sections share (a path relative to the config's folder, a
//!   redirect URI).
//! - `branding.rs`: `[ui]`, `Ui`, the accent colour and the logo checks.
//! - `login.rs`: `[login]` and `[login.api]`; `apps.rs`: `[apps]` and `[clients.alexa_app]`;
//!   `proxies.rs`: `server.trusted_proxies`; `served.rs`: what the running server was started with.
//! - `tests.rs`: tests of the whole `load`, and the helpers the other files' tests share.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod apps;
mod branding;
mod clients;
mod grant_types;
mod login;
mod parse;
mod proxies;
mod ranges;
mod schema;
mod served;
mod storage;
#[cfg(test)]
pub(crate) mod tests;
mod validate;
mod values;
pub use apps::{AlexaApp, Apps};
pub use branding::{Ui, MAX_LOGO_BYTES, MAX_SUPPORT_CHARS};
pub use clients::{Client, ClientSecret};
pub use grant_types::{GrantType, DEFAULT_GRANT_TYPES};
pub use login::{
    check_path, is_loopback_host, parse_target, BodyFormat, CustomerCheck, Login, LoginApi,
    LoginSource, Target,
};
pub use proxies::{ProxyRange, TrustedProxies};
pub use ranges::{
    Range, ACCESS_TTL_SECS, BODY_READ_TIMEOUT_SECS, CACHE_MIB, CODE_TTL_SECS,
    HEADER_READ_TIMEOUT_SECS, IDLE_TIMEOUT_SECS, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HEADER_BYTES,
    POOL_SIZE, SWEEP_INTERVAL_SECS,
};
pub use served::Served;

use parse::parse;
use validate::{acme_port_warning, validate};

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
