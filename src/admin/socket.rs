//! The admin socket: while the server runs it holds sled's lock on the data directory, so the
//! CLI's admin commands reach it over a Unix socket in that directory instead. The socket is
//! mode 0600: only the service's user (and root) can use it. One JSON request line in, one JSON
//! response line out.

use crate::admin::protocol::{AdminError, Request, Response};
use crate::config::Config;
use crate::store::Store;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

/// A request line is small; anything longer is not from our CLI.
const MAX_LINE: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Carries out one request on the store (`admin::execute`, given by the caller).
pub type Execute = fn(&Store, Request) -> Result<String, AdminError>;

/// Answers what only the running server knows (`--linking-log`, what it serves for
/// `--doctor`); `None` for requests the store answers.
pub type Live = std::sync::Arc<dyn Fn(&Request) -> Option<String> + Send + Sync>;

pub fn path(config: &Config) -> PathBuf {
    config.storage_path.join("admin.sock")
}

/// Binds the socket (replacing a stale one: we hold the data directory's lock, so no other
/// server can be using it) and serves it, running each request with `execute`, until the returned
/// task is aborted.
pub fn listen(
    path: &Path,
    store: Store,
    execute: Execute,
    live: Live,
) -> std::io::Result<JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let store = store.clone();
            let live = live.clone();
            tokio::spawn(async move {
                let serve = serve_one(stream, store, execute, live);
                let _ = tokio::time::timeout(TIMEOUT, serve).await;
            });
        }
    }))
}

async fn serve_one(
    stream: tokio::net::UnixStream,
    store: Store,
    execute: Execute,
    live: Live,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = tokio::io::BufReader::new(read).take(MAX_LINE as u64);
    reader.read_until(b'\n', &mut line).await?;
    let request = serde_json::from_slice::<Request>(&line);
    if let Ok(Request::Backup) = request {
        let stream = reader
            .into_inner()
            .into_inner()
            .reunite(write)
            .map_err(std::io::Error::other)?;
        return stream_backup(stream, store).await;
    }
    let answered = request.as_ref().ok().and_then(|r| live(r));
    let response = match request {
        // In the server's memory, not in the store.
        Ok(_) if answered.is_some() => Response {
            ok: true,
            message: answered.unwrap_or_default(),
        },
        Ok(request) => {
            let outcome = tokio::task::spawn_blocking(move || execute(&store, request)).await;
            match outcome {
                Ok(Ok(message)) => Response { ok: true, message },
                Ok(Err(AdminError(message))) => Response { ok: false, message },
                Err(e) => Response {
                    ok: false,
                    message: format!("the command failed: {e}"),
                },
            }
        }
        Err(e) => Response {
            ok: false,
            message: format!("unreadable admin request: {e}"),
        },
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await
}

/// Writes the response line, then the snapshot, on a blocking thread (the store is synchronous).
async fn stream_backup(stream: tokio::net::UnixStream, store: Store) -> std::io::Result<()> {
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::new(stream);
        let ok = Response {
            ok: true,
            message: "backup follows".into(),
        };
        writeln!(out, "{}", serde_json::to_string(&ok).unwrap_or_default())?;
        store.backup(&mut out).map_err(std::io::Error::other)?;
        out.flush()
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The CLI side of `--backup`: copies the streamed snapshot into `out`.
pub fn send_backup(path: &Path, out: &mut impl Write) -> Result<String, AdminError> {
    let mut reader = connect(path, &Request::Backup)?;
    read_response(&mut reader)?;
    let bytes = std::io::copy(&mut reader, out)
        .map_err(|e| AdminError(format!("reading the backup failed: {e}")))?;
    Ok(format!("{bytes} bytes, from the running server"))
}

/// The CLI side: sends one request to the running server.
pub fn send(path: &Path, request: &Request) -> Result<String, AdminError> {
    read_response(&mut connect(path, request)?)
}

/// The server's one-line answer: its message, or its error.
fn read_response(reader: &mut impl BufRead) -> Result<String, AdminError> {
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .map_err(|e| AdminError(format!("no answer from the server: {e}")))?;
    let response: Response = serde_json::from_str(&answer)
        .map_err(|e| AdminError(format!("unreadable answer from the server: {e}")))?;
    if response.ok {
        Ok(response.message)
    } else {
        Err(AdminError(response.message))
    }
}

/// Connects and sends `request`; the reader gets the answer.
fn connect(path: &Path, request: &Request) -> Result<BufReader<UnixStream>, AdminError> {
    let unreachable = |e: std::io::Error| {
        AdminError(format!(
            "the data directory is held by a running linkgate, but its admin socket {} cannot be used: {e} (run this command as the service's user, e.g. with sudo)",
            path.display()
        ))
    };
    let mut stream = UnixStream::connect(path).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    let mut line = serde_json::to_vec(request).map_err(|e| AdminError(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    Ok(BufReader::new(stream))
}
