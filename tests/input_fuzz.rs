//! Deterministic mutation fuzzing of everything that reads outside input:
//! SIP framing and parsing (and the endpoint, registrar and MWI notifier
//! behind them), SDP offer/answer, RTP, RFC 4733 events, an RTP session fed
//! datagrams, config.toml, mailbox files, dial plans, uploaded audio, state
//! read back from disk, and HTTP API requests.
//!
//! Each target starts from a few valid seed inputs, runs every truncation of
//! each seed, then a few thousand stacked mutations (bit flips, truncation,
//! deleted/duplicated/inserted spans, numbers replaced by huge, negative or
//! empty values, NUL/0xFF/multibyte UTF-8 injected, lines repeated,
//! deleted or swapped, spans spliced from other seeds). The RNG is seeded,
//! so a failure reproduces on every run. Every input that panics is
//! collected; the test fails with the smallest one (shrunk, escaped) and
//! where it panicked. Arithmetic overflow in a debug build counts.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use voxmail::audio::AudioFormat;
use voxmail::config::{Config, EMBEDDED_CONFIG, parse_mailbox_file};
use voxmail::dialplan::check::{Source, check_sources};
use voxmail::dialplan::diverted_target;
use voxmail::dialplan::model::{Pattern, Template};
use voxmail::dialplan::schedule::{Holiday, parse_range};
use voxmail::media::dtmf::{Rfc4733Receiver, event_payload, parse_event};
use voxmail::media::g711::G711;
use voxmail::media::rtp::{self, RtpHeader};
use voxmail::media::session::{MediaParams, RecordOptions, RtpSession};
use voxmail::notify::email;
use voxmail::prompts::say;
use voxmail::sdp::{self, AudioCodec, LocalMedia, SessionDescription};
use voxmail::server::presence::PresenceState;
use voxmail::sip::frame;
use voxmail::sip::message::{ResponseBuilder, header_param};
use voxmail::sip::mwi::{Counts, MwiNotifier, watched_mailbox};
use voxmail::sip::mwi::{MwiState, SavedSubscription};
use voxmail::sip::registrar::Registrar;
use voxmail::sip::registrar::{RegistrarState, SavedBinding, SavedPeer};
use voxmail::sip::{
    CallHandle, Endpoint, EndpointConfig, Peer, SipEvent, SipRequest, TransportKind,
};
use voxmail::store::{Folder, MailboxId, MessageMeta, NewMessage, Store};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

thread_local! {
    /// Set while a fuzz input runs: the panic hook then records instead of
    /// printing, so thousands of expected-to-be-caught panics stay quiet.
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The name of the API target's runtime threads (its blocking pool too):
/// their panics are recorded in [`API_PANICS`].
const API_THREAD: &str = "input-fuzz-api";
static API_PANICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let api_thread = std::thread::current().name() == Some(API_THREAD);
            if FUZZING.with(Cell::get) || api_thread {
                let payload = info.payload();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "<non-string panic>".into());
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let record = format!("{msg} at {at}");
                if api_thread {
                    API_PANICS
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(record.clone());
                }
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(record));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `f(input)`; `Some(panic message and location)` if it panicked.
fn run_one<T: ?Sized>(f: &dyn Fn(&T), input: &T) -> Option<String> {
    FUZZING.with(|c| c.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(|| f(input)));
    FUZZING.with(|c| c.set(false));
    r.err().map(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_default()
    })
}

const TOKENS: &[&[u8]] = &[
    b"\0",
    b"\xff",
    b"\xfe",
    b"\x7f",
    b"\x80",
    b"\xc3",
    b"\xe2\x82",
    "é".as_bytes(),
    "€".as_bytes(),
    "𝄞".as_bytes(),
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b";",
    b"=",
    b",",
    b"/",
    b"<",
    b">",
    b"\"",
    b"\\",
    b"%",
    b"[",
    b"]",
    b"{",
    b"}",
    b"-",
    b".",
    b"@",
    b"#",
    b"*",
    b"'",
    b"[[",
    b"]]",
];

const NUMBERS: &[&str] = &[
    "",
    "0",
    "-0",
    "-1",
    "1",
    "127",
    "128",
    "255",
    "256",
    "65535",
    "65536",
    "-65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "99999999999999999999999999999999999999",
    "1e309",
    "-1e309",
    "NaN",
    "inf",
    "-inf",
    "0.0000001",
    "1.5",
    "+1",
    "0x7f",
    "000000000000000000000000001",
];

struct Mutator {
    rng: StdRng,
}

