//! Malformed SIP, in the spirit of RFC 4475's torture tests (the corpus in
//! `tests/malformed/` is our own). Each `<case>.sip` is sent to one running
//! server over the transports its `<case>.expect` names; the response status
//! (or `none`) must be one the `.expect` file allows; and after EACH message
//! the server must still answer an OPTIONS with 200 within 2 s.
//!
//! `.sip` files are templates: LF line ends become CRLF, and
//! `{{HOST}} {{PORT}} {{LPORT}} {{TRANSPORT}} {{CALLID}} {{BRANCH}}` are
//! filled in (`{{CL}}` = the real body length, `{{xHH}}` = the byte 0xHH).
//! `.expect` files hold `expect: <codes or none>` (any of them passes),
//! optionally `expect_tcp:` (overrides over TCP), `transports: udp [tcp]`,
//! and `#` comments.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::server::Server;

/// How long to wait for an answer to a malformed message before calling the
/// outcome `none` (final responses only; 1xx are skipped).
const ANSWER_WAIT: Duration = Duration::from_millis(1500);
/// The liveness check: OPTIONS must get 200 within this.
const LIVENESS: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tp {
    Udp,
    Tcp,
}

impl Tp {
    fn name(self) -> &'static str {
        match self {
            Tp::Udp => "UDP",
            Tp::Tcp => "TCP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    None,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Status(c) => write!(f, "{c}"),
            Outcome::None => write!(f, "none"),
        }
    }
}

struct Case {
    name: String,
    template: Vec<u8>,
    expect: Vec<Outcome>,
    expect_tcp: Option<Vec<Outcome>>,
    transports: Vec<Tp>,
}

fn corpus_dir() -> PathBuf {
    common::repo_root().join("tests").join("malformed")
}

fn parse_outcomes(s: &str, file: &Path) -> Vec<Outcome> {
    s.split_whitespace()
        .map(|w| match w {
            "none" => Outcome::None,
            code => Outcome::Status(
                code.parse()
                    .unwrap_or_else(|_| panic!("{}: bad outcome {code:?}", file.display())),
            ),
        })
        .collect()
}

fn load_corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read tests/malformed")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("sip"))
        .collect();
    entries.sort();
    for sip in entries {
        let name = sip.file_stem().unwrap().to_string_lossy().into_owned();
        let exp_path = sip.with_extension("expect");
        let exp_text = std::fs::read_to_string(&exp_path).unwrap_or_else(|e| {
            panic!("{}: {e} (every .sip needs an .expect)", exp_path.display())
        });
        let mut expect = None;
        let mut expect_tcp = None;
        let mut transports = vec![Tp::Udp];
        for line in exp_text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("{}: bad line {line:?}", exp_path.display()));
            match k.trim() {
                "expect" => expect = Some(parse_outcomes(v, &exp_path)),
                "expect_tcp" => expect_tcp = Some(parse_outcomes(v, &exp_path)),
                "transports" => {
                    transports = v
                        .split_whitespace()
                        .map(|t| match t {
                            "udp" => Tp::Udp,
                            "tcp" => Tp::Tcp,
                            _ => panic!("{}: unknown transport {t:?}", exp_path.display()),
                        })
                        .collect()
                }
                other => panic!("{}: unknown key {other:?}", exp_path.display()),
            }
        }
        cases.push(Case {
            name,
            template: std::fs::read(&sip).unwrap(),
            expect: expect.unwrap_or_else(|| panic!("{}: no expect: line", exp_path.display())),
            expect_tcp,
            transports,
        });
    }
    cases
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fills a template: CRLF line ends, placeholders, bytes, body length.
fn render(template: &[u8], server: SocketAddr, local_port: u16, tp: Tp) -> Vec<u8> {
    let id = unique();
    let mut text: Vec<u8> = Vec::with_capacity(template.len() + 64);
    for &b in template {
        if b == b'\n' {
            text.extend_from_slice(b"\r\n");
        } else {
            text.push(b);
        }
    }
    let subst = |buf: Vec<u8>, key: &str, val: &str| -> Vec<u8> {
        let key = key.as_bytes();
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        while i < buf.len() {
            if buf[i..].starts_with(key) {
                out.extend_from_slice(val.as_bytes());
                i += key.len();
            } else {
                out.push(buf[i]);
                i += 1;
            }
        }
        out
    };
    text = subst(text, "{{HOST}}", "127.0.0.1");
    text = subst(text, "{{PORT}}", &server.port().to_string());
    text = subst(text, "{{LPORT}}", &local_port.to_string());
    text = subst(text, "{{TRANSPORT}}", tp.name());
    text = subst(text, "{{CALLID}}", &format!("malformed-{id}@127.0.0.1"));
    text = subst(text, "{{BRANCH}}", &format!("z9hG4bK-mf-{id}"));
    // {{xHH}} bytes.
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b"{{x") && i + 7 <= text.len() && &text[i + 5..i + 7] == b"}}" {
            let hex = std::str::from_utf8(&text[i + 3..i + 5]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("bad {{xHH}}"));
            i += 7;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    // {{CL}}: length of what follows the first blank line.
    if let Some(pos) = out.windows(4).position(|w| w == b"\r\n\r\n") {
        let body_len = out.len() - (pos + 4);
        out = subst(out, "{{CL}}", &body_len.to_string());
    }
    out
}

