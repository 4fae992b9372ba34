//! MP3 encoding with LAME (the `mp3lame-encoder` crate, LAME 3.100
//! vendored), wrapped so it cannot be misused:
//!
//! * the crate's safe `encode_to_vec` hands LAME a buffer size of 0 when the
//!   `Vec` has no spare room, which LAME reads as "unbounded" and writes
//!   past the allocation; every call here reserves the documented worst
//!   case first;
//! * the end is flushed with `FlushGap` (`FlushNoGap` drops the last ~0.2 s);
//! * the LAME/Info tag is written back over the first frame, so decoders
//!   (symphonia included) skip the encoder delay and padding and the
//!   decoded length equals the input length.
//!
//! 8 kHz speech is encoded at 32 kbit/s mono (240 kB a minute): the lowest
//! rate whose frames are large enough to hold the tag.

use std::io::{Seek, SeekFrom, Write};
use std::num::NonZeroU32;

use mp3lame_encoder::{Bitrate, Builder, Encoder, FlushGap, Mode, MonoPcm, Quality};

/// Samples handed to LAME per call: bounds the output buffer we reserve.
const CHUNK: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum Mp3Error {
    #[error("MP3 encoder: cannot start LAME")]
    Init,
    #[error("MP3 encoder: {0}")]
    Build(String),
    #[error("MP3 encoder: {0}")]
    Encode(String),
    #[error("MP3 encoder: unsupported sample rate {0} Hz")]
    Rate(u32),
    #[error("writing MP3: {0}")]
    Io(#[from] std::io::Error),
}

/// Bit rate for mono speech at `rate`: high enough for the LAME tag to
/// fit in one frame (see crates.md §4.3).
fn bitrate_for(rate: u32) -> Result<Bitrate, Mp3Error> {
    Ok(match rate {
        8000..=12000 => Bitrate::Kbps32,
        16000..=24000 => Bitrate::Kbps48,
        32000..=48000 => Bitrate::Kbps64,
        _ => return Err(Mp3Error::Rate(rate)),
    })
}

/// A streaming mono encoder: feed PCM with [`Mp3Encoder::encode`], end
/// with [`Mp3Encoder::finish`].
pub struct Mp3Encoder {
    lame: Encoder,
}

impl Mp3Encoder {
    pub fn new(sample_rate: u32) -> Result<Mp3Encoder, Mp3Error> {
        let build = |e: mp3lame_encoder::BuildError| Mp3Error::Build(e.to_string());
        let bitrate = bitrate_for(sample_rate)?;
        let mut b = Builder::new().ok_or(Mp3Error::Init)?;
        b.set_num_channels(1).map_err(build)?;
        b.set_sample_rate(sample_rate).map_err(build)?;
        // Keep the input rate: LAME would otherwise pick one by bit rate.
        b.set_output_sample_rate(NonZeroU32::new(sample_rate))
            .map_err(build)?;
        b.set_brate(bitrate).map_err(build)?;
        b.set_mode(Mode::Mono).map_err(build)?;
        b.set_quality(Quality::Good).map_err(build)?;
        b.set_to_write_vbr_tag(true).map_err(build)?;
        Ok(Mp3Encoder {
            lame: b.build().map_err(build)?,
        })
    }

    /// Encodes `pcm`, appending whatever frames are complete to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), Mp3Error> {
        for chunk in pcm.chunks(CHUNK) {
            // Never let LAME see an empty spare capacity (it means
            // "unbounded" to it): reserve the worst case every time.
            out.reserve(mp3lame_encoder::max_required_buffer_size(chunk.len()));
            self.lame
                .encode_to_vec(MonoPcm(chunk), out)
                .map_err(|e| Mp3Error::Encode(e.to_string()))?;
        }
        Ok(())
    }

    /// Flushes the last frames into `out` and returns the LAME tag frame,
    /// which belongs over the first bytes of the stream (where LAME left a
    /// placeholder of the same size).
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<Vec<u8>, Mp3Error> {
        out.reserve(mp3lame_encoder::max_required_buffer_size(0));
        self.lame
            .flush_to_vec::<FlushGap>(out)
            .map_err(|e| Mp3Error::Encode(e.to_string()))?;
        let mut tag = Vec::new();
        let size = self.lame.lame_tag_size();
        if size == 0 {
            return Ok(tag);
        }
        tag.reserve(size);
        self.lame
            .lame_tag_encode_to_vec(&mut tag)
            .ok_or_else(|| Mp3Error::Encode("the LAME tag did not fit".into()))?;
        Ok(tag)
    }
}

