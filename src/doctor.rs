//! `linkgate --doctor`: checks, from the machine itself, what most often breaks Alexa and Google
//! account linking — the public URL, its certificate chain, what a proxy in front does to the
//! endpoints, the clients' redirect URIs and secrets, the data directory — before a customer finds
//! out. It prints one line per check (`ok`, `warn`, `FAIL`, with what to do) and fails when any
//! check failed.
//!
//! The checks are plain functions returning a `Check`. The small HTTPS client at the end exists so
//! they see what Alexa sees: it offers TLS 1.2 and 1.3 with SNI, verifies the certificate chain
//! itself against Mozilla's roots only, never fetching a missing intermediate (Alexa does not
//! either), and every network step has a time limit.

use crate::admin::format_time;
use crate::admin_socket;
use crate::config::{Client, ClientSecret, Config, EXAMPLE_SECRETS};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::ParsedCertificate;
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

/// Every network step (resolving, connecting, one request) gets this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many resolved addresses are tried.
const MAX_ADDRESSES: usize = 4;
/// Bodies we read are small (`ok`, metadata, an error); more is cut off.
const MAX_BODY: usize = 256 * 1024;
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
        println!("{check}");
    }
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
    let roots = Roots::load(extra_ca).unwrap_or_else(|problem| {
        report.add(problem);
        Roots::load(None).unwrap_or_else(|_| Roots::mozilla_only())
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
                Ok(runtime) => runtime.block_on(network_checks(config, &url, &roots, &mut report)),
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
    report.add(data_directory_check(config));
    println!(
        "{} failed, {} warning{}, {} ok",
        report.failures,
        report.warnings,
        if report.warnings == 1 { "" } else { "s" },
        report.ok
    );
    report.failures == 0
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
        let bad = || format!("`{url}` is not an absolute http(s) URL");
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(port) => port.parse().map_err(|_| bad())?,
            None if https => 443,
            None => 80,
        };
        if host.is_empty() || host.contains('@') {
            return Err(bad());
        }
        Ok(PublicUrl {
            url: url.to_string(),
            https,
            host: host.to_string(),
            port,
            path: path.to_string(),
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
                "`{}` is plain http: Alexa and Google only link over HTTPS on port 443 with a certificate from a public CA. Serve HTTPS ([server.tls] or a reverse proxy, see README \"HTTPS\") and set public_url = \"{fixed}\"",
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

// ---- what the world sees: DNS, TCP, TLS, the certificate, the endpoints -----------------------

async fn network_checks(config: &Config, url: &PublicUrl, roots: &Roots, report: &mut Report) {
    let skipped = "the checks that need a connection were skipped";
    let addresses = match resolve(url).await {
        Ok(addresses) => {
            let list: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
            if url.host.parse::<IpAddr>().is_err() {
                report.add(Check::ok(
                    "dns",
                    format!("{} resolves to {}", url.host, list.join(", ")),
                ));
            }
            addresses
        }
        Err(e) => {
            report.add(Check::fail("dns", format!("{e}; {skipped}")));
            return;
        }
    };
    let (addr, tcp) = match connect_any(&addresses).await {
        Ok((addr, tcp, took)) => {
            report.add(Check::ok(
                "connect",
                format!("{addr} accepted a connection in {} ms", took.as_millis()),
            ));
            (addr, tcp)
        }
        Err(e) => {
            report.add(Check::fail(
                "connect",
                format!(
                    "cannot connect to {} port {}: {e}. Is linkgate (or its proxy) running and listening there, and is the firewall open? ({skipped})",
                    url.host, url.port
                ),
            ));
            return;
        }
    };
    let endpoint = if url.https {
        let server_name = match ServerName::try_from(url.host.clone()) {
            Ok(name) => name,
            Err(e) => {
                report.add(Check::fail("tls", format!("`{}`: {e}", url.host)));
                return;
            }
        };
        let connector = match inspecting_client() {
            Ok(config) => TlsConnector::from(config),
            Err(e) => {
                report.add(Check::fail("tls", e));
                return;
            }
        };
        let handshake = timeout(STEP_TIMEOUT, connector.connect(server_name.clone(), tcp)).await;
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                report.add(Check::fail(
                    "tls",
                    format!(
                        "the TLS handshake with {addr} failed: {e}. Alexa needs HTTPS with TLS 1.2 or 1.3 on this port ({skipped})"
                    ),
                ));
                return;
            }
            Err(_) => {
                report.add(Check::fail(
                    "tls",
                    format!(
                        "no TLS handshake from {addr} within {} s: is this port serving HTTPS? ({skipped})",
                        STEP_TIMEOUT.as_secs()
                    ),
                ));
                return;
            }
        };
        let (_, connection) = stream.get_ref();
        let version = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
            other => format!("{other:?}"),
        };
        let sni = match &server_name {
            ServerName::DnsName(name) => format!("with SNI `{}`", name.as_ref()),
            _ => "without SNI (an IP address)".to_string(),
        };
        report.add(Check::ok("tls", format!("{version} handshake {sni}")));
        let presented: Vec<CertificateDer<'static>> = connection
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.clone().into_owned())
            .collect();
        for check in certificate_checks(&presented, &server_name, roots, UnixTime::now()) {
            report.add(check);
        }
        Endpoint {
            addr,
            url: url.clone(),
            tls: Some((connector, server_name)),
        }
    } else {
        drop(tcp);
        Endpoint {
            addr,
            url: url.clone(),
            tls: None,
        }
    };
    report.add(healthz_check(
        &endpoint.request("GET", "/healthz", None).await,
    ));
    report.add(metadata_check(
        &endpoint
            .request("GET", "/.well-known/oauth-authorization-server", None)
            .await,
        &config.public_url,
    ));
    let probe = "grant_type=authorization_code&code=linkgate-doctor-probe";
    report.add(token_error_check(
        &endpoint.request("POST", "/token", Some(probe)).await,
    ));
}

