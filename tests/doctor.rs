//! `linkgate --doctor` against real servers: linkgate serving HTTPS itself with certificates from
//! a test CA (trusted through `--doctor-ca`), broken the ways deployments break — a chain without
//! its intermediate, a certificate about to expire, missing Alexa regions, the example secret, a
//! closed port, a proxy answering HTML — and the line and exit code an operator gets for each.

mod common;
use common::*;
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A client secret that passes every check.
const STRONG: &str = "Zq4mT9vX2bN7kR1pW8sY3cF6hJ0dL5gA";

/// Alexa with all three regions and Google with its sandbox twin, strong secrets.
fn good_clients() -> String {
    format!(
        r#"[[clients]]
id = "alexa-skill"
secret = "{STRONG}"
redirect_uris = [
  "https://pitangui.amazon.com/api/skill/link/M2TEST",
  "https://layla.amazon.com/api/skill/link/M2TEST",
  "https://alexa.amazon.co.jp/api/skill/link/M2TEST",
]

[[clients]]
id = "google-home"
secret = "{STRONG}"
redirect_uris = [
  "https://oauth-redirect.googleusercontent.com/r/test-project",
  "https://oauth-redirect-sandbox.googleusercontent.com/r/test-project",
]
"#
    )
}

/// A certificate authority: a root, or an intermediate signed by `issuer`.
struct Ca {
    cert: Certificate,
    key: KeyPair,
    params: CertificateParams,
}

impl Ca {
    fn root() -> Ca {
        let key = KeyPair::generate().expect("key");
        let params = ca_params("linkgate test root");
        let cert = params.self_signed(&key).expect("root");
        Ca { cert, key, params }
    }

    fn intermediate(&self) -> Ca {
        let key = KeyPair::generate().expect("key");
        let params = ca_params("linkgate test intermediate");
        let cert = params
            .signed_by(&key, &self.issuer())
            .expect("intermediate");
        Ca { cert, key, params }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// A server certificate for localhost and 127.0.0.1, valid until midnight UTC `days` from now.
    fn leaf(&self, days: u64) -> (Certificate, KeyPair) {
        self.leaf_for(&["localhost", "127.0.0.1"], days)
    }

    fn leaf_for(&self, names: &[&str], days: u64) -> (Certificate, KeyPair) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let (year, month, day) = date_in(days);
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer()).expect("leaf");
        (cert, key)
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params
}

/// The UTC date `days` from now.
fn date_in(days: u64) -> (i32, u8, u8) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let date = linkgate::admin::format_time(now + days * 86400);
    let part = |range: std::ops::Range<usize>| date[range].parse::<u16>().expect("date");
    (part(0..4) as i32, part(5..7) as u8, part(8..10) as u8)
}

fn date_text((year, month, day): (i32, u8, u8)) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

/// Forwards every connection to `front` to `to`, byte for byte (TLS passes through), on
/// background threads that end with the test process.
fn relay(front: std::net::TcpListener, to: std::net::SocketAddr) {
    use std::net::{Shutdown, TcpStream};
    let pipe = |mut from: TcpStream, mut into: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut into);
            let _ = into.shutdown(Shutdown::Write);
        });
    };
    std::thread::spawn(move || {
        for client in front.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            match (client.try_clone(), server.try_clone()) {
                (Ok(client_read), Ok(server_read)) => {
                    pipe(client_read, server);
                    pipe(server_read, client);
                }
                _ => continue,
            }
        }
    });
}

/// A port that refuses connections for as long as the returned socket lives: bound, so nothing
/// else can take it, but not listening.
fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let port = socket.local_addr().expect("local address").port();
    (socket, port)
}

/// A config for linkgate on 127.0.0.1:`port`, public_url `https://localhost:port`, with TLS
/// files `cert.pem` / `key.pem` beside it when `tls`.
fn config(port: u16, tls: bool, clients: &str) -> String {
    let tls = if tls {
        "[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n"
    } else {
        ""
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"https://localhost:{port}\"\n{tls}\n[storage]\npath = \"data\"\n\n{clients}"
    )
}

