//! Runs SIPp scenarios from `tests/sipp/` against a server.
//!
//! Each run gets its own work directory holding a copy of the scenario and
//! the media files it plays (SIPp resolves `play_pcap_audio` and
//! `rtp_stream` file names relative to its working directory), the error
//! log (`-trace_err`) and the message log (`-trace_msg`). SIPp is always run
//! with `-m 1`, a global `-timeout` (+ `-timeout_error`), and is killed by
//! the harness if it outlives that by 15 s.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{net, repo_root, run_with_deadline, tail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

pub struct SippOpts {
    /// `-s`: the user part of the Request-URI (`[service]`).
    pub service: String,
    pub transport: Transport,
    /// `-cid_str`: the exact Call-ID of the (single) call.
    pub call_id: String,
    /// Files copied into SIPp's working directory: (name there, source).
    pub files: Vec<(String, PathBuf)>,
    /// `-set name value` (scenario `<Global variables=...>`).
    pub sets: Vec<(String, String)>,
    /// `-key name value` (`[name]` in messages).
    pub keys: Vec<(String, String)>,
    /// SIPp's global `-timeout`.
    pub timeout: Duration,
    /// Any other SIPp arguments.
    pub extra_args: Vec<String>,
    /// Where `-trace_msg` writes (default: `messages.log` in the run's work
    /// directory). SIPp flushes it after every message, so a test may read
    /// it while the scenario runs.
    pub message_file: Option<PathBuf>,
}

impl SippOpts {
    pub fn new(service: &str) -> SippOpts {
        static N: AtomicU32 = AtomicU32::new(0);
        SippOpts {
            service: service.to_string(),
            transport: Transport::Udp,
            call_id: format!(
                "voxtest-{}-{}@127.0.0.1",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
            files: Vec::new(),
            sets: Vec::new(),
            keys: Vec::new(),
            timeout: Duration::from_secs(30),
            extra_args: Vec::new(),
            message_file: None,
        }
    }

    pub fn file(mut self, name: &str, src: &Path) -> Self {
        self.files.push((name.to_string(), src.to_path_buf()));
        self
    }

    pub fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.sets.push((name.to_string(), value.to_string()));
        self
    }

    pub fn key(mut self, name: &str, value: impl ToString) -> Self {
        self.keys.push((name.to_string(), value.to_string()));
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.to_string());
        self
    }

    pub fn transport(mut self, t: Transport) -> Self {
        self.transport = t;
        self
    }

    pub fn message_file(mut self, path: &Path) -> Self {
        self.message_file = Some(path.to_path_buf());
        self
    }
}

/// One SIP message from SIPp's `-trace_msg` log.
#[derive(Debug, Clone)]
pub struct LoggedMsg {
    pub sent: bool,
    pub text: String,
}

impl LoggedMsg {
    /// The status code, for responses.
    pub fn status(&self) -> Option<u16> {
        let first = self.text.lines().next()?;
        let rest = first.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// The method, for requests.
    pub fn method(&self) -> Option<&str> {
        let first = self.text.lines().next()?;
        if first.starts_with("SIP/2.0") {
            return None;
        }
        first.split_whitespace().next()
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        for line in self.text.lines().skip(1) {
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.trim().eq_ignore_ascii_case(name)
            {
                return Some(v.trim());
            }
        }
        None
    }

    pub fn body(&self) -> &str {
        match self.text.find("\r\n\r\n") {
            Some(i) => &self.text[i + 4..],
            None => match self.text.find("\n\n") {
                Some(i) => &self.text[i + 2..],
                None => "",
            },
        }
    }

    /// The `tag` parameter of the To header.
    pub fn to_tag(&self) -> Option<String> {
        let to = self.header("To").or_else(|| self.header("t"))?;
        to.split(';')
            .skip(1)
            .find_map(|p| p.trim().strip_prefix("tag=").map(str::to_string))
    }
}

pub struct SippRun {
    pub scenario: String,
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub errors_log: String,
    pub messages_log: String,
    pub call_id: String,
    pub media_port: u16,
    pub work: tempfile::TempDir,
}

impl SippRun {
    /// Everything useful to diagnose a failed run.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sipp {} exited with {:?} (harness timeout: {})\nargs: {}",
            self.scenario,
            self.code,
            self.timed_out,
            self.args.join(" ")
        );
        let _ = writeln!(s, "--- sipp stderr ---\n{}", tail(&self.stderr, 6_000));
        let _ = writeln!(
            s,
            "--- sipp stdout (tail) ---\n{}",
            tail(&self.stdout, 4_000)
        );
        let _ = writeln!(
            s,
            "--- sipp errors log ---\n{}",
            tail(&self.errors_log, 8_000)
        );
        let _ = writeln!(
            s,
            "--- sipp messages log ---\n{}",
            tail(&self.messages_log, 12_000)
        );
        s
    }

    /// SIPp exited 0: every call of the scenario succeeded.
    pub fn assert_success(&self) {
        assert!(
            self.code == Some(0),
            "SIPp scenario failed\n{}",
            self.report()
        );
    }

    /// The SIP messages SIPp sent and received, in order.
    pub fn messages(&self) -> Vec<LoggedMsg> {
        parse_messages_log(&self.messages_log)
    }

    pub fn received(&self) -> Vec<LoggedMsg> {
        self.messages().into_iter().filter(|m| !m.sent).collect()
    }
}

