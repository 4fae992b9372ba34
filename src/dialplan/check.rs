//! Reading `dialplans/*.toml` into a [`DialPlan`], reporting every problem
//! at once as `file:line:col: message`.
//!
//! Like `config`, we walk toml's spanned document (`DeTable`) ourselves
//! rather than deriving `Deserialize`, so that all errors are found in one
//! pass, each at the offending key or value. Checks across the whole plan
//! (targets, reachability, loops, prompts, template variables) run after
//! every file is read, on what could be parsed.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::config::LANGUAGES;
use crate::prompts::PromptCache;

use super::model::{
    BUILTIN_VARS, DialPlan, Goto, GreetingChoice, KINDS, Language, Matcher, Menu, Node, NodeKind,
    Origin, Pattern, Play, RecordMessage, Route, Template, Transfer, TransferMode, Voicemail,
    VoicemailMain, is_capture_char,
};
use super::schedule::{Holiday, Schedule, WEEKDAYS, parse_range};
use crate::config::source::LineIndex;

/// What kind of problem an error is, for callers that treat some
/// differently (e.g. a missing audio message that will be recorded later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The directory or a file could not be read.
    Io,
    /// Not valid TOML.
    Syntax,
    /// A key or section that does not belong there.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong type or out of range: bad times, dates, time
    /// zones, languages, menu keys, patterns, mailbox numbers.
    BadValue,
    DuplicateRoute,
    DuplicateNode,
    /// A target names no node.
    UnknownNode,
    /// No route leads to the node.
    Unreachable,
    /// Neither a prompt (in every language of the plan) nor an audio
    /// message has the name.
    MissingPrompt,
    /// A cycle of nodes none of which waits for the caller.
    Loop,
    /// A `{var}` that a route reaching the node does not capture.
    UndefinedVariable,
}

/// One problem. `line` and `column` are 1-based; line 0 is the file (or
/// directory) as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPlanError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for DialPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for DialPlanError {}

/// All errors, one per line, for logs and `voxmail check`.
pub fn format_errors(errors: &[DialPlanError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and checks every `*.toml` in `dir` (sorted by name; hidden files
/// skipped). A prompt must exist in English and in every language the plan
/// switches to, unless an audio message of that name exists.
pub fn check(
    dir: &Path,
    prompts: &PromptCache,
    audio_messages: &dyn Fn(&str) -> bool,
) -> Result<DialPlan, Vec<DialPlanError>> {
    check_with(
        dir,
        &|lang, name| prompts.contains(lang, name),
        audio_messages,
    )
}

/// [`check`] with prompt existence as a function of (language, name).
pub fn check_with(
    dir: &Path,
    prompt_exists: &dyn Fn(&str, &str) -> bool,
    audio_messages: &dyn Fn(&str) -> bool,
) -> Result<DialPlan, Vec<DialPlanError>> {
    let (sources, io_errors) = read_dir(dir);
    match check_sources(&sources, prompt_exists, audio_messages) {
        Ok(plan) if io_errors.is_empty() => Ok(plan),
        Ok(_) => Err(io_errors),
        Err(mut errs) => {
            errs.splice(0..0, io_errors);
            Err(errs)
        }
    }
}

/// One file's name (as errors show it) and text.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: String,
    pub text: String,
}

fn read_dir(dir: &Path) -> (Vec<Source>, Vec<DialPlanError>) {
    let io_error = |file: &Path, message: String| DialPlanError {
        file: file.display().to_string(),
        line: 0,
        column: 0,
        kind: ErrorKind::Io,
        message,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return (
                Vec::new(),
                vec![io_error(
                    dir,
                    format!("cannot read the dial-plan directory: {e}"),
                )],
            );
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "toml")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
                && p.is_file()
        })
        .collect();
    paths.sort();
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(text) => sources.push(Source {
                file: p.display().to_string(),
                text,
            }),
            Err(e) => errors.push(io_error(&p, format!("cannot read dial plan: {e}"))),
        }
    }
    (sources, errors)
}

/// Checks files already read, in the order given.
pub fn check_sources(
    sources: &[Source],
    prompt_exists: &dyn Fn(&str, &str) -> bool,
    audio_messages: &dyn Fn(&str) -> bool,
) -> Result<DialPlan, Vec<DialPlanError>> {
    let mut b = Builder::default();
    for (i, s) in sources.iter().enumerate() {
        b.files.push(s.file.clone());
        let lines = LineIndex::new(&s.text);
        let mut f = FileCx {
            b: &mut b,
            file: i,
            lines: &lines,
        };
        f.parse(&s.text);
    }
    b.cross_checks(prompt_exists, audio_messages);
    b.finish()
}

const TOP_KEYS: &[&str] = &["route", "node"];
const ROUTE_KEYS: &[&str] = &["match", "prefix", "node", "language"];
const MENU_KEYS_ALLOWED: &str = "0123456789*#";

fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "play" => &["kind", "prompt", "loop", "max_seconds", "next"],
        "menu" => &[
            "kind",
            "prompt",
            "options",
            "timeout_seconds",
            "retries",
            "invalid",
            "timeout",
        ],
        "voicemail" => &[
            "kind",
            "mailbox",
            "mailboxes",
            "greeting",
            "operator",
            "retrieval",
            "review",
            "skip_instructions_if_greeting",
            "max_messages",
            "full",
            "next",
        ],
        "voicemail_main" => &["kind", "mailbox", "next"],
        "record_message" => &["kind", "message", "next"],
        "schedule" => &[
            "kind", "timezone", "mon", "tue", "wed", "thu", "fri", "sat", "sun", "holidays",
            "open", "closed", "holiday",
        ],
        "language" => &["kind", "language", "next"],
        "goto" => &["kind", "target"],
        "transfer" => &["kind", "target", "mode", "failed"],
        "hangup" => &["kind"],
        _ => &["kind"],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Pos {
    file: usize,
    line: usize,
    column: usize,
}

