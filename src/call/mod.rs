//! The narrow interface applications use: one answered call.
//!
//! Apps (voicemail deposit, retrieval menus, dial-plan nodes) are plain async
//! code over [`Call`]: play prompts, wait for digits, record, hang up. They
//! never see SIP or RTP; the signalling loop and the media engine do that
//! behind this type.

use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::media::dtmf::DtmfSource;
use crate::media::engine::MediaSession;
use crate::media::feed::PlayItem;
use crate::media::session::{RecordOptions, SessionEvent, StopReason};
use crate::prompts::Pcm;
use crate::sip::CallHandle;
use crate::store::MessageWriter;

/// Who called whom.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub handle: CallHandle,
    pub call_id: String,
    pub caller_number: String,
    pub caller_name: Option<String>,
    /// The dialed number (Request-URI user).
    pub called_number: String,
    /// The negotiated codec's name ("PCMU").
    pub codec: String,
}

/// The caller hung up (or the call failed) while the app was waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the call has ended")]
pub struct HungUp;

/// From the signalling side to the app.
#[derive(Debug)]
pub enum CallSignal {
    Hangup,
    /// The final answer to our REFER.
    ReferResult(u16),
    /// A REFER progress report (the sipfrag body of a NOTIFY).
    ReferProgress(String),
}

/// A transfer the far end refused or never confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("the call has ended")]
    HungUp,
    #[error("transfer refused with {0}")]
    Refused(u16),
}

/// What the app asks of the signalling side.
#[derive(Debug)]
pub enum Control {
    Hangup(CallHandle),
    /// Hang up because the far end stopped sending RTP: the call's outcome
    /// says so (`media_timeout`).
    MediaTimeout(CallHandle),
    /// Blind transfer of an answered call (REFER).
    Refer(CallHandle, String),
    /// Internal: answer a call after its configured delay.
    Accept(CallHandle),
}

/// What apps may do with a call. [`Call`] is the real one; tests use a
/// scripted fake (`call::fake::FakeCall`) that presses keys and records what
/// was played.
#[allow(async_fn_in_trait)]
pub trait CallApi {
    fn info(&self) -> &CallInfo;
    fn is_hung_up(&self) -> bool;
    /// Play prompts to the end.
    async fn play(&mut self, items: Vec<Pcm>) -> Result<(), HungUp>;
    /// Play prompts; a digit in `interrupt` stops them (barge-in) and is returned.
    async fn play_interruptible(
        &mut self,
        items: Vec<Pcm>,
        interrupt: &str,
    ) -> Result<Option<char>, HungUp>;
    /// As [`CallApi::play_interruptible`], for items that may be streamed
    /// (a stored message read from its file while it plays).
    async fn play_items_interruptible(
        &mut self,
        items: Vec<PlayItem>,
        interrupt: &str,
    ) -> Result<Option<char>, HungUp>;
    /// Wait up to `timeout` for one digit (`None` on timeout).
    async fn collect_digit(&mut self, timeout: Duration) -> Result<Option<char>, HungUp>;
    /// Record until a stop digit, a limit, or hang-up; the writer comes back.
    async fn record(&mut self, writer: MessageWriter, options: RecordOptions) -> Option<Recorded>;
    /// Blind transfer (REFER) to a SIP URI; on success the call is over.
    async fn transfer(&mut self, target: &str) -> Result<(), TransferError>;
    /// End the call.
    fn hangup(&mut self);
}

/// How a recording ended, with the writer to finish or discard.
#[derive(Debug)]
pub struct Recorded {
    pub writer: MessageWriter,
    pub reason: StopReason,
}

pub struct Call {
    pub info: CallInfo,
    media: MediaSession,
    media_events: UnboundedReceiver<SessionEvent>,
    signals: UnboundedReceiver<CallSignal>,
    control: UnboundedSender<Control>,
    next_play: u64,
    hung_up: bool,
    /// Digits pressed while nothing was listening (type-ahead).
    pending_digits: String,
}

#[allow(clippy::large_enum_variant)] // one per event, moved once
enum Next {
    Media(SessionEvent),
    Signal(CallSignal),
    Closed,
}

