use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::Path;

use super::*;
use crate::call::fake::{Action, FakeCall, Input};
use crate::dialplan::check::{Source, check_sources};
use crate::dialplan::divert::{Diversion, DivertReason};
use crate::prompts::PromptCache;

// --- Fixtures -----------------------------------------------------------

/// Prompt names with distinct lengths, in English and French.
const PROMPTS: &[(&str, usize)] = &[
    ("welcome", 800),
    ("menu", 1600),
    ("closed", 2400),
    ("holiday", 3200),
    ("moh", 8000),
    ("vm-invalid", 480),
    ("vm-goodbye-only", 320),
];

fn write_wav(path: &Path, samples: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..samples {
        w.write_sample(((i % 50) as i16 - 25) * 100).unwrap();
    }
    w.finalize().unwrap();
}

fn prompts() -> PromptCache {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["en", "fr"] {
        for (name, len) in PROMPTS {
            write_wav(&dir.path().join(lang).join(format!("{name}.wav")), *len);
        }
    }
    PromptCache::load(dir.path()).unwrap()
}

/// A checked plan from TOML text; panics with the errors.
fn plan(text: &str) -> DialPlan {
    let cache = prompts();
    let sources = [Source {
        file: "test.toml".into(),
        text: text.into(),
    }];
    check_sources(&sources, &|l, n| cache.contains(l, n), &|n| n == "promo")
        .unwrap_or_else(|e| panic!("{}", crate::dialplan::format_errors(&e)))
}

#[derive(Debug, Clone, PartialEq)]
enum AppCall {
    Voicemail(VoicemailTarget),
    Main(MainTarget),
    Record(RecordTarget),
    Transfer(TransferTarget),
}

struct FakeApps {
    prompts: PromptCache,
    audio: HashMap<String, Pcm>,
    calls: Vec<AppCall>,
    vm: VecDeque<VmResult>,
    app: VecDeque<AppResult>,
    transfer_ok: bool,
    /// (language, name) of every prompt asked for.
    asked: RefCell<Vec<(String, String)>>,
}

impl FakeApps {
    fn new(prompts: &PromptCache) -> FakeApps {
        FakeApps {
            prompts: prompts.clone(),
            audio: HashMap::new(),
            calls: Vec::new(),
            vm: VecDeque::new(),
            app: VecDeque::new(),
            transfer_ok: true,
            asked: RefCell::new(Vec::new()),
        }
    }
}

impl Apps for FakeApps {
    async fn voicemail<C: CallApi>(&mut self, _call: &mut C, target: &VoicemailTarget) -> VmResult {
        self.calls.push(AppCall::Voicemail(target.clone()));
        self.vm.pop_front().unwrap_or(VmResult::Done)
    }
    async fn voicemail_main<C: CallApi>(
        &mut self,
        _call: &mut C,
        target: &MainTarget,
    ) -> AppResult {
        self.calls.push(AppCall::Main(target.clone()));
        self.app.pop_front().unwrap_or(AppResult::Done)
    }
    async fn record_message<C: CallApi>(
        &mut self,
        _call: &mut C,
        target: &RecordTarget,
    ) -> AppResult {
        self.calls.push(AppCall::Record(target.clone()));
        self.app.pop_front().unwrap_or(AppResult::Done)
    }
    async fn transfer<C: CallApi>(
        &mut self,
        _call: &mut C,
        target: &TransferTarget,
    ) -> Result<(), TransferFailed> {
        self.calls.push(AppCall::Transfer(target.clone()));
        if self.transfer_ok {
            Ok(())
        } else {
            Err(TransferFailed("503 Service Unavailable".into()))
        }
    }
    fn prompt(&self, lang: &str, name: &str) -> Option<Pcm> {
        self.asked
            .borrow_mut()
            .push((lang.to_owned(), name.to_owned()));
        self.prompts.get(lang, name)
    }
    fn audio_message(&self, name: &str) -> Option<Pcm> {
        self.audio.get(name).cloned()
    }
}

struct Run {
    outcome: Outcome,
    call: FakeCall,
    apps: FakeApps,
}