/// linkgate serving HTTPS with `chain` (certificates, leaf first) and a root CA file to trust.
struct Deployment {
    env: TestEnv,
    _server: Server,
    ca_file: String,
}

impl Deployment {
    fn start(root: &Ca, chain: &[&Certificate], key: &KeyPair, clients: &str) -> Deployment {
        // public_url names the port of a relay the test holds (no port is released and taken
        // again), which forwards to wherever the server came up.
        let front = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = front.local_addr().expect("relay address").port();
        let env = TestConfig::from_text(&config(port, true, clients))
            .set("server.listen", "127.0.0.1:0")
            .env();
        // As an operator keeps a config with secrets in it (the doctor warns otherwise).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o600))
            .expect("chmod config");
        write_tls_files(env.dir.path(), chain, key);
        let ca_file = env.dir.path().join("root.pem");
        std::fs::write(&ca_file, root.cert.pem()).expect("write root");
        let server = env.start();
        relay(front, server.addr);
        Deployment {
            env,
            _server: server,
            ca_file: ca_file.display().to_string(),
        }
    }

    fn doctor(&self) -> Report {
        Report::of(
            self.env
                .cli(&["--doctor", "--doctor-ca", &self.ca_file], ""),
        )
    }
}

fn write_tls_files(dir: &Path, chain: &[&Certificate], key: &KeyPair) {
    let pem: String = chain.iter().map(|c| c.pem()).collect();
    std::fs::write(dir.join("cert.pem"), pem).expect("write cert");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key");
}

/// A healthy deployment: full chain (leaf + intermediate), 90 days left.
fn healthy(clients: &str) -> Deployment {
    let root = Ca::root();
    let intermediate = root.intermediate();
    let (leaf, key) = intermediate.leaf(90);
    Deployment::start(&root, &[&leaf, &intermediate.cert], &key, clients)
}

/// What the doctor printed, line by line.
struct Report {
    code: Option<i32>,
    stdout: String,
}

impl Report {
    fn of(out: Output) -> Report {
        Report {
            code: out.status.code(),
            stdout: format!("{}{}", text(&out.stdout), text(&out.stderr)),
        }
    }

    /// The first line of the check `name` whose status is `status` (`ok`, `warn`, `FAIL`).
    fn line(&self, status: &str, name: &str) -> &str {
        self.lines(status)
            .into_iter()
            .find(|line| line.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no `{status} {name}` line in:\n{}", self.stdout))
    }

    fn lines(&self, status: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(status))
            .collect()
    }

    fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "exit code; output:\n{}", self.stdout);
    }
}

#[test]
fn a_healthy_https_deployment_passes_with_only_the_local_address_warnings() {
    let deployment = healthy(&good_clients());
    let report = deployment.doctor();
    report.assert_code(0);
    assert!(report.lines("FAIL").is_empty(), "{}", report.stdout);
    // Only the test setup's own shortcomings: not port 443, and localhost is not public.
    let warnings = report.lines("warn");
    assert_eq!(warnings.len(), 2, "{}", report.stdout);
    assert!(report
        .line("warn", "public_url")
        .contains("Alexa only calls HTTPS on port 443"));
    assert!(warnings.iter().any(|l| l.contains("local address")));
    for (name, says) in [
        ("config", "is valid (2 clients)"),
        ("connect", "accepted a connection"),
        ("tls", "handshake with SNI `localhost`"),
        ("chain", "reaches a CA in"),
        ("hostname", "valid for `localhost`"),
        ("expiry", &format!("expires on {}", date_text(date_in(90)))),
        ("healthz", "200 ok"),
        ("metadata", "issuer and endpoints match public_url"),
        ("token", "RFC 6749 JSON error (401 invalid_client)"),
        ("data", "held by the running server"),
        ("permissions", "readable by their owner only"),
    ] {
        let line = report.line("ok", name);
        assert!(line.contains(says), "`{line}` should say `{says}`");
    }
    assert!(report.line("ok", "redirects").contains("all three regions"));
    assert!(report.line("ok", "secret").contains("32 characters"));
    assert!(report
        .line("ok", "linking")
        .contains("no refusals since the server started"));
    assert!(report.stdout.contains("0 failed, 2 warnings"));
}

