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
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs))
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let idle = Duration::from_secs(limits.idle_timeout_secs);
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
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let app = app.clone();
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
                Ok::<_, std::convert::Infallible>(reply)
            }
        });
        let builder = builder.clone();
        let stop = stop_rx.clone();
        let handshake_timeout = Duration::from_secs(limits.header_read_timeout_secs);
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(&builder, stream, service, stop, idle).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(&builder, stream, service, stop, idle).await
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

/// Serves one connection until it ends, closing it gracefully when the server stops or when it
/// has been idle for `idle`.
async fn serve_connection<IO, S>(
    builder: &http1::Builder,
    stream: IO,
    service: S,
    mut stop: watch::Receiver<bool>,
    idle: Duration,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<
        hyper::body::Incoming,
        ResBody = http_body_util::Full<hyper::body::Bytes>,
    >,
{
    let io = ActivityIo::new(stream);
    let activity = io.activity.clone();
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(idle));
    let (mut seen, mut quiet_since) = (activity.load(Ordering::Relaxed), Instant::now());
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick(), if !closing => {
                let now = activity.load(Ordering::Relaxed);
                if now != seen {
                    (seen, quiet_since) = (now, Instant::now());
                } else if quiet_since.elapsed() >= idle {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A TCP stream that counts its reads and writes, so idle keep-alive connections can be closed
/// (hyper 1.x has no idle timeout of its own). Wraps plain TCP or TLS. A counter, not a clock
/// reading per I/O: the connection's ticker notices when it stops moving.
struct ActivityIo<IO> {
    stream: IO,
    activity: Arc<AtomicU64>,
}

impl<IO> ActivityIo<IO> {
    fn new(stream: IO) -> Self {
        ActivityIo {
            stream,
            activity: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        // Only this connection's I/O writes it: a plain load and store is enough.
        let count = self.activity.load(Ordering::Relaxed);
        self.activity
            .store(count.wrapping_add(1), Ordering::Relaxed);
    }
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
            this.touch();
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
        this.touch();
        Pin::new(&mut this.stream).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
