use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::media::dtmf::event_payload;
use crate::media::feed::{AudioFeed, PlayItem};
use crate::media::rtp::RtpHeader;
use crate::prompts::Pcm;
use crate::store::{MailboxId, NewMessage, Store};

fn params() -> MediaParams {
    MediaParams {
        codec: G711::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
        remote: Some("127.0.0.1:7000".parse().unwrap()),
        send: true,
        expect_media: true,
    }
}

fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
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

fn writer(dir: &std::path::Path) -> (Store, MessageWriter) {
    let store = Store::open(dir).unwrap();
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
    (store, w)
}

fn options() -> RecordOptions {
    RecordOptions {
        max_samples: 8000 * 60,
        silence_timeout_samples: 0,
        silence_threshold: 100,
        stop_digits: "#".into(),
    }
}

/// A loud µ-law frame (a square wave).
fn loud_frame() -> Vec<u8> {
    let mut pcm = Vec::new();
    for i in 0..FRAME_SAMPLES {
        pcm.push(if (i / 10) % 2 == 0 { 8000i16 } else { -8000 });
    }
    let mut out = Vec::new();
    G711::Pcmu.encode(&pcm, &mut out);
    out
}

#[test]
fn records_in_order_and_stops_on_hash_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, w) = writer(dir.path());
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    s.start_recording(w, options(), &mut ev);
    let from: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    let frame = loud_frame();
    // 10 packets, two swapped.
    for seq in [1u16, 2, 4, 3, 5, 6, 7, 8, 9, 10] {
        s.on_datagram(
            from,
            &rtp(0, seq, seq as u32 * 160, false, &frame),
            Instant::now(),
            &mut ev,
        );
        s.on_tick(&mut ev);
    }
    assert_eq!(s.destination(), Some(from), "latched to the real source");
    // '#': start, update, three ends -> one digit, recording stopped.
    for (end, dur) in [
        (false, 160),
        (false, 320),
        (true, 480),
        (true, 480),
        (true, 480),
    ] {
        s.on_datagram(
            from,
            &rtp(101, 11, 9999, false, &event_payload(11, end, 10, dur)),
            Instant::now(),
            &mut ev,
        );
    }
    let digits: Vec<char> = ev
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Dtmf { digit, .. } => Some(*digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec!['#']);
    let stopped: Vec<_> = ev
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::RecordingStopped { writer, reason } => Some((writer, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].1, StopReason::Digit('#'));
    // 3 packets can still sit in the jitter buffer; at least 7 were recorded.
    assert!(
        stopped[0].0.samples_written() >= 7 * 160,
        "{}",
        stopped[0].0.samples_written()
    );
    assert!(!s.is_recording());
}

#[test]
fn close_flushes_jitter_buffer_into_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, w) = writer(dir.path());
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    s.start_recording(w, options(), &mut ev);
    let from: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    for seq in 1..=5u16 {
        s.on_datagram(
            from,
            &rtp(0, seq, seq as u32 * 160, false, &loud_frame()),
            Instant::now(),
            &mut ev,
        );
    }
    assert!(!s.stats().closed);
    s.close(&mut ev);
    assert!(s.stats().closed, "counts are final after close");
    match ev.pop() {
        Some(SessionEvent::RecordingStopped {
            writer,
            reason: StopReason::Stopped,
        }) => {
            assert_eq!(writer.samples_written(), 5 * 160)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn playback_is_paced_with_continuous_sequence_and_marker() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let prompt: Pcm = Arc::from(vec![1000i16; 400]); // 2.5 frames
    s.play(
        7,
        vec![prompt.clone().into(), prompt.into()],
        "#".into(),
        &mut ev,
    );
    let mut headers = Vec::new();
    for _ in 0..8 {
        let (_, pkt) = s.on_tick(&mut ev).unwrap();
        headers.push(rtp::parse(pkt).unwrap().header);
    }
    for w in headers.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
    }
    assert!(headers[0].marker, "talkspurt start");
    assert!(headers[1..].iter().all(|h| !h.marker));
    // 800 samples = 5 frames of sound, then PlayDone.
    assert!(ev.iter().any(|e| matches!(
        e,
        SessionEvent::PlayDone {
            id: 7,
            interrupted_by: None
        }
    )));
}

