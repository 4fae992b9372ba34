//! A small reorder buffer for the receive → record path.
//!
//! We record rather than play out, so there is no playout clock here: packets
//! are put back in RTP sequence order, duplicates are dropped, and a missing
//! packet is waited for only while fewer than `depth` later packets are queued
//! behind it. After that it is declared lost and the next frame reports how
//! many went missing (`lost_before`), so the recorder can fill the gap with
//! silence and keep the message's timing.
//!
//! Sequence numbers wrap at 65536, so each packet is given an "extended key":
//! a signed 64-bit position that only grows. Keys are derived from the 16-bit
//! distance to the next expected sequence number (RFC 3550 appendix A.1
//! style), which makes wrap-around invisible to the rest of the code.
//!
//! Storage is `depth + 1` slots allocated once; each slot's payload `Vec` is
//! reused, so after the first few packets nothing is allocated. Slots are
//! found by a linear scan, which for a depth of a few packets is cheaper than
//! any index.

/// A jump of this many packets ahead is a new stream, not loss (RFC 3550 A.1).
const MAX_DROPOUT: i64 = 3000;
/// A packet this many behind the expected one is a new stream, not a late one.
const MAX_MISORDER: i64 = 100;
/// Upper bound on `depth`, so a bad configuration cannot allocate wildly.
pub const MAX_DEPTH: usize = 256;

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Accepted,
    /// Already held, or already released.
    Duplicate,
    /// Older than what was already released (or declared lost), so dropped.
    /// Also returned, with [`JitterStats::overflow`] counted, if the caller
    /// pushed more than `depth + 1` packets without draining [`JitterBuffer::pop`].
    Late,
    /// A huge jump in sequence (new stream/SSRC change): the buffer restarted
    /// at this packet. Packets still held from before come out first, their
    /// gaps declared lost, then this one.
    Reset,
}

/// One packet released in order. `payload` borrows from the buffer's slot.
#[derive(Debug, Clone, Copy)]
pub struct JitterFrame<'a> {
    pub sequence: u16,
    pub timestamp: u32,
    pub payload_type: u8,
    pub payload: &'a [u8],
    pub marker: bool,
    /// Packets missing just before this one (declared lost).
    pub lost_before: u16,
}

/// Counters since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Every packet pushed, whatever became of it.
    pub received: u64,
    pub duplicates: u64,
    pub late: u64,
    /// Sequence numbers declared lost (never arrived in time).
    pub lost: u64,
    /// Packets that arrived after a later one (and were put back in order).
    pub reordered: u64,
    pub resets: u64,
    /// Packets dropped because the caller did not drain `pop` between pushes.
    pub overflow: u64,
}

#[derive(Debug, Default)]
struct Slot {
    occupied: bool,
    key: i64,
    sequence: u16,
    timestamp: u32,
    payload_type: u8,
    marker: bool,
    payload: Vec<u8>,
}

/// Reorder/dedupe/loss-detection buffer keyed by RTP sequence number.
#[derive(Debug)]
pub struct JitterBuffer {
    depth: usize,
    slots: Vec<Slot>,
    held: usize,
    started: bool,
    /// Key and sequence number of the next frame to release.
    next_key: i64,
    next_seq: u16,
    /// Highest key accepted so far (for reorder counting and resets).
    highest_key: i64,
    /// Held frames with a key below this are released without waiting for
    /// their gaps (the tail of a stream that was replaced by a Reset).
    drain_before: i64,
    /// Bit i set: key `next_key - 1 - i` was released (not declared lost).
    /// Tells a duplicate of a released packet from a late one.
    released: u64,
    stats: JitterStats,
}

