//! Why a link failed, for the operator (issue 23). Every refusal of the linking flow — a page
//! at `/authorize`, a failed sign-in or consent, a 4xx from `/token`, `/userinfo`,
//! `/introspect`, `/revoke` — gets a short reference id (shown to the customer and sent as the
//! `X-Linkgate-Reference` header) and one `info` line under the target `linkgate::linking` with
//! the client, the step, the OAuth error and a reason in words. Never a secret, a code or a
//! token: reasons are built from what the server knows about them, not from their values.
//!
//! The lines are rate-limited per step and error (a stranger's flood cannot flood the log; what
//! is dropped is counted in `/metrics`). The last `KEPT` refusals and successes of each
//! configured client are kept in memory for `linkgate --linking-log` (over the admin socket);
//! every unknown client id shares one such ring, so strangers cannot grow it. Kept in memory
//! only: a restart starts an empty log, and each node of several keeps its own.

use crate::base::secret;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Events kept per configured client (and for all unknown client ids together).
pub const KEPT: usize = 200;
/// Lines per step and error at once, refilled at `REFILL_PER_SEC`.
const BURST: f64 = 20.0;
const REFILL_PER_SEC: f64 = 2.0;
/// The longest reason kept or logged.
const MAX_REASON: usize = 600;

/// Where in the linking flow something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Authorize,
    SignIn,
    Consent,
    CodeExchange,
    Refresh,
    ClientCredentials,
    Token,
    Userinfo,
    Introspect,
    Revoke,
    /// The `/app/*` endpoints of app-to-app linking.
    App,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Authorize => "authorize",
            Step::SignIn => "sign-in",
            Step::Consent => "consent",
            Step::CodeExchange => "code exchange",
            Step::Refresh => "refresh",
            Step::ClientCredentials => "client credentials",
            Step::Token => "token",
            Step::Userinfo => "userinfo",
            Step::Introspect => "introspect",
            Step::Revoke => "revoke",
            Step::App => "app",
        }
    }
}

/// A short id tying what the customer (or the client) saw to the log line: `7KQ2-MX4P`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference(String);

