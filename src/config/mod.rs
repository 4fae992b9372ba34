//! Typed configuration, checked once as a whole.
//!
//! `config.toml` is parsed into the structs below by [`Config::parse`], which
//! reports every problem it finds at once (syntax, unknown keys, wrong types,
//! bad values), each with the file, line and column of the offending text, so
//! `voxmail check` can list them all and a failed reload can keep the running
//! config. Every key has a default; only mailboxes need their number and PIN.

mod check;
pub mod mailbox_file;
pub mod network;
pub(crate) mod source;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::sip::registrar::DigestAlgorithm;

pub use check::is_pin_hash;
pub use mailbox_file::{MAILBOX_FILE_SECTION, parse_mailbox_file, render_mailbox_file};
pub use network::Network;

/// The shipped `config.toml`, used when `voxmail run` gets no `--config`.
pub const EMBEDDED_CONFIG: &str = include_str!("../../config.toml");

/// Languages we have prompts for; a box or the default must be one of them.
pub const LANGUAGES: &[&str] = &["en", "fr", "es", "de"];

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub sip: SipConfig,
    pub rtp: RtpConfig,
    pub storage: StorageConfig,
    pub prompts: PromptConfig,
    pub voicemail: VoicemailConfig,
    pub login: LoginConfig,
    /// `[[mailbox]]` entries in file order; numbers are unique.
    pub mailboxes: Vec<MailboxConfig>,
    pub http: HttpConfig,
    /// `[smtp]`; `None` when absent (no email is sent).
    pub smtp: Option<SmtpConfig>,
    /// `[[webhook]]` entries in file order.
    pub webhooks: Vec<WebhookConfig>,
    /// `[mwi]`, and the `sip_password` of each `[[mailbox]]`.
    pub mwi: MwiConfig,
    /// Finds a box by number without a scan (see [`Config::mailbox`]).
    pub mailbox_index: MailboxIndex,
}

/// `[[mailbox]]` numbers → positions in [`Config::mailboxes`], built on the
/// first lookup: several lookups per call over thousands of boxes were a
/// scan each, and so was every miss (a caller who has no box is asked about
/// on each call). Not configuration: it compares equal to any other, and a
/// clone starts empty, so code that edits a config's boxes edits a fresh
/// clone (as reloads build a fresh config). A position found is still
/// checked, so an edit after a lookup gets a slower answer, never a wrong
/// box; debug builds also check each miss against a scan.
#[derive(Debug, Default)]
pub struct MailboxIndex(OnceLock<HashMap<String, usize>>);

impl Clone for MailboxIndex {
    fn clone(&self) -> Self {
        MailboxIndex::default()
    }
}

impl PartialEq for MailboxIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `[sip]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SipConfig {
    /// UDP and TCP listen here.
    pub listen: SocketAddr,
    /// Written into SDP and Contact when the local address is a wildcard or
    /// behind NAT.
    pub public_address: Option<IpAddr>,
    pub user_agent: String,
    /// Ring (180) this long before answering; 0 answers at once.
    pub answer_delay_ms: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5060),
            public_address: None,
            user_agent: "voxmail".to_owned(),
            answer_delay_ms: 0,
        }
    }
}

/// `[rtp]`: inclusive port range, one port per call, and the scheduling
/// of the media threads.
#[derive(Debug, Clone, PartialEq)]
pub struct RtpConfig {
    pub port_min: u16,
    pub port_max: u16,
    /// SCHED_FIFO priority (1-99) of the media threads, 0 for none. Best
    /// effort: without CAP_SYS_NICE or an RLIMIT_RTPRIO that allows it they
    /// fall back to nice -10, then to the default.
    pub realtime_priority: u8,
    /// Hang up a call after this many seconds without RTP from a far end
    /// that should be sending (not on hold); 0 never does.
    pub timeout_seconds: u32,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            port_min: 20000,
            port_max: 29999,
            realtime_priority: 10,
            timeout_seconds: 300,
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// Relative paths are relative to the working directory.
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
        }
    }
}

/// `[prompts]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptConfig {
    pub dir: PathBuf,
    /// One of [`LANGUAGES`]; used by boxes without their own language.
    pub default_language: String,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            dir: PathBuf::from("prompts"),
            default_language: "en".to_owned(),
        }
    }
}

/// `[voicemail]`: recording limits, and how the phone menus move on.
#[derive(Debug, Clone, PartialEq)]
pub struct VoicemailConfig {
    /// 1..=3600.
    pub max_message_seconds: u32,
    /// Shorter messages are discarded; 0 <= min < max.
    pub min_message_seconds: f64,
    /// 0 disables the silence timeout.
    pub silence_timeout_seconds: u32,
    /// Mean absolute 16-bit sample level under which a frame is silence.
    pub silence_threshold: u16,
    /// In the retrieval menus, after `7` marks a message deleted or `9`
    /// saves it, play the next message (or say there are no more), as
    /// Asterisk's `nextaftercmd=yes`; `false` stays on the message. Default
    /// true, as in Asterisk's sample voicemail.conf.
    pub next_after_command: bool,
    /// In the retrieval menus, say each message's envelope (when it came,
    /// from whom, how long) before playing it, as Asterisk's `envelope=yes`
    /// and FreeSWITCH's date announcement do by default; key `3` says it
    /// on demand either way.
    pub envelope: bool,
}

impl Default for VoicemailConfig {
    fn default() -> Self {
        VoicemailConfig {
            max_message_seconds: 180,
            min_message_seconds: 1.0,
            silence_timeout_seconds: 10,
            silence_threshold: 200,
            next_after_command: true,
            envelope: true,
        }
    }
}

/// `[login]`: logging in to a box by phone.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginConfig {
    /// Consecutive wrong PINs, across calls, that lock a box (0: never).
    pub lockout_failures: u32,
    /// How long a locked box stays locked; 1..=10080 (a week).
    pub lockout_minutes: u32,
    /// Calls from these networks are trusted to name their caller: on
    /// `*98`, a box with `ask_password = false` whose number is the caller
    /// id skips the PIN, as for its own registered phone. Only for
    /// networks whose caller ids you trust (a PBX, a LAN), never the
    /// internet: a From header is easy to forge.
    pub trusted_networks: Vec<Network>,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            lockout_failures: 5,
            lockout_minutes: 15,
            trusted_networks: Vec::new(),
        }
    }
}

