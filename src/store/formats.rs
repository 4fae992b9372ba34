//! A message's audio in one or two formats: `<id>.wav` and/or `<id>.mp3`
//! beside the one `<id>.json`, as the box's `format` asks.
//!
//! Recording always streams to a spool WAV; the MP3 is encoded from it when
//! the message is committed (on the caller's blocking thread, never the
//! media thread: about 6 ms for 10 s of audio). The MP3 is written
//! atomically before the WAV is renamed into place and before the JSON, so
//! a listed message always has every file its format names; with `mp3`
//! alone, the spool WAV is removed only after the JSON is written, so a
//! crash at any point leaves something `recover_spool` can finish. If the
//! encoder fails, the WAV is kept instead: a message is never lost to a
//! format.
//!
//! Readers take the WAV when there is one and decode the MP3 otherwise;
//! downloads in the format that is not stored are transcoded.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audio::{AudioFormat, StorageFormat};

use super::fsutil::{self, SPEC, io_err, wav_err};
use super::{Folder, MailboxId, MessageId, Store, StoreError};

/// Which format each box keeps its messages in (from the live config).
pub type FormatLookup = Arc<dyn Fn(&MailboxId) -> StorageFormat + Send + Sync>;

impl Store {
    /// Sets how the store learns each box's `format`; until called, every
    /// box keeps WAV only.
    pub fn set_storage_formats(&self, lookup: FormatLookup) {
        *self
            .inner
            .formats
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(lookup);
    }

    /// The format new messages of `mailbox` are kept in. A format this
    /// build cannot write (no `mp3` feature) falls back to WAV.
    pub fn storage_format(&self, mailbox: &MailboxId) -> StorageFormat {
        let lookup = self
            .inner
            .formats
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let format = lookup.map_or(StorageFormat::Wav, |f| f(mailbox));
        if format.can_encode() {
            format
        } else {
            StorageFormat::Wav
        }
    }

    /// The path a message's file of `format` has (whether or not it exists).
    pub(super) fn audio_file_path(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
        format: AudioFormat,
    ) -> PathBuf {
        self.folder_dir(mailbox, folder)
            .join(format!("{id}.{}", format.extension()))
    }

    /// The message's stored file of `format`, if it has one.
    pub fn message_audio_file(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
        format: AudioFormat,
    ) -> Option<PathBuf> {
        let path = self.audio_file_path(mailbox, folder, id, format);
        path.is_file().then_some(path)
    }

    /// Which audio files a message has, `None` when it has none.
    pub fn stored_format(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
    ) -> Option<StorageFormat> {
        let has = |f| self.message_audio_file(mailbox, folder, id, f).is_some();
        StorageFormat::from_parts(has(AudioFormat::Wav), has(AudioFormat::Mp3))
    }

    /// The message's audio as a file of `format`: the stored file's bytes,
    /// or the other stored format transcoded (MP3 from WAV, WAV from MP3).
    pub fn message_audio_bytes(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
        format: AudioFormat,
    ) -> Result<Vec<u8>, StoreError> {
        if let Some(path) = self.message_audio_file(mailbox, folder, id, format) {
            return fs::read(&path).map_err(|e| io_err(&path, e));
        }
        let samples = self.read_message_audio(mailbox, folder, id)?;
        encode(
            &samples,
            format,
            &self.audio_file_path(mailbox, folder, id, format),
        )
    }

    /// Puts a finished WAV at `wav` (a spool or temp file) into `folder` as
    /// message `id` in `format`: the MP3 encoded first (atomically), then
    /// the WAV renamed into place if it is kept. Returns what was stored;
    /// with MP3 only, `wav` is left for the caller to remove once the JSON
    /// is written ([`Store::drop_unkept_wav`]).
    pub(super) fn place_audio(
        &self,
        wav: &Path,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
        format: StorageFormat,
    ) -> Result<StorageFormat, StoreError> {
        let mut stored = format;
        if format.has(AudioFormat::Mp3) {
            let mp3 = self.audio_file_path(mailbox, folder, id, AudioFormat::Mp3);
            if let Err(e) = encode_mp3_file(wav, &mp3) {
                // Keep the recording whatever happens to the encoder.
                tracing::error!(%mailbox, %id, error = %e, "MP3 not written; keeping the message as WAV");
                stored = StorageFormat::Wav;
            }
        }
        if stored.has(AudioFormat::Wav) {
            let dst = self.audio_file_path(mailbox, folder, id, AudioFormat::Wav);
            fs::rename(wav, &dst).map_err(|e| io_err(&dst, e))?;
        }
        // No directory sync here: both callers write the message's JSON
        // into this folder next, and that write's directory sync makes
        // these renames durable too (one fsync instead of two per message).
        Ok(stored)
    }

    /// Removes the source WAV of a message stored as MP3 only, once its
    /// JSON is written.
    pub(super) fn drop_unkept_wav(wav: &Path, stored: StorageFormat) -> Result<(), StoreError> {
        if stored.has(AudioFormat::Wav) {
            Ok(())
        } else {
            fsutil::remove_if_exists(wav)
        }
    }

