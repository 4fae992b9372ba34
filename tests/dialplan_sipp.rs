//! Dial plans end to end: each test writes its own plan into a temporary
//! working directory (`<cwd>/dialplans/test.toml`), starts the real
//! `voxmail` there, and drives it with SIPp (`tests/sipp/dialplan_*.xml`):
//! menus navigated with RFC 4733 keys, a menu's timeout path, calls
//! diverted by `Diversion`, `History-Info` and RFC 4458 URIs (right box,
//! right greeting), transfer by REFER and by 302, and reloads by SIGHUP
//! while a call is in progress (and a reload that must be refused).
//!
//! Needs: sipp (with PCAP), espeak-ng, sox, and root (SIPp plays pcaps
//! through a raw socket; the RTP capture opens one too).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::audio::{self, ULAW_SILENCE};
use common::pcap::{EVENT_POUND, RtpStream};
use common::rtp_sniff::{self, RtpSniffer, Sniffed};
use common::server::{self, Server};
use common::sipp::{self, SippOpts, SippRun};
use common::store;

const TE_PT: u8 = 101;
const MESSAGE_DEADLINE: Duration = Duration::from_secs(15);
/// Length of the tone greetings installed for box 1002, and their pitch:
/// the test hears from the RTP which one the server played.
const UNAVAILABLE_SECS: f64 = 0.5;
const UNAVAILABLE_HZ: f64 = 440.0;
const BUSY_SECS: f64 = 3.0;
const BUSY_HZ: f64 = 600.0;

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// The test plan. `switch_key1` is where key 1 of the `7000` menu goes
/// (the reload tests change it).
fn plan_text(switch_key1: &str) -> String {
    format!(
        r#"# Written by tests/dialplan_sipp.rs.

[[route]]
match = "5000"
node = "main-menu"

[[route]]
match = "voicemail"
node = "diverted"

[[route]]
match = "6000"
node = "to-sales"

[[route]]
match = "66{{ext}}"
node = "redirect-ext"

[[route]]
match = "7000"
node = "switch-menu"

[[route]]
match = "*99{{box}}"
node = "login"

# The retrieval menus; after `#` the plan goes on: a message for 1002.
[node.login]
kind = "voicemail_main"
mailbox = "{{box}}"
next = "box-1002"

# 1: a second menu, whose 2 leaves a message for 1002. Nothing pressed:
# a message for 1001.
[node.main-menu]
kind = "menu"
prompt = "dp-welcome"
options = {{ 1 = "sales-menu" }}
timeout_seconds = 2
retries = 0
timeout = "box-1001"
invalid = "bye"

[node.sales-menu]
kind = "menu"
prompt = "dp-main-menu"
options = {{ 2 = "box-1002" }}
timeout_seconds = 5
retries = 0
timeout = "bye"
invalid = "bye"

[node.switch-menu]
kind = "menu"
prompt = "dp-main-menu"
options = {{ 1 = "{switch_key1}" }}
timeout_seconds = 10
retries = 0
timeout = "bye"

[node.box-1001]
kind = "voicemail"
mailbox = "1001"
greeting = "unavailable"
skip_instructions_if_greeting = true

[node.box-1002]
kind = "voicemail"
mailbox = "1002"
greeting = "unavailable"
skip_instructions_if_greeting = true

# A PBX forwarded the call: the box it was for, busy greeting when busy.
[node.diverted]
kind = "voicemail"
mailbox = "{{diverted}}"
greeting = "auto"
skip_instructions_if_greeting = true

[node.to-sales]
kind = "transfer"
target = "sip:sales@pbx.example.com"
mode = "refer"
failed = "bye"

[node.redirect-ext]
kind = "transfer"
target = "sip:{{ext}}@pbx.example.com"
mode = "redirect"

[node.bye]
kind = "hangup"
"#
    )
}

