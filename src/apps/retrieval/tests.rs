//! Retrieval over the scripted fake call, with a temporary store and the
//! committed prompts. Every key of the menus is pressed somewhere here.
//!
//! The fake call lets a key at the head of the script barge into the next
//! interruptible prompt, so announcements and menus that the caller answers
//! at once show up in `played()` as cut short; that is what a fast caller
//! does on a real line too.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::Params;
use jiff::Timestamp;

use super::*;
use crate::call::fake::{Action, FakeCall, Input};
use crate::config::Config;
use crate::media::session::StopReason;
use crate::store::security::PinCheck;
use crate::store::{Folder, GreetingKind, MessageId, MessageMeta, NewMessage};

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
"#;

fn prompts() -> PromptCache {
    static CACHE: OnceLock<PromptCache> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            PromptCache::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")).unwrap()
        })
        .clone()
}

fn cheap_security(dir: &Path) -> SecurityStore {
    SecurityStore::open(dir)
        .unwrap()
        .with_hash_params(Params::new(Params::MIN_M_COST, 1, 1, None).unwrap())
}

struct Fx {
    dir: tempfile::TempDir,
    config: Config,
    store: Store,
    security: SecurityStore,
    clock: Arc<Mutex<Timestamp>>,
    /// The call's language, as the dial plan hands it over.
    language: String,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let security = cheap_security(dir.path());
    Fx {
        config: Config::parse(CONFIG, "test.toml").unwrap(),
        store,
        security,
        clock: Arc::new(Mutex::new("2026-03-10T09:30:00Z".parse().unwrap())),
        language: "en".into(),
        dir,
    }
}

fn mb(s: &str) -> MailboxId {
    MailboxId::try_from(s).unwrap()
}

fn keys(s: &str) -> Input {
    Input::Digits(s.into())
}

impl Fx {
    fn ctx(&self) -> RetrievalContext<'_> {
        let clock = self.clock.clone();
        RetrievalContext::new(
            &self.config,
            self.store.clone(),
            prompts(),
            Pcm::from(crate::media::tone::beep()),
            self.security.clone(),
        )
        .with_language(self.language.clone())
        .with_clock(move || *clock.lock().unwrap())
    }

    /// Sets a box's `timezone` (as config.toml would).
    fn set_zone(&mut self, mailbox: &str, zone: &str) {
        let m = self.config.mailboxes.iter_mut();
        m.filter(|m| m.number == mailbox)
            .for_each(|m| m.timezone = zone.into());
    }

    fn set_now(&self, t: &str) {
        *self.clock.lock().unwrap() = t.parse().unwrap();
    }

    /// A message of `seconds` (so `audio:<seconds*8000>` when played).
    fn deposit(&self, mailbox: &str, folder: Folder, seconds: f64, at: &str) -> MessageMeta {
        let mut w = self
            .store
            .begin_message(NewMessage {
                mailbox: mb(mailbox),
                caller_number: "+3225550100".into(),
                caller_name: None,
                called_number: mailbox.into(),
                call_id: "dep".into(),
                codec: "PCMU".into(),
                started_at: at.parse().unwrap(),
            })
            .unwrap();
        let n = (seconds * 8000.0) as usize;
        let tone: Vec<i16> = (0..n).map(|i| ((i % 40) as i16 - 20) * 300).collect();
        w.write(&tone).unwrap();
        let meta = w.finish(0).unwrap().unwrap();
        if folder != Folder::Inbox {
            let id = MessageId::try_from(meta.id.as_str()).unwrap();
            return self
                .store
                .move_message(&mb(mailbox), Folder::Inbox, folder, &id)
                .unwrap();
        }
        meta
    }

    fn count(&self, mailbox: &str, folder: Folder) -> usize {
        self.store
            .list_messages(&mb(mailbox), folder)
            .unwrap()
            .len()
    }

    fn ids(&self, mailbox: &str, folder: Folder) -> Vec<String> {
        self.store
            .list_messages(&mb(mailbox), folder)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect()
    }

    async fn call(&self, access: Access, script: Vec<Input>) -> (RetrievalOutcome, FakeCall) {
        let mut call = FakeCall::new("1001", "*98", script).with_prompts(prompts());
        let outcome = run(&mut call, &self.ctx(), access).await;
        (outcome, call)
    }
}

fn any(mailbox: &str) -> Access {
    Access::Any {
        mailbox: mailbox.into(),
    }
}

/// `want` appears in `played` in this order (other prompts in between).
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

/// The last prompt of an envelope for a message of `seconds`.
fn envelope_tail(seconds: f64) -> [String; 1] {
    let names = crate::prompts::say::duration_names("en", seconds);
    [names.last().unwrap().to_string()]
}

fn count_of(played: &[String], name: &str) -> usize {
    played.iter().filter(|p| *p == name).count()
}

fn audio(seconds: f64) -> String {
    format!("audio:{}", (seconds * 8000.0) as usize)
}

#[track_caller]
fn assert_goodbye(call: &FakeCall) {
    assert_eq!(
        call.played().last().map(String::as_str),
        Some("vm-goodbye-only")
    );
    assert_eq!(call.log.last(), Some(&Action::HungUp));
}

// --- Login ------------------------------------------------------------------

#[tokio::test]
async fn login_into_a_full_box_hears_the_warning_first() {
    let mut f = fx();
    f.config = with_limit("1001", 2);
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Old, 2.0, "2026-03-08T10:00:00Z");
    // Saved messages do not count.
    f.deposit("1001", Folder::Saved, 3.0, "2026-03-07T10:00:00Z");
    let (_, call) = f
        .call(any("1001"), vec![keys("1234#"), Input::Silence, keys("#")])
        .await;
    let played = call.played();
    let at = played.iter().position(|p| p == "vm-password").unwrap();
    assert_eq!(
        played[at + 1..at + 3],
        ["vm-your-mailbox-full".to_string(), "vm-youhave".to_string()]
    );
    assert_eq!(count_of(&played, "vm-your-mailbox-full"), 1);
    // One message fewer: no warning.
    let mut f = fx();
    f.config = with_limit("1001", 2);
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Saved, 3.0, "2026-03-07T10:00:00Z");
    let (_, call) = f
        .call(any("1001"), vec![keys("1234#"), Input::Silence, keys("#")])
        .await;
    assert!(!call.played().contains(&"vm-your-mailbox-full".to_string()));
}

#[tokio::test]
async fn any_box_asks_pin_then_counts_and_exit_says_goodbye() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    f.deposit("1001", Folder::Old, 2.0, "2026-03-08T10:00:00Z");
    let (out, call) = f
        .call(any("1001"), vec![keys("1234#"), Input::Silence, keys("#")])
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    assert_eq!(played[0], "vm-password");
    assert_in_order(
        &played,
        &[
            "vm-password",
            "vm-youhave",
            "digit-2",
            "vm-new-pl",
            "vm-messages",
            "vm-and",
            "num-1-count",
            "vm-old",
            "vm-message",
            "vm-main-menu",
            "vm-goodbye-only",
        ],
    );
    assert!(!played.contains(&"vm-login".to_string()));
    // `#` says goodbye and hands the call back to the dial plan, still up.
    assert_eq!(
        call.played().last().map(String::as_str),
        Some("vm-goodbye-only")
    );
    assert!(!call.is_hung_up());
    // Nothing was listened to: nothing moved.
    assert_eq!(
        (f.count("1001", Folder::Inbox), f.count("1001", Folder::Old)),
        (2, 1)
    );
}

