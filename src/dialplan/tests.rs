//! Checker, shipped plans, reload and watch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::model::{GreetingChoice, Matcher, NodeKind};
use super::*;

const KNOWN_PROMPTS: &[&str] = &["welcome", "menu", "closed", "vm-goodbye"];

/// `welcome`, `menu`, `closed` and `vm-goodbye` exist in en and fr;
/// `english-only` only in en.
fn prompt_exists(lang: &str, name: &str) -> bool {
    (matches!(lang, "en" | "fr") && KNOWN_PROMPTS.contains(&name))
        || (lang == "en" && name == "english-only")
}

/// `promo` is a recorded audio message.
fn audio(name: &str) -> bool {
    name == "promo"
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn load(files: &[(&str, &str)]) -> Result<DialPlan, Vec<DialPlanError>> {
    let dir = dir_with(files);
    check_with(dir.path(), &prompt_exists, &audio)
}

fn file_name(e: &DialPlanError) -> String {
    Path::new(&e.file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

type Found = (String, usize, usize, ErrorKind, String);

fn errors(files: &[(&str, &str)]) -> Vec<Found> {
    match load(files) {
        Ok(p) => panic!("expected errors, got a plan with {} routes", p.routes.len()),
        Err(errs) => errs
            .iter()
            .map(|e| (file_name(e), e.line, e.column, e.kind, e.message.clone()))
            .collect(),
    }
}

/// The only error of a one-file plan: (line, column, kind, message).
fn only_error(text: &str) -> (usize, usize, ErrorKind, String) {
    let errs = errors(&[("plan.toml", text)]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let (_, line, col, kind, msg) = errs.into_iter().next().unwrap();
    (line, col, kind, msg)
}

fn ok(text: &str) -> DialPlan {
    load(&[("plan.toml", text)]).unwrap_or_else(|e| panic!("{}", format_errors(&e)))
}

// --- A valid plan ---------------------------------------------------------

#[test]
fn a_valid_plan_is_read_into_the_model() {
    let p = ok(r##"
[[route]]
match = "+3225550100"
node = "hours"

[[route]]
prefix = "+32"
node = "menu"
language = "fr"

[[route]]
match = "*99{box}"
node = "login"

[node.hours]
kind = "schedule"
timezone = "Europe/Brussels"
mon = ["09:00-12:00", "13:00-17:30"]
sat = "10:00-12:00"
holidays = ["2026-12-25", "01-01"]
open = "menu"
closed = "hold"
holiday = "vm"

[node.menu]
kind = "menu"
prompt = ["welcome", "menu"]
options = { 1 = "vm", "*" = "own", "#" = "bye" }
timeout_seconds = 7
retries = 1
invalid = "bye"

[node.hold]
kind = "play"
prompt = "promo"
loop = true
max_seconds = 60
next = "vm"

[node.vm]
kind = "voicemail"
mailboxes = ["1001", "1002"]
greeting = "busy"

[node.login]
kind = "voicemail_main"
mailbox = "{box}"

[node.own]
kind = "voicemail_main"

[node.bye]
kind = "hangup"
"##);
    assert_eq!(p.routes.len(), 3);
    assert_eq!(p.routes[0].matcher, Matcher::Exact("+3225550100".into()));
    assert_eq!(p.routes[1].matcher, Matcher::Prefix("+32".into()));
    assert_eq!(p.routes[1].language.as_deref(), Some("fr"));
    assert_eq!(p.routes[2].origin.line, 12);
    assert!(p.routes[2].origin.file.ends_with("plan.toml"));
    assert_eq!(p.nodes.len(), 7);
    let NodeKind::Schedule(s) = &p.nodes["hours"].kind else {
        panic!()
    };
    assert_eq!(s.week[0], [(540, 720), (780, 1050)]);
    assert_eq!(s.week[5], [(600, 720)]);
    assert!(s.week[1].is_empty());
    assert_eq!(s.holidays.len(), 2);
    assert_eq!(s.holiday.as_deref(), Some("vm"));
    let NodeKind::Menu(m) = &p.nodes["menu"].kind else {
        panic!()
    };
    assert_eq!(m.prompts, ["welcome", "menu"]);
    assert_eq!(m.options.get(&'*').map(String::as_str), Some("own"));
    assert_eq!(m.options.len(), 3);
    assert_eq!((m.timeout_seconds, m.retries), (7, 1));
    assert_eq!(
        (m.invalid.as_deref(), m.timeout.as_deref()),
        (Some("bye"), None)
    );
    let NodeKind::Play(h) = &p.nodes["hold"].kind else {
        panic!()
    };
    assert!(h.looped);
    assert_eq!(h.max_seconds, Some(60));
    let NodeKind::Voicemail(v) = &p.nodes["vm"].kind else {
        panic!()
    };
    assert_eq!(v.mailboxes.len(), 2);
    assert_eq!(v.greeting, GreetingChoice::Busy);
    assert!(!v.review);
    assert_eq!(p.nodes["bye"].origin.line, 52);
    // Defaults.
    let p = ok(
        "[[route]]\nmatch = \"1\"\nnode = \"m\"\n[node.m]\nkind = \"menu\"\nprompt = \"menu\"\noptions = { 0 = \"v\" }\n[node.v]\nkind = \"voicemail\"\nmailbox = \"1001\"\n",
    );
    let NodeKind::Menu(m) = &p.nodes["m"].kind else {
        panic!()
    };
    assert_eq!((m.timeout_seconds, m.retries), (5, 2));
    let NodeKind::Voicemail(v) = &p.nodes["v"].kind else {
        panic!()
    };
    assert_eq!(v.greeting, GreetingChoice::Auto);
}

#[test]
fn an_empty_directory_is_an_empty_plan_and_other_files_are_ignored() {
    let p = load(&[]).unwrap();
    assert!(p.routes.is_empty() && p.nodes.is_empty());
    let p = load(&[
        (".hidden.toml", "this is [ not toml"),
        ("notes.txt", "nor [ this"),
        ("main.toml.bak", "nor [ this"),
    ])
    .unwrap();
    assert!(p.routes.is_empty());
}

// --- Errors, each at its line ----------------------------------------------

#[test]
fn unknown_keys_and_sections() {
    let text = "\
[[route]]
match = \"100\"
node = \"a\"
nod = \"b\"
[node.a]
kind = \"play\"
prompt = \"welcome\"
promt = \"menu\"
[nodes.b]
kind = \"hangup\"
";
    let errs = errors(&[("plan.toml", text)]);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_eq!(
        (errs[0].1, errs[0].2, errs[0].3),
        (4, 1, ErrorKind::UnknownKey)
    );
    assert_eq!(
        errs[0].4,
        "unknown key `nod` in [[route]], expected one of `match`, `prefix`, `node`, `language`"
    );
    assert_eq!(
        (errs[1].1, errs[1].2, errs[1].3),
        (8, 1, ErrorKind::UnknownKey)
    );
    assert_eq!(
        errs[1].4,
        "unknown key `promt` in [node.a] (a play node), expected one of `kind`, `prompt`, `loop`, `max_seconds`, `next`"
    );
    assert_eq!((errs[2].1, errs[2].2), (9, 2));
    assert!(
        errs[2].4.starts_with("unknown section `nodes`"),
        "{}",
        errs[2].4
    );
}

#[test]
fn unknown_targets_with_a_suggestion() {
    let text = "\
[[route]]
match = \"100\"
node = \"main\"
[[route]]
match = \"101\"
node = \"nowhere\"
[node.main]
kind = \"play\"
prompt = \"welcome\"
next = \"mian\"
";
    let errs = errors(&[("plan.toml", text)]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(
        (errs[0].1, errs[0].2, errs[0].3),
        (6, 8, ErrorKind::UnknownNode)
    );
    assert_eq!(errs[0].4, "`node` in [[route]]: unknown node `nowhere`");
    assert_eq!(
        (errs[1].1, errs[1].2, errs[1].3),
        (10, 8, ErrorKind::UnknownNode)
    );
    assert_eq!(
        errs[1].4,
        "`next` in [node.main]: unknown node `mian`, did you mean `main`?"
    );
    // Menu option targets are checked too.
    let (line, col, kind, msg) = only_error(
        "[[route]]\nmatch = \"1\"\nnode = \"m\"\n[node.m]\nkind = \"menu\"\nprompt = \"menu\"\noptions = { 1 = \"m\", 2 = \"x\" }\n",
    );
    // At the value: the name that is wrong.
    assert_eq!((line, col, kind), (7, 26, ErrorKind::UnknownNode));
    assert_eq!(msg, "`options.2` in [node.m]: unknown node `x`");
}

#[test]
fn unreachable_nodes_at_their_header() {
    let (line, col, kind, msg) = only_error(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"hangup\"\n\n[node.orphan]\nkind = \"play\"\nprompt = \"welcome\"\nnext = \"a\"\n",
    );
    assert_eq!((line, col, kind), (7, 7, ErrorKind::Unreachable));
    assert_eq!(msg, "node `orphan` is not reachable from any route");
}

#[test]
fn missing_prompts_and_audio_messages() {
    let (line, col, kind, msg) = only_error(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"play\"\nprompt = [\"welcome\", \"promo\", \"nope\"]\n",
    );
    assert_eq!((line, col, kind), (6, 31, ErrorKind::MissingPrompt));
    assert_eq!(
        msg,
        "`prompt` in [node.a]: no prompt or audio message named `nope` \
         (expected prompts/en/nope.wav or a recorded audio message)"
    );
    // In English only: fine until the plan switches to French.
    ok(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"play\"\nprompt = \"english-only\"\n",
    );
    let text = "\
[[route]]
match = \"1\"
node = \"fr\"
[node.fr]
kind = \"language\"
language = \"fr\"
next = \"m\"
[node.m]
kind = \"menu\"
prompt = \"english-only\"
options = { 1 = \"m\" }
";
    let (line, col, kind, msg) = only_error(text);
    assert_eq!((line, col, kind), (10, 10, ErrorKind::MissingPrompt));
    assert_eq!(
        msg,
        "`prompt` in [node.m]: prompt `english-only` is missing in prompts/fr/english-only.wav"
    );
    // A route's language counts as well.
    let (line, _, kind, _) = only_error(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\nlanguage = \"fr\"\n[node.a]\nkind = \"play\"\nprompt = \"english-only\"\n",
    );
    assert_eq!((line, kind), (7, ErrorKind::MissingPrompt));
}

#[test]
fn loops_that_never_wait() {
    let text = "\
[[route]]
match = \"1\"
node = \"a\"
[node.a]
kind = \"goto\"
target = \"b\"
[node.b]
kind = \"play\"
prompt = \"welcome\"
next = \"a\"
";
    let (line, col, kind, msg) = only_error(text);
    assert_eq!((line, col, kind), (4, 7, ErrorKind::Loop));
    assert_eq!(
        msg,
        "loop that never waits for the caller: `a` → `b` → `a`; add a menu or a looping play to it"
    );
    // A schedule that sends a call to itself.
    let (line, _, kind, msg) = only_error(
        "[[route]]\nmatch = \"1\"\nnode = \"s\"\n[node.s]\nkind = \"schedule\"\ntimezone = \"UTC\"\nopen = \"s\"\nclosed = \"x\"\n[node.x]\nkind = \"hangup\"\n",
    );
    assert_eq!((line, kind), (4, ErrorKind::Loop));
    assert!(msg.contains("`s` → `s`"), "{msg}");
    // A failing transfer that tries again at once.
    let (line, _, kind, msg) = only_error(
        "[[route]]\nmatch = \"1\"\nnode = \"t\"\n[node.t]\nkind = \"transfer\"\ntarget = \"sip:a@b\"\nfailed = \"l\"\n[node.l]\nkind = \"language\"\nlanguage = \"fr\"\nnext = \"t\"\n",
    );
    assert_eq!((line, kind), (4, ErrorKind::Loop));
    assert!(msg.contains("`t` → `l` → `t`"), "{msg}");
    // Through a menu, a looping play or a voicemail: fine.
    ok(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"goto\"\ntarget = \"m\"\n[node.m]\nkind = \"menu\"\nprompt = \"menu\"\noptions = { 1 = \"a\" }\n",
    );
    ok(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"play\"\nprompt = \"welcome\"\nnext = \"h\"\n[node.h]\nkind = \"play\"\nprompt = \"promo\"\nloop = true\nmax_seconds = 30\nnext = \"a\"\n",
    );
    ok(
        "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"goto\"\ntarget = \"v\"\n[node.v]\nkind = \"voicemail\"\nmailbox = \"1\"\nnext = \"a\"\n",
    );
}

#[test]
fn two_loops_are_two_errors() {
    let text = "\
[[route]]
match = \"1\"
node = \"a\"
[[route]]
match = \"2\"
node = \"c\"
[node.a]
kind = \"goto\"
target = \"a\"
[node.c]
kind = \"goto\"
target = \"d\"
[node.d]
kind = \"goto\"
target = \"c\"
";
    let errs = errors(&[("plan.toml", text)]);
    assert_eq!(
        errs.iter().map(|e| (e.1, e.3)).collect::<Vec<_>>(),
        [(7, ErrorKind::Loop), (10, ErrorKind::Loop)]
    );
}

#[test]
fn duplicate_routes_and_nodes_across_files() {
    let a = "[[route]]\nmatch = \"100\"\nnode = \"a\"\n[[route]]\nmatch = \"*99{box}\"\nnode = \"a\"\n[[route]]\nprefix = \"+32\"\nnode = \"a\"\n[node.a]\nkind = \"hangup\"\n";
    let b = "[[route]]\nmatch = \"100\"\nnode = \"a\"\n[[route]]\nmatch = \"*99{x}\"\nnode = \"a\"\n[[route]]\nprefix = \"+32\"\nnode = \"a\"\n[[route]]\nprefix = \"100\"\nnode = \"a\"\n\n[node.a]\nkind = \"hangup\"\n";
    let dir = dir_with(&[("a.toml", a), ("b.toml", b)]);
    let errs = check_with(dir.path(), &prompt_exists, &audio).unwrap_err();
    let a_path = dir.path().join("a.toml").display().to_string();
    let got: Vec<(String, usize, usize, ErrorKind, String)> = errs
        .iter()
        .map(|e| (file_name(e), e.line, e.column, e.kind, e.message.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "b.toml".to_owned(),
                2,
                9,
                ErrorKind::DuplicateRoute,
                format!("duplicate route `100`, first defined at {a_path}:2")
            ),
            (
                "b.toml".to_owned(),
                5,
                9,
                ErrorKind::DuplicateRoute,
                format!("duplicate route `*99{{x}}`, first defined at {a_path}:5")
            ),
            (
                "b.toml".to_owned(),
                8,
                10,
                ErrorKind::DuplicateRoute,
                format!("duplicate route `prefix +32`, first defined at {a_path}:8")
            ),
            (
                "b.toml".to_owned(),
                14,
                7,
                ErrorKind::DuplicateNode,
                format!("duplicate node `a`, first defined at {a_path}:10")
            ),
        ]
    );
    // The printed form.
    assert_eq!(
        errs[0].to_string(),
        format!(
            "{}:2:9: duplicate route `100`, first defined at {a_path}:2",
            dir.path().join("b.toml").display()
        )
    );
}

#[test]
fn bad_times_time_zones_and_dates() {
    let text = "\
[[route]]
match = \"1\"
node = \"s\"
[node.s]
kind = \"schedule\"
timezone = \"Europe/Brusels\"
mon = [\"9:00-17:00\"]
tue = [\"17:00-09:00\"]
holidays = [\"2026-02-30\", \"xmas\"]
open = \"x\"
closed = \"x\"
[node.x]
kind = \"hangup\"
";
    let errs = errors(&[("plan.toml", text)]);
    let got: Vec<(usize, usize, ErrorKind)> = errs.iter().map(|e| (e.1, e.2, e.3)).collect();
    assert_eq!(
        got,
        [
            (6, 12, ErrorKind::BadValue),
            (7, 8, ErrorKind::BadValue),
            (8, 8, ErrorKind::BadValue),
            (9, 13, ErrorKind::BadValue),
            (9, 27, ErrorKind::BadValue),
        ],
        "{errs:#?}"
    );
    assert_eq!(
        errs[0].4,
        "`timezone` in [node.s]: unknown time zone `Europe/Brusels`, expected an IANA name like \"Europe/Brussels\""
    );
    assert_eq!(
        errs[1].4,
        "`mon` in [node.s]: `9:00-17:00` is not a time range, expected HH:MM-HH:MM like \"09:00-17:30\""
    );
    assert_eq!(
        errs[2].4,
        "`tue` in [node.s]: `17:00-09:00`: the range ends before it starts"
    );
    assert!(
        errs[3].4.contains("`2026-02-30` is not a date"),
        "{}",
        errs[3].4
    );
    assert!(errs[4].4.contains("`xmas` is not a date"), "{}", errs[4].4);
    // The bad node is not also reported as a loop or unreachable.
    assert!(errs.iter().all(|e| e.3 == ErrorKind::BadValue));
}

#[test]
fn bad_menu_keys_and_values() {
    let text = "\
[[route]]
match = \"1\"
node = \"m\"
[node.m]
kind = \"menu\"
prompt = \"menu\"
options = { 1 = \"v\", 12 = \"v\", a = \"v\" }
timeout_seconds = 0
retries = \"two\"
[node.v]
kind = \"voicemail\"
mailbox = \"10 01\"
greeting = \"sometimes\"
review = \"yes\"
";
    let errs = errors(&[("plan.toml", text)]);
    let got: Vec<(usize, usize)> = errs.iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(
        got,
        [
            (7, 22),
            (7, 32),
            (8, 19),
            (9, 11),
            (12, 11),
            (13, 12),
            (14, 10)
        ],
        "{errs:#?}"
    );
    assert!(errs.iter().all(|e| e.3 == ErrorKind::BadValue));
    assert_eq!(
        errs[0].4,
        "`options` in [node.m]: `12` is not a phone key, expected one of 0-9, `*` or `#` (quote `*` and `#`)"
    );
    assert_eq!(
        errs[2].4,
        "`timeout_seconds` in [node.m]: 0 is out of range, expected 1 to 60"
    );
    assert_eq!(
        errs[3].4,
        "`retries` in [node.m]: expected an integer, found string"
    );
    assert!(
        errs[4].4.contains("`10 01` is not a mailbox number"),
        "{}",
        errs[4].4
    );
    assert_eq!(
        errs[5].4,
        "`greeting` in [node.v]: unknown value `sometimes`, expected one of `auto`, `unavailable`, `busy`, `none`"
    );
    assert_eq!(
        errs[6].4,
        "`review` in [node.v]: expected true or false, found string"
    );
    // A menu without options.
    let (line, _, kind, msg) = only_error(
        "[[route]]\nmatch = \"1\"\nnode = \"m\"\n[node.m]\nkind = \"menu\"\nprompt = \"menu\"\noptions = {}\n",
    );
    assert_eq!((line, kind), (7, ErrorKind::BadValue));
    assert!(msg.contains("at least one option"), "{msg}");
}

#[test]
fn kinds_languages_and_missing_keys() {
    let text = "\
[[route]]
match = \"1\"
node = \"a\"
[node.a]
kind = \"lang\"
[node.b]
prompt = \"welcome\"
[node.c]
kind = \"language\"
language = \"nl\"
next = \"a\"
[node.d]
kind = \"voicemail\"
[node.e]
kind = \"play\"
prompt = \"welcome\"
max_seconds = 10
";
    let all = errors(&[("plan.toml", text)]);
    // b, c, d and e are unreachable too; c's language node still counts.
    assert_eq!(
        all.iter().filter(|e| e.3 == ErrorKind::Unreachable).count(),
        4,
        "{all:#?}"
    );
    let errs: Vec<Found> = all
        .into_iter()
        .filter(|e| e.3 != ErrorKind::Unreachable)
        .collect();
    let got: Vec<(usize, usize, ErrorKind)> = errs.iter().map(|e| (e.1, e.2, e.3)).collect();
    assert_eq!(
        got,
        [
            (5, 8, ErrorKind::BadValue),
            (6, 7, ErrorKind::MissingKey),
            (10, 12, ErrorKind::BadValue),
            (12, 7, ErrorKind::MissingKey),
            (17, 15, ErrorKind::BadValue),
        ],
        "{errs:#?}"
    );
    assert!(
        errs[0]
            .4
            .starts_with("`kind` in [node.a]: unknown kind `lang`, expected one of `play`, `menu`")
    );
    assert_eq!(
        errs[1].4,
        "[node.b] is missing `kind`, e.g. kind = \"menu\""
    );
    assert_eq!(
        errs[2].4,
        "`language` in [node.c]: unknown language `nl`, expected one of `en`, `fr`, `es`, `de`"
    );
    assert!(
        errs[3].4.starts_with("[node.d] is missing `mailbox`"),
        "{}",
        errs[3].4
    );
    assert_eq!(
        errs[4].4,
        "`max_seconds` in [node.e] only applies with loop = true"
    );
}

#[test]
fn bad_routes() {
    let text = "\
[[route]]
match = 1001
node = \"a\"
[[route]]
match = \"1\"
prefix = \"2\"
node = \"a\"
[[route]]
node = \"a\"
[[route]]
match = \"*99{box\"
node = \"a\"
[[route]]
match = \"{a}{b}\"
node = \"a\"
[[route]]
match = \"3\"
[node.a]
kind = \"hangup\"
";
    let errs = errors(&[("plan.toml", text)]);
    let got: Vec<(usize, usize, ErrorKind)> = errs.iter().map(|e| (e.1, e.2, e.3)).collect();
    assert_eq!(
        got,
        [
            (2, 9, ErrorKind::BadValue),
            (6, 10, ErrorKind::BadValue),
            (8, 1, ErrorKind::MissingKey),
            (11, 9, ErrorKind::BadValue),
            (14, 9, ErrorKind::BadValue),
            (16, 1, ErrorKind::MissingKey),
        ],
        "{errs:#?}"
    );
    assert_eq!(
        errs[0].4,
        "`match` in [[route]]: expected a string, found integer, write it quoted: match = \"1001\""
    );
    assert_eq!(
        errs[1].4,
        "[[route]] has both `match` and `prefix`; use one"
    );
    assert!(
        errs[2]
            .4
            .starts_with("[[route]] is missing `match` or `prefix`")
    );
    assert_eq!(
        errs[3].4,
        "`match` in [[route]]: `{` without a matching `}`"
    );
    assert!(errs[4].4.contains("adjacent"), "{}", errs[4].4);
    assert_eq!(
        errs[5].4,
        "[[route]] is missing `node`, e.g. node = \"main-menu\""
    );
}

#[test]
fn variables_must_be_captured_by_every_route_reaching_them() {
    let text = "\
[[route]]
match = \"*99{box}\"
node = \"login\"
[[route]]
match = \"1001\"
node = \"login\"
[node.login]
kind = \"voicemail_main\"
mailbox = \"{box}\"
";
    let errs = errors(&[("plan.toml", text)]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        (errs[0].1, errs[0].2, errs[0].3),
        (9, 11, ErrorKind::UndefinedVariable)
    );
    assert!(
        errs[0].4.starts_with(
            "`mailbox` in [node.login]: `{box}` is not captured by the route `1001` ("
        ),
        "{}",
        errs[0].4
    );
    assert!(errs[0].4.contains("plan.toml:5)"), "{}", errs[0].4);
    // Only the capturing route: fine; built-ins are always there.
    ok(
        "[[route]]\nmatch = \"*99{box}\"\nnode = \"login\"\n[node.login]\nkind = \"voicemail_main\"\nmailbox = \"{box}\"\n",
    );
    ok(
        "[[route]]\nmatch = \"1001\"\nnode = \"d\"\n[node.d]\nkind = \"voicemail\"\nmailbox = \"{dialed}\"\nnext = \"t\"\n[node.t]\nkind = \"transfer\"\ntarget = \"sip:{caller}@x;d={diverted}\"\n",
    );
    // A typo'd variable, reached through a goto.
    let (line, _, kind, msg) = only_error(
        "[[route]]\nmatch = \"7{ext}\"\nnode = \"g\"\n[node.g]\nkind = \"goto\"\ntarget = \"t\"\n[node.t]\nkind = \"transfer\"\ntarget = \"sip:{extn}@pbx\"\n",
    );
    assert_eq!((line, kind), (9, ErrorKind::UndefinedVariable));
    assert!(msg.contains("`{extn}`"), "{msg}");
}

#[test]
fn syntax_errors_do_not_hide_other_errors() {
    let text = "\
[[route]]
match = \"1\"
node = \"a\"
[node.a]
kind = play
[node.b]
kind = \"hangup\"
bogus = 1
";
    let errs = errors(&[("plan.toml", text)]);
    assert!(
        errs.iter().any(|e| e.1 == 5 && e.3 == ErrorKind::Syntax),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.1 == 8 && e.3 == ErrorKind::UnknownKey),
        "{errs:#?}"
    );
    // Sorted by line.
    let lines: Vec<usize> = errs.iter().map(|e| e.1).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn errors_are_sorted_by_file_then_line() {
    let errs = errors(&[
        (
            "b.toml",
            "[[route]]\nmatch = \"2\"\nnode = \"x\"\n[node.x]\nkind = \"hangup\"\nzzz = 1\n",
        ),
        (
            "a.toml",
            "\n\n[[route]]\nmatch = \"1\"\nnode = \"y\"\nyyy = 1\n[node.y]\nkind = \"hangup\"\nkind2 = 1\n",
        ),
    ]);
    let got: Vec<(String, usize)> = errs.iter().map(|e| (e.0.clone(), e.1)).collect();
    assert_eq!(
        got,
        [
            ("a.toml".to_owned(), 6),
            ("a.toml".to_owned(), 9),
            ("b.toml".to_owned(), 6)
        ]
    );
}

#[test]
fn an_unreadable_directory_is_one_error_on_line_zero() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let errs = check_with(&missing, &prompt_exists, &audio).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].line, errs[0].column, errs[0].kind),
        (0, 0, ErrorKind::Io)
    );
    assert!(
        errs[0].to_string().starts_with(&format!(
            "{}: cannot read the dial-plan directory",
            missing.display()
        )),
        "{}",
        errs[0]
    );
}

#[test]
fn hostile_input_does_not_panic() {
    for text in [
        "[",
        "[[route]]\n[[route]",
        "route = 1\nnode = []\n",
        "[node]\na = 1\n",
        "[node.a]\nkind = \"menu\"\noptions = \"x\"\nprompt = []\n",
        "[node.\"a b\"]\nkind = \"hangup\"\n",
        "[[route]]\nmatch = \"\"\nnode = \"\"\n",
        "[[route]]\nmatch = \"}{\"\nnode = \"a\"\n",
        "[node.s]\nkind = \"schedule\"\ntimezone = 3\nmon = 4\nholidays = \"x\"\n",
        "\u{feff}[node.a]\nkind = \"hangup\"\n",
    ] {
        let _ = load(&[("plan.toml", text)]);
    }
    assert!(load(&[("plan.toml", "[node]\na = 1\n")]).is_err());
}

// --- The shipped plans --------------------------------------------------------

/// Prompts the shipped plans use that are not (yet) in the catalogue.
const REQUESTED_PROMPTS: &[&str] = &["dp-welcome", "dp-main-menu", "dp-closed"];

fn shipped_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/dialplans"))
}

fn committed_prompts() -> crate::prompts::PromptCache {
    crate::prompts::PromptCache::load(&crate::prompts::default_dir()).unwrap()
}

#[test]
fn shipped_plans_check_with_the_requested_prompts() {
    let prompts = committed_prompts();
    let p = check_with(
        &shipped_dir(),
        &|l, n| prompts.contains(l, n) || REQUESTED_PROMPTS.contains(&n),
        &|_| false,
    )
    .unwrap_or_else(|e| panic!("{}", format_errors(&e)));
    // Whatever is still missing from the catalogue is only those prompts.
    if let Err(errs) = check(&shipped_dir(), &prompts, &|_| false) {
        for e in &errs {
            assert_eq!(e.kind, ErrorKind::MissingPrompt, "{e}");
            assert!(
                REQUESTED_PROMPTS
                    .iter()
                    .any(|n| e.message.contains(&format!("`{n}`"))),
                "{e}"
            );
        }
    }
    // Recorded as audio messages, they satisfy the check too.
    check(&shipped_dir(), &prompts, &|n| {
        REQUESTED_PROMPTS.contains(&n)
    })
    .unwrap();

    let node = |dialed: &str| p.route(dialed).map(|m| m.node);
    assert_eq!(node("+3225550100").as_deref(), Some("main"));
    assert_eq!(node("*98").as_deref(), Some("own-mailbox"));
    let m = p.route("*991002").unwrap();
    assert_eq!(m.node, "any-mailbox");
    assert_eq!(m.captures, [("box".to_owned(), "1002".to_owned())]);
    assert_eq!(node("1001").as_deref(), Some("deposit"));
    assert_eq!(node("1002").as_deref(), Some("deposit"));
    // Any other number too: whether it is a mailbox is checked when the
    // call comes in (404 before answering otherwise).
    assert_eq!(node("1003").as_deref(), Some("deposit"));
    assert_eq!(node("*97"), None);
    // A call forwarded busy from 1002 lands in 1002's deposit.
    let d = diverted_target("sip:voicemail@vm.example.com;target=1002;cause=486", &[]);
    let m = p.route_call("voicemail", d).unwrap();
    assert_eq!((m.node.as_str(), m.dialed.as_str()), ("deposit", "1002"));
    // Without a diversion it names: the voicemail URI's own node.
    assert_eq!(
        p.route_call("voicemail", None).unwrap().node,
        "diverted-deposit"
    );

    let NodeKind::Schedule(s) = &p.nodes["main"].kind else {
        panic!()
    };
    assert_eq!(s.timezone_name, "Europe/Brussels");
    let at = |t: &str| s.target_at(t.parse().unwrap()).to_owned();
    assert_eq!(at("2026-06-03T10:00:00Z"), "welcome"); // Wednesday 12:00 CEST
    assert_eq!(at("2026-06-03T15:45:00Z"), "after-hours"); // 17:45 CEST
    assert_eq!(at("2026-06-06T10:00:00Z"), "after-hours"); // Saturday
    assert_eq!(at("2026-12-25T10:00:00Z"), "after-hours"); // Christmas, a Friday
    assert_eq!(at("2026-07-21T10:00:00Z"), "after-hours"); // National Day
    let NodeKind::Menu(m) = &p.nodes["main-menu"].kind else {
        panic!()
    };
    assert_eq!(
        m.options
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
        [('1', "sales"), ('2', "support"), ('9', "french")]
    );
}

// --- Reload and watch ----------------------------------------------------------

const PLAN_V1: &str = "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[node.a]\nkind = \"hangup\"\n";
const PLAN_V2: &str = "[[route]]\nmatch = \"1\"\nnode = \"a\"\n[[route]]\nmatch = \"2\"\nnode = \"a\"\n[node.a]\nkind = \"hangup\"\n";

fn test_prompts() -> crate::prompts::PromptCache {
    committed_prompts()
}

#[test]
fn reload_swaps_the_plan_and_keeps_it_on_failure() {
    let dir = dir_with(&[("plan.toml", PLAN_V1)]);
    let prompts = test_prompts();
    let handle = DialPlanHandle::new(check(dir.path(), &prompts, &|_| false).unwrap());
    let in_call = handle.current();
    assert_eq!(in_call.routes.len(), 1);

    std::fs::write(dir.path().join("plan.toml"), PLAN_V2).unwrap();
    handle.reload(dir.path(), &prompts, &|_| false).unwrap();
    assert_eq!(handle.current().routes.len(), 2);
    // A call that started before keeps its plan.
    assert_eq!(in_call.routes.len(), 1);
    assert!(!Arc::ptr_eq(&in_call, &handle.current()));

    let before = handle.current();
    std::fs::write(
        dir.path().join("plan.toml"),
        "[[route]]\nmatch = \"1\"\nnode = \"gone\"\n",
    )
    .unwrap();
    let errs = handle.reload(dir.path(), &prompts, &|_| false).unwrap_err();
    assert_eq!(errs[0].kind, ErrorKind::UnknownNode);
    assert!(
        Arc::ptr_eq(&before, &handle.current()),
        "the running plan stays"
    );
}

#[test]
fn watch_reloads_on_change_and_refuses_bad_plans() {
    let dir = dir_with(&[("plan.toml", PLAN_V1)]);
    let prompts = test_prompts();
    let handle = Arc::new(DialPlanHandle::new(
        check(dir.path(), &prompts, &|_| false).unwrap(),
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let _watcher = watch(
        dir.path(),
        handle.clone(),
        prompts,
        Arc::new(|_: &str| false),
        Some(Box::new(move |r: &Result<(), Vec<DialPlanError>>| {
            let _ = tx
                .lock()
                .unwrap()
                .send(r.as_ref().map_err(|e| e.len()).copied());
        })),
    )
    .unwrap();

    let wait_for = |want_ok: bool| -> Result<(), usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) if r.is_ok() == want_ok => return r,
                Ok(_) => continue,
                Err(e) => panic!("no reload within 10 s: {e}"),
            }
        }
    };

    std::fs::write(dir.path().join("plan.toml"), PLAN_V2).unwrap();
    wait_for(true).unwrap();
    assert_eq!(handle.current().routes.len(), 2);

    // A broken file is refused; the plan stays.
    std::fs::write(dir.path().join("plan.toml"), "[[route]\n").unwrap();
    assert!(wait_for(false).is_err());
    assert_eq!(handle.current().routes.len(), 2);

    // A new file is picked up too.
    std::fs::write(dir.path().join("plan.toml"), PLAN_V1).unwrap();
    std::fs::write(
        dir.path().join("more.toml"),
        "[[route]]\nmatch = \"9\"\nnode = \"b\"\n[node.b]\nkind = \"hangup\"\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.current().route("9").is_none() {
        assert!(Instant::now() < deadline, "more.toml was not loaded");
        let _ = rx.recv_timeout(Duration::from_millis(500));
    }
    assert_eq!(handle.current().routes.len(), 2);
}

#[test]
fn format_errors_joins_lines() {
    let errs = errors(&[("plan.toml", "[x]\n[y]\n")]);
    assert_eq!(errs.len(), 2);
    let e = load(&[("plan.toml", "[x]\n[y]\n")]).unwrap_err();
    let text = format_errors(&e);
    assert_eq!(text.lines().count(), 2);
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .contains("plan.toml:2:2: unknown section `y`"),
        "{text}"
    );
}