/// A working directory with `dialplans/test.toml`, and the data dir with
/// short recorded greetings for 1001 and 1002 and a long busy greeting for
/// 1002 (each box's greetings at its own pitch).
struct Setup {
    cwd: tempfile::TempDir,
    data: tempfile::TempDir,
    media: tempfile::TempDir,
}

impl Setup {
    fn new(switch_key1: &str) -> Setup {
        let cwd = tempdir("voxmail-cwd-");
        std::fs::create_dir_all(cwd.path().join("dialplans")).unwrap();
        let s = Setup {
            cwd,
            data: tempdir("voxmail-data-"),
            media: tempdir("voxmail-media-"),
        };
        s.write_plan(&plan_text(switch_key1));
        server::install_greeting_named(s.data.path(), "1001", "unavailable", 0.5, 500.0);
        server::install_greeting_named(
            s.data.path(),
            "1002",
            "unavailable",
            UNAVAILABLE_SECS,
            UNAVAILABLE_HZ,
        );
        server::install_greeting_named(s.data.path(), "1002", "busy", BUSY_SECS, BUSY_HZ);
        s
    }

    fn plan_path(&self) -> PathBuf {
        self.cwd.path().join("dialplans").join("test.toml")
    }

    /// The plan file's second name, outside the watched `dialplans/`.
    fn plan_twin(&self) -> PathBuf {
        self.cwd.path().join("test.toml.twin")
    }

    /// Writes the initial plan: `dialplans/test.toml` and a hard link to it
    /// outside `dialplans/` (see [`Setup::rewrite_plan_unseen`]).
    fn write_plan(&self, text: &str) {
        std::fs::write(self.plan_path(), text).unwrap();
        std::fs::hard_link(self.plan_path(), self.plan_twin()).unwrap();
    }

    /// Rewrites the plan in place through its hard link outside
    /// `dialplans/`: the file changes, but the server's watcher on
    /// `dialplans/` (inotify reports changes made through paths in the
    /// watched directory) does not see it, so only SIGHUP can reload it.
    fn rewrite_plan_unseen(&self, text: &str) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.plan_twin())
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.sync_all().unwrap();
        assert_eq!(std::fs::read_to_string(self.plan_path()).unwrap(), text);
    }

    fn start(&self) -> Server {
        Server::start_in(&server::shipped_config(), self.data.path(), self.cwd.path())
    }
}

/// One RTP stream: silence, `keys` at their times (RFC 4733), silence
/// until `speech_at_ms`, the speech, `#`, then the speech again (a caller
/// who keeps talking: a server that missed the `#` would record it).
fn call_pcap(dir: &Path, name: &str, keys: &[(u64, &str)], speech_at_ms: u64) -> PathBuf {
    let sp = audio::speech();
    let mut s = RtpStream::new(0xd1a1_0000, 500, 16_000);
    for (at, k) in keys {
        s.silence_until(0, *at, ULAW_SILENCE);
        s.rfc4733_keys(0, TE_PT, k, 120, 100, ULAW_SILENCE);
    }
    s.silence_until(0, speech_at_ms, ULAW_SILENCE);
    s.audio(0, &sp.ulaw, ULAW_SILENCE);
    s.dtmf_event(TE_PT, EVENT_POUND, 200);
    s.audio(0, &sp.ulaw, ULAW_SILENCE);
    let path = dir.join(name);
    s.write_pcap(&path);
    path
}

fn call_opts(dialed: &str, pcap: &Path) -> SippOpts {
    call_opts_with(dialed, pcap, "", "X-Voxmail-Test: plain")
}

/// `uri_params` goes after the Request-URI's host and port (may be
/// empty); `extra_header` is one whole header line.
fn call_opts_with(dialed: &str, pcap: &Path, uri_params: &str, extra_header: &str) -> SippOpts {
    SippOpts::new(dialed)
        .file("media.pcap", pcap)
        .key("caller", "5551234")
        .key("uri_params", uri_params)
        .key("extra_header", extra_header)
        .timeout(Duration::from_secs(60))
}