/// The doctor ends with what the running server refused lately, per client, with the last
/// reason and its reference (`--linking-log`).
#[test]
fn the_doctor_sums_up_the_running_servers_recent_refusals_per_client() {
    let root = Ca::root();
    let intermediate = root.intermediate();
    let (leaf, key) = intermediate.leaf(90);
    let deployment = Deployment::start(&root, &[&leaf, &intermediate.cert], &key, &good_clients());
    let server = &deployment._server;
    let body = form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]);
    let auth = basic("alexa-skill", "a-pasted-wrong-secret-0123456789");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let request = request_bytes(server.addr, "POST", "/token", &headers, body.as_bytes());
    let tls = tls_client(root.cert.der());
    let refused = parse_response(&https_exchange(server.addr, &tls, &request).expect("https"))
        .expect("an answer");
    assert_eq!(refused.status, 401);
    let reference = refused
        .header("X-Linkgate-Reference")
        .expect("a reference")
        .to_string();
    let report = deployment.doctor();
    let line = report.line("warn", "linking");
    assert!(
        line.contains("alexa-skill: 1 refused")
            && line.contains("the client secret does not match")
            && line.contains(&reference)
            && line.contains("linkgate --linking-log alexa-skill"),
        "{line}"
    );
}

#[test]
fn a_server_sending_only_its_leaf_fails_the_chain_check() {
    let root = Ca::root();
    let intermediate = root.intermediate();
    let (leaf, key) = intermediate.leaf(90);
    let deployment = Deployment::start(&root, &[&leaf], &key, &good_clients());
    let report = deployment.doctor();
    report.assert_code(1);
    let chain = report.line("FAIL", "chain");
    assert!(chain.contains("incomplete"), "{chain}");
    assert!(chain.contains("Serve fullchain.pem"), "{chain}");
    // The rest is still checked: the server itself is fine.
    report.line("ok", "hostname");
    report.line("ok", "healthz");
    report.line("ok", "token");
    assert_eq!(report.lines("FAIL").len(), 1, "{}", report.stdout);
}

#[test]
fn a_certificate_expiring_in_10_days_fails_naming_the_date() {
    let root = Ca::root();
    let intermediate = root.intermediate();
    let (leaf, key) = intermediate.leaf(10);
    let deployment = Deployment::start(&root, &[&leaf, &intermediate.cert], &key, &good_clients());
    let report = deployment.doctor();
    report.assert_code(1);
    let expiry = report.line("FAIL", "expiry");
    assert!(
        expiry.contains(&format!("expires on {}", date_text(date_in(10)))),
        "{expiry}"
    );
    assert!(expiry.contains("renew"), "{expiry}");
    report.line("ok", "chain");
}

#[test]
fn a_certificate_for_another_name_fails_the_hostname_check() {
    let root = Ca::root();
    let intermediate = root.intermediate();
    let (leaf, key) = intermediate.leaf_for(&["auth.example.com"], 90);
    let deployment = Deployment::start(&root, &[&leaf, &intermediate.cert], &key, &good_clients());
    let report = deployment.doctor();
    report.assert_code(1);
    let hostname = report.line("FAIL", "hostname");
    assert!(
        hostname.contains("auth.example.com") && hostname.contains("not `localhost`"),
        "{hostname}"
    );
    report.line("ok", "chain");
}

