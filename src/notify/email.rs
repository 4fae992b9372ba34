//! Email on a new message: templated subject and body in the box's time
//! zone, the audio attached as WAV or MP3 (the box's `attach_format`) if
//! the box asks for it, sent over SMTP (lettre).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::audio::AudioFormat;
use crate::config::{MailboxConfig, SmtpConfig, render_template};
use crate::store::{Folder, MailboxId, MessageId, MessageMeta, Store};

/// An SMTP client for one `[smtp]` section.
pub type Mailer = AsyncSmtpTransport<Tokio1Executor>;

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("bad address {address:?}: {source}")]
    Address {
        address: String,
        source: lettre::address::AddressError,
    },
    #[error("template: {0}")]
    Template(String),
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// The SMTP transport for `smtp`: STARTTLS required when `starttls`, plain
/// text otherwise (a local relay, or a test server).
pub fn mailer(smtp: &SmtpConfig) -> Result<Mailer, EmailError> {
    let builder = if smtp.starttls {
        Mailer::starttls_relay(&smtp.host)?
    } else {
        Mailer::builder_dangerous(smtp.host.as_str())
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(30)));
    if let (Some(u), Some(p)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    Ok(builder.build())
}

/// `m:ss`, rounded to the second.
pub fn format_duration(seconds: f64) -> String {
    let total = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    format!("{}:{:02}", total / 60, total % 60)
}

/// The message's date in the box's time zone, e.g. `Thu 15 Jan 2026 11:00
/// CET`. An unknown zone (config checks prevent it) falls back to UTC.
pub fn format_date(received_at: jiff::Timestamp, timezone: &str) -> String {
    let tz = jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    received_at
        .to_zoned(tz)
        .strftime("%a %d %b %Y %H:%M %Z")
        .to_string()
}

/// The value of one template placeholder, `None` for an unknown name.
/// Caller-supplied text loses its control characters (no forged lines).
fn placeholder(name: &str, mailbox: &MailboxConfig, meta: &MessageMeta) -> Option<String> {
    let value = placeholder_raw(name, mailbox, meta)?;
    Some(value.chars().filter(|c| !c.is_control()).collect())
}

fn placeholder_raw(name: &str, mailbox: &MailboxConfig, meta: &MessageMeta) -> Option<String> {
    Some(match name {
        "mailbox" => mailbox.number.clone(),
        "name" => {
            if mailbox.name.is_empty() {
                mailbox.number.clone()
            } else {
                mailbox.name.clone()
            }
        }
        "caller" => meta.caller_number.clone(),
        "caller_name" => meta
            .caller_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unknown".to_owned()),
        "called" => meta.called_number.clone(),
        "duration" => format_duration(meta.duration_seconds),
        "date" => format_date(meta.received_at, &mailbox.timezone),
        "id" => meta.id.clone(),
        _ => return None,
    })
}

/// The subject and body for this message, from the `[smtp]` templates.
/// Control characters are dropped from the subject (one line; lettre
/// encodes the rest) and from every placeholder value.
pub fn render(
    smtp: &SmtpConfig,
    mailbox: &MailboxConfig,
    meta: &MessageMeta,
) -> Result<(String, String), EmailError> {
    let subject = render_template(&smtp.subject, |n| placeholder(n, mailbox, meta))
        .map_err(EmailError::Template)?
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let body = render_template(&smtp.body, |n| placeholder(n, mailbox, meta))
        .map_err(EmailError::Template)?;
    Ok((subject, body))
}

/// A message's audio, ready to attach.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioAttachment {
    pub format: AudioFormat,
    pub bytes: Vec<u8>,
}

