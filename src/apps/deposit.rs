//! Voicemail deposit, as a dial plan's `voicemail` node asks for it: the
//! options a caller of Asterisk's `VoiceMail()` expects.
//!
//! ```text
//! full?      a maximum is set and inbox + old >= it (every box) → "mailbox full", Full
//! greeting   active temporary greeting, else the box's greeting of the kind asked
//!            (busy falls back to unavailable), else the generated "<the box's
//!            recorded name> is not available / is busy …" (without a name "the
//!            person at extension 1 0 0 1 …"); a personal greeting
//!            is followed by the instructions unless the box skips them
//!            # → beep at once · 0 → Operator (if set) · * → Retrieval (if set)
//! record     after the beep; ends on #, hang-up, the maximum length or silence;
//!            0 (if set) ends it too: saved, "saved", then Operator
//! review     (if set) 1 save · 2 listen · 3 re-record · 4 urgent, then save
//!            0 save, then Operator (if set); silence or wrong keys → saved as is
//! save       into the first box that is not full, copied into the others;
//!            "saved, goodbye", hang up, Done
//! ```
//!
//! The silence that ended a recording on the silence timeout is cut but for
//! a short tail (`media::session::SILENCE_TAIL_KEPT`); a message then
//! shorter than `[voicemail] min_message_seconds` is discarded; a
//! caller who hangs up while recording (or reviewing) keeps the message. The
//! recording streams into the spool and is always finished, so a crash
//! mid-call loses at most what spool recovery cannot read back.
//!
//! Prompts are said in the box's own language when the box sets one, else
//! in the call's language (the node's, the plan's, or the default).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::blocking;
use super::message_feed::message_feed;
use crate::call::{CallApi, HungUp};
use crate::config::Config;
use crate::dialplan::interpret::{VmResult, VoicemailTarget};
use crate::media::feed::{AudioFeed, PlayItem};
use crate::media::session::{RecordOptions, StopReason};
use crate::notify::events::EventBus;
use crate::prompts::{Pcm, PromptCache};
use crate::store::{
    Folder, GreetingKind, MailboxId, MessageId, MessageMeta, NewMessage, SecurityStore, Store,
    StoreError,
};

/// Every DTMF key: the review prompt stops on any of them.
const ALL_KEYS: &str = "0123456789*#";

/// The clock message times and temporary-greeting expiry are measured by.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Called once for every message a deposit delivers (the first box's and
/// each copy), after the caller's last word on it (urgent included).
pub type OnSaved = Arc<dyn Fn(&MessageMeta) + Send + Sync>;

/// Timeouts and limits of the review menu.
#[derive(Debug, Clone)]
pub struct DepositOptions {
    /// Wait for a key after the review prompt ends.
    pub key_timeout: Duration,
    /// Review: timeouts or invalid keys in a row before the message is
    /// saved as it is; also recordings too short in a row before giving up.
    pub max_retries: u32,
}

impl Default for DepositOptions {
    fn default() -> Self {
        DepositOptions {
            key_timeout: Duration::from_secs(6),
            max_retries: 3,
        }
    }
}

/// What a deposit needs from the server. Cheap to build per call: the
/// config is borrowed, everything else is a shared handle.
#[derive(Clone)]
pub struct DepositContext<'a> {
    /// `[voicemail]` limits and the configured boxes (a box that is not
    /// configured is not deposited into).
    pub config: &'a Config,
    pub store: Store,
    pub prompts: PromptCache,
    /// Played before every recording.
    pub beep: Pcm,
    /// Where the temporary greeting's end date lives.
    pub security: SecurityStore,
    pub clock: Clock,
    pub options: DepositOptions,
    /// `message_created` is published here for every delivered message.
    pub events: Option<EventBus>,
    /// Called for every delivered message (MWI, metrics).
    pub on_saved: Option<OnSaved>,
}

impl<'a> DepositContext<'a> {
    /// A context with the system clock, the default options, and nobody
    /// told about new messages.
    pub fn new(
        config: &'a Config,
        store: Store,
        prompts: PromptCache,
        beep: Pcm,
        security: SecurityStore,
    ) -> DepositContext<'a> {
        DepositContext {
            config,
            store,
            prompts,
            beep,
            security,
            clock: Arc::new(Timestamp::now),
            options: DepositOptions::default(),
            events: None,
            on_saved: None,
        }
    }

    pub fn with_clock(
        mut self,
        clock: impl Fn() -> Timestamp + Send + Sync + 'static,
    ) -> DepositContext<'a> {
        self.clock = Arc::new(clock);
        self
    }

    pub fn with_options(mut self, options: DepositOptions) -> DepositContext<'a> {
        self.options = options;
        self
    }

    pub fn with_events(mut self, events: EventBus) -> DepositContext<'a> {
        self.events = Some(events);
        self
    }

    pub fn with_on_saved(
        mut self,
        on_saved: impl Fn(&MessageMeta) + Send + Sync + 'static,
    ) -> DepositContext<'a> {
        self.on_saved = Some(Arc::new(on_saved));
        self
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }
}

/// Runs a deposit. The call is hung up after "saved, goodbye" (`Done`);
/// it is left up for `Operator`, `Retrieval` and `Full`, where the plan
/// goes on.
pub async fn run<C: CallApi>(
    call: &mut C,
    ctx: &DepositContext<'_>,
    target: &VoicemailTarget,
) -> VmResult {
    let call_id = call.info().call_id.clone();
    let mut boxes = Vec::new();
    for m in &target.mailboxes {
        match MailboxId::try_from(m.as_str()) {
            Ok(id) if ctx.config.mailbox(m).is_some() => boxes.push(id),
            Ok(_) => {
                tracing::warn!(call = %call_id, mailbox = %m, "deposit into a mailbox that is not configured; skipped")
            }
            Err(e) => {
                tracing::warn!(call = %call_id, error = %e, "deposit into an invalid mailbox; skipped")
            }
        }
    }
    let Some(first) = boxes.first().cloned() else {
        tracing::error!(call = %call_id, mailboxes = ?target.mailboxes, "no mailbox to deposit into");
        return VmResult::Done;
    };
    let lang = ctx
        .config
        .mailbox(first.as_str())
        .and_then(|m| m.language.clone())
        .unwrap_or_else(|| target.language.clone());
    if let Some(d) = &target.diversion {
        tracing::info!(
            call = %call_id,
            mailbox = %first,
            diverted_from = %d.mailbox,
            reason = ?d.reason,
            greeting = ?target.greeting,
            "diverted call reached voicemail"
        );
    }
    let mut d = Deposit {
        call,
        ctx,
        target,
        lang,
        pending: None,
    };
    let result = match d.deposit(first, boxes).await {
        Ok(r) => r,
        Err(HungUp) => VmResult::HungUp,
    };
    tracing::info!(call = %call_id, ?result, "voicemail deposit ended");
    result
}