impl Mutator {
    fn new(seed: u64) -> Self {
        Mutator {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn pos(&mut self, len: usize) -> usize {
        self.rng.random_range(0..=len)
    }

    fn span(&mut self, len: usize) -> (usize, usize) {
        let a = self.pos(len);
        let max = (len - a).min(64);
        let n = self.rng.random_range(0..=max);
        (a, a + n)
    }

    /// One to four stacked mutations of `seeds[i]`, sometimes spliced with
    /// another seed.
    fn mutate(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut data = seeds[self.rng.random_range(0..seeds.len())].clone();
        let rounds = self.rng.random_range(1..=4);
        for _ in 0..rounds {
            self.once(&mut data, seeds);
        }
        data
    }

    fn once(&mut self, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let len = data.len();
        match self.rng.random_range(0..14) {
            0 if len > 0 => {
                let i = self.rng.random_range(0..len);
                data[i] ^= 1 << self.rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = self.rng.random_range(0..len);
                data[i] = match self.rng.random_range(0..4) {
                    0 => 0,
                    1 => 0xff,
                    2 => 0x80,
                    _ => self.rng.random(),
                };
            }
            2 => data.truncate(self.pos(len)),
            3 => {
                let (a, b) = self.span(len);
                data.drain(a..b);
            }
            4 => {
                // Duplicate a span, possibly many times.
                let (a, b) = self.span(len);
                let chunk = data[a..b].to_vec();
                let times = if self.rng.random_bool(0.2) {
                    self.rng.random_range(2..40)
                } else {
                    1
                };
                let at = self.pos(len);
                let rep: Vec<u8> = chunk.repeat(times);
                data.splice(at..at, rep);
            }
            5 | 6 => {
                let tok = TOKENS[self.rng.random_range(0..TOKENS.len())];
                let at = self.pos(len);
                data.splice(at..at, tok.iter().copied());
            }
            7 | 8 => self.replace_number(data),
            9 => {
                // Repeat a line.
                let lines = lines_of(data);
                let (a, b) = lines[self.rng.random_range(0..lines.len())];
                let line = data[a..b].to_vec();
                let times = self.rng.random_range(1..20);
                data.splice(b..b, line.repeat(times));
            }
            10 => {
                // Delete a line.
                let lines = lines_of(data);
                let (a, b) = lines[self.rng.random_range(0..lines.len())];
                data.drain(a..b);
            }
            11 => {
                // Swap two lines.
                let lines = lines_of(data);
                let i = self.rng.random_range(0..lines.len());
                let j = self.rng.random_range(0..lines.len());
                let (x, y) = (lines[i.min(j)], lines[i.max(j)]);
                if x != y {
                    let mut out = data[..x.0].to_vec();
                    out.extend_from_slice(&data[y.0..y.1]);
                    out.extend_from_slice(&data[x.1..y.0]);
                    out.extend_from_slice(&data[x.0..x.1]);
                    out.extend_from_slice(&data[y.1..]);
                    *data = out;
                }
            }
            12 => {
                // Splice in a span of another seed.
                let other = &seeds[self.rng.random_range(0..seeds.len())];
                let (a, b) = self.span(other.len());
                let chunk = other[a..b].to_vec();
                let at = self.pos(len);
                data.splice(at..at, chunk);
            }
            _ => {
                let n = self.rng.random_range(1..8);
                let at = self.pos(len);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                data.splice(at..at, bytes);
            }
        }
    }

    fn replace_number(&mut self, data: &mut Vec<u8>) {
        let mut runs = Vec::new();
        let mut i = 0;
        while i < data.len() {
            if data[i].is_ascii_digit() {
                let start = i;
                while i < data.len() && data[i].is_ascii_digit() {
                    i += 1;
                }
                runs.push((start, i));
            } else {
                i += 1;
            }
        }
        if runs.is_empty() {
            return;
        }
        let (a, b) = runs[self.rng.random_range(0..runs.len())];
        let n = NUMBERS[self.rng.random_range(0..NUMBERS.len())];
        data.splice(a..b, n.bytes());
    }
}

/// (start, end) of each line, its `\n` included; at least one entry.
fn lines_of(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < data.len() || out.is_empty() {
        out.push((start, data.len()));
    }
    out
}

/// Greedy shrinking: drop chunks while the input still panics.
fn shrink(f: &dyn Fn(&[u8]), input: &[u8]) -> Vec<u8> {
    let mut best = input.to_vec();
    let mut budget = 3000;
    let mut chunk = best.len() / 2;
    while chunk >= 1 && budget > 0 {
        let mut i = 0;
        while i < best.len() && budget > 0 {
            let end = (i + chunk).min(best.len());
            let mut candidate = best[..i].to_vec();
            candidate.extend_from_slice(&best[end..]);
            budget -= 1;
            if run_one(f, &candidate[..]).is_some() {
                best = candidate;
            } else {
                i += chunk;
            }
        }
        chunk /= 2;
    }
    best
}

fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Multiplies every iteration count: `VOXMAIL_FUZZ_SCALE=50 cargo test
/// --release --test input_fuzz` digs deeper than the quick default.
fn scale(iterations: usize) -> usize {
    let k = std::env::var("VOXMAIL_FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    iterations * k
}

/// Runs truncations of every seed (every length, or `max_cuts` evenly
/// spread ones for long seeds), then `iterations` mutations; fails with the
/// smallest panicking input.
fn fuzz_bytes(
    name: &str,
    seeds: &[Vec<u8>],
    max_cuts: usize,
    iterations: usize,
    seed: u64,
    f: &dyn Fn(&[u8]),
) {
    install_hook();
    let mut failures: Vec<(Vec<u8>, String)> = Vec::new();
    let mut check = |input: Vec<u8>| {
        if let Some(msg) = run_one(f, &input[..]) {
            failures.push((input, msg));
        }
    };
    for s in seeds {
        let step = s.len().div_ceil(scale(max_cuts)).max(1);
        for n in (0..=s.len()).step_by(step) {
            check(s[..n].to_vec());
        }
    }
    let mut m = Mutator::new(seed);
    for _ in 0..scale(iterations) {
        check(m.mutate(seeds));
    }
    report(name, failures, f);
}

fn report(name: &str, mut failures: Vec<(Vec<u8>, String)>, f: &dyn Fn(&[u8])) {
    if failures.is_empty() {
        return;
    }
    failures.sort_by_key(|(i, _)| i.len());
    let distinct: BTreeSet<&str> = failures
        .iter()
        .map(|(_, m)| m.rsplit(" at ").next().unwrap_or(m))
        .collect();
    let (smallest, msg) = &failures[0];
    let shrunk = shrink(f, smallest);
    let shrunk_msg = run_one(f, &shrunk[..]).unwrap_or_else(|| msg.clone());
    panic!(
        "{name}: {} inputs panicked, at {:?}\nsmallest ({} bytes): b\"{}\"\n  -> {msg}\n\
         shrunk ({} bytes): b\"{}\"\n  -> {shrunk_msg}",
        failures.len(),
        distinct,
        smallest.len(),
        escape(smallest),
        shrunk.len(),
        escape(&shrunk),
    );
}

fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

// ---------------------------------------------------------------------------
// SIP
// ---------------------------------------------------------------------------

fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

fn with_length(head: &str, body: &str) -> Vec<u8> {
    let mut m = crlf(head);
    m.extend_from_slice(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    m
}

const OFFER: &str = "v=0\r\no=Zoiper 1700000000 1 IN IP4 198.51.100.7\r\ns=Z\r\n\
    c=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 52000 RTP/AVP 96 0 8 97\r\n\
    a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:8 PCMA/8000\r\na=rtpmap:97 telephone-event/8000\r\na=fmtp:97 0-16\r\n\
    a=ptime:20\r\na=sendrecv\r\n";

fn invite(branch: &str, body: &str) -> Vec<u8> {
    with_length(
        &format!(
            "INVITE sip:1001@127.0.0.1:5060;target=sip:1002%40pbx SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\n\
             Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-def, SIP/2.0/TCP [::1]:5061;branch=z9hG4bK-x\n\
             Record-Route: <sip:proxy.example.com;lr>\n\
             From: \"Caller \\\"X\\\"\" <sip:2000@127.0.0.1>;tag=caller\n\
             To: <sip:1001@127.0.0.1>\n\
             Call-ID: cid-1@host\n\
             CSeq: 1 INVITE\n\
             Contact: <sip:2000@127.0.0.1:5070>;expires=60\n\
             Max-Forwards: 70\n\
             Diversion: <sip:1002@pbx>;reason=no-answer;counter=1\n\
             History-Info: <sip:1002@pbx?Reason=SIP%3Bcause%3D486>;index=1, <sip:1001@pbx;cause=302>;index=1.1\n\
             Content-Type: application/sdp\n"
        ),
        body,
    )
}

fn in_dialog(method: &str, cseq: u32, branch: &str, extra: &str, body: &str) -> Vec<u8> {
    with_length(
        &format!(
            "{method} sip:1001@127.0.0.1:5060 SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\n\
             From: \"Caller\" <sip:2000@127.0.0.1>;tag=caller\n\
             To: <sip:1001@127.0.0.1>;tag=TOTAG\n\
             Call-ID: cid-1@host\n\
             CSeq: {cseq} {method}\n\
             Max-Forwards: 70\n\
             {extra}"
        ),
        body,
    )
}

fn register(extra: &str) -> Vec<u8> {
    with_length(
        &format!(
            "REGISTER sip:10.0.0.1:5060 SIP/2.0\n\
             Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-reg\n\
             From: <sip:1001@10.0.0.1>;tag=ph1\n\
             To: <sip:1001@10.0.0.1>\n\
             Call-ID: reg-1@10.0.0.5\n\
             CSeq: 2 REGISTER\n\
             Max-Forwards: 70\n\
             {extra}"
        ),
        "",
    )
}

fn subscribe(extra: &str) -> Vec<u8> {
    with_length(
        &format!(
            "SUBSCRIBE sip:1001@10.0.0.1 SIP/2.0\n\
             Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-sub\n\
             From: <sip:1001@10.0.0.1>;tag=ph1\n\
             To: <sip:1001@10.0.0.1>\n\
             Call-ID: sub-1@10.0.0.5\n\
             CSeq: 1 SUBSCRIBE\n\
             Contact: <sip:1001@10.0.0.5:5062>\n\
             Event: message-summary;id=1\n\
             Accept: application/simple-message-summary\n\
             Expires: 3600\n\
             {extra}"
        ),
        "",
    )
}

fn response(status: &str, cseq: &str, branch: &str) -> Vec<u8> {
    with_length(
        &format!(
            "SIP/2.0 {status}\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\n\
             From: <sip:1001@127.0.0.1>;tag=TOTAG\n\
             To: \"Caller\" <sip:2000@127.0.0.1>;tag=caller\n\
             Call-ID: cid-1@host\n\
             CSeq: {cseq}\n"
        ),
        "",
    )
}

/// The corpus of tests/malformed, rendered as tests/malformed_sip.rs does.
fn malformed_corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/malformed")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let raw = String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
            let t = raw
                .replace("{{HOST}}", "127.0.0.1")
                .replace("{{PORT}}", "5060")
                .replace("{{LPORT}}", "5070")
                .replace("{{TRANSPORT}}", "UDP")
                .replace("{{CALLID}}", "fuzz-1")
                .replace("{{BRANCH}}", "z9hG4bK-fuzz");
            let mut bytes = crlf(&t);
            // {{xHH}}
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"{{x") && bytes.get(i + 5..i + 7) == Some(b"}}") {
                    let hex = std::str::from_utf8(&bytes[i + 3..i + 5]).unwrap_or("00");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                    i += 7;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            bytes = out;
            if let Some(pos) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let body_len = (bytes.len() - pos - 4).to_string();
                let s = String::from_utf8_lossy(&bytes).replace("{{CL}}", &body_len);
                bytes = s.into_bytes();
            }
            bytes
        })
        .collect()
}