async fn resolve(url: &PublicUrl) -> Result<Vec<SocketAddr>, String> {
    let lookup = tokio::net::lookup_host((url.host.as_str(), url.port));
    match timeout(STEP_TIMEOUT, lookup).await {
        Ok(Ok(addresses)) => {
            let mut addresses: Vec<SocketAddr> = addresses.collect();
            addresses.dedup();
            if addresses.is_empty() {
                return Err(format!("`{}` has no address", url.host));
            }
            Ok(addresses)
        }
        Ok(Err(e)) => Err(format!(
            "cannot resolve `{}`: {e}. Check its DNS A/AAAA records",
            url.host
        )),
        Err(_) => Err(format!(
            "resolving `{}` took longer than {} s",
            url.host,
            STEP_TIMEOUT.as_secs()
        )),
    }
}

/// The first address that accepts a connection, as a client would try them.
async fn connect_any(
    addresses: &[SocketAddr],
) -> Result<(SocketAddr, TcpStream, Duration), String> {
    let mut errors = Vec::new();
    for &addr in addresses.iter().take(MAX_ADDRESSES) {
        let started = Instant::now();
        match timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok((addr, tcp, started.elapsed())),
            Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
            Err(_) => errors.push(format!(
                "{addr}: no answer within {} s",
                STEP_TIMEOUT.as_secs()
            )),
        }
    }
    Err(errors.join("; "))
}

/// The trust anchors: Mozilla's (as shipped by `webpki-roots`), plus an operator's private CA.
struct Roots {
    mozilla: Arc<RootCertStore>,
    /// Mozilla's plus the certificates of `--doctor-ca FILE`.
    extra: Option<(String, Arc<RootCertStore>)>,
}

impl Roots {
    fn mozilla_only() -> Roots {
        let mut store = RootCertStore::empty();
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Roots {
            mozilla: Arc::new(store),
            extra: None,
        }
    }

