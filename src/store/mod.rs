//! The filesystem store: the only code that builds paths under the data
//! directory.
//!
//! Layout:
//! ```text
//! <data>/mailboxes/<box>/{inbox,old,saved}/<id>.wav + <id>.json
//! <data>/mailboxes/<box>/greetings/{unavailable,busy,temp,name}.wav
//! <data>/spool/<id>.wav + <id>.json      recordings in progress
//! <data>/audio/<name>.wav                 audio messages (see audio_messages.rs)
//! ```
//! Writes are atomic (temp file, fsync, rename, fsync of the directory).
//! Temp files start with `.`, which no valid id can, so readers never see
//! them. Ids are validated at the boundary ([`MailboxId`], [`MessageId`]).

mod argon2_pool;
mod audio_messages;
mod copy;
mod formats;
mod fsutil;
mod id;
pub mod mailboxes;
mod message_audio;
mod read_state;
mod scratch;
pub mod security;
mod writer;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};

pub use audio_messages::{AUDIO_MESSAGE_NAME_MAX, is_valid_audio_message_name};
pub use formats::FormatLookup;
pub use id::{MAILBOX_ID_MAX, MESSAGE_ID_MAX, MailboxId, MessageId};
pub use mailboxes::{MailboxDirectory, MailboxError};
pub use message_audio::MessageAudio;
pub use read_state::HeardBy;
pub use scratch::ScratchRecording;
pub use security::SecurityStore;
pub use writer::MessageWriter;

use fsutil::{SPEC, io_err, wav_err};
use writer::{SpoolRecord, SpoolWav};

/// Sample rate of everything the store holds.
pub const SAMPLE_RATE: u32 = 8000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid {kind} id {value:?}: expected 1 or more of [0-9A-Za-z_-]")]
    InvalidId { kind: &'static str, value: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: bad WAV: {source}")]
    Wav { path: PathBuf, source: hound::Error },
    #[error("{path}: MP3: {message}")]
    Mp3 { path: PathBuf, message: String },
    #[error("{path}: bad JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("message {id} not found in {mailbox}/{folder}")]
    MessageNotFound {
        mailbox: MailboxId,
        folder: Folder,
        id: MessageId,
    },
    #[error("message {id} already exists in {mailbox}/{folder}")]
    MessageExists {
        mailbox: MailboxId,
        folder: Folder,
        id: MessageId,
    },
    #[error("unknown folder {0:?}: expected inbox, old or saved")]
    UnknownFolder(String),
    #[error("recording too long: the WAV format caps it at {max_samples} samples")]
    TooLong { max_samples: u64 },
    #[error("could not find a free message id")]
    IdExhausted,
    /// The box already holds its `max_messages` (inbox + old); nothing is
    /// added to it. See [`limit_reached`].
    #[error("mailbox {mailbox} is full: {messages} messages, at most {max}")]
    MailboxFull {
        mailbox: MailboxId,
        messages: usize,
        max: u32,
    },
    /// A writer used after it gave its file up; a bug in the caller.
    #[error("recording already closed")]
    Closed,
}

/// A mailbox folder; the names are the directory names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Folder {
    Inbox,
    Old,
    Saved,
}

