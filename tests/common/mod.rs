//! Test support: start the real `linkgate` binary on 127.0.0.1:0 with a temporary data directory,
//! and talk HTTP/1.1 to it over a plain socket, the way Alexa's linking service and a phone's web
//! view would. Everything here is bounded by timeouts so a broken server fails a test, never
//! hangs it.
#![allow(dead_code)]

pub mod account;
pub mod amazon;
pub mod login_api;
pub mod postgres;
pub mod python;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::rustls;

pub const ALEXA_ID: &str = "alexa-skill";
pub const ALEXA_SECRET: &str = "alexa-secret-0123456789";
pub const ALEXA_REDIRECT: &str = "https://pitangui.amazon.com/api/skill/link/M2TEST";
pub const GOOGLE_ID: &str = "google-home";
pub const GOOGLE_SECRET: &str = "google-secret-0123456789";
pub const GOOGLE_REDIRECT: &str = "https://oauth-redirect.googleusercontent.com/r/test-project";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery";

const TIMEOUT: Duration = Duration::from_secs(20);

/// The binary under test; `LINKGATE_TEST_BINARY` points the same tests at another build (to
/// measure an older version against a new test, say).
pub fn binary() -> &'static str {
    static BINARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        std::env::var("LINKGATE_TEST_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_linkgate").to_string())
    })
}

/// The config every test starts from; `extra` is appended (more `[[clients]]`, `[tokens]`, …).
pub fn config_text(extra: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1"

[storage]
path = "data"

[ui]
title = "Example Taxi"

[[clients]]
id = "{ALEXA_ID}"
secret = "{ALEXA_SECRET}"
name = "Example Taxi for Alexa"
redirect_uris = [
  "{ALEXA_REDIRECT}",
  "https://layla.amazon.com/api/skill/link/M2TEST",
  "https://alexa.amazon.co.jp/api/skill/link/M2TEST",
]

[[clients]]
id = "{GOOGLE_ID}"
secret = "{GOOGLE_SECRET}"
name = "Example Taxi for Google"
redirect_uris = ["{GOOGLE_REDIRECT}"]
{extra}
"#
    )
}

/// A test config as a TOML document, changed key by key (`set("server.max_connections", 2)`)
/// instead of by string replace, so a change to the base config cannot silently turn a patch into
/// a no-op. Starts from `config_text("")`.
#[derive(Clone)]
pub struct TestConfig {
    doc: toml::Table,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig::new()
    }
}

impl TestConfig {
    pub fn new() -> TestConfig {
        TestConfig::from_text(&config_text(""))
    }

    /// Any config text, to be changed key by key.
    pub fn from_text(text: &str) -> TestConfig {
        let doc = text
            .parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("test config is not TOML: {e}\n{text}"));
        TestConfig { doc }
    }

    /// Sets a key by its dotted path (`server.tls.cert`, `ui.language`), creating the tables on
    /// the way.
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> TestConfig {
        let (table, last) = table_for(&mut self.doc, key);
        table.insert(last.to_string(), value.into());
        self
    }

    /// Removes a key by its dotted path; it must be there.
    pub fn remove(mut self, key: &str) -> TestConfig {
        let (table, last) = table_for(&mut self.doc, key);
        assert!(
            table.remove(last).is_some(),
            "no key `{key}` in the test config"
        );
        self
    }

    /// Sets `key` of the `[[clients]]` entry with `id`; the client must be there.
    pub fn client(mut self, id: &str, key: &str, value: impl Into<toml::Value>) -> TestConfig {
        let clients = self
            .doc
            .get_mut("clients")
            .and_then(toml::Value::as_array_mut)
            .expect("[[clients]] in the test config");
        let client = clients
            .iter_mut()
            .filter_map(toml::Value::as_table_mut)
            .find(|c| c.get("id").and_then(toml::Value::as_str) == Some(id))
            .unwrap_or_else(|| panic!("no client `{id}` in the test config"));
        client.insert(key.to_string(), value.into());
        self
    }

    /// `[server.tls]` with `cert.pem` and `key.pem` beside the config file.
    pub fn tls(self) -> TestConfig {
        self.set("server.tls.cert", "cert.pem")
            .set("server.tls.key", "key.pem")
    }

    pub fn text(&self) -> String {
        toml::to_string(&self.doc).expect("test config as TOML")
    }

    pub fn env(&self) -> TestEnv {
        TestEnv::with_config(&self.text())
    }
}

