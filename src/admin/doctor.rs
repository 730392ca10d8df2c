//! `linkgate --doctor`: checks, from the machine itself, what most often breaks Alexa and Google
//! account linking — the public URL, its certificate chain, what a proxy in front does to the
//! endpoints, the clients' redirect URIs and secrets, the data directory — before a customer finds
//! out. It prints one line per check (`ok`, `warn`, `FAIL`, with what to do) and fails when any
//! check failed.
//!
//! The checks are plain functions returning a `Check`; `https` fetches what they judge, the way
//! Alexa sees it (TLS 1.2+ with SNI, the chain checked against Mozilla's roots only, every network
//! step with a time limit).

use crate::admin::socket;
use crate::base::civil::format_time;
use crate::config::{Client, ClientSecret, Config, EXAMPLE_SECRETS};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

mod acme;
mod apps;
mod https;
mod login;
/// A certificate closer than this to its end fails; closer than `EXPIRY_WARN_DAYS` warns
/// (Let's Encrypt's client renews at 30 days left, so by then renewal has already gone wrong).
const EXPIRY_FAIL_DAYS: u64 = 14;
const EXPIRY_WARN_DAYS: u64 = 30;
/// Alexa gives the token endpoint about 4.5 s; slower than this is worth a warning.
const SLOW_TOKEN_ENDPOINT: Duration = Duration::from_secs(2);
const MIN_SECRET_CHARS: usize = 32;

/// The three Alexa regions: the redirect URI host of each (Amazon lists all three on a skill's
/// account linking page, with the same vendor id).
const ALEXA_REGIONS: [(&str, &str); 3] = [
    ("pitangui.amazon.com", "NA"),
    ("layla.amazon.com", "EU/IN"),
    ("alexa.amazon.co.jp", "FE"),
];
const ALEXA_PATH: &str = "/api/skill/link/";
const GOOGLE_HOST: &str = "oauth-redirect.googleusercontent.com";
const GOOGLE_SANDBOX_HOST: &str = "oauth-redirect-sandbox.googleusercontent.com";
const GOOGLE_PATH: &str = "/r/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// The outcome of one check: what was checked (a short name), how it went, and a sentence an
/// operator can act on. Extra lines (URIs to paste) follow the first, indented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    pub name: &'static str,
    pub message: String,
}

impl Check {
    pub fn ok(name: &'static str, message: impl Into<String>) -> Check {
        Check::new(Status::Ok, name, message)
    }
    pub fn warn(name: &'static str, message: impl Into<String>) -> Check {
        Check::new(Status::Warn, name, message)
    }
    pub fn fail(name: &'static str, message: impl Into<String>) -> Check {
        Check::new(Status::Fail, name, message)
    }
    fn new(status: Status, name: &'static str, message: impl Into<String>) -> Check {
        Check {
            status,
            name,
            message: message.into(),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let mut lines = self.message.lines();
        write!(
            f,
            "{status:<5} {:<10} {}",
            self.name,
            lines.next().unwrap_or("")
        )?;
        for line in lines {
            write!(f, "\n{:17}{line}", "")?;
        }
        Ok(())
    }
}

/// Prints checks as they come and counts them.
#[derive(Default)]
struct Report {
    ok: usize,
    warnings: usize,
    failures: usize,
}

impl Report {
    fn add(&mut self, check: Check) {
        match check.status {
            Status::Ok => self.ok += 1,
            Status::Warn => self.warnings += 1,
            Status::Fail => self.failures += 1,
        }
        say(&check.to_string());
    }
}

/// One line on stdout; a closed pipe (`linkgate --doctor | head`) is not worth a panic, the exit
/// status still tells.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Runs every check on a loaded config and prints the results; `extra_ca` (a PEM file) is
/// trusted besides Mozilla's roots, for a private CA. Returns whether no check failed.
pub fn run(config: &Config, extra_ca: Option<&Path>) -> bool {
    let mut report = Report::default();
    report.add(Check::ok(
        "config",
        format!(
            "{} is valid ({} client{})",
            config.file.display(),
            config.clients.len(),
            if config.clients.len() == 1 { "" } else { "s" }
        ),
    ));
    let roots = https::Roots::load(extra_ca).unwrap_or_else(|problem| {
        report.add(problem);
        https::Roots::mozilla_only()
    });
    match PublicUrl::parse(&config.public_url) {
        Ok(url) => {
            for check in public_url_checks(&url) {
                report.add(check);
            }
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    runtime.block_on(https::network_checks(config, &url, &roots, &mut report));
                    // A DNS lookup that timed out may still run on a blocking thread: don't wait.
                    runtime.shutdown_timeout(Duration::from_millis(100));
                }
                Err(e) => report.add(Check::fail(
                    "network",
                    format!("cannot start the async runtime: {e}"),
                )),
            }
        }
        Err(e) => report.add(Check::fail("public_url", e)),
    }
    for client in &config.clients {
        for check in redirect_uri_checks(client) {
            report.add(check);
        }
        report.add(secret_check(client));
    }
    report.add(proxies_check(config));
    report.add(data_directory_check(config));
    if let Some(settings) = &config.postgres {
        let version = crate::store::postgres::schema_version(settings);
        report.add(storage_check(
            &settings.describe(),
            version,
            crate::store::postgres::NEWEST_SCHEMA,
        ));
    }
    let permissions = config.permission_warnings();
    if permissions.is_empty() {
        report.add(Check::ok(
            "permissions",
            "the config's secrets and the data directory are readable by their owner only",
        ));
    }
    for warning in permissions {
        report.add(Check::warn("permissions", warning));
    }
    if let Some(check) = login::check(config) {
        report.add(check);
    }
    for check in apps::checks(config) {
        report.add(check);
    }
    if let Some(check) = acme::check(config, crate::store::now()) {
        report.add(check);
    }
    if let Some(check) = served_check(config) {
        report.add(check);
    }
    for check in recent_failures(config) {
        report.add(check);
    }
    say(&format!(
        "{} failed, {} warning{}, {} ok",
        report.failures,
        report.warnings,
        if report.warnings == 1 { "" } else { "s" },
        report.ok
    ));
    report.failures == 0
}