async fn run_with(
    plan: &DialPlan,
    dialed: &str,
    script: Vec<Input>,
    setup: impl FnOnce(&mut FakeApps),
    options: RunOptions,
) -> Run {
    let cache = prompts();
    let mut apps = FakeApps::new(&cache);
    setup(&mut apps);
    let mut call = FakeCall::new("+3212345678", dialed, script).with_prompts(cache);
    let entry = plan.route(dialed).expect("a route");
    let outcome = run(plan, entry, &mut call, &mut apps, &options).await;
    Run {
        outcome,
        call,
        apps,
    }
}

async fn run_simple(plan: &DialPlan, dialed: &str, script: Vec<Input>) -> Run {
    run_with(plan, dialed, script, |_| {}, RunOptions::default()).await
}

fn digits(d: &str) -> Input {
    Input::Digits(d.into())
}

fn trail(r: &Run) -> Vec<&str> {
    r.outcome.trail.iter().map(String::as_str).collect()
}

fn at(s: &str) -> RunOptions {
    RunOptions {
        clock: Clock::fixed(s.parse().unwrap()),
        ..RunOptions::default()
    }
}

// --- Play, goto, hangup -------------------------------------------------

#[tokio::test]
async fn play_then_goto_chain_then_hangup() {
    let p = plan(
        r#"
[[route]]
match = "100"
node = "a"
[node.a]
kind = "play"
prompt = ["welcome", "closed"]
next = "b"
[node.b]
kind = "goto"
target = "c"
[node.c]
kind = "goto"
target = "bye"
[node.bye]
kind = "hangup"
"#,
    );
    let r = run_simple(&p, "100", vec![]).await;
    assert_eq!(r.outcome.end, End::Finished);
    assert_eq!(trail(&r), ["a", "b", "c", "bye"]);
    assert_eq!(r.call.played(), ["welcome", "closed"]);
    assert_eq!(r.call.log.last(), Some(&Action::HungUp));
    assert_eq!(r.outcome.language, "en");
}

#[tokio::test]
async fn play_without_next_hangs_up_and_audio_messages_override_prompts() {
    let p = plan(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"play\"\nprompt = [\"welcome\", \"promo\"]\n",
    );
    let r = run_with(
        &p,
        "1",
        vec![],
        |apps| {
            apps.audio
                .insert("welcome".into(), Pcm::from(vec![1i16; 1234]));
            apps.audio
                .insert("promo".into(), Pcm::from(vec![1i16; 777]));
        },
        RunOptions::default(),
    )
    .await;
    assert_eq!(r.outcome.end, End::Finished);
    // The recorded "welcome" plays instead of the built-in prompt.
    assert_eq!(r.call.played(), ["audio:1234", "audio:777"]);
    assert!(r.apps.asked.borrow().is_empty());
    assert_eq!(r.call.log.last(), Some(&Action::HungUp));
}

#[tokio::test]
async fn caller_hanging_up_during_a_play_ends_the_walk() {
    let p = plan(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"play\"\nprompt = \"welcome\"\nnext = \"b\"\n[node.b]\nkind = \"play\"\nprompt = \"closed\"\n",
    );
    let r = run_simple(&p, "1", vec![Input::Hangup]).await;
    assert_eq!(r.outcome.end, End::HungUp);
    assert_eq!(trail(&r), ["a"]);
    assert_eq!(r.call.played(), ["welcome"]);
    // The caller hung up: no BYE from us.
    assert!(!r.call.log.contains(&Action::HungUp));
}

#[tokio::test]
async fn looped_play_stops_at_max_seconds_with_a_cut_last_round() {
    let p = plan(
        r#"
[[route]]
match = "1"
node = "hold"
[node.hold]
kind = "play"
prompt = "moh"
loop = true
max_seconds = 3
next = "sorry"
[node.sorry]
kind = "play"
prompt = "closed"
"#,
    );
    let r = run_simple(&p, "1", vec![]).await;
    assert_eq!(r.call.played(), ["moh", "moh", "moh", "closed"]);
    assert_eq!(trail(&r), ["hold", "sorry"]);

    // 2.5 s of a 1 s clip: the third round is cut to half a second.
    let mut p = p;
    if let NodeKind::Play(play) = &mut p.nodes.get_mut("hold").unwrap().kind {
        play.max_seconds = Some(2);
        play.prompts = vec!["moh".into(), "welcome".into()];
    }
    // 1.1 s per round, 2 s in all: one full round, then 0.9 s of it.
    let r = run_simple(&p, "1", vec![]).await;
    assert_eq!(r.call.played(), ["moh", "welcome", "audio:7200", "closed"]);
}

