//! Audio messages: named recordings that dial-plan `play` and `menu` nodes
//! use (and that override a built-in prompt of the same name), recorded by
//! phone with the `record_message` app or uploaded through the API.
//!
//! ```text
//! <data>/audio/<name>.wav     8 kHz mono 16-bit PCM
//! ```
//! Names are 1-64 characters of `[0-9A-Za-z_-]`, so a name can never be a
//! path, a hidden file or a temp file. Writes are atomic (a hidden temp file,
//! fsync, rename, fsync of the directory): a player sees the old recording
//! or the new one, never half of one. Uploads and text-to-speech are
//! decoded and resampled by `crate::audio` before they get here; the store
//! only holds 8 kHz WAV.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::PathBuf;

use super::fsutil::{self, SPEC, io_err, wav_err};
use super::{MailboxId, MessageWriter, Store, StoreError, writer};

/// Scratch recordings belong to a mailbox; audio messages recorded by phone
/// go through the scratch area under this placeholder (never a directory).
const SCRATCH_OWNER: &str = "audio-messages";

/// Longest audio message name.
pub const AUDIO_MESSAGE_NAME_MAX: usize = 64;

/// Whether `name` is a valid audio message name: 1-64 characters of
/// `[0-9A-Za-z_-]`.
pub fn is_valid_audio_message_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= AUDIO_MESSAGE_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if is_valid_audio_message_name(name) {
        Ok(())
    } else {
        Err(StoreError::InvalidId {
            kind: "audio message",
            // Cap what goes into logs: the value came from outside.
            value: name.chars().take(80).collect(),
        })
    }
}

impl Store {
    fn audio_dir(&self) -> PathBuf {
        self.root().join("audio")
    }

    /// The file of a (validated) audio message name.
    fn audio_message_path_of(&self, name: &str) -> Result<PathBuf, StoreError> {
        check_name(name)?;
        Ok(self.audio_dir().join(format!("{name}.wav")))
    }

    /// Starts recording an audio message by phone: a scratch recording
    /// (nothing is listed or replaced yet). Close it with
    /// [`MessageWriter::finish_scratch`], then store its samples with
    /// [`Store::save_audio_message`]; a recording that is dropped is deleted.
    pub fn begin_audio_message_recording(&self) -> Result<MessageWriter, StoreError> {
        let owner = MailboxId::try_from(SCRATCH_OWNER)?;
        self.begin_scratch(&owner)
    }

    /// Stores an audio message (8 kHz mono PCM), replacing any previous one
    /// of that name atomically.
    pub fn save_audio_message(&self, name: &str, samples: &[i16]) -> Result<(), StoreError> {
        let path = self.audio_message_path_of(name)?;
        if samples.len() as u64 > writer::MAX_SAMPLES {
            return Err(StoreError::TooLong {
                max_samples: writer::MAX_SAMPLES,
            });
        }
        fsutil::create_dir_all(&self.audio_dir())?;
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

    /// An audio message as 8 kHz mono PCM, `Ok(None)` if there is none. A
    /// corrupt or wrongly formatted file is logged and treated as absent (a
    /// dial plan then falls back to the prompt of that name). An invalid
    /// name is an error.
    pub fn load_audio_message(&self, name: &str) -> Result<Option<Vec<i16>>, StoreError> {
        let path = self.audio_message_path_of(name)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let decoded = hound::WavReader::new(BufReader::new(file)).and_then(|mut r| {
            if r.spec() != SPEC {
                return Err(hound::Error::FormatError("not 8 kHz mono 16-bit PCM"));
            }
            r.samples::<i16>().collect::<Result<Vec<i16>, _>>()
        });
        match decoded {
            Ok(samples) => Ok(Some(samples)),
            // Dropped in by hand at another rate or as float/stereo:
            // decode and resample once, like any other audio.
            Err(first) => match crate::audio::load_audio(&path) {
                Ok(samples) => Ok(Some(samples)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, wav_error = %first, "unusable audio message; ignored");
                    Ok(None)
                }
            },
        }
    }

    /// The length of a stored audio message in samples, from its WAV
    /// header; `Ok(None)` when there is none or its file is not the
    /// store's format (it then plays through the decoder, see
    /// [`Store::load_audio_message`]).
    pub fn audio_message_samples(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let path = self.audio_message_path_of(name)?;
        if !fsutil::exists(&path)? {
            return Ok(None);
        }
        match fsutil::wav_samples(&path) {
            Ok(n) => Ok(Some(n)),
            Err(StoreError::Io { path, source }) => Err(StoreError::Io { path, source }),
            Err(_) => Ok(None),
        }
    }

    /// Whether an audio message of this name is stored. An invalid name, or
    /// a directory that cannot be read, answers `false` (for the dial-plan
    /// checker's predicate).
    pub fn audio_message_exists(&self, name: &str) -> bool {
        self.audio_message_path_of(name).is_ok_and(|p| p.is_file())
    }

