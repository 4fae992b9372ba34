//! A real `voxmail run` process, killed when its guard drops.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{net, repo_root, tail};

/// How long the server may take to print its `listening` line.
pub const READY_DEADLINE: Duration = Duration::from_secs(20);

/// The server binary: `$VOXMAIL_TEST_BIN` if set (to run the suite against
/// another build, e.g. a release binary), else the one cargo built.
pub fn server_binary() -> PathBuf {
    match std::env::var_os("VOXMAIL_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_voxmail")),
    }
}

/// The shipped `config.toml`, as text.
pub fn shipped_config() -> String {
    fs::read_to_string(repo_root().join("config.toml")).expect("read shipped config.toml")
}

/// The shipped config with `answer_delay_ms = <ms>` inserted after `[sip]`.
pub fn config_with_answer_delay(ms: u64) -> String {
    let text = shipped_config();
    let mut out = String::with_capacity(text.len() + 32);
    let mut inserted = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if !inserted && line.trim() == "[sip]" {
            out.push_str(&format!("answer_delay_ms = {ms}\n"));
            inserted = true;
        }
    }
    assert!(inserted, "shipped config.toml has no [sip] table");
    out
}

/// `text` with `lines` inserted after the line `[table]` (or `[table]`
/// and the lines appended if the table is missing).
pub fn config_with_lines(text: &str, table: &str, lines: &str) -> String {
    let header = format!("[{table}]");
    let mut out = String::with_capacity(text.len() + lines.len() + 16);
    let mut inserted = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if !inserted && line.trim() == header {
            out.push_str(lines.trim_end());
            out.push('\n');
            inserted = true;
        }
    }
    if !inserted {
        out.push_str(&format!("\n{header}\n{}\n", lines.trim_end()));
    }
    out
}

/// The shipped config with the value of `key` (first `key = ...` line)
/// replaced by `value` (TOML text).
pub fn config_with_value(key: &str, value: &str) -> String {
    config_with_value_in(&shipped_config(), key, value)
}

/// `text` with the value of `key` (first `key = ...` line) replaced.
pub fn config_with_value_in(text: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut done = false;
    for line in text.lines() {
        let is_key = line
            .split_once('=')
            .is_some_and(|(k, _)| k.trim() == key && !line.trim_start().starts_with('#'));
        if is_key && !done {
            out.push_str(&format!("{key} = {value}\n"));
            done = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(done, "the config has no `{key} =` line");
    out
}

/// A running server. Dropping it kills the process (SIGKILL) and reaps it;
/// if the thread is panicking, the server's log is printed first.
pub struct Server {
    child: Child,
    /// The SIP address (UDP and TCP) the server announced.
    pub sip: SocketAddr,
    /// The data directory passed with `--data-dir`.
    pub data_dir: PathBuf,
    /// The RTP port range passed with `--rtp-ports`.
    pub rtp_ports: (u16, u16),
    /// Where the server's stderr (its log) goes.
    pub log_path: PathBuf,
    /// The full `listening ...` line.
    pub ready_line: String,
    _work: tempfile::TempDir,
}

impl Server {
    /// Starts the server with the shipped `config.toml`.
    pub fn start_shipped(data_dir: &Path) -> Server {
        Server::start(&shipped_config(), data_dir)
    }

    /// Writes `config_text` to a temporary file and starts
    /// `voxmail run --config <file> --sip-listen 127.0.0.1:0 --data-dir <dir>
    /// --rtp-ports A-B`, with A-B a block of free ports. Waits (deadline 20 s)
    /// for the `listening sip=...` line on stdout and parses the port.
    pub fn start(config_text: &str, data_dir: &Path) -> Server {
        Server::start_in(config_text, data_dir, &repo_root())
    }

    /// [`Server::start`] with `cwd` as the server's working directory: its
    /// `dialplans/` (if any) is the dial plan, else the repository's is
    /// used; prompts fall back to the repository's `prompts/`.
    pub fn start_in(config_text: &str, data_dir: &Path, cwd: &Path) -> Server {
        Server::start_at(config_text, data_dir, cwd, "127.0.0.1:0")
    }

    /// [`Server::start_in`] listening for SIP on `sip_listen` (a fixed
    /// port: a restart on the address phones already know).
    pub fn start_at(config_text: &str, data_dir: &Path, cwd: &Path, sip_listen: &str) -> Server {
        let work = tempfile::Builder::new()
            .prefix("voxmail-server-")
            .tempdir()
            .expect("tempdir");
        let config_path = work.path().join("config.toml");
        fs::write(&config_path, config_text).expect("write config");
        fs::create_dir_all(data_dir).expect("create data dir");
        let log_path = work.path().join("server.log");
        let log = fs::File::create(&log_path).expect("create log");

        let rtp_min = net::free_port_block(40);
        let rtp_max = rtp_min + 39;
        let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".to_string());

        let mut child = Command::new(server_binary())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--sip-listen")
            .arg(sip_listen)
            // The HTTP API starts with the server: any free port, so that
            // servers of concurrent tests never collide on the default.
            .arg("--http-listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--rtp-ports")
            .arg(format!("{rtp_min}-{rtp_max}"))
            .current_dir(cwd)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn voxmail");

        // Drain stdout for the life of the process so it never blocks.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Nobody listens any more; keep draining.
                }
            }
        });

        let mut server = Server {
            child,
            sip: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.to_path_buf(),
            rtp_ports: (rtp_min, rtp_max),
            log_path,
            ready_line: String::new(),
            _work: work,
        };

        let deadline = Instant::now() + READY_DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "voxmail did not print its listening line within {READY_DEADLINE:?}; \
                     stdout so far: {seen:?}\n--- server log ---\n{}",
                    server.log()
                );
            }
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(addr) = parse_listening(&line) {
                        server.sip = addr;
                        server.ready_line = line;
                        break;
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        panic!(
                            "voxmail exited before it was ready ({status}); stdout: {seen:?}\n\
                             --- server log ---\n{}",
                            server.log()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().ok();
                    panic!(
                        "voxmail closed stdout before it was ready (exit {status:?}); \
                         stdout: {seen:?}\n--- server log ---\n{}",
                        server.log()
                    );
                }
            }
        }
        assert_eq!(
            server.sip.ip().to_string(),
            "127.0.0.1",
            "server listens on {} (line: {})",
            server.sip,
            server.ready_line
        );
        assert_ne!(server.sip.port(), 0, "line: {}", server.ready_line);
        assert!(
            server.ready_line.contains("udp") && server.ready_line.contains("tcp"),
            "listening line does not announce udp and tcp: {}",
            server.ready_line
        );
        server
    }

    /// The server's log (stderr) so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Panics (with the log) if the server process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "voxmail exited unexpectedly ({status})\n--- server log ---\n{}",
                tail(&self.log(), 20_000)
            );
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP (reload the dial plans).
    pub fn sighup(&mut self) {
        self.assert_running();
        let out = super::run_with_deadline(
            Command::new("kill")
                .arg("-HUP")
                .arg(self.child.id().to_string()),
            Duration::from_secs(5),
        );
        assert_eq!(out.code, Some(0), "kill -HUP failed: {}", out.stderr);
    }

    /// Waits (up to `deadline`) until the log has more than `after` lines
    /// matching `pred` in total; returns the first new matching line.
    pub fn wait_log_line(
        &self,
        after: usize,
        deadline: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        super::wait_for(deadline, || {
            let log = self.log();
            log.lines()
                .filter(|l| pred(l))
                .nth(after)
                .map(str::to_owned)
        })
    }

    /// How many log lines match `pred` so far.
    pub fn count_log_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.log().lines().filter(|l| pred(l)).count()
    }

    /// The SIP URI of a mailbox on this server.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.sip)
    }

    /// The HTTP address (API, web inbox) from the `listening` line.
    pub fn http(&self) -> SocketAddr {
        self.ready_line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("http="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no http= in the listening line: {}", self.ready_line))
    }

    /// Stops the server with SIGTERM (it saves its state on the way out)
    /// and waits up to `deadline` for it to exit; SIGKILL after that.
    pub fn stop(mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let _ = super::run_with_deadline(
            Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string()),
            Duration::from_secs(5),
        );
        super::wait_for(deadline, || self.child.try_wait().ok().flatten())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- voxmail log ({}) ---\n{}\n--- end of voxmail log ---",
                self.log_path.display(),
                tail(&self.log(), 30_000)
            );
        }
    }
}