#[tokio::test]
async fn looped_play_without_limit_plays_until_hang_up() {
    let p = plan(
        "[[route]]\nmatch = \"1\"\nnode = \"hold\"\n[node.hold]\nkind = \"play\"\nprompt = \"moh\"\nloop = true\n",
    );
    // FakeCall's play fails on a scripted hang-up: the loop ends there.
    let r = run_simple(&p, "1", vec![Input::Hangup]).await;
    assert_eq!(r.outcome.end, End::HungUp);
    assert_eq!(r.call.played(), ["moh"]);
}

// --- Menus ---------------------------------------------------------------

const MENU: &str = r##"
[[route]]
match = "100"
node = "menu"
[node.menu]
kind = "menu"
prompt = "menu"
options = { 1 = "sales", 2 = "support", "#" = "hash" }
timeout_seconds = 3
retries = 2
invalid = "bad"
timeout = "quiet"
[node.sales]
kind = "play"
prompt = "welcome"
[node.support]
kind = "play"
prompt = "closed"
[node.hash]
kind = "hangup"
[node.bad]
kind = "play"
prompt = "holiday"
[node.quiet]
kind = "play"
prompt = "moh"
"##;

#[tokio::test]
async fn menu_key_during_the_prompt_barges_in() {
    let p = plan(MENU);
    let r = run_simple(&p, "100", vec![digits("2")]).await;
    assert_eq!(trail(&r), ["menu", "support"]);
    assert_eq!(
        r.call.log[0],
        Action::Played {
            names: vec!["menu".into()],
            interrupted_by: Some('2')
        }
    );
    assert_eq!(r.call.played(), ["menu", "closed"]);
    let r = run_simple(&p, "100", vec![digits("#")]).await;
    assert_eq!(trail(&r), ["menu", "hash"]);
    assert_eq!(r.outcome.end, End::Finished);
}

#[tokio::test]
async fn menu_key_after_the_prompt() {
    let p = plan(MENU);
    // Silence, then "1": FakeCall's prompt ends, the wait takes the key.
    let r = run_simple(&p, "100", vec![Input::Silence, digits("1")]).await;
    // The silence was a timeout: the prompt plays again, then "1".
    assert_eq!(trail(&r), ["menu", "sales"]);
    assert_eq!(r.call.played(), ["menu", "menu", "welcome"]);
}

#[tokio::test]
async fn invalid_key_says_so_and_retries() {
    let p = plan(MENU);
    let r = run_simple(&p, "100", vec![digits("7"), digits("1")]).await;
    assert_eq!(trail(&r), ["menu", "sales"]);
    assert_eq!(r.call.played(), ["menu", "vm-invalid", "menu", "welcome"]);
}

#[tokio::test]
async fn retries_exhausted_go_to_the_target_of_the_last_failure() {
    let p = plan(MENU);
    // retries = 2: three tries, all invalid.
    let r = run_simple(&p, "100", vec![digits("7"), digits("8"), digits("9")]).await;
    assert_eq!(trail(&r), ["menu", "bad"]);
    assert_eq!(
        r.call.played(),
        [
            "menu",
            "vm-invalid",
            "menu",
            "vm-invalid",
            "menu",
            "holiday"
        ]
    );
    // All timeouts.
    let r = run_simple(
        &p,
        "100",
        vec![Input::Silence, Input::Silence, Input::Silence],
    )
    .await;
    assert_eq!(trail(&r), ["menu", "quiet"]);
    assert_eq!(r.call.played(), ["menu", "menu", "menu", "moh"]);
    // Invalid, invalid, then a timeout: the timeout target.
    let r = run_simple(&p, "100", vec![digits("7"), digits("7"), Input::Silence]).await;
    assert_eq!(trail(&r), ["menu", "quiet"]);
    // Two failures then a good key still works.
    let r = run_simple(&p, "100", vec![Input::Silence, digits("5"), digits("2")]).await;
    assert_eq!(trail(&r), ["menu", "support"]);
}

