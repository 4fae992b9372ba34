//! Voicemail deposit end to end: a real `voxmail` server, SIPp as the
//! caller (scenarios in `tests/sipp/`), speech generated with espeak-ng and
//! sox, RTP played by SIPp (`rtp_stream`, and `play_pcap_audio` with pcaps
//! written by `common::pcap`). Each test checks SIPp's verdict, what the
//! server answered (from SIPp's message log) and what it stored.
//!
//! Needs: sipp (with PCAP and RTPSTREAM), espeak-ng, sox, and root (SIPp
//! plays pcaps through a raw socket). `scripts/test` installs the packages.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::audio::{self, ALAW_SILENCE, SPEECH_SECS, ULAW_SILENCE};
use common::pcap::{EVENT_POUND, RtpStream};
use common::server::{self, Server};
use common::sipp::{self, SippOpts, SippRun, Transport};
use common::store::{self, ExpectMeta};

const CALLER_NUMBER: &str = "5551234";
const CALLER_NAME: &str = "Sipp Caller";
/// The telephone-event payload type our offers use.
const TE_PT: u8 = 101;
/// Recorded duration bounds around the speech we send: the recording starts
/// when the beep ends (a little before our speech) and stops at '#' or BYE.
const DUR_SLACK_LOW: f64 = 0.6;
const DUR_SLACK_HIGH: f64 = 1.6;
/// Loose floor for "not silent" (16-bit PCM RMS); the speech is ~-3 dBFS peak.
const MIN_RMS: f64 = 300.0;
const MESSAGE_DEADLINE: Duration = Duration::from_secs(15);

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// SIPp plays pcaps through a raw socket: say so plainly if we can't.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        uid, "0",
        "SIPp's play_pcap_audio needs a raw socket: run these tests as root (or with CAP_NET_RAW)"
    );
}

/// A data dir whose mailbox has a short recorded greeting (0.5 s), so the
/// recording starts ~0.75 s after the ACK.
fn data_dir_with_greeting(mailbox: &str) -> tempfile::TempDir {
    let data = tempdir("voxmail-data-");
    server::install_greeting(data.path(), mailbox, 0.5);
    data
}

/// Writes `media.pcap`-to-be in `dir`: `lead_ms` of silence frames (sent
/// while the greeting plays), `loops` times the speech, '#' (PT 101), then
/// the speech once more: a caller who keeps talking after '#'. A server that
/// missed the '#' would record that too (and fail the duration check) rather
/// than hang up on a silence timeout that hides the miss.
fn speech_then_pound_pcap(dir: &Path, pt: u8, lead_ms: u32, loops: usize) -> PathBuf {
    let sp = audio::speech();
    let (speech, silence) = match pt {
        0 => (&sp.ulaw, ULAW_SILENCE),
        8 => (&sp.alaw, ALAW_SILENCE),
        _ => panic!("no speech for PT {pt}"),
    };
    let mut s = RtpStream::new(0x5eed_0000 | u32::from(pt), 4242, 160_000);
    s.audio(pt, &vec![silence; lead_ms as usize * 8], silence);
    for _ in 0..loops {
        s.audio(pt, speech, silence);
    }
    s.dtmf_event(TE_PT, EVENT_POUND, 200);
    s.audio(pt, speech, silence);
    let path = dir.join(format!("speech-pound-pt{pt}-{loops}.pcap"));
    s.write_pcap(&path);
    path
}

/// The server's 200 OK to our first INVITE, from SIPp's log.
fn invite_200(run: &SippRun) -> sipp::LoggedMsg {
    run.received()
        .into_iter()
        .find(|m| {
            m.status() == Some(200) && m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"))
        })
        .unwrap_or_else(|| panic!("no 200 OK to INVITE in SIPp's log\n{}", run.report()))
}

