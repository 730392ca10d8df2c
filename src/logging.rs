//! Logs: one line per event on stderr, written in batches by a background thread.
//!
//! The server logs a line per request. Written straight to stderr, every line is a `write(2)` on
//! the request's thread, under stderr's lock: the profile showed about 7 % of the server's CPU in
//! those writes alone at 40k requests/s (BENCHMARKS.md). Here a line is appended to a shared
//! buffer (a short critical section) and a background thread writes whatever has gathered within
//! `FLUSH_EVERY` of the first waiting line, in one write. The thread sleeps until a line arrives
//! (the line that finds the buffer empty wakes it, so at most one wake-up per batch); an idle
//! server's writer does not wake at all. Nothing is dropped: when the buffer is full (stderr is
//! not keeping up), the logger writes it out itself, as it would on a blocking stderr. The price is
//! that a SIGKILL can lose the last few milliseconds of log lines; a normal stop flushes them.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How long a line may wait in the buffer: the writer, woken by a first line, lets others gather
/// this long before it writes them all.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Past this many buffered bytes, a logger writes the buffer out itself before adding its line.
const MAX_BUFFERED: usize = 1 << 20;

/// Logs to stderr, one line per event (level from `RUST_LOG`, `info` by default), through the
/// background writer. Under systemd (`JOURNAL_STREAM` set) journald adds its own timestamps, so
/// ours and the colours are left out. Keep the returned guard alive: dropping it writes what is
/// left.
pub fn init() -> FlushGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let batch = Batch::start();
    let style = match (journald, std::io::stderr().is_terminal()) {
        (true, _) => Style::Journald,
        (false, true) => Style::Terminal,
        (false, false) => Style::Plain,
    };
    let _ = ACCESS.set((batch.clone(), style));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(batch.clone())
        .with_target(false)
        .with_ansi(!journald && std::io::stderr().is_terminal());
    match journald {
        true => builder.without_time().init(),
        false => builder.init(),
    }
    FlushGuard(batch)
}

/// Where access lines go, and how they look; set by `init`.
static ACCESS: OnceLock<(Batch, Style)> = OnceLock::new();

/// How `tracing`'s formatter, as `init` sets it up, writes a line's timestamp and level.
#[derive(Clone, Copy)]
enum Style {
    /// `2026-11-25T07:37:30.005661Z  INFO message`
    Plain,
    /// The same, timestamp dimmed and level green.
    Terminal,
    /// ` INFO message`: journald adds the time.
    Journald,
}

/// How much of a request's path the access line shows.
const MAX_PATH_CHARS: usize = 200;

/// What of `path` the access line will show, copied (the server keeps it across the request);
/// `None`, and nothing copied, when access lines are not logged (`RUST_LOG` above `info`).
pub fn loggable_path(path: &str) -> Option<String> {
    let logged = ACCESS.get().is_some()
        && tracing::enabled!(target: "linkgate::http::server", tracing::Level::INFO);
    logged.then(|| truncate(path, MAX_PATH_CHARS).to_owned())
}

/// Logs one request at `info` (target `linkgate::http::server`, so `RUST_LOG` filters it as
/// before), in exactly the format of the other lines. It bypasses `tracing`'s formatter, which
/// took a fifth of `/userinfo`'s instructions for this line alone (escaping the message a
/// character at a time, formatting the date and the float; BENCHMARKS.md); here it costs a few
/// hundred.
/// `path` is `loggable_path`'s: `None` logs nothing.
pub fn access(method: &str, path: Option<&str>, status: u16, latency: Duration, ip: IpAddr) {
    let (Some(path), Some((batch, style))) = (path, ACCESS.get()) else {
        return;
    };
    let mut line = Vec::with_capacity(160);
    access_line(
        &mut line,
        *style,
        SystemTime::now(),
        method,
        path,
        status,
        latency,
        ip,
    );
    batch.append(&line);
}

