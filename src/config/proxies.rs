//! `server.trusted_proxies`: the reverse proxies and CDN edges whose `X-Forwarded-For` is
//! believed, as single addresses (`127.0.0.1`, `::1`) or CIDR ranges (`173.245.48.0/20`,
//! `2400:cb00::/32`). An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, what a socket bound to
//! `[::]` reports for an IPv4 peer) counts as its IPv4 address.

use std::fmt;
use std::net::IpAddr;

/// One address or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange {
    network: IpAddr,
    prefix: u8,
}

impl ProxyRange {
    /// `addr` or `addr/prefix`, with no bits set after the prefix.
    pub fn parse(text: &str) -> Result<ProxyRange, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .trim_matches(['[', ']'])
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR range (e.g. \"127.0.0.1\", \"10.0.0.0/8\", \"2400:cb00::/32\")"))?;
        let network = network.to_canonical();
        let max = bits(network);
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(format!(
                        "`{text}`: the prefix length must be a number from 0 to {max}"
                    ))
                }
            },
        };
        let range = ProxyRange { network, prefix };
        let masked = range.masked(network);
        if masked != network {
            return Err(format!(
                "`{text}` has bits set after the /{prefix} prefix: did you mean {masked}/{prefix}?"
            ));
        }
        Ok(range)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }

    /// `ip` with the bits after the prefix cleared.
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
        }
    }
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

impl fmt::Display for ProxyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == bits(self.network) {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

/// The validated list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ProxyRange>);

impl TrustedProxies {
    pub fn new(ranges: Vec<ProxyRange>) -> TrustedProxies {
        TrustedProxies(ranges)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(*ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn ranges(&self) -> &[ProxyRange] {
        &self.0
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(ProxyRange::to_string).collect();
        write!(f, "{}", list.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_ranges_of_both_families() {
        let list = TrustedProxies::new(
            ["127.0.0.1", "10.0.0.0/8", "2400:cb00::/32", "::1"]
                .iter()
                .map(|s| ProxyRange::parse(s).unwrap())
                .collect(),
        );
        assert!(list.contains(&ip("127.0.0.1")));
        assert!(!list.contains(&ip("127.0.0.2")));
        assert!(list.contains(&ip("10.255.1.2")));
        assert!(!list.contains(&ip("11.0.0.1")));
        assert!(list.contains(&ip("2400:cb00:1::7")));
        assert!(!list.contains(&ip("2400:cb01::7")));
        assert!(list.contains(&ip("::1")));
        // An IPv4 peer on a socket bound to [::].
        assert!(list.contains(&ip("::ffff:10.1.2.3")));
        assert!(!list.contains(&ip("::ffff:11.1.2.3")));
        assert_eq!(
            list.to_string(),
            "127.0.0.1, 10.0.0.0/8, 2400:cb00::/32, ::1"
        );
        let everything = ProxyRange::parse("0.0.0.0/0").unwrap();
        assert!(everything.contains(ip("203.0.113.7")));
        assert!(!everything.contains(ip("2001:db8::1")));
        assert!(ProxyRange::parse("::/0")
            .unwrap()
            .contains(ip("2001:db8::1")));
        assert_eq!(
            ProxyRange::parse("127.0.0.8/29").unwrap().to_string(),
            "127.0.0.8/29"
        );
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (bad, says) in [
            ("127.0.0.1/29", "did you mean 127.0.0.0/29"),
            ("10.0.0.0/33", "0 to 32"),
            ("2400:cb00::/129", "0 to 128"),
            ("10.0.0.0/x", "0 to 32"),
            ("localhost", "not an IP address"),
            ("10.0.0/8", "not an IP address"),
            ("", "not an IP address"),
        ] {
            let err = ProxyRange::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
