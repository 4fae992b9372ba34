//! The calling thread's nice value. Linux keeps one per thread (the
//! thread's id stands for a process in `setpriority`), and new threads
//! inherit their creator's; the media, Argon2 and control-path threads each
//! set their own.

use std::io;

/// Set the calling thread's nice value. Lowering it needs CAP_SYS_NICE or
/// an RLIMIT_NICE that allows it; raising it is always allowed.
pub fn set(nice: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system calls on the calling thread's own id.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's nice value.
pub fn get() -> libc::c_int {
    // SAFETY: plain system calls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::getpriority(libc::PRIO_PROCESS, tid)
    }
}
