//! Random bytes from the operating system's CSPRNG (getrandom), drawn a pool at a time.
//!
//! Every refresh needs 16 fresh bytes (the new access token's id) and every rotation 32 more; one
//! `getrandom(2)` per request was a third of the refresh's system calls (3 per request against
//! 2 for `/userinfo`). Each thread now draws `POOL_BYTES` at once and hands them out in order:
//! every byte comes from the kernel, is handed out once, and is zeroed in the pool as it goes,
//! so the pool never holds a byte that was already used. What it holds is at most `POOL_BYTES`
//! not yet handed out (a memory disclosure could reveal that many future bytes of one thread, as
//! with any user-space CSPRNG state). linkgate does not fork; a child it started would exec at
//! once and never draw from a copy.

use std::cell::RefCell;

/// Eight 256-bit tokens' worth: a syscall per eight refreshes, per sixteen access tokens.
const POOL_BYTES: usize = 256;

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    thread_local! {
        static POOL: RefCell<Pool> = const { RefCell::new(Pool::empty()) };
    }
    let mut bytes = [0u8; N];
    // While the thread is being torn down its pool is gone: straight from the kernel then.
    let pooled = POOL.try_with(|pool| match pool.try_borrow_mut() {
        Ok(mut pool) => pool.take(&mut bytes, from_os),
        Err(_) => from_os(&mut bytes),
    });
    if pooled.is_err() {
        from_os(&mut bytes);
    }
    bytes
}

fn from_os(bytes: &mut [u8]) {
    // getrandom only fails when the OS has no entropy source at all; nothing can run safely then.
    getrandom::getrandom(bytes).expect("the operating system's random source failed");
}

struct Pool {
    bytes: [u8; POOL_BYTES],
    /// Bytes `..used` are handed out (and zero); `used..` are fresh.
    used: usize,
}

impl Pool {
    const fn empty() -> Pool {
        Pool {
            bytes: [0; POOL_BYTES],
            used: POOL_BYTES,
        }
    }

    /// Fills `out` with the next fresh bytes, refilling the pool from `fill` when fewer are left
    /// (the few left over are then overwritten, never handed out). More than the pool holds
    /// comes from `fill` directly.
    fn take(&mut self, out: &mut [u8], fill: impl Fn(&mut [u8])) {
        if out.len() > POOL_BYTES {
            return fill(out);
        }
        if POOL_BYTES - self.used < out.len() {
            fill(&mut self.bytes);
            self.used = 0;
        }
        let fresh = &mut self.bytes[self.used..self.used + out.len()];
        out.copy_from_slice(fresh);
        fresh.fill(0);
        self.used += out.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::HashSet;

    /// A stand-in for the kernel: counts its calls and fills with a running byte counter, so
    /// every byte it ever gives is distinct from its position.
    struct Counter {
        calls: Cell<usize>,
        next: Cell<u64>,
    }

    impl Counter {
        fn new() -> Counter {
            Counter {
                calls: Cell::new(0),
                next: Cell::new(1),
            }
        }
        /// `pool.take(out)`, refilled from this stand-in.
        fn take(&self, pool: &mut Pool, out: &mut [u8]) {
            pool.take(out, |b| self.fill(b));
        }
        fn fill(&self, bytes: &mut [u8]) {
            self.calls.set(self.calls.get() + 1);
            for b in bytes {
                *b = self.next.get() as u8;
                self.next.set(self.next.get() + 1);
            }
        }
    }

    #[test]
    fn bytes_come_out_in_order_once_each_and_are_zeroed_behind() {
        let kernel = Counter::new();
        let mut pool = Pool::empty();
        let mut first = [0u8; 16];
        kernel.take(&mut pool, &mut first);
        let mut second = [0u8; 16];
        kernel.take(&mut pool, &mut second);
        assert_eq!(kernel.calls.get(), 1, "one draw serves both");
        assert_eq!(first.to_vec(), (1..=16).collect::<Vec<u8>>());
        assert_eq!(second.to_vec(), (17..=32).collect::<Vec<u8>>());
        assert!(
            pool.bytes[..32].iter().all(|&b| b == 0),
            "handed out, so zeroed"
        );
        assert_eq!(pool.bytes[32], 33, "the rest untouched");
    }

    #[test]
    fn a_pool_too_short_is_refilled_and_its_rest_never_handed_out() {
        let kernel = Counter::new();
        let mut pool = Pool::empty();
        let mut out = [0u8; 100];
        kernel.take(&mut pool, &mut out);
        kernel.take(&mut pool, &mut out);
        assert_eq!(kernel.calls.get(), 1);
        // 56 fresh bytes left (201..=256 of the first draw); 100 more needs a new draw.
        kernel.take(&mut pool, &mut out);
        assert_eq!(kernel.calls.get(), 2);
        assert_eq!(
            out[0],
            (POOL_BYTES as u64 + 1) as u8,
            "the new draw's first byte"
        );
        assert_eq!(pool.used, 100);
    }

    #[test]
    fn more_than_the_pool_holds_comes_straight_from_the_kernel() {
        let kernel = Counter::new();
        let mut pool = Pool::empty();
        let mut big = [0u8; POOL_BYTES + 1];
        kernel.take(&mut pool, &mut big);
        assert_eq!(kernel.calls.get(), 1);
        assert_eq!(pool.used, POOL_BYTES, "the pool was not drawn");
    }

    /// The real pool, from many threads at once: no 128-bit value twice.
    #[test]
    fn values_from_many_threads_are_all_distinct() {
        let drawn: Vec<[u8; 16]> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| (0..2000).map(|_| random_bytes::<16>()).collect::<Vec<_>>())
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        let distinct: HashSet<_> = drawn.iter().collect();
        assert_eq!(distinct.len(), drawn.len());
        assert!(drawn.iter().all(|v| v != &[0u8; 16]));
    }
}
