//! `[server.acme]` against a real ACME server: Debian's `pebble` (installed by tools/test-setup.sh)
//! with `pebble-challtestsrv` as its DNS, answering 127.0.0.1 for every name, so the CA validates
//! against the linkgate these tests start. Each test runs its own pebble on free loopback ports,
//! killed when the test ends. Clients verify the chain linkgate serves against pebble's issuing
//! root, fetched from pebble's management interface (it is new on every pebble start).

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// The name certificates are ordered for; challtestsrv resolves it to 127.0.0.1.
const DOMAIN: &str = "auth.linkgate.test";
/// Issuance against pebble without its random sleeps takes about a second; allow for a busy CI.
const ISSUANCE: Duration = Duration::from_secs(60);

/// A child process killed (and reaped) on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `port` accepts; `Err` with the child's exit status if it exits first.
fn wait_for_port(port: u16, what: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited with {status} before listening on {port}"
            ));
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs `command`, its output to `log`, until it listens on every port of `ports`; if it exits
/// first, panics with that output (a port taken, a bad config), which the test would not see.
fn spawn_listening(mut command: Command, log: &Path, what: &str, ports: &[u16]) -> Process {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut child = command
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{what}: {e} (run tools/test-setup.sh to install Debian's pebble)")
        });
    if let Err(e) = ports
        .iter()
        .try_for_each(|&port| wait_for_port(port, what, &mut child))
    {
        let output = std::fs::read_to_string(log).unwrap_or_default();
        panic!("{e}:\n{output}");
    }
    Process(child)
}

/// Ports and files of one pebble; `start` runs it (again) with them.
struct Pebble {
    dir: tempfile::TempDir,
    acme_port: u16,
    management_port: u16,
    dns_port: u16,
    /// The TLS certificate of pebble's own API (what `directory_ca` names).
    api_ca: PathBuf,
    running: Vec<Process>,
}

impl Pebble {
    /// Prepared, not started: validations go to `tls_port` (TLS-ALPN-01) and `http_port`
    /// (HTTP-01) on 127.0.0.1; certificates live `validity_secs`.
    fn new(tls_port: u16, http_port: u16, validity_secs: u64) -> Pebble {
        let dir = tempfile::tempdir().expect("temp dir");
        let api = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("rcgen");
        let api_ca = dir.path().join("pebble-api.pem");
        std::fs::write(&api_ca, api.cert.pem()).expect("api cert");
        std::fs::write(
            dir.path().join("pebble-api.key"),
            api.signing_key.serialize_pem(),
        )
        .expect("api key");
        let (acme_port, management_port, dns_port) = (free_port(), free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": api_ca,
                "privateKey": dir.path().join("pebble-api.key"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_secs,
            }
        });
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).expect("config");
        Pebble {
            dir,
            acme_port,
            management_port,
            dns_port,
            api_ca,
            running: Vec::new(),
        }
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    fn start(&mut self) {
        let dns = format!("127.0.0.1:{}", self.dns_port);
        let challtest_management = free_port();
        let mut challtestsrv = Command::new("pebble-challtestsrv");
        challtestsrv
            .args([
                "-dns01",
                &dns,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{challtest_management}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]);
        let challtestsrv = spawn_listening(
            challtestsrv,
            &self.dir.path().join("challtestsrv.log"),
            "pebble-challtestsrv",
            &[challtest_management],
        );
        self.running.push(challtestsrv);
        let mut pebble = Command::new("pebble");
        pebble
            .arg("-config")
            .arg(self.dir.path().join("pebble.json"))
            .args(["-dnsserver", &dns, "-strict=false"])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .current_dir(self.dir.path());
        let pebble = spawn_listening(
            pebble,
            &self.dir.path().join("pebble.log"),
            "pebble",
            &[self.acme_port, self.management_port],
        );
        self.running.push(pebble);
    }

    fn stop(&mut self) {
        self.running.clear();
    }

    /// A client trusting only this run's issuing root. Full handshakes only: a resumed session
    /// shows the certificate of the session it resumes, not the one served now.
    fn trust(&self) -> Arc<rustls::ClientConfig> {
        let mut config = (*tls_client(&self.issuing_root())).clone();
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }

    /// The root that signs this run's certificates, from the management interface.
    fn issuing_root(&self) -> Vec<u8> {
        let api = std::fs::read(&self.api_ca).expect("api cert");
        let api_der = CertificateDer::from_pem_slice(&api).expect("api pem");
        let addr: SocketAddr = ([127, 0, 0, 1], self.management_port).into();
        let request = request_bytes(addr, "GET", "/roots/0", &[], b"");
        let data = https_exchange(addr, &tls_client(&api_der), &request).expect("GET /roots/0");
        let reply = parse_response(&data).expect("roots response");
        assert_eq!(reply.status, 200, "{}", reply.text());
        CertificateDer::from_pem_slice(&reply.body)
            .expect("root pem")
            .to_vec()
    }
}

