//! Our own RTP header (RFC 3550 §5.1): parsing incoming packets and building
//! outgoing ones.
//!
//! We own these ~12 bytes rather than pull in a crate: the `rtp` crate line is
//! frozen (see research/crates.md), and what we need is small. Parsing borrows
//! the payload from the receive buffer (no copy); building writes into a
//! caller-owned `Vec` that is reused packet after packet (no allocation once
//! its capacity has grown to one packet).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers (CC)        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

/// Length of the fixed header (no CSRCs, no extension).
pub const RTP_HEADER_LEN: usize = 12;

/// The fields of the fixed RTP header that matter to a media server.
///
/// Padding, extension and CSRCs are consumed by [`parse`] and never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A parsed packet; `payload` borrows from the buffer given to [`parse`].
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub payload: &'a [u8],
}

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("RTP packet too short: {0} bytes, the fixed header needs 12")]
    TooShort(usize),
    #[error("unsupported RTP version {0}, only version 2 is accepted")]
    BadVersion(u8),
    /// Payload types 72..=76 collide with RTCP packet types 200..=204 when the
    /// marker bit is folded in (RFC 5761 §4), so such a datagram is RTCP sent
    /// to the RTP port (rtcp-mux); callers simply ignore it.
    #[error("RTCP packet (type {0}) on the RTP port")]
    Rtcp(u8),
    #[error("CSRC list ({count} entries) runs past the end of a {len}-byte packet")]
    CsrcOverrun { count: u8, len: usize },
    #[error("header extension runs past the end of a {len}-byte packet")]
    ExtensionOverrun { len: usize },
    #[error("bad padding count {count} with {available} bytes after the header")]
    BadPadding { count: u8, available: usize },
}

/// Parse one RTP datagram (version 2 only).
///
/// CSRCs and the header extension are skipped (we never mix, and we use no
/// extensions), padding is stripped, and RTCP multiplexed on the same port is
/// reported as [`RtpError::Rtcp`].
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let Some((fixed, rest)) = buf.split_first_chunk::<RTP_HEADER_LEN>() else {
        return Err(RtpError::TooShort(buf.len()));
    };
    let version = fixed[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let has_padding = fixed[0] & 0x20 != 0;
    let has_extension = fixed[0] & 0x10 != 0;
    let csrc_count = fixed[0] & 0x0F;
    let payload_type = fixed[1] & 0x7F;
    if (72..=76).contains(&payload_type) {
        return Err(RtpError::Rtcp(fixed[1]));
    }

    // Everything below only ever shrinks `rest`, so indexing cannot go out of
    // bounds: each step checks the length it is about to consume.
    let csrc_len = usize::from(csrc_count) * 4;
    let Some(mut rest) = rest.get(csrc_len..) else {
        return Err(RtpError::CsrcOverrun {
            count: csrc_count,
            len: buf.len(),
        });
    };
    if has_extension {
        // 16-bit profile id, then the extension length in 32-bit words.
        let Some((ext_header, after)) = rest.split_first_chunk::<4>() else {
            return Err(RtpError::ExtensionOverrun { len: buf.len() });
        };
        let ext_len = usize::from(u16::from_be_bytes([ext_header[2], ext_header[3]])) * 4;
        rest = after
            .get(ext_len..)
            .ok_or(RtpError::ExtensionOverrun { len: buf.len() })?;
    }
    if has_padding {
        // The last octet counts the padding, itself included, so 0 is invalid.
        let count = rest.last().copied().unwrap_or(0);
        if count == 0 || usize::from(count) > rest.len() {
            return Err(RtpError::BadPadding {
                count,
                available: rest.len(),
            });
        }
        rest = &rest[..rest.len() - usize::from(count)];
    }

    Ok(RtpPacket {
        header: RtpHeader {
            marker: fixed[1] & 0x80 != 0,
            payload_type,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        },
        payload: rest,
    })
}

