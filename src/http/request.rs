//! Reading what a request carries: credentials in `Authorization`, the CSRF cookie, the client's
//! address, and a size-limited body.

use crate::oauth::client::BasicCredentials;
use crate::oauth::OAuthError;
use crate::secret::Secret;
use crate::urlencoded;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, COOKIE};
use hyper::Request;
use std::net::{IpAddr, SocketAddr};

/// The name of the cookie that carries the CSRF token of the current form.
pub const CSRF_COOKIE: &str = "linkgate_csrf";

pub enum BodyError {
    TooLarge,
    Io,
}

/// Reads the whole body, refusing more than `limit` bytes (413) without buffering past it.
pub async fn body(req: Request<Incoming>, limit: usize) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Io),
    }
}

fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<Result<&'a str, ()>> {
    let value = headers.get(AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(()));
    };
    let (given, rest) = value.split_once(' ').unwrap_or((value, ""));
    given.eq_ignore_ascii_case(scheme).then(|| Ok(rest.trim()))
}

/// `Authorization: Basic …` (RFC 7617), with id and secret form-decoded as RFC 6749 §2.3.1
/// requires. `Ok(None)` when there is no Basic header.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<BasicCredentials>, OAuthError> {
    let malformed = || OAuthError::InvalidClient("malformed HTTP Basic credentials".into());
    let Some(encoded) = authorization(headers, "Basic") else {
        return Ok(None);
    };
    let decoded = STANDARD
        .decode(encoded.map_err(|_| malformed())?)
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let client_id = urlencoded::decode(id.as_bytes()).map_err(|_| malformed())?;
    let secret = urlencoded::decode(secret.as_bytes()).map_err(|_| malformed())?;
    Ok(Some(BasicCredentials {
        client_id,
        secret: Secret::new(secret),
    }))
}

/// `Authorization: Bearer …` (RFC 6750 §2.1). `Err` for a header that is not a usable token.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    match authorization(headers, "Bearer") {
        None if headers.contains_key(AUTHORIZATION) => Err(OAuthError::InvalidToken(Some(
            "use the Bearer authorization scheme".into(),
        ))),
        None => Ok(None),
        Some(Ok(token)) if !token.is_empty() => Ok(Some(token)),
        Some(_) => Err(OAuthError::InvalidToken(Some(
            "malformed bearer token".into(),
        ))),
    }
}

/// The value of the CSRF cookie, from any `Cookie` header.
pub fn csrf_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value)
}

/// The client's address: the peer, or the last `X-Forwarded-For` hop when the peer is a
/// trusted proxy (only then: anyone can send the header).
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer.ip()) {
        return peer.ip();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .next_back()
        .unwrap_or(peer.ip())
}

/// Whether the body is declared as a form (RFC 6749 §3.2 requires it at `/token`). A missing
/// Content-Type is tolerated.
pub fn is_form(headers: &HeaderMap) -> bool {
    match headers.get(hyper::header::CONTENT_TYPE).map(|v| v.to_str()) {
        None => true,
        Some(Ok(value)) => value.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }),
        Some(Err(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        // id "my client", secret "p@ss:w+rd%" form-encoded, then base64.
        let encoded = STANDARD.encode("my+client:p%40ss%3Aw%2Brd%25");
        let creds = basic_credentials(&with_auth(&format!("Basic {encoded}")))
            .unwrap()
            .unwrap();
        assert_eq!(creds.client_id, "my client");
        assert_eq!(creds.secret.expose(), "p@ss:w+rd%");
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        for bad in ["Basic !!!", "Basic ", "basic Zm9v"] {
            let err = basic_credentials(&with_auth(bad)).unwrap_err();
            assert_eq!(err.code(), "invalid_client", "{bad}");
        }
        assert!(basic_credentials(&with_auth("Bearer x")).unwrap().is_none());
    }

    #[test]
    fn bearer_and_cookie() {
        assert_eq!(bearer_token(&with_auth("bearer abc")).unwrap(), Some("abc"));
        assert!(bearer_token(&with_auth("Basic abc")).is_err());
        assert!(bearer_token(&with_auth("Bearer ")).is_err());
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; linkgate_csrf=xyz; b=2"),
        );
        assert_eq!(csrf_cookie(&headers), Some("xyz"));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 5.6.7.8"),
        );
        let proxy: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let trusted = ["127.0.0.1".parse().unwrap()];
        assert_eq!(client_ip(&headers, proxy, &trusted).to_string(), "5.6.7.8");
        assert_eq!(client_ip(&headers, proxy, &[]).to_string(), "127.0.0.1");
    }
}
