//! One call's media, sans-IO: what arrives on its RTP port and what it sends
//! every 20 ms. The engine owns the socket and the clock and calls
//! [`RtpSession::on_datagram`] and [`RtpSession::on_tick`]; everything else
//! (latching, reordering, DTMF, playback, recording, silence detection) is
//! decided here, so it can be tested without a network.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::store::MessageWriter;

use super::dtmf::{DtmfSource, Rfc4733Receiver};
use super::feed::{Fill, PlayItem};
use super::g711::G711;
use super::inband::InbandDetector;
use super::jitter::JitterBuffer;
use super::rtp::{self, RtpSender};

mod stats;
pub use stats::{
    ArrivalJitter, DtmfLog, DtmfSeen, MAX_DTMF_LOGGED, MAX_PAYLOAD_TYPES, PayloadCount,
    PayloadCounts, SessionStats,
};

/// 20 ms at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// While a message is recorded and nothing plays, the caller hears nothing
/// anyway: send one silent packet a second (a keep-alive for NATs and
/// media-timeout checks in SBCs) instead of fifty. Like Asterisk, which sends
/// nothing while recording; halves the packets of a deposit.
pub const RECORDING_KEEPALIVE_TICKS: u32 = 50;

/// Of the silence that ends a recording on the silence timeout, this much
/// (250 ms) is kept; the rest is cut from the message.
pub const SILENCE_TAIL_KEPT: u64 = 2000;

/// What was negotiated for the call's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaParams {
    pub codec: G711,
    /// The payload type the remote uses for the codec (static 0/8).
    pub payload_type: u8,
    pub telephone_event: Option<u8>,
    /// Where to send: the SDP address until a packet arrives (symmetric RTP).
    pub remote: Option<SocketAddr>,
    /// False while the remote holds us with a=sendonly / inactive.
    pub send: bool,
    /// The remote is not holding the call (a=sendrecv): only then does a
    /// lack of packets mean the far end has gone. A phone that holds
    /// (a=sendonly / inactive) may send nothing, and Asterisk's
    /// `rtptimeout` likewise spares held calls.
    pub expect_media: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop digit (normally '#').
    Digit(char),
    MaxLength,
    Silence,
    /// Asked to stop (by the application, or because the call ended).
    Stopped,
    /// The disk refused the audio.
    WriteError,
}

#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub max_samples: u64,
    /// 0 disables the silence timeout.
    pub silence_timeout_samples: u64,
    /// Mean absolute level under which a frame is silence.
    pub silence_threshold: u16,
    /// Digits that end the recording (not recorded themselves).
    pub stop_digits: String,
}

// A recording's writer rides in one event per recording, never per packet,
// so the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SessionEvent {
    PlayDone {
        id: u64,
        interrupted_by: Option<char>,
    },
    Dtmf {
        digit: char,
        source: DtmfSource,
    },
    RecordingStopped {
        writer: MessageWriter,
        reason: StopReason,
    },
    /// No RTP came for the session's media timeout while the remote should
    /// have been sending: its phone or network has gone without a BYE.
    /// Raised once.
    MediaTimeout {
        silent_for: std::time::Duration,
    },
}

struct Playback {
    id: u64,
    items: VecDeque<PlayItem>,
    /// Into the front item, when it is a clip (a feed keeps its own).
    position: usize,
    interrupt: String,
}

struct Recording {
    writer: MessageWriter,
    options: RecordOptions,
    samples: u64,
    silent_samples: u64,
    /// The silent samples at the end of what was written (lost packets'
    /// fill included; ticks without packets are not written, so they are
    /// counted in `silent_samples` only).
    silent_written: u64,
    heard_this_tick: bool,
    /// Ticks since silence was last judged (see `on_tick_after`).
    unjudged_ticks: u64,
}