/// Exactly one message in `mailbox`, holding the speech; returns it.
fn one_message_with_speech(data: &Path, mailbox: &str) -> store::Message {
    let mut msgs = store::wait_messages(
        data,
        mailbox,
        1,
        MESSAGE_DEADLINE,
        Duration::from_millis(300),
    );
    assert_eq!(
        msgs.len(),
        1,
        "expected one message in {mailbox}, found {:?}",
        store::inbox_files(data, mailbox)
    );
    let msg = msgs.pop().unwrap();
    let wav = msg.wav();
    eprintln!(
        "{}: {:.3} s, meta {}",
        msg.wav_path.display(),
        wav.secs(),
        msg.meta
    );
    wav.assert_format();
    wav.assert_contains(&audio::speech().pcm);
    msg
}

fn run_sipp_sniffing(server: &Server, scenario: &str, opts: &SippOpts) -> (SippRun, Vec<Sniffed>) {
    let sniffer = RtpSniffer::start(server.rtp_ports);
    let run = sipp::run_sipp(scenario, server.sip, opts);
    std::thread::sleep(Duration::from_millis(200));
    (run, sniffer.stop())
}

/// Key 1 in the first menu, key 2 in the second: the message lands in
/// 1002 (and nowhere else).
#[test]
fn menu_navigation_with_dtmf_reaches_the_voicemail_node() {
    common::require_root();
    let setup = Setup::new("box-1001");
    let mut server = setup.start();
    // dp-welcome is 1.8 s (1 cuts it short), dp-main-menu 5.4 s (2 cuts
    // it), greeting 0.5 s and beep 0.25 s: recording from about 3.4 s.
    let pcap = call_pcap(
        setup.media.path(),
        "nav.pcap",
        &[(800, "1"), (2_500, "2")],
        4_000,
    );
    let run = sipp::run_sipp("dialplan_call.xml", server.sip, &call_opts("5000", &pcap));
    run.assert_success();
    server.assert_running();
    let msg = one_message_with_speech(setup.data.path(), "1002");
    let secs = msg.wav().secs();
    assert!(
        (4.0..=6.0).contains(&secs),
        "message of {secs:.2} s: expected the 4 s of speech plus the wait before it"
    );
    assert_eq!(msg.str_field("call_id"), run.call_id);
    store::assert_no_messages(setup.data.path(), "1001", Duration::ZERO);
}

/// Nothing pressed: after the prompt and the 2 s timeout the menu's
/// `timeout` target (a message for 1001) runs.
#[test]
fn menu_timeout_goes_to_the_timeout_target() {
    common::require_root();
    let setup = Setup::new("box-1001");
    let mut server = setup.start();
    // dp-welcome 1.8 s + 2 s timeout + greeting + beep: recording at ~4.6 s.
    let pcap = call_pcap(setup.media.path(), "timeout.pcap", &[], 5_500);
    let run = sipp::run_sipp("dialplan_call.xml", server.sip, &call_opts("5000", &pcap));
    run.assert_success();
    server.assert_running();
    let msg = one_message_with_speech(setup.data.path(), "1001");
    let secs = msg.wav().secs();
    assert!(
        (4.0..=6.0).contains(&secs),
        "message of {secs:.2} s: expected the 4 s of speech plus the wait before it"
    );
    store::assert_no_messages(setup.data.path(), "1002", Duration::ZERO);
}

