//! Walk toml's spanned document into [`Config`], collecting every error.
//!
//! We read the document ourselves (toml's `DeTable`, which keeps a span for
//! every key and value) instead of deriving `Deserialize` for the whole
//! config: serde stops at the first error, and we want all of them, each at
//! the line of the offending value. Single values still go through serde
//! (`ValueDeserializer`), so type errors read the way toml words them.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::source::LineIndex;
use super::{
    Config, ConfigError, ConfigErrors, LANGUAGES, MailboxConfig, PromptConfig, RtpConfig,
    SipConfig, StorageConfig, VoicemailConfig,
};

const TOP_KEYS: &[&str] = &["sip", "rtp", "storage", "prompts", "voicemail", "mailbox"];
const SIP_KEYS: &[&str] = &["listen", "public_address", "user_agent", "answer_delay_ms"];
const RTP_KEYS: &[&str] = &["port_min", "port_max"];
const STORAGE_KEYS: &[&str] = &["data_dir"];
const PROMPTS_KEYS: &[&str] = &["dir", "default_language"];
const VOICEMAIL_KEYS: &[&str] = &[
    "max_message_seconds",
    "min_message_seconds",
    "silence_timeout_seconds",
    "silence_threshold",
];
const MAILBOX_KEYS: &[&str] = &["number", "pin", "name", "language", "email"];

/// Longest recording we accept: one hour keeps a message file reasonable.
const MAX_MESSAGE_SECONDS: u32 = 3600;
/// Longest ring before answering; callers give up well before a minute.
const MAX_ANSWER_DELAY_MS: u64 = 60_000;
/// Ports below this need privileges and belong to well-known services.
const MIN_RTP_PORT: u16 = 1024;

pub(super) fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let mut cx = Checker {
        file,
        lines: LineIndex::new(text),
        errors: Vec::new(),
    };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    // One syntax error per line: after a bad token the parser's recovery
    // often reports the same mistake several times over.
    let mut syntax_lines = Vec::new();
    for e in &syntax {
        let span = e.span().unwrap_or(0..0);
        let line = cx.lines.position(span.start).0;
        if !syntax_lines.contains(&line) {
            syntax_lines.push(line);
            cx.error(span, e.message().to_owned());
        }
    }
    // Checks still run on what the parser recovered, so one typo does not
    // hide the other mistakes in the file.
    let config = cx.config(doc.get_ref());
    if cx.errors.is_empty() {
        Ok(config)
    } else {
        let mut errors = cx.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(errors))
    }
}

struct Checker<'a> {
    file: &'a str,
    lines: LineIndex<'a>,
    errors: Vec<ConfigError>,
}

/// One table of the document and how to name it in messages.
struct Section<'t, 'i> {
    name: &'static str,
    table: &'t DeTable<'i>,
}