/// A key naming a node.
struct TargetRef {
    /// `` `next` in [node.x] `` for messages.
    what: String,
    target: String,
    pos: Pos,
}

struct PromptRef {
    what: String,
    name: String,
    pos: Pos,
}

struct TemplateRef {
    what: String,
    template: Template,
    pos: Pos,
}

/// Everything learned about one `[node.NAME]`, even when some of it was bad.
struct NodeInfo {
    name: String,
    pos: Pos,
    kind_name: Option<String>,
    /// `Some` when the node parsed without errors.
    kind: Option<NodeKind>,
    looped: bool,
    refs: Vec<TargetRef>,
    prompts: Vec<PromptRef>,
    templates: Vec<TemplateRef>,
}

impl NodeInfo {
    /// See [`NodeKind::waits`]; unknown kinds count as waiting so that they
    /// add no loop errors on top of their own.
    fn waits(&self) -> bool {
        match self.kind_name.as_deref() {
            Some("schedule" | "language" | "goto" | "transfer") => false,
            Some("play") => self.looped,
            _ => true,
        }
    }
}

struct RouteInfo {
    route: Option<Route>,
    /// The node named, even when the route itself is bad.
    node: Option<(String, Pos)>,
    captures: Vec<String>,
    /// `match = ...` or `prefix = ...` text, for messages.
    label: String,
    pos: Pos,
}

#[derive(Default)]
struct Builder {
    files: Vec<String>,
    errors: Vec<(Pos, ErrorKind, String)>,
    routes: Vec<RouteInfo>,
    nodes: Vec<NodeInfo>,
    /// Node name → index in `nodes`, first definition.
    by_name: HashMap<String, usize>,
    /// Duplicate detection: normalized matcher → where first defined.
    route_keys: HashMap<String, Pos>,
}

impl Builder {
    fn error(&mut self, pos: Pos, kind: ErrorKind, message: String) {
        self.errors.push((pos, kind, message));
    }

    fn at(&self, pos: Pos) -> String {
        format!("{}:{}", self.files[pos.file], pos.line)
    }

    fn cross_checks(
        &mut self,
        prompt_exists: &dyn Fn(&str, &str) -> bool,
        audio_messages: &dyn Fn(&str) -> bool,
    ) {
        self.unknown_targets();
        self.unreachable();
        self.loops();
        self.prompts(prompt_exists, audio_messages);
        self.variables();
    }

    fn suggestion(&self, name: &str) -> String {
        let best = self
            .by_name
            .keys()
            .map(|k| (edit_distance(k, name), k))
            .filter(|(d, k)| *d <= 2 && *d < k.len())
            .min();
        best.map_or_else(String::new, |(_, k)| format!(", did you mean `{k}`?"))
    }

    fn unknown_targets(&mut self) {
        let mut found = Vec::new();
        for r in self.nodes.iter().flat_map(|n| &n.refs) {
            if !self.by_name.contains_key(&r.target) {
                found.push((
                    r.pos,
                    format!(
                        "{}: unknown node `{}`{}",
                        r.what,
                        r.target,
                        self.suggestion(&r.target)
                    ),
                ));
            }
        }
        for r in &self.routes {
            if let Some((target, pos)) = &r.node
                && !self.by_name.contains_key(target)
            {
                found.push((
                    *pos,
                    format!(
                        "`node` in [[route]]: unknown node `{target}`{}",
                        self.suggestion(target)
                    ),
                ));
            }
        }
        for (pos, m) in found {
            self.error(pos, ErrorKind::UnknownNode, m);
        }
    }