/// The payload of a sent packet, decoded.
fn sent_samples(pkt: &[u8]) -> Vec<i16> {
    let mut out = Vec::new();
    G711::Pcmu.decode(rtp::parse(pkt).unwrap().payload, &mut out);
    out
}

#[test]
fn a_streamed_feed_plays_after_clips_and_a_late_piece_is_silence() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let intro: Pcm = Arc::from(vec![1000i16; 240]); // 1.5 frames
    let (mut writer, feed) = AudioFeed::channel(1000);
    writer.write(&[-2000; 160]);
    s.play(
        3,
        vec![intro.into(), PlayItem::Feed(feed)],
        "#".into(),
        &mut ev,
    );
    // Frame 1: intro; frame 2: the rest of it and the feed's first piece.
    let (_, pkt) = s.on_tick(&mut ev).unwrap();
    assert!(sent_samples(pkt).iter().all(|&x| x > 900));
    let (_, pkt) = s.on_tick(&mut ev).unwrap();
    let f = sent_samples(pkt);
    assert!(f[..80].iter().all(|&x| x > 900) && f[80..].iter().all(|&x| x < -1800));
    // Frame 3: 80 samples left, nothing more ready: the rest
    // of the frame is silence, the playback goes on.
    let (_, pkt) = s.on_tick(&mut ev).unwrap();
    let f = sent_samples(pkt);
    assert!(f[..80].iter().all(|&x| x < -1800) && f[80..].iter().all(|&x| x.abs() < 10));
    let (_, pkt) = s.on_tick(&mut ev).unwrap();
    assert!(sent_samples(pkt).iter().all(|&x| x.abs() < 10));
    assert_eq!(s.stats().underruns, 2);
    assert!(s.is_playing() && ev.is_empty(), "{ev:?}");
    // More arrives, then the feed ends: PlayDone after it.
    writer.write(&[3000; 160]);
    drop(writer);
    let (_, pkt) = s.on_tick(&mut ev).unwrap();
    let h = rtp::parse(pkt).unwrap().header;
    assert!(h.marker, "sound after silence starts a talkspurt");
    assert!(sent_samples(pkt).iter().all(|&x| x > 2800));
    s.on_tick(&mut ev);
    assert!(matches!(
        ev[..],
        [SessionEvent::PlayDone {
            id: 3,
            interrupted_by: None
        }]
    ));
    assert!(!s.is_playing());
}

#[test]
fn barge_in_drops_a_feed_and_its_reader_sees_it() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let (mut writer, feed) = AudioFeed::channel(8000);
    writer.write(&[500; 8000]);
    s.play(4, vec![PlayItem::Feed(feed)], "5".into(), &mut ev);
    s.on_tick(&mut ev);
    assert!(!writer.is_abandoned());
    s.on_digit('5', DtmfSource::Rfc4733, &mut ev);
    assert!(writer.is_abandoned(), "the file reader stops");
    assert!(matches!(
        ev[..],
        [SessionEvent::PlayDone {
            id: 4,
            interrupted_by: Some('5')
        }]
    ));
}

#[test]
fn barge_in_stops_playback() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let clip: Pcm = Arc::from(vec![500i16; 8000]);
    s.play(1, vec![clip.into()], "#1".into(), &mut ev);
    s.on_tick(&mut ev);
    s.on_digit('1', DtmfSource::SipInfo, &mut ev);
    assert!(ev.iter().any(|e| matches!(
        e,
        SessionEvent::PlayDone {
            id: 1,
            interrupted_by: Some('1')
        }
    )));
}

#[test]
fn hold_sends_nothing_but_time_moves_on() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let ts0 = rtp::parse(s.on_tick(&mut ev).unwrap().1)
        .unwrap()
        .header
        .timestamp;
    s.update(MediaParams {
        send: false,
        ..params()
    });
    assert!(s.on_tick(&mut ev).is_none());
    assert!(s.on_tick(&mut ev).is_none());
    s.update(params());
    let h = rtp::parse(s.on_tick(&mut ev).unwrap().1).unwrap().header;
    assert_eq!(h.timestamp, ts0.wrapping_add(3 * 160));
}

