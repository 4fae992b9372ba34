//! The audio-message manager (Axivox's "record a message by phone"), as a
//! dial plan's `record_message` node asks for it.
//!
//! ```text
//! which      the node's message name, else "enter the number + #" → msg-<number>
//! menu       1 record (beep, # to end; saved atomically once long enough)
//!            2 listen to the current recording (or "not recorded yet")
//!            # goodbye, end of the call
//! ```
//!
//! Audio messages live in the store (`<data>/audio/<name>.wav`) and are
//! played by name from `play` and `menu` nodes, over any built-in prompt of
//! the same name. A recording the caller hangs up on is discarded: only a
//! recording ended with `#` (or by the length or silence limit) replaces
//! the message. Three timeouts or invalid keys in a row end the call.

use std::time::Duration;

use crate::call::{CallApi, HungUp};
use crate::config::Config;
use crate::dialplan::interpret::{AppResult, RecordTarget};
use crate::media::session::RecordOptions;
use crate::prompts::{Pcm, PromptCache};
use crate::store::{AUDIO_MESSAGE_NAME_MAX, Store, is_valid_audio_message_name};

use super::blocking;
use super::keys;

/// What a number entered by phone becomes: `msg-<number>`.
pub const NUMBER_PREFIX: &str = "msg-";

/// Timeouts and limits of the menus.
#[derive(Debug, Clone)]
pub struct RecordMessageOptions {
    /// Wait for a key after a prompt ends.
    pub key_timeout: Duration,
    /// Wait for the next digit of the message number.
    pub inter_digit_timeout: Duration,
    /// Timeouts or invalid keys in a row before goodbye.
    pub max_retries: u32,
    /// Longest recording; `None`: `[voicemail] max_message_seconds`.
    pub max_seconds: Option<u32>,
}

impl Default for RecordMessageOptions {
    fn default() -> Self {
        RecordMessageOptions {
            key_timeout: Duration::from_secs(6),
            inter_digit_timeout: Duration::from_secs(5),
            max_retries: 3,
            max_seconds: None,
        }
    }
}

/// What the recorder needs from the server.
#[derive(Clone)]
pub struct RecordMessageContext<'a> {
    /// `[voicemail]`: silence detection, minimum and default maximum length.
    pub config: &'a Config,
    pub store: Store,
    pub prompts: PromptCache,
    /// Played before every recording.
    pub beep: Pcm,
    pub options: RecordMessageOptions,
}

impl<'a> RecordMessageContext<'a> {
    pub fn new(
        config: &'a Config,
        store: Store,
        prompts: PromptCache,
        beep: Pcm,
    ) -> RecordMessageContext<'a> {
        RecordMessageContext {
            config,
            store,
            prompts,
            beep,
            options: RecordMessageOptions::default(),
        }
    }

    pub fn with_options(mut self, options: RecordMessageOptions) -> RecordMessageContext<'a> {
        self.options = options;
        self
    }
}

/// The audio message name for a number entered by phone, if it makes a
/// valid name (digits only, short enough).
pub fn name_for_number(number: &str) -> Option<String> {
    let ok = !number.is_empty()
        && number.len() <= AUDIO_MESSAGE_NAME_MAX - NUMBER_PREFIX.len()
        && number.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| format!("{NUMBER_PREFIX}{number}"))
}

/// Runs the recorder. `#` in the menu says goodbye and hangs up (`Done`);
/// so do running out of retries and an unusable message name.
pub async fn run<C: CallApi>(
    call: &mut C,
    ctx: &RecordMessageContext<'_>,
    target: &RecordTarget,
) -> AppResult {
    let mut s = Recorder {
        call,
        ctx,
        lang: target.language.clone(),
        pending: None,
    };
    let outcome = s.session(target).await;
    let result = match outcome {
        Err(Stop::HungUp) => AppResult::HungUp,
        Ok(()) | Err(Stop::NoInput) | Err(Stop::Failed) => {
            let mut bye = Vec::new();
            if let Err(Stop::Failed) = outcome {
                bye.extend(s.prompt(&["vm-error"]));
            }
            bye.extend(s.prompt(&["vm-goodbye-only"]));
            if s.call.play(bye).await.is_err() {
                AppResult::HungUp
            } else {
                s.call.hangup();
                AppResult::Done
            }
        }
    };
    tracing::info!(call = %s.call.info().call_id, ?result, "audio message recorder ended");
    result
}