#[tokio::test]
async fn trusted_own_box_skips_the_pin() {
    let f = fx();
    let own = Access::Own {
        mailbox: Some("1001".into()),
        trusted: true,
    };
    let (out, call) = f.call(own, vec![keys("#")]).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    assert!(!played.contains(&"vm-password".to_string()), "{played:?}");
    assert!(!played.contains(&"vm-login".to_string()), "{played:?}");
    assert_eq!(played[0], "vm-no-messages");
}

#[tokio::test]
async fn untrusted_own_box_asks_only_the_pin() {
    let f = fx();
    let own = Access::Own {
        mailbox: Some("1001".into()),
        trusted: false,
    };
    let (out, call) = f.call(own, vec![keys("1234#"), keys("#")]).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    assert_eq!(call.played()[0], "vm-password");
    assert!(!call.played().contains(&"vm-login".to_string()));
}

#[tokio::test]
async fn own_box_unknown_caller_asks_the_box_number() {
    let f = fx();
    f.deposit("1002", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    // A trusted flag does not help a caller id that is no box.
    let own = Access::Own {
        mailbox: Some("5555".into()),
        trusted: true,
    };
    let (out, call) = f
        .call(own, vec![keys("1002#"), keys("5678#"), keys("#")])
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1002".into()
        }
    );
    assert_in_order(
        &call.played(),
        &[
            "vm-login",
            "vm-password",
            "vm-youhave",
            "num-1-count",
            "vm-new",
            "vm-message",
        ],
    );
    let own = Access::Own {
        mailbox: None,
        trusted: false,
    };
    let (out, call) = f
        .call(own, vec![keys("1001#"), keys("1234#"), keys("#")])
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    assert_eq!(call.played()[..2], ["vm-login", "vm-password"]);
}

#[tokio::test]
async fn three_wrong_pins_end_the_call() {
    let f = fx();
    let (out, call) = f
        .call(
            any("1001"),
            vec![keys("1111#"), keys("2222#"), keys("3333#"), keys("1234#")],
        )
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::LoginFailed {
            mailbox: Some("1001".into())
        }
    );
    let played = call.played();
    assert_eq!(count_of(&played, "vm-password"), 3);
    assert_eq!(count_of(&played, "vm-incorrect"), 3);
    assert!(!played.contains(&"vm-main-menu".to_string()));
    assert_goodbye(&call);
    // The failures were counted on disk (3 of the 5 allowed).
    let now = *f.clock.lock().unwrap();
    assert_eq!(
        cheap_security(f.dir.path())
            .check_pin(&mb("1001"), "1234", "0", now)
            .unwrap(),
        PinCheck::Rejected {
            failures: 4,
            locked_until: None
        }
    );
}

#[tokio::test]
async fn silence_at_the_pin_prompt_counts_as_an_attempt_but_not_on_disk() {
    let f = fx();
    let (out, call) = f
        .call(
            any("1001"),
            vec![Input::Silence, Input::Silence, Input::Silence],
        )
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::LoginFailed {
            mailbox: Some("1001".into())
        }
    );
    assert_eq!(count_of(&call.played(), "vm-incorrect"), 3);
    let now = *f.clock.lock().unwrap();
    assert_eq!(
        f.security.check_pin(&mb("1001"), "1234", "0", now).unwrap(),
        PinCheck::Rejected {
            failures: 1,
            locked_until: None
        }
    );
}

#[tokio::test]
async fn unknown_box_is_refused_like_a_wrong_pin() {
    let f = fx();
    let own = Access::Own {
        mailbox: None,
        trusted: false,
    };
    let script = vec![
        keys("9999#"),
        keys("1234#"),
        keys("1001#"),
        keys("0000#"),
        keys("9999#"),
        keys("9999#"),
    ];
    let (out, call) = f.call(own, script).await;
    assert_eq!(
        out,
        RetrievalOutcome::LoginFailed {
            mailbox: Some("9999".into())
        }
    );
    let played = call.played();
    assert_eq!(count_of(&played, "vm-login"), 3);
    assert_eq!(
        count_of(&played, "vm-password"),
        3,
        "the PIN is asked even for an unknown box"
    );
    assert_eq!(count_of(&played, "vm-incorrect"), 3);
    // No state is created for a box that does not exist.
    assert!(!f.dir.path().join("security/9999.json").exists());
    assert!(f.dir.path().join("security/1001.json").exists());
}

#[tokio::test]
async fn repeated_failures_lock_the_box_across_calls_and_restarts() {
    let mut f = fx();
    // Call 1: three wrong PINs. Call 2: two more lock the box.
    let (out, _) = f
        .call(any("1001"), vec![keys("1#"), keys("2#"), keys("3#")])
        .await;
    assert!(matches!(out, RetrievalOutcome::LoginFailed { .. }));
    let (out, call) = f
        .call(any("1001"), vec![keys("4#"), keys("5#"), keys("1234#")])
        .await;
    let until: Timestamp = "2026-03-10T09:45:00Z".parse().unwrap();
    assert_eq!(
        out,
        RetrievalOutcome::Locked {
            mailbox: "1001".into(),
            until
        }
    );
    assert_in_order(
        &call.played(),
        &[
            "vm-incorrect",
            "vm-incorrect",
            "vm-locked",
            "vm-goodbye-only",
        ],
    );
    assert_eq!(
        count_of(&call.played(), "vm-password"),
        2,
        "no third try once locked"
    );

    // "Restart": a new security store over the same directory. The right
    // PIN is not even asked for while locked.
    f.security = cheap_security(f.dir.path());
    f.set_now("2026-03-10T09:44:59Z");
    let (out, call) = f.call(any("1001"), vec![keys("1234#"), keys("#")]).await;
    assert_eq!(
        out,
        RetrievalOutcome::Locked {
            mailbox: "1001".into(),
            until
        }
    );
    assert_eq!(call.played(), ["vm-locked", "vm-goodbye-only"]);

    // After the lockout the right PIN works.
    f.set_now("2026-03-10T09:45:00Z");
    let (out, _) = f.call(any("1001"), vec![keys("1234#"), keys("#")]).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    // And a trusted *98 call is not affected by someone guessing on *99.
    f.set_now("2026-03-10T09:30:00Z");
    for _ in 0..2 {
        f.call(any("1002"), vec![keys("1#"), keys("2#"), keys("3#")])
            .await;
    }
    let own = Access::Own {
        mailbox: Some("1002".into()),
        trusted: true,
    };
    let (out, _) = f.call(own, vec![keys("#")]).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1002".into()
        }
    );
}

#[tokio::test]
async fn missing_language_prompts_fall_back_to_english() {
    let mut f = fx();
    // Bypasses config validation: a language without prompts.
    f.config.mailboxes[0].language = Some("xx".into());
    let (out, call) = f
        .call(any("1001"), vec![keys("1234#"), Input::Silence, keys("#")])
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    assert_in_order(
        &call.played(),
        &[
            "vm-password",
            "vm-no-messages",
            "vm-main-menu",
            "vm-goodbye-only",
        ],
    );
}

/// `name` in `lang`, as a call without the catalogue logs it.
fn heard(lang: &str, name: &str) -> String {
    format!("audio:{}", prompts().get(lang, name).unwrap().len())
}

/// A retrieval call that logs prompts by length, which tells languages apart.
async fn bare_call(f: &Fx, access: Access, script: Vec<Input>) -> Vec<String> {
    let mut call = FakeCall::new("1001", "*99", script);
    run(&mut call, &f.ctx(), access).await;
    call.played()
}