    /// The names of the stored audio messages, sorted. Files whose names
    /// are not valid audio message names (temp files, stray files) are
    /// ignored.
    pub fn list_audio_messages(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.audio_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if !is_file {
                continue;
            }
            if let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".wav"))
                && is_valid_audio_message_name(name)
            {
                out.push(name.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes an audio message; `Ok(false)` if there was none.
    pub fn delete_audio_message(&self, name: &str) -> Result<bool, StoreError> {
        let path = self.audio_message_path_of(name)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                fsutil::sync_dir(&self.audio_dir())?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        (d, s)
    }

    #[test]
    fn round_trip_replace_list_delete() {
        let (d, store) = store();
        assert_eq!(store.list_audio_messages().unwrap(), Vec::<String>::new());
        assert_eq!(store.load_audio_message("msg-1").unwrap(), None);
        assert!(!store.audio_message_exists("msg-1"));

        let a: Vec<i16> = (0..4000).map(|i| (i % 200) as i16 - 100).collect();
        store.save_audio_message("msg-1", &a).unwrap();
        store.save_audio_message("Welcome_FR", &[1, 2, 3]).unwrap();
        assert!(store.audio_message_exists("msg-1"));
        assert_eq!(store.load_audio_message("msg-1").unwrap(), Some(a));
        assert!(d.path().join("audio/msg-1.wav").is_file());
        assert_eq!(
            store.list_audio_messages().unwrap(),
            vec!["Welcome_FR".to_owned(), "msg-1".to_owned()]
        );

        // Replacing leaves one file and no temp file behind.
        store.save_audio_message("msg-1", &[9; 10]).unwrap();
        assert_eq!(
            store.load_audio_message("msg-1").unwrap(),
            Some(vec![9; 10])
        );
        let files = fs::read_dir(d.path().join("audio")).unwrap().count();
        assert_eq!(files, 2);

        assert!(store.delete_audio_message("msg-1").unwrap());
        assert!(!store.delete_audio_message("msg-1").unwrap());
        assert!(!store.audio_message_exists("msg-1"));
        assert_eq!(store.list_audio_messages().unwrap(), vec!["Welcome_FR"]);
    }

    #[test]
    fn a_phone_recording_is_saved_only_when_asked() {
        let (d, store) = store();
        let mut w = store.begin_audio_message_recording().unwrap();
        w.write(&[3; 1600]).unwrap();
        let rec = w.finish_scratch().unwrap();
        assert_eq!(store.list_audio_messages().unwrap(), Vec::<String>::new());
        store.save_audio_message("msg-7", rec.samples()).unwrap();
        drop(rec);
        assert_eq!(
            store.load_audio_message("msg-7").unwrap(),
            Some(vec![3; 1600])
        );
        // The scratch file is gone, and no mailbox was created for it.
        assert_eq!(fs::read_dir(d.path().join("scratch")).unwrap().count(), 0);
        assert!(store.list_mailboxes().unwrap().is_empty());
    }

    #[test]
    fn names_are_validated() {
        let (d, store) = store();
        let long = "a".repeat(AUDIO_MESSAGE_NAME_MAX);
        let too_long = "a".repeat(AUDIO_MESSAGE_NAME_MAX + 1);
        assert!(is_valid_audio_message_name(&long));
        store.save_audio_message(&long, &[1]).unwrap();
        for bad in [
            "",
            too_long.as_str(),
            "../escape",
            "a/b",
            ".hidden",
            "a b",
            "é",
            "x.wav",
        ] {
            assert!(!is_valid_audio_message_name(bad), "{bad:?}");
            assert!(
                matches!(
                    store.save_audio_message(bad, &[1]),
                    Err(StoreError::InvalidId {
                        kind: "audio message",
                        ..
                    })
                ),
                "{bad:?}"
            );
            assert!(store.load_audio_message(bad).is_err(), "{bad:?}");
            assert!(store.delete_audio_message(bad).is_err(), "{bad:?}");
            assert!(!store.audio_message_exists(bad), "{bad:?}");
        }
        // Nothing escaped the audio directory.
        assert!(!d.path().join("escape.wav").exists());
        assert_eq!(store.list_audio_messages().unwrap(), vec![long]);
    }

    #[test]
    fn stray_and_corrupt_files_are_ignored() {
        let (d, store) = store();
        let dir = d.path().join("audio");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".msg-2.wav.1234.tmp"), b"partial").unwrap();
        fs::write(dir.join("notes.txt"), b"x").unwrap();
        fs::write(dir.join("bad name.wav"), b"x").unwrap();
        fs::write(dir.join("broken.wav"), b"not a wav").unwrap();
        let stereo = hound::WavSpec {
            channels: 2,
            ..SPEC
        };
        let mut w = hound::WavWriter::create(dir.join("stereo.wav"), stereo).unwrap();
        w.write_sample(1i16).unwrap();
        w.write_sample(1i16).unwrap();
        w.finalize().unwrap();
        assert_eq!(
            store.list_audio_messages().unwrap(),
            vec!["broken".to_owned(), "stereo".to_owned()]
        );
        assert_eq!(store.load_audio_message("broken").unwrap(), None);
        // Another format is decoded and downmixed rather than refused.
        assert_eq!(store.load_audio_message("stereo").unwrap(), Some(vec![1]));
    }
}
