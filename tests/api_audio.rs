//! Message audio as WAV and MP3, and audio messages, through the real
//! binary: a box with `format = "wav+mp3"` gets a SIPp deposit and keeps
//! both files beside one JSON, the API serves each (with Range), and a
//! move or delete takes both; an MP3-only box's message is heard by phone
//! (`*99<box>`, the RTP the server sends is captured and must carry it);
//! audio messages are uploaded as a 44.1 kHz MP3 and a 16 kHz WAV,
//! downloaded as 8 kHz, spoken by espeak-ng, and bad requests get 4xx.
//!
//! Needs: sipp (with PCAP), espeak-ng, sox, and root for the SIPp tests
//! (SIPp plays pcaps through a raw socket; the RTP capture opens one too).
//! Built with the `mp3` feature only (the default).

#![cfg(feature = "mp3")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::audio::{self, ULAW_SILENCE};
use common::pcap::RtpStream;
use common::rtp_sniff::{self, RtpSniffer};
use common::server::Server;
use common::sipp::{self, SippOpts};
use common::{deposit, store};

const ADMIN: &str = "admin-token-0123456789";
const ALICE: &str = "alice-1001-token-0123456";

/// The shipped config with tokens and box formats: 1001 keeps WAV+MP3,
/// 1002 MP3 only.
fn config() -> String {
    let text = common::server::shipped_config();
    let tokens = format!(
        "[http]\ntokens = [\n  {{ token = \"{ADMIN}\", scope = \"admin\" }},\n  \
         {{ token = \"{ALICE}\", scope = [\"1001\"] }},\n]\n"
    );
    assert!(text.contains("[http]\n") && text.contains("number = \"1002\"\n"));
    text.replacen("[http]\n", &tokens, 1)
        .replacen(
            "number = \"1001\"\n",
            "number = \"1001\"\nformat = \"wav+mp3\"\n",
            1,
        )
        .replacen(
            "number = \"1002\"\n",
            "number = \"1002\"\nformat = \"mp3\"\n",
            1,
        )
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// One HTTP reply, body as bytes (audio is binary).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// `method path` over one HTTP/1.1 connection, with extra headers.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    // Written on a thread: the server may answer (413) before it has read
    // a large body, and the answer must still be read.
    let mut w = s.try_clone().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(req.as_bytes());
        let _ = w.write_all(&body);
    });
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let _ = writer.join();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no header end"));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    http(addr, "GET", path, Some(ADMIN), &[], b"")
}

/// A WAV's samples, checking the store's format (8 kHz mono 16-bit).
fn wav_samples(bytes: &[u8]) -> Vec<i16> {
    let mut r = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("a WAV");
    let spec = r.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16),
        "not 8 kHz mono 16-bit"
    );
    r.samples::<i16>().map(Result::unwrap).collect()
}