#[tokio::test]
async fn the_call_language_until_login_then_the_box_language() {
    for name in ["vm-password", "vm-goodbye-only"] {
        let (es, fr) = (heard("es", name), heard("fr", name));
        assert!(es != fr && es != heard("en", name), "{name}");
    }
    let mut f = fx();
    f.language = "es".into();
    let script = vec![keys("5678#"), Input::Silence, keys("#")];
    // 1002 is a French box: Spanish (the call's) before its PIN, French
    // after.
    let played = bare_call(&f, any("1002"), script).await;
    assert_eq!(played[0], heard("es", "vm-password"));
    assert_eq!(played.last().unwrap(), &heard("fr", "vm-goodbye-only"));
    assert!(!played.contains(&heard("es", "vm-goodbye-only")));

    // A box that sets no language keeps the call's after login.
    f.config.mailboxes[0].language = None;
    let script = vec![keys("1234#"), Input::Silence, keys("#")];
    let played = bare_call(&f, any("1001"), script).await;
    assert_eq!(played[0], heard("es", "vm-password"));
    assert_eq!(played.last().unwrap(), &heard("es", "vm-goodbye-only"));

    // *98 asking for the box number: the call's language too.
    let own = Access::Own {
        mailbox: None,
        trusted: false,
    };
    let script = vec![keys("1002#"), keys("5678#"), Input::Silence, keys("#")];
    let played = bare_call(&f, own, script).await;
    assert_eq!(played[0], heard("es", "vm-login"));
    assert_eq!(played[1], heard("es", "vm-password"));
    assert_eq!(played.last().unwrap(), &heard("fr", "vm-goodbye-only"));
}

// --- Listening --------------------------------------------------------------

#[tokio::test]
async fn listen_plays_new_then_old_and_heard_messages_become_old() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    f.deposit("1001", Folder::Old, 2.0, "2026-03-08T10:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("6"),
        keys("6"),
        keys("6"),
        keys("#"),
    ];
    let (out, call) = f.call(any("1001"), script).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    assert_in_order(
        &played,
        &[
            "vm-message",
            "digit-1",
            &audio(1.0),
            "vm-message",
            "digit-2",
            &audio(1.5),
            "vm-message",
            "digit-3",
            &audio(2.0),
            "vm-no-more",
        ],
    );
    assert_eq!(f.count("1001", Folder::Inbox), 0);
    assert_eq!(f.count("1001", Folder::Old), 3);
}

#[tokio::test]
async fn a_message_arriving_during_the_call_is_counted_and_heard() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    // After login (and the "you have 1 new" count), a second caller leaves
    // a message; then the caller listens.
    let store = f.store.clone();
    let hook = move || {
        let mut w = store
            .begin_message(crate::store::NewMessage {
                mailbox: mb("1001"),
                caller_number: "2000".into(),
                caller_name: None,
                called_number: "1001".into(),
                call_id: "arrived-mid-call".into(),
                codec: "PCMU".into(),
                started_at: jiff::Timestamp::now(),
            })
            .unwrap();
        w.write(&vec![1000i16; 12000]).unwrap();
        w.finish(0).unwrap().unwrap();
    };
    let script = vec![
        keys("1234#"),
        Input::Hook(0),
        keys("1"),
        keys("6"),
        keys("6"),
        keys("#"),
    ];
    let mut call = FakeCall::new("1001", "*98", script)
        .with_prompts(prompts())
        .with_hook(hook);
    let out = run(&mut call, &f.ctx(), any("1001")).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    // The count said one; listening found both, in arrival order.
    assert_in_order(&played, &["vm-youhave", "num-1-count", "vm-new"]);
    assert_in_order(
        &played,
        &["digit-1", &audio(1.0), "digit-2", &audio(1.5), "vm-no-more"],
    );
    assert_eq!(f.count("1001", Folder::Inbox), 0, "both heard");
    assert_eq!(f.count("1001", Folder::Old), 2);
}

#[tokio::test]
async fn message_menu_offers_only_what_applies() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    // After message 1 (silence), after message 2 (silence), then exit.
    let script = vec![
        keys("1234#1"),
        Input::Silence,
        keys("6"),
        Input::Silence,
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    let menus: Vec<Vec<String>> = call
        .log
        .iter()
        .filter_map(|a| match a {
            Action::Played { names, .. }
                if names.first().is_some_and(|n| n == "vm-opt-envelope") =>
            {
                Some(names.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        menus[0],
        [
            "vm-opt-envelope",
            "vm-opt-repeat",
            "vm-opt-next",
            "vm-opt-delete",
            "vm-opt-forward",
            "vm-opt-save",
            "vm-opt-help-exit"
        ]
    );
    assert_eq!(
        menus.last().unwrap(),
        &[
            "vm-opt-envelope",
            "vm-opt-prev",
            "vm-opt-repeat",
            "vm-opt-delete",
            "vm-opt-forward",
            "vm-opt-save",
            "vm-opt-help-exit"
        ]
    );
}

#[tokio::test]
async fn a_key_during_a_message_stops_it_and_acts() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    // 6 barges into message 1; # skips to the end of message 2; # exits.
    let (out, call) = f
        .call(
            any("1001"),
            vec![keys("1234#"), keys("1"), keys("6"), keys("#"), keys("#")],
        )
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let barged: Vec<(Vec<String>, Option<char>)> = call
        .log
        .iter()
        .filter_map(|a| match a {
            Action::Played {
                names,
                interrupted_by,
            } if names.iter().any(|n| n.starts_with("audio:")) => {
                Some((names.clone(), *interrupted_by))
            }
            _ => None,
        })
        .collect();
    assert_eq!(barged.len(), 2, "{barged:?}");
    assert_eq!(barged[0].0.last().unwrap(), &audio(1.0));
    assert_eq!(barged[0].1, Some('6'));
    assert_eq!(barged[1].0.last().unwrap(), &audio(1.5));
    assert_eq!(barged[1].1, Some('#'));
    // Both were heard (in part): both old.
    assert_eq!(f.count("1001", Folder::Old), 2);
}

#[tokio::test]
async fn previous_repeat_and_first() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("4"),
        keys("6"),
        keys("4"),
        keys("5"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    let played = call.played();
    assert_in_order(
        &played,
        &[
            &audio(1.0),
            "vm-first",
            &audio(1.5),
            &audio(1.0),
            &audio(1.0),
        ],
    );
    assert_eq!(count_of(&played, &audio(1.0)), 3);
}

#[tokio::test]
async fn delete_toggles_and_is_applied_on_exit() {
    let f = fx();
    let m1 = f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let m2 = f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    // Delete 1 (message 2 plays next), back to 1 (marked: "undelete" is
    // offered); on 2: delete then undelete (the second 7, pressed over
    // "deleted", comes before the move on to the next message).
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("7"),
        Input::Silence,
        keys("4"),
        Input::Silence,
        keys("6"),
        keys("7"),
        keys("7"),
        Input::Silence,
        keys("#"),
    ];
    let (out, call) = f.call(any("1001"), script).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    assert_in_order(
        &played,
        &[
            "vm-deleted",
            &audio(1.5),
            &audio(1.0),
            "vm-opt-undelete",
            &audio(1.5),
            "vm-deleted",
            "vm-undeleted",
            "vm-opt-delete",
        ],
    );
    assert_eq!(count_of(&played, "vm-no-more"), 0);
    assert_eq!(f.ids("1001", Folder::Old), vec![m2.id]);
    assert_eq!(f.count("1001", Folder::Inbox), 0);
    let dir = f.dir.path().join("mailboxes/1001");
    let files: Vec<_> = ["inbox", "old", "saved"]
        .iter()
        .flat_map(|d| std::fs::read_dir(dir.join(d)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().all(|n| !n.starts_with(&m1.id)), "{files:?}");
    assert_eq!(
        files.len(),
        2,
        "only message 2's wav and json remain: {files:?}"
    );
}

#[tokio::test]
async fn deletions_are_applied_when_the_caller_hangs_up() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let (out, _) = f
        .call(
            any("1001"),
            vec![keys("1234#"), keys("1"), keys("7"), Input::Hangup],
        )
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::HungUp {
            mailbox: Some("1001".into())
        }
    );
    assert_eq!(
        f.count("1001", Folder::Inbox) + f.count("1001", Folder::Old),
        0
    );
}