    /// Nodes reachable from these starts (indices into `nodes`).
    fn reachable_from(&self, starts: impl IntoIterator<Item = usize>) -> Vec<bool> {
        let mut seen = vec![false; self.nodes.len()];
        let mut queue: VecDeque<usize> = starts.into_iter().collect();
        while let Some(i) = queue.pop_front() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            for r in &self.nodes[i].refs {
                if let Some(&j) = self.by_name.get(&r.target) {
                    queue.push_back(j);
                }
            }
        }
        seen
    }

    fn unreachable(&mut self) {
        let starts: Vec<usize> = self
            .routes
            .iter()
            .filter_map(|r| {
                r.node
                    .as_ref()
                    .and_then(|(n, _)| self.by_name.get(n).copied())
            })
            .collect();
        let seen = self.reachable_from(starts);
        let found: Vec<(Pos, String)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| !seen[*i] && self.by_name.get(&n.name) == Some(i))
            .map(|(_, n)| {
                (
                    n.pos,
                    format!("node `{}` is not reachable from any route", n.name),
                )
            })
            .collect();
        for (pos, m) in found {
            self.error(pos, ErrorKind::Unreachable, m);
        }
    }

    /// Cycles made only of nodes that do not wait for the caller.
    fn loops(&mut self) {
        let n = self.nodes.len();
        let busy: Vec<bool> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, x)| !x.waits() && self.by_name.get(&x.name) == Some(&i))
            .collect();
        let succ = |i: usize| -> Vec<usize> {
            self.nodes[i]
                .refs
                .iter()
                .filter_map(|r| self.by_name.get(&r.target).copied())
                .filter(|&j| busy[j])
                .collect()
        };
        // Within the busy subgraph: what each node reaches, and the parent
        // links of a BFS so that a cycle can be spelled out.
        let reach: Vec<Vec<Option<usize>>> = (0..n)
            .map(|s| {
                let mut parent = vec![None; n];
                if !busy[s] {
                    return parent;
                }
                let mut queue = VecDeque::new();
                for j in succ(s) {
                    if parent[j].is_none() {
                        parent[j] = Some(s);
                        queue.push_back(j);
                    }
                }
                while let Some(i) = queue.pop_front() {
                    for j in succ(i) {
                        if parent[j].is_none() {
                            parent[j] = Some(i);
                            queue.push_back(j);
                        }
                    }
                }
                parent
            })
            .collect();
        let mut reported = vec![false; n];
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| self.nodes[i].pos);
        let mut found = Vec::new();
        for s in order {
            if reported[s] || reach[s][s].is_none() {
                continue;
            }
            for j in 0..n {
                if reach[s][j].is_some() && reach[j][s].is_some() {
                    reported[j] = true;
                }
            }
            // Walk the parent links back from s to s.
            let mut path = vec![s];
            let mut cur = reach[s][s].expect("checked above");
            while cur != s && path.len() <= n {
                path.push(cur);
                cur = reach[s][cur].expect("on the BFS tree");
            }
            path.push(s);
            path.reverse();
            let names: Vec<String> = path
                .iter()
                .map(|&i| format!("`{}`", self.nodes[i].name))
                .collect();
            found.push((
                self.nodes[s].pos,
                format!(
                    "loop that never waits for the caller: {}; add a menu or a looping play to it",
                    names.join(" → ")
                ),
            ));
        }
        for (pos, m) in found {
            self.error(pos, ErrorKind::Loop, m);
        }
    }

    fn prompts(
        &mut self,
        prompt_exists: &dyn Fn(&str, &str) -> bool,
        audio: &dyn Fn(&str) -> bool,
    ) {
        let mut langs: BTreeSet<String> = BTreeSet::from(["en".to_owned()]);
        for n in &self.nodes {
            if let Some(NodeKind::Language(l)) = &n.kind {
                langs.insert(l.language.clone());
            }
        }
        for r in &self.routes {
            if let Some(l) = r.route.as_ref().and_then(|r| r.language.clone()) {
                langs.insert(l);
            }
        }
        let mut found = Vec::new();
        for p in self.nodes.iter().flat_map(|n| &n.prompts) {
            if audio(&p.name) {
                continue;
            }
            let missing: Vec<&str> = langs
                .iter()
                .map(String::as_str)
                .filter(|l| !prompt_exists(l, &p.name))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let message = if missing.len() == langs.len() {
                format!(
                    "{}: no prompt or audio message named `{}` (expected prompts/en/{}.wav or a recorded audio message)",
                    p.what, p.name, p.name
                )
            } else {
                let list: Vec<String> = missing
                    .iter()
                    .map(|l| format!("prompts/{l}/{}.wav", p.name))
                    .collect();
                format!(
                    "{}: prompt `{}` is missing in {}",
                    p.what,
                    p.name,
                    list.join(", ")
                )
            };
            found.push((p.pos, message));
        }
        for (pos, m) in found {
            self.error(pos, ErrorKind::MissingPrompt, m);
        }
    }

    /// Each `{var}` must be captured by every route that reaches its node.
    fn variables(&mut self) {
        let mut found: Vec<(Pos, String)> = Vec::new();
        let mut reported: HashSet<(Pos, String)> = HashSet::new();
        for r in &self.routes {
            let Some(start) = r
                .node
                .as_ref()
                .and_then(|(n, _)| self.by_name.get(n).copied())
            else {
                continue;
            };
            if r.route.is_none() {
                continue;
            }
            let seen = self.reachable_from([start]);
            for (i, node) in self.nodes.iter().enumerate() {
                if !seen[i] {
                    continue;
                }
                for t in &node.templates {
                    for var in t.template.vars() {
                        if BUILTIN_VARS.contains(&var) || r.captures.iter().any(|c| c == var) {
                            continue;
                        }
                        if reported.insert((t.pos, var.to_owned())) {
                            found.push((
                                t.pos,
                                format!(
                                    "{}: `{{{var}}}` is not captured by the route `{}` ({}) that reaches this node; \
                                     built-in variables are {}",
                                    t.what,
                                    r.label,
                                    self.at(r.pos),
                                    one_of(BUILTIN_VARS)
                                ),
                            ));
                        }
                    }
                }
            }
        }
        for (pos, m) in found {
            self.error(pos, ErrorKind::UndefinedVariable, m);
        }
    }

    fn finish(self) -> Result<DialPlan, Vec<DialPlanError>> {
        if !self.errors.is_empty() {
            let mut errors = self.errors;
            errors.sort_by_key(|(pos, _, _)| *pos);
            return Err(errors
                .into_iter()
                .map(|(pos, kind, message)| DialPlanError {
                    file: self.files[pos.file].clone(),
                    line: pos.line,
                    column: pos.column,
                    kind,
                    message,
                })
                .collect());
        }
        let routes = self.routes.into_iter().filter_map(|r| r.route).collect();
        let nodes = self
            .nodes
            .into_iter()
            .filter_map(|n| {
                let kind = n.kind?;
                let origin = Origin {
                    file: self.files[n.pos.file].clone(),
                    line: n.pos.line,
                    column: n.pos.column,
                };
                Some((
                    n.name.clone(),
                    Node {
                        name: n.name,
                        kind,
                        origin,
                    },
                ))
            })
            .collect();
        Ok(DialPlan { routes, nodes })
    }
}

/// One table and how to name it in messages.
struct Sec<'t, 'i> {
    name: String,
    table: &'t DeTable<'i>,
}

impl<'t, 'i> Sec<'t, 'i> {
    fn get(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.table.get(key)
    }
}

/// What a node's keys refer to, gathered while parsing it.
#[derive(Default)]
struct Acc {
    refs: Vec<TargetRef>,
    prompts: Vec<PromptRef>,
    templates: Vec<TemplateRef>,
    looped: bool,
    /// Set when any key of the node was bad.
    bad: bool,
}

struct FileCx<'b, 'l> {
    b: &'b mut Builder,
    file: usize,
    lines: &'l LineIndex<'l>,
}

