//! Shared harness for the integration tests: real `voxmail` server
//! processes, real SIPp peers, generated speech and RTP captures, and checks
//! on what the server stored.
//!
//! Every process started here is owned by a guard that kills it on drop,
//! including when a test panics. Every wait has a deadline. All traffic is
//! on 127.0.0.1.

#![allow(dead_code)]

pub mod audio;
pub mod deposit;
pub mod http;
pub mod net;
pub mod pcap;
pub mod rtp_sniff;
pub mod server;
pub mod sipp;
pub mod store;

use std::time::{Duration, Instant};

/// SIPp plays pcaps through a raw socket, and [`rtp_sniff`] reads one:
/// say so plainly if we are not root.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        uid, "0",
        "these tests need raw sockets (SIPp's play_pcap_audio, the RTP sniffer): \
         run them as root (or with CAP_NET_RAW)"
    );
}

/// Polls `cond` every 50 ms until it returns `Some`, or `deadline` passes.
pub fn wait_for<T>(deadline: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The repository root (where `config.toml` and `prompts/` live).
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The last `max` characters of `s` (on a char boundary), for failure output.
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Output of a helper process run with [`run_with_deadline`].
pub struct ProcOutput {
    /// Exit code; `None` when killed by a signal (including our deadline).
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion, killing it if it outlives `deadline`. Stdout and
/// stderr are captured (drained on threads so the child never blocks).
pub fn run_with_deadline(cmd: &mut std::process::Command, deadline: Duration) -> ProcOutput {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut guard = ChildGuard(Some(child));
    let end = Instant::now() + deadline;
    let (code, timed_out) = loop {
        let child = guard.0.as_mut().unwrap();
        match child.try_wait() {
            Ok(Some(status)) => break (status.code(), false),
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait {cmd:?}: {e}"),
        }
    };
    guard.0 = None;
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    ProcOutput {
        code,
        timed_out,
        stdout,
        stderr,
    }
}

/// Kills and reaps the child on drop (for panics between spawn and wait).
pub struct ChildGuard(pub Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