#[tokio::test]
async fn deletions_are_applied_when_leaving_the_folder() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Old, 2.0, "2026-03-08T10:00:00Z");
    // Delete message 1, go to the old folder: only one old message is left
    // there to count and hear.
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("7"),
        keys("2"),
        keys("2"),
        Input::Silence,
        keys("1"),
        Input::Silence,
        keys("6"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    let played = call.played();
    assert_in_order(
        &played,
        &[
            "vm-deleted",
            "vm-choose-folder",
            "vm-folder-old",
            "vm-youhave",
            "num-1-count",
            "vm-old",
            "vm-message",
            &audio(2.0),
            "vm-no-more",
        ],
    );
    assert_eq!(count_of(&played, &audio(1.0)), 1);
    assert_eq!(f.count("1001", Folder::Old), 1);
}

#[tokio::test]
async fn save_moves_the_message_to_saved() {
    let f = fx();
    let m = f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let (_, call) = f
        .call(
            any("1001"),
            vec![keys("1234#"), keys("1"), keys("9"), keys("#")],
        )
        .await;
    assert_in_order(&call.played(), &[&audio(1.0), "vm-saved"]);
    assert_eq!(f.ids("1001", Folder::Saved), vec![m.id]);
    assert_eq!(
        f.count("1001", Folder::Inbox) + f.count("1001", Folder::Old),
        0
    );
}

#[tokio::test]
async fn saved_then_deleted_message_is_deleted_from_saved() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let (_, _) = f
        .call(
            any("1001"),
            vec![keys("1234#"), keys("1"), keys("9"), keys("7"), keys("#")],
        )
        .await;
    assert_eq!(f.count("1001", Folder::Saved), 0);
    assert_eq!(f.count("1001", Folder::Old), 0);
}

// --- Next after a command ([voicemail] next_after_command) -------------------