/// Splits a `-trace_msg` log into messages. Each message is preceded by a
/// line `----...---- <timestamp>` and a line like `UDP message sent (N bytes):`
/// or `TCP message received [N] bytes :`, then a blank line.
pub fn parse_messages_log(log: &str) -> Vec<LoggedMsg> {
    let mut out = Vec::new();
    let mut cur: Option<LoggedMsg> = None;
    let mut lines = log.split('\n').peekable();
    while let Some(line) = lines.next() {
        let l = line.trim_end_matches('\r');
        let is_marker = l.contains("message sent") || l.contains("message received");
        if l.starts_with("-----") || is_marker {
            if is_marker {
                if let Some(m) = cur.take() {
                    out.push(m);
                }
                cur = Some(LoggedMsg {
                    sent: l.contains("message sent"),
                    text: String::new(),
                });
                // Skip the blank line after the marker.
                if lines.peek().is_some_and(|n| n.trim().is_empty()) {
                    lines.next();
                }
            }
            continue;
        }
        if let Some(m) = cur.as_mut() {
            m.text.push_str(l);
            m.text.push_str("\r\n");
        }
    }
    if let Some(m) = cur.take() {
        out.push(m);
    }
    for m in &mut out {
        let trimmed = m.text.trim_end_matches("\r\n").len();
        // Keep the header/body separator; drop the log's trailing padding.
        if !m.text.contains("\r\n\r\n") {
            m.text.truncate(trimmed);
        }
    }
    out
}

/// Path of a scenario in `tests/sipp/`.
pub fn scenario_path(name: &str) -> PathBuf {
    repo_root().join("tests").join("sipp").join(name)
}

/// Runs `tests/sipp/<scenario>` once against `target`.
pub fn run_sipp(scenario: &str, target: SocketAddr, opts: &SippOpts) -> SippRun {
    let work = tempfile::Builder::new()
        .prefix("voxmail-sipp-")
        .tempdir()
        .expect("tempdir");
    let scen_src = scenario_path(scenario);
    std::fs::copy(&scen_src, work.path().join(scenario))
        .unwrap_or_else(|e| panic!("copy {}: {e}", scen_src.display()));
    for (name, src) in &opts.files {
        std::fs::copy(src, work.path().join(name))
            .unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    }
    let sip_port = net::free_port();
    let control_port = net::free_port();
    let media_port = net::free_port_block(4);
    let errors = work.path().join("errors.log");
    let messages = opts
        .message_file
        .clone()
        .unwrap_or_else(|| work.path().join("messages.log"));
    let transport = match opts.transport {
        Transport::Udp => "u1",
        Transport::Tcp => "t1",
    };
    let mut args: Vec<String> = vec![
        target.to_string(),
        "-sf".into(),
        scenario.into(),
        "-m".into(),
        "1".into(),
        "-t".into(),
        transport.into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-bind_local".into(),
        "-p".into(),
        sip_port.to_string(),
        "-mi".into(),
        "127.0.0.1".into(),
        "-mp".into(),
        media_port.to_string(),
        "-cp".into(),
        control_port.to_string(),
        "-s".into(),
        opts.service.clone(),
        "-cid_str".into(),
        opts.call_id.clone(),
        "-timeout".into(),
        format!("{}s", opts.timeout.as_secs().max(1)),
        "-timeout_error".into(),
        "-nostdin".into(),
        "-trace_err".into(),
        "-error_file".into(),
        errors.display().to_string(),
        "-trace_msg".into(),
        "-message_file".into(),
        messages.display().to_string(),
    ];
    for (k, v) in &opts.sets {
        args.extend(["-set".into(), k.clone(), v.clone()]);
    }
    for (k, v) in &opts.keys {
        args.extend(["-key".into(), k.clone(), v.clone()]);
    }
    args.extend(opts.extra_args.iter().cloned());
    let out = run_with_deadline(
        Command::new("sipp").args(&args).current_dir(work.path()),
        opts.timeout + Duration::from_secs(15),
    );
    SippRun {
        scenario: scenario.to_string(),
        args,
        code: out.code,
        timed_out: out.timed_out,
        stdout: out.stdout,
        stderr: out.stderr,
        errors_log: std::fs::read_to_string(&errors).unwrap_or_default(),
        messages_log: String::from_utf8_lossy(&std::fs::read(&messages).unwrap_or_default())
            .into_owned(),
        call_id: opts.call_id.clone(),
        media_port,
        work,
    }
}
