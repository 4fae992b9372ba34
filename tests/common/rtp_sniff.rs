//! Sees the RTP a server sends, without being its peer: a raw IPv4 socket
//! (root or CAP_NET_RAW) gets a copy of every UDP datagram delivered on this
//! host, loopback included, while SIPp keeps owning its media port. Used to
//! check that audio really reached the caller (SIPp cannot record what it
//! receives).
//!
//! Only datagrams from 127.0.0.1 with a source port in a given range (the
//! server's RTP ports, which no other process uses) are kept.

use std::net::UdpSocket;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::audio;

/// One UDP datagram the server sent.
#[derive(Debug, Clone)]
pub struct Sniffed {
    /// When it was seen, from the start of the capture.
    pub at: Duration,
    pub src_port: u16,
    pub dst_port: u16,
    /// The UDP payload (an RTP packet).
    pub payload: Vec<u8>,
}

impl Sniffed {
    /// RTP payload type (without the marker bit), if it looks like RTP.
    pub fn rtp_pt(&self) -> Option<u8> {
        (self.payload.len() >= 12 && self.payload[0] >> 6 == 2).then(|| self.payload[1] & 0x7f)
    }

    pub fn rtp_seq(&self) -> Option<u16> {
        (self.payload.len() >= 12).then(|| u16::from_be_bytes([self.payload[2], self.payload[3]]))
    }

    /// The RTP payload (after the fixed header and any CSRCs).
    pub fn rtp_payload(&self) -> &[u8] {
        let p = &self.payload;
        if p.len() < 12 {
            return &[];
        }
        let cc = usize::from(p[0] & 0x0f);
        let start = 12 + 4 * cc;
        p.get(start..).unwrap_or(&[])
    }
}

/// A running capture; [`RtpSniffer::stop`] returns what it saw.
pub struct RtpSniffer {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Sniffed>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

unsafe extern "C" {
    fn socket(domain: i32, ty: i32, protocol: i32) -> i32;
}

const AF_INET: i32 = 2;
const SOCK_RAW: i32 = 3;
const IPPROTO_UDP: i32 = 17;

impl RtpSniffer {
    /// Starts capturing UDP from 127.0.0.1 ports `lo..=hi`. Panics (with the
    /// reason) when no raw socket can be opened.
    pub fn start(src_ports: (u16, u16)) -> RtpSniffer {
        // SAFETY: plain socket(2); the fd is owned by the UdpSocket below.
        let fd = unsafe { socket(AF_INET, SOCK_RAW, IPPROTO_UDP) };
        assert!(
            fd >= 0,
            "cannot open a raw UDP socket ({}): run the tests as root (or with CAP_NET_RAW)",
            std::io::Error::last_os_error()
        );
        // SAFETY: fd is a fresh, valid socket we own; recv(2) and
        // SO_RCVTIMEO work on any datagram socket.
        let sock = unsafe { UdpSocket::from_raw_fd(fd) };
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("SO_RCVTIMEO on the raw socket");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let t0 = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop2.load(Ordering::Relaxed) {
                let n = match sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(_) => continue, // timeout: look at the flag again
                };
                if let Some(p) = parse_ipv4_udp(&buf[..n], t0.elapsed())
                    && (src_ports.0..=src_ports.1).contains(&p.src_port)
                {
                    seen2.lock().unwrap().push(p);
                }
            }
        });
        RtpSniffer {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Packets seen so far (the capture goes on).
    pub fn snapshot(&self) -> Vec<Sniffed> {
        self.seen.lock().unwrap().clone()
    }

    /// Ends the capture and returns every packet seen.
    pub fn stop(mut self) -> Vec<Sniffed> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for RtpSniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An IPv4 packet from 127.0.0.1 to 127.0.0.1 carrying UDP.
fn parse_ipv4_udp(pkt: &[u8], at: Duration) -> Option<Sniffed> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != 17 {
        return None;
    }
    if pkt[12..16] != [127, 0, 0, 1] || pkt[16..20] != [127, 0, 0, 1] {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let udp = pkt.get(ihl..)?;
    if udp.len() < 8 {
        return None;
    }
    let src_port = u16::from_be_bytes([udp[0], udp[1]]);
    let dst_port = u16::from_be_bytes([udp[2], udp[3]]);
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let payload = udp.get(8..len.max(8).min(udp.len()))?.to_vec();
    Some(Sniffed {
        at,
        src_port,
        dst_port,
        payload,
    })
}

/// The audio of the G.711 µ-law (PT 0) packets sent to `dst_port`, in
/// sequence order, decoded to 16-bit PCM; with the number of packets.
pub fn ulaw_audio_to(packets: &[Sniffed], dst_port: u16) -> (Vec<i16>, usize) {
    let mut stream: Vec<&Sniffed> = packets
        .iter()
        .filter(|p| p.dst_port == dst_port && p.rtp_pt() == Some(0))
        .collect();
    // Loopback keeps order; sort by extended sequence number anyway.
    let mut ext = Vec::with_capacity(stream.len());
    let mut last: Option<u16> = None;
    let mut cycles: i64 = 0;
    for p in &stream {
        let s = p.rtp_seq().unwrap();
        if let Some(l) = last {
            let d = s.wrapping_sub(l) as i16;
            if d < 0 && s > l {
                cycles -= 1;
            } else if d > 0 && s < l {
                cycles += 1;
            }
        }
        last = Some(s);
        ext.push(cycles * 65_536 + i64::from(s));
    }
    let mut idx: Vec<usize> = (0..stream.len()).collect();
    idx.sort_by_key(|&i| ext[i]);
    let sorted: Vec<&Sniffed> = idx.iter().map(|&i| stream[i]).collect();
    stream = sorted;
    let mut pcm = Vec::with_capacity(stream.len() * 160);
    for p in &stream {
        pcm.extend(p.rtp_payload().iter().map(|&b| audio::ulaw_to_linear(b)));
    }
    (pcm, stream.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_ipv4_udp_datagram() {
        let mut pkt = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        pkt.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        pkt.extend_from_slice(&20_000u16.to_be_bytes());
        pkt.extend_from_slice(&30_000u16.to_be_bytes());
        pkt.extend_from_slice(&(8u16 + 3).to_be_bytes());
        pkt.extend_from_slice(&[0, 0, 1, 2, 3]);
        let p = parse_ipv4_udp(&pkt, Duration::ZERO).unwrap();
        assert_eq!((p.src_port, p.dst_port), (20_000, 30_000));
        assert_eq!(p.payload, [1, 2, 3]);
    }
}