/// A linkgate config for `https://auth.linkgate.test:PORT` with certificates from `pebble`.
fn acme_config(port: u16, pebble: &Pebble) -> TestConfig {
    TestConfig::new()
        .set("server.listen", format!("127.0.0.1:{port}"))
        .set("server.public_url", format!("https://{DOMAIN}:{port}"))
        .set("server.metrics", true)
        .set("server.acme.email", "ops@linkgate.example.org")
        .set("server.acme.directory", pebble.directory())
        .set(
            "server.acme.directory_ca",
            pebble.api_ca.display().to_string(),
        )
}

/// One GET over TLS with SNI `auth.linkgate.test`, verified by `tls`. Returns the response and
/// the leaf certificate served.
fn https_get(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(Response, Vec<u8>), String> {
    let name = ServerName::try_from(DOMAIN).expect("name");
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("TLS write: {e}"))?;
    let mut data = Vec::new();
    match stream.read_to_end(&mut data) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !data.is_empty() => {}
        Err(e) => return Err(format!("TLS read: {e}")),
    }
    let leaf = stream
        .conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or("no certificate")?
        .to_vec();
    Ok((parse_response(&data)?, leaf))
}

/// A kept-alive HTTPS connection, for requests before and after a certificate swap.
struct KeepAlive {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl KeepAlive {
    fn open(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> KeepAlive {
        let name = ServerName::try_from(DOMAIN).expect("name");
        let conn = rustls::ClientConnection::new(tls.clone(), name).expect("client");
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        KeepAlive {
            stream: rustls::StreamOwned::new(conn, tcp),
        }
    }

    /// One GET; the response is read by its Content-Length, the connection stays open.
    fn get(&mut self, path: &str) -> Result<Response, String> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n");
        self.stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut data = Vec::new();
        let mut byte = [0u8; 1];
        while !data.ends_with(b"\r\n\r\n") {
            self.stream
                .read_exact(&mut byte)
                .map_err(|e| format!("read: {e}"))?;
            data.push(byte[0]);
        }
        let head = parse_response(&data)?;
        let length: usize = head
            .header("content-length")
            .and_then(|n| n.parse().ok())
            .ok_or("no Content-Length")?;
        let mut body = vec![0; length];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| format!("read body: {e}"))?;
        data.extend_from_slice(&body);
        parse_response(&data)
    }

    fn certificate(&self) -> Vec<u8> {
        self.stream.conn.peer_certificates().expect("certificates")[0].to_vec()
    }
}