#[tokio::test]
async fn urgent_messages_play_first_and_are_said_urgent() {
    let mut f = fx();
    f.config.voicemail.envelope = false;
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let later = f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    let id = MessageId::try_from(later.id.as_str()).unwrap();
    f.store
        .set_message_urgent(&mb("1001"), Folder::Inbox, &id, true)
        .unwrap();
    let script = vec![
        keys("1234#"),
        keys("1"),
        Input::Silence,
        keys("6"),
        Input::Silence,
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    let played = call.played();
    // The later, urgent one first, said urgent; then the other, not.
    let first = played.iter().position(|p| *p == audio(1.5)).unwrap();
    assert_eq!(
        played[first - 3..first],
        ["vm-urgent", "vm-message", "digit-1"]
    );
    let second = played.iter().position(|p| *p == audio(1.0)).unwrap();
    assert!(second > first);
    assert_eq!(played[second - 2..second], ["vm-message", "digit-2"]);
    assert_eq!(count_of(&played, "vm-urgent"), 1);
}

#[tokio::test]
async fn each_message_is_introduced_by_its_envelope_unless_turned_off() {
    let mut f = fx();
    assert!(f.config.voicemail.envelope, "the default");
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let script = vec![keys("1234#"), keys("1"), Input::Silence, keys("#")];
    let (_, call) = f.call(any("1001"), script.clone()).await;
    let played = call.played();
    let at = played.iter().position(|p| p == "vm-received").unwrap() - 2;
    assert_eq!(played[at..at + 3], ["vm-message", "digit-1", "vm-received"]);
    let audio_at = played.iter().position(|p| *p == audio(1.0)).unwrap();
    // Date, time, caller and length come between the number and the audio.
    assert_in_order(
        &played[at..audio_at],
        &["vm-received", "vm-from", "vm-duration"],
    );
    assert_eq!(played[audio_at - 1..audio_at], envelope_tail(1.0));
    assert_eq!(count_of(&played, "vm-received"), 1);

    f.config.voicemail.envelope = false;
    let (_, call) = f.call(any("1001"), script).await;
    let played = call.played();
    let at = played.iter().position(|p| *p == audio(1.0)).unwrap() - 2;
    assert_eq!(played[at..at + 3], ["vm-message", "digit-1", &audio(1.0)]);
    assert_eq!(count_of(&played, "vm-received"), 0);
}

/// After the first `said` ("deleted", "saved"), message 2 (1.5 s) plays at
/// once: "message 2", its envelope, its audio. Returns where `said` is.
fn message_2_follows(played: &[String], said: &str) -> usize {
    let at = played.iter().position(|p| p == said).unwrap();
    assert_eq!(
        played[at..at + 4],
        [said, "vm-message", "digit-2", "vm-received"]
    );
    let audio_at = at + played[at..].iter().position(|p| *p == audio(1.5)).unwrap();
    assert_eq!(played[audio_at - 1..audio_at], envelope_tail(1.5));
    at
}

#[tokio::test]
async fn delete_plays_the_next_message_then_says_no_more() {
    let f = fx();
    assert!(f.config.voicemail.next_after_command, "the default");
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("7"),
        Input::Silence,
        keys("7"),
        Input::Silence,
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    let played = call.played();
    // 7 on message 1: "deleted", then message 2 at once.
    let at = message_2_follows(&played, "vm-deleted");
    // 7 on the last one: "deleted", "no more messages".
    let last = played.iter().rposition(|p| p == "vm-deleted").unwrap();
    assert!(last > at);
    assert_eq!(played[last + 1], "vm-no-more");
    assert_eq!(count_of(&played, &audio(1.0)), 1);
    assert_eq!(count_of(&played, &audio(1.5)), 1);
    assert_eq!(
        f.count("1001", Folder::Inbox) + f.count("1001", Folder::Old),
        0
    );
}

#[tokio::test]
async fn save_plays_the_next_message() {
    let f = fx();
    let m1 = f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("9"),
        Input::Silence,
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    message_2_follows(&call.played(), "vm-saved");
    assert_eq!(f.ids("1001", Folder::Saved), vec![m1.id]);
    // Heard by the move on: old now.
    assert_eq!(f.count("1001", Folder::Old), 1);
}

#[tokio::test]
async fn undelete_and_keys_pressed_over_the_confirmation_stay() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    // 7 7: the second 7, pressed over "deleted", undeletes message 1 and
    // nothing moves on; 5 then repeats message 1.
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("77"),
        Input::Silence,
        keys("5"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    let played = call.played();
    assert_in_order(&played, &["vm-deleted", "vm-undeleted", "vm-opt-delete"]);
    assert_eq!(count_of(&played, &audio(1.5)), 0);
    assert_eq!(count_of(&played, &audio(1.0)), 2);
    assert_eq!(f.count("1001", Folder::Old), 1);
    assert_eq!(f.count("1001", Folder::Inbox), 1);
}

#[tokio::test]
async fn with_next_after_command_off_delete_and_save_stay_on_the_message() {
    let mut f = fx();
    f.config = Config::parse(
        &format!("[voicemail]\nnext_after_command = false\n{CONFIG}"),
        "test.toml",
    )
    .unwrap();
    assert!(!f.config.voicemail.next_after_command);
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("7"),
        Input::Silence,
        keys("9"),
        Input::Silence,
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    let played = call.played();
    // Today's behaviour: the confirmation, then the same message's menu.
    let at = played.iter().position(|p| p == "vm-deleted").unwrap();
    assert_eq!(played[at + 1], "vm-opt-envelope");
    assert_eq!(played[at + 2], "vm-opt-repeat");
    assert_in_order(&played, &["vm-opt-undelete", "vm-saved", "vm-opt-delete"]);
    let saved = played.iter().position(|p| p == "vm-saved").unwrap();
    assert_eq!(played[saved + 1], "vm-opt-envelope");
    assert_eq!(count_of(&played, &audio(1.5)), 0);
    assert_eq!(count_of(&played, "vm-no-more"), 0);
    // Saving cleared the deletion mark: message 1 is kept, in saved.
    assert_eq!(f.count("1001", Folder::Saved), 1);
}

#[tokio::test]
async fn change_folder_to_saved_and_cancel() {
    let f = fx();
    f.deposit("1001", Folder::Saved, 3.0, "2026-03-01T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    // 2 then # cancels (still in new: 1 plays the new message); 2 3 saved.
    let script = vec![
        keys("1234#"),
        keys("2"),
        keys("#"),
        keys("1"),
        keys("2"),
        keys("3"),
        Input::Silence,
        keys("1"),
        keys("#"),
        keys("#"),
    ];
    let (out, call) = f.call(any("1001"), script).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    assert_in_order(
        &played,
        &[
            "vm-choose-folder",
            &audio(1.0),
            "vm-choose-folder",
            "vm-folder-saved",
            "vm-youhave",
            "num-1-count",
            "vm-message",
            &audio(3.0),
        ],
    );
    // Listening to a saved message does not move it.
    assert_eq!(f.count("1001", Folder::Saved), 1);
}

#[tokio::test]
async fn change_folder_to_new_and_an_empty_folder() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("2"),
        keys("3"),
        Input::Silence,
        keys("1"),
        keys("2"),
        keys("1"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(
        &call.played(),
        &[
            "vm-folder-saved",
            "vm-no-messages",
            "vm-main-menu",
            "vm-no-messages",
            "vm-folder-new",
            "vm-youhave",
            "num-1-count",
            "vm-new",
        ],
    );
}

#[tokio::test]
async fn envelope_says_date_time_in_the_zone_caller_and_length() {
    let mut f = fx();
    f.set_zone("1001", "Europe/Brussels");
    // 14:05 UTC on Tuesday 3 March 2026 is 15:05 in Brussels.
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-03T14:05:00Z");
    let (_, call) = f
        .call(
            any("1001"),
            vec![
                keys("1234#"),
                keys("1"),
                keys("3"),
                Input::Silence,
                keys("#"),
            ],
        )
        .await;
    let played = call.played();
    let start = played
        .iter()
        .position(|p| p == "vm-received")
        .expect("envelope played");
    assert_eq!(
        played[start..start + 23],
        [
            "vm-received",
            "day-2",
            "month-3",
            "date-day-3",
            "time-at",
            "hour-15",
            "time-oh",
            "digit-5",
            "time-pm",
            "vm-from",
            "digit-3",
            "digit-2",
            "digit-2",
            "digit-5",
            "digit-5",
            "digit-5",
            "digit-0",
            "digit-1",
            "digit-0",
            "digit-0",
            "vm-duration",
            "num-1-count",
            "time-second",
        ]
    );
}

/// The envelope's date and time, from `vm-received` up to the caller.
fn envelope_date(played: &[String]) -> Vec<&str> {
    let start = played
        .iter()
        .position(|p| p == "vm-received")
        .expect("envelope played");
    let end = start + played[start..].iter().position(|p| p == "vm-from").unwrap();
    played[start..end].iter().map(String::as_str).collect()
}

#[tokio::test]
async fn envelope_date_is_the_box_local_date_not_the_utc_one() {
    let mut f = fx();
    f.set_zone("1001", "America/New_York");
    // 02:30 UTC on Tuesday 3 March 2026 is 21:30 (EST) on Monday 2 March
    // in New York.
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-03T02:30:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("3"),
        Input::Silence,
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script.clone()).await;
    assert_eq!(
        envelope_date(&call.played()),
        [
            "vm-received",
            "day-1",
            "month-3",
            "date-day-2",
            "time-at",
            "hour-21",
            "num-30",
            "time-pm",
        ]
    );

    // A box that names no zone hears the default, UTC.
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-03T02:30:00Z");
    let (_, call) = f.call(any("1001"), script).await;
    assert_eq!(
        envelope_date(&call.played()),
        [
            "vm-received",
            "day-2",
            "month-3",
            "date-day-3",
            "time-at",
            "hour-2",
            "num-30",
            "time-am",
        ]
    );
}

#[tokio::test]
async fn temporary_greeting_end_is_counted_and_said_in_the_box_zone() {
    let mut f = fx();
    f.set_zone("1001", "America/New_York");
    // 03:00 UTC on 10 March is 23:00 (EDT) on Monday 9 March in New York:
    // one day, today only, ends at midnight there, 04:00 UTC.
    f.set_now("2026-03-10T03:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("4"),
        Input::Speak(2.0),
        keys("#"),
        keys("1"),
        Input::Silence,
        keys("2"),
        keys("1#"),
        keys("*"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(
        &call.played(),
        &["vm-temp-days", "vm-temp-until", "month-3", "date-day-9"],
    );
    let end: Timestamp = "2026-03-10T04:00:00Z".parse().unwrap();
    assert_eq!(
        f.security.temp_greeting_expiry(&mb("1001")).unwrap(),
        Some(end)
    );

    // The reminder at the next login says the local day too.
    f.set_now("2026-03-10T03:30:00Z");
    let (_, call) = f
        .call(any("1001"), vec![keys("1234#"), Input::Silence, keys("#")])
        .await;
    assert_in_order(
        &call.played(),
        &["vm-temp-active", "vm-temp-until", "month-3", "date-day-9"],
    );
}

#[tokio::test]
async fn corrupt_and_vanished_messages_are_skipped() {
    let f = fx();
    let bad = f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    // A 0-byte message is not even counted.
    let inbox = f.dir.path().join("mailboxes/1001/inbox");
    std::fs::write(inbox.join("20260309-120000-aaaaaa.wav"), b"").unwrap();
    std::fs::write(inbox.join("20260309-120000-aaaaaa.json"), b"{}").unwrap();
    // The first one keeps a valid header but loses all its audio: listed,
    // then unreadable when played.
    let wav = inbox.join(format!("{}.wav", bad.id));
    let len = std::fs::metadata(&wav).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wav)
        .unwrap()
        .set_len(len - 16000)
        .unwrap();
    let (out, call) = f
        .call(
            any("1001"),
            vec![keys("1234#"), keys("1"), keys("6"), keys("#")],
        )
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    assert_in_order(
        &played,
        &[
            "vm-youhave",
            "digit-2",
            "vm-new-pl",
            "vm-message",
            "digit-1",
            &audio(1.5),
            "vm-no-more",
        ],
    );
    assert!(!played.iter().any(|p| p == &audio(1.0)));
}

#[tokio::test]
async fn invalid_keys_and_timeouts_are_bounded() {
    let f = fx();
    // 3-9 mean nothing without a message: invalid, three times → goodbye.
    let (out, call) = f
        .call(
            any("1001"),
            vec![keys("1234#"), keys("7"), keys("3"), keys("9")],
        )
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::NoInput {
            mailbox: Some("1001".into())
        }
    );
    assert_eq!(count_of(&call.played(), "vm-invalid"), 3);
    assert_goodbye(&call);
    // Three silences → goodbye; the menu was played three times.
    let (out, call) = f
        .call(
            any("1001"),
            vec![
                keys("1234#"),
                Input::Silence,
                Input::Silence,
                Input::Silence,
            ],
        )
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::NoInput {
            mailbox: Some("1001".into())
        }
    );
    assert_eq!(count_of(&call.played(), "vm-main-menu"), 3);
    assert_goodbye(&call);
    // A valid key resets the count.
    let (out, _) = f
        .call(
            any("1001"),
            vec![
                keys("1234#"),
                Input::Silence,
                Input::Silence,
                keys("*"),
                Input::Silence,
                Input::Silence,
                keys("#"),
            ],
        )
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
}

