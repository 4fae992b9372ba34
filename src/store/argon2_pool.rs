//! Where Argon2 runs: threads of its own, one per core, at low CPU priority.
//!
//! A PIN check costs tens of milliseconds of CPU and 19 MiB. Run on the
//! blocking pool at normal priority, a burst of logins (1,000 phones
//! dialling `*99` within 25 s) took both cores from the media threads and
//! widened the gaps between outgoing RTP packets. Here at most one run per
//! core happens at once, on threads at nice 10: media (nice -10) and
//! signalling (nice 0) come first, and a login waits a little instead.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError, mpsc};
use std::time::Duration;

use argon2::Block;

type Job = Box<dyn FnOnce() + Send>;

/// Runs in progress, and the most seen at once (for tests).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
pub(super) static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Threads that ran a job and have not given their memory back yet.
static RESIDENT: AtomicUsize = AtomicUsize::new(0);

/// The nice value of the Argon2 threads.
const NICE: libc::c_int = 10;

/// An Argon2 thread keeps its working memory this long after its last run.
const KEEP_MEMORY: Duration = if cfg!(test) {
    Duration::from_millis(300)
} else {
    Duration::from_secs(2)
};

thread_local! {
    /// This thread's Argon2 working memory, reused from run to run.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Lends `f` at least `blocks` blocks of this thread's Argon2 memory.
///
/// Why: a fresh 19 MiB buffer per PIN check meant an mmap and an munmap
/// each time (large allocations are mmapped, see `main.rs`), and both take
/// the process's memory-map lock for writing. The real-time media threads
/// need that lock now and then (freeing a large buffer), and while a nice-10
/// Argon2 thread held it on two saturated cores, a media tick started late.
/// A burst of logins now maps the memory once per thread; it is returned
/// after [`KEEP_MEMORY`] without a run. Every block is written before it is
/// read, so reusing old contents is safe.
pub(super) fn with_memory<R>(blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < blocks {
            m.resize(blocks, Block::default());
        }
        f(&mut m[..blocks])
    })
}

/// Runs `f` on an Argon2 thread and waits for its result. `None` if the
/// pool could not be started or `f` panicked.
pub(super) fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    let queue = pool()?;
    queue
        .jobs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push_back(job);
    queue.ready.notify_one();
    rx.recv().ok()
}

/// Jobs waiting for a thread. A condition variable rather than a channel
/// behind a mutex: every idle thread waits on its own clock, so each gives
/// its memory back. (With a shared receiver, the thread holding it waited
/// for the next job while the others waited for the lock, never timing
/// out: after a burst of logins one thread kept its 19 MiB forever.)
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

fn pool() -> Option<&'static Queue> {
    static POOL: OnceLock<Option<&'static Queue>> = OnceLock::new();
    *POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let queue: &'static Queue = Box::leak(Box::new(Queue {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        }));
        let mut started = 0;
        for n in 0..threads {
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || work(queue));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "starting an Argon2 thread"),
            }
        }
        (started > 0).then_some(queue)
    })
}