/// Polls until HTTPS answers `/healthz` with a chain `tls` accepts; returns the leaf.
fn wait_for_https(
    server: &mut Server,
    tls: &Arc<rustls::ClientConfig>,
    within: Duration,
) -> Vec<u8> {
    let deadline = Instant::now() + within;
    loop {
        match https_get(server.addr, tls, "/healthz") {
            Ok((reply, leaf)) if reply.status == 200 => return leaf,
            Ok((reply, _)) => panic!("/healthz answered {}", reply.status),
            Err(e) => {
                assert!(server.is_running(), "linkgate exited");
                assert!(
                    Instant::now() < deadline,
                    "no HTTPS with pebble's certificate within {within:?}: {e}; log:\n{}",
                    server.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn doctor(env: &TestEnv) -> String {
    let out = env.cli(&["--doctor"], "");
    text(&out.stdout)
}

fn acme_line(report: &str) -> String {
    report
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some("acme"))
        .unwrap_or_else(|| panic!("no acme line in --doctor:\n{report}"))
        .to_string()
}

/// The `--doctor` acme line once it contains `needle`, or the last one read after `within`.
fn acme_line_within(env: &TestEnv, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let line = acme_line(&doctor(env));
        if line.contains(needle) || Instant::now() >= deadline {
            return line;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_first_start_obtains_a_certificate_and_a_restart_serves_it_without_the_acme_server() {
    let port = free_port();
    let mut pebble = Pebble::new(port, free_port(), 90 * 86400);
    pebble.start();
    let env = acme_config(port, &pebble).env();
    let trust = pebble.trust();
    let mut server = env.start();
    let leaf = wait_for_https(&mut server, &trust, ISSUANCE);

    // The OAuth endpoints are served over it, the chain verifying against pebble's root.
    let (metadata, _) = https_get(
        server.addr,
        &trust,
        "/.well-known/oauth-authorization-server",
    )
    .expect("metadata over https");
    assert_eq!(metadata.status, 200);
    assert!(metadata
        .text()
        .contains(&format!("https://{DOMAIN}:{port}/token")));
    // Counted just after the certificate went into service, then logged.
    server.wait_for_log("ACME: new certificate for", 1);
    let (metrics, _) = https_get(server.addr, &trust, "/metrics").expect("metrics");
    assert!(
        metrics
            .text()
            .contains("linkgate_acme_orders_total{outcome=\"ok\"} 1"),
        "{}",
        metrics.text()
    );
    assert!(metrics
        .text()
        .contains("linkgate_acme_certificate_expiry_timestamp_seconds"));

    // Account key and certificate are private.
    let acme_dir = env.data_dir().join("acme");
    assert_eq!(mode(&acme_dir), 0o700);
    assert_eq!(mode(&acme_dir.join("account.json")), 0o600);
    assert_eq!(mode(&acme_dir.join("certificate.json")), 0o600);

    let line = acme_line(&doctor(&env));
    assert!(line.starts_with("ok"), "{line}");
    assert!(
        line.contains(&format!("certificate for {DOMAIN}: 89 days left")),
        "{line}"
    );
    assert!(line.contains("last renewal error: none"), "{line}");

    // Pebble gone (its root with it, so nothing could be issued again): the restart serves the
    // same certificate at once, without asking.
    pebble.stop();
    let log = server.stop();
    assert!(
        log.contains("new certificate for auth.linkgate.test in service"),
        "{log}"
    );
    let mut server = env.start();
    let (reply, served) = https_get(server.addr, &trust, "/healthz").expect("https after restart");
    assert_eq!(reply.status, 200);
    assert_eq!(served, leaf, "the cached certificate is served");
    assert!(server.is_running());
    let log = server.stop();
    assert!(log.contains("serving the cached certificate"), "{log}");
    assert!(
        !log.contains("ACME: no certificate"),
        "an ACME call was made: {log}"
    );
}

#[test]
fn a_short_lived_certificate_is_renewed_and_swapped_without_a_failed_request() {
    // 24 s certificates: renewal starts 16 s after issuance (a third of the lifetime left).
    let port = free_port();
    let mut pebble = Pebble::new(port, free_port(), 24);
    pebble.start();
    let env = acme_config(port, &pebble).env();
    let trust = pebble.trust();
    let mut server = env.start();
    let first = wait_for_https(&mut server, &trust, ISSUANCE);
    // A connection opened before the swap stays usable through it.
    let mut kept = KeepAlive::open(server.addr, &trust);
    assert_eq!(kept.get("/healthz").expect("before the swap").status, 200);

    // Clients keep requesting on new connections (each handshake sees the certificate of the
    // moment) until a new certificate is served; every request must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, seen, failures, trust) =
                (stop.clone(), seen.clone(), failures.clone(), trust.clone());
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut requests = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    requests += 1;
                    match https_get(addr, &trust, "/healthz") {
                        Ok((reply, leaf)) if reply.status == 200 => {
                            let mut seen = seen.lock().unwrap();
                            if !seen.contains(&leaf) {
                                seen.push(leaf);
                            }
                        }
                        Ok((reply, _)) => failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", reply.status)),
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                requests
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.lock().unwrap().iter().any(|leaf| *leaf != first) {
        assert!(server.is_running(), "linkgate exited");
        // The kept connection is used all along (an idle one would be closed after
        // header_read_timeout_secs, swap or not).
        let reply = kept
            .get("/healthz")
            .expect("the kept connection during the swap");
        assert_eq!(reply.status, 200);
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            let failures = failures.lock().unwrap().clone();
            panic!(
                "no renewed certificate within 60 s; {} failures {:?}; log:\n{}",
                failures.len(),
                &failures[..failures.len().min(5)],
                server.stop()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Keep going a moment on the new certificate, then stop the clients.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let requests: u32 = clients.into_iter().map(|c| c.join().expect("client")).sum();
    let failures = failures.lock().unwrap().clone();
    assert!(requests > 50, "only {requests} requests");
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:?}",
        failures.len()
    );
    eprintln!("renewal under load: {requests} requests over new connections, none failed");
    let after = kept
        .get("/healthz")
        .expect("the kept connection after the swap");
    assert_eq!(after.status, 200);
    assert_eq!(
        kept.certificate(),
        first,
        "an open connection keeps its certificate"
    );
    let log = server.stop();
    assert!(
        log.matches("new certificate for auth.linkgate.test in service")
            .count()
            >= 2,
        "{log}"
    );
}

#[test]
fn the_acme_server_down_at_first_start_is_retried_until_it_comes_up() {
    let port = free_port();
    let mut pebble = Pebble::new(port, free_port(), 90 * 86400);
    let env = acme_config(port, &pebble).env();
    let mut server = env.start();

    // The failure is recorded (for --doctor) and the server keeps running without a certificate.
    let state = env.data_dir().join("acme/state.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !state.exists() {
        assert!(server.is_running(), "linkgate exited");
        assert!(Instant::now() < deadline, "no renewal state recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.wait_for_log(
        &format!(
            "ACME: no certificate for {DOMAIN} from {}",
            pebble.directory()
        ),
        1,
    );
    let log = server.log();
    assert!(
        log.contains("cannot connect") && log.contains("next try in 5 s"),
        "{log}"
    );
    let line = acme_line(&doctor(&env));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(
        line.contains(&format!("no certificate for {DOMAIN}")),
        "{line}"
    );
    assert!(line.contains("cannot connect"), "{line}");
    assert!(server.is_running());

    // Pebble comes up: the next retry (5 s, then 10 s, …) gets the certificate.
    pebble.start();
    let trust = pebble.trust();
    wait_for_https(&mut server, &trust, ISSUANCE);
    // The certificate goes into service a moment before the renewal state is written.
    let line = acme_line_within(&env, "last renewal error: none", Duration::from_secs(10));
    assert!(line.contains("last renewal error: none"), "{line}");
    let (metrics, _) = https_get(server.addr, &trust, "/metrics").expect("metrics");
    let counted = |outcome: &str| -> u64 {
        let prefix = format!("linkgate_acme_orders_total{{outcome=\"{outcome}\"}} ");
        let text = metrics.text();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string));
        line.and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
    };
    assert!(counted("error") >= 1);
    assert_eq!(counted("ok"), 1);
    assert!(server.is_running());
}

#[test]
fn with_http_listen_http01_is_used_and_plain_http_redirects_to_https() {
    let (port, http_port) = (free_port(), free_port());
    // TLS-ALPN-01 validations go to a closed port: only HTTP-01 can succeed.
    let mut pebble = Pebble::new(free_port(), http_port, 90 * 86400);
    pebble.start();
    let env = acme_config(port, &pebble)
        .set("server.http_listen", format!("127.0.0.1:{http_port}"))
        .env();
    let trust = pebble.trust();
    let mut server = env.start();
    wait_for_https(&mut server, &trust, ISSUANCE);
    let plain: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let reply = http(plain, "GET", "/authorize?client_id=x&state=s", &[], b"");
    assert_eq!(reply.status, 308);
    assert_eq!(
        reply.expect_header("location"),
        format!("https://{DOMAIN}:{port}/authorize?client_id=x&state=s")
    );
    // A forged Host header does not move the redirect elsewhere.
    let forged = b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    let reply = raw(plain, forged).expect("plain http");
    assert_eq!(reply.status, 308);
    assert_eq!(
        reply.expect_header("location"),
        format!("https://{DOMAIN}:{port}/")
    );
    let reply = http(
        plain,
        "GET",
        "/.well-known/acme-challenge/unknown",
        &[],
        b"",
    );
    assert_eq!(reply.status, 404);
}

#[test]
fn acme_and_static_tls_together_are_refused_by_check_config() {
    let pebble = Pebble::new(free_port(), free_port(), 90 * 86400);
    let env = acme_config(free_port(), &pebble).tls().env();
    std::fs::write(env.dir.path().join("cert.pem"), "").unwrap();
    std::fs::write(env.dir.path().join("key.pem"), "").unwrap();
    let out = env.cli(&["--check-config"], "");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("key `server.acme`") && err.contains("mutually exclusive"),
        "{err}"
    );
}

#[test]
fn a_refused_validation_is_logged_with_the_cas_problem_and_shown_by_doctor() {
    let port = free_port();
    // The CA validates TLS-ALPN-01 on a port nothing listens on.
    let mut pebble = Pebble::new(free_port(), free_port(), 90 * 86400);
    pebble.start();
    let env = acme_config(port, &pebble).env();
    let mut server = env.start();
    server.wait_for_log("validation failed", 1);
    let log = server.log();
    assert!(
        log.contains(&format!(
            "ACME: no certificate for {DOMAIN} from {}",
            pebble.directory()
        )) && log.contains("urn:ietf:params:acme:error:")
            && log.contains("HTTPS handshakes fail until one is issued"),
        "{log}"
    );
    // The state file --doctor reads is written just after that log line: poll for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        let line = acme_line(&doctor(&env));
        if line.contains("last renewal error") || std::time::Instant::now() > deadline {
            break line;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        line.starts_with("FAIL")
            && line.contains("last renewal error")
            && line.contains("validation failed"),
        "{line}"
    );
    assert!(server.is_running());
}

#[test]
fn a_damaged_cached_certificate_is_replaced_not_fatal() {
    let port = free_port();
    let mut pebble = Pebble::new(port, free_port(), 90 * 86400);
    pebble.start();
    let env = acme_config(port, &pebble).env();
    let acme_dir = env.data_dir().join("acme");
    std::fs::create_dir_all(&acme_dir).expect("acme dir");
    std::fs::write(acme_dir.join("certificate.json"), "{ not json").expect("damage");
    let mut server = env.start();
    wait_for_https(&mut server, &pebble.trust(), ISSUANCE);
    let log = server.stop();
    assert!(log.contains("ignoring the cached certificate"), "{log}");
}

#[test]
fn http_listen_beside_static_tls_redirects_plain_http_to_https() {
    let http_port = free_port();
    let env = TestConfig::new()
        .set("server.public_url", "https://localhost")
        .set("server.http_listen", format!("127.0.0.1:{http_port}"))
        .tls()
        .env();
    let cert = write_self_signed(env.dir.path(), &[]);
    let mut server = env.start();
    server.tls = Some(tls_client(&cert));
    assert!(server.is_healthy());
    let plain: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let reply = http(plain, "POST", "/token", &[], b"grant_type=x");
    assert_eq!(reply.status, 308, "the method is kept on the way to https");
    assert_eq!(reply.expect_header("location"), "https://localhost/token");
    // No challenge is pending without ACME.
    let reply = http(plain, "GET", "/.well-known/acme-challenge/x", &[], b"");
    assert_eq!(reply.status, 404);
}

#[test]
fn strangers_holding_the_plain_http_port_do_not_block_a_validation() {
    // The tester's finding: one address holding 300 silent connections left 0 of 10 challenge
    // requests from another address answered (issuance and renewal blocked). Now each address
    // gets 8 of the 256 slots, and when 40 addresses fill them all, silent ones make room.
    let http_port = free_port();
    let env = TestConfig::new()
        .set("server.public_url", "https://localhost")
        .set("server.http_listen", format!("127.0.0.1:{http_port}"))
        .tls()
        .env();
    let cert = write_self_signed(env.dir.path(), &[]);
    let mut server = env.start();
    server.tls = Some(tls_client(&cert));
    assert!(server.is_healthy());
    let plain: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let challenge = |from: &str| -> bool {
        let Ok(mut stream) = connect_from(from, plain) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = "GET /.well-known/acme-challenge/x HTTP/1.1\r\nHost: localhost\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut data = Vec::new();
        let _ = stream.read_to_end(&mut data);
        parse_response(&data).is_ok_and(|r| r.status == 404)
    };
    let one: Vec<TcpStream> = (0..300)
        .filter_map(|_| connect_from("127.0.0.1", plain).ok())
        .collect();
    let answered = (0..10).filter(|_| challenge("127.0.0.2")).count();
    eprintln!(
        "one address holding {}: {answered} of 10 challenges answered",
        one.len()
    );
    assert_eq!(answered, 10);
    drop(one);
    let mut many = Vec::new();
    for a in 1..=40 {
        for _ in 0..8 {
            if let Ok(stream) = connect_from(&format!("127.0.1.{a}"), plain) {
                many.push(stream);
            }
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let answered = (0..10).filter(|_| challenge("127.0.0.3")).count();
    eprintln!(
        "40 addresses holding {}: {answered} of 10 challenges answered",
        many.len()
    );
    assert_eq!(answered, 10);
}

#[test]
fn a_real_validation_succeeds_while_strangers_flood_the_plain_http_port() {
    // The tester's finding, end to end: while strangers held the plain-HTTP port, every HTTP-01
    // validation by a real ACME server failed. Here pebble (validating from 127.0.0.1, on
    // http_port only: TLS-ALPN-01 goes to a closed port) comes up while one stranger keeps 300
    // silent connections open from 127.0.0.2 and 40 others 8 each from 127.0.1.x (more than the
    // 256 slots), reconnecting as the server closes them; the certificate must still be issued.
    let (port, http_port) = (free_port(), free_port());
    let mut pebble = Pebble::new(free_port(), http_port, 90 * 86400);
    let env = acme_config(port, &pebble)
        .set("server.http_listen", format!("127.0.0.1:{http_port}"))
        .env();
    let mut server = env.start();
    server.wait_for_log("next try in 5 s", 1);
    let plain: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let stop = AtomicBool::new(false);
    let held = std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            // Each stranger's address and how many connections it keeps open.
            let mut strangers: Vec<(String, usize, Vec<TcpStream>)> =
                vec![("127.0.0.2".to_string(), 300, Vec::new())];
            strangers.extend((1..=40).map(|a| (format!("127.0.1.{a}"), 8, Vec::new())));
            let mut most = 0;
            let deadline = Instant::now() + ISSUANCE + Duration::from_secs(10);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let mut silent = 0;
                for (from, keep, open) in &mut strangers {
                    // Still silent both ways; anything read (an answer, the close) ends it.
                    open.retain(|s| {
                        let _ = s.set_nonblocking(true);
                        let mut byte = [0u8; 1];
                        matches!((&*s).read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                    });
                    silent += open.len();
                    while open.len() < *keep {
                        match connect_from(from, plain) {
                            Ok(s) => open.push(s),
                            Err(_) => break,
                        }
                    }
                }
                // Open half a second after they were opened: what the server was holding.
                most = most.max(silent);
                std::thread::sleep(Duration::from_millis(500));
            }
            most
        });
        // However this ends (a failed assertion too), the flood stops.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _stop = Stop(&stop);
        std::thread::sleep(Duration::from_secs(1));
        pebble.start();
        let trust = pebble.trust();
        wait_for_https(&mut server, &trust, ISSUANCE);
        stop.store(true, Ordering::SeqCst);
        flood.join().expect("the flood")
    });
    eprintln!("a certificate issued over HTTP-01 while strangers held up to {held} silent connections open");
    let log = server.log();
    assert!(
        log.contains("new certificate for auth.linkgate.test in service"),
        "{log}"
    );
}
