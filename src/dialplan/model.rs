//! The checked dial plan: routes, nodes, and the small languages inside them
//! (route patterns with captures, `{var}` templates).
//!
//! Values of these types only come out of [`super::check`], so the
//! interpreter can trust them: every target names a node, every template
//! variable is defined for every route that reaches it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::divert::Diversion;
use super::schedule::Schedule;

/// Where something was defined, for logs and "first defined at" messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Every route and node of every `dialplans/*.toml` file.
#[derive(Debug, Clone, Default)]
pub struct DialPlan {
    /// In file order (files sorted by name).
    pub routes: Vec<Route>,
    pub nodes: HashMap<String, Node>,
}

/// A dialed number or pattern leading to a node.
#[derive(Debug, Clone)]
pub struct Route {
    pub matcher: Matcher,
    pub node: String,
    /// The prompt language calls on this route start in, if not the default.
    pub language: Option<String>,
    pub origin: Origin,
}

/// How a route matches the dialed number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// `match = "+3225550100"`.
    Exact(String),
    /// `prefix = "+32"`; the longest matching prefix wins.
    Prefix(String),
    /// `match = "*99{box}"`.
    Pattern(Pattern),
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(s) => f.write_str(s),
            Matcher::Prefix(s) => write!(f, "{s}…"),
            Matcher::Pattern(p) => write!(f, "{p}"),
        }
    }
}

/// One piece of a pattern or template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    /// `{name}`.
    Var(String),
}

/// Characters a capture matches: those of a mailbox id, so that a captured
/// value is always safe to use as a mailbox number.
pub fn is_capture_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Variables every node may use besides a route's captures.
pub const BUILTIN_VARS: &[&str] = &["dialed", "caller", "diverted"];

/// Splits `a{b}c` into parts; `Err` explains a stray brace or a bad name.
fn parse_parts(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                parts.push(Part::Literal(rest.to_owned()));
                break;
            }
            Some(i) if rest.as_bytes()[i] == b'}' => {
                return Err("`}` without a matching `{`".to_owned());
            }
            Some(i) => {
                if i > 0 {
                    parts.push(Part::Literal(rest[..i].to_owned()));
                }
                let after = &rest[i + 1..];
                let Some(end) = after.find('}') else {
                    return Err("`{` without a matching `}`".to_owned());
                };
                let name = &after[..end];
                let valid = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(format!(
                        "`{{{name}}}` is not a variable, expected a name of letters, digits and `_`"
                    ));
                }
                parts.push(Part::Var(name.to_owned()));
                rest = &after[end + 1..];
            }
        }
    }
    Ok(parts)
}

/// A dialed-number pattern: literal text and captures, e.g. `*99{box}`.
/// A capture matches one or more characters of `[0-9A-Za-z_-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    parts: Vec<Part>,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let parts = parse_parts(text)?;
        if !parts.iter().any(|p| matches!(p, Part::Var(_))) {
            return Err("a pattern needs at least one `{capture}`".to_owned());
        }
        for w in parts.windows(2) {
            if let [Part::Var(a), Part::Var(b)] = w {
                return Err(format!(
                    "captures `{{{a}}}` and `{{{b}}}` are adjacent; put literal text between them"
                ));
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for name in parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        }) {
            if BUILTIN_VARS.contains(&name) {
                return Err(format!(
                    "`{{{name}}}` is a built-in variable and cannot be captured"
                ));
            }
            if seen.contains(&name) {
                return Err(format!("capture `{{{name}}}` appears twice"));
            }
            seen.push(name);
        }
        Ok(Pattern { parts })
    }

    /// Capture names, in order.
    pub fn captures(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Characters of literal text: more is more specific.
    pub fn literal_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.chars().count(),
                Part::Var(_) => 0,
            })
            .sum()
    }

    /// The pattern with capture names erased: two patterns with the same
    /// shape match the same numbers.
    pub fn shape(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.as_str(),
                Part::Var(_) => "{}",
            })
            .collect()
    }

    /// The captures, in order, when `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        match_parts(&self.parts, text, &mut out).then_some(out)
    }
}

