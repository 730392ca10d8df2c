//! The answer to a connection over the caps (`admission.rs`): `503` with `Retry-After`, logged
//! and counted, never a silent close — Alexa and Google take a closed connection for a network
//! fault, at the worst moment, and unlink customers after repeated token failures. At most
//! `AT_ONCE` refusals are answered at a time (a flood of them costs a bounded amount); past
//! that a connection is closed unanswered, and counted as such.

use super::admission::Refused;
use crate::metrics::{count, ConnectionCounters};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Refusals being answered at once, at most.
const AT_ONCE: usize = 64;
/// How long answering one may take in all (TLS handshake, the request's head, the answer).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// The most of a refused request that is read (so closing does not reset the connection
/// before the client has read the answer).
const READ_AT_MOST: usize = 16 * 1024;

const BODY: &str = "too many connections; retry in a second\n";

/// The refusals of one listener.
pub struct Refusals {
    slots: Arc<Semaphore>,
    counters: Arc<ConnectionCounters>,
}

impl Refusals {
    pub fn new(counters: Arc<ConnectionCounters>) -> Self {
        Refusals {
            slots: Arc::new(Semaphore::new(AT_ONCE)),
            counters,
        }
    }

    /// Counts the refusal and answers it on a task of its own.
    pub fn refuse(&self, stream: TcpStream, tls: Option<TlsAcceptor>, why: Refused) {
        if let Some(slot) = self.take(why) {
            tokio::spawn(answer(stream, tls, slot));
        }
    }

    /// Counts the refusal and answers it on the caller's task.
    pub async fn refuse_here(&self, stream: TcpStream, tls: Option<TlsAcceptor>, why: Refused) {
        if let Some(slot) = self.take(why) {
            answer(stream, tls, slot).await;
        }
    }

    /// Counts the refusal of a connection whose first request was read (`vetting.rs`) and
    /// answers it on the caller's task.
    pub async fn refuse_read<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S, why: Refused) {
        if let Some(slot) = self.take(why) {
            let _ = tokio::time::timeout(ANSWER_TIMEOUT, send(stream, false)).await;
            drop(slot);
        }
    }

    fn take(&self, why: Refused) -> Option<OwnedSemaphorePermit> {
        match why {
            Refused::AddressFull => count(&self.counters.refused_address),
            Refused::Full => count(&self.counters.refused_busy),
        }
        let slot = self.slots.clone().try_acquire_owned().ok();
        if slot.is_none() {
            count(&self.counters.refused_silently);
        }
        slot
    }
}

async fn answer(stream: TcpStream, tls: Option<TlsAcceptor>, slot: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, async move {
        match tls {
            None => send(stream, true).await,
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(stream) => send(stream, true).await,
                Err(e) => Err(e),
            },
        }
    })
    .await;
    drop(slot);
}

/// Reads the request's head (bounded; unless it was read already), writes the 503, and closes
/// after the client has had it.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    read_head: bool,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let wait = Duration::from_millis(500);
    while read_head && head.len() < READ_AT_MOST && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await?;
    // Whatever else the client sends is read and dropped until it closes (the caller's timeout
    // bounds this).
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    Ok(())
}
