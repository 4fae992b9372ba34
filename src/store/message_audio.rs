//! A stored message's audio read a piece at a time, for playing it to a
//! caller: memory stays a few kilobytes of buffer however long the
//! message is (a ten-minute message is 9.6 MB as samples).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::formats::open_store_wav;
use super::fsutil::{io_err, wav_err};
use super::{Folder, MailboxId, MessageId, Store, StoreError};
use crate::audio::DecodeStream;

/// An open message, 8 kHz mono samples on demand.
pub struct MessageAudio {
    path: PathBuf,
    source: Source,
    /// A read that failed after some samples: those are returned first,
    /// the error on the next read (a damaged file plays up to the damage).
    failed: Option<StoreError>,
}

enum Source {
    /// The store's WAV (8 kHz mono 16-bit, checked when opened), read in
    /// bulk from the data chunk: `left` bytes of it not read yet.
    Wav {
        file: File,
        left: u64,
    },
    Mp3(Box<DecodeStream>),
    /// An MP3 that is not 8 kHz (not one voxmail wrote): resampled whole,
    /// as prompts are, then handed out from memory.
    Loaded {
        samples: Vec<i16>,
        next: usize,
    },
}

impl Store {
    /// Opens a message's audio for reading in pieces: its WAV, else its MP3.
    pub fn open_message_audio(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
    ) -> Result<MessageAudio, StoreError> {
        let path = self.message_audio_path(mailbox, folder, id)?;
        let mp3_err = |e: crate::audio::AudioError| StoreError::Mp3 {
            path: path.clone(),
            message: e.to_string(),
        };
        let source = if path.extension().is_some_and(|e| e == "mp3") {
            let stream = DecodeStream::open(&path).map_err(mp3_err)?;
            if stream.rate() == Some(crate::audio::TARGET_RATE) {
                Source::Mp3(Box::new(stream))
            } else {
                drop(stream);
                let samples = crate::audio::load_audio(&path).map_err(mp3_err)?;
                Source::Loaded { samples, next: 0 }
            }
        } else {
            let reader = open_store_wav(&path)?;
            let left = u64::from(reader.len()) * 2;
            // hound stops at the start of the samples; read on from there
            // without its per-sample decoding and 8 KiB buffer.
            let mut data = reader.into_inner();
            let start = data.stream_position().map_err(|e| io_err(&path, e))?;
            let mut file = data.into_inner();
            file.seek(SeekFrom::Start(start))
                .map_err(|e| io_err(&path, e))?;
            Source::Wav { file, left }
        };
        Ok(MessageAudio {
            path,
            source,
            failed: None,
        })
    }
}

impl MessageAudio {
    /// Appends up to `max` samples to `out`; returns how many (0: the end).
    pub fn read(&mut self, max: usize, out: &mut Vec<i16>) -> Result<usize, StoreError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let before = out.len();
        let result = match &mut self.source {
            Source::Wav { file, left } => {
                let want = (max as u64 * 2).min(*left);
                let mut bytes = Vec::with_capacity(want as usize);
                match file.take(want).read_to_end(&mut bytes) {
                    Ok(got) => {
                        *left -= got as u64;
                        out.extend(
                            bytes
                                .chunks_exact(2)
                                .map(|b| i16::from_le_bytes([b[0], b[1]])),
                        );
                        if (got as u64) < want {
                            *left = 0;
                            Err(wav_err(
                                &self.path,
                                hound::Error::IoError(io::ErrorKind::UnexpectedEof.into()),
                            ))
                        } else {
                            Ok(())
                        }
                    }
                    Err(e) => Err(io_err(&self.path, e)),
                }
            }
            Source::Mp3(stream) => stream
                .read(max, out)
                .map(drop)
                .map_err(|e| StoreError::Mp3 {
                    path: self.path.clone(),
                    message: e.to_string(),
                }),
            Source::Loaded { samples, next } => {
                let end = samples.len().min(*next + max);
                out.extend_from_slice(&samples[*next..end]);
                *next = end;
                Ok(())
            }
        };
        let read = out.len() - before;
        match result {
            Err(e) if read == 0 => Err(e),
            Err(e) => {
                self.failed = Some(e);
                Ok(read)
            }
            Ok(()) => Ok(read),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::StorageFormat;
    use std::sync::Arc;

    fn mb(s: &str) -> MailboxId {
        MailboxId::try_from(s).unwrap()
    }

    /// A store whose box 1001 keeps `format`, holding one message of `len`
    /// samples of a tone.
    fn store_with_message(
        format: StorageFormat,
        len: usize,
    ) -> (tempfile::TempDir, Store, MessageId) {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        store.set_storage_formats(Arc::new(move |_: &MailboxId| format));
        let tone: Vec<i16> = (0..len)
            .map(|i| (9000.0 * (i as f64 * 0.2).sin()) as i16)
            .collect();
        let id = store.deposit_for_test("1001", &tone);
        (d, store, id)
    }

    fn read_all(mut audio: MessageAudio, piece: usize) -> Vec<i16> {
        let mut out = Vec::new();
        while audio.read(piece, &mut out).unwrap() > 0 {}
        out
    }

    #[test]
    fn a_wav_message_reads_in_pieces_the_same_as_whole() {
        let (_dir, store, id) = store_with_message(StorageFormat::Wav, 8000 * 3 + 123);
        let whole = store
            .read_message_audio(&mb("1001"), Folder::Inbox, &id)
            .unwrap();
        assert_eq!(whole.len(), 8000 * 3 + 123);
        let audio = store
            .open_message_audio(&mb("1001"), Folder::Inbox, &id)
            .unwrap();
        assert_eq!(read_all(audio, 1000), whole);
    }

    #[cfg(feature = "mp3")]
    #[test]
    fn an_mp3_only_message_streams_its_decoded_audio() {
        let (_dir, store, id) = store_with_message(StorageFormat::Mp3, 8000 * 4);
        let whole = store
            .read_message_audio(&mb("1001"), Folder::Inbox, &id)
            .unwrap();
        let audio = store
            .open_message_audio(&mb("1001"), Folder::Inbox, &id)
            .unwrap();
        assert!(matches!(audio.source, Source::Mp3(_)));
        assert_eq!(read_all(audio, 777), whole);
    }

    #[test]
    fn a_truncated_wav_plays_up_to_the_damage_then_errs() {
        let (_dir, store, id) = store_with_message(StorageFormat::Wav, 8000);
        let path = store
            .message_audio_path(&mb("1001"), Folder::Inbox, &id)
            .unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 4001).unwrap(); // 5,999.5 samples left
        let mut audio = store
            .open_message_audio(&mb("1001"), Folder::Inbox, &id)
            .unwrap();
        let mut out = Vec::new();
        assert_eq!(audio.read(4000, &mut out).unwrap(), 4000);
        assert_eq!(audio.read(4000, &mut out).unwrap(), 1999);
        assert!(audio.read(4000, &mut out).is_err());
    }

    #[test]
    fn a_missing_or_damaged_message_is_an_error() {
        let (_dir, store, id) = store_with_message(StorageFormat::Wav, 800);
        assert!(matches!(
            store.open_message_audio(&mb("1001"), Folder::Old, &id),
            Err(StoreError::MessageNotFound { .. })
        ));
        let path = store
            .message_audio_path(&mb("1001"), Folder::Inbox, &id)
            .unwrap();
        std::fs::write(&path, b"RIFF....WAVEjunk").unwrap();
        assert!(
            store
                .open_message_audio(&mb("1001"), Folder::Inbox, &id)
                .is_err()
        );
    }
}
