//! Logs: one line per event on stderr, written in batches by a background thread.
//!
//! The server logs a line per request. Written straight to stderr, every line is a `write(2)` on
//! the request's thread, under stderr's lock: the profile showed about 7 % of the server's CPU in
//! those writes alone at 40k requests/s (BENCHMARKS.md). Here a line is appended to a shared
//! buffer (a short critical section) and a background thread writes whatever has gathered at
//! least every `FLUSH_EVERY`, in one write. Nothing is dropped: when the buffer is full (stderr is
//! not keeping up), the logger writes it out itself, as it would on a blocking stderr. The price is
//! that a SIGKILL can lose the last few milliseconds of log lines; a normal stop flushes them.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How long a line may wait in the buffer.
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
            sink: Box::new(sink),
        }))
    }

    fn start() -> Batch {
        let batch = Batch::new(to_stderr);
        let writer = batch.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                writer.flush();
            });
        if let Err(e) = spawned {
            // Without the thread, lines would only leave at a full buffer or at exit.
            eprintln!("linkgate: cannot start the log writer thread ({e}); logging may lag");
        }
        batch
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
        buffer.extend_from_slice(line);
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
}
