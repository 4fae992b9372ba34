//! Walk toml's spanned document into [`Config`], collecting every error.
//!
//! We read the document ourselves (toml's `DeTable`, which keeps a span for
//! every key and value) instead of deriving `Deserialize` for the whole
//! config: serde stops at the first error, and we want all of them, each at
//! the line of the offending value. Single values still go through serde
//! (`ValueDeserializer`), so type errors read the way toml words them.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::source::LineIndex;
use super::{
    ApiToken, Config, ConfigError, ConfigErrors, DEFAULT_EMAIL_BODY, DEFAULT_EMAIL_SUBJECT,
    EMAIL_PLACEHOLDERS, HttpConfig, LANGUAGES, LoginConfig, MIN_TOKEN_LEN, MailboxConfig,
    MwiConfig, Network, PromptConfig, RtpConfig, SipConfig, SmtpConfig, StorageConfig, TokenScope,
    VoicemailConfig, WebhookConfig,
};
use crate::audio::{AudioFormat, StorageFormat};
use crate::sip::registrar::DigestAlgorithm;

const TOP_KEYS: &[&str] = &[
    "sip",
    "rtp",
    "storage",
    "prompts",
    "voicemail",
    "login",
    "mailbox",
    "http",
    "smtp",
    "webhook",
    "mwi",
];
const SIP_KEYS: &[&str] = &["listen", "public_address", "user_agent", "answer_delay_ms"];
/// A day: a longer media timeout is a typo for "off".
const MAX_RTP_TIMEOUT_SECONDS: u32 = 86_400;
const RTP_KEYS: &[&str] = &[
    "port_min",
    "port_max",
    "realtime_priority",
    "timeout_seconds",
];
const STORAGE_KEYS: &[&str] = &["data_dir"];
const PROMPTS_KEYS: &[&str] = &["dir", "default_language"];
const LOGIN_KEYS: &[&str] = &["lockout_failures", "lockout_minutes", "trusted_networks"];
/// A week: a longer lockout is a typo, and locks the owner out too.
const MAX_LOCKOUT_MINUTES: u32 = 10_080;
const VOICEMAIL_KEYS: &[&str] = &[
    "max_message_seconds",
    "min_message_seconds",
    "silence_timeout_seconds",
    "silence_threshold",
    "next_after_command",
    "envelope",
];
const MAILBOX_KEYS: &[&str] = &[
    "number",
    "pin",
    "name",
    "language",
    "email",
    "attach_audio",
    "delete_after_email",
    "timezone",
    "sip_password",
    "ask_password",
    "pin_hash",
    "max_messages",
    "max_message_seconds",
    "shared",
    "members",
    "per_member_read",
    "format",
    "attach_format",
];
const HTTP_KEYS: &[&str] = &["listen", "tokens"];
const TOKEN_KEYS: &[&str] = &["token", "scope"];
const SMTP_KEYS: &[&str] = &[
    "host", "port", "from", "username", "password", "starttls", "subject", "body",
];
const WEBHOOK_KEYS: &[&str] = &["url", "secret"];
const MWI_KEYS: &[&str] = &["unsolicited", "realm", "digest_algorithms"];

/// Longest recording we accept: one hour keeps a message file reasonable.
const MAX_MESSAGE_SECONDS: u32 = 3600;
/// Longest ring before answering; callers give up well before a minute.
const MAX_ANSWER_DELAY_MS: u64 = 60_000;
/// Most messages a box may be set to keep (Asterisk's `maxmsg` caps at 9999).
const MAX_BOX_MESSAGES: u32 = 9999;
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