/// Backtracking match; captures are greedy.
fn match_parts(parts: &[Part], text: &str, out: &mut Vec<(String, String)>) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    match first {
        Part::Literal(l) => text
            .strip_prefix(l.as_str())
            .is_some_and(|t| match_parts(rest, t, out)),
        Part::Var(name) => {
            let max = text
                .char_indices()
                .find(|&(_, c)| !is_capture_char(c))
                .map_or(text.len(), |(i, _)| i);
            // Capture chars are ASCII, so every byte index up to `max` is a
            // char boundary.
            for end in (1..=max).rev() {
                out.push((name.clone(), text[..end].to_owned()));
                if match_parts(rest, &text[end..], out) {
                    return true;
                }
                out.pop();
            }
            false
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                Part::Literal(l) => f.write_str(l)?,
                Part::Var(v) => write!(f, "{{{v}}}")?,
            }
        }
        Ok(())
    }
}

/// Text with `{var}` substitutions: a route's captures and [`BUILTIN_VARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        Ok(Template {
            parts: parse_parts(text)?,
        })
    }

    /// Variable names used, in order.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Literal pieces.
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Literal(l) => Some(l.as_str()),
            Part::Var(_) => None,
        })
    }

    /// The text with each variable replaced; an unknown one becomes empty
    /// (a checked plan has none).
    pub fn render(&self, vars: &Vars) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.as_str(),
                Part::Var(v) => vars.get(v).unwrap_or(""),
            })
            .collect()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                Part::Literal(l) => f.write_str(l)?,
                Part::Var(v) => write!(f, "{{{v}}}")?,
            }
        }
        Ok(())
    }
}

/// Values for template variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pairs: Vec<(String, String)>,
}

impl Vars {
    /// The route's captures plus `dialed`, `caller` and `diverted`.
    pub fn for_call(entry: &RouteMatch, caller: &str) -> Vars {
        let mut pairs = entry.captures.clone();
        pairs.push(("dialed".into(), entry.dialed.clone()));
        pairs.push(("caller".into(), caller.to_owned()));
        pairs.push((
            "diverted".into(),
            entry
                .diversion
                .as_ref()
                .map(|d| d.mailbox.clone())
                .unwrap_or_default(),
        ));
        Vars { pairs }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A named step of a call flow.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Play(Play),
    Menu(Menu),
    Voicemail(Voicemail),
    VoicemailMain(VoicemailMain),
    RecordMessage(RecordMessage),
    Schedule(Schedule),
    Language(Language),
    Goto(Goto),
    Transfer(Transfer),
    Hangup,
}

/// The `kind = "..."` names.
pub const KINDS: &[&str] = &[
    "play",
    "menu",
    "voicemail",
    "voicemail_main",
    "record_message",
    "schedule",
    "language",
    "goto",
    "transfer",
    "hangup",
];

impl NodeKind {
    pub fn kind_name(&self) -> &'static str {
        match self {
            NodeKind::Play(_) => "play",
            NodeKind::Menu(_) => "menu",
            NodeKind::Voicemail(_) => "voicemail",
            NodeKind::VoicemailMain(_) => "voicemail_main",
            NodeKind::RecordMessage(_) => "record_message",
            NodeKind::Schedule(_) => "schedule",
            NodeKind::Language(_) => "language",
            NodeKind::Goto(_) => "goto",
            NodeKind::Transfer(_) => "transfer",
            NodeKind::Hangup => "hangup",
        }
    }