#[test]
fn silence_and_max_length_end_recording() {
    let dir = tempfile::tempdir().unwrap();
    let (store, w) = writer(dir.path());
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    s.start_recording(
        w,
        RecordOptions {
            silence_timeout_samples: 8000,
            ..options()
        },
        &mut ev,
    );
    for _ in 0..51 {
        s.on_tick(&mut ev); // nothing arrives: silence suppression
    }
    assert!(ev.iter().any(|e| matches!(
        e,
        SessionEvent::RecordingStopped {
            reason: StopReason::Silence,
            ..
        }
    )));
    ev.clear();
    let w = store
        .begin_message(NewMessage {
            mailbox: MailboxId::try_from("1001").unwrap(),
            caller_number: "2000".into(),
            caller_name: None,
            called_number: "1001".into(),
            call_id: "d".into(),
            codec: "PCMU".into(),
            started_at: jiff::Timestamp::now(),
        })
        .unwrap();
    s.start_recording(
        w,
        RecordOptions {
            max_samples: 800,
            ..options()
        },
        &mut ev,
    );
    let from: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    for seq in 100..110u16 {
        s.on_datagram(
            from,
            &rtp(0, seq, seq as u32 * 160, false, &loud_frame()),
            Instant::now(),
            &mut ev,
        );
        s.on_tick(&mut ev);
    }
    assert!(ev.iter().any(|e| matches!(
        e,
        SessionEvent::RecordingStopped {
            reason: StopReason::MaxLength,
            ..
        }
    )));
}

#[test]
fn foreign_payloads_and_garbage_are_ignored() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
    s.on_datagram(from, b"garbage", Instant::now(), &mut ev);
    s.on_datagram(
        from,
        &rtp(18, 1, 0, false, &[0; 20]),
        Instant::now(),
        &mut ev,
    );
    assert_eq!(s.stats().ignored, 2);
    assert_eq!(
        s.destination(),
        params().remote,
        "garbage does not move the latch"
    );
}

#[test]
fn inband_digits_without_telephone_event() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, w) = writer(dir.path());
    let mut s = RtpSession::new(Some(MediaParams {
        telephone_event: None,
        ..params()
    }));
    let mut ev = Vec::new();
    s.start_recording(w, options(), &mut ev);
    let from: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    // 200 ms of '#' then 200 ms of silence, as PCMU packets.
    let mut pcm = crate::media::tone::dtmf_tone('#', 200, 12000).unwrap();
    pcm.extend(crate::media::tone::silence(200));
    for (i, chunk) in pcm.chunks(FRAME_SAMPLES).enumerate() {
        let seq = i as u16 + 1;
        let mut payload = Vec::new();
        G711::Pcmu.encode(chunk, &mut payload);
        s.on_datagram(
            from,
            &rtp(0, seq, seq as u32 * 160, false, &payload),
            Instant::now(),
            &mut ev,
        );
        s.on_tick(&mut ev);
    }
    let digits: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Dtmf { digit, source } => Some((*digit, *source)),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec![('#', DtmfSource::Inband)]);
    assert!(ev.iter().any(|e| matches!(
        e,
        SessionEvent::RecordingStopped {
            reason: StopReason::Digit('#'),
            ..
        }
    )));
}

#[test]
fn recording_sends_a_keepalive_a_second_not_silence_every_tick() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, w) = writer(dir.path());
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let first = rtp::parse(s.on_tick(&mut ev).unwrap().1).unwrap().header;
    s.start_recording(w, options(), &mut ev);
    let mut sent = Vec::new();
    for tick in 1..=150u32 {
        if let Some((_, p)) = s.on_tick(&mut ev) {
            sent.push((tick, rtp::parse(p).unwrap().header));
        }
    }
    let ticks: Vec<u32> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(ticks, [50, 100, 150]);
    // The stream's clock kept running through the quiet ticks.
    assert_eq!(sent[0].1.timestamp, first.timestamp.wrapping_add(50 * 160));
    assert_eq!(sent[0].1.sequence, first.sequence.wrapping_add(1));
    // A prompt played during the recording goes out on every tick again.
    let tone: crate::prompts::Pcm = Arc::from(vec![1000i16; 480]);
    s.play(7, vec![tone.into()], String::new(), &mut ev);
    assert!(s.on_tick(&mut ev).is_some());
    assert!(s.on_tick(&mut ev).is_some());
}