/// A call to `voicemail` (or with an RFC 4458 URI) forwarded for 1002 lands
/// in 1002 with the greeting its cause asks for. `busy` says which greeting
/// must be heard: the tone of each is looked for in the RTP the server sent.
fn diverted_call(uri_params: &str, extra_header: &str, busy: bool) {
    common::require_root();
    let setup = Setup::new("box-1001");
    let mut server = setup.start();
    // The busy greeting (3 s) ends at ~3.3 s, the unavailable one (0.5 s)
    // at ~0.8 s; the speech starts at 4 s and '#' follows it at 8 s.
    let pcap = call_pcap(setup.media.path(), "diverted.pcap", &[], 4_000);
    let opts = call_opts_with("voicemail", &pcap, uri_params, extra_header);
    let (run, rtp) = run_sipp_sniffing(&server, "dialplan_call.xml", &opts);
    run.assert_success();
    server.assert_running();
    let msg = one_message_with_speech(setup.data.path(), "1002");
    store::assert_no_messages(setup.data.path(), "1001", Duration::ZERO);
    assert_eq!(msg.str_field("mailbox"), "1002");

    let (heard, packets) = rtp_sniff::ulaw_audio_to(&rtp, run.media_port);
    let busy_secs = audio::tone_seconds(&heard, BUSY_HZ);
    let unavailable_secs = audio::tone_seconds(&heard, UNAVAILABLE_HZ);
    let secs = msg.wav().secs();
    eprintln!(
        "{packets} RTP packets to SIPp; busy tone {busy_secs:.2} s, unavailable tone \
         {unavailable_secs:.2} s; message {secs:.2} s"
    );
    assert!(packets > 100, "only {packets} RTP packets reached SIPp");
    if busy {
        assert!(
            busy_secs >= BUSY_SECS - 0.3 && unavailable_secs < 0.1,
            "expected the busy greeting ({BUSY_SECS} s at {BUSY_HZ} Hz): heard {busy_secs:.2} s \
             of it and {unavailable_secs:.2} s of the unavailable one"
        );
        // Recorded from the end of the 3 s greeting to the '#' at 8 s.
        assert!((4.0..=5.5).contains(&secs), "message of {secs:.2} s");
    } else {
        assert!(
            unavailable_secs >= UNAVAILABLE_SECS - 0.15 && busy_secs < 0.1,
            "expected the unavailable greeting ({UNAVAILABLE_SECS} s at {UNAVAILABLE_HZ} Hz): \
             heard {unavailable_secs:.2} s of it and {busy_secs:.2} s of the busy one"
        );
        assert!((6.5..=7.8).contains(&secs), "message of {secs:.2} s");
    }
}

/// `Diversion: <sip:1002@pbx>;reason=user-busy` (RFC 5806).
#[test]
fn diverted_by_diversion_header_busy() {
    diverted_call(
        "",
        "Diversion: <sip:1002@pbx.example.com>;reason=user-busy;counter=1",
        true,
    );
}

/// `Diversion: ...;reason=no-answer`: same box, unavailable greeting.
#[test]
fn diverted_by_diversion_header_no_answer() {
    diverted_call(
        "",
        "Diversion: <sip:1002@pbx.example.com>;reason=no-answer;counter=1",
        false,
    );
}

/// `History-Info` (RFC 7044) whose last entry carries `cause=486`.
#[test]
fn diverted_by_history_info_busy() {
    diverted_call(
        "",
        "History-Info: <sip:+3225550100@pbx.example.com;user=phone>;index=1, \
         <sip:1002@pbx.example.com>;index=1.1;mp=1, \
         <sip:voicemail@vm.example.com;cause=486>;index=1.1.1;rc=1.1",
        true,
    );
}

/// RFC 4458 Request-URI `sip:voicemail@host;target=1002;cause=486`.
#[test]
fn diverted_by_rfc4458_uri_busy() {
    diverted_call(";target=1002;cause=486", "X-Voxmail-Test: rfc4458", true);
}