#[tokio::test]
async fn menu_without_targets_says_goodbye() {
    let p = plan(
        "[[route]]\nmatch = \"1\"\nnode = \"m\"\n[node.m]\nkind = \"menu\"\nprompt = \"menu\"\noptions = { 1 = \"x\" }\nretries = 0\n[node.x]\nkind = \"hangup\"\n",
    );
    let r = run_simple(&p, "1", vec![digits("4")]).await;
    assert_eq!(r.outcome.end, End::Finished);
    assert_eq!(trail(&r), ["m"]);
    assert_eq!(r.call.played(), ["menu", "vm-invalid", "vm-goodbye-only"]);
    assert_eq!(r.call.log.last(), Some(&Action::HungUp));
    let r = run_simple(&p, "1", vec![Input::Silence]).await;
    assert_eq!(r.call.played(), ["menu", "vm-goodbye-only"]);
}

#[tokio::test]
async fn hang_up_while_a_menu_waits() {
    let p = plan(MENU);
    let r = run_simple(&p, "100", vec![]).await;
    assert_eq!(r.outcome.end, End::HungUp);
    assert_eq!(trail(&r), ["menu"]);
}

#[test]
fn menu_decisions_without_a_call() {
    let p = plan(MENU);
    let NodeKind::Menu(m) = &p.nodes["menu"].kind else {
        panic!()
    };
    assert_eq!(m.decide(0, Some('1')), MenuStep::Go("sales"));
    assert_eq!(m.decide(2, Some('#')), MenuStep::Go("hash"));
    assert_eq!(m.decide(0, Some('5')), MenuStep::Retry { invalid: true });
    assert_eq!(m.decide(1, None), MenuStep::Retry { invalid: false });
    assert_eq!(
        m.decide(2, Some('5')),
        MenuStep::GiveUp {
            target: Some("bad"),
            invalid: true
        }
    );
    assert_eq!(
        m.decide(2, None),
        MenuStep::GiveUp {
            target: Some("quiet"),
            invalid: false
        }
    );
}

// --- Loop guard -----------------------------------------------------------

#[tokio::test]
async fn step_limit_ends_a_menu_that_loops_on_itself() {
    let p = plan(
        "[[route]]\nmatch = \"1\"\nnode = \"m\"\n[node.m]\nkind = \"menu\"\nprompt = \"menu\"\noptions = { 1 = \"x\" }\nretries = 0\ntimeout = \"m\"\n[node.x]\nkind = \"hangup\"\n",
    );
    let options = RunOptions {
        max_steps: 40,
        ..RunOptions::default()
    };
    let r = run_with(&p, "1", vec![Input::Silence; 100], |_| {}, options).await;
    assert_eq!(r.outcome.end, End::StepLimit);
    assert_eq!(r.outcome.trail.len(), 40);
    assert!(r.outcome.trail.iter().all(|n| n == "m"));
    assert_eq!(r.call.played().len(), 40);
    assert_eq!(r.call.log.last(), Some(&Action::HungUp));
}

#[tokio::test]
async fn step_limit_survives_a_busy_loop_in_an_unchecked_plan() {
    // check() refuses this plan; the guard still protects against one.
    let mut p = plan(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"goto\"\ntarget = \"b\"\n[node.b]\nkind = \"hangup\"\n",
    );
    p.nodes.get_mut("b").unwrap().kind =
        NodeKind::Goto(crate::dialplan::model::Goto { target: "a".into() });
    let r = run_simple(&p, "1", vec![]).await;
    assert_eq!(r.outcome.end, End::StepLimit);
    assert_eq!(r.outcome.trail.len(), DEFAULT_MAX_STEPS);
    assert_eq!(&r.outcome.trail[..4], ["a", "b", "a", "b"]);
}

#[tokio::test]
async fn unknown_node_in_an_unchecked_plan() {
    let mut p = plan(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"goto\"\ntarget = \"b\"\n[node.b]\nkind = \"hangup\"\n",
    );
    p.nodes.remove("b");
    let r = run_simple(&p, "1", vec![]).await;
    assert_eq!(r.outcome.end, End::UnknownNode("b".into()));
    assert_eq!(r.call.log.last(), Some(&Action::HungUp));
}

// --- Schedules --------------------------------------------------------------

const SCHEDULE: &str = r#"
[[route]]
match = "+3225550100"
node = "hours"
[node.hours]
kind = "schedule"
timezone = "Europe/Brussels"
mon = ["09:00-12:00", "13:00-17:30"]
tue = ["09:00-12:00", "13:00-17:30"]
wed = ["09:00-12:00", "13:00-17:30"]
thu = ["09:00-12:00", "13:00-17:30"]
fri = ["09:00-12:00", "13:00-17:30"]
holidays = ["2026-12-25", 2026-04-06]
open = "open"
closed = "closed"
holiday = "holiday"
[node.open]
kind = "play"
prompt = "welcome"
[node.closed]
kind = "play"
prompt = "closed"
[node.holiday]
kind = "play"
prompt = "holiday"
"#;

