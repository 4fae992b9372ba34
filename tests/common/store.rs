//! What the server stored under its data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::audio::Wav;
use super::wait_for;

/// One saved message: `<id>.wav` + `<id>.json`.
pub struct Message {
    pub id: String,
    pub wav_path: PathBuf,
    pub json_path: PathBuf,
    pub meta: Value,
}

impl Message {
    pub fn wav(&self) -> Wav {
        Wav::read(&self.wav_path)
    }

    pub fn str_field(&self, key: &str) -> &str {
        self.meta
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no string {key:?} in {}",
                    self.json_path.display(),
                    self.meta
                )
            })
    }
}

pub fn inbox(data_dir: &Path, mailbox: &str) -> PathBuf {
    data_dir.join("mailboxes").join(mailbox).join("inbox")
}

/// Files in the inbox (any extension), sorted.
pub fn inbox_files(data_dir: &Path, mailbox: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(inbox(data_dir, mailbox)) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn complete_messages(data_dir: &Path, mailbox: &str) -> Vec<Message> {
    let mut out = Vec::new();
    for p in inbox_files(data_dir, mailbox) {
        if p.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let id = p.file_stem().unwrap().to_string_lossy().into_owned();
        let wav_path = p.with_extension("wav");
        if !wav_path.exists() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(meta) = serde_json::from_str::<Value>(&text) else {
            continue; // being written; the store promises atomic renames, retry
        };
        out.push(Message {
            id,
            wav_path,
            json_path: p,
            meta,
        });
    }
    out
}

/// Waits (up to `deadline`) for at least `count` complete messages (a
/// parseable `.json` next to its `.wav`) in the inbox; then waits `settle`
/// more and returns all messages found. Panics with the inbox listing if the
/// count is not reached.
pub fn wait_messages(
    data_dir: &Path,
    mailbox: &str,
    count: usize,
    deadline: Duration,
    settle: Duration,
) -> Vec<Message> {
    let found = wait_for(deadline, || {
        let m = complete_messages(data_dir, mailbox);
        (m.len() >= count).then_some(())
    });
    if found.is_none() {
        panic!(
            "expected {count} message(s) in {} within {deadline:?}; found files: {:?}",
            inbox(data_dir, mailbox).display(),
            inbox_files(data_dir, mailbox)
        );
    }
    std::thread::sleep(settle);
    complete_messages(data_dir, mailbox)
}

/// Waits `grace`, then asserts the inbox holds no message files at all.
pub fn assert_no_messages(data_dir: &Path, mailbox: &str, grace: Duration) {
    std::thread::sleep(grace);
    let files: Vec<PathBuf> = inbox_files(data_dir, mailbox)
        .into_iter()
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("wav" | "json" | "mp3")
            )
        })
        .collect();
    assert!(
        files.is_empty(),
        "expected no message in mailbox {mailbox}, found {files:?}"
    );
}

/// What a message's metadata must say.
pub struct ExpectMeta<'a> {
    pub mailbox: &'a str,
    pub caller_number: &'a str,
    pub caller_name: Option<&'a str>,
    pub called_number: &'a str,
    pub codec: &'a str,
    pub call_id: &'a str,
}

const META_KEYS: &[&str] = &[
    "id",
    "mailbox",
    "folder",
    "caller_number",
    "caller_name",
    "called_number",
    "received_at",
    "duration_seconds",
    "codec",
    "call_id",
    "format",
    "sample_rate",
];

