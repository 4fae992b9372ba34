//! The engine with real sockets on loopback.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::MediaEngine;
use crate::media::g711::G711;
use crate::media::ports::PortPool;
use crate::media::session::{MediaParams, SessionStats};

/// A 20 ms PCMU packet.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xFF; 160]);
    p
}

fn phone() -> UdpSocket {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

fn talk(from: &UdpSocket, to: SocketAddr, first_seq: u16, ssrc: u32) {
    for i in 0..10 {
        from.send_to(&rtp(first_seq + i, ssrc), to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (stats are published once a second) for `cond` on the stats.
fn wait_stats(session: &super::MediaSession, cond: impl Fn(&SessionStats) -> bool) -> SessionStats {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let s = session.stats();
        if cond(&s) || Instant::now() > until {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `s` receives a packet from `from` within a second.
fn hears(s: &UdpSocket, from: SocketAddr) -> bool {
    let mut buf = [0u8; 512];
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Ok((_, src)) = s.recv_from(&mut buf)
            && src == from
        {
            return true;
        }
    }
    false
}

/// A PCMU session on a port from `first_port` up, sending to `phone`:
/// the session, its port, its parameters and its event receiver.
fn open_towards(
    engine: &MediaEngine,
    first_port: u16,
    phone: &UdpSocket,
) -> (
    super::MediaSession,
    SocketAddr,
    MediaParams,
    tokio::sync::mpsc::UnboundedReceiver<crate::media::session::SessionEvent>,
) {
    let (socket, lease) = PortPool::new(first_port, first_port + 999)
        .bind(Ipv4Addr::LOCALHOST.into())
        .unwrap();
    let port = socket.local_addr().unwrap();
    let params = MediaParams {
        codec: G711::Pcmu,
        payload_type: 0,
        telephone_event: None,
        remote: Some(phone.local_addr().unwrap()),
        send: true,
        expect_media: true,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let session = engine.open(socket, lease, Some(params), tx).unwrap();
    (session, port, params, rx)
}

#[test]
fn a_latched_source_is_the_only_one_heard_until_the_remote_moves() {
    let engine = MediaEngine::start(1, 0);
    let (a, b) = (phone(), phone());
    let (mut session, port, params, _rx) = open_towards(&engine, 41000, &a);

    // The phone talks: the session latches onto it and answers it.
    talk(&a, port, 1, 0xA);
    let s = wait_stats(&session, |s| s.packets_in == 10);
    assert_eq!(s.packets_in, 10, "{s:?}");
    assert!(hears(&a, port));

    // Someone else sends media to the port: not heard, not answered.
    talk(&b, port, 500, 0xB);
    std::thread::sleep(Duration::from_millis(1_200));
    let s = session.stats();
    assert_eq!((s.packets_in, s.ignored), (10, 0), "{s:?}");
    assert!(!hears(&b, port));
    assert!(hears(&a, port));

    // A re-INVITE moves the remote to b: b is learned, a no longer heard.
    session.update(MediaParams {
        remote: Some(b.local_addr().unwrap()),
        ..params
    });
    std::thread::sleep(Duration::from_millis(100));
    talk(&b, port, 600, 0xB);
    let s = wait_stats(&session, |s| s.packets_in == 20);
    assert_eq!(s.packets_in, 20, "{s:?}");
    assert!(hears(&b, port));
    talk(&a, port, 20, 0xA);
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(session.stats().packets_in, 20);
    session.close();
}

/// Packets `s` receives from `from` within `window`.
fn count_heard(s: &UdpSocket, from: SocketAddr, window: Duration) -> usize {
    let mut buf = [0u8; 512];
    let until = Instant::now() + window;
    let mut n = 0;
    while Instant::now() < until {
        if let Ok((_, src)) = s.recv_from(&mut buf)
            && src == from
        {
            n += 1;
        }
    }
    n
}

#[test]
fn a_session_that_only_records_is_stepped_lazily_without_losing_audio() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(dir.path()).unwrap();
    let engine = MediaEngine::start(1, 0);
    let a = phone();
    a.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let (mut session, port, _, mut rx) = open_towards(&engine, 42000, &a);
    // Not recording: silence every tick.
    assert!(count_heard(&a, port, Duration::from_millis(500)) >= 15);
    session.record(
        store.begin_for_test("1001"),
        crate::media::session::RecordOptions {
            max_samples: 8000 * 60,
            silence_timeout_samples: 0,
            silence_threshold: 100,
            stop_digits: "#".into(),
        },
    );
    std::thread::sleep(Duration::from_millis(100));
    while a.recv_from(&mut [0u8; 512]).is_ok() {}
    // Two and a half seconds of audio while recording: only keep-alives
    // come back, about one a second.
    let started = Instant::now();
    let mut heard = 0;
    for seq in 0..125u16 {
        a.send_to(&rtp(seq, 0xA), port).unwrap();
        heard += count_heard(&a, port, Duration::from_millis(20));
    }
    let took = started.elapsed().as_secs_f64();
    assert!(
        (1..=took.ceil() as usize + 1).contains(&heard),
        "{heard} packets in {took:.1} s of recording"
    );
    // Stopping hands back every packet's audio, read at once.
    session.stop_recording();
    let writer = loop {
        match rx.blocking_recv().expect("session events") {
            crate::media::session::SessionEvent::RecordingStopped { writer, .. } => break writer,
            _ => continue,
        }
    };
    assert_eq!(writer.samples_written(), 125 * 160);
    // Back to a packet every tick.
    assert!(count_heard(&a, port, Duration::from_millis(500)) >= 15);
    session.close();
}
