//! Streaming a recording into the spool, then delivering it to an inbox.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::fsutil::{self, SPEC, io_err};
use super::{Folder, MessageId, MessageMeta, NewMessage, Store, StoreError};
use crate::audio::StorageFormat;

/// hound counts data bytes in a u32; stop well before it would overflow
/// (about 74 hours at 8 kHz).
pub(super) const MAX_SAMPLES: u64 = (u32::MAX as u64 - 1024) / 2;

/// Samples are written to the file once this many bytes are buffered: one
/// second of audio, about one `write` per second of speech. A crash loses
/// at most this and a page (1.26 s).
pub(super) const FLUSH_BYTES: usize = 16_000;

/// Writes end on a page boundary of the file: a write that covers whole
/// new pages is copied into the page cache as is, where one that ends
/// mid-page has the kernel zero the page's rest first and come back to it
/// on the next write (about 5 % less system time for a recording's writes).
pub(super) const PAGE: u64 = 4096;

/// The 44-byte header of the store's format (8 kHz mono 16-bit PCM) for
/// `data_bytes` of samples.
fn wav_header(data_bytes: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let byte_rate = SPEC.sample_rate * u32::from(SPEC.channels) * 2;
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36u32.saturating_add(data_bytes)).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&SPEC.channels.to_le_bytes());
    h[24..28].copy_from_slice(&SPEC.sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&(SPEC.channels * 2).to_le_bytes());
    h[34..36].copy_from_slice(&SPEC.bits_per_sample.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// A spool WAV being written: the header goes out once with zero lengths,
/// samples are appended a second at a time, and the lengths are filled in
/// at the end. Rewriting the header as the file grows (what `hound` does on
/// each flush) cost four seeks and two small writes a second per call;
/// after a crash `recover_spool` takes the length from the file's size
/// instead (`fsutil::repair_wav`), so nothing depends on it.
pub(super) struct SpoolWav {
    file: File,
    buf: Vec<u8>,
    data_bytes: u64,
}

impl SpoolWav {
    /// Starts the WAV in a freshly created, empty `file`.
    pub(super) fn start(path: &Path, mut file: File) -> Result<SpoolWav, StoreError> {
        // A header at once, so even a crash in the first second leaves a
        // file that recovery recognises.
        file.write_all(&wav_header(0))
            .map_err(|e| io_err(path, e))?;
        Ok(SpoolWav {
            file,
            buf: Vec::with_capacity(FLUSH_BYTES + PAGE as usize + 2 * 320),
            data_bytes: 0,
        })
    }

    fn write(&mut self, path: &Path, samples: &[i16]) -> Result<(), StoreError> {
        // Sized once and filled in place: this compiles to a copy, where a
        // push per sample did not.
        let start = self.buf.len();
        self.buf.resize(start + samples.len() * 2, 0);
        for (out, s) in self.buf[start..].chunks_exact_mut(2).zip(samples) {
            out.copy_from_slice(&s.to_le_bytes());
        }
        if self.buf.len() >= FLUSH_BYTES {
            self.flush_pages(path)?;
        }
        Ok(())
    }

    /// Writes what is buffered up to the last whole page of the file; the
    /// rest (under a page) waits for the next write.
    fn flush_pages(&mut self, path: &Path) -> Result<(), StoreError> {
        let written = 44 + self.data_bytes;
        let end = (written + self.buf.len() as u64) / PAGE * PAGE;
        self.write_out(path, end.saturating_sub(written) as usize)
    }

    /// Writes everything buffered.
    fn flush(&mut self, path: &Path) -> Result<(), StoreError> {
        self.write_out(path, self.buf.len())
    }

    /// Writes the first `n` buffered bytes.
    fn write_out(&mut self, path: &Path, n: usize) -> Result<(), StoreError> {
        if n > 0 {
            self.file
                .write_all(&self.buf[..n])
                .map_err(|e| io_err(path, e))?;
            self.data_bytes += n as u64;
            self.buf.drain(..n);
        }
        Ok(())
    }

    /// Writes what is buffered, cuts the audio to `keep_samples` if it is
    /// longer ([`MessageWriter::drop_tail`]), writes the final lengths, and
    /// syncs the file.
    pub(super) fn finalize(mut self, path: &Path, keep_samples: u64) -> Result<(), StoreError> {
        let keep_bytes = keep_samples.saturating_mul(2);
        if let Some(buffered) = keep_bytes.checked_sub(self.data_bytes) {
            self.buf
                .truncate(usize::try_from(buffered).unwrap_or(usize::MAX));
            self.flush(path)?;
        } else {
            // What goes is partly on disk already.
            self.buf.clear();
            self.file
                .set_len(44 + keep_bytes)
                .map_err(|e| io_err(path, e))?;
            self.data_bytes = keep_bytes;
        }
        let data = u32::try_from(self.data_bytes).map_err(|_| StoreError::TooLong {
            max_samples: MAX_SAMPLES,
        })?;
        self.file
            .write_all_at(&wav_header(data), 0)
            .map_err(|e| io_err(path, e))?;
        self.file.sync_all().map_err(|e| io_err(path, e))
    }
}

/// Streams a recording to disk as it arrives. Memory does not grow with the
/// recording's length: samples go through a one-second buffer into the
/// spool file ([`SpoolWav`]).
///
/// Dropping a writer without `finish` or `discard` leaves the recording in
/// the spool; the next `Store::recover_spool` delivers it.
pub struct MessageWriter {
    pub(super) store: Store,
    pub(super) id: MessageId,
    pub(super) new: NewMessage,
    /// `None` only once finish/discard has taken it.
    pub(super) wav: Option<SpoolWav>,
    pub(super) wav_path: PathBuf,
    pub(super) sidecar_path: PathBuf,
    pub(super) samples: u64,
    /// Set by [`MessageWriter::drop_tail`]: nothing more is written.
    pub(super) tail_dropped: bool,
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
    /// The id the message will have once delivered.
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// Appends 8 kHz mono samples.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), StoreError> {
        if self.tail_dropped {
            return Err(StoreError::Closed);
        }
        if self.samples + samples.len() as u64 > MAX_SAMPLES {
            return Err(StoreError::TooLong {
                max_samples: MAX_SAMPLES,
            });
        }
        let Some(wav) = self.wav.as_mut() else {
            return Err(StoreError::Closed);
        };
        // Counted even if the write fails: the samples stay buffered and
        // go out with the next flush.
        let written = wav.write(&self.wav_path, samples);
        self.samples += samples.len() as u64;
        written
    }

    pub fn samples_written(&self) -> u64 {
        self.samples
    }

    /// Leaves the last `samples` out of the recording (the silence that
    /// ended it), as Asterisk does with the silence that stopped a
    /// recording, so that `finish`'s minimum length judges what was said.
    /// No I/O here (the media thread calls it): `finish` cuts the file.
    /// Ends the recording: later writes fail.
    pub fn drop_tail(&mut self, samples: u64) {
        self.samples = self.samples.saturating_sub(samples);
        self.tail_dropped = true;
    }

    /// Delivers the recording to the mailbox's inbox, or discards it (and
    /// returns `Ok(None)`) if it holds fewer than `min_samples`.
    ///
    /// Order matters for crash safety: the WAV is synced and renamed into the
    /// inbox first, the JSON last, so a listed message always has its audio;
    /// the JSON is the spool sidecar itself, rewritten and moved, so
    /// `recover_spool` can finish a delivery cut short at any step.
    pub fn finish(mut self, min_samples: u64) -> Result<Option<MessageMeta>, StoreError> {
        if self.samples < min_samples {
            self.remove_spool_files()?;
            return Ok(None);
        }
        let Some(wav) = self.wav.take() else {
            return Err(StoreError::Closed);
        };
        wav.finalize(&self.wav_path, self.samples)?;
        // The box's format now (it may have changed while recording).
        let format = self.store.storage_format(&self.new.mailbox);
        let meta = self.store.deliver(
            &self.id,
            &self.new,
            &self.wav_path,
            &self.sidecar_path,
            self.samples,
            format,
        )?;
        Ok(Some(meta))
    }

    /// Throws the recording away, leaving nothing in the spool.
    pub fn discard(mut self) -> Result<(), StoreError> {
        self.remove_spool_files()
    }

    fn remove_spool_files(&mut self) -> Result<(), StoreError> {
        // Close our handle before unlinking (nothing buffered is written).
        self.wav = None;
        fsutil::remove_if_exists(&self.wav_path)?;
        fsutil::remove_if_exists(&self.sidecar_path)?;
        Ok(())
    }
}

