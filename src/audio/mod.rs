//! Audio files of any rate and channel count to the 8 kHz mono the media
//! path plays: WAV (PCM or float) and MP3, decoded with symphonia, downmixed
//! by averaging the channels and resampled once, when loaded, with rubato's
//! FFT resampler (whose filter removes what 8 kHz cannot carry instead of
//! letting it alias). Files on disk (prompts, music on hold, stored
//! messages) and uploads in memory (greetings, audio messages) go through
//! the same decoder. Long 8 kHz files (stored messages) can instead be
//! decoded a piece at a time with [`stream::DecodeStream`].
//!
//! Writing: [`wav`] (PCM WAV in memory) and, with the `mp3` cargo feature,
//! [`mp3`] (LAME).

pub mod format;
#[cfg(feature = "mp3")]
pub mod mp3;
pub mod stream;
pub mod tts;
pub mod wav;

pub use format::{AudioFormat, StorageFormat};
pub use stream::DecodeStream;

use std::fs::File;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

/// The rate everything is converted to.
pub const TARGET_RATE: u32 = 8000;

/// Longest file we load: an hour is plenty for music on hold and keeps
/// memory bounded (an hour at 48 kHz stereo is ~1.4 GB of f32 otherwise).
pub const MAX_SECONDS: u64 = 3600;

/// Why audio in memory (an upload) could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a WAV or MP3 file we can decode: {0}")]
    Unsupported(String),
    #[error("the file holds no audio")]
    Empty,
    #[error("longer than {max_seconds} seconds")]
    TooLong { max_seconds: u32 },
    #[error("resampling from {rate} Hz failed: {message}")]
    Resample { rate: u32, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: cannot decode: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("{path}: no audio track")]
    NoAudio { path: PathBuf },
    #[error("{path}: longer than {MAX_SECONDS} seconds")]
    TooLong { path: PathBuf },
    #[error("{path}: resampling from {rate} Hz failed: {message}")]
    Resample {
        path: PathBuf,
        rate: u32,
        message: String,
    },
}