async fn schedule_at(p: &DialPlan, when: &str) -> Vec<String> {
    run_with(p, "+3225550100", vec![], |_| {}, at(when))
        .await
        .outcome
        .trail
}

#[tokio::test]
async fn schedule_follows_the_injected_clock() {
    let p = plan(SCHEDULE);
    assert_eq!(
        schedule_at(&p, "2026-12-23T10:00:00Z").await,
        ["hours", "open"]
    );
    // Lunch break: 11:30Z = 12:30 CET.
    assert_eq!(
        schedule_at(&p, "2026-12-23T11:30:00Z").await,
        ["hours", "closed"]
    );
    // A weekend.
    assert_eq!(
        schedule_at(&p, "2026-12-26T10:00:00Z").await,
        ["hours", "closed"]
    );
}

#[tokio::test]
async fn schedule_across_a_holiday_in_local_time() {
    let p = plan(SCHEDULE);
    // Thursday 24 December, 16:00 CET: open.
    assert_eq!(
        schedule_at(&p, "2026-12-24T15:00:00Z").await,
        ["hours", "open"]
    );
    // 23:30Z on the 24th is 00:30 on Christmas in Brussels.
    assert_eq!(
        schedule_at(&p, "2026-12-24T23:30:00Z").await,
        ["hours", "holiday"]
    );
    // Christmas mid-morning (a Friday, otherwise open).
    assert_eq!(
        schedule_at(&p, "2026-12-25T09:00:00Z").await,
        ["hours", "holiday"]
    );
    // Easter Monday, written as a bare TOML date.
    assert_eq!(
        schedule_at(&p, "2026-04-06T09:00:00Z").await,
        ["hours", "holiday"]
    );
    assert_eq!(
        schedule_at(&p, "2026-04-07T09:00:00Z").await,
        ["hours", "open"]
    );
}

#[tokio::test]
async fn schedule_across_the_dst_change() {
    let p = plan(SCHEDULE);
    // 16:00Z: 17:00 CET on Thursday 26 March (open), 18:00 CEST on
    // Thursday 2 April (closed). A UTC or fixed-offset clock gets one wrong.
    assert_eq!(
        schedule_at(&p, "2026-03-26T16:00:00Z").await,
        ["hours", "open"]
    );
    assert_eq!(
        schedule_at(&p, "2026-04-02T16:00:00Z").await,
        ["hours", "closed"]
    );
    // 07:30Z: 08:30 CET (closed) before, 09:30 CEST (open) after.
    assert_eq!(
        schedule_at(&p, "2026-03-27T07:30:00Z").await,
        ["hours", "closed"]
    );
    assert_eq!(
        schedule_at(&p, "2026-03-30T07:30:00Z").await,
        ["hours", "open"]
    );
    // Autumn: back to CET on 25 October.
    assert_eq!(
        schedule_at(&p, "2026-10-23T15:45:00Z").await,
        ["hours", "closed"]
    );
    assert_eq!(
        schedule_at(&p, "2026-10-26T15:45:00Z").await,
        ["hours", "open"]
    );
}

#[tokio::test]
async fn schedule_reads_the_clock_when_the_node_is_reached() {
    let p = plan(SCHEDULE);
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = ticks.clone();
    let options = RunOptions {
        clock: Clock::from_fn(move || {
            t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            "2026-12-23T10:00:00Z".parse().unwrap()
        }),
        ..RunOptions::default()
    };
    let r = run_with(&p, "+3225550100", vec![], |_| {}, options).await;
    assert_eq!(trail(&r), ["hours", "open"]);
    assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), 1);
}

// --- Language -----------------------------------------------------------------