#[test]
fn missing_alexa_regions_are_listed_as_lines_to_paste() {
    let clients = format!(
        r#"[[clients]]
id = "alexa-skill"
secret = "{STRONG}"
redirect_uris = ["https://pitangui.amazon.com/api/skill/link/M2ONLYNA"]
"#
    );
    let report = healthy(&clients).doctor();
    // A skill published in North America only can live with this: a warning, not a failure.
    report.assert_code(0);
    let warning = report.line("warn", "redirects");
    assert!(warning.contains("EU/IN, FE"), "{warning}");
    let pasted: Vec<&str> = report
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('"'))
        .collect();
    assert_eq!(
        pasted,
        [
            "\"https://layla.amazon.com/api/skill/link/M2ONLYNA\",",
            "\"https://alexa.amazon.co.jp/api/skill/link/M2ONLYNA\","
        ],
        "{}",
        report.stdout
    );
}

#[test]
fn the_example_secret_fails() {
    let clients = good_clients().replacen(STRONG, "change-me-to-a-long-random-string", 1);
    let report = healthy(&clients).doctor();
    report.assert_code(1);
    let secret = report.line("FAIL", "secret");
    assert!(
        secret.contains("`alexa-skill`") && secret.contains("example"),
        "{secret}"
    );
    assert!(secret.contains("openssl rand"), "{secret}");
    assert_eq!(report.lines("FAIL").len(), 1, "{}", report.stdout);
}

#[test]
fn a_closed_port_fails_reachability_quickly() {
    let (_closed, port) = closed_port();
    let env = TestEnv::with_config(&config(port, false, &good_clients()));
    let started = Instant::now();
    let report = Report::of(env.cli(&["--doctor"], ""));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    report.assert_code(1);
    let connect = report.line("FAIL", "connect");
    assert!(connect.contains("refused"), "{connect}");
    assert!(connect.contains("is the firewall open"), "{connect}");
    // Nothing is claimed about what could not be reached; the local checks still run.
    assert!(!report.stdout.contains("healthz"), "{}", report.stdout);
    report.line("ok", "secret");
    assert!(report.line("ok", "data").contains("does not exist yet"));
}

/// A stand-in for a misconfigured reverse proxy on plain HTTP: every request gets its HTML page.
fn html_proxy(answers: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        for _ in 0..answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "<html><body><h1>502 Bad Gateway</h1></body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, handle)
}

#[test]
fn a_proxy_answering_html_fails_the_endpoint_checks() {
    let (port, proxy) = html_proxy(4);
    let env = TestConfig::from_text(&config(port, false, &good_clients()))
        .set("server.public_url", format!("http://127.0.0.1:{port}"))
        .env();
    let report = Report::of(env.cli(&["--doctor"], ""));
    report.assert_code(1);
    let said = |name: &str, what: &str| {
        let line = report.line("FAIL", name);
        assert!(line.contains(what), "`{line}` should say `{what}`");
    };
    said("public_url", "plain http");
    said(
        "healthz",
        "answers 502 (text/html) `<html><body><h1>502 Bad Gateway",
    );
    said("metadata", "instead of JSON metadata");
    let token = report.line("FAIL", "token");
    assert!(
        token.contains("text/html") && token.contains("instead of an RFC 6749 JSON error"),
        "{token}"
    );
    drop(proxy);
}

#[test]
fn an_invalid_config_fails_the_usual_way_and_help_lists_the_doctor() {
    let env = TestEnv::with_config("[server]\nlisten = \"nowhere\"\n");
    let out = env.cli(&["--doctor"], "");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("linkgate: ") && stderr.contains("linkgate.toml"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty());

    let help = env.cli(&["--help"], "");
    assert!(text(&help.stdout).contains("--doctor-ca FILE"));
    let misplaced = env.cli(&["--list-users", "--doctor-ca", "ca.pem"], "");
    assert_eq!(misplaced.status.code(), Some(2));
    assert!(text(&misplaced.stderr).contains("--doctor-ca FILE goes with --doctor"));
}