fn sip_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        invite("z9hG4bK-abc", OFFER),
        invite("z9hG4bK-late", ""),
        in_dialog("ACK", 1, "z9hG4bK-ack", "", ""),
        in_dialog("BYE", 2, "z9hG4bK-bye", "", ""),
        in_dialog(
            "INVITE",
            3,
            "z9hG4bK-re",
            "Content-Type: application/sdp\n",
            OFFER,
        ),
        in_dialog(
            "UPDATE",
            4,
            "z9hG4bK-up",
            "Content-Type: application/sdp\n",
            OFFER,
        ),
        in_dialog(
            "INFO",
            5,
            "z9hG4bK-info",
            "Content-Type: application/dtmf-relay\n",
            "Signal=5\r\nDuration=160\r\n",
        ),
        in_dialog(
            "NOTIFY",
            6,
            "z9hG4bK-n",
            "Event: refer;id=7\nSubscription-State: terminated\nContent-Type: message/sipfrag\n",
            "SIP/2.0 200 OK\r\n",
        ),
        in_dialog("CANCEL", 1, "z9hG4bK-abc", "", ""),
        in_dialog("OPTIONS", 9, "z9hG4bK-o", "Accept: application/sdp\n", ""),
        register(
            "Contact: <sip:1001@10.0.0.5:5062;line=abc>;expires=3600;q=0.5, *\nExpires: 60\n\
             Authorization: Digest username=\"1001\", realm=\"voxmail\", nonce=\"abc\", \
             uri=\"sip:10.0.0.1:5060\", response=\"0123456789abcdef0123456789abcdef\", \
             algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\n",
        ),
        subscribe(""),
        response("200 OK", "2 BYE", "z9hG4bK-ours"),
        response("202 Accepted", "3 REFER", "z9hG4bK-refer"),
        response("100 Trying", "1 NOTIFY", "z9hG4bK-notify"),
        b"\r\n\r\n".to_vec(),
    ];
    seeds.extend(malformed_corpus());
    seeds
}

fn src() -> SocketAddr {
    "127.0.0.1:5070".parse().unwrap()
}

/// The raw checks, the request parser and the response builders on one
/// message, as the endpoint and the stream transport use them.
fn sip_message(b: &[u8]) {
    let _ = frame::read_headers(b);
    let _ = frame::stream_frame_len(b);
    match frame::inspect(b) {
        Ok(i) => {
            if let Ok(req) = SipRequest::parse(i.message) {
                use_request(&req);
            }
        }
        Err((_, raw)) => {
            if let Some(r) = ResponseBuilder::from_raw(&raw, src(), 400, "Bad Request") {
                let _ = r.to_tag("t").build();
            }
        }
    }
    // The parser on its own, as a public API.
    if let Ok(req) = SipRequest::parse(b) {
        use_request(&req);
    }
}

fn use_request(req: &SipRequest) {
    let _ = req.sdp();
    let _ = ResponseBuilder::new(req, src(), 200, "OK")
        .to_tag("mytag")
        .header("Contact", "<sip:1001@127.0.0.1:5060>")
        .body("application/sdp", b"v=0\r\n")
        .build();
    for (_, v) in &req.headers {
        let _ = header_param(v, "tag");
    }
    let _ = watched_mailbox(req);
    let _ = diverted_target(&req.uri, &req.headers);
}

#[test]
fn sip_framing_and_request_parser() {
    fuzz_bytes("SIP message", &sip_seeds(), 1000, 5000, 1, &sip_message);
}

fn peer(transport: TransportKind) -> Peer {
    Peer {
        transport,
        remote: src(),
        local: "127.0.0.1:5060".parse().unwrap(),
        connection: if transport == TransportKind::Tcp {
            7
        } else {
            0
        },
    }
}

fn local_media() -> LocalMedia {
    LocalMedia {
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        rtp_port: 20000,
        session_id: 4242,
        session_version: 7,
        codecs: vec![AudioCodec::Pcmu, AudioCodec::Pcma],
        telephone_event_pt: 101,
        user_agent: "voxmail".into(),
    }
}

/// Drains the endpoint, answering what the application would answer.
fn drain(
    ep: &mut Endpoint,
    now: Instant,
    mwi: &mut MwiNotifier,
    reg: &mut Registrar,
    learnt: &mut Learnt,
) {
    let mut guard = 0;
    while let Some(ev) = ep.poll_event() {
        guard += 1;
        if guard > 100 {
            break;
        }
        match ev {
            SipEvent::IncomingCall { call, request, .. } => {
                learnt.calls.push(call);
                ep.ring(call);
                let answer = request
                    .sdp()
                    .and_then(|s| SessionDescription::parse(s).ok())
                    .and_then(|o| sdp::answer(&o, &local_media()).ok())
                    .map(|(_, a)| a)
                    .unwrap_or_else(|| sdp::offer(&local_media()));
                // Answered at the script's `!accept`.
                learnt.answers.push((call, answer));
            }
            SipEvent::Confirmed { sdp: Some(s), .. } => {
                if let Ok(a) = SessionDescription::parse(&s) {
                    let _ = sdp::accept_answer(&a, &local_media());
                }
            }
            SipEvent::Reoffer { call, sdp } => {
                let answer = sdp
                    .and_then(|s| SessionDescription::parse(&s).ok())
                    .and_then(|o| sdp::answer(&o, &local_media()).ok())
                    .map(|(_, a)| a);
                ep.answer_reoffer(now, call, answer.as_deref().map(str::as_bytes).ok_or(488));
            }
            SipEvent::Request { id, request, peer } => {
                let (status, reason, tag, headers) = if request.method.to_string() == "REGISTER" {
                    let r = reg.handle(now, &request, peer);
                    (r.status, r.reason, r.to_tag, r.headers)
                } else {
                    let (r, _) =
                        mwi.on_subscribe(now, &request, peer, |_| Some(Counts { new: 2, old: 1 }));
                    (r.status, r.reason, r.to_tag, r.headers)
                };
                ep.respond(now, id, status, reason, tag.as_deref(), &headers);
            }
            _ => {}
        }
    }
    learn(ep, learnt);
}

/// Separates the steps of an endpoint script.
const STEP: &[u8] = b"\n%%\n";

/// What the scripted endpoint learnt from what it sent, to make the next
/// messages of a script match its dialogs and transactions.
#[derive(Default)]
struct Learnt {
    calls: Vec<CallHandle>,
    /// Calls rung, with the SDP to answer them with at `!accept`.
    answers: Vec<(CallHandle, String)>,
    /// Our To tag, from the last response we sent that had one.
    to_tag: String,
    /// Branch and CSeq of the last request we sent (BYE, REFER, NOTIFY).
    branch: String,
    cseq: String,
}

