//! Per-packet media costs: the receive → record path of a voicemail call
//! (into a real spool file), the send path while a prompt plays, and the
//! pieces they are made of (G.711, jitter buffer, RFC 4733, in-band DTMF).
//!
//! `cargo bench --bench media` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use voxmail::media::dtmf::{Rfc4733Receiver, digit_to_event, event_payload};
use voxmail::media::feed::{AudioFeed, PlayItem};
use voxmail::media::g711::G711;
use voxmail::media::inband::InbandDetector;
use voxmail::media::jitter::JitterBuffer;
use voxmail::media::rtp::{self, RtpHeader};
use voxmail::media::session::{
    FRAME_SAMPLES, MediaParams, RecordOptions, RtpSession, SessionEvent,
};
use voxmail::media::tone;
use voxmail::prompts::Pcm;
use voxmail::store::{MailboxId, MessageWriter, NewMessage, Store};

/// Packets recorded into one message before it is discarded and a new one
/// started (outside the timing): one minute of audio.
const PACKETS_PER_MESSAGE: u64 = 50 * 60;

fn speech() -> Vec<i16> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/prompts/en/vm-unavailable.wav");
    hound::WavReader::open(path)
        .expect("prompt WAV")
        .samples::<i16>()
        .map(Result::unwrap)
        .collect()
}

fn params() -> MediaParams {
    MediaParams {
        codec: G711::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
        remote: Some("192.168.1.50:8000".parse().unwrap()),
        send: true,
        expect_media: true,
    }
}

fn new_message(store: &Store, n: u64) -> MessageWriter {
    store
        .begin_message(NewMessage {
            mailbox: MailboxId::try_from("1001").unwrap(),
            caller_number: "2000".into(),
            caller_name: None,
            called_number: "1001".into(),
            call_id: format!("bench-{n}"),
            codec: "PCMU".into(),
            started_at: jiff::Timestamp::now(),
        })
        .expect("begin_message")
}

fn record_options() -> RecordOptions {
    RecordOptions {
        max_samples: u64::MAX,
        silence_timeout_samples: 0,
        silence_threshold: 100,
        stop_digits: "#".into(),
    }
}

/// Speech as 160-byte µ-law payloads.
fn speech_payloads(speech: &[i16]) -> Vec<Vec<u8>> {
    speech
        .chunks_exact(FRAME_SAMPLES)
        .map(|f| {
            let mut out = Vec::new();
            G711::Pcmu.encode(f, &mut out);
            out
        })
        .collect()
}

fn bench_session(c: &mut Criterion) {
    let speech = speech();
    let payloads = speech_payloads(&speech);
    let mut g = c.benchmark_group("media");
    g.throughput(Throughput::Elements(1));

    // Receive → record: one 172-byte PCMU packet through on_datagram, then
    // the 20 ms tick that drains the jitter buffer, decodes, writes to the
    // spool WAV (buffered, header rewritten each second) and sends the
    // outgoing (silence) packet.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let from: SocketAddr = "192.168.1.50:8000".parse().unwrap();
    let mut packet = vec![0u8; rtp::RTP_HEADER_LEN + FRAME_SAMPLES];
    assert_eq!(packet.len(), 172);
    g.bench_function("rtp_receive_record_pcmu_172B", |b| {
        let mut session = RtpSession::new(Some(params()));
        let mut events = Vec::new();
        let mut seq: u16 = 1;
        let mut ts: u32 = 160;
        let mut messages = 0u64;
        // Arrival times as the engine passes them (kernel timestamps, one
        // packet every 20 ms), without a clock read in the measured loop.
        let mut arrival = Instant::now();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                messages += 1;
                session.start_recording(
                    new_message(&store, messages),
                    record_options(),
                    &mut events,
                );
                let batch = (iters - done).min(PACKETS_PER_MESSAGE);
                let start = Instant::now();
                for i in 0..batch {
                    let header = RtpHeader {
                        marker: false,
                        payload_type: 0,
                        sequence: seq,
                        timestamp: ts,
                        ssrc: 0x1234_5678,
                    };
                    header.write(&mut packet);
                    let p = &payloads[(i as usize) % payloads.len()];
                    packet[rtp::RTP_HEADER_LEN..].copy_from_slice(p);
                    arrival += Duration::from_millis(20);
                    session.on_datagram(from, black_box(&packet), arrival, &mut events);
                    black_box(session.on_tick(&mut events));
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(FRAME_SAMPLES as u32);
                }
                total += start.elapsed();
                done += batch;
                session.stop_recording(voxmail::media::session::StopReason::Stopped, &mut events);
                for e in events.drain(..) {
                    if let SessionEvent::RecordingStopped { writer, .. } = e {
                        writer.discard().unwrap();
                    }
                }
            }
            total
        })
    });

    // Send path: the tick while a prompt plays (copy, µ-law encode, RTP
    // header). The prompt is re-queued when it ends.
    let prompt: Pcm = Arc::from(speech.clone());
    g.bench_function("rtp_send_prompt_tick", |b| {
        let mut session = RtpSession::new(Some(params()));
        let mut events = Vec::new();
        session.play(1, vec![prompt.clone().into()], "#".into(), &mut events);
        b.iter(|| {
            let sent = black_box(session.on_tick(&mut events)).map(|(_, p)| p.len());
            if !events.is_empty() {
                events.clear();
                session.play(1, vec![prompt.clone().into()], "#".into(), &mut events);
            }
            sent
        })
    });

    // The same tick while a stored message streams from its feed (a ring
    // of 1.5 s). Refilling it is the reader thread's work in the server;
    // here it is done inline, a quarter second at a time, so its copy is
    // counted too.
    g.bench_function("rtp_send_feed_tick", |b| {
        let mut session = RtpSession::new(Some(params()));
        let mut events = Vec::new();
        let piece = &speech[..2000];
        let (mut writer, feed) = AudioFeed::channel(12_000);
        writer.write(piece);
        session.play(1, vec![PlayItem::Feed(feed)], "#".into(), &mut events);
        b.iter(|| {
            let sent = black_box(session.on_tick(&mut events)).map(|(_, p)| p.len());
            if writer.room() >= piece.len() {
                writer.write(piece);
            }
            sent
        })
    });
    g.finish();
}

