//! Walking a call through the plan's nodes.
//!
//! The interpreter plays prompts, runs menus, schedules, language switches
//! and gotos itself, over [`CallApi`]; the nodes that are whole
//! applications (deposit, retrieval, the audio-message recorder, transfer)
//! call out through [`Apps`], which the server implements with the real
//! apps and tests with fakes. Decisions that need no I/O (a menu's next
//! step, a schedule's target, a voicemail node's greeting) are plain
//! functions.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::call::{CallApi, HungUp};
use crate::prompts::{Pcm, SAMPLE_RATE};
use crate::store::GreetingKind;

use super::divert::Diversion;
use super::model::{
    DialPlan, GreetingChoice, Menu, NodeKind, Play, RouteMatch, TransferMode, Vars,
};

/// Nodes one call may pass through before it is ended: a plan that loops
/// (through menus nobody answers, say) cannot hold a call forever.
pub const DEFAULT_MAX_STEPS: usize = 1000;

/// How long a `loop = true` play without `max_seconds` plays at most.
pub const DEFAULT_LOOP_SECONDS: u32 = 3 * 3600;

/// Keys that stop a menu prompt and choose.
pub const MENU_KEYS: &str = "0123456789*#";

/// Played when a menu key is not an option.
pub const INVALID_PROMPT: &str = "vm-invalid";
/// Played when a menu gives up with nowhere to go.
pub const GOODBYE_PROMPT: &str = "vm-goodbye-only";

/// Where "now" comes from, for schedules; tests inject a fixed time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(Timestamp::now))
    }

    pub fn fixed(at: Timestamp) -> Clock {
        Clock(Arc::new(move || at))
    }

    pub fn from_fn(f: impl Fn() -> Timestamp + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The prompt language a call starts in when its route sets none.
    pub language: String,
    pub max_steps: usize,
    pub clock: Clock,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            language: "en".to_owned(),
            max_steps: DEFAULT_MAX_STEPS,
            clock: Clock::system(),
        }
    }
}

/// A deposit, as a `voicemail` node asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailTarget {
    /// One or more boxes (one recording, saved into each); substituted and
    /// de-duplicated, never empty. Not yet validated as mailbox ids.
    pub mailboxes: Vec<String>,
    /// Resolved from `greeting = "auto"` by the diversion reason; `None`:
    /// no greeting, straight to the beep.
    pub greeting: Option<GreetingKind>,
    /// The call's current prompt language.
    pub language: String,
    /// `0` may leave for the operator node.
    pub operator: bool,
    /// `*` may leave for the retrieval node.
    pub retrieval: bool,
    pub review: bool,
    pub skip_instructions_if_greeting: bool,
    pub max_messages: Option<u32>,
    pub diversion: Option<Diversion>,
}

/// How a deposit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmResult {
    /// The message was saved (or the caller left without one).
    Done,
    /// The caller pressed `0` (only when `operator` was set).
    Operator,
    /// The caller pressed `*` (only when `retrieval` was set).
    Retrieval,
    /// A box was full; the app said so.
    Full,
    HungUp,
}

/// The retrieval menus, as a `voicemail_main` node asks for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainTarget {
    /// `None`: the caller's own box (by caller number), or ask.
    pub mailbox: Option<String>,
    pub language: String,
}

