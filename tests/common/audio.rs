//! Test speech (generated at test time with espeak-ng and sox) and checks on
//! the WAV files the server records.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::run_with_deadline;

/// Length of the generated speech clip, exactly.
pub const SPEECH_SECS: f64 = 4.0;
const SPEECH_TEXT: &str = "Hello, this is a test message for the voice mail server. \
     Please call me back at five five five, one two three four. Thank you, goodbye.";

/// A 4.0 s spoken sentence at 8 kHz in the encodings the tests send.
pub struct Speech {
    /// Directory holding `speech.ul` (raw µ-law), `speech.al` (raw A-law)
    /// and `speech.s16` (raw signed 16-bit little-endian).
    pub dir: PathBuf,
    pub ulaw: Vec<u8>,
    pub alaw: Vec<u8>,
    pub pcm: Vec<i16>,
}

impl Speech {
    pub fn ulaw_path(&self) -> PathBuf {
        self.dir.join("speech.ul")
    }
    pub fn alaw_path(&self) -> PathBuf {
        self.dir.join("speech.al")
    }
    pub fn secs(&self) -> f64 {
        self.pcm.len() as f64 / 8000.0
    }
    pub fn rms(&self) -> f64 {
        rms(&self.pcm)
    }
}

fn run_tool(cmd: &mut Command) {
    let desc = format!("{cmd:?}");
    let out = run_with_deadline(cmd, Duration::from_secs(60));
    assert!(
        out.code == Some(0),
        "{desc} failed (code {:?}, timed out {}):\n{}\n{}",
        out.code,
        out.timed_out,
        out.stdout,
        out.stderr
    );
}

/// Bump when the text or the processing changes: names the cache directory.
const SPEECH_VERSION: &str = "v1";

