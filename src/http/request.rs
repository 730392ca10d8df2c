//! Reading what a request carries: credentials in `Authorization`, the CSRF cookie, the client's
//! address, and a size-limited body.

use crate::base::secret::Secret;
use crate::base::urlencoded;
use crate::config::TrustedProxies;
use crate::oauth::client::BasicCredentials;
use crate::oauth::OAuthError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, COOKIE};
use hyper::Request;
use std::net::{IpAddr, SocketAddr};

/// The name of the cookie that carries the CSRF token of the current form.
pub const CSRF_COOKIE: &str = "linkgate_csrf";
/// Its name over https: the `__Host-` prefix makes browsers refuse it unless it is `Secure`,
/// has `Path=/` and no `Domain`, so a sibling subdomain cannot plant one (RFC 6265bis §4.1.3.2).
pub const CSRF_COOKIE_HTTPS: &str = "__Host-linkgate_csrf";

/// The CSRF cookie's name for a server whose public URL is (or is not) https.
pub fn csrf_cookie_name(https: bool) -> &'static str {
    if https {
        CSRF_COOKIE_HTTPS
    } else {
        CSRF_COOKIE
    }
}

pub enum BodyError {
    TooLarge,
    Io,
    /// The body did not arrive within the body read deadline.
    TooSlow,
}

/// A body declared this large or less is read and thrown away after a 413, so a client that
/// writes its whole request before reading (most do) reads the 413 instead of a reset.
const DRAIN_MAX: u64 = 16 * 1024 * 1024;

/// Reads the whole body within `deadline`, refusing more than `limit` bytes (413) without
/// buffering past it.
pub async fn body(
    req: Request<Incoming>,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<Bytes, BodyError> {
    let headers = req.headers();
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A client waiting for `100 Continue` has sent nothing yet: nothing to drain.
    let expects_continue = headers.contains_key(hyper::header::EXPECT);
    let drain = !expects_continue && declared.is_none_or(|n| n <= DRAIN_MAX);
    let mut body = req.into_body();
    let read = async {
        if declared.is_some_and(|n| n > limit as u64) {
            if drain {
                discard(&mut body).await;
            }
            return Err(BodyError::TooLarge);
        }
        // A body that comes in one frame (a form that arrived with its head) is kept as it
        // came; only one in several frames is copied together.
        let (mut first, mut joined, mut size) = (None::<Bytes>, Vec::new(), 0);
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| BodyError::Io)?.into_data() else {
                continue;
            };
            size += data.len();
            if size > limit {
                if drain {
                    discard(&mut body).await;
                }
                return Err(BodyError::TooLarge);
            }
            match &first {
                None => first = Some(data),
                Some(first) => {
                    if joined.is_empty() {
                        joined.extend_from_slice(first);
                    }
                    joined.extend_from_slice(&data);
                }
            }
        }
        // Nothing joined: one frame, or only empty ones.
        Ok(match joined.is_empty() {
            true => first.unwrap_or_default(),
            false => Bytes::from(joined),
        })
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(BodyError::TooSlow))
}

/// Reads and drops the rest of a body, at most `DRAIN_MAX` bytes.
async fn discard(body: &mut Incoming) {
    let mut left = DRAIN_MAX;
    while let Some(Ok(frame)) = body.frame().await {
        let size = frame.data_ref().map_or(0, |d| d.len() as u64);
        match left.checked_sub(size) {
            Some(rest) => left = rest,
            None => return,
        }
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
    let mut client_id = String::from_utf8(decoded).map_err(|_| malformed())?;
    let colon = client_id.find(':').ok_or_else(malformed)?;
    let secret = client_id.split_off(colon + 1);
    client_id.truncate(colon);
    Ok(Some(BasicCredentials {
        client_id: urlencoded::decode_owned(client_id).map_err(|_| malformed())?,
        secret: Secret::new(urlencoded::decode_owned(secret).map_err(|_| malformed())?),
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

/// The value of the CSRF cookie called `name`, from any `Cookie` header.
pub fn csrf_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(given, _)| *given == name)
        .map(|(_, value)| value)
}

/// The client's address. Only a trusted proxy's `X-Forwarded-For` is believed (anyone can send
/// the header), and a proxy may forward what another trusted proxy (a CDN edge) appended: the
/// walk goes from the peer leftwards through the hops and stops at the first address that is not
/// a trusted proxy. Every hop trusted: the left-most. A malformed hop ends the walk at the last
/// good one, so a client cannot hide behind garbage. `Forwarded` (RFC 7239) is not read.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer.ip().to_canonical();
    if !trusted.contains(&client) {
        return client;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    return ip;
                }
            }
            None => return client,
        }
    }
    client
}