impl Folder {
    pub const ALL: [Folder; 3] = [Folder::Inbox, Folder::Old, Folder::Saved];

    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::Old => "old",
            Folder::Saved => "saved",
        }
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Folder {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Folder, StoreError> {
        Folder::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| StoreError::UnknownFolder(s.chars().take(32).collect()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GreetingKind {
    Unavailable,
    Busy,
    Temporary,
    Name,
}

impl GreetingKind {
    pub const ALL: [GreetingKind; 4] = [
        GreetingKind::Unavailable,
        GreetingKind::Busy,
        GreetingKind::Temporary,
        GreetingKind::Name,
    ];

    /// The file stem under `greetings/` (Asterisk's names).
    pub fn file_stem(self) -> &'static str {
        match self {
            GreetingKind::Unavailable => "unavailable",
            GreetingKind::Busy => "busy",
            GreetingKind::Temporary => "temp",
            GreetingKind::Name => "name",
        }
    }
}

/// The one rule for a full box: it holds `max` messages or more in its
/// inbox and old folders (saved messages do not count). `None`, or 0, is
/// no limit. Deposits, forwarded copies and the login warning all ask it.
pub fn limit_reached(messages: usize, max: Option<u32>) -> bool {
    max.is_some_and(|max| max > 0 && messages >= max as usize)
}

/// What the call knows when recording starts.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub mailbox: MailboxId,
    pub caller_number: String,
    pub caller_name: Option<String>,
    pub called_number: String,
    pub call_id: String,
    /// Codec the caller used, e.g. "PCMU".
    pub codec: String,
    pub started_at: jiff::Timestamp,
}

/// Tests elsewhere in the crate that need a stored message.
#[cfg(test)]
impl Store {
    /// Records `samples` into `mailbox`'s inbox as a call from +3225550100
    /// would; returns the message's id.
    pub(crate) fn deposit_for_test(&self, mailbox: &str, samples: &[i16]) -> MessageId {
        let mut w = self.begin_for_test(mailbox);
        w.write(samples).unwrap();
        let meta = w.finish(0).unwrap().unwrap();
        MessageId::try_from(meta.id.as_str()).unwrap()
    }

    /// A recording into `mailbox` from +3225550100, begun.
    pub(crate) fn begin_for_test(&self, mailbox: &str) -> MessageWriter {
        self.begin_message(NewMessage {
            mailbox: MailboxId::try_from(mailbox).unwrap(),
            caller_number: "+3225550100".into(),
            caller_name: None,
            called_number: mailbox.into(),
            call_id: "c1".into(),
            codec: "PCMU".into(),
            started_at: "2026-03-02T09:05:00Z".parse().unwrap(),
        })
        .unwrap()
    }
}

/// The JSON metadata record beside each WAV.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MessageMeta {
    pub id: String,
    pub mailbox: String,
    pub folder: Folder,
    pub caller_number: String,
    pub caller_name: Option<String>,
    pub called_number: String,
    /// RFC 3339 in JSON.
    pub received_at: jiff::Timestamp,
    pub duration_seconds: f64,
    pub codec: String,
    pub call_id: String,
    /// "wav"
    pub format: String,
    /// 8000
    pub sample_rate: u32,
    /// Marked urgent by the caller (deposit review, key 4). Absent in
    /// older records, which are not urgent.
    #[serde(default)]
    pub urgent: bool,
}

/// The filesystem store. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// Spool ids with a live `MessageWriter`; recovery leaves them alone, so
    /// `recover_spool` is safe to call while calls are recording.
    active: Mutex<HashSet<MessageId>>,
    /// Each box's `format` (see formats.rs); `None`: WAV everywhere.
    formats: RwLock<Option<FormatLookup>>,
    /// Decoded greetings by path, valid while the file's size and mtime
    /// hold: a call costs a `stat`, not a read and decode, and thousands
    /// of callers share one copy of a box's greeting.
    greetings: Mutex<HashMap<PathBuf, CachedGreeting>>,
}

struct CachedGreeting {
    len: u64,
    modified: Option<std::time::SystemTime>,
    pcm: Arc<[i16]>,
}