impl Call {
    pub fn new(
        info: CallInfo,
        media: MediaSession,
        media_events: UnboundedReceiver<SessionEvent>,
        signals: UnboundedReceiver<CallSignal>,
        control: UnboundedSender<Control>,
    ) -> Call {
        Call {
            info,
            media,
            media_events,
            signals,
            control,
            next_play: 1,
            hung_up: false,
            pending_digits: String::new(),
        }
    }

    async fn next(&mut self) -> Next {
        let next = tokio::select! {
            biased;
            e = self.media_events.recv() => match e {
                Some(e) => Next::Media(e),
                None => Next::Closed,
            },
            s = self.signals.recv(), if !self.hung_up => match s {
                Some(s) => Next::Signal(s),
                None => Next::Closed,
            },
        };
        if let Next::Media(SessionEvent::MediaTimeout { silent_for }) = next {
            // The far end is gone without a BYE: we hang up, and the app
            // sees a hang-up. A recording in progress is stopped so that
            // its writer comes back now (not when our BYE times out) and
            // the message is saved.
            tracing::info!(call = %self.info.call_id, ?silent_for, "no RTP from the caller; hanging up");
            self.media.stop_recording();
            if !self.hung_up {
                self.hung_up = true;
                let _ = self.control.send(Control::MediaTimeout(self.info.handle));
            }
            return Next::Signal(CallSignal::Hangup);
        }
        next
    }

    async fn play_inner(
        &mut self,
        items: Vec<PlayItem>,
        interrupt: &str,
    ) -> Result<Option<char>, HungUp> {
        if self.hung_up {
            return Err(HungUp);
        }
        let id = self.next_play;
        self.next_play += 1;
        // The last reference to a large buffer (a message being listened
        // to) is dropped here, not on the media thread: freeing it unmaps
        // memory, which takes the process's memory-map lock, and a real-time
        // thread must not wait for that lock behind lower-priority threads.
        // The media thread lets go of an item before it reports `PlayDone`.
        // (A streamed feed is only ever a few small pieces.)
        let _keep_until_played: Vec<Pcm> = items
            .iter()
            .filter_map(|i| match i {
                PlayItem::Clip(pcm) => Some(pcm.clone()),
                PlayItem::Feed(_) => None,
            })
            .collect();
        self.media.play(id, items, interrupt);
        // A key pressed before this prompt started (still queued) barges in
        // as soon as it is seen.
        let mut early: Option<char> = None;
        loop {
            match self.next().await {
                Next::Media(SessionEvent::PlayDone {
                    id: done,
                    interrupted_by,
                }) if done == id => {
                    return Ok(early.or(interrupted_by));
                }
                Next::Media(SessionEvent::Dtmf { digit, .. }) => {
                    if early.is_none() && interrupt.contains(digit) {
                        early = Some(digit);
                        self.media.stop_playback();
                    } else {
                        // Type-ahead: kept for the next prompt or wait.
                        self.pending_digits.push(digit);
                    }
                }
                Next::Media(_)
                | Next::Signal(CallSignal::ReferResult(_) | CallSignal::ReferProgress(_)) => {}
                Next::Signal(CallSignal::Hangup) | Next::Closed => {
                    self.hung_up = true;
                    return Err(HungUp);
                }
            }
        }
    }

    /// A digit that arrived by signalling (SIP INFO) joins the media path.
    pub fn inject_digit(&self, digit: char, source: DtmfSource) {
        self.media.digit(digit, source);
    }
}

impl CallApi for Call {
    fn info(&self) -> &CallInfo {
        &self.info
    }
    fn is_hung_up(&self) -> bool {
        self.hung_up
    }

    /// Play prompts to the end.
    async fn play(&mut self, items: Vec<Pcm>) -> Result<(), HungUp> {
        let items = items.into_iter().map(PlayItem::from).collect();
        self.play_inner(items, "").await.map(|_| ())
    }

    /// Play prompts; a digit in `interrupt` stops them and is returned.
    async fn play_interruptible(
        &mut self,
        items: Vec<Pcm>,
        interrupt: &str,
    ) -> Result<Option<char>, HungUp> {
        let items = items.into_iter().map(PlayItem::from).collect();
        self.play_items_interruptible(items, interrupt).await
    }