/// The speech clip: generated once (cached under cargo's target tmp dir,
/// keyed by [`SPEECH_VERSION`]), loaded once per test process.
pub fn speech() -> &'static Speech {
    static SPEECH: OnceLock<Speech> = OnceLock::new();
    SPEECH.get_or_init(|| {
        let n = (SPEECH_SECS * 8000.0) as u64;
        let tmp_root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp_root.join(format!("voxmail-speech-{SPEECH_VERSION}"));
        let complete = |d: &Path| {
            [("speech.s16", 2 * n), ("speech.ul", n), ("speech.al", n)]
                .iter()
                .all(|(f, len)| std::fs::metadata(d.join(f)).is_ok_and(|m| m.len() == *len))
        };
        if !complete(&dir) {
            let work = tmp_root.join(format!(
                "voxmail-speech-{SPEECH_VERSION}.tmp-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work).expect("create speech dir");
            generate_speech(&work);
            assert!(complete(&work), "speech generation left incomplete files");
            let _ = std::fs::remove_dir_all(&dir);
            if std::fs::rename(&work, &dir).is_err() {
                // Another test process won the race; use its copy.
                let _ = std::fs::remove_dir_all(&work);
            }
        }
        let raw = std::fs::read(dir.join("speech.s16")).expect("read speech.s16");
        let pcm: Vec<i16> = raw
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let ulaw = std::fs::read(dir.join("speech.ul")).expect("read speech.ul");
        let alaw = std::fs::read(dir.join("speech.al")).expect("read speech.al");
        assert_eq!(pcm.len() as u64, n, "speech length");
        assert_eq!(ulaw.len(), pcm.len());
        assert_eq!(alaw.len(), pcm.len());
        let sp = Speech {
            dir,
            ulaw,
            alaw,
            pcm,
        };
        assert!(
            sp.rms() > 1000.0,
            "generated speech is too quiet: {}",
            sp.rms()
        );
        sp
    })
}

/// espeak-ng -> sox: 8 kHz mono, normalised to -3 dBFS, exactly
/// [`SPEECH_SECS`] long, as raw s16le, µ-law and A-law.
fn generate_speech(dir: &Path) {
    let wav = dir.join("espeak.wav");
    run_tool(
        Command::new("espeak-ng")
            .args(["-v", "en", "-s", "160", "-w"])
            .arg(&wav)
            .arg(SPEECH_TEXT),
    );
    let s16 = dir.join("speech.s16");
    run_tool(
        Command::new("sox")
            .arg(&wav)
            .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
            .args(["-t", "raw"])
            .arg(&s16)
            .args(["gain", "-n", "-3", "pad", "0", "4", "trim", "0"])
            .arg(format!("{SPEECH_SECS}")),
    );
    for (enc, name) in [("u-law", "speech.ul"), ("a-law", "speech.al")] {
        run_tool(
            Command::new("sox")
                .args(["-t", "raw", "-r", "8000", "-c", "1", "-b", "16"])
                .args(["-e", "signed-integer"])
                .arg(&s16)
                .args(["-t", "raw", "-r", "8000", "-c", "1", "-e", enc])
                .arg(dir.join(name)),
        );
    }
}

/// The first `secs` of the speech, µ-law.
pub fn speech_ulaw_prefix(secs: f64) -> Vec<u8> {
    let n = ((secs * 8000.0) as usize).min(speech().ulaw.len());
    speech().ulaw[..n].to_vec()
}

pub const ULAW_SILENCE: u8 = 0xff;
pub const ALAW_SILENCE: u8 = 0xd5;

pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// A recorded WAV, read fully.
pub struct Wav {
    pub path: PathBuf,
    pub spec: hound::WavSpec,
    pub samples: Vec<i16>,
}

impl Wav {
    pub fn read(path: &Path) -> Wav {
        let mut r = hound::WavReader::open(path)
            .unwrap_or_else(|e| panic!("{} is not a readable WAV: {e}", path.display()));
        let spec = r.spec();
        let samples: Vec<i16> = r
            .samples::<i16>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{}: bad samples: {e}", path.display()));
        Wav {
            path: path.to_path_buf(),
            spec,
            samples,
        }
    }

    pub fn secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.spec.sample_rate.max(1))
    }

    pub fn rms(&self) -> f64 {
        rms(&self.samples)
    }

    /// 8 kHz, mono, 16-bit integer PCM.
    pub fn assert_format(&self) {
        assert_eq!(
            (
                self.spec.sample_rate,
                self.spec.channels,
                self.spec.bits_per_sample,
                self.spec.sample_format
            ),
            (8000, 1, 16, hound::SampleFormat::Int),
            "{}: expected 8 kHz mono 16-bit PCM",
            self.path.display()
        );
    }

    /// Duration within `[min, max]` seconds.
    pub fn assert_duration(&self, min: f64, max: f64) {
        let d = self.secs();
        assert!(
            (min..=max).contains(&d),
            "{}: recorded {d:.3} s, expected between {min:.2} and {max:.2} s",
            self.path.display()
        );
    }

    /// Not silent: RMS at least `min_rms`.
    pub fn assert_not_silent(&self, min_rms: f64) {
        let r = self.rms();
        assert!(
            r >= min_rms,
            "{}: RMS {r:.1} is below {min_rms} (silent recording?)",
            self.path.display()
        );
    }

    /// Carries the speech we sent: the RMS over the loudest 2 s window is
    /// within a factor of 4 of the source speech's RMS (G.711 keeps levels;
    /// silence, a beep echo or noise would not match).
    pub fn assert_level_like(&self, source: &[i16]) {
        let win = 16_000usize.min(self.samples.len()).max(1);
        let mut best = 0.0f64;
        let mut start = 0;
        while start + win <= self.samples.len() {
            best = best.max(rms(&self.samples[start..start + win]));
            start += 800;
        }
        let src = rms(source);
        assert!(
            best > src / 4.0 && best < src * 4.0,
            "{}: loudest-2s RMS {best:.1} is not within 4x of the sent speech's RMS {src:.1}",
            self.path.display()
        );
    }

    /// Holds the speech we sent, sample for sample up to G.711 noise: the
    /// best alignment of the source against the recording (found on 20 ms
    /// energy envelopes, refined to the sample) correlates at least 0.8
    /// over at least 1 s of overlap. Returns (correlation, overlap seconds).
    pub fn assert_contains(&self, source: &[i16]) -> (f64, f64) {
        let (corr, overlap) = best_alignment(source, &self.samples);
        assert!(
            overlap >= 8000 && corr >= 0.8,
            "{}: the recording does not match the speech we sent: best correlation {corr:.3} \
             over {:.2} s (need >= 0.8 over >= 1 s)",
            self.path.display(),
            overlap as f64 / 8000.0
        );
        (corr, overlap as f64 / 8000.0)
    }
}

