//! Voicemail retrieval by phone end to end: a real `voxmail` server, SIPp
//! dialing `*99<box>` (scenarios `tests/sipp/retrieval_*.xml`), keys sent as
//! RFC 4733 telephone-events, SIP INFO or in-band tones. Each test seeds
//! the box with two new messages, logs in with the PIN, listens to the
//! first (the RTP the server sends is captured with a raw socket and must
//! carry the message's speech), deletes it with 7, leaves with `#`, and
//! then checks the files: the heard message went from `inbox/` to `old/`
//! while the call ran and is gone at the end, the other one is untouched.
//! Also: three wrong PINs end the call and change nothing; a PIN typed
//! during its prompt and a key typed ahead during the login must count
//! (once); baresip, a real softphone, does the same with `*98` as `1001`.
//!
//! Needs: sipp (with PCAP), baresip, espeak-ng, sox, and root (SIPp plays
//! pcaps through a raw socket; the RTP capture opens one too).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::audio::{self, ULAW_SILENCE};
use common::pcap::RtpStream;
use common::rtp_sniff::{self, RtpSniffer, Sniffed};
use common::server::{self, Server};
use common::sipp::{self, SippOpts, SippRun};
use common::store;

const BOX: &str = "1001";
const PIN: &str = "1234";
/// The first new message (ids sort by time): the speech clip.
const HEARD: &str = "20260102-080000-a1b2c3";
/// The second new message: 2 s of a 700 Hz tone; must stay untouched.
const OTHER: &str = "20260102-093000-d4e5f6";
const TE_PT: u8 = 101;
/// Keys: 120 ms on, 100 ms apart (RFC 4733 events and in-band tones).
const KEY_MS: u32 = 120;
const KEY_GAP_MS: u32 = 100;
/// Peak amplitude of each in-band tone (about -15 dBFS).
const TONE_AMPLITUDE: f64 = 6000.0;

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// When each key goes out, in ms after the ACK. The PIN prompt lasts 0.6 s;
/// the login's Argon2 check takes a while in a debug build; "you have two
/// new messages" and the main menu (~10 s) follow, and `1` may cut them
/// short; the message ("message 1", its envelope — date, caller, length,
/// ~9 s — then 4 s of speech) ends ~15 s after `1`; `7` cuts
/// the message menu short, "deleted" lasts 1 s; `#` leaves, pressed over
/// "deleted": otherwise the next message would play (`[voicemail]
/// next_after_command`, on by default) and the other message be heard.
#[derive(Clone, Copy, Debug)]
struct Timeline {
    pin_ms: u64,
    listen_ms: u64,
    delete_ms: u64,
    exit_ms: u64,
}

const TIMELINE: Timeline = Timeline {
    pin_ms: 1_500,
    listen_ms: 9_000,
    delete_ms: 27_000,
    exit_ms: 27_400,
};

fn other_message_pcm() -> Vec<i16> {
    (0..16_000)
        .map(|i| ((i as f64 / 8000.0 * 700.0 * std::f64::consts::TAU).sin() * 3000.0) as i16)
        .collect()
}

/// A data dir with box 1001 holding two new messages.
fn seeded_data() -> tempfile::TempDir {
    let data = tempdir("voxmail-data-");
    store::seed_message(
        data.path(),
        BOX,
        "inbox",
        HEARD,
        &audio::speech().pcm,
        "5550001",
    );
    store::seed_message(
        data.path(),
        BOX,
        "inbox",
        OTHER,
        &other_message_pcm(),
        "5550002",
    );
    data
}

fn file_bytes(data: &Path, folder: &str, id: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = store::folder(data, BOX, folder);
    (
        std::fs::read(dir.join(format!("{id}.wav"))).unwrap_or_default(),
        std::fs::read(dir.join(format!("{id}.json"))).unwrap_or_default(),
    )
}

