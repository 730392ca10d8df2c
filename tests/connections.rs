//! Token clients are never shut out (issue 26): Alexa's and Google's token calls come from a
//! few egress addresses with many parallel connections. Bursts against the real binary, each
//! request counted as answered (200), refused (any other status) or lost (no HTTP answer).

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const REFRESHERS: usize = 200;
const REQUESTS_EACH: usize = 5;

/// Reads one response from a keep-alive connection: its status, or `None` for no HTTP answer.
fn read_status(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(status)
}

fn refresh_request(refresh_token: &str, close: bool) -> Vec<u8> {
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ]);
    format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{}\r\n{body}",
        basic(ALEXA_ID, ALEXA_SECRET),
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
    .into_bytes()
}

#[derive(Default, Debug)]
struct Tally {
    answered: usize,
    refused: usize,
    lost: usize,
}

impl Tally {
    fn add(&mut self, status: Option<u16>) {
        match status {
            Some(200) => self.answered += 1,
            Some(_) => self.refused += 1,
            None => self.lost += 1,
        }
    }
}

/// Connections from 127.0.0.2 that send nothing, held open by the caller.
fn stranger_holds(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .filter_map(|_| connect_from("127.0.0.2", addr).ok())
        .collect()
}

/// A counter from `/metrics` (asked until the server, which notices closed connections
/// asynchronously, has room for the asking one).
fn metric(server: &Server, name: &str) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ask = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let metrics = loop {
        match raw(server.addr, ask) {
            Ok(response) if response.status == 200 => break response.text(),
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => panic!("no metrics: {other:?}"),
        }
    };
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

#[test]
fn two_hundred_keep_alive_refreshers_and_a_reconnect_storm_from_one_address_are_all_answered() {
    let env = TestConfig::new().set("server.metrics", true).env();
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let tokens = server
        .token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT))
        .json();
    let refresh_token = string_field(&tokens, "refresh_token");
    // A stranger holds its whole share from another address.
    let held = stranger_holds(server.addr, 64);
    assert_eq!(held.len(), 64);

    // 200 keep-alive connections from 127.0.0.1 at once (the address's own share is 64), each
    // refreshing five times; all stay open until every one is done.
    let start = Arc::new(Barrier::new(REFRESHERS));
    let done = Arc::new(Barrier::new(REFRESHERS + 1));
    let request = Arc::new(refresh_request(&refresh_token, false));
    let addr = server.addr;
    let refreshers: Vec<_> = (0..REFRESHERS)
        .map(|_| {
            let (start, done, request) = (start.clone(), done.clone(), request.clone());
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                start.wait();
                let stream = TcpStream::connect(addr).ok();
                let mut reader = stream.map(|stream| {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    BufReader::new(stream)
                });
                for _ in 0..REQUESTS_EACH {
                    let status = reader.as_mut().and_then(|reader| {
                        reader.get_mut().write_all(&request).ok()?;
                        read_status(reader)
                    });
                    tally.add(status);
                    if status.is_none() {
                        reader = None;
                    }
                }
                done.wait();
                (tally, reader)
            })
        })
        .collect();
    done.wait();
    // While all 200 are open: the address's clients' share is for token clients only — a
    // browser request or a wrong secret from the same address is refused with an answer.
    let over = raw(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("an HTTP answer");
    assert_eq!(over.status, 503, "{}", over.text());
    assert_eq!(over.expect_header("retry-after"), "1");
    let mut wrong = refresh_request(&refresh_token, true);
    let secret_at = wrong.windows(6).position(|w| w == b"Basic ").unwrap() + 6;
    let bad = basic(ALEXA_ID, "not-the-secret");
    let bad = bad.strip_prefix("Basic ").unwrap();
    let end = wrong[secret_at..].iter().position(|&b| b == b'\r').unwrap() + secret_at;
    wrong.splice(secret_at..end, bad.bytes());
    let refused = raw(server.addr, &wrong).expect("an HTTP answer");
    assert_eq!(refused.status, 503, "{}", refused.text());

    let mut keep_alive = Tally::default();
    let mut open = Vec::new();
    for refresher in refreshers {
        let (tally, reader) = refresher.join().unwrap();
        keep_alive.answered += tally.answered;
        keep_alive.refused += tally.refused;
        keep_alive.lost += tally.lost;
        open.extend(reader);
    }
    println!(
        "keep-alive: {} sent, {} answered, {} refused, {} lost",
        REFRESHERS * REQUESTS_EACH,
        keep_alive.answered,
        keep_alive.refused,
        keep_alive.lost
    );
    assert_eq!(
        keep_alive.answered,
        REFRESHERS * REQUESTS_EACH,
        "{keep_alive:?}"
    );
    drop(open);
    assert!(metric(&server, "linkgate_connections_client_share_total") >= 136);

    // A reconnect storm: 200 clients, each five refreshes on a new connection every time.
    let start = Arc::new(Barrier::new(REFRESHERS));
    let request = Arc::new(refresh_request(&refresh_token, true));
    let storm: Vec<_> = (0..REFRESHERS)
        .map(|_| {
            let (start, request) = (start.clone(), request.clone());
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                start.wait();
                for _ in 0..REQUESTS_EACH {
                    let status = TcpStream::connect(addr).ok().and_then(|mut stream| {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                        stream.write_all(&request).ok()?;
                        read_status(&mut BufReader::new(stream))
                    });
                    tally.add(status);
                }
                tally
            })
        })
        .collect();
    let mut reconnects = Tally::default();
    for client in storm {
        let tally = client.join().unwrap();
        reconnects.answered += tally.answered;
        reconnects.refused += tally.refused;
        reconnects.lost += tally.lost;
    }
    println!(
        "reconnect storm: {} sent, {} answered, {} refused, {} lost",
        REFRESHERS * REQUESTS_EACH,
        reconnects.answered,
        reconnects.refused,
        reconnects.lost
    );
    assert_eq!(
        reconnects.answered,
        REFRESHERS * REQUESTS_EACH,
        "{reconnects:?}"
    );
    // The stranger's connections never counted for 127.0.0.1.
    drop(held);
    assert_eq!(
        server
            .userinfo(&string_field(&tokens, "access_token"))
            .status,
        200
    );
}

#[test]
fn over_tls_a_token_client_beyond_its_addresss_share_is_served_and_a_browser_is_not() {
    let env = TestConfig::new()
        .set("server.public_url", "https://localhost")
        .set("server.header_read_timeout_secs", 30)
        .tls()
        .env();
    let cert = write_self_signed(env.dir.path(), &[]);
    env.add_user(USER, PASSWORD);
    let mut server = env.start();
    server.tls = Some(tls_client(&cert));
    let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
    let tokens = server
        .token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT))
        .json();
    let refresh_token = string_field(&tokens, "refresh_token");
    // 64 connections from this address that never finish a handshake take its whole share.
    let silent: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let answered = (0..20)
        .filter(|_| server.token_basic(ALEXA_ID, ALEXA_SECRET, &refresh).status == 200)
        .count();
    assert_eq!(answered, 20);
    let browser = server.get("/healthz");
    assert_eq!(browser.status, 503, "{}", browser.text());
    drop(silent);
}