/// Why the session stopped early.
#[derive(Debug)]
enum Stop {
    HungUp,
    /// Timeouts or invalid keys used up.
    NoInput,
    /// No usable message name.
    Failed,
}

impl From<HungUp> for Stop {
    fn from(_: HungUp) -> Stop {
        Stop::HungUp
    }
}

type Step<T> = Result<T, Stop>;

struct Recorder<'x, 'a, C: CallApi> {
    call: &'x mut C,
    ctx: &'x RecordMessageContext<'a>,
    lang: String,
    /// A key that stopped a prompt: it answers the next question.
    pending: Option<char>,
}

impl<C: CallApi> Recorder<'_, '_, C> {
    fn prompt(&self, names: &[&str]) -> Vec<Pcm> {
        names
            .iter()
            .filter_map(|n| self.ctx.prompts.get(&self.lang, n))
            .collect()
    }

    async fn session(&mut self, target: &RecordTarget) -> Step<()> {
        let name = match &target.message {
            Some(name) if is_valid_audio_message_name(name) => name.clone(),
            Some(name) => {
                tracing::error!(name = %name, "record_message node names an invalid audio message");
                return Err(Stop::Failed);
            }
            None => self.choose().await?,
        };
        tracing::info!(call = %self.call.info().call_id, name = %name, "managing an audio message");
        let mut intro = Vec::new();
        if let Some(number) = name.strip_prefix(NUMBER_PREFIX)
            && number.bytes().all(|b| b.is_ascii_digit())
        {
            intro.extend(self.prompt(&["rm-message"]));
            intro.extend(self.ctx.prompts.digits(&self.lang, number));
        }
        let mut first = Some(intro);
        loop {
            let before = first.take().unwrap_or_default();
            match self.menu(before, &["rm-menu"], "12#").await? {
                '1' => self.record(&name).await?,
                '2' => self.listen(&name).await?,
                _ => return Ok(()),
            }
        }
    }

    /// Asks for the message number: digits, then `#`.
    async fn choose(&mut self) -> Step<String> {
        let mut failures = 0;
        loop {
            if let Some(entry) = self.read_entry(&["rm-enter-number"]).await? {
                if let Some(name) = name_for_number(&entry) {
                    return Ok(name);
                }
                let invalid = self.prompt(&["vm-invalid"]);
                self.say(invalid).await?;
            }
            failures += 1;
            if failures >= self.ctx.options.max_retries {
                return Err(Stop::NoInput);
            }
        }
    }

