//! Per-call media statistics (`GET /api/v1/calls[/{call_id}]`) and
//! `/metrics`, against the real server with SIPp as the caller: a deposit
//! (`deposit.xml`: silence while a short greeting plays, speech, RFC 4733
//! `#`) whose packets we know one by one, so what the server says it
//! received can be checked exactly, and the message it says it stored is
//! compared with the file in the data directory.
//!
//! Needs: sipp (with PCAP), espeak-ng, sox, and root (SIPp plays pcaps
//! through a raw socket). `scripts/test` installs the packages.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use common::audio::{self, ALAW_SILENCE, ULAW_SILENCE};
use common::http;
use common::pcap::{EVENT_POUND, RtpStream};
use common::server::{self, Server};
use common::sipp::{self, SippOpts};
use common::{require_root, store, wait_for};

const ADMIN: &str = "calls-api-admin-token-0123456789";
const BOX_1001: &str = "calls-api-box-token-0123456789";
/// The telephone-event payload type in deposit.xml's offer.
const TE_PT: u8 = 101;

/// The shipped config with an admin token and a token for box 1001 only.
fn config() -> String {
    server::config_with_lines(
        &server::shipped_config(),
        "http",
        &format!(
            "tokens = [{{ token = \"{ADMIN}\", scope = \"admin\" }}, \
             {{ token = \"{BOX_1001}\", scope = [\"1001\"] }}]"
        ),
    )
}

/// What the caller sends, packet by packet.
struct Sent {
    audio_packets: u64,
    audio_bytes: u64,
    event_packets: u64,
    event_bytes: u64,
}

/// Silence while the 0.5 s greeting and the beep play, the speech, then
/// `#`, and nothing after it: every packet reaches the server before it
/// hangs up, so its count must match ours.
fn deposit_pcap(dir: &Path, pt: u8) -> (std::path::PathBuf, Sent) {
    let sp = audio::speech();
    let (speech, silence) = match pt {
        0 => (&sp.ulaw, ULAW_SILENCE),
        8 => (&sp.alaw, ALAW_SILENCE),
        _ => panic!("no speech for PT {pt}"),
    };
    let mut s = RtpStream::new(0x5eed_ca11, 1000, 320_000);
    s.audio(pt, &vec![silence; 1200 * 8], silence);
    s.audio(pt, speech, silence);
    s.dtmf_event(TE_PT, EVENT_POUND, 200);
    let mut sent = Sent {
        audio_packets: 0,
        audio_bytes: 0,
        event_packets: 0,
        event_bytes: 0,
    };
    for (_, p) in s.packets() {
        if p[1] & 0x7f == TE_PT {
            sent.event_packets += 1;
            sent.event_bytes += p.len() as u64;
        } else {
            sent.audio_packets += 1;
            sent.audio_bytes += p.len() as u64;
        }
    }
    let path = dir.join(format!("calls-api-pt{pt}.pcap"));
    s.write_pcap(&path);
    (path, sent)
}

fn get(addr: SocketAddr, path: &str, token: &str) -> http::Reply {
    http::request(addr, "GET", path, token, None)
}

fn call_path(call_id: &str) -> String {
    format!("/api/v1/calls/{call_id}")
}