/// The audio-message recorder, as a `record_message` node asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTarget {
    /// `None`: the caller picks the message.
    pub message: Option<String>,
    pub language: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppResult {
    /// The caller left the app (e.g. `#`); the plan goes on.
    Done,
    HungUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferTarget {
    /// Substituted: a SIP URI or a number.
    pub target: String,
    /// `Redirect` after answer cannot be a 302 any more; the server should
    /// fall back to REFER (see [`DialPlan::redirect_target`] to 302 before
    /// answering).
    pub mode: TransferMode,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transfer failed: {0}")]
pub struct TransferFailed(pub String);

/// The applications and audio that nodes use. The server implements it
/// over its context; tests with fakes.
#[allow(async_fn_in_trait)]
pub trait Apps {
    async fn voicemail<C: CallApi>(&mut self, call: &mut C, target: &VoicemailTarget) -> VmResult;
    async fn voicemail_main<C: CallApi>(&mut self, call: &mut C, target: &MainTarget) -> AppResult;
    async fn record_message<C: CallApi>(
        &mut self,
        call: &mut C,
        target: &RecordTarget,
    ) -> AppResult;
    /// Blind transfer. On success the interpreter hangs up its leg (the
    /// BYE that follows an accepted REFER).
    async fn transfer<C: CallApi>(
        &mut self,
        call: &mut C,
        target: &TransferTarget,
    ) -> Result<(), TransferFailed>;
    /// A built-in prompt in `lang` (with the cache's fallback to English).
    fn prompt(&self, lang: &str, name: &str) -> Option<Pcm>;
    /// An audio message recorded by phone or uploaded; overrides a prompt
    /// of the same name.
    fn audio_message(&self, name: &str) -> Option<Pcm>;
}

/// How a call's walk through the plan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The call ended inside a node (the caller hung up, or an app ended it).
    HungUp,
    /// The plan ended the call: a `hangup` node, a node without `next`, a
    /// menu that gave up.
    Finished,
    Transferred,
    /// [`RunOptions::max_steps`] nodes were visited.
    StepLimit,
    /// Only with an unchecked plan.
    UnknownNode(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub end: End,
    /// Every node visited, in order.
    pub trail: Vec<String>,
    /// The call's prompt language at the end.
    pub language: String,
}

/// A menu's next move after one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuStep<'a> {
    /// A valid key: go to its node.
    Go(&'a str),
    /// Play the prompt again (after "invalid option" when `invalid`).
    Retry { invalid: bool },
    /// No tries left: go to the `invalid` / `timeout` target, or hang up.
    GiveUp {
        target: Option<&'a str>,
        invalid: bool,
    },
}

impl Menu {
    /// `failures` tries have already failed; `key` is this try's key
    /// (`None`: timed out).
    pub fn decide(&self, failures: u32, key: Option<char>) -> MenuStep<'_> {
        if let Some(target) = key.and_then(|k| self.options.get(&k)) {
            return MenuStep::Go(target);
        }
        let invalid = key.is_some();
        if failures < self.retries {
            MenuStep::Retry { invalid }
        } else {
            let target = if invalid {
                &self.invalid
            } else {
                &self.timeout
            };
            MenuStep::GiveUp {
                target: target.as_deref(),
                invalid,
            }
        }
    }
}

/// The greeting a voicemail node plays for this call.
pub fn greeting_for(choice: GreetingChoice, diversion: Option<&Diversion>) -> Option<GreetingKind> {
    match choice {
        GreetingChoice::Unavailable => Some(GreetingKind::Unavailable),
        GreetingChoice::Busy => Some(GreetingKind::Busy),
        GreetingChoice::Auto => {
            Some(diversion.map_or(GreetingKind::Unavailable, |d| d.reason.greeting()))
        }
        GreetingChoice::NoGreeting => None,
    }
}

/// What a node handler decided.
enum Step {
    Go(String),
    End(End),
}

fn next_or_finish(next: &Option<String>) -> Step {
    match next {
        Some(n) => Step::Go(n.clone()),
        None => Step::End(End::Finished),
    }
}

struct Walk<'a, A> {
    apps: &'a mut A,
    vars: Vars,
    language: String,
    diversion: Option<Diversion>,
    clock: &'a Clock,
}