#[tokio::test]
async fn star_is_help_with_the_full_menu() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let (_, call) = f
        .call(
            any("1001"),
            vec![
                keys("1234#"),
                keys("1"),
                keys("*"),
                Input::Silence,
                keys("#"),
            ],
        )
        .await;
    let help = call
        .log
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Played { names, .. } if names.first().is_some_and(|n| n == "vm-main-menu") => {
                Some(names.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(
        help[..3],
        ["vm-main-menu", "vm-opt-envelope", "vm-opt-repeat"]
    );
}

#[tokio::test]
async fn hangup_mid_menu_ends_quietly() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let (out, call) = f
        .call(any("1001"), vec![keys("1234#"), Input::Hangup])
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::HungUp {
            mailbox: Some("1001".into())
        }
    );
    assert!(!call.played().contains(&"vm-goodbye-only".to_string()));
    // Not listened to: still new.
    assert_eq!(f.count("1001", Folder::Inbox), 1);
}

// --- Forwarding ---------------------------------------------------------------

#[tokio::test]
async fn forward_as_is_copies_into_the_other_inbox() {
    let f = fx();
    let m = f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("8"),
        keys("1002#"),
        keys("2"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(
        &call.played(),
        &["vm-forward-enter", "vm-forward-options", "vm-forwarded"],
    );
    let copies = f.store.list_messages(&mb("1002"), Folder::Inbox).unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].caller_number, m.caller_number);
    assert_eq!(copies[0].received_at, m.received_at);
    assert_eq!(copies[0].duration_seconds, 1.0);
    // The original stays with its owner (heard, so old).
    assert_eq!(f.ids("1001", Folder::Old), vec![m.id]);
}

#[tokio::test]
async fn forward_with_a_recorded_introduction_prepends_it() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("8"),
        keys("1002#"),
        keys("1"),
        Input::Speak(0.5),
        keys("#"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(
        &call.played(),
        &[
            "vm-forward-options",
            "vm-rec-intro",
            "audio:2000",
            "vm-forwarded",
        ],
    );
    assert!(call.log.contains(&Action::Recorded {
        samples: 4000,
        reason: StopReason::Digit('#')
    }));
    let copies = f.store.list_messages(&mb("1002"), Folder::Inbox).unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].duration_seconds, 1.5);
    let id = MessageId::try_from(copies[0].id.as_str()).unwrap();
    let audio = f
        .store
        .read_message_audio(&mb("1002"), Folder::Inbox, &id)
        .unwrap();
    // The fake caller's "speech" is a ±6000 square wave.
    assert!(audio[..4000].iter().all(|s| s.abs() == 6000));
    // The intro's scratch file is gone.
    let scratch = f.dir.path().join("scratch");
    assert_eq!(std::fs::read_dir(scratch).unwrap().count(), 0);
}

#[tokio::test]
async fn forward_to_an_unknown_box_is_refused_and_star_cancels() {
    let f = fx();
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("8"),
        keys("9999#"),
        keys("*#"),
        Input::Silence,
        keys("8"),
        keys("1002#"),
        keys("*"),
        keys("#"),
    ];
    let (out, call) = f.call(any("1001"), script).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    // The * that cut "invalid mailbox" short answers the next question.
    assert_in_order(
        &played,
        &[
            "vm-forward-enter",
            "vm-invalid-mailbox",
            "vm-opt-envelope",
            "vm-forward-enter",
            "vm-forward-options",
        ],
    );
    assert_eq!(count_of(&played, "vm-forward-enter"), 2);
    assert!(!played.contains(&"vm-forwarded".to_string()));
    assert_eq!(f.count("1002", Folder::Inbox), 0);
    assert!(!f.dir.path().join("mailboxes/9999").exists());
}

/// The test config with `max_messages = max` on box `number`.
fn with_limit(number: &str, max: u32) -> Config {
    let text = CONFIG.replace(
        &format!("number = \"{number}\"\n"),
        &format!("number = \"{number}\"\nmax_messages = {max}\n"),
    );
    let config = Config::parse(&text, "test.toml").unwrap();
    assert_eq!(config.mailbox(number).unwrap().max_messages, Some(max));
    config
}

#[tokio::test]
async fn forward_into_a_full_box_says_so_and_copies_nothing() {
    let mut f = fx();
    f.config = with_limit("1002", 1);
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let theirs = f.deposit("1002", Folder::Old, 2.0, "2026-03-08T10:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("8"),
        keys("1002#"),
        Input::Silence,
        keys("#"),
    ];
    let (out, call) = f.call(any("1001"), script).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    // Said before an introduction is offered; then back in the message menu.
    assert_in_order(
        &played,
        &[
            "vm-forward-enter",
            "vm-mailbox-full",
            "vm-opt-envelope",
            "vm-goodbye-only",
        ],
    );
    assert!(!played.contains(&"vm-forward-options".to_string()));
    assert!(!played.contains(&"vm-forwarded".to_string()));
    assert_eq!(f.count("1002", Folder::Inbox), 0);
    assert_eq!(f.ids("1002", Folder::Old), vec![theirs.id]);
}

#[tokio::test]
async fn forward_into_a_box_that_fills_meanwhile_is_refused_by_the_store() {
    let mut f = fx();
    f.config = with_limit("1002", 1);
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    // 1002 is not full when its number is typed; a caller fills it while
    // the introduction is being recorded.
    let store = f.store.clone();
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("8"),
        keys("1002#"),
        keys("1"),
        Input::Hook(0),
        Input::Speak(0.5),
        keys("#"),
        Input::Silence,
        keys("#"),
    ];
    let mut call = FakeCall::new("1001", "*99", script)
        .with_prompts(prompts())
        .with_hook(move || {
            store.deposit_for_test("1002", &[100; 8000]);
        });
    let out = run(&mut call, &f.ctx(), any("1001")).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    assert_in_order(
        &played,
        &[
            "vm-forward-options",
            "vm-rec-intro",
            "vm-mailbox-full",
            "vm-opt-envelope",
        ],
    );
    assert!(!played.contains(&"vm-forwarded".to_string()));
    assert!(!played.contains(&"vm-error".to_string()));
    // Only the caller's message is there, and the intro's scratch is gone.
    assert_eq!(f.count("1002", Folder::Inbox), 1);
    let scratch = f.dir.path().join("scratch");
    assert_eq!(std::fs::read_dir(scratch).unwrap().count(), 0);
}

#[tokio::test]
async fn forward_into_a_box_below_its_limit_still_lands() {
    let mut f = fx();
    f.config = with_limit("1002", 2);
    f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1002", Folder::Inbox, 2.0, "2026-03-08T10:00:00Z");
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("8"),
        keys("1002#"),
        keys("2"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(&call.played(), &["vm-forward-options", "vm-forwarded"]);
    assert!(!call.played().contains(&"vm-mailbox-full".to_string()));
    assert_eq!(f.count("1002", Folder::Inbox), 2);
}

// --- Mailbox options ------------------------------------------------------------

#[tokio::test]
async fn record_unavailable_greeting_and_accept() {
    let f = fx();
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("1"),
        Input::Speak(2.0),
        keys("#"),
        keys("1"),
        keys("*"),
        keys("#"),
    ];
    let (out, call) = f.call(any("1001"), script).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    assert_in_order(
        &call.played(),
        &[
            "vm-options-menu",
            "vm-rec-unavailable",
            "audio:2000",
            "vm-review",
            "vm-recording-saved",
            "vm-goodbye-only",
        ],
    );
    assert!(call.log.contains(&Action::Recorded {
        samples: 16000,
        reason: StopReason::Digit('#')
    }));
    let g = f
        .store
        .load_greeting(&mb("1001"), GreetingKind::Unavailable)
        .unwrap()
        .unwrap();
    assert_eq!(g.len(), 16000);
    assert_eq!(
        std::fs::read_dir(f.dir.path().join("scratch"))
            .unwrap()
            .count(),
        0
    );
    // No message was created by recording a greeting.
    assert_eq!(f.count("1001", Folder::Inbox), 0);
}

