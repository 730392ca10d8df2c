//! The attacks of issue 12, each driven black-box against the real binary: throttles that hold
//! for a concurrent burst, sign-ins a flood cannot evict, connections a stranger cannot exhaust,
//! and the smaller holes around them. Each test failed against the build before the fix
//! (`LINKGATE_TEST_BINARY` runs them against another build).

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A config whose server trusts 127.0.0.1 as a proxy, so tests can speak for other addresses
/// through `X-Forwarded-For`.
fn behind_proxy() -> TestEnv {
    let env = TestConfig::new()
        .set("server.trusted_proxies", vec!["127.0.0.1"])
        .env();
    env.add_user(USER, PASSWORD);
    env
}

/// Opens the login page and submits it as a browser at `from` would.
fn login_from(server: &Server, from: &str, username: &str, password: &str) -> Page {
    let page = Page::from(server.request(
        "GET",
        &authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]),
        &[("X-Forwarded-For", from)],
        b"",
    ));
    submit_from(
        server,
        &page,
        from,
        &[("username", username), ("password", password)],
    )
}

fn submit_from(server: &Server, page: &Page, from: &str, fields: &[(&str, &str)]) -> Page {
    let cookie = page.cookie.clone().expect("a CSRF cookie");
    let mut all: Vec<(&str, &str)> = page
        .hidden
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    all.extend_from_slice(fields);
    Page::from(server.post_form(
        &page.action,
        &[("Cookie", &cookie), ("X-Forwarded-For", from)],
        &all,
    ))
}