    /// Every node this one can lead to, with the key that names it.
    pub fn targets(&self) -> Vec<(String, &str)> {
        fn opt<'a>(out: &mut Vec<(String, &'a str)>, key: &str, t: &'a Option<String>) {
            if let Some(t) = t {
                out.push((key.to_owned(), t.as_str()));
            }
        }
        let mut out: Vec<(String, &str)> = Vec::new();
        match self {
            NodeKind::Play(p) => opt(&mut out, "next", &p.next),
            NodeKind::Menu(m) => {
                opt(&mut out, "invalid", &m.invalid);
                opt(&mut out, "timeout", &m.timeout);
                for (k, t) in &m.options {
                    out.push((format!("options.{k}"), t.as_str()));
                }
            }
            NodeKind::Voicemail(v) => {
                opt(&mut out, "operator", &v.operator);
                opt(&mut out, "retrieval", &v.retrieval);
                opt(&mut out, "full", &v.full);
                opt(&mut out, "next", &v.next);
            }
            NodeKind::VoicemailMain(v) => opt(&mut out, "next", &v.next),
            NodeKind::RecordMessage(r) => opt(&mut out, "next", &r.next),
            NodeKind::Schedule(s) => {
                out.push(("open".into(), s.open.as_str()));
                out.push(("closed".into(), s.closed.as_str()));
                opt(&mut out, "holiday", &s.holiday);
            }
            NodeKind::Language(l) => out.push(("next".into(), l.next.as_str())),
            NodeKind::Goto(g) => out.push(("target".into(), g.target.as_str())),
            NodeKind::Transfer(t) => opt(&mut out, "failed", &t.failed),
            NodeKind::Hangup => {}
        }
        out
    }

    /// Whether passing through this node waits for the caller (a key, a
    /// recording) or for a long time (music on hold), so that a cycle
    /// through it is a menu loop and not a busy loop.
    pub fn waits(&self) -> bool {
        match self {
            NodeKind::Menu(_)
            | NodeKind::Voicemail(_)
            | NodeKind::VoicemailMain(_)
            | NodeKind::RecordMessage(_)
            | NodeKind::Hangup => true,
            NodeKind::Play(p) => p.looped,
            NodeKind::Schedule(_)
            | NodeKind::Language(_)
            | NodeKind::Goto(_)
            | NodeKind::Transfer(_) => false,
        }
    }
}

/// Play prompts or audio messages (an audio message overrides a prompt of
/// the same name), once or in a loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    pub prompts: Vec<String>,
    /// Repeat (music on hold) until `max_seconds` of audio or hang-up.
    pub looped: bool,
    pub max_seconds: Option<u32>,
    /// `None` hangs up afterwards.
    pub next: Option<String>,
}

/// A prompt, then one key chooses the next node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    pub prompts: Vec<String>,
    /// Key (`0`-`9`, `*`, `#`) → node.
    pub options: BTreeMap<char, String>,
    pub timeout_seconds: u32,
    /// Extra tries after a timeout or an invalid key.
    pub retries: u32,
    /// Where to go when the last try was an invalid key; `None` hangs up.
    pub invalid: Option<String>,
    /// Where to go when the last try timed out; `None` hangs up.
    pub timeout: Option<String>,
}

/// Which greeting a deposit plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreetingChoice {
    Unavailable,
    Busy,
    /// Busy when the call was diverted because the user was busy, else
    /// unavailable.
    Auto,
    /// No greeting, straight to the beep (the flow has announced it).
    NoGreeting,
}

/// Leave a message in one or more boxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voicemail {
    pub mailboxes: Vec<Template>,
    pub greeting: GreetingChoice,
    /// `0` during the greeting, the recording (the message is saved
    /// first) or the review goes here.
    pub operator: Option<String>,
    /// `*` during the greeting goes here (usually a `voicemail_main` node).
    pub retrieval: Option<String>,
    /// After `#`: 1 save, 2 listen, 3 re-record, 4 urgent, 0 operator.
    pub review: bool,
    /// Skip "leave your message after the tone" when the box has its own
    /// greeting.
    pub skip_instructions_if_greeting: bool,
    /// Overrides the box's own maximum message count.
    pub max_messages: Option<u32>,
    /// Where to go when a box is full; `None` hangs up after saying so.
    pub full: Option<String>,
    /// After the message; `None` hangs up.
    pub next: Option<String>,
}

/// The retrieval menus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailMain {
    /// `None`: the caller's own box (or ask).
    pub mailbox: Option<Template>,
    pub next: Option<String>,
}

/// The phone-side audio-message recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMessage {
    /// `None`: the caller picks the message.
    pub message: Option<Template>,
    pub next: Option<String>,
}

/// Switch the call's prompt language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    pub language: String,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goto {
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// Blind transfer after answer (REFER).
    Refer,
    /// 302 before answer; after answer the server falls back to REFER.
    Redirect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// A SIP URI or a number, with `{var}` substitutions.
    pub target: Template,
    pub mode: TransferMode,
    /// Where to go if the transfer fails; `None` hangs up.
    pub failed: Option<String>,
}