impl FileCx<'_, '_> {
    fn pos(&self, span: &Range<usize>) -> Pos {
        let (line, column) = self.lines.position(span.start);
        Pos {
            file: self.file,
            line,
            column,
        }
    }

    fn error(&mut self, span: &Range<usize>, kind: ErrorKind, message: String) {
        let pos = self.pos(span);
        self.b.error(pos, kind, message);
    }

    fn parse(&mut self, text: &str) {
        let (doc, syntax) = DeTable::parse_recoverable(text);
        let mut syntax_lines = Vec::new();
        for e in &syntax {
            let span = e.span().unwrap_or(0..0);
            let line = self.lines.position(span.start).0;
            if !syntax_lines.contains(&line) {
                syntax_lines.push(line);
                self.error(&span, ErrorKind::Syntax, e.message().to_owned());
            }
        }
        let root = doc.get_ref();
        for (key, _) in root.iter() {
            if !TOP_KEYS.contains(&key.get_ref().as_ref()) {
                self.error(
                    &key.span(),
                    ErrorKind::UnknownKey,
                    format!(
                        "unknown section `{}`, expected [[route]] or [node.NAME]",
                        key.get_ref()
                    ),
                );
            }
        }
        if let Some(routes) = root.get("route") {
            self.routes(routes);
        }
        if let Some(nodes) = root.get("node") {
            self.nodes(nodes);
        }
    }

    // --- Values ------------------------------------------------------------

    fn unknown_keys(&mut self, sec: &Sec<'_, '_>, keys: &[&str], what: &str) {
        for (key, _) in sec.table.iter() {
            if !keys.contains(&key.get_ref().as_ref()) {
                self.error(
                    &key.span(),
                    ErrorKind::UnknownKey,
                    format!(
                        "unknown key `{}` in {}{what}, expected one of {}",
                        key.get_ref(),
                        sec.name,
                        one_of(keys)
                    ),
                );
            }
        }
    }

    fn type_error(
        &mut self,
        sec: &Sec<'_, '_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        expected: &str,
    ) {
        let hint = match value.get_ref() {
            DeValue::Integer(i) if expected.contains("string") => {
                format!(", write it quoted: {key} = \"{}\"", i.as_str())
            }
            _ => String::new(),
        };
        self.error(
            &value.span(),
            ErrorKind::BadValue,
            format!(
                "`{key}` in {}: expected {expected}, found {}{hint}",
                sec.name,
                value.get_ref().type_str()
            ),
        );
    }

