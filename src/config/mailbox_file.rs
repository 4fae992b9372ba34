//! `data/mailboxes/<box>/mailbox.toml`: a box's settings kept by the store
//! beside its messages, written by the HTTP API.
//!
//! The file holds `[[mailbox]]` keys without the table header. For a box of
//! config.toml it is an overlay: each key it sets wins, every other key
//! keeps config.toml's value. A box created through the API exists only
//! there, so its file sets at least `pin_hash`. `number` is the directory's
//! name and may be omitted; `sip_password` stays in config.toml (the
//! registrar's users are read at start).
//!
//! Checking reuses the `[[mailbox]]` checker: the file's own text comes
//! first, so every error points at its line, followed by the base box's
//! values for the keys the file does not set.

use super::check::{self, is_pin_hash};
use super::{ConfigError, ConfigErrors, MailboxConfig};

/// The section name in messages about a mailbox file.
pub const MAILBOX_FILE_SECTION: &str = "mailbox.toml";

/// Keys a mailbox file may not set.
const FORBIDDEN: &[&str] = &["sip_password"];

/// The effective box `number`: `base` (its config.toml entry, if any) with
/// the keys of `text` (a mailbox.toml named `file`) on top.
pub fn parse_mailbox_file(
    text: &str,
    file: &str,
    number: &str,
    base: Option<&MailboxConfig>,
) -> Result<MailboxConfig, ConfigErrors> {
    let own = own_keys(text);
    let mut combined = String::with_capacity(text.len() + 256);
    combined.push_str(text);
    if !combined.ends_with('\n') && !combined.is_empty() {
        combined.push('\n');
    }
    if !own.iter().any(|k| k == "number") {
        push(&mut combined, "number", toml::Value::from(number));
    }
    if let Some(b) = base {
        render_keys(b, &own, &mut combined);
    }
    let m = check::parse_mailbox_table(&combined, file, MAILBOX_FILE_SECTION, FORBIDDEN)?;
    if m.number != number {
        return Err(ConfigErrors(vec![ConfigError {
            file: file.to_owned(),
            line: line_of(text, "number"),
            column: 1,
            message: format!(
                "`number` in {MAILBOX_FILE_SECTION} is `{}` but the file is mailbox {number}'s",
                m.number
            ),
        }]));
    }
    Ok(m)
}

/// The keys a mailbox file sets, as far as its text parses.
pub fn own_keys(text: &str) -> Vec<String> {
    match text.parse::<toml::Table>() {
        Ok(t) => t.keys().cloned().collect(),
        // A broken file: take each `key =` line, so base values are not
        // added twice and the real error is the one reported.
        Err(_) => text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .collect(),
    }
}

fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(key))
        .map_or(1, |i| i + 1)
}

fn push(out: &mut String, key: &str, value: toml::Value) {
    out.push_str(key);
    out.push_str(" = ");
    out.push_str(&value.to_string());
    out.push('\n');
}

/// `base`'s values, as `key = value` lines, for every key not in `skip`.
fn render_keys(b: &MailboxConfig, skip: &[String], out: &mut String) {
    let skipped = |k: &str| skip.iter().any(|s| s == k);
    // The PIN is one key or the other; whichever the file sets wins.
    if !skipped("pin") && !skipped("pin_hash") {
        let key = if is_pin_hash(&b.pin) {
            "pin_hash"
        } else {
            "pin"
        };
        push(out, key, b.pin.clone().into());
    }
    let mut put = |k: &str, v: toml::Value| {
        if !skipped(k) {
            push(out, k, v);
        }
    };
    put("name", b.name.clone().into());
    if let Some(l) = &b.language {
        put("language", l.clone().into());
    }
    if let Some(e) = &b.email {
        put("email", e.clone().into());
    }
    put("attach_audio", b.attach_audio.into());
    put("delete_after_email", b.delete_after_email.into());
    put("timezone", b.timezone.clone().into());
    put("ask_password", b.ask_password.into());
    if let Some(n) = b.max_messages {
        put("max_messages", i64::from(n).into());
    }
    if let Some(n) = b.max_message_seconds {
        put("max_message_seconds", i64::from(n).into());
    }
    put("format", b.storage_format.to_string().into());
    // Left out when it follows `format`, so a new `format` carries it along.
    if b.attach_format != b.storage_format.primary() {
        put("attach_format", b.attach_format.to_string().into());
    }
    put("shared", b.shared.into());
    if b.shared {
        let members: Vec<toml::Value> = b.members.iter().map(|m| m.clone().into()).collect();
        put("members", toml::Value::Array(members));
        put("per_member_read", b.per_member_read.into());
    }
}

