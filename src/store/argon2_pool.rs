//! Where Argon2 runs: threads of its own, one per core, at low CPU priority.
//!
//! A PIN check costs tens of milliseconds of CPU and 19 MiB. Run on the
//! blocking pool at normal priority, a burst of logins (1,000 phones
//! dialling `*99` within 25 s) took both cores from the media threads and
//! widened the gaps between outgoing RTP packets. Here at most one run per
//! core happens at once, on threads at nice 10: media (nice -10) and
//! signalling (nice 0) come first, and a login waits a little instead.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

type Job = Box<dyn FnOnce() + Send>;

/// Runs in progress, and the most seen at once (for tests).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
pub(super) static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The nice value of the Argon2 threads.
const NICE: libc::c_int = 10;

/// Runs `f` on an Argon2 thread and waits for its result. `None` if the
/// pool could not be started or `f` panicked.
pub(super) fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    pool()?
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send(job)
        .ok()?;
    rx.recv().ok()
}

fn pool() -> Option<&'static Mutex<Sender<Job>>> {
    static POOL: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for n in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || work(&rx));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "starting an Argon2 thread"),
            }
        }
        (started > 0).then(|| Mutex::new(tx))
    })
    .as_ref()
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let now = RUNNING.fetch_add(1, Ordering::Relaxed) + 1;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // A panic drops the job's sender: its caller gets `None`, and this
        // thread stays to serve the next one.
        let _ = catch_unwind(AssertUnwindSafe(job));
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lower_priority() {
    // SAFETY: plain system calls on the calling thread's own id.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "Argon2 thread keeps its priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_a_low_priority_thread_and_survives_a_panic() {
        let (name, nice) = run(|| {
            // SAFETY: getpriority on the calling thread.
            let nice = unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            };
            (std::thread::current().name().map(str::to_owned), nice)
        })
        .unwrap();
        assert!(name.unwrap().starts_with("argon2-"));
        // At least NICE: a test run already niced further stays so.
        assert!(nice >= NICE, "{nice}");
        assert_eq!(run(|| -> u8 { panic!("boom") }), None);
        assert_eq!(run(|| 7), Some(7));
    }
}
