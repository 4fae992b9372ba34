//! DTMF key presses: RFC 4733 telephone-events received over RTP.
//!
//! A sender announces one key press with a burst of packets that all carry
//! the same RTP timestamp (the event start): a first packet (marker set),
//! updates with a growing duration, and usually three copies of the final
//! "end" packet. Any of them may be lost or reordered. [`Rfc4733Receiver`]
//! turns such a burst into exactly one digit by remembering which
//! (timestamp, event) pairs it has already reported.
//!
//! SIP INFO digits are parsed in the SIP layer; in-band detection (Goertzel on
//! decoded audio, for trunks without telephone-event) will live beside this
//! receiver and report through the same [`DtmfSource`]-tagged digits.

/// Where a digit came from (for logs and for de-duplicating when a phone
/// sends the same press both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfSource {
    Rfc4733,
    SipInfo,
    Inband,
}

impl DtmfSource {
    /// How many sources there are (for per-source counters).
    pub const COUNT: usize = 3;
    pub const ALL: [DtmfSource; DtmfSource::COUNT] =
        [DtmfSource::Rfc4733, DtmfSource::SipInfo, DtmfSource::Inband];

    /// Position in [`DtmfSource::ALL`], for arrays of counters.
    pub fn index(self) -> usize {
        match self {
            DtmfSource::Rfc4733 => 0,
            DtmfSource::SipInfo => 1,
            DtmfSource::Inband => 2,
        }
    }

    /// The name in the API and in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::SipInfo => "sip_info",
            DtmfSource::Inband => "inband",
        }
    }
}

/// One RFC 4733 §2.3 event payload.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// |     event     |E|R| volume    |          duration             |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0 (0..=63).
    pub volume: u8,
    /// In RTP timestamp units since the event's timestamp.
    pub duration: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DtmfError {
    #[error("telephone-event payload too short: {0} bytes, need 4")]
    TooShort(usize),
}

/// Parse the first event of a telephone-event payload (4 bytes minimum;
/// anything after the first 4 bytes is ignored).
pub fn parse_event(payload: &[u8]) -> Result<TelephoneEvent, DtmfError> {
    let Some(&[event, flags, d0, d1]) = payload.first_chunk::<4>() else {
        return Err(DtmfError::TooShort(payload.len()));
    };
    Ok(TelephoneEvent {
        event,
        end: flags & 0x80 != 0,
        volume: flags & 0x3F,
        duration: u16::from_be_bytes([d0, d1]),
    })
}

/// Build an RFC 4733 payload (for tests and for sending). `volume` is masked
/// to 6 bits; the reserved bit is zero.
pub fn event_payload(event: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
    let [d0, d1] = duration.to_be_bytes();
    [event, (u8::from(end) << 7) | (volume & 0x3F), d0, d1]
}

/// Event codes 0..=15 (RFC 4733 §3.2): 0-9, 10 '*', 11 '#', 12-15 'A'-'D'.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Inverse of [`event_to_digit`]; 'a'..='d' are accepted too.
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// How many recent events are remembered. A reordered packet of an event
/// older than this many presses would be reported again; at human typing
/// speed that means a packet delayed by seconds, long after any jitter.
const REMEMBERED: usize = 8;

/// Turns the start/update/three-end packets of one event into exactly one key
/// press.
#[derive(Debug, Clone)]
pub struct Rfc4733Receiver {
    /// Ring of (timestamp, event) pairs already seen; `None` = empty entry.
    seen: [Option<(u32, u8)>; REMEMBERED],
    next: usize,
    /// The most recent event, to recognise the continuation segments of a
    /// press longer than the 16-bit duration allows (RFC 4733 "long-duration
    /// events").
    current: Option<Current>,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    ended: bool,
    duration: u16,
}

impl Default for Rfc4733Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Rfc4733Receiver {
    pub fn new() -> Self {
        Self {
            seen: [None; REMEMBERED],
            next: 0,
            current: None,
        }
    }