/// Checks every documented key of the message's JSON.
pub fn check_meta(msg: &Message, exp: &ExpectMeta) {
    let m = &msg.meta;
    let where_ = msg.json_path.display();
    for k in META_KEYS {
        assert!(m.get(*k).is_some(), "{where_}: key {k:?} missing in {m}");
    }
    assert_eq!(msg.str_field("id"), msg.id, "{where_}: id vs file name");
    assert_eq!(msg.str_field("mailbox"), exp.mailbox, "{where_}: mailbox");
    assert_eq!(msg.str_field("folder"), "inbox", "{where_}: folder");
    assert_eq!(
        msg.str_field("caller_number"),
        exp.caller_number,
        "{where_}: caller_number"
    );
    if let Some(name) = exp.caller_name {
        assert_eq!(msg.str_field("caller_name"), name, "{where_}: caller_name");
    }
    assert_eq!(
        msg.str_field("called_number"),
        exp.called_number,
        "{where_}: called_number"
    );
    assert_eq!(msg.str_field("codec"), exp.codec, "{where_}: codec");
    assert_eq!(msg.str_field("call_id"), exp.call_id, "{where_}: call_id");
    assert_eq!(msg.str_field("format"), "wav", "{where_}: format");
    assert_eq!(
        m["sample_rate"].as_u64(),
        Some(8000),
        "{where_}: sample_rate"
    );
    let received = msg.str_field("received_at");
    assert!(
        received.len() >= 19 && received.starts_with("20") && received.contains('T'),
        "{where_}: received_at {received:?} is not an RFC 3339 timestamp"
    );
    let dur = m["duration_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("{where_}: duration_seconds is not a number: {m}"));
    let wav_secs = msg.wav().secs();
    assert!(
        (dur - wav_secs).abs() <= 0.25,
        "{where_}: duration_seconds {dur} but the WAV holds {wav_secs:.3} s"
    );
}

/// A mailbox folder directory (`inbox`, `old`, `saved`).
pub fn folder(data_dir: &Path, mailbox: &str, folder: &str) -> PathBuf {
    data_dir.join("mailboxes").join(mailbox).join(folder)
}

/// The message ids in a folder (stems of its `.json` files), sorted.
pub fn folder_ids(data_dir: &Path, mailbox: &str, folder_name: &str) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(folder(data_dir, mailbox, folder_name)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_owned)
            })
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every file (any name) in a folder, sorted.
pub fn folder_files(data_dir: &Path, mailbox: &str, folder_name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(folder(data_dir, mailbox, folder_name)) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Puts a message into `<data>/mailboxes/<box>/<folder>/` the way the
/// store writes one: `<id>.wav` (8 kHz mono 16-bit) and `<id>.json` with
/// every documented field. `id` must sort by time like the store's ids
/// (`YYYYMMDD-HHMMSS-xxxxxx`); `received_at` is taken from it.
pub fn seed_message(
    data_dir: &Path,
    mailbox: &str,
    folder_name: &str,
    id: &str,
    pcm: &[i16],
    caller_number: &str,
) -> PathBuf {
    let dir = folder(data_dir, mailbox, folder_name);
    std::fs::create_dir_all(&dir).expect("create folder");
    let wav_path = dir.join(format!("{id}.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav_path, spec).expect("create message wav");
    for &s in pcm {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let b = id.as_bytes();
    assert!(
        id.len() >= 15 && b[8] == b'-',
        "seeded id {id:?} must look like YYYYMMDD-HHMMSS-..."
    );
    let received_at = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &id[0..4],
        &id[4..6],
        &id[6..8],
        &id[9..11],
        &id[11..13],
        &id[13..15]
    );
    let meta = serde_json::json!({
        "id": id,
        "mailbox": mailbox,
        "folder": folder_name,
        "caller_number": caller_number,
        "caller_name": null,
        "called_number": mailbox,
        "received_at": received_at,
        "duration_seconds": pcm.len() as f64 / 8000.0,
        "codec": "PCMU",
        "call_id": format!("seeded-{id}@test"),
        "format": "wav",
        "sample_rate": 8000,
        "urgent": false,
    });
    let json_path = dir.join(format!("{id}.json"));
    std::fs::write(&json_path, serde_json::to_vec_pretty(&meta).unwrap()).expect("write json");
    wav_path
}

/// All complete messages (`.json` beside `.wav`) in a folder.
pub fn messages_in(data_dir: &Path, mailbox: &str, folder_name: &str) -> Vec<Message> {
    let mut out = Vec::new();
    for id in folder_ids(data_dir, mailbox, folder_name) {
        let dir = folder(data_dir, mailbox, folder_name);
        let json_path = dir.join(format!("{id}.json"));
        let wav_path = dir.join(format!("{id}.wav"));
        let Ok(text) = std::fs::read_to_string(&json_path) else {
            continue;
        };
        let Ok(meta) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if wav_path.exists() {
            out.push(Message {
                id,
                wav_path,
                json_path,
                meta,
            });
        }
    }
    out
}