fn learn(ep: &mut Endpoint, learnt: &mut Learnt) {
    while let Some(t) = ep.poll_transmit() {
        let raw = frame::read_headers(&t.data);
        if t.data.starts_with(b"SIP/2.0 ") {
            if let Some(tag) = raw.get("To").and_then(|v| header_param(v, "tag")) {
                learnt.to_tag = tag.to_owned();
            }
        } else {
            if let Some(b) = raw.get("Via").and_then(|v| header_param(v, "branch")) {
                learnt.branch = b.to_owned();
            }
            if let Some(c) = raw.get("CSeq") {
                learnt.cseq = c.to_owned();
            }
        }
    }
}

/// Plays a script: SIP messages (with `TOTAG`, `OURBRANCH` and `OURCSEQ`
/// filled in from what the endpoint sent) and the application's moves
/// (`!accept`, `!hangup`, `!refer`, `!reject`, `!redirect`, `!tick`), answering every
/// call and delegated request as the server does, over UDP or TCP.
fn endpoint_script(script: &[u8]) {
    let mut ep = Endpoint::new(EndpointConfig {
        delegate_register_subscribe: true,
        ..EndpointConfig::default()
    });
    let mut mwi = MwiNotifier::new(None, "voxmail");
    let mut reg = Registrar::new(
        "voxmail",
        HashMap::from([("1001".to_owned(), "s3cret".to_owned())]),
    );
    let mut learnt = Learnt::default();
    let mut now = Instant::now();
    let mut rest = script;
    let mut i = 0;
    while !rest.is_empty() {
        let (step, after) = match rest.windows(STEP.len()).position(|w| w == STEP) {
            Some(p) => (&rest[..p], &rest[p + STEP.len()..]),
            None => (rest, &[][..]),
        };
        rest = after;
        i += 1;
        let call = learnt.calls.last().copied();
        match step {
            b"!tick" => {
                now += Duration::from_millis(2100);
                ep.handle_timeout(now);
            }
            b"!accept" => {
                for (c, answer) in std::mem::take(&mut learnt.answers) {
                    ep.accept(now, c, answer.as_bytes());
                }
            }
            b"!hangup" => call.into_iter().for_each(|c| ep.hangup(now, c)),
            b"!refer" => call.into_iter().for_each(|c| {
                ep.refer(now, c, "sip:1002@127.0.0.1");
            }),
            b"!reject" => call
                .into_iter()
                .for_each(|c| ep.reject(now, c, 486, "Busy")),
            b"!redirect" => call
                .into_iter()
                .for_each(|c| ep.redirect(now, c, "sip:1002@127.0.0.1")),
            _ => {
                let msg = text(step)
                    .replace("TOTAG", &learnt.to_tag)
                    .replace("OURBRANCH", &learnt.branch)
                    .replace("OURCSEQ", &learnt.cseq);
                let mut msg = msg.into_bytes();
                // Keep raw bytes where the text had none to replace.
                if !step.windows(3).any(|w| w == b"TOT" || w == b"OUR") {
                    msg = step.to_vec();
                }
                let transport = if i % 4 == 3 {
                    TransportKind::Tcp
                } else {
                    TransportKind::Udp
                };
                ep.handle_message(now, peer(transport), &msg);
            }
        }
        drain(&mut ep, now, &mut mwi, &mut reg, &mut learnt);
    }
    for step in [1, 5, 40] {
        now += Duration::from_secs(step);
        ep.handle_timeout(now);
        drain(&mut ep, now, &mut mwi, &mut reg, &mut learnt);
    }
    let _ = ep.poll_timeout();
    let _ = ep.call_count();
}

fn script(steps: &[Vec<u8>]) -> Vec<u8> {
    steps.join(STEP)
}

fn endpoint_seeds() -> Vec<Vec<u8>> {
    let inv = invite("z9hG4bK-abc", OFFER);
    let late = invite("z9hG4bK-late", "");
    let ack = in_dialog("ACK", 1, "z9hG4bK-ack", "", "");
    let sdp_ct = "Content-Type: application/sdp\n";
    let cmd = |c: &str| c.as_bytes().to_vec();
    let ours = |status: &str| {
        with_length(
            &format!(
                "SIP/2.0 {status}\n\
                 Via: SIP/2.0/UDP 127.0.0.1:5060;branch=OURBRANCH\n\
                 From: <sip:1001@127.0.0.1>;tag=TOTAG\n\
                 To: \"Caller\" <sip:2000@127.0.0.1>;tag=caller\n\
                 Call-ID: cid-1@host\n\
                 CSeq: OURCSEQ\n"
            ),
            "",
        )
    };
    let mut seeds = vec![
        script(&[
            inv.clone(),
            cmd("!accept"),
            ack.clone(),
            in_dialog("BYE", 2, "z9hG4bK-bye", "", ""),
        ]),
        script(&[
            inv.clone(),
            inv.clone(),
            cmd("!accept"),
            inv.clone(),
            ack.clone(),
            in_dialog("INVITE", 2, "z9hG4bK-re", sdp_ct, OFFER),
            in_dialog("ACK", 2, "z9hG4bK-re-ack", "", ""),
            in_dialog("UPDATE", 3, "z9hG4bK-up", sdp_ct, OFFER),
            cmd("!tick"),
            cmd("!hangup"),
            ours("200 OK"),
        ]),
        script(&[
            late.clone(),
            cmd("!accept"),
            in_dialog("ACK", 1, "z9hG4bK-ack", sdp_ct, OFFER),
            in_dialog(
                "INFO",
                2,
                "z9hG4bK-info",
                "Content-Type: application/dtmf-relay\n",
                "Signal=5\r\nDuration=160\r\n",
            ),
            cmd("!refer"),
            ours("202 Accepted"),
            in_dialog(
                "NOTIFY",
                3,
                "z9hG4bK-n",
                "Event: refer\nSubscription-State: terminated\nContent-Type: message/sipfrag\n",
                "SIP/2.0 200 OK\r\n",
            ),
            in_dialog("BYE", 4, "z9hG4bK-bye", "", ""),
        ]),
        script(&[
            inv.clone(),
            in_dialog("CANCEL", 1, "z9hG4bK-abc", "", "").replace_tag(),
            in_dialog("ACK", 1, "z9hG4bK-abc", "", ""),
            cmd("!accept"),
            cmd("!tick"),
        ]),
        script(&[inv.clone(), cmd("!reject"), ack.clone(), cmd("!tick")]),
        script(&[inv.clone(), cmd("!redirect"), ack.clone()]),
        script(&[
            subscribe(""),
            cmd("!tick"),
            register("Contact: <sip:1001@10.0.0.5:5062>\nExpires: 60\n"),
            in_dialog("OPTIONS", 9, "z9hG4bK-o", "", ""),
        ]),
        script(&[
            inv,
            cmd("!accept"),
            ack,
            cmd("!tick"),
            cmd("!tick"),
            cmd("!hangup"),
            cmd("!tick"),
            ours("481 Call Does Not Exist"),
        ]),
    ];
    // Single messages too, after a call is up.
    for m in sip_seeds() {
        seeds.push(script(&[
            invite("z9hG4bK-abc", OFFER),
            b"!accept".to_vec(),
            m,
        ]));
    }
    seeds
}

/// A request without a To tag (CANCEL matches the INVITE, not the dialog).
trait ReplaceTag {
    fn replace_tag(self) -> Vec<u8>;
}

impl ReplaceTag for Vec<u8> {
    fn replace_tag(self) -> Vec<u8> {
        text(&self).replace(";tag=TOTAG", "").into_bytes()
    }
}

#[test]
fn sip_endpoint_scripts() {
    fuzz_bytes(
        "SIP endpoint",
        &endpoint_seeds(),
        40,
        1500,
        2,
        &endpoint_script,
    );
}