/// One `[[mailbox]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxConfig {
    /// 1-32 characters of `[0-9A-Za-z_-]`, so it is safe as a directory name.
    pub number: String,
    /// 4-12 digits.
    pub pin: String,
    /// Display name; empty when not given.
    pub name: String,
    /// One of [`LANGUAGES`]; `None` means the prompts' default.
    pub language: Option<String>,
    pub email: Option<String>,
    /// Attach the message's audio to the notification email (default true).
    pub attach_audio: bool,
    /// Remove the message once its email was sent (default false; needs
    /// `email`).
    pub delete_after_email: bool,
    /// IANA time zone name for the dates this box's owner reads in emails
    /// and hears by phone; "UTC" by default (there is no global zone).
    pub timezone: String,
    /// false: `*98` from the box's own registered (digest-authenticated)
    /// phone skips the PIN, like Wazo's option; `*99` always asks.
    pub ask_password: bool,
    /// Most messages kept in inbox + old (saved ones do not count); a
    /// deposit into a full box is refused. `None`: no limit of its own.
    pub max_messages: Option<u32>,
    /// Longest message recorded into this box, in seconds; `None`:
    /// `[voicemail] max_message_seconds`.
    pub max_message_seconds: Option<u32>,
    /// A shared (global) box: each of `members` may read and manage it
    /// with their own box's credentials (Wazo's `global` access type).
    pub shared: bool,
    /// The boxes whose owners share this one (only with `shared`).
    pub members: Vec<String>,
    /// Shared box: each member has their own read state, so a message one
    /// member heard stays new for the others (default false: one state).
    pub per_member_read: bool,
    /// How messages are kept: `wav` (default), `mp3` or `wav+mp3` (key
    /// `format`); MP3 needs the `mp3` cargo feature.
    pub storage_format: crate::audio::StorageFormat,
    /// The audio attached to notification emails (key `attach_format`);
    /// by default the box's first stored format, so nothing is transcoded.
    pub attach_format: crate::audio::AudioFormat,
}

impl Default for MailboxConfig {
    /// A box with every optional key at its default; `number` and `pin`
    /// are empty and must be set.
    fn default() -> Self {
        MailboxConfig {
            number: String::new(),
            pin: String::new(),
            name: String::new(),
            language: None,
            email: None,
            attach_audio: true,
            delete_after_email: false,
            timezone: "UTC".to_owned(),
            ask_password: true,
            max_messages: None,
            max_message_seconds: None,
            shared: false,
            members: Vec::new(),
            per_member_read: false,
            storage_format: crate::audio::StorageFormat::Wav,
            attach_format: crate::audio::AudioFormat::Wav,
        }
    }
}

impl MailboxConfig {
    /// Whether `member`'s owner may use this box: the box itself, or a
    /// member of a shared box.
    pub fn admits(&self, member: &str) -> bool {
        self.number == member || (self.shared && self.members.iter().any(|m| m == member))
    }

    /// The zone `timezone` names. Config checking refuses an unknown name,
    /// so the UTC fallback only catches a box built by hand (or a system
    /// time zone database that lost the zone since).
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.timezone).unwrap_or_else(|e| {
            tracing::warn!(mailbox = %self.number, timezone = %self.timezone, error = %e, "unknown time zone; using UTC");
            jiff::tz::TimeZone::UTC
        })
    }
}

/// `[http]`: the HTTP API, `/metrics` and the web inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Bearer tokens accepted by `/api/v1`; none means only web-inbox
    /// sessions (box + PIN) can use the API.
    pub tokens: Vec<ApiToken>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            tokens: Vec::new(),
        }
    }
}

/// Shortest API token accepted, so a token cannot be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// One `tokens` entry of `[http]`.
#[derive(Clone, PartialEq)]
pub struct ApiToken {
    /// 16 or more printable ASCII characters, no spaces.
    pub token: String,
    pub scope: TokenScope,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Configs get logged; tokens must not.
        f.debug_struct("ApiToken")
            .field("token", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

/// What an API token may touch.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenScope {
    /// Every mailbox.
    Admin,
    /// Only these (configured) mailbox numbers.
    Mailboxes(Vec<String>),
}

/// `[smtp]`: where notification emails go.
#[derive(Clone, PartialEq)]
pub struct SmtpConfig {
    pub host: String,
    /// Default 587 with STARTTLS, 25 without.
    pub port: u16,
    /// The sender address.
    pub from: String,
    /// Login, when both are set.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Require STARTTLS (default true). `false` sends in clear text, for a
    /// local relay.
    pub starttls: bool,
    /// Templates; see [`EMAIL_PLACEHOLDERS`].
    pub subject: String,
    pub body: String,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("starttls", &self.starttls)
            .field("subject", &self.subject)
            .field("body", &self.body)
            .finish()
    }
}

/// The names a `subject` or `body` template may use, as `{name}`; `{{` and
/// `}}` are literal braces.
pub const EMAIL_PLACEHOLDERS: &[&str] = &[
    "mailbox",
    "name",
    "caller",
    "caller_name",
    "called",
    "duration",
    "date",
    "id",
];

pub const DEFAULT_EMAIL_SUBJECT: &str = "New voicemail from {caller} in mailbox {mailbox}";
pub const DEFAULT_EMAIL_BODY: &str = "Hello {name},\n\n\
You have a new voicemail message in mailbox {mailbox}.\n\n\
From:     {caller_name} <{caller}>\n\
Duration: {duration}\n\
Date:     {date}\n\
Message:  {id}\n";