fn envelope(x: &[i16]) -> Vec<f64> {
    x.chunks(160).map(rms).collect()
}

fn pearson(a: impl Iterator<Item = (f64, f64)> + Clone) -> f64 {
    let n = a.clone().count() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (sa, sb) = a.clone().fold((0.0, 0.0), |(x, y), (p, q)| (x + p, y + q));
    let (ma, mb) = (sa / n, sb / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (p, q) in a {
        cov += (p - ma) * (q - mb);
        va += (p - ma) * (p - ma);
        vb += (q - mb) * (q - mb);
    }
    if va <= 0.0 || vb <= 0.0 {
        return 0.0;
    }
    cov / (va.sqrt() * vb.sqrt())
}

/// Best correlation of `src` against `rec` at any offset with at least 1 s
/// of overlap: (correlation, overlap in samples).
pub fn best_alignment(src: &[i16], rec: &[i16]) -> (f64, usize) {
    const MIN_FRAMES: isize = 50;
    let es = envelope(src);
    let er = envelope(rec);
    let (ns, nr) = (es.len() as isize, er.len() as isize);
    // Coarse: frame offset k means rec frame i lines up with src frame i + k.
    let mut best_k = None;
    let mut best_c = f64::MIN;
    for k in -(nr - MIN_FRAMES)..=(ns - MIN_FRAMES) {
        let lo = 0.max(-k);
        let hi = nr.min(ns - k);
        if hi - lo < MIN_FRAMES {
            continue;
        }
        let pairs = (lo..hi).map(|i| (er[i as usize], es[(i + k) as usize]));
        let c = pearson(pairs);
        if c > best_c {
            best_c = c;
            best_k = Some(k);
        }
    }
    let Some(k) = best_k else {
        return (0.0, 0);
    };
    // Fine: sample offsets around the best frame offset.
    let mut best = (0.0, 0usize);
    for d in -160..=160isize {
        let off = k * 160 + d; // rec sample j lines up with src sample j + off
        let lo = 0.max(-off);
        let hi = (rec.len() as isize).min(src.len() as isize - off);
        if hi - lo < MIN_FRAMES * 160 {
            continue;
        }
        let pairs = (lo..hi).map(|j| {
            (
                f64::from(rec[j as usize]),
                f64::from(src[(j + off) as usize]),
            )
        });
        let c = pearson(pairs);
        if c > best.0 {
            best = (c, (hi - lo) as usize);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Noise with an irregular loudness envelope (like speech, unlike a
    /// periodic pattern, it has a single best alignment).
    fn noise(n: usize, seed: u32) -> Vec<i16> {
        let mut x = seed;
        let mut next = move || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            x >> 16
        };
        let mut gain = 1i16;
        (0..n)
            .map(|i| {
                if i % 800 == 0 {
                    gain = 1 + (next() % 8) as i16;
                }
                ((next() as i16) >> 4) * gain
            })
            .collect()
    }

    #[test]
    fn alignment_finds_shifted_copy_and_rejects_other_signal() {
        let src = noise(32_000, 7);
        let mut rec = vec![0i16; 1234];
        rec.extend_from_slice(&src[5_000..30_000]);
        let (c, overlap) = best_alignment(&src, &rec);
        assert!(c > 0.9, "correlation {c}");
        assert!(overlap >= 24_000, "overlap {overlap}");
        let other = noise(32_000, 99);
        let (c, _) = best_alignment(&src, &other);
        assert!(c < 0.5, "unrelated signal correlates {c}");
    }
}

/// G.711 µ-law to 16-bit linear (ITU-T G.711, as in Sun's g711.c).
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// 16-bit linear to G.711 µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut v = i32::from(sample);
    let sign = if v < 0 {
        v = -v;
        0x80
    } else {
        0
    };
    v = v.min(CLIP) + BIAS;
    let exponent = (31 - (v as u32).leading_zeros()) as i32 - 7;
    let mantissa = (v >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// The (row, column) frequencies of a DTMF key.
pub fn dtmf_frequencies(key: char) -> (f64, f64) {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    for (r, row) in KEYS.iter().enumerate() {
        if let Some(c) = row.find(key.to_ascii_uppercase()) {
            return (ROWS[r], COLS[c]);
        }
    }
    panic!("{key:?} is not a DTMF key");
}

/// An in-band DTMF key press: both tones at `amplitude` (peak, each),
/// `ms` long with 5 ms raised-cosine ramps, at 8 kHz.
pub fn dtmf_tone(key: char, ms: u32, amplitude: f64) -> Vec<i16> {
    let (lo, hi) = dtmf_frequencies(key);
    let n = (ms * 8) as usize;
    let ramp = 40usize.min(n / 2);
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let env = if i < ramp {
                0.5 - 0.5 * (std::f64::consts::PI * i as f64 / ramp as f64).cos()
            } else if i >= n - ramp {
                0.5 - 0.5 * (std::f64::consts::PI * (n - 1 - i) as f64 / ramp as f64).cos()
            } else {
                1.0
            };
            let s = (std::f64::consts::TAU * lo * t).sin() + (std::f64::consts::TAU * hi * t).sin();
            (s * amplitude * env).round() as i16
        })
        .collect()
}

#[cfg(test)]
mod g711_tests {
    use super::*;

    #[test]
    fn ulaw_round_trip_is_close() {
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(linear_to_ulaw(0), 0xff);
        for s in [
            -32_000i16, -8_000, -1_000, -100, -5, 5, 100, 1_000, 8_000, 32_000,
        ] {
            let back = ulaw_to_linear(linear_to_ulaw(s));
            let err = (i32::from(back) - i32::from(s)).abs();
            assert!(err <= i32::from(s).abs() / 16 + 8, "{s} -> {back}");
        }
    }

    #[test]
    fn dtmf_tone_has_its_length_and_level() {
        let t = dtmf_tone('5', 100, 6000.0);
        assert_eq!(t.len(), 800);
        assert!(rms(&t) > 5000.0 && rms(&t) < 7000.0, "{}", rms(&t));
        assert_eq!(dtmf_frequencies('#'), (941.0, 1477.0));
    }
}

/// Seconds of `pcm` (8 kHz) whose 20 ms frames are a tone at `freq`: the
/// Goertzel power at `freq` holds at least 60 % of the frame's energy and
/// the frame is not quiet (RMS over 300).
pub fn tone_seconds(pcm: &[i16], freq: f64) -> f64 {
    let n = 160usize;
    let coeff = 2.0 * (std::f64::consts::TAU * freq / 8000.0).cos();
    let mut frames = 0usize;
    for frame in pcm.chunks_exact(n) {
        let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        if (energy / n as f64).sqrt() < 300.0 {
            continue;
        }
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in frame {
            let s0 = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        // A pure tone of amplitude A: power ~ (A n / 2)^2, energy ~ A^2 n / 2.
        let fraction = power / (energy * n as f64 / 2.0);
        if fraction >= 0.6 {
            frames += 1;
        }
    }
    frames as f64 * 0.02
}

#[cfg(test)]
mod tone_tests {
    #[test]
    fn tone_seconds_tells_frequencies_apart() {
        let tone = |f: f64, secs: f64| -> Vec<i16> {
            (0..(secs * 8000.0) as usize)
                .map(|i| ((i as f64 / 8000.0 * f * std::f64::consts::TAU).sin() * 4000.0) as i16)
                .collect()
        };
        let mut pcm = tone(600.0, 3.0);
        pcm.extend(vec![0i16; 8000]);
        pcm.extend(tone(440.0, 0.5));
        let s600 = super::tone_seconds(&pcm, 600.0);
        let s440 = super::tone_seconds(&pcm, 440.0);
        assert!((2.9..=3.01).contains(&s600), "{s600}");
        assert!((0.4..=0.51).contains(&s440), "{s440}");
        assert_eq!(super::tone_seconds(&pcm, 1000.0), 0.0);
    }
}
