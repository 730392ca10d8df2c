//! A full disk (issue 28): the data directory on a small tmpfs this test mounts itself (skipped,
//! with a message, where it cannot mount). While the disk is full `/healthz` says so, requests
//! that must write get a readable 503 instead of a hang or a lie, links made before keep
//! working, a restart serves what the store has, and the server recovers by itself once there is
//! room again.

mod common;
use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({}); the disk-full test needs root",
                text(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the file system holding `dir` to the last byte; returns the filler's path.
fn fill(dir: &Path, name: &str) -> PathBuf {
    let filler = dir.join(name);
    let mut file = std::fs::File::create(&filler).expect("create the filler");
    let block = vec![0u8; 64 * 1024];
    let mut size = block.len();
    // Big blocks, then smaller ones, until not even one byte fits (bounded: 4 MiB / 1 byte).
    while size > 0 {
        if file.write_all(&block[..size]).is_err() {
            size /= 2;
        }
    }
    let _ = file.sync_all();
    filler
}

/// New links (codes, grants, tokens written) until `/healthz` says the store cannot write;
/// bounded. Every answer on the way is a page or a redirect, never a hang or a panic.
fn link_until_unhealthy(server: &Server) -> (usize, Duration) {
    let started = Instant::now();
    for round in 0..3000 {
        let mut browser = Browser::new(server);
        let login = browser.authorize(ALEXA_ID, ALEXA_REDIRECT, "s", &[]);
        let consent = browser.login(&login, USER, PASSWORD);
        let last = match consent.status {
            200 => browser.decide(&consent, "allow").status,
            status => status,
        };
        assert!(
            [303, 503].contains(&last),
            "round {round}: {last} {}",
            consent.html
        );
        if server.get("/healthz").status == 503 {
            return (round, started.elapsed());
        }
    }
    panic!("/healthz kept saying ok on a full disk");
}

/// SIGTERM, and the bounded wait for the exit (on a full disk the last flush fails: exit 1).
fn stop_anyhow(mut server: Server) -> String {
    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.is_running() {
        assert!(Instant::now() < deadline, "no stop on a full disk");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.log()
}

/// Starts the binary expecting it to refuse; its stderr.
fn refused_start(config: &Path) -> String {
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("linkgate started on a full disk with no reserve left");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    stderr
}

/// Moves the test's data directory (the users already added) onto the small volume; `None` on
/// the PostgreSQL pass, where the store is not there.
fn move_onto(volume: &Tmpfs, env: &TestEnv) -> Option<PathBuf> {
    let data = volume.path.join("data");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(env.data_dir())
        .arg(&data)
        .status()
        .unwrap();
    assert!(copied.success());
    let config = std::fs::read_to_string(&env.config).unwrap();
    let moved = config.replacen(
        "path = \"data\"",
        &format!("path = \"{}\"", data.display()),
        1,
    );
    if moved == config || config.contains("backend = \"postgres\"") {
        eprintln!("SKIPPED: the store is not in the data directory (PostgreSQL pass)");
        return None;
    }
    std::fs::write(&env.config, moved).unwrap();
    Some(data)
}

#[test]
fn a_full_disk_is_reported_and_a_restart_still_serves_what_the_store_has() {
    let env = TestEnv::with_user();
    let mount = env.dir.path().join("volume");
    let Some(volume) = Tmpfs::mount(&mount, "8m") else {
        return;
    };
    let Some(data) = move_onto(&volume, &env) else {
        return;
    };
    let server = env.start();
    let reserve = data.join("reserve");
    assert_eq!(std::fs::metadata(&reserve).unwrap().len(), 1 << 20);
    let (access, refresh_token) = tokens_for(&server);

    // The disk fills up: /healthz says so, and sign-ins get a readable 503.
    let filler = fill(&volume.path, "filler");
    let (rounds, took) = link_until_unhealthy(&server);
    eprintln!("full disk: /healthz 503 after {rounds} more links ({took:?})");
    let body = server.get("/healthz").text();
    assert!(body.contains("cannot read or write"), "{body}");
    // What needs no write still works.
    assert_eq!(server.userinfo(&access).status, 200);
    let log = stop_anyhow(server);
    assert!(log.contains("No space left on device"), "{log}");

    // A restart on the full disk frees the reserve and serves: old links, refreshes, new links.
    let server = Server::start(&env.config);
    server.wait_for_log("freed linkgate's 1024 KiB reserve", 1);
    assert!(!reserve.exists());
    assert_eq!(server.userinfo(&access).status, 200);
    let refreshed = refresh(&server, &refresh_token);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert!(server.is_healthy());
    let (access, _) = tokens_for(&server);

    // Filled again, with the reserve spent: the start is refused with the reason, not a panic.
    let again = fill(&volume.path, "filler-2");
    link_until_unhealthy(&server);
    stop_anyhow(server);
    let refused = refused_start(&env.config);
    assert!(
        refused.contains("the disk is full") && refused.contains("make room"),
        "{refused}"
    );

    // Room made: it starts, writes the reserve again, and every link made so far answers.
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(&again).unwrap();
    let server = Server::start(&env.config);
    assert_eq!(std::fs::metadata(&reserve).unwrap().len(), 1 << 20);
    assert!(server.is_healthy());
    assert_eq!(server.userinfo(&access).status, 200);
    let (access, _) = tokens_for(&server);
    assert_eq!(server.userinfo(&access).status, 200);
    server.stop();
    drop(volume);
}

/// What became of one customer's refreshes.
#[derive(Default, Debug)]
struct Refreshes {
    answered: usize,
    unavailable: usize,
    refused: Vec<String>,
}

/// Refreshes `rounds` times, keeping the newest refresh token the server acknowledged (a 503
/// keeps the one before: the client retries with it, as Alexa does).
fn keep_refreshing(server: &Server, current: &mut String, rounds: usize) -> Refreshes {
    refresh_until_refused(server, current, rounds, rounds)
}

/// As `keep_refreshing`, but stops `after` rounds past the first 503.
fn refresh_until_refused(
    server: &Server,
    current: &mut String,
    rounds: usize,
    after: usize,
) -> Refreshes {
    let mut seen = Refreshes::default();
    for _ in 0..rounds {
        if seen.unavailable >= after {
            break;
        }
        let response = refresh(server, current);
        match response.status {
            200 => {
                seen.answered += 1;
                *current = response.json_str("refresh_token");
            }
            503 => seen.unavailable += 1,
            status => seen.refused.push(format!("{status} {}", response.text())),
        }
    }
    seen
}

#[test]
fn a_refresh_burst_on_a_full_disk_loses_nothing_acknowledged() {
    let env = TestConfig::new()
        .client(ALEXA_ID, "rotate_refresh_tokens", true)
        .env();
    env.add_user(USER, PASSWORD);
    let mount = env.dir.path().join("volume");
    let Some(volume) = Tmpfs::mount(&mount, "8m") else {
        return;
    };
    let Some(_data) = move_onto(&volume, &env) else {
        return;
    };
    let server = env.start();
    let mut customers: Vec<String> = (0..16).map(|_| tokens_for(&server).1).collect();

    // The disk fills up while 16 customers refresh at once, each until 10 refreshes after its
    // first 503 (at most 1,000).
    let filler = fill(&volume.path, "filler");
    let burst: Vec<Refreshes> = std::thread::scope(|scope| {
        let server = &server;
        let running: Vec<_> = customers
            .iter_mut()
            .map(|current| scope.spawn(move || refresh_until_refused(server, current, 1000, 10)))
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let answered: usize = burst.iter().map(|r| r.answered).sum();
    let unavailable: usize = burst.iter().map(|r| r.unavailable).sum();
    let refused: Vec<&String> = burst.iter().flat_map(|r| &r.refused).collect();
    eprintln!(
        "refresh burst on a filling disk: {} sent, {answered} answered, {unavailable} 503, {} refused",
        answered + unavailable + refused.len(),
        refused.len()
    );
    assert!(
        refused.is_empty(),
        "a live refresh token was refused: {refused:?}"
    );
    assert!(
        answered > 0 && unavailable >= 160,
        "the disk never filled up"
    );

    // Room made: the server stops by itself (sled refuses every write until it is reopened) for
    // systemd to start it again — done here by hand — and every acknowledged token refreshes.
    std::fs::remove_file(&filler).unwrap();
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.is_running() {
        assert!(Instant::now() < deadline, "no stop after room was made");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    assert!(log.contains("there is room again: stopping"), "{log}");
    let server = Server::start(&env.config);
    assert!(server.is_healthy());
    for current in customers.iter_mut() {
        let after = keep_refreshing(&server, current, 1);
        assert_eq!(after.answered, 1, "{after:?}");
    }
    // And after a restart: nothing acknowledged was lost.
    let server = server.restart();
    for current in customers.iter_mut() {
        let after = keep_refreshing(&server, current, 1);
        assert_eq!(after.answered, 1, "{after:?}");
    }
    server.stop();
    drop(volume);
}