/// The message's audio as `format`: the stored file, or the stored one
/// transcoded. If that fails (an MP3 asked of a build without the encoder),
/// the stored file is attached as it is rather than nothing. Blocking.
pub fn read_attachment(
    store: &Store,
    mailbox: &MailboxId,
    folder: Folder,
    id: &MessageId,
    format: AudioFormat,
) -> Result<AudioAttachment, String> {
    match store.message_audio_bytes(mailbox, folder, id, format) {
        Ok(bytes) => Ok(AudioAttachment { format, bytes }),
        Err(e) => {
            let stored = store
                .stored_format(mailbox, folder, id)
                .ok_or("message gone")?
                .primary();
            if stored == format {
                return Err(e.to_string());
            }
            tracing::warn!(%mailbox, %id, error = %e, "attaching the stored {stored} instead of {format}");
            let bytes = store
                .message_audio_bytes(mailbox, folder, id, stored)
                .map_err(|e| e.to_string())?;
            Ok(AudioAttachment {
                format: stored,
                bytes,
            })
        }
    }
}

/// The attachment's file name.
pub fn attachment_name(meta: &MessageMeta, format: AudioFormat) -> String {
    format!(
        "voicemail-{}-{}.{}",
        meta.mailbox,
        meta.id,
        format.extension()
    )
}

/// Builds the notification for `meta` to `to`, with `audio` attached if
/// given.
pub fn build_message(
    smtp: &SmtpConfig,
    mailbox: &MailboxConfig,
    to: &str,
    meta: &MessageMeta,
    audio: Option<AudioAttachment>,
) -> Result<Message, EmailError> {
    let from: Mailbox = parse_mailbox(&smtp.from, Some("voxmail"))?;
    let to_name = (!mailbox.name.is_empty()).then_some(mailbox.name.as_str());
    let to: Mailbox = parse_mailbox(to, to_name)?;
    let (subject, body) = render(smtp, mailbox, meta)?;
    let builder = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(None);
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(body);
    let message = match audio {
        Some(AudioAttachment { format, bytes }) => {
            let mime = ContentType::parse(format.content_type()).expect("valid MIME type");
            builder.multipart(
                MultiPart::mixed()
                    .singlepart(text)
                    .singlepart(Attachment::new(attachment_name(meta, format)).body(bytes, mime)),
            )?
        }
        None => builder.singlepart(text)?,
    };
    Ok(message)
}

fn parse_mailbox(address: &str, name: Option<&str>) -> Result<Mailbox, EmailError> {
    let addr = address
        .parse::<lettre::Address>()
        .map_err(|source| EmailError::Address {
            address: address.to_owned(),
            source,
        })?;
    Ok(Mailbox::new(name.map(str::to_owned), addr))
}