pub struct RtpSession {
    params: Option<MediaParams>,
    latched: Option<SocketAddr>,
    sender: RtpSender,
    jitter: JitterBuffer,
    dtmf: Rfc4733Receiver,
    /// In-band (Goertzel) detection, for calls without telephone-event.
    inband: InbandDetector,
    playback: Option<Playback>,
    talking: bool,
    recording: Option<Recording>,
    decoded: Vec<i16>,
    frame: Vec<i16>,
    encoded: Vec<u8>,
    packet: Vec<u8>,
    /// Ticks since the last packet sent while suppressing silence.
    quiet_ticks: u32,
    stats: SessionStats,
    arrival_jitter: ArrivalJitter,
    /// 20 ms ticks since the session opened (the time of DTMF digits).
    ticks: u64,
    /// Ticks without any RTP from the remote while it should be sending.
    ticks_without_media: u64,
    /// After this many such ticks the session raises
    /// [`SessionEvent::MediaTimeout`] (0: never).
    media_timeout_ticks: u64,
    media_timed_out: bool,
}

impl RtpSession {
    pub fn new(params: Option<MediaParams>) -> Self {
        RtpSession {
            params,
            latched: None,
            sender: RtpSender::new(rand::random(), rand::random(), rand::random()),
            jitter: JitterBuffer::new(5),
            dtmf: Rfc4733Receiver::new(),
            inband: InbandDetector::new(),
            playback: None,
            talking: false,
            recording: None,
            decoded: Vec::with_capacity(FRAME_SAMPLES * 2),
            frame: Vec::with_capacity(FRAME_SAMPLES),
            encoded: Vec::with_capacity(FRAME_SAMPLES),
            packet: Vec::with_capacity(rtp::RTP_HEADER_LEN + FRAME_SAMPLES),
            quiet_ticks: 0,
            stats: SessionStats::default(),
            arrival_jitter: ArrivalJitter::default(),
            ticks: 0,
            ticks_without_media: 0,
            media_timeout_ticks: 0,
            media_timed_out: false,
        }
    }

    /// Raise [`SessionEvent::MediaTimeout`] once no RTP has come for
    /// `timeout` while the remote should be sending (zero: never), as
    /// Asterisk's `rtptimeout` and FreeSWITCH's `media_timeout` do. Judged
    /// on the engine's read cycle, so up to a read interval late.
    pub fn set_media_timeout(&mut self, timeout: std::time::Duration) {
        self.media_timeout_ticks = (timeout.as_millis() / 20) as u64;
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// New negotiation (late-offer answer, re-INVITE, hold/resume). The
    /// latched source is kept unless the remote address changed.
    pub fn update(&mut self, params: MediaParams) {
        if let Some(old) = self.params
            && old.remote != params.remote
        {
            self.latched = None;
        }
        if self.params.is_some_and(|p| p.send) && !params.send {
            self.talking = false;
        }
        self.params = Some(params);
    }

    /// The source of valid media this session answers to, once one sent.
    pub fn latched_source(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Where outgoing packets go: the latched source, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.params.and_then(|p| p.remote))
    }

    /// A datagram arrived on the session's port at `arrival` (for jitter).
    pub fn on_datagram(
        &mut self,
        from: SocketAddr,
        data: &[u8],
        arrival: Instant,
        events: &mut Vec<SessionEvent>,
    ) {
        let Some(params) = self.params else {
            self.stats.ignored += 1;
            return;
        };
        let Ok(packet) = rtp::parse(data) else {
            self.stats.ignored += 1;
            return;
        };
        // Any RTP shows the far end is there (comfort noise included).
        self.ticks_without_media = 0;
        let pt = packet.header.payload_type;
        let is_event = params.telephone_event == Some(pt);
        if pt != params.payload_type && !is_event {
            self.stats.ignored += 1;
            return;
        }
        // Symmetric RTP: send back to whoever really sends us valid media.
        if self.latched != Some(from) {
            self.latched = Some(from);
        }
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
        self.stats.received_by_pt.add(pt, data.len());
        if is_event {
            if let Some(digit) = self.dtmf.on_packet(packet.header.timestamp, packet.payload) {
                self.on_digit(digit, DtmfSource::Rfc4733, events);
            }
            return;
        }
        // Events repeat their start timestamp: only audio measures jitter.
        self.stats.jitter_q4 =
            self.arrival_jitter
                .on_packet(arrival, packet.header.ssrc, packet.header.timestamp);
        self.jitter.push(
            packet.header.sequence,
            packet.header.timestamp,
            pt,
            packet.header.marker,
            packet.payload,
        );
        // Release in-order audio at once: only packets waiting for a missing
        // one stay in the buffer, so a burst after a stall is never dropped.
        self.drain_jitter(events);
    }

