//! A small, fixed pool of threads for argon2 work. argon2id allocates 19 MiB per check; run on
//! tokio's blocking pool (up to 512 threads), each thread's malloc arena ends up keeping its own
//! 19 MiB and a login flood grows the process by hundreds of MiB. A fixed pool keeps that to
//! (threads × 19 MiB), and its size also bounds how much CPU sign-ins can take from `/token`.

use std::sync::mpsc;
use std::sync::Mutex;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

pub struct PasswordWorkers {
    jobs: Mutex<mpsc::Sender<Job>>,
    size: usize,
}

impl PasswordWorkers {
    /// Starts `size` worker threads (at least one).
    pub fn new(size: usize) -> Self {
        return_big_allocations_to_the_os();
        let size = size.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..size {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the pool was dropped
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a password worker thread: {e}");
            }
        }
        PasswordWorkers {
            jobs: Mutex::new(tx),
            size,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `work` on a pool thread. `None` if the pool is gone (cannot happen while it lives).
    pub async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.jobs.lock().ok()?.send(job).ok()?;
        rx.await.ok()
    }
}

/// glibc raises its mmap threshold after the first 19 MiB argon2 buffer is freed, and from then
/// on keeps such buffers in the heap: measured, RSS grew by 19 MiB per sign-in up to ~105 MiB
/// and stayed there. A fixed threshold of 1 MiB makes every large buffer a mapping that goes back
/// to the OS when freed (RSS stays flat). Other C libraries manage memory differently and need
/// nothing.
fn return_big_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: i32 = -3;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes allocator tuning; it is safe to call at any time.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}
