//! Token clients beyond their address's share. Alexa's and Google's token calls come from a few
//! egress addresses with many parallel connections; a customer's browser never needs more than a
//! handful. So a connection from an address that already holds `max_connections_per_ip` is not
//! refused at once: its first request is read (bounded in size and time), and when it is a
//! `POST` to `/token`, `/introspect` or `/revoke` whose client credentials are valid (checked,
//! and counted by the guessing throttle, like any other), the connection takes a place in the
//! address's second share, `max_client_connections_per_ip`, and is served — its first request
//! replayed to hyper from the bytes read here. Anything else gets the 503 of `refusal.rs`.

use super::request::basic_credentials;
use crate::base::urlencoded::Params;
use crate::oauth::client::{authenticate, Caller};
use crate::oauth::server::Server;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Connections being vetted at once, at most (past that: the 503).
pub const AT_ONCE: usize = 256;
/// How long the first request may take to arrive in whole.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a first request read (a token request is a few hundred bytes).
const READ_AT_MOST: usize = 8 * 1024;

/// The paths whose requests carry client credentials.
const CLIENT_PATHS: [&str; 3] = ["/token", "/introspect", "/revoke"];

/// A connection's first request as read.
pub struct FirstRequest {
    /// Every byte read, to be replayed.
    pub bytes: Vec<u8>,
    authorization: Option<HeaderValue>,
    body: Vec<u8>,
}

/// Reads the first request: `None` when it is not a whole `POST` to a client path within
/// `READ_AT_MOST` bytes (or the stream ends or fails first). The caller bounds the time.
pub async fn first_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<FirstRequest> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&bytes) {
            Ok(httparse::Status::Complete(head_len)) => {
                let (authorization, body_len) = client_request(&request)?;
                let total = head_len.checked_add(body_len)?;
                if total > READ_AT_MOST {
                    return None;
                }
                while bytes.len() < total {
                    let n = stream.read(&mut buf).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    bytes.extend_from_slice(&buf[..n]);
                }
                let body = bytes.get(head_len..total)?.to_vec();
                return Some(FirstRequest {
                    bytes,
                    authorization,
                    body,
                });
            }
            Ok(httparse::Status::Partial) if bytes.len() < READ_AT_MOST => {
                let n = stream.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                bytes.extend_from_slice(&buf[..n]);
            }
            _ => return None,
        }
    }
}

/// For a `POST` to a client path with a plain body: its `Authorization` header and the body's
/// length.
fn client_request(request: &httparse::Request) -> Option<(Option<HeaderValue>, usize)> {
    let path = request.path?.split('?').next()?;
    if request.method? != "POST" || !CLIENT_PATHS.contains(&path) {
        return None;
    }
    let (mut authorization, mut length) = (None, None);
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        } else if header.name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return None;
            }
            length = Some(
                std::str::from_utf8(header.value)
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?,
            );
        } else if header.name.eq_ignore_ascii_case("authorization") {
            authorization = Some(HeaderValue::from_bytes(header.value).ok()?);
        }
    }
    Some((authorization, length.unwrap_or(0)))
}

/// Whether the request presents valid client credentials (a failure counts against the
/// guessing throttle as at `/token`).
pub async fn authenticates(app: &Server, request: &FirstRequest, ip: IpAddr) -> bool {
    let mut headers = HeaderMap::new();
    if let Some(value) = &request.authorization {
        headers.insert(AUTHORIZATION, value.clone());
    }
    let Ok(basic) = basic_credentials(&headers) else {
        return false;
    };
    let Ok(params) = Params::parse(&request.body) else {
        return false;
    };
    authenticate(app, &params, &Caller { basic, ip })
        .await
        .is_ok()
}

/// A stream whose first bytes are the ones already read from it.
pub struct Rewind<IO> {
    read: Vec<u8>,
    at: usize,
    stream: IO,
}

impl<IO> Rewind<IO> {
    pub fn new(read: Vec<u8>, stream: IO) -> Self {
        Rewind {
            read,
            at: 0,
            stream,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.read.len() {
            let n = (this.read.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.read[this.at..this.at + n]);
            this.at += n;
            if this.at == this.read.len() {
                this.read = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(input: &[u8]) -> Option<FirstRequest> {
        let mut input = input;
        first_request(&mut input).await
    }

    #[tokio::test]
    async fn a_token_request_is_read_whole_with_its_credentials() {
        let raw = b"POST /token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\nContent-Length: 18\r\n\r\ngrant_type=refreshGET / HTTP/1.1";
        let request = read(raw).await.expect("a token request");
        assert_eq!(request.body, b"grant_type=refresh");
        assert_eq!(request.authorization.unwrap(), "Basic YTpi");
        assert!(request.bytes.starts_with(b"POST /token"));
    }

    #[tokio::test]
    async fn anything_else_is_not_vetted() {
        for raw in [
            &b"GET /token HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST /login HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"POST /token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /token HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            b"POST /token HTTP/1.1\r\nContent-Length: 99999\r\n\r\n",
            b"POST /token HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
            b"POST /tok",
            b"\x16\x03\x01 not http",
        ] {
            assert!(
                read(raw).await.is_none(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[tokio::test]
    async fn rewind_replays_then_reads_on() {
        let rest: &[u8] = b" world";
        let mut stream = Rewind::new(b"hello".to_vec(), rest);
        let mut all = String::new();
        stream.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}