/// A mailbox file's text for `table` (the keys it sets).
pub fn render_mailbox_file(table: &toml::Table) -> String {
    let mut out = String::from(
        "# Written by voxmail (HTTP API). Keys here override config.toml's\n\
         # [[mailbox]] of the same number.\n",
    );
    for (k, v) in table {
        push(&mut out, k, v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";

    fn base() -> MailboxConfig {
        MailboxConfig {
            number: "1001".into(),
            pin: "1234".into(),
            name: "Alice".into(),
            email: Some("alice@example.com".into()),
            timezone: "Europe/Brussels".into(),
            ..MailboxConfig::default()
        }
    }

    #[test]
    fn an_overlay_changes_only_its_keys() {
        let m = parse_mailbox_file(
            "language = \"fr\"\nmax_messages = 3\n",
            "f",
            "1001",
            Some(&base()),
        )
        .unwrap();
        assert_eq!(m.language.as_deref(), Some("fr"));
        assert_eq!(m.max_messages, Some(3));
        assert_eq!(m.name, "Alice");
        assert_eq!(m.pin, "1234");
        assert_eq!(m.timezone, "Europe/Brussels");
        assert_eq!(m.storage_format, crate::audio::StorageFormat::Wav);
        // A hashed PIN replaces the clear one of config.toml.
        let m = parse_mailbox_file(
            &format!("pin_hash = \"{HASH}\"\n"),
            "f",
            "1001",
            Some(&base()),
        )
        .unwrap();
        assert_eq!(m.pin, HASH);
    }

    #[test]
    fn every_base_key_renders_once() {
        // Every key of a box read back from its rendering, none twice.
        let c = crate::config::Config::embedded();
        let mut t = toml::Table::new();
        t.insert("email".into(), "alice@example.org".into());
        t.insert("timezone".into(), "Europe/Paris".into());
        let text = render_mailbox_file(&t);
        let m = parse_mailbox_file(&text, "f", "1001", c.mailbox("1001")).unwrap();
        assert_eq!(m.email.as_deref(), Some("alice@example.org"));
        assert_eq!(m.name, c.mailbox("1001").unwrap().name);
        let full = MailboxConfig {
            shared: true,
            members: vec!["1002".into()],
            per_member_read: true,
            max_messages: Some(9),
            max_message_seconds: Some(60),
            language: Some("es".into()),
            ..base()
        };
        let m = parse_mailbox_file("", "f", "1001", Some(&full)).unwrap();
        assert_eq!(m, full);
    }

    #[test]
    fn a_box_of_its_own_needs_a_pin() {
        let text = format!(
            "pin_hash = \"{HASH}\"\nshared = true\nmembers = [\"1001\", \"1002\"]\nper_member_read = true\n"
        );
        let m = parse_mailbox_file(&text, "f", "2000", None).unwrap();
        assert_eq!(m.number, "2000");
        assert!(m.shared && m.per_member_read);
        assert_eq!(m.members, ["1001", "1002"]);
        assert!(m.admits("1002") && m.admits("2000") && !m.admits("1003"));
        let e = parse_mailbox_file("name = \"x\"\n", "f", "2000", None).unwrap_err();
        assert!(e.to_string().contains("missing `pin`"), "{e}");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse_mailbox_file(
            "name = \"x\"\ntimezone = \"Mars/Olympus\"\n",
            "data/mailboxes/1001/mailbox.toml",
            "1001",
            Some(&base()),
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].line, 2);
        assert!(
            e.to_string()
                .starts_with("data/mailboxes/1001/mailbox.toml:2:"),
            "{e}"
        );
        let e = parse_mailbox_file("name = \n", "f", "1001", Some(&base())).unwrap_err();
        assert_eq!(e.0[0].line, 1, "{e}");
        let e = parse_mailbox_file("colour = 1\n", "f", "1001", Some(&base())).unwrap_err();
        assert!(e.to_string().contains("unknown key `colour`"), "{e}");
        let e = parse_mailbox_file("sip_password = \"secret12\"\n", "f", "1001", Some(&base()))
            .unwrap_err();
        assert!(e.to_string().contains("cannot be set"), "{e}");
        let e = parse_mailbox_file("number = \"1002\"\n", "f", "1001", Some(&base())).unwrap_err();
        assert!(e.to_string().contains("mailbox 1001's"), "{e}");
        let e = parse_mailbox_file("max_messages = -1\n", "f", "1001", Some(&base())).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e =
            parse_mailbox_file("members = [\"1002\"]\n", "f", "1001", Some(&base())).unwrap_err();
        assert!(e.to_string().contains("needs `shared = true`"), "{e}");
        let e =
            parse_mailbox_file("pin_hash = \"plain\"\n", "f", "1001", Some(&base())).unwrap_err();
        assert!(e.to_string().contains("Argon2id"), "{e}");
        assert!(!e.to_string().contains("plain"));
    }

    #[test]
    fn rendered_files_read_back() {
        let mut t = toml::Table::new();
        t.insert("pin_hash".into(), HASH.into());
        t.insert("language".into(), "de".into());
        t.insert("members".into(), toml::Value::Array(vec!["1001".into()]));
        t.insert("shared".into(), true.into());
        let text = render_mailbox_file(&t);
        let m = parse_mailbox_file(&text, "f", "3000", None).unwrap();
        assert_eq!(m.language.as_deref(), Some("de"));
        assert_eq!(m.members, ["1001"]);
        assert_eq!(own_keys(&text).len(), 4);
    }

    #[test]
    fn hostile_files_do_not_panic() {
        for text in [
            "[",
            "a = [",
            "pin = 1",
            "\u{feff}x",
            "[mailbox]\npin=\"1234\"",
            "=",
            "pin_hash = \"$argon2id$\u{0}\"",
        ] {
            let _ = parse_mailbox_file(text, "f", "1001", Some(&base()));
            let _ = parse_mailbox_file(text, "f", "1001", None);
        }
    }
}
