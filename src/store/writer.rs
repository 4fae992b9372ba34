//! Streaming a recording into the spool, then delivering it to an inbox.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::PathBuf;

use super::fsutil::{self, SPEC, io_err, wav_err};
use super::{Folder, MessageId, MessageMeta, NewMessage, Store, StoreError};
use crate::audio::StorageFormat;

/// The header is rewritten every this many samples (one second at 8 kHz):
/// a crash loses at most the last second from the header's point of view,
/// and `recover_spool` recovers even that from the file length.
pub(super) const FLUSH_EVERY: u64 = 8000;

/// hound counts data bytes in a u32; stop well before it would overflow
/// (about 74 hours at 8 kHz).
pub(super) const MAX_SAMPLES: u64 = (u32::MAX as u64 - 1024) / 2;

/// BufWriter capacity: 16 KiB is one second of audio, so the file sees
/// roughly one write per second of speech.
const BUF_BYTES: usize = 16 * 1024;

/// Streams a recording to disk as it arrives. Memory does not grow with the
/// recording's length: samples go through a fixed `BufWriter` into the spool
/// file, and the WAV header is rewritten about once per second of audio so
/// the file stays valid after a crash.
///
/// Dropping a writer without `finish` or `discard` leaves the recording in
/// the spool; the next `Store::recover_spool` delivers it.
pub struct MessageWriter {
    pub(super) store: Store,
    pub(super) id: MessageId,
    pub(super) new: NewMessage,
    /// `None` only once finish/discard has taken it.
    pub(super) wav: Option<hound::WavWriter<BufWriter<File>>>,
    /// A second handle on the same file, kept for `sync_all` (hound does not
    /// give its writer back).
    pub(super) file: File,
    pub(super) wav_path: PathBuf,
    pub(super) sidecar_path: PathBuf,
    pub(super) samples: u64,
    pub(super) since_flush: u64,
}

impl std::fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageWriter")
            .field("id", &self.id)
            .field("mailbox", &self.new.mailbox)
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl MessageWriter {
    pub(super) fn open_wav(
        path: &std::path::Path,
        file: &File,
    ) -> Result<hound::WavWriter<BufWriter<File>>, StoreError> {
        let handle = file.try_clone().map_err(|e| io_err(path, e))?;
        let mut wav = hound::WavWriter::new(BufWriter::with_capacity(BUF_BYTES, handle), SPEC)
            .map_err(|e| wav_err(path, e))?;
        // Get a valid (empty) header onto disk at once, so even a crash in
        // the first second leaves a recoverable file.
        wav.flush().map_err(|e| wav_err(path, e))?;
        Ok(wav)
    }

    /// The id the message will have once delivered.
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// Appends 8 kHz mono samples.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), StoreError> {
        if self.samples + samples.len() as u64 > MAX_SAMPLES {
            return Err(StoreError::TooLong {
                max_samples: MAX_SAMPLES,
            });
        }
        let Some(wav) = self.wav.as_mut() else {
            return Err(StoreError::Closed);
        };
        let mut rest = samples;
        while !rest.is_empty() {
            // Split at the next checkpoint so the header is rewritten on a
            // steady one-second grid whatever the frame size.
            let room = (FLUSH_EVERY - self.since_flush) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            // `now.len()` <= FLUSH_EVERY, so the cast cannot truncate.
            let mut w = wav.get_i16_writer(now.len() as u32);
            for &s in now {
                w.write_sample(s);
            }
            w.flush().map_err(|e| wav_err(&self.wav_path, e))?;
            self.samples += now.len() as u64;
            self.since_flush += now.len() as u64;
            if self.since_flush >= FLUSH_EVERY {
                wav.flush().map_err(|e| wav_err(&self.wav_path, e))?;
                self.since_flush = 0;
            }
            rest = later;
        }
        Ok(())
    }

    pub fn samples_written(&self) -> u64 {
        self.samples
    }

    /// Delivers the recording to the mailbox's inbox, or discards it (and
    /// returns `Ok(None)`) if it holds fewer than `min_samples`.
    ///
    /// Order matters for crash safety: the WAV is synced and renamed into the
    /// inbox first, the JSON last, so a listed message always has its audio;
    /// the spool sidecar goes only after both, so `recover_spool` can finish
    /// a delivery cut short.
    pub fn finish(mut self, min_samples: u64) -> Result<Option<MessageMeta>, StoreError> {
        if self.samples < min_samples {
            self.remove_spool_files()?;
            return Ok(None);
        }
        let Some(wav) = self.wav.take() else {
            return Err(StoreError::Closed);
        };
        wav.finalize().map_err(|e| wav_err(&self.wav_path, e))?;
        self.file
            .sync_all()
            .map_err(|e| io_err(&self.wav_path, e))?;
        // The box's format now (it may have changed while recording).
        let format = self.store.storage_format(&self.new.mailbox);
        let meta = self
            .store
            .deliver(&self.id, &self.new, &self.wav_path, self.samples, format)?;
        fsutil::remove_if_exists(&self.sidecar_path)?;
        Ok(Some(meta))
    }

    /// Throws the recording away, leaving nothing in the spool.
    pub fn discard(mut self) -> Result<(), StoreError> {
        self.remove_spool_files()
    }

    fn remove_spool_files(&mut self) -> Result<(), StoreError> {
        // Close our handle before unlinking; hound's drop rewrites the
        // header first, a small wasted write we accept to avoid a leak.
        drop(self.wav.take());
        fsutil::remove_if_exists(&self.wav_path)?;
        fsutil::remove_if_exists(&self.sidecar_path)?;
        Ok(())
    }
}