    /// Returns `Some(digit)` once per event: on the first packet seen of a
    /// new event (keyed by RTP timestamp and event code), `None` for repeats,
    /// updates, end retransmissions, non-digit events and malformed payloads.
    pub fn on_packet(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Option<char> {
        let ev = parse_event(payload).ok()?;
        let key = (rtp_timestamp, ev.event);

        if self.seen.contains(&Some(key)) {
            // Another packet of a known event: only track its progress.
            if let Some(cur) = self
                .current
                .as_mut()
                .filter(|c| (c.timestamp, c.event) == key)
            {
                cur.ended |= ev.end;
                cur.duration = cur.duration.max(ev.duration);
            }
            return None;
        }

        // A press longer than 0xFFFF samples (~8 s) is sent as segments, each
        // starting where the previous one's duration ended. It is one press.
        let continuation = self.current.is_some_and(|c| {
            c.event == ev.event
                && !c.ended
                && c.duration > 0
                && rtp_timestamp == c.timestamp.wrapping_add(u32::from(c.duration))
        });

        self.seen[self.next] = Some(key);
        self.next = (self.next + 1) % REMEMBERED;
        self.current = Some(Current {
            timestamp: rtp_timestamp,
            event: ev.event,
            ended: ev.end,
            duration: ev.duration,
        });

        if continuation {
            return None;
        }
        event_to_digit(ev.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed a full, well-behaved press: start, two updates, three ends.
    fn press(rx: &mut Rfc4733Receiver, ts: u32, event: u8) -> Vec<char> {
        let mut out = Vec::new();
        for d in [160u16, 320, 480] {
            out.extend(rx.on_packet(ts, &event_payload(event, false, 10, d)));
        }
        for _ in 0..3 {
            out.extend(rx.on_packet(ts, &event_payload(event, true, 10, 640)));
        }
        out
    }

    #[test]
    fn payload_round_trip_and_layout() {
        let p = event_payload(11, true, 10, 1600);
        assert_eq!(p, [11, 0x8A, 0x06, 0x40]);
        assert_eq!(
            parse_event(&p).unwrap(),
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 1600
            }
        );
        // Reserved bit is ignored, volume masked, trailing bytes ignored.
        let e = parse_event(&[5, 0x7F, 0, 1, 0xEE]).unwrap();
        assert_eq!((e.event, e.end, e.volume, e.duration), (5, false, 63, 1));
        assert_eq!(event_payload(1, false, 0xFF, 0)[1], 0x3F);
    }

    #[test]
    fn short_payload_is_an_error() {
        for len in 0..4 {
            assert_eq!(
                parse_event(&[0u8; 3][..len]).unwrap_err(),
                DtmfError::TooShort(len)
            );
        }
    }

    #[test]
    fn digit_mapping_both_ways() {
        let all = "0123456789*#ABCD";
        for (code, digit) in all.chars().enumerate() {
            assert_eq!(event_to_digit(code as u8), Some(digit));
            assert_eq!(digit_to_event(digit), Some(code as u8));
        }
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(event_to_digit(16), None, "hook flash is not a digit");
        assert_eq!(event_to_digit(255), None);
        assert_eq!(digit_to_event('E'), None);
        assert_eq!(digit_to_event('é'), None);
    }

    #[test]
    fn one_press_gives_one_digit() {
        let mut rx = Rfc4733Receiver::new();
        assert_eq!(press(&mut rx, 1000, 5), ['5']);
    }

    #[test]
    fn same_digit_twice_gives_two_digits() {
        let mut rx = Rfc4733Receiver::new();
        assert_eq!(press(&mut rx, 1000, 1), ['1']);
        assert_eq!(press(&mut rx, 2600, 1), ['1']);
        assert_eq!(press(&mut rx, 4200, 11), ['#']);
    }

    #[test]
    fn only_end_packets_still_give_a_digit() {
        let mut rx = Rfc4733Receiver::new();
        let end = event_payload(9, true, 10, 800);
        assert_eq!(rx.on_packet(500, &end), Some('9'));
        assert_eq!(rx.on_packet(500, &end), None);
        assert_eq!(rx.on_packet(500, &end), None);
    }

    #[test]
    fn malformed_and_non_digit_events_give_nothing() {
        let mut rx = Rfc4733Receiver::new();
        assert_eq!(rx.on_packet(1, &[]), None);
        assert_eq!(rx.on_packet(1, &[3, 0, 0]), None);
        assert_eq!(rx.on_packet(2, &event_payload(16, false, 0, 0)), None);
        assert_eq!(rx.on_packet(3, &event_payload(200, true, 0, 0)), None);
        // The receiver still works afterwards.
        assert_eq!(press(&mut rx, 4, 0), ['0']);
    }

    #[test]
    fn reordered_old_event_is_not_reported_twice() {
        let mut rx = Rfc4733Receiver::new();
        assert_eq!(press(&mut rx, 1000, 2), ['2']);
        assert_eq!(press(&mut rx, 3000, 3), ['3']);
        // A delayed end packet of the first press shows up now.
        assert_eq!(rx.on_packet(1000, &event_payload(2, true, 10, 640)), None);
        assert_eq!(rx.on_packet(3000, &event_payload(3, true, 10, 640)), None);
    }

    #[test]
    fn different_event_at_same_timestamp_is_new() {
        // Some senders reuse the timestamp when no audio flowed in between.
        let mut rx = Rfc4733Receiver::new();
        assert_eq!(press(&mut rx, 1000, 4), ['4']);
        assert_eq!(press(&mut rx, 1000, 6), ['6']);
    }

    #[test]
    fn long_press_segments_are_one_digit() {
        let mut rx = Rfc4733Receiver::new();
        let ts = u32::MAX - 1000; // the segment boundary also wraps
        assert_eq!(
            rx.on_packet(ts, &event_payload(7, false, 10, 30_000)),
            Some('7')
        );
        assert_eq!(rx.on_packet(ts, &event_payload(7, false, 10, 0xFFFF)), None);
        let next = ts.wrapping_add(0xFFFF);
        assert_eq!(rx.on_packet(next, &event_payload(7, false, 10, 160)), None);
        assert_eq!(rx.on_packet(next, &event_payload(7, true, 10, 800)), None);
        // A genuinely new press afterwards is reported.
        assert_eq!(press(&mut rx, next.wrapping_add(4000), 7), ['7']);
    }

    #[test]
    fn forgets_only_after_many_presses() {
        let mut rx = Rfc4733Receiver::new();
        for i in 0..REMEMBERED as u32 {
            assert_eq!(press(&mut rx, 1000 * (i + 1), 1).len(), 1);
        }
        // The oldest is still remembered...
        assert_eq!(rx.on_packet(1000, &event_payload(1, true, 0, 640)), None);
        // ...until one more press pushes it out.
        assert_eq!(press(&mut rx, 100_000, 1).len(), 1);
        assert_eq!(
            rx.on_packet(1000, &event_payload(1, true, 0, 640)),
            Some('1')
        );
    }
}
