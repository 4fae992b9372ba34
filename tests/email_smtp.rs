//! Email notification against a real SMTP server: Debian's python3-aiosmtpd
//! (`python3 -m aiosmtpd ... -c aiosmtpd.handlers.Mailbox <dir>`) writing
//! each mail into a Maildir, which Python's `email` package then parses.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use voxmail::config::Config;
use voxmail::notify::{EventBus, Notifier, RetryPolicy};
use voxmail::store::{Folder, MailboxId, MessageMeta, NewMessage, Store};

/// Debian's interpreter: python3-aiosmtpd installs for it, not for any
/// other python3 on the PATH.
const PYTHON: &str = "/usr/bin/python3";

/// A running aiosmtpd, killed on drop.
struct Smtpd {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Smtpd {
    fn start(dir: &Path) -> Smtpd {
        let check = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .output()
            .unwrap_or_else(|e| panic!("{PYTHON}: {e} (install Debian's python3)"));
        assert!(
            check.status.success(),
            "aiosmtpd is missing: apt-get install -y python3-aiosmtpd\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let maildir = dir.join("maildir");
        let port = free_port();
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let smtpd = Smtpd {
            child,
            port,
            maildir,
        };
        let end = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "aiosmtpd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        smtpd
    }

    /// Delivered mails, parsed, once at least `n` have arrived.
    async fn wait_for_mails(&self, n: usize) -> Vec<Value> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let files = self.files();
            if files.len() >= n {
                return files.iter().map(|f| parse_mail(f)).collect();
            }
            assert!(
                Instant::now() < end,
                "{} mails after 20 s, wanted {n}",
                files.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Parses one mail with Python's email package: headers, the text body,
/// and each attachment's name, type, SHA-256 and WAV format.
fn parse_mail(path: &Path) -> Value {
    const SCRIPT: &str = r#"
import email, email.policy, hashlib, io, json, sys, wave
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
body = msg.get_body(preferencelist=('plain',))
out = {
    'subject': msg['subject'], 'from': msg['from'], 'to': msg['to'],
    'date': msg['date'], 'message_id': msg['message-id'],
    'content_type': msg.get_content_type(),
    'body': body.get_content() if body is not None else None,
    'attachments': [],
}
for part in msg.iter_attachments():
    data = part.get_content()
    a = {'filename': part.get_filename(), 'content_type': part.get_content_type(),
         'size': len(data), 'sha256': hashlib.sha256(data).hexdigest()}
    try:
        with wave.open(io.BytesIO(data)) as w:
            a['wav'] = {'channels': w.getnchannels(), 'rate': w.getframerate(),
                        'sampwidth': w.getsampwidth(), 'frames': w.getnframes()}
    except Exception as e:
        a['wav_error'] = str(e)
    if part.get_content_type() == 'audio/mpeg':
        a['hex'] = data.hex()
    out['attachments'].append(a)
print(json.dumps(out))
"#;
    let out = Command::new(PYTHON)
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn config(port: u16) -> Arc<Config> {
    let text = format!(
        r#"
[smtp]
host = "127.0.0.1"
port = {port}
from = "voicemail@example.com"
starttls = false

[[mailbox]]
number = "1001"
pin = "1234"
name = "Alice Martin"
email = "alice@example.com"
timezone = "Europe/Brussels"

[[mailbox]]
number = "1002"
pin = "5678"
email = "bob@example.com"
attach_audio = false
delete_after_email = true
timezone = "America/New_York"

[[mailbox]]
number = "1003"
pin = "1111"
"#
    );
    // MP3 boxes exist only where MP3 can be written (the `mp3` feature).
    let text = if cfg!(feature = "mp3") {
        text + r#"
[[mailbox]]
number = "1004"
pin = "4444"
email = "carol@example.com"
format = "mp3"

[[mailbox]]
number = "1005"
pin = "5555"
email = "dave@example.com"
attach_format = "mp3"
"#
    } else {
        text
    };
    Arc::new(Config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}")))
}

fn deposit(store: &Store, mailbox: &str, at: &str, seconds: f64) -> MessageMeta {
    let mut w = store
        .begin_message(NewMessage {
            mailbox: MailboxId::try_from(mailbox).unwrap(),
            caller_number: "+3225550100".to_owned(),
            caller_name: Some("Charlie Caller".to_owned()),
            called_number: mailbox.to_owned(),
            call_id: "call-1".to_owned(),
            codec: "PCMU".to_owned(),
            started_at: at.parse().unwrap(),
        })
        .unwrap();
    let samples: Vec<i16> = (0..(seconds * 8000.0) as usize)
        .map(|i| ((i % 40) as i16 - 20) * 500)
        .collect();
    w.write(&samples).unwrap();
    w.finish(0).unwrap().unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        first_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_message_is_emailed_with_its_wav() {
    let dir = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(dir.path());
    let config = config(smtpd.port);
    let store = Store::open(&dir.path().join("data")).unwrap();
    let bus = EventBus::new();
    let task = Notifier::new(config, store.clone(), bus.clone())
        .unwrap()
        .with_retry(fast_retry())
        .spawn();

    let meta = deposit(&store, "1001", "2026-01-15T10:00:00Z", 2.0);
    // A box without email gets none.
    let quiet = deposit(&store, "1003", "2026-01-15T10:00:01Z", 1.0);
    bus.message_created(&quiet);
    bus.message_created(&meta);

    let mails = smtpd.wait_for_mails(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtpd.files().len(), 1, "a mail for a box without email");
    let mail = &mails[0];
    assert_eq!(
        mail["subject"],
        "New voicemail from +3225550100 in mailbox 1001"
    );
    assert_eq!(mail["to"], "Alice Martin <alice@example.com>");
    assert_eq!(mail["from"], "voxmail <voicemail@example.com>");
    assert_eq!(mail["content_type"], "multipart/mixed");
    assert!(mail["message_id"].as_str().is_some_and(|m| m.contains('@')));
    let body = mail["body"].as_str().unwrap();
    for line in [
        "Hello Alice Martin,",
        "You have a new voicemail message in mailbox 1001.",
        "From:     Charlie Caller <+3225550100>",
        "Duration: 0:02",
        // 10:00 UTC in Brussels in January.
        "Date:     Thu 15 Jan 2026 11:00 CET",
    ] {
        assert!(body.lines().any(|l| l == line), "{line:?} not in\n{body}");
    }
    assert!(body.contains(&meta.id), "{body}");

    let atts = mail["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 1, "{mail}");
    let att = &atts[0];
    assert_eq!(att["filename"], format!("voicemail-1001-{}.wav", meta.id));
    assert_eq!(att["content_type"], "audio/wav");
    let wav_path = store
        .message_audio_path(
            &MailboxId::try_from("1001").unwrap(),
            Folder::Inbox,
            &meta.id.parse().unwrap(),
        )
        .unwrap();
    let file = std::fs::read(&wav_path).unwrap();
    let digest: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(att["sha256"], digest);
    assert_eq!(att["size"], file.len());
    assert_eq!(
        att["wav"],
        serde_json::json!({"channels": 1, "rate": 8000, "sampwidth": 2, "frames": 16000})
    );
    // Not deleted: this box keeps its messages.
    assert!(wav_path.exists());
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_after_email_removes_the_message_once_sent() {
    let dir = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(dir.path());
    let config = config(smtpd.port);
    let store = Store::open(&dir.path().join("data")).unwrap();
    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    let task = Notifier::new(config, store.clone(), bus.clone())
        .unwrap()
        .with_retry(fast_retry())
        .spawn();

    let meta = deposit(&store, "1002", "2026-07-04T16:30:00Z", 65.0);
    bus.message_created(&meta);
    let mails = smtpd.wait_for_mails(1).await;
    let mail = &mails[0];
    assert_eq!(mail["to"], "bob@example.com");
    assert_eq!(mail["content_type"], "text/plain");
    assert!(mail["attachments"].as_array().unwrap().is_empty(), "{mail}");
    let body = mail["body"].as_str().unwrap();
    // A box without a name is greeted by number; New York is on EDT.
    assert!(body.starts_with("Hello 1002,"), "{body}");
    assert!(body.contains("Duration: 1:05"), "{body}");
    assert!(
        body.contains("Date:     Sat 04 Jul 2026 12:30 EDT"),
        "{body}"
    );

    // Then the message goes, with a deleted event.
    let deleted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = rx.recv().await.unwrap();
            if ev.event.name() == "voicemail_message_deleted" {
                return ev;
            }
        }
    })
    .await
    .expect("no deleted event");
    assert_eq!(deleted.message.id, meta.id);
    assert_eq!(deleted.mailbox, "1002");
    let mailbox = MailboxId::try_from("1002").unwrap();
    for f in Folder::ALL {
        assert!(store.list_messages(&mailbox, f).unwrap().is_empty(), "{f}");
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_send_keeps_the_message() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port.
    let config = config(free_port());
    let store = Store::open(&dir.path().join("data")).unwrap();
    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    let task = Notifier::new(config, store.clone(), bus.clone())
        .unwrap()
        .with_retry(fast_retry())
        .spawn();
    let meta = deposit(&store, "1002", "2026-07-04T16:30:00Z", 1.0);
    bus.message_created(&meta);
    // Two tries 200 ms apart, then it gives up; give it ample time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let inbox = store
        .list_messages(&MailboxId::try_from("1002").unwrap(), Folder::Inbox)
        .unwrap();
    assert_eq!(inbox.len(), 1, "deleted although the email was not sent");
    assert_eq!(
        rx.recv().await.unwrap().event.name(),
        "voicemail_message_created"
    );
    assert!(rx.try_recv().is_err(), "an event after a failed send");
    task.abort();
}

#[cfg(feature = "mp3")]
fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[cfg(feature = "mp3")]
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(feature = "mp3")]
/// The MP3 attachment of `mail`, checked for name and type, decoded.
fn mp3_attachment(mail: &Value, mailbox: &str, id: &str) -> (Vec<u8>, Vec<i16>) {
    let atts = mail["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 1, "{mail}");
    let att = &atts[0];
    assert_eq!(att["filename"], format!("voicemail-{mailbox}-{id}.mp3"));
    assert_eq!(att["content_type"], "audio/mpeg");
    let bytes = unhex(att["hex"].as_str().unwrap());
    assert_eq!(att["sha256"], sha256_hex(&bytes));
    let pcm = voxmail::audio::decode_bytes(bytes.clone(), 60)
        .unwrap_or_else(|e| panic!("the attachment does not decode as MP3: {e}"));
    (bytes, pcm)
}

#[cfg(feature = "mp3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_boxes_get_mp3_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(dir.path());
    let config = config(smtpd.port);
    let store = Store::open(&dir.path().join("data")).unwrap();
    // As the server does: each box keeps messages in its `format`.
    let formats = config.clone();
    store.set_storage_formats(Arc::new(move |m: &MailboxId| {
        formats
            .mailbox(m.as_str())
            .map(|b| b.storage_format)
            .unwrap_or_default()
    }));
    let bus = EventBus::new();
    let task = Notifier::new(config, store.clone(), bus.clone())
        .unwrap()
        .with_retry(fast_retry())
        .spawn();

    // 1004 keeps MP3 only and attaches it as stored.
    let kept = deposit(&store, "1004", "2026-01-15T10:00:00Z", 3.0);
    assert_eq!(kept.format, "mp3");
    bus.message_created(&kept);
    let mails = smtpd.wait_for_mails(1).await;
    let (bytes, pcm) = mp3_attachment(&mails[0], "1004", &kept.id);
    let stored = store
        .message_audio_path(
            &MailboxId::try_from("1004").unwrap(),
            Folder::Inbox,
            &kept.id.parse().unwrap(),
        )
        .unwrap();
    assert_eq!(stored.extension().unwrap(), "mp3");
    assert_eq!(
        bytes,
        std::fs::read(&stored).unwrap(),
        "not the stored file"
    );
    // About the message's length: within an MP3 frame (576 samples).
    assert!(pcm.len().abs_diff(24_000) <= 576, "{} samples", pcm.len());

    // 1005 keeps WAV but asks for MP3 attachments: transcoded.
    let wav = deposit(&store, "1005", "2026-01-15T10:00:05Z", 2.0);
    assert_eq!(wav.format, "wav");
    bus.message_created(&wav);
    let mails = smtpd.wait_for_mails(2).await;
    let mail = mails
        .iter()
        .find(|m| m["to"] == "dave@example.com")
        .expect("no mail to dave");
    let (_, pcm) = mp3_attachment(mail, "1005", &wav.id);
    assert!(pcm.len().abs_diff(16_000) <= 576, "{} samples", pcm.len());
    // The decoded audio is the message's: the same level (the deposit's
    // sawtooth is 20 steps of 500, RMS about 5770).
    let rms = (pcm[1000..15000]
        .iter()
        .map(|&s| f64::from(s).powi(2))
        .sum::<f64>()
        / 14000.0)
        .sqrt();
    assert!((4000.0..7500.0).contains(&rms), "rms {rms}");
    task.abort();
}