/// Whether the running server serves what the file says: a SIGHUP reloads only the TLS
/// certificate files, so an edited file and a server started before it differ until a restart.
/// `None` when no server answers.
fn served_check(config: &Config) -> Option<Check> {
    let answer = crate::admin::socket::send(
        &crate::admin::socket::path(config),
        &crate::admin::Request::Served,
    )
    .ok()?;
    let served: crate::config::Served = serde_json::from_str(&answer).ok()?;
    let differences = served.differences(&crate::config::Served::of(config));
    Some(if differences.is_empty() {
        Check::ok("served", "the running server serves this config file")
    } else {
        Check::warn(
            "served",
            format!(
                "the running server started before the file changed and does not serve it yet \
                 (SIGHUP reloads only the TLS certificate files): {}; restart linkgate",
                differences.join("; ")
            ),
        )
    })
}

/// The running server's recent refusals per client (`--linking-log`), last in the report: what
/// Alexa and Google were refused lately, and the last reason each. Nothing when no server runs.
fn recent_failures(config: &Config) -> Vec<Check> {
    let request = crate::admin::Request::LinkingLog { client: None };
    let Ok(table) = crate::admin::socket::send(&crate::admin::socket::path(config), &request)
    else {
        return vec![Check::ok(
            "linking",
            "no server answered on the admin socket: no recent refusals to show",
        )];
    };
    // TIME, CLIENT, STEP, OUTCOME, REFERENCE, REASON (admin::linking_log_table).
    let mut per_client: std::collections::BTreeMap<String, (usize, usize, String)> =
        Default::default();
    let rows = table
        .lines()
        .skip_while(|l| !l.starts_with("TIME (UTC)\t"))
        .skip(1);
    for line in rows {
        let fields: Vec<&str> = line.split('\t').collect();
        let [_, client, step, outcome, reference, reason] = fields[..] else {
            continue;
        };
        // Requests that named no client (the doctor's own probe of /token among them).
        if client == "(none)" {
            continue;
        }
        let entry = per_client.entry(client.to_string()).or_default();
        if outcome == "ok" {
            entry.1 += 1;
        } else {
            entry.0 += 1;
            entry.2 = format!("{step}: {reason} (reference {reference})");
        }
    }
    if per_client.values().all(|(refused, _, _)| *refused == 0) {
        return vec![Check::ok(
            "linking",
            format!(
                "no refusals since the server started ({} successes kept)",
                per_client.values().map(|(_, ok, _)| ok).sum::<usize>()
            ),
        )];
    }
    per_client
        .into_iter()
        .filter(|(_, (refused, _, _))| *refused > 0)
        .map(|(client, (refused, ok, last))| {
            Check::warn(
                "linking",
                format!(
                    "{client}: {refused} refused, {ok} ok recently; the last refusal: {last} \
                     (linkgate --linking-log {client})"
                ),
            )
        })
        .collect()
}

