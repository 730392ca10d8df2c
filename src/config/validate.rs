//! The checks that turn the raw file into a `Config`: `validate` runs every table's check in
//! order, collecting each problem as one line naming the key; the `[server]` (with its limits
//! and `[server.acme]`), `[tokens]` and `[accounts]` checks are here, the others in `storage.rs`,
//! `clients.rs`, `branding.rs`, `login.rs` and `apps.rs`.

use super::branding::check_ui;
use super::clients::check_clients;
use super::ranges::{
    ACCESS_TTL_SECS, BODY_READ_TIMEOUT_SECS, CODE_TTL_SECS, HEADER_READ_TIMEOUT_SECS,
    IDLE_TIMEOUT_SECS, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HEADER_BYTES,
};
use super::schema::{
    default_max_client_connections_per_ip, default_max_connections_per_ip, RawAccounts, RawAcme,
    RawConfig, RawServer, RawTokens,
};
use super::storage::check_storage;
use super::values::relative;
use super::{
    apps, login, Accounts, AcmeConfig, Config, Limits, LoginSource, ProxyRange, TlsFiles,
    TokenTtls, TrustedProxies, LETS_ENCRYPT,
};
use crate::base::secret::Secret;
use crate::base::url;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

pub(super) fn validate(raw: RawConfig, dir: &Path) -> Result<Config, Vec<String>> {
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

/// TLS-ALPN-01 validations arrive on port 443 of the name (RFC 8737 §3); HTTP-01 ones on port 80.
pub(super) fn acme_port_warning(
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

#[cfg(test)]
mod tests {
    use crate::config::tests::{check, check_in, GOOD};
    use crate::config::{LETS_ENCRYPT, LETS_ENCRYPT_STAGING};

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