/// The status code of a SIP response, if `msg` starts like one.
fn status_of(msg: &[u8]) -> Option<u16> {
    let rest = msg.strip_prefix(b"SIP/2.0 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// Sends `bytes` in one datagram from a fresh socket; returns the first final
/// response status (1xx skipped), or `None` after `wait`.
fn send_udp(server: SocketAddr, bytes: impl Fn(u16) -> Vec<u8>, wait: Duration) -> Outcome {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let msg = bytes(port);
    sock.send_to(&msg, server).expect("send datagram");
    let end = Instant::now() + wait;
    let mut buf = vec![0u8; 70_000];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::None;
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => match status_of(&buf[..n]) {
                Some(code) if code >= 200 => return Outcome::Status(code),
                _ => continue, // 1xx, or something that is not a response
            },
            Err(_) => return Outcome::None,
        }
    }
}

/// Reads SIP responses from a stream until a final one, EOF, or `wait`.
fn read_tcp_final(stream: &mut TcpStream, wait: Duration) -> Outcome {
    let end = Instant::now() + wait;
    let mut acc: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        // Consume complete responses in `acc`.
        loop {
            while acc.starts_with(b"\r\n") {
                acc.drain(..2); // keep-alive pong
            }
            let Some(hdr_end) = acc.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&acc[..hdr_end]).into_owned();
            let cl: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    let n = n.trim();
                    (n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l"))
                        .then(|| v.trim().parse().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if acc.len() < hdr_end + 4 + cl {
                break;
            }
            let code = status_of(&acc);
            acc.drain(..hdr_end + 4 + cl);
            if let Some(c) = code
                && c >= 200
            {
                return Outcome::Status(c);
            }
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Outcome::None, // closed by the server
            Ok(n) => acc.extend_from_slice(&buf[..n]),
            Err(_) => return Outcome::None,
        }
    }
}

fn send_tcp(server: SocketAddr, bytes: impl Fn(u16) -> Vec<u8>, wait: Duration) -> Outcome {
    let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("TCP connect to {server}: {e}"));
    let port = stream.local_addr().unwrap().port();
    let msg = bytes(port);
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The server may close early on junk; that is an acceptable reaction.
    let _ = stream.write_all(&msg);
    let out = read_tcp_final(&mut stream, wait);
    let _ = stream.shutdown(Shutdown::Both);
    out
}

fn options_bytes(server: SocketAddr, local_port: u16, tp: Tp) -> Vec<u8> {
    let id = unique();
    format!(
        "OPTIONS sip:1001@{server} SIP/2.0\r\n\
         Via: SIP/2.0/{} 127.0.0.1:{local_port};branch=z9hG4bK-alive-{id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:liveness@127.0.0.1>;tag=alive{id}\r\n\
         To: <sip:1001@{server}>\r\n\
         Call-ID: alive-{id}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        tp.name()
    )
    .into_bytes()
}

