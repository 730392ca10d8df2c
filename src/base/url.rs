//! Absolute http(s) URLs taken apart, once for everyone: the config checks `server.public_url` and
//! redirect URIs with it, routing takes the public path from it, and the doctor connects to its
//! host and port. Deliberately minimal — `http(s)://host[:port][/path][?query][#fragment]`, no
//! user info, no whitespace — because configured URIs are compared byte for byte, never
//! normalised.

/// The parts of an absolute http(s) URL, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Url<'a> {
    pub https: bool,
    /// As written; an IPv6 literal keeps its brackets (`[::1]`).
    pub host: &'a str,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// From the first `/` after the host up to `?` or `#`: "" or "/…".
    pub path: &'a str,
    /// Whether a `?query` or `#fragment` follows.
    pub query_or_fragment: bool,
}

impl Url<'_> {
    /// The port, or the scheme's default (443, 80).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }

    /// The host without the brackets of an IPv6 literal.
    pub fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(self.host)
    }
}

/// Takes `s` apart, or `None` if it is not an absolute http(s) URL as described above.
pub fn parse(s: &str) -> Option<Url<'_>> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (https, rest) = if let Some(rest) = s.strip_prefix("https://") {
        (true, rest)
    } else {
        (false, s.strip_prefix("http://")?)
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let host = if authority.starts_with('[') {
        &authority[..authority.find(']')? + 1]
    } else {
        authority.split(':').next()?
    };
    if host.is_empty() {
        return None;
    }
    let port = match authority
        .rsplit_once(':')
        .filter(|_| !authority.ends_with(']'))
    {
        Some((_, port)) => Some(port.parse::<u16>().ok()?),
        None => None,
    };
    let after = &rest[end..];
    let path_end = after.find(['?', '#']).unwrap_or(after.len());
    Some(Url {
        https,
        host,
        port,
        path: &after[..path_end],
        query_or_fragment: path_end < after.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        let url = parse("https://auth.example.com/prefix?x#y").unwrap();
        assert_eq!(
            url,
            Url {
                https: true,
                host: "auth.example.com",
                port: None,
                path: "/prefix",
                query_or_fragment: true,
            }
        );
        assert_eq!(url.port_or_default(), 443);
        let url = parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (url.host, url.bare_host(), url.port),
            ("[::1]", "::1", Some(8080))
        );
        assert_eq!(url.path, "");
        assert_eq!(parse("http://x").unwrap().port_or_default(), 80);
    }

    #[test]
    fn what_is_not_an_absolute_http_url_is_refused() {
        for bad in [
            "ftp://x",
            "/relative",
            "https://",
            "https://user@example.com/cb",
            "https://x:port",
            "https://x:",
            "https://x:70000",
            "https://a b/",
            "https://[::1",
            "https://:443",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