/// Which proxies' `X-Forwarded-For` is believed: said, so a missing CDN range is noticed.
fn proxies_check(config: &Config) -> Check {
    if config.trusted_proxies.is_empty() {
        Check::ok(
            "proxies",
            "no trusted proxies: the client address is the TCP peer",
        )
    } else {
        Check::ok(
            "proxies",
            format!(
                "X-Forwarded-For is believed from {}; behind a CDN, list its current edge ranges too",
                config.trusted_proxies
            ),
        )
    }
}

// ---- the public URL --------------------------------------------------------------------------

/// `server.public_url` taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// As configured, without a trailing slash.
    pub url: String,
    pub https: bool,
    /// Without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// "" or "/prefix".
    pub path: String,
}

impl PublicUrl {
    pub fn parse(url: &str) -> Result<PublicUrl, String> {
        let url = url.trim_end_matches('/');
        let parts = crate::base::url::parse(url)
            .ok_or_else(|| format!("`{url}` is not an absolute http(s) URL"))?;
        Ok(PublicUrl {
            url: url.to_string(),
            https: parts.https,
            host: parts.bare_host().to_string(),
            port: parts.port_or_default(),
            path: parts.path.to_string(),
        })
    }

    /// The `Host` header: the port only when it is not the scheme's default.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.https { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Whether the world can hardly reach this host: localhost, loopback or private addresses.
    fn is_local(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") || self.host.ends_with(".localhost") {
            return true;
        }
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
            Ok(IpAddr::V6(ip)) => ip.is_loopback(),
            Err(_) => false,
        }
    }
}

/// Alexa only calls `https://` on port 443, and Amazon's and Google's servers must reach the host.
pub fn public_url_checks(url: &PublicUrl) -> Vec<Check> {
    let mut checks = Vec::new();
    let fixed = format!("https://{}{}", url.host, url.path);
    if !url.https {
        checks.push(Check::fail(
            "public_url",
            format!(
                "`{}` is plain http: Alexa and Google only link over HTTPS on port 443 with a certificate from a public CA. Serve HTTPS ([server.tls] or a reverse proxy, see docs/https.md) and set public_url = \"{fixed}\"",
                url.url
            ),
        ));
    } else if url.port != 443 {
        checks.push(Check::warn(
            "public_url",
            format!(
                "`{}` is on port {}: Alexa only calls HTTPS on port 443. Serve linkgate (or its proxy) on 443 and set public_url = \"{fixed}\"",
                url.url, url.port
            ),
        ));
    } else {
        checks.push(Check::ok(
            "public_url",
            format!("`{}` is HTTPS on port 443", url.url),
        ));
    }
    if url.is_local() {
        checks.push(Check::warn(
            "public_url",
            format!(
                "`{}` is a local address: Amazon's and Google's servers cannot reach it. Use the public DNS name of this machine",
                url.host
            ),
        ));
    } else if url.host.parse::<IpAddr>().is_ok() {
        checks.push(Check::warn(
            "public_url",
            format!(
                "`{}` is an IP address: Alexa needs a DNS name with a certificate from a public CA",
                url.host
            ),
        ));
    }
    checks
}

/// FAIL under 14 days (or expired), warn under 30, with the date.
pub fn expiry_check(not_after: u64, now: u64) -> Check {
    let date = format_time(not_after);
    let date = date.split(' ').next().unwrap_or(&date);
    if not_after <= now {
        return Check::fail(
            "expiry",
            format!("the certificate expired on {date}: renew it now (e.g. `certbot renew`), then reload linkgate or the proxy"),
        );
    }
    let days = (not_after - now) / 86400;
    let when = format!(
        "expires on {date} (in {days} day{})",
        if days == 1 { "" } else { "s" }
    );
    if days < EXPIRY_FAIL_DAYS {
        Check::fail(
            "expiry",
            format!("the certificate {when}: renew it now (e.g. `certbot renew`), then reload linkgate or the proxy"),
        )
    } else if days < EXPIRY_WARN_DAYS {
        Check::warn(
            "expiry",
            format!("the certificate {when}: automatic renewal should have happened by now; check certbot's timer and its deploy hook"),
        )
    } else {
        Check::ok("expiry", format!("the certificate {when}"))
    }
}