    fn string(
        &mut self,
        sec: &Sec<'_, '_>,
        key: &str,
        acc: &mut Acc,
    ) -> Option<(String, Range<usize>)> {
        let v = sec.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            _ => {
                self.type_error(sec, key, v, "a string");
                acc.bad = true;
                None
            }
        }
    }

    fn required_string(
        &mut self,
        sec: &Sec<'_, '_>,
        header: &Range<usize>,
        key: &str,
        example: &str,
        acc: &mut Acc,
    ) -> Option<(String, Range<usize>)> {
        if sec.get(key).is_none() {
            self.error(
                header,
                ErrorKind::MissingKey,
                format!("{} is missing `{key}`, e.g. {key} = {example}", sec.name),
            );
            acc.bad = true;
            return None;
        }
        self.string(sec, key, acc)
    }

    /// A string or an array of strings.
    fn strings(
        &mut self,
        sec: &Sec<'_, '_>,
        key: &str,
        acc: &mut Acc,
    ) -> Option<Vec<(String, Range<usize>)>> {
        let v = sec.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(vec![(s.to_string(), v.span())]),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push((s.to_string(), item.span())),
                        _ => {
                            self.type_error(sec, key, item, "a string");
                            acc.bad = true;
                        }
                    }
                }
                Some(out)
            }
            _ => {
                self.type_error(sec, key, v, "a string or an array of strings");
                acc.bad = true;
                None
            }
        }
    }

    fn boolean(&mut self, sec: &Sec<'_, '_>, key: &str, acc: &mut Acc) -> Option<bool> {
        let v = sec.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(sec, key, v, "true or false");
                acc.bad = true;
                None
            }
        }
    }

    fn uint(
        &mut self,
        sec: &Sec<'_, '_>,
        key: &str,
        min: u32,
        max: u32,
        acc: &mut Acc,
    ) -> Option<(u32, Range<usize>)> {
        let v = sec.get(key)?;
        let span = v.span();
        let n = match i64::deserialize(ValueDeserializer::from(v.clone())) {
            Ok(n) => n,
            Err(_) => {
                self.type_error(sec, key, v, "an integer");
                acc.bad = true;
                return None;
            }
        };
        if n < i64::from(min) || n > i64::from(max) {
            self.error(
                &span,
                ErrorKind::BadValue,
                format!(
                    "`{key}` in {}: {n} is out of range, expected {min} to {max}",
                    sec.name
                ),
            );
            acc.bad = true;
            return None;
        }
        Some((n as u32, span))
    }

    fn one_of_strings(
        &mut self,
        sec: &Sec<'_, '_>,
        key: &str,
        allowed: &[&str],
        acc: &mut Acc,
    ) -> Option<String> {
        let (s, span) = self.string(sec, key, acc)?;
        if allowed.contains(&s.as_str()) {
            Some(s)
        } else {
            self.error(
                &span,
                ErrorKind::BadValue,
                format!(
                    "`{key}` in {}: unknown value `{s}`, expected one of {}",
                    sec.name,
                    one_of(allowed)
                ),
            );
            acc.bad = true;
            None
        }
    }

    /// An optional key naming a node.
    fn target(&mut self, sec: &Sec<'_, '_>, key: &str, acc: &mut Acc) -> Option<String> {
        let (name, span) = self.string(sec, key, acc)?;
        Some(self.target_ref(sec, key, name, &span, acc))
    }

    fn required_target(
        &mut self,
        sec: &Sec<'_, '_>,
        header: &Range<usize>,
        key: &str,
        acc: &mut Acc,
    ) -> Option<String> {
        let (name, span) = self.required_string(sec, header, key, "\"node-name\"", acc)?;
        Some(self.target_ref(sec, key, name, &span, acc))
    }

    fn target_ref(
        &mut self,
        sec: &Sec<'_, '_>,
        key: &str,
        name: String,
        span: &Range<usize>,
        acc: &mut Acc,
    ) -> String {
        acc.refs.push(TargetRef {
            what: format!("`{key}` in {}", sec.name),
            target: name.clone(),
            pos: self.pos(span),
        });
        name
    }

    /// Prompt or audio-message names: a string or an array of them.
    fn prompt_names(
        &mut self,
        sec: &Sec<'_, '_>,
        header: &Range<usize>,
        key: &str,
        acc: &mut Acc,
    ) -> Option<Vec<String>> {
        if sec.get(key).is_none() {
            self.error(
                header,
                ErrorKind::MissingKey,
                format!(
                    "{} is missing `{key}`, e.g. {key} = \"vm-goodbye\"",
                    sec.name
                ),
            );
            acc.bad = true;
            return None;
        }
        let items = self.strings(sec, key, acc)?;
        if items.is_empty() {
            self.error(
                &sec.get(key).map(|v| v.span()).unwrap_or_default(),
                ErrorKind::BadValue,
                format!("`{key}` in {}: expected at least one prompt", sec.name),
            );
            acc.bad = true;
            return None;
        }
        let mut names = Vec::new();
        for (name, span) in items {
            if !plain_name(&name) {
                self.error(
                    &span,
                    ErrorKind::BadValue,
                    format!(
                        "`{key}` in {}: `{name}` is not a prompt name, expected letters, digits, `-` and `_`",
                        sec.name
                    ),
                );
                acc.bad = true;
                continue;
            }
            acc.prompts.push(PromptRef {
                what: format!("`{key}` in {}", sec.name),
                name: name.clone(),
                pos: self.pos(&span),
            });
            names.push(name);
        }
        Some(names)
    }

    /// A `{var}` template whose text must be a mailbox number (or, with
    /// `names`, an audio-message name) once substituted.
    fn template(
        &mut self,
        sec: &Sec<'_, '_>,
        key: &str,
        text: &str,
        span: &Range<usize>,
        check: TemplateCheck,
        acc: &mut Acc,
    ) -> Option<Template> {
        let what = format!("`{key}` in {}", sec.name);
        let t = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                self.error(span, ErrorKind::BadValue, format!("{what}: {e}"));
                acc.bad = true;
                return None;
            }
        };
        let ok = match check {
            TemplateCheck::Mailbox => {
                t.literals().all(|l| l.chars().all(is_capture_char))
                    && (t.vars().next().is_some() || (1..=32).contains(&text.len()))
            }
            TemplateCheck::Name => {
                t.literals().all(|l| l.chars().all(is_capture_char)) && !text.is_empty()
            }
            TemplateCheck::Any => !text.trim().is_empty(),
        };
        if !ok {
            let expected = match check {
                TemplateCheck::Mailbox => {
                    "is not a mailbox number, expected 1 to 32 characters of 0-9, A-Z, a-z, `_` and `-` (or a `{capture}`)"
                }
                TemplateCheck::Name => {
                    "is not a message name, expected letters, digits, `-` and `_`"
                }
                TemplateCheck::Any => "is empty",
            };
            self.error(
                span,
                ErrorKind::BadValue,
                format!("{what}: `{text}` {expected}"),
            );
            acc.bad = true;
            return None;
        }
        acc.templates.push(TemplateRef {
            what,
            template: t.clone(),
            pos: self.pos(span),
        });
        Some(t)
    }

    fn optional_template(
        &mut self,
        sec: &Sec<'_, '_>,
        key: &str,
        check: TemplateCheck,
        acc: &mut Acc,
    ) -> Option<Template> {
        let (text, span) = self.string(sec, key, acc)?;
        self.template(sec, key, &text, &span, check, acc)
    }

    // --- Routes ------------------------------------------------------------

    fn routes(&mut self, value: &Spanned<DeValue<'_>>) {
        let DeValue::Array(entries) = value.get_ref() else {
            self.error(
                &value.span(),
                ErrorKind::BadValue,
                format!(
                    "`route` must be an array of tables, write [[route]] for each route, found {}",
                    value.get_ref().type_str()
                ),
            );
            return;
        };
        for entry in entries.iter() {
            let DeValue::Table(table) = entry.get_ref() else {
                self.error(
                    &entry.span(),
                    ErrorKind::BadValue,
                    format!(
                        "each `route` must be a table, found {}",
                        entry.get_ref().type_str()
                    ),
                );
                continue;
            };
            let sec = Sec {
                name: "[[route]]".to_owned(),
                table,
            };
            self.route(&sec, &entry.span());
        }
    }

    fn route(&mut self, sec: &Sec<'_, '_>, header: &Range<usize>) {
        self.unknown_keys(sec, ROUTE_KEYS, "");
        let mut acc = Acc::default();
        let exact = self.string(sec, "match", &mut acc);
        let prefix = self.string(sec, "prefix", &mut acc);
        let matcher = match (exact, prefix) {
            (Some(_), Some((_, span))) => {
                self.error(
                    &span,
                    ErrorKind::BadValue,
                    "[[route]] has both `match` and `prefix`; use one".to_owned(),
                );
                None
            }
            (None, None) => {
                if !acc.bad {
                    self.error(
                        header,
                        ErrorKind::MissingKey,
                        "[[route]] is missing `match` or `prefix`, e.g. match = \"+3225550100\", \
                         match = \"*99{box}\" or prefix = \"+32\""
                            .to_owned(),
                    );
                }
                None
            }
            (Some((text, span)), None) => self.matcher(&text, span, false),
            (None, Some((text, span))) => self.matcher(&text, span, true),
        };
        let node = self.required_string(sec, header, "node", "\"main-menu\"", &mut acc);
        let node = node.map(|(n, span)| (n, self.pos(&span)));
        let language = self.route_language(sec, &mut acc);
        let Some((matcher, label, span)) = matcher else {
            self.b.routes.push(RouteInfo {
                route: None,
                node,
                captures: Vec::new(),
                label: String::new(),
                pos: self.pos(header),
            });
            return;
        };
        let pos = self.pos(&span);
        let key = match &matcher {
            Matcher::Exact(s) => format!("exact {s}"),
            Matcher::Prefix(s) => format!("prefix {s}"),
            Matcher::Pattern(p) => format!("pattern {}", p.shape()),
        };
        if let Some(first) = self.b.route_keys.get(&key).copied() {
            let at = self.b.at(first);
            self.b.error(
                pos,
                ErrorKind::DuplicateRoute,
                format!("duplicate route `{label}`, first defined at {at}"),
            );
        } else {
            self.b.route_keys.insert(key, pos);
        }
        let captures = match &matcher {
            Matcher::Pattern(p) => p.captures().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let route = match (&node, acc.bad) {
            (Some((n, _)), false) => Some(Route {
                matcher,
                node: n.clone(),
                language,
                origin: Origin {
                    file: self.b.files[self.file].clone(),
                    line: pos.line,
                    column: pos.column,
                },
            }),
            _ => None,
        };
        self.b.routes.push(RouteInfo {
            route,
            node,
            captures,
            label,
            pos,
        });
    }

    fn matcher(
        &mut self,
        text: &str,
        span: Range<usize>,
        prefix: bool,
    ) -> Option<(Matcher, String, Range<usize>)> {
        let key = if prefix { "prefix" } else { "match" };
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.error(
                &span,
                ErrorKind::BadValue,
                format!("`{key}` in [[route]]: `{text}` is not a number, expected no spaces and at least one character"),
            );
            return None;
        }
        if prefix {
            if text.contains(['{', '}']) {
                self.error(
                    &span,
                    ErrorKind::BadValue,
                    "`prefix` in [[route]]: a prefix cannot capture; use match = \"...{name}\""
                        .to_owned(),
                );
                return None;
            }
            return Some((
                Matcher::Prefix(text.to_owned()),
                format!("prefix {text}"),
                span,
            ));
        }
        if !text.contains(['{', '}']) {
            return Some((Matcher::Exact(text.to_owned()), text.to_owned(), span));
        }
        match Pattern::parse(text) {
            Ok(p) => Some((Matcher::Pattern(p), text.to_owned(), span)),
            Err(e) => {
                self.error(
                    &span,
                    ErrorKind::BadValue,
                    format!("`match` in [[route]]: {e}"),
                );
                None
            }
        }
    }

    fn route_language(&mut self, sec: &Sec<'_, '_>, acc: &mut Acc) -> Option<String> {
        self.language_value(sec, "language", acc)
    }

    fn language_value(&mut self, sec: &Sec<'_, '_>, key: &str, acc: &mut Acc) -> Option<String> {
        let (lang, span) = self.string(sec, key, acc)?;
        if LANGUAGES.contains(&lang.as_str()) {
            Some(lang)
        } else {
            self.error(
                &span,
                ErrorKind::BadValue,
                format!(
                    "`{key}` in {}: unknown language `{lang}`, expected one of {}",
                    sec.name,
                    one_of(LANGUAGES)
                ),
            );
            acc.bad = true;
            None
        }
    }

    // --- Nodes -------------------------------------------------------------

    fn nodes(&mut self, value: &Spanned<DeValue<'_>>) {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                &value.span(),
                ErrorKind::BadValue,
                format!(
                    "`node` must be a table of nodes, write [node.NAME] for each node, found {}",
                    value.get_ref().type_str()
                ),
            );
            return;
        };
        for (key, v) in table.iter() {
            let name = key.get_ref().to_string();
            let span = key.span();
            if !plain_name(&name) {
                self.error(
                    &span,
                    ErrorKind::BadValue,
                    format!("`{name}` is not a node name, expected letters, digits, `-` and `_`"),
                );
                continue;
            }
            let DeValue::Table(t) = v.get_ref() else {
                self.error(
                    &v.span(),
                    ErrorKind::BadValue,
                    format!(
                        "node `{name}` must be a table, write [node.{name}] followed by its keys, found {}",
                        v.get_ref().type_str()
                    ),
                );
                continue;
            };
            self.node(name, &span, t);
        }
    }

    fn node(&mut self, name: String, header: &Range<usize>, table: &DeTable<'_>) {
        let pos = self.pos(header);
        let sec = Sec {
            name: format!("[node.{name}]"),
            table,
        };
        let mut acc = Acc::default();
        let kind_name = match self.required_string(&sec, header, "kind", "\"menu\"", &mut acc) {
            Some((k, _)) if KINDS.contains(&k.as_str()) => Some(k),
            Some((k, span)) => {
                self.error(
                    &span,
                    ErrorKind::BadValue,
                    format!(
                        "`kind` in {}: unknown kind `{k}`, expected one of {}",
                        sec.name,
                        one_of(KINDS)
                    ),
                );
                None
            }
            None => None,
        };
        let kind = match kind_name.as_deref() {
            Some(k) => {
                self.unknown_keys(&sec, kind_keys(k), &format!(" (a {k} node)"));
                self.node_kind(k, &sec, header, &mut acc)
            }
            None => None,
        };
        let kind = if acc.bad { None } else { kind };
        if let Some(&first) = self.b.by_name.get(&name) {
            let at = self.b.at(self.b.nodes[first].pos);
            self.b.error(
                pos,
                ErrorKind::DuplicateNode,
                format!("duplicate node `{name}`, first defined at {at}"),
            );
        } else {
            self.b.by_name.insert(name.clone(), self.b.nodes.len());
        }
        self.b.nodes.push(NodeInfo {
            name,
            pos,
            kind_name,
            kind,
            looped: acc.looped,
            refs: acc.refs,
            prompts: acc.prompts,
            templates: acc.templates,
        });
    }

    fn node_kind(
        &mut self,
        kind: &str,
        s: &Sec<'_, '_>,
        h: &Range<usize>,
        acc: &mut Acc,
    ) -> Option<NodeKind> {
        Some(match kind {
            "play" => {
                let prompts = self.prompt_names(s, h, "prompt", acc);
                let looped = self.boolean(s, "loop", acc).unwrap_or(false);
                acc.looped = looped;
                let max_seconds = self.uint(s, "max_seconds", 1, 86_400, acc);
                if let Some((_, span)) = &max_seconds
                    && !looped
                {
                    self.error(
                        span,
                        ErrorKind::BadValue,
                        format!("`max_seconds` in {} only applies with loop = true", s.name),
                    );
                    acc.bad = true;
                }
                let next = self.target(s, "next", acc);
                NodeKind::Play(Play {
                    prompts: prompts?,
                    looped,
                    max_seconds: max_seconds.map(|(v, _)| v),
                    next,
                })
            }
            "menu" => {
                let prompts = self.prompt_names(s, h, "prompt", acc);
                let options = self.menu_options(s, h, acc);
                let timeout_seconds = self
                    .uint(s, "timeout_seconds", 1, 60, acc)
                    .map_or(5, |(v, _)| v);
                let retries = self.uint(s, "retries", 0, 10, acc).map_or(2, |(v, _)| v);
                let invalid = self.target(s, "invalid", acc);
                let timeout = self.target(s, "timeout", acc);
                NodeKind::Menu(Menu {
                    prompts: prompts?,
                    options: options?,
                    timeout_seconds,
                    retries,
                    invalid,
                    timeout,
                })
            }
            "voicemail" => self.voicemail(s, h, acc)?,
            "voicemail_main" => {
                let mailbox = self.optional_template(s, "mailbox", TemplateCheck::Mailbox, acc);
                let next = self.target(s, "next", acc);
                NodeKind::VoicemailMain(VoicemailMain { mailbox, next })
            }
            "record_message" => {
                let message = self.optional_template(s, "message", TemplateCheck::Name, acc);
                let next = self.target(s, "next", acc);
                NodeKind::RecordMessage(RecordMessage { message, next })
            }
            "schedule" => self.schedule(s, h, acc)?,
            "language" => {
                if s.get("language").is_none() {
                    self.error(
                        h,
                        ErrorKind::MissingKey,
                        format!("{} is missing `language`, e.g. language = \"fr\"", s.name),
                    );
                    acc.bad = true;
                }
                let language = self.language_value(s, "language", acc);
                let next = self.required_target(s, h, "next", acc);
                NodeKind::Language(Language {
                    language: language?,
                    next: next?,
                })
            }
            "goto" => NodeKind::Goto(Goto {
                target: self.required_target(s, h, "target", acc)?,
            }),
            "transfer" => {
                let target = self
                    .required_string(s, h, "target", "\"sip:reception@pbx.example.com\"", acc)
                    .and_then(|(t, span)| {
                        self.template(s, "target", &t, &span, TemplateCheck::Any, acc)
                    });
                let mode = match self
                    .one_of_strings(s, "mode", &["refer", "redirect"], acc)
                    .as_deref()
                {
                    Some("redirect") => TransferMode::Redirect,
                    _ => TransferMode::Refer,
                };
                let failed = self.target(s, "failed", acc);
                NodeKind::Transfer(Transfer {
                    target: target?,
                    mode,
                    failed,
                })
            }
            "hangup" => NodeKind::Hangup,
            _ => return None,
        })
    }

    fn menu_options(
        &mut self,
        s: &Sec<'_, '_>,
        h: &Range<usize>,
        acc: &mut Acc,
    ) -> Option<std::collections::BTreeMap<char, String>> {
        let Some(v) = s.get("options") else {
            self.error(
                h,
                ErrorKind::MissingKey,
                format!(
                    "{} is missing `options`, e.g. options = {{ 1 = \"sales\", 2 = \"support\" }}",
                    s.name
                ),
            );
            acc.bad = true;
            return None;
        };
        let DeValue::Table(table) = v.get_ref() else {
            self.type_error(s, "options", v, "a table of key = \"node\"");
            acc.bad = true;
            return None;
        };
        let opts = Sec {
            name: s.name.clone(),
            table,
        };
        let mut out = std::collections::BTreeMap::new();
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            let mut chars = k.chars();
            let c = match (chars.next(), chars.next()) {
                (Some(c), None) if MENU_KEYS_ALLOWED.contains(c) => c,
                _ => {
                    self.error(
                        &key.span(),
                        ErrorKind::BadValue,
                        format!(
                            "`options` in {}: `{k}` is not a phone key, expected one of 0-9, `*` or `#` (quote `*` and `#`)",
                            s.name
                        ),
                    );
                    acc.bad = true;
                    continue;
                }
            };
            let DeValue::String(target) = value.get_ref() else {
                self.type_error(&opts, &format!("options.{k}"), value, "a node name");
                acc.bad = true;
                continue;
            };
            let target = self.target_ref(
                &opts,
                &format!("options.{k}"),
                target.to_string(),
                &value.span(),
                acc,
            );
            out.insert(c, target);
        }
        if out.is_empty() && !acc.bad {
            self.error(
                &v.span(),
                ErrorKind::BadValue,
                format!("`options` in {}: a menu needs at least one option", s.name),
            );
            acc.bad = true;
        }
        Some(out)
    }

    fn voicemail(&mut self, s: &Sec<'_, '_>, h: &Range<usize>, acc: &mut Acc) -> Option<NodeKind> {
        let mut mailboxes = Vec::new();
        let single = self.string(s, "mailbox", acc);
        let many = self.strings(s, "mailboxes", acc);
        match (&single, &many) {
            (Some(_), Some(_)) => {
                let span = s.get("mailboxes").map(|v| v.span()).unwrap_or_default();
                self.error(
                    &span,
                    ErrorKind::BadValue,
                    format!("{} has both `mailbox` and `mailboxes`; use one", s.name),
                );
                acc.bad = true;
            }
            (None, None) if !acc.bad => {
                self.error(
                    h,
                    ErrorKind::MissingKey,
                    format!(
                        "{} is missing `mailbox`, e.g. mailbox = \"1001\", mailbox = \"{{box}}\" \
                         or mailboxes = [\"1001\", \"1002\"]",
                        s.name
                    ),
                );
                acc.bad = true;
            }
            _ => {}
        }
        if let Some((text, span)) = single {
            mailboxes.extend(self.template(
                s,
                "mailbox",
                &text,
                &span,
                TemplateCheck::Mailbox,
                acc,
            ));
        }
        if let Some(items) = many {
            if items.is_empty() {
                let span = s.get("mailboxes").map(|v| v.span()).unwrap_or_default();
                self.error(
                    &span,
                    ErrorKind::BadValue,
                    format!("`mailboxes` in {}: expected at least one mailbox", s.name),
                );
                acc.bad = true;
            }
            for (text, span) in items {
                mailboxes.extend(self.template(
                    s,
                    "mailboxes",
                    &text,
                    &span,
                    TemplateCheck::Mailbox,
                    acc,
                ));
            }
        }
        let greeting = match self
            .one_of_strings(s, "greeting", &["auto", "unavailable", "busy", "none"], acc)
            .as_deref()
        {
            Some("unavailable") => GreetingChoice::Unavailable,
            Some("busy") => GreetingChoice::Busy,
            Some("none") => GreetingChoice::NoGreeting,
            _ => GreetingChoice::Auto,
        };
        let operator = self.target(s, "operator", acc);
        let retrieval = self.target(s, "retrieval", acc);
        let review = self.boolean(s, "review", acc).unwrap_or(false);
        let skip_instructions_if_greeting = self
            .boolean(s, "skip_instructions_if_greeting", acc)
            .unwrap_or(false);
        let max_messages = self.uint(s, "max_messages", 1, 10_000, acc).map(|(v, _)| v);
        let full = self.target(s, "full", acc);
        let next = self.target(s, "next", acc);
        Some(NodeKind::Voicemail(Voicemail {
            mailboxes,
            greeting,
            operator,
            retrieval,
            review,
            skip_instructions_if_greeting,
            max_messages,
            full,
            next,
        }))
    }

    fn schedule(&mut self, s: &Sec<'_, '_>, h: &Range<usize>, acc: &mut Acc) -> Option<NodeKind> {
        let timezone = match self.required_string(s, h, "timezone", "\"Europe/Brussels\"", acc) {
            Some((name, span)) => match jiff::tz::TimeZone::get(&name) {
                Ok(tz) => Some((name, tz)),
                Err(_) => {
                    self.error(
                        &span,
                        ErrorKind::BadValue,
                        format!(
                            "`timezone` in {}: unknown time zone `{name}`, expected an IANA name like \"Europe/Brussels\"",
                            s.name
                        ),
                    );
                    acc.bad = true;
                    None
                }
            },
            None => None,
        };
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for (day, ranges) in WEEKDAYS.iter().zip(week.iter_mut()) {
            for (text, span) in self.strings(s, day, acc).unwrap_or_default() {
                match parse_range(&text) {
                    Ok(r) => ranges.push(r),
                    Err(e) => {
                        self.error(
                            &span,
                            ErrorKind::BadValue,
                            format!("`{day}` in {}: {e}", s.name),
                        );
                        acc.bad = true;
                    }
                }
            }
        }
        let mut holidays = Vec::new();
        if let Some(v) = s.get("holidays") {
            match v.get_ref() {
                DeValue::Array(items) => {
                    for item in items.iter() {
                        let text = match item.get_ref() {
                            DeValue::String(t) => t.to_string(),
                            // A bare TOML date: holidays = [2026-12-25].
                            DeValue::Datetime(d) => d.to_string(),
                            _ => {
                                self.type_error(
                                    s,
                                    "holidays",
                                    item,
                                    "a date string like \"2026-12-25\"",
                                );
                                acc.bad = true;
                                continue;
                            }
                        };
                        match Holiday::parse(&text) {
                            Ok(d) => holidays.push(d),
                            Err(e) => {
                                self.error(
                                    &item.span(),
                                    ErrorKind::BadValue,
                                    format!("`holidays` in {}: {e}", s.name),
                                );
                                acc.bad = true;
                            }
                        }
                    }
                }
                _ => {
                    self.type_error(s, "holidays", v, "an array of dates");
                    acc.bad = true;
                }
            }
        }
        let open = self.required_target(s, h, "open", acc);
        let closed = self.required_target(s, h, "closed", acc);
        let holiday = self.target(s, "holiday", acc);
        let (timezone_name, timezone) = timezone?;
        Some(NodeKind::Schedule(Schedule {
            timezone_name,
            timezone,
            week,
            holidays,
            open: open?,
            closed: closed?,
            holiday,
        }))
    }
}

#[derive(Clone, Copy)]
enum TemplateCheck {
    Mailbox,
    Name,
    Any,
}

/// Names used as file names and keys: letters, digits, `-`, `_`.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn one_of(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
