//! Recordings that are not messages: a greeting or name being recorded by
//! phone (kept only once the owner accepts it) and the spoken introduction
//! of a forwarded message.
//!
//! They stream through an ordinary [`MessageWriter`] (what the call's
//! recorder takes) into `<data>/scratch/<id>.wav`, which has no sidecar, so
//! spool recovery never mistakes one for a message. [`MessageWriter::finish_scratch`]
//! closes the file and hands back a [`ScratchRecording`]: its samples for
//! playback, and [`ScratchRecording::install_greeting`] to rename it into
//! place atomically. A scratch recording that is dropped is deleted; files
//! left by a crash are removed by the next `begin_scratch` once a day old.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::fsutil::{self, SPEC, io_err, wav_err};
use super::writer::SpoolWav;
use super::{GreetingKind, MailboxId, MessageId, MessageWriter, NewMessage, Store, StoreError};

/// Scratch files older than this are debris from a crash.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Store {
    fn scratch_dir(&self) -> PathBuf {
        self.root().join("scratch")
    }

    /// Starts a recording for `mailbox` that will not become a message:
    /// finish it with [`MessageWriter::finish_scratch`] (never `finish`,
    /// which would deliver it to the inbox).
    pub fn begin_scratch(&self, mailbox: &MailboxId) -> Result<MessageWriter, StoreError> {
        let dir = self.scratch_dir();
        fsutil::create_dir_all(&dir)?;
        remove_stale(&dir);
        let now = jiff::Timestamp::now();
        for _ in 0..8 {
            let id = MessageId::generate(now);
            let wav_path = dir.join(format!("{id}.wav"));
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&wav_path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&wav_path, e)),
            };
            let wav = match SpoolWav::start(&wav_path, file) {
                Ok(w) => w,
                Err(e) => {
                    let _ = fs::remove_file(&wav_path);
                    return Err(e);
                }
            };
            return Ok(MessageWriter {
                store: self.clone(),
                // Never written: scratch recordings have no sidecar.
                sidecar_path: dir.join(format!("{id}.json")),
                id,
                new: NewMessage {
                    mailbox: mailbox.clone(),
                    caller_number: String::new(),
                    caller_name: None,
                    called_number: String::new(),
                    call_id: String::new(),
                    codec: String::new(),
                    started_at: now,
                },
                wav: Some(wav),
                wav_path,
                samples: 0,
                tail_dropped: false,
            });
        }
        Err(StoreError::IdExhausted)
    }

    /// Whether the box has a greeting of this kind on disk.
    pub fn has_greeting(
        &self,
        mailbox: &MailboxId,
        kind: GreetingKind,
    ) -> Result<bool, StoreError> {
        fsutil::exists(&self.greeting_path(mailbox, kind))
    }
}

/// Best effort: a failure here must not stop a recording.
fn remove_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

impl MessageWriter {
    /// Closes a recording started by [`Store::begin_scratch`] and reads it
    /// back. Errors with [`StoreError::Closed`] for a message writer.
    pub fn finish_scratch(mut self) -> Result<ScratchRecording, StoreError> {
        if self.wav_path.parent() != Some(self.store.scratch_dir().as_path()) {
            return Err(StoreError::Closed);
        }
        let Some(wav) = self.wav.take() else {
            return Err(StoreError::Closed);
        };
        let path = self.wav_path.clone();
        // From here on the file is the ScratchRecording's to delete.
        let mut rec = ScratchRecording {
            mailbox: self.new.mailbox.clone(),
            store: self.store.clone(),
            path,
            samples: Vec::new(),
            installed: false,
        };
        wav.finalize(&rec.path, self.samples)?;
        let mut reader = hound::WavReader::open(&rec.path).map_err(|e| wav_err(&rec.path, e))?;
        if reader.spec() != SPEC {
            return Err(wav_err(
                &rec.path,
                hound::Error::FormatError("not 8 kHz mono 16-bit PCM"),
            ));
        }
        rec.samples = reader
            .samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()
            .map_err(|e| wav_err(&rec.path, e))?;
        Ok(rec)
    }
}

/// A finished scratch recording; deleted on drop unless installed.
pub struct ScratchRecording {
    store: Store,
    mailbox: MailboxId,
    path: PathBuf,
    samples: Vec<i16>,
    installed: bool,
}

impl std::fmt::Debug for ScratchRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchRecording")
            .field("mailbox", &self.mailbox)
            .field("path", &self.path)
            .field("samples", &self.samples.len())
            .finish()
    }
}

impl ScratchRecording {
    /// The recorded audio, 8 kHz mono.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Makes this recording the box's greeting of `kind`, replacing any
    /// previous one atomically (rename within the data directory, then a
    /// sync of the greetings directory).
    pub fn install_greeting(mut self, kind: GreetingKind) -> Result<(), StoreError> {
        let dest = self.store.greeting_path(&self.mailbox, kind);
        let dir = self.store.greetings_dir(&self.mailbox);
        fsutil::create_dir_all(&dir)?;
        fs::rename(&self.path, &dest).map_err(|e| io_err(&dest, e))?;
        self.installed = true;
        fsutil::sync_dir(&dir)
    }
}

impl Drop for ScratchRecording {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fsutil::remove_if_exists(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> MailboxId {
        MailboxId::try_from(s).unwrap()
    }

    fn scratch_files(store: &Store) -> usize {
        fs::read_dir(store.scratch_dir())
            .map(|d| d.count())
            .unwrap_or(0)
    }

    #[test]
    fn scratch_recording_installs_as_greeting() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let bx = mb("1001");
        let mut w = store.begin_scratch(&bx).unwrap();
        let audio: Vec<i16> = (0..12_000).map(|i| (i % 300) as i16).collect();
        w.write(&audio).unwrap();
        let rec = w.finish_scratch().unwrap();
        assert_eq!(rec.samples(), &audio[..]);
        assert!(!store.has_greeting(&bx, GreetingKind::Busy).unwrap());
        rec.install_greeting(GreetingKind::Busy).unwrap();
        assert_eq!(
            store
                .load_greeting(&bx, GreetingKind::Busy)
                .unwrap()
                .unwrap(),
            audio
        );
        assert_eq!(scratch_files(&store), 0);
        // Nothing went through the spool or an inbox.
        assert_eq!(store.recover_spool(0).unwrap(), vec![]);
        assert!(
            store
                .list_messages(&bx, super::super::Folder::Inbox)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn dropped_scratch_recording_is_deleted() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let mut w = store.begin_scratch(&mb("1001")).unwrap();
        w.write(&[5; 800]).unwrap();
        let rec = w.finish_scratch().unwrap();
        assert_eq!(scratch_files(&store), 1);
        drop(rec);
        assert_eq!(scratch_files(&store), 0);
        assert!(
            !store
                .has_greeting(&mb("1001"), GreetingKind::Unavailable)
                .unwrap()
        );
    }

    #[test]
    fn message_writer_is_not_a_scratch_writer() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let w = store
            .begin_message(NewMessage {
                mailbox: mb("1001"),
                caller_number: "1".into(),
                caller_name: None,
                called_number: "2".into(),
                call_id: "c".into(),
                codec: "PCMU".into(),
                started_at: jiff::Timestamp::now(),
            })
            .unwrap();
        assert!(matches!(w.finish_scratch(), Err(StoreError::Closed)));
    }
}
