//! Behind a CDN and a proxy (issue 34): a real nginx (Debian's, installed by tools/test-setup.sh)
//! on loopback in front of the real binary, and "CDN edges" played by connecting to nginx from
//! other loopback addresses (127.0.0.9, …) with the `X-Forwarded-For` an edge sends. What
//! linkgate takes for the customer's address is read from its access log (`ip=`) and from the
//! sign-in throttle, which counts per address.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The CDN's edges: 127.0.0.8 to 127.0.0.15.
const CDN_RANGE: &str = "127.0.0.8/29";
const EDGE: &str = "127.0.0.9";
const OTHER_EDGE: &str = "127.0.0.10";
/// A customer reaching nginx directly, not through the CDN.
const DIRECT: &str = "127.0.0.5";

struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> &'static str {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("nginx is missing: tools/test-setup.sh installs Debian's nginx (run tools/test.sh)");
}

/// nginx as the README configures it, proxying to `upstream`.
fn start_nginx(dir: &Path, upstream: SocketAddr) -> Nginx {
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx { child, addr }
}

/// One request to nginx from the local address `from`.
fn from_address(
    to: SocketAddr,
    from: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        let local: IpAddr = from.parse().unwrap();
        socket.bind(SocketAddr::new(local, 0)).unwrap();
        socket.connect(to).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut stream = stream;
    let request = request_bytes(to, method, path, headers, body);
    stream.write_all(&request).unwrap();
    let mut data = Vec::new();
    stream.read_to_end(&mut data).unwrap();
    parse_response(&data).unwrap_or_else(|e| panic!("{method} {path} via nginx: {e}"))
}

/// The setup under test: linkgate trusting nginx and the CDN's range, nginx in front.
struct Stack {
    env: TestEnv,
    server: Server,
    nginx: Nginx,
}

fn stack(trusted: &[&str]) -> Stack {
    let port = free_port();
    let env = TestConfig::new()
        .set("server.listen", format!("127.0.0.1:{port}"))
        .set(
            "server.trusted_proxies",
            toml::Value::Array(trusted.iter().map(|t| (*t).into()).collect()),
        )
        .env();
    env.add_user(USER, PASSWORD);
    env.add_user("bob", PASSWORD);
    let server = env.start();
    let nginx = start_nginx(env.dir.path(), server.addr);
    Stack { env, server, nginx }
}