#[tokio::test]
async fn language_node_switches_the_prompts_for_the_rest_of_the_call() {
    let p = plan(
        r#"
[[route]]
match = "1"
node = "m"
[[route]]
match = "2"
node = "m"
language = "fr"
[node.m]
kind = "menu"
prompt = "menu"
options = { 9 = "fr", 1 = "vm" }
[node.fr]
kind = "language"
language = "fr"
next = "m"
[node.vm]
kind = "voicemail"
mailbox = "1001"
"#,
    );
    let r = run_simple(&p, "1", vec![digits("9"), digits("1")]).await;
    assert_eq!(trail(&r), ["m", "fr", "m", "vm"]);
    assert_eq!(
        *r.apps.asked.borrow(),
        [
            ("en".to_owned(), "menu".to_owned()),
            ("fr".to_owned(), "menu".to_owned())
        ]
    );
    assert_eq!(r.outcome.language, "fr");
    let AppCall::Voicemail(t) = &r.apps.calls[0] else {
        panic!()
    };
    assert_eq!(t.language, "fr");

    // A route's language is where the call starts.
    let r = run_simple(&p, "2", vec![digits("1")]).await;
    assert_eq!(
        *r.apps.asked.borrow(),
        [("fr".to_owned(), "menu".to_owned())]
    );

    // The options' default language.
    let options = RunOptions {
        language: "de".into(),
        ..RunOptions::default()
    };
    let r = run_with(&p, "1", vec![digits("1")], |_| {}, options).await;
    assert_eq!(
        *r.apps.asked.borrow(),
        [("de".to_owned(), "menu".to_owned())]
    );
}

// --- Voicemail and the other apps ---------------------------------------------

const APPS: &str = r#"
[[route]]
match = "*99{box}"
node = "login"
[[route]]
match = "*98"
node = "own"
[[route]]
match = "8{box}"
node = "deposit"
[[route]]
match = "1002"
node = "team"
[[route]]
match = "*97"
node = "rec"
[[route]]
match = "7{ext}"
node = "xfer"

[node.login]
kind = "voicemail_main"
mailbox = "{box}"
next = "bye"
[node.own]
kind = "voicemail_main"
[node.deposit]
kind = "voicemail"
mailbox = "{box}"
greeting = "auto"
operator = "operator"
retrieval = "login"
full = "full"
review = true
skip_instructions_if_greeting = true
max_messages = 50
next = "bye"
[node.team]
kind = "voicemail"
mailboxes = ["1002", "{dialed}", "1003"]
greeting = "busy"
[node.rec]
kind = "record_message"
next = "bye"
[node.operator]
kind = "transfer"
target = "sip:operator@pbx"
[node.full]
kind = "play"
prompt = "closed"
[node.bye]
kind = "play"
prompt = "vm-goodbye-only"
[node.xfer]
kind = "transfer"
target = "sip:{ext}@pbx.example.com"
mode = "redirect"
failed = "deposit-ext"
[node.deposit-ext]
kind = "voicemail"
mailbox = "{ext}"
greeting = "none"
"#;

