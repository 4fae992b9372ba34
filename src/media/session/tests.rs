use std::sync::Arc;

use super::*;
use crate::media::dtmf::event_payload;
use crate::media::rtp::RtpHeader;
use crate::store::{MailboxId, NewMessage, Store};

fn params() -> MediaParams {
    MediaParams {
        codec: G711::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
        remote: Some("127.0.0.1:7000".parse().unwrap()),
        send: true,
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
        s.on_datagram(from, &rtp(0, seq, seq as u32 * 160, false, &frame), &mut ev);
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
            &mut ev,
        );
    }
    s.close(&mut ev);
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
    s.play(7, vec![prompt.clone(), prompt], "#".into(), &mut ev);
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

#[test]
fn barge_in_stops_playback() {
    let mut s = RtpSession::new(Some(params()));
    let mut ev = Vec::new();
    s.play(1, vec![Arc::from(vec![500i16; 8000])], "#1".into(), &mut ev);
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
    s.on_datagram(from, b"garbage", &mut ev);
    s.on_datagram(from, &rtp(18, 1, 0, false, &[0; 20]), &mut ev);
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
    s.play(7, vec![tone], String::new(), &mut ev);
    assert!(s.on_tick(&mut ev).is_some());
    assert!(s.on_tick(&mut ev).is_some());
}