impl RtpHeader {
    /// The 12 header bytes: V=2, no padding, no extension, no CSRC.
    pub fn to_bytes(&self) -> [u8; RTP_HEADER_LEN] {
        let mut b = [0u8; RTP_HEADER_LEN];
        b[0] = 0x80;
        b[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        b[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        b[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        b[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        b
    }

    /// Write the 12 header bytes at the start of `out` and return 12.
    ///
    /// Callers guarantee `out.len() >= 12`; should one not, nothing is written
    /// and 0 is returned rather than panicking in release builds.
    pub fn write(&self, out: &mut [u8]) -> usize {
        debug_assert!(out.len() >= RTP_HEADER_LEN, "RTP header needs 12 bytes");
        match out.first_chunk_mut::<RTP_HEADER_LEN>() {
            Some(dst) => {
                *dst = self.to_bytes();
                RTP_HEADER_LEN
            }
            None => 0,
        }
    }
}

/// Outgoing stream state: continuous sequence/timestamp across prompts, marker
/// on talkspurt start.
///
/// One per call leg. Prompts, beeps and silence all go through the same
/// sender, so the far end sees a single unbroken stream (RFC 3550 §5.1: the
/// sequence increments by one per packet, the timestamp by the sampling
/// instants covered). The first packet of the stream carries the marker bit
/// (it starts the first talkspurt).
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    mark_next: bool,
}

impl RtpSender {
    /// `initial_sequence` and `initial_timestamp` should be random (RFC 3550
    /// §5.1, to make known-plaintext attacks on SRTP harder); the caller picks
    /// them so this core stays deterministic.
    pub fn new(ssrc: u32, initial_sequence: u16, initial_timestamp: u32) -> Self {
        Self {
            ssrc,
            sequence: initial_sequence,
            timestamp: initial_timestamp,
            mark_next: true,
        }
    }

    /// Build one packet into `out` (cleared first): header + payload.
    ///
    /// `samples` is the number of 8 kHz samples the payload covers (160 for
    /// 20 ms). Sets the marker if [`mark_talkspurt`](Self::mark_talkspurt) was
    /// requested since the last packet (and on the very first packet).
    /// Advances the sequence by 1 and the timestamp by `samples`.
    pub fn packet(&mut self, payload_type: u8, payload: &[u8], samples: u32, out: &mut Vec<u8>) {
        let header = RtpHeader {
            marker: std::mem::take(&mut self.mark_next),
            payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        Self::emit(&header, payload, out);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// The next packet carries the marker bit (start of a talkspurt, e.g. after
    /// silence suppression or a new prompt).
    pub fn mark_talkspurt(&mut self) {
        self.mark_next = true;
    }

    /// Build an RFC 4733 telephone-event packet into `out` (cleared first).
    ///
    /// All packets of one event carry the event's start timestamp
    /// (`event_timestamp`), so the media timestamp is not advanced here; only
    /// the sequence is. `marker` is set by the caller on the first packet of
    /// the event (RFC 4733 §2.5.1.1). A pending talkspurt mark is left for the
    /// next audio packet. Use [`skip_samples`](Self::skip_samples) to move the
    /// audio clock past the time the event occupied.
    pub fn event_packet(
        &mut self,
        payload_type: u8,
        event_timestamp: u32,
        payload: &[u8],
        marker: bool,
        out: &mut Vec<u8>,
    ) {
        let header = RtpHeader {
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp: event_timestamp,
            ssrc: self.ssrc,
        };
        Self::emit(&header, payload, out);
        self.sequence = self.sequence.wrapping_add(1);
    }

    /// Advance the timestamp while not sending (hold, suppressed silence), so
    /// the far end's clock stays in step with ours.
    pub fn skip_samples(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// Sequence number the next packet will carry.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    /// Timestamp the next audio packet will carry.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    fn emit(header: &RtpHeader, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) -> RtpHeader {
        RtpHeader {
            marker,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc,
        }
    }

    #[test]
    fn write_then_parse_round_trips() {
        let h = header(true, 8, 0xBEEF, 0xDEAD_BEEF, 0x0102_0304);
        let mut buf = [0u8; 16];
        assert_eq!(h.write(&mut buf), 12);
        buf[12..].copy_from_slice(&[1, 2, 3, 4]);
        let p = parse(&buf).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn write_layout_matches_rfc3550() {
        let h = header(false, 0, 1, 2, 3);
        assert_eq!(h.to_bytes(), [0x80, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        let h = header(true, 101, 0x1234, 0, 0);
        let b = h.to_bytes();
        assert_eq!(b[1], 0x80 | 101);
        assert_eq!(&b[2..4], &[0x12, 0x34]);
    }

    #[test]
    fn write_into_short_buffer_writes_nothing_in_release() {
        if cfg!(debug_assertions) {
            let r = std::panic::catch_unwind(|| header(false, 0, 0, 0, 0).write(&mut [0u8; 4]));
            assert!(r.is_err(), "debug_assert should fire on a short buffer");
        } else {
            let mut short = [0xAAu8; 4];
            assert_eq!(header(false, 0, 0, 0, 0).write(&mut short), 0);
            assert_eq!(short, [0xAA; 4]);
        }
    }

    #[test]
    fn payload_type_is_masked_to_seven_bits() {
        let b = header(false, 0xFF, 0, 0, 0).to_bytes();
        assert_eq!(b[1], 0x7F);
    }

    #[test]
    fn too_short_is_rejected() {
        for len in 0..12 {
            assert_eq!(
                parse(&vec![0x80; len]).unwrap_err(),
                RtpError::TooShort(len)
            );
        }
    }

    #[test]
    fn empty_payload_is_fine() {
        let b = header(false, 0, 7, 0, 0).to_bytes();
        let p = parse(&b).unwrap();
        assert_eq!(p.header.sequence, 7);
        assert!(p.payload.is_empty());
    }

    #[test]
    fn bad_version_is_rejected() {
        let mut b = header(false, 0, 0, 0, 0).to_bytes();
        for v in [0u8, 1, 3] {
            b[0] = v << 6;
            assert_eq!(parse(&b).unwrap_err(), RtpError::BadVersion(v));
        }
    }

    #[test]
    fn rtcp_on_rtp_port_is_flagged() {
        let mut b = [0u8; 28];
        b[0] = 0x80;
        for pt in 200u8..=204 {
            b[1] = pt;
            assert_eq!(parse(&b).unwrap_err(), RtpError::Rtcp(pt));
        }
        // Neighbouring types are ordinary RTP payload types.
        b[1] = 0x80 | 71;
        assert!(parse(&b).is_ok());
        b[1] = 0x80 | 77;
        assert!(parse(&b).is_ok());
    }

    #[test]
    fn csrcs_are_skipped() {
        let mut b = header(false, 0, 1, 2, 3).to_bytes().to_vec();
        b[0] |= 2; // CC = 2
        b.extend_from_slice(&[0xAA; 8]);
        b.extend_from_slice(&[9, 9]);
        let p = parse(&b).unwrap();
        assert_eq!(p.payload, &[9, 9]);
        assert_eq!(p.header.ssrc, 3);
    }

    #[test]
    fn csrc_overrun_is_rejected() {
        let mut b = header(false, 0, 1, 2, 3).to_bytes().to_vec();
        b[0] |= 15;
        b.extend_from_slice(&[0; 59]); // one byte short of 15 CSRCs
        assert_eq!(
            parse(&b).unwrap_err(),
            RtpError::CsrcOverrun { count: 15, len: 71 }
        );
        b.push(0);
        assert!(parse(&b).unwrap().payload.is_empty());
    }

    #[test]
    fn extension_is_skipped() {
        let mut b = header(false, 0, 1, 2, 3).to_bytes().to_vec();
        b[0] |= 0x10;
        b.extend_from_slice(&[0xBE, 0xDE, 0, 2]); // two words of extension
        b.extend_from_slice(&[0xEE; 8]);
        b.extend_from_slice(&[5, 6, 7]);
        assert_eq!(parse(&b).unwrap().payload, &[5, 6, 7]);
    }

    #[test]
    fn extension_overrun_is_rejected() {
        let mut b = header(false, 0, 1, 2, 3).to_bytes().to_vec();
        b[0] |= 0x10;
        b.extend_from_slice(&[0xBE, 0xDE]); // extension header cut short
        assert_eq!(
            parse(&b).unwrap_err(),
            RtpError::ExtensionOverrun { len: 14 }
        );
        b.extend_from_slice(&[0, 3, 0, 0, 0, 0]); // claims 12 bytes, has 4
        assert_eq!(
            parse(&b).unwrap_err(),
            RtpError::ExtensionOverrun { len: 20 }
        );
    }

    #[test]
    fn padding_is_stripped() {
        let mut b = header(false, 0, 1, 2, 3).to_bytes().to_vec();
        b[0] |= 0x20;
        b.extend_from_slice(&[1, 2, 3, 0, 0, 3]);
        assert_eq!(parse(&b).unwrap().payload, &[1, 2, 3]);
        // Padding may swallow the whole payload.
        let last = b.len() - 1;
        b[last] = 6;
        assert!(parse(&b).unwrap().payload.is_empty());
    }

    #[test]
    fn bad_padding_is_rejected() {
        let mut b = header(false, 0, 1, 2, 3).to_bytes().to_vec();
        b[0] |= 0x20;
        // No byte at all to hold the count.
        assert_eq!(
            parse(&b).unwrap_err(),
            RtpError::BadPadding {
                count: 0,
                available: 0
            }
        );
        b.extend_from_slice(&[1, 2, 0]);
        assert_eq!(
            parse(&b).unwrap_err(),
            RtpError::BadPadding {
                count: 0,
                available: 3
            }
        );
        let last = b.len() - 1;
        b[last] = 4;
        assert_eq!(
            parse(&b).unwrap_err(),
            RtpError::BadPadding {
                count: 4,
                available: 3
            }
        );
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic generator; every first byte and lengths
        // around the header sizes get exercised.
        let mut x: u32 = 0x1234_5678;
        let mut buf = [0u8; 80];
        let mut ok = 0;
        for i in 0..20_000 {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            buf[0] = (i % 256) as u8;
            let len = i % buf.len();
            if let Ok(p) = parse(&buf[..len]) {
                assert!(p.payload.len() + RTP_HEADER_LEN <= len);
                ok += 1;
            }
        }
        assert!(ok > 0, "some random version-2 packets should parse");
    }

    #[test]
    fn sender_sequences_timestamps_and_marks() {
        let mut s = RtpSender::new(0xCAFE, 65534, u32::MAX - 100);
        let mut out = Vec::new();

        s.packet(0, &[0xFF; 160], 160, &mut out);
        assert_eq!(out.len(), 172);
        let p = parse(&out).unwrap();
        assert!(p.header.marker, "first packet starts a talkspurt");
        assert_eq!(p.header.sequence, 65534);
        assert_eq!(p.header.timestamp, u32::MAX - 100);
        assert_eq!(p.header.ssrc, 0xCAFE);
        assert_eq!(p.payload, &[0xFF; 160][..]);

        s.packet(0, &[1; 160], 160, &mut out);
        let p = parse(&out).unwrap();
        assert!(!p.header.marker);
        assert_eq!(p.header.sequence, 65535);
        assert_eq!(p.header.timestamp, (u32::MAX - 100).wrapping_add(160));

        // Wrap of both counters, and a marker on request (once).
        s.mark_talkspurt();
        s.packet(8, &[2; 80], 80, &mut out);
        let p = parse(&out).unwrap();
        assert!(p.header.marker);
        assert_eq!(p.header.sequence, 0);
        assert_eq!(p.header.timestamp, 219);
        assert_eq!(p.header.payload_type, 8);
        assert_eq!(p.payload.len(), 80, "out is cleared, not appended to");

        s.packet(8, &[2; 80], 80, &mut out);
        assert!(!parse(&out).unwrap().header.marker);
        assert_eq!(s.sequence(), 2);
        assert_eq!(s.timestamp(), 219 + 160);
        assert_eq!(s.ssrc(), 0xCAFE);
    }

    #[test]
    fn skip_samples_moves_only_the_timestamp() {
        let mut s = RtpSender::new(1, 10, 1000);
        s.skip_samples(8000);
        assert_eq!(s.timestamp(), 9000);
        assert_eq!(s.sequence(), 10);
    }

    #[test]
    fn event_packets_share_a_timestamp() {
        let mut s = RtpSender::new(7, 100, 5000);
        let mut out = Vec::new();
        s.packet(0, &[0; 160], 160, &mut out); // consumes the initial mark
        s.mark_talkspurt();
        let ts = s.timestamp();
        for (i, marker) in [true, false, false].into_iter().enumerate() {
            s.event_packet(101, ts, &[1, 0x0A, 0, 160], marker, &mut out);
            let p = parse(&out).unwrap();
            assert_eq!(p.header.timestamp, ts);
            assert_eq!(p.header.sequence, 101 + i as u16);
            assert_eq!(p.header.marker, marker);
            assert_eq!(p.header.payload_type, 101);
            assert_eq!(p.payload, &[1, 0x0A, 0, 160]);
        }
        assert_eq!(s.timestamp(), ts, "events do not move the audio clock");
        // The talkspurt mark requested before the event is still pending.
        s.packet(0, &[0; 160], 160, &mut out);
        let p = parse(&out).unwrap();
        assert!(p.header.marker);
        assert_eq!(p.header.sequence, 104);
    }

    #[test]
    fn packet_reuses_the_output_buffer() {
        let mut s = RtpSender::new(1, 0, 0);
        let mut out = Vec::with_capacity(172);
        let ptr = out.as_ptr();
        for _ in 0..100 {
            s.packet(0, &[0; 160], 160, &mut out);
        }
        assert_eq!(out.as_ptr(), ptr, "no reallocation in steady state");
        assert_eq!(out.capacity(), 172);
    }
}