    /// A digit from any source (RTP events here, SIP INFO via the engine).
    /// A digit that barges into a prompt is reported once, as that prompt's
    /// `PlayDone`; any other digit as a `Dtmf` event.
    pub fn on_digit(&mut self, digit: char, source: DtmfSource, events: &mut Vec<SessionEvent>) {
        self.stats.dtmf += 1;
        self.stats.dtmf_by_source[source.index()] += 1;
        self.stats.dtmf_digits.push(DtmfSeen {
            digit,
            source,
            at_ms: self.ticks * 20,
        });
        if let Some(p) = &self.playback
            && p.interrupt.contains(digit)
        {
            let id = p.id;
            self.playback = None;
            events.push(SessionEvent::PlayDone {
                id,
                interrupted_by: Some(digit),
            });
            return;
        }
        if self
            .recording
            .as_ref()
            .is_some_and(|r| r.options.stop_digits.contains(digit))
        {
            self.stop_recording(StopReason::Digit(digit), events);
        }
        events.push(SessionEvent::Dtmf { digit, source });
    }

    /// Queue audio; `interrupt` lists the digits that cut it short (barge-in).
    pub fn play(
        &mut self,
        id: u64,
        items: Vec<PlayItem>,
        interrupt: String,
        events: &mut Vec<SessionEvent>,
    ) {
        if let Some(p) = self.playback.take() {
            events.push(SessionEvent::PlayDone {
                id: p.id,
                interrupted_by: None,
            });
        }
        self.playback = Some(Playback {
            id,
            items: items.into(),
            position: 0,
            interrupt,
        });
    }

    pub fn stop_playback(&mut self, events: &mut Vec<SessionEvent>) {
        if let Some(p) = self.playback.take() {
            events.push(SessionEvent::PlayDone {
                id: p.id,
                interrupted_by: None,
            });
        }
    }

    pub fn start_recording(
        &mut self,
        writer: MessageWriter,
        options: RecordOptions,
        events: &mut Vec<SessionEvent>,
    ) {
        self.stop_recording(StopReason::Stopped, events);
        // Audio that arrived before the beep is not part of the message.
        while self.jitter.pop().is_some() {}
        self.recording = Some(Recording {
            writer,
            options,
            samples: 0,
            silent_samples: 0,
            silent_written: 0,
            heard_this_tick: false,
            unjudged_ticks: 0,
        });
    }

    pub fn stop_recording(&mut self, reason: StopReason, events: &mut Vec<SessionEvent>) {
        if let Some(rec) = self.recording.take() {
            events.push(SessionEvent::RecordingStopped {
                writer: rec.writer,
                reason,
            });
        }
    }

    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    pub fn is_playing(&self) -> bool {
        self.playback.is_some()
    }

    /// The session ends: whatever is still in the jitter buffer is recorded,
    /// then the recording (if any) is handed back.
    pub fn close(&mut self, events: &mut Vec<SessionEvent>) {
        if self.recording.is_some() {
            let codec = self.params.map(|p| p.codec).unwrap_or(G711::Pcmu);
            while let Some(frame) = self.jitter.pop_flush() {
                self.decoded.clear();
                codec.decode(frame.payload, &mut self.decoded);
                let lost = frame.lost_before as usize;
                if let Some(rec) = self.recording.as_mut() {
                    // As in drain_jitter: a gap of a second or more is a
                    // jump in the sender's numbering, not lost audio.
                    if lost > 0 && lost < 50 {
                        let silence = vec![0i16; lost * FRAME_SAMPLES];
                        let _ = rec.writer.write(&silence);
                    }
                    let _ = rec.writer.write(&self.decoded);
                }
            }
        }
        self.stop_playback(events);
        self.stop_recording(StopReason::Stopped, events);
        self.stats.closed = true;
    }

    /// One 20 ms step when the socket was read just before: record what
    /// arrived, then return the packet to send.
    pub fn on_tick(&mut self, events: &mut Vec<SessionEvent>) -> Option<(SocketAddr, &[u8])> {
        self.on_tick_after(true, events)
    }