    fn load(extra_ca: Option<&Path>) -> Result<Roots, Check> {
        let mut roots = Roots::mozilla_only();
        let Some(file) = extra_ca else {
            return Ok(roots);
        };
        let problem = |what: String| {
            Check::fail(
                "doctor-ca",
                format!(
                    "{}: {what}; checking against Mozilla's roots only",
                    file.display()
                ),
            )
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .and_then(|iter| iter.collect())
            .map_err(|e| problem(format!("cannot read: {e}")))?;
        if certs.is_empty() {
            return Err(problem("holds no PEM certificate".into()));
        }
        let mut store = (*roots.mozilla).clone();
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| problem(format!("not a CA certificate: {e}")))?;
        }
        roots.extra = Some((file.display().to_string(), Arc::new(store)));
        Ok(roots)
    }
}

/// The chain, the name and the expiry of the certificates a server presented, judged the way
/// Alexa's client does: from the presented chain alone, nothing fetched.
fn certificate_checks(
    presented: &[CertificateDer<'_>],
    server_name: &ServerName<'_>,
    roots: &Roots,
    now: UnixTime,
) -> Vec<Check> {
    let Some(leaf_der) = presented.first() else {
        return vec![Check::fail("chain", "the server presented no certificate")];
    };
    let leaf = match ParsedCertificate::try_from(leaf_der) {
        Ok(leaf) => leaf,
        Err(e) => {
            return vec![Check::fail(
                "chain",
                format!("the server's certificate cannot be parsed: {e}"),
            )]
        }
    };
    let algorithms = crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    let intermediates = &presented[1..];
    let verify = |store: &RootCertStore| {
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &leaf,
            store,
            intermediates,
            now,
            algorithms,
        )
    };
    let count = format!(
        "{} certificate{}",
        presented.len(),
        if presented.len() == 1 { "" } else { "s" }
    );
    let mut checks = Vec::new();
    let der = der::Certificate::parse(leaf_der);
    checks.push(match verify(&roots.mozilla) {
        Ok(()) => Check::ok(
            "chain",
            format!("the {count} sent verify to a root in Mozilla's list"),
        ),
        Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            match &roots.extra {
                Some((file, store)) if verify(store).is_ok() => Check::ok(
                    "chain",
                    format!(
                        "the {count} sent verify to a CA in {file} (--doctor-ca); Alexa and Google trust public CAs only"
                    ),
                ),
                _ => untrusted_chain(presented, &count),
            }
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => Check::fail(
            "chain",
            "a certificate in the chain has expired: renew it (e.g. `certbot renew`), then reload linkgate or the proxy",
        ),
        Err(e) => Check::fail("chain", format!("the chain does not verify: {e}")),
    });
    checks.push(hostname_check(&leaf, server_name));
    checks.push(match der {
        Some(cert) => expiry_check(cert.not_after, now.as_secs()),
        None => Check::fail("expiry", "cannot read the certificate's validity dates"),
    });
    checks
}

/// An unknown issuer: a self-signed certificate, a private root, or (most often) a chain that
/// stops short of its root because the intermediate is missing.
fn untrusted_chain(presented: &[CertificateDer<'_>], count: &str) -> Check {
    let top = presented
        .last()
        .and_then(|der| der::Certificate::parse(der));
    let self_signed = top.as_ref().is_some_and(|cert| cert.issuer == cert.subject);
    if presented.len() == 1 && self_signed {
        Check::fail(
            "chain",
            "the certificate is self-signed: Alexa and Google need one from a public CA (e.g. Let's Encrypt)",
        )
    } else if self_signed {
        Check::fail(
            "chain",
            format!(
                "the {count} sent end at a root that is not in Mozilla's list (a private CA?): Alexa and Google need a certificate from a public CA"
            ),
        )
    } else {
        Check::fail(
            "chain",
            format!(
                "the chain is incomplete: the {count} sent do not reach a trusted root, and Alexa does not fetch missing intermediates. Serve fullchain.pem, not cert.pem ([server.tls] cert, nginx ssl_certificate)"
            ),
        )
    }
}

fn hostname_check(leaf: &ParsedCertificate<'_>, server_name: &ServerName<'_>) -> Check {
    let host = server_name.to_str();
    match rustls::client::verify_server_name(leaf, server_name) {
        Ok(()) => Check::ok("hostname", format!("the certificate is valid for `{host}`")),
        Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        })) => Check::fail(
            "hostname",
            format!(
                "the certificate is for {}, not `{host}`: get one that names {host}",
                if presented.is_empty() {
                    "no DNS name".to_string()
                } else {
                    presented.join(", ")
                }
            ),
        ),
        Err(e) => Check::fail(
            "hostname",
            format!("the certificate is not valid for `{host}`: {e}"),
        ),
    }
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

