//! The allowed range of every number in the config, each written once: the check and its
//! message both come from here.

/// The allowed range of a number in the config, written once: the check and its message both come
/// from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: u64,
    /// `u64::MAX`: no upper bound.
    pub max: u64,
    /// Read after the bounds in the message (" seconds").
    unit: &'static str,
}

impl Range {
    pub const fn new(min: u64, max: u64) -> Range {
        Range { min, max, unit: "" }
    }

    pub const fn at_least(min: u64) -> Range {
        Range::new(min, u64::MAX)
    }

    pub const fn seconds(min: u64, max: u64) -> Range {
        Range {
            min,
            max,
            unit: " seconds",
        }
    }

    pub fn contains(self, value: u64) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// Reports `key` through `problem` unless `value` is in range.
    pub(super) fn check(self, key: &str, value: u64, problem: &mut impl FnMut(&str, String)) {
        if self.contains(value) {
            return;
        }
        let (min, max, unit) = (self.min, self.max, self.unit);
        if max == u64::MAX {
            problem(key, format!("must be at least {min}{unit}"));
        } else {
            problem(key, format!("must be between {min} and {max}{unit}"));
        }
    }
}

pub const MAX_BODY_BYTES: Range = Range::new(1024, 16 * 1024 * 1024);
pub const MAX_HEADER_BYTES: Range = Range::new(8192, 1024 * 1024);
pub const HEADER_READ_TIMEOUT_SECS: Range = Range::new(1, 300);
pub const IDLE_TIMEOUT_SECS: Range = Range::new(1, 3600);
pub const BODY_READ_TIMEOUT_SECS: Range = Range::new(1, 300);
pub const MAX_CONNECTIONS: Range = Range::at_least(1);
pub const SWEEP_INTERVAL_SECS: Range = Range::new(1, 86400);
pub const CACHE_MIB: Range = Range::at_least(1);
/// PostgreSQL connections per node.
pub const POOL_SIZE: Range = Range::new(1, 1024);
/// How long a revocation through another node may take to hold on this one (0: every token
/// check asks the database).
pub const REVOCATION_BOUND_MS: Range = Range::new(0, 60_000);
/// RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED."
pub const CODE_TTL_SECS: Range = Range::seconds(1, 600);
/// Up to a year (366 days).
pub const ACCESS_TTL_SECS: Range = Range::seconds(1, 366 * 86400);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{check, GOOD};

    #[test]
    fn limits_are_checked_and_named_from_one_definition() {
        let server = |line: &str| {
            check(&GOOD.replace("[storage]", &format!("{line}\n[storage]"))).unwrap_err()
        };
        assert_eq!(
            server("max_body_bytes = 1023"),
            "key `server.max_body_bytes`: must be between 1024 and 16777216"
        );
        assert_eq!(
            server("max_connections = 0\nmax_connections_per_ip = 1"),
            "key `server.max_connections`: must be at least 1"
        );
        let err = check(&format!("{GOOD}[tokens]\ncode_ttl_secs = 601\n")).unwrap_err();
        assert_eq!(
            err,
            "key `tokens.code_ttl_secs`: must be between 1 and 600 seconds"
        );
        for (range, inside, outside) in [
            (MAX_BODY_BYTES, 16 * 1024 * 1024, 16 * 1024 * 1024 + 1),
            (CODE_TTL_SECS, 600, 0),
            (ACCESS_TTL_SECS, 366 * 86400, 366 * 86400 + 1),
            (MAX_CONNECTIONS, u64::MAX, 0),
        ] {
            assert!(range.contains(inside) && !range.contains(outside));
        }
    }
}