#[test]
fn a_burst_of_32_prepared_guesses_is_held_like_a_sequence() {
    let env = TestEnv::with_user();
    let server = env.start();
    let pages: Vec<Page> = (0..32)
        .map(|_| Page::from(server.get(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]))))
        .collect();
    let barrier = Barrier::new(pages.len());
    // Wrong guesses answered so far, and how many of them were refused.
    let (answered, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let statuses: Vec<(bool, u16)> = std::thread::scope(|scope| {
        let handles: Vec<_> = pages
            .iter()
            .enumerate()
            .map(|(i, page)| {
                let (server, barrier) = (&server, &barrier);
                let (answered, refused) = (&answered, &refused);
                scope.spawn(move || {
                    let right = i == 31;
                    let password = if right { PASSWORD } else { "wrong password" };
                    barrier.wait();
                    if right {
                        // Among the burst, but once the limit has been reached: the first
                        // refusal, or (where nothing is refused) every wrong guess answered.
                        let deadline = Instant::now() + Duration::from_secs(20);
                        while refused.load(Ordering::SeqCst) == 0
                            && answered.load(Ordering::SeqCst) < 31
                            && Instant::now() < deadline
                        {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    let status = page
                        .submit(
                            server,
                            page.cookie.as_deref(),
                            &[("username", USER), ("password", password)],
                        )
                        .status;
                    if !right {
                        if status == 429 {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    (right, status)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrong_checked = statuses
        .iter()
        .filter(|(right, s)| !right && *s == 401)
        .count();
    let right = statuses.iter().find(|(right, _)| *right).unwrap().1;
    eprintln!("burst: {wrong_checked} of 31 wrong guesses checked; the right password got {right}");
    // 5 free failures plus the one that sets the lock, exactly as in a sequence.
    assert!(
        wrong_checked <= 6,
        "{wrong_checked} guesses checked: {statuses:?}"
    );
    assert_ne!(
        right, 200,
        "the right password reached consent after the limit"
    );
    assert!(
        statuses.iter().all(|(_, s)| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
}

#[test]
fn an_attacker_at_one_address_does_not_lock_the_owner_out_elsewhere() {
    let env = behind_proxy();
    let server = env.start();
    let attacker = "198.51.100.7";
    let mut refused = 0;
    for _ in 0..12 {
        match login_from(&server, attacker, USER, "guess").status {
            429 => refused += 1,
            status => assert_eq!(status, 401),
        }
    }
    assert!(
        refused >= 6,
        "the attacker was not slowed: {refused} refusals of 12"
    );
    // Even the right password from the attacker's address waits out the lock...
    assert_eq!(login_from(&server, attacker, USER, PASSWORD).status, 429);
    // ...but the owner, at home, signs in.
    let owner = login_from(&server, "203.0.113.9", USER, PASSWORD);
    assert_eq!(owner.status, 200, "{}", owner.html);
    assert!(owner.html.contains("decision"));
}

#[test]
fn ipv6_guessers_are_counted_by_their_64_prefix() {
    let env = behind_proxy();
    let server = env.start();
    // A different address of the same /64 and a different username for every guess.
    let statuses: Vec<u16> = (0..24)
        .map(|i| {
            let from = format!("2001:db8:5:6::{:x}", i + 1);
            login_from(&server, &from, &format!("user{i}"), "guess").status
        })
        .collect();
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 2,
        "one /64 was not counted as one address: {statuses:?}"
    );
    // Another /64 is not affected.
    assert_eq!(
        login_from(&server, "2001:db8:5:7::1", USER, PASSWORD).status,
        200
    );
}

#[test]
fn the_throttle_stores_no_typed_username_in_clear_and_bounds_long_ones() {
    let env = TestEnv::with_user();
    let server = env.start();
    let typed_password = "Tr0ub4dor-typed-into-the-username-field";
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    assert_eq!(browser.login(&login, typed_password, "x").status, 401);
    let huge = "u".repeat(40_000);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
    assert_eq!(browser.login(&login, &huge, "x").status, 401);
    server.stop();
    let mut found = Vec::new();
    let mut total = 0;
    for entry in walk(&env.data_dir()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        total += bytes.len();
        if bytes
            .windows(typed_password.len())
            .any(|w| w == typed_password.as_bytes())
        {
            found.push(entry.display().to_string());
        }
        assert!(
            !bytes.windows(4096).any(|w| w.iter().all(|b| *b == b'u')),
            "a long typed username was stored verbatim in {}",
            entry.display()
        );
    }
    assert!(
        found.is_empty(),
        "the typed text is stored in clear in {found:?}"
    );
    assert!(total > 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_flood_of_5000_anonymous_authorize_requests_does_not_cancel_a_sign_in() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut browser = Browser::new(&server);
    let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "customer-state", &[]);
    assert_eq!(login.status, 200);
    let path = authorize_path(ALEXA_ID, ALEXA_REDIRECT, "flood", &[]);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..16 {
            let (server, path) = (&server, &path);
            scope.spawn(move || {
                for _ in 0..5000 / 16 + 1 {
                    assert_eq!(server.get(path).status, 200);
                }
            });
        }
    });
    eprintln!("flood of 5000 took {:?}", started.elapsed());
    let consent = browser.login(&login, USER, PASSWORD);
    assert_eq!(
        consent.status, 200,
        "the sign-in was lost: {}",
        consent.html
    );
    let redirect = browser.decide(&consent, "allow");
    assert_eq!(redirect.status, 303, "{redirect:?}");
    let params = redirect.location_params();
    assert!(params.contains_key("code"));
    assert_eq!(params["state"], "customer-state");
}

#[test]
fn a_consent_page_opened_before_a_password_change_or_removal_is_refused() {
    let env = TestEnv::with_user();
    let server = env.start();
    for change in ["--set-password", "--remove-user"] {
        let mut browser = Browser::new(&server);
        let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
        let consent = browser.login(&login, USER, PASSWORD);
        assert_eq!(consent.status, 200);
        let out = env.cli(&[change, USER], "a brand new password 123\n");
        assert!(out.status.success(), "{change}: {}", text(&out.stderr));
        let answer = browser.submit(&consent, &[("decision", "allow")]);
        assert!(
            answer.response.header("Location").is_none(),
            "{change}: a code was issued: {:?}",
            answer.response
        );
        assert_eq!(answer.status, 400, "{change}: {}", answer.html);
        assert!(answer.html.contains("sign in again"), "{}", answer.html);
        if change == "--set-password" {
            // Restore the user for the next round.
            let out = env.cli(&["--set-password", USER], &format!("{PASSWORD}\n"));
            assert!(out.status.success());
        }
    }
}

/// GET /healthz from `local`; whether it answered 200 within 5 s.
fn healthy_from(local: &str, to: SocketAddr) -> bool {
    let Ok(mut stream) = connect_from(local, to) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut data = Vec::new();
    let _ = stream.read_to_end(&mut data);
    parse_response(&data).is_ok_and(|r| r.status == 200)
}

#[test]
fn one_address_holding_1100_idle_connections_does_not_shut_out_another() {
    let env = TestEnv::new();
    let server = env.start();
    let held: Vec<TcpStream> = (0..1100)
        .filter_map(|_| TcpStream::connect(server.addr).ok())
        .collect();
    assert!(held.len() >= 1000, "could only open {}", held.len());
    let served = (0..20)
        .filter(|_| healthy_from("127.0.0.2", server.addr))
        .count();
    eprintln!(
        "{} idle connections from 127.0.0.1: {served} of 20 requests from 127.0.0.2 served",
        held.len()
    );
    assert_eq!(served, 20);
    // The holder itself is capped: most of its sockets were closed at once.
    let mut closed = 0;
    for mut stream in held.iter().take(200) {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
        if matches!(stream.read(&mut [0u8; 1]), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert!(closed > 0);
}

#[test]
fn strangers_filling_every_slot_from_many_addresses_do_not_shut_out_another() {
    // The tester's case scaled down: 16 addresses x 64 silent connections filled all 1024 slots
    // and a 17th address was refused. Here 4 addresses x 8 fill all 32: the oldest silent ones
    // make room, so every request of a 5th address is answered.
    let env = TestConfig::new()
        .set("server.max_connections", 32)
        .set("server.max_connections_per_ip", 8)
        .env();
    let server = env.start();
    let mut held = Vec::new();
    for a in 1..=4 {
        for _ in 0..8 {
            if let Ok(stream) = connect_from(&format!("127.0.0.{a}"), server.addr) {
                held.push(stream);
            }
        }
    }
    // Some hold a keep-alive connection after one request instead of a silent one.
    let mut keep_alive = connect_from("127.0.0.6", server.addr).unwrap();
    keep_alive
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    keep_alive.write_all(request.as_bytes()).unwrap();
    let _ = read_one_response(&mut keep_alive);
    std::thread::sleep(Duration::from_millis(300));
    let served = (0..20)
        .filter(|_| healthy_from("127.0.0.5", server.addr))
        .count();
    eprintln!(
        "{} silent connections from 4 addresses: {served} of 20 requests from a 5th served",
        held.len()
    );
    assert_eq!(served, 20);
    // And a burst of 16 at once from a 7th address, while the holders stay connected.
    let barrier = Arc::new(Barrier::new(16));
    let addr = server.addr;
    let burst: Vec<_> = (0..16)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                healthy_from("127.0.0.7", addr)
            })
        })
        .collect();
    let answered = burst
        .into_iter()
        .map(|t| t.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    eprintln!("a burst of 16 from a 7th address: {answered} answered");
    assert!(answered >= 8, "only {answered} of 16 answered");
}

/// One request on a new connection from `local`, `Connection: close`: the answer, or why none.
fn request_from(local: &str, to: SocketAddr, path: &str) -> Result<Response, String> {
    let mut stream = connect_from(local, to).map_err(|e| e.to_string())?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    let _ = stream.read_to_end(&mut data);
    parse_response(&data)
}

#[test]
fn over_its_share_an_address_gets_a_503_and_a_reconnecting_client_is_never_counted_twice() {
    // A silent close over the cap looks like a network fault to Alexa: the answer is an HTTP
    // status. And a client that reconnects right after `Connection: close` finds its slot free.
    let env = TestConfig::new()
        .set("server.max_connections_per_ip", 4)
        .set("server.metrics", true)
        .env();
    let server = env.start();
    let held: Vec<TcpStream> = (0..4)
        .map(|_| connect_from("127.0.0.3", server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let over = request_from("127.0.0.3", server.addr, "/healthz").expect("no HTTP answer");
    assert_eq!(over.status, 503, "{}", over.text());
    assert_eq!(over.expect_header("retry-after"), "1");
    drop(held);

    let addr = server.addr;
    let barrier = Arc::new(Barrier::new(4));
    let storms: Vec<_> = (0..4)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..150)
                    .map(|_| request_from("127.0.0.4", addr, "/healthz").map(|r| r.status))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<Result<u16, String>> =
        storms.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let ok = outcomes.iter().filter(|o| matches!(o, Ok(200))).count();
    let refused = outcomes.iter().filter(|o| matches!(o, Ok(503))).count();
    let empty = outcomes.iter().filter(|o| o.is_err()).count();
    eprintln!(
        "reconnect storm, 4 x 150 from one address with a share of 4: {ok} ok, {refused} refused, {empty} without an answer"
    );
    assert_eq!(ok, outcomes.len(), "{outcomes:?}");
    let metrics = request_from("127.0.0.1", addr, "/metrics").unwrap().text();
    assert!(
        metrics.contains("linkgate_connections_refused_total{reason=\"per_address\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_body_trickled_slowly_is_cut_off_at_the_deadline() {
    let env = TestEnv::new();
    let server = env.start();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(900)))
        .unwrap();
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // One byte a second, for at most 25 s (the default deadline is 10 s).
    while started.elapsed() < Duration::from_secs(25) {
        if stream.write_all(b"a").is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if !answer.is_empty() {
            break;
        }
    }
    let held = started.elapsed();
    eprintln!("a trickled body was held for {held:?}");
    assert!(held < Duration::from_secs(14), "held for {held:?}");
    if let Ok(response) = parse_response(&answer) {
        assert_eq!(response.status, 408);
    }
}

#[test]
fn a_silent_connection_is_closed_at_the_header_deadline() {
    let env = TestConfig::new()
        .set("server.header_read_timeout_secs", 2)
        .set("server.idle_timeout_secs", 60)
        .env();
    let server = env.start();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let _ = stream.read(&mut [0u8; 64]);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

/// Reads one response (`Content-Length` framed) from a keep-alive connection.
fn read_one_response(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .expect("the server closed a keep-alive connection");
        assert!(n > 0, "the server closed a keep-alive connection");
        data.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[test]
fn a_keep_alive_connection_waits_the_idle_time_not_the_header_time() {
    // Alexa and Google keep token connections open between calls: between requests the idle
    // deadline holds (it was the header deadline, 10 s instead of 60 s with the defaults); a
    // head that has started still has only the header deadline.
    let env = TestConfig::new()
        .set("server.header_read_timeout_secs", 1)
        .set("server.idle_timeout_secs", 8)
        .env();
    let server = env.start();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    for round in 0..2 {
        stream.write_all(request.as_bytes()).unwrap();
        let answer = read_one_response(&mut stream);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "round {round}: {answer}"
        );
        // Three header deadlines of quiet between requests.
        std::thread::sleep(Duration::from_secs(3));
    }
    // A head begun and left: closed at about the header deadline, not the idle one.
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a half-sent head was kept for {:?}",
        started.elapsed()
    );
    // And a keep-alive connection left alone is closed at the idle deadline.
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    idle.write_all(request.as_bytes()).unwrap();
    let _ = read_one_response(&mut idle);
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    let kept = started.elapsed();
    assert!(
        kept >= Duration::from_secs(7) && kept < Duration::from_secs(12),
        "an idle keep-alive connection was kept for {kept:?} (idle_timeout_secs = 8)"
    );
}

#[test]
fn a_2_mb_body_gets_a_413_the_client_can_read() {
    let env = TestEnv::new();
    let server = env.start();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = vec![b'a'; 2 * 1024 * 1024];
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    // Like Python's http.client: the head, then (a network's delay later) the whole body,
    // and only then read.
    stream.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stream
        .write_all(&body)
        .expect("the server reset the connection while the body was sent");
    let mut data = Vec::new();
    let read = stream.read_to_end(&mut data);
    let response =
        parse_response(&data).unwrap_or_else(|e| panic!("no readable answer ({read:?}): {e}"));
    assert_eq!(response.status, 413);
}

#[test]
fn a_100_kb_header_is_refused_with_431() {
    let env = TestEnv::new();
    let server = env.start();
    let big = "b".repeat(100 * 1024);
    let response = server.request("GET", "/healthz", &[("X-Padding", &big)], b"");
    assert_eq!(response.status, 431, "{}", response.text());
}

#[test]
fn hostile_methods_and_bidi_characters_do_not_reach_the_log_raw() {
    let env = TestEnv::new();
    let server = env.start();
    let method = "M".repeat(100 * 1024);
    let request = format!(
        "{method} /x HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    let _ = raw(server.addr, request.as_bytes());
    let evil = "GET /invoice\u{202e}fdp.exe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answered = raw(server.addr, evil.as_bytes()).map(|r| r.status);
    eprintln!("a path with U+202E got {answered:?}");
    let log = server.stop();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");
    assert!(!log.contains('\u{202e}'), "U+202E reached the log raw");
    if answered == Ok(404) {
        assert!(log.contains("\\u{202e}"), "{log}");
    }
}

#[test]
fn metrics_are_not_local_when_a_trusted_proxy_forwards_and_a_token_opens_them() {
    let env = TestConfig::new()
        .set("server.trusted_proxies", vec!["127.0.0.1"])
        .set("server.metrics", true)
        .set("server.metrics_token", "scrape-token-0123456789")
        .env();
    let server = env.start();
    let forwarded = server.request(
        "GET",
        "/metrics",
        &[("X-Forwarded-For", "198.51.100.1")],
        b"",
    );
    assert_eq!(forwarded.status, 404, "a forwarded request read /metrics");
    let wrong = server.request(
        "GET",
        "/metrics",
        &[
            ("X-Forwarded-For", "198.51.100.1"),
            ("Authorization", "Bearer not-the-token-000000"),
        ],
        b"",
    );
    assert_eq!(wrong.status, 404);
    let scraper = server.request(
        "GET",
        "/metrics",
        &[
            ("X-Forwarded-For", "198.51.100.1"),
            ("Authorization", "Bearer scrape-token-0123456789"),
        ],
        b"",
    );
    assert_eq!(scraper.status, 200);
    assert!(scraper.text().contains("linkgate_"));
    // A local scraper without a proxy in between still reads them.
    assert_eq!(server.get("/metrics").status, 200);
}

#[test]
fn built_in_tls_sends_hsts_and_a_host_prefixed_csrf_cookie() {
    let (env, cert) = https_env();
    env.add_user(USER, PASSWORD);
    let mut server = env.start();
    server.tls = Some(tls_client(&cert));
    let login = Page::from(server.get(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[])));
    let hsts = login.response.expect_header("Strict-Transport-Security");
    assert!(hsts.contains("max-age="), "{hsts}");
    let set_cookie = login.response.expect_header("Set-Cookie");
    assert!(
        set_cookie.starts_with("__Host-linkgate_csrf="),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("Secure") && set_cookie.contains("Path=/"));
    assert!(!set_cookie.contains("Domain"));
    // The flow works with it.
    let mut browser = Browser::new(&server);
    assert_eq!(
        browser.link(ALEXA_ID, ALEXA_REDIRECT, "s", "allow").status,
        303
    );
}

#[test]
fn a_request_forwarded_by_a_local_proxy_does_not_read_metrics() {
    let env = TestConfig::new()
        .set("server.trusted_proxies", vec!["127.0.0.1"])
        .set("server.metrics", true)
        .env();
    let server = env.start();
    let forwarded = server.request(
        "GET",
        "/metrics",
        &[("X-Forwarded-For", "198.51.100.1")],
        b"",
    );
    assert_eq!(
        forwarded.status, 404,
        "the internet read /metrics through the proxy"
    );
    assert_eq!(server.get("/metrics").status, 200);
}

#[test]
fn a_burst_of_client_secret_guesses_is_throttled_per_address_and_logged_without_the_secret() {
    let env = behind_proxy();
    let server = env.start();
    let guesser = "198.51.100.23";
    let barrier = Barrier::new(64);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let (server, barrier) = (&server, &barrier);
                scope.spawn(move || {
                    let guess = format!("guessed-secret-{i:04}-xyzzy");
                    barrier.wait();
                    server
                        .post_form(
                            "/token",
                            &[
                                ("Authorization", &basic(ALEXA_ID, &guess)),
                                ("X-Forwarded-For", guesser),
                            ],
                            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
                        )
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    eprintln!("client-secret burst: {checked} of 64 guesses checked, {throttled} refused");
    assert!(checked <= 21, "{checked} guesses checked: {statuses:?}");
    assert_eq!(checked + throttled, 64, "{statuses:?}");
    // The guesser stays refused; the real client, elsewhere, is not.
    let again = server.post_form(
        "/introspect",
        &[
            ("Authorization", &basic(ALEXA_ID, ALEXA_SECRET)),
            ("X-Forwarded-For", guesser),
        ],
        &[("token", "x")],
    );
    assert_eq!(again.status, 429);
    assert!(again.header("Retry-After").is_some());
    assert_eq!(again.error(), "invalid_client");
    let real = server.post_form(
        "/introspect",
        &[
            ("Authorization", &basic(ALEXA_ID, ALEXA_SECRET)),
            ("X-Forwarded-For", "203.0.113.50"),
        ],
        &[("token", "x")],
    );
    assert_eq!(real.status, 200, "{}", real.text());
    let log = server.stop();
    assert!(log.contains("client authentication failed"), "{log}");
    assert!(
        !log.contains("guessed-secret-"),
        "a guessed secret reached the log"
    );
}

#[test]
fn a_backup_never_follows_a_planted_partial_file_and_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::with_user();
    let target = env.dir.path().join("backup.jsonl");
    // What an attacker with write access to the directory plants: the old fixed temporary name
    // as a symlink to a world-readable file they can read.
    let stolen = env.dir.path().join("stolen");
    std::fs::write(&stolen, b"").unwrap();
    std::fs::set_permissions(&stolen, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::symlink(&stolen, env.dir.path().join("backup.partial")).unwrap();
    let out = env.cli(&["--backup", target.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(&stolen).unwrap().len(),
        0,
        "the backup was written through the planted symlink"
    );
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&target)
        .unwrap()
        .contains("linkgate-backup"));
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial") && n != "backup.partial")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn readable_secrets_and_an_open_data_directory_are_warned_about_everywhere() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::with_user();
    std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(env.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let check = env.cli(&["--check-config"], "");
    let said = text(&check.stdout) + &text(&check.stderr);
    assert!(
        said.contains("plain text and is readable by others"),
        "{said}"
    );
    assert!(said.contains("not 0700"), "{said}");
    let doctor = env.cli(&["--doctor"], "");
    let said = text(&doctor.stdout) + &text(&doctor.stderr);
    assert!(said.contains("readable by others"), "{said}");
    assert!(said.contains("not 0700"), "{said}");
    let log = env.start().stop();
    assert!(
        log.contains("readable by others") && log.contains("not 0700"),
        "{log}"
    );
    // Fixed: no warning.
    std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(env.data_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let check = env.cli(&["--check-config"], "");
    let said = text(&check.stdout) + &text(&check.stderr);
    assert!(
        !said.contains("readable by others") && !said.contains("not 0700"),
        "{said}"
    );
}

/// A TLS server on 127.0.0.1 presenting exactly `der` (no checks of its own), for a few
/// connections. Returns its port.
fn serve_raw_certificate(der: Vec<u8>, key_der: Vec<u8>) -> u16 {
    use tokio_rustls::rustls;
    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::try_from(key_der).expect("key");
    let signing = provider
        .key_provider
        .load_private_key(key)
        .expect("signing key");
    let certified = rustls::sign::CertifiedKey::new(vec![der.into()], signing);
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(certified)))),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16).flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::Stream::new(&mut conn, &mut stream);
                let mut buf = [0u8; 4096];
                if tls.read(&mut buf).is_ok() {
                    let _ = tls.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            });
        }
    });
    port
}

#[test]
fn the_doctor_reads_a_certificate_with_non_ascii_validity_bytes_without_panicking() {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2030, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let mut der = cert.der().to_vec();
    // notAfter 300101000000Z becomes "30011é00000Z": same length, valid UTF-8, not ASCII.
    let at = der
        .windows(13)
        .position(|w| w == b"300101000000Z")
        .expect("the notAfter time");
    der[at..at + 13].copy_from_slice("30011é00000Z".as_bytes());
    let port = serve_raw_certificate(der, key.serialize_der());
    let env = TestConfig::new()
        .set("server.public_url", format!("https://localhost:{port}"))
        .env();
    let out = env.cli(&["--doctor"], "");
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert_ne!(out.status.code(), Some(101), "{said}");
    assert!(
        said.contains("chain"),
        "the doctor did not get to the certificate: {said}"
    );
}

#[test]
fn many_real_refreshes_in_flight_from_one_address_are_never_throttled() {
    // Alexa refreshes for every customer of a skill from a few egress addresses: the guessing
    // throttle counts secret checks, never the requests a right secret lets through, however
    // many are in flight at once (each rotating refresh here waits for its write).
    // Each request here opens a new connection (`Connection: close`): under a loaded CI the
    // 48 threads' reconnects can outrun the release of the closed connections' per-address
    // slots, and the connection cap (another limit, tested in its own test) closed a few new
    // connections. It is raised here so this test measures the guessing throttle only.
    let env = TestConfig::new()
        .client(ALEXA_ID, "rotate_refresh_tokens", true)
        .set("server.max_connections_per_ip", 1024)
        .env();
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let chains: Vec<String> = (0..48).map(|_| tokens_for(&server).1).collect();
    let barrier = Barrier::new(chains.len());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = chains
            .iter()
            .map(|token| {
                let (server, barrier) = (&server, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    (0..30)
                        .map(|_| refresh(server, token).status)
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let refused = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(refused, 0, "{statuses:?}");
}

/// Issue 28: refused sign-ins wrote throttle records (~300 bytes each, kept 15 minutes), so one
/// address sending fresh usernames could fill the disk. A refused attempt now writes nothing:
/// the store (measured as the backup, which carries the throttle tree) does not grow with them,
/// in a concurrent burst as in a sequence; and the owner, at another address, still signs in.
#[test]
fn refused_sign_ins_store_nothing_so_a_flood_cannot_fill_the_disk() {
    let env = behind_proxy();
    let server = env.start();
    let guesser = "203.0.113.50";
    // 20 free failures for the address, and the one that locks it.
    for i in 0..21 {
        let page = login_from(&server, guesser, &format!("fresh{i}"), "wrong");
        assert_eq!(page.status, 401, "{}", page.html);
    }
    let backup_size = |name: &str| {
        let target = env.dir.path().join(name);
        let out = env.cli(&["--backup", target.to_str().unwrap()], "");
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::metadata(&target).unwrap().len()
    };
    let before = backup_size("before.backup");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let server = &server;
                scope.spawn(move || {
                    (0..100)
                        .map(|i| login_from(server, guesser, &format!("flood{t}-{i}"), "x").status)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(statuses.iter().all(|s| *s == 429), "{statuses:?}");
    let after = backup_size("after.backup");
    eprintln!("backup before {before} B, after 400 refused sign-ins {after} B");
    // Before the fix: ~400 new records. Allow for the backup's own noise (timestamps).
    assert!(
        after <= before + 512,
        "400 refused sign-ins grew the store from {before} to {after} bytes"
    );
    assert_eq!(
        login_from(&server, "198.51.100.20", USER, PASSWORD).status,
        200
    );
}
