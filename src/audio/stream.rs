//! Decoding a file a piece at a time, for playing long audio (a stored MP3
//! message) without holding all of it: memory stays the decoder's state and
//! its read buffer however long the file is.
//!
//! Only sources already at 8 kHz are streamed; anything else needs the
//! whole-clip resampler in [`super::load_audio`] (see [`DecodeStream::rate`]).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::AudioDecoder;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatReader;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};

use super::{AudioError, Failure, Opened, TARGET_RATE, open, open_file, to_i16};

/// The smallest read buffer symphonia accepts (its blocks are up to 32 KiB
/// and the ring must be larger, a power of two); its default is the same.
const READ_BUFFER: usize = 64 * 1024;

/// An open audio file, decoded on demand into 8 kHz mono samples.
pub struct DecodeStream {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    rate: Option<u32>,
    /// Decoded, not yet handed out (a packet holds more than asked for).
    pending: VecDeque<i16>,
    interleaved: Vec<f32>,
    ended: bool,
}

impl DecodeStream {
    pub fn open(path: &Path) -> Result<DecodeStream, AudioError> {
        let (file, hint) = open_file(path)?;
        let mss = MediaSourceStream::new(
            Box::new(file),
            MediaSourceStreamOptions {
                buffer_len: READ_BUFFER,
            },
        );
        let Opened {
            format,
            decoder,
            track_id,
            declared_rate: rate,
        } = open(mss, &hint).map_err(|f| match f {
            Failure::Decode(message) => AudioError::Decode {
                path: path.to_path_buf(),
                message,
            },
            // (Only decoding to the end can find a file too long.)
            Failure::NoAudio | Failure::TooLong => AudioError::NoAudio {
                path: path.to_path_buf(),
            },
        })?;
        Ok(DecodeStream {
            path: path.to_path_buf(),
            format,
            decoder,
            track_id,
            rate,
            pending: VecDeque::new(),
            interleaved: Vec::new(),
            ended: false,
        })
    }

    /// The sample rate the file declares, if it does.
    pub fn rate(&self) -> Option<u32> {
        self.rate
    }

    /// Appends up to `max` samples to `out`; returns how many (0: the end).
    /// A truncated file ends where its audio does; a damaged frame is
    /// skipped, as players do.
    pub fn read(&mut self, max: usize, out: &mut Vec<i16>) -> Result<usize, AudioError> {
        while self.pending.len() < max && !self.ended {
            self.decode_packet()?;
        }
        let n = max.min(self.pending.len());
        out.extend(self.pending.drain(..n));
        Ok(n)
    }

    fn decode_packet(&mut self) -> Result<(), AudioError> {
        let decode_err = |e: SymError| AudioError::Decode {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let packet = match self.format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.ended = true;
                return Ok(());
            }
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.ended = true;
                return Ok(());
            }
            Err(e) => return Err(decode_err(e)),
        };
        if packet.track_id != self.track_id {
            return Ok(());
        }
        let buf = match self.decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymError::DecodeError(msg)) => {
                tracing::debug!(path = %self.path.display(), msg, "skipping an undecodable packet");
                return Ok(());
            }
            Err(e) => return Err(decode_err(e)),
        };
        let spec = buf.spec();
        if spec.rate() != TARGET_RATE {
            return Err(AudioError::Decode {
                path: self.path.clone(),
                message: format!("{} Hz audio cannot be streamed", spec.rate()),
            });
        }
        let channels = spec.channels().count().max(1);
        buf.copy_to_vec_interleaved(&mut self.interleaved);
        self.pending.extend(
            self.interleaved
                .chunks_exact(channels)
                .map(|frame| to_i16(frame.iter().sum::<f32>() / channels as f32)),
        );
        Ok(())
    }
}

#[cfg(all(test, feature = "mp3"))]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn an_mp3_streams_in_pieces_as_long_as_the_whole_decode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.mp3");
        let bytes = crate::audio::mp3::encode_mp3(&tone(8000 * 5), 8000).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let whole = crate::audio::load_audio(&path).unwrap();

        let mut stream = DecodeStream::open(&path).unwrap();
        assert_eq!(stream.rate(), Some(8000));
        let mut out = Vec::new();
        let mut reads = 0;
        loop {
            let n = stream.read(1000, &mut out).unwrap();
            assert!(n <= 1000);
            if n == 0 {
                break;
            }
            reads += 1;
        }
        assert!(reads >= 40, "{reads} reads");
        assert_eq!(out, whole);
        // After the end it stays ended.
        assert_eq!(stream.read(1000, &mut out).unwrap(), 0);
    }

    #[test]
    fn a_44k1_file_is_not_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hi.mp3");
        let bytes = crate::audio::mp3::encode_mp3(&tone(44100), 44100).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let mut stream = DecodeStream::open(&path).unwrap();
        assert_eq!(stream.rate(), Some(44100));
        assert!(matches!(
            stream.read(100, &mut Vec::new()),
            Err(AudioError::Decode { .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp3");
        std::fs::write(&path, b"not audio at all, just text").unwrap();
        assert!(DecodeStream::open(&path).is_err());
        assert!(matches!(
            DecodeStream::open(&dir.path().join("missing.mp3")),
            Err(AudioError::Io { .. })
        ));
    }
}