impl JitterBuffer {
    /// depth: how many packets may be held waiting for a missing one (e.g.
    /// 3 = 60 ms at 20 ms ptime). Clamped to [`MAX_DEPTH`].
    pub fn new(depth: usize) -> Self {
        let depth = depth.min(MAX_DEPTH);
        Self {
            depth,
            slots: (0..=depth).map(|_| Slot::default()).collect(),
            held: 0,
            started: false,
            next_key: 0,
            next_seq: 0,
            highest_key: -1,
            drain_before: 0,
            released: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Packets currently held.
    pub fn len(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Offer one received packet. Drain [`pop`](Self::pop) after each push.
    ///
    /// The first packet pushed anchors the stream: anything older that
    /// arrives after it is `Late`.
    pub fn push(
        &mut self,
        sequence: u16,
        timestamp: u32,
        payload_type: u8,
        marker: bool,
        payload: &[u8],
    ) -> PushOutcome {
        self.stats.received += 1;
        if !self.started {
            self.started = true;
            self.next_seq = sequence;
        }
        if self.held == self.slots.len() {
            self.stats.overflow += 1;
            return PushOutcome::Late;
        }

        let distance = i64::from(sequence.wrapping_sub(self.next_seq) as i16);
        let mut outcome = PushOutcome::Accepted;
        let key = if !(-MAX_MISORDER..MAX_DROPOUT).contains(&distance) {
            outcome = PushOutcome::Reset;
            self.restart_at(sequence)
        } else {
            self.next_key + distance
        };

        if key < self.next_key {
            let age = self.next_key - key - 1;
            if age < 64 && self.released & (1 << age) != 0 {
                self.stats.duplicates += 1;
                return PushOutcome::Duplicate;
            }
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        // One pass: a held copy of this packet, else the first free slot
        // (one exists: held < slots.len() was checked above).
        let mut free = None;
        for (i, s) in self.slots.iter().enumerate() {
            if !s.occupied {
                free = free.or(Some(i));
            } else if s.key == key {
                self.stats.duplicates += 1;
                return PushOutcome::Duplicate;
            }
        }
        if key < self.highest_key {
            self.stats.reordered += 1;
        }
        self.highest_key = self.highest_key.max(key);

        if let Some(slot) = free.map(|i| &mut self.slots[i]) {
            slot.occupied = true;
            slot.key = key;
            slot.sequence = sequence;
            slot.timestamp = timestamp;
            slot.payload_type = payload_type;
            slot.marker = marker;
            slot.payload.clear();
            slot.payload.extend_from_slice(payload);
            self.held += 1;
        }
        outcome
    }

    /// Next frame in order, if it is the next expected one, or if more than
    /// `depth` packets are waiting behind a gap (then the gap is declared lost
    /// and reported in `lost_before`). Call in a loop until `None`.
    pub fn pop(&mut self) -> Option<JitterFrame<'_>> {
        self.release(false)
    }

    /// Release everything still held in order (end of call), declaring gaps
    /// lost without waiting. Call in a loop until `None`.
    pub fn pop_flush(&mut self) -> Option<JitterFrame<'_>> {
        self.release(true)
    }

    /// Map `sequence` to a fresh key after everything held, so the old
    /// stream's tail drains first and the new stream continues from there.
    fn restart_at(&mut self, sequence: u16) -> i64 {
        let key = self.next_key.max(self.highest_key + 1);
        // Re-anchor the sequence ↔ key mapping on the new stream; the
        // distance fits easily in u16 as keys beyond next_key span < 3000.
        self.next_seq = sequence.wrapping_sub((key - self.next_key) as u16);
        self.drain_before = key;
        self.released = 0;
        self.stats.resets += 1;
        key
    }

    fn release(&mut self, flush: bool) -> Option<JitterFrame<'_>> {
        // The common case, asked every tick of every session: nothing held.
        // Answering it without scanning the slots keeps them out of the
        // cache (a tenth of the media threads' own time at 1,000 deposits).
        if self.held == 0 {
            return None;
        }
        let index = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.occupied)
            .min_by_key(|(_, s)| s.key)
            .map(|(i, _)| i)?;
        let key = self.slots[index].key;
        let gap = key - self.next_key;
        let must_release = flush || self.held > self.depth || key < self.drain_before;
        if gap > 0 && !must_release {
            return None;
        }

        self.stats.lost += gap as u64;
        let shift = gap + 1;
        let kept = if shift >= 64 {
            0
        } else {
            self.released << shift
        };
        self.released = kept | 1;
        self.next_key = key + 1;
        self.next_seq = self.next_seq.wrapping_add(shift as u16);
        self.held -= 1;

        let slot = &mut self.slots[index];
        slot.occupied = false;
        let slot = &self.slots[index];
        Some(JitterFrame {
            sequence: slot.sequence,
            timestamp: slot.timestamp,
            payload_type: slot.payload_type,
            payload: &slot.payload,
            marker: slot.marker,
            lost_before: u16::try_from(gap).unwrap_or(u16::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Push `seq` with a payload derived from it; timestamp = seq * 160.
    fn push(jb: &mut JitterBuffer, seq: u16) -> PushOutcome {
        jb.push(seq, u32::from(seq) * 160, 0, false, &seq.to_be_bytes())
    }

    /// Drain `pop` into (sequence, lost_before) pairs, checking payloads.
    fn drain(jb: &mut JitterBuffer) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        while let Some(f) = jb.pop() {
            assert_eq!(f.payload, f.sequence.to_be_bytes());
            out.push((f.sequence, f.lost_before));
        }
        out
    }

    fn drain_flush(jb: &mut JitterBuffer) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        while let Some(f) = jb.pop_flush() {
            out.push((f.sequence, f.lost_before));
        }
        out
    }

    #[test]
    fn in_order_passes_straight_through() {
        let mut jb = JitterBuffer::new(3);
        for seq in 100..110 {
            assert_eq!(push(&mut jb, seq), PushOutcome::Accepted);
            assert_eq!(drain(&mut jb), [(seq, 0)]);
        }
        assert!(jb.is_empty());
        let s = jb.stats();
        assert_eq!((s.received, s.lost, s.reordered), (10, 0, 0));
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let mut jb = JitterBuffer::new(3);
        push(&mut jb, 1);
        assert_eq!(drain(&mut jb), [(1, 0)]);
        push(&mut jb, 3);
        assert_eq!(drain(&mut jb), [], "3 waits for 2");
        assert_eq!(jb.len(), 1);
        assert_eq!(push(&mut jb, 2), PushOutcome::Accepted);
        assert_eq!(drain(&mut jb), [(2, 0), (3, 0)]);
        assert_eq!(jb.stats().reordered, 1);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn duplicates_are_dropped_held_or_released() {
        let mut jb = JitterBuffer::new(3);
        push(&mut jb, 1);
        drain(&mut jb);
        push(&mut jb, 3);
        assert_eq!(push(&mut jb, 3), PushOutcome::Duplicate, "held copy");
        assert_eq!(push(&mut jb, 1), PushOutcome::Duplicate, "released copy");
        push(&mut jb, 2);
        assert_eq!(drain(&mut jb), [(2, 0), (3, 0)]);
        assert_eq!(push(&mut jb, 2), PushOutcome::Duplicate);
        assert_eq!(jb.stats().duplicates, 3);
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn loss_is_declared_once_depth_packets_wait() {
        let mut jb = JitterBuffer::new(3);
        push(&mut jb, 1);
        assert_eq!(drain(&mut jb), [(1, 0)]);
        // 2 and 3 never arrive.
        for seq in 4..=6 {
            push(&mut jb, seq);
            assert_eq!(drain(&mut jb), [], "still waiting with {seq}");
        }
        push(&mut jb, 7);
        assert_eq!(drain(&mut jb), [(4, 2), (5, 0), (6, 0), (7, 0)]);
        assert_eq!(jb.stats().lost, 2);
        // The lost ones turning up afterwards are late, not duplicates.
        assert_eq!(push(&mut jb, 2), PushOutcome::Late);
        assert_eq!(push(&mut jb, 3), PushOutcome::Late);
        assert_eq!(jb.stats().late, 2);
    }

    #[test]
    fn sequence_wraps_around() {
        let mut jb = JitterBuffer::new(2);
        let mut got = Vec::new();
        for seq in [65533u16, 65535, 65534, 1, 0, 2] {
            assert_eq!(push(&mut jb, seq), PushOutcome::Accepted);
            got.extend(drain(&mut jb));
        }
        assert_eq!(
            got,
            [(65533, 0), (65534, 0), (65535, 0), (0, 0), (1, 0), (2, 0)]
        );
        // Loss across the wrap is counted correctly too.
        for seq in [5u16, 6, 7] {
            push(&mut jb, seq);
        }
        assert_eq!(drain(&mut jb), [(5, 2), (6, 0), (7, 0)]);
        assert_eq!(push(&mut jb, 65535), PushOutcome::Duplicate);
        assert_eq!(push(&mut jb, 3), PushOutcome::Late);
    }

    #[test]
    fn late_packet_after_release() {
        let mut jb = JitterBuffer::new(1);
        let mut got = Vec::new();
        for seq in [10u16, 12, 13] {
            push(&mut jb, seq);
            got.extend(drain(&mut jb));
        }
        assert_eq!(got, [(10, 0), (12, 1), (13, 0)]);
        assert_eq!(push(&mut jb, 11), PushOutcome::Late);
        assert_eq!(drain(&mut jb), []);
        assert_eq!(jb.stats().late, 1);
    }

    #[test]
    fn huge_jump_resets_after_draining_the_old_tail() {
        let mut jb = JitterBuffer::new(3);
        push(&mut jb, 10);
        push(&mut jb, 12); // waiting for 11
        assert_eq!(drain(&mut jb), [(10, 0)]);
        assert_eq!(push(&mut jb, 40_000), PushOutcome::Reset);
        assert_eq!(drain(&mut jb), [(12, 1), (40_000, 0)]);
        assert_eq!(push(&mut jb, 40_001), PushOutcome::Accepted);
        assert_eq!(drain(&mut jb), [(40_001, 0)]);
        // A jump far backwards is a new stream too.
        assert_eq!(push(&mut jb, 39_000), PushOutcome::Reset);
        assert_eq!(drain(&mut jb), [(39_000, 0)]);
        let s = jb.stats();
        assert_eq!((s.resets, s.lost), (2, 1));
    }

    #[test]
    fn small_gaps_backwards_are_late_not_resets() {
        let mut jb = JitterBuffer::new(0);
        push(&mut jb, 500);
        drain(&mut jb);
        assert_eq!(push(&mut jb, 401), PushOutcome::Late);
        assert_eq!(push(&mut jb, 400), PushOutcome::Reset);
    }

    #[test]
    fn flush_releases_everything_in_order() {
        let mut jb = JitterBuffer::new(5);
        push(&mut jb, 1);
        for seq in [5u16, 3, 4] {
            push(&mut jb, seq);
        }
        assert_eq!(drain(&mut jb), [(1, 0)]);
        assert_eq!(drain_flush(&mut jb), [(3, 1), (4, 0), (5, 0)]);
        assert!(jb.is_empty());
        assert_eq!(jb.pop_flush().map(|f| f.sequence), None);
        assert_eq!(jb.stats().lost, 1);
    }

    #[test]
    fn depth_zero_never_waits() {
        let mut jb = JitterBuffer::new(0);
        push(&mut jb, 1);
        assert_eq!(drain(&mut jb), [(1, 0)]);
        push(&mut jb, 3);
        assert_eq!(drain(&mut jb), [(3, 1)]);
        assert_eq!(push(&mut jb, 2), PushOutcome::Late);
    }

    #[test]
    fn frame_fields_and_payload_bytes_are_preserved() {
        let mut jb = JitterBuffer::new(2);
        jb.push(7, 1120, 8, true, &[0xD5, 0x00, 0xFF]);
        let f = jb.pop().unwrap();
        assert_eq!(
            (
                f.sequence,
                f.timestamp,
                f.payload_type,
                f.marker,
                f.lost_before
            ),
            (7, 1120, 8, true, 0)
        );
        assert_eq!(f.payload, &[0xD5, 0x00, 0xFF]);
        // A shorter payload reusing the slot does not leak old bytes.
        jb.push(8, 1280, 0, false, &[1]);
        assert_eq!(jb.pop().unwrap().payload, &[1]);
    }

    #[test]
    fn overflow_when_not_drained() {
        let mut jb = JitterBuffer::new(1);
        push(&mut jb, 1);
        push(&mut jb, 3); // two slots, both full now
        assert_eq!(push(&mut jb, 4), PushOutcome::Late);
        assert_eq!(jb.stats().overflow, 1);
        assert_eq!(drain(&mut jb), [(1, 0)]);
        push(&mut jb, 2);
        assert_eq!(drain(&mut jb), [(2, 0), (3, 0)]);
    }

    #[test]
    fn huge_depth_is_clamped() {
        let jb = JitterBuffer::new(usize::MAX);
        assert_eq!(jb.depth(), MAX_DEPTH);
        assert_eq!(jb.slots.len(), MAX_DEPTH + 1);
    }

    #[test]
    fn no_allocation_in_steady_state() {
        let mut jb = JitterBuffer::new(3);
        let frame = [0x55u8; 160];
        let mut seq = 0u16;
        // Warm up: every slot gets used (reordered pairs fill two at once).
        for _ in 0..20 {
            jb.push(seq.wrapping_add(1), 0, 0, false, &frame);
            jb.push(seq, 0, 0, false, &frame);
            while jb.pop().is_some() {}
            seq = seq.wrapping_add(2);
        }
        let before: Vec<*const u8> = jb.slots.iter().map(|s| s.payload.as_ptr()).collect();
        for _ in 0..40_000 {
            jb.push(seq.wrapping_add(1), 0, 0, false, &frame);
            jb.push(seq, 0, 0, false, &frame);
            while jb.pop().is_some() {}
            seq = seq.wrapping_add(2);
        }
        let after: Vec<*const u8> = jb.slots.iter().map(|s| s.payload.as_ptr()).collect();
        assert_eq!(before, after);
        assert_eq!(jb.stats().lost, 0);
        assert_eq!(jb.stats().resets, 0);
    }

    #[test]
    fn bounded_shuffle_is_fully_restored() {
        // Shuffle within blocks of depth + 1, so no packet is overtaken by
        // more than `depth` others, across several wraps: everything must
        // come out in order with nothing lost.
        let depth = 4;
        let mut jb = JitterBuffer::new(depth);
        let mut order: Vec<u16> = (0..200_000u32).map(|i| i as u16).collect();
        let mut x: u32 = 99;
        // The first packet anchors the stream, so it stays first.
        for block in order[1..].chunks_mut(depth + 1) {
            for i in (1..block.len()).rev() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                block.swap(i, (x >> 16) as usize % (i + 1));
            }
        }
        let mut expected = 0u16;
        for &seq in &order {
            push(&mut jb, seq);
            while let Some(f) = jb.pop() {
                assert_eq!(f.sequence, expected);
                assert_eq!(f.lost_before, 0);
                expected = expected.wrapping_add(1);
            }
        }
        while let Some(f) = jb.pop_flush() {
            assert_eq!(f.sequence, expected);
            expected = expected.wrapping_add(1);
        }
        assert_eq!(expected, 200_000u32 as u16);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn garbage_sequences_never_panic_and_stay_ordered() {
        let mut jb = JitterBuffer::new(3);
        let mut x: u32 = 7;
        let mut released = 0u64;
        let mut last: Option<u16> = None;
        for i in 0..50_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Mostly a stream with jitter, sometimes wild values.
            let seq = if x & 15 == 0 {
                x as u16
            } else {
                (i as u16).wrapping_add((x >> 8) as u16 % 8)
            };
            let outcome = push(&mut jb, seq);
            if outcome == PushOutcome::Reset {
                // The old tail and the new stream are not comparable.
                last = None;
                while jb.pop().is_some() {}
                continue;
            }
            while let Some(f) = jb.pop() {
                if let Some(l) = last {
                    assert!(
                        (f.sequence.wrapping_sub(l) as i16) > 0,
                        "{} after {l}",
                        f.sequence
                    );
                }
                last = Some(f.sequence);
                released += 1;
            }
            assert!(jb.len() <= jb.depth());
        }
        assert!(released > 10_000);
        assert!(jb.stats().resets > 0);
    }
}