/// Keys as one PCMU stream for `play_pcap_audio`: silence frames all along,
/// each group of keys at its time, as RFC 4733 events or in-band tones.
fn keys_pcap(dir: &Path, name: &str, groups: &[(u64, &str)], inband: bool) -> std::path::PathBuf {
    let mut s = RtpStream::new(0x7e57_0000 | u32::from(inband), 1000, 320_000);
    for (at_ms, keys) in groups {
        s.silence_until(0, *at_ms, ULAW_SILENCE);
        if inband {
            s.inband_keys(keys, KEY_MS, KEY_GAP_MS, TONE_AMPLITUDE);
        } else {
            s.rfc4733_keys(0, TE_PT, keys, KEY_MS, KEY_GAP_MS, ULAW_SILENCE);
        }
    }
    // A little more silence: the server hangs up during it.
    let end = s.duration_ms() + 1_500;
    s.silence_until(0, end, ULAW_SILENCE);
    let path = dir.join(name);
    s.write_pcap(&path);
    path
}

fn login_listen_delete_exit(t: Timeline) -> Vec<(u64, String)> {
    vec![
        (t.pin_ms, format!("{PIN}#")),
        (t.listen_ms, "1".into()),
        (t.delete_ms, "7".into()),
        (t.exit_ms, "#".into()),
    ]
}

/// What one retrieval call left behind.
struct CallResult {
    run: SippRun,
    rtp: Vec<Sniffed>,
    /// The heard message was seen in `old/` while the call was up.
    seen_in_old: bool,
}