impl Reference {
    fn new() -> Reference {
        // Crockford's base32 without I, L, O, U: read aloud or typed from a phone screen.
        const DIGITS: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let bytes: [u8; 5] = secret::random_bytes();
        let bits = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars: String = (0..8)
            .map(|i| char::from(DIGITS[((bits >> (35 - 5 * i)) & 31) as usize]))
            .collect();
        Reference(format!("{}-{}", &chars[..4], &chars[4..]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One thing that happened, for `--linking-log`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Unix seconds.
    pub at: u64,
    pub client: String,
    pub step: Step,
    /// `ok`, or the error (`invalid_grant`, `unknown_client`, `wrong_password`, …).
    pub outcome: String,
    pub reason: String,
    pub reference: Option<String>,
}

#[derive(Default)]
pub struct LinkingLog {
    inner: Mutex<Inner>,
    /// Lines not written because their step and error were over the rate.
    pub dropped: AtomicU64,
    /// Lines written.
    pub logged: AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// Per configured client id; `None` for every other.
    events: HashMap<Option<String>, VecDeque<Event>>,
    buckets: HashMap<(Step, String), Bucket>,
    /// Per configured client id: successes by step, how many and the last one's time. A
    /// refresh is only counted here (Alexa refreshes all day: kept one by one they would push
    /// the refusals out of the ring, and cost the hot path an allocation each).
    tallies: HashMap<String, Vec<Tally>>,
}

/// How many times a client succeeded at a step since the server started, and when last.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub step: Step,
    pub count: u64,
    pub last_at: u64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl LinkingLog {
    /// Records and logs a refusal; the reference to show. `client` is the id as given (`None`
    /// when there was none), `known` whether it is configured.
    pub fn refused(
        &self,
        step: Step,
        client: Option<&str>,
        known: bool,
        error: &str,
        reason: &str,
    ) -> Reference {
        let reference = Reference::new();
        let reason = bounded(reason);
        let shown = client.map_or_else(|| "(none)".to_string(), printable);
        let mut inner = self.lock();
        if inner.take_line(step, error) {
            self.logged.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                target: "linkgate::linking",
                client = %shown,
                step = step.name(),
                error,
                reference = %reference,
                "link refused: {reason}"
            );
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        inner.keep(
            known.then(|| client.unwrap_or_default().to_string()),
            Event {
                at: crate::store::now(),
                client: shown,
                step,
                outcome: error.to_string(),
                reason,
                reference: Some(reference.to_string()),
            },
        );
        reference
    }

    /// Records a success of a configured client (not logged: the access log has the request):
    /// counted, and kept as an event unless it is a refresh.
    pub fn succeeded(&self, step: Step, client: &str, detail: &str) {
        let now = crate::store::now();
        let mut inner = self.lock();
        let tallies = match inner.tallies.get_mut(client) {
            Some(tallies) => tallies,
            None => inner.tallies.entry(client.to_string()).or_default(),
        };
        match tallies.iter_mut().find(|t| t.step == step) {
            Some(tally) => {
                tally.count += 1;
                tally.last_at = now;
            }
            None => tallies.push(Tally {
                step,
                count: 1,
                last_at: now,
            }),
        }
        if step == Step::Refresh {
            return;
        }
        let event = Event {
            at: now,
            client: printable(client),
            step,
            outcome: "ok".into(),
            reason: bounded(detail),
            reference: None,
        };
        inner.keep(Some(client.to_string()), event);
    }

    /// The success counts of `client` (or of every client), by client and step.
    pub fn tallies(&self, client: Option<&str>) -> Vec<(String, Tally)> {
        let inner = self.lock();
        let mut out: Vec<(String, Tally)> = inner
            .tallies
            .iter()
            .filter(|(id, _)| client.is_none_or(|c| c == id.as_str()))
            .flat_map(|(id, tallies)| tallies.iter().map(|t| (printable(id), t.clone())))
            .collect();
        out.sort_by(|a, b| (&a.0, a.1.step.name()).cmp(&(&b.0, b.1.step.name())));
        out
    }

    /// The kept events, oldest first: of `client`, or of every client (unknown ids included).
    pub fn recent(&self, client: Option<&str>) -> Vec<Event> {
        let inner = self.lock();
        let mut events: Vec<Event> = match client {
            Some(id) => inner
                .events
                .get(&Some(id.to_string()))
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            None => inner.events.values().flatten().cloned().collect(),
        };
        events.sort_by_key(|e| e.at);
        events
    }

    /// Its counters, in Prometheus text format, for `/metrics`.
    pub fn render_metrics(&self) -> String {
        format!(
            "# HELP linkgate_linking_log_lines_total Refusal lines of the linking log, written or dropped by the per-reason rate limit.\n\
             # TYPE linkgate_linking_log_lines_total counter\n\
             linkgate_linking_log_lines_total{{outcome=\"written\"}} {}\n\
             linkgate_linking_log_lines_total{{outcome=\"dropped\"}} {}\n",
            self.logged.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed)
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn keep(&mut self, key: Option<String>, event: Event) {
        let ring = self.events.entry(key).or_default();
        if ring.len() >= KEPT {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    /// Whether a line for `step` and `error` may be written now (a token bucket each; the
    /// errors are a fixed set of codes, so the map stays small).
    fn take_line(&mut self, step: Step, error: &str) -> bool {
        let now = Instant::now();
        let bucket = self
            .buckets
            .entry((step, error.chars().take(40).collect()))
            .or_insert(Bucket {
                tokens: BURST,
                at: now,
            });
        let refill = now.duration_since(bucket.at).as_secs_f64() * REFILL_PER_SEC;
        bucket.tokens = (bucket.tokens + refill).min(BURST);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// At most `MAX_REASON` characters, control characters escaped (a reason may quote what a
/// stranger sent).
fn bounded(reason: &str) -> String {
    printable(&reason.chars().take(MAX_REASON).collect::<String>())
}

fn printable(text: &str) -> String {
    text.chars()
        .take(MAX_REASON)
        .flat_map(char::escape_default)
        .collect::<String>()
        .replace("\\'", "'")
        .replace("\\\"", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_two_groups_of_four_readable_characters() {
        let a = Reference::new();
        assert_eq!(a.as_str().len(), 9);
        assert_eq!(&a.as_str()[4..5], "-");
        assert!(a
            .as_str()
            .chars()
            .all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));
        assert_ne!(a, Reference::new());
    }

    #[test]
    fn a_flood_writes_a_bounded_number_of_lines_and_keeps_a_bounded_number_of_events() {
        let log = LinkingLog::default();
        for i in 0..10_000 {
            log.refused(
                Step::Token,
                Some(&format!("stranger-{i}")),
                false,
                "invalid_client",
                "unknown client_id",
            );
        }
        let logged = log.logged.load(Ordering::Relaxed);
        assert!(logged <= 25, "{logged} lines");
        assert_eq!(logged + log.dropped.load(Ordering::Relaxed), 10_000);
        assert_eq!(log.recent(None).len(), KEPT);
        // Refreshes are counted, not kept one by one: the refusals stay in the ring.
        for _ in 0..1000 {
            log.succeeded(Step::Refresh, "stranger-1", "");
        }
        assert_eq!(log.recent(None).len(), KEPT);
        let tallies = log.tallies(Some("stranger-1"));
        assert_eq!(tallies.len(), 1);
        assert_eq!(
            (tallies[0].1.step, tallies[0].1.count),
            (Step::Refresh, 1000)
        );
        // Another error still gets its lines.
        log.refused(
            Step::Refresh,
            Some("alexa"),
            true,
            "invalid_grant",
            "revoked",
        );
        assert_eq!(log.logged.load(Ordering::Relaxed), logged + 1);
        assert_eq!(log.recent(Some("alexa")).len(), 1);
    }

    #[test]
    fn reasons_are_bounded_and_control_characters_escaped() {
        let log = LinkingLog::default();
        log.refused(
            Step::Authorize,
            Some("a\u{1b}[31m"),
            false,
            "x",
            &"\n".repeat(2000),
        );
        let event = &log.recent(None)[0];
        assert!(!event.reason.contains('\n') && event.reason.len() <= 2 * MAX_REASON);
        assert_eq!(event.client, "a\\u{1b}[31m");
    }
}