    async fn play_items_interruptible(
        &mut self,
        items: Vec<PlayItem>,
        interrupt: &str,
    ) -> Result<Option<char>, HungUp> {
        if let Some(pos) = self.pending_digits.find(|c| interrupt.contains(c)) {
            return Ok(Some(self.pending_digits.remove(pos)));
        }
        self.play_inner(items, interrupt).await
    }

    /// Wait up to `timeout` for one digit.
    async fn collect_digit(&mut self, timeout: Duration) -> Result<Option<char>, HungUp> {
        if !self.pending_digits.is_empty() {
            return Ok(Some(self.pending_digits.remove(0)));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.hung_up {
                return Err(HungUp);
            }
            let next = tokio::time::timeout_at(deadline, self.next()).await;
            match next {
                Err(_) => return Ok(None),
                Ok(Next::Media(SessionEvent::Dtmf { digit, .. })) => return Ok(Some(digit)),
                Ok(
                    Next::Media(_)
                    | Next::Signal(CallSignal::ReferResult(_) | CallSignal::ReferProgress(_)),
                ) => {}
                Ok(Next::Signal(CallSignal::Hangup) | Next::Closed) => {
                    self.hung_up = true;
                    return Err(HungUp);
                }
            }
        }
    }

    /// Record until a stop digit, the limits in `options`, or hang-up. The
    /// writer comes back (also after a hang-up) so no audio is lost; `None`
    /// only if the media engine itself went away.
    async fn record(&mut self, writer: MessageWriter, options: RecordOptions) -> Option<Recorded> {
        self.pending_digits.clear();
        self.media.record(writer, options);
        loop {
            match self.next().await {
                Next::Media(SessionEvent::RecordingStopped { writer, reason }) => {
                    return Some(Recorded { writer, reason });
                }
                Next::Media(_)
                | Next::Signal(CallSignal::ReferResult(_) | CallSignal::ReferProgress(_)) => {}
                Next::Signal(CallSignal::Hangup) => {
                    // The session is being closed; it hands the writer back.
                    self.hung_up = true;
                }
                Next::Closed => {
                    // The media worker is gone; nothing will come back. The
                    // spool file is recovered on the next start.
                    tracing::error!(call = %self.info.call_id, "media session vanished while recording");
                    self.hung_up = true;
                    return None;
                }
            }
        }
    }

    async fn transfer(&mut self, target: &str) -> Result<(), TransferError> {
        if self.hung_up {
            return Err(TransferError::HungUp);
        }
        let _ = self
            .control
            .send(Control::Refer(self.info.handle, target.to_string()));
        loop {
            match self.next().await {
                Next::Signal(CallSignal::ReferResult(status)) if (200..300).contains(&status) => {
                    break;
                }
                Next::Signal(CallSignal::ReferResult(status)) => {
                    return Err(TransferError::Refused(status));
                }
                Next::Signal(CallSignal::Hangup) | Next::Closed => {
                    self.hung_up = true;
                    return Err(TransferError::HungUp);
                }
                _ => {}
            }
        }
        // Accepted: wait (bounded) for the NOTIFY saying how the new call went.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Err(_) => break,
                Ok(Next::Signal(CallSignal::ReferProgress(frag))) => {
                    let status: u16 = frag
                        .split(' ')
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    if status >= 300 {
                        return Err(TransferError::Refused(status));
                    }
                    if status >= 200 {
                        break;
                    }
                }
                Ok(Next::Signal(CallSignal::Hangup) | Next::Closed) => {
                    self.hung_up = true;
                    return Ok(());
                }
                Ok(_) => {}
            }
        }
        self.hangup();
        Ok(())
    }

    /// End the call (BYE).
    fn hangup(&mut self) {
        if !self.hung_up {
            self.hung_up = true;
            let _ = self.control.send(Control::Hangup(self.info.handle));
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // An app that returns without hanging up ends the call.
        self.hangup();
    }
}

#[cfg(test)]
pub mod fake;