/// Where requests go once the address and the TLS setup are known. Each request has its own
/// connection (`Connection: close` semantics), as Alexa's calls do.
struct Endpoint {
    addr: SocketAddr,
    url: PublicUrl,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Endpoint {
    async fn request(&self, method: &str, path: &str, form: Option<&str>) -> Result<Reply, String> {
        let started = Instant::now();
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url.path))
            .header(hyper::header::HOST, self.url.authority())
            .header(
                hyper::header::USER_AGENT,
                concat!("linkgate-doctor/", env!("CARGO_PKG_VERSION")),
            );
        if form.is_some() {
            builder = builder.header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        let body = Full::new(Bytes::from(form.unwrap_or("").to_string()));
        let request = builder.body(body).map_err(|e| e.to_string())?;
        let work = async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
            match &self.tls {
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS handshake failed: {e}"))?;
                    exchange(tls, request).await
                }
                None => exchange(tcp, request).await,
            }
        };
        let mut reply = timeout(STEP_TIMEOUT, work)
            .await
            .map_err(|_| format!("no complete answer within {} s", STEP_TIMEOUT.as_secs()))??;
        reply.took = started.elapsed();
        Ok(reply)
    }
}

/// One HTTP/1.1 request and its response on a fresh connection.
async fn exchange<T>(io: T, request: hyper::Request<Full<Bytes>>) -> Result<Reply, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("no HTTP answer: {e}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer failed: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Reply {
            status,
            content_type,
            body,
            took: Duration::ZERO,
        })
    }
    .await;
    driver.abort();
    result
}

