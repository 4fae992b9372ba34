//! A session's counters: packets and bytes per payload type, loss,
//! interarrival jitter (RFC 3550 §6.4.1) and the DTMF digits seen with their
//! source. Everything is fixed-size and `Copy`: the per-packet path never
//! allocates, and publishing the counters once a second is a plain copy.

use std::time::Instant;

use crate::media::dtmf::DtmfSource;

/// Payload types counted separately per direction (a call uses one codec
/// and telephone-event; a re-INVITE may switch codecs). Further types are
/// still in the totals.
pub const MAX_PAYLOAD_TYPES: usize = 4;
/// Digits listed per call; the per-source counts go on beyond.
pub const MAX_DTMF_LOGGED: usize = 32;
/// G.711 and telephone-event timestamps run at 8 kHz.
const CLOCK_RATE: u64 = 8000;

/// Packets and bytes (whole RTP datagrams) of one payload type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PayloadCount {
    pub pt: u8,
    pub packets: u64,
    pub bytes: u64,
}

/// Counts by payload type, in order of first appearance.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PayloadCounts {
    entries: [PayloadCount; MAX_PAYLOAD_TYPES],
    len: u8,
}

impl PayloadCounts {
    /// One packet of `bytes` with payload type `pt`.
    #[inline]
    pub fn add(&mut self, pt: u8, bytes: usize) {
        let n = self.len as usize;
        for e in &mut self.entries[..n] {
            if e.pt == pt {
                e.packets += 1;
                e.bytes += bytes as u64;
                return;
            }
        }
        if n < MAX_PAYLOAD_TYPES {
            self.entries[n] = PayloadCount {
                pt,
                packets: 1,
                bytes: bytes as u64,
            };
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[PayloadCount] {
        &self.entries[..self.len as usize]
    }

    pub fn get(&self, pt: u8) -> Option<&PayloadCount> {
        self.as_slice().iter().find(|e| e.pt == pt)
    }
}

/// One key press as the session saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfSeen {
    pub digit: char,
    pub source: DtmfSource,
    /// Milliseconds of the session's media clock (its 20 ms ticks) since it
    /// opened, i.e. since the INVITE was accepted.
    pub at_ms: u64,
}

/// The first [`MAX_DTMF_LOGGED`] digits of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfLog {
    entries: [DtmfSeen; MAX_DTMF_LOGGED],
    len: u8,
}

impl Default for DtmfLog {
    fn default() -> Self {
        DtmfLog {
            entries: [DtmfSeen {
                digit: '0',
                source: DtmfSource::Rfc4733,
                at_ms: 0,
            }; MAX_DTMF_LOGGED],
            len: 0,
        }
    }
}

impl DtmfLog {
    /// Keeps `seen` if there is room (the first digits of a call are the
    /// ones a test or an operator looks for).
    pub fn push(&mut self, seen: DtmfSeen) {
        let n = self.len as usize;
        if n < MAX_DTMF_LOGGED {
            self.entries[n] = seen;
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[DtmfSeen] {
        &self.entries[..self.len as usize]
    }
}

/// Counters for statistics, metrics and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    /// Valid RTP of the negotiated codec or telephone-event.
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Datagrams that were not RTP, or of a payload type not negotiated.
    pub ignored: u64,
    /// Audio packets the jitter buffer declared lost.
    pub lost: u64,
    pub dtmf: u64,
    /// Frames of streamed audio (a message played from its file) that were
    /// not read in time and went out as silence.
    pub underruns: u64,
    pub received_by_pt: PayloadCounts,
    pub sent_by_pt: PayloadCounts,
    /// RFC 3550 interarrival jitter of the received audio, in timestamp
    /// units times 16 (A.8's fixed point); see [`SessionStats::jitter_ms`].
    pub jitter_q4: u32,
    /// Digits by source, indexed by [`DtmfSource::index`].
    pub dtmf_by_source: [u64; DtmfSource::COUNT],
    pub dtmf_digits: DtmfLog,
    /// The session has closed: these counts are final.
    pub closed: bool,
}

impl SessionStats {
    /// The interarrival jitter in milliseconds, from the arrival times the
    /// engine passes: the kernel's receive timestamps where the socket gives
    /// them, else the time the media worker read the packet (its 20 ms
    /// tick, which adds up to a few milliseconds).
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_q4 as f64 / 16.0 / (CLOCK_RATE as f64 / 1000.0)
    }
}

/// RFC 3550 §6.4.1 interarrival jitter, computed as in its appendix A.8:
/// J += (|D| - J) / 16, with D the change in transit time between two
/// packets, in timestamp units.
#[derive(Debug, Default, Clone, Copy)]
pub struct ArrivalJitter {
    /// Arrival clock origin (the first packet).
    base: Option<Instant>,
    ssrc: u32,
    last_transit: Option<u32>,
    /// J × 16.
    q4: u32,
}

impl ArrivalJitter {
    /// An audio packet with RTP timestamp `timestamp` from `ssrc` arrived
    /// at `arrival`; returns the updated estimate (× 16).
    #[inline]
    pub fn on_packet(&mut self, arrival: Instant, ssrc: u32, timestamp: u32) -> u32 {
        let base = *self.base.get_or_insert(arrival);
        let elapsed = arrival.saturating_duration_since(base);
        // Arrival in timestamp units, modulo 2^32 like the timestamps
        // (8 kHz: one unit is 125 µs; no 128-bit arithmetic per packet).
        let units = elapsed.as_secs() * CLOCK_RATE
            + u64::from(elapsed.subsec_nanos() / (1_000_000_000 / CLOCK_RATE as u32));
        let transit = (units as u32).wrapping_sub(timestamp);
        match self.last_transit {
            Some(last) if self.ssrc == ssrc => {
                let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
                // More than 10 s at once is a new stream (the phone
                // restarted its timestamps), not jitter.
                if u64::from(d) <= 10 * CLOCK_RATE {
                    self.q4 = self
                        .q4
                        .wrapping_add(d)
                        .wrapping_sub((self.q4.wrapping_add(8)) >> 4);
                }
            }
            _ => self.ssrc = ssrc,
        }
        self.last_transit = Some(transit);
        self.q4
    }
}
