//! What the world sees of `public_url`: DNS, TCP, the TLS handshake, the certificate chain, and
//! the answers of three endpoints, each step with a time limit. The certificate is judged the way
//! Alexa's client judges it: from the chain the server sends, against Mozilla's roots (as shipped
//! by `webpki-roots`), never fetching a missing intermediate. The client is a few lines of hyper
//! over tokio-rustls.

use super::{
    expiry_check, healthz_check, metadata_check, token_error_check, Check, PublicUrl, Reply, Report,
};
use crate::base::{der, tls_client};
use crate::config::Config;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
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
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::ParsedCertificate;
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

/// Every network step (resolving, connecting, the handshake, one request) gets this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many resolved addresses are tried.
const MAX_ADDRESSES: usize = 4;
/// Bodies we read are small (`ok`, metadata, an error); more is cut off.
const MAX_BODY: usize = 256 * 1024;
/// Said when a network step fails, so that silence about the later ones is not read as success.
const SKIPPED: &str = "the checks that need a connection were skipped";

/// DNS, TCP, TLS and the certificate, then the endpoints; stops at the first step that fails.
pub(super) async fn network_checks(
    config: &Config,
    url: &PublicUrl,
    roots: &Roots,
    report: &mut Report,
) {
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
            report.add(Check::fail("dns", format!("{e}; {SKIPPED}")));
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
                    "cannot connect to {} port {}: {e}. Is linkgate (or its proxy) running and listening there, and is the firewall open? ({SKIPPED})",
                    url.host, url.port
                ),
            ));
            return;
        }
    };
    let tls = if url.https {
        let Some(tls) = tls_checks(url, addr, tcp, roots, report).await else {
            return;
        };
        Some(tls)
    } else {
        drop(tcp);
        None
    };
    let endpoint = Endpoint {
        addr,
        url: url.clone(),
        tls,
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

/// The TLS handshake and the certificate it presents. Returns how to make further connections,
/// or `None` (after reporting why) when no TLS connection could be made.
async fn tls_checks(
    url: &PublicUrl,
    addr: SocketAddr,
    tcp: TcpStream,
    roots: &Roots,
    report: &mut Report,
) -> Option<(TlsConnector, ServerName<'static>)> {
    let server_name = match ServerName::try_from(url.host.clone()) {
        Ok(name) => name,
        Err(e) => {
            report.add(Check::fail("tls", format!("`{}`: {e}", url.host)));
            return None;
        }
    };
    let connector = match inspecting_client() {
        Ok(config) => TlsConnector::from(config),
        Err(e) => {
            report.add(Check::fail("tls", e));
            return None;
        }
    };
    let handshake = timeout(STEP_TIMEOUT, connector.connect(server_name.clone(), tcp)).await;
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            report.add(Check::fail(
                "tls",
                format!(
                    "the TLS handshake with {addr} failed: {e}. Alexa needs HTTPS with TLS 1.2 or 1.3 on this port ({SKIPPED})"
                ),
            ));
            return None;
        }
        Err(_) => {
            report.add(Check::fail(
                "tls",
                format!(
                    "no TLS handshake from {addr} within {} s: is this port serving HTTPS? ({SKIPPED})",
                    STEP_TIMEOUT.as_secs()
                ),
            ));
            return None;
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
    Some((connector, server_name))
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
pub(super) struct Roots {
    mozilla: Arc<RootCertStore>,
    /// Mozilla's plus the certificates of `--doctor-ca FILE`.
    extra: Option<(String, Arc<RootCertStore>)>,
}

impl Roots {
    pub(super) fn mozilla_only() -> Roots {
        // Mozilla's roots alone cannot fail to load.
        let store = tls_client::roots([]).unwrap_or_else(|_| RootCertStore::empty());
        Roots {
            mozilla: Arc::new(store),
            extra: None,
        }
    }

    pub(super) fn load(extra_ca: Option<&Path>) -> Result<Roots, Check> {
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
        let store = tls_client::roots_from(Some(file)).map_err(problem)?;
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
            format!("the server's chain ({count}) reaches a root in Mozilla's list"),
        ),
        Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            match &roots.extra {
                Some((file, store)) if verify(store).is_ok() => Check::ok(
                    "chain",
                    format!(
                        "the server's chain ({count}) reaches a CA in {file} (--doctor-ca), but Alexa and Google trust public CAs only"
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
                "the server's chain ({count}) ends at a root that is not in Mozilla's list (a private CA?): Alexa and Google need a certificate from a public CA"
            ),
        )
    } else {
        Check::fail(
            "chain",
            format!(
                "the chain is incomplete: the server's chain ({count}) does not reach a trusted root, and Alexa does not fetch missing intermediates. Serve fullchain.pem, not cert.pem ([server.tls] cert, nginx ssl_certificate)"
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