/// A TLS client offering TLS 1.2 and 1.3 (with SNI for DNS names) that lets every handshake
/// finish and leaves judging the certificate to `certificate_checks`, so that one bad certificate
/// still lets the endpoint checks run. Nothing secret is ever sent over these connections.
fn inspecting_client() -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(InspectLater(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any certificate during the handshake (still checking the handshake signatures).
#[derive(Debug)]
struct InspectLater(Arc<CryptoProvider>);

impl ServerCertVerifier for InspectLater {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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
            format!("`{id}`: the secret is the example one from config.example.toml or the README: anyone can read it. Generate one (`openssl rand -base64 32`) and put it in the config and the Alexa/Google console"),
        );
    }
    let chars = secret.chars().count();
    let mut distinct: Vec<char> = secret.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if chars < MIN_SECRET_CHARS || distinct.len() < 8 {
        return Check::warn(
            "secret",
            format!("`{id}`: the secret is weak ({chars} characters, {} different): use at least {MIN_SECRET_CHARS} random ones (`openssl rand -base64 32`)", distinct.len()),
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
            let socket = admin_socket::path(config);
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

/// Whether this user can create a file in `dir` (tried, then removed).
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".linkgate-doctor-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

// ---- just enough DER -----------------------------------------------------------------------------

/// Just enough DER (X.690) to read a certificate's end of validity and whether it signed itself;
/// rustls checks the chain but does not show these.
mod der {
    pub struct Certificate<'a> {
        /// The encoded names, compared byte for byte.
        pub issuer: &'a [u8],
        pub subject: &'a [u8],
        /// Unix seconds.
        pub not_after: u64,
    }

    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;

    impl<'a> Certificate<'a> {
        /// RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version,
        /// serialNumber, signature, issuer, validity, subject, … }, … }
        pub fn parse(der: &'a [u8]) -> Option<Certificate<'a>> {
            let (_, certificate, _, _) = expect(der, SEQUENCE)?;
            let (_, tbs, _, _) = expect(certificate, SEQUENCE)?;
            let mut rest = tbs;
            if rest.first() == Some(&VERSION) {
                rest = next(rest)?.3;
            }
            let rest = expect(rest, INTEGER)?.3;
            let rest = expect(rest, SEQUENCE)?.3;
            let (_, _, issuer, rest) = expect(rest, SEQUENCE)?;
            let (_, validity, _, rest) = expect(rest, SEQUENCE)?;
            let (_, _, subject, _) = expect(rest, SEQUENCE)?;
            let after_not_before = next(validity)?.3;
            let (tag, not_after, _, _) = next(after_not_before)?;
            Some(Certificate {
                issuer,
                subject,
                not_after: time(tag, not_after)?,
            })
        }
    }

    /// (tag, content, the whole element, what follows).
    type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

    fn next(input: &[u8]) -> Option<Element<'_>> {
        let tag = *input.first()?;
        let first = *input.get(1)?;
        let (length, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None;
            }
            let bytes = input.get(2..2 + count)?;
            let length = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (length, 2 + count)
        };
        let end = header.checked_add(length)?;
        let content = input.get(header..end)?;
        Some((tag, content, &input[..end], &input[end..]))
    }

    fn expect(input: &[u8], tag: u8) -> Option<Element<'_>> {
        next(input).filter(|element| element.0 == tag)
    }

    /// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` (RFC 5280 §4.1.2.5).
    fn time(tag: u8, bytes: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(bytes).ok()?.strip_suffix('Z')?;
        let (year, rest) = match tag {
            UTC_TIME => {
                let yy = number(text.get(0..2)?)?;
                (if yy < 50 { 2000 + yy } else { 1900 + yy }, text.get(2..)?)
            }
            GENERALIZED_TIME => (number(text.get(0..4)?)?, text.get(4..)?),
            _ => return None,
        };
        if rest.len() != 10 {
            return None;
        }
        let field = |at: usize| number(&rest[at..at + 2]);
        let (month, day) = (field(0)?, field(2)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let seconds = days_from_civil(year, month, day) * 86400
            + field(4)? * 3600
            + field(6)? * 60
            + field(8)?;
        u64::try_from(seconds).ok()
    }

    fn number(digits: &str) -> Option<i64> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Days since 1970-01-01 (Howard Hinnant's days-from-civil).
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let yoe = year - era * 400;
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn reads_both_time_forms() {
            assert_eq!(super::time(super::UTC_TIME, b"700101000000Z"), Some(0));
            assert_eq!(
                super::time(super::GENERALIZED_TIME, b"20261118110640Z"),
                Some(1_795_000_000)
            );
            assert_eq!(super::time(super::UTC_TIME, b"7001010000Z"), None);
            assert_eq!(super::time(super::UTC_TIME, b"70130100000+Z"), None);
        }

        #[test]
        fn truncated_input_is_refused() {
            assert!(super::Certificate::parse(&[]).is_none());
            assert!(super::Certificate::parse(&[0x30, 0x82, 0xff]).is_none());
            assert!(super::Certificate::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn client(secret: &str, uris: &[&str]) -> Client {
        Client {
            id: "skill".into(),
            secret: ClientSecret::Plain(Secret::new(secret.to_string())),
            name: "Skill".into(),
            redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            require_pkce: false,
            rotate_refresh_tokens: false,
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
    fn lines_are_aligned() {
        let check = Check::warn("redirects", "first\n  \"uri\",");
        assert_eq!(
            check.to_string(),
            "warn  redirects  first\n                   \"uri\","
        );
    }
}
