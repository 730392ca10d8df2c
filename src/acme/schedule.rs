//! When to ask the ACME server for a certificate: pure decisions with `now` passed in, so the
//! renewal policy is tested without a clock or a CA.

/// The validity of a certificate, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: u64,
    pub not_after: u64,
}

impl Validity {
    /// Renewal starts when a third of the lifetime remains: 30 days for Let's Encrypt's 90-day
    /// certificates (what certbot does), two days for its 6-day ones, and always early enough for
    /// the retries below to get several tries in before the end.
    pub fn renew_at(&self) -> u64 {
        let lifetime = self.not_after.saturating_sub(self.not_before);
        self.not_after - lifetime / 3
    }
}

/// The first retry after a failure comes this soon, then the wait doubles up to `MAX_RETRY_SECS`.
/// A refused connection costs the CA nothing; a failed validation counts against Let's Encrypt's
/// limit of 5 per hour, which this stays near (5 s, 10 s, … then hourly).
pub const FIRST_RETRY_SECS: u64 = 5;
pub const MAX_RETRY_SECS: u64 = 3600;

/// The wait after the `failures`-th failure in a row (1 = the first).
pub fn retry_delay(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(20);
    FIRST_RETRY_SECS
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_SECS)
}

/// When to try next: when the certificate is due (at once when there is none), but not before
/// the back-off after the last failure has passed.
pub fn next_attempt(cert: Option<Validity>, failures: u32, last_failure: Option<u64>) -> u64 {
    let due = cert.map_or(0, |cert| cert.renew_at());
    let backoff = match last_failure {
        Some(at) if failures > 0 => at.saturating_add(retry_delay(failures)),
        _ => 0,
    };
    due.max(backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86400;

    #[test]
    fn a_90_day_certificate_renews_with_30_days_left() {
        let cert = Validity {
            not_before: 1_000 * DAY,
            not_after: 1_090 * DAY,
        };
        assert_eq!(cert.renew_at(), 1_060 * DAY);
        assert_eq!(next_attempt(Some(cert), 0, None), 1_060 * DAY);
    }

    #[test]
    fn no_certificate_means_now_and_a_short_one_renews_early() {
        assert_eq!(next_attempt(None, 0, None), 0);
        let cert = Validity {
            not_before: 100,
            not_after: 130,
        };
        assert_eq!(cert.renew_at(), 120);
    }

    #[test]
    fn failures_back_off_doubling_up_to_an_hour() {
        assert_eq!(retry_delay(1), 5);
        assert_eq!(retry_delay(2), 10);
        assert_eq!(retry_delay(3), 20);
        assert_eq!(retry_delay(10), 2560);
        assert_eq!(retry_delay(11), MAX_RETRY_SECS);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_SECS);
        // No certificate: the back-off decides.
        assert_eq!(next_attempt(None, 2, Some(1_000)), 1_010);
        // Due long ago, failed a moment ago: wait out the back-off.
        let cert = Validity {
            not_before: 0,
            not_after: 90 * DAY,
        };
        assert_eq!(next_attempt(Some(cert), 1, Some(70 * DAY)), 70 * DAY + 5);
        // A failure before the certificate was due does not delay the renewal.
        assert_eq!(next_attempt(Some(cert), 1, Some(DAY)), 60 * DAY);
    }
}
