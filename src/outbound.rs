//! One outgoing HTTP(S) call at a time, for the rare calls linking from the operator's app makes
//! (the operator's session API, Login with Amazon, the Alexa skill enablement API): a fresh
//! connection per call (these run once per link, so there is nothing worth pooling), TLS with
//! webpki's Mozilla roots, plain http only to a loopback address, a hard deadline for the whole
//! call, redirects never followed, answers capped at `MAX_ANSWER_BYTES`. Header values are
//! marked sensitive; `Fault`'s `Display` says what went wrong, never what was sent.

use crate::base::tls_client;
use crate::config::{is_loopback_host, Target};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls::{pki_types::ServerName, ClientConfig};
use tokio_rustls::TlsConnector;

/// Answers larger than this are refused.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A request to send.
pub struct Call<'a> {
    pub method: hyper::Method,
    pub target: &'a Target,
    /// Extra headers; values are secrets (tokens) and never logged.
    pub headers: Vec<(&'static str, String)>,
    /// The body and its content type.
    pub body: Option<(Vec<u8>, &'static str)>,
    pub timeout: Duration,
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Why there is no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Timeout,
    Connect(String),
    Tls(String),
    TooLarge,
    Broken(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Timeout => write!(f, "no answer in time"),
            Fault::Connect(e) => write!(f, "cannot connect: {e}"),
            Fault::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Fault::TooLarge => write!(f, "the answer is larger than {MAX_ANSWER_BYTES} bytes"),
            Fault::Broken(e) => write!(f, "the connection broke: {e}"),
        }
    }
}

/// Sends `call` and reads the whole answer, within `call.timeout`.
pub async fn send(call: Call<'_>) -> Result<Answer, Fault> {
    let timeout = call.timeout;
    match tokio::time::timeout(timeout, exchange(call)).await {
        Ok(result) => result,
        Err(_) => Err(Fault::Timeout),
    }
}

async fn exchange(call: Call<'_>) -> Result<Answer, Fault> {
    let target = call.target;
    let mut builder = hyper::Request::builder()
        .method(call.method)
        .uri(target.path.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::ACCEPT, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("linkgate/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in call.headers {
        let mut value = hyper::header::HeaderValue::from_str(&value)
            .map_err(|_| Fault::Connect(format!("the {name} header value is not valid")))?;
        value.set_sensitive(true);
        builder = builder.header(name, value);
    }
    let body = match call.body {
        Some((bytes, content_type)) => {
            builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
            Bytes::from(bytes)
        }
        None => Bytes::new(),
    };
    let request = builder
        .body(Full::new(body))
        .map_err(|e| Fault::Connect(format!("cannot build the request: {e}")))?;
    let tcp = connect(target).await?;
    let response = match target.https {
        true => {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| Fault::Connect(format!("`{}`: {e}", target.host)))?;
            let stream = tls()?
                .connect(name, tcp)
                .await
                .map_err(|e| Fault::Tls(e.to_string()))?;
            round_trip(stream, request).await?
        }
        false => round_trip(tcp, request).await?,
    };
    Ok(response)
}

async fn round_trip<S>(stream: S, request: hyper::Request<Full<Bytes>>) -> Result<Answer, Fault>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Fault::Connect(format!("HTTP handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Fault::Broken(e.to_string()))?;
    let status = response.status().as_u16();
    let body = match Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(Fault::TooLarge)
        }
        Err(e) => return Err(Fault::Broken(e.to_string())),
    };
    Ok(Answer { status, body })
}

/// DNS, then TCP to the first address that answers. Plain http only where the name leads to
/// this machine.
async fn connect(target: &Target) -> Result<TcpStream, Fault> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| Fault::Connect(format!("cannot resolve {}: {e}", target.host)))?
        .take(4)
        .collect();
    if !target.https
        && (!is_loopback_host(&target.host) || addresses.iter().any(|a| !a.ip().is_loopback()))
    {
        return Err(Fault::Connect(format!(
            "{} is not a loopback address; plain http is refused",
            target.host
        )));
    }
    let mut last = format!("{} resolves to no address", target.host);
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = format!("{address}: {e}"),
        }
    }
    Err(Fault::Connect(last))
}

/// One TLS client configuration for the process (webpki roots).
fn tls() -> Result<TlsConnector, Fault> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let config = tls_client::config(tls_client::roots([])?, true)?;
        Ok(Arc::new(config))
    });
    match config {
        Ok(config) => Ok(TlsConnector::from(config.clone())),
        Err(e) => Err(Fault::Tls(e.clone())),
    }
}