/// A greeting chosen for this call.
struct Greeting {
    audio: Vec<Pcm>,
    /// Recorded by the owner (temporary, busy or unavailable), as opposed
    /// to the generated one, which already says the instructions.
    personal: bool,
}

/// A delivered message waiting for the caller's last word.
struct Saved {
    mailbox: MailboxId,
    id: MessageId,
    meta: MessageMeta,
}

/// How one recording went.
enum Take {
    Saved(Box<Saved>),
    /// Shorter than the minimum; nothing was kept.
    TooShort,
    /// The store failed (logged); nothing was kept.
    Failed,
}

struct Deposit<'x, 'a, C: CallApi> {
    call: &'x mut C,
    ctx: &'x DepositContext<'a>,
    target: &'x VoicemailTarget,
    lang: String,
    /// A key that stopped a prompt: it answers the next question.
    pending: Option<char>,
}

impl<C: CallApi> Deposit<'_, '_, C> {
    fn prompt(&self, names: &[&str]) -> Vec<Pcm> {
        names
            .iter()
            .filter_map(|n| self.ctx.prompts.get(&self.lang, n))
            .collect()
    }

    async fn deposit(
        &mut self,
        first: MailboxId,
        boxes: Vec<MailboxId>,
    ) -> Result<VmResult, HungUp> {
        tracing::debug!("deposit starts");
        let deliver = self.not_full(boxes).await;
        if deliver.is_empty() {
            let full = self.prompt(&["vm-mailbox-full"]);
            self.call.play(full).await?;
            return Ok(VmResult::Full);
        }

        if let Some(kind) = self.target.greeting {
            let greeting = self.greeting(&first, kind).await;
            let mut items = greeting.audio;
            if greeting.personal && !self.target.skip_instructions_if_greeting {
                items.extend(self.prompt(&["vm-instructions"]));
            }
            let mut keys = String::from("#");
            if self.target.operator {
                keys.push('0');
            }
            if self.target.retrieval {
                keys.push('*');
            }
            tracing::debug!("greeting starts");
            match self.call.play_interruptible(items, &keys).await? {
                Some('0') => return Ok(VmResult::Operator),
                Some('*') => return Ok(VmResult::Retrieval),
                _ => {}
            }
        }

        let record_box = deliver[0].clone();
        let copies = &deliver[1..];
        let mut short = 0;
        loop {
            tracing::debug!("beep starts");
            self.call.play(vec![self.ctx.beep.clone()]).await?;
            let (take, reason) = self.record(&record_box).await?;
            let saved = match take {
                Take::Saved(s) => *s,
                Take::Failed => {
                    return self
                        .end(None, copies, &["vm-error", "vm-goodbye-only"])
                        .await;
                }
                Take::TooShort => {
                    if self.call.is_hung_up() {
                        return Err(HungUp);
                    }
                    if reason == StopReason::Digit('0') {
                        return Ok(VmResult::Operator);
                    }
                    short += 1;
                    if !self.target.review || short >= self.ctx.options.max_retries {
                        return self.end(None, copies, &["vm-goodbye-only"]).await;
                    }
                    let too_short = self.prompt(&["vm-too-short"]);
                    self.call.play(too_short).await?;
                    continue;
                }
            };
            if self.call.is_hung_up() {
                // Kept, like every message a caller hangs up on.
                self.publish(Some(saved), copies).await;
                return Err(HungUp);
            }
            if reason == StopReason::WriteError {
                // What reached the disk is kept; no promise is made.
                return self.end(Some(saved), copies, &[]).await;
            }
            if reason == StopReason::Digit('0') {
                // As 0 in the review: saved, then on to the operator.
                self.publish(Some(saved), copies).await;
                let said = self.prompt(&["vm-saved"]);
                self.call.play(said).await?;
                return Ok(VmResult::Operator);
            }
            if !self.target.review {
                return self.end(Some(saved), copies, &["vm-goodbye"]).await;
            }
            match self.review(saved, copies).await? {
                Some(result) => return Ok(result),
                None => short = 0,
            }
        }
    }

