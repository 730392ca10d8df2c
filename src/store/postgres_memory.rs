//! What a PostgreSQL node keeps in memory of the rows every token check reads (a grant, whether
//! an access token is denied, the change counters), so that a check of a token seen before asks
//! the database nothing, and the listener that keeps it right.
//!
//! The database tells every node of each change that can make a kept row wrong: triggers
//! (migration 5) send a notification at commit when a grant is deleted, an access token denied,
//! or a change counter moved, whichever node or CLI wrote. One connection per node listens and
//! drops what each notification names. Nothing else is ever dropped: what is kept is only ever a
//! yes (a grant that exists, a token not denied); a check whose answer from memory is no asks the
//! database again (`oauth/tokens/check.rs`), so a grant written a moment ago by another node (a
//! new link, a rotation) is never refused.
//!
//! **The bound.** A notification can be late or lost (the listener's connection dropped, the
//! database restarted, its process stalled). So the listener also sends, every quarter of the
//! bound, a notification of its own (a beat) and waits for it to come back. PostgreSQL delivers
//! notifications in commit order, so when a beat sent at time `s` comes back, every change
//! committed before `s` has been delivered and applied. Memory answers only until the last beat
//! that came back was sent plus `storage.revocation_bound_ms`; past that every check asks the
//! database, until beats come back again. A change committed at `c` therefore holds on this node
//! by `c + bound` at the latest, and in practice as soon as its notification arrives
//! (milliseconds). A new listening session (after a lost connection) starts from nothing.
//!
//! A read remembered here must not be older than a notification already applied: `epoch` counts
//! notifications, and a read is kept only if it did not move while the read ran.

use crate::base::bounded;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_postgres::AsyncMessage;

/// The change counters of `linkgate.epochs` (schema 3), read with a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epochs {
    pub users: i64,
    pub keys: i64,
}

/// A grant (if any), the change counters, and whether the access token asked about is denied:
/// what a token check reads (`postgres.rs`), and what memory keeps.
pub(super) type GrantRow = (Option<Vec<u8>>, Epochs, bool);

/// The channel the triggers and the beats notify on.
pub(super) const CHANNEL: &str = "linkgate_changes";
/// Past this many grants (about 1 MB) or deny answers kept, the map starts again empty.
const MAX_GRANTS: usize = 4096;
const MAX_DENY_ANSWERS: usize = 16384;
/// How long the listener waits before it connects again after losing its connection, doubling
/// up to `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

pub(super) struct Memory {
    bound: Duration,
    /// Tells this node's beats from other nodes'.
    node: u64,
    state: Mutex<State>,
    from_memory: AtomicU64,
    from_database: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Moves with every notification applied and every new listening session.
    epoch: u64,
    /// Until when memory may answer; `None` while no beat has come back in this session.
    fresh_until: Option<Instant>,
    /// Whether a listening session is open (reads may be kept).
    listening: bool,
    /// The change counters as of the last read kept; `None` after they moved (the next check
    /// asks the database, which brings the node's caches up to date).
    epochs: Option<Epochs>,
    grants: HashMap<Vec<u8>, Vec<u8>>,
    /// Access token id → denied.
    denied: HashMap<[u8; 16], bool>,
    /// Beats sent and not yet back: number, when sent.
    beats: VecDeque<(u64, Instant)>,
}

/// The tables memory keeps rows of: grants (by id) and the deny list (by access token id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kept {
    Grants,
    Denied,
}

/// Where a change counter read for a check stands (`Memory::reading`).
#[derive(Clone, Copy)]
pub(super) struct Reading(u64);

