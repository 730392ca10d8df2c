//! The accept loop: one task per connection, HTTP/1.1 with timeouts against slow clients, the
//! caps on open connections of `admission.rs` (and, beyond an address's share, the token
//! clients' of `vetting.rs`), one log line per request, and a graceful stop
//! that lets requests in flight finish.

use super::admission::{AddressSlot, Admission, Answered, ConnectionState, Refused};
use super::refusal::Refusals;
use super::request::client_ip;
use super::routes::route;
use super::tls::Tls;
use super::vetting;
use crate::logging;
use crate::metrics::count;
use crate::oauth::server::Server;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

/// How long a stop waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection of one listener shares.
struct Listener {
    app: Arc<Server>,
    builder: http1::Builder,
    admission: Arc<Admission>,
    refusals: Refusals,
    /// Places for connections being vetted (`vetting.rs`).
    vetting: Arc<Semaphore>,
    timeouts: Timeouts,
    stop: watch::Receiver<bool>,
    tls: Option<Arc<Tls>>,
}

/// Serves until `shutdown` completes, then drains.
pub async fn serve(
    app: Arc<Server>,
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
    let counters = app.metrics.connections.clone();
    let admission = Admission::new(
        limits.max_connections,
        limits.max_connections_per_ip,
        limits.max_client_connections_per_ip,
        counters.clone(),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Listener {
        app: app.clone(),
        builder,
        admission: admission.clone(),
        refusals: Refusals::new(counters),
        vetting: Arc::new(Semaphore::new(vetting::AT_ONCE)),
        timeouts: Timeouts {
            head: Duration::from_secs(limits.header_read_timeout_secs),
            idle: Duration::from_secs(limits.idle_timeout_secs),
        },
        stop: stop_rx,
        tls,
    });
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
        // Each answer goes out in one write: Nagle's algorithm would only hold back the last
        // segment of a longer one until the client's delayed acknowledgement.
        let _ = stream.set_nodelay(true);
        // Proxies speak for many clients: only direct clients are capped per address.
        let capped = (!app.config.trusted_proxies.contains(&peer.ip())).then_some(peer.ip());
        match admission.take_address(capped) {
            Ok(slot) => {
                tokio::spawn(shared.clone().connection(stream, peer, slot));
            }
            Err(why) => {
                let vetting = admission
                    .has_client_share()
                    .then(|| shared.vetting.clone().try_acquire_owned().ok())
                    .flatten();
                match vetting {
                    Some(place) => {
                        tokio::spawn(shared.clone().vetted(stream, peer, place));
                    }
                    None => {
                        tracing::debug!(ip = %peer.ip(), "per-address connection limit reached; answering 503");
                        let acceptor = shared.tls.as_ref().map(|tls| tls.acceptor());
                        shared.refusals.refuse(stream, acceptor, why);
                    }
                }
            }
        }
    }

    drop(listener);
    let _ = stop_tx.send(true);
    tokio::select! {
        _ = admission.all_closed() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("some connections did not finish in time"),
    }
}