    /// `ticks` 20 ms steps at once (at least one), for a session that only
    /// records: the engine wakes such a session on its read cycle instead of
    /// every tick, as it sends nothing but a keep-alive a second. The steps
    /// before the last send nothing and only let time pass (stream clock,
    /// silence, keep-alive count); the last is an ordinary
    /// [`on_tick_after`](Self::on_tick_after). Not for a session that is
    /// playing: its skipped steps would lose their audio's timing.
    pub fn on_ticks_after(
        &mut self,
        ticks: u64,
        received: bool,
        events: &mut Vec<SessionEvent>,
    ) -> Option<(SocketAddr, &[u8])> {
        let skipped = ticks.saturating_sub(1);
        if skipped > 0 {
            // Saturating: a clock jump must not overflow a counter.
            self.ticks = self.ticks.saturating_add(skipped);
            if let Some(rec) = self.recording.as_mut() {
                rec.unjudged_ticks = rec.unjudged_ticks.saturating_add(skipped);
            }
            self.quiet_ticks = self
                .quiet_ticks
                .saturating_add(u32::try_from(skipped).unwrap_or(u32::MAX));
            // RTP timestamps wrap, so the step count modulo 2^32 is exact.
            self.sender
                .skip_samples((skipped as u32).wrapping_mul(FRAME_SAMPLES as u32));
            self.talking = false;
            self.ticks_without_media = self.ticks_without_media.saturating_add(skipped);
        }
        self.on_tick_after(received, events)
    }

    /// One 20 ms step. `received` says whether the socket was read since
    /// the last tick: an engine that reads every few ticks judges silence
    /// over all the ticks since its last read, not tick by tick.
    pub fn on_tick_after(
        &mut self,
        received: bool,
        events: &mut Vec<SessionEvent>,
    ) -> Option<(SocketAddr, &[u8])> {
        self.ticks = self.ticks.saturating_add(1);
        self.drain_jitter(events);
        if let Some(rec) = self.recording.as_mut() {
            rec.unjudged_ticks = rec.unjudged_ticks.saturating_add(1);
        }
        if received {
            self.account_silence(events);
        }
        self.watch_media(events);
        self.next_packet(events)
    }

    fn watch_media(&mut self, events: &mut Vec<SessionEvent>) {
        if !self.params.is_some_and(|p| p.expect_media) {
            // On hold (or not negotiated yet): silence is expected.
            self.ticks_without_media = 0;
            return;
        }
        self.ticks_without_media = self.ticks_without_media.saturating_add(1);
        if self.media_timeout_ticks > 0
            && !self.media_timed_out
            && self.ticks_without_media >= self.media_timeout_ticks
        {
            self.media_timed_out = true;
            events.push(SessionEvent::MediaTimeout {
                silent_for: std::time::Duration::from_millis(
                    self.ticks_without_media.saturating_mul(20),
                ),
            });
        }
    }

    fn drain_jitter(&mut self, events: &mut Vec<SessionEvent>) {
        let codec = self.params.map(|p| p.codec).unwrap_or(G711::Pcmu);
        let inband = self.params.is_some_and(|p| p.telephone_event.is_none());
        while let Some(frame) = self.jitter.pop() {
            self.stats.lost += frame.lost_before as u64;
            self.decoded.clear();
            codec.decode(frame.payload, &mut self.decoded);
            let lost = frame.lost_before as usize;
            if inband && let Some(digit) = self.inband.process(&self.decoded) {
                self.on_digit(digit, DtmfSource::Inband, events);
            }
            let Some(rec) = self.recording.as_mut() else {
                continue;
            };
            rec.heard_this_tick = true;
            // Fill lost packets with silence so the message keeps its length.
            let mut result = Ok(());
            if lost > 0 && lost < 50 {
                let silence = [0i16; FRAME_SAMPLES];
                for _ in 0..lost {
                    result = result.and_then(|_| rec.writer.write(&silence));
                }
                rec.samples += (lost * FRAME_SAMPLES) as u64;
                rec.silent_samples += (lost * FRAME_SAMPLES) as u64;
                rec.silent_written += (lost * FRAME_SAMPLES) as u64;
            }
            let result = result.and_then(|_| rec.writer.write(&self.decoded));
            rec.samples += self.decoded.len() as u64;
            let level = mean_abs(&self.decoded);
            if level < rec.options.silence_threshold as u32 {
                rec.silent_samples += self.decoded.len() as u64;
                rec.silent_written += self.decoded.len() as u64;
            } else {
                rec.silent_samples = 0;
                rec.silent_written = 0;
            }
            let reason = if result.is_err() {
                Some(StopReason::WriteError)
            } else if rec.samples >= rec.options.max_samples {
                Some(StopReason::MaxLength)
            } else {
                None
            };
            if let Some(reason) = reason {
                self.stop_recording(reason, events);
            }
        }
    }