    /// The boxes that can take a message. With no maximum every box can; a
    /// box whose count cannot be read is not refused a message.
    async fn not_full(&self, boxes: Vec<MailboxId>) -> Vec<MailboxId> {
        // The node's maximum and the box's own (`max_messages`): the lower.
        let limits: Vec<(MailboxId, Option<u32>)> = boxes
            .into_iter()
            .map(|b| {
                let own = self
                    .ctx
                    .config
                    .mailbox(b.as_str())
                    .and_then(|m| m.max_messages);
                let max = match (own, self.target.max_messages) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (b, max)
            })
            .collect();
        if limits.iter().all(|(_, max)| max.is_none()) {
            return limits.into_iter().map(|(b, _)| b).collect();
        }
        let store = self.ctx.store.clone();
        let checked = blocking(move || {
            Ok(limits
                .into_iter()
                .map(|(b, max)| {
                    let room = store.check_room(&b, max);
                    (b, room)
                })
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
        let mut open = Vec::new();
        for (b, room) in checked {
            match room {
                Ok(()) => open.push(b),
                Err(StoreError::MailboxFull { messages, max, .. }) => {
                    tracing::info!(mailbox = %b, messages, max, "mailbox full; not deposited into");
                }
                Err(e) => {
                    tracing::warn!(mailbox = %b, error = %e, "cannot count messages; depositing anyway");
                    open.push(b);
                }
            }
        }
        open
    }

    /// The greeting for `mailbox`: an active temporary greeting, else the
    /// recorded one of `kind` (busy falls back to unavailable), else the
    /// generated one.
    async fn greeting(&self, mailbox: &MailboxId, kind: GreetingKind) -> Greeting {
        let kinds: &'static [GreetingKind] = match kind {
            GreetingKind::Busy => &[GreetingKind::Busy, GreetingKind::Unavailable],
            _ => &[GreetingKind::Unavailable],
        };
        let (store, security, id, now) = (
            self.ctx.store.clone(),
            self.ctx.security.clone(),
            mailbox.clone(),
            self.ctx.now(),
        );
        let recorded = blocking(move || {
            let temp = match security.active_temp_greeting(&store, &id, now) {
                Ok(t) => t.is_some(),
                Err(e) => {
                    tracing::warn!(mailbox = %id, error = %e, "temporary greeting state unreadable; ignored");
                    false
                }
            };
            let candidates = temp.then_some(GreetingKind::Temporary).into_iter();
            // The recorded name last: it only stands in for the digits.
            for k in candidates
                .chain(kinds.iter().copied())
                .chain([GreetingKind::Name])
            {
                match store.greeting_pcm(&id, k) {
                    Ok(Some(pcm)) if !pcm.is_empty() => return Ok(Some((k, pcm))),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(mailbox = %id, greeting = k.file_stem(), error = %e, "greeting unreadable; skipped");
                    }
                }
            }
            Ok(None)
        })
        .await
        .unwrap_or(None);
        let name = match recorded {
            Some((GreetingKind::Name, pcm)) => Some(pcm),
            Some((k, pcm)) => {
                tracing::debug!(mailbox = %mailbox, greeting = k.file_stem(), "playing a recorded greeting");
                return Greeting {
                    audio: vec![pcm],
                    personal: true,
                };
            }
            None => None,
        };
        // Generated: "<the box's recorded name> is not available / is
        // busy…", as Asterisk says it, or without a name "The person at
        // extension 1 0 0 1 …".
        let mut audio = match name {
            Some(pcm) => vec![pcm],
            None => {
                let mut out = self.prompt(&["vm-person"]);
                out.extend(self.ctx.prompts.digits(&self.lang, mailbox.as_str()));
                out
            }
        };
        audio.extend(self.prompt(&[match kind {
            GreetingKind::Busy => "vm-busy",
            _ => "vm-unavailable",
        }]));
        Greeting {
            audio,
            personal: false,
        }
    }

    /// Records one message into `mailbox`'s inbox (through the spool).
    /// `Err` only when the media went away without giving the recording
    /// back (the spool keeps it for recovery).
    async fn record(&mut self, mailbox: &MailboxId) -> Result<(Take, StopReason), HungUp> {
        let info = self.call.info();
        let new = NewMessage {
            mailbox: mailbox.clone(),
            caller_number: info.caller_number.clone(),
            caller_name: info.caller_name.clone(),
            called_number: info.called_number.clone(),
            call_id: info.call_id.clone(),
            codec: info.codec.clone(),
            started_at: self.ctx.now(),
        };
        let store = self.ctx.store.clone();
        let writer = match blocking(move || store.begin_message(new)).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(mailbox = %mailbox, error = %e, "cannot start a recording");
                return Ok((Take::Failed, StopReason::WriteError));
            }
        };
        let vm = &self.ctx.config.voicemail;
        // The box's own limit (`max_message_seconds`) wins over the server's.
        let max_seconds = self
            .ctx
            .config
            .mailbox(mailbox.as_str())
            .and_then(|m| m.max_message_seconds)
            .unwrap_or(vm.max_message_seconds);
        let options = RecordOptions {
            max_samples: u64::from(max_seconds) * 8000,
            silence_timeout_samples: u64::from(vm.silence_timeout_seconds) * 8000,
            silence_threshold: vm.silence_threshold,
            // 0 (with an operator) ends the message too, to reach them.
            stop_digits: if self.target.operator { "#0" } else { "#" }.into(),
        };
        tracing::debug!("recording starts");
        let Some(recorded) = self.call.record(writer, options).await else {
            return Err(HungUp);
        };
        let min_samples = (vm.min_message_seconds * 8000.0) as u64;
        let reason = recorded.reason;
        let writer = recorded.writer;
        let take = match blocking(move || writer.finish(min_samples)).await {
            Ok(Some(meta)) => match MessageId::try_from(meta.id.as_str()) {
                Ok(id) => {
                    tracing::info!(mailbox = %meta.mailbox, id = %meta.id, seconds = meta.duration_seconds, ?reason, "message recorded");
                    Take::Saved(Box::new(Saved {
                        mailbox: mailbox.clone(),
                        id,
                        meta,
                    }))
                }
                Err(e) => {
                    tracing::error!(error = %e, "the store returned an invalid message id");
                    Take::Failed
                }
            },
            Ok(None) => {
                tracing::info!(mailbox = %mailbox, ?reason, "message too short, discarded");
                Take::TooShort
            }
            Err(e) => {
                tracing::error!(mailbox = %mailbox, error = %e, "saving the message failed");
                Take::Failed
            }
        };
        Ok((take, reason))
    }

    /// 1 save · 2 listen · 3 re-record · 4 urgent and save · 0 save and
    /// Operator. `None`: re-record. Hanging up keeps the message.
    async fn review(
        &mut self,
        mut saved: Saved,
        copies: &[MailboxId],
    ) -> Result<Option<VmResult>, HungUp> {
        let mut names = vec!["vm-deposit-review"];
        if self.target.operator {
            names.push("vm-review-operator");
        }
        let mut failures = 0;
        loop {
            let key = match self.ask(&names).await {
                Ok(k) => k,
                Err(HungUp) => {
                    self.publish(Some(saved), copies).await;
                    return Err(HungUp);
                }
            };
            match key {
                Some('1') => {
                    return self
                        .end(Some(saved), copies, &["vm-goodbye"])
                        .await
                        .map(Some);
                }
                Some('2') => {
                    failures = 0;
                    let (store, mailbox, id) = (
                        self.ctx.store.clone(),
                        saved.mailbox.clone(),
                        saved.id.clone(),
                    );
                    match message_feed(store, mailbox, Folder::Inbox, id).await {
                        Ok(feed) => {
                            if let Err(HungUp) = self.say_feed(feed).await {
                                self.publish(Some(saved), copies).await;
                                return Err(HungUp);
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot play the recording back");
                            let error = self.prompt(&["vm-error"]);
                            if let Err(HungUp) = self.say(error).await {
                                self.publish(Some(saved), copies).await;
                                return Err(HungUp);
                            }
                        }
                    }
                }
                Some('3') => {
                    let (store, mailbox, id) = (
                        self.ctx.store.clone(),
                        saved.mailbox.clone(),
                        saved.id.clone(),
                    );
                    if let Err(e) =
                        blocking(move || store.delete_message(&mailbox, Folder::Inbox, &id)).await
                    {
                        tracing::error!(error = %e, "cannot discard the recording to record again");
                    }
                    self.pending = None;
                    return Ok(None);
                }
                Some('4') => {
                    let (store, mailbox, id) = (
                        self.ctx.store.clone(),
                        saved.mailbox.clone(),
                        saved.id.clone(),
                    );
                    match blocking(move || {
                        store.set_message_urgent(&mailbox, Folder::Inbox, &id, true)
                    })
                    .await
                    {
                        Ok(meta) => {
                            saved.meta = meta;
                            return self
                                .end(Some(saved), copies, &["vm-marked-urgent", "vm-goodbye"])
                                .await
                                .map(Some);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot mark the message urgent");
                            return self
                                .end(Some(saved), copies, &["vm-goodbye"])
                                .await
                                .map(Some);
                        }
                    }
                }
                Some('0') if self.target.operator => {
                    // Saved first, like Asterisk; the plan goes on to the
                    // operator.
                    self.publish(Some(saved), copies).await;
                    let said = self.prompt(&["vm-saved"]);
                    self.call.play(said).await?;
                    return Ok(Some(VmResult::Operator));
                }
                Some(_) => {
                    let invalid = self.prompt(&["vm-invalid"]);
                    if let Err(HungUp) = self.say(invalid).await {
                        self.publish(Some(saved), copies).await;
                        return Err(HungUp);
                    }
                    failures += 1;
                }
                None => failures += 1,
            }
            if failures >= self.ctx.options.max_retries {
                // Asterisk keeps a message nobody decided about.
                return self
                    .end(Some(saved), copies, &["vm-goodbye"])
                    .await
                    .map(Some);
            }
        }
    }

    /// Plays an announcement that any key may cut short; that key then
    /// answers the next question.
    async fn say(&mut self, items: Vec<Pcm>) -> Result<(), HungUp> {
        if self.pending.is_some() {
            return Ok(());
        }
        self.pending = self.call.play_interruptible(items, ALL_KEYS).await?;
        Ok(())
    }

    /// As [`Self::say`], for the recording itself, streamed from its file
    /// (`None`: it holds no audio, nothing to play).
    async fn say_feed(&mut self, feed: Option<AudioFeed>) -> Result<(), HungUp> {
        let Some(feed) = feed else { return Ok(()) };
        if self.pending.is_some() {
            return Ok(());
        }
        let items = vec![PlayItem::Feed(feed)];
        self.pending = self.call.play_items_interruptible(items, ALL_KEYS).await?;
        Ok(())
    }

    /// Plays a question; the first key during it or within the key timeout
    /// after it (`None`: silence).
    async fn ask(&mut self, names: &[&str]) -> Result<Option<char>, HungUp> {
        if let Some(k) = self.pending.take() {
            return Ok(Some(k));
        }
        let items = self.prompt(names);
        if let Some(k) = self.call.play_interruptible(items, ALL_KEYS).await? {
            return Ok(Some(k));
        }
        self.call.collect_digit(self.ctx.options.key_timeout).await
    }

    /// Delivers (copies, events), says `bye`, hangs up: `Done`.
    async fn end(
        &mut self,
        saved: Option<Saved>,
        copies: &[MailboxId],
        bye: &[&str],
    ) -> Result<VmResult, HungUp> {
        self.publish(saved, copies).await;
        if self.call.is_hung_up() {
            return Err(HungUp);
        }
        let items = self.prompt(bye);
        if !items.is_empty() {
            self.call.play(items).await?;
        }
        self.call.hangup();
        Ok(VmResult::Done)
    }

    /// Copies the message into the other boxes, then tells the events bus
    /// and `on_saved` about every delivered message.
    async fn publish(&self, saved: Option<Saved>, copies: &[MailboxId]) {
        let Some(saved) = saved else {
            return;
        };
        let mut delivered = vec![saved.meta.clone()];
        if !copies.is_empty() {
            let (store, from, id, to, at) = (
                self.ctx.store.clone(),
                saved.mailbox.clone(),
                saved.id.clone(),
                copies.to_vec(),
                self.ctx.now(),
            );
            let copied = blocking(move || {
                Ok(to
                    .into_iter()
                    .map(|b| {
                        // Full boxes were left out when the call began.
                        let r = store.copy_message(&from, Folder::Inbox, &id, &b, None, &[], at);
                        (b, r)
                    })
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap_or_default();
            for (b, r) in copied {
                match r {
                    Ok(meta) => {
                        tracing::info!(mailbox = %b, id = %meta.id, from = %saved.mailbox, "message copied");
                        delivered.push(meta);
                    }
                    Err(e) => {
                        tracing::error!(mailbox = %b, error = %e, "copying the message failed")
                    }
                }
            }
        }
        for meta in &delivered {
            if let Some(events) = &self.ctx.events {
                events.message_created(meta);
            }
            if let Some(f) = &self.ctx.on_saved {
                f(meta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Deposits over the scripted fake call, with a temporary store and the
    //! committed prompts. The fake lets a key at the head of the script
    //! barge into the next interruptible prompt (the greeting, the review
    //! menu), like a fast caller on a real line.

    use std::path::Path;
    use std::sync::{Mutex, OnceLock};

    use argon2::Params;

    use super::*;
    use crate::call::fake::{Action, FakeCall, Input};
    use crate::dialplan::divert::{Diversion, DivertReason};
    use crate::media::tone;

    const CONFIG: &str = r#"
[[mailbox]]
number = "1001"
pin = "1234"
name = "Alice"
language = "en"

[[mailbox]]
number = "1002"
pin = "5678"
name = "Bertrand"
language = "fr"

[[mailbox]]
number = "1003"
pin = "4321"
name = "Carmen"
"#;

    fn prompts() -> PromptCache {
        static CACHE: OnceLock<PromptCache> = OnceLock::new();
        CACHE
            .get_or_init(|| {
                PromptCache::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")).unwrap()
            })
            .clone()
    }

    fn mb(s: &str) -> MailboxId {
        MailboxId::try_from(s).unwrap()
    }

    fn keys(s: &str) -> Input {
        Input::Digits(s.into())
    }

    fn speak(seconds: f64) -> Input {
        Input::Speak(seconds)
    }

    fn audio(samples: usize) -> String {
        format!("audio:{samples}")
    }

    fn beep() -> String {
        audio(tone::beep().len())
    }

    struct Fx {
        _dir: tempfile::TempDir,
        config: Config,
        store: Store,
        security: SecurityStore,
        now: Arc<Mutex<Timestamp>>,
        saved: Arc<Mutex<Vec<MessageMeta>>>,
        events: EventBus,
    }

    fn fx() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let security = SecurityStore::open(dir.path())
            .unwrap()
            .with_hash_params(Params::new(Params::MIN_M_COST, 1, 1, None).unwrap());
        Fx {
            config: Config::parse(CONFIG, "test.toml").unwrap(),
            store,
            security,
            now: Arc::new(Mutex::new("2026-03-10T09:30:00Z".parse().unwrap())),
            saved: Arc::new(Mutex::new(Vec::new())),
            events: EventBus::new(),
            _dir: dir,
        }
    }

    fn target(boxes: &[&str]) -> VoicemailTarget {
        VoicemailTarget {
            mailboxes: boxes.iter().map(|b| b.to_string()).collect(),
            greeting: Some(GreetingKind::Unavailable),
            language: "en".into(),
            operator: false,
            retrieval: false,
            review: false,
            skip_instructions_if_greeting: false,
            max_messages: None,
            diversion: None,
        }
    }

    impl Fx {
        fn ctx(&self) -> DepositContext<'_> {
            let now = self.now.clone();
            let saved = self.saved.clone();
            DepositContext::new(
                &self.config,
                self.store.clone(),
                prompts(),
                Pcm::from(tone::beep()),
                self.security.clone(),
            )
            .with_clock(move || *now.lock().unwrap())
            .with_events(self.events.clone())
            .with_on_saved(move |m| saved.lock().unwrap().push(m.clone()))
        }

        async fn call(&self, target: &VoicemailTarget, script: Vec<Input>) -> (VmResult, FakeCall) {
            self.call_with(
                FakeCall::new("+3225550100", "1001", script).with_prompts(prompts()),
                target,
            )
            .await
        }

        async fn call_with(
            &self,
            mut call: FakeCall,
            target: &VoicemailTarget,
        ) -> (VmResult, FakeCall) {
            let result = run(&mut call, &self.ctx(), target).await;
            (result, call)
        }

        fn inbox(&self, mailbox: &str) -> Vec<MessageMeta> {
            self.store
                .list_messages(&mb(mailbox), Folder::Inbox)
                .unwrap()
        }

        fn saved(&self) -> Vec<MessageMeta> {
            self.saved.lock().unwrap().clone()
        }

        fn greeting(&self, mailbox: &str, kind: GreetingKind, samples: usize) {
            self.store
                .save_greeting(&mb(mailbox), kind, &vec![100; samples])
                .unwrap();
        }

        fn message(&self, mailbox: &str, folder: Folder) {
            let mut w = self
                .store
                .begin_message(NewMessage {
                    mailbox: mb(mailbox),
                    caller_number: "1".into(),
                    caller_name: None,
                    called_number: mailbox.into(),
                    call_id: "old".into(),
                    codec: "PCMU".into(),
                    started_at: "2026-03-01T10:00:00Z".parse().unwrap(),
                })
                .unwrap();
            w.write(&[500; 8000]).unwrap();
            let meta = w.finish(0).unwrap().unwrap();
            if folder != Folder::Inbox {
                let id = MessageId::try_from(meta.id.as_str()).unwrap();
                self.store
                    .move_message(&mb(mailbox), Folder::Inbox, folder, &id)
                    .unwrap();
            }
        }
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn recordings(call: &FakeCall) -> usize {
        call.log
            .iter()
            .filter(|a| matches!(a, Action::Recorded { .. }))
            .count()
    }

    /// The generated unavailable greeting of 1001.
    const DEFAULT_1001: [&str; 6] = [
        "vm-person",
        "digit-1",
        "digit-0",
        "digit-0",
        "digit-1",
        "vm-unavailable",
    ];

    // --- Greetings -------------------------------------------------------

    #[tokio::test]
    async fn default_greeting_record_save_goodbye() {
        let f = fx();
        let mut rx = f.events.subscribe();
        let (result, call) = f
            .call(&target(&["1001"]), vec![speak(2.0), keys("#")])
            .await;
        assert_eq!(result, VmResult::Done);
        let mut want = strs(&DEFAULT_1001);
        want.push(beep());
        want.push("vm-goodbye".into());
        // The generated greeting says the instructions itself.
        assert_eq!(call.played(), want);
        assert_eq!(call.log.last(), Some(&Action::HungUp));
        let inbox = f.inbox("1001");
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].duration_seconds, 2.0);
        assert_eq!(inbox[0].caller_number, "+3225550100");
        assert_eq!(inbox[0].received_at, *f.now.lock().unwrap());
        assert!(!inbox[0].urgent);
        assert_eq!(f.saved(), inbox);
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev.message, inbox[0]);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn personal_greeting_then_instructions_unless_skipped() {
        let f = fx();
        f.greeting("1001", GreetingKind::Unavailable, 800);
        let (_, call) = f
            .call(&target(&["1001"]), vec![speak(2.0), keys("#")])
            .await;
        assert_eq!(
            call.played(),
            vec![
                audio(800),
                "vm-instructions".into(),
                beep(),
                "vm-goodbye".into()
            ]
        );

        let mut skip = target(&["1001"]);
        skip.skip_instructions_if_greeting = true;
        let (_, call) = f.call(&skip, vec![speak(2.0), keys("#")]).await;
        assert_eq!(call.played(), vec![audio(800), beep(), "vm-goodbye".into()]);
        assert_eq!(f.inbox("1001").len(), 2);
    }

    #[tokio::test]
    async fn skipping_instructions_keeps_the_generated_greeting_whole() {
        let f = fx();
        let mut skip = target(&["1001"]);
        skip.skip_instructions_if_greeting = true;
        let (_, call) = f.call(&skip, vec![speak(2.0), keys("#")]).await;
        assert_eq!(&call.played()[..6], &strs(&DEFAULT_1001)[..]);
        assert!(!call.played().contains(&"vm-instructions".to_string()));
    }

    #[tokio::test]
    async fn a_recorded_name_stands_in_for_the_digits_of_the_generated_greeting() {
        let f = fx();
        f.greeting("1001", GreetingKind::Name, 600);
        let (_, call) = f
            .call(&target(&["1001"]), vec![speak(2.0), keys("#")])
            .await;
        assert_eq!(
            &call.played()[..3],
            &[audio(600), "vm-unavailable".into(), beep()]
        );
        let mut busy = target(&["1001"]);
        busy.greeting = Some(GreetingKind::Busy);
        let (_, call) = f.call(&busy, vec![speak(2.0), keys("#")]).await;
        assert_eq!(&call.played()[..2], &[audio(600), "vm-busy".into()]);
        // A recorded greeting still wins over the name.
        f.greeting("1001", GreetingKind::Unavailable, 800);
        let (_, call) = f
            .call(&target(&["1001"]), vec![speak(2.0), keys("#")])
            .await;
        assert_eq!(call.played()[0], audio(800));
        assert!(!call.played().contains(&audio(600)));
    }

    #[tokio::test]
    async fn busy_greeting_falls_back_to_unavailable_then_generated() {
        let f = fx();
        let mut busy = target(&["1001"]);
        busy.greeting = Some(GreetingKind::Busy);
        busy.diversion = Some(Diversion {
            mailbox: "1001".into(),
            reason: DivertReason::Busy,
        });
        let (_, call) = f.call(&busy, vec![speak(2.0), keys("#")]).await;
        assert_eq!(
            &call.played()[..6],
            &strs(&[
                "vm-person",
                "digit-1",
                "digit-0",
                "digit-0",
                "digit-1",
                "vm-busy"
            ])[..]
        );

        f.greeting("1001", GreetingKind::Unavailable, 800);
        let (_, call) = f.call(&busy, vec![speak(2.0), keys("#")]).await;
        assert_eq!(call.played()[0], audio(800));

        f.greeting("1001", GreetingKind::Busy, 1200);
        let (_, call) = f.call(&busy, vec![speak(2.0), keys("#")]).await;
        assert_eq!(call.played()[0], audio(1200));

        // The unavailable greeting never falls forward to the busy one.
        let f = fx();
        f.greeting("1001", GreetingKind::Busy, 1200);
        let (_, call) = f
            .call(&target(&["1001"]), vec![speak(2.0), keys("#")])
            .await;
        assert_eq!(&call.played()[..6], &strs(&DEFAULT_1001)[..]);
    }

    #[tokio::test]
    async fn active_temporary_greeting_wins_until_it_expires() {
        let f = fx();
        f.greeting("1001", GreetingKind::Unavailable, 800);
        f.greeting("1001", GreetingKind::Busy, 1200);
        f.greeting("1001", GreetingKind::Temporary, 1600);
        f.security
            .set_temp_greeting_expiry(&mb("1001"), Some("2026-03-12T00:00:00Z".parse().unwrap()))
            .unwrap();
        let mut busy = target(&["1001"]);
        busy.greeting = Some(GreetingKind::Busy);
        for t in [&target(&["1001"]), &busy] {
            let (_, call) = f.call(t, vec![speak(2.0), keys("#")]).await;
            assert_eq!(call.played()[0], audio(1600));
            assert_eq!(call.played()[1], "vm-instructions");
        }
        *f.now.lock().unwrap() = "2026-03-12T00:00:01Z".parse().unwrap();
        let (_, call) = f.call(&busy, vec![speak(2.0), keys("#")]).await;
        assert_eq!(call.played()[0], audio(1200));
        assert!(
            !f.store
                .has_greeting(&mb("1001"), GreetingKind::Temporary)
                .unwrap()
        );
    }

    #[tokio::test]
    async fn no_greeting_goes_straight_to_the_beep() {
        let f = fx();
        f.greeting("1001", GreetingKind::Unavailable, 800);
        let mut t = target(&["1001"]);
        t.greeting = None;
        let (result, call) = f.call(&t, vec![speak(2.0), keys("#")]).await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(call.played(), vec![beep(), "vm-goodbye".into()]);
        assert_eq!(f.inbox("1001").len(), 1);
    }

    #[tokio::test]
    async fn greeting_in_the_box_language_else_the_call_language() {
        let f = fx();
        let fr = prompts().get("fr", "vm-person").unwrap().len();
        let en = prompts().get("en", "vm-person").unwrap().len();
        let es = prompts().get("es", "vm-person").unwrap().len();
        assert!(fr != en && es != en);
        // 1002 is a French box: French whatever the call's language.
        let bare = |script| FakeCall::new("1", "1002", script);
        let (_, call) = f
            .call_with(bare(vec![speak(2.0), keys("#")]), &target(&["1002"]))
            .await;
        assert_eq!(call.played()[0], audio(fr));
        // 1003 sets no language: the call's.
        let mut t = target(&["1003"]);
        t.language = "es".into();
        let (_, call) = f.call_with(bare(vec![speak(2.0), keys("#")]), &t).await;
        assert_eq!(call.played()[0], audio(es));
    }

    // --- Keys during the greeting -----------------------------------------

    #[tokio::test]
    async fn pound_during_the_greeting_skips_to_the_beep() {
        let f = fx();
        let (result, call) = f
            .call(&target(&["1001"]), vec![keys("#"), speak(2.0), keys("#")])
            .await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(
            call.log[0],
            Action::Played {
                names: strs(&DEFAULT_1001),
                interrupted_by: Some('#'),
            }
        );
        assert_eq!(call.played()[6], beep());
        assert_eq!(f.inbox("1001").len(), 1);
    }

    #[tokio::test]
    async fn zero_and_star_leave_when_the_node_allows() {
        let f = fx();
        let mut t = target(&["1001"]);
        t.operator = true;
        t.retrieval = true;
        let (result, call) = f.call(&t, vec![keys("0"), speak(2.0)]).await;
        assert_eq!(result, VmResult::Operator);
        assert_eq!(recordings(&call), 0);
        assert!(!call.is_hung_up());
        let (result, call) = f.call(&t, vec![keys("*"), speak(2.0)]).await;
        assert_eq!(result, VmResult::Retrieval);
        assert_eq!(recordings(&call), 0);
        assert!(f.inbox("1001").is_empty());
        assert!(f.saved().is_empty());
    }

    #[tokio::test]
    async fn zero_and_star_do_nothing_when_not_allowed() {
        let f = fx();
        let (result, call) = f
            .call(&target(&["1001"]), vec![keys("0*"), speak(2.0), keys("#")])
            .await;
        assert_eq!(result, VmResult::Done);
        // The greeting played through; the keys went into the recording.
        assert_eq!(
            call.log[0],
            Action::Played {
                names: strs(&DEFAULT_1001),
                interrupted_by: None,
            }
        );
        assert_eq!(f.inbox("1001").len(), 1);
    }

    #[tokio::test]
    async fn hanging_up_during_the_greeting_records_nothing() {
        let f = fx();
        let (result, call) = f.call(&target(&["1001"]), vec![Input::Hangup]).await;
        assert_eq!(result, VmResult::HungUp);
        assert_eq!(recordings(&call), 0);
        assert!(f.inbox("1001").is_empty());
    }

    // --- Full boxes and several boxes ---------------------------------------

    #[tokio::test]
    async fn full_box_says_so_and_records_nothing() {
        let f = fx();
        f.message("1001", Folder::Inbox);
        f.message("1001", Folder::Old);
        let mut t = target(&["1001"]);
        t.max_messages = Some(2);
        let (result, call) = f.call(&t, vec![speak(2.0), keys("#")]).await;
        assert_eq!(result, VmResult::Full);
        assert_eq!(call.played(), vec!["vm-mailbox-full".to_string()]);
        assert_eq!(recordings(&call), 0);
        assert!(!call.is_hung_up());
        assert_eq!(f.inbox("1001").len(), 1);
        assert!(f.saved().is_empty());
    }

    #[tokio::test]
    async fn a_box_keeps_its_own_limits() {
        let mut f = fx();
        let b = f.config.mailboxes.iter_mut().find(|m| m.number == "1001");
        let b = b.unwrap();
        b.max_messages = Some(1);
        b.max_message_seconds = Some(2);
        // Room for one: the recording stops at the box's 2 s, not [voicemail]'s.
        let (result, call) = f.call(&target(&["1001"]), vec![speak(5.0)]).await;
        assert_eq!(result, VmResult::Done);
        let Some(Action::Recorded { samples, reason }) = call
            .log
            .iter()
            .find(|a| matches!(a, Action::Recorded { .. }))
        else {
            panic!("nothing recorded: {:?}", call.log);
        };
        assert_eq!((*samples, *reason), (16000, StopReason::MaxLength));
        // Now the box is full, whatever the node says.
        let (result, call) = f.call(&target(&["1001"]), vec![speak(2.0)]).await;
        assert_eq!(result, VmResult::Full);
        assert_eq!(recordings(&call), 0);
        let mut t = target(&["1001"]);
        t.max_messages = Some(5);
        assert_eq!(f.call(&t, vec![speak(2.0)]).await.0, VmResult::Full);
        assert_eq!(f.inbox("1001").len(), 1);
    }

    #[tokio::test]
    async fn saved_messages_do_not_count_towards_the_maximum() {
        let f = fx();
        f.message("1001", Folder::Inbox);
        f.message("1001", Folder::Saved);
        let mut t = target(&["1001"]);
        t.max_messages = Some(2);
        let (result, _) = f.call(&t, vec![speak(2.0), keys("#")]).await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(f.inbox("1001").len(), 2);
    }

    #[tokio::test]
    async fn several_boxes_get_one_recording_each() {
        let f = fx();
        let mut rx = f.events.subscribe();
        let (result, call) = f
            .call(&target(&["1001", "1002"]), vec![speak(2.0), keys("#")])
            .await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(recordings(&call), 1);
        // The first box's greeting.
        assert_eq!(&call.played()[..6], &strs(&DEFAULT_1001)[..]);
        let (a, b) = (f.inbox("1001"), f.inbox("1002"));
        assert_eq!((a.len(), b.len()), (1, 1));
        assert_eq!(b[0].duration_seconds, 2.0);
        assert_eq!(b[0].caller_number, a[0].caller_number);
        assert_eq!(b[0].received_at, a[0].received_at);
        let audio_a = f
            .store
            .read_message_audio(
                &mb("1001"),
                Folder::Inbox,
                &MessageId::try_from(a[0].id.as_str()).unwrap(),
            )
            .unwrap();
        let audio_b = f
            .store
            .read_message_audio(
                &mb("1002"),
                Folder::Inbox,
                &MessageId::try_from(b[0].id.as_str()).unwrap(),
            )
            .unwrap();
        assert_eq!(audio_a, audio_b);
        let told: Vec<String> = f.saved().into_iter().map(|m| m.mailbox).collect();
        assert_eq!(told, vec!["1001", "1002"]);
        assert_eq!(rx.try_recv().unwrap().mailbox, "1001");
        assert_eq!(rx.try_recv().unwrap().mailbox, "1002");
    }

    #[tokio::test]
    async fn a_full_box_among_several_is_left_out() {
        let f = fx();
        f.message("1001", Folder::Inbox);
        let mut t = target(&["1001", "1002", "9999"]);
        t.max_messages = Some(1);
        let (result, call) = f.call(&t, vec![speak(2.0), keys("#")]).await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(&call.played()[..6], &strs(&DEFAULT_1001)[..]);
        assert_eq!(f.inbox("1001").len(), 1);
        assert_eq!(f.inbox("1002").len(), 1);
        // 9999 is not a configured box.
        assert!(f.inbox("9999").is_empty());
        assert_eq!(f.saved().len(), 1);
    }

    #[tokio::test]
    async fn no_configured_box_plays_nothing() {
        let f = fx();
        let (result, call) = f.call(&target(&["9999", "../x"]), vec![speak(2.0)]).await;
        assert_eq!(result, VmResult::Done);
        assert!(call.log.is_empty());
        assert!(f.store.list_mailboxes().unwrap().is_empty());
    }

    // --- Recording ----------------------------------------------------------

    #[tokio::test]
    async fn too_short_is_discarded_without_claiming_it_was_saved() {
        let f = fx();
        let (result, call) = f
            .call(&target(&["1001"]), vec![speak(0.5), keys("#")])
            .await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(call.played().last().unwrap(), "vm-goodbye-only");
        assert!(f.inbox("1001").is_empty());
        assert!(f.saved().is_empty());
        assert_eq!(f.store.recover_spool(0).unwrap(), vec![]);
    }

    #[tokio::test]
    async fn hanging_up_while_recording_keeps_the_message() {
        let f = fx();
        let (result, call) = f
            .call(&target(&["1001", "1002"]), vec![speak(3.0), Input::Hangup])
            .await;
        assert_eq!(result, VmResult::HungUp);
        // Nothing was played after the recording.
        assert!(matches!(call.log.last(), Some(Action::Recorded { .. })));
        assert_eq!(f.inbox("1001")[0].duration_seconds, 3.0);
        assert_eq!(f.inbox("1002").len(), 1);
        assert_eq!(f.saved().len(), 2);
        assert_eq!(f.store.recover_spool(0).unwrap(), vec![]);
    }

    // --- Review ---------------------------------------------------------------

    fn review(boxes: &[&str]) -> VoicemailTarget {
        let mut t = target(boxes);
        t.review = true;
        t
    }

    #[tokio::test]
    async fn review_1_saves() {
        let f = fx();
        let (result, call) = f
            .call(&review(&["1001"]), vec![speak(2.0), keys("#"), keys("1")])
            .await;
        assert_eq!(result, VmResult::Done);
        let played = call.played();
        assert_eq!(
            &played[7..],
            &strs(&["vm-deposit-review", "vm-goodbye"])[..]
        );
        assert_eq!(call.log.last(), Some(&Action::HungUp));
        assert_eq!(f.inbox("1001").len(), 1);
        assert_eq!(f.saved().len(), 1);
    }

    #[tokio::test]
    async fn review_2_plays_it_back_then_asks_again() {
        let f = fx();
        let (result, call) = f
            .call(
                &review(&["1001"]),
                vec![speak(2.0), keys("#"), keys("2"), Input::Silence, keys("1")],
            )
            .await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(
            &call.played()[7..],
            &[
                "vm-deposit-review".to_string(),
                audio(16000),
                "vm-deposit-review".into(),
                "vm-deposit-review".into(),
                "vm-goodbye".into(),
            ][..]
        );
        assert_eq!(f.inbox("1001").len(), 1);
    }

    #[tokio::test]
    async fn review_3_records_again_and_keeps_only_the_last() {
        let f = fx();
        let (result, call) = f
            .call(
                &review(&["1001", "1002"]),
                vec![
                    speak(2.0),
                    keys("#"),
                    keys("3"),
                    speak(3.0),
                    keys("#"),
                    keys("1"),
                ],
            )
            .await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(recordings(&call), 2);
        assert_eq!(call.played().iter().filter(|p| **p == beep()).count(), 2);
        for b in ["1001", "1002"] {
            let inbox = f.inbox(b);
            assert_eq!(inbox.len(), 1, "{b}");
            assert_eq!(inbox[0].duration_seconds, 3.0, "{b}");
        }
        let told: Vec<f64> = f.saved().iter().map(|m| m.duration_seconds).collect();
        assert_eq!(told, vec![3.0, 3.0]);
    }

    #[tokio::test]
    async fn review_4_marks_urgent_in_every_box() {
        let f = fx();
        let (result, call) = f
            .call(
                &review(&["1001", "1002"]),
                vec![speak(2.0), keys("#"), keys("4")],
            )
            .await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(
            &call.played()[call.played().len() - 2..],
            &strs(&["vm-marked-urgent", "vm-goodbye"])[..]
        );
        assert!(f.inbox("1001")[0].urgent);
        assert!(f.inbox("1002")[0].urgent);
        assert!(f.saved().iter().all(|m| m.urgent));
        assert_eq!(f.saved().len(), 2);
    }

    #[tokio::test]
    async fn review_0_saves_then_leaves_for_the_operator() {
        let f = fx();
        let mut t = review(&["1001"]);
        t.operator = true;
        let (result, call) = f.call(&t, vec![speak(2.0), keys("#"), keys("0")]).await;
        assert_eq!(result, VmResult::Operator);
        assert!(!call.is_hung_up());
        assert_eq!(
            &call.played()[7..],
            &strs(&["vm-deposit-review", "vm-review-operator", "vm-saved"])[..]
        );
        assert_eq!(f.inbox("1001").len(), 1);
        assert_eq!(f.saved().len(), 1);
    }

    #[tokio::test]
    async fn zero_while_recording_saves_then_leaves_for_the_operator() {
        let f = fx();
        let mut t = target(&["1001"]);
        t.operator = true;
        let (result, call) = f.call(&t, vec![speak(2.0), keys("0")]).await;
        assert_eq!(result, VmResult::Operator);
        assert!(!call.is_hung_up());
        assert_eq!(call.played().last().unwrap(), "vm-saved");
        assert_eq!(f.inbox("1001").len(), 1);
        // Nothing said yet: nothing kept, straight to the operator.
        let (result, call) = f.call(&t, vec![keys("0")]).await;
        assert_eq!(result, VmResult::Operator);
        assert_ne!(call.played().last().unwrap(), "vm-saved");
        assert_eq!(f.inbox("1001").len(), 1);
        // Without an operator 0 is no stop key: the message goes on to #.
        let (result, _) = f
            .call(
                &target(&["1001"]),
                vec![speak(1.0), keys("0"), speak(1.0), keys("#")],
            )
            .await;
        assert_eq!(result, VmResult::Done);
        let inbox = f.inbox("1001");
        assert_eq!(inbox.len(), 2);
        assert!(inbox.iter().any(|m| m.duration_seconds == 2.0));
    }

    #[tokio::test]
    async fn review_0_without_an_operator_is_invalid() {
        let f = fx();
        let (result, call) = f
            .call(
                &review(&["1001"]),
                vec![speak(2.0), keys("#"), keys("0"), keys("1")],
            )
            .await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(
            &call.played()[7..],
            &strs(&["vm-deposit-review", "vm-invalid", "vm-goodbye"])[..]
        );
        // The 1 cut "invalid option" short and answered the menu at once.
        assert!(call.log.contains(&Action::Played {
            names: strs(&["vm-invalid"]),
            interrupted_by: Some('1'),
        }));
        assert_eq!(f.inbox("1001").len(), 1);
    }

    #[tokio::test]
    async fn review_without_an_answer_saves_the_message() {
        let f = fx();
        let (result, call) = f
            .call(
                &review(&["1001"]),
                vec![
                    speak(2.0),
                    keys("#"),
                    Input::Silence,
                    Input::Silence,
                    Input::Silence,
                ],
            )
            .await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(
            call.played()
                .iter()
                .filter(|p| *p == "vm-deposit-review")
                .count(),
            3
        );
        assert_eq!(call.played().last().unwrap(), "vm-goodbye");
        assert_eq!(f.inbox("1001").len(), 1);
    }

    #[tokio::test]
    async fn hanging_up_during_review_keeps_the_message() {
        let f = fx();
        let (result, _) = f
            .call(
                &review(&["1001", "1002"]),
                vec![speak(2.0), keys("#"), Input::Hangup],
            )
            .await;
        assert_eq!(result, VmResult::HungUp);
        assert_eq!(f.inbox("1001").len(), 1);
        assert_eq!(f.inbox("1002").len(), 1);
        assert_eq!(f.saved().len(), 2);
    }

    #[tokio::test]
    async fn too_short_with_review_records_again() {
        let f = fx();
        let (result, call) = f
            .call(
                &review(&["1001"]),
                vec![speak(0.5), keys("#"), speak(2.0), keys("#"), keys("1")],
            )
            .await;
        assert_eq!(result, VmResult::Done);
        assert_eq!(recordings(&call), 2);
        let played = call.played();
        let short = played.iter().position(|p| p == "vm-too-short").unwrap();
        assert_eq!(played[short + 1], beep());
        let inbox = f.inbox("1001");
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].duration_seconds, 2.0);
    }
}
