//! Uploaded audio (WAV or MP3, any rate, any channel count) to the 8 kHz
//! mono 16-bit PCM the store keeps: decoded with symphonia from memory,
//! channels averaged, resampled with a windowed-sinc low-pass so what 8 kHz
//! cannot carry is removed rather than aliased.

use std::io::Cursor;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::store::SAMPLE_RATE;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a WAV or MP3 file we can decode: {0}")]
    Unsupported(String),
    #[error("the file holds no audio")]
    Empty,
    #[error("longer than {max_seconds} seconds")]
    TooLong { max_seconds: u32 },
}

/// Decodes `bytes` to 8 kHz mono PCM. Stops (and fails) once the audio
/// passes `max_seconds`, so a small, highly compressed upload cannot make
/// us decode hours of audio.
pub fn decode_to_8k_mono(bytes: Vec<u8>, max_seconds: u32) -> Result<Vec<i16>, DecodeError> {
    let (mono, rate) = decode_mono(bytes, max_seconds)?;
    if mono.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(resample(&mono, rate, SAMPLE_RATE)
        .into_iter()
        .map(to_i16)
        .collect())
}

fn to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// The whole stream with its channels averaged, and its sample rate.
fn decode_mono(bytes: Vec<u8>, max_seconds: u32) -> Result<(Vec<f32>, u32), DecodeError> {
    let unsupported = |e: SymError| DecodeError::Unsupported(e.to_string());
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &Hint::new(),
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(unsupported)?;
    let (track_id, params) = {
        let track = format
            .default_track(TrackType::Audio)
            .ok_or(DecodeError::Empty)?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .cloned()
            .ok_or(DecodeError::Empty)?;
        (track.id, params)
    };
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(unsupported)?;

    let mut mono: Vec<f32> = Vec::new();
    let mut rate: Option<u32> = params.sample_rate;
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A truncated file: keep what was decoded.
            Err(SymError::IoError(_)) if !mono.is_empty() => break,
            Err(e) => return Err(unsupported(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(b) => b,
            // One corrupt frame (common in MP3s): skip it.
            Err(SymError::DecodeError(_)) => continue,
            Err(e) => return Err(unsupported(e)),
        };
        let spec = buf.spec();
        let channels = spec.channels().count().max(1);
        let buf_rate = spec.rate();
        match rate {
            Some(r) if r != buf_rate => {
                return Err(DecodeError::Unsupported(
                    "the sample rate changes mid-stream".to_owned(),
                ));
            }
            _ => rate = Some(buf_rate),
        }
        interleaved.clear();
        buf.copy_to_vec_interleaved(&mut interleaved);
        let scale = 1.0 / channels as f32;
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
        if mono.len() as u64 > u64::from(max_seconds) * u64::from(buf_rate) {
            return Err(DecodeError::TooLong { max_seconds });
        }
    }
    match rate {
        Some(r) if r > 0 => Ok((mono, r)),
        _ => Err(DecodeError::Empty),
    }
}

/// Zero crossings of the sinc kept on each side of a tap's centre.
const ZERO_CROSSINGS: f64 = 16.0;
/// Pass band as a fraction of the lower Nyquist frequency.
const PASS: f64 = 0.92;
/// Most filter phases we precompute (L of the reduced ratio L/M).
const MAX_PHASES: u64 = 4096;