impl Memory {
    pub fn new(bound: Duration) -> Memory {
        let mut node = [0u8; 8];
        let _ = getrandom::getrandom(&mut node);
        Memory {
            bound,
            node: u64::from_le_bytes(node),
            state: Mutex::default(),
            from_memory: AtomicU64::new(0),
            from_database: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The check's row from memory: the grant `key` exists and, with `token`, that access token
    /// is not denied, as of notifications applied within the bound. `None`: ask the database.
    pub fn answer(&self, key: &[u8], token: Option<&[u8; 16]>) -> Option<GrantRow> {
        let state = self.lock();
        let fresh = state
            .fresh_until
            .is_some_and(|until| Instant::now() < until);
        let epochs = state.epochs.filter(|_| fresh)?;
        if let Some(t) = token {
            if state.denied.get(t) != Some(&false) {
                return None;
            }
        }
        let grant = state.grants.get(key)?.clone();
        drop(state);
        self.from_memory.fetch_add(1, Ordering::Relaxed);
        Some((Some(grant), epochs, false))
    }

    /// Before a read from the database that may be kept.
    pub fn reading(&self) -> Reading {
        Reading(self.lock().epoch)
    }

    /// Keeps what a read begun at `reading` found, unless a notification came meanwhile. Only
    /// yeses are kept; a no drops what was kept of the grant or token.
    pub fn keep(&self, reading: Reading, key: &[u8], token: Option<&[u8; 16]>, row: &GrantRow) {
        self.from_database.fetch_add(1, Ordering::Relaxed);
        let (grant, epochs, denied) = row;
        let mut state = self.lock();
        if state.epoch != reading.0 || !state.listening {
            return;
        }
        state.epochs = Some(*epochs);
        match grant {
            Some(value) => {
                bounded::insert(&mut state.grants, key.to_vec(), value.clone(), MAX_GRANTS)
            }
            None => forget(&mut state, Kept::Grants, key),
        }
        if let Some(t) = token {
            bounded::insert(&mut state.denied, *t, *denied, MAX_DENY_ANSWERS);
        }
    }

    /// This node wrote the row `key` of `table`: what was kept of it goes at once, before its
    /// notification comes.
    pub fn wrote(&self, table: Kept, key: &[u8]) {
        let mut state = self.lock();
        state.epoch += 1;
        forget(&mut state, table, key);
    }

    /// This node wrote the row `key` of `table` as `value` (a compare-and-swap that succeeded):
    /// memory keeps a grant's new value if no notification or other write came since `reading`
    /// (taken before the write), and drops it otherwise.
    pub fn wrote_value(&self, reading: Reading, table: Kept, key: &[u8], value: Vec<u8>) {
        let mut state = self.lock();
        let unchanged = state.epoch == reading.0 && state.listening;
        state.epoch += 1;
        if unchanged && table == Kept::Grants {
            bounded::insert(&mut state.grants, key.to_vec(), value, MAX_GRANTS);
        } else {
            forget(&mut state, table, key);
        }
    }

    /// `linkgate_store_token_checks_total` for `/metrics`.
    pub fn render_metrics(&self) -> String {
        format!(
            "# HELP linkgate_store_token_checks_total Token checks by where their grant was read \
             (PostgreSQL).\n# TYPE linkgate_store_token_checks_total counter\n\
             linkgate_store_token_checks_total{{from=\"memory\"}} {}\n\
             linkgate_store_token_checks_total{{from=\"database\"}} {}\n",
            self.from_memory.load(Ordering::Relaxed),
            self.from_database.load(Ordering::Relaxed)
        )
    }

    /// A notification from the channel.
    fn notified(&self, payload: &str) {
        let mut state = self.lock();
        if let Some(beat) = payload.strip_prefix("beat:") {
            let Some((node, n)) = beat.split_once(':') else {
                return;
            };
            if node != self.node.to_string() {
                return;
            }
            let Ok(n) = n.parse::<u64>() else { return };
            while let Some(&(sent_n, sent_at)) = state.beats.front() {
                if sent_n > n {
                    break;
                }
                state.beats.pop_front();
                if sent_n == n {
                    state.fresh_until = Some(sent_at + self.bound);
                }
            }
            return;
        }
        state.epoch += 1;
        let named = match payload.split_once(':') {
            Some(("g", hex)) => Some((Kept::Grants, hex)),
            Some(("d", hex)) => Some((Kept::Denied, hex)),
            _ => None,
        };
        match named.and_then(|(table, hex)| Some((table, from_hex(hex)?))) {
            Some((table, key)) => forget(&mut state, table, &key),
            None if payload == "e" => state.epochs = None,
            None => forget_all(&mut state),
        }
    }

    /// A listening session began (`true`) or ended: either way nothing kept can be trusted.
    fn session(&self, open: bool) {
        let mut state = self.lock();
        state.epoch += 1;
        state.listening = open;
        state.fresh_until = None;
        state.beats.clear();
        forget_all(&mut state);
    }

    fn beat_sent(&self, n: u64) {
        self.lock().beats.push_back((n, Instant::now()));
    }
}

fn forget(state: &mut State, table: Kept, key: &[u8]) {
    match table {
        Kept::Grants => {
            state.grants.remove(key);
        }
        Kept::Denied => {
            if let Ok(token) = <[u8; 16]>::try_from(key) {
                state.denied.remove(&token);
            }
        }
    }
}

fn forget_all(state: &mut State) {
    state.epochs = None;
    state.grants.clear();
    state.denied.clear();
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Listens for as long as the database runtime runs: connects, listens, beats; after a lost
/// connection connects again (memory answers nothing meanwhile).
pub(super) async fn listen(
    memory: Arc<Memory>,
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    query_timeout: Duration,
) {
    let mut retry = FIRST_RETRY;
    // An outage is logged once when it starts and once when it ends.
    let mut down = false;
    loop {
        let ended = session(&memory, &config, tls.clone(), query_timeout, &mut down).await;
        memory.session(false);
        if !down {
            tracing::warn!(
                "database notifications: {ended}; token checks ask the database until the \
                 listener is back"
            );
            (down, retry) = (true, FIRST_RETRY);
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// One listening session, until its connection fails; says why it ended.
async fn session(
    memory: &Arc<Memory>,
    config: &tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    query_timeout: Duration,
    down: &mut bool,
) -> String {
    let mut config = config.clone();
    config.application_name("linkgate listener");
    let connected = tokio::time::timeout(query_timeout, config.connect(tls)).await;
    let (client, mut connection) = match connected {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return format!("cannot connect: {e}"),
        Err(_) => return "cannot connect: no answer".into(),
    };
    let delivered = memory.clone();
    let mut driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => delivered.notified(n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return format!("connection lost: {e}"),
                None => return "connection closed".to_string(),
            }
        }
    });
    // The beats' commits need not wait for the disk.
    let listen = format!("SET synchronous_commit = off; LISTEN {CHANNEL}");
    let outcome = async {
        let started = tokio::time::timeout(query_timeout, client.batch_execute(&listen)).await;
        match started {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return format!("cannot listen: {e}"),
            Err(_) => return "cannot listen: no answer".into(),
        }
        let beat = match client.prepare("SELECT pg_notify($1, $2)").await {
            Ok(statement) => statement,
            Err(e) => return format!("cannot prepare the beat: {e}"),
        };
        memory.session(true);
        if std::mem::take(down) {
            tracing::info!("database notifications: listening again");
        }
        let every = (memory.bound / 4).max(Duration::from_millis(10));
        for n in 1u64.. {
            memory.beat_sent(n);
            let payload = format!("beat:{}:{n}", memory.node);
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&CHANNEL, &payload];
            match tokio::time::timeout(query_timeout, client.execute(&beat, &params)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("a beat failed: {e}"),
                Err(_) => return "a beat got no answer".into(),
            }
            tokio::time::sleep(every).await;
        }
        "stopped".into()
    };
    tokio::select! {
        why = outcome => {
            driver.abort();
            why
        }
        why = &mut driver => why.unwrap_or_else(|_| "the listener stopped".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: Epochs = Epochs { users: 1, keys: 1 };

    fn live(memory: &Memory) {
        memory.session(true);
        memory.beat_sent(1);
        memory.notified(&format!("beat:{}:1", memory.node));
    }

    fn row(grant: &[u8]) -> GrantRow {
        (Some(grant.to_vec()), E, false)
    }

    #[test]
    fn a_kept_grant_answers_until_a_notification_names_it() {
        let memory = Memory::new(Duration::from_secs(5));
        live(&memory);
        let token = [7u8; 16];
        memory.keep(memory.reading(), b"g1", Some(&token), &row(b"v1"));
        assert_eq!(memory.answer(b"g1", Some(&token)), Some(row(b"v1")));
        // Another token of the same grant has no deny answer yet.
        assert_eq!(memory.answer(b"g1", Some(&[8u8; 16])), None);
        assert_eq!(memory.answer(b"g1", None), Some(row(b"v1")));
        memory.notified(&format!("g:{}", "6731"));
        assert_eq!(memory.answer(b"g1", None), None);
    }

    #[test]
    fn a_denial_an_epoch_move_or_an_unknown_notice_stops_answers() {
        let memory = Memory::new(Duration::from_secs(5));
        live(&memory);
        let token = [7u8; 16];
        let keep = |m: &Memory| m.keep(m.reading(), b"g1", Some(&token), &row(b"v1"));
        keep(&memory);
        memory.notified("d:07070707070707070707070707070707");
        assert_eq!(memory.answer(b"g1", Some(&token)), None);
        assert!(memory.answer(b"g1", None).is_some());
        keep(&memory);
        memory.notified("e");
        assert_eq!(memory.answer(b"g1", None), None);
        keep(&memory);
        memory.notified("*");
        assert_eq!(memory.answer(b"g1", None), None);
        keep(&memory);
        memory.notified("g:zz");
        assert_eq!(memory.answer(b"g1", None), None);
    }

    #[test]
    fn a_read_that_raced_a_notification_is_not_kept() {
        let memory = Memory::new(Duration::from_secs(5));
        live(&memory);
        let reading = memory.reading();
        memory.notified("g:6731");
        memory.keep(reading, b"g1", None, &row(b"old"));
        assert_eq!(memory.answer(b"g1", None), None);
        // Nor one that raced a write of this node.
        let reading = memory.reading();
        memory.wrote(Kept::Grants, b"g1");
        memory.keep(reading, b"g1", None, &row(b"old"));
        assert_eq!(memory.answer(b"g1", None), None);
    }

    #[test]
    fn nothing_is_answered_or_kept_without_a_session_and_a_beat_back() {
        let memory = Memory::new(Duration::from_secs(5));
        memory.keep(memory.reading(), b"g1", None, &row(b"v1"));
        memory.session(true);
        assert_eq!(memory.answer(b"g1", None), None, "kept before listening");
        memory.keep(memory.reading(), b"g1", None, &row(b"v1"));
        assert_eq!(memory.answer(b"g1", None), None, "no beat back yet");
        memory.beat_sent(1);
        memory.notified("beat:1:1"); // another node's
        assert_eq!(memory.answer(b"g1", None), None);
        memory.notified(&format!("beat:{}:1", memory.node));
        assert!(memory.answer(b"g1", None).is_some());
        memory.session(false);
        assert_eq!(memory.answer(b"g1", None), None, "after the session ended");
    }

    #[test]
    fn answers_stop_a_bound_after_the_last_beat_back_was_sent() {
        let memory = Memory::new(Duration::from_millis(50));
        live(&memory);
        memory.keep(memory.reading(), b"g1", None, &row(b"v1"));
        assert!(memory.answer(b"g1", None).is_some());
        memory.beat_sent(2); // never comes back
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(memory.answer(b"g1", None), None);
        // A beat that comes back late counts from when it was sent: still too old.
        memory.notified(&format!("beat:{}:2", memory.node));
        assert_eq!(memory.answer(b"g1", None), None);
        memory.beat_sent(3);
        memory.notified(&format!("beat:{}:3", memory.node));
        assert!(memory.answer(b"g1", None).is_some(), "beats back again");
    }

    #[test]
    fn a_no_is_never_kept_and_the_maps_stay_bounded() {
        let memory = Memory::new(Duration::from_secs(5));
        live(&memory);
        let token = [1u8; 16];
        memory.keep(memory.reading(), b"g1", Some(&token), &(None, E, false));
        assert_eq!(memory.answer(b"g1", None), None);
        memory.keep(
            memory.reading(),
            b"g1",
            Some(&token),
            &(Some(b"v".to_vec()), E, true),
        );
        assert_eq!(memory.answer(b"g1", Some(&token)), None);
        for i in 0..MAX_GRANTS as u32 + 10 {
            memory.keep(memory.reading(), &i.to_le_bytes(), None, &row(b"v"));
        }
        assert!(memory.lock().grants.len() <= MAX_GRANTS);
    }

    #[test]
    fn a_swap_keeps_its_value_unless_something_came_between() {
        let memory = Memory::new(Duration::from_secs(5));
        live(&memory);
        memory.keep(memory.reading(), b"g1", None, &row(b"v1"));
        memory.wrote_value(memory.reading(), Kept::Grants, b"g1", b"v2".to_vec());
        assert_eq!(memory.answer(b"g1", None), Some(row(b"v2")));
        let reading = memory.reading();
        memory.notified("g:6731"); // deleted on another node while the swap ran
        memory.wrote_value(reading, Kept::Grants, b"g1", b"v3".to_vec());
        assert_eq!(memory.answer(b"g1", None), None);
    }

    #[test]
    fn hex_keys_decode() {
        assert_eq!(from_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