/// The table holding the last part of a dotted `key`, created as needed, and that last part.
fn table_for<'a, 'k>(doc: &'a mut toml::Table, key: &'k str) -> (&'a mut toml::Table, &'k str) {
    let (path, last) = key.rsplit_once('.').unwrap_or(("", key));
    let mut table = doc;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        table = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("`{part}` in `{key}` is not a table"));
    }
    (table, last)
}

/// A port on 127.0.0.1 that nothing listens on now, for a process that must be told its port
/// before it starts (pebble validating on it, PostgreSQL). Chosen at random below Linux's
/// ephemeral range (32768 and up), so the outgoing connections of the tests' processes never
/// take it between this check and the bind, and never twice in one test binary: its tests run
/// at once, and one handing out a port another has been given but not yet bound (or probing
/// it just as the other binds it) failed CI's acme tests.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..200 {
        let mut bytes = [0u8; 2];
        getrandom::getrandom(&mut bytes).expect("random");
        let port = 20_000 + u16::from_le_bytes(bytes) % 12_000;
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port below the ephemeral range on 127.0.0.1");
}

/// `LINKGATE_TEST_POSTGRES=postgres://user@host:port` runs the same tests on PostgreSQL: each
/// test environment gets a database of its own on that server (`tools/test.sh` starts a
/// throwaway cluster and runs the store-agnostic tests a second time this way). Configs that
/// already name a backend are left alone.
fn on_test_store(config: &str) -> String {
    let Ok(server) = std::env::var("LINKGATE_TEST_POSTGRES") else {
        return config.to_string();
    };
    let mut doc: toml::Table = config.parse().expect("test config is TOML");
    let Some(storage) = doc.get_mut("storage").and_then(|s| s.as_table_mut()) else {
        return config.to_string();
    };
    if storage.contains_key("backend") {
        return config.to_string();
    }
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).expect("random");
    let name: String = std::iter::once("t_".to_string())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &format!("{server}/postgres"),
        ])
        .args(["-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("run psql (tools/test-setup.sh installs PostgreSQL)");
    assert!(
        out.status.success(),
        "CREATE DATABASE: {}",
        text(&out.stderr)
    );
    storage.insert("backend".into(), "postgres".into());
    storage.insert("url".into(), format!("{server}/{name}").into());
    toml::to_string(&doc).expect("config serialises")
}

/// A config file and data directory in a temporary folder.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv::with_config(&config_text(""))
    }

    pub fn with_config(text: &str) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("linkgate.toml");
        std::fs::write(&config, on_test_store(text)).expect("write config");
        TestEnv { dir, config }
    }

    /// An env with the default user added.
    pub fn with_user() -> TestEnv {
        let env = TestEnv::new();
        env.add_user(USER, PASSWORD);
        env
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs the binary with `--config` and `args`, feeding `stdin`.
    pub fn cli(&self, args: &[&str], stdin: &str) -> Output {
        run_cli(&self.config, args, stdin)
    }

    pub fn add_user(&self, name: &str, password: &str) {
        let out = self.cli(&["--add-user", name], &format!("{password}\n"));
        assert!(
            out.status.success(),
            "--add-user failed: {}",
            text(&out.stderr)
        );
    }

    pub fn start(&self) -> Server {
        Server::start(&self.config)
    }
}

pub fn run_cli(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run linkgate");
    // The CLI may exit (say, on a bad name) before it reads stdin: a broken pipe is fine.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    wait_output(child)
}