/// Resamples `input` from `from` Hz to `to` Hz with a Blackman-windowed
/// sinc low-pass at 92% of the lower Nyquist frequency. Output length is
/// `len * to / from`; samples outside the input count as silence.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() || from == 0 || to == 0 {
        return input.to_vec();
    }
    let g = gcd(u64::from(from), u64::from(to));
    let (m, l) = (u64::from(from) / g, u64::from(to) / g);
    // Cut-off in cycles per input sample.
    let fc = 0.5 * PASS * (f64::from(to) / f64::from(from)).min(1.0);
    let half = (ZERO_CROSSINGS / (2.0 * fc)).ceil() as i64;
    let kernel = |x: f64| -> f64 {
        let u = x / half as f64;
        if u.abs() >= 1.0 {
            return 0.0;
        }
        let w = 0.42
            + 0.5 * (std::f64::consts::PI * u).cos()
            + 0.08 * (2.0 * std::f64::consts::PI * u).cos();
        let a = 2.0 * fc * x;
        let sinc = if a == 0.0 {
            1.0
        } else {
            (std::f64::consts::PI * a).sin() / (std::f64::consts::PI * a)
        };
        2.0 * fc * sinc * w
    };
    let taps = (2 * half + 1) as usize;
    // Taps for output phase p: input offsets k in -half..=half from the
    // integer part of t, where t = n * m / l and p = (n * m) mod l.
    let table: Option<Vec<f32>> = (l <= MAX_PHASES).then(|| {
        let mut t = Vec::with_capacity(l as usize * taps);
        for p in 0..l {
            let frac = p as f64 / l as f64;
            for k in -half..=half {
                t.push(kernel(k as f64 - frac) as f32);
            }
        }
        t
    });
    let out_len = (input.len() as u64 * l / m) as usize;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len as u64 {
        let pos = n * m;
        let base = (pos / l) as i64;
        let phase = pos % l;
        let mut acc = 0.0f32;
        let lo = (base - half).max(0);
        let hi = (base + half).min(input.len() as i64 - 1);
        match &table {
            Some(table) => {
                let row = &table[phase as usize * taps..(phase as usize + 1) * taps];
                for i in lo..=hi {
                    acc += input[i as usize] * row[(i - base + half) as usize];
                }
            }
            None => {
                let frac = phase as f64 / l as f64;
                for i in lo..=hi {
                    acc += input[i as usize] * kernel((i - base) as f64 - frac) as f32;
                }
            }
        }
        out.push(acc);
    }
    out
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f32> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as f32
            })
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn passes_speech_band_and_removes_what_8k_cannot_carry() {
        // 1 kHz passes at 44.1 kHz -> 8 kHz with its level.
        let out = resample(&tone(1000.0, 44100, 1.0, 0.5), 44100, 8000);
        assert_eq!(out.len(), 8000);
        let mid = &out[400..7600];
        assert!((rms(mid) - 0.5 / 2f64.sqrt()).abs() < 0.01, "{}", rms(mid));
        // 6 kHz would alias to 2 kHz: it must be gone.
        let out = resample(&tone(6000.0, 44100, 1.0, 0.5), 44100, 8000);
        assert!(rms(&out[400..7600]) < 0.005, "{}", rms(&out[400..7600]));
    }

    #[test]
    fn odd_ratios_and_upsampling() {
        // 44101 Hz needs more phases than the table holds: direct path.
        let out = resample(&tone(500.0, 44101, 1.0, 0.5), 44101, 8000);
        assert_eq!(out.len(), 8000);
        assert!((rms(&out[400..7600]) - 0.3536).abs() < 0.01);
        let out = resample(&tone(500.0, 6000, 0.5, 0.5), 6000, 8000);
        assert_eq!(out.len(), 4000);
        assert!((rms(&out[400..3600]) - 0.3536).abs() < 0.01);
        assert_eq!(resample(&[0.25, 0.5], 8000, 8000), vec![0.25, 0.5]);
    }

    fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        buf.into_inner()
    }

    #[test]
    fn decodes_stereo_wav_to_8k_mono() {
        // 0.5 s at 16 kHz, left at +8000, right at -8000... plus a tone on
        // both so the average is the tone.
        let t = tone(400.0, 16000, 0.5, 0.25);
        let mut inter = Vec::new();
        for &s in &t {
            let v = (s * 32768.0) as i16;
            inter.push(v.saturating_add(4000));
            inter.push(v.saturating_sub(4000));
        }
        let out = decode_to_8k_mono(wav(16000, 2, &inter), 60).unwrap();
        assert_eq!(out.len(), 4000);
        let f: Vec<f32> = out[400..3600]
            .iter()
            .map(|&s| f32::from(s) / 32768.0)
            .collect();
        assert!((rms(&f) - 0.25 / 2f64.sqrt()).abs() < 0.01, "{}", rms(&f));
    }

    #[test]
    fn rejects_garbage_empty_and_too_long() {
        assert!(matches!(
            decode_to_8k_mono(b"hello, not audio at all".to_vec(), 60),
            Err(DecodeError::Unsupported(_))
        ));
        assert!(matches!(
            decode_to_8k_mono(wav(8000, 1, &[]), 60),
            Err(DecodeError::Empty | DecodeError::Unsupported(_))
        ));
        assert!(matches!(
            decode_to_8k_mono(wav(8000, 1, &vec![0; 8000 * 3]), 2),
            Err(DecodeError::TooLong { max_seconds: 2 })
        ));
    }
}