/// A REGISTER whose digest is right for the nonce the registrar issued, so
/// mutations reach Contact and Expires handling, not just the challenge.
fn registrar_message(b: &[u8]) {
    use rsipstack::dialog::authenticate::compute_digest;
    use rsipstack::sip::headers::auth::{Algorithm, AuthQop};
    let now = Instant::now();
    let mut reg = Registrar::new(
        "voxmail",
        HashMap::from([("1001".to_owned(), "s3cret".to_owned())]),
    );
    let plain = SipRequest::parse(&register("")).unwrap();
    let challenge = reg.handle(now, &plain, peer(TransportKind::Udp));
    let nonce = challenge
        .headers
        .iter()
        .find_map(|(_, v)| {
            let start = v.find("nonce=\"")? + 7;
            let len = v[start..].find('"')?;
            Some(v[start..start + len].to_owned())
        })
        .unwrap_or_default();
    let qop = AuthQop::Auth {
        cnonce: "c0ffee".into(),
        nc: 1,
    };
    let response = compute_digest(
        "1001",
        "s3cret",
        "voxmail",
        &nonce,
        &rsipstack::sip::Method::Register,
        "sip:10.0.0.1:5060",
        Algorithm::Md5,
        Some(&qop),
    );
    let msg = text(b)
        .replace("NONCE", &nonce)
        .replace("RESPONSE", &response);
    if let Ok(req) = SipRequest::parse(msg.as_bytes()) {
        let _ = reg.handle(now, &req, peer(TransportKind::Tcp));
        let _ = reg.handle(now, &req, peer(TransportKind::Udp));
        let _ = reg.bindings("1001");
        let _ = reg.user_for(src());
        let _ = reg.snapshot(now, jiff::Timestamp::now());
        let _ = reg.expire(now + Duration::from_secs(1 << 33));
    }
}

#[test]
fn sip_registrar() {
    let auth = "Authorization: Digest username=\"1001\", realm=\"voxmail\", nonce=\"NONCE\", \
                uri=\"sip:10.0.0.1:5060\", response=\"RESPONSE\", algorithm=MD5, qop=auth, \
                nc=00000001, cnonce=\"c0ffee\"\n";
    let seeds = vec![
        register(&format!(
            "Contact: <sip:1001@10.0.0.5:5062;line=abc>;expires=3600;q=0.5\nExpires: 60\n{auth}"
        )),
        register(&format!(
            "Contact: \"Desk, phone\" <sip:1001@[2001:db8::1]:5062;transport=tcp>;+sip.instance=\"<urn:uuid:1>\"\n{auth}"
        )),
        register(&format!("Contact: *\nExpires: 0\n{auth}")),
        register(&format!(
            "Contact: <sip:1001@10.0.0.5>, <sip:1001@10.0.0.6>;expires=10\n{auth}"
        )),
    ];
    fuzz_bytes("registrar", &seeds, 100, 1500, 3, &registrar_message);
}

fn mwi_message(b: &[u8]) {
    let now = Instant::now();
    let mut mwi = MwiNotifier::new(Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), "voxmail");
    if let Ok(req) = SipRequest::parse(b) {
        let _ = mwi.on_subscribe(now, &req, peer(TransportKind::Udp), |_| {
            Some(Counts {
                new: u32::MAX,
                old: 0,
            })
        });
        let _ = mwi.notify_all(now, "1001", Counts { new: 1, old: 1 });
        let _ = mwi.snapshot(now, jiff::Timestamp::now());
        let _ = mwi.expire(now + Duration::from_secs(1 << 33));
    }
}

#[test]
fn sip_mwi_subscribe() {
    let seeds = vec![
        subscribe(""),
        subscribe("Supported: eventlist\n"),
        subscribe("Expires: 0\n").repeat(1),
    ];
    fuzz_bytes("MWI SUBSCRIBE", &seeds, 1000, 2000, 4, &mwi_message);
}

// ---------------------------------------------------------------------------
// SDP
// ---------------------------------------------------------------------------

fn sdp_message(b: &[u8]) {
    let t = text(b);
    if let Ok(sd) = SessionDescription::parse(&t) {
        for m in &sd.media {
            let _ = sd.media_connection(m);
            let _ = sd.media_direction(m);
            for f in &m.formats {
                if let Ok(pt) = f.parse::<u8>() {
                    let _ = m.rtpmap(pt);
                    let _ = m.fmtp(pt);
                }
            }
        }
        let local = local_media();
        if let Ok((_, answer)) = sdp::answer(&sd, &local) {
            // Our answer must read back.
            SessionDescription::parse(&answer).expect("our own answer parses");
        }
        let _ = sdp::accept_answer(&sd, &local);
        let pcma = LocalMedia {
            codecs: vec![AudioCodec::Pcma],
            ..local
        };
        let _ = sdp::answer(&sd, &pcma);
    }
}

#[test]
fn sdp_offer_answer() {
    let seeds: Vec<Vec<u8>> = [
        OFFER.to_owned(),
        "v=0\no=- 1 1 IN IP6 ::1\ns=-\nt=0 0\nm=audio 6000/2 RTP/AVP 8 101\nc=IN IP6 2001:db8::7\n\
         a=rtpmap:101 telephone-event/8000\na=ptime:20.0\na=maxptime:40\na=recvonly\n\
         m=video 6002 RTP/AVP 31\nc=IN IP4 0.0.0.0\n"
            .to_owned(),
        "v=0\r\no=- 2 2 IN IP4 10.0.0.1\r\ns=x\r\nc=IN IP4 224.2.1.1/127/3\r\na=inactive\r\n\
         m=audio 0 RTP/AVP 0\r\nm=audio 7000 RTP/SAVP 0\r\nm=audio 7002 RTP/AVP 18 0\r\n\
         a=rtpmap:0 PCMU/8000/1\r\na=fmtp:18 annexb=no\r\na=sendonly\r\n"
            .to_owned(),
        sdp::offer(&local_media()),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    fuzz_bytes("SDP", &seeds, 1000, 6000, 5, &sdp_message);
}

// ---------------------------------------------------------------------------
// RTP, RFC 4733, the RTP session
// ---------------------------------------------------------------------------

fn rtp_packet(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    RtpHeader {
        marker,
        payload_type: pt,
        sequence: seq,
        timestamp: ts,
        ssrc: 42,
    }
    .write(&mut out);
    out.extend_from_slice(payload);
    out
}

fn rtp_seeds() -> Vec<Vec<u8>> {
    let frame: Vec<u8> = (0..160u32).map(|i| (i * 7) as u8).collect();
    let mut padded = rtp_packet(0, 9, 1440, false, &frame);
    padded[0] |= 0x20;
    padded.extend_from_slice(&[0, 0, 3]);
    let mut ext = rtp_packet(8, 10, 1600, false, &[]);
    ext[0] |= 0x12; // extension, two CSRCs
    ext.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 1, 1, 2, 3, 4]);
    ext.extend_from_slice(&frame);
    vec![
        rtp_packet(0, 1, 160, true, &frame),
        rtp_packet(8, 65535, u32::MAX - 80, false, &frame),
        rtp_packet(101, 2, 320, true, &event_payload(5, false, 10, 160)),
        rtp_packet(101, 3, 320, false, &event_payload(5, true, 10, 800)),
        rtp_packet(101, 4, 320, false, &event_payload(11, true, 63, 65535)),
        padded,
        ext,
        vec![0x80, 0xc8, 0, 6, 1, 2, 3, 4], // RTCP SR on the RTP port
    ]
}