/// Runs a call from its route's node until it ends, then hangs up if the
/// call is still up. Keep the `Arc<DialPlan>` the call started with for the
/// whole call: a reload does not change a call in progress.
pub async fn run<C: CallApi, A: Apps>(
    plan: &DialPlan,
    entry: RouteMatch,
    call: &mut C,
    apps: &mut A,
    options: &RunOptions,
) -> Outcome {
    let vars = Vars::for_call(&entry, &call.info().caller_number);
    let mut walk = Walk {
        apps,
        vars,
        language: entry
            .language
            .clone()
            .unwrap_or_else(|| options.language.clone()),
        diversion: entry.diversion.clone(),
        clock: &options.clock,
    };
    let mut trail = Vec::new();
    let mut current = entry.node;
    let end = loop {
        if call.is_hung_up() {
            break End::HungUp;
        }
        if trail.len() >= options.max_steps {
            tracing::warn!(
                call = %call.info().call_id,
                steps = trail.len(),
                node = %current,
                "dial plan step limit reached; ending the call"
            );
            break End::StepLimit;
        }
        let Some(node) = plan.nodes.get(&current) else {
            tracing::error!(node = %current, "dial plan names an unknown node");
            break End::UnknownNode(current);
        };
        trail.push(current.clone());
        match walk.step(&node.kind, call).await {
            Ok(Step::Go(next)) => current = next,
            Ok(Step::End(end)) => break end,
            Err(HungUp) => break End::HungUp,
        }
    };
    if !call.is_hung_up() {
        call.hangup();
    }
    Outcome {
        end,
        trail,
        language: walk.language,
    }
}