fn mp3_samples(bytes: &[u8]) -> Vec<i16> {
    voxmail::audio::decode_bytes(bytes.to_vec(), 3600)
        .unwrap_or_else(|e| panic!("not a decodable MP3: {e}"))
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A SIPp deposit into a WAV+MP3 box: both files beside one JSON; the API
/// serves either, with Range on the MP3; reading the message (PATCH) moves
/// both, DELETE removes both.
#[test]
fn wav_and_mp3_box_keeps_both_and_moves_them_together() {
    common::require_root();
    let data = tempdir("voxmail-data-");
    let server = Server::start(&config(), data.path());
    let api = server.http();
    let msg = deposit::leave_and_find(&server, "1001", 1);
    assert_eq!(msg.str_field("format"), "wav+mp3");
    let inbox = store::inbox(data.path(), "1001");
    let id = &msg.id;
    assert_eq!(
        file_names(&inbox),
        [
            format!("{id}.json"),
            format!("{id}.mp3"),
            format!("{id}.wav")
        ]
    );
    let stored_wav = std::fs::read(inbox.join(format!("{id}.wav"))).unwrap();
    let stored_mp3 = std::fs::read(inbox.join(format!("{id}.mp3"))).unwrap();
    let wav_len = wav_samples(&stored_wav).len();
    let secs = msg.meta["duration_seconds"].as_f64().unwrap();
    assert!(
        (secs * 8000.0 - wav_len as f64).abs() < 2.0,
        "{secs} s vs {wav_len}"
    );
    assert!(secs > 3.0, "the deposit holds the 4 s of speech: {secs} s");

    // Each format downloads as the stored file and decodes to the length.
    let base = format!("/api/v1/mailboxes/1001/messages/{id}/audio");
    let r = get(api, &format!("{base}?format=wav"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.body, stored_wav);
    let r = get(api, &format!("{base}?format=mp3"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/mpeg"));
    assert_eq!(r.body, stored_mp3);
    let pcm = mp3_samples(&r.body);
    assert!(
        pcm.len().abs_diff(wav_len) <= 576,
        "{} vs {wav_len}",
        pcm.len()
    );
    let (corr, _) = audio::best_alignment(&audio::speech().pcm, &pcm);
    assert!(corr > 0.8, "the MP3 does not carry the speech: {corr:.3}");

    // Range on the MP3: a middle slice, a suffix, and past the end.
    let len = stored_mp3.len();
    let r = http(
        api,
        "GET",
        &format!("{base}?format=mp3"),
        Some(ALICE),
        &[("Range", "bytes=100-1099")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, stored_mp3[100..1100]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-1099/{len}").as_str())
    );
    let r = http(
        api,
        "GET",
        &format!("{base}?format=mp3"),
        Some(ADMIN),
        &[("Range", "bytes=-500")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, stored_mp3[len - 500..]);
    let r = http(
        api,
        "GET",
        &format!("{base}?format=mp3"),
        Some(ADMIN),
        &[("Range", &format!("bytes={len}-"))],
        b"",
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    // Unknown formats are refused.
    let r = get(api, &format!("{base}?format=ogg"));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "unsupported_format")
    );

    // Heard: both files move to old/ under the one JSON.
    let r = http(
        api,
        "PATCH",
        &format!("/api/v1/mailboxes/1001/messages/{id}"),
        Some(ADMIN),
        &[("Content-Type", "application/json")],
        br#"{"read": true}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["format"], "wav+mp3");
    assert!(file_names(&inbox).is_empty(), "{:?}", file_names(&inbox));
    let old = store::folder(data.path(), "1001", "old");
    assert_eq!(file_names(&old).len(), 3, "{:?}", file_names(&old));
    assert_eq!(
        std::fs::read(old.join(format!("{id}.mp3"))).unwrap(),
        stored_mp3
    );
    // The MP3 still downloads from its new folder.
    assert_eq!(get(api, &format!("{base}?format=mp3")).body, stored_mp3);

    let r = http(
        api,
        "DELETE",
        &format!("/api/v1/mailboxes/1001/messages/{id}"),
        Some(ADMIN),
        &[],
        b"",
    );
    assert_eq!(r.status, 204);
    assert!(file_names(&old).is_empty(), "{:?}", file_names(&old));
}

/// Box 1002 keeps MP3 only: a seeded MP3 message (no WAV) is listed,
/// downloads as WAV (transcoded) and MP3 (as stored), and is heard by
/// phone: `*991002`, PIN, 1 to listen (the server's RTP must carry the
/// speech), 7 deletes it (its MP3 goes), `#` leaves.
#[test]
fn mp3_only_message_is_heard_by_phone() {
    common::require_root();
    const ID: &str = "20260102-080000-a1b2c3";
    let data = tempdir("voxmail-data-");
    let speech = &audio::speech().pcm;
    store::seed_message(data.path(), "1002", "inbox", ID, speech, "5550001");
    let inbox = store::inbox(data.path(), "1002");
    let mp3 = voxmail::audio::mp3::encode_mp3(speech, 8000).unwrap();
    std::fs::write(inbox.join(format!("{ID}.mp3")), &mp3).unwrap();
    std::fs::remove_file(inbox.join(format!("{ID}.wav"))).unwrap();
    let json = inbox.join(format!("{ID}.json"));
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    meta["format"] = "mp3".into();
    std::fs::write(&json, meta.to_string()).unwrap();

    let mut server = Server::start(&config(), data.path());
    let api = server.http();
    let r = get(api, "/api/v1/mailboxes/1002/messages?folder=inbox");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["total"], 1, "{}", r.json());
    let base = format!("/api/v1/mailboxes/1002/messages/{ID}/audio");
    // Without `format`, the stored MP3.
    let r = get(api, &base);
    assert_eq!(r.header("content-type"), Some("audio/mpeg"));
    assert_eq!(r.body, mp3);
    let r = get(api, &format!("{base}?format=wav"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    let wav = wav_samples(&r.body);
    assert!(
        wav.len().abs_diff(speech.len()) <= 576,
        "{} vs {}",
        wav.len(),
        speech.len()
    );
    // Range works on the transcoded WAV too.
    let r = http(
        api,
        "GET",
        &format!("{base}?format=wav"),
        Some(ADMIN),
        &[("Range", "bytes=0-43")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..4], b"RIFF");

    // By phone.
    let media = tempdir("voxmail-media-");
    let mut s = RtpStream::new(0x7e57_0000, 1000, 320_000);
    // 7 after the message: "message 1", its envelope (~9 s), 4 s of speech.
    for (at_ms, keys) in [(1_500, "5678#"), (9_000, "1"), (27_000, "7"), (27_400, "#")] {
        s.silence_until(0, at_ms, ULAW_SILENCE);
        s.rfc4733_keys(0, 101, keys, 120, 100, ULAW_SILENCE);
    }
    let end = s.duration_ms() + 1_500;
    s.silence_until(0, end, ULAW_SILENCE);
    let pcap = media.path().join("keys.pcap");
    s.write_pcap(&pcap);
    let sniffer = RtpSniffer::start(server.rtp_ports);
    let opts = SippOpts::new("*991002")
        .file("media.pcap", &pcap)
        .key("caller", "5551234")
        .timeout(Duration::from_secs(60));
    let run = sipp::run_sipp("retrieval_rfc4733.xml", server.sip, &opts);
    std::thread::sleep(Duration::from_millis(200));
    let rtp = sniffer.stop();
    run.assert_success();
    server.assert_running();
    let (heard, packets) = rtp_sniff::ulaw_audio_to(&rtp, run.media_port);
    assert!(packets >= 500, "only {packets} RTP packets to SIPp");
    let (corr, overlap) = audio::best_alignment(speech, &heard);
    eprintln!(
        "MP3 message heard by phone: correlation {corr:.3} over {:.2} s",
        overlap as f64 / 8000.0
    );
    assert!(
        corr >= 0.8 && overlap >= 3 * 8000,
        "the phone did not hear the MP3 message: correlation {corr:.3} over {:.2} s",
        overlap as f64 / 8000.0
    );
    // Deleted by phone: no file of it is left anywhere.
    for folder in ["inbox", "old", "saved"] {
        let names = file_names(&store::folder(data.path(), "1002", folder));
        assert!(
            !names.iter().any(|n| n.starts_with(ID)),
            "{folder}: {names:?}"
        );
    }
}

/// A tone as 16-bit samples.
fn tone(rate: u32, secs: f64, freq: f64, amp: f64) -> Vec<i16> {
    (0..(f64::from(rate) * secs) as usize)
        .map(|i| (amp * (std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

/// Amplitude of `freq` in 8 kHz audio, by correlation.
fn tone_amplitude(s: &[i16], freq: f64) -> f64 {
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, &x) in s.iter().enumerate() {
        let ph = std::f64::consts::TAU * freq * i as f64 / 8000.0;
        re += f64::from(x) * ph.cos();
        im += f64::from(x) * ph.sin();
    }
    2.0 * (re * re + im * im).sqrt() / s.len().max(1) as f64
}

fn wav_file(rate: u32, channels: u16, frames: &[i16]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
    for &s in frames {
        for _ in 0..channels {
            w.write_sample(s).unwrap();
        }
    }
    w.finalize().unwrap();
    buf.into_inner()
}

/// Audio messages: a 44.1 kHz MP3 and a 16 kHz stereo WAV go in and come
/// out as 8 kHz with their length and tone; list, MP3 download, delete;
/// text-to-speech; and every bad request is a 4xx that leaves nothing.
#[test]
fn audio_messages_upload_download_and_speak() {
    let data = tempdir("voxmail-data-");
    let server = Server::start(&config(), data.path());
    let api = server.http();
    let put = |name: &str, body: &[u8], token: &str| {
        http(
            api,
            "PUT",
            &format!("/api/v1/audio-messages/{name}"),
            Some(token),
            &[],
            body,
        )
    };

    // 1.5 s of 440 Hz at 44.1 kHz, as MP3.
    let mut enc = voxmail::audio::mp3::Mp3Encoder::new(44100).unwrap();
    let mut mp3 = Vec::new();
    enc.encode(&tone(44100, 1.5, 440.0, 12000.0), &mut mp3)
        .unwrap();
    let tag = enc.finish(&mut mp3).unwrap();
    mp3[..tag.len()].copy_from_slice(&tag);
    let r = put("welcome-mp3", &mp3, ADMIN);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let secs = r.json()["duration_seconds"].as_f64().unwrap();
    assert!((secs - 1.5).abs() < 0.05, "{secs}");
    // 2 s of 1 kHz at 16 kHz, stereo WAV.
    let r = put(
        "menu_16k",
        &wav_file(16000, 2, &tone(16000, 2.0, 1000.0, 8000.0)),
        ADMIN,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["sample_rate"], 8000);

    for (name, secs, freq, amp) in [
        ("welcome-mp3", 1.5, 440.0, 12000.0),
        ("menu_16k", 2.0, 1000.0, 8000.0),
    ] {
        let r = get(api, &format!("/api/v1/audio-messages/{name}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("audio/wav"));
        let pcm = wav_samples(&r.body);
        let got = pcm.len() as f64 / 8000.0;
        assert!((got - secs).abs() < 0.05, "{name}: {got} s");
        let a = tone_amplitude(&pcm[800..pcm.len() - 800], freq);
        assert!(
            (amp * 0.85..amp * 1.15).contains(&a),
            "{name}: {freq} Hz at {a}"
        );
        // Stored as the store's WAV.
        let on_disk = std::fs::read(data.path().join(format!("audio/{name}.wav"))).unwrap();
        assert_eq!(wav_samples(&on_disk), pcm);
    }
    let r = get(api, "/api/v1/audio-messages/menu_16k?format=mp3");
    assert_eq!(r.header("content-type"), Some("audio/mpeg"));
    assert!(mp3_samples(&r.body).len().abs_diff(16000) <= 576);

    let r = get(api, "/api/v1/audio-messages");
    assert_eq!(r.status, 200);
    let list = r.json();
    let names: Vec<&str> = list["audio_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["menu_16k", "welcome-mp3"]);
    assert_eq!(list["audio_messages"][0]["duration_seconds"], 2.0);

    // Text to speech.
    let speak = |name: &str, body: &str| {
        http(
            api,
            "POST",
            &format!("/api/v1/audio-messages/{name}/tts"),
            Some(ADMIN),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    };
    let r = speak(
        "tts-hello",
        r#"{"text": "Welcome to voxmail. Please hold.", "language": "en"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let pcm = wav_samples(&get(api, "/api/v1/audio-messages/tts-hello").body);
    let secs = pcm.len() as f64 / 8000.0;
    assert!((1.0..6.0).contains(&secs), "{secs} s of speech");
    assert!(
        audio::rms(&pcm) > 500.0,
        "silent speech: rms {}",
        audio::rms(&pcm)
    );
    let r = speak(
        "tts-fr",
        r#"{"text": "Bonjour", "language": "fr", "voice": "f2"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for (body, status) in [
        (r#"{"text": "hi", "language": "xx"}"#, 400),
        (r#"{"text": "  ", "language": "en"}"#, 400),
        (
            r#"{"text": "hi", "language": "en", "voice": "../../etc"}"#,
            400,
        ),
        (r#"{"text": "hi"}"#, 422),
        (r#"{"text": "hi", "language": "en", "rate": 3}"#, 422),
        ("not json", 400),
    ] {
        let r = speak("tts-bad", body);
        assert_eq!(
            r.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let long = format!(r#"{{"text": "{}", "language": "en"}}"#, "a ".repeat(1500));
    assert_eq!(speak("tts-bad", &long).status, 413);

    // Bad uploads and names; nothing is stored by any of them.
    let r = put("junk", b"this is not audio at all", ADMIN);
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_audio"));
    assert_eq!(put("empty", b"", ADMIN).status, 400);
    for bad in ["%2E%2E", "a%2Fb", ".hidden", "x.wav", "%20"] {
        let r = put(bad, &mp3, ADMIN);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "invalid_name"),
            "{bad}"
        );
    }
    assert_eq!(
        put("a/b", &mp3, ADMIN).status,
        404,
        "a separator is no name"
    );
    // 11 MiB: over the 10 MiB upload limit.
    let r = put("huge", &vec![0u8; 11 * 1024 * 1024], ADMIN);
    assert_eq!(r.status, 413);
    // Box tokens and no token.
    assert_eq!(put("mine", &mp3, ALICE).status, 403);
    assert_eq!(
        http(api, "GET", "/api/v1/audio-messages", Some(ALICE), &[], b"").status,
        403
    );
    assert_eq!(
        http(api, "GET", "/api/v1/audio-messages", None, &[], b"").status,
        401
    );
    let mut stored = file_names(&data.path().join("audio"));
    stored.retain(|n| !n.starts_with('.'));
    assert_eq!(
        stored,
        [
            "menu_16k.wav",
            "tts-fr.wav",
            "tts-hello.wav",
            "welcome-mp3.wav"
        ],
        "only the good ones are stored"
    );

    // Delete, then it is gone.
    let del = |name: &str| {
        http(
            api,
            "DELETE",
            &format!("/api/v1/audio-messages/{name}"),
            Some(ADMIN),
            &[],
            b"",
        )
    };
    assert_eq!(del("menu_16k").status, 204);
    assert_eq!(del("menu_16k").status, 404);
    assert_eq!(get(api, "/api/v1/audio-messages/menu_16k").status, 404);
    assert!(!data.path().join("audio/menu_16k.wav").exists());
}

/// A message spoken by espeak-ng through the API is what a dial plan's
/// `play` node plays: an audio message named like the prompt replaces it
/// at once (no reload), and the RTP the caller gets carries it.
#[test]
fn tts_audio_message_is_played_by_a_dial_plan() {
    common::require_root();
    let cwd = tempdir("voxmail-cwd-");
    std::fs::create_dir_all(cwd.path().join("dialplans")).unwrap();
    std::fs::write(
        cwd.path().join("dialplans/test.toml"),
        "# Written by tests/api_audio.rs.\n\n[[route]]\nmatch = \"5100\"\nnode = \"hello\"\n\n\
         [node.hello]\nkind = \"play\"\nprompt = \"dp-welcome\"\nnext = \"bye\"\n\n\
         [node.bye]\nkind = \"hangup\"\n",
    )
    .unwrap();
    let data = tempdir("voxmail-data-");
    let mut server = Server::start_in(&config(), data.path(), cwd.path());
    let api = server.http();
    let r = http(
        api,
        "POST",
        "/api/v1/audio-messages/dp-welcome/tts",
        Some(ADMIN),
        &[("Content-Type", "application/json")],
        br#"{"text": "Thank you for calling the test company. Goodbye.", "language": "en"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let spoken = wav_samples(&get(api, "/api/v1/audio-messages/dp-welcome").body);
    assert!(spoken.len() > 8000, "{} samples", spoken.len());

    let media = tempdir("voxmail-media-");
    let mut s = RtpStream::new(0xd1a1_5100, 500, 16_000);
    let end = (spoken.len() / 8) as u64 + 3_000;
    s.silence_until(0, end, ULAW_SILENCE);
    let pcap = media.path().join("silence.pcap");
    s.write_pcap(&pcap);
    let opts = SippOpts::new("5100")
        .file("media.pcap", &pcap)
        .key("caller", "5551234")
        .key("uri_params", "")
        .key("extra_header", "X-Voxmail-Test: tts")
        .timeout(Duration::from_secs(60));
    let sniffer = RtpSniffer::start(server.rtp_ports);
    let run = sipp::run_sipp("dialplan_call.xml", server.sip, &opts);
    std::thread::sleep(Duration::from_millis(200));
    let rtp = sniffer.stop();
    run.assert_success();
    server.assert_running();
    let (heard, _) = rtp_sniff::ulaw_audio_to(&rtp, run.media_port);
    let (corr, overlap) = audio::best_alignment(&spoken, &heard);
    eprintln!(
        "TTS audio message heard: correlation {corr:.3} over {:.2} s",
        overlap as f64 / 8000.0
    );
    assert!(
        corr >= 0.8 && overlap as f64 >= spoken.len() as f64 * 0.8,
        "the call did not play the spoken audio message: {corr:.3} over {overlap} samples"
    );
}
