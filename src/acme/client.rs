//! The HTTPS client instant-acme talks to the ACME server through: hyper's HTTP/1.1 client over
//! tokio-rustls (ring), trusting Mozilla's roots plus `server.acme.directory_ca`. Ours rather than
//! the crate's default (hyper-rustls with the platform verifier, HTTP/2, aws-lc), which would
//! add a second TLS stack and a dozen crates for a few requests every two months. One connection
//! per request, every request bounded in time and size.

use crate::base::tls_client;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// One request, connection and handshake included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// ACME answers are small JSON documents or a certificate chain.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AcmeHttp {
    tls: TlsConnector,
}

impl AcmeHttp {
    /// Mozilla's roots, plus every certificate in `extra_ca` (PEM).
    pub fn new(extra_ca: Option<&Path>) -> Result<AcmeHttp, String> {
        let roots = tls_client::roots_from(extra_ca).map_err(|e| {
            let path = extra_ca
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default();
            format!("server.acme.directory_ca{path}: {e}")
        })?;
        let config = tls_client::config(roots, true)?;
        Ok(AcmeHttp {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            let target = req.uri().to_string();
            match tokio::time::timeout(REQUEST_TIMEOUT, send(tls, req)).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(e)) => Err(Error::Other(format!("{target}: {e}").into())),
                Err(_) => Err(Error::Other(
                    format!("{target}: no answer within {REQUEST_TIMEOUT:?}").into(),
                )),
            }
        })
    }
}

async fn send(
    tls: TlsConnector,
    mut req: hyper::Request<BodyWrapper<Bytes>>,
) -> Result<BytesResponse, String> {
    let uri = req.uri().clone();
    if uri.scheme_str() != Some("https") {
        return Err("ACME runs over https only (RFC 8555 §6.1)".into());
    }
    let host = uri.host().ok_or("no host in the URL")?;
    let port = uri.port_u16().unwrap_or(443);
    let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let name = ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
    .map_err(|e| format!("bad host name: {e}"))?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let connection = tokio::spawn(connection);
    // HTTP/1.1 wants the path in the request line and the authority in Host.
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = path.parse().map_err(|e| format!("bad path: {e}"))?;
    req.headers_mut().insert(
        hyper::header::HOST,
        authority.parse().map_err(|e| format!("bad host: {e}"))?,
    );
    let result = async {
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok(BytesResponse::from(hyper::Response::from_parts(
            parts,
            Full::new(body),
        )))
    }
    .await;
    connection.abort();
    result
}
