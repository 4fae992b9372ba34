//! The calls the server has seen, for `GET /api/v1/calls/{call-id}`: each
//! live call with a handle on its media session (whose worker publishes the
//! counters once a second), and ended calls kept a while with their final
//! statistics and the messages they left. Load testers read what SIPp
//! cannot measure itself: what the server really received and stored.
//!
//! Bounded under load: ended calls are forgotten after [`KEEP_ENDED`] or
//! beyond [`MAX_ENDED`] (oldest first), messages per call are capped, and
//! the media statistics are fixed-size. The signalling loop registers and
//! ends calls; a once-a-second [`CallRegistry::sweep`] refreshes live
//! statistics, expires old calls and counts DTMF digits by source into
//! `/metrics`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::api::Metrics;
use crate::media::dtmf::DtmfSource;
use crate::media::engine::MediaSession;
use crate::media::session::SessionStats;
use crate::sip::CallHandle;
use crate::store::{Folder, MailboxId, MessageId, MessageMeta, Store};

/// How long an ended call stays visible.
pub const KEEP_ENDED: Duration = Duration::from_secs(600);
/// Most ended calls kept (at 500 calls/s this is the last ~40 s).
pub const MAX_ENDED: usize = 20_000;
/// Most messages listed for one call (a deposit copied to many boxes).
pub const MAX_MESSAGES_PER_CALL: usize = 16;
/// After hang-up the media worker closes the session and publishes its
/// final counters within a tick or two; they are read through the session
/// handle this long, then kept as a snapshot and the handle dropped.
const SETTLE: Duration = Duration::from_secs(5);

/// Whether a call is still up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    Active,
    /// Signalling is over; the media worker has not yet published the
    /// final counters (normally a few milliseconds).
    Ending,
    Ended,
}

/// A message the call left in a mailbox.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredMessage {
    pub mailbox: String,
    pub id: String,
    pub audio_seconds: f64,
    /// SHA-256 (hex) of the stored audio file; `None` until the call is
    /// first shown ([`CallRegistry::checksum_messages`]) or if the file is
    /// gone.
    pub sha256: Option<String>,
    /// Where it was saved (it may have moved since).
    #[serde(skip)]
    pub folder: Folder,
}

/// Everything known about one call, as of now.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub state: CallState,
    pub started_at: jiff::Timestamp,
    pub answered_at: Option<jiff::Timestamp>,
    pub ended_at: Option<jiff::Timestamp>,
    /// How the call ended (the `outcome` label of `voxmail_calls_total`).
    pub outcome: Option<&'static str>,
    /// From answer to hang-up (or now); 0 if never answered.
    pub duration_s: f64,
    pub media: SessionStats,
    pub messages: Vec<StoredMessage>,
}

/// Who called whom, when the call arrives.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub handle: CallHandle,
    pub call_id: String,
    pub from: String,
    pub to: String,
}

struct Entry {
    handle: CallHandle,
    call_id: String,
    from: String,
    to: String,
    started: Instant,
    answered: Option<Instant>,
    ended: Option<(Instant, &'static str)>,
    /// A non-owning handle while the counters may still change.
    media: Option<MediaSession>,
    /// The counters as last read (final once `media` is `None`).
    last: SessionStats,
    /// DTMF digits by source already added to `/metrics`.
    dtmf_counted: [u64; DtmfSource::COUNT],
    messages: Vec<StoredMessage>,
}

impl Entry {
    fn refresh(&mut self) {
        if let Some(m) = &self.media {
            self.last = m.stats();
        }
    }