fn vm_target(r: &Run) -> &VoicemailTarget {
    match &r.apps.calls[0] {
        AppCall::Voicemail(t) => t,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn voicemail_node_passes_its_options_and_captures() {
    let p = plan(APPS);
    let r = run_simple(&p, "81001", vec![]).await;
    assert_eq!(
        *vm_target(&r),
        VoicemailTarget {
            mailboxes: vec!["1001".into()],
            greeting: Some(GreetingKind::Unavailable),
            language: "en".into(),
            operator: true,
            retrieval: true,
            review: true,
            skip_instructions_if_greeting: true,
            max_messages: Some(50),
            diversion: None,
        }
    );
    assert_eq!(trail(&r), ["deposit", "bye"]);
    assert_eq!(r.call.played(), ["vm-goodbye-only"]);
    assert_eq!(r.outcome.end, End::Finished);
}

#[tokio::test]
async fn several_boxes_are_deduplicated_and_fixed_greetings_kept() {
    let p = plan(APPS);
    let r = run_simple(&p, "1002", vec![]).await;
    let t = vm_target(&r);
    assert_eq!(t.mailboxes, ["1002", "1003"]);
    assert_eq!(t.greeting, Some(GreetingKind::Busy));
    assert!(!t.operator && !t.retrieval && !t.review);
    // No next: the plan ends the call.
    assert_eq!(r.outcome.end, End::Finished);
    assert_eq!(r.call.log.last(), Some(&Action::HungUp));
}

#[tokio::test]
async fn voicemail_results_choose_the_next_node() {
    let p = plan(APPS);
    for (result, want, end) in [
        (
            VmResult::Operator,
            vec!["deposit", "operator"],
            End::Transferred,
        ),
        (VmResult::Full, vec!["deposit", "full"], End::Finished),
        (VmResult::HungUp, vec!["deposit"], End::HungUp),
    ] {
        let r = run_with(
            &p,
            "81001",
            vec![],
            |a| a.vm.push_back(result),
            RunOptions::default(),
        )
        .await;
        assert_eq!(trail(&r), want, "{result:?}");
        assert_eq!(r.outcome.end, end, "{result:?}");
    }
    // `*` goes to the retrieval node, for the same box.
    let r = run_with(
        &p,
        "81001",
        vec![],
        |a| a.vm.push_back(VmResult::Retrieval),
        RunOptions::default(),
    )
    .await;
    assert_eq!(trail(&r), ["deposit", "login", "bye"]);
    assert_eq!(
        r.apps.calls[1],
        AppCall::Main(MainTarget {
            mailbox: Some("1001".into()),
            language: "en".into()
        })
    );
}

#[tokio::test]
async fn diverted_calls_get_the_greeting_for_their_cause() {
    let p = plan(APPS);
    let cache = prompts();
    for (reason, greeting) in [
        (DivertReason::Busy, GreetingKind::Busy),
        (DivertReason::NoAnswer, GreetingKind::Unavailable),
        (DivertReason::Unconditional, GreetingKind::Unavailable),
    ] {
        let diversion = Diversion {
            mailbox: "81004".into(),
            reason,
        };
        // Routed by the number it was diverted from.
        let entry = p.route_call("voicemail", Some(diversion.clone())).unwrap();
        assert_eq!(entry.node, "deposit");
        let mut apps = FakeApps::new(&cache);
        let mut call = FakeCall::new("+321", "voicemail", vec![]);
        run(&p, entry, &mut call, &mut apps, &RunOptions::default()).await;
        let AppCall::Voicemail(t) = &apps.calls[0] else {
            panic!()
        };
        assert_eq!(t.greeting, Some(greeting), "{reason:?}");
        assert_eq!(t.mailboxes, ["1004"]);
        assert_eq!(t.diversion.as_ref(), Some(&diversion));
    }
    // A diverted-from number without a route: routed by the dialed number.
    let d = Diversion {
        mailbox: "5555".into(),
        reason: DivertReason::Busy,
    };
    let entry = p.route_call("81001", Some(d.clone())).unwrap();
    assert_eq!(
        (entry.node.as_str(), entry.dialed.as_str()),
        ("deposit", "81001")
    );
    assert_eq!(entry.diversion, Some(d));
    assert_eq!(p.route_call("nothing", None), None);
}

#[tokio::test]
async fn voicemail_main_for_a_captured_box_or_the_callers_own() {
    let p = plan(APPS);
    let r = run_simple(&p, "*991001", vec![]).await;
    assert_eq!(
        r.apps.calls,
        [AppCall::Main(MainTarget {
            mailbox: Some("1001".into()),
            language: "en".into()
        })]
    );
    assert_eq!(trail(&r), ["login", "bye"]);
    let r = run_with(
        &p,
        "*98",
        vec![],
        |a| a.app.push_back(AppResult::HungUp),
        RunOptions::default(),
    )
    .await;
    assert_eq!(
        r.apps.calls,
        [AppCall::Main(MainTarget {
            mailbox: None,
            language: "en".into()
        })]
    );
    assert_eq!(r.outcome.end, End::HungUp);
}

#[tokio::test]
async fn record_message_node() {
    let p = plan(APPS);
    let r = run_simple(&p, "*97", vec![]).await;
    assert_eq!(
        r.apps.calls,
        [AppCall::Record(RecordTarget {
            message: None,
            language: "en".into()
        })]
    );
    assert_eq!(trail(&r), ["rec", "bye"]);
}

#[tokio::test]
async fn transfer_success_and_failure() {
    let p = plan(APPS);
    let r = run_simple(&p, "71005", vec![]).await;
    assert_eq!(
        r.apps.calls,
        [AppCall::Transfer(TransferTarget {
            target: "sip:1005@pbx.example.com".into(),
            mode: TransferMode::Redirect
        })]
    );
    assert_eq!(r.outcome.end, End::Transferred);
    // Our leg ends after the transfer.
    assert_eq!(r.call.log.last(), Some(&Action::HungUp));

    let r = run_with(
        &p,
        "71005",
        vec![],
        |a| a.transfer_ok = false,
        RunOptions::default(),
    )
    .await;
    assert_eq!(trail(&r), ["xfer", "deposit-ext"]);
    assert!(matches!(r.apps.calls[0], AppCall::Transfer(_)));
    let AppCall::Voicemail(t2) = &r.apps.calls[1] else {
        panic!("{:?}", r.apps.calls)
    };
    assert_eq!(t2.mailboxes, ["1005"]);
    assert_eq!(t2.greeting, None);
}

#[test]
fn redirect_before_answer() {
    let p = plan(APPS);
    let now: jiff::Timestamp = "2026-01-05T10:00:00Z".parse().unwrap();
    let entry = p.route("71005").unwrap();
    assert_eq!(
        p.redirect_target(&entry, "+321", now).as_deref(),
        Some("sip:1005@pbx.example.com")
    );
    // A refer transfer, or anything that plays first, is not a redirect.
    assert_eq!(
        p.redirect_target(&p.route("81001").unwrap(), "+321", now),
        None
    );
    let s = plan(
        r#"
[[route]]
match = "1"
node = "hours"
[node.hours]
kind = "schedule"
timezone = "Europe/Brussels"
mon = ["09:00-17:00"]
open = "office"
closed = "fr"
[node.fr]
kind = "language"
language = "fr"
next = "night"
[node.office]
kind = "transfer"
target = "sip:desk@pbx"
[node.night]
kind = "transfer"
target = "sip:{caller}@night"
mode = "redirect"
"#,
    );
    let e = s.route("1").unwrap();
    // Monday 11:00 local: a REFER after answer, not a 302.
    assert_eq!(s.redirect_target(&e, "+321", now), None);
    assert_eq!(
        s.redirect_target(&e, "+321", "2026-01-05T20:00:00Z".parse().unwrap())
            .as_deref(),
        Some("sip:+321@night")
    );
}

// --- The server can spawn it ----------------------------------------------------

/// Apps whose futures are `Send`, as a server's would be.
struct SendApps;

impl Apps for SendApps {
    async fn voicemail<C: CallApi>(&mut self, _: &mut C, _: &VoicemailTarget) -> VmResult {
        tokio::task::yield_now().await;
        VmResult::Done
    }
    async fn voicemail_main<C: CallApi>(&mut self, _: &mut C, _: &MainTarget) -> AppResult {
        AppResult::Done
    }
    async fn record_message<C: CallApi>(&mut self, _: &mut C, _: &RecordTarget) -> AppResult {
        AppResult::Done
    }
    async fn transfer<C: CallApi>(
        &mut self,
        _: &mut C,
        _: &TransferTarget,
    ) -> Result<(), TransferFailed> {
        Ok(())
    }
    fn prompt(&self, _: &str, _: &str) -> Option<Pcm> {
        None
    }
    fn audio_message(&self, _: &str) -> Option<Pcm> {
        None
    }
}

fn assert_send<T: Send>(_: &T) {}

/// Compiles only if a call's walk over the real `Call` can be spawned on
/// the multi-threaded runtime.
#[allow(dead_code)]
fn run_over_a_real_call_is_send(
    plan: &DialPlan,
    entry: RouteMatch,
    call: &mut crate::call::Call,
    o: &RunOptions,
) {
    let mut apps = SendApps;
    let fut = run(plan, entry, call, &mut apps, o);
    assert_send(&fut);
}

#[tokio::test]
async fn send_apps_run_a_plan() {
    let p = plan(
        "[[route]]\nmatch = \"1\"\nnode = \"v\"\n[node.v]\nkind = \"voicemail\"\nmailbox = \"1001\"\nnext = \"b\"\n[node.b]\nkind = \"hangup\"\n",
    );
    let plan = std::sync::Arc::new(p);
    let handle = tokio::spawn(async move {
        let mut call = FakeCall::new("1", "1", vec![]);
        let entry = plan.route("1").unwrap();
        run(
            &plan,
            entry,
            &mut call,
            &mut SendApps,
            &RunOptions::default(),
        )
        .await
    });
    let outcome = handle.await.unwrap();
    assert_eq!(outcome.trail, ["v", "b"]);
    assert_eq!(outcome.end, End::Finished);
}