#[test]
fn counts_packets_and_bytes_per_payload_type() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let from: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    let t0 = Instant::now();
    let frame = loud_frame();
    for seq in 1u16..=10 {
        let at = t0 + Duration::from_millis(20 * seq as u64);
        s.on_datagram(
            from,
            &rtp(0, seq, seq as u32 * 160, false, &frame),
            at,
            &mut ev,
        );
        s.on_tick(&mut ev);
    }
    for (i, end) in [false, false, true].into_iter().enumerate() {
        s.on_datagram(
            from,
            &rtp(
                101,
                11 + i as u16,
                5000,
                false,
                &event_payload(5, end, 10, 160),
            ),
            t0,
            &mut ev,
        );
    }
    // A payload type that was not negotiated is ignored, not itemised.
    s.on_datagram(from, &rtp(18, 20, 0, false, &[0; 20]), t0, &mut ev);
    let st = s.stats();
    assert_eq!(st.packets_in, 13);
    assert_eq!(st.ignored, 1);
    let pcmu = st.received_by_pt.get(0).expect("PT 0 counted");
    assert_eq!((pcmu.packets, pcmu.bytes), (10, 10 * 172));
    let te = st.received_by_pt.get(101).expect("PT 101 counted");
    assert_eq!((te.packets, te.bytes), (3, 3 * 16));
    assert_eq!(st.received_by_pt.as_slice().len(), 2);
    assert_eq!(st.bytes_in, 10 * 172 + 3 * 16);
    // Not recording: one PCMU packet out per tick.
    let out = st.sent_by_pt.get(0).expect("PT 0 sent");
    assert_eq!((out.packets, out.bytes), (10, 10 * 172));
    assert_eq!(st.packets_out, 10);
    assert_eq!(st.sent_by_pt.as_slice().len(), 1);
}

#[test]
fn payload_types_beyond_the_cap_stay_in_the_totals() {
    let mut counts = PayloadCounts::default();
    for pt in 0..(MAX_PAYLOAD_TYPES as u8 + 2) {
        counts.add(pt, 100);
    }
    counts.add(0, 50);
    assert_eq!(counts.as_slice().len(), MAX_PAYLOAD_TYPES);
    assert_eq!(
        counts.get(0),
        Some(&PayloadCount {
            pt: 0,
            packets: 2,
            bytes: 150
        })
    );
    assert_eq!(counts.get(MAX_PAYLOAD_TYPES as u8), None);
}

/// Arrivals at 0, 20, 45, 60, 80 ms for timestamps 0, 160, 320, 480, 640:
/// transit (in 8 kHz units) 0, 0, 40, 0, 0, so |D| = 0, 40, 40, 0. By
/// RFC 3550 A.8 in fixed point (J16 += |D| - (J16 + 8) >> 4):
/// 0, 40, 40 + 40 - 3 = 77, 77 + 0 - 5 = 72, i.e. 4.5 units = 0.5625 ms.
#[test]
fn interarrival_jitter_follows_rfc3550() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let from: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    let t0 = Instant::now();
    let frame = loud_frame();
    let arrivals_ms = [0u64, 20, 45, 60, 80];
    let mut q4 = Vec::new();
    for (i, ms) in arrivals_ms.into_iter().enumerate() {
        s.on_datagram(
            from,
            &rtp(0, 100 + i as u16, 7_000 + 160 * i as u32, false, &frame),
            t0 + Duration::from_millis(ms),
            &mut ev,
        );
        q4.push(s.stats().jitter_q4);
    }
    assert_eq!(q4, [0, 0, 40, 77, 72]);
    assert!((s.stats().jitter_ms() - 0.5625).abs() < 1e-9);
    // The floating-point form of the same estimator agrees closely.
    let mut j = 0.0f64;
    for d in [0.0, 40.0, 40.0, 0.0] {
        j += (d - j) / 16.0;
    }
    assert!((s.stats().jitter_ms() - j / 8.0).abs() < 0.01, "{j}");
    // Event packets (repeated start timestamp) do not count; a new SSRC
    // restarts the transit reference instead of counting a jump.
    s.on_datagram(
        from,
        &rtp(101, 105, 1, false, &event_payload(1, true, 10, 160)),
        t0 + Duration::from_millis(500),
        &mut ev,
    );
    assert_eq!(s.stats().jitter_q4, 72);
    let mut other = rtp(0, 106, 999_999, false, &frame);
    other[8..12].copy_from_slice(&7u32.to_be_bytes());
    s.on_datagram(from, &other, t0 + Duration::from_millis(100), &mut ev);
    assert_eq!(s.stats().jitter_q4, 72);
}

