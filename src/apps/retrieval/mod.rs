//! Voicemail retrieval by phone (`*98` own box, `*99<box>` any box): login,
//! messages and mailbox options, key for key like Asterisk's
//! `VoiceMailMain`.
//!
//! ```text
//! login      [box number + #] → PIN + #     3 wrong → "login incorrect", goodbye
//!            5 wrong in a row across calls → box locked 15 min (persisted)
//! intro      "mailbox full" (inbox + old at the box's max_messages),
//!            "temporary greeting active [until …]", "you have N new and M old messages"
//! main       1 listen (new, then old; urgent first in each) · 2 folders (1 new · 2 old · 3 saved · # cancel)
//!            0 mailbox options · * help · # goodbye
//!            3 (no message selected, member of a shared box) next shared box,
//!            said by its number and counts, then back to one's own; options
//!            (0) stay the own box's
//! message    (played after "message N" and, with `[voicemail] envelope`, its
//!            envelope) 3 envelope · 4 previous · 5 repeat · 6 next · 7 delete/undelete
//!            8 forward (box + #, then 1 with intro · 2 as is · * cancel; a full
//!            box is said "mailbox full" and gets nothing) · 9 save
//!            after 7 (marked deleted) or 9: the next message plays, or "no
//!            more messages" ([voicemail] next_after_command, default on; a key
//!            pressed over "deleted"/"saved" is done instead)
//!            # during a message: skip to its end · any key above: stop and do it
//! options    1 unavailable · 2 busy · 3 name · 4 temporary greeting
//!            (1 re-record · 2 remove · * back; end after N days or never)
//!            5 change PIN (twice; digits, 4-12, not the box number) · * back
//! recording  after the beep, # to end → 1 accept · 2 listen · 3 re-record
//! ```
//!
//! Prompts are in the call's language (the dial plan's) until login, then
//! in the box's own language if it sets one; dates (envelopes, a temporary
//! greeting's end) are said in the logged-in box's time zone.
//!
//! Every menu is barge-in: a key pressed during a prompt stops it and
//! counts (type-ahead included). Three timeouts or invalid keys in a row end
//! the call with goodbye. A heard new message moves to the old folder at
//! once; deletions are only marked (7 again undoes) and applied when the
//! caller leaves the folder or the call ends, however it ends. Messages
//! whose files are unreadable or vanished are skipped, never fatal.
//!
//! All of it is plain async code over [`CallApi`], tested with the scripted
//! `FakeCall`; store work runs on the file I/O threads (`io_pool`), PIN
//! checks (Argon2) on the PIN-check pool (`pin_work`), never on tokio's
//! workers.

mod login;
mod messages;
mod options;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::apps::keys;
use crate::apps::pin::PinRules;
use crate::apps::{blocking, pin_work};
use crate::call::{CallApi, HungUp};
use crate::config::Config;
use crate::notify::events::EventBus;
use crate::prompts::{Pcm, PromptCache};
use crate::store::{MailboxId, SecurityStore, Store};

use messages::View;

/// Longest digit string read (box numbers, PINs, day counts).
const MAX_ENTRY: usize = 32;

/// How a caller reached retrieval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `*98`: the caller's own box. `mailbox` is what the caller id (or,
    /// later, the authenticated user) names; `None`, or a number that is no
    /// configured box, makes voxmail ask for the box number. `trusted`: the
    /// call comes from a trusted source and the box does not ask for its
    /// PIN then (Wazo's `ask_password = false`); the router decides it.
    Own {
        mailbox: Option<String>,
        trusted: bool,
    },
    /// `*99<box>`: that box; the PIN is always asked.
    Any { mailbox: String },
}

/// How a retrieval call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrievalOutcome {
    /// The owner pressed `#` and heard goodbye.
    Exited { mailbox: String },
    /// Too many wrong PINs (or box numbers) in this call.
    LoginFailed { mailbox: Option<String> },
    /// The box is locked after repeated failures; refused until `until`.
    Locked { mailbox: String, until: Timestamp },
    /// Timeouts or invalid keys ran out the retries.
    NoInput { mailbox: Option<String> },
    /// The caller hung up.
    HungUp { mailbox: Option<String> },
    /// The store failed in a way the call could not go on from (logged).
    Failed { mailbox: Option<String> },
}

/// Limits and timeouts of the menus.
#[derive(Debug, Clone)]
pub struct RetrievalOptions {
    /// Wait for a key after a menu prompt ends.
    pub key_timeout: Duration,
    /// Wait for the next digit of a number, PIN or day count.
    pub inter_digit_timeout: Duration,
    /// Timeouts or invalid keys in a row before goodbye.
    pub max_retries: u32,
    /// Wrong PINs (or unknown box numbers) per call before goodbye.
    pub max_login_attempts: u32,
    /// What a PIN chosen by phone must be.
    pub pin_rules: PinRules,
    /// Longest greeting or name recording.
    pub greeting_max_seconds: u32,
    /// Longest spoken introduction to a forwarded message.
    pub intro_max_seconds: u32,
    /// Longest a temporary greeting may be set to last, in days.
    pub max_temp_greeting_days: u32,
}