fn work(queue: &Queue) {
    lower_priority();
    let mut resident = false;
    loop {
        let job = {
            let mut jobs = queue.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(job) = jobs.pop_front() {
                    break Some(job);
                }
                if !resident {
                    jobs = queue
                        .ready
                        .wait(jobs)
                        .unwrap_or_else(PoisonError::into_inner);
                    continue;
                }
                let (guard, waited) = queue
                    .ready
                    .wait_timeout(jobs, KEEP_MEMORY)
                    .unwrap_or_else(PoisonError::into_inner);
                jobs = guard;
                if waited.timed_out() && jobs.is_empty() {
                    break None;
                }
            }
        };
        let Some(job) = job else {
            // Idle: give the working memory's pages back (outside the lock).
            MEMORY.with(|m| release_pages(&mut m.borrow_mut()));
            resident = false;
            RESIDENT.fetch_sub(1, Ordering::Relaxed);
            continue;
        };
        if !resident {
            resident = true;
            RESIDENT.fetch_add(1, Ordering::Relaxed);
        }
        let now = RUNNING.fetch_add(1, Ordering::Relaxed) + 1;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // A panic drops the job's sender: its caller gets `None`, and this
        // thread stays to serve the next one.
        let _ = catch_unwind(AssertUnwindSafe(job));
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Hands the pages of `memory` back to the system but keeps the mapping.
/// Freeing it would unmap it, which takes the memory-map lock for writing,
/// and this nice-10 thread could be preempted holding it while a media
/// thread waits to fault in a page; `MADV_DONTNEED` takes the lock only for
/// reading. The pages read as zeros afterwards, which Argon2 overwrites.
fn release_pages(memory: &mut [Block]) {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    let start = memory.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(memory);
    let (first, last) = (start.next_multiple_of(page), end / page * page);
    if last > first {
        // SAFETY: whole pages inside `memory`, which this thread owns
        // exclusively; any bit pattern is a valid Block.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_DONTNEED,
            )
        };
    }
}

fn lower_priority() {
    if let Err(e) = crate::thread_nice::set(NICE) {
        tracing::debug!(error = %e, "Argon2 thread keeps its priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_a_low_priority_thread_and_survives_a_panic() {
        let (name, nice) = run(|| {
            let nice = crate::thread_nice::get();
            (std::thread::current().name().map(str::to_owned), nice)
        })
        .unwrap();
        assert!(name.unwrap().starts_with("argon2-"));
        // At least NICE: a test run already niced further stays so.
        assert!(nice >= NICE, "{nice}");
        assert_eq!(run(|| -> u8 { panic!("boom") }), None);
        assert_eq!(run(|| 7), Some(7));
    }

    #[test]
    fn every_thread_gives_its_memory_back_when_idle() {
        let threads = std::thread::available_parallelism().unwrap().get();
        // Keep every thread busy at once, so each has run a job.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let b = barrier.clone();
                std::thread::spawn(move || run(move || with_memory(64, |_| b.wait())))
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap().is_some());
        }
        // Other tests may use the pool meanwhile; once it is idle, no
        // thread holds memory.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while RESIDENT.load(Ordering::Relaxed) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} threads kept their memory",
                RESIDENT.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn released_pages_read_as_zeros_and_stay_usable() {
        let mut memory = vec![Block::default(); 64];
        let len = std::mem::size_of_val(&memory[..]);
        let bytes = |m: &mut Vec<Block>| {
            // SAFETY: a Block is plain 64-bit words; viewed as bytes for the test.
            unsafe { std::slice::from_raw_parts_mut(m.as_mut_ptr().cast::<u8>(), len) }
        };
        bytes(&mut memory).fill(0xA5);
        let before = memory.as_ptr();
        release_pages(&mut memory);
        assert_eq!(memory.as_ptr(), before, "the mapping stays");
        // 64 KiB spans whole pages: those now read as zeros; bytes outside
        // them (under a page at each end) keep their value.
        let zeros = bytes(&mut memory).iter().filter(|x| **x == 0).count();
        assert!(zeros >= len - 2 * 4096, "{zeros} of {len} bytes zero");
        bytes(&mut memory)[0] = 1;
        assert_eq!(bytes(&mut memory)[0], 1);
    }

    #[test]
    fn a_thread_reuses_its_argon2_memory() {
        let (first, again, grown) = run(|| {
            let first = with_memory(8, |m| (m.as_ptr() as usize, m.len()));
            let again = with_memory(4, |m| (m.as_ptr() as usize, m.len()));
            let grown = with_memory(4096, |m| m.len());
            (first, again, grown)
        })
        .unwrap();
        assert_eq!(first.1, 8);
        assert_eq!(again, (first.0, 4), "same memory, the length asked for");
        assert_eq!(grown, 4096);
    }
}