impl Listener {
    /// A connection within its address's share: let in (making room if need be) and served.
    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, slot: AddressSlot) {
        let state = Arc::new(ConnectionState::default());
        let acceptor = self.tls.as_ref().map(|tls| tls.acceptor());
        let admitted = match self.admission.admit(slot, state.clone()).await {
            Ok(admitted) => admitted,
            Err(why) => {
                tracing::warn!("connection limit reached, every connection busy; answering 503");
                self.refusals.refuse_here(stream, acceptor, why).await;
                return;
            }
        };
        let shed = &admitted.tracked.shed;
        match acceptor {
            None => self.serve(stream, peer, state, shed).await,
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.timeouts.head, acceptor.accept(stream));
                let stream = tokio::select! {
                    done = handshake => done,
                    _ = shed.notified() => return,
                };
                match stream {
                    Ok(Ok(stream)) => self.serve(stream, peer, state, shed).await,
                    Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
        drop(admitted);
    }

    /// A connection beyond its address's share (`vetting.rs`): served when its first request
    /// presents valid client credentials and the clients' share has room, else answered 503.
    async fn vetted(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        place: OwnedSemaphorePermit,
    ) {
        match self.tls.as_ref().map(|tls| tls.acceptor()) {
            None => self.vet(stream, peer, place).await,
            Some(acceptor) => {
                match tokio::time::timeout(vetting::READ_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => self.vet(stream, peer, place).await,
                    _ => count(&self.admission.counters.refused_address),
                }
            }
        }
    }

    async fn vet<IO>(&self, mut stream: IO, peer: SocketAddr, place: OwnedSemaphorePermit)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let read = tokio::time::timeout(vetting::READ_TIMEOUT, vetting::first_request(&mut stream));
        let request = match read.await {
            Ok(Some(request)) => request,
            _ => {
                return self
                    .refusals
                    .refuse_read(stream, Refused::AddressFull)
                    .await
            }
        };
        let slot = match vetting::authenticates(&self.app, &request, peer.ip()).await {
            true => self.admission.take_client_address(peer.ip()).ok(),
            false => None,
        };
        drop(place);
        let Some(slot) = slot else {
            tracing::debug!(ip = %peer.ip(), "per-address connection limit reached, no client share; answering 503");
            return self
                .refusals
                .refuse_read(stream, Refused::AddressFull)
                .await;
        };
        let state = Arc::new(ConnectionState::default());
        let admitted = match self.admission.admit(slot, state.clone()).await {
            Ok(admitted) => admitted,
            Err(why) => return self.refusals.refuse_read(stream, why).await,
        };
        count(&self.admission.counters.client_share);
        let stream = vetting::Rewind::new(request.bytes, stream);
        self.serve(stream, peer, state, &admitted.tracked.shed)
            .await;
        drop(admitted);
    }

    /// Serves a connection let in, with one log line per request.
    async fn serve<IO>(
        &self,
        stream: IO,
        peer: SocketAddr,
        state: Arc<ConnectionState>,
        shed: &Notify,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let app = self.app.clone();
        let hsts = self.tls.is_some();
        let requests = state.clone();
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let app = app.clone();
            let answered = Answered::start(requests.clone());
            async move {
                let started = Instant::now();
                let method = req.method().clone();
                // A copy, not a clone of the URI: that would share the request's read buffer
                // and keep hyper from reusing it for the next request.
                let path = logging::loggable_path(req.uri().path());
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
                let status = reply.status().as_u16();
                logging::access(method.as_str(), path.as_deref(), status, latency, ip);
                drop(answered);
                Ok::<_, std::convert::Infallible>(reply)
            }
        });
        let stop = self.stop.clone();
        serve_connection(
            &self.builder,
            stream,
            service,
            stop,
            state,
            self.timeouts,
            shed,
        )
        .await
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

/// The two deadlines of a connection waiting for a request.
#[derive(Clone, Copy)]
struct Timeouts {
    /// For a request head, from its first byte (or from the connection's start).
    head: Duration,
    /// For a keep-alive connection between requests, and for a request that stops moving.
    idle: Duration,
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
    shed: &Notify,
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
    let mut shed_by: Option<Instant> = None;
    let (mut seen, mut quiet_since) = (state.activity.load(Ordering::Relaxed), Instant::now());
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            // Closed to make room for a new connection (`admission.rs`), unless it has begun a
            // request since it was picked: gracefully (an answer still being written is
            // finished), and at once after a second (a head begun and left).
            _ = shed.notified(), if shed_by.is_none() => {
                if state.in_flight.load(Ordering::Acquire) == 0 {
                    shed_by = Some(Instant::now() + Duration::from_secs(1));
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if shed_by.is_some_and(|by| now >= by) {
                    state.release_address();
                    break;
                }
                if state.in_flight.load(Ordering::Acquire) == 0 {
                    // Between requests: nothing is lost by closing, also mid-head.
                    if waiting.expired(&state, timeouts, now) {
                        state.release_address();
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
        let this = self.get_mut();
        // The address's slot goes back before the client sees the close (`admission.rs`).
        this.state.release_address();
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}