#[test]
fn digits_are_listed_with_source_and_time_up_to_the_cap() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let from: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    for _ in 0..5 {
        s.on_tick(&mut ev);
    }
    for (end, dur) in [(false, 160), (true, 800), (true, 800)] {
        s.on_datagram(
            from,
            &rtp(101, 1, 800, false, &event_payload(11, end, 10, dur)),
            Instant::now(),
            &mut ev,
        );
    }
    s.on_tick(&mut ev);
    s.on_digit('5', DtmfSource::SipInfo, &mut ev);
    s.on_digit('7', DtmfSource::Inband, &mut ev);
    let st = s.stats();
    assert_eq!(
        st.dtmf_digits.as_slice(),
        [
            DtmfSeen {
                digit: '#',
                source: DtmfSource::Rfc4733,
                at_ms: 100
            },
            DtmfSeen {
                digit: '5',
                source: DtmfSource::SipInfo,
                at_ms: 120
            },
            DtmfSeen {
                digit: '7',
                source: DtmfSource::Inband,
                at_ms: 120
            },
        ]
    );
    assert_eq!(st.dtmf_by_source, [1, 1, 1]);
    for _ in 0..MAX_DTMF_LOGGED {
        s.on_digit('1', DtmfSource::SipInfo, &mut ev);
    }
    let st = s.stats();
    assert_eq!(st.dtmf_digits.as_slice().len(), MAX_DTMF_LOGGED);
    assert_eq!(st.dtmf_by_source, [1, 1 + MAX_DTMF_LOGGED as u64, 1]);
    assert_eq!(st.dtmf, 3 + MAX_DTMF_LOGGED as u64);
}

#[test]
fn reading_every_third_tick_judges_silence_over_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, w) = writer(dir.path());
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let opts = RecordOptions {
        silence_timeout_samples: 8000,
        ..options()
    };
    s.start_recording(w, opts, &mut ev);
    let from: SocketAddr = "127.0.0.1:7004".parse().unwrap();
    // Two seconds of loud audio, delivered three packets at a time as an
    // engine reading every third tick sees it: never silence.
    let mut seq = 0u16;
    for tick in 1..=100u32 {
        let read = tick % 3 == 0;
        if read {
            for _ in 0..3 {
                let p = rtp(0, seq, seq as u32 * 160, false, &loud_frame());
                s.on_datagram(from, &p, Instant::now(), &mut ev);
                seq += 1;
            }
        }
        s.on_tick_after(read, &mut ev);
    }
    assert!(
        !ev.iter()
            .any(|e| matches!(e, SessionEvent::RecordingStopped { .. })),
        "loud audio read in batches was judged silent"
    );
    // Then nothing arrives: the timeout (50 ticks) fires at the first read
    // at or after it, whatever the read cadence.
    let mut stopped_at = None;
    for tick in 101..=160u32 {
        s.on_tick_after(tick % 3 == 0, &mut ev);
        if stopped_at.is_none()
            && ev.iter().any(|e| {
                matches!(
                    e,
                    SessionEvent::RecordingStopped {
                        reason: StopReason::Silence,
                        ..
                    }
                )
            })
        {
            stopped_at = Some(tick);
        }
    }
    let at = stopped_at.expect("silence timeout never fired");
    assert!((150..=153).contains(&at), "fired at tick {at}");
}