/// What one request got back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub took: Duration,
}

impl Reply {
    /// The start of the body, for messages.
    fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        match line.char_indices().nth(60) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line,
        }
    }

    fn describe(&self) -> String {
        let kind = if self.content_type.is_empty() {
            "no Content-Type".to_string()
        } else {
            self.content_type.clone()
        };
        format!("{} ({kind}) `{}`", self.status, self.snippet())
    }
}

pub fn healthz_check(reply: &Result<Reply, String>) -> Check {
    match reply {
        Ok(reply) if reply.status == 200 && reply.body.trim_ascii() == b"ok" => Check::ok(
            "healthz",
            format!("/healthz answers 200 ok in {} ms", reply.took.as_millis()),
        ),
        Ok(reply) => Check::fail(
            "healthz",
            format!(
                "/healthz answers {} instead of 200 `ok`: public_url does not reach a healthy linkgate (check the proxy's upstream, and the server's log)",
                reply.describe()
            ),
        ),
        Err(e) => Check::fail("healthz", format!("/healthz: {e}")),
    }
}

/// RFC 8414 metadata whose issuer and endpoints are the ones the operator configured: a mismatch
/// means the running server reads another config (not restarted?) or a proxy rewrites answers.
pub fn metadata_check(reply: &Result<Reply, String>, public_url: &str) -> Check {
    const PATH: &str = "/.well-known/oauth-authorization-server";
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return Check::fail("metadata", format!("{PATH}: {e}")),
    };
    let json = match serde_json::from_slice::<serde_json::Value>(&reply.body) {
        Ok(json) if reply.status == 200 && json.is_object() => json,
        _ => {
            return Check::fail(
                "metadata",
                format!(
                    "{PATH} answers {} instead of JSON metadata: is public_url reaching linkgate?",
                    reply.describe()
                ),
            )
        }
    };
    let expected = [
        ("issuer", public_url.to_string()),
        ("authorization_endpoint", format!("{public_url}/authorize")),
        ("token_endpoint", format!("{public_url}/token")),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(key, want)| json[key].as_str() != Some(want.as_str()))
        .map(|(key, want)| format!("{key} is {} (expected `{want}`)", json[key]))
        .collect();
    if wrong.is_empty() {
        Check::ok(
            "metadata",
            format!("{PATH}: issuer and endpoints match public_url"),
        )
    } else {
        Check::fail(
            "metadata",
            format!(
                "{PATH}: {}. The running server has another public_url than this config: restart it after editing the config",
                wrong.join("; ")
            ),
        )
    }
}

/// An invalid `/token` request must get an RFC 6749 §5.2 JSON error: a proxy that turns 4xx
/// answers into its own HTML page leaves Alexa with an unreadable answer.
pub fn token_error_check(reply: &Result<Reply, String>) -> Check {
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return Check::fail("token", format!("POST /token: {e}")),
    };
    let json = reply.content_type.starts_with("application/json");
    let error = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string));
    match error {
        Some(error) if json && (400..500).contains(&reply.status) => {
            let took = reply.took.as_millis();
            if reply.took > SLOW_TOKEN_ENDPOINT {
                Check::warn(
                    "token",
                    format!("POST /token answers an RFC 6749 JSON error ({} {error}) but took {took} ms: Alexa gives it about 4.5 s", reply.status),
                )
            } else {
                Check::ok(
                    "token",
                    format!(
                        "POST /token answers an invalid request with an RFC 6749 JSON error ({} {error}) in {took} ms",
                        reply.status
                    ),
                )
            }
        }
        _ => Check::fail(
            "token",
            format!(
                "POST /token answers an invalid request with {} instead of an RFC 6749 JSON error: a proxy in front may replace error answers with its own pages (nginx: no proxy_intercept_errors or error_page for linkgate)",
                reply.describe()
            ),
        ),
    }
}

// ---- the clients -------------------------------------------------------------------------------