    /// Beep, record until `#`, save under `name` if long enough.
    async fn record(&mut self, name: &str) -> Step<()> {
        self.pending = None;
        let mut items = self.prompt(&["vm-record-after-beep"]);
        items.push(self.ctx.beep.clone());
        self.call.play(items).await?;
        let store = self.ctx.store.clone();
        let writer = match blocking(move || store.begin_audio_message_recording()).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a recording");
                return self.say_names(&["vm-error"]).await;
            }
        };
        let vm = &self.ctx.config.voicemail;
        let max_seconds = self
            .ctx
            .options
            .max_seconds
            .unwrap_or(vm.max_message_seconds);
        let options = RecordOptions {
            max_samples: u64::from(max_seconds) * 8000,
            silence_timeout_samples: u64::from(vm.silence_timeout_seconds) * 8000,
            silence_threshold: vm.silence_threshold,
            stop_digits: "#".into(),
        };
        let min_samples = (vm.min_message_seconds * 8000.0) as usize;
        let Some(recorded) = self.call.record(writer, options).await else {
            return Err(Stop::HungUp);
        };
        let writer = recorded.writer;
        let finished = blocking(move || writer.finish_scratch()).await;
        if self.call.is_hung_up() {
            // Dropping the recording deletes it: the message stays as it was.
            return Err(Stop::HungUp);
        }
        let rec = match finished {
            Ok(rec) => rec,
            Err(e) => {
                tracing::error!(error = %e, "recording failed");
                return self.say_names(&["vm-error"]).await;
            }
        };
        if rec.samples().is_empty() || rec.samples().len() < min_samples {
            return self.say_names(&["vm-too-short"]).await;
        }
        let (store, n) = (self.ctx.store.clone(), name.to_owned());
        match blocking(move || store.save_audio_message(&n, rec.samples())).await {
            Ok(()) => {
                tracing::info!(name, "audio message recorded by phone");
                self.say_names(&["vm-recording-saved"]).await
            }
            Err(e) => {
                tracing::error!(name, error = %e, "saving the audio message failed");
                self.say_names(&["vm-error"]).await
            }
        }
    }

    /// Plays the current recording, or says there is none.
    async fn listen(&mut self, name: &str) -> Step<()> {
        let (store, n) = (self.ctx.store.clone(), name.to_owned());
        match blocking(move || store.load_audio_message(&n)).await {
            Ok(Some(samples)) if !samples.is_empty() => self.say(vec![Pcm::from(samples)]).await,
            Ok(_) => self.say_names(&["rm-no-recording"]).await,
            Err(e) => {
                tracing::error!(name, error = %e, "cannot read the audio message");
                self.say_names(&["vm-error"]).await
            }
        }
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

    /// Plays a question; the first key during it or within the key timeout
    /// after it (`None`: silence).
    async fn ask(&mut self, items: Vec<Pcm>) -> Step<Option<char>> {
        let timeout = self.ctx.options.key_timeout;
        Ok(keys::ask(&mut *self.call, &mut self.pending, items, timeout).await?)
    }

    /// Asks until one of `valid` is pressed, `first` played before the
    /// prompt the first time round.
    async fn menu(&mut self, first: Vec<Pcm>, names: &[&str], valid: &str) -> Step<char> {
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
    /// if nothing at all was pressed.
    async fn read_entry(&mut self, names: &[&str]) -> Step<Option<String>> {
        let items = self.prompt(names);
        let Some(first) = self.ask(items).await? else {
            return Ok(None);
        };
        // One key past the longest name, so a too-long entry is noticed.
        let limit = AUDIO_MESSAGE_NAME_MAX + 1;
        let timeout = self.ctx.options.inter_digit_timeout;
        Ok(Some(
            keys::read_entry_from(&mut *self.call, first, limit, timeout).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::OnceLock;

    use super::*;
    use crate::call::fake::{Action, FakeCall, Input};
    use crate::media::tone;

    fn prompts() -> PromptCache {
        static CACHE: OnceLock<PromptCache> = OnceLock::new();
        CACHE
            .get_or_init(|| {
                PromptCache::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")).unwrap()
            })
            .clone()
    }

    fn keys(s: &str) -> Input {
        Input::Digits(s.into())
    }

    fn audio(samples: usize) -> String {
        format!("audio:{samples}")
    }

    fn beep() -> String {
        audio(tone::beep().len())
    }

    struct Fx {
        dir: tempfile::TempDir,
        config: Config,
        store: Store,
    }

    fn fx() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        Fx {
            store: Store::open(dir.path()).unwrap(),
            config: Config::parse("", "test.toml").unwrap(),
            dir,
        }
    }

    fn target(message: Option<&str>) -> RecordTarget {
        RecordTarget {
            message: message.map(str::to_owned),
            language: "en".into(),
        }
    }

    impl Fx {
        async fn call(&self, target: &RecordTarget, script: Vec<Input>) -> (AppResult, FakeCall) {
            let ctx = RecordMessageContext::new(
                &self.config,
                self.store.clone(),
                prompts(),
                Pcm::from(tone::beep()),
            );
            let mut call = FakeCall::new("1001", "*97", script).with_prompts(prompts());
            let result = run(&mut call, &ctx, target).await;
            (result, call)
        }

        fn scratch_files(&self) -> usize {
            std::fs::read_dir(self.dir.path().join("scratch"))
                .map(|d| d.count())
                .unwrap_or(0)
        }
    }

    #[track_caller]
    fn assert_in_order(played: &[String], want: &[&str]) {
        let mut it = played.iter();
        for w in want {
            assert!(
                it.any(|p| p == w),
                "{w:?} missing (or out of order) in {played:?}, wanted {want:?}"
            );
        }
    }

    #[track_caller]
    fn assert_goodbye(call: &FakeCall) {
        assert_eq!(
            call.played().last().map(String::as_str),
            Some("vm-goodbye-only")
        );
        assert_eq!(call.log.last(), Some(&Action::HungUp));
    }

    #[test]
    fn numbers_make_names() {
        assert_eq!(name_for_number("42").as_deref(), Some("msg-42"));
        assert_eq!(name_for_number("007").as_deref(), Some("msg-007"));
        let longest = "9".repeat(AUDIO_MESSAGE_NAME_MAX - NUMBER_PREFIX.len());
        assert!(is_valid_audio_message_name(
            &name_for_number(&longest).unwrap()
        ));
        assert_eq!(name_for_number(&format!("{longest}9")), None);
        for bad in ["", "1*2", "#", "12a"] {
            assert_eq!(name_for_number(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn enter_a_number_record_listen_and_end() {
        let f = fx();
        let (result, call) = f
            .call(
                &target(None),
                vec![
                    keys("42#"),
                    Input::Silence,
                    keys("1"),
                    Input::Speak(2.0),
                    keys("#"),
                    Input::Silence,
                    Input::Silence,
                    keys("2"),
                    Input::Silence,
                    keys("#"),
                ],
            )
            .await;
        assert_eq!(result, AppResult::Done);
        let played = call.played();
        assert_in_order(
            &played,
            &[
                "rm-enter-number",
                "rm-message",
                "digit-4",
                "digit-2",
                "rm-menu",
                "vm-record-after-beep",
                &beep(),
                "vm-recording-saved",
                "rm-menu",
                &audio(16000),
                "rm-menu",
            ],
        );
        assert_goodbye(&call);
        let saved = f.store.load_audio_message("msg-42").unwrap().unwrap();
        assert_eq!(saved.len(), 16000);
        assert_eq!(f.store.list_audio_messages().unwrap(), vec!["msg-42"]);
        assert_eq!(f.scratch_files(), 0);
    }

    #[tokio::test]
    async fn a_named_message_is_not_asked_for_and_listening_says_when_absent() {
        let f = fx();
        let (result, call) = f
            .call(
                &target(Some("welcome")),
                vec![keys("2"), Input::Silence, keys("#")],
            )
            .await;
        assert_eq!(result, AppResult::Done);
        let played = call.played();
        assert_eq!(played[0], "rm-menu");
        assert!(
            !played
                .iter()
                .any(|p| p == "rm-enter-number" || p == "rm-message")
        );
        assert_in_order(&played, &["rm-no-recording", "rm-menu", "vm-goodbye-only"]);

        f.store.save_audio_message("welcome", &[7; 3000]).unwrap();
        let (_, call) = f
            .call(
                &target(Some("welcome")),
                vec![keys("2"), Input::Silence, keys("#")],
            )
            .await;
        assert_in_order(
            &call.played(),
            &[&audio(3000), "rm-menu", "vm-goodbye-only"],
        );
        assert!(!call.played().contains(&"rm-no-recording".to_string()));
    }

    #[tokio::test]
    async fn recording_again_replaces_but_a_short_one_does_not() {
        let f = fx();
        f.store.save_audio_message("msg-5", &[1; 8000]).unwrap();
        let (_, call) = f
            .call(
                &target(Some("msg-5")),
                vec![
                    keys("1"),
                    Input::Speak(0.5),
                    keys("#"),
                    Input::Silence,
                    keys("#"),
                ],
            )
            .await;
        assert!(call.played().contains(&"vm-too-short".to_string()));
        assert_eq!(
            f.store.load_audio_message("msg-5").unwrap(),
            Some(vec![1; 8000])
        );

        let (_, call) = f
            .call(
                &target(Some("msg-5")),
                vec![
                    keys("1"),
                    Input::Speak(3.0),
                    keys("#"),
                    Input::Silence,
                    keys("#"),
                ],
            )
            .await;
        assert!(call.played().contains(&"vm-recording-saved".to_string()));
        assert_eq!(
            f.store.load_audio_message("msg-5").unwrap().unwrap().len(),
            24000
        );
        assert_eq!(f.scratch_files(), 0);
    }

    #[tokio::test]
    async fn hanging_up_while_recording_keeps_the_old_message() {
        let f = fx();
        f.store.save_audio_message("msg-5", &[1; 8000]).unwrap();
        let (result, call) = f
            .call(
                &target(Some("msg-5")),
                vec![keys("1"), Input::Speak(2.0), Input::Hangup],
            )
            .await;
        assert_eq!(result, AppResult::HungUp);
        assert!(matches!(call.log.last(), Some(Action::Recorded { .. })));
        assert_eq!(
            f.store.load_audio_message("msg-5").unwrap(),
            Some(vec![1; 8000])
        );
        assert_eq!(f.scratch_files(), 0);
    }

    #[tokio::test]
    async fn bad_numbers_then_giving_up_says_goodbye() {
        let f = fx();
        let (result, call) = f
            .call(
                &target(None),
                vec![keys("12*3#"), Input::Silence, keys("#")],
            )
            .await;
        assert_eq!(result, AppResult::Done);
        let played = call.played();
        assert_eq!(played.iter().filter(|p| *p == "vm-invalid").count(), 2);
        assert_eq!(played.iter().filter(|p| *p == "rm-enter-number").count(), 3);
        assert!(!played.contains(&"rm-menu".to_string()));
        assert_goodbye(&call);
        assert!(f.store.list_audio_messages().unwrap().is_empty());
    }

    #[tokio::test]
    async fn invalid_menu_keys_and_silence_run_out() {
        let f = fx();
        let (result, call) = f
            .call(
                &target(Some("msg-1")),
                vec![keys("7"), Input::Silence, Input::Silence],
            )
            .await;
        assert_eq!(result, AppResult::Done);
        assert_eq!(
            call.played(),
            vec![
                // A msg-<number> given by the node is announced too, once.
                "rm-message",
                "digit-1",
                "rm-menu",
                "vm-invalid",
                "rm-menu",
                "rm-menu",
                "vm-goodbye-only"
            ]
        );
        assert_goodbye(&call);
    }

    #[tokio::test]
    async fn an_invalid_node_name_is_an_error() {
        let f = fx();
        let (result, call) = f.call(&target(Some("../etc")), vec![keys("1")]).await;
        assert_eq!(result, AppResult::Done);
        assert_eq!(call.played(), vec!["vm-error", "vm-goodbye-only"]);
        assert!(!f.dir.path().join("etc.wav").exists());
    }

    #[tokio::test]
    async fn hanging_up_in_the_menu() {
        let f = fx();
        let (result, call) = f.call(&target(Some("msg-1")), vec![Input::Hangup]).await;
        assert_eq!(result, AppResult::HungUp);
        assert_ne!(call.log.last(), Some(&Action::HungUp));
    }
}