    /// After each read: silence suppression sends nothing, so ticks
    /// without audio count as silence too.
    fn account_silence(&mut self, events: &mut Vec<SessionEvent>) {
        if let Some(rec) = self.recording.as_mut() {
            if !rec.heard_this_tick {
                rec.silent_samples = rec
                    .silent_samples
                    .saturating_add(rec.unjudged_ticks.saturating_mul(FRAME_SAMPLES as u64));
            }
            rec.unjudged_ticks = 0;
            rec.heard_this_tick = false;
            let timeout = rec.options.silence_timeout_samples;
            if timeout > 0 && rec.silent_samples >= timeout {
                // The silence that ended the message is not part of it
                // (but for a short tail, so that it does not end clipped).
                rec.writer
                    .drop_tail(rec.silent_written.saturating_sub(SILENCE_TAIL_KEPT));
                self.stop_recording(StopReason::Silence, events);
            }
        }
    }

    fn next_packet(&mut self, events: &mut Vec<SessionEvent>) -> Option<(SocketAddr, &[u8])> {
        let params = self.params?;
        // Fill one frame from the playback queue, or silence.
        self.frame.clear();
        let mut finished = None;
        if let Some(p) = self.playback.as_mut() {
            while self.frame.len() < FRAME_SAMPLES {
                let Some(item) = p.items.front_mut() else {
                    break;
                };
                let played = match item {
                    PlayItem::Clip(clip) => {
                        let take = (FRAME_SAMPLES - self.frame.len())
                            .min(clip.len() - p.position.min(clip.len()));
                        self.frame
                            .extend_from_slice(&clip[p.position..p.position + take]);
                        p.position += take;
                        p.position >= clip.len()
                    }
                    PlayItem::Feed(feed) => match feed.fill(&mut self.frame, FRAME_SAMPLES) {
                        Fill::Full => false,
                        Fill::Ended => true,
                        Fill::Starved => {
                            // The rest of the frame is silence; the feed
                            // stays first and goes on when its piece comes.
                            self.stats.underruns += 1;
                            break;
                        }
                    },
                };
                if played {
                    p.items.pop_front();
                    p.position = 0;
                }
            }
            if p.items.is_empty() {
                finished = Some(p.id);
            }
        }
        if let Some(id) = finished {
            self.playback = None;
            events.push(SessionEvent::PlayDone {
                id,
                interrupted_by: None,
            });
        }
        let sound = !self.frame.is_empty();
        if !sound && self.recording.is_some() {
            self.quiet_ticks = self.quiet_ticks.saturating_add(1);
            if self.quiet_ticks < RECORDING_KEEPALIVE_TICKS {
                self.sender.skip_samples(FRAME_SAMPLES as u32);
                self.talking = false;
                return None;
            }
        }
        self.quiet_ticks = 0;
        self.frame.resize(FRAME_SAMPLES, 0);
        let Some(dest) = self.destination().filter(|_| params.send) else {
            // On hold or no address yet: time still passes for the stream.
            self.sender.skip_samples(FRAME_SAMPLES as u32);
            self.talking = false;
            return None;
        };
        if sound && !self.talking {
            self.sender.mark_talkspurt();
        }
        self.talking = sound;
        self.encoded.clear();
        params.codec.encode(&self.frame, &mut self.encoded);
        self.sender.packet(
            params.codec.payload_type(),
            &self.encoded,
            FRAME_SAMPLES as u32,
            &mut self.packet,
        );
        self.stats.packets_out += 1;
        self.stats.bytes_out += self.packet.len() as u64;
        self.stats
            .sent_by_pt
            .add(params.codec.payload_type(), self.packet.len());
        Some((dest, &self.packet))
    }
}

fn mean_abs(samples: &[i16]) -> u32 {
    if samples.is_empty() {
        return 0;
    }
    let sum: u64 = samples.iter().map(|s| s.unsigned_abs() as u64).sum();
    (sum / samples.len() as u64) as u32
}

#[cfg(test)]
mod tests;