impl Default for RetrievalOptions {
    fn default() -> Self {
        RetrievalOptions {
            key_timeout: Duration::from_secs(6),
            inter_digit_timeout: Duration::from_secs(5),
            max_retries: 3,
            max_login_attempts: 3,
            pin_rules: PinRules::default(),
            greeting_max_seconds: 120,
            intro_max_seconds: 60,
            max_temp_greeting_days: 365,
        }
    }
}

/// The clock envelope times, lockouts and greeting expiry are measured by.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// What retrieval needs from the server. Cheap to build per call: the
/// config is borrowed, everything else is a shared handle.
#[derive(Clone)]
pub struct RetrievalContext<'a> {
    pub config: &'a Config,
    pub store: Store,
    pub prompts: PromptCache,
    /// Played before every recording.
    pub beep: Pcm,
    pub security: SecurityStore,
    /// The call's prompt language (the dial plan's, else the default):
    /// every prompt before login, and after it for a box that sets no
    /// language of its own.
    pub language: String,
    pub clock: Clock,
    pub options: RetrievalOptions,
    /// Where message changes made by phone are announced (heard and saved:
    /// updated; deleted; forwarded: created in the other box), for SSE,
    /// webhooks, email and MWI. `None`: nobody is told.
    pub events: Option<EventBus>,
}

impl<'a> RetrievalContext<'a> {
    /// A context in the default language, with the system clock and the
    /// default options.
    pub fn new(
        config: &'a Config,
        store: Store,
        prompts: PromptCache,
        beep: Pcm,
        security: SecurityStore,
    ) -> RetrievalContext<'a> {
        RetrievalContext {
            config,
            store,
            prompts,
            beep,
            security,
            language: config.prompts.default_language.clone(),
            clock: Arc::new(Timestamp::now),
            options: RetrievalOptions::default(),
            events: None,
        }
    }

    /// The call's language, as the dial plan left it.
    pub fn with_language(mut self, language: impl Into<String>) -> RetrievalContext<'a> {
        self.language = language.into();
        self
    }

    pub fn with_clock(
        mut self,
        clock: impl Fn() -> Timestamp + Send + Sync + 'static,
    ) -> RetrievalContext<'a> {
        self.clock = Arc::new(clock);
        self
    }

    pub fn with_options(mut self, options: RetrievalOptions) -> RetrievalContext<'a> {
        self.options = options;
        self
    }

    pub fn with_events(mut self, events: EventBus) -> RetrievalContext<'a> {
        self.events = Some(events);
        self
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }
}

/// Runs a retrieval call to its end (the call is hung up unless the caller
/// already did).
pub async fn run<C: CallApi>(
    call: &mut C,
    ctx: &RetrievalContext<'_>,
    access: Access,
) -> RetrievalOutcome {
    // Until login, the call's language: a box's own language heard before
    // its PIN would tell a caller dialling `*99<box>` which numbers are
    // boxes. The box's language takes over at login (PIN accepted, or
    // skipped for its trusted phone).
    let mut s = Session {
        call,
        ctx,
        lang: ctx.language.clone(),
        tz: TimeZone::UTC,
        pending: None,
        mailbox: None,
        home: None,
        view: None,
    };
    let result = s.session(&access).await;
    // However the call ended, deletions marked in the open folder happen.
    s.leave_view().await;
    let mailbox = s.mailbox.as_ref().map(|m| m.id.as_str().to_owned());
    let outcome = match result {
        Ok(never) => match never {},
        Err(Stop::HungUp) => RetrievalOutcome::HungUp { mailbox },
        Err(stop) => {
            if !s.call.is_hung_up() {
                let mut bye = Vec::new();
                if let Stop::Failed = stop {
                    bye.extend(s.prompt(&["vm-error"]));
                }
                bye.extend(s.prompt(&["vm-goodbye-only"]));
                let _ = s.call.play(bye).await;
            }
            match stop {
                Stop::Exit => RetrievalOutcome::Exited {
                    mailbox: mailbox.unwrap_or_default(),
                },
                Stop::LoginFailed(m) => RetrievalOutcome::LoginFailed { mailbox: m },
                Stop::Locked(m, until) => RetrievalOutcome::Locked { mailbox: m, until },
                Stop::NoInput => RetrievalOutcome::NoInput { mailbox },
                Stop::Failed => RetrievalOutcome::Failed { mailbox },
                Stop::HungUp => unreachable!("handled above"),
            }
        }
    };
    // `#` leaves the menus with the call up, like Asterisk's VoiceMailMain
    // returning to the dial plan (which hangs up when nothing follows);
    // failures end the call here.
    if !matches!(outcome, RetrievalOutcome::Exited { .. }) {
        s.call.hangup();
    }
    tracing::info!(call = %s.call.info().call_id, ?outcome, "voicemail retrieval ended");
    outcome
}