/// A route chosen for a call, with what it captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index into [`DialPlan::routes`].
    pub route: usize,
    pub node: String,
    /// The number the route matched.
    pub dialed: String,
    pub captures: Vec<(String, String)>,
    pub language: Option<String>,
    /// Who a forwarded call was for and why (see [`super::divert`]).
    pub diversion: Option<Diversion>,
}

impl DialPlan {
    /// The route for a dialed number: an exact match beats a pattern (the
    /// one with the most literal characters), which beats a prefix (the
    /// longest); ties go to the route defined first.
    pub fn route(&self, dialed: &str) -> Option<RouteMatch> {
        // (class: exact 2 / pattern 1 / prefix 0, specificity), route, captures.
        type Best = ((u8, usize), usize, Vec<(String, String)>);
        let mut best: Option<Best> = None;
        for (i, r) in self.routes.iter().enumerate() {
            let found = match &r.matcher {
                Matcher::Exact(s) => (s == dialed).then(|| ((2, s.len()), Vec::new())),
                Matcher::Pattern(p) => p.matches(dialed).map(|c| ((1, p.literal_len()), c)),
                Matcher::Prefix(s) => dialed
                    .starts_with(s.as_str())
                    .then(|| ((0, s.len()), Vec::new())),
            };
            if let Some((rank, captures)) = found
                && best.as_ref().is_none_or(|(b, _, _)| rank > *b)
            {
                best = Some((rank, i, captures));
            }
        }
        best.map(|(_, i, captures)| {
            let r = &self.routes[i];
            RouteMatch {
                route: i,
                node: r.node.clone(),
                dialed: dialed.to_owned(),
                captures,
                language: r.language.clone(),
                diversion: None,
            }
        })
    }

    /// The route for an incoming call. A diverted call is routed by the
    /// number it was diverted from when the plan has a route for it (so a
    /// call that 1002's phone forwarded reaches 1002's deposit), else by the
    /// dialed number; either way the diversion travels with the match for
    /// `greeting = "auto"` and `{diverted}`.
    pub fn route_call(&self, dialed: &str, diversion: Option<Diversion>) -> Option<RouteMatch> {
        let by_diversion = diversion.as_ref().and_then(|d| self.route(&d.mailbox));
        let mut m = by_diversion.or_else(|| self.route(dialed))?;
        m.diversion = diversion;
        Some(m)
    }