/// The access line itself: `request method=GET path=/userinfo status=200 latency_ms=0.12
/// ip=127.0.0.1`, after the timestamp and level. The path is cut at 200 characters (a hostile
/// 60 KiB path must not flood the log) and control characters are escaped, as `tracing` does.
#[allow(clippy::too_many_arguments)]
fn access_line(
    out: &mut Vec<u8>,
    style: Style,
    time: SystemTime,
    method: &str,
    path: &str,
    status: u16,
    latency: Duration,
    ip: IpAddr,
) {
    match style {
        Style::Plain => {
            timestamp(out, time);
            out.extend_from_slice(b"  INFO ");
        }
        Style::Terminal => {
            out.extend_from_slice(b"\x1b[2m");
            timestamp(out, time);
            out.extend_from_slice(b"\x1b[0m \x1b[32m INFO\x1b[0m ");
        }
        Style::Journald => out.extend_from_slice(b" INFO "),
    }
    out.extend_from_slice(b"request method=");
    // Methods are tokens of any length to hyper: a 100 KB one must not become the log line.
    escaped(out, truncate(method, 16));
    out.extend_from_slice(b" path=");
    escaped(out, truncate(path, MAX_PATH_CHARS));
    out.extend_from_slice(b" status=");
    decimal(out, u64::from(status), 1);
    // Milliseconds with two decimals, rounded.
    let hundredths = (latency.as_micros() + 5) / 10;
    out.extend_from_slice(b" latency_ms=");
    decimal(out, u64::try_from(hundredths / 100).unwrap_or(u64::MAX), 1);
    out.push(b'.');
    decimal(out, (hundredths % 100) as u64, 2);
    out.extend_from_slice(b" ip=");
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                decimal(out, u64::from(octet), 1);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'\n');
}

