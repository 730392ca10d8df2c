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

#[test]
fn a_full_disk_is_reported_and_a_restart_still_serves_what_the_store_has() {
    let env = TestEnv::with_user();
    let mount = env.dir.path().join("volume");
    let Some(volume) = Tmpfs::mount(&mount, "8m") else {
        return;
    };
    // The data (the user already added) moves onto the small volume.
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
        return;
    }
    std::fs::write(&env.config, moved).unwrap();
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