#[test]
fn a_recording_stepped_ten_ticks_at_a_time_sends_and_times_as_tick_by_tick() {
    let dir = tempfile::tempdir().unwrap();
    let from: SocketAddr = "127.0.0.1:7004".parse().unwrap();
    // The same recording (2 s of audio, then nothing until the silence
    // timeout) stepped one tick at a time and ten at a time, as the engine
    // does, read every tenth tick in both.
    let run = |lump: u64| {
        let (_store, w) = writer(dir.path());
        let mut s = RtpSession::new(Some(params()));
        let mut ev = Vec::new();
        let first = rtp::parse(s.on_tick(&mut ev).unwrap().1).unwrap().header;
        let opts = RecordOptions {
            silence_timeout_samples: 8000 / 2,
            ..options()
        };
        s.start_recording(w, opts, &mut ev);
        let mut sent = Vec::new();
        let (mut seq, mut read) = (0u16, false);
        for tick in 1..=200u64 {
            if tick % lump == 0 {
                let received = std::mem::take(&mut read);
                if let Some((_, p)) = s.on_ticks_after(lump, received, &mut ev) {
                    let h = rtp::parse(p).unwrap().header;
                    let ts = h.timestamp.wrapping_sub(first.timestamp) / 160;
                    sent.push((tick, h.sequence.wrapping_sub(first.sequence), ts));
                }
            }
            if tick % 10 == 0 {
                read = true;
                for _ in 0..(if tick <= 100 { 10 } else { 0 }) {
                    let p = rtp(0, seq, seq as u32 * 160, false, &loud_frame());
                    s.on_datagram(from, &p, Instant::now(), &mut ev);
                    seq += 1;
                }
            }
            if !s.is_recording() {
                return (sent, tick);
            }
        }
        panic!("the silence timeout never ended the recording");
    };
    // Keep-alives at 50 and 100 ticks (sequence +1, +2; timestamps on the
    // stream's clock), then the timeout half a second after the audio,
    // judged at the first step after a read: tick 131 one at a time, the
    // next step (tick 140) ten at a time, at most 200 ms later. The silence
    // sent once the recording ends keeps the stream's clock either way.
    assert_eq!(
        run(1),
        (vec![(50, 1, 50), (100, 2, 100), (131, 3, 131)], 131)
    );
    assert_eq!(
        run(10),
        (vec![(50, 1, 50), (100, 2, 100), (140, 3, 140)], 140)
    );
}

fn timeouts(events: &[SessionEvent]) -> Vec<Duration> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::MediaTimeout { silent_for } => Some(*silent_for),
            _ => None,
        })
        .collect()
}

#[test]
fn no_rtp_for_the_media_timeout_is_reported_once() {
    let mut s = RtpSession::new(Some(params()));
    s.set_media_timeout(Duration::from_secs(1));
    let mut ev = Vec::new();
    let from = "127.0.0.1:7000".parse().unwrap();
    // 49 ticks of nothing, then any RTP (here comfort noise, PT 13) resets
    // the count: the far end is there.
    for _ in 0..49 {
        s.on_tick(&mut ev);
    }
    s.on_datagram(
        from,
        &rtp(13, 1, 160, false, &[40]),
        Instant::now(),
        &mut ev,
    );
    for _ in 0..49 {
        s.on_tick(&mut ev);
    }
    assert!(timeouts(&ev).is_empty(), "{ev:?}");
    // The 50th tick without RTP: reported, and only once.
    s.on_tick(&mut ev);
    assert_eq!(timeouts(&ev), [Duration::from_secs(1)]);
    for _ in 0..100 {
        s.on_tick(&mut ev);
    }
    // Lumped steps (a recording-only session) count every tick they stand for.
    let mut lumped = RtpSession::new(Some(params()));
    lumped.set_media_timeout(Duration::from_secs(1));
    let mut ev2 = Vec::new();
    for _ in 0..4 {
        lumped.on_ticks_after(10, true, &mut ev2);
    }
    assert!(timeouts(&ev2).is_empty());
    lumped.on_ticks_after(10, true, &mut ev2);
    assert_eq!(timeouts(&ev).len(), 1);
    assert_eq!(timeouts(&ev2), [Duration::from_secs(1)]);
}

#[test]
fn no_media_timeout_on_hold_or_when_off() {
    // The remote holds the call (a=sendonly / inactive): it may send nothing.
    let mut held = RtpSession::new(Some(MediaParams {
        expect_media: false,
        ..params()
    }));
    held.set_media_timeout(Duration::from_secs(1));
    // No timeout configured.
    let mut off = RtpSession::new(Some(params()));
    // Not negotiated yet (late offer).
    let mut unnegotiated = RtpSession::new(None);
    unnegotiated.set_media_timeout(Duration::from_secs(1));
    let mut ev = Vec::new();
    for _ in 0..200 {
        held.on_tick(&mut ev);
        off.on_tick(&mut ev);
        unnegotiated.on_tick(&mut ev);
    }
    assert!(timeouts(&ev).is_empty(), "{ev:?}");
    // Resumed: the count starts from the resume, not from the hold.
    held.update(params());
    for _ in 0..49 {
        held.on_tick(&mut ev);
    }
    assert!(timeouts(&ev).is_empty());
    held.on_tick(&mut ev);
    assert_eq!(timeouts(&ev), [Duration::from_secs(1)]);
}

