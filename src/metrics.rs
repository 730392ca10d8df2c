//! Counters for `/metrics` (Prometheus text format): sign-ins, codes, token grants by type and
//! outcome, and request latency. Plain atomics: cheap enough to count on every request.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
pub struct Metrics {
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_refused: AtomicU64,
    /// Sign-ins the login API could not check (it was down, slow or answered nonsense).
    pub logins_unavailable: AtomicU64,
    /// The login API's failures by reason (`login_api::Failure::REASONS`).
    login_api_failures: [AtomicU64; LOGIN_API_REASONS.len()],
    pub codes_issued: AtomicU64,
    /// Of `codes_issued`, those the operator's app asked for (`/app/authorize`, `/app/alexa/finish`).
    pub app_codes_issued: AtomicU64,
    /// Alexa app-to-app enablements (`/app/alexa/finish`) by outcome, and unlinks.
    pub alexa_linked: AtomicU64,
    pub alexa_already_linked: AtomicU64,
    pub alexa_failed: AtomicU64,
    pub alexa_unlinked: AtomicU64,
    pub code_grants_ok: AtomicU64,
    pub code_grants_failed: AtomicU64,
    pub refresh_grants_ok: AtomicU64,
    pub refresh_grants_failed: AtomicU64,
    pub service_grants_ok: AtomicU64,
    pub service_grants_failed: AtomicU64,
    /// `[login.api] check_url`: customer checks on refresh by outcome.
    pub customer_checks_exists: AtomicU64,
    pub customer_checks_gone: AtomicU64,
    pub customer_checks_unavailable: AtomicU64,
    /// `[server.acme]`: certificate orders by outcome, and the served certificate's end.
    pub acme_orders_ok: AtomicU64,
    pub acme_orders_failed: AtomicU64,
    pub acme_certificate_not_after: AtomicU64,
    /// The main listener's connections refused (over the cap) or closed to make room.
    pub connections: Arc<ConnectionCounters>,
    requests: AtomicU64,
    latency_micros_sum: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
}

/// What the connection caps did (`http/admission.rs`).
#[derive(Default)]
pub struct ConnectionCounters {
    /// Its address already held its share: answered 503.
    pub refused_address: AtomicU64,
    /// Every slot was answering a request: answered 503.
    pub refused_busy: AtomicU64,
    /// Refused without an answer (too many refusals at once).
    pub refused_silently: AtomicU64,
    /// Waiting connections closed to make room for a new one.
    pub shed: AtomicU64,
    /// Let in beyond their address's share for presenting client credentials (`vetting.rs`).
    pub client_share: AtomicU64,
}

/// The `reason` labels of `linkgate_login_api_unavailable_total`.
const LOGIN_API_REASONS: [&str; 10] = crate::login_api::Failure::REASONS;