/// The vendor id of an Alexa redirect URI (`https://<amazon host>/api/skill/link/<vendor id>`).
fn alexa_vendor(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("https://")?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let amazon = host.ends_with(".amazon.com") || host.ends_with(".amazon.co.jp");
    let vendor = path.strip_prefix(ALEXA_PATH)?;
    (amazon && !vendor.is_empty() && !vendor.contains('/')).then_some(vendor)
}

/// The project id and whether it is the sandbox URI, of a Google redirect URI.
fn google_project(uri: &str) -> Option<(&str, bool)> {
    let rest = uri.strip_prefix("https://")?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let project = path.strip_prefix(GOOGLE_PATH)?;
    if project.is_empty() || project.contains('/') {
        return None;
    }
    match host {
        GOOGLE_HOST => Some((project, false)),
        GOOGLE_SANDBOX_HOST => Some((project, true)),
        _ => None,
    }
}

/// An Alexa client needs the redirect URI of every region (customers of a region whose URI is
/// missing get an error page); a Google client wants the sandbox twin for testing.
pub fn redirect_uri_checks(client: &Client) -> Vec<Check> {
    let mut checks = Vec::new();
    let has = |uri: &str| client.redirect_uris.iter().any(|u| u == uri);
    let mut vendors: Vec<&str> = Vec::new();
    let mut projects: Vec<&str> = Vec::new();
    for uri in &client.redirect_uris {
        if let Some(vendor) = alexa_vendor(uri) {
            if !vendors.contains(&vendor) {
                vendors.push(vendor);
            }
        }
        if let Some((project, _)) = google_project(uri) {
            if !projects.contains(&project) {
                projects.push(project);
            }
        }
    }
    for vendor in vendors {
        let missing: Vec<(String, &str)> = ALEXA_REGIONS
            .iter()
            .map(|(host, region)| (format!("https://{host}{ALEXA_PATH}{vendor}"), *region))
            .filter(|(uri, _)| !has(uri))
            .collect();
        if missing.is_empty() {
            checks.push(Check::ok(
                "redirects",
                format!(
                    "`{}`: Alexa vendor {vendor} has all three regions (NA, EU/IN, FE)",
                    client.id
                ),
            ));
            continue;
        }
        let regions: Vec<&str> = missing.iter().map(|(_, region)| *region).collect();
        let mut message = format!(
            "`{}`: Alexa vendor {vendor} has no redirect URI for {}: customers there cannot link. Add to redirect_uris:",
            client.id,
            regions.join(", ")
        );
        for (uri, _) in &missing {
            message.push_str(&format!("\n  \"{uri}\","));
        }
        checks.push(Check::warn("redirects", message));
    }
    for project in projects {
        let live = format!("https://{GOOGLE_HOST}{GOOGLE_PATH}{project}");
        let sandbox = format!("https://{GOOGLE_SANDBOX_HOST}{GOOGLE_PATH}{project}");
        let id = &client.id;
        checks.push(match (has(&live), has(&sandbox)) {
            (true, true) => Check::ok(
                "redirects",
                format!("`{id}`: Google project {project} has its live and sandbox redirect URIs"),
            ),
            (true, false) => Check::warn(
                "redirects",
                format!("`{id}`: Google project {project} has no sandbox redirect URI (testing in Google's simulator uses it). Add to redirect_uris:\n  \"{sandbox}\","),
            ),
            _ => Check::warn(
                "redirects",
                format!("`{id}`: Google project {project} has only the sandbox redirect URI (real customers link through the live one). Add to redirect_uris:\n  \"{live}\","),
            ),
        });
    }
    checks
}

/// A client secret from our documentation, or a short or repetitive one, guards nothing.
pub fn secret_check(client: &Client) -> Check {
    let id = &client.id;
    let secret = match &client.secret {
        ClientSecret::Hash(_) => {
            return Check::ok(
                "secret",
                format!("`{id}`: stored as an argon2 hash (its strength cannot be checked)"),
            )
        }
        ClientSecret::Plain(secret) => secret.expose(),
    };
    if EXAMPLE_SECRETS.contains(&secret) {
        return Check::fail(
            "secret",
            format!("`{id}`: the secret is the example one from config.example.toml or the README: anyone can read it. Generate one (`openssl rand -hex 32`) and put it in the config and the Alexa/Google console"),
        );
    }
    let chars = secret.chars().count();
    let mut distinct: Vec<char> = secret.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if chars < MIN_SECRET_CHARS || distinct.len() < 8 {
        return Check::warn(
            "secret",
            format!("`{id}`: the secret is weak ({chars} characters, {} different): use at least {MIN_SECRET_CHARS} random ones (`openssl rand -hex 32`)", distinct.len()),
        );
    }
    Check::ok(
        "secret",
        format!("`{id}`: {chars} characters, not an example one"),
    )
}

