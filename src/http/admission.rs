//! Which connections get in, for both listeners (`server.rs` and ACME's `http_listen`): a cap
//! per client address (IPv6 by /64, as the login throttle counts) and one in total. When the
//! total is reached, the oldest connection that is only waiting is closed to make room — first
//! those that never sent a whole request, then idle keep-alive ones; a request being answered is
//! never cut — so strangers holding silent connections, from one address or many, cannot keep a
//! legitimate client out. Token clients (Alexa's and Google's egress addresses open many parallel
//! connections) have a second, larger share per address, for connections that presented valid
//! client credentials (`vetting.rs`).

use crate::metrics::{count, ConnectionCounters};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How long a new connection waits for the one it had closed to go.
const ROOM_WAIT: Duration = Duration::from_secs(2);

/// What a connection's ticker and the shedding read of its I/O and its requests. Counters, not a
/// clock reading per I/O: the ticker notices when they stop moving.
#[derive(Default)]
pub struct ConnectionState {
    /// Reads and writes.
    pub activity: AtomicU64,
    /// Reads that brought bytes.
    pub reads: AtomicU64,
    /// Requests being answered.
    pub in_flight: AtomicU64,
    /// Requests answered.
    pub answered: AtomicU64,
    /// `reads` when the last answer was made: a read after it starts the next request's head.
    pub reads_at_answer: AtomicU64,
    /// The connection's place in its address's share, given back before its socket is closed
    /// (`release_address`), so a client that reconnects at once is never counted twice.
    address: Mutex<Option<AddressSlot>>,
}

impl ConnectionState {
    /// Gives the address's slot back; called just before the socket is closed, and again
    /// (doing nothing) when the connection's task ends.
    pub fn release_address(&self) {
        let slot = self
            .address
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(slot);
    }
}

/// One request being answered; dropping it (also when the client goes away) counts it done.
pub struct Answered(Arc<ConnectionState>);

impl Answered {
    pub fn start(state: Arc<ConnectionState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Answered(state)
    }
}