/// Parses `listening sip=127.0.0.1:PORT transports=udp,tcp rtp=MIN-MAX data=DIR`.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = line.trim().strip_prefix("listening ")?;
    rest.split_whitespace()
        .find_map(|kv| kv.strip_prefix("sip="))
        .and_then(|a| a.parse().ok())
}

/// Writes a recorded greeting for `mailbox`: `secs` of a soft 440 Hz tone,
/// 8 kHz mono 16-bit, at `<data>/mailboxes/<box>/greetings/unavailable.wav`.
pub fn install_greeting(data_dir: &Path, mailbox: &str, secs: f64) -> PathBuf {
    let dir = data_dir.join("mailboxes").join(mailbox).join("greetings");
    fs::create_dir_all(&dir).expect("create greetings dir");
    let path = dir.join("unavailable.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create greeting wav");
    let n = (secs * 8000.0) as usize;
    for i in 0..n {
        let t = i as f64 / 8000.0;
        let s = (t * 440.0 * std::f64::consts::TAU).sin() * 4000.0;
        w.write_sample(s as i16).unwrap();
    }
    w.finalize().unwrap();
    path
}

/// Writes a recorded greeting `<data>/mailboxes/<box>/greetings/<stem>.wav`
/// (`unavailable`, `busy`, `temp`, `name`): `secs` of a soft tone at
/// `freq` Hz, 8 kHz mono 16-bit.
pub fn install_greeting_named(
    data_dir: &Path,
    mailbox: &str,
    stem: &str,
    secs: f64,
    freq: f64,
) -> PathBuf {
    let dir = data_dir.join("mailboxes").join(mailbox).join("greetings");
    fs::create_dir_all(&dir).expect("create greetings dir");
    let path = dir.join(format!("{stem}.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create greeting wav");
    let n = (secs * 8000.0) as usize;
    for i in 0..n {
        let t = i as f64 / 8000.0;
        let s = (t * freq * std::f64::consts::TAU).sin() * 4000.0;
        w.write_sample(s as i16).unwrap();
    }
    w.finalize().unwrap();
    path
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_listening_line() {
        let a = super::parse_listening(
            "listening sip=127.0.0.1:40123 transports=udp,tcp rtp=31000-31099 data=/tmp/x",
        )
        .unwrap();
        assert_eq!(a.port(), 40123);
        assert!(super::parse_listening("hello").is_none());
    }

    #[test]
    fn config_value_is_replaced() {
        let c = super::config_with_value("silence_timeout_seconds", "2");
        assert!(c.contains("\nsilence_timeout_seconds = 2\n"));
        assert!(!c.contains("silence_timeout_seconds = 10"));
    }

    #[test]
    fn answer_delay_is_inserted_after_sip_table() {
        let c = super::config_with_answer_delay(2000);
        let i = c.find("[sip]\n").unwrap();
        assert!(c[i..].starts_with("[sip]\nanswer_delay_ms = 2000\n"));
    }
}