/// Greetings kept decoded at most (the cache is emptied beyond).
const GREETING_CACHE_ENTRIES: usize = 4096;

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store rooted at `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let store = Store {
            inner: Arc::new(Inner {
                root: data_dir.to_path_buf(),
                active: Mutex::new(HashSet::new()),
                formats: RwLock::new(None),
                greetings: Mutex::new(HashMap::new()),
            }),
        };
        fsutil::create_dir_all(&store.mailboxes_dir())?;
        fsutil::create_dir_all(&store.spool_dir())?;
        Ok(store)
    }

    /// The data directory this store owns.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn mailboxes_dir(&self) -> PathBuf {
        self.inner.root.join("mailboxes")
    }

    fn spool_dir(&self) -> PathBuf {
        self.inner.root.join("spool")
    }

    fn mailbox_dir(&self, mailbox: &MailboxId) -> PathBuf {
        self.mailboxes_dir().join(mailbox.as_str())
    }

    fn folder_dir(&self, mailbox: &MailboxId, folder: Folder) -> PathBuf {
        self.mailbox_dir(mailbox).join(folder.as_str())
    }

    fn greetings_dir(&self, mailbox: &MailboxId) -> PathBuf {
        self.mailbox_dir(mailbox).join("greetings")
    }

    fn greeting_path(&self, mailbox: &MailboxId, kind: GreetingKind) -> PathBuf {
        self.greetings_dir(mailbox)
            .join(format!("{}.wav", kind.file_stem()))
    }

    fn message_paths(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
    ) -> (PathBuf, PathBuf) {
        let dir = self.folder_dir(mailbox, folder);
        (
            dir.join(format!("{id}.wav")),
            dir.join(format!("{id}.json")),
        )
    }

    /// Creates the mailbox's folders and greetings directory.
    pub fn ensure_mailbox(&self, mailbox: &MailboxId) -> Result<(), StoreError> {
        for folder in Folder::ALL {
            fsutil::create_dir_all(&self.folder_dir(mailbox, folder))?;
        }
        fsutil::create_dir_all(&self.greetings_dir(mailbox))
    }

    /// Mailboxes that have a directory, sorted. Directories whose names are
    /// not valid ids are ignored.
    pub fn list_mailboxes(&self) -> Result<Vec<MailboxId>, StoreError> {
        let dir = self.mailboxes_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir
                && let Some(name) = entry.file_name().to_str()
                && let Ok(id) = MailboxId::try_from(name)
            {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Starts a recording: creates a spool WAV (8 kHz, 16-bit, mono) and a
    /// spool sidecar JSON with `new`, so a crash can be recovered.
    pub fn begin_message(&self, new: NewMessage) -> Result<MessageWriter, StoreError> {
        self.ensure_mailbox(&new.mailbox)?;
        let spool = self.spool_dir();
        // 24 random bits per second: a retry is already rare, eight in a row
        // means something else is wrong.
        for _ in 0..8 {
            let id = MessageId::generate(new.started_at);
            let (inbox_wav, inbox_json) = self.message_paths(&new.mailbox, Folder::Inbox, &id);
            if fsutil::exists(&inbox_wav)? || fsutil::exists(&inbox_json)? {
                continue;
            }
            // Mark the id live before any file exists, so a concurrent
            // recover_spool never takes half-created spool files for debris.
            if !self.lock_active().insert(id.clone()) {
                continue;
            }
            let wav_path = spool.join(format!("{id}.wav"));
            let sidecar_path = spool.join(format!("{id}.json"));
            // create_new makes the spool file our claim on the id.
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&wav_path)
            {
                Ok(f) => f,
                Err(e) => {
                    self.release_spool_id(&id);
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        continue;
                    }
                    return Err(io_err(&wav_path, e));
                }
            };
            let started = (|| {
                let wav = SpoolWav::start(&wav_path, file)?;
                let record =
                    SpoolRecord::from_new(&id, &new).with_format(self.storage_format(&new.mailbox));
                // Not synced: it describes a recording that is not synced
                // until the message is finished either (a power cut loses
                // both; a crash of the process loses neither).
                fsutil::write_new_json_unsynced(&sidecar_path, &record)?;
                Ok(wav)
            })();
            let wav = match started {
                Ok(w) => w,
                Err(e) => {
                    let _ = fs::remove_file(&wav_path);
                    let _ = fs::remove_file(&sidecar_path);
                    self.release_spool_id(&id);
                    return Err(e);
                }
            };
            return Ok(MessageWriter {
                store: self.clone(),
                id,
                new,
                wav: Some(wav),
                wav_path,
                sidecar_path,
                samples: 0,
                tail_dropped: false,
            });
        }
        Err(StoreError::IdExhausted)
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashSet<MessageId>> {
        // A panic while holding this lock cannot leave the set inconsistent
        // (single insert/remove), so a poisoned lock is still usable.
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn release_spool_id(&self, id: &MessageId) {
        self.lock_active().remove(id);
    }

    /// Moves a finalized, synced spool WAV into the inbox and writes its
    /// JSON. The JSON goes last so a listed message always has its audio.
    fn deliver(
        &self,
        id: &MessageId,
        new: &NewMessage,
        spool_wav: &Path,
        sidecar: &Path,
        samples: u64,
        format: crate::audio::StorageFormat,
    ) -> Result<MessageMeta, StoreError> {
        let inbox = self.folder_dir(&new.mailbox, Folder::Inbox);
        fsutil::create_dir_all(&inbox)?;
        let (wav, json) = self.message_paths(&new.mailbox, Folder::Inbox, id);
        if fsutil::exists(&wav)? || fsutil::exists(&json)? {
            return Err(StoreError::MessageExists {
                mailbox: new.mailbox.clone(),
                folder: Folder::Inbox,
                id: id.clone(),
            });
        }
        // The MP3 (if any) and the WAV go before the JSON; a WAV not kept
        // goes after it (formats.rs).
        let stored = self.place_audio(spool_wav, &new.mailbox, Folder::Inbox, id, format)?;
        let mut meta = writer::meta_for(id, new, samples);
        meta.format = stored.as_str().to_owned();
        // The sidecar becomes the message's JSON: a delivery creates no
        // file and deletes none. That matters on ext4 without a journal,
        // where every new inode is found by skipping the inodes freed in
        // the last one to six minutes, so a delete per message made each
        // create cost more the faster messages came (40 % of voxmail's CPU
        // at 100 short deposits a second).
        fsutil::rewrite_json_and_move(sidecar, &json, &meta)?;
        Store::drop_unkept_wav(spool_wav, stored)?;
        Ok(meta)
    }

    /// After a crash: every spool recording with at least `min_samples` of
    /// audio is moved into its mailbox's inbox with metadata (duration from
    /// the samples actually in the file); shorter or unreadable ones are
    /// removed. Recordings still being written by this process are left
    /// alone. A recording that fails to move for an I/O reason is kept for
    /// the next attempt and logged. Returns what was recovered.
    pub fn recover_spool(&self, min_samples: u64) -> Result<Vec<MessageMeta>, StoreError> {
        let spool = self.spool_dir();
        let mut stems = BTreeSet::new();
        for entry in fs::read_dir(&spool).map_err(|e| io_err(&spool, e))? {
            let entry = entry.map_err(|e| io_err(&spool, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tracing::warn!(path = %path.display(), "ignoring non-UTF-8 name in spool");
                continue;
            };
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A temp file from an interrupted atomic write.
                let _ = fs::remove_file(&path);
                continue;
            }
            let stem = name
                .strip_suffix(".wav")
                .or_else(|| name.strip_suffix(".json"));
            match stem.map(MessageId::try_from) {
                Some(Ok(id)) => {
                    stems.insert(id);
                }
                _ => tracing::warn!(path = %path.display(), "ignoring unknown file in spool"),
            }
        }

        let mut recovered = Vec::new();
        for id in stems {
            if self.lock_active().contains(&id) {
                continue;
            }
            match self.recover_one(&spool, &id, min_samples) {
                Ok(Some(meta)) => recovered.push(meta),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%id, error = %e, "spool recording not recovered; kept for a later attempt")
                }
            }
        }
        recovered.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(recovered)
    }

    fn recover_one(
        &self,
        spool: &Path,
        id: &MessageId,
        min_samples: u64,
    ) -> Result<Option<MessageMeta>, StoreError> {
        let wav = spool.join(format!("{id}.wav"));
        let sidecar = spool.join(format!("{id}.json"));
        let remove_both = || -> Result<(), StoreError> {
            fsutil::remove_if_exists(&wav)?;
            fsutil::remove_if_exists(&sidecar)
        };

        let record = match writer::read_sidecar(&sidecar) {
            Ok(writer::Sidecar::Recording(r)) => r,
            Ok(writer::Sidecar::Delivered(meta)) => {
                return self.recover_delivered(&wav, &sidecar, id, meta);
            }
            Err(e) => {
                tracing::warn!(%id, error = %e, "spool recording without readable metadata; removed");
                remove_both()?;
                return Ok(None);
            }
        };
        let format = record.format(self);
        let (rec_id, new) = match record.into_new() {
            Ok(x) if x.0 == *id => x,
            Ok(_) => {
                tracing::warn!(%id, "spool sidecar names another id; removed");
                remove_both()?;
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(%id, error = %e, "spool sidecar invalid; removed");
                remove_both()?;
                return Ok(None);
            }
        };
        let (inbox_wav, inbox_json) = self.message_paths(&new.mailbox, Folder::Inbox, &rec_id);

        if fsutil::exists(&inbox_json)? {
            // Delivered; only the sidecar cleanup was cut short.
            remove_both()?;
            return Ok(None);
        }

        if !fsutil::exists(&wav)? {
            if fsutil::exists(&inbox_wav)? {
                // Crashed between moving the WAV and writing its JSON.
                let samples = match fsutil::wav_samples(&inbox_wav) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(%id, error = %e, "half-delivered recording unreadable; removed");
                        fsutil::remove_if_exists(&inbox_wav)?;
                        fsutil::remove_if_exists(&sidecar)?;
                        return Ok(None);
                    }
                };
                let mut meta = writer::meta_for(&rec_id, &new, samples);
                if let Some(stored) = self.stored_format(&new.mailbox, Folder::Inbox, &rec_id) {
                    meta.format = stored.as_str().to_owned();
                }
                fsutil::atomic_write_json(&inbox_json, &meta)?;
                fsutil::remove_if_exists(&sidecar)?;
                tracing::info!(%id, mailbox = %new.mailbox, "finished an interrupted delivery");
                return Ok(Some(meta));
            }
            fsutil::remove_if_exists(&sidecar)?;
            return Ok(None);
        }

        let samples = match fsutil::repair_wav(&wav) {
            Ok(n) => n,
            Err(StoreError::Io { path, source }) => return Err(StoreError::Io { path, source }),
            Err(e) => {
                tracing::warn!(%id, error = %e, "spool recording unreadable; removed");
                remove_both()?;
                return Ok(None);
            }
        };
        if samples < min_samples {
            tracing::info!(%id, samples, "spool recording too short; removed");
            remove_both()?;
            return Ok(None);
        }
        self.ensure_mailbox(&new.mailbox)?;
        let meta = self.deliver(&rec_id, &new, &wav, &sidecar, samples, format)?;
        tracing::info!(%id, mailbox = %new.mailbox, samples, "recovered a recording from the spool");
        Ok(Some(meta))
    }

    /// A delivery cut short after the sidecar was rewritten with the
    /// message's metadata: put the audio in place if it is not, then move
    /// the metadata into the inbox.
    fn recover_delivered(
        &self,
        wav: &Path,
        sidecar: &Path,
        id: &MessageId,
        meta: MessageMeta,
    ) -> Result<Option<MessageMeta>, StoreError> {
        let mailbox = match MailboxId::try_from(meta.mailbox.as_str()) {
            Ok(m) if meta.id == id.as_str() => m,
            _ => {
                tracing::warn!(%id, "delivered spool metadata names another message; removed");
                fsutil::remove_if_exists(wav)?;
                fsutil::remove_if_exists(sidecar)?;
                return Ok(None);
            }
        };
        let (_, inbox_json) = self.message_paths(&mailbox, Folder::Inbox, id);
        if fsutil::exists(&inbox_json)? {
            fsutil::remove_if_exists(wav)?;
            fsutil::remove_if_exists(sidecar)?;
            return Ok(None);
        }
        if fsutil::exists(wav)? {
            // The move of the audio did not survive (a power cut).
            self.ensure_mailbox(&mailbox)?;
            fsutil::create_dir_all(&self.folder_dir(&mailbox, Folder::Inbox))?;
            let format = crate::audio::StorageFormat::parse(&meta.format).unwrap_or_default();
            let stored = self.place_audio(wav, &mailbox, Folder::Inbox, id, format)?;
            Store::drop_unkept_wav(wav, stored)?;
        }
        fsutil::rewrite_json_and_move(sidecar, &inbox_json, &meta)?;
        tracing::info!(%id, %mailbox, "finished an interrupted delivery");
        Ok(Some(meta))
    }

    /// How many messages a folder holds, for message-waiting lamps: ids
    /// with both metadata and audio, from the directory listing alone (no
    /// file is opened, so a lamp update stays cheap in a box of thousands;
    /// a corrupt file [`Store::list_messages`] would skip is still counted).
    pub fn count_messages(&self, mailbox: &MailboxId, folder: Folder) -> Result<usize, StoreError> {
        let dir = self.folder_dir(mailbox, folder);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&dir, e)),
        };
        let mut jsons = BTreeSet::new();
        let mut audio = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".json") {
                jsons.insert(stem.to_owned());
            } else if let Some(stem) = name
                .strip_suffix(".wav")
                .or_else(|| name.strip_suffix(".mp3"))
                && MessageId::try_from(stem).is_ok()
            {
                audio.insert(stem.to_owned());
            }
        }
        Ok(jsons.intersection(&audio).count())
    }

    /// The messages a box's limit counts: its inbox and old folders, as
    /// [`Store::list_messages`] lists them (a corrupt file does not count).
    pub fn limited_messages(&self, mailbox: &MailboxId) -> Result<usize, StoreError> {
        let mut n = 0;
        for folder in [Folder::Inbox, Folder::Old] {
            n += self.list_messages(mailbox, folder)?.len();
        }
        Ok(n)
    }

    /// [`StoreError::MailboxFull`] when `mailbox` has reached `max` (see
    /// [`limit_reached`]); with no limit nothing is listed.
    pub fn check_room(&self, mailbox: &MailboxId, max: Option<u32>) -> Result<(), StoreError> {
        let Some(max) = max.filter(|&m| m > 0) else {
            return Ok(());
        };
        let messages = self.limited_messages(mailbox)?;
        if limit_reached(messages, Some(max)) {
            return Err(StoreError::MailboxFull {
                mailbox: mailbox.clone(),
                messages,
                max,
            });
        }
        Ok(())
    }

    /// Messages in a folder, sorted by id (so by time). A missing mailbox is
    /// an empty list. Entries with a corrupt or missing JSON, or without
    /// usable audio (an unreadable WAV, or no WAV and an empty MP3), are
    /// skipped with a warning rather than
    /// failing the whole listing. Files added by hand are picked up; their
    /// `id`, `mailbox` and `folder` are taken from where they lie.
    pub fn list_messages(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
    ) -> Result<Vec<MessageMeta>, StoreError> {
        let dir = self.folder_dir(mailbox, folder);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir, e)),
        };
        let mut jsons = BTreeSet::new();
        let mut wavs = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let (set, stem) = if let Some(stem) = name.strip_suffix(".json") {
                (&mut jsons, stem)
            } else if let Some(stem) = name
                .strip_suffix(".wav")
                .or_else(|| name.strip_suffix(".mp3"))
            {
                // WAV, MP3 or both: the audio of one message.
                (&mut wavs, stem)
            } else {
                continue;
            };
            if let Ok(id) = MessageId::try_from(stem) {
                set.insert(id);
            }
        }
        for orphan in wavs.difference(&jsons) {
            tracing::warn!(mailbox = %mailbox, %folder, id = %orphan, "audio without metadata; skipped");
        }

        let mut out = Vec::with_capacity(jsons.len());
        for id in jsons {
            let (_, json) = self.message_paths(mailbox, folder, &id);
            if !wavs.contains(&id) {
                tracing::warn!(mailbox = %mailbox, %folder, %id, "metadata without audio; skipped");
                continue;
            }
            match self.check_audio(mailbox, folder, &id) {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(mailbox = %mailbox, %folder, %id, error = %e, "unreadable audio; skipped");
                    continue;
                }
            }
            let parsed = fs::read(&json).map_err(|e| io_err(&json, e)).and_then(|b| {
                serde_json::from_slice::<MessageMeta>(&b).map_err(|e| StoreError::Json {
                    path: json.clone(),
                    source: e,
                })
            });
            match parsed {
                Ok(mut meta) => {
                    meta.id = id.as_str().to_owned();
                    meta.mailbox = mailbox.as_str().to_owned();
                    meta.folder = folder;
                    out.push(meta);
                }
                Err(e) => {
                    tracing::warn!(mailbox = %mailbox, %folder, %id, error = %e, "corrupt metadata; skipped");
                }
            }
        }
        Ok(out)
    }

    /// The audio file of a message, for the API and tests: its WAV, or its
    /// MP3 when it is kept as MP3 only. Errors if absent.
    pub fn message_audio_path(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
    ) -> Result<PathBuf, StoreError> {
        let found = crate::audio::AudioFormat::ALL
            .into_iter()
            .find_map(|f| self.message_audio_file(mailbox, folder, id, f));
        if let Some(path) = found {
            Ok(path)
        } else {
            Err(StoreError::MessageNotFound {
                mailbox: mailbox.clone(),
                folder,
                id: id.clone(),
            })
        }
    }

    /// Moves a message to another folder and returns its updated metadata.
    ///
    /// Crash-safe by never having zero copies: the audio is hard-linked into
    /// `to`, the new JSON written, then the old JSON and audio removed. A
    /// crash in between can at worst show the message in both folders.
    pub fn move_message(
        &self,
        mailbox: &MailboxId,
        from: Folder,
        to: Folder,
        id: &MessageId,
    ) -> Result<MessageMeta, StoreError> {
        let (_, src_json) = self.message_paths(mailbox, from, id);
        let not_found = || StoreError::MessageNotFound {
            mailbox: mailbox.clone(),
            folder: from,
            id: id.clone(),
        };
        let bytes = match fs::read(&src_json) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(io_err(&src_json, e)),
        };
        let mut meta: MessageMeta =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Json {
                path: src_json.clone(),
                source: e,
            })?;
        meta.id = id.as_str().to_owned();
        meta.mailbox = mailbox.as_str().to_owned();
        meta.folder = to;
        if from == to {
            return Ok(meta);
        }
        if self.stored_format(mailbox, from, id).is_none() {
            return Err(not_found());
        }
        let dst_dir = self.folder_dir(mailbox, to);
        fsutil::create_dir_all(&dst_dir)?;
        let (_, dst_json) = self.message_paths(mailbox, to, id);
        if fsutil::exists(&dst_json)? {
            return Err(StoreError::MessageExists {
                mailbox: mailbox.clone(),
                folder: to,
                id: id.clone(),
            });
        }
        // Every format's file (WAV and/or MP3); leftovers of an earlier
        // interrupted move are replaced.
        self.link_audio(mailbox, from, to, id)?;
        fsutil::sync_dir(&dst_dir)?;
        fsutil::atomic_write_json(&dst_json, &meta)?;
        // JSON before audio, so the old entry vanishes from listings whole.
        fsutil::remove_if_exists(&src_json)?;
        self.remove_audio(mailbox, from, id)?;
        fsutil::sync_dir(&self.folder_dir(mailbox, from))?;
        Ok(meta)
    }

    /// Deletes a message: JSON first, so it leaves listings before its
    /// audio goes.
    pub fn delete_message(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
    ) -> Result<(), StoreError> {
        let (_, json) = self.message_paths(mailbox, folder, id);
        if !fsutil::exists(&json)? && self.stored_format(mailbox, folder, id).is_none() {
            return Err(StoreError::MessageNotFound {
                mailbox: mailbox.clone(),
                folder,
                id: id.clone(),
            });
        }
        fsutil::remove_if_exists(&json)?;
        self.remove_audio(mailbox, folder, id)?;
        fsutil::sync_dir(&self.folder_dir(mailbox, folder))
    }

    /// Marks a message urgent (or not) and returns its updated metadata;
    /// the JSON is replaced atomically, the audio is not touched.
    pub fn set_message_urgent(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
        urgent: bool,
    ) -> Result<MessageMeta, StoreError> {
        let (_, json) = self.message_paths(mailbox, folder, id);
        let bytes = match fs::read(&json) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::MessageNotFound {
                    mailbox: mailbox.clone(),
                    folder,
                    id: id.clone(),
                });
            }
            Err(e) => return Err(io_err(&json, e)),
        };
        let mut meta: MessageMeta =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Json {
                path: json.clone(),
                source: e,
            })?;
        meta.id = id.as_str().to_owned();
        meta.mailbox = mailbox.as_str().to_owned();
        meta.folder = folder;
        if meta.urgent != urgent {
            meta.urgent = urgent;
            fsutil::atomic_write_json(&json, &meta)?;
        }
        Ok(meta)
    }

    /// A recorded greeting as 8 kHz mono PCM, or `None` if there is none.
    /// A corrupt or wrongly formatted file is logged and treated as absent,
    /// so the caller falls back to the default greeting.
    /// [`Store::load_greeting`] for playing: shared, decoded once per
    /// version of the file.
    pub fn greeting_pcm(
        &self,
        mailbox: &MailboxId,
        kind: GreetingKind,
    ) -> Result<Option<Arc<[i16]>>, StoreError> {
        let path = self.greeting_path(mailbox, kind);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let (len, modified) = (meta.len(), meta.modified().ok());
        let lock = || {
            self.inner
                .greetings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if let Some(c) = lock().get(&path)
            && c.len == len
            && c.modified == modified
        {
            return Ok(Some(c.pcm.clone()));
        }
        let Some(samples) = self.load_greeting(mailbox, kind)? else {
            lock().remove(&path);
            return Ok(None);
        };
        let pcm: Arc<[i16]> = samples.into();
        let mut cache = lock();
        if cache.len() >= GREETING_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(
            path,
            CachedGreeting {
                len,
                modified,
                pcm: pcm.clone(),
            },
        );
        Ok(Some(pcm))
    }

    pub fn load_greeting(
        &self,
        mailbox: &MailboxId,
        kind: GreetingKind,
    ) -> Result<Option<Vec<i16>>, StoreError> {
        let path = self.greeting_path(mailbox, kind);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let decoded = hound::WavReader::new(BufReader::new(file)).and_then(|mut r| {
            let spec = r.spec();
            if spec.channels != SPEC.channels
                || spec.sample_rate != SPEC.sample_rate
                || spec.bits_per_sample != SPEC.bits_per_sample
                || spec.sample_format != SPEC.sample_format
            {
                return Err(hound::Error::FormatError("not 8 kHz mono 16-bit PCM"));
            }
            r.samples::<i16>().collect::<Result<Vec<i16>, _>>()
        });
        match decoded {
            Ok(samples) => Ok(Some(samples)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unusable greeting; ignored");
                Ok(None)
            }
        }
    }

    /// Stores a greeting (8 kHz mono PCM), replacing any previous one
    /// atomically.
    pub fn save_greeting(
        &self,
        mailbox: &MailboxId,
        kind: GreetingKind,
        samples: &[i16],
    ) -> Result<(), StoreError> {
        let path = self.greeting_path(mailbox, kind);
        if samples.len() as u64 > writer::MAX_SAMPLES {
            return Err(StoreError::TooLong {
                max_samples: writer::MAX_SAMPLES,
            });
        }
        fsutil::create_dir_all(&self.greetings_dir(mailbox))?;
        // Greetings are short: encode in memory, then one atomic write.
        let mut buf = io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
        {
            let mut w = hound::WavWriter::new(&mut buf, SPEC).map_err(|e| wav_err(&path, e))?;
            for &s in samples {
                w.write_sample(s).map_err(|e| wav_err(&path, e))?;
            }
            w.finalize().map_err(|e| wav_err(&path, e))?;
        }
        fsutil::atomic_write(&path, buf.get_ref())
    }

    /// Removes a greeting; removing an absent one is not an error.
    pub fn delete_greeting(
        &self,
        mailbox: &MailboxId,
        kind: GreetingKind,
    ) -> Result<(), StoreError> {
        let path = self.greeting_path(mailbox, kind);
        fsutil::remove_if_exists(&path)
    }
}

#[cfg(test)]
mod tests;
