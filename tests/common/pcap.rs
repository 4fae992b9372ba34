//! Writes RTP streams as pcap files that SIPp plays with
//! `<exec play_pcap_audio="file.pcap"/>`.
//!
//! SIPp keeps each packet's UDP payload (the RTP header and payload, byte for
//! byte), paces the packets by their pcap timestamps, and rewrites only the
//! UDP ports: source = SIPp's `[media_port]`, destination = the port from
//! the peer's SDP. So one capture holds one well-formed RTP stream: one SSRC,
//! consecutive sequence numbers, timestamps that follow the audio clock.
//!
//! Frames are Ethernet + IPv4 + UDP, link type 1, with addresses 127.0.0.1.

use std::io::Write;
use std::path::Path;

/// Builds one RTP stream (one SSRC) packet by packet, with send times.
pub struct RtpStream {
    ssrc: u32,
    seq: u16,
    /// RTP timestamp of the next sample to send (8 kHz clock).
    ts: u32,
    /// Send time of the next packet, microseconds from the first.
    now_us: u64,
    /// The next audio packet starts a talkspurt (marker bit).
    talkspurt_start: bool,
    packets: Vec<(u64, Vec<u8>)>,
}

/// 20 ms of 8 kHz audio.
pub const FRAME_SAMPLES: usize = 160;
const FRAME_US: u64 = 20_000;

/// RFC 4733 event codes.
pub const EVENT_STAR: u8 = 10;
pub const EVENT_POUND: u8 = 11;

impl RtpStream {
    pub fn new(ssrc: u32, first_seq: u16, first_ts: u32) -> RtpStream {
        RtpStream {
            ssrc,
            seq: first_seq,
            ts: first_ts,
            now_us: 0,
            talkspurt_start: true,
            packets: Vec::new(),
        }
    }

    fn header(&mut self, pt: u8, marker: bool, ts: u32) -> Vec<u8> {
        let mut h = Vec::with_capacity(12 + 172);
        h.push(0x80); // V=2, no padding, no extension, no CSRC
        h.push((u8::from(marker) << 7) | (pt & 0x7f));
        h.extend_from_slice(&self.seq.to_be_bytes());
        h.extend_from_slice(&ts.to_be_bytes());
        h.extend_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        h
    }

    /// G.711 audio (one byte per sample), 20 ms per packet, paced in real
    /// time. A trailing partial frame is padded with `silence_byte`.
    pub fn audio(&mut self, pt: u8, samples: &[u8], silence_byte: u8) -> &mut Self {
        for chunk in samples.chunks(FRAME_SAMPLES) {
            let marker = std::mem::take(&mut self.talkspurt_start);
            let ts = self.ts;
            let mut pkt = self.header(pt, marker, ts);
            pkt.extend_from_slice(chunk);
            pkt.resize(12 + FRAME_SAMPLES, silence_byte);
            self.packets.push((self.now_us, pkt));
            self.ts = self.ts.wrapping_add(FRAME_SAMPLES as u32);
            self.now_us += FRAME_US;
        }
        self
    }

    /// Nothing sent for `ms` (the clocks advance); the next audio packet
    /// starts a new talkspurt.
    pub fn gap(&mut self, ms: u32) -> &mut Self {
        self.ts = self.ts.wrapping_add(ms * 8);
        self.now_us += u64::from(ms) * 1000;
        self.talkspurt_start = true;
        self
    }

    /// One RFC 4733 telephone-event: a start packet (marker set), an update
    /// every 20 ms, then three end packets (E bit) with the final duration.
    /// All packets of the event carry the event's start timestamp.
    pub fn dtmf_event(&mut self, pt: u8, event: u8, duration_ms: u32) -> &mut Self {
        let start_ts = self.ts;
        let total = (duration_ms * 8) as u16;
        let volume = 10u8;
        let mut dur: u16 = FRAME_SAMPLES as u16;
        let mut first = true;
        while dur < total {
            let mut pkt = self.header(pt, first, start_ts);
            pkt.extend_from_slice(&[event, volume & 0x3f]);
            pkt.extend_from_slice(&dur.to_be_bytes());
            self.packets.push((self.now_us, pkt));
            self.now_us += FRAME_US;
            dur += FRAME_SAMPLES as u16;
            first = false;
        }
        for _ in 0..3 {
            let mut pkt = self.header(pt, first, start_ts);
            pkt.extend_from_slice(&[event, 0x80 | (volume & 0x3f)]);
            pkt.extend_from_slice(&total.to_be_bytes());
            self.packets.push((self.now_us, pkt));
            self.now_us += 5_000;
            first = false;
        }
        self.ts = self.ts.wrapping_add(u32::from(total));
        self.now_us += FRAME_US;
        self.talkspurt_start = true;
        self
    }

    pub fn packet_count(&self) -> usize {
        self.packets.len()
    }

    /// Duration covered by the stream so far.
    pub fn duration_ms(&self) -> u64 {
        self.now_us / 1000
    }

    /// The RTP packets (UDP payloads) with their send offsets in µs.
    pub fn packets(&self) -> &[(u64, Vec<u8>)] {
        &self.packets
    }