/// `loud` then `quiet` 20 ms packets, one a tick, recorded with a 1 s
/// silence timeout; then `idle` ticks without packets. Returns the
/// stopped writer and why it stopped.
fn record_with_silence_timeout(
    dir: &std::path::Path,
    loud: u16,
    quiet: u16,
    idle: u16,
) -> (MessageWriter, StopReason) {
    let (_store, w) = writer(dir);
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    let opts = RecordOptions {
        silence_timeout_samples: 8000,
        ..options()
    };
    s.start_recording(w, opts, &mut ev);
    let from: SocketAddr = "127.0.0.1:7010".parse().unwrap();
    let quiet_frame = vec![0xFFu8; FRAME_SAMPLES]; // µ-law digital silence
    for seq in 0..loud + quiet {
        let payload = if seq < loud {
            loud_frame()
        } else {
            quiet_frame.clone()
        };
        let p = rtp(0, seq, u32::from(seq) * 160, false, &payload);
        s.on_datagram(from, &p, Instant::now(), &mut ev);
        s.on_tick(&mut ev);
    }
    for _ in 0..idle {
        s.on_tick(&mut ev);
    }
    ev.into_iter()
        .find_map(|e| match e {
            SessionEvent::RecordingStopped { writer, reason } => Some((writer, reason)),
            _ => None,
        })
        .expect("the recording stopped")
}

#[test]
fn the_silence_that_ends_a_recording_is_cut_but_a_short_tail() {
    let dir = tempfile::tempdir().unwrap();
    // 1 s of speech, then silent packets until the 1 s timeout.
    let (w, reason) = record_with_silence_timeout(dir.path(), 50, 60, 0);
    assert_eq!(reason, StopReason::Silence);
    assert_eq!(w.samples_written(), 8000 + SILENCE_TAIL_KEPT);
    let meta = w.finish(0).unwrap().unwrap();
    let reader = hound::WavReader::open(
        dir.path()
            .join("mailboxes/1001/inbox")
            .join(format!("{}.wav", meta.id)),
    )
    .unwrap();
    assert_eq!(u64::from(reader.len()), 8000 + SILENCE_TAIL_KEPT);

    // A phone that suppresses silence sends nothing: nothing silent was
    // written, so nothing is cut.
    let (w, reason) = record_with_silence_timeout(dir.path(), 50, 0, 60);
    assert_eq!(reason, StopReason::Silence);
    assert_eq!(w.samples_written(), 8000);
    w.discard().unwrap();
}

#[test]
fn a_recording_of_nothing_but_silence_is_too_short_to_keep() {
    let dir = tempfile::tempdir().unwrap();
    // Silent packets only: the timeout ends it after 1 s, 0.25 s is left,
    // under a 1 s minimum, so no message.
    let (w, reason) = record_with_silence_timeout(dir.path(), 0, 60, 0);
    assert_eq!(reason, StopReason::Silence);
    assert_eq!(w.samples_written(), SILENCE_TAIL_KEPT);
    assert!(w.finish(8000).unwrap().is_none());
    let inbox = dir.path().join("mailboxes/1001/inbox");
    assert_eq!(std::fs::read_dir(&inbox).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn a_huge_clock_jump_stops_a_recording_on_silence_without_overflowing() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, w) = writer(dir.path());
    let mut s = RtpSession::new(Some(MediaParams {
        expect_media: true,
        ..params()
    }));
    s.set_media_timeout(Duration::from_secs(60));
    let mut ev = Vec::new();
    let opts = RecordOptions {
        silence_timeout_samples: 8000,
        ..options()
    };
    s.start_recording(w, opts, &mut ev);
    // Unread and read steps both.
    s.on_ticks_after(u64::MAX, false, &mut ev);
    s.on_ticks_after(u64::MAX, false, &mut ev);
    s.on_ticks_after(u64::MAX, true, &mut ev);
    s.on_ticks_after(u64::MAX, true, &mut ev);
    assert!(ev.iter().any(|e| matches!(
        e,
        SessionEvent::RecordingStopped {
            reason: StopReason::Silence,
            ..
        }
    )));
    assert!(
        ev.iter()
            .any(|e| matches!(e, SessionEvent::MediaTimeout { .. }))
    );
}
