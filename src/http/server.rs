//! The accept loop: one task per connection, HTTP/1.1 with timeouts against slow clients, a cap
//! on open connections in total and per client address (so one address cannot take every
//! slot), one log line per request, and a graceful stop that lets requests in flight finish.

use super::request::client_ip;
use super::routes::route;
use super::tls::Tls;
use crate::app::App;
use crate::logging;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How long a stop waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` completes, then drains.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = app.config.limits.clone();
    let mut builder = http1::Builder::new();
    // hyper's own header timer also runs while a keep-alive connection waits for its next
    // request, closing it at the header deadline instead of the idle one: the connection's
    // ticker keeps both deadlines instead (see `serve_connection`).
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let timeouts = Timeouts {
        head: Duration::from_secs(limits.header_read_timeout_secs),
        idle: Duration::from_secs(limits.idle_timeout_secs),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Proxies speak for many clients: only direct clients are capped per address.
        let address_slot = if app.config.trusted_proxies.contains(&peer.ip()) {
            None
        } else {
            match per_address
                .clone()
                .take(peer.ip(), limits.max_connections_per_ip)
            {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(ip = %peer.ip(), "per-address connection limit reached; closing a new connection");
                    drop(stream);
                    continue;
                }
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached; closing a new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let hsts = tls.is_some();
        let state = Arc::new(ConnectionState::default());
        let requests = state.clone();
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let app = app.clone();
            let answered = Answered::start(requests.clone());
            async move {
                let started = Instant::now();
                let method = req.method().clone();
                let uri = req.uri().clone(); // shares the request's bytes
                let ip = client_ip(req.headers(), peer, &app.config.trusted_proxies);
                let mut reply = if head_size(&req) > app.config.limits.max_header_bytes {
                    // hyper bounds its read buffer, not the head itself: count it here.
                    super::response::too_large_head()
                } else {
                    route(&app, req, peer.ip(), ip).await
                };
                if hsts {
                    // RFC 6797: only over TLS, which this server terminates itself.
                    reply.headers_mut().insert(
                        hyper::header::STRICT_TRANSPORT_SECURITY,
                        hyper::header::HeaderValue::from_static("max-age=31536000"),
                    );
                }
                let latency = started.elapsed();
                app.metrics.observe_request(latency);
                logging::access(
                    method.as_str(),
                    uri.path(),
                    reply.status().as_u16(),
                    latency,
                    ip,
                );
                drop(answered);
                Ok::<_, std::convert::Infallible>(reply)
            }
        });
        let builder = builder.clone();
        let stop = stop_rx.clone();
        let handshake_timeout = Duration::from_secs(limits.header_read_timeout_secs);
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(&builder, stream, service, stop, state, timeouts).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(&builder, stream, service, stop, state, timeouts).await
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
            drop(address_slot);
        });
    }

    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = connections.acquire_many(all) => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("some connections did not finish in time"),
    }
}

/// The size of a request's head as it came on the wire (request line and headers).
fn head_size<B>(req: &hyper::Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + req.uri().authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// Open connections per client address (IPv6 by /64, as the login throttle counts them).
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One open connection of an address; closing it gives the slot back.
struct AddressSlot {
    owner: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    fn take(self: Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let address = crate::store::address_prefix(ip);
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        drop(open);
        Some(AddressSlot {
            owner: self,
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.owner.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The two deadlines of a connection waiting for a request.
#[derive(Clone, Copy)]
struct Timeouts {
    /// For a request head, from its first byte (or from the connection's start).
    head: Duration,
    /// For a keep-alive connection between requests, and for a request that stops moving.
    idle: Duration,
}

/// What a connection's ticker reads of its I/O and its requests. Counters, not a clock
/// reading per I/O: the ticker notices when they stop moving.
#[derive(Default)]
struct ConnectionState {
    /// Reads and writes.
    activity: AtomicU64,
    /// Reads that brought bytes.
    reads: AtomicU64,
    /// Requests being answered.
    in_flight: AtomicU64,
    /// Requests answered.
    answered: AtomicU64,
    /// `reads` when the last answer was made: a read after it starts the next request's head.
    reads_at_answer: AtomicU64,
}

/// One request being answered; dropping it (also when the client goes away) counts it done.
struct Answered(Arc<ConnectionState>);

impl Answered {
    fn start(state: Arc<ConnectionState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Answered(state)
    }
}

impl Drop for Answered {
    fn drop(&mut self) {
        let state = &self.0;
        state
            .reads_at_answer
            .store(state.reads.load(Ordering::Relaxed), Ordering::Relaxed);
        state.answered.fetch_add(1, Ordering::Release);
        state.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// When a connection that waits for a request head is closed.
struct Waiting {
    since: Instant,
    first: bool,
    answered: u64,
    head_started: Option<Instant>,
}

impl Waiting {
    fn new() -> Self {
        Waiting {
            since: Instant::now(),
            first: true,
            answered: 0,
            head_started: None,
        }
    }

    /// Whether the connection has waited too long, as of `now`: a new connection has `head` for
    /// its first request head, a keep-alive one `idle` between requests and then `head` from the
    /// next head's first byte.
    fn expired(&mut self, state: &ConnectionState, timeouts: Timeouts, now: Instant) -> bool {
        let answered = state.answered.load(Ordering::Acquire);
        if answered != self.answered {
            *self = Waiting {
                since: now,
                first: false,
                answered,
                head_started: None,
            };
        }
        let base = if self.first {
            0
        } else {
            state.reads_at_answer.load(Ordering::Relaxed)
        };
        if state.reads.load(Ordering::Relaxed) > base {
            self.head_started.get_or_insert(now);
        }
        let deadline = match (self.first, self.head_started) {
            (true, _) => self.since + timeouts.head,
            (false, Some(started)) => started + timeouts.head,
            (false, None) => self.since + timeouts.idle,
        };
        now >= deadline
    }
}

/// Serves one connection until it ends, closing it gracefully when the server stops or when a
/// request stops moving for `idle`, and closing it when it waits too long for a request head.
async fn serve_connection<IO, S>(
    builder: &http1::Builder,
    stream: IO,
    service: S,
    mut stop: watch::Receiver<bool>,
    state: Arc<ConnectionState>,
    timeouts: Timeouts,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<
        hyper::body::Incoming,
        ResBody = http_body_util::Full<hyper::body::Bytes>,
    >,
{
    let io = ActivityIo {
        stream,
        state: state.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    let step = Duration::from_millis(500)
        .min(timeouts.head)
        .min(timeouts.idle);
    let mut tick = tokio::time::interval(step);
    let mut waiting = Waiting::new();
    let (mut seen, mut quiet_since) = (state.activity.load(Ordering::Relaxed), Instant::now());
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if state.in_flight.load(Ordering::Acquire) == 0 {
                    // Between requests: nothing is lost by closing, also mid-head.
                    if waiting.expired(&state, timeouts, now) {
                        break;
                    }
                    continue;
                }
                let activity = state.activity.load(Ordering::Relaxed);
                if activity != seen {
                    (seen, quiet_since) = (activity, now);
                } else if !closing && now.duration_since(quiet_since) >= timeouts.idle {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A TCP stream that counts its reads and writes for its connection's ticker (hyper 1.x has no
/// idle timeout of its own). Wraps plain TCP or TLS.
struct ActivityIo<IO> {
    stream: IO,
    state: Arc<ConnectionState>,
}

/// Adds one to a counter only this connection's I/O writes: a plain load and store is enough.
fn bump(counter: &AtomicU64) {
    let count = counter.load(Ordering::Relaxed);
    counter.store(count.wrapping_add(1), Ordering::Relaxed);
}

impl<IO: AsyncRead + Unpin> AsyncRead for ActivityIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            bump(&this.state.activity);
            bump(&this.state.reads);
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ActivityIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        bump(&this.state.activity);
        Pin::new(&mut this.stream).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