/// Checks an SDP (answer or offer) from the server: audio on 127.0.0.1 at a
/// port from the server's RTP range, payload type `pt`, telephone-event.
fn check_server_sdp(sdp: &str, server: &Server, pt: u8, te_pt: Option<u8>) {
    let m = sdp
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .unwrap_or_else(|| panic!("no m=audio line in SDP:\n{sdp}"));
    let fields: Vec<&str> = m.split_whitespace().collect();
    let port: u16 = fields[1]
        .parse()
        .unwrap_or_else(|_| panic!("bad port in {m:?}"));
    let (lo, hi) = server.rtp_ports;
    assert!(
        (lo..=hi).contains(&port),
        "RTP port {port} in {m:?} is outside the server's range {lo}-{hi}"
    );
    assert!(
        fields.iter().skip(3).any(|f| *f == pt.to_string()),
        "payload type {pt} missing from {m:?}"
    );
    let c = sdp
        .lines()
        .find(|l| l.starts_with("c=IN IP4 "))
        .unwrap_or_else(|| panic!("no c=IN IP4 line in SDP:\n{sdp}"));
    assert_eq!(c.trim(), "c=IN IP4 127.0.0.1", "connection address");
    let te = sdp
        .lines()
        .find(|l| {
            l.starts_with("a=rtpmap:") && l.to_ascii_lowercase().contains("telephone-event/8000")
        })
        .unwrap_or_else(|| panic!("no telephone-event rtpmap in SDP:\n{sdp}"));
    if let Some(te_pt) = te_pt {
        assert!(
            te.starts_with(&format!("a=rtpmap:{te_pt} ")),
            "telephone-event should keep the offered PT {te_pt}: {te:?}"
        );
    }
}

fn expect_meta<'a>(mailbox: &'a str, codec: &'a str, call_id: &'a str) -> ExpectMeta<'a> {
    ExpectMeta {
        mailbox,
        caller_number: CALLER_NUMBER,
        caller_name: Some(CALLER_NAME),
        called_number: mailbox,
        codec,
        call_id,
    }
}

/// Exactly one message in `mailbox`, with the speech in it; returns it.
fn one_message_with_speech(
    data: &Path,
    mailbox: &str,
    min_secs: f64,
    max_secs: f64,
) -> store::Message {
    let mut msgs = store::wait_messages(
        data,
        mailbox,
        1,
        MESSAGE_DEADLINE,
        Duration::from_millis(500),
    );
    assert_eq!(
        msgs.len(),
        1,
        "expected exactly one message, found {:?}",
        store::inbox_files(data, mailbox)
    );
    let msg = msgs.pop().unwrap();
    let wav = msg.wav();
    eprintln!(
        "{}: {:.3} s, RMS {:.0} (speech RMS {:.0}); meta {}",
        msg.wav_path.display(),
        wav.secs(),
        wav.rms(),
        audio::speech().rms(),
        msg.meta
    );
    wav.assert_format();
    wav.assert_duration(min_secs, max_secs);
    wav.assert_not_silent(MIN_RMS);
    wav.assert_level_like(&audio::speech().pcm);
    let (corr, overlap) = wav.assert_contains(&audio::speech().pcm);
    eprintln!("  matches the sent speech: correlation {corr:.3} over {overlap:.2} s");
    msg
}