    /// Adds the digits seen since the last call to `metrics`.
    fn count_dtmf(&mut self, metrics: &Metrics) {
        for source in DtmfSource::ALL {
            let i = source.index();
            let now = self.last.dtmf_by_source[i];
            if now > self.dtmf_counted[i] {
                metrics.dtmf_digits(source, now - self.dtmf_counted[i]);
                self.dtmf_counted[i] = now;
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    live: HashMap<CallHandle, Entry>,
    /// Call-ID to the newest live call with it.
    live_ids: HashMap<String, CallHandle>,
    ended: HashMap<String, Entry>,
    /// Ended calls in the order they ended; an entry whose Call-ID was since
    /// reused by a newer call (another handle) is skipped.
    ended_order: VecDeque<(Instant, String, CallHandle)>,
}

impl Inner {
    fn find_mut(&mut self, call_id: &str) -> Option<&mut Entry> {
        match self.live_ids.get(call_id) {
            Some(h) => self.live.get_mut(h),
            None => self.ended.get_mut(call_id),
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, id, handle)) = self.ended_order.pop_front()
            && self.ended.get(&id).is_some_and(|e| e.handle == handle)
        {
            self.ended.remove(&id);
        }
    }
}

/// The registry. Share one as `Arc<CallRegistry>`; every method takes a
/// short lock and never blocks on I/O.
pub struct CallRegistry {
    /// Wall time at `epoch.0`, so reports derive timestamps from `Instant`s
    /// (which tests inject) and stay monotonic.
    epoch: (Instant, jiff::Timestamp),
    keep: Duration,
    max_ended: usize,
    inner: Mutex<Inner>,
}

impl Default for CallRegistry {
    fn default() -> Self {
        CallRegistry::new(KEEP_ENDED, MAX_ENDED)
    }
}

impl CallRegistry {
    pub fn new(keep: Duration, max_ended: usize) -> CallRegistry {
        CallRegistry {
            epoch: (Instant::now(), jiff::Timestamp::now()),
            keep,
            max_ended: max_ended.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wall(&self, at: Instant) -> jiff::Timestamp {
        let (base, wall) = self.epoch;
        let offset = match at.checked_duration_since(base) {
            Some(d) => jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::ZERO),
            None => {
                -jiff::SignedDuration::try_from(base - at).unwrap_or(jiff::SignedDuration::ZERO)
            }
        };
        wall.checked_add(offset).unwrap_or(wall)
    }

    /// A call arrived and has a media session (`media` should be a
    /// non-owning [`MediaSession::handle`]).
    pub fn call_started(&self, now: Instant, call: NewCall, media: Option<MediaSession>) {
        let mut inner = self.lock();
        inner.live_ids.insert(call.call_id.clone(), call.handle);
        inner.live.insert(
            call.handle,
            Entry {
                handle: call.handle,
                call_id: call.call_id,
                from: call.from,
                to: call.to,
                started: now,
                answered: None,
                ended: None,
                media,
                last: SessionStats::default(),
                dtmf_counted: [0; DtmfSource::COUNT],
                messages: Vec::new(),
            },
        );
    }

    /// The caller's ACK confirmed our answer.
    pub fn call_answered(&self, now: Instant, handle: CallHandle) {
        if let Some(e) = self.lock().live.get_mut(&handle) {
            e.answered.get_or_insert(now);
        }
    }

    /// The call is over; its media session is closing.
    pub fn call_ended(&self, now: Instant, handle: CallHandle, outcome: &'static str) {
        let mut inner = self.lock();
        let Some(mut entry) = inner.live.remove(&handle) else {
            return;
        };
        if inner.live_ids.get(&entry.call_id) == Some(&handle) {
            inner.live_ids.remove(&entry.call_id);
        }
        entry.refresh();
        entry.ended = Some((now, outcome));
        inner
            .ended_order
            .push_back((now, entry.call_id.clone(), handle));
        inner.ended.insert(entry.call_id.clone(), entry);
        while inner.ended.len() > self.max_ended || inner.ended_order.len() > 2 * self.max_ended {
            inner.forget_oldest();
        }
    }

    /// A message the call left was saved (`call_id` from its metadata).
    /// Unknown or forgotten calls are ignored.
    pub fn message_saved(&self, call_id: &str, message: StoredMessage) {
        let mut inner = self.lock();
        if let Some(e) = inner.find_mut(call_id)
            && e.messages.len() < MAX_MESSAGES_PER_CALL
        {
            e.messages.push(message);
        }
    }

    /// The checksum of a message listed by [`CallRegistry::message_saved`].
    pub fn message_checksum(&self, call_id: &str, mailbox: &str, id: &str, sha256: String) {
        let mut inner = self.lock();
        if let Some(m) = inner.find_mut(call_id).and_then(|e| {
            e.messages
                .iter_mut()
                .find(|m| m.mailbox == mailbox && m.id == id)
        }) {
            m.sha256 = Some(sha256);
        }
    }

    /// Lists a saved message under its call. Its checksum is taken when
    /// the call is shown: hashing every message as it was saved read back
    /// 1.3 GB and cost about 4 % of the CPU of 4,000 deposits, for a figure
    /// load testers look at for a few calls.
    pub fn message_stored(&self, meta: &MessageMeta) {
        self.message_saved(
            &meta.call_id,
            StoredMessage {
                mailbox: meta.mailbox.clone(),
                id: meta.id.clone(),
                audio_seconds: meta.duration_seconds,
                sha256: None,
                folder: meta.folder,
            },
        );
    }

    /// Fills in the checksums `report` lacks, hashing the audio files
    /// (blocking: call it off the async workers), and keeps them for the
    /// next time. A message moved since is looked for in every folder.
    pub fn checksum_messages(&self, store: &Store, report: &mut CallReport) {
        for m in report.messages.iter_mut().filter(|m| m.sha256.is_none()) {
            let (Ok(mailbox), Ok(id)) = (
                MailboxId::try_from(m.mailbox.as_str()),
                MessageId::try_from(m.id.as_str()),
            ) else {
                continue;
            };
            let folders = std::iter::once(m.folder).chain(Folder::ALL);
            let hashed = folders
                .filter_map(|f| store.message_audio_path(&mailbox, f, &id).ok())
                .find_map(|path| sha256_file(&path).ok());
            match hashed {
                Some(sum) => {
                    self.message_checksum(&report.call_id, &m.mailbox, &m.id, sum.clone());
                    m.sha256 = Some(sum);
                }
                None => tracing::debug!(id = %m.id, "message audio not found to hash"),
            }
        }
    }

    /// One call, live or recently ended.
    pub fn get(&self, now: Instant, call_id: &str) -> Option<CallReport> {
        let mut inner = self.lock();
        let entry = inner.find_mut(call_id)?;
        entry.refresh();
        Some(self.report(now, entry))
    }

    /// Every live call, oldest first.
    pub fn live(&self, now: Instant) -> Vec<CallReport> {
        let mut inner = self.lock();
        let mut out: Vec<CallReport> = inner
            .live
            .values_mut()
            .map(|e| {
                e.refresh();
                self.report(now, e)
            })
            .collect();
        out.sort_by_key(|r| r.started_at);
        out
    }

    /// Calls up now, and ended calls still kept.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.live.len(), inner.ended.len())
    }

    fn report(&self, now: Instant, e: &Entry) -> CallReport {
        let end = e.ended.map(|(t, _)| t).unwrap_or(now);
        CallReport {
            call_id: e.call_id.clone(),
            from: e.from.clone(),
            to: e.to.clone(),
            state: match e.ended {
                None => CallState::Active,
                Some(_) if e.last.closed || e.media.is_none() => CallState::Ended,
                Some(_) => CallState::Ending,
            },
            started_at: self.wall(e.started),
            answered_at: e.answered.map(|t| self.wall(t)),
            ended_at: e.ended.map(|(t, _)| self.wall(t)),
            outcome: e.ended.map(|(_, o)| o),
            duration_s: e
                .answered
                .map(|a| end.saturating_duration_since(a).as_secs_f64())
                .unwrap_or(0.0),
            media: e.last,
            messages: e.messages.clone(),
        }
    }

    /// Once a second: refresh live counters, count new DTMF digits into
    /// `metrics`, settle recently ended calls and forget expired ones.
    pub fn sweep(&self, now: Instant, metrics: &Metrics) {
        let mut inner = self.lock();
        for e in inner.live.values_mut() {
            e.refresh();
            e.count_dtmf(metrics);
        }
        // Ended calls, newest first, until one already settled.
        let Inner {
            ended, ended_order, ..
        } = &mut *inner;
        for (at, id, handle) in ended_order.iter().rev() {
            let Some(e) = ended.get_mut(id).filter(|e| e.handle == *handle) else {
                continue;
            };
            let settled = now.saturating_duration_since(*at) >= SETTLE;
            if settled && e.media.is_none() {
                break;
            }
            e.refresh();
            e.count_dtmf(metrics);
            if settled {
                e.media = None;
            }
        }
        while let Some((at, ..)) = inner.ended_order.front() {
            if now.saturating_duration_since(*at) < self.keep {
                break;
            }
            inner.forget_oldest();
        }
    }
}

/// SHA-256 of a file, hex.
fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    Ok(hex)
}

#[cfg(test)]
mod tests;