/// The whole of `pcm` (mono, `sample_rate`) as an MP3 file.
pub fn encode_mp3(pcm: &[i16], sample_rate: u32) -> Result<Vec<u8>, Mp3Error> {
    let mut enc = Mp3Encoder::new(sample_rate)?;
    let mut out = Vec::with_capacity(pcm.len() / 2 + 8192);
    enc.encode(pcm, &mut out)?;
    let tag = enc.finish(&mut out)?;
    if tag.len() <= out.len() {
        out[..tag.len()].copy_from_slice(&tag);
    }
    Ok(out)
}

/// Streams PCM chunks (mono, `sample_rate`) from `pcm` into `file` as an
/// MP3, then writes the LAME tag back over the first frame. Memory stays
/// one chunk whatever the length.
pub fn write_mp3<W, I, E>(file: &mut W, sample_rate: u32, pcm: I) -> Result<(), E>
where
    W: Write + Seek,
    I: IntoIterator<Item = Result<Vec<i16>, E>>,
    E: From<Mp3Error>,
{
    let mut enc = Mp3Encoder::new(sample_rate)?;
    let mut buf = Vec::new();
    for chunk in pcm {
        buf.clear();
        enc.encode(&chunk?, &mut buf)?;
        file.write_all(&buf).map_err(Mp3Error::Io)?;
    }
    buf.clear();
    let tag = enc.finish(&mut buf)?;
    file.write_all(&buf).map_err(Mp3Error::Io)?;
    if !tag.is_empty() {
        file.seek(SeekFrom::Start(0)).map_err(Mp3Error::Io)?;
        file.write_all(&tag).map_err(Mp3Error::Io)?;
        file.seek(SeekFrom::End(0)).map_err(Mp3Error::Io)?;
    }
    file.flush().map_err(Mp3Error::Io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    /// A voice-like test signal: two tones with a slow amplitude wobble.
    fn speechish(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let env = 0.6 + 0.4 * (TAU * 3.0 * t).sin();
                let s = 0.5 * (TAU * 440.0 * t).sin() + 0.3 * (TAU * 1170.0 * t).sin();
                (env * s * 12000.0) as i16
            })
            .collect()
    }

    fn decode(bytes: Vec<u8>) -> Vec<i16> {
        crate::audio::decode_bytes(bytes, 3600).unwrap()
    }

    fn correlation(a: &[i16], b: &[i16]) -> f64 {
        let n = a.len().min(b.len());
        let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..n {
            let (x, y) = (f64::from(a[i]), f64::from(b[i]));
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa.sqrt() * bb.sqrt()).max(1.0)
    }

    #[test]
    fn round_trip_through_symphonia_keeps_length_and_shape() {
        let pcm = speechish(80_000);
        let mp3 = encode_mp3(&pcm, 8000).unwrap();
        // 32 kbit/s for 10 s is 40 kB; frames and tag add a little.
        assert!((38_000..44_000).contains(&mp3.len()), "{} bytes", mp3.len());
        let back = decode(mp3);
        // The LAME tag carries delay and padding: within a frame (576
        // samples at 8 kHz) of the input, exact in practice.
        let diff = back.len().abs_diff(pcm.len());
        assert!(diff <= 576, "{} samples back for {}", back.len(), pcm.len());
        let c = correlation(&pcm, &back);
        assert!(c > 0.95, "correlation {c}");
    }

    #[test]
    fn streaming_writer_matches_the_whole_buffer_encoder() {
        let pcm = speechish(24_000);
        let whole = encode_mp3(&pcm, 8000).unwrap();
        let mut file = std::io::Cursor::new(Vec::new());
        let chunks = pcm.chunks(1000).map(|c| Ok::<_, Mp3Error>(c.to_vec()));
        write_mp3(&mut file, 8000, chunks).unwrap();
        assert_eq!(file.into_inner(), whole);
    }

    #[test]
    fn short_and_empty_inputs_still_make_valid_files() {
        // A tenth of a second: shorter than LAME's look-ahead.
        let pcm = speechish(800);
        let back = decode(encode_mp3(&pcm, 8000).unwrap());
        assert!(back.len().abs_diff(800) <= 576, "{}", back.len());
        let empty = encode_mp3(&[], 8000).unwrap();
        assert!(empty.len() < 2000, "{}", empty.len());
    }

    #[test]
    fn rates_without_a_bit_rate_are_refused() {
        assert!(matches!(Mp3Encoder::new(7000), Err(Mp3Error::Rate(7000))));
        assert!(Mp3Encoder::new(16000).is_ok());
    }
}