#[tokio::test]
async fn busy_greeting_listen_then_rerecord_then_accept() {
    let f = fx();
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("2"),
        Input::Speak(1.5),
        keys("#"),
        keys("2"),
        keys("3"),
        Input::Speak(2.0),
        keys("#"),
        keys("1"),
        keys("*"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(
        &call.played(),
        &[
            "vm-rec-busy",
            "audio:2000",
            "vm-review",
            &audio(1.5),
            "vm-rec-busy",
            "audio:2000",
            "vm-review",
            "vm-recording-saved",
        ],
    );
    let g = f
        .store
        .load_greeting(&mb("1001"), GreetingKind::Busy)
        .unwrap()
        .unwrap();
    assert_eq!(g.len(), 16000, "the second take was kept");
}

#[tokio::test]
async fn name_recording_too_short_then_good() {
    let f = fx();
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("3"),
        Input::Speak(0.25),
        keys("#"),
        Input::Speak(1.25),
        keys("#"),
        keys("1"),
        keys("*"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(
        &call.played(),
        &[
            "vm-rec-name",
            "vm-too-short",
            "vm-rec-name",
            "vm-review",
            "vm-recording-saved",
        ],
    );
    assert_eq!(
        f.store
            .load_greeting(&mb("1001"), GreetingKind::Name)
            .unwrap()
            .unwrap()
            .len(),
        10000
    );
}

#[tokio::test]
async fn hanging_up_during_review_keeps_nothing() {
    let f = fx();
    f.store
        .save_greeting(&mb("1001"), GreetingKind::Unavailable, &[1; 800])
        .unwrap();
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("1"),
        Input::Speak(2.0),
        keys("#"),
        Input::Hangup,
    ];
    let (out, _) = f.call(any("1001"), script).await;
    assert_eq!(
        out,
        RetrievalOutcome::HungUp {
            mailbox: Some("1001".into())
        }
    );
    assert_eq!(
        f.store
            .load_greeting(&mb("1001"), GreetingKind::Unavailable)
            .unwrap()
            .unwrap()
            .len(),
        800
    );
    assert_eq!(
        std::fs::read_dir(f.dir.path().join("scratch"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn temporary_greeting_with_an_end_date_reminds_then_expires() {
    let f = fx();
    // Tuesday 10 March; 3 days today included: active until Thursday 12th,
    // removed from Friday 13 March 00:00.
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("4"),
        Input::Speak(2.0),
        keys("#"),
        keys("1"),
        Input::Silence,
        keys("2"),
        keys("3#"),
        keys("*"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(
        &call.played(),
        &[
            "vm-rec-temp",
            "vm-review",
            "vm-recording-saved",
            "vm-temp-expiry-menu",
            "vm-temp-days",
            "vm-temp-until",
            "month-3",
            "date-day-12",
        ],
    );
    let end: Timestamp = "2026-03-13T00:00:00Z".parse().unwrap();
    assert_eq!(
        f.security.temp_greeting_expiry(&mb("1001")).unwrap(),
        Some(end)
    );
    assert!(
        f.store
            .has_greeting(&mb("1001"), GreetingKind::Temporary)
            .unwrap()
    );

    // Next login: reminded, with the end date; the options menu says it too.
    f.set_now("2026-03-12T23:59:59Z");
    let (_, call) = f
        .call(
            any("1001"),
            vec![
                keys("1234#"),
                Input::Silence,
                keys("0"),
                keys("*"),
                keys("#"),
            ],
        )
        .await;
    let played = call.played();
    assert_in_order(
        &played,
        &[
            "vm-password",
            "vm-temp-active",
            "vm-temp-until",
            "month-3",
            "date-day-12",
            "vm-no-messages",
            "vm-main-menu",
            "vm-temp-active",
            "vm-options-menu",
        ],
    );

    // Past the end: no reminder, and the greeting is gone.
    f.set_now("2026-03-13T00:00:00Z");
    let (_, call) = f.call(any("1001"), vec![keys("1234#"), keys("#")]).await;
    assert!(!call.played().contains(&"vm-temp-active".to_string()));
    assert!(
        !f.store
            .has_greeting(&mb("1001"), GreetingKind::Temporary)
            .unwrap()
    );
    assert_eq!(f.security.temp_greeting_expiry(&mb("1001")).unwrap(), None);
}

#[tokio::test]
async fn temporary_greeting_without_end_and_bad_day_counts() {
    let f = fx();
    // Days 0 and 999 are refused, then the caller keeps it for good.
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("4"),
        Input::Speak(1.0),
        keys("#"),
        keys("1"),
        keys("2"),
        keys("0#"),
        keys("999#"),
        keys("7#"),
        keys("*"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_eq!(count_of(&call.played(), "vm-invalid"), 2);
    assert_eq!(
        f.security.temp_greeting_expiry(&mb("1001")).unwrap(),
        Some("2026-03-17T00:00:00Z".parse().unwrap())
    );
    // Re-record from the temporary greeting menu, and keep it forever.
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("4"),
        keys("1"),
        Input::Speak(1.0),
        keys("#"),
        keys("1"),
        keys("1"),
        keys("*"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(
        &call.played(),
        &["vm-tempgreeting-menu", "vm-rec-temp", "vm-recording-saved"],
    );
    assert_eq!(f.security.temp_greeting_expiry(&mb("1001")).unwrap(), None);
    assert!(
        f.store
            .has_greeting(&mb("1001"), GreetingKind::Temporary)
            .unwrap()
    );
}

#[tokio::test]
async fn temporary_greeting_can_be_removed() {
    let f = fx();
    f.store
        .save_greeting(&mb("1001"), GreetingKind::Temporary, &[3; 8000])
        .unwrap();
    f.security
        .set_temp_greeting_expiry(&mb("1001"), Some("2026-04-01T00:00:00Z".parse().unwrap()))
        .unwrap();
    let (_, call) = f
        .call(
            any("1001"),
            vec![
                keys("1234#"),
                keys("0"),
                keys("4"),
                keys("2"),
                keys("*"),
                keys("#"),
            ],
        )
        .await;
    assert_in_order(
        &call.played(),
        &[
            "vm-temp-active",
            "vm-tempgreeting-menu",
            "vm-tempgreeting-removed",
        ],
    );
    assert!(
        !f.store
            .has_greeting(&mb("1001"), GreetingKind::Temporary)
            .unwrap()
    );
    assert_eq!(f.security.temp_greeting_expiry(&mb("1001")).unwrap(), None);
}

#[tokio::test]
async fn change_pin_twice_then_it_is_the_pin() {
    let f = fx();
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("5"),
        keys("908172#"),
        keys("908172#"),
        keys("*"),
        keys("#"),
    ];
    let (_, call) = f.call(any("1001"), script).await;
    assert_in_order(
        &call.played(),
        &[
            "vm-newpassword",
            "vm-reenterpassword",
            "vm-password-changed",
        ],
    );
    let state = std::fs::read_to_string(f.dir.path().join("security/1001.json")).unwrap();
    assert!(
        !state.contains("908172"),
        "the PIN is stored hashed only: {state}"
    );
    // The old PIN no longer opens the box; the new one does, after a
    // "restart" too.
    let (out, _) = f
        .call(
            any("1001"),
            vec![keys("1234#"), keys("1234#"), keys("1234#")],
        )
        .await;
    assert!(matches!(out, RetrievalOutcome::LoginFailed { .. }));
    let mut f = f;
    f.security = cheap_security(f.dir.path());
    let (out, _) = f.call(any("1001"), vec![keys("908172#"), keys("#")]).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
}

#[tokio::test]
async fn change_pin_rules_are_enforced() {
    let f = fx();
    // Too short, the box number, not digits: three refusals, back to the
    // options; then a mismatch on another try.
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("5"),
        keys("123#"),
        keys("1001#"),
        keys("12*34#"),
        keys("5"),
        keys("4444#"),
        keys("4445#"),
        Input::Silence,
        Input::Silence,
        keys("*"),
        keys("#"),
    ];
    let (out, call) = f.call(any("1001"), script).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let played = call.played();
    assert_eq!(count_of(&played, "vm-password-invalid"), 3);
    assert_in_order(
        &played,
        &[
            "vm-password-invalid",
            "vm-newpassword",
            "vm-reenterpassword",
            "vm-password-mismatch",
        ],
    );
    assert!(!played.contains(&"vm-password-changed".to_string()));
    // The PIN is unchanged.
    let now = *f.clock.lock().unwrap();
    assert_eq!(
        f.security
            .check_pin(&mb("1001"), "1234", "1234", now)
            .unwrap(),
        PinCheck::Accepted
    );
}

#[tokio::test]
async fn options_menu_invalid_key_and_back() {
    let f = fx();
    let (out, call) = f
        .call(
            any("1001"),
            vec![
                keys("1234#"),
                keys("0"),
                keys("9"),
                Input::Silence,
                keys("*"),
                keys("#"),
            ],
        )
        .await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    assert_in_order(
        &call.played(),
        &[
            "vm-options-menu",
            "vm-invalid",
            "vm-options-menu",
            "vm-goodbye-only",
        ],
    );
}

#[tokio::test]
async fn changes_made_by_phone_are_published() {
    use crate::notify::events::{EventBus, EventKind};
    let f = fx();
    let m1 = f.deposit("1001", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    let m2 = f.deposit("1001", Folder::Inbox, 1.5, "2026-03-09T11:00:00Z");
    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    let ctx = f.ctx().with_events(bus);
    // Hear 1 and delete it; hear 2, save it and forward it to 1002.
    let script = vec![
        keys("1234#"),
        keys("1"),
        keys("7"),
        keys("6"),
        keys("9"),
        keys("8"),
        keys("1002#"),
        keys("2"),
        keys("#"),
    ];
    let mut call = FakeCall::new("1001", "*99", script).with_prompts(prompts());
    let out = run(&mut call, &ctx, any("1001")).await;
    assert_eq!(
        out,
        RetrievalOutcome::Exited {
            mailbox: "1001".into()
        }
    );
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push((
            e.event,
            e.mailbox,
            e.message.id,
            e.message.folder,
            e.previous_folder,
        ));
    }
    let copy = f.ids("1002", Folder::Inbox).pop().unwrap();
    assert_eq!(
        events,
        [
            (
                EventKind::Updated,
                "1001".into(),
                m1.id.clone(),
                Folder::Old,
                Some(Folder::Inbox)
            ),
            (
                EventKind::Updated,
                "1001".into(),
                m2.id.clone(),
                Folder::Old,
                Some(Folder::Inbox)
            ),
            (
                EventKind::Updated,
                "1001".into(),
                m2.id.clone(),
                Folder::Saved,
                Some(Folder::Old)
            ),
            (EventKind::Created, "1002".into(), copy, Folder::Inbox, None),
            (
                EventKind::Deleted,
                "1001".into(),
                m1.id.clone(),
                Folder::Old,
                None
            ),
        ]
    );
}

#[tokio::test]
async fn abandoning_a_temporary_greeting_rerecord_keeps_the_old_one() {
    let f = fx();
    f.store
        .save_greeting(&mb("1001"), GreetingKind::Temporary, &[3; 8000])
        .unwrap();
    let end: Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
    f.security
        .set_temp_greeting_expiry(&mb("1001"), Some(end))
        .unwrap();
    let script = vec![
        keys("1234#"),
        keys("0"),
        keys("4"),
        keys("1"),
        Input::Speak(1.0),
        Input::Hangup,
    ];
    let (out, call) = f.call(any("1001"), script).await;
    assert_eq!(
        out,
        RetrievalOutcome::HungUp {
            mailbox: Some("1001".into())
        }
    );
    assert!(call.log.contains(&Action::Recorded {
        samples: 8000,
        reason: StopReason::Stopped
    }));
    let g = f
        .store
        .load_greeting(&mb("1001"), GreetingKind::Temporary)
        .unwrap()
        .unwrap();
    assert_eq!(g, vec![3; 8000]);
    assert_eq!(
        f.security.temp_greeting_expiry(&mb("1001")).unwrap(),
        Some(end)
    );
    assert_eq!(
        std::fs::read_dir(f.dir.path().join("scratch"))
            .unwrap()
            .count(),
        0
    );
}

// --- Shared boxes -----------------------------------------------------------

#[tokio::test]
async fn a_member_moves_on_to_the_shared_box_and_back() {
    let mut f = fx();
    f.config.mailboxes.push(crate::config::MailboxConfig {
        number: "2000".into(),
        pin: "2468".into(),
        shared: true,
        members: vec!["1001".into()],
        ..crate::config::MailboxConfig::default()
    });
    f.deposit("2000", Folder::Inbox, 1.0, "2026-03-09T10:00:00Z");
    f.deposit("1001", Folder::Old, 2.0, "2026-03-08T10:00:00Z");
    // 3: the shared box; 0 (its options) is refused there; 1 hears its
    // message; 3 again (no message selected after the folder menu) back
    // home; # leaves.
    let (out, call) = f
        .call(
            any("1001"),
            vec![
                keys("1234#"),
                keys("3"),
                keys("0"),
                keys("1"),
                Input::Silence,
                keys("2"),
                keys("1"),
                keys("3"),
                keys("#"),
            ],
        )
        .await;
    let played = call.played();
    assert_in_order(
        &played,
        &[
            "vm-password",
            "digit-2",
            "digit-0",
            "digit-0",
            "digit-0",
            "vm-youhave",
            "vm-invalid",
            &audio(1.0),
            "digit-1",
            "digit-0",
            "digit-0",
            "digit-1",
            "vm-goodbye-only",
        ],
    );
    assert!(
        !played.contains(&"vm-options-menu".to_string()),
        "{played:?}"
    );
    assert!(matches!(out, RetrievalOutcome::Exited { .. }), "{out:?}");
    // Heard in the shared box: one read state for the box by phone.
    assert_eq!(f.count("2000", Folder::Inbox), 0);
    assert_eq!(f.count("2000", Folder::Old), 1);
    assert_eq!(f.count("1001", Folder::Old), 1);
}

#[tokio::test]
async fn three_without_a_shared_box_is_an_invalid_key() {
    let f = fx();
    let (_, call) = f
        .call(any("1001"), vec![keys("1234#"), keys("3"), keys("#")])
        .await;
    assert_in_order(
        &call.played(),
        &["vm-password", "vm-invalid", "vm-goodbye-only"],
    );
}