impl Drop for Answered {
    fn drop(&mut self) {
        let state = &self.0;
        state
            .reads_at_answer
            .store(state.reads.load(Ordering::Relaxed), Ordering::Relaxed);
        state.answered.fetch_add(1, Ordering::Release);
        state.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// An open connection as the admission sees it.
pub struct Tracked {
    pub state: Arc<ConnectionState>,
    /// Notified when the connection is to close to make room.
    pub shed: Notify,
    /// Already picked to close: two newcomers do not wait for the same one.
    picked: AtomicBool,
}

/// Why a connection was not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its address already holds its share.
    AddressFull,
    /// Every slot is answering a request.
    Full,
}

/// The caps of one listener.
pub struct Admission {
    per_address_limit: usize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// The second share, for connections of authenticated clients (0: none).
    client_limit: usize,
    client_per_address: Mutex<HashMap<IpAddr, usize>>,
    permits: Arc<Semaphore>,
    total: usize,
    /// Open connections by age (ids only grow).
    open: Mutex<BTreeMap<u64, Arc<Tracked>>>,
    next_id: AtomicU64,
    /// New connections waiting for room, at most `total`.
    waiting: AtomicUsize,
    /// What was refused and shed (for `/metrics`).
    pub counters: Arc<ConnectionCounters>,
}

/// A connection let in; dropping it gives its slots back.
pub struct Admitted {
    admission: Arc<Admission>,
    id: u64,
    pub tracked: Arc<Tracked>,
    _permit: OwnedSemaphorePermit,
}

/// A connection's place in its address's share, taken when it is accepted.
pub struct AddressSlot {
    admission: Arc<Admission>,
    address: Option<IpAddr>,
    /// In the clients' share rather than the address's own.
    client: bool,
}

impl Admission {
    pub fn new(
        total: usize,
        per_address: usize,
        client_per_address: usize,
        counters: Arc<ConnectionCounters>,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            per_address_limit: per_address,
            per_address: Mutex::new(HashMap::new()),
            client_limit: client_per_address,
            client_per_address: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(total)),
            total,
            open: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            counters,
        })
    }

    /// Counts a connection against its address's share (`None`: an address exempt from it, such
    /// as a trusted proxy speaking for many clients). Synchronous, for the accept loop.
    pub fn take_address(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<AddressSlot, Refused> {
        self.take(ip, false)
    }

    /// Counts a connection that presented valid client credentials against its address's
    /// clients' share, once the address's own is full.
    pub fn take_client_address(self: &Arc<Self>, ip: IpAddr) -> Result<AddressSlot, Refused> {
        self.take(Some(ip), true)
    }

    /// Whether there is a clients' share at all.
    pub fn has_client_share(&self) -> bool {
        self.client_limit > 0
    }

    fn take(self: &Arc<Self>, ip: Option<IpAddr>, client: bool) -> Result<AddressSlot, Refused> {
        let address = ip.map(crate::base::backoff::address_prefix);
        if let Some(address) = address {
            let (map, limit) = self.share(client);
            let mut open = map.lock().unwrap_or_else(|p| p.into_inner());
            let count = open.entry(address).or_insert(0);
            if *count >= limit {
                return Err(Refused::AddressFull);
            }
            *count += 1;
        }
        Ok(AddressSlot {
            admission: self.clone(),
            address,
            client,
        })
    }

    fn share(&self, client: bool) -> (&Mutex<HashMap<IpAddr, usize>>, usize) {
        match client {
            false => (&self.per_address, self.per_address_limit),
            true => (&self.client_per_address, self.client_limit),
        }
    }

    /// A slot in the total, closing the oldest waiting connection to make room when all are
    /// taken. For the connection's own task: it may wait (at most `ROOM_WAIT`).
    pub async fn admit(
        self: &Arc<Self>,
        slot: AddressSlot,
        state: Arc<ConnectionState>,
    ) -> Result<Admitted, Refused> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => self.make_room().await?,
        };
        *state.address.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
        let tracked = Arc::new(Tracked {
            state,
            shed: Notify::new(),
            picked: AtomicBool::new(false),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tracked.clone());
        Ok(Admitted {
            admission: self.clone(),
            id,
            tracked,
            _permit: permit,
        })
    }

    async fn make_room(self: &Arc<Self>) -> Result<OwnedSemaphorePermit, Refused> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.total {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        let outcome = match self.shed_oldest_waiting() {
            true => tokio::time::timeout(ROOM_WAIT, self.permits.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or(Refused::Full),
            false => Err(Refused::Full),
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        outcome
    }

    /// Tells the oldest connection that is not answering a request to close: one that never
    /// sent a whole request if there is one, else an idle keep-alive one. Whether there was one.
    fn shed_oldest_waiting(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let idle = |t: &&Arc<Tracked>| {
            t.state.in_flight.load(Ordering::Acquire) == 0 && !t.picked.load(Ordering::Acquire)
        };
        let silent = open
            .values()
            .filter(idle)
            .find(|t| t.state.answered.load(Ordering::Acquire) == 0);
        match silent.or_else(|| open.values().find(idle)) {
            Some(victim) => {
                count(&self.counters.shed);
                victim.picked.store(true, Ordering::Release);
                victim.shed.notify_one();
                true
            }
            None => false,
        }
    }

    /// Waits until every connection has closed (for a graceful stop).
    pub async fn all_closed(&self) {
        let all = u32::try_from(self.total).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(all).await;
    }

    fn release_address(&self, address: Option<IpAddr>, client: bool) {
        let Some(address) = address else { return };
        let mut open = self
            .share(client)
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&address);
            }
        }
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.admission.release_address(self.address, self.client);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.tracked.state.release_address();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[tokio::test]
    async fn an_address_gets_its_share_and_exempt_ones_any() {
        let admission = Admission::new(10, 2, 0, Arc::default());
        let a = admission.take_address(ip("192.0.2.1")).unwrap();
        let _b = admission.take_address(ip("192.0.2.1")).unwrap();
        assert_eq!(
            admission.take_address(ip("192.0.2.1")).err(),
            Some(Refused::AddressFull)
        );
        // IPv6 by /64.
        let _c = admission.take_address(ip("2001:db8::1")).unwrap();
        let _d = admission.take_address(ip("2001:db8::2")).unwrap();
        assert!(admission.take_address(ip("2001:db8::3")).is_err());
        for _ in 0..5 {
            let _ = admission.take_address(None).unwrap();
        }
        drop(a);
        assert!(admission.take_address(ip("192.0.2.1")).is_ok());
    }

    #[tokio::test]
    async fn the_clients_share_is_counted_apart_and_given_back_to_itself() {
        let admission = Admission::new(10, 1, 2, Arc::default());
        let own = admission.take_address(ip("192.0.2.1")).unwrap();
        assert!(admission.take_address(ip("192.0.2.1")).is_err());
        let client = admission.take_client_address("192.0.2.1".parse().unwrap());
        let _other = admission
            .take_client_address("192.0.2.1".parse().unwrap())
            .unwrap();
        assert!(admission
            .take_client_address("192.0.2.1".parse().unwrap())
            .is_err());
        // A client slot going back frees a client slot, not the address's own.
        drop(client);
        assert!(admission.take_address(ip("192.0.2.1")).is_err());
        assert!(admission
            .take_client_address("192.0.2.1".parse().unwrap())
            .is_ok());
        drop(own);
        assert!(admission.take_address(ip("192.0.2.1")).is_ok());
        assert!(!Admission::new(10, 1, 0, Arc::default()).has_client_share());
    }

    #[tokio::test]
    async fn when_full_the_oldest_silent_connection_makes_room_not_a_busy_one() {
        let admission = Admission::new(3, 3, 0, Arc::default());
        let states: Vec<Arc<ConnectionState>> = (0..3).map(|_| Arc::default()).collect();
        let mut held = Vec::new();
        for state in &states {
            let slot = admission.take_address(ip("192.0.2.1")).unwrap();
            held.push(admission.admit(slot, state.clone()).await.unwrap());
        }
        // The oldest is answering a request, the second has been answered (keep-alive), the
        // third never sent one.
        let _busy = Answered::start(states[0].clone());
        drop(Answered::start(states[1].clone()));
        let newcomer = {
            let admission = admission.clone();
            tokio::spawn(async move {
                let slot = admission.take_address(ip("198.51.100.1")).unwrap();
                admission.admit(slot, Arc::default()).await.map(|_| ())
            })
        };
        // The silent one is told to close; closing it lets the newcomer in.
        tokio::time::timeout(Duration::from_secs(1), held[2].tracked.shed.notified())
            .await
            .expect("the silent connection was not shed");
        held.remove(2);
        assert_eq!(newcomer.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn when_every_slot_answers_a_request_a_newcomer_is_refused() {
        let admission = Admission::new(1, 1, 0, Arc::default());
        let state: Arc<ConnectionState> = Arc::default();
        let slot = admission.take_address(ip("192.0.2.1")).unwrap();
        let _held = admission.admit(slot, state.clone()).await.unwrap();
        let _busy = Answered::start(state);
        let slot = admission.take_address(ip("198.51.100.1")).unwrap();
        let refused = admission.admit(slot, Arc::default()).await.err();
        assert_eq!(refused, Some(Refused::Full));
    }
}