impl<'t, 'i> Section<'t, 'i> {
    fn get(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.table.get(key)
    }
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: String) {
        let (line, column) = self.lines.position(span.start);
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message,
        });
    }

    fn config(&mut self, root: &DeTable<'_>) -> Config {
        for (key, _) in root.iter() {
            if !TOP_KEYS.contains(&key.get_ref().as_ref()) {
                self.error(
                    key.span(),
                    format!(
                        "unknown section `{}`, expected one of {}",
                        key.get_ref(),
                        one_of(TOP_KEYS)
                    ),
                );
            }
        }
        Config {
            sip: self
                .section(root, "sip", "[sip]", SIP_KEYS)
                .map(|s| self.sip(&s))
                .unwrap_or_default(),
            rtp: self
                .section(root, "rtp", "[rtp]", RTP_KEYS)
                .map(|s| self.rtp(&s))
                .unwrap_or_default(),
            storage: self
                .section(root, "storage", "[storage]", STORAGE_KEYS)
                .map(|s| self.storage(&s))
                .unwrap_or_default(),
            prompts: self
                .section(root, "prompts", "[prompts]", PROMPTS_KEYS)
                .map(|s| self.prompts(&s))
                .unwrap_or_default(),
            voicemail: self
                .section(root, "voicemail", "[voicemail]", VOICEMAIL_KEYS)
                .map(|s| self.voicemail(&s))
                .unwrap_or_default(),
            mailboxes: self.mailboxes(root),
        }
    }

    /// A top-level table, with its unknown keys reported. `None` (defaults)
    /// when absent or not a table.
    fn section<'t, 'i>(
        &mut self,
        root: &'t DeTable<'i>,
        key: &str,
        name: &'static str,
        keys: &[&str],
    ) -> Option<Section<'t, 'i>> {
        let value = root.get(key)?;
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                value.span(),
                format!(
                    "`{key}` must be a table, write {name} followed by its keys, found {}",
                    value.get_ref().type_str()
                ),
            );
            return None;
        };
        let section = Section { name, table };
        self.unknown_keys(&section, keys);
        Some(section)
    }

    fn unknown_keys(&mut self, section: &Section<'_, '_>, keys: &[&str]) {
        for (key, _) in section.table.iter() {
            if !keys.contains(&key.get_ref().as_ref()) {
                self.error(
                    key.span(),
                    format!(
                        "unknown key `{}` in {}, expected one of {}",
                        key.get_ref(),
                        section.name,
                        one_of(keys)
                    ),
                );
            }
        }
    }

    /// A key's value converted by serde, with its span; `None` when absent or
    /// of the wrong type (reported).
    fn value<T: DeserializeOwned>(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
    ) -> Option<(T, Range<usize>)> {
        let value = section.get(key)?;
        let span = value.span();
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some((v, span)),
            Err(e) => {
                self.error(
                    e.span().unwrap_or(span),
                    format!("`{key}` in {}: {}", section.name, e.message()),
                );
                None
            }
        }
    }

    /// A string value that must parse as `T` (addresses).
    fn parsed<T: std::str::FromStr>(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        expected: &str,
    ) -> Option<T> {
        let (text, span) = self.value::<String>(section, key)?;
        match text.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(
                    span,
                    format!("`{key}` in {}: `{text}` is not {expected}", section.name),
                );
                None
            }
        }
    }

    fn language(&mut self, section: &Section<'_, '_>, key: &str) -> Option<String> {
        let (lang, span) = self.value::<String>(section, key)?;
        if LANGUAGES.contains(&lang.as_str()) {
            Some(lang)
        } else {
            self.error(
                span,
                format!(
                    "`{key}` in {}: unknown language `{lang}`, expected one of {}",
                    section.name,
                    one_of(LANGUAGES)
                ),
            );
            None
        }
    }

    fn sip(&mut self, s: &Section<'_, '_>) -> SipConfig {
        let d = SipConfig::default();
        SipConfig {
            listen: self
                .parsed(s, "listen", "a socket address like \"0.0.0.0:5060\"")
                .unwrap_or(d.listen),
            public_address: self.parsed(s, "public_address", "an IP address"),
            user_agent: self.value(s, "user_agent").map_or(d.user_agent, |(v, _)| v),
            answer_delay_ms: match self.value::<u64>(s, "answer_delay_ms") {
                Some((v, span)) if v > MAX_ANSWER_DELAY_MS => {
                    self.error(
                        span,
                        format!(
                            "`answer_delay_ms` in [sip]: {v} is out of range, \
                             expected 0 to {MAX_ANSWER_DELAY_MS}"
                        ),
                    );
                    d.answer_delay_ms
                }
                other => other.map_or(d.answer_delay_ms, |(v, _)| v),
            },
        }
    }

    fn rtp(&mut self, s: &Section<'_, '_>) -> RtpConfig {
        let d = RtpConfig::default();
        let min = self.value::<u16>(s, "port_min");
        let max = self.value::<u16>(s, "port_max");
        let port_min = min.as_ref().map_or(d.port_min, |(v, _)| *v);
        let port_max = max.as_ref().map_or(d.port_max, |(v, _)| *v);
        if let Some((v, span)) = &min
            && *v < MIN_RTP_PORT
        {
            self.error(
                span.clone(),
                format!("`port_min` in [rtp]: {v} is below {MIN_RTP_PORT}"),
            );
        }
        // Blame whichever bound the file sets, the upper one first.
        let blame = max.or(min).map(|(_, span)| span);
        if let Some(span) = blame {
            if port_min > port_max {
                self.error(
                    span,
                    format!("[rtp]: port_min {port_min} is greater than port_max {port_max}"),
                );
            } else if port_max - port_min < 1 {
                self.error(
                    span,
                    format!("[rtp]: the range {port_min}-{port_max} has fewer than 2 ports"),
                );
            }
        }
        RtpConfig { port_min, port_max }
    }

    fn storage(&mut self, s: &Section<'_, '_>) -> StorageConfig {
        StorageConfig {
            data_dir: self
                .path(s, "data_dir")
                .unwrap_or_else(|| StorageConfig::default().data_dir),
        }
    }

    fn path(&mut self, s: &Section<'_, '_>, key: &str) -> Option<PathBuf> {
        let (p, span) = self.value::<String>(s, key)?;
        if p.is_empty() {
            self.error(span, format!("`{key}` in {}: path is empty", s.name));
            return None;
        }
        Some(PathBuf::from(p))
    }

    fn prompts(&mut self, s: &Section<'_, '_>) -> PromptConfig {
        let d = PromptConfig::default();
        PromptConfig {
            dir: self.path(s, "dir").unwrap_or(d.dir),
            default_language: self
                .language(s, "default_language")
                .unwrap_or(d.default_language),
        }
    }

    fn voicemail(&mut self, s: &Section<'_, '_>) -> VoicemailConfig {
        let d = VoicemailConfig::default();
        let max = self.value::<u32>(s, "max_message_seconds");
        let min = self.value::<f64>(s, "min_message_seconds");
        let max_seconds = match &max {
            Some((v, span)) if *v == 0 || *v > MAX_MESSAGE_SECONDS => {
                self.error(
                    span.clone(),
                    format!(
                        "`max_message_seconds` in [voicemail]: {v} is out of range, \
                         expected 1 to {MAX_MESSAGE_SECONDS}"
                    ),
                );
                None
            }
            other => other.as_ref().map(|(v, _)| *v),
        };
        let min_seconds = match min {
            Some((v, span)) if !v.is_finite() || v < 0.0 => {
                self.error(
                    span,
                    format!(
                        "`min_message_seconds` in [voicemail]: {v} is out of range, \
                         expected 0 or more seconds"
                    ),
                );
                None
            }
            Some((v, span)) => {
                // Compare against the effective maximum, but only when that
                // maximum is itself valid, to avoid a second error for one
                // mistake.
                let limit = match &max {
                    Some(_) => max_seconds,
                    None => Some(d.max_message_seconds),
                };
                if let Some(limit) = limit
                    && v >= f64::from(limit)
                {
                    self.error(
                        span,
                        format!(
                            "`min_message_seconds` in [voicemail]: {v} must be less than \
                             max_message_seconds ({limit})"
                        ),
                    );
                    None
                } else {
                    Some(v)
                }
            }
            None => {
                // The default minimum must still be below a small maximum.
                if let (Some(limit), Some((_, span))) = (max_seconds, &max)
                    && d.min_message_seconds >= f64::from(limit)
                {
                    self.error(
                        span.clone(),
                        format!(
                            "`max_message_seconds` in [voicemail]: {limit} must be greater \
                             than min_message_seconds (default {})",
                            d.min_message_seconds
                        ),
                    );
                }
                None
            }
        };
        VoicemailConfig {
            max_message_seconds: max_seconds.unwrap_or(d.max_message_seconds),
            min_message_seconds: min_seconds.unwrap_or(d.min_message_seconds),
            silence_timeout_seconds: self
                .value(s, "silence_timeout_seconds")
                .map_or(d.silence_timeout_seconds, |(v, _)| v),
            silence_threshold: self
                .value(s, "silence_threshold")
                .map_or(d.silence_threshold, |(v, _)| v),
        }
    }

    fn mailboxes(&mut self, root: &DeTable<'_>) -> Vec<MailboxConfig> {
        let Some(value) = root.get("mailbox") else {
            return Vec::new();
        };
        let DeValue::Array(entries) = value.get_ref() else {
            self.error(
                value.span(),
                format!(
                    "`mailbox` must be an array of tables, write [[mailbox]] \
                     for each box, found {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        let mut boxes = Vec::new();
        // Number → line of its first definition, to point back at it.
        let mut seen: HashMap<String, usize> = HashMap::new();
        for entry in entries.iter() {
            let DeValue::Table(table) = entry.get_ref() else {
                self.error(
                    entry.span(),
                    format!(
                        "each `mailbox` must be a table, found {}",
                        entry.get_ref().type_str()
                    ),
                );
                continue;
            };
            let section = Section {
                name: "[[mailbox]]",
                table,
            };
            self.unknown_keys(&section, MAILBOX_KEYS);
            if let Some(mailbox) = self.mailbox(&section, entry.span(), &mut seen) {
                boxes.push(mailbox);
            }
        }
        boxes
    }

    /// One box; `None` when a required key is missing or invalid (reported).
    fn mailbox(
        &mut self,
        s: &Section<'_, '_>,
        header: Range<usize>,
        seen: &mut HashMap<String, usize>,
    ) -> Option<MailboxConfig> {
        let number = self.required_string(s, "number", &header, "\"1001\"");
        let number = number.and_then(|(number, span)| {
            if !valid_mailbox_number(&number) {
                self.error(
                    span,
                    format!(
                        "`number` in [[mailbox]]: `{number}` is not a mailbox number, \
                         expected 1 to 32 characters of 0-9, A-Z, a-z, `_` and `-`"
                    ),
                );
                return None;
            }
            let line = self.lines.position(span.start).0;
            if let Some(first) = seen.get(&number) {
                self.error(
                    span,
                    format!("duplicate mailbox number `{number}`, first defined on line {first}"),
                );
                return None;
            }
            seen.insert(number.clone(), line);
            Some(number)
        });
        let pin = self
            .required_string(s, "pin", &header, "\"1234\"")
            .and_then(|(pin, span)| {
                let ok = (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    // Not echoing the PIN: config errors end up in logs.
                    self.error(
                        span,
                        "`pin` in [[mailbox]]: expected 4 to 12 digits".to_owned(),
                    );
                    return None;
                }
                Some(pin)
            });
        let name = self.value::<String>(s, "name").map(|(v, _)| v);
        let language = self.language(s, "language");
        let email = self.value::<String>(s, "email").and_then(|(email, span)| {
            // Deliberately loose: the mail server is the real judge.
            let plausible = email
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && !host.is_empty())
                && !email.chars().any(|c| c.is_whitespace() || c.is_control());
            if plausible {
                Some(email)
            } else {
                self.error(
                    span,
                    format!("`email` in [[mailbox]]: `{email}` is not an email address"),
                );
                None
            }
        });
        // Optional keys that were present but bad were reported above; the
        // box itself is still built so that other checks can use it.
        Some(MailboxConfig {
            number: number?,
            pin: pin?,
            name: name.unwrap_or_default(),
            language,
            email,
        })
    }

    /// A string key that must be present. Numbers and PINs written as
    /// integers get a hint: leading zeros would be lost.
    fn required_string(
        &mut self,
        s: &Section<'_, '_>,
        key: &str,
        header: &Range<usize>,
        example: &str,
    ) -> Option<(String, Range<usize>)> {
        let Some(value) = s.get(key) else {
            self.error(
                header.clone(),
                format!("{} is missing `{key}`, e.g. {key} = {example}", s.name),
            );
            return None;
        };
        if let DeValue::Integer(_) = value.get_ref() {
            self.error(
                value.span(),
                format!(
                    "`{key}` in {} must be a quoted string, e.g. {key} = {example}",
                    s.name
                ),
            );
            return None;
        }
        self.value(s, key)
    }
}

fn valid_mailbox_number(number: &str) -> bool {
    (1..=32).contains(&number.len())
        && number
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn one_of(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