/// A `transfer` node with mode = "refer": after answer the server sends
/// REFER with the plan's target, we accept (202) and report success
/// (NOTIFY sipfrag 200), and the server hangs up.
#[test]
fn transfer_by_refer() {
    let setup = Setup::new("box-1001");
    let mut server = setup.start();
    let opts = SippOpts::new("6000")
        .key("frag", "SIP/2.0 200 OK")
        .timeout(Duration::from_secs(30));
    let run = sipp::run_sipp("dialplan_refer.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    let refer = run
        .received()
        .into_iter()
        .find(|m| m.method() == Some("REFER"))
        .unwrap_or_else(|| panic!("no REFER\n{}", run.report()));
    let refer_to = refer
        .header("Refer-To")
        .or_else(|| refer.header("r"))
        .expect("Refer-To");
    assert!(
        refer_to.contains("sip:sales@pbx.example.com"),
        "Refer-To: {refer_to}"
    );
    assert_eq!(refer.header("Call-ID"), Some(run.call_id.as_str()));
    let msgs = run.messages();
    let pos = |f: &dyn Fn(&sipp::LoggedMsg) -> bool| msgs.iter().position(f);
    let notify_ok = pos(&|m| {
        !m.sent
            && m.status() == Some(200)
            && m.header("CSeq").is_some_and(|c| c.ends_with("NOTIFY"))
    })
    .expect("200 to our NOTIFY");
    let bye = pos(&|m| !m.sent && m.method() == Some("BYE")).expect("server BYE");
    assert!(notify_ok < bye, "BYE before the NOTIFY was answered");
    store::assert_no_messages(setup.data.path(), "1001", Duration::from_millis(500));
}

/// A route whose first node is a `transfer` with mode = "redirect": 302
/// before answering, Contact = the target with the route's capture filled
/// in; the call is never answered.
#[test]
fn transfer_by_redirect_302() {
    let setup = Setup::new("box-1001");
    let mut server = setup.start();
    let opts = SippOpts::new("6642").timeout(Duration::from_secs(20));
    let run = sipp::run_sipp("dialplan_redirect.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    let redirect = run
        .received()
        .into_iter()
        .find(|m| m.status() == Some(302))
        .unwrap_or_else(|| panic!("no 302\n{}", run.report()));
    let contact = redirect
        .header("Contact")
        .or_else(|| redirect.header("m"))
        .expect("Contact in the 302");
    assert!(
        contact.contains("sip:42@pbx.example.com"),
        "Contact: {contact}"
    );
    assert!(
        !run.received().iter().any(|m| m.status() == Some(200)),
        "the redirected call was answered"
    );
}

/// Runs `dialplan_call.xml` to `dialed` on a thread.
fn spawn_call(
    server: &Server,
    dialed: &str,
    pcap: &Path,
) -> (
    std::thread::JoinHandle<()>,
    Arc<Mutex<Option<SippRun>>>,
    String,
) {
    let opts = call_opts(dialed, pcap);
    let call_id = opts.call_id.clone();
    let target = server.sip;
    let out = Arc::new(Mutex::new(None));
    let out2 = out.clone();
    let t = std::thread::spawn(move || {
        *out2.lock().unwrap() = Some(sipp::run_sipp("dialplan_call.xml", target, &opts));
    });
    (t, out, call_id)
}

fn join_call(t: std::thread::JoinHandle<()>, out: Arc<Mutex<Option<SippRun>>>) -> SippRun {
    t.join().expect("SIPp thread");
    out.lock().unwrap().take().expect("SIPp result")
}

fn is_incoming(l: &str) -> bool {
    l.contains("incoming call")
}

/// A log line about a dial-plan reload (done or refused).
fn is_reload(l: &str) -> bool {
    l.to_ascii_lowercase().contains("reload")
}

/// Call A enters the `7000` menu; while it listens, the plan is rewritten
/// (key 1 now leads to 1002 instead of 1001) where the file watcher cannot
/// see it, and SIGHUP sent; call B starts once the reload is logged. Both press 1 six seconds into the call: A still follows the plan
/// it started with (message in 1001), B the new one (message in 1002).
#[test]
fn sighup_reload_keeps_calls_in_progress_on_their_plan() {
    common::require_root();
    let setup = Setup::new("box-1001");
    let mut server = setup.start();
    // dp-main-menu is 5.4 s, the menu then waits 10 s: 1 at 6 s, greeting
    // and beep, speech from 7.5 s, '#' at 11.5 s.
    let pcap = call_pcap(setup.media.path(), "reload.pcap", &[(6_000, "1")], 7_500);

    let (ta, ra, id_a) = spawn_call(&server, "7000", &pcap);
    server
        .wait_log_line(0, Duration::from_secs(10), is_incoming)
        .expect("call A never reached the server");
    std::thread::sleep(Duration::from_millis(500));
    let reloads_before = server.count_log_lines(is_reload);
    setup.rewrite_plan_unseen(&plan_text("box-1002"));
    server.sighup();
    let line = server
        .wait_log_line(reloads_before, Duration::from_secs(10), is_reload)
        .expect("no log line about the SIGHUP reload");
    assert!(
        !line.contains("refused") && !line.contains("fail"),
        "SIGHUP reload: {line}"
    );
    eprintln!("reload: {line}");
    let (tb, rb, id_b) = spawn_call(&server, "7000", &pcap);

    let run_a = join_call(ta, ra);
    let run_b = join_call(tb, rb);
    run_a.assert_success();
    run_b.assert_success();
    server.assert_running();
    let a = one_message_with_speech(setup.data.path(), "1001");
    let b = one_message_with_speech(setup.data.path(), "1002");
    assert_eq!(
        a.str_field("call_id"),
        id_a,
        "1001's message is not call A's"
    );
    assert_eq!(
        b.str_field("call_id"),
        id_b,
        "1002's message is not call B's"
    );
}

/// An invalid plan (key 1 leads to a node that does not exist) written
/// (unseen by the file watcher) and SIGHUP sent: the reload is refused and logged, the server keeps running
/// the old plan, and a new call still works with it (message in 1001).
#[test]
fn sighup_with_an_invalid_plan_is_refused() {
    common::require_root();
    let setup = Setup::new("box-1001");
    let mut server = setup.start();
    let reloads_before = server.count_log_lines(is_reload);
    setup.rewrite_plan_unseen(&plan_text("no-such-node"));
    server.sighup();
    let line = server
        .wait_log_line(reloads_before, Duration::from_secs(10), is_reload)
        .expect("no log line about the SIGHUP reload");
    assert!(
        line.contains("refused"),
        "the invalid plan was not refused: {line}"
    );
    eprintln!("refused: {line}");
    assert!(
        server.log().contains("no-such-node"),
        "the log does not name the unknown node"
    );
    server.assert_running();

    let pcap = call_pcap(setup.media.path(), "after.pcap", &[(6_000, "1")], 7_500);
    let run = sipp::run_sipp("dialplan_call.xml", server.sip, &call_opts("7000", &pcap));
    run.assert_success();
    server.assert_running();
    let msg = one_message_with_speech(setup.data.path(), "1001");
    assert_eq!(msg.str_field("call_id"), run.call_id);
    store::assert_no_messages(setup.data.path(), "1002", Duration::ZERO);
}

/// A `voicemail_main` node's `next` runs once the caller leaves the menus
/// with `#` (the plan goes on, as the interpreter's `AppResult::Done`
/// promises): here a deposit into 1002, which must hold our speech.
#[test]
fn voicemail_main_goes_on_to_next_after_exit() {
    common::require_root();
    let setup = Setup::new("box-1001");
    let mut server = setup.start();
    // PIN after the 0.6 s prompt, `#` in the main menu at 9 s (after the
    // Argon2 check), then whatever greeting and beep, speech from 13 s.
    let pcap = call_pcap(
        setup.media.path(),
        "after-exit.pcap",
        &[(1_500, "1234#"), (9_000, "#")],
        13_000,
    );
    let run = sipp::run_sipp(
        "dialplan_call.xml",
        server.sip,
        &call_opts("*991001", &pcap),
    );
    run.assert_success();
    server.assert_running();
    assert!(
        server.log().contains("voicemail login"),
        "the PIN was not accepted"
    );
    let msg = one_message_with_speech(setup.data.path(), "1002");
    assert_eq!(msg.str_field("call_id"), run.call_id);
}