/// Waits for a CLI run, killing it if it takes longer than the test timeout.
fn wait_output(mut child: Child) -> Output {
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("linkgate CLI did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running server. Dropping it kills the process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// Set to speak HTTPS to a server with `[server.tls]`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    config: PathBuf,
    /// Its log so far (stderr), line by line as it arrives.
    log: Arc<Mutex<String>>,
    stderr: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(config: &Path) -> Server {
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start linkgate");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let log_in = log.clone();
        // Line by line as bytes, so a line that is not UTF-8 cannot stop the draining.
        let stderr = std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let mut log = log_in.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(TIMEOUT) {
            Ok(addr) => addr.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                let _ = stderr.join();
                let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
                panic!("linkgate did not start within {TIMEOUT:?}; stderr:\n{log}");
            }
        };
        Server {
            child,
            addr,
            tls: None,
            config: config.to_path_buf(),
            log,
            stderr: Some(stderr),
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (bounded) until `needle` has appeared in `times` lines of the log, for events that
    /// leave nothing else to observe (a signal handled); fails with the log.
    pub fn wait_for_log(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let log = self.log();
            if log.lines().filter(|l| l.contains(needle)).count() >= times {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` not logged {times} time(s) within {TIMEOUT:?}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then waits (bounded) for a clean exit. Returns the server's log.
    pub fn stop(mut self) -> String {
        self.signal("TERM");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "linkgate exited with {status} after SIGTERM"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "linkgate did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(handle) = self.stderr.take() {
            let _ = handle.join();
        }
        self.log()
    }

    /// Stops and starts again on the same config and data directory.
    pub fn restart(self) -> Server {
        let config = self.config.clone();
        self.stop();
        Server::start(&config)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        match &self.tls {
            None => http(self.addr, method, path, headers, body),
            Some(tls) => {
                let request = request_bytes(self.addr, method, path, headers, body);
                let data = https_exchange(self.addr, tls, &request)
                    .unwrap_or_else(|e| panic!("{method} {path} over TLS: {e}"));
                parse_response(&data).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            }
        }
    }

    /// A form POST.
    pub fn post_form(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        fields: &[(&str, &str)],
    ) -> Response {
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, form(fields).as_bytes())
    }

    /// `/token` with HTTP Basic, as Alexa calls it.
    pub fn token_basic(&self, id: &str, secret: &str, fields: &[(&str, &str)]) -> Response {
        let auth = basic(id, secret);
        self.post_form("/token", &[("Authorization", &auth)], fields)
    }

    /// `/token` with credentials in the body, as Google calls it.
    pub fn token_post(&self, id: &str, secret: &str, fields: &[(&str, &str)]) -> Response {
        let mut all = vec![("client_id", id), ("client_secret", secret)];
        all.extend_from_slice(fields);
        self.post_form("/token", &[], &all)
    }

    pub fn userinfo(&self, access_token: &str) -> Response {
        let auth = format!("Bearer {access_token}");
        self.request("GET", "/userinfo", &[("Authorization", &auth)], b"")
    }

    pub fn is_healthy(&self) -> bool {
        self.get("/healthz").status == 200
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HTTP Basic credentials, form-encoded inside as RFC 6749 §2.3.1 says.
pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    let raw = format!("{}:{}", encode(id), encode(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A header that must be there; a missing one fails with the whole response.
    pub fn expect_header(&self, name: &str) -> &str {
        self.header(name).unwrap_or_else(|| {
            panic!(
                "no {name} header: status {} headers {:?} body {}",
                self.status,
                self.headers,
                self.text()
            )
        })
    }

    pub fn text(&self) -> String {
        text(&self.body)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {}",
                self.status,
                self.text()
            )
        })
    }

    /// A string member of the JSON body that must be there (`access_token`, `sub`, …).
    pub fn json_str(&self, key: &str) -> String {
        string_field(&self.json(), key)
    }

    /// The `error` of an OAuth JSON error.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }

    /// The query parameters of the `Location` header.
    pub fn location_params(&self) -> HashMap<String, String> {
        let location = self
            .header("Location")
            .unwrap_or_else(|| panic!("no Location: {self:?}"));
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
        parse_query(query)
    }

    /// `name=value` of the `Set-Cookie` header.
    pub fn cookie(&self) -> Option<String> {
        self.header("Set-Cookie")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
    }
}

/// A string member of a JSON object that must be there; fails showing the whole object.
pub fn string_field(json: &serde_json::Value, key: &str) -> String {
    json[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {json}"))
        .to_string()
}

/// One request on a fresh connection (`Connection: close`), reading the response to EOF.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let request = request_bytes(addr, method, path, headers, body);
    raw(addr, &request).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() || method == "POST" {
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    request
}

/// A TLS client that trusts exactly `ca_der` (a self-signed test certificate).
pub fn tls_client(ca_der: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
        .expect("add root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One request over TLS to `localhost`; returns the raw response bytes.
pub fn https_exchange(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    request: &[u8],
) -> Result<Vec<u8>, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream
        .write_all(request)
        .map_err(|e| format!("TLS write: {e}"))?;
    let mut data = Vec::new();
    match stream.read_to_end(&mut data) {
        Ok(_) => Ok(data),
        // A server may close without close_notify; with Connection: close the response is whole.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !data.is_empty() => Ok(data),
        Err(e) => Err(format!("TLS read: {e}")),
    }
}

/// The certificate the server presents, DER.
pub fn presented_certificate(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Vec<u8>, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let mut conn = rustls::ClientConnection::new(tls.clone(), name).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    let certs = conn.peer_certificates().ok_or("no certificate")?;
    Ok(certs[0].as_ref().to_vec())
}

/// Sends arbitrary bytes and parses whatever comes back.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Result<Response, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    // The server may answer (413, 431) and close before it has read everything we send.
    let _ = stream.write_all(bytes);
    let mut data = Vec::new();
    let _ = stream.read_to_end(&mut data);
    parse_response(&data)
}

pub fn parse_response(data: &[u8]) -> Result<Response, String> {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete response: {:?}", text(data)))?;
    let head = text(&data[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = data[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(text(&data[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < pos + 2 + size {
            break;
        }
        out.extend_from_slice(&data[pos + 2..pos + 2 + size]);
        data = &data[(pos + 4 + size).min(data.len())..];
    }
    out
}

/// Percent-encoding of everything but unreserved characters.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(n), decode(v))
        })
        .collect()
}

/// The `/authorize` path for a client.
pub fn authorize_path(
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("state", state),
        ("scope", "profile"),
    ];
    params.extend_from_slice(extra);
    format!("/authorize?{}", form(&params))
}

/// The hidden inputs and the action of the first form in a page.
pub struct Page {
    pub status: u16,
    pub html: String,
    pub action: String,
    pub hidden: Vec<(String, String)>,
    pub cookie: Option<String>,
    pub response: Response,
}

impl Page {
    pub fn from(response: Response) -> Page {
        let html = response.text();
        let action = attribute(&html, "<form", "action").unwrap_or_else(|| "/authorize".into());
        let mut hidden = Vec::new();
        let mut rest = html.as_str();
        while let Some(start) = rest.find("<input") {
            let tag_end = rest[start..]
                .find('>')
                .map_or(rest.len(), |e| start + e + 1);
            let tag = &rest[start..tag_end];
            if tag.contains("type=\"hidden\"") {
                if let (Some(name), Some(value)) = (
                    attribute(tag, "<input", "name"),
                    attribute(tag, "<input", "value"),
                ) {
                    hidden.push((name, value));
                }
            }
            rest = &rest[tag_end..];
        }
        Page {
            status: response.status,
            cookie: response.cookie(),
            html,
            action,
            hidden,
            response,
        }
    }

    /// Submits the form with its hidden fields plus `fields`, carrying `cookie` as a browser would.
    pub fn submit(
        &self,
        server: &Server,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Response {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
        self.submit_with(server, &headers, fields)
    }

    /// Submits the form with its hidden fields plus `fields`, sending `headers`.
    pub fn submit_with(
        &self,
        server: &Server,
        headers: &[(&str, &str)],
        fields: &[(&str, &str)],
    ) -> Response {
        let mut all: Vec<(&str, &str)> = self
            .hidden
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        all.extend_from_slice(fields);
        server.post_form(&self.action, headers, &all)
    }
}

/// The value of `attr` in the first tag that starts with `tag` (maud writes `attr="value"`).
fn attribute(html: &str, tag: &str, attr: &str) -> Option<String> {
    let start = html.find(tag)?;
    let end = html[start..].find('>')? + start;
    let element = &html[start..end];
    let key = format!(" {attr}=\"");
    let at = element.find(&key)? + key.len();
    let value_end = element[at..].find('"')? + at;
    Some(unescape(&element[at..value_end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A browser going through the whole flow, cookies included.
pub struct Browser<'a> {
    pub server: &'a Server,
    pub cookie: Option<String>,
    /// Sent as `Accept-Language` with every request, when set: a phone set to that language.
    pub accept_language: Option<String>,
}

impl<'a> Browser<'a> {
    pub fn new(server: &'a Server) -> Self {
        Browser {
            server,
            cookie: None,
            accept_language: None,
        }
    }

    /// A browser whose every request carries `Accept-Language: accept_language` (if any).
    pub fn with_language(server: &'a Server, accept_language: Option<&str>) -> Self {
        Browser {
            accept_language: accept_language.map(str::to_string),
            ..Browser::new(server)
        }
    }

    /// The headers every request carries: the language, and the cookie once there is one.
    fn headers(&self) -> Vec<(&str, &str)> {
        let language = self
            .accept_language
            .as_deref()
            .map(|l| ("Accept-Language", l));
        let cookie = self.cookie.as_deref().map(|c| ("Cookie", c));
        language.into_iter().chain(cookie).collect()
    }

    pub fn open(&mut self, path: &str) -> Page {
        let page = Page::from(self.server.request("GET", path, &self.headers(), b""));
        if page.cookie.is_some() {
            self.cookie = page.cookie.clone();
        }
        page
    }

    pub fn submit(&mut self, page: &Page, fields: &[(&str, &str)]) -> Page {
        let response = page.submit_with(self.server, &self.headers(), fields);
        let next = Page::from(response);
        if next.cookie.is_some() {
            self.cookie = next.cookie.clone();
        }
        next
    }

    /// `GET /authorize` as the Alexa or Google app opens it: the login page (or an error page).
    pub fn authorize(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        state: &str,
        extra: &[(&str, &str)],
    ) -> Page {
        self.open(&authorize_path(client_id, redirect_uri, state, extra))
    }

    /// Fills in and submits the login form: the consent page, or the login page again.
    pub fn login(&mut self, login: &Page, username: &str, password: &str) -> Page {
        self.submit(login, &[("username", username), ("password", password)])
    }

    /// Presses `allow` or `deny` on the consent page: the redirect back to the client.
    pub fn decide(&mut self, consent: &Page, decision: &str) -> Response {
        self.submit(consent, &[("decision", decision)]).response
    }

    /// authorize → login → consent with `decision`; returns the final redirect.
    pub fn link(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        state: &str,
        decision: &str,
    ) -> Response {
        let login = self.authorize(client_id, redirect_uri, state, &[]);
        assert_eq!(login.status, 200, "login page: {}", login.html);
        let consent = self.login(&login, USER, PASSWORD);
        assert_eq!(consent.status, 200, "consent page: {}", consent.html);
        self.decide(&consent, decision)
    }
}

/// The whole Alexa flow up to an authorization code.
pub fn code_for(server: &Server, client_id: &str, redirect_uri: &str) -> String {
    let redirect = Browser::new(server).link(client_id, redirect_uri, "state-1", "allow");
    assert_eq!(redirect.status, 303, "{redirect:?}");
    redirect
        .location_params()
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {:?}", redirect.header("Location")))
}

/// The form of an authorization code exchange at `/token`.
pub fn code_fields<'a>(code: &'a str, redirect_uri: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ]
}

/// The whole Alexa flow up to tokens: (access_token, refresh_token).
pub fn tokens_for(server: &Server) -> (String, String) {
    let code = code_for(server, ALEXA_ID, ALEXA_REDIRECT);
    let response = server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT));
    assert_eq!(response.status, 200, "{}", response.text());
    let json = response.json();
    (
        json["access_token"]
            .as_str()
            .expect("access_token")
            .to_string(),
        json["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string(),
    )
}

pub fn refresh(server: &Server, refresh_token: &str) -> Response {
    server.token_basic(
        ALEXA_ID,
        ALEXA_SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
}

/// Writes `cert.pem` and `key.pem` (a self-signed certificate for `localhost` and `names`) into
/// `dir`, for a config with `TestConfig::tls`; returns the certificate (DER) for a client to trust.
pub fn write_self_signed(dir: &Path, names: &[&str]) -> Vec<u8> {
    let mut all = vec!["localhost".to_string()];
    all.extend(names.iter().map(|n| n.to_string()));
    let cert = rcgen::generate_simple_self_signed(all).expect("rcgen");
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).expect("cert.pem");
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).expect("key.pem");
    cert.cert.der().to_vec()
}

/// An env whose server speaks HTTPS as `https://localhost` with a self-signed certificate;
/// returns the certificate (DER) for the client to trust.
pub fn https_env() -> (TestEnv, Vec<u8>) {
    let env = TestConfig::new()
        .set("server.public_url", "https://localhost")
        .tls()
        .env();
    let cert = write_self_signed(env.dir.path(), &[]);
    (env, cert)
}

/// Runs `command` to its end with stdin closed and its output captured (drained while it runs,
/// so a chatty child cannot block on a full pipe). It runs in its own process group; past
/// `timeout` the group gets SIGTERM, then SIGKILL after 5 s, and the test fails naming `what`.
pub fn run_bounded(command: &mut Command, timeout: Duration, what: &str) -> Output {
    use std::os::unix::process::CommandExt;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            stop_group(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{what}: no answer within {timeout:?}; stderr:\n{}",
            text(&stderr)
        ),
    }
}

/// `run_bounded`, and the test fails (with the output) unless the command exits 0.
pub fn run_ok(command: &mut Command, timeout: Duration, what: &str) -> Output {
    let output = run_bounded(command, timeout, what);
    assert!(
        output.status.success(),
        "{what}: {command:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut all);
        }
        all
    })
}

/// SIGTERM to the child's process group (lets Playwright close Chromium), SIGKILL if it is not
/// gone within 5 s.
fn stop_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}

/// A connection from `local` (127.0.0.2 is loopback too, so a test can be a second address).
pub fn connect_from(local: &str, to: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("{local}:0").parse().expect("address"))?;
        socket.connect(to).await
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}