/// Watches box 1001's `old/` folder for the heard message while a call runs.
struct OldWatcher {
    seen: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OldWatcher {
    fn start(data: &Path) -> OldWatcher {
        let seen = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let old_json = store::folder(data, BOX, "old").join(format!("{HEARD}.json"));
        let (s, d) = (seen.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                if old_json.exists() {
                    s.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        OldWatcher {
            seen,
            done,
            thread: Some(thread),
        }
    }

    /// Whether the heard message was ever seen in `old/`.
    fn stop(mut self) -> bool {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for OldWatcher {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `scenario` against `server` while capturing the server's RTP and
/// watching box 1001's `old/` folder for the heard message.
fn run_call(server: &Server, scenario: &str, opts: SippOpts) -> CallResult {
    let sniffer = RtpSniffer::start(server.rtp_ports);
    let watcher = OldWatcher::start(&server.data_dir);
    let run = sipp::run_sipp(scenario, server.sip, &opts);
    let seen_in_old = watcher.stop();
    // Let the last packets (goodbye) arrive.
    std::thread::sleep(Duration::from_millis(200));
    let rtp = sniffer.stop();
    CallResult {
        run,
        rtp,
        seen_in_old,
    }
}

/// The server's 200 OK to our INVITE.
/// Dials `dial` as `caller`, sends the key `groups` (RFC 4733) and expects
/// the call to end with the server's BYE.
fn keyed_call_until_bye(
    server: &mut Server,
    dial: &str,
    caller: &str,
    groups: &[(u64, &str)],
) -> CallResult {
    let media = tempdir("voxmail-media-");
    let pcap = keys_pcap(media.path(), "keys.pcap", groups, false);
    let opts = SippOpts::new(dial)
        .file("media.pcap", &pcap)
        .key("caller", caller)
        .timeout(Duration::from_secs(60));
    let res = run_call(server, "retrieval_rfc4733.xml", opts);
    res.run.assert_success();
    server.assert_running();
    server_bye(&res.run);
    res
}

fn invite_200(run: &SippRun) -> sipp::LoggedMsg {
    run.received()
        .into_iter()
        .find(|m| {
            m.status() == Some(200) && m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"))
        })
        .unwrap_or_else(|| panic!("no 200 OK to INVITE in SIPp's log\n{}", run.report()))
}

fn server_bye(run: &SippRun) -> sipp::LoggedMsg {
    run.received()
        .into_iter()
        .find(|m| m.method() == Some("BYE"))
        .unwrap_or_else(|| panic!("the server sent no BYE\n{}", run.report()))
}

/// The speech of the heard message reached SIPp's media port: the PCMU the
/// server sent there, decoded, holds it sample for sample (up to G.711).
fn assert_message_audio_arrived(res: &CallResult) {
    let (pcm, packets) = rtp_sniff::ulaw_audio_to(&res.rtp, res.run.media_port);
    eprintln!(
        "captured {packets} PCMU packets ({:.1} s) from the server to SIPp's port {}",
        pcm.len() as f64 / 8000.0,
        res.run.media_port
    );
    // From the PIN prompt to the goodbye the server talks ~20 s.
    assert!(
        packets >= 500,
        "only {packets} RTP packets reached SIPp's media port {} (of {} captured from the server)",
        res.run.media_port,
        res.rtp.len()
    );
    let (corr, overlap) = audio::best_alignment(&audio::speech().pcm, &pcm);
    eprintln!(
        "the message's speech is in the received audio: correlation {corr:.3} over {:.2} s",
        overlap as f64 / 8000.0
    );
    assert!(
        corr >= 0.8 && overlap >= 3 * 8000,
        "the received RTP does not carry the message: best correlation {corr:.3} over {:.2} s \
         (need >= 0.8 over >= 3 s)",
        overlap as f64 / 8000.0
    );
}

/// The heard message moved to old/ during the call and is gone now; the
/// other one is still new and byte for byte what we put there.
fn assert_deleted_only_the_heard_one(
    data: &Path,
    seen_in_old: bool,
    other_before: &(Vec<u8>, Vec<u8>),
) {
    assert!(
        seen_in_old,
        "message {HEARD} never showed up in old/ while it was played"
    );
    for folder in ["inbox", "old", "saved"] {
        let files = store::folder_files(data, BOX, folder);
        assert!(
            !files
                .iter()
                .any(|p| p.file_name().unwrap().to_string_lossy().starts_with(HEARD)),
            "deleted message {HEARD} still has files in {folder}/: {files:?}"
        );
    }
    assert_eq!(
        store::folder_ids(data, BOX, "inbox"),
        [OTHER],
        "inbox after the call: {:?}",
        store::folder_files(data, BOX, "inbox")
    );
    assert!(
        store::folder_ids(data, BOX, "old").is_empty()
            && store::folder_ids(data, BOX, "saved").is_empty(),
        "old/ and saved/ should be empty: {:?} {:?}",
        store::folder_files(data, BOX, "old"),
        store::folder_files(data, BOX, "saved")
    );
    assert!(
        file_bytes(data, "inbox", OTHER) == *other_before,
        "message {OTHER} was modified"
    );
}

/// Log lines the retrieval writes (login, deletion).
fn assert_log_mentions(server: &Server, what: &[&str]) {
    let log = server.log();
    for w in what {
        assert!(log.contains(w), "the server log never says {w:?}");
    }
}

fn listen_and_delete_with_pcap(scenario: &str, inband: bool) {
    common::require_root();
    let data = seeded_data();
    let other_before = file_bytes(data.path(), "inbox", OTHER);
    let mut server = Server::start_shipped(data.path());
    let media = tempdir("voxmail-media-");
    let groups = login_listen_delete_exit(TIMELINE);
    let groups: Vec<(u64, &str)> = groups.iter().map(|(t, k)| (*t, k.as_str())).collect();
    let pcap = keys_pcap(media.path(), "keys.pcap", &groups, inband);
    let opts = SippOpts::new(&format!("*99{BOX}"))
        .file("media.pcap", &pcap)
        .key("caller", "5551234")
        .timeout(Duration::from_secs(60));
    let res = run_call(&server, scenario, opts);
    res.run.assert_success();
    server.assert_running();
    let answer = invite_200(&res.run);
    let has_te = answer.body().contains("telephone-event");
    assert_eq!(
        has_te,
        !inband,
        "telephone-event in the answer: {has_te}\n{}",
        answer.body()
    );
    assert_eq!(
        server_bye(&res.run).header("Call-ID"),
        Some(res.run.call_id.as_str())
    );
    assert_message_audio_arrived(&res);
    assert_deleted_only_the_heard_one(data.path(), res.seen_in_old, &other_before);
    assert_log_mentions(&server, &["voicemail login", "deleted by phone"]);
}

/// `*991001`, PIN 1234 and the menu keys as RFC 4733 telephone-events:
/// the message plays (its speech arrives over RTP), moves to old, 7
/// deletes it, `#` leaves with goodbye and BYE; the other message stays.
#[test]
fn rfc4733_login_listen_delete() {
    listen_and_delete_with_pcap("retrieval_rfc4733.xml", false);
}

/// The same with every key as in-band DTMF tones, on a call whose offer
/// has no telephone-event.
#[test]
fn inband_login_listen_delete() {
    listen_and_delete_with_pcap("retrieval_inband.xml", true);
}

/// The same with every key as SIP INFO (`application/dtmf-relay`), and no
/// RTP from us at all: the server sends to the SDP address.
#[test]
fn sip_info_login_listen_delete() {
    let data = seeded_data();
    let other_before = file_bytes(data.path(), "inbox", OTHER);
    let mut server = Server::start_shipped(data.path());
    let t = TIMELINE;
    // The scenario's pauses count from the previous step; the PIN's five
    // INFOs take about 0.7 s.
    let opts = SippOpts::new(&format!("*99{BOX}"))
        .key("caller", "5551234")
        .set("pin_ms", t.pin_ms)
        .set("listen_ms", t.listen_ms - t.pin_ms - 700)
        .set("delete_ms", t.delete_ms - t.listen_ms)
        .set("exit_ms", t.exit_ms - t.delete_ms)
        .timeout(Duration::from_secs(60));
    let res = run_call(&server, "retrieval_info.xml", opts);
    res.run.assert_success();
    server.assert_running();
    let infos: Vec<u16> = res
        .run
        .received()
        .iter()
        .filter(|m| m.header("CSeq").is_some_and(|c| c.ends_with("INFO")))
        .filter_map(|m| m.status())
        .collect();
    assert_eq!(infos, [200; 8], "answers to our 8 INFOs");
    assert_message_audio_arrived(&res);
    assert_deleted_only_the_heard_one(data.path(), res.seen_in_old, &other_before);
    assert_log_mentions(&server, &["voicemail login", "deleted by phone"]);
}

/// `*98` from box 1001's caller id on a `[login] trusted_networks` network
/// (loopback here), the box set to `ask_password = false`: no PIN is
/// asked, so `1` at once plays the first message (were the PIN asked, `1`
/// would start it and nothing would play); 7 deletes it, `#` over
/// "deleted" leaves before the next message plays.
#[test]
fn trusted_network_star98_skips_the_pin() {
    common::require_root();
    let data = seeded_data();
    let other_before = file_bytes(data.path(), "inbox", OTHER);
    let config = server::config_with_lines(
        &server::config_with_lines(
            &server::shipped_config(),
            "login",
            "trusted_networks = [\"127.0.0.0/8\"]",
        ),
        "[mailbox]",
        "ask_password = false",
    );
    let mut server = Server::start(&config, data.path());
    let res = keyed_call_until_bye(
        &mut server,
        "*98",
        BOX,
        &[(4_000, "1"), (22_000, "7"), (22_400, "#")],
    );
    assert_message_audio_arrived(&res);
    assert_deleted_only_the_heard_one(data.path(), res.seen_in_old, &other_before);
    assert_log_mentions(
        &server,
        &["trusted caller: no PIN asked", "deleted by phone"],
    );
}

/// Three wrong PINs (RFC 4733): "login incorrect" each time, then the
/// server hangs up (BYE). Nothing in the box changed.
#[test]
fn three_wrong_pins_end_the_call() {
    common::require_root();
    let data = seeded_data();
    let before: Vec<_> = [HEARD, OTHER]
        .iter()
        .map(|id| file_bytes(data.path(), "inbox", id))
        .collect();
    let mut server = Server::start_shipped(data.path());
    let res = keyed_call_until_bye(
        &mut server,
        &format!("*99{BOX}"),
        "5551234",
        &[(1_500, "1111#"), (7_000, "2222#"), (12_500, "4321#")],
    );
    let wrong = server.count_log_lines(|l| l.contains("wrong voicemail PIN"));
    assert_eq!(wrong, 3, "wrong-PIN log lines");
    let logins =
        server.count_log_lines(|l| l.contains("voicemail login") && !l.contains("unknown mailbox"));
    assert_eq!(logins, 0, "a login was logged");
    assert!(!res.seen_in_old, "a message was played without a login");
    assert_eq!(store::folder_ids(data.path(), BOX, "inbox"), [HEARD, OTHER]);
    assert!(store::folder_files(data.path(), BOX, "old").is_empty());
    assert!(store::folder_files(data.path(), BOX, "saved").is_empty());
    for (id, b) in [HEARD, OTHER].iter().zip(&before) {
        assert!(file_bytes(data.path(), "inbox", id) == *b, "{id} changed");
    }
}

/// `[login] lockout_failures = 2`: the second wrong PIN locks the box
/// ("locked", BYE) where the default (5) would have asked a third time.
#[test]
fn a_configured_lockout_locks_after_its_count() {
    common::require_root();
    let data = seeded_data();
    let config = server::config_with_value_in(
        &server::config_with_value("lockout_failures", "2"),
        "lockout_minutes",
        "1",
    );
    let mut server = Server::start(&config, data.path());
    let res = keyed_call_until_bye(
        &mut server,
        &format!("*99{BOX}"),
        "5551234",
        &[(1_500, "1111#"), (7_000, "2222#"), (12_500, "1234#")],
    );
    let locked = server.count_log_lines(|l| l.contains("mailbox locked after repeated wrong PINs"));
    assert_eq!(locked, 1, "{}", server.log());
    assert_eq!(
        server.count_log_lines(|l| l.contains("wrong voicemail PIN")),
        2
    );
    assert_eq!(server.count_log_lines(|l| l.contains("voicemail login")), 0);
    assert!(!res.seen_in_old);
}

/// A caller who knows the PIN types it while "password" is still being
/// said (barge-in), as everyone does: the login must succeed all the same.
/// Then `#` in the main menu leaves; nothing is played or deleted.
#[test]
fn pin_typed_during_the_prompt_is_accepted() {
    common::require_root();
    let data = seeded_data();
    let mut server = Server::start_shipped(data.path());
    let media = tempdir("voxmail-media-");
    // The PIN prompt lasts 0.6 s: the first key lands in it.
    let pcap = keys_pcap(
        media.path(),
        "bargein.pcap",
        &[(250, "1234#"), (9_000, "#")],
        false,
    );
    let opts = SippOpts::new(&format!("*99{BOX}"))
        .file("media.pcap", &pcap)
        .key("caller", "5551234")
        .timeout(Duration::from_secs(60));
    let res = run_call(&server, "retrieval_rfc4733.xml", opts);
    res.run.assert_success();
    server.assert_running();
    let log = server.log();
    assert!(
        log.contains("voicemail login"),
        "the PIN typed during the prompt was refused ({} wrong-PIN lines)",
        log.lines()
            .filter(|l| l.contains("wrong voicemail PIN"))
            .count()
    );
    assert_eq!(store::folder_ids(data.path(), BOX, "inbox"), [HEARD, OTHER]);
}

/// Keys typed ahead are kept: `1` (listen) right behind the PIN's `#`,
/// while the PIN is still being checked and nothing plays. The message must
/// play (it moves to old/), then 7 and `#` as usual.
#[test]
fn key_typed_ahead_during_login_is_kept() {
    common::require_root();
    let data = seeded_data();
    let other_before = file_bytes(data.path(), "inbox", OTHER);
    let mut server = Server::start_shipped(data.path());
    let media = tempdir("voxmail-media-");
    let pcap = keys_pcap(
        media.path(),
        "typeahead.pcap",
        &[(1_500, "1234#1"), (23_000, "7"), (23_400, "#")],
        false,
    );
    let opts = SippOpts::new(&format!("*99{BOX}"))
        .file("media.pcap", &pcap)
        .key("caller", "5551234")
        .timeout(Duration::from_secs(90));
    let res = run_call(&server, "retrieval_rfc4733.xml", opts);
    res.run.assert_success();
    server.assert_running();
    assert_log_mentions(&server, &["voicemail login"]);
    assert!(
        res.seen_in_old,
        "the 1 typed right after the PIN was lost: message {HEARD} was never played"
    );
    assert_message_audio_arrived(&res);
    assert_deleted_only_the_heard_one(data.path(), res.seen_in_old, &other_before);
}

/// A real softphone: baresip, account `1001`, dials `*98` (the caller's
/// own box: only the PIN is asked). Keys go out as baresip's RFC 4733
/// events (`/sndcode` on its UDP console): PIN, 1 listen, 7 delete, `#`
/// leave. The RTP the server sent baresip (captured) must hold the
/// message's speech, and the files end as in the SIPp tests.
#[test]
fn baresip_star98_own_box_listen_delete() {
    common::require_root();
    let have = std::process::Command::new("sh")
        .args(["-c", "command -v baresip"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have,
        "baresip is missing: run scripts/test, which installs it"
    );
    let data = seeded_data();
    let other_before = file_bytes(data.path(), "inbox", OTHER);
    let mut server = Server::start_shipped(data.path());
    let dir = tempdir("voxmail-baresip-");
    let d = dir.path();

    // 40 s of silence to send (baresip 1.0's aufile cannot record what it
    // hears: the RTP capture does).
    let source = d.join("source.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&source, spec).unwrap();
    for _ in 0..40 * 8000 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let heard = d.join("heard.wav");
    let cons_port = common::net::free_port();
    let rtp = common::net::free_port_block(40);
    let conf = d.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:0\naudio_player aufile,{}\n\
             audio_source aufile,{}\nausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\n\
             auplay_channels 1\nrtp_ports {}-{}\nmodule_path /usr/lib/baresip/modules\n\
             module cons.so\nmodule g711.so\nmodule aufile.so\nmodule_app account.so\n\
             module_app menu.so\ncons_listen 127.0.0.1:{cons_port}\n",
            heard.display(),
            source.display(),
            rtp,
            rtp + 39
        ),
    )
    .unwrap();
    std::fs::write(conf.join("accounts"), "<sip:1001@127.0.0.1>;regint=0\n").unwrap();
    std::fs::write(conf.join("contacts"), "").unwrap();
    let log = std::fs::File::create(d.join("baresip.log")).unwrap();
    let child = std::process::Command::new("baresip")
        .arg("-f")
        .arg(&conf)
        .args(["-e", &format!("/dial sip:*98@{}", server.sip), "-t", "40"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start baresip");
    let mut baresip = common::ChildGuard(Some(child));
    let sniffer = RtpSniffer::start(server.rtp_ports);
    let watcher = OldWatcher::start(data.path());

    server
        .wait_log_line(0, Duration::from_secs(15), |l| l.contains("incoming call"))
        .expect("baresip's call never reached the server");
    let t0 = std::time::Instant::now();
    let console = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = TIMELINE;
    for (at_ms, keys) in [
        (t.pin_ms + 500, format!("{PIN}#")),
        (t.listen_ms, "1".into()),
        (t.delete_ms, "7".into()),
        (t.exit_ms, "#".into()),
    ] {
        let at = Duration::from_millis(at_ms);
        std::thread::sleep(at.saturating_sub(t0.elapsed()));
        console
            .send_to(
                format!("/sndcode {keys}\n").as_bytes(),
                ("127.0.0.1", cons_port),
            )
            .unwrap();
    }
    // The server hangs up after goodbye; then baresip is told to quit.
    let ended = server.wait_log_line(0, Duration::from_secs(15), |l| l.contains("call ended"));
    let seen_in_old = watcher.stop();
    let _ = console.send_to(b"/quit\n", ("127.0.0.1", cons_port));
    let status = common::wait_for(Duration::from_secs(30), || {
        baresip.0.as_mut().unwrap().try_wait().ok().flatten()
    });
    let baresip_log = std::fs::read_to_string(d.join("baresip.log")).unwrap_or_default();
    assert!(
        ended.is_some() && status.is_some(),
        "the call did not end (server BYE: {}, baresip exited: {status:?})\n--- baresip ---\n{}",
        ended.is_some(),
        common::tail(&baresip_log, 6_000)
    );
    baresip.0 = None;
    server.assert_running();

    let logins = server.count_log_lines(|l| l.contains("voicemail login") && l.contains("1001"));
    assert_eq!(logins, 1, "login to 1001 by *98");
    // Everything the server sent went to baresip's one RTP port.
    let rtp_seen = sniffer.stop();
    let mut ports: Vec<u16> = rtp_seen.iter().map(|p| p.dst_port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 1, "RTP went to ports {ports:?}");
    let (pcm, packets) = rtp_sniff::ulaw_audio_to(&rtp_seen, ports[0]);
    let (corr, overlap) = audio::best_alignment(&audio::speech().pcm, &pcm);
    eprintln!(
        "baresip was sent {packets} packets ({:.1} s); the message's speech in them: \
         correlation {corr:.3} over {:.2} s",
        pcm.len() as f64 / 8000.0,
        overlap as f64 / 8000.0
    );
    assert!(
        corr >= 0.8 && overlap >= 3 * 8000,
        "baresip was not sent the message: correlation {corr:.3} over {:.2} s",
        overlap as f64 / 8000.0
    );
    assert_deleted_only_the_heard_one(data.path(), seen_in_old, &other_before);
}