    /// Writes the stream as a pcap (Ethernet/IPv4/UDP, 127.0.0.1:6000 →
    /// 127.0.0.1:7000; SIPp substitutes the real ports).
    pub fn write_pcap(&self, path: &Path) {
        let mut out = Vec::new();
        // Global header: magic, v2.4, zone 0, sigfigs 0, snaplen, linktype 1.
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65_535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let base_sec: u64 = 1_700_000_000;
        for (i, (t_us, rtp)) in self.packets.iter().enumerate() {
            let frame = frame(rtp, i as u16);
            let sec = base_sec + t_us / 1_000_000;
            let usec = t_us % 1_000_000;
            out.extend_from_slice(&(sec as u32).to_le_bytes());
            out.extend_from_slice(&(usec as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&frame);
        }
        let mut f = std::fs::File::create(path).expect("create pcap");
        f.write_all(&out).expect("write pcap");
    }
}

/// The RFC 4733 event code of a key (`0`-`9`, `*`, `#`, `A`-`D`).
pub fn event_code(key: char) -> u8 {
    match key.to_ascii_uppercase() {
        k @ '0'..='9' => k as u8 - b'0',
        '*' => EVENT_STAR,
        '#' => EVENT_POUND,
        k @ 'A'..='D' => 12 + (k as u8 - b'A'),
        k => panic!("{k:?} is not a DTMF key"),
    }
}

impl RtpStream {
    /// Silence frames (`silence_byte`, PT `pt`) until the stream covers
    /// `ms` from its start (nothing if it already does).
    pub fn silence_until(&mut self, pt: u8, ms: u64, silence_byte: u8) -> &mut Self {
        let have = self.duration_ms();
        if ms > have {
            let n = ((ms - have) * 8) as usize;
            self.audio(pt, &vec![silence_byte; n], silence_byte);
        }
        self
    }

    /// Each key as an RFC 4733 event (PT `te_pt`) of `on_ms`, followed by
    /// `gap_ms` of silence frames in PT `pt`.
    pub fn rfc4733_keys(
        &mut self,
        pt: u8,
        te_pt: u8,
        keys: &str,
        on_ms: u32,
        gap_ms: u32,
        silence_byte: u8,
    ) -> &mut Self {
        for k in keys.chars() {
            self.dtmf_event(te_pt, event_code(k), on_ms);
            self.audio(pt, &vec![silence_byte; gap_ms as usize * 8], silence_byte);
        }
        self
    }

    /// Each key as in-band DTMF tones (µ-law, PT 0) of `on_ms` at
    /// `amplitude` (peak of each tone), followed by `gap_ms` of silence.
    pub fn inband_keys(
        &mut self,
        keys: &str,
        on_ms: u32,
        gap_ms: u32,
        amplitude: f64,
    ) -> &mut Self {
        for k in keys.chars() {
            let mut pcm = super::audio::dtmf_tone(k, on_ms, amplitude);
            pcm.extend(std::iter::repeat_n(0i16, gap_ms as usize * 8));
            let ulaw: Vec<u8> = pcm
                .iter()
                .map(|&s| super::audio::linear_to_ulaw(s))
                .collect();
            self.audio(0, &ulaw, super::audio::ULAW_SILENCE);
        }
        self
    }
}

fn frame(rtp: &[u8], ip_id: u16) -> Vec<u8> {
    const SRC_PORT: u16 = 6000;
    const DST_PORT: u16 = 7000;
    let udp_len = 8 + rtp.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    // Ethernet: locally administered MACs, EtherType IPv4.
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0x00]);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&ip_id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0x00, 64, 17, 0, 0]); // DF, TTL 64, UDP, csum
    f.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
    let csum = ip_checksum(&f[ip_start..ip_start + 20]);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&SRC_PORT.to_be_bytes());
    f.extend_from_slice(&DST_PORT.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (SIPp computes its own)
    f.extend_from_slice(rtp);
    f
}

fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in header.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_event_layout() {
        let mut s = RtpStream::new(0x1234_5678, 100, 8000);
        s.audio(0, &[0xff; 320], 0xff)
            .dtmf_event(101, EVENT_POUND, 200);
        let p = s.packets();
        // 2 audio + 9 updates (20..180 ms) + 3 end packets.
        assert_eq!(p.len(), 2 + 9 + 3);
        let first_ev = &p[2].1;
        assert_eq!(first_ev[1], 0x80 | 101, "marker + PT 101");
        assert_eq!(&first_ev[4..8], &(8000u32 + 320).to_be_bytes());
        assert_eq!(first_ev[12], EVENT_POUND);
        let last = &p.last().unwrap().1;
        assert_eq!(last[1], 101);
        assert_eq!(last[13] & 0x80, 0x80, "E bit");
        assert_eq!(u16::from_be_bytes([last[14], last[15]]), 1600);
        assert_eq!(&last[4..8], &first_ev[4..8], "same timestamp for the event");
        let seqs: Vec<u16> = p
            .iter()
            .map(|(_, r)| u16::from_be_bytes([r[2], r[3]]))
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    }

    #[test]
    fn checksum_of_known_header() {
        // Example header from RFC 1071-style hand computation.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ip_checksum(&h), 0xb861);
    }
}