/// Sends one message.
pub async fn send(mailer: &Mailer, message: Message) -> Result<(), EmailError> {
    mailer.send(message).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_EMAIL_BODY, DEFAULT_EMAIL_SUBJECT};
    use crate::store::Folder;

    fn smtp() -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            from: "vm@example.com".into(),
            username: None,
            password: None,
            starttls: false,
            subject: DEFAULT_EMAIL_SUBJECT.into(),
            body: DEFAULT_EMAIL_BODY.into(),
        }
    }

    fn mailbox(tz: &str) -> MailboxConfig {
        MailboxConfig {
            ask_password: true,
            number: "1001".into(),
            pin: "1234".into(),
            name: "Alice Martin".into(),
            language: None,
            email: Some("alice@example.com".into()),
            attach_audio: true,
            delete_after_email: false,
            timezone: tz.into(),
            ..MailboxConfig::default()
        }
    }

    fn meta() -> MessageMeta {
        MessageMeta {
            id: "20260115-100000-abcdef".into(),
            mailbox: "1001".into(),
            folder: Folder::Inbox,
            caller_number: "+3225550100".into(),
            caller_name: Some("Bob\r\nBcc: evil@example.com".into()),
            called_number: "1001".into(),
            received_at: "2026-01-15T10:00:00Z".parse().unwrap(),
            duration_seconds: 65.4,
            codec: "PCMU".into(),
            call_id: "c".into(),
            format: "wav".into(),
            sample_rate: 8000,
            urgent: false,
        }
    }

    #[test]
    fn dates_are_in_the_box_time_zone() {
        let t: jiff::Timestamp = "2026-01-15T10:00:00Z".parse().unwrap();
        assert_eq!(
            format_date(t, "Europe/Brussels"),
            "Thu 15 Jan 2026 11:00 CET"
        );
        assert_eq!(
            format_date(t, "America/New_York"),
            "Thu 15 Jan 2026 05:00 EST"
        );
        assert_eq!(format_date(t, "UTC"), "Thu 15 Jan 2026 10:00 UTC");
        assert_eq!(format_date(t, "Not/AZone"), "Thu 15 Jan 2026 10:00 UTC");
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(0.4), "0:00");
        assert_eq!(format_duration(7.6), "0:08");
        assert_eq!(format_duration(65.4), "1:05");
        assert_eq!(format_duration(f64::NAN), "0:00");
    }

    #[test]
    fn templates_fill_every_field_and_keep_headers_clean() {
        let (subject, body) = render(&smtp(), &mailbox("Europe/Brussels"), &meta()).unwrap();
        assert_eq!(subject, "New voicemail from +3225550100 in mailbox 1001");
        assert!(body.starts_with("Hello Alice Martin,"), "{body}");
        assert!(body.contains("Duration: 1:05"), "{body}");
        assert!(
            body.contains("Date:     Thu 15 Jan 2026 11:00 CET"),
            "{body}"
        );
        assert!(body.contains("Message:  20260115-100000-abcdef"), "{body}");

        let mut s = smtp();
        s.subject = "{caller_name} {{literal}}".into();
        let (subject, _) = render(&s, &mailbox("UTC"), &meta()).unwrap();
        assert_eq!(subject, "BobBcc: evil@example.com {literal}");
        let built = build_message(&s, &mailbox("UTC"), "alice@example.com", &meta(), None)
            .unwrap()
            .formatted();
        let text = String::from_utf8_lossy(&built);
        assert!(
            !text.lines().any(|l| l.starts_with("Bcc:")),
            "line injected:\n{text}"
        );
        let (_, body) = render(&smtp(), &mailbox("UTC"), &meta()).unwrap();
        assert!(
            body.contains("From:     BobBcc: evil@example.com <+3225550100>"),
            "{body}"
        );
    }

    #[test]
    fn mp3_attachments_are_named_and_typed_as_mp3() {
        let built = build_message(
            &smtp(),
            &mailbox("UTC"),
            "alice@example.com",
            &meta(),
            Some(AudioAttachment {
                format: AudioFormat::Mp3,
                bytes: vec![0xff, 0xf3, 0x44, 0xc4],
            }),
        )
        .unwrap()
        .formatted();
        let text = String::from_utf8_lossy(&built);
        assert!(text.contains("Content-Type: audio/mpeg"), "{text}");
        assert!(
            text.contains("voicemail-1001-20260115-100000-abcdef.mp3"),
            "{text}"
        );
    }

    #[test]
    fn message_has_the_wav_attached() {
        let wav = b"RIFF\x24\0\0\0WAVEfmt ".to_vec();
        let built = build_message(
            &smtp(),
            &mailbox("UTC"),
            "alice@example.com",
            &meta(),
            Some(AudioAttachment {
                format: AudioFormat::Wav,
                bytes: wav,
            }),
        )
        .unwrap()
        .formatted();
        let text = String::from_utf8_lossy(&built);
        assert!(text.contains("multipart/mixed"), "{text}");
        assert!(text.contains("Content-Type: audio/wav"), "{text}");
        assert!(
            text.contains("voicemail-1001-20260115-100000-abcdef.wav"),
            "{text}"
        );
        assert!(
            text.contains("To: \"Alice Martin\" <alice@example.com>"),
            "{text}"
        );
    }

    #[test]
    fn bad_addresses_are_errors() {
        let err = build_message(&smtp(), &mailbox("UTC"), "not an address", &meta(), None);
        assert!(matches!(err, Err(EmailError::Address { .. })), "{err:?}");
    }
}