/// Fills `{name}` placeholders from `value`; `{{` and `}}` are literal
/// braces. Errors name the first unknown placeholder or unbalanced brace.
pub fn render_template(
    template: &str,
    mut value: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err("unmatched `}` (write `}}` for a literal brace)".to_owned());
        } else {
            let Some(end) = tail.find('}') else {
                return Err("unclosed `{` (write `{{` for a literal brace)".to_owned());
            };
            let name = &tail[1..end];
            match value(name) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(format!(
                        "unknown placeholder `{{{name}}}`, expected one of {}",
                        EMAIL_PLACEHOLDERS
                            .iter()
                            .map(|p| format!("`{{{p}}}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One `[[webhook]]`: every event is POSTed here as JSON, signed with
/// `secret` (`X-Voxmail-Signature: sha256=<hex HMAC of the body>`).
#[derive(Clone, PartialEq)]
pub struct WebhookConfig {
    /// An http or https URL.
    pub url: String,
    pub secret: String,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// `[mwi]`: message-waiting lamps, and the registrar phones use to get them.
/// The registrar's digest settings (realm, algorithms) live here because
/// it exists for the lamps: voxmail authenticates nothing else over SIP.
#[derive(Clone, PartialEq)]
pub struct MwiConfig {
    /// Also NOTIFY registered contacts that did not subscribe (default
    /// false).
    pub unsolicited: bool,
    /// The digest realm the registrar challenges with (default "voxmail").
    pub realm: String,
    /// Digest algorithms the registrar offers, most preferred first
    /// (default MD5 then SHA-256, see [`DigestAlgorithm::DEFAULT`]).
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// SIP users who may REGISTER (and must authenticate to SUBSCRIBE to
    /// their box): mailbox number → the `sip_password` of that
    /// `[[mailbox]]`.
    pub sip_passwords: BTreeMap<String, String>,
}

impl Default for MwiConfig {
    fn default() -> Self {
        MwiConfig {
            unsolicited: false,
            realm: "voxmail".to_owned(),
            digest_algorithms: DigestAlgorithm::DEFAULT.to_vec(),
            sip_passwords: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for MwiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MwiConfig")
            .field("unsolicited", &self.unsolicited)
            .field("realm", &self.realm)
            .field("digest_algorithms", &self.digest_algorithms)
            .field("sip_users", &self.sip_passwords.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One problem in a config file. `line` and `column` are 1-based; line 0
/// means the problem is with the file as a whole (e.g. it cannot be read).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
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

impl std::error::Error for ConfigError {}

/// Every problem found in one file, in file order; never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Parse and check `text`; `file` is only used to name it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        check::parse(text, file)
    }

    /// Read and parse a file. An unreadable file is one error on line 0.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &file),
            Err(e) => Err(ConfigErrors(vec![ConfigError {
                file,
                line: 0,
                column: 0,
                message: format!("cannot read config: {e}"),
            }])),
        }
    }

    /// The configuration shipped in the binary.
    pub fn embedded() -> Config {
        // A unit test parses EMBEDDED_CONFIG, so this cannot fail at runtime.
        Config::parse(EMBEDDED_CONFIG, "<embedded config.toml>")
            .expect("embedded config.toml is valid")
    }

    /// The mailbox with this number, if configured.
    pub fn mailbox(&self, number: &str) -> Option<&MailboxConfig> {
        let index = self.mailbox_index.0.get_or_init(|| {
            let mut index = HashMap::with_capacity(self.mailboxes.len());
            for (i, m) in self.mailboxes.iter().enumerate() {
                // Numbers are unique; should one repeat, the first wins, as in a scan.
                index.entry(m.number.clone()).or_insert(i);
            }
            index
        });
        match index.get(number) {
            Some(&i) => self
                .mailboxes
                .get(i)
                .filter(|m| m.number == number)
                .or_else(|| self.mailboxes.iter().find(|m| m.number == number)),
            None => {
                debug_assert!(
                    !self.mailboxes.iter().any(|m| m.number == number),
                    "mailboxes edited after the index was built; edit a clone"
                );
                None
            }
        }
    }

    /// The language prompts for this box are played in.
    pub fn mailbox_language<'a>(&'a self, mailbox: &'a MailboxConfig) -> &'a str {
        mailbox
            .language
            .as_deref()
            .unwrap_or(&self.prompts.default_language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, column, message) of every error, in order.
    fn errors(text: &str) -> Vec<(usize, usize, String)> {
        match Config::parse(text, "test.toml") {
            Ok(c) => panic!("expected errors, parsed {c:?}"),
            Err(ConfigErrors(errs)) => {
                assert!(errs.iter().all(|e| e.file == "test.toml"));
                errs.into_iter()
                    .map(|e| (e.line, e.column, e.message))
                    .collect()
            }
        }
    }

    /// The only error's line, with a check on its message.
    fn one_error(text: &str, needle: &str) -> usize {
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].2.contains(needle),
            "{:?} lacks {needle:?}",
            errs[0].2
        );
        errs[0].0
    }

    fn ok(text: &str) -> Config {
        Config::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn storage_and_attach_formats() {
        use crate::audio::{AudioFormat, StorageFormat};
        let b = |extra: &str| format!("[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\n{extra}");
        let c = ok(&b(""));
        assert_eq!(c.mailboxes[0].storage_format, StorageFormat::Wav);
        assert_eq!(c.mailboxes[0].attach_format, AudioFormat::Wav);
        assert_eq!(
            one_error(
                &b("format = \"ogg\"\n"),
                "expected \"wav\", \"mp3\" or \"wav+mp3\""
            ),
            4
        );
        assert_eq!(
            one_error(
                &b("attach_format = \"flac\"\n"),
                "expected \"wav\" or \"mp3\""
            ),
            4
        );
        if cfg!(feature = "mp3") {
            let c = ok(&b("format = \"mp3\"\n"));
            assert_eq!(c.mailboxes[0].storage_format, StorageFormat::Mp3);
            // Attach what is kept unless told otherwise.
            assert_eq!(c.mailboxes[0].attach_format, AudioFormat::Mp3);
            let c = ok(&b("format = \"wav+mp3\"\nattach_format = \"mp3\"\n"));
            assert_eq!(c.mailboxes[0].storage_format, StorageFormat::WavMp3);
            assert_eq!(c.mailboxes[0].attach_format, AudioFormat::Mp3);
        } else {
            assert_eq!(
                one_error(&b("format = \"mp3\"\n"), "`mp3` cargo feature"),
                4
            );
            assert_eq!(
                one_error(&b("attach_format = \"mp3\"\n"), "`mp3` cargo feature"),
                4
            );
        }
    }

    #[test]
    fn a_box_is_found_by_number_and_an_edited_clone_indexes_afresh() {
        let c = Config::embedded();
        let first = c.mailboxes[0].number.clone();
        let second = c.mailboxes[1].number.clone();
        assert_eq!(c.mailbox(&second).unwrap().number, second);
        assert!(c.mailbox("no-such-box").is_none());
        // A clone's boxes edited after the original's index was built: the
        // clone builds its own index.
        let mut edited = c.clone();
        let mut added = edited.mailboxes[0].clone();
        added.number = "4242".into();
        edited.mailboxes.push(added);
        edited.mailboxes.remove(0);
        assert!(edited.mailbox(&first).is_none());
        assert_eq!(edited.mailbox(&second).unwrap().number, second);
        assert_eq!(edited.mailbox("4242").unwrap().number, "4242");
        assert!(c.mailbox("4242").is_none());
        // A hit whose position moved (edited after the lookup) is still right.
        let mut moved = c.clone();
        assert_eq!(moved.mailbox(&second).unwrap().number, second);
        moved.mailboxes.remove(0);
        assert_eq!(moved.mailbox(&second).unwrap().number, second);
        let copy = edited.clone();
        assert_eq!(copy, edited);
        assert_eq!(copy.mailbox("4242").unwrap().number, "4242");
    }

    #[test]
    fn login_lockout_and_trusted_networks() {
        let d = ok("");
        assert_eq!(d.login, LoginConfig::default());
        assert_eq!((d.login.lockout_failures, d.login.lockout_minutes), (5, 15));
        let c = ok("[login]\nlockout_failures = 0\nlockout_minutes = 60\n\
                    trusted_networks = [\"192.168.1.0/24\", \"10.1.2.3\", \"2001:db8::/32\"]\n");
        assert_eq!(c.login.lockout_failures, 0);
        assert_eq!(c.login.lockout_minutes, 60);
        assert_eq!(c.login.trusted_networks.len(), 3);
        assert!(c.login.trusted_networks[0].contains("192.168.1.9".parse().unwrap()));
        assert_eq!(
            one_error("[login]\nlockout_minutes = 0\n", "expected 1 to 10080"),
            2
        );
        one_error("[login]\nlockout_minutes = 20000\n", "out of range");
        one_error("[login]\nlockout_failures = -1\n", "lockout_failures");
        assert_eq!(
            one_error(
                "[login]\ntrusted_networks = [\n  \"10.0.0.0/8\",\n  \"10.0.0.1/8\",\n]\n",
                "write 10.0.0.0/8"
            ),
            4
        );
        one_error(
            "[login]\ntrusted_networks = \"10.0.0.0/8\"\n",
            "must be an array",
        );
        one_error("[login]\ntrusted_networks = [8]\n", "expected a string");
        one_error(
            "[login]\ntrusted_networks = [\"lan\"]\n",
            "not an IP address",
        );
        one_error("[login]\ntrusted = true\n", "trusted");
    }

    #[test]
    fn embedded_config_parses_with_its_mailboxes() {
        let c = Config::embedded();
        assert_eq!(c.sip.listen, "0.0.0.0:5060".parse().unwrap());
        assert_eq!(c.sip.public_address, None);
        assert_eq!(c.sip.user_agent, "voxmail");
        assert_eq!(c.sip.answer_delay_ms, 0);
        assert_eq!((c.rtp.port_min, c.rtp.port_max), (20000, 29999));
        assert_eq!(c.storage.data_dir, PathBuf::from("data"));
        assert_eq!(c.prompts.dir, PathBuf::from("prompts"));
        assert_eq!(c.prompts.default_language, "en");
        assert_eq!(c.voicemail, VoicemailConfig::default());
        assert_eq!(c.mailboxes.len(), 2);
        let alice = c.mailbox("1001").unwrap();
        assert_eq!(alice.pin, "1234");
        assert_eq!(alice.name, "Alice Martin");
        assert_eq!(c.mailbox_language(alice), "en");
        let bob = c.mailbox("1002").unwrap();
        assert_eq!(bob.pin, "5678");
        assert_eq!(c.mailbox_language(bob), "fr");
        assert!(c.mailbox("1003").is_none());
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(ok(""), Config::default());
        assert_eq!(ok("# nothing\n"), Config::default());
    }

    #[test]
    fn values_are_read() {
        let c = ok(r#"
[sip]
listen = "[::]:5080"
public_address = "203.0.113.10"
user_agent = "vm"
answer_delay_ms = 2500
[rtp]
port_min = 40000
port_max = 40001
realtime_priority = 0
timeout_seconds = 0
[storage]
data_dir = "/var/lib/voxmail"
[prompts]
dir = "/usr/share/voxmail/prompts"
default_language = "de"
[voicemail]
max_message_seconds = 3600
min_message_seconds = 0
silence_timeout_seconds = 0
silence_threshold = 0
[[mailbox]]
number = "sales_1-A"
pin = "000000000000"
email = "a@example.com"
"#);
        assert_eq!(c.sip.listen, "[::]:5080".parse().unwrap());
        assert_eq!(c.sip.public_address, Some("203.0.113.10".parse().unwrap()));
        assert_eq!(c.sip.user_agent, "vm");
        assert_eq!(c.sip.answer_delay_ms, 2500);
        assert_eq!((c.rtp.port_min, c.rtp.port_max), (40000, 40001));
        assert_eq!(c.rtp.realtime_priority, 0);
        assert_eq!(ok("").rtp.realtime_priority, 10);
        assert_eq!(c.rtp.timeout_seconds, 0);
        assert_eq!(ok("").rtp.timeout_seconds, 300);
        assert_eq!(
            one_error(
                "[rtp]\ntimeout_seconds = 90000\n",
                "`timeout_seconds` in [rtp]: 90000 is above 86400"
            ),
            2
        );
        assert_eq!(
            one_error(
                "[rtp]\nrealtime_priority = 100\n",
                "`realtime_priority` in [rtp]: 100 is above 99"
            ),
            2
        );
        assert_eq!(c.storage.data_dir, PathBuf::from("/var/lib/voxmail"));
        assert_eq!(c.prompts.default_language, "de");
        assert_eq!(c.voicemail.max_message_seconds, 3600);
        // An integer is fine where seconds may be fractional.
        assert_eq!(c.voicemail.min_message_seconds, 0.0);
        assert_eq!(c.voicemail.silence_timeout_seconds, 0);
        assert!(c.voicemail.next_after_command, "on by default");
        let b = c.mailbox("sales_1-A").unwrap();
        assert_eq!(b.pin, "000000000000");
        assert_eq!(b.name, "");
        assert_eq!(b.language, None);
        assert_eq!(c.mailbox_language(b), "de");
        assert_eq!(b.email.as_deref(), Some("a@example.com"));
    }

    #[test]
    fn inline_tables_work_too() {
        let c = ok(
            "sip = { listen = \"127.0.0.1:5070\" }\nmailbox = [{ number = \"7\", pin = \"1111\" }]\n",
        );
        assert_eq!(c.sip.listen.port(), 5070);
        assert_eq!(c.mailboxes[0].number, "7");
    }

    #[test]
    fn unknown_key_names_section_and_expected_keys() {
        let errs = errors("[sip]\nlisen = \"0.0.0.0:5060\"\n");
        assert_eq!(
            errs,
            [(
                2,
                1,
                "unknown key `lisen` in [sip], expected one of `listen`, `public_address`, \
                 `user_agent`, `answer_delay_ms`"
                    .to_owned()
            )]
        );
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\n\npine = 1\n",
                "`pine` in [[mailbox]]"
            ),
            5
        );
    }

    #[test]
    fn unknown_section() {
        assert_eq!(
            one_error("\n[spi]\nlisten = 1\n", "unknown section `spi`"),
            2
        );
    }

    #[test]
    fn bad_addresses() {
        let text = "[sip]\nlisten = \"0.0.0.0\"\npublic_address = \"example.com\"\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert_eq!((errs[0].0, errs[0].1), (2, 10));
        assert!(
            errs[0].2.contains("`0.0.0.0` is not a socket address"),
            "{}",
            errs[0].2
        );
        assert_eq!(errs[1].0, 3);
        assert!(
            errs[1].2.contains("`example.com` is not an IP address"),
            "{}",
            errs[1].2
        );
    }

    #[test]
    fn envelope_before_each_message() {
        assert!(ok("").voicemail.envelope, "on by default, as in Asterisk");
        assert!(!ok("[voicemail]\nenvelope = false\n").voicemail.envelope);
        assert_eq!(
            one_error("[voicemail]\nenvelope = \"yes\"\n", "envelope"),
            2
        );
    }

    #[test]
    fn next_after_command() {
        assert!(ok("").voicemail.next_after_command);
        assert!(
            ok("[voicemail]\nmax_message_seconds = 60\n")
                .voicemail
                .next_after_command
        );
        assert!(
            ok("[voicemail]\nnext_after_command = true\n")
                .voicemail
                .next_after_command
        );
        assert!(
            !ok("[voicemail]\nnext_after_command = false\n")
                .voicemail
                .next_after_command
        );
        assert_eq!(
            one_error(
                "[voicemail]\n\nnext_after_command = \"yes\"\n",
                "`next_after_command` in [voicemail]: invalid type"
            ),
            3
        );
        assert_eq!(
            one_error(
                "[voicemail]\nnext_after_command = 1\n",
                "next_after_command"
            ),
            2
        );
        let e = Config::parse("[voicemail]\nnext_after_command = \"no\"\n", "vm.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("vm.toml:2:"), "{e}");
        // A misspelling is an unknown key, at its line.
        assert_eq!(
            one_error(
                "[voicemail]\nnext_after_cmd = false\n",
                "unknown key `next_after_cmd` in [voicemail]"
            ),
            2
        );
    }

    #[test]
    fn wrong_types_keep_their_line() {
        assert_eq!(
            one_error(
                "[sip]\n\nlisten = 5060\n",
                "`listen` in [sip]: invalid type"
            ),
            3
        );
        assert_eq!(
            one_error(
                "[rtp]\nport_min = 20000\nport_max = 70000\n",
                "`port_max` in [rtp]"
            ),
            3
        );
        assert_eq!(
            one_error(
                "[voicemail]\nsilence_threshold = \"loud\"\n",
                "silence_threshold"
            ),
            2
        );
        assert_eq!(one_error("[storage]\ndata_dir = [\"a\"]\n", "data_dir"), 2);
        assert_eq!(one_error("\n\nsip = 3\n", "`sip` must be a table"), 3);
        assert_eq!(
            one_error("[mailbox]\nnumber = \"1\"\n", "array of tables"),
            1
        );
    }

    #[test]
    fn answer_delay_is_bounded() {
        ok("[sip]\nanswer_delay_ms = 60000\n");
        assert_eq!(
            one_error("[sip]\nanswer_delay_ms = 60001\n", "expected 0 to 60000"),
            2
        );
        assert_eq!(
            one_error("[sip]\nanswer_delay_ms = -1\n", "answer_delay_ms"),
            2
        );
    }

    #[test]
    fn rtp_port_range() {
        assert_eq!(
            one_error(
                "[rtp]\nport_min = 30000\nport_max = 20000\n",
                "greater than port_max"
            ),
            3
        );
        // Only port_min set, above the default max: blame port_min.
        assert_eq!(
            one_error("[rtp]\nport_min = 30000\n", "greater than port_max"),
            2
        );
        assert_eq!(
            one_error(
                "[rtp]\nport_min = 20000\nport_max = 20000\n",
                "fewer than 2 ports"
            ),
            3
        );
        assert_eq!(
            one_error("[rtp]\nport_min = 80\nport_max = 2000\n", "below 1024"),
            2
        );
        // Both problems at once are both reported.
        let errs = errors("[rtp]\nport_min = 1000\nport_max = 999\n");
        assert_eq!(
            errs.iter().map(|e| e.0).collect::<Vec<_>>(),
            [2, 3],
            "{errs:#?}"
        );
    }

    #[test]
    fn unknown_languages() {
        assert_eq!(
            one_error(
                "[prompts]\ndefault_language = \"it\"\n",
                "unknown language `it`, expected one of `en`, `fr`, `es`, `de`"
            ),
            2
        );
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\nlanguage = \"EN\"\n",
                "unknown language `EN`"
            ),
            4
        );
    }

    #[test]
    fn duplicate_mailbox_numbers() {
        let text = "[[mailbox]]\nnumber = \"1001\"\npin = \"1234\"\n\n[[mailbox]]\nnumber = \"1001\"\npin = \"4321\"\n";
        assert_eq!(
            one_error(
                text,
                "duplicate mailbox number `1001`, first defined on line 2"
            ),
            6
        );
    }

    #[test]
    fn bad_mailbox_numbers() {
        for bad in ["", "../etc", "a b", "1001/x", "ü1", &"9".repeat(33)] {
            let text = format!("[[mailbox]]\npin = \"1234\"\nnumber = \"{bad}\"\n");
            assert_eq!(one_error(&text, "is not a mailbox number"), 3, "{bad:?}");
        }
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = 1001\npin = \"1234\"\n",
                "must be a quoted string"
            ),
            2
        );
        ok(&format!(
            "[[mailbox]]\npin = \"1234\"\nnumber = \"{}\"\n",
            "9".repeat(32)
        ));
    }

    #[test]
    fn bad_pins() {
        for bad in ["123", "1234567890123", "12a4", " 1234", "١٢٣٤"] {
            let text = format!("[[mailbox]]\nnumber = \"1\"\n\npin = \"{bad}\"\n");
            let errs = errors(&text);
            assert_eq!(errs.len(), 1, "{bad:?}: {errs:#?}");
            assert_eq!(errs[0].0, 4, "{bad:?}");
            assert_eq!(errs[0].2, "`pin` in [[mailbox]]: expected 4 to 12 digits");
        }
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1\"\npin = 1234\n",
                "pin = \"1234\""
            ),
            3
        );
    }

    #[test]
    fn missing_required_mailbox_keys_point_at_the_header() {
        let text = "[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\n\n[[mailbox]]\nname = \"x\"\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs.iter().all(|e| e.0 == 5));
        assert!(errs[0].2.contains("missing `number`") || errs[1].2.contains("missing `number`"));
        assert!(errs.iter().any(|e| e.2.contains("missing `pin`")));
    }

    #[test]
    fn bad_email() {
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\nemail = \"nobody\"\n",
                "not an email address"
            ),
            4
        );
    }

    #[test]
    fn message_length_limits() {
        assert_eq!(
            one_error("[voicemail]\nmax_message_seconds = 0\n", "out of range"),
            2
        );
        assert_eq!(
            one_error(
                "[voicemail]\nmax_message_seconds = 3601\n",
                "expected 1 to 3600"
            ),
            2
        );
        assert_eq!(
            one_error(
                "[voicemail]\nmax_message_seconds = -5\n",
                "max_message_seconds"
            ),
            2
        );
        assert_eq!(
            one_error("[voicemail]\nmin_message_seconds = -0.5\n", "out of range"),
            2
        );
        assert_eq!(
            one_error("[voicemail]\nmin_message_seconds = nan\n", "out of range"),
            2
        );
        assert_eq!(
            one_error(
                "[voicemail]\nmax_message_seconds = 10\nmin_message_seconds = 10\n",
                "must be less than max_message_seconds (10)"
            ),
            3
        );
        // min compared against the default max when max is not set.
        assert_eq!(
            one_error("[voicemail]\nmin_message_seconds = 200\n", "(180)"),
            2
        );
        // max below the default min.
        assert_eq!(
            one_error(
                "[voicemail]\nmax_message_seconds = 1\n",
                "greater than min_message_seconds"
            ),
            2
        );
        // An invalid max is one error, not two.
        assert_eq!(
            errors("[voicemail]\nmax_message_seconds = 0\nmin_message_seconds = 5\n").len(),
            1
        );
    }

    #[test]
    fn syntax_errors_keep_their_line_and_do_not_hide_others() {
        let text = "[sip]\nlisten = \"0.0.0.0:5060\"\nuser_agent = voxmail\n\n[prompts]\ndefault_language = \"xx\"\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert_eq!(errs[0].0, 3);
        assert!(errs[0].2.contains("quoted"), "{}", errs[0].2);
        assert_eq!(errs[1].0, 6);
        assert!(errs[1].2.contains("unknown language"));

        let errs = errors("[sip]\nlisten = \"a\"\nlisten = \"b\"\n");
        assert!(
            errs.iter()
                .any(|e| e.0 == 3 && e.2.contains("duplicate key")),
            "{errs:#?}"
        );
    }

    #[test]
    fn many_errors_reported_together_in_file_order() {
        let text = "\
[sip]
lisen = \"0.0.0.0:5060\"
public_address = \"nope\"

[rtp]
port_min = 100

[prompts]
default_language = \"xx\"

[voicemail]
max_message_seconds = 0

[[mailbox]]
number = \"1001\"
pin = \"12\"

[[mailbox]]
number = \"1001\"
pin = \"1234\"
";
        let errs = errors(text);
        let lines: Vec<usize> = errs.iter().map(|e| e.0).collect();
        assert_eq!(lines, [2, 3, 6, 9, 12, 16, 19], "{errs:#?}");

        let shown = Config::parse(text, "voxmail.toml").unwrap_err().to_string();
        let shown: Vec<&str> = shown.lines().collect();
        assert_eq!(shown.len(), 7);
        assert!(
            shown[0].starts_with("voxmail.toml:2:1: unknown key `lisen`"),
            "{}",
            shown[0]
        );
        assert!(
            shown[6].starts_with("voxmail.toml:19:10: duplicate"),
            "{}",
            shown[6]
        );
    }

    #[test]
    fn load_reads_files_and_reports_unreadable_ones_on_line_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("voxmail.toml");
        std::fs::write(&path, EMBEDDED_CONFIG).unwrap();
        assert_eq!(Config::load(&path).unwrap(), Config::embedded());

        std::fs::write(&path, "[rtp]\nport_min = 1\n").unwrap();
        let errs = Config::load(&path).unwrap_err();
        assert_eq!(errs.0[0].file, path.display().to_string());
        assert_eq!(errs.0[0].line, 2);

        let missing = dir.path().join("absent.toml");
        let errs = Config::load(&missing).unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert_eq!((errs.0[0].line, errs.0[0].column), (0, 0));
        assert!(
            errs.to_string()
                .starts_with(&format!("{}: cannot read config", missing.display()))
        );
    }

    #[test]
    fn http_smtp_webhook_defaults() {
        let c = ok("[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\n");
        assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(c.http.tokens.is_empty());
        assert_eq!(c.smtp, None);
        assert!(c.webhooks.is_empty());
        let b = c.mailbox("1").unwrap();
        assert!(b.attach_audio);
        assert!(!b.delete_after_email);
        assert_eq!(b.timezone, "UTC");
        let c = ok("[smtp]\nhost = \"localhost\"\nfrom = \"vm@example.com\"\nstarttls = false\n");
        let smtp = c.smtp.unwrap();
        assert_eq!(smtp.port, 25);
        assert!(!smtp.starttls);
        assert_eq!(smtp.subject, DEFAULT_EMAIL_SUBJECT);
        assert_eq!(smtp.body, DEFAULT_EMAIL_BODY);
        let c = ok("[smtp]\nhost = \"mail.example.com\"\nfrom = \"vm@example.com\"\n");
        assert_eq!(c.smtp.unwrap().port, 587);
    }

    #[test]
    fn http_smtp_webhook_values_are_read() {
        let c = ok(r#"
[http]
listen = "0.0.0.0:9090"
tokens = [
  { token = "0123456789abcdef-admin", scope = "admin" },
  { token = "0123456789abcdef-alice", scope = ["1001"] },
]

[smtp]
host = "mail.example.com"
port = 2525
from = "voicemail@example.com"
username = "vm"
password = "s3cret"
starttls = true
subject = "Voicemail for {mailbox} from {caller}"
body = "{{literal}} {duration} {date}"

[[webhook]]
url = "https://hooks.example.com/voxmail"
secret = "shh"

[[webhook]]
url = "http://127.0.0.1:9000/x"
secret = "other"

[[mailbox]]
number = "1001"
pin = "1234"
email = "alice@example.com"
attach_audio = false
delete_after_email = true
timezone = "Europe/Brussels"
"#);
        assert_eq!(c.http.listen, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(c.http.tokens.len(), 2);
        assert_eq!(c.http.tokens[0].token, "0123456789abcdef-admin");
        assert_eq!(c.http.tokens[0].scope, TokenScope::Admin);
        assert_eq!(
            c.http.tokens[1].scope,
            TokenScope::Mailboxes(vec!["1001".to_owned()])
        );
        let smtp = c.smtp.as_ref().unwrap();
        assert_eq!(smtp.host, "mail.example.com");
        assert_eq!(smtp.port, 2525);
        assert_eq!(smtp.username.as_deref(), Some("vm"));
        assert_eq!(smtp.password.as_deref(), Some("s3cret"));
        assert!(smtp.starttls);
        assert_eq!(smtp.subject, "Voicemail for {mailbox} from {caller}");
        assert_eq!(c.webhooks.len(), 2);
        assert_eq!(c.webhooks[1].url, "http://127.0.0.1:9000/x");
        assert_eq!(c.webhooks[1].secret, "other");
        let b = c.mailbox("1001").unwrap();
        assert!(!b.attach_audio);
        assert!(b.delete_after_email);
        assert_eq!(b.timezone, "Europe/Brussels");
        // Secrets stay out of Debug output (configs get logged).
        let shown = format!("{c:?}");
        for secret in ["0123456789abcdef-admin", "s3cret", "shh"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // The [[table]] spelling of tokens works too.
        let c = ok("[[http.tokens]]\ntoken = \"0123456789abcdef\"\nscope = \"admin\"\n");
        assert_eq!(c.http.tokens[0].scope, TokenScope::Admin);
    }

    #[test]
    fn bad_http_sections() {
        assert_eq!(
            one_error("[http]\nlisten = \"localhost\"\n", "not a socket address"),
            2
        );
        assert_eq!(
            one_error("[http]\nport = 1\n", "unknown key `port` in [http]"),
            2
        );
        assert_eq!(
            one_error("[http]\ntokens = \"x\"\n", "must be an array of tables"),
            2
        );
        assert_eq!(
            one_error(
                "[http]\ntokens = [{ token = \"short\", scope = \"admin\" }]\n",
                "16 or more"
            ),
            2
        );
        // The token itself is not echoed.
        let errs =
            errors("[http]\ntokens = [{ token = \"has a space in it!\", scope = \"admin\" }]\n");
        assert!(!errs[0].2.contains("space in"), "{errs:?}");
        assert_eq!(
            one_error(
                "[http]\ntokens = [{ token = \"0123456789abcdef\", scope = \"root\" }]\n",
                "`root` is not a scope"
            ),
            2
        );
        assert_eq!(
            one_error(
                "[http]\ntokens = [{ token = \"0123456789abcdef\" }]\n",
                "missing `scope`"
            ),
            2
        );
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1001\"\npin = \"1234\"\n[http]\ntokens = [\n  { token = \"0123456789abcdef\", scope = [\"1001\", \"1009\"] },\n]\n",
                "`1009` is not a configured mailbox"
            ),
            6
        );
        assert_eq!(
            one_error(
                "[http]\ntokens = [{ token = \"0123456789abcdef\", scope = [] }]\n",
                "is empty"
            ),
            2
        );
        assert_eq!(
            one_error(
                "[http]\ntokens = [{ token = \"0123456789abcdef\", scope = \"admin\", x = 1 }]\n",
                "unknown key `x` in [http] tokens"
            ),
            2
        );
        assert_eq!(
            one_error(
                "[http]\ntokens = [\n{ token = \"0123456789abcdef\", scope = \"admin\" },\n{ token = \"0123456789abcdef\", scope = \"admin\" },\n]\n",
                "duplicate token, first defined on line 3"
            ),
            4
        );
    }

    #[test]
    fn bad_smtp_sections() {
        assert_eq!(
            one_error("\n[smtp]\nfrom = \"a@b.c\"\n", "[smtp] is missing `host`"),
            2
        );
        assert_eq!(
            one_error(
                "[smtp]\nhost = \"h\"\nfrom = \"nobody\"\n",
                "not an email address"
            ),
            3
        );
        assert_eq!(
            one_error(
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nport = 0\n",
                "0 is not a port"
            ),
            4
        );
        assert_eq!(
            one_error(
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\n",
                "needs `password`"
            ),
            4
        );
        assert_eq!(
            one_error(
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nsubject = \"From {callr}\"\n",
                "unknown placeholder `{callr}`"
            ),
            4
        );
        assert_eq!(
            one_error(
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nbody = \"oops {\"\n",
                "unclosed `{`"
            ),
            4
        );
        assert_eq!(
            one_error(
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nsubject = \"a\\nb\"\n",
                "one line"
            ),
            4
        );
        assert_eq!(
            one_error(
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\ntls = 1\n",
                "unknown key `tls`"
            ),
            4
        );
    }

    #[test]
    fn bad_webhooks() {
        assert_eq!(
            one_error(
                "[[webhook]]\nurl = \"ftp://x/y\"\nsecret = \"s\"\n",
                "not an http or https URL"
            ),
            2
        );
        assert_eq!(
            one_error("[[webhook]]\nurl = \"http://x/y\"\n", "missing `secret`"),
            1
        );
        assert_eq!(
            one_error(
                "[[webhook]]\nurl = \"http://x/y\"\nsecret = \"\"\n",
                "is empty"
            ),
            3
        );
        assert_eq!(one_error("webhook = 1\n", "array of tables"), 1);
    }

    #[test]
    fn bad_mailbox_notification_keys() {
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\ntimezone = \"Mars/Olympus\"\n",
                "unknown time zone `Mars/Olympus`"
            ),
            4
        );
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\ndelete_after_email = true\n",
                "needs `email`"
            ),
            4
        );
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\nattach_audio = \"yes\"\n",
                "attach_audio"
            ),
            4
        );
    }

    #[test]
    fn templates_render() {
        let v = |n: &str| (n == "a").then(|| "X".to_owned());
        assert_eq!(render_template("{a}-{{a}}-}}", v).unwrap(), "X-{a}-}");
        assert!(
            render_template("{b}", v)
                .unwrap_err()
                .contains("unknown placeholder `{b}`")
        );
        assert!(
            render_template("x } y", v)
                .unwrap_err()
                .contains("unmatched `}`")
        );
        assert!(render_template("{a", v).unwrap_err().contains("unclosed"));
        assert_eq!(render_template("é{a}ü", v).unwrap(), "éXü");
    }

    #[test]
    fn mwi_digest_algorithms() {
        use DigestAlgorithm::{Md5, Sha256};
        assert_eq!(ok("").mwi.digest_algorithms, [Md5, Sha256]);
        let c = ok("[mwi]\ndigest_algorithms = [\"SHA-256\", \"MD5\"]\n");
        assert_eq!(c.mwi.digest_algorithms, [Sha256, Md5]);
        assert!(format!("{:?}", c.mwi).contains("[Sha256, Md5]"));
        let c = ok("[mwi]\ndigest_algorithms = [\"md5\"]\n");
        assert_eq!(c.mwi.digest_algorithms, [Md5]);

        // Each bad entry at its own line and column.
        let errs = errors(
            "[mwi]\ndigest_algorithms = [\n  \"SHA-256\",\n  \"MD5-sess\",\n  \"sha-256\",\n  3,\n]\n",
        );
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert_eq!((errs[0].0, errs[0].1), (4, 3));
        let msg = &errs[0].2;
        assert!(
            msg.contains("`MD5-sess` is not a supported digest algorithm")
                && msg.contains("`MD5`, `SHA-256`"),
            "{errs:?}"
        );
        assert_eq!((errs[1].0, errs[1].1), (5, 3));
        assert!(errs[1].2.contains("`SHA-256` is listed twice"), "{errs:?}");
        assert_eq!((errs[2].0, errs[2].1), (6, 3));
        assert!(
            errs[2].2.contains("expected a string, found integer"),
            "{errs:?}"
        );

        assert_eq!(
            one_error(
                "[mwi]\nrealm = \"x\"\ndigest_algorithms = []\n",
                "`digest_algorithms` in [mwi] is empty"
            ),
            3
        );
        assert_eq!(
            one_error(
                "\n[mwi]\ndigest_algorithms = \"MD5\"\n",
                "must be an array like"
            ),
            3
        );
        assert_eq!(
            one_error(
                "[mwi]\ndigest_algorithms = [\"SHA-512-256\"]\n",
                "`SHA-512-256` is not a supported"
            ),
            2
        );
        assert_eq!(
            one_error(
                "[mwi]\ndigest_algorithms = [\"MD5\", \"md5\"]\n",
                "`MD5` is listed twice"
            ),
            2
        );
    }

    #[test]
    fn mwi_section_and_sip_passwords() {
        let c = ok("[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\n");
        assert!(!c.mwi.unsolicited);
        assert_eq!(c.mwi.realm, "voxmail");
        assert!(c.mwi.sip_passwords.is_empty());
        let c = ok(r#"
[mwi]
unsolicited = true
realm = "pbx.example.com"

[[mailbox]]
number = "1001"
pin = "1234"
sip_password = "correct horse"

[[mailbox]]
number = "1002"
pin = "5678"
"#);
        assert!(c.mwi.unsolicited);
        assert_eq!(c.mwi.realm, "pbx.example.com");
        assert_eq!(c.mwi.sip_passwords.len(), 1);
        assert_eq!(c.mwi.sip_passwords["1001"], "correct horse");
        // The password stays out of Debug output.
        assert!(!format!("{c:?}").contains("correct horse"));
        assert!(format!("{:?}", c.mwi).contains("\"1001\""));

        assert_eq!(
            one_error("[mwi]\nunsolicited = \"yes\"\n", "unsolicited"),
            2
        );
        assert_eq!(one_error("[mwi]\nrealm = \"a b\"\n", "is not a realm"), 2);
        assert_eq!(one_error("[mwi]\nrealm = \"\"\n", "is not a realm"), 2);
        assert_eq!(
            one_error("\n[mwi]\nlamp = 1\n", "unknown key `lamp` in [mwi]"),
            3
        );
        assert_eq!(one_error("mwi = 1\n", "must be a table"), 1);
        let short = "[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\nsip_password = \"hunter2\"\n";
        let errs = errors(short);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, 4);
        assert!(errs[0].2.contains("8 to 128 characters"), "{errs:?}");
        assert!(!errs[0].2.contains("hunter2"), "the password is not echoed");
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1\"\npin = \"1234\"\nsip_password = 12345678\n",
                "must be a quoted string"
            ),
            4
        );
        // A box that failed its own checks contributes no SIP user, and
        // only its own error is reported.
        assert_eq!(
            one_error(
                "[[mailbox]]\nnumber = \"1\"\npin = \"12\"\nsip_password = \"long enough\"\n",
                "4 to 12 digits"
            ),
            3
        );
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for text in [
            "[",
            "[[mailbox]]\n[[mailbox]",
            "a = \"\\u{0}",
            "\u{feff}[sip]",
            "[sip]\nlisten = \"\n",
            "x=1\r\ny=",
            "[[mailbox]]\nnumber=\"é\"\npin=\"1234\"",
        ] {
            let _ = Config::parse(text, "t");
        }
        let errs = errors("[sip]\nlisten = \"0.0.0.0:5060\"\nbad = [1,\n[rtp]\n");
        assert!(!errs.is_empty());
    }
}