impl Stack {
    /// `GET /healthz` arriving at nginx from `from` with `xff` (none: no header), and the
    /// address linkgate logged for it.
    fn seen_as(&self, from: &str, xff: Option<&str>) -> String {
        let marker = format!("/healthz-{}", self.server.log().len());
        let headers: Vec<(&str, &str)> = xff.iter().map(|x| ("X-Forwarded-For", *x)).collect();
        let answer = from_address(self.nginx.addr, from, "GET", &marker, &headers, b"");
        assert_eq!(answer.status, 404, "{}", answer.text());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.server.log();
            if let Some(line) = log.lines().find(|l| l.contains(&format!("path={marker} "))) {
                let ip = line.split("ip=").nth(1).expect("ip= in the access line");
                return ip.split_whitespace().next().unwrap_or("").to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no access line for {marker}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Signs in through nginx from `from` with `xff`: the status of the login form's answer.
    fn sign_in(&self, from: &str, xff: &str, username: &str, password: &str) -> u16 {
        let headers = [("X-Forwarded-For", xff)];
        let path = authorize_path(ALEXA_ID, ALEXA_REDIRECT, "state-proxy", &[]);
        let login = Page::from(from_address(
            self.nginx.addr,
            from,
            "GET",
            &path,
            &headers,
            b"",
        ));
        assert_eq!(login.status, 200, "{}", login.html);
        let cookie = login.cookie.clone().expect("a CSRF cookie");
        let mut fields: Vec<(&str, &str)> = login
            .hidden
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        fields.extend_from_slice(&[("username", username), ("password", password)]);
        let body = form(&fields);
        from_address(
            self.nginx.addr,
            from,
            "POST",
            &login.action,
            &[
                ("X-Forwarded-For", xff),
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .status
    }
}

#[test]
fn behind_a_cdn_and_nginx_the_customer_is_the_first_untrusted_hop_from_the_right() {
    let stack = stack(&["127.0.0.1", CDN_RANGE]);
    // Through the CDN: the address the edge saw.
    assert_eq!(stack.seen_as(EDGE, Some("203.0.113.7")), "203.0.113.7");
    // A customer's own forged hop stays left of the one the edge appended.
    assert_eq!(
        stack.seen_as(EDGE, Some("10.1.2.3, 203.0.113.7")),
        "203.0.113.7"
    );
    // Straight to nginx with a forged header: not believed, the customer is who connected.
    assert_eq!(stack.seen_as(DIRECT, Some("203.0.113.99")), DIRECT);
    assert_eq!(stack.seen_as(DIRECT, None), DIRECT);
    // Three trusted hops (nginx, two CDN layers): the customer before them.
    assert_eq!(
        stack.seen_as(EDGE, Some("198.51.100.7, 127.0.0.10")),
        "198.51.100.7"
    );
    // An edge without a header of its own: the edge itself (every hop trusted: the left-most).
    assert_eq!(stack.seen_as(EDGE, None), EDGE);
    // IPv6 hops with a port, as some CDNs write them.
    assert_eq!(
        stack.seen_as(EDGE, Some("[2001:db8::7]:443")),
        "2001:db8::7"
    );
    // Garbage ends the walk at the last good hop.
    assert_eq!(stack.seen_as(EDGE, Some("203.0.113.7, junk")), EDGE);
    let checked = stack.env.cli(&["--check-config"], "");
    let out = text(&checked.stdout);
    assert!(out.contains(&format!("127.0.0.1, {CDN_RANGE}")), "{out}");
}

#[test]
fn without_the_cdn_range_the_edge_is_the_client_as_before() {
    // Only nginx trusted: the edge's address is the client (the setup to avoid behind a CDN).
    let stack = stack(&["127.0.0.1"]);
    assert_eq!(stack.seen_as(EDGE, Some("203.0.113.7")), EDGE);
}

#[test]
fn two_customers_behind_one_cdn_edge_are_throttled_apart() {
    let stack = stack(&["127.0.0.1", CDN_RANGE]);
    // A burst of wrong passwords from one customer, all through the same edge, for fresh
    // usernames (so only the per-address count can stop them).
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let stack = &stack;
                scope.spawn(move || {
                    stack.sign_in(EDGE, "203.0.113.66", &format!("guess{i}"), "wrong password")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "the guesser was never held: {statuses:?}"
    );
    // The guesser is locked now, even with the right password.
    assert_eq!(stack.sign_in(EDGE, "203.0.113.66", USER, PASSWORD), 429);
    // Another customer through the same edge, and through another edge, signs in.
    assert_eq!(stack.sign_in(EDGE, "203.0.113.77", "bob", PASSWORD), 200);
    assert_eq!(
        stack.sign_in(OTHER_EDGE, "198.51.100.8", USER, PASSWORD),
        200
    );
}

#[test]
fn a_bad_range_is_refused_at_start_with_its_key() {
    for (bad, says) in [
        ("127.0.0.1/29", "did you mean 127.0.0.0/29"),
        ("10.0.0.0/33", "0 to 32"),
        ("cdn.example.com", "not an IP address"),
    ] {
        let env = TestConfig::new()
            .set(
                "server.trusted_proxies",
                toml::Value::Array(vec!["127.0.0.1".into(), bad.into()]),
            )
            .env();
        let out = env.cli(&["--check-config"], "");
        assert!(!out.status.success(), "{bad} accepted");
        let err = text(&out.stderr) + &text(&out.stdout);
        assert!(err.contains("server.trusted_proxies[1]"), "{bad}: {err}");
        assert!(err.contains(says), "{bad}: {err}");
    }
}