impl Drop for MessageWriter {
    fn drop(&mut self) {
        if let Some(wav) = self.wav.as_mut() {
            // Still recording: what is buffered goes to the file, which
            // stays in the spool for `recover_spool`.
            let _ = wav.flush(&self.wav_path);
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

/// What a spool sidecar holds: the recording's description while it is
/// recorded, the message's final metadata once delivery has rewritten it
/// (just before it moves into the inbox as the message's JSON).
#[derive(Debug)]
pub(super) enum Sidecar {
    Recording(SpoolRecord),
    Delivered(MessageMeta),
}

/// Reads a spool sidecar of either kind. The two shapes cannot be taken for
/// each other (`started_at` against `received_at` and `folder`).
pub(super) fn read_sidecar(path: &std::path::Path) -> Result<Sidecar, StoreError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    let recording = match serde_json::from_slice::<SpoolRecord>(&bytes) {
        Ok(r) => return Ok(Sidecar::Recording(r)),
        Err(e) => e,
    };
    // The final metadata is written over the record from the start, then
    // the file is cut to its length: a crash between the two leaves the
    // record's tail after a complete JSON value.
    match serde_json::Deserializer::from_slice(&bytes)
        .into_iter::<MessageMeta>()
        .next()
    {
        Some(Ok(meta)) => Ok(Sidecar::Delivered(meta)),
        _ => Err(StoreError::Json {
            path: path.to_path_buf(),
            source: recording,
        }),
    }
}