fn bench_parts(c: &mut Criterion) {
    let speech = speech();
    let frame: Vec<i16> = speech[8000..8000 + FRAME_SAMPLES].to_vec();
    let mut g = c.benchmark_group("media");
    g.throughput(Throughput::Elements(FRAME_SAMPLES as u64));

    for codec in [G711::Pcmu, G711::Pcma] {
        let mut coded = Vec::new();
        codec.encode(&frame, &mut coded);
        let mut out = Vec::with_capacity(FRAME_SAMPLES);
        g.bench_function(format!("g711_decode_160/{}", codec.name()), |b| {
            b.iter(|| {
                out.clear();
                codec.decode(black_box(&coded), &mut out);
                black_box(out.last().copied())
            })
        });
        let mut out = Vec::with_capacity(FRAME_SAMPLES);
        g.bench_function(format!("g711_encode_160/{}", codec.name()), |b| {
            b.iter(|| {
                out.clear();
                codec.encode(black_box(&frame), &mut out);
                black_box(out.last().copied())
            })
        });
    }

    // In-band DTMF on one 20 ms frame: speech (the common case), a key
    // press, and digital silence.
    let mut dtmf = Vec::new();
    for digit in "1234567890*#".chars() {
        dtmf.extend(tone::dtmf_tone(digit, 100, 12_000).unwrap());
        dtmf.extend(tone::silence(60));
    }
    let silence = tone::silence(1000);
    for (name, audio) in [("speech", &speech), ("dtmf", &dtmf), ("silence", &silence)] {
        let frames: Vec<&[i16]> = audio.chunks_exact(FRAME_SAMPLES).collect();
        g.bench_function(format!("inband_dtmf_process_160/{name}"), |b| {
            let mut detector = InbandDetector::new();
            let mut i = 0usize;
            b.iter(|| {
                i = if i + 1 == frames.len() { 0 } else { i + 1 };
                detector.process(black_box(frames[i]))
            })
        });
    }

    g.throughput(Throughput::Elements(1));
    let mut coded = Vec::new();
    G711::Pcmu.encode(&frame, &mut coded);
    g.bench_function("jitter_push_pop", |b| {
        let mut jb = JitterBuffer::new(3);
        let mut seq: u16 = 0;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            jb.push(seq, u32::from(seq) * 160, 0, false, black_box(&coded));
            jb.pop().map(|f| f.payload.len())
        })
    });

    // RFC 4733: presses of 7 packets each (start, three updates, three
    // ends), one press per 200 ms of timestamp, digits cycling.
    let mut packets = Vec::new();
    for (n, digit) in "1234567890*#".chars().cycle().take(96).enumerate() {
        let event = digit_to_event(digit).unwrap();
        let ts = n as u32 * 1600;
        for d in [160u16, 320, 480, 640] {
            packets.push((ts, event_payload(event, false, 10, d)));
        }
        for _ in 0..3 {
            packets.push((ts, event_payload(event, true, 10, 800)));
        }
    }
    g.bench_function("rfc4733_receiver_packet", |b| {
        let mut rx = Rfc4733Receiver::new();
        let mut i = 0usize;
        b.iter(|| {
            i = if i + 1 == packets.len() { 0 } else { i + 1 };
            let (ts, payload) = &packets[i];
            rx.on_packet(*ts, black_box(payload))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_session, bench_parts);
criterion_main!(benches);