fn rtp_message(b: &[u8]) {
    if let Ok(p) = rtp::parse(b) {
        let _ = parse_event(p.payload);
        let mut rx = Rfc4733Receiver::new();
        let _ = rx.on_packet(p.header.timestamp, p.payload);
        let _ = rx.on_packet(p.header.timestamp.wrapping_add(160), p.payload);
        let mut out = Vec::new();
        G711::Pcmu.decode(p.payload, &mut out);
        G711::Pcma.decode(p.payload, &mut out);
    }
    let _ = parse_event(b);
}

#[test]
fn rtp_and_telephone_events() {
    fuzz_bytes("RTP", &rtp_seeds(), 1000, 8000, 6, &rtp_message);
}

fn session_params(telephone_event: Option<u8>) -> MediaParams {
    MediaParams {
        codec: G711::Pcmu,
        payload_type: 0,
        telephone_event,
        remote: Some("127.0.0.1:7000".parse().unwrap()),
        send: true,
        expect_media: true,
    }
}

/// A session (recording, with or without telephone-event) fed a stream of
/// mutated datagrams from two sources, with ticks between them.
#[test]
fn rtp_session_fed_mutated_datagrams() {
    install_hook();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seeds = rtp_seeds();
    let mut m = Mutator::new(7);
    let mut failures = Vec::new();
    let run = |script: &Vec<Vec<u8>>, with_recording: bool, te: Option<u8>| {
        let mut s = RtpSession::new(Some(session_params(te)));
        s.set_media_timeout(Duration::from_millis(200));
        let mut events = Vec::new();
        if with_recording {
            let w = store
                .begin_message(NewMessage {
                    mailbox: MailboxId::try_from("1001").unwrap(),
                    caller_number: "2000".into(),
                    caller_name: None,
                    called_number: "1001".into(),
                    call_id: "c".into(),
                    codec: "PCMU".into(),
                    started_at: jiff::Timestamp::now(),
                })
                .unwrap();
            s.start_recording(
                w,
                RecordOptions {
                    max_samples: 8000,
                    silence_timeout_samples: 800,
                    silence_threshold: 100,
                    stop_digits: "#".into(),
                },
                &mut events,
            );
        }
        let a: SocketAddr = "127.0.0.1:7002".parse().unwrap();
        let b: SocketAddr = "[::1]:7004".parse().unwrap();
        let start = Instant::now();
        for (i, d) in script.iter().enumerate() {
            let from = if i % 5 == 4 { b } else { a };
            s.on_datagram(
                from,
                d,
                start + Duration::from_millis(i as u64 * 7),
                &mut events,
            );
            if i % 3 == 0 {
                let _ = s.on_tick(&mut events);
            }
            if i % 11 == 0 {
                let _ = s.on_ticks_after(7, i % 2 == 0, &mut events);
            }
        }
        // Ten minutes of ticks at once (the engine's counts stay far below
        // the u64 range; huge counts are not input).
        let _ = s.on_ticks_after(30_000, true, &mut events);
        let _ = s.stats();
        s.close(&mut events);
    };
    for iter in 0..scale(2000) {
        let len = m.rng.random_range(1..24);
        let mut script = Vec::with_capacity(len);
        for _ in 0..len {
            if m.rng.random_bool(0.3) {
                let s = seeds[m.rng.random_range(0..seeds.len())].clone();
                script.push(s);
            } else {
                script.push(m.mutate(&seeds));
            }
        }
        let te = [Some(101), None, Some(0)][iter % 3];
        let rec = iter % 10 == 0;
        let f = |s: &Vec<Vec<u8>>| run(s, rec, te);
        if let Some(msg) = run_one(&f, &script) {
            failures.push((script, te, rec, msg));
        }
    }
    if let Some((script, te, rec, msg)) = failures.iter().min_by_key(|f| f.0.len()) {
        let shown: Vec<String> = script.iter().map(|d| escape(d)).collect();
        panic!(
            "RTP session: {} scripts panicked; smallest (telephone_event {te:?}, recording {rec}):\n\
             {shown:#?}\n  -> {msg}",
            failures.len()
        );
    }
}

// ---------------------------------------------------------------------------
// Config, mailbox files, dial plans
// ---------------------------------------------------------------------------

const SMALL_CONFIG: &str = r#"
[sip]
listen = "0.0.0.0:5060"
answer_delay_ms = 0

[rtp]
port_min = 10000
port_max = 10100
timeout_seconds = 300

[voicemail]
max_message_seconds = 180
min_message_seconds = 0.5
silence_timeout_seconds = 5
silence_threshold = 200

[http]
listen = "127.0.0.1:8080"
tokens = [{ token = "change-me-to-a-long-secret", scope = "admin" }, { token = "box-1001-token-0123", scope = ["1001"] }]

[smtp]
host = "127.0.0.1"
port = 25
starttls = false
from = "voxmail@example.com"
subject = "New voicemail from {caller} ({caller_name}) in {mailbox}"
body = "Hello {name},\n{{literal}} {duration} {date} {id} {called}\n"

[[webhook]]
url = "https://example.com/voicemail-events"
secret = "shared-secret-for-the-hmac"

[mwi]
unsolicited = true
realm = "voxmail"
digest_algorithms = ["SHA-256", "MD5"]

[[mailbox]]
number = "1001"
pin = "1234"
sip_password = "s3cret-pass"
format = "wav+mp3"
attach_format = "mp3"
attach_audio = true
name = "Alice"
email = "alice@example.org"
timezone = "Europe/Brussels"
max_messages = 20
language = "fr"

[[mailbox]]
number = "2000"
pin = "0000"
name = "Sales"
shared = true
members = ["1001"]
per_member_read = true
"#;

#[test]
fn config_parse() {
    let seeds = vec![
        EMBEDDED_CONFIG.as_bytes().to_vec(),
        SMALL_CONFIG.as_bytes().to_vec(),
    ];
    fuzz_bytes("config.toml", &seeds, 400, 1500, 8, &|b| {
        let _ = Config::parse(&text(b), "config.toml").map(|c| {
            for m in &c.mailboxes {
                let _ = c.mailbox_language(m);
                let _ = c.mailbox(&m.number);
            }
        });
    });
}

#[test]
fn mailbox_file() {
    let base = Config::parse(SMALL_CONFIG, "c").unwrap();
    let hash =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
    let seeds: Vec<Vec<u8>> = [
        "name = \"Alice\"\nlanguage = \"fr\"\nmax_messages = 3\ntimezone = \"Europe/Brussels\"\n"
            .to_owned(),
        format!(
            "pin_hash = \"{hash}\"\nshared = true\nmembers = [\"1001\", \"1002\"]\n\
             per_member_read = true\nmax_message_seconds = 60\nstorage_format = \"wav\"\n"
        ),
        "email = \"a@example.org\"\nattach_audio = true\ndelete_after_email = false\n\
         attach_format = \"mp3\"\nask_password = false\n"
            .to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    fuzz_bytes("mailbox.toml", &seeds, 1000, 2000, 9, &|b| {
        let t = text(b);
        let _ = parse_mailbox_file(&t, "mailbox.toml", "1001", base.mailbox("1001"));
        let _ = parse_mailbox_file(&t, "mailbox.toml", "2000", None);
    });
}

fn dialplan_sources() -> Vec<Source> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("dialplans/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Source {
            file: p.display().to_string(),
            text: std::fs::read_to_string(p).unwrap(),
        })
        .collect()
}

const SMALL_PLAN: &str = r#"
[[route]]
match = "*99{box}"
node = "login"

[[route]]
prefix = "+32"
node = "hours"

[[route]]
match = "{dialed}"
node = "hours"

[node.login]
kind = "voicemail_main"
mailbox = "{box}"

[node.hours]
kind = "schedule"
timezone = "Europe/Brussels"
mon = ["09:00-12:30", "13:30-17:00"]
sat = "10:00-24:00"
holidays = ["12-25", "2026-01-01"]
open = "menu"
closed = "vm"