/// Why the session stopped; everything but a hang-up ends in goodbye.
#[derive(Debug)]
enum Stop {
    HungUp,
    /// `#` in the main menu.
    Exit,
    /// Wrong PINs used up (the caller heard "login incorrect").
    LoginFailed(Option<String>),
    /// The box is locked (the caller heard why).
    Locked(String, Timestamp),
    /// Timeouts or invalid keys used up.
    NoInput,
    Failed,
}

impl From<HungUp> for Stop {
    fn from(_: HungUp) -> Stop {
        Stop::HungUp
    }
}

type Step<T> = Result<T, Stop>;

/// The box a caller logged into.
#[derive(Clone)]
struct LoggedIn {
    id: MailboxId,
    /// The configured PIN (the security store decides which PIN applies).
    config_pin: String,
}

/// One retrieval call: the dialogue helpers shared by the login, message
/// and option menus.
struct Session<'x, 'a, C: CallApi> {
    call: &'x mut C,
    ctx: &'x RetrievalContext<'a>,
    lang: String,
    /// The zone dates are said in (envelopes, a temporary greeting's end):
    /// the logged-in box's `timezone`. Stays the caller's own box's on a
    /// shared box, like the language. Nothing before login says a date.
    tz: TimeZone,
    /// A key that stopped an announcement: it answers the next question.
    pending: Option<char>,
    mailbox: Option<LoggedIn>,
    /// The caller's own box, once they moved on to a shared box they are a
    /// member of (`mailbox` is then the shared one).
    home: Option<LoggedIn>,
    /// The folder being listened to.
    view: Option<View>,
}

impl<C: CallApi> Session<'_, '_, C> {
    async fn session(&mut self, access: &Access) -> Step<std::convert::Infallible> {
        self.login(access).await?;
        self.main_menu().await
    }

    /// The named prompts in the session's language (English fallback by the
    /// cache; a prompt missing everywhere is left out and logged once).
    fn prompt(&self, names: &[&str]) -> Vec<Pcm> {
        names
            .iter()
            .filter_map(|n| self.ctx.prompts.get(&self.lang, n))
            .collect()
    }

    fn logged_in(&self) -> &LoggedIn {
        self.mailbox.as_ref().expect("only called after login")
    }

    /// Plays an announcement that any key may cut short; that key then
    /// answers the next question.
    async fn say(&mut self, items: Vec<Pcm>) -> Step<()> {
        Ok(keys::say(&mut *self.call, &mut self.pending, items).await?)
    }

    async fn say_names(&mut self, names: &[&str]) -> Step<()> {
        let items = self.prompt(names);
        self.say(items).await
    }

    /// Plays a question and returns the first key pressed during it or
    /// within the key timeout after it (`None`: silence).
    async fn ask(&mut self, items: Vec<Pcm>) -> Step<Option<char>> {
        let timeout = self.ctx.options.key_timeout;
        Ok(keys::ask(&mut *self.call, &mut self.pending, items, timeout).await?)
    }

    /// Asks until one of `valid` is pressed: an invalid key is answered
    /// "invalid option"; after `max_retries` timeouts or invalid keys in a
    /// row the session ends.
    async fn menu(&mut self, names: &[&str], valid: &str) -> Step<char> {
        self.menu_with(Vec::new(), names, valid).await
    }

    /// [`Session::menu`] with `first` played before the prompt the first
    /// time round (a reminder, a confirmation).
    async fn menu_with(&mut self, first: Vec<Pcm>, names: &[&str], valid: &str) -> Step<char> {
        let mut failures = 0;
        let mut first = Some(first);
        loop {
            let mut items = first.take().unwrap_or_default();
            items.extend(self.prompt(names));
            match self.ask(items).await? {
                Some(k) if valid.contains(k) => return Ok(k),
                Some(_) => self.say_names(&["vm-invalid"]).await?,
                None => {}
            }
            failures += 1;
            if failures >= self.ctx.options.max_retries {
                return Err(Stop::NoInput);
            }
        }
    }

    /// Reads keys up to `#` (or a pause once something was typed). `None`
    /// if nothing at all was pressed; the string may hold `*`.
    async fn read_entry(&mut self, names: &[&str]) -> Step<Option<String>> {
        let items = self.prompt(names);
        let Some(first) = self.ask(items).await? else {
            return Ok(None);
        };
        let timeout = self.ctx.options.inter_digit_timeout;
        Ok(Some(
            keys::read_entry_from(&mut *self.call, first, MAX_ENTRY, timeout).await?,
        ))
    }
}