pub fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts a login API failure; `reason` indexes `login_api::Failure::REASONS`.
    pub fn login_api_unavailable(&self, reason: usize) {
        if let Some(counter) = self.login_api_failures.get(reason) {
            count(counter);
        }
    }

    pub fn observe_request(&self, latency: Duration) {
        count(&self.requests);
        self.latency_micros_sum
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
        // One bucket per request (the first bound it is within); `render` adds them up.
        let secs = latency.as_secs_f64();
        if let Some(at) = BUCKETS.iter().position(|bound| secs <= *bound) {
            count(&self.latency_buckets[at]);
        }
    }

    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, series: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in series {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        counter(
            "linkgate_logins_total",
            "Sign-in attempts by outcome.",
            &[
                ("{outcome=\"ok\"}", get(&self.logins_ok)),
                ("{outcome=\"failed\"}", get(&self.logins_failed)),
                ("{outcome=\"refused\"}", get(&self.logins_refused)),
                ("{outcome=\"unavailable\"}", get(&self.logins_unavailable)),
            ],
        );
        let reasons: Vec<(String, u64)> = LOGIN_API_REASONS
            .iter()
            .zip(&self.login_api_failures)
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), get(n)))
            .collect();
        let reasons: Vec<(&str, u64)> = reasons.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        counter(
            "linkgate_login_api_unavailable_total",
            "Sign-ins the login API could not check, by reason.",
            &reasons,
        );
        counter(
            "linkgate_codes_issued_total",
            "Authorization codes issued.",
            &[("", get(&self.codes_issued))],
        );
        counter(
            "linkgate_app_codes_issued_total",
            "Authorization codes issued to the operator's app (app-to-app, App Flip).",
            &[("", get(&self.app_codes_issued))],
        );
        counter(
            "linkgate_alexa_app_links_total",
            "Alexa app-to-app links started in the operator's app, by outcome.",
            &[
                ("{outcome=\"linked\"}", get(&self.alexa_linked)),
                (
                    "{outcome=\"already_linked\"}",
                    get(&self.alexa_already_linked),
                ),
                ("{outcome=\"error\"}", get(&self.alexa_failed)),
                ("{outcome=\"unlinked\"}", get(&self.alexa_unlinked)),
            ],
        );
        counter(
            "linkgate_token_grants_total",
            "Token endpoint grants by type and outcome.",
            &[
                (
                    "{grant_type=\"authorization_code\",outcome=\"ok\"}",
                    get(&self.code_grants_ok),
                ),
                (
                    "{grant_type=\"authorization_code\",outcome=\"error\"}",
                    get(&self.code_grants_failed),
                ),
                (
                    "{grant_type=\"refresh_token\",outcome=\"ok\"}",
                    get(&self.refresh_grants_ok),
                ),
                (
                    "{grant_type=\"refresh_token\",outcome=\"error\"}",
                    get(&self.refresh_grants_failed),
                ),
                (
                    "{grant_type=\"client_credentials\",outcome=\"ok\"}",
                    get(&self.service_grants_ok),
                ),
                (
                    "{grant_type=\"client_credentials\",outcome=\"error\"}",
                    get(&self.service_grants_failed),
                ),
            ],
        );
        counter(
            "linkgate_customer_checks_total",
            "Login API customer checks on refresh ([login.api] check_url) by outcome.",
            &[
                ("{outcome=\"exists\"}", get(&self.customer_checks_exists)),
                ("{outcome=\"gone\"}", get(&self.customer_checks_gone)),
                (
                    "{outcome=\"unavailable\"}",
                    get(&self.customer_checks_unavailable),
                ),
            ],
        );
        counter(
            "linkgate_acme_orders_total",
            "ACME certificate orders ([server.acme]) by outcome.",
            &[
                ("{outcome=\"ok\"}", get(&self.acme_orders_ok)),
                ("{outcome=\"error\"}", get(&self.acme_orders_failed)),
            ],
        );
        let connections = &self.connections;
        counter(
            "linkgate_connections_refused_total",
            "New connections refused with 503 (or, when too many at once, closed), by reason.",
            &[
                (
                    "{reason=\"per_address\"}",
                    get(&connections.refused_address),
                ),
                ("{reason=\"busy\"}", get(&connections.refused_busy)),
                (
                    "{reason=\"unanswered\"}",
                    get(&connections.refused_silently),
                ),
            ],
        );
        counter(
            "linkgate_connections_shed_total",
            "Waiting (silent or idle) connections closed to make room for a new one.",
            &[("", get(&connections.shed))],
        );
        counter(
            "linkgate_connections_client_share_total",
            "Connections let in beyond their address's share because their first request presented valid client credentials.",
            &[("", get(&connections.client_share))],
        );
        let not_after = get(&self.acme_certificate_not_after);
        if not_after > 0 {
            let name = "linkgate_acme_certificate_expiry_timestamp_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} When the ACME certificate served now expires.\n# TYPE {name} gauge\n{name} {not_after}"
            );
        }
        let name = "linkgate_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP request latency.\n# TYPE {name} histogram"
        );
        let mut within = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            within += get(bucket);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {within}");
        }
        // Read last, and never below the buckets (a request counted in between).
        let total = get(&self.requests).max(within);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = get(&self.latency_micros_sum) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histogram() {
        let metrics = Metrics::default();
        count(&metrics.logins_ok);
        metrics.observe_request(Duration::from_millis(3));
        metrics.observe_request(Duration::from_micros(100));
        metrics.observe_request(Duration::from_secs(3));
        let text = metrics.render();
        assert!(text.contains("linkgate_logins_total{outcome=\"ok\"} 1"));
        // Buckets are cumulative: each counts the requests within its bound.
        assert!(text.contains("linkgate_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("linkgate_request_duration_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(text.contains("linkgate_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("linkgate_request_duration_seconds_bucket{le=\"2.5\"} 2"));
        assert!(text.contains("linkgate_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("linkgate_request_duration_seconds_count 3"));
    }
}
