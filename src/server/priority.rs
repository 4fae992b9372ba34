//! CPU priority of the control path: signalling and application threads.
//!
//! With SIPp beside it on two cores, a 4,000-call load keeps both cores
//! busy; under the fair scheduler voxmail's signalling thread and its two
//! tokio workers then share the CPU with some twenty SIPp threads and wait
//! several milliseconds per wake-up, answers pile up and a caller's greeting
//! and beep start seconds late. At nice [`CONTROL_NICE`] they run first
//! among ordinary threads (the real-time media threads still come before
//! them). The file I/O threads (`io_pool`: file creation, fsyncs) and
//! tokio's blocking pool stay at the default, so bulk store work does not
//! crowd out signalling, and Argon2's threads lower themselves to nice 10.
//! A raised thread must never wait on a lock such a thread holds (see
//! `io_pool` for the one that did). Best effort, like the media
//! threads' SCHED_FIFO: without CAP_SYS_NICE (or an RLIMIT_NICE that allows
//! it) every thread keeps the default.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::thread_nice;

/// The nice value of the signalling thread and the runtime's workers.
pub const CONTROL_NICE: libc::c_int = -10;

/// Whether the control thread could be raised (then the workers follow).
static RAISED: AtomicBool = AtomicBool::new(false);

/// Raise the calling thread, the one that runs the signalling loop, before
/// the runtime and the media threads start (threads inherit their
/// creator's nice value). Returns whether it was allowed.
pub fn raise_control_thread() -> bool {
    match thread_nice::set(CONTROL_NICE) {
        Ok(()) => {
            RAISED.store(true, Ordering::Relaxed);
            true
        }
        Err(e) => {
            tracing::debug!(error = %e, "signalling keeps the default priority");
            false
        }
    }
}

/// For every thread the runtime or `io_pool` starts: back to the default.
/// Such threads are started by a raised worker and would inherit its
/// priority.
pub fn reset_thread() {
    if RAISED.load(Ordering::Relaxed) {
        // Lowering one's own priority is always allowed.
        let _ = thread_nice::set(0);
    }
}

thread_local! {
    static WORKER_RAISED: Cell<bool> = const { Cell::new(false) };
}

/// Called each time a runtime worker parks (tokio calls this hook on
/// workers only, never on blocking threads): raise it the first time.
pub fn raise_worker_once() {
    if !RAISED.load(Ordering::Relaxed) || WORKER_RAISED.get() {
        return;
    }
    WORKER_RAISED.set(true);
    if let Err(e) = thread_nice::set(CONTROL_NICE) {
        tracing::debug!(error = %e, "a runtime worker keeps the default priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_raised_and_blocking_threads_reset_when_allowed() {
        std::thread::spawn(|| {
            let before = thread_nice::get();
            if !raise_control_thread() {
                // Not allowed here: nothing changes, nothing panics.
                reset_thread();
                raise_worker_once();
                assert_eq!(thread_nice::get(), before);
                return;
            }
            assert_eq!(thread_nice::get(), CONTROL_NICE);
            // A thread started by a raised thread inherits its nice value;
            // the runtime's start hook puts it back to the default, and a
            // worker's first park raises it again, once.
            std::thread::spawn(|| {
                assert_eq!(thread_nice::get(), CONTROL_NICE);
                reset_thread();
                assert_eq!(thread_nice::get(), 0);
                raise_worker_once();
                assert_eq!(thread_nice::get(), CONTROL_NICE);
                reset_thread();
                raise_worker_once();
                assert_eq!(thread_nice::get(), 0, "raised only on the first park");
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }
}