    /// When a call's flow, before anything is played, is a `transfer` with
    /// `mode = "redirect"` (possibly behind `goto`, `language` and
    /// `schedule` nodes), the target to answer 302 with instead of
    /// answering the call.
    pub fn redirect_target(
        &self,
        entry: &RouteMatch,
        caller: &str,
        now: jiff::Timestamp,
    ) -> Option<String> {
        let vars = Vars::for_call(entry, caller);
        let mut name = entry.node.as_str();
        for _ in 0..64 {
            match &self.nodes.get(name)?.kind {
                NodeKind::Goto(g) => name = &g.target,
                NodeKind::Language(l) => name = &l.next,
                NodeKind::Schedule(s) => name = s.target_at(now),
                NodeKind::Transfer(t) if t.mode == TransferMode::Redirect => {
                    return Some(t.target.render(&vars));
                }
                _ => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(routes: &[(Matcher, &str)]) -> DialPlan {
        DialPlan {
            routes: routes
                .iter()
                .map(|(m, n)| Route {
                    matcher: m.clone(),
                    node: (*n).to_owned(),
                    language: None,
                    origin: Origin::default(),
                })
                .collect(),
            nodes: HashMap::new(),
        }
    }

    fn pat(s: &str) -> Matcher {
        Matcher::Pattern(Pattern::parse(s).unwrap())
    }

    fn node_of(p: &DialPlan, dialed: &str) -> Option<String> {
        p.route(dialed).map(|m| m.node)
    }

    #[test]
    fn exact_beats_pattern_beats_prefix_and_longest_prefix_wins() {
        let p = plan(&[
            (Matcher::Prefix("+32".into()), "belgium"),
            (Matcher::Prefix("+322".into()), "brussels"),
            (pat("+32255501{ext}"), "company-ext"),
            (Matcher::Exact("+3225550100".into()), "main"),
            (Matcher::Prefix("+".into()), "international"),
        ]);
        assert_eq!(node_of(&p, "+3225550100").as_deref(), Some("main"));
        assert_eq!(node_of(&p, "+3225550142").as_deref(), Some("company-ext"));
        assert_eq!(node_of(&p, "+3229999999").as_deref(), Some("brussels"));
        assert_eq!(node_of(&p, "+3231234567").as_deref(), Some("belgium"));
        assert_eq!(node_of(&p, "+4420000000").as_deref(), Some("international"));
        assert_eq!(node_of(&p, "1001"), None);
        let m = p.route("+3225550142").unwrap();
        assert_eq!(m.route, 2);
        assert_eq!(m.captures, [("ext".to_owned(), "42".to_owned())]);
        assert_eq!(m.dialed, "+3225550142");
    }

    #[test]
    fn more_specific_pattern_wins_then_first_defined() {
        let p = plan(&[
            (pat("{box}"), "deposit"),
            (pat("*9{x}"), "star9"),
            (pat("*99{box}"), "login"),
            (pat("*98{a}"), "first"),
            (pat("*98{b}"), "second"),
        ]);
        assert_eq!(node_of(&p, "*991001").as_deref(), Some("login"));
        assert_eq!(node_of(&p, "*95").as_deref(), Some("star9"));
        assert_eq!(node_of(&p, "1001").as_deref(), Some("deposit"));
        assert_eq!(node_of(&p, "*981").as_deref(), Some("first"));
        // `*` is not a capture character, so `{box}` alone cannot take it.
        assert_eq!(node_of(&p, "*"), None);
        let m = p.route("*991001").unwrap();
        assert_eq!(m.captures, [("box".to_owned(), "1001".to_owned())]);
    }

    #[test]
    fn patterns_capture_with_backtracking() {
        let p = Pattern::parse("{a}-x-{b}").unwrap();
        assert_eq!(
            p.matches("1-x-2-x-3"),
            Some(vec![("a".into(), "1-x-2".into()), ("b".into(), "3".into())])
        );
        assert_eq!(p.matches("-x-"), None);
        let p = Pattern::parse("*99{box}").unwrap();
        assert_eq!(
            p.matches("*99"),
            None,
            "a capture takes at least one character"
        );
        assert_eq!(p.matches("*99 1"), None);
        assert_eq!(p.matches("*99é"), None);
        assert_eq!(p.shape(), "*99{}");
        assert_eq!(p.literal_len(), 3);
        assert_eq!(p.captures().collect::<Vec<_>>(), ["box"]);
        assert_eq!(p.to_string(), "*99{box}");
    }

    #[test]
    fn bad_patterns_and_templates() {
        assert!(Pattern::parse("1001").unwrap_err().contains("at least one"));
        assert!(Pattern::parse("{a}{b}").unwrap_err().contains("adjacent"));
        assert!(Pattern::parse("{a}x{a}").unwrap_err().contains("twice"));
        assert!(
            Pattern::parse("*9{dialed}")
                .unwrap_err()
                .contains("built-in")
        );
        assert!(Template::parse("a{b").unwrap_err().contains("matching `}`"));
        assert!(Template::parse("a}b").unwrap_err().contains("matching `{`"));
        assert!(
            Template::parse("{1x}")
                .unwrap_err()
                .contains("not a variable")
        );
        assert!(
            Template::parse("{}")
                .unwrap_err()
                .contains("not a variable")
        );
    }

    #[test]
    fn templates_render_captures_and_builtins() {
        let t = Template::parse("sip:{box}@pbx;from={caller}{diverted}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["box", "caller", "diverted"]);
        let entry = RouteMatch {
            route: 0,
            node: "n".into(),
            dialed: "*991001".into(),
            captures: vec![("box".into(), "1001".into())],
            language: None,
            diversion: None,
        };
        let vars = Vars::for_call(&entry, "+3212");
        assert_eq!(t.render(&vars), "sip:1001@pbx;from=+3212");
        assert_eq!(
            Template::parse("{dialed}").unwrap().render(&vars),
            "*991001"
        );
    }
}