/// One mailbox written as a plain table (a `mailbox.toml`), checked like a
/// `[[mailbox]]` of config.toml; `section` names it in messages. Keys in
/// `forbidden` are refused.
pub(super) fn parse_mailbox_table(
    text: &str,
    file: &str,
    section: &'static str,
    forbidden: &[&str],
) -> Result<MailboxConfig, ConfigErrors> {
    let mut cx = Checker {
        file,
        lines: LineIndex::new(text),
        errors: Vec::new(),
    };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    let mut syntax_lines = Vec::new();
    for e in &syntax {
        let span = e.span().unwrap_or(0..0);
        let line = cx.lines.position(span.start).0;
        if !syntax_lines.contains(&line) {
            syntax_lines.push(line);
            cx.error(span, e.message().to_owned());
        }
    }
    let table = doc.get_ref();
    let s = Section {
        name: section,
        table,
    };
    let allowed: Vec<&str> = MAILBOX_KEYS
        .iter()
        .copied()
        .filter(|k| !forbidden.contains(k))
        .collect();
    for (key, _) in table.iter() {
        if forbidden.contains(&key.get_ref().as_ref()) {
            cx.error(
                key.span(),
                format!("`{}` cannot be set in {section}", key.get_ref()),
            );
        }
    }
    let mut other = s.table.clone();
    for k in forbidden {
        other.remove(*k);
    }
    let s = Section {
        name: section,
        table: &other,
    };
    cx.unknown_keys(&s, &allowed);
    let mailbox = cx.mailbox(&s, 0..0, &mut HashMap::new());
    match mailbox {
        Some(m) if cx.errors.is_empty() => Ok(m),
        _ => {
            let mut errors = cx.errors;
            errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(errors))
        }
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
        let mut config = Config {
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
            login: self
                .section(root, "login", "[login]", LOGIN_KEYS)
                .map(|s| self.login(&s))
                .unwrap_or_default(),
            mailboxes: Vec::new(),
            http: HttpConfig::default(),
            smtp: None,
            webhooks: Vec::new(),
            mwi: MwiConfig::default(),
            mailbox_index: Default::default(),
        };
        config.mailboxes = self.mailboxes(root);
        // Token scopes name mailboxes, so they are checked after them.
        config.http = self
            .section(root, "http", "[http]", HTTP_KEYS)
            .map(|s| self.http(&s, &config.mailboxes))
            .unwrap_or_default();
        let smtp_header = root.get("smtp").map_or(0..0, |v| v.span());
        config.smtp = self
            .section(root, "smtp", "[smtp]", SMTP_KEYS)
            .and_then(|s| self.smtp(&s, smtp_header));
        config.webhooks = self.webhooks(root);
        config.mwi = self
            .section(root, "mwi", "[mwi]", MWI_KEYS)
            .map(|s| self.mwi(&s))
            .unwrap_or_default();
        config.mwi.sip_passwords = self.sip_passwords(root, &config.mailboxes);
        config
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
        let realtime_priority = match self.value::<u8>(s, "realtime_priority") {
            Some((v, span)) if v > 99 => {
                self.error(
                    span,
                    format!("`realtime_priority` in [rtp]: {v} is above 99 (0 turns it off)"),
                );
                d.realtime_priority
            }
            Some((v, _)) => v,
            None => d.realtime_priority,
        };
        let timeout_seconds = match self.value::<u32>(s, "timeout_seconds") {
            Some((v, span)) if v > MAX_RTP_TIMEOUT_SECONDS => {
                self.error(
                    span,
                    format!(
                        "`timeout_seconds` in [rtp]: {v} is above {MAX_RTP_TIMEOUT_SECONDS} (0 turns it off)"
                    ),
                );
                d.timeout_seconds
            }
            Some((v, _)) => v,
            None => d.timeout_seconds,
        };
        RtpConfig {
            port_min,
            port_max,
            realtime_priority,
            timeout_seconds,
        }
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

    fn login(&mut self, s: &Section<'_, '_>) -> LoginConfig {
        let d = LoginConfig::default();
        let lockout_minutes = match self.value::<u32>(s, "lockout_minutes") {
            Some((v, span)) if v == 0 || v > MAX_LOCKOUT_MINUTES => {
                self.error(
                    span,
                    format!(
                        "`lockout_minutes` in [login]: {v} is out of range, expected 1 to \
                         {MAX_LOCKOUT_MINUTES} (lockout_failures = 0 turns the lockout off)"
                    ),
                );
                d.lockout_minutes
            }
            Some((v, _)) => v,
            None => d.lockout_minutes,
        };
        let mut trusted_networks = Vec::new();
        if let Some(value) = s.get("trusted_networks") {
            match value.get_ref() {
                DeValue::Array(entries) => {
                    for entry in entries.iter() {
                        let DeValue::String(text) = entry.get_ref() else {
                            self.error(
                                entry.span(),
                                format!(
                                    "`trusted_networks` in [login]: expected a string like \
                                     \"192.168.1.0/24\", found {}",
                                    entry.get_ref().type_str()
                                ),
                            );
                            continue;
                        };
                        match text.parse::<Network>() {
                            Ok(n) => trusted_networks.push(n),
                            Err(e) => self
                                .error(entry.span(), format!("`trusted_networks` in [login]: {e}")),
                        }
                    }
                }
                other => self.error(
                    value.span(),
                    format!(
                        "`trusted_networks` in [login] must be an array like \
                         [\"192.168.1.0/24\"], found {}",
                        other.type_str()
                    ),
                ),
            }
        }
        LoginConfig {
            lockout_failures: self
                .value(s, "lockout_failures")
                .map_or(d.lockout_failures, |(v, _)| v),
            lockout_minutes,
            trusted_networks,
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
            next_after_command: self
                .value(s, "next_after_command")
                .map_or(d.next_after_command, |(v, _)| v),
            envelope: self.value(s, "envelope").map_or(d.envelope, |(v, _)| v),
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
                        "`number` in {}: `{number}` is not a mailbox number, \
                         expected 1 to 32 characters of 0-9, A-Z, a-z, `_` and `-`",
                        s.name
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
        let pin = if s.get("pin_hash").is_some() && s.get("pin").is_none() {
            self.pin_hash(s)
        } else {
            if let Some(v) = s.get("pin_hash") {
                self.error(
                    v.span(),
                    format!("{} has both `pin` and `pin_hash`; keep one", s.name),
                );
            }
            self.required_pin(s, &header)
        };
        let name = self.value::<String>(s, "name").map(|(v, _)| v);
        let language = self.language(s, "language");
        let email = self.value::<String>(s, "email").and_then(|(email, span)| {
            if plausible_email(&email) {
                Some(email)
            } else {
                self.error(
                    span,
                    format!("`email` in {}: `{email}` is not an email address", s.name),
                );
                None
            }
        });
        let attach_audio = self.value::<bool>(s, "attach_audio").is_none_or(|(v, _)| v);
        let delete_after_email = match self.value::<bool>(s, "delete_after_email") {
            Some((true, span)) if s.get("email").is_none() => {
                self.error(
                    span,
                    format!(
                        "`delete_after_email` in {} needs `email`: the message \
                         would be deleted without being sent",
                        s.name
                    ),
                );
                false
            }
            other => other.is_some_and(|(v, _)| v),
        };
        let timezone = match self.value::<String>(s, "timezone") {
            Some((tz, _)) if jiff::tz::TimeZone::get(&tz).is_ok() => tz,
            Some((tz, span)) => {
                self.error(
                    span,
                    format!(
                        "`timezone` in {}: unknown time zone `{tz}`, expected an \
                         IANA name like \"Europe/Brussels\" or \"UTC\"",
                        s.name
                    ),
                );
                "UTC".to_owned()
            }
            None => "UTC".to_owned(),
        };
        let ask_password = self.value::<bool>(s, "ask_password").is_none_or(|(v, _)| v);
        let max_messages = self.limit(s, "max_messages", MAX_BOX_MESSAGES);
        let max_message_seconds = self.limit(s, "max_message_seconds", MAX_MESSAGE_SECONDS);
        let shared = self.value::<bool>(s, "shared").is_some_and(|(v, _)| v);
        let members = self.members(s, shared, number.as_deref());
        let per_member_read = match self.value::<bool>(s, "per_member_read") {
            Some((true, span)) if !shared => {
                self.error(
                    span,
                    format!("`per_member_read` in {} needs `shared = true`", s.name),
                );
                false
            }
            other => other.is_some_and(|(v, _)| v),
        };
        let storage_format = self.storage_format(s);
        let attach_format = self.attach_format(s, storage_format);
        // Optional keys that were present but bad were reported above; the
        // box itself is still built so that other checks can use it.
        Some(MailboxConfig {
            ask_password,
            number: number?,
            pin: pin?,
            name: name.unwrap_or_default(),
            language,
            email,
            attach_audio,
            delete_after_email,
            timezone,
            max_messages,
            max_message_seconds,
            shared,
            members,
            per_member_read,
            storage_format,
            attach_format,
        })
    }

    /// `format`: how the box keeps its messages.
    fn storage_format(&mut self, s: &Section<'_, '_>) -> StorageFormat {
        let Some((text, span)) = self.value::<String>(s, "format") else {
            return StorageFormat::Wav;
        };
        match StorageFormat::parse(&text) {
            Some(f) if f.can_encode() => f,
            Some(_) => {
                self.error(
                    span,
                    format!(
                        "`format` in {}: `{text}` needs MP3 support, and this voxmail was \
                         built without the `mp3` cargo feature; use \"wav\"",
                        s.name
                    ),
                );
                StorageFormat::Wav
            }
            None => {
                self.error(
                    span,
                    format!(
                        "`format` in {}: unknown format `{text}`, expected \"wav\", \"mp3\" or \"wav+mp3\"",
                        s.name
                    ),
                );
                StorageFormat::Wav
            }
        }
    }

    /// `attach_format`: what the notification email carries.
    fn attach_format(&mut self, s: &Section<'_, '_>, stored: StorageFormat) -> AudioFormat {
        let Some((text, span)) = self.value::<String>(s, "attach_format") else {
            return stored.primary();
        };
        match AudioFormat::parse(&text) {
            Some(f) if f.can_encode() || stored.has(f) => f,
            Some(_) => {
                self.error(
                    span,
                    format!(
                        "`attach_format` in {}: `{text}` needs MP3 support, and this voxmail \
                         was built without the `mp3` cargo feature; use \"wav\"",
                        s.name
                    ),
                );
                stored.primary()
            }
            None => {
                self.error(
                    span,
                    format!(
                        "`attach_format` in {}: unknown format `{text}`, expected \"wav\" or \"mp3\"",
                        s.name
                    ),
                );
                stored.primary()
            }
        }
    }

    /// `pin`: 4 to 12 digits.
    fn required_pin(&mut self, s: &Section<'_, '_>, header: &Range<usize>) -> Option<String> {
        self.required_string(s, "pin", header, "\"1234\"")
            .and_then(|(pin, span)| {
                let ok = (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    // Not echoing the PIN: config errors end up in logs.
                    self.error(
                        span,
                        format!("`pin` in {}: expected 4 to 12 digits", s.name),
                    );
                    return None;
                }
                Some(pin)
            })
    }

    /// `pin_hash`: the PIN as an Argon2id PHC string, so it is kept
    /// nowhere in clear (boxes created through the API store this).
    fn pin_hash(&mut self, s: &Section<'_, '_>) -> Option<String> {
        let (hash, span) = self.value::<String>(s, "pin_hash")?;
        if is_pin_hash(&hash) {
            Some(hash)
        } else {
            self.error(
                span,
                format!(
                    "`pin_hash` in {}: expected an Argon2id hash like \"$argon2id$v=19$...\"",
                    s.name
                ),
            );
            None
        }
    }

    /// An optional positive integer no larger than `max`.
    fn limit(&mut self, s: &Section<'_, '_>, key: &str, max: u32) -> Option<u32> {
        let (v, span) = self.value::<i64>(s, key)?;
        if (1..=i64::from(max)).contains(&v) {
            Some(v as u32)
        } else {
            self.error(
                span,
                format!(
                    "`{key}` in {}: {v} is out of range, expected 1 to {max}",
                    s.name
                ),
            );
            None
        }
    }

    /// `members` of a shared box: mailbox numbers, not the box itself.
    fn members(&mut self, s: &Section<'_, '_>, shared: bool, number: Option<&str>) -> Vec<String> {
        let Some((members, span)) = self.value::<Vec<String>>(s, "members") else {
            return Vec::new();
        };
        if !shared {
            self.error(
                span,
                format!("`members` in {} needs `shared = true`", s.name),
            );
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for m in members {
            if !valid_mailbox_number(&m) {
                self.error(
                    span.clone(),
                    format!("`members` in {}: `{m}` is not a mailbox number", s.name),
                );
            } else if Some(m.as_str()) == number {
                self.error(
                    span.clone(),
                    format!("`members` in {}: a box is not its own member", s.name),
                );
            } else if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }

    fn http(&mut self, s: &Section<'_, '_>, mailboxes: &[MailboxConfig]) -> HttpConfig {
        let d = HttpConfig::default();
        HttpConfig {
            listen: self
                .parsed(s, "listen", "a socket address like \"127.0.0.1:8080\"")
                .unwrap_or(d.listen),
            tokens: self.tokens(s, mailboxes),
        }
    }

    /// `tokens = [{ token = "...", scope = "admin" | ["1001", ...] }]`.
    fn tokens(&mut self, s: &Section<'_, '_>, mailboxes: &[MailboxConfig]) -> Vec<ApiToken> {
        let Some(value) = s.get("tokens") else {
            return Vec::new();
        };
        let DeValue::Array(entries) = value.get_ref() else {
            self.error(
                value.span(),
                format!(
                    "`tokens` in [http] must be an array of tables like \
                     [{{ token = \"...\", scope = \"admin\" }}], found {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        let mut tokens: Vec<ApiToken> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for entry in entries.iter() {
            let DeValue::Table(table) = entry.get_ref() else {
                self.error(
                    entry.span(),
                    format!(
                        "each of `tokens` in [http] must be a table like \
                         {{ token = \"...\", scope = \"admin\" }}, found {}",
                        entry.get_ref().type_str()
                    ),
                );
                continue;
            };
            let section = Section {
                name: "[http] tokens",
                table,
            };
            self.unknown_keys(&section, TOKEN_KEYS);
            let token = self
                .required_string(
                    &section,
                    "token",
                    &entry.span(),
                    "\"<16 or more characters>\"",
                )
                .and_then(|(token, span)| {
                    let ok =
                        token.len() >= MIN_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_graphic());
                    if !ok {
                        // Not echoing the token: config errors end up in logs.
                        self.error(
                            span,
                            format!(
                                "`token` in [http] tokens: expected {MIN_TOKEN_LEN} or more \
                                 printable ASCII characters without spaces"
                            ),
                        );
                        return None;
                    }
                    let line = self.lines.position(span.start).0;
                    if let Some(first) = seen.get(&token) {
                        self.error(
                            span,
                            format!("duplicate token, first defined on line {first}"),
                        );
                        return None;
                    }
                    seen.insert(token.clone(), line);
                    Some(token)
                });
            let scope = self.scope(&section, entry.span(), mailboxes);
            if let (Some(token), Some(scope)) = (token, scope) {
                tokens.push(ApiToken { token, scope });
            }
        }
        tokens
    }

    fn scope(
        &mut self,
        s: &Section<'_, '_>,
        header: Range<usize>,
        mailboxes: &[MailboxConfig],
    ) -> Option<TokenScope> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        const EXPECTED: &str = "expected \"admin\" or a list of mailbox numbers like [\"1001\"]";
        if s.get("scope").is_none() {
            self.error(header, format!("{} is missing `scope`, {EXPECTED}", s.name));
            return None;
        }
        let (raw, span) = match self.value::<Raw>(s, "scope") {
            Some(v) => v,
            None => {
                // The type error from serde is vague for untagged enums; the
                // reported one is enough to find the line.
                return None;
            }
        };
        match raw {
            Raw::One(s) if s == "admin" => Some(TokenScope::Admin),
            Raw::One(other) => {
                self.error(
                    span,
                    format!("`scope` in [http] tokens: `{other}` is not a scope, {EXPECTED}"),
                );
                None
            }
            Raw::Many(boxes) => {
                let mut ok = true;
                for b in &boxes {
                    if !mailboxes.iter().any(|m| &m.number == b) {
                        self.error(
                            span.clone(),
                            format!("`scope` in [http] tokens: `{b}` is not a configured mailbox"),
                        );
                        ok = false;
                    }
                }
                if boxes.is_empty() {
                    self.error(
                        span,
                        format!("`scope` in [http] tokens is empty, {EXPECTED}"),
                    );
                    ok = false;
                }
                ok.then_some(TokenScope::Mailboxes(boxes))
            }
        }
    }

    /// `[smtp]`; `None` when a required key is missing or invalid.
    fn smtp(&mut self, s: &Section<'_, '_>, header: Range<usize>) -> Option<SmtpConfig> {
        let host = self
            .required_string(s, "host", &header, "\"mail.example.com\"")
            .and_then(|(host, span)| {
                if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
                    self.error(
                        span,
                        format!("`host` in [smtp]: `{host}` is not a host name"),
                    );
                    return None;
                }
                Some(host)
            });
        let from = self
            .required_string(s, "from", &header, "\"voicemail@example.com\"")
            .and_then(|(from, span)| {
                if plausible_email(&from) {
                    Some(from)
                } else {
                    self.error(
                        span,
                        format!("`from` in [smtp]: `{from}` is not an email address"),
                    );
                    None
                }
            });
        let starttls = self.value::<bool>(s, "starttls").is_none_or(|(v, _)| v);
        let port = match self.value::<u16>(s, "port") {
            Some((0, span)) => {
                self.error(span, "`port` in [smtp]: 0 is not a port".to_owned());
                None
            }
            Some((p, _)) => Some(p),
            None => Some(if starttls { 587 } else { 25 }),
        };
        let username = self.value::<String>(s, "username");
        let password = self.value::<String>(s, "password");
        match (&username, &password) {
            (Some((_, span)), None) => self.error(
                span.clone(),
                "`username` in [smtp] needs `password` too".to_owned(),
            ),
            (None, Some((_, span))) => self.error(
                span.clone(),
                "`password` in [smtp] needs `username` too".to_owned(),
            ),
            _ => {}
        }
        let subject = self.template(s, "subject", DEFAULT_EMAIL_SUBJECT);
        let body = self.template(s, "body", DEFAULT_EMAIL_BODY);
        Some(SmtpConfig {
            host: host?,
            port: port?,
            from: from?,
            username: username.map(|(v, _)| v),
            password: password.map(|(v, _)| v),
            starttls,
            subject: subject?,
            body: body?,
        })
    }

    /// An email template; its placeholders are checked now so a typo is
    /// found by `voxmail check`, not by the first caller.
    fn template(&mut self, s: &Section<'_, '_>, key: &str, default: &str) -> Option<String> {
        let Some((text, span)) = self.value::<String>(s, key) else {
            // Absent: the default. Wrong type: reported, and the section
            // is unusable.
            return s.get(key).is_none().then(|| default.to_owned());
        };
        if key == "subject" && text.contains(['\r', '\n']) {
            self.error(span, "`subject` in [smtp]: must be one line".to_owned());
            return None;
        }
        match super::render_template(&text, |name| {
            EMAIL_PLACEHOLDERS.contains(&name).then(String::new)
        }) {
            Ok(_) => Some(text),
            Err(e) => {
                self.error(span, format!("`{key}` in [smtp]: {e}"));
                None
            }
        }
    }

    fn mwi(&mut self, s: &Section<'_, '_>) -> MwiConfig {
        let d = MwiConfig::default();
        let realm = match self.value::<String>(s, "realm") {
            Some((realm, span)) => {
                let ok = !realm.is_empty()
                    && realm.len() <= 64
                    && realm
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
                if ok {
                    realm
                } else {
                    self.error(
                        span,
                        format!(
                            "`realm` in [mwi]: `{}` is not a realm, expected 1 to 64 printable \
                             ASCII characters without spaces, quotes or backslashes",
                            realm.escape_debug()
                        ),
                    );
                    d.realm.clone()
                }
            }
            None => d.realm.clone(),
        };
        MwiConfig {
            unsolicited: self
                .value::<bool>(s, "unsolicited")
                .map_or(d.unsolicited, |(v, _)| v),
            realm,
            digest_algorithms: self.digest_algorithms(s),
            sip_passwords: d.sip_passwords,
        }
    }

    /// `digest_algorithms` in [mwi]: what the registrar offers, most
    /// preferred first; each entry is checked at its own position.
    fn digest_algorithms(&mut self, s: &Section<'_, '_>) -> Vec<DigestAlgorithm> {
        let default = DigestAlgorithm::DEFAULT.to_vec();
        let Some(value) = s.get("digest_algorithms") else {
            return default;
        };
        let expected = one_of(&DigestAlgorithm::ALL.map(DigestAlgorithm::name));
        let DeValue::Array(entries) = value.get_ref() else {
            self.error(
                value.span(),
                format!(
                    "`digest_algorithms` in [mwi] must be an array like [\"MD5\", \"SHA-256\"], \
                     found {}",
                    value.get_ref().type_str()
                ),
            );
            return default;
        };
        if entries.is_empty() {
            self.error(
                value.span(),
                format!(
                    "`digest_algorithms` in [mwi] is empty: no phone could register, \
                     expected one or more of {expected}"
                ),
            );
            return default;
        }
        let mut out: Vec<DigestAlgorithm> = Vec::new();
        for entry in entries.iter() {
            let DeValue::String(name) = entry.get_ref() else {
                self.error(
                    entry.span(),
                    format!(
                        "`digest_algorithms` in [mwi]: expected a string, found {}",
                        entry.get_ref().type_str()
                    ),
                );
                continue;
            };
            match DigestAlgorithm::from_name(name) {
                None => self.error(
                    entry.span(),
                    format!(
                        "`digest_algorithms` in [mwi]: `{}` is not a supported digest \
                         algorithm, expected one of {expected}",
                        name.escape_debug()
                    ),
                ),
                Some(a) if out.contains(&a) => self.error(
                    entry.span(),
                    format!("`digest_algorithms` in [mwi]: `{a}` is listed twice"),
                ),
                Some(a) => out.push(a),
            }
        }
        if out.is_empty() { default } else { out }
    }

    /// `sip_password` of each valid `[[mailbox]]`, read after the boxes
    /// themselves (its unknown-key check is theirs).
    fn sip_passwords(
        &mut self,
        root: &DeTable<'_>,
        mailboxes: &[MailboxConfig],
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(DeValue::Array(entries)) = root.get("mailbox").map(|v| v.get_ref()) else {
            return out;
        };
        for entry in entries.iter() {
            let DeValue::Table(table) = entry.get_ref() else {
                continue;
            };
            let s = Section {
                name: "[[mailbox]]",
                table,
            };
            if s.get("sip_password").is_none() {
                continue;
            }
            let Some((password, span)) =
                self.required_string(&s, "sip_password", &entry.span(), "\"<a password>\"")
            else {
                continue;
            };
            let ok = (8..=128).contains(&password.chars().count())
                && !password.chars().any(char::is_control);
            if !ok {
                // Not echoing the password: config errors end up in logs.
                self.error(
                    span,
                    "`sip_password` in [[mailbox]]: expected 8 to 128 characters, \
                     no control characters"
                        .to_owned(),
                );
                continue;
            }
            // Boxes that failed their own checks were reported already.
            let number = s.get("number").and_then(|v| match v.get_ref() {
                DeValue::String(n) => Some(n.to_string()),
                _ => None,
            });
            if let Some(number) = number
                && mailboxes.iter().any(|m| m.number == number)
            {
                out.entry(number).or_insert(password);
            }
        }
        out
    }

    fn webhooks(&mut self, root: &DeTable<'_>) -> Vec<WebhookConfig> {
        let Some(value) = root.get("webhook") else {
            return Vec::new();
        };
        let DeValue::Array(entries) = value.get_ref() else {
            self.error(
                value.span(),
                format!(
                    "`webhook` must be an array of tables, write [[webhook]] \
                     for each one, found {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        let mut hooks = Vec::new();
        for entry in entries.iter() {
            let DeValue::Table(table) = entry.get_ref() else {
                self.error(
                    entry.span(),
                    format!(
                        "each `webhook` must be a table, found {}",
                        entry.get_ref().type_str()
                    ),
                );
                continue;
            };
            let section = Section {
                name: "[[webhook]]",
                table,
            };
            self.unknown_keys(&section, WEBHOOK_KEYS);
            let url = self
                .required_string(
                    &section,
                    "url",
                    &entry.span(),
                    "\"https://example.com/hook\"",
                )
                .and_then(|(url, span)| {
                    let ok = reqwest::Url::parse(&url).is_ok_and(|u| {
                        matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                    });
                    if ok {
                        Some(url)
                    } else {
                        self.error(
                            span,
                            format!("`url` in [[webhook]]: `{url}` is not an http or https URL"),
                        );
                        None
                    }
                });
            let secret = self
                .required_string(&section, "secret", &entry.span(), "\"<a shared secret>\"")
                .and_then(|(secret, span)| {
                    if secret.is_empty() {
                        self.error(span, "`secret` in [[webhook]] is empty".to_owned());
                        None
                    } else {
                        Some(secret)
                    }
                });
            if let (Some(url), Some(secret)) = (url, secret) {
                hooks.push(WebhookConfig { url, secret });
            }
        }
        hooks
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

/// Deliberately loose: the mail server is the real judge.
fn plausible_email(email: &str) -> bool {
    email
        .split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && !host.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `text` looks like the Argon2id PHC string a PIN is kept as.
pub fn is_pin_hash(text: &str) -> bool {
    text.starts_with("$argon2id$")
        && text.len() <= 256
        && text.bytes().all(|b| b.is_ascii_graphic())
}

pub(crate) fn valid_mailbox_number(number: &str) -> bool {
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