    /// Hard-links every audio file of a message from `from` into `to`
    /// (replacing leftovers of an interrupted move). Errors when the
    /// message has no audio in `from`.
    pub(super) fn link_audio(
        &self,
        mailbox: &MailboxId,
        from: Folder,
        to: Folder,
        id: &MessageId,
    ) -> Result<(), StoreError> {
        let mut linked = false;
        for format in AudioFormat::ALL {
            let src = self.audio_file_path(mailbox, from, id, format);
            if !fsutil::exists(&src)? {
                continue;
            }
            let dst = self.audio_file_path(mailbox, to, id, format);
            match fs::hard_link(&src, &dst) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    fsutil::remove_if_exists(&dst)?;
                    fs::hard_link(&src, &dst).map_err(|e| io_err(&dst, e))?;
                }
                Err(e) => return Err(io_err(&dst, e)),
            }
            linked = true;
        }
        if linked {
            Ok(())
        } else {
            Err(StoreError::MessageNotFound {
                mailbox: mailbox.clone(),
                folder: from,
                id: id.clone(),
            })
        }
    }

    /// Removes every audio file of a message (absent ones are fine).
    pub(super) fn remove_audio(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
    ) -> Result<(), StoreError> {
        for format in AudioFormat::ALL {
            fsutil::remove_if_exists(&self.audio_file_path(mailbox, folder, id, format))?;
        }
        Ok(())
    }

    /// Whether a message's audio looks usable for a listing: a WAV in the
    /// store's format, or else a non-empty MP3 (decoding every MP3 to list
    /// a folder would cost too much).
    pub(super) fn check_audio(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
    ) -> Result<(), StoreError> {
        let wav = self.audio_file_path(mailbox, folder, id, AudioFormat::Wav);
        if fsutil::exists(&wav)? {
            return fsutil::wav_samples(&wav).map(|_| ());
        }
        let mp3 = self.audio_file_path(mailbox, folder, id, AudioFormat::Mp3);
        let len = fs::metadata(&mp3).map_err(|e| io_err(&mp3, e))?.len();
        if len == 0 {
            return Err(StoreError::Mp3 {
                path: mp3,
                message: "empty file".into(),
            });
        }
        Ok(())
    }

    /// The message's audio as 8 kHz PCM from its MP3 (when it has no WAV).
    pub(super) fn decode_mp3(&self, path: &Path) -> Result<Vec<i16>, StoreError> {
        crate::audio::load_audio(path).map_err(|e| StoreError::Mp3 {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// `samples` as a file of `format`, in memory. `path` only names errors.
fn encode(samples: &[i16], format: AudioFormat, path: &Path) -> Result<Vec<u8>, StoreError> {
    match format {
        AudioFormat::Wav => crate::audio::wav::wav_bytes(samples, SPEC.sample_rate).map_err(|_| {
            StoreError::TooLong {
                max_samples: crate::audio::wav::MAX_WAV_SAMPLES as u64,
            }
        }),
        #[cfg(feature = "mp3")]
        AudioFormat::Mp3 => {
            crate::audio::mp3::encode_mp3(samples, SPEC.sample_rate).map_err(|e| StoreError::Mp3 {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
        #[cfg(not(feature = "mp3"))]
        AudioFormat::Mp3 => Err(StoreError::Mp3 {
            path: path.to_path_buf(),
            message: "this voxmail was built without the `mp3` feature".into(),
        }),
    }
}

/// Samples read from a WAV per encoder call: one second.
#[cfg(feature = "mp3")]
const ENCODE_CHUNK: usize = 8000;

/// Encodes the store-format WAV at `wav` into `mp3`, atomically: a hidden
/// temp file, fsync, rename. Streams, so memory does not grow with length.
#[cfg(feature = "mp3")]
fn encode_mp3_file(wav: &Path, mp3: &Path) -> Result<(), StoreError> {
    let mut reader = hound::WavReader::open(wav).map_err(|e| wav_err(wav, e))?;
    if reader.spec() != SPEC {
        return Err(wav_err(
            wav,
            hound::Error::FormatError("not 8 kHz mono 16-bit PCM"),
        ));
    }
    let tmp = fsutil::temp_path_for(mp3);
    let written = (|| {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        let mut out = io::BufWriter::new(file);
        let mut samples = reader.samples::<i16>();
        let chunks = std::iter::from_fn(|| {
            let chunk: Result<Vec<i16>, StoreError> = samples
                .by_ref()
                .take(ENCODE_CHUNK)
                .map(|s| s.map_err(|e| wav_err(wav, e)))
                .collect();
            match chunk {
                Ok(c) if c.is_empty() => None,
                other => Some(other),
            }
        });
        crate::audio::mp3::write_mp3(&mut out, SPEC.sample_rate, chunks).map_err(
            |e: StoreError| match e {
                StoreError::Mp3 { path, message } if path.as_os_str().is_empty() => {
                    StoreError::Mp3 {
                        path: tmp.clone(),
                        message,
                    }
                }
                other => other,
            },
        )?;
        let file = out.into_inner().map_err(|e| io_err(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        fs::rename(&tmp, mp3).map_err(|e| io_err(mp3, e))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(not(feature = "mp3"))]
fn encode_mp3_file(_wav: &Path, mp3: &Path) -> Result<(), StoreError> {
    Err(StoreError::Mp3 {
        path: mp3.to_path_buf(),
        message: "this voxmail was built without the `mp3` feature".into(),
    })
}

#[cfg(feature = "mp3")]
impl From<crate::audio::mp3::Mp3Error> for StoreError {
    fn from(e: crate::audio::mp3::Mp3Error) -> StoreError {
        StoreError::Mp3 {
            path: PathBuf::new(),
            message: e.to_string(),
        }
    }
}

/// Opens a store-format WAV for reading (used by copies).
pub(super) fn open_store_wav(
    path: &Path,
) -> Result<hound::WavReader<io::BufReader<File>>, StoreError> {
    let reader = hound::WavReader::open(path).map_err(|e| wav_err(path, e))?;
    if reader.spec() != SPEC {
        return Err(wav_err(
            path,
            hound::Error::FormatError("not 8 kHz mono 16-bit PCM"),
        ));
    }
    Ok(reader)
}

#[cfg(all(test, feature = "mp3"))]
#[path = "formats_tests.rs"]
mod tests;
