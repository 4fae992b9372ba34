//! Where calls' file work runs (creating, fsyncing and renaming messages,
//! reading greetings): threads of its own, fed through a channel.
//!
//! Why not tokio's `spawn_blocking`: handing it a job takes a mutex that
//! its pool threads (default priority) also take, and it starts a new
//! thread while holding it. At 4,000 deposits with SIPp on the same two
//! cores, a preempted pool thread held that mutex while both raised
//! runtime workers waited inside `spawn_blocking` (40–76 ms per wait,
//! `sched_switch` profile); nobody read the SIP socket meanwhile and
//! INVITEs waited up to half a second for their 200 OK. Here a worker only
//! pushes onto a channel (no lock; at most a futex wake-up), and new threads
//! are started by the pool's own threads, which keep one idle thread ready
//! for the next job, never by the runtime.
//!
//! Argon2 work does not belong here (a PIN check waits tens of milliseconds
//! for its own threads, see `store::argon2_pool`); PIN checks keep using
//! `spawn_blocking`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// Threads kept even when idle.
const MIN_THREADS: usize = 8;
/// The most threads (tokio's blocking pool allows 512; a message's fsyncs
/// are what they wait for, and more of them do not make the disk faster).
const MAX_THREADS: usize = 128;
/// A thread beyond [`MIN_THREADS`] leaves after this long without work.
const IDLE_EXIT: Duration = if cfg!(test) {
    Duration::from_millis(300)
} else {
    Duration::from_secs(10)
};

#[derive(Debug, thiserror::Error)]
pub enum IoPoolError {
    #[error("the file I/O threads could not be started")]
    Unavailable,
    #[error("a file I/O task panicked")]
    Panicked,
}

struct Pool {
    jobs: Sender<Job>,
    receiver: Mutex<Receiver<Job>>,
    threads: AtomicUsize,
    /// Threads waiting for a job (or for their turn at the receiver).
    idle: AtomicUsize,
}

/// Runs `f` on a file I/O thread and waits (asynchronously) for its result.
pub async fn run<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, IoPoolError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn(move || {
        let _ = tx.send(f());
    })?;
    // A panicking job drops its sender.
    rx.await.map_err(|_| IoPoolError::Panicked)
}

/// Queues `f` on a file I/O thread without waiting for it.
pub fn spawn(f: impl FnOnce() + Send + 'static) -> Result<(), IoPoolError> {
    let pool = pool().ok_or(IoPoolError::Unavailable)?;
    pool.jobs
        .send(Box::new(f))
        .map_err(|_| IoPoolError::Unavailable)
}

fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<&'static Pool>> = OnceLock::new();
    *POOL.get_or_init(|| {
        let (jobs, receiver) = mpsc::channel();
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            jobs,
            receiver: Mutex::new(receiver),
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
        }));
        for _ in 0..MIN_THREADS {
            pool.grow();
        }
        (pool.threads.load(Ordering::Acquire) > 0).then_some(pool)
    })
}

impl Pool {
    /// One more thread, unless at [`MAX_THREADS`].
    fn grow(&'static self) {
        let reserved = self
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_THREADS).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("file-io".into())
            .spawn(move || self.work());
        if let Err(e) = spawned {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(error = %e, "starting a file I/O thread");
        }
    }

    /// Whether this idle thread may leave (the pool stays at least
    /// [`MIN_THREADS`]).
    fn shrink(&self) -> bool {
        self.threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > MIN_THREADS).then_some(n - 1)
            })
            .is_ok()
    }

    fn work(&'static self) {
        // The first threads are started from a runtime worker, whose raised
        // priority they would inherit.
        crate::server::priority::reset_thread();
        loop {
            self.idle.fetch_add(1, Ordering::AcqRel);
            let job = self
                .receiver
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recv_timeout(IDLE_EXIT);
            self.idle.fetch_sub(1, Ordering::AcqRel);
            match job {
                Ok(job) => {
                    // Keep a thread ready for the next job, so that a job
                    // never waits behind slow ones (fsyncs under load).
                    if self.idle.load(Ordering::Acquire) == 0 {
                        self.grow();
                    }
                    // A panic drops the job's sender: its caller gets an
                    // error, and this thread stays for the next job.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.shrink() {
                        return;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[tokio::test]
    async fn returns_the_result_and_survives_a_panic() {
        assert_eq!(run(|| 6 * 7).await.unwrap(), 42);
        let panicked = run(|| -> u8 { panic!("a store bug") }).await;
        assert!(
            matches!(panicked, Err(IoPoolError::Panicked)),
            "{panicked:?}"
        );
        assert_eq!(run(|| "still here").await.unwrap(), "still here");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grows_while_its_threads_are_blocked_and_shrinks_when_idle() {
        // Twice the minimum, all blocked at once: only possible if the pool
        // started more threads while its first ones were busy.
        let n = MIN_THREADS * 2;
        let barrier = Arc::new(Barrier::new(n));
        let jobs: Vec<_> = (0..n)
            .map(|i| {
                let b = barrier.clone();
                tokio::spawn(run(move || {
                    b.wait();
                    i
                }))
            })
            .collect();
        let mut sum = 0;
        for j in jobs {
            sum += tokio::time::timeout(Duration::from_secs(10), j)
                .await
                .expect("every job ran")
                .unwrap()
                .unwrap();
        }
        assert_eq!(sum, (0..n).sum::<usize>());
        let pool = pool().unwrap();
        assert!(pool.threads.load(Ordering::Acquire) >= n);
        assert!(pool.threads.load(Ordering::Acquire) <= MAX_THREADS);
        // Idle threads beyond the minimum leave (other tests may hold a few).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while pool.threads.load(Ordering::Acquire) >= n && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(pool.threads.load(Ordering::Acquire) < n);
    }
}