fn deposit_with_pound(pt: u8, codec: &str) {
    require_root();
    let data = data_dir_with_greeting("1001");
    let mut server = Server::start_shipped(data.path());
    let media = tempdir("voxmail-media-");
    let pcap = speech_then_pound_pcap(media.path(), pt, 1200, 1);
    let opts = SippOpts::new("1001")
        .file("media.pcap", &pcap)
        .key("codec_pt", pt)
        .key("codec_name", codec)
        .timeout(Duration::from_secs(40));
    let run = sipp::run_sipp("deposit.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();

    check_server_sdp(invite_200(&run).body(), &server, pt, Some(TE_PT));
    assert!(
        run.received().iter().any(|m| m.status() == Some(100)),
        "no 100 Trying for the INVITE\n{}",
        run.report()
    );
    let bye = run
        .received()
        .into_iter()
        .find(|m| m.method() == Some("BYE"))
        .expect("server BYE in log");
    assert_eq!(bye.header("Call-ID"), Some(run.call_id.as_str()));

    let msg = one_message_with_speech(
        data.path(),
        "1001",
        SPEECH_SECS - DUR_SLACK_LOW,
        SPEECH_SECS + DUR_SLACK_HIGH,
    );
    store::check_meta(&msg, &expect_meta("1001", codec, &run.call_id));
}

/// Speech in PCMU, then RFC 4733 '#': the server says goodbye, sends BYE,
/// and stores the message with its metadata.
#[test]
fn deposit_pcmu_ended_by_pound() {
    deposit_with_pound(0, "PCMU");
}

/// The same with a PCMA-only offer: the answer and the metadata say PCMA.
#[test]
fn deposit_pcma_ended_by_pound() {
    deposit_with_pound(8, "PCMA");
}

/// No recorded greeting: the generated prompt (~6-8 s) plays, then the beep,
/// then recording. We talk all along (4 x 4 s of speech, then '#'): the
/// message holds only what came after the beep.
#[test]
fn deposit_with_default_generated_greeting() {
    require_root();
    let data = tempdir("voxmail-data-");
    let mut server = Server::start_shipped(data.path());
    let media = tempdir("voxmail-media-");
    let pcap = speech_then_pound_pcap(media.path(), 0, 500, 4);
    let opts = SippOpts::new("1001")
        .file("media.pcap", &pcap)
        .key("codec_pt", 0)
        .key("codec_name", "PCMU")
        .timeout(Duration::from_secs(60));
    let run = sipp::run_sipp("deposit.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    let sent = 0.5 + 4.0 * SPEECH_SECS;
    // A greeting of at least ~5 s must have been skipped; at least 1 s kept.
    let msg = one_message_with_speech(data.path(), "1001", 1.0, sent - 5.0);
    store::check_meta(&msg, &expect_meta("1001", "PCMU", &run.call_id));
}

/// Plays `pcap` with deposit.xml (PCMU) against a server with `config`,
/// expecting the server to end the call with BYE; returns the SIPp run.
fn deposit_until_server_hangs_up(config: &str, data: &Path, pcap: &Path) -> (SippRun, Server) {
    require_root();
    let mut server = Server::start(config, data);
    let opts = SippOpts::new("1001")
        .file("media.pcap", pcap)
        .key("codec_pt", 0)
        .key("codec_name", "PCMU")
        .timeout(Duration::from_secs(40));
    let run = sipp::run_sipp("deposit.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    (run, server)
}

/// `silence_timeout_seconds = 2`: speech, then only silence frames (no
/// '#'): the server ends the recording, hangs up, and keeps the message.
#[test]
fn silence_timeout_ends_recording() {
    let data = data_dir_with_greeting("1001");
    let media = tempdir("voxmail-media-");
    // 20 s of silence frames after the speech: far more than the timeout.
    let pcap = lead_speech_tail_pcap(media.path(), 20);
    let config = server::config_with_value("silence_timeout_seconds", "2");
    let (run, _server) = deposit_until_server_hangs_up(&config, data.path(), &pcap);
    // The speech, with the silence sent between the beep and the speech,
    // and of the 2 s of silence that ended it only a 0.25 s tail.
    one_pcmu_speech_message(data.path(), &run, 0.0);
}

/// A caller who says nothing: silence frames until the 2 s timeout. What
/// is left once that silence is cut is under `min_message_seconds` (1 s),
/// so the box stays empty, as with Asterisk's `maxsilence` and `minsecs`.
#[test]
fn silence_only_leaves_no_message() {
    let data = data_dir_with_greeting("1001");
    let media = tempdir("voxmail-media-");
    let mut s = RtpStream::new(0x5eed_0000, 11, 160_000);
    s.audio(0, &vec![ULAW_SILENCE; 20 * 8000], ULAW_SILENCE);
    let pcap = media.path().join("silence.pcap");
    s.write_pcap(&pcap);
    let config = server::config_with_value("silence_timeout_seconds", "2");
    let (_run, server) = deposit_until_server_hangs_up(&config, data.path(), &pcap);
    // The message is judged before the goodbye and the BYE.
    assert!(
        store::inbox_files(data.path(), "1001").is_empty(),
        "{:?}",
        store::inbox_files(data.path(), "1001")
    );
    assert_eq!(
        server.count_log_lines(|l| l.contains("message too short, discarded")),
        1,
        "{}",
        server.log()
    );
}

/// 1.2 s of silence frames (the greeting plays), the speech, then
/// `tail_secs` of silence frames, as `media.pcap`-to-be in `dir`.
fn lead_speech_tail_pcap(dir: &Path, tail_secs: usize) -> PathBuf {
    let sp = audio::speech();
    let mut s = RtpStream::new(0x5eed_5117, 7, 80_000);
    s.audio(0, &vec![ULAW_SILENCE; 1200 * 8], ULAW_SILENCE);
    s.audio(0, &sp.ulaw, ULAW_SILENCE);
    s.audio(0, &vec![ULAW_SILENCE; tail_secs * 8000], ULAW_SILENCE);
    let path = dir.join(format!("speech-then-{tail_secs}s-silence.pcap"));
    s.write_pcap(&path);
    path
}

/// Box 1001 holds one PCMU message of the speech, up to `extra_secs`
/// longer, from `run`'s call.
fn one_pcmu_speech_message(data: &Path, run: &SippRun, extra_secs: f64) {
    let msg = one_message_with_speech(
        data,
        "1001",
        SPEECH_SECS - DUR_SLACK_LOW,
        SPEECH_SECS + extra_secs + DUR_SLACK_HIGH,
    );
    store::check_meta(&msg, &expect_meta("1001", "PCMU", &run.call_id));
}

/// `max_message_seconds = 2`: we talk for 4 s; the recording stops at 2 s,
/// the server hangs up, and the message is kept.
#[test]
fn max_message_length_ends_recording() {
    let data = data_dir_with_greeting("1001");
    let media = tempdir("voxmail-media-");
    let sp = audio::speech();
    let mut s = RtpStream::new(0x5eed_3a11, 9, 40_000);
    s.audio(0, &vec![ULAW_SILENCE; 800 * 8], ULAW_SILENCE);
    for _ in 0..3 {
        s.audio(0, &sp.ulaw, ULAW_SILENCE);
    }
    let pcap = media.path().join("long-speech.pcap");
    s.write_pcap(&pcap);
    let config = server::config_with_value("max_message_seconds", "2");
    let (run, _server) = deposit_until_server_hangs_up(&config, data.path(), &pcap);
    let msg = one_message_with_speech(data.path(), "1001", 1.8, 2.3);
    store::check_meta(&msg, &expect_meta("1001", "PCMU", &run.call_id));
}

/// `[rtp] timeout_seconds = 2`, no silence timeout: the caller's phone
/// sends speech, then nothing at all and no BYE (it lost its network). The
/// server hangs up on it and keeps the message, without a silent tail.
#[test]
fn caller_gone_without_bye_is_hung_up_and_message_kept() {
    let data = data_dir_with_greeting("1001");
    let media = tempdir("voxmail-media-");
    let pcap = lead_speech_tail_pcap(media.path(), 0);
    let config = server::config_with_value_in(
        &server::config_with_value("silence_timeout_seconds", "0"),
        "timeout_seconds",
        "2",
    );
    let (run, server) = deposit_until_server_hangs_up(&config, data.path(), &pcap);
    assert_eq!(
        server.count_log_lines(|l| l.contains("no RTP from the caller")),
        1,
        "the media timeout ended the call:\n{}",
        server.log()
    );
    one_pcmu_speech_message(data.path(), &run, 0.0);
    // The call's outcome says why it ended (counted once SIPp's 200 to our
    // BYE is in).
    let counted = "voxmail_calls_total{outcome=\"media_timeout\"} 1";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = common::http::request(server.http(), "GET", "/metrics", "", None);
        if metrics.body.lines().any(|l| l == counted) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{counted}` in /metrics:\n{}",
            metrics.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bye_mid_recording(mailbox: &str, transport: Transport) {
    let data = data_dir_with_greeting(mailbox);
    let mut server = Server::start_shipped(data.path());
    let sp = audio::speech();
    let opts = SippOpts::new(mailbox)
        .file("speech.ul", &sp.ulaw_path())
        .set("talk_ms", (SPEECH_SECS * 1000.0) as u64 + 300)
        .transport(transport)
        .timeout(Duration::from_secs(30));
    let run = sipp::run_sipp("bye_mid_recording.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    check_server_sdp(invite_200(&run).body(), &server, 0, Some(TE_PT));
    let msg = one_message_with_speech(
        data.path(),
        mailbox,
        SPEECH_SECS - DUR_SLACK_LOW,
        SPEECH_SECS + DUR_SLACK_HIGH,
    );
    store::check_meta(&msg, &expect_meta(mailbox, "PCMU", &run.call_id));
    // Nothing leaked into the other mailbox.
    let other = if mailbox == "1001" { "1002" } else { "1001" };
    store::assert_no_messages(data.path(), other, Duration::ZERO);
}

/// The caller hangs up while recording: 200 to the BYE, message kept.
#[test]
fn bye_mid_recording_keeps_message() {
    bye_mid_recording("1001", Transport::Udp);
}

/// The same over TCP, to the French mailbox 1002.
#[test]
fn bye_mid_recording_over_tcp_mailbox_1002() {
    bye_mid_recording("1002", Transport::Tcp);
}

/// Under 1 s of audio, then BYE: nothing is stored.
#[test]
fn short_message_is_discarded() {
    let data = data_dir_with_greeting("1001");
    let mut server = Server::start_shipped(data.path());
    let media = tempdir("voxmail-media-");
    let short = media.path().join("short.ul");
    std::fs::write(&short, audio::speech_ulaw_prefix(0.4)).unwrap();
    let opts = SippOpts::new("1001")
        .file("speech.ul", &short)
        .set("talk_ms", 600)
        .timeout(Duration::from_secs(30));
    let run = sipp::run_sipp("bye_mid_recording.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    store::assert_no_messages(data.path(), "1001", Duration::from_secs(2));
}

/// CANCEL while the server rings (answer_delay_ms = 2000): 200 to the
/// CANCEL, 487 to the INVITE, no message.
#[test]
fn cancel_before_answer() {
    let data = data_dir_with_greeting("1001");
    let mut server = Server::start(&server::config_with_answer_delay(2000), data.path());
    let opts = SippOpts::new("1001").timeout(Duration::from_secs(20));
    let run = sipp::run_sipp("cancel.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    assert!(
        !run.received()
            .iter()
            .any(|m| m.status() == Some(200)
                && m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"))),
        "the cancelled INVITE must not be answered 200"
    );
    // Past the answer delay: the call must not come up late.
    store::assert_no_messages(data.path(), "1001", Duration::from_millis(2500));
    server.assert_running();
}

/// A G.729-only offer: 488, no message.
#[test]
fn g729_only_offer_gets_488() {
    let data = data_dir_with_greeting("1001");
    let mut server = Server::start_shipped(data.path());
    let opts = SippOpts::new("1001").timeout(Duration::from_secs(20));
    let run = sipp::run_sipp("reject_488.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    assert!(
        !run.received().iter().any(|m| m.status() == Some(200)),
        "a 200 was sent for an offer with no common codec"
    );
    store::assert_no_messages(data.path(), "1001", Duration::from_secs(1));
}

/// INVITE for a number that is not a mailbox: 404, nothing stored.
#[test]
fn unknown_number_gets_404() {
    let data = data_dir_with_greeting("1001");
    let mut server = Server::start_shipped(data.path());
    let opts = SippOpts::new("9999").timeout(Duration::from_secs(20));
    let run = sipp::run_sipp("unknown_404.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    store::assert_no_messages(data.path(), "1001", Duration::from_secs(1));
    store::assert_no_messages(data.path(), "1002", Duration::ZERO);
    assert!(
        !data.path().join("mailboxes").join("9999").exists(),
        "a mailbox directory was created for the unknown number"
    );
}

/// INVITE without SDP: the 200 carries the server's offer, our ACK the
/// answer; the audio we then send is recorded.
#[test]
fn late_offer_answer_in_ack() {
    let data = data_dir_with_greeting("1001");
    let mut server = Server::start_shipped(data.path());
    let sp = audio::speech();
    let opts = SippOpts::new("1001")
        .file("speech.ul", &sp.ulaw_path())
        .set("talk_ms", (SPEECH_SECS * 1000.0) as u64 + 300)
        .timeout(Duration::from_secs(30));
    let run = sipp::run_sipp("late_offer.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    let ok = invite_200(&run);
    assert!(
        ok.header("Content-Type")
            .is_some_and(|c| c.eq_ignore_ascii_case("application/sdp")),
        "200 to a late-offer INVITE must carry SDP"
    );
    check_server_sdp(ok.body(), &server, 0, None);
    let msg = one_message_with_speech(
        data.path(),
        "1001",
        SPEECH_SECS - DUR_SLACK_LOW,
        SPEECH_SECS + DUR_SLACK_HIGH,
    );
    store::check_meta(&msg, &expect_meta("1001", "PCMU", &run.call_id));
}

/// Hold (a=sendonly -> a=recvonly) and resume (a=sendrecv) by re-INVITE in
/// the middle of the recording; then BYE. One message with all the speech.
#[test]
fn reinvite_hold_and_resume_while_recording() {
    let data = data_dir_with_greeting("1001");
    let mut server = Server::start_shipped(data.path());
    let sp = audio::speech();
    let opts = SippOpts::new("1001")
        .file("speech.ul", &sp.ulaw_path())
        .timeout(Duration::from_secs(30));
    let run = sipp::run_sipp("hold_resume.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    // One dialog: every 200 to an INVITE has the same To tag.
    let tags: std::collections::BTreeSet<String> = run
        .received()
        .iter()
        .filter(|m| {
            m.status() == Some(200) && m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"))
        })
        .filter_map(|m| m.to_tag())
        .collect();
    assert_eq!(tags.len(), 1, "To tags of the 200s: {tags:?}");
    let msg = one_message_with_speech(
        data.path(),
        "1001",
        SPEECH_SECS - DUR_SLACK_LOW,
        SPEECH_SECS + DUR_SLACK_HIGH,
    );
    store::check_meta(&msg, &expect_meta("1001", "PCMU", &run.call_id));
}

/// The same INVITE sent twice (same branch and CSeq): one dialog, one
/// message.
#[test]
fn retransmitted_invite_is_absorbed() {
    require_root();
    let data = data_dir_with_greeting("1001");
    let mut server = Server::start_shipped(data.path());
    let media = tempdir("voxmail-media-");
    let pcap = speech_then_pound_pcap(media.path(), 0, 1200, 1);
    // SIPp runs one scenario step per scheduler tick, so the server's 100
    // (or 200) can arrive between our two sends, where SIPp would call it
    // unexpected and abort. Let it continue instead: the 200 is retransmitted
    // until ACKed, and every response is checked from the log below.
    let opts = SippOpts::new("1001")
        .file("media.pcap", &pcap)
        .arg("-default_behaviors")
        .arg("all,-abortunexp")
        .timeout(Duration::from_secs(40));
    let run = sipp::run_sipp("retransmit_invite.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    let oks: Vec<sipp::LoggedMsg> = run
        .received()
        .into_iter()
        .filter(|m| {
            m.status() == Some(200) && m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"))
        })
        .collect();
    let tags: std::collections::BTreeSet<String> = oks.iter().filter_map(|m| m.to_tag()).collect();
    assert_eq!(tags.len(), 1, "one dialog expected; 200 To tags: {tags:?}");
    let non_2xx: Vec<u16> = run
        .received()
        .iter()
        .filter_map(|m| m.status())
        .filter(|&c| c >= 300)
        .collect();
    assert!(
        non_2xx.is_empty(),
        "error responses to the retransmission: {non_2xx:?}"
    );
    let msg = one_message_with_speech(
        data.path(),
        "1001",
        SPEECH_SECS - DUR_SLACK_LOW,
        SPEECH_SECS + DUR_SLACK_HIGH,
    );
    store::check_meta(&msg, &expect_meta("1001", "PCMU", &run.call_id));
    store::assert_no_messages(data.path(), "1002", Duration::ZERO);
}

fn options(transport: Transport) {
    let data = tempdir("voxmail-data-");
    let mut server = Server::start_shipped(data.path());
    let opts = SippOpts::new("1001")
        .transport(transport)
        .timeout(Duration::from_secs(15));
    let run = sipp::run_sipp("options.xml", server.sip, &opts);
    run.assert_success();
    server.assert_running();
    let ok = run
        .received()
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("200 in log");
    let allow = ok
        .header("Allow")
        .expect("Allow header")
        .to_ascii_uppercase();
    for m in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"] {
        assert!(allow.contains(m), "Allow: {allow} lacks {m}");
    }
    let accept = ok.header("Accept").expect("Accept header");
    assert!(
        accept.to_ascii_lowercase().contains("application/sdp"),
        "Accept: {accept}"
    );
    assert!(
        ok.header("Supported").or_else(|| ok.header("k")).is_some(),
        "no Supported header in:\n{}",
        ok.text
    );
    assert_eq!(ok.header("Call-ID"), Some(run.call_id.as_str()));
}

/// OPTIONS over UDP: 200 with Allow, Accept, Supported.
#[test]
fn options_udp() {
    options(Transport::Udp);
}

/// OPTIONS over TCP, on the same port.
#[test]
fn options_tcp() {
    options(Transport::Tcp);
}