[node.menu]
kind = "menu"
prompt = "welcome"
timeout_ms = 5000
retries = 3
options = { "1" = "vm", "2" = "bye", "*" = "login" }

[node.vm]
kind = "voicemail"
mailbox = "1001"

[node.bye]
kind = "hangup"
"#;

#[test]
fn dial_plans() {
    let files = dialplan_sources();
    let mut seeds: Vec<Vec<u8>> = files.iter().map(|s| s.text.clone().into_bytes()).collect();
    seeds.push(SMALL_PLAN.as_bytes().to_vec());
    fuzz_bytes("dial plan", &seeds, 100, 800, 10, &|b| {
        let mutated = Source {
            file: "fuzz.toml".into(),
            text: text(b).into_owned(),
        };
        // Alone, and beside the shipped plans (duplicate names, routes).
        let _ = check_sources(std::slice::from_ref(&mutated), &|_, _| true, &|_| true);
        let mut all = files.clone();
        all.push(mutated);
        if let Ok(plan) = check_sources(&all, &|_, _| true, &|_| false) {
            for dialed in ["*991001", "+3225550100", "1001", "", "*99"] {
                let _ = plan.route(dialed);
            }
        }
    });
}

#[test]
fn dial_plan_fields() {
    let seeds: Vec<Vec<u8>> = [
        "*99{box}",
        "+32{rest}",
        "{a}-{b}x",
        "hello {caller} from {dialed}",
        "12-25",
        "2026-12-25",
        "09:00-17:30",
        "00:00-24:00",
        "sip:1001@pbx;target=sip:1002%40pbx;user=phone",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz_bytes("dial-plan fields", &seeds, 1000, 8000, 11, &|b| {
        let t = text(b);
        if let Ok(p) = Pattern::parse(&t) {
            let _ = p.shape();
            let _ = p.literal_len();
            let _ = p.matches(&t);
            let _ = p.matches("*991001");
            let _ = p.matches("");
        }
        if let Ok(tpl) = Template::parse(&t) {
            let _ = tpl.vars().count();
            let _ = tpl.literals().count();
        }
        let _ = Holiday::parse(&t);
        let _ = parse_range(&t);
        let headers = vec![
            ("Diversion".to_owned(), t.to_string()),
            ("History-Info".to_owned(), t.to_string()),
        ];
        let _ = diverted_target(&t, &headers);
    });
}

// ---------------------------------------------------------------------------
// Uploaded audio
// ---------------------------------------------------------------------------

#[test]
fn uploaded_audio() {
    let tone: Vec<i16> = (0..800)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let mut seeds = vec![
        voxmail::audio::wav::wav_bytes(&tone, 8000).unwrap(),
        voxmail::audio::wav::wav_bytes(&tone[..400], 16000).unwrap(),
    ];
    #[cfg(feature = "mp3")]
    seeds.push(voxmail::audio::mp3::encode_mp3(&tone, 8000).unwrap());
    fuzz_bytes("uploaded audio", &seeds, 60, 250, 12, &|b| {
        let _ = voxmail::audio::decode_bytes(b.to_vec(), 2);
    });
}

// ---------------------------------------------------------------------------
// State read back from disk: message metadata, the presence state file
// ---------------------------------------------------------------------------

fn meta_json(caller: &str, name: Option<&str>, seconds: f64, at: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&MessageMeta {
        id: "20260302-090500-0001".into(),
        mailbox: "1001".into(),
        folder: Folder::Inbox,
        caller_number: caller.into(),
        caller_name: name.map(str::to_owned),
        called_number: "1001".into(),
        received_at: at.parse().unwrap(),
        duration_seconds: seconds,
        codec: "PCMU".into(),
        call_id: "c1@host".into(),
        format: "wav".into(),
        sample_rate: 8000,
        urgent: false,
    })
    .unwrap()
}

/// A message's JSON record as the store reads it back, then everything that
/// shows it: the email (templates, addresses, attachment name) and the
/// spoken envelope, in every language.
#[test]
fn message_metadata_to_email_and_prompts() {
    let config = Config::parse(SMALL_CONFIG, "c").unwrap();
    let smtp = config.smtp.clone().unwrap();
    let seeds = vec![
        meta_json(
            "+3225550100",
            Some("Bob \"the\" Caller"),
            65.4,
            "2026-03-02T09:05:00Z",
        ),
        meta_json("anonymous", None, 0.2, "1970-01-01T00:00:00Z"),
        meta_json("*99#", Some("Ünïcödé 𝄞"), 1e300, "9999-12-30T21:59:59Z"),
    ];
    fuzz_bytes("message metadata", &seeds, 200, 1500, 13, &|b| {
        let Ok(meta) = serde_json::from_slice::<MessageMeta>(b) else {
            return;
        };
        for m in &config.mailboxes {
            let to = m.email.as_deref().unwrap_or(&meta.caller_number);
            if let Ok(msg) = email::build_message(&smtp, m, to, &meta, None) {
                let _ = msg.formatted();
            }
            let _ = email::format_date(meta.received_at, &meta.codec);
            let _ = email::attachment_name(&meta, AudioFormat::Mp3);
        }
        let local = meta
            .received_at
            .to_zoned(jiff::tz::TimeZone::UTC)
            .datetime();
        for lang in ["en", "fr", "es", "de", &meta.codec] {
            let _ = say::envelope_names(lang, local, &meta.caller_number, meta.duration_seconds);
            let _ = say::number_names(lang, meta.sample_rate);
            let _ = say::you_have_names(lang, meta.sample_rate, meta.sample_rate);
            let _ = say::until_names(lang, local.date());
        }
        let _ = email::format_duration(meta.duration_seconds);
    });
}

/// `mwi.json`, as `Presence` reads it at start: mutated, restored into a
/// registrar and an MWI notifier, then used (NOTIFYs built from the saved
/// dialog strings, expiry, lookups).
#[test]
fn presence_state_file() {
    let peer = SavedPeer {
        transport: "udp".into(),
        remote: "10.0.0.5:5062".parse().unwrap(),
        local: "10.0.0.1:5060".parse().unwrap(),
    };
    let wall = jiff::Timestamp::from_second(1_770_000_000).unwrap();
    let state = PresenceState {
        version: 1,
        mwi: MwiState {
            subscriptions: vec![SavedSubscription {
                call_id: "sub-1@10.0.0.5".into(),
                local_tag: "lt1".into(),
                local: "<sip:1001@10.0.0.1>;tag=lt1".into(),
                remote: "\"Desk\" <sip:1001@10.0.0.1>;tag=ph1".into(),
                target: "sip:1001@10.0.0.5:5062;transport=udp".into(),
                route: vec!["<sip:proxy.example.com;lr>".into()],
                peer: peer.clone(),
                cseq: 7,
                remote_cseq: 1,
                expires_unix: wall.as_second() + 3600,
                mailbox: "1001".into(),
                event_id: Some("1".into()),
            }],
            counts: [("1001".to_owned(), Counts { new: 2, old: 5 })].into(),
        },
        registrar: RegistrarState {
            bindings: vec![SavedBinding {
                user: "1001".into(),
                contact: "<sip:1001@10.0.0.5:5062;line=abc>".into(),
                peer,
                expires_unix: wall.as_second() + 60,
                call_id: "reg-1@10.0.0.5".into(),
                cseq: 2,
            }],
        },
    };
    let seeds = vec![
        serde_json::to_vec_pretty(&state).unwrap(),
        serde_json::to_vec(&state).unwrap(),
    ];
    fuzz_bytes("presence state", &seeds, 300, 2000, 14, &|b| {
        let Ok(state) = serde_json::from_slice::<PresenceState>(b) else {
            return;
        };
        let now = Instant::now();
        let mut reg = Registrar::new(
            "voxmail",
            HashMap::from([("1001".to_owned(), "s3cret".to_owned())]),
        );
        reg.restore(state.registrar, now, wall);
        let _ = reg.bindings("1001");
        let _ = reg.registered_users();
        let _ = reg.user_for("10.0.0.5:5062".parse().unwrap());
        let _ = reg.next_expiry();
        let _ = reg.snapshot(now, wall);
        let mut mwi = MwiNotifier::new(None, "voxmail");
        mwi.restore(state.mwi, now, wall);
        for mailbox in mwi.watched_mailboxes() {
            let _ = mwi.subscriptions(&mailbox);
            for n in mwi.notify_all(now, &mailbox, Counts { new: 1, old: 0 }) {
                let _ = n.text();
            }
        }
        let _ = mwi.next_expiry();
        let _ = mwi.snapshot(now, wall);
        for n in mwi.expire(now + Duration::from_secs(1 << 40)) {
            let _ = n.text();
        }
        let _ = reg.expire(now + Duration::from_secs(1 << 40));
    });
}