/// The server still answers OPTIONS with 200 within 2 s (over `tp`).
fn assert_alive(server: &mut Server, tp: Tp, after: &str) {
    server.assert_running();
    let addr = server.sip;
    let start = Instant::now();
    let got = match tp {
        Tp::Udp => {
            // One socket, one transaction: retransmit like a UAC would.
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let msg = options_bytes(addr, sock.local_addr().unwrap().port(), Tp::Udp);
            let mut buf = vec![0u8; 70_000];
            let mut got = Outcome::None;
            'outer: while start.elapsed() < LIVENESS {
                sock.send_to(&msg, addr).unwrap();
                let slot_end = (Instant::now() + Duration::from_millis(500)).min(start + LIVENESS);
                loop {
                    let left = slot_end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    sock.set_read_timeout(Some(left)).unwrap();
                    match sock.recv_from(&mut buf) {
                        Ok((n, _)) => {
                            if let Some(c) = status_of(&buf[..n])
                                && c >= 200
                            {
                                got = Outcome::Status(c);
                                break 'outer;
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            got
        }
        Tp::Tcp => send_tcp(addr, |p| options_bytes(addr, p, Tp::Tcp), LIVENESS),
    };
    assert_eq!(
        got,
        Outcome::Status(200),
        "after {after}: OPTIONS over {} did not get 200 within {LIVENESS:?} (got {got})",
        tp.name()
    );
    server.assert_running();
}

fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("voxmail-data-")
        .tempdir()
        .unwrap()
}

#[test]
fn corpus_is_complete() {
    let cases = load_corpus();
    assert!(
        cases.len() >= 20,
        "only {} cases in tests/malformed",
        cases.len()
    );
    for c in &cases {
        assert!(!c.expect.is_empty(), "{}: empty expect", c.name);
        assert!(!c.transports.is_empty(), "{}: no transport", c.name);
    }
    assert!(cases.iter().any(|c| c.transports.contains(&Tp::Tcp)));
    // Rendering fills every placeholder.
    let addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    for c in &cases {
        let r = render(&c.template, addr, 40000, Tp::Udp);
        assert!(
            !r.windows(2).any(|w| w == b"{{"),
            "{}: unfilled placeholder in {:?}",
            c.name,
            String::from_utf8_lossy(&r)
        );
        assert!(
            !r.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "{}: bare LF",
            c.name
        );
    }
}

#[test]
fn malformed_corpus_gets_expected_answers_and_server_survives() {
    let cases = load_corpus();
    let data = data_dir();
    let mut server = Server::start_shipped(data.path());
    assert_alive(&mut server, Tp::Udp, "start");
    let addr = server.sip;

    let mut table: BTreeMap<(String, Tp), (String, Outcome, bool)> = BTreeMap::new();
    for case in &cases {
        for &tp in &case.transports {
            let render_for = |port: u16| render(&case.template, addr, port, tp);
            let got = match tp {
                Tp::Udp => send_udp(addr, render_for, ANSWER_WAIT),
                Tp::Tcp => send_tcp(addr, render_for, ANSWER_WAIT),
            };
            let allowed = match tp {
                Tp::Tcp => case.expect_tcp.as_ref().unwrap_or(&case.expect),
                Tp::Udp => &case.expect,
            };
            let ok = allowed.contains(&got);
            let allowed_s = allowed
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join("|");
            table.insert((case.name.clone(), tp), (allowed_s, got, ok));
            let what = format!("{} over {}", case.name, tp.name());
            // Liveness after EACH message, over UDP, and over TCP after TCP.
            assert_alive(&mut server, Tp::Udp, &what);
            if tp == Tp::Tcp {
                assert_alive(&mut server, Tp::Tcp, &what);
            }
        }
    }

    let mut report = String::from("case / transport / expected / got\n");
    let mut failures = 0;
    for ((name, tp), (allowed, got, ok)) in &table {
        report.push_str(&format!(
            "{} {name} {} expected {allowed} got {got}\n",
            if *ok { "  ok  " } else { "FAILED" },
            tp.name()
        ));
        if !ok {
            failures += 1;
        }
    }
    eprintln!("{report}");
    assert_eq!(
        failures, 0,
        "{failures} malformed case(s) got an unexpected answer:\n{report}"
    );
}

/// Messages over the size limit: a maximal UDP datagram (65,507 bytes) and
/// a 70 KB message over TCP. Whatever the answer (400/413/513/none, or the
/// connection closed), the server must survive and keep answering.
#[test]
fn oversized_messages() {
    let data = data_dir();
    let mut server = Server::start_shipped(data.path());
    let addr = server.sip;

    let big = |local_port: u16, tp: Tp, total: usize| -> Vec<u8> {
        let id = unique();
        let head = format!(
            "OPTIONS sip:1001@{addr} SIP/2.0\r\n\
             Via: SIP/2.0/{} 127.0.0.1:{local_port};branch=z9hG4bK-big-{id};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:big@127.0.0.1>;tag=big{id}\r\n\
             To: <sip:1001@{addr}>\r\n\
             Call-ID: big-{id}@127.0.0.1\r\n\
             CSeq: 1 OPTIONS\r\n",
            tp.name()
        );
        let tail = "Content-Length: 0\r\n\r\n";
        let mut msg = head.into_bytes();
        let mut n = 0;
        while msg.len() + tail.len() + 110 < total {
            msg.extend_from_slice(format!("X-Padding-{n:05}: {}\r\n", "a".repeat(80)).as_bytes());
            n += 1;
        }
        let fill = total - msg.len() - tail.len() - "X-Fill: \r\n".len();
        msg.extend_from_slice(format!("X-Fill: {}\r\n", "b".repeat(fill)).as_bytes());
        msg.extend_from_slice(tail.as_bytes());
        assert_eq!(msg.len(), total);
        msg
    };

    let udp = send_udp(addr, |p| big(p, Tp::Udp, 65_507), ANSWER_WAIT);
    eprintln!("65507-byte OPTIONS over UDP -> {udp}");
    assert!(
        matches!(udp, Outcome::None | Outcome::Status(200 | 400 | 413 | 513)),
        "unexpected answer to a maximal datagram: {udp}"
    );
    assert_alive(&mut server, Tp::Udp, "65507-byte datagram");

    let tcp = send_tcp(addr, |p| big(p, Tp::Tcp, 70 * 1024), ANSWER_WAIT);
    eprintln!("70 KB OPTIONS over TCP -> {tcp}");
    assert!(
        matches!(tcp, Outcome::None | Outcome::Status(400 | 413 | 513)),
        "a message over 64 KB must be refused or dropped, got {tcp}"
    );
    assert_alive(&mut server, Tp::Udp, "70 KB over TCP");
    assert_alive(&mut server, Tp::Tcp, "70 KB over TCP");
}

/// Checks of the harness itself (rendering and parsing), no server.
#[test]
fn render_fills_placeholders_and_lengths() {
    let addr: SocketAddr = "127.0.0.1:5099".parse().unwrap();
    let t = b"OPTIONS sip:x@{{HOST}}:{{PORT}} SIP/2.0\nVia: SIP/2.0/{{TRANSPORT}} {{HOST}}:{{LPORT}}\nContent-Length: {{CL}}\n\nab{{x00}}c\n";
    let r = render(t, addr, 4000, Tp::Tcp);
    let s = String::from_utf8_lossy(&r);
    assert!(s.starts_with(
        "OPTIONS sip:x@127.0.0.1:5099 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:4000\r\n"
    ));
    assert!(s.contains("Content-Length: 6\r\n\r\nab\0c\r\n"), "{s:?}");
    assert_eq!(status_of(b"SIP/2.0 501 Not Implemented\r\n"), Some(501));
    assert_eq!(status_of(b"OPTIONS sip:x SIP/2.0\r\n"), None);
}