/// Opens `path`, with its extension as the decoder's hint.
fn open_file(path: &Path) -> Result<(File, Hint), AudioError> {
    let file = File::open(path).map_err(|source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    Ok((file, hint))
}

/// Decodes a WAV or MP3 file into 8 kHz mono 16-bit samples.
pub fn load_audio(path: &Path) -> Result<Vec<i16>, AudioError> {
    let (file, hint) = open_file(path)?;
    let max = u32::try_from(MAX_SECONDS).unwrap_or(u32::MAX);
    let with_path = |f: Failure| match f {
        Failure::Decode(message) => AudioError::Decode {
            path: path.to_path_buf(),
            message,
        },
        Failure::NoAudio => AudioError::NoAudio {
            path: path.to_path_buf(),
        },
        Failure::TooLong => AudioError::TooLong {
            path: path.to_path_buf(),
        },
    };
    let (mono, rate) = decode_mono(Box::new(file), hint, max, path).map_err(with_path)?;
    to_8k(mono, rate).map_err(|message| AudioError::Resample {
        path: path.to_path_buf(),
        rate,
        message,
    })
}

/// Decodes a WAV or MP3 file held in memory (an upload) into 8 kHz mono
/// 16-bit samples. Stops, and fails, once the audio passes `max_seconds`,
/// so a small, highly compressed upload cannot make us decode hours.
pub fn decode_bytes(bytes: Vec<u8>, max_seconds: u32) -> Result<Vec<i16>, DecodeError> {
    let source = Box::new(Cursor::new(bytes));
    let (mono, rate) = decode_mono(source, Hint::new(), max_seconds, Path::new("upload")).map_err(
        |f| match f {
            Failure::Decode(m) => DecodeError::Unsupported(m),
            Failure::NoAudio => DecodeError::Empty,
            Failure::TooLong => DecodeError::TooLong { max_seconds },
        },
    )?;
    if mono.is_empty() {
        return Err(DecodeError::Empty);
    }
    to_8k(mono, rate).map_err(|message| DecodeError::Resample { rate, message })
}

fn to_8k(mono: Vec<f32>, rate: u32) -> Result<Vec<i16>, String> {
    let samples = if rate == TARGET_RATE {
        mono
    } else {
        resample(&mono, rate)?
    };
    Ok(samples.into_iter().map(to_i16).collect())
}

fn to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Why decoding stopped, before the caller names the source.
enum Failure {
    Decode(String),
    NoAudio,
    TooLong,
}

/// A probed source: its container, the first audio track's decoder.
struct Opened {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    declared_rate: Option<u32>,
}

fn open(mss: MediaSourceStream<'static>, hint: &Hint) -> Result<Opened, Failure> {
    let decode_err = |e: SymError| Failure::Decode(e.to_string());
    let format = symphonia::default::get_probe()
        .probe(
            hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(decode_err)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or(Failure::NoAudio)?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or(Failure::NoAudio)?;
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(decode_err)?;
    let declared_rate = params.sample_rate;
    Ok(Opened {
        format,
        decoder,
        track_id,
        declared_rate,
    })
}

/// The whole stream, channels averaged, at its own rate. `name` is only
/// for log lines.
fn decode_mono(
    source: Box<dyn MediaSource>,
    hint: Hint,
    max_seconds: u32,
    name: &Path,
) -> Result<(Vec<f32>, u32), Failure> {
    let decode_err = |e: SymError| Failure::Decode(e.to_string());
    let Opened {
        mut format,
        mut decoder,
        track_id,
        declared_rate,
    } = open(MediaSourceStream::new(source, Default::default()), &hint)?;

    let mut mono: Vec<f32> = Vec::new();
    let mut rate: Option<u32> = None;
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A truncated file: keep what was decoded.
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(decode_err(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            // A damaged frame: skip it, as players do.
            Err(SymError::DecodeError(msg)) => {
                tracing::debug!(path = %name.display(), msg, "skipping an undecodable packet");
                continue;
            }
            Err(e) => return Err(decode_err(e)),
        };
        let spec = buf.spec();
        let channels = spec.channels().count().max(1);
        let buf_rate = spec.rate();
        match rate {
            None => rate = Some(buf_rate),
            Some(r) if r != buf_rate => {
                return Err(Failure::Decode(format!(
                    "the sample rate changes from {r} to {buf_rate} Hz"
                )));
            }
            Some(_) => {}
        }
        buf.copy_to_vec_interleaved(&mut interleaved);
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
        if mono.len() as u64 > u64::from(max_seconds) * u64::from(buf_rate.max(1)) {
            return Err(Failure::TooLong);
        }
    }
    let rate = rate
        .or(declared_rate)
        .filter(|&r| r > 0)
        .ok_or(Failure::NoAudio)?;
    Ok((mono, rate))
}

/// One whole clip from `rate` to 8 kHz.
fn resample(mono: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if mono.is_empty() {
        return Ok(Vec::new());
    }
    // Latency does not matter for a whole clip: one large FFT block keeps
    // the anti-aliasing filter steep, so the telephone band (up to 3.4 kHz)
    // passes and everything above 4 kHz is removed.
    let mut resampler = Fft::<f32>::new_custom(
        rate as usize,
        TARGET_RATE as usize,
        8192,
        1,
        1,
        WindowFunction::BlackmanHarris2,
        FixedSync::Input,
    )
    .map_err(|e| e.to_string())?;
    let input_data = vec![mono.to_vec()];
    let input =
        SequentialSliceOfVecs::new(&input_data, 1, mono.len()).map_err(|e| e.to_string())?;
    let out_len = resampler.process_all_needed_output_len(mono.len());
    let mut output_data = vec![vec![0.0f32; out_len]];
    let mut output =
        SequentialSliceOfVecs::new_mut(&mut output_data, 1, out_len).map_err(|e| e.to_string())?;
    let (_, written) = resampler
        .process_all_into_buffer(&input, &mut output, mono.len(), None)
        .map_err(|e| e.to_string())?;
    let mut out = output_data.swap_remove(0);
    out.truncate(written);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::TAU;

    fn write_wav(
        path: &Path,
        rate: u32,
        channels: u16,
        frames: usize,
        f: impl Fn(usize, u16) -> f32,
    ) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..frames {
            for c in 0..channels {
                w.write_sample(to_i16(f(i, c))).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len().max(1) as f64).sqrt()
    }

    /// Energy at `freq` (Hz) in 8 kHz audio, by correlation, as an amplitude.
    fn tone_amplitude(s: &[i16], freq: f32) -> f64 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &x) in s.iter().enumerate() {
            let ph = TAU * freq * i as f32 / 8000.0;
            re += f64::from(x) * f64::from(ph.cos());
            im += f64::from(x) * f64::from(ph.sin());
        }
        2.0 * (re * re + im * im).sqrt() / s.len() as f64
    }

    #[test]
    fn stereo_44k1_becomes_8k_mono_with_its_energy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moh.wav");
        // One second of 440 Hz at half scale, both channels.
        write_wav(&path, 44100, 2, 44100, |i, _| {
            0.5 * (TAU * 440.0 * i as f32 / 44100.0).sin()
        });
        let out = load_audio(&path).unwrap();
        assert!((7990..=8010).contains(&out.len()), "{}", out.len());
        // Half scale sine: RMS = 0.5 * 32768 / sqrt(2) ≈ 11585.
        let r = rms(&out[400..7600]);
        assert!((11000.0..12200.0).contains(&r), "rms {r}");
        let a = tone_amplitude(&out[400..7600], 440.0);
        assert!((15500.0..17300.0).contains(&a), "440 Hz amplitude {a}");
    }

    #[test]
    fn channels_are_averaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phase.wav");
        // Opposite phases cancel; a tone on one channel only halves.
        write_wav(&path, 16000, 2, 16000, |i, c| {
            let s = 0.5 * (TAU * 300.0 * i as f32 / 16000.0).sin();
            if c == 0 { s } else { -s }
        });
        let out = load_audio(&path).unwrap();
        assert_eq!(out.len(), 8000);
        assert!(rms(&out) < 5.0, "{}", rms(&out));

        write_wav(&path, 16000, 2, 16000, |i, c| {
            if c == 0 {
                0.5 * (TAU * 300.0 * i as f32 / 16000.0).sin()
            } else {
                0.0
            }
        });
        let out = load_audio(&path).unwrap();
        let r = rms(&out[400..7600]);
        // Half of 11585.
        assert!((5500.0..6100.0).contains(&r), "rms {r}");
    }

    #[test]
    fn content_above_4khz_is_filtered_not_aliased() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("high.wav");
        // 6 kHz would alias to 2 kHz without a low-pass filter.
        write_wav(&path, 48000, 1, 48000, |i, _| {
            0.5 * (TAU * 6000.0 * i as f32 / 48000.0).sin()
        });
        let out = load_audio(&path).unwrap();
        assert_eq!(out.len(), 8000);
        assert!(rms(&out[400..7600]) < 200.0, "rms {}", rms(&out[400..7600]));
        assert!(tone_amplitude(&out[400..7600], 2000.0) < 200.0);
        // 3 kHz passes.
        write_wav(&path, 48000, 1, 48000, |i, _| {
            0.5 * (TAU * 3000.0 * i as f32 / 48000.0).sin()
        });
        let out = load_audio(&path).unwrap();
        let a = tone_amplitude(&out[400..7600], 3000.0);
        assert!(a > 15500.0, "3 kHz amplitude {a}");
        // The top of the telephone band, 3.4 kHz, passes too.
        write_wav(&path, 44100, 1, 44100, |i, _| {
            0.5 * (TAU * 3400.0 * i as f32 / 44100.0).sin()
        });
        let out = load_audio(&path).unwrap();
        let a = tone_amplitude(&out[400..7600], 3400.0);
        assert!(a > 15000.0, "3.4 kHz amplitude {a}");
    }

    #[test]
    fn eight_khz_mono_passes_through_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prompt.wav");
        let samples: Vec<i16> = (0..800)
            .map(|i| ((i * 97) % 65536 - 32768) as i16)
            .collect();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for &s in &samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        assert_eq!(load_audio(&path).unwrap(), samples);
    }

    #[test]
    fn float_wav_at_22050() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("float.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 22050,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..44100 {
            w.write_sample(0.25 * (TAU * 1000.0 * i as f32 / 22050.0).sin())
                .unwrap();
        }
        w.finalize().unwrap();
        let out = load_audio(&path).unwrap();
        assert!((15990..=16010).contains(&out.len()), "{}", out.len());
        let a = tone_amplitude(&out[800..15200], 1000.0);
        assert!((7700.0..8700.0).contains(&a), "{a}");
    }

    /// Silent MPEG-1 Layer III frames, 128 kbit/s, 44.1 kHz, stereo: a
    /// header and all-zero side information and main data decode to
    /// 1152 samples of silence each.
    fn silent_mp3(frames: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..frames {
            let mut frame = vec![0u8; 417];
            frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x04]);
            out.extend(frame);
        }
        out
    }

    #[test]
    fn mp3_decodes_and_resamples() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silence.mp3");
        std::fs::write(&path, silent_mp3(40)).unwrap();
        let out = load_audio(&path).unwrap();
        // 40 frames of 1152 samples at 44.1 kHz ≈ 1.045 s ≈ 8359 samples at
        // 8 kHz; the decoder may drop a frame or two at the edges.
        assert!((7900..=8400).contains(&out.len()), "{}", out.len());
        assert!(out.iter().all(|&s| s.abs() < 2), "silence stays silent");
    }

    fn wav_in_memory(rate: u32, channels: u16, interleaved: &[i16]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        for &s in interleaved {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        buf.into_inner()
    }

    #[test]
    fn uploads_in_memory_decode_like_files() {
        // 0.5 s of 400 Hz at 16 kHz, stereo with opposite offsets that
        // cancel in the average.
        let mut inter = Vec::new();
        for i in 0..8000 {
            let v = to_i16(0.25 * (TAU * 400.0 * i as f32 / 16000.0).sin());
            inter.push(v.saturating_add(4000));
            inter.push(v.saturating_sub(4000));
        }
        let out = decode_bytes(wav_in_memory(16000, 2, &inter), 60).unwrap();
        assert_eq!(out.len(), 4000);
        let r = rms(&out[400..3600]);
        // 0.25 scale sine: 0.25 * 32768 / sqrt(2) ≈ 5793.
        assert!((5500.0..6100.0).contains(&r), "rms {r}");
        // A silent MP3 at 44.1 kHz, from memory.
        let out = decode_bytes(silent_mp3(40), 60).unwrap();
        assert!((7900..=8400).contains(&out.len()), "{}", out.len());
    }

    #[test]
    fn uploads_are_refused_when_garbage_empty_or_too_long() {
        assert!(matches!(
            decode_bytes(b"hello, not audio at all".to_vec(), 60),
            Err(DecodeError::Unsupported(_))
        ));
        assert!(matches!(
            decode_bytes(wav_in_memory(8000, 1, &[]), 60),
            Err(DecodeError::Empty | DecodeError::Unsupported(_))
        ));
        assert!(matches!(
            decode_bytes(wav_in_memory(8000, 1, &vec![0; 8000 * 3]), 2),
            Err(DecodeError::TooLong { max_seconds: 2 })
        ));
        assert!(decode_bytes(Vec::new(), 60).is_err());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.wav");
        let e = load_audio(&missing).unwrap_err();
        assert!(matches!(e, AudioError::Io { .. }));
        assert!(e.to_string().contains("absent.wav"));

        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"this is not audio at all, not even close").unwrap();
        let e = load_audio(&junk).unwrap_err();
        assert!(matches!(e, AudioError::Decode { .. }), "{e:?}");
        assert!(e.to_string().starts_with(&junk.display().to_string()));
    }
}