// ---------------------------------------------------------------------------
// HTTP API bodies, queries and headers
// ---------------------------------------------------------------------------

const ADMIN: &str = "0123456789abcdef-admin";

/// One request as `METHOD /path?query`, header lines, a blank line, the
/// body. The admin token is added unless it has an `Authorization` line.
fn http_request(method: &str, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path}\n{headers}\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// The API on a real socket, its runtime on one named thread (plus its
/// blocking pool), fed mutated requests. A handler that panics is recorded
/// by the hook (the server itself survives it, so the client just sees the
/// connection drop).
#[test]
fn http_api_requests() {
    install_hook();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(API_THREAD)
        .build()
        .unwrap();
    let config_text = SMALL_CONFIG.replace(
        "tokens = [{ token = \"change-me-to-a-long-secret\"",
        &format!("tokens = [{{ token = \"{ADMIN}\""),
    );
    let config = std::sync::Arc::new(Config::parse(&config_text, "c").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tone: Vec<i16> = (0..800).map(|i| ((i % 40) * 400 - 8000) as i16).collect();
    let wav = voxmail::audio::wav::wav_bytes(&tone, 8000).unwrap();
    let mut failures: Vec<(Vec<u8>, String)> = Vec::new();
    rt.block_on(async {
        for m in &config.mailboxes {
            store
                .ensure_mailbox(&MailboxId::try_from(m.number.as_str()).unwrap())
                .unwrap();
        }
        let mut w = store
            .begin_message(NewMessage {
                mailbox: MailboxId::try_from("1001").unwrap(),
                caller_number: "+3225550100".into(),
                caller_name: Some("Bob".into()),
                called_number: "1001".into(),
                call_id: "c1".into(),
                codec: "PCMU".into(),
                started_at: jiff::Timestamp::now(),
            })
            .unwrap();
        w.write(&tone).unwrap();
        let id = w.finish(0).unwrap().unwrap().id;
        let security = voxmail::store::SecurityStore::for_store(&store)
            .unwrap()
            .with_hash_params(argon2::Params::new(8, 1, 1, None).unwrap());
        let state = voxmail::api::ApiState::new(
            config.clone(),
            store.clone(),
            voxmail::notify::EventBus::new(),
            std::sync::Arc::new(voxmail::api::Metrics::new()),
        )
        .unwrap()
        .with_security(security);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(voxmail::api::serve(listener, state));
        let http = reqwest::Client::new();

        let msg = format!("/api/v1/mailboxes/1001/messages/{id}");
        let seeds = vec![
            http_request(
                "POST",
                "/api/v1/mailboxes",
                "Content-Type: application/json\n",
                br#"{"number":"3000","pin":"4321","name":"New box","email":"n@example.org","language":"fr","max_messages":5,"max_message_seconds":60,"timezone":"Europe/Paris","shared":true,"members":["1001"],"per_member_read":true,"format":"wav+mp3"}"#,
            ),
            http_request(
                "PATCH",
                "/api/v1/mailboxes/1001",
                "Content-Type: application/json\n",
                br#"{"name":"Alice","pin":"9999","attach_audio":true,"delete_after_email":false,"ask_password":false,"attach_format":"wav","language":null}"#,
            ),
            http_request(
                "PATCH",
                &msg,
                "Content-Type: application/json\n",
                br#"{"folder":"saved","read":true}"#,
            ),
            http_request(
                "GET",
                &format!("{msg}/audio?format=wav"),
                "Range: bytes=10-99\n",
                b"",
            ),
            http_request(
                "GET",
                "/api/v1/mailboxes/1001/messages?folder=all&limit=10&offset=0&unread=true&voicemail_type=all",
                "",
                b"",
            ),
            http_request(
                "GET",
                "/api/v1/mailboxes/1001",
                "Authorization: Bearer box-1001-token-0123\n",
                b"",
            ),
            http_request(
                "POST",
                "/api/v1/login",
                "Content-Type: application/json\n",
                br#"{"mailbox":"1001","pin":"1234"}"#,
            ),
            http_request(
                "PUT",
                "/api/v1/mailboxes/1001/greetings/unavailable",
                "Content-Type: audio/wav\n",
                &wav,
            ),
            http_request(
                "PUT",
                "/api/v1/audio-messages/welcome-2",
                "Content-Type: audio/wav\n",
                &wav,
            ),
        ];
        let send = |raw: Vec<u8>| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let (head, body) = match raw.windows(2).position(|w| w == b"\n\n") {
                    Some(p) => (&raw[..p], raw[p + 2..].to_vec()),
                    None => (&raw[..], Vec::new()),
                };
                let head = String::from_utf8_lossy(head);
                let mut lines = head.lines();
                let (method, path) = lines.next().unwrap_or("").split_once(' ')?;
                let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
                let url = reqwest::Url::parse(&format!("{base}{path}")).ok()?;
                let mut req = http.request(method, url).body(body);
                // The admin token, unless the request brings its own.
                if !head.contains("Authorization") {
                    req = req.bearer_auth(ADMIN);
                }
                for l in lines {
                    if let Some((n, v)) = l.split_once(": ") {
                        let n = reqwest::header::HeaderName::from_bytes(n.as_bytes()).ok()?;
                        let v = reqwest::header::HeaderValue::from_str(v).ok()?;
                        req = req.header(n, v);
                    }
                }
                let resp = req.timeout(Duration::from_secs(10)).send().await.ok()?;
                let status = resp.status();
                let _ = resp.bytes().await;
                Some(status)
            }
        };
        let mut m = Mutator::new(15);
        let mut inputs: Vec<Vec<u8>> = seeds.clone();
        for _ in 0..scale(500) {
            inputs.push(m.mutate(&seeds));
        }
        FUZZING.with(|c| c.set(true));
        for input in inputs {
            let status = send(input.clone()).await;
            // Handlers run on this thread (a current-thread runtime) or on
            // the blocking pool's named threads.
            let here = LAST_PANIC.with(|p| p.borrow_mut().take());
            let mut panics: Vec<String> = std::mem::take(
                &mut *API_PANICS
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            panics.extend(here);
            if let Some(p) = panics.into_iter().next() {
                failures.push((input, p));
            } else if status.is_some_and(|s| s.is_server_error()) {
                failures.push((input, format!("answered {status:?}")));
            }
        }
        FUZZING.with(|c| c.set(false));
    });
    if let Some((input, msg)) = failures.iter().min_by_key(|f| f.0.len()) {
        panic!(
            "HTTP API: {} requests panicked or got a 5xx; smallest: b\"{}\"\n  -> {msg}",
            failures.len(),
            escape(input)
        );
    }
}