// ---- the data directory ------------------------------------------------------------------------

/// The server must be able to write its data directory; when the server runs, it holds it (the
/// admin socket answers, as `admin.rs` finds the running server).
pub fn data_directory_check(config: &Config) -> Check {
    let dir = &config.storage_path;
    let shown = format!("the data directory {}", dir.display());
    let as_service_user = format!("run the doctor as the service's user (e.g. `sudo -u linkgate linkgate --doctor …`) or fix the owner (`chown -R linkgate: {}`)", dir.display());
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            match parent.map(writable) {
                Some(Ok(())) | None => Check::ok(
                    "data",
                    format!("{shown} does not exist yet; linkgate creates it (mode 0700) when it starts"),
                ),
                Some(Err(e)) => Check::warn(
                    "data",
                    format!("{shown} does not exist and this user cannot create it ({e}): create it for the service's user (systemd's StateDirectory= does)"),
                ),
            }
        }
        Err(e) => Check::fail("data", format!("{shown}: {e}: {as_service_user}")),
        Ok(meta) if !meta.is_dir() => Check::fail(
            "data",
            format!("{shown} is not a directory: point [storage] path at a directory"),
        ),
        Ok(_) => {
            let socket = socket::path(config);
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Check::ok(
                    "data",
                    format!("{shown} is held by the running server (its admin socket answers)"),
                );
            }
            match writable(dir) {
                Ok(()) => Check::ok(
                    "data",
                    format!("{shown} exists and is writable by this user"),
                ),
                Err(e) => Check::fail(
                    "data",
                    format!("{shown} is not writable by this user ({e}): {as_service_user}"),
                ),
            }
        }
    }
}

/// PostgreSQL (`[storage] backend = "postgres"`): the database answers and holds a linkgate
/// schema this binary can run on. `version` is what `store::postgres::schema_version` found;
/// `database` says where it is (never the password).
pub fn storage_check(
    database: &str,
    version: Result<Option<i32>, crate::store::StoreError>,
    newest: i32,
) -> Check {
    match version {
        Err(e) => Check::fail(
            "storage",
            format!("{database}: cannot use it: {e}: check storage.url, that the database runs, and that it lets this machine and user in (pg_hba.conf)"),
        ),
        Ok(None) => Check::warn(
            "storage",
            format!("{database} answers but holds no linkgate tables yet: the first start creates them (if linkgate already runs, storage.url names another database than its nodes use)"),
        ),
        Ok(Some(v)) if v > newest => Check::fail(
            "storage",
            format!("{database}: its linkgate schema is version {v}, newer than this linkgate knows (up to {newest}): a newer linkgate upgraded it; run that version on this node too"),
        ),
        Ok(Some(v)) if v < newest => Check::ok(
            "storage",
            format!("{database} answers; schema version {v}, upgraded to {newest} when this linkgate starts"),
        ),
        Ok(Some(v)) => Check::ok(
            "storage",
            format!("{database} answers; schema version {v} (current)"),
        ),
    }
}