/// One `X-Forwarded-For` hop as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
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
        // The id and secret of `id:secret` (before base64).
        let basic = |plain: &str| {
            let header = format!("Basic {}", STANDARD.encode(plain));
            let creds = basic_credentials(&with_auth(&header)).unwrap().unwrap();
            (creds.client_id, creds.secret.expose().to_string())
        };
        // id "my client", secret "p@ss:w+rd%" form-encoded.
        let (id, secret) = basic("my+client:p%40ss%3Aw%2Brd%25");
        assert_eq!((id.as_str(), secret.as_str()), ("my client", "p@ss:w+rd%"));
        // Nothing to decode: split at the first colon, as it is.
        let (id, secret) = basic("alexa-skill:se:cret");
        assert_eq!((id.as_str(), secret.as_str()), ("alexa-skill", "se:cret"));
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
        assert_eq!(csrf_cookie(&headers, CSRF_COOKIE), Some("xyz"));
        assert_eq!(csrf_cookie(&headers, CSRF_COOKIE_HTTPS), None);
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = |list: &[&str]| {
            crate::config::TrustedProxies::new(
                list.iter()
                    .map(|s| crate::config::ProxyRange::parse(s).unwrap())
                    .collect(),
            )
        };
        let seen = |xff: &[&str], peer: &str, list: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in xff {
                headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
            }
            client_ip(&headers, peer.parse().unwrap(), &trusted(list)).to_string()
        };
        let nginx = ["127.0.0.1"];
        // The last hop, from a trusted proxy only.
        assert_eq!(
            seen(&["1.2.3.4, 5.6.7.8"], "127.0.0.1:9", &nginx),
            "5.6.7.8"
        );
        assert_eq!(seen(&["1.2.3.4, 5.6.7.8"], "127.0.0.1:9", &[]), "127.0.0.1");
        assert_eq!(seen(&["1.2.3.4"], "192.0.2.1:9", &nginx), "192.0.2.1");
        // A CDN edge before nginx: the first untrusted hop from the right, ranges included.
        let cdn = ["127.0.0.1", "198.51.100.0/24", "2400:cb00::/32"];
        assert_eq!(
            seen(&["203.0.113.7, 198.51.100.9"], "127.0.0.1:9", &cdn),
            "203.0.113.7"
        );
        // A forged hop the customer wrote stays left of the real one.
        assert_eq!(
            seen(
                &["10.9.9.9, 203.0.113.7, 198.51.100.9"],
                "127.0.0.1:9",
                &cdn
            ),
            "203.0.113.7"
        );
        // Over several headers, in order; ports and brackets as proxies write them.
        assert_eq!(
            seen(
                &["203.0.113.7:5555", "[2400:cb00::1]:443"],
                "127.0.0.1:9",
                &cdn
            ),
            "203.0.113.7"
        );
        assert_eq!(
            seen(&["[2001:db8::7]", "198.51.100.1"], "127.0.0.1:9", &cdn),
            "2001:db8::7"
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            seen(&["198.51.100.3, 198.51.100.4"], "127.0.0.1:9", &cdn),
            "198.51.100.3"
        );
        // Garbage ends the walk at the last good hop.
        assert_eq!(
            seen(&["203.0.113.7, junk, 198.51.100.9"], "127.0.0.1:9", &cdn),
            "198.51.100.9"
        );
        assert_eq!(seen(&["junk"], "127.0.0.1:9", &cdn), "127.0.0.1");
        assert_eq!(seen(&[], "127.0.0.1:9", &cdn), "127.0.0.1");
        // An IPv4 peer on a socket bound to [::].
        assert_eq!(
            seen(&["203.0.113.7"], "[::ffff:127.0.0.1]:9", &nginx),
            "203.0.113.7"
        );
    }
}
