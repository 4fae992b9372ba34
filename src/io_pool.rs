//! Where blocking store work runs (calls creating, fsyncing and renaming
//! messages and reading greetings; the HTTP API; email notifications):
//! threads of its own, fed through a channel.
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
//! PIN checks get a pool of their own ([`run_pin_check`]): each waits tens
//! of milliseconds for the Argon2 threads (`store::argon2_pool`), and a
//! burst of logins must not occupy the threads deposits save messages on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// The file I/O pool's size: threads kept when idle, and the most (tokio's
/// blocking pool allows 512; a message's fsyncs are what they wait for,
/// and more of them do not make the disk faster).
const FILES: Limits = Limits {
    name: "file-io",
    min: 8,
    max: 128,
};

/// PIN checks: Argon2 runs one per core, so more threads only queue there.
const PIN_CHECKS: Limits = Limits {
    name: "pin-check",
    min: 2,
    max: 16,
};

struct Limits {
    name: &'static str,
    min: usize,
    max: usize,
}

/// A thread beyond its pool's minimum leaves after this long without work.
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
    limits: &'static Limits,
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
    run_on(files(), f).await
}

/// Runs a PIN check (which waits for Argon2) on a thread of its own pool.
pub async fn run_pin_check<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, IoPoolError> {
    run_on(pin_checks(), f).await
}

/// Queues `f` on a file I/O thread without waiting for it.
pub fn spawn(f: impl FnOnce() + Send + 'static) -> Result<(), IoPoolError> {
    spawn_on(files(), f)
}

async fn run_on<T: Send + 'static>(
    pool: Option<&'static Pool>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, IoPoolError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn_on(pool, move || {
        let _ = tx.send(f());
    })?;
    // A panicking job drops its sender.
    rx.await.map_err(|_| IoPoolError::Panicked)
}

fn spawn_on(
    pool: Option<&'static Pool>,
    f: impl FnOnce() + Send + 'static,
) -> Result<(), IoPoolError> {
    let pool = pool.ok_or(IoPoolError::Unavailable)?;
    pool.jobs
        .send(Box::new(f))
        .map_err(|_| IoPoolError::Unavailable)
}

fn files() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<&'static Pool>> = OnceLock::new();
    *POOL.get_or_init(|| Pool::start(&FILES))
}

fn pin_checks() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<&'static Pool>> = OnceLock::new();
    *POOL.get_or_init(|| Pool::start(&PIN_CHECKS))
}

impl Pool {
    fn start(limits: &'static Limits) -> Option<&'static Pool> {
        let (jobs, receiver) = mpsc::channel();
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            limits,
            jobs,
            receiver: Mutex::new(receiver),
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
        }));
        for _ in 0..limits.min {
            pool.grow();
        }
        (pool.threads.load(Ordering::Acquire) > 0).then_some(pool)
    }

    /// One more thread, unless at the pool's maximum.
    fn grow(&'static self) {
        let max = self.limits.max;
        let reserved = self
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name(self.limits.name.into())
            .spawn(move || self.work());
        if let Err(e) = spawned {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(error = %e, pool = self.limits.name, "starting a thread");
        }
    }

    /// Whether this idle thread may leave (the pool keeps its minimum).
    fn shrink(&self) -> bool {
        let min = self.limits.min;
        self.threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > min).then_some(n - 1)
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

    #[tokio::test]
    async fn pin_checks_run_on_their_own_threads() {
        let name = run_pin_check(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("pin-check"));
        let name = run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("file-io"));
        assert!(matches!(
            run_pin_check(|| -> u8 { panic!("a PIN bug") }).await,
            Err(IoPoolError::Panicked)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grows_while_its_threads_are_blocked_and_shrinks_when_idle() {
        // Twice the minimum, all blocked at once: only possible if the pool
        // started more threads while its first ones were busy.
        let n = FILES.min * 2;
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
        let pool = files().unwrap();
        assert!(pool.threads.load(Ordering::Acquire) >= n);
        assert!(pool.threads.load(Ordering::Acquire) <= FILES.max);
        // Idle threads beyond the minimum leave (other tests may hold a few).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while pool.threads.load(Ordering::Acquire) >= n && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(pool.threads.load(Ordering::Acquire) < n);
    }
}