/// Whether this user can create a file in `dir` (tried, then removed).
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".linkgate-doctor-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::secret::Secret;

    fn client(secret: &str, uris: &[&str]) -> Client {
        Client {
            secret: ClientSecret::Plain(crate::base::secret::KnownSecret::new(Secret::new(
                secret.to_string(),
            ))),
            name: "Skill".into(),
            redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            ..Client::for_tests("skill")
        }
    }

    #[test]
    fn public_urls_are_taken_apart() {
        let url = PublicUrl::parse("https://auth.example.com/prefix/").unwrap();
        assert_eq!(
            (url.https, url.host.as_str(), url.port, url.path.as_str()),
            (true, "auth.example.com", 443, "/prefix")
        );
        assert_eq!(url.authority(), "auth.example.com");
        let url = PublicUrl::parse("https://[::1]:8443").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 8443));
        assert_eq!(url.authority(), "[::1]:8443");
        assert!(PublicUrl::parse("ftp://x").is_err());
        assert!(PublicUrl::parse("https://x:port").is_err());
    }

    #[test]
    fn only_https_on_443_at_a_public_name_passes() {
        let statuses = |url: &str| {
            public_url_checks(&PublicUrl::parse(url).unwrap())
                .iter()
                .map(|c| c.status)
                .collect::<Vec<_>>()
        };
        assert_eq!(statuses("https://auth.example.com"), [Status::Ok]);
        assert_eq!(statuses("https://auth.example.com:8443"), [Status::Warn]);
        assert_eq!(statuses("http://auth.example.com"), [Status::Fail]);
        assert_eq!(statuses("https://localhost"), [Status::Ok, Status::Warn]);
    }

    #[test]
    fn missing_alexa_regions_are_listed_to_paste() {
        let checks = redirect_uri_checks(&client(
            &"x".repeat(40),
            &["https://pitangui.amazon.com/api/skill/link/M2ABC"],
        ));
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Warn);
        assert!(checks[0].message.contains("EU/IN, FE"));
        assert!(checks[0]
            .message
            .contains("\n  \"https://layla.amazon.com/api/skill/link/M2ABC\","));
        assert!(checks[0]
            .message
            .contains("\n  \"https://alexa.amazon.co.jp/api/skill/link/M2ABC\","));
    }

    #[test]
    fn a_google_client_wants_its_sandbox_twin() {
        let live = "https://oauth-redirect.googleusercontent.com/r/p1";
        let sandbox = "https://oauth-redirect-sandbox.googleusercontent.com/r/p1";
        let only_live = redirect_uri_checks(&client("s", &[live]));
        assert_eq!(only_live[0].status, Status::Warn);
        assert!(only_live[0].message.contains(sandbox));
        let both = redirect_uri_checks(&client("s", &[live, sandbox]));
        assert_eq!(both[0].status, Status::Ok);
        assert!(redirect_uri_checks(&client("s", &["https://example.com/cb"])).is_empty());
    }

    #[test]
    fn example_and_weak_secrets_are_caught() {
        assert_eq!(
            secret_check(&client("change-me-to-a-long-random-string", &[])).status,
            Status::Fail
        );
        assert_eq!(
            secret_check(&client("short-but-valid-123", &[])).status,
            Status::Warn
        );
        assert_eq!(
            secret_check(&client(&"ab".repeat(20), &[])).status,
            Status::Warn
        );
        assert_eq!(
            secret_check(&client("Jq3V9s0xKp2LmN7rT4wYbC8dE1fG6hZ5uA", &[])).status,
            Status::Ok
        );
    }

    #[test]
    fn expiry_fails_under_14_days_and_warns_under_30() {
        let now = 1_700_000_000;
        let day = 86400;
        assert_eq!(expiry_check(now + 10 * day, now).status, Status::Fail);
        assert_eq!(expiry_check(now + 20 * day, now).status, Status::Warn);
        assert_eq!(expiry_check(now + 60 * day, now).status, Status::Ok);
        let expired = expiry_check(now - day, now);
        assert_eq!(expired.status, Status::Fail);
        assert!(expired.message.contains("expired on 2023-11-13"));
    }

    #[test]
    fn the_database_must_answer_at_a_schema_this_linkgate_knows() {
        use crate::store::StoreError;
        let at = "PostgreSQL at db:5432, database linkgate, user linkgate";
        let down = storage_check(at, Err(StoreError::Io("connection refused".into())), 1);
        assert_eq!(down.status, Status::Fail);
        assert!(down.message.contains("connection refused"), "{down}");
        assert_eq!(storage_check(at, Ok(None), 1).status, Status::Warn);
        let newer = storage_check(at, Ok(Some(2)), 1);
        assert_eq!(newer.status, Status::Fail);
        assert!(newer.message.contains("version 2, newer"), "{newer}");
        assert_eq!(storage_check(at, Ok(Some(1)), 2).status, Status::Ok);
        let current = storage_check(at, Ok(Some(1)), 1);
        assert_eq!(current.status, Status::Ok);
        assert!(current.message.contains("(current)"), "{current}");
    }

    #[test]
    fn lines_are_aligned() {
        let check = Check::warn("redirects", "first\n  \"uri\",");
        assert_eq!(
            check.to_string(),
            "warn  redirects  first\n                   \"uri\","
        );
    }
}