/// `2026-11-25T07:37:30.005661Z `, as tracing-subscriber's `SystemTime` timer writes it (UTC).
fn timestamp(out: &mut Vec<u8>, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    // The date and time to the second change once a second: each thread keeps the last one.
    thread_local! {
        static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
    }
    let cached = SECOND.with(|second| {
        let (at, text) = second.get();
        if at == secs {
            return Some(text);
        }
        let mut fresh = Vec::with_capacity(20);
        date_and_time(&mut fresh, secs);
        let text = <[u8; 20]>::try_from(fresh.as_slice()).ok()?;
        second.set((secs, text));
        Some(text)
    });
    match cached {
        Some(text) => out.extend_from_slice(&text),
        // A year past 9999 does not fit the cached form.
        None => date_and_time(out, secs),
    }
    decimal(out, u64::from(since.subsec_micros()), 6);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` of `secs` since the epoch.
fn date_and_time(out: &mut Vec<u8>, secs: u64) {
    let (year, month, day) = crate::base::civil::date_from_days(secs / 86_400);
    let second_of_day = secs % 86_400;
    decimal(out, year, 4);
    out.push(b'-');
    decimal(out, month, 2);
    out.push(b'-');
    decimal(out, day, 2);
    out.push(b'T');
    decimal(out, second_of_day / 3600, 2);
    out.push(b':');
    decimal(out, second_of_day / 60 % 60, 2);
    out.push(b':');
    decimal(out, second_of_day % 60, 2);
    out.push(b'.');
}

/// `value` in decimal, zero-padded to at least `width` digits.
fn decimal(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while value > 0 || digits.len() - start < width {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if start == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Control characters (an ESC could drive the operator's terminal, a newline forge a line) as
/// `\x1b` or, for C1 controls, `\u{9b}`.
fn escaped(out: &mut Vec<u8>, text: &str) {
    if !text.bytes().any(|b| b.is_ascii_control() || b >= 0x80) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for ch in text.chars() {
        match ch {
            ch if ch.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", ch as u32);
            }
            ch if ch.is_control() || is_invisible_format(ch) => {
                let _ = write!(out, "\\u{{{:x}}}", ch as u32);
            }
            ch => out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// Characters that reorder or hide text without showing themselves (Trojan Source, CVE-2021-42574):
/// bidi embeddings, overrides and isolates, direction marks, line and paragraph separators, and
/// zero-width characters. In a log they can make a line read as something else.
fn is_invisible_format(ch: char) -> bool {
    matches!(ch,
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Cuts `s` after `max` characters.
fn truncate(s: &str, max: usize) -> &str {
    // No more bytes than `max` means no more characters.
    if s.len() <= max {
        return s;
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Writes what is still buffered when dropped.
pub struct FlushGuard(Batch);

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// Where buffered lines go: stderr, or a test's buffer.
type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The shared buffer and where it goes.
#[derive(Clone)]
struct Batch(Arc<Shared>);

struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// Signalled when a line lands in an empty buffer: the writer thread waits on it.
    line_waiting: Condvar,
    /// How often the writer thread has woken to write (for the tests: never while idle).
    wakes: AtomicU64,
    sink: Sink,
}

/// Nowhere to report a failing stderr; the lines are lost either way.
fn to_stderr(lines: &[u8]) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(lines);
    let _ = stderr.flush();
}

impl Batch {
    fn new(sink: impl Fn(&[u8]) + Send + Sync + 'static) -> Batch {
        Batch(Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(64 * 1024)),
            line_waiting: Condvar::new(),
            wakes: AtomicU64::new(0),
            sink: Box::new(sink),
        }))
    }

    fn start() -> Batch {
        Batch::start_with(to_stderr)
    }

    /// A batch with its writer thread, writing to `sink`.
    fn start_with(sink: impl Fn(&[u8]) + Send + Sync + 'static) -> Batch {
        let batch = Batch::new(sink);
        let writer = batch.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || loop {
                writer.wait_for_a_line();
                std::thread::sleep(FLUSH_EVERY);
                writer.flush();
            });
        if let Err(e) = spawned {
            // Without the thread, lines would only leave at a full buffer or at exit.
            eprintln!("linkgate: cannot start the log writer thread ({e}); logging may lag");
        }
        batch
    }

    /// Blocks (without polling) until the buffer holds something.
    fn wait_for_a_line(&self) {
        let mut buffer = self.lock();
        while buffer.is_empty() {
            buffer = self
                .0
                .line_waiting
                .wait(buffer)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        self.0.wakes.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0
            .buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes out everything buffered so far, outside the lock (so loggers are not held up by
    /// a slow stderr).
    fn flush(&self) {
        let lines = {
            let mut buffer = self.lock();
            if buffer.is_empty() {
                return;
            }
            std::mem::replace(&mut *buffer, Vec::with_capacity(64 * 1024))
        };
        (self.0.sink)(&lines);
    }

    /// Buffers a line; when the buffer is full, the logger writes it out itself first.
    fn append(&self, line: &[u8]) {
        let mut buffer = self.lock();
        while buffer.len() + line.len() > MAX_BUFFERED && !buffer.is_empty() {
            drop(buffer);
            self.flush();
            buffer = self.lock();
        }
        let first = buffer.is_empty();
        buffer.extend_from_slice(line);
        drop(buffer);
        if first {
            self.0.line_waiting.notify_one();
        }
    }
}

impl Write for Batch {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batch {
    type Writer = Batch;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `tracing`, set up as `init` does, writes for the same message (timestamp cut off).
    fn tracing_line(ansi: bool, message: &str) -> String {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        let batch = Batch::new(move |lines| sink.lock().unwrap().extend_from_slice(lines));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(batch.clone())
            .with_target(false)
            .with_ansi(ansi)
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::info!("{message}"));
        batch.flush();
        let line = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        line
    }

    fn ours(style: Style, path: &str, latency: Duration, ip: &str) -> String {
        let mut out = Vec::new();
        let time = UNIX_EPOCH + Duration::from_micros(1_764_056_250_005_661);
        access_line(
            &mut out,
            style,
            time,
            "GET",
            path,
            200,
            latency,
            ip.parse().unwrap(),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hostile_methods_and_bidi_overrides_are_cut_and_escaped() {
        let mut out = Vec::new();
        let method = "A".repeat(100_000);
        access_line(
            &mut out,
            Style::Journald,
            UNIX_EPOCH,
            &method,
            "/evil\u{202e}gpj.exe\u{2066}",
            200,
            Duration::ZERO,
            "192.0.2.7".parse().unwrap(),
        );
        let line = String::from_utf8(out).unwrap();
        assert!(line.len() < 200, "{line}");
        assert!(line.contains("method=AAAAAAAAAAAAAAAA path="), "{line}");
        assert!(line.contains("/evil\\u{202e}gpj.exe\\u{2066}"), "{line}");
        assert!(!line.contains('\u{202e}'));
    }

    #[test]
    fn access_lines_look_exactly_like_the_other_log_lines() {
        let message = "request method=GET path=/userinfo status=200 latency_ms=1.50 ip=192.0.2.7";
        let plain = ours(
            Style::Plain,
            "/userinfo",
            Duration::from_micros(1499),
            "192.0.2.7",
        );
        assert_eq!(
            plain,
            format!("2025-11-25T07:37:30.005661Z  INFO {message}\n")
        );
        let theirs = tracing_line(false, message);
        assert_eq!(plain[27..], theirs[27..], "tracing wrote {theirs:?}");

        let terminal = ours(
            Style::Terminal,
            "/userinfo",
            Duration::from_micros(1499),
            "192.0.2.7",
        );
        let theirs = tracing_line(true, message);
        assert_eq!(terminal[..4], theirs[..4]);
        assert_eq!(
            terminal[4 + 27..],
            theirs[4 + 27..],
            "tracing wrote {theirs:?}"
        );

        let journald = ours(
            Style::Journald,
            "/userinfo",
            Duration::from_micros(1499),
            "192.0.2.7",
        );
        assert_eq!(journald, format!(" INFO {message}\n"));
    }

    #[test]
    fn access_lines_escape_control_characters_and_bound_the_path() {
        let line = ours(
            Style::Journald,
            "/a\u{1b}[31mb\nc\u{9b}d",
            Duration::ZERO,
            "::1",
        );
        assert_eq!(
            line,
            " INFO request method=GET path=/a\\x1b[31mb\\x0ac\\u{9b}d status=200 latency_ms=0.00 ip=::1\n"
        );
        let long = format!("/{}", "é".repeat(10_000));
        let line = ours(Style::Journald, &long, Duration::from_secs(12), "10.0.0.1");
        assert!(line.contains(&format!("path=/{} status", "é".repeat(199))));
        assert!(line.contains("latency_ms=12000.00 ip=10.0.0.1\n"));
    }

    #[test]
    fn timestamps_are_utc_dates_and_times() {
        // The calendar itself is tested in `civil`.
        let mut out = Vec::new();
        timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(951_868_799));
        assert_eq!(out, b"2000-02-29T23:59:59.000000Z");
        // The same second again (from the thread's cache), then the next one.
        out.clear();
        timestamp(
            &mut out,
            UNIX_EPOCH + Duration::from_micros(951_868_799_250_001),
        );
        assert_eq!(out, b"2000-02-29T23:59:59.250001Z");
        out.clear();
        timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(951_868_800));
        assert_eq!(out, b"2000-03-01T00:00:00.000000Z");
        out.clear();
        timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(253_402_300_800));
        assert_eq!(out, b"10000-01-01T00:00:00.000000Z", "past the cached form");
    }

    #[test]
    fn every_line_comes_out_once_in_order_and_the_buffer_stays_bounded() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        let batch = Batch::new(move |lines| sink.lock().unwrap().extend_from_slice(lines));
        let lines: Vec<String> = (0..3000).map(|i| format!("{i:0>500}\n")).collect();
        for line in &lines {
            batch.append(line.as_bytes());
            assert!(batch.lock().len() <= MAX_BUFFERED);
        }
        // A full buffer was written out by the loggers themselves, before the final flush.
        assert!(!written.lock().unwrap().is_empty());
        batch.flush();
        assert_eq!(
            String::from_utf8_lossy(&written.lock().unwrap()),
            lines.concat()
        );
    }

    /// Polls (bounded) until `written` holds `expected`.
    fn arrives(written: &Mutex<Vec<u8>>, expected: &[u8]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while written.lock().unwrap().as_slice() != expected {
            assert!(
                std::time::Instant::now() < deadline,
                "got {:?}",
                String::from_utf8_lossy(&written.lock().unwrap())
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_writer_writes_lines_promptly_and_sleeps_while_idle() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        let batch = Batch::start_with(move |lines| sink.lock().unwrap().extend_from_slice(lines));
        assert_eq!(
            batch.0.wakes.load(Ordering::Relaxed),
            0,
            "nothing to write yet"
        );
        batch.append(b"one\ntwo\n");
        arrives(&written, b"one\ntwo\n");
        assert_eq!(batch.0.wakes.load(Ordering::Relaxed), 1);
        // Idle: the old writer woke every 20 ms; this one stays asleep (10 polls' worth).
        std::thread::sleep(FLUSH_EVERY * 10);
        assert_eq!(batch.0.wakes.load(Ordering::Relaxed), 1, "woke while idle");
        batch.append(b"three\n");
        arrives(&written, b"one\ntwo\nthree\n");
        assert_eq!(batch.0.wakes.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_normal_stop_writes_what_is_left_once() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        let batch = Batch::start_with(move |lines| sink.lock().unwrap().extend_from_slice(lines));
        batch.append(b"last words\n");
        // Dropped at once, before the writer's batch delay is over.
        drop(FlushGuard(batch.clone()));
        assert_eq!(written.lock().unwrap().as_slice(), b"last words\n");
        // The writer, waking to an empty buffer, writes nothing twice.
        std::thread::sleep(FLUSH_EVERY * 3);
        assert_eq!(written.lock().unwrap().as_slice(), b"last words\n");
    }
}
