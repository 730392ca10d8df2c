//! The config file as written: the serde shape of every table (unknown keys are errors, so typos
//! cannot pass silently) and the defaults of keys left out. Nothing here is checked yet; that is
//! `validate.rs` and the files it calls.

use super::{apps, login};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) tokens: RawTokens,
    #[serde(default)]
    pub(super) ui: RawUi,
    #[serde(default)]
    pub(super) clients: Vec<RawClient>,
    #[serde(default)]
    pub(super) login: login::RawLogin,
    #[serde(default)]
    pub(super) accounts: RawAccounts,
    pub(super) apps: Option<apps::RawApps>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccounts {
    #[serde(default = "default_invite_ttl_secs")]
    pub(super) invite_ttl_secs: u64,
    #[serde(default)]
    pub(super) require_totp: bool,
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
pub(super) struct RawServer {
    pub(super) listen: String,
    pub(super) public_url: String,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<String>,
    pub(super) tls: Option<RawTls>,
    pub(super) acme: Option<RawAcme>,
    pub(super) http_listen: Option<String>,
    #[serde(default)]
    pub(super) metrics: bool,
    #[serde(default = "default_max_body_bytes")]
    pub(super) max_body_bytes: usize,
    #[serde(default = "default_max_header_bytes")]
    pub(super) max_header_bytes: usize,
    #[serde(default = "default_header_read_timeout_secs")]
    pub(super) header_read_timeout_secs: u64,
    #[serde(default = "default_idle_timeout_secs")]
    pub(super) idle_timeout_secs: u64,
    #[serde(default = "default_max_connections")]
    pub(super) max_connections: usize,
    /// Unset: 64, or `max_connections` when that is smaller.
    pub(super) max_connections_per_ip: Option<usize>,
    /// Unset: 256, or `max_connections` when that is smaller.
    pub(super) max_client_connections_per_ip: Option<usize>,
    #[serde(default = "default_body_read_timeout_secs")]
    pub(super) body_read_timeout_secs: u64,
    pub(super) metrics_token: Option<String>,
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
pub(super) fn default_max_connections_per_ip() -> usize {
    64
}
pub(super) fn default_max_client_connections_per_ip() -> usize {
    256
}
fn default_body_read_timeout_secs() -> u64 {
    10
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcme {
    pub(super) email: String,
    pub(super) directory: Option<String>,
    pub(super) directory_ca: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) path: PathBuf,
    #[serde(default = "default_cache_mib")]
    pub(super) cache_mib: u64,
    #[serde(default = "default_sweep_interval_secs")]
    pub(super) sweep_interval_secs: u64,
    #[serde(default = "default_backend")]
    pub(super) backend: String,
    pub(super) url: Option<String>,
    pub(super) pool_size: Option<u64>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) revocation_bound_ms: Option<u64>,
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
pub(super) struct RawTokens {
    #[serde(default = "default_code_ttl")]
    pub(super) code_ttl_secs: u64,
    #[serde(default = "default_access_ttl")]
    pub(super) access_ttl_secs: u64,
    #[serde(default)]
    pub(super) refresh_ttl_secs: u64,
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
pub(super) struct RawUi {
    #[serde(default = "default_title")]
    pub(super) title: String,
    pub(super) language: Option<String>,
    pub(super) accent_color: Option<String>,
    pub(super) logo: Option<PathBuf>,
    pub(super) support: Option<String>,
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
pub(super) fn default_title() -> String {
    "Account linking".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub(super) id: String,
    pub(super) secret: Option<String>,
    pub(super) secret_hash: Option<String>,
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) redirect_uris: Vec<String>,
    #[serde(default)]
    pub(super) require_pkce: bool,
    #[serde(default)]
    pub(super) rotate_refresh_tokens: bool,
    pub(super) alexa_app: Option<apps::RawAlexaApp>,
    pub(super) grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub(super) resources: Vec<String>,
    #[serde(default)]
    pub(super) service_scopes: Vec<String>,
}