impl Drop for MessageWriter {
    fn drop(&mut self) {
        if self.wav.is_some() {
            // Still recording: hound's own drop finalizes the header; the
            // files stay in the spool for `recover_spool`.
            tracing::warn!(
                id = %self.id,
                mailbox = %self.new.mailbox,
                samples = self.samples,
                "recording dropped without finish; left in the spool for recovery"
            );
        }
        self.store.release_spool_id(&self.id);
    }
}

/// The spool sidecar: what `begin_message` knew, so recovery after a crash
/// can still say whose message it is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct SpoolRecord {
    pub id: String,
    pub mailbox: String,
    pub caller_number: String,
    pub caller_name: Option<String>,
    pub called_number: String,
    pub call_id: String,
    pub codec: String,
    pub started_at: jiff::Timestamp,
    /// The box's `format` when recording began, so recovery after a crash
    /// stores it as the box asked. Absent in older records (WAV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl SpoolRecord {
    pub fn from_new(id: &MessageId, new: &NewMessage) -> SpoolRecord {
        SpoolRecord {
            id: id.as_str().to_owned(),
            mailbox: new.mailbox.as_str().to_owned(),
            caller_number: new.caller_number.clone(),
            caller_name: new.caller_name.clone(),
            called_number: new.called_number.clone(),
            call_id: new.call_id.clone(),
            codec: new.codec.clone(),
            started_at: new.started_at,
            format: None,
        }
    }

    pub fn with_format(mut self, format: StorageFormat) -> SpoolRecord {
        self.format = Some(format.as_str().to_owned());
        self
    }

    /// The format to deliver in: the recorded one if this build can write
    /// it, else the box's current one.
    pub fn format(&self, store: &Store) -> StorageFormat {
        match self.format.as_deref().and_then(StorageFormat::parse) {
            Some(f) if f.can_encode() => f,
            Some(_) => StorageFormat::Wav,
            None => super::MailboxId::try_from(self.mailbox.as_str())
                .map(|m| store.storage_format(&m))
                .unwrap_or_default(),
        }
    }

    pub fn into_new(self) -> Result<(MessageId, NewMessage), StoreError> {
        let id = MessageId::try_from(self.id)?;
        let mailbox = super::MailboxId::try_from(self.mailbox)?;
        Ok((
            id,
            NewMessage {
                mailbox,
                caller_number: self.caller_number,
                caller_name: self.caller_name,
                called_number: self.called_number,
                call_id: self.call_id,
                codec: self.codec,
                started_at: self.started_at,
            },
        ))
    }
}

pub(super) fn meta_for(id: &MessageId, new: &NewMessage, samples: u64) -> MessageMeta {
    MessageMeta {
        id: id.as_str().to_owned(),
        mailbox: new.mailbox.as_str().to_owned(),
        folder: Folder::Inbox,
        caller_number: new.caller_number.clone(),
        caller_name: new.caller_name.clone(),
        called_number: new.called_number.clone(),
        received_at: new.started_at,
        duration_seconds: samples as f64 / f64::from(SPEC.sample_rate),
        codec: new.codec.clone(),
        call_id: new.call_id.clone(),
        format: "wav".to_owned(),
        sample_rate: SPEC.sample_rate,
        urgent: false,
    }
}

/// Reads a spool sidecar.
pub(super) fn read_sidecar(path: &std::path::Path) -> Result<SpoolRecord, StoreError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Json {
        path: path.to_path_buf(),
        source: e,
    })
}