impl<A: Apps> Walk<'_, A> {
    /// Audio for names: an audio message, else the prompt in the call's
    /// language; missing ones are skipped (the cache logs them).
    fn audio(&self, names: &[String]) -> Vec<Pcm> {
        names
            .iter()
            .filter_map(|n| {
                self.apps
                    .audio_message(n)
                    .or_else(|| self.apps.prompt(&self.language, n))
            })
            .collect()
    }

    fn prompt(&self, name: &str) -> Option<Pcm> {
        self.apps.prompt(&self.language, name)
    }

    async fn step<C: CallApi>(&mut self, kind: &NodeKind, call: &mut C) -> Result<Step, HungUp> {
        Ok(match kind {
            NodeKind::Play(p) => self.play(p, call).await?,
            NodeKind::Menu(m) => self.menu(m, call).await?,
            NodeKind::Voicemail(v) => {
                let mut mailboxes: Vec<String> = Vec::new();
                for t in &v.mailboxes {
                    let b = t.render(&self.vars);
                    if !b.is_empty() && !mailboxes.contains(&b) {
                        mailboxes.push(b);
                    }
                }
                if mailboxes.is_empty() {
                    tracing::warn!(call = %call.info().call_id, "voicemail node with no mailbox for this call");
                    return Ok(Step::End(End::Finished));
                }
                let target = VoicemailTarget {
                    mailboxes,
                    greeting: greeting_for(v.greeting, self.diversion.as_ref()),
                    language: self.language.clone(),
                    operator: v.operator.is_some(),
                    retrieval: v.retrieval.is_some(),
                    review: v.review,
                    skip_instructions_if_greeting: v.skip_instructions_if_greeting,
                    max_messages: v.max_messages,
                    diversion: self.diversion.clone(),
                };
                match self.apps.voicemail(call, &target).await {
                    VmResult::Done => next_or_finish(&v.next),
                    VmResult::Operator => next_or_finish(&v.operator),
                    VmResult::Retrieval => next_or_finish(&v.retrieval),
                    VmResult::Full => next_or_finish(&v.full),
                    VmResult::HungUp => Step::End(End::HungUp),
                }
            }
            NodeKind::VoicemailMain(m) => {
                let target = MainTarget {
                    mailbox: m
                        .mailbox
                        .as_ref()
                        .map(|t| t.render(&self.vars))
                        .filter(|b| !b.is_empty()),
                    language: self.language.clone(),
                };
                match self.apps.voicemail_main(call, &target).await {
                    AppResult::Done => next_or_finish(&m.next),
                    AppResult::HungUp => Step::End(End::HungUp),
                }
            }
            NodeKind::RecordMessage(r) => {
                let target = RecordTarget {
                    message: r
                        .message
                        .as_ref()
                        .map(|t| t.render(&self.vars))
                        .filter(|m| !m.is_empty()),
                    language: self.language.clone(),
                };
                match self.apps.record_message(call, &target).await {
                    AppResult::Done => next_or_finish(&r.next),
                    AppResult::HungUp => Step::End(End::HungUp),
                }
            }
            NodeKind::Schedule(s) => Step::Go(s.target_at(self.clock.now()).to_owned()),
            NodeKind::Language(l) => {
                self.language = l.language.clone();
                Step::Go(l.next.clone())
            }
            NodeKind::Goto(g) => Step::Go(g.target.clone()),
            NodeKind::Transfer(t) => {
                let target = TransferTarget {
                    target: t.target.render(&self.vars),
                    mode: t.mode,
                };
                match self.apps.transfer(call, &target).await {
                    Ok(()) => Step::End(End::Transferred),
                    Err(e) => {
                        tracing::warn!(call = %call.info().call_id, target = %target.target, error = %e, "transfer failed");
                        next_or_finish(&t.failed)
                    }
                }
            }
            NodeKind::Hangup => Step::End(End::Finished),
        })
    }

    async fn play<C: CallApi>(&mut self, p: &Play, call: &mut C) -> Result<Step, HungUp> {
        let items = self.audio(&p.prompts);
        if !p.looped {
            call.play(items).await?;
            return Ok(next_or_finish(&p.next));
        }
        let round: usize = items.iter().map(|x| x.len()).sum();
        let mut left =
            p.max_seconds.unwrap_or(DEFAULT_LOOP_SECONDS) as usize * SAMPLE_RATE as usize;
        // Silence (all audio missing or empty) would spin: skip it.
        while round > 0 && left > 0 {
            let this = if round <= left {
                items.clone()
            } else {
                truncate(&items, left)
            };
            left = left.saturating_sub(round);
            call.play(this).await?;
        }
        Ok(next_or_finish(&p.next))
    }

    async fn menu<C: CallApi>(&mut self, m: &Menu, call: &mut C) -> Result<Step, HungUp> {
        let mut failures = 0;
        loop {
            let items = self.audio(&m.prompts);
            let mut key = call.play_interruptible(items, MENU_KEYS).await?;
            if key.is_none() {
                key = call
                    .collect_digit(Duration::from_secs(u64::from(m.timeout_seconds)))
                    .await?;
            }
            match m.decide(failures, key) {
                MenuStep::Go(next) => return Ok(Step::Go(next.to_owned())),
                MenuStep::Retry { invalid } => {
                    if invalid && let Some(p) = self.prompt(INVALID_PROMPT) {
                        call.play(vec![p]).await?;
                    }
                    failures += 1;
                }
                MenuStep::GiveUp {
                    target: Some(t), ..
                } => return Ok(Step::Go(t.to_owned())),
                MenuStep::GiveUp {
                    target: None,
                    invalid,
                } => {
                    let mut bye = Vec::new();
                    if invalid {
                        bye.extend(self.prompt(INVALID_PROMPT));
                    }
                    bye.extend(self.prompt(GOODBYE_PROMPT));
                    call.play(bye).await?;
                    return Ok(Step::End(End::Finished));
                }
            }
        }
    }
}

/// The first `samples` samples of a sequence of clips.
fn truncate(items: &[Pcm], mut samples: usize) -> Vec<Pcm> {
    let mut out = Vec::new();
    for item in items {
        if samples == 0 {
            break;
        }
        if item.len() <= samples {
            out.push(item.clone());
            samples -= item.len();
        } else {
            out.push(Pcm::from(&item[..samples]));
            samples = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests;