/// The `pt` entry of a `by_payload_type` list.
fn by_pt(list: &Value, pt: u8) -> &Value {
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["pt"] == pt))
        .unwrap_or_else(|| panic!("no payload type {pt} in {list}"))
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One SIPp deposit while we watch its call live; returns the call's final
/// JSON after checking it against what was sent and what was stored.
fn deposit_and_check(server: &Server, pt: u8, codec: &str) -> Value {
    let api = server.http();
    let media = tempfile::Builder::new()
        .prefix("voxmail-media-")
        .tempdir()
        .unwrap();
    let (pcap, sent) = deposit_pcap(media.path(), pt);
    let opts = SippOpts::new("1001")
        .file("media.pcap", &pcap)
        .key("codec_pt", pt)
        .key("codec_name", codec)
        .timeout(Duration::from_secs(40));
    let call_id = opts.call_id.clone();
    let target = server.sip;
    let sipp = std::thread::spawn(move || sipp::run_sipp("deposit.xml", target, &opts));

    // Live: the call is listed, active, and its received count grows.
    let first = wait_for(Duration::from_secs(15), || {
        let r = get(api, &call_path(&call_id), ADMIN);
        (r.status == 200).then(|| r.json()).filter(|j| {
            j["state"] == "active" && j["rtp"]["received"]["packets"].as_u64() > Some(0)
        })
    })
    .unwrap_or_else(|| panic!("call {call_id} never seen active with packets"));
    let first_packets = first["rtp"]["received"]["packets"].as_u64().unwrap();
    let listed = get(api, "/api/v1/calls", ADMIN).json();
    assert!(
        listed["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["call_id"] == call_id.as_str() && c["state"] == "active"),
        "live call missing from the list: {listed}"
    );
    assert_eq!(
        (first["from"].as_str(), first["to"].as_str()),
        (Some("5551234"), Some("1001"))
    );
    let grown = wait_for(Duration::from_secs(10), || {
        let j = get(api, &call_path(&call_id), ADMIN).json();
        (j["state"] == "active"
            && j["rtp"]["received"]["packets"].as_u64().unwrap() > first_packets)
            .then_some(j)
    });
    assert!(
        grown.is_some(),
        "the received count did not grow while the call was up (first {first})"
    );

    let run = sipp.join().expect("SIPp thread");
    run.assert_success();

    // Ended: counts are final and the message is listed with its checksum.
    let done = wait_for(Duration::from_secs(15), || {
        let j = get(api, &call_path(&call_id), ADMIN).json();
        (j["state"] == "ended" && j["messages"][0]["sha256"].is_string()).then_some(j)
    })
    .unwrap_or_else(|| {
        panic!(
            "call never ended with a hashed message: {}",
            get(api, &call_path(&call_id), ADMIN).body
        )
    });
    eprintln!("{done:#}");
    assert_eq!(done["call_id"], call_id.as_str());
    assert_eq!(done["outcome"], "completed", "the server hung up after '#'");
    assert!(done["ended_at"].is_string() && done["answered_at"].is_string());
    let secs = done["duration_s"].as_f64().unwrap();
    assert!((5.0..30.0).contains(&secs), "duration {secs}");

    let rtp = &done["rtp"];
    let received = &rtp["received"];
    assert_eq!(
        received["packets"].as_u64(),
        Some(sent.audio_packets + sent.event_packets),
        "received packets vs the {} audio + {} event packets SIPp sent",
        sent.audio_packets,
        sent.event_packets
    );
    assert_eq!(
        received["bytes"].as_u64(),
        Some(sent.audio_bytes + sent.event_bytes)
    );
    let audio = by_pt(&received["by_payload_type"], pt);
    assert_eq!(audio["packets"].as_u64(), Some(sent.audio_packets));
    assert_eq!(audio["bytes"].as_u64(), Some(sent.audio_bytes));
    let events = by_pt(&received["by_payload_type"], TE_PT);
    assert_eq!(events["packets"].as_u64(), Some(sent.event_packets));
    assert_eq!(received["by_payload_type"].as_array().unwrap().len(), 2);
    // Greeting, beep, a keep-alive a second while recording, goodbye.
    let out = by_pt(&rtp["sent"]["by_payload_type"], pt);
    let sent_packets = rtp["sent"]["packets"].as_u64().unwrap();
    assert!(sent_packets >= 30, "server sent {sent_packets} packets");
    assert_eq!(out["packets"].as_u64(), Some(sent_packets));
    assert_eq!(out["bytes"].as_u64(), Some(sent_packets * 172));
    assert_eq!(rtp["lost"], 0);
    let jitter = rtp["jitter_ms"].as_f64().expect("jitter_ms");
    assert!((0.0..20.0).contains(&jitter), "jitter {jitter} ms");

    let dtmf = done["dtmf"].as_array().unwrap();
    assert_eq!(dtmf.len(), 1, "{dtmf:?}");
    assert_eq!(dtmf[0]["digit"], "#");
    assert_eq!(dtmf[0]["source"], "rfc4733");
    // The '#' came after ~1.2 s of silence and the speech.
    let at = dtmf[0]["at_ms"].as_u64().unwrap();
    assert!((4_000..15_000).contains(&at), "'#' at {at} ms");
    assert_eq!(
        done["dtmf_by_source"],
        serde_json::json!({"rfc4733": 1, "sip_info": 0, "inband": 0})
    );

    // The message: the one file in the inbox, byte for byte.
    let stored = store::wait_messages(
        &server.data_dir,
        "1001",
        1,
        Duration::from_secs(10),
        Duration::ZERO,
    );
    let messages = done["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    let file = stored
        .iter()
        .find(|s| s.id == m["id"].as_str().unwrap())
        .unwrap_or_else(|| panic!("message {m} not in the inbox"));
    assert_eq!(m["mailbox"], "1001");
    assert_eq!(
        m["sha256"].as_str(),
        Some(sha256_hex(&file.wav_path).as_str())
    );
    let audio_secs = m["audio_seconds"].as_f64().unwrap();
    assert_eq!(Some(audio_secs), file.meta["duration_seconds"].as_f64());
    let wav_secs = file.wav().secs();
    assert!(
        (audio_secs - wav_secs).abs() < 0.05,
        "{audio_secs} s listed, {wav_secs} s in the WAV"
    );
    done
}

/// The value of the sample `name_and_labels` (e.g. `a_total{x="y"}`).
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// PCMU deposit: live and final statistics, then `/metrics` after that
/// call and an INVITE to an unknown number.
#[test]
fn deposit_statistics_and_metrics() {
    require_root();
    let data = tempfile::Builder::new()
        .prefix("voxmail-data-")
        .tempdir()
        .unwrap();
    server::install_greeting(data.path(), "1001", 0.5);
    let mut server = Server::start(&config(), data.path());
    let api = server.http();

    // Access rules first: a token, an admin one, a valid Call-ID.
    assert_eq!(get(api, "/api/v1/calls/x@y", "wrong-token").status, 401);
    let r = get(api, "/api/v1/calls/x@y", BOX_1001);
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(get(api, "/api/v1/calls", BOX_1001).status, 403);
    let r = get(api, "/api/v1/calls/no-such-call@127.0.0.1", ADMIN);
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let r = get(api, "/api/v1/calls/bad%20id", ADMIN);
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (400, Some("invalid_call_id"))
    );
    let long = format!("/api/v1/calls/{}", "x".repeat(300));
    assert_eq!(get(api, &long, ADMIN).status, 400);
    let empty = get(api, "/api/v1/calls", ADMIN).json();
    assert_eq!(empty["count"], 0);

    let done = deposit_and_check(&server, 0, "PCMU");

    // An INVITE to a number nobody has: 404, no call in the registry.
    let opts = SippOpts::new("9999").timeout(Duration::from_secs(20));
    let unknown = opts.call_id.clone();
    sipp::run_sipp("unknown_404.xml", server.sip, &opts).assert_success();
    assert_eq!(get(api, &call_path(&unknown), ADMIN).status, 404);
    server.assert_running();

    // /metrics: each counter says exactly what happened. RTP counters
    // arrive within a second or two; wait for them to agree with the call.
    let packets_in = done["rtp"]["received"]["packets"].as_f64().unwrap();
    let packets_out = done["rtp"]["sent"]["packets"].as_f64().unwrap();
    let text = wait_for(Duration::from_secs(10), || {
        let t = get(api, "/metrics", ADMIN).body;
        (metric(&t, "voxmail_rtp_packets_total{direction=\"in\"}") == Some(packets_in)
            && metric(&t, "voxmail_rtp_packets_total{direction=\"out\"}") == Some(packets_out)
            && metric(&t, "voxmail_dtmf_total{source=\"rfc4733\"}") == Some(1.0))
        .then_some(t)
    })
    .unwrap_or_else(|| {
        panic!(
            "RTP or DTMF counters never matched the call ({packets_in} in, {packets_out} out, one '#'):\n{}",
            get(api, "/metrics", ADMIN).body
        )
    });
    eprintln!("{text}");
    for (sample, value) in [
        ("voxmail_calls_total{outcome=\"completed\"}", 1.0),
        ("voxmail_calls_total{outcome=\"rejected\"}", 1.0),
        ("voxmail_active_calls", 0.0),
        ("voxmail_messages_recorded_total", 1.0),
        ("voxmail_rtp_packets_lost_total", 0.0),
        ("voxmail_sip_responses_total{code=\"404\"}", 1.0),
        ("voxmail_dtmf_total{source=\"rfc4733\"}", 1.0),
        ("voxmail_dtmf_total{source=\"sip_info\"}", 0.0),
        ("voxmail_dtmf_total{source=\"inband\"}", 0.0),
    ] {
        assert_eq!(metric(&text, sample), Some(value), "{sample} in\n{text}");
    }
    assert!(
        metric(&text, "voxmail_sip_responses_total{code=\"200\"}").is_some_and(|v| v >= 1.0),
        "200 OK to the INVITE counted:\n{text}"
    );
    // The call stays visible after the metrics moved on.
    assert_eq!(
        get(api, &call_path(done["call_id"].as_str().unwrap()), ADMIN).json()["state"],
        "ended"
    );
}

/// The same with a PCMA-only offer: payload type 8 both ways.
#[test]
fn pcma_deposit_statistics() {
    require_root();
    let data = tempfile::Builder::new()
        .prefix("voxmail-data-")
        .tempdir()
        .unwrap();
    server::install_greeting(data.path(), "1001", 0.5);
    let server = Server::start(&config(), data.path());
    let done = deposit_and_check(&server, 8, "PCMA");
    assert!(
        done["rtp"]["received"]["by_payload_type"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["pt"] != 0),
        "no PCMU in a PCMA call: {done}"
    );
}

/// '#' by SIP INFO: listed with source `sip_info` and counted as such in
/// `/metrics`; only audio (PT 0) was received.
#[test]
fn sip_info_digit_statistics() {
    require_root();
    let data = tempfile::Builder::new()
        .prefix("voxmail-data-")
        .tempdir()
        .unwrap();
    server::install_greeting(data.path(), "1001", 0.5);
    let server = Server::start(&config(), data.path());
    let api = server.http();
    let media = tempfile::Builder::new()
        .prefix("voxmail-media-")
        .tempdir()
        .unwrap();
    let sp = audio::speech();
    let mut s = RtpStream::new(0x5eed_1f00, 7, 16_000);
    s.audio(0, &vec![ULAW_SILENCE; 1200 * 8], ULAW_SILENCE);
    s.audio(0, &sp.ulaw, ULAW_SILENCE);
    let pcap = media.path().join("speech.pcap");
    s.write_pcap(&pcap);
    let opts = SippOpts::new("1001")
        .file("media.pcap", &pcap)
        .set("talk_ms", s.duration_ms() + 300)
        .timeout(Duration::from_secs(40));
    let call_id = opts.call_id.clone();
    sipp::run_sipp("deposit_info.xml", server.sip, &opts).assert_success();

    let done = wait_for(Duration::from_secs(15), || {
        let j = get(api, &call_path(&call_id), ADMIN).json();
        (j["state"] == "ended" && j["messages"][0]["sha256"].is_string()).then_some(j)
    })
    .unwrap_or_else(|| panic!("{}", get(api, &call_path(&call_id), ADMIN).body));
    let dtmf = done["dtmf"].as_array().unwrap();
    assert_eq!(dtmf.len(), 1, "{dtmf:?}");
    assert_eq!(
        (dtmf[0]["digit"].as_str(), dtmf[0]["source"].as_str()),
        (Some("#"), Some("sip_info"))
    );
    assert_eq!(
        done["dtmf_by_source"],
        serde_json::json!({"rfc4733": 0, "sip_info": 1, "inband": 0})
    );
    let received = &done["rtp"]["received"];
    assert_eq!(received["packets"].as_u64(), Some(s.packet_count() as u64));
    assert_eq!(received["by_payload_type"].as_array().unwrap().len(), 1);
    assert_eq!(
        by_pt(&received["by_payload_type"], 0)["packets"].as_u64(),
        Some(s.packet_count() as u64)
    );

    let text = wait_for(Duration::from_secs(10), || {
        let t = get(api, "/metrics", ADMIN).body;
        (metric(&t, "voxmail_dtmf_total{source=\"sip_info\"}") == Some(1.0)).then_some(t)
    })
    .unwrap_or_else(|| panic!("{}", get(api, "/metrics", ADMIN).body));
    assert_eq!(
        metric(&text, "voxmail_dtmf_total{source=\"rfc4733\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "voxmail_dtmf_total{source=\"inband\"}"),
        Some(0.0),
        "{text}"
    );
}
