//! In-band DTMF detection, for calls whose phone did not offer
//! telephone-event (RFC 4733): the key presses are only in the audio.
//!
//! Goertzel filters measure the eight keypad frequencies over blocks of
//! [`BLOCK`] samples (12.75 ms at 8 kHz, the classic size: its ~78 Hz
//! resolution separates the 73 Hz-apart row tones). Two banks of filters run
//! half a block apart, so a block ends every [`HOP`] samples (6.4 ms) and a
//! tone's duration is measured to that precision whatever the frame size fed
//! to [`InbandDetector::process`].
//!
//! A block holds a digit when all of these hold (thresholds in the constants
//! below, after Q.24 and the usual software detectors):
//!
//! - each of the two tones is loud enough ([`MIN_TONE_POWER`]),
//! - the strongest row tone and the strongest column tone each dominate the
//!   other three of their group ([`RELATIVE_PEAK`]),
//! - the twist is within limits ([`NORMAL_TWIST`], [`REVERSE_TWIST`]),
//! - the two tones carry most of the block's energy ([`MIN_TONE_FRACTION`]):
//!   speech and music spread their energy over many frequencies, and a block
//!   only partly filled with tone falls short, which is what makes the
//!   duration checks sharp.
//!
//! A digit is reported once it held for [`HITS_TO_REPORT`] consecutive
//! blocks, and the same digit again only after [`MISSES_TO_RELEASE`] blocks
//! without it (a gap), so a long press is one digit and a short dropout in it
//! does not repeat it.

use std::f32::consts::PI;

/// Samples per Goertzel block.
pub const BLOCK: usize = 102;
/// Distance between the ends of successive (overlapping) blocks.
pub const HOP: usize = BLOCK / 2;

const SAMPLE_RATE: f32 = 8000.0;
const FREQUENCIES: [f32; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Minimum mean power of each tone: a sine of peak 200 (about -44 dBFS, or
/// -41 dBm0 in G.711 terms), below the -36 dBm0 Q.24 asks detectors to
/// accept; quieter "tones" are line noise.
pub const MIN_TONE_POWER: f32 = 200.0 * 200.0 / 2.0;
/// The chosen tone of each group must be 8 dB above the others in it.
pub const RELATIVE_PEAK: f32 = 6.31;
/// Row (low) tone may be up to 8 dB louder than the column tone...
pub const NORMAL_TWIST: f32 = 6.31;
/// ...and the column tone up to 4 dB louder than the row tone.
pub const REVERSE_TWIST: f32 = 2.51;
/// Share of the block's energy the two tones must carry. A clean dual tone
/// gives 1.0 (0.97 at 15 dB SNR), a block only partly filled with tone about
/// its filled share. Speech peaks at 0.56 over all the prompts; a chord of
/// harmonic-rich notes near DTMF pitches at ~0.6; a 40 ms press gives four
/// blocks above 0.92 at any alignment.
pub const MIN_TONE_FRACTION: f32 = 0.75;
/// Consecutive blocks showing the same digit before it is reported. Four
/// overlapping blocks span 255 samples (32 ms) of steady tone: a 40 ms press
/// (5 ms ramps included) always gives them, while a 20 ms blip gives at most
/// two blocks and a 24 ms one at most three above the fraction threshold.
pub const HITS_TO_REPORT: u8 = 4;
/// Blocks without the reported digit before it may be reported again; seven
/// hops need roughly 35-40 ms of silence between presses.
pub const MISSES_TO_RELEASE: u8 = 7;

/// Digits found but not yet returned (only when one `process` call covers
/// several presses).
const PENDING: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Bank {
    s1: [f32; 8],
    s2: [f32; 8],
    energy: f32,
    /// Samples accumulated in the current block.
    filled: usize,
}

impl Bank {
    const fn new(filled: usize) -> Self {
        Bank {
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: 0.0,
            filled,
        }
    }
}

/// Detects DTMF key presses in 8 kHz linear PCM. Allocation-free; about 16
/// multiply-adds per sample.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    coeffs: [f32; 8],
    banks: [Bank; 2],
    /// Digit (index into `KEYS`, row * 4 + column) seen in the latest blocks,
    /// and in how many consecutive blocks.
    candidate: Option<u8>,
    run: u8,
    /// The digit reported last, until a gap releases it.
    latched: Option<u8>,
    misses: u8,
    pending: [char; PENDING],
    pending_len: usize,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    pub fn new() -> Self {
        let coeffs = FREQUENCIES.map(|f| 2.0 * (2.0 * PI * f / SAMPLE_RATE).cos());
        InbandDetector {
            coeffs,
            // The second bank's first block is only half long; it fails the
            // energy-fraction test, i.e. reads as "no digit".
            banks: [Bank::new(0), Bank::new(HOP)],
            candidate: None,
            run: 0,
            latched: None,
            misses: 0,
            pending: ['\0'; PENDING],
            pending_len: 0,
        }
    }

    /// Forget everything heard (e.g. after the stream restarted).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Feed decoded audio, any length; returns a digit when a key press is
    /// recognised (each press once). A buffer long enough to hold several
    /// presses (over ~60 ms) returns the first; the others come from the
    /// next calls, which may pass an empty slice to collect them (up to 16
    /// wait; beyond that, presses in one call are dropped).
    pub fn process(&mut self, samples: &[i16]) -> Option<char> {
        let mut rest = samples;
        while !rest.is_empty() {
            // Run both banks up to the next block end of either.
            let until = (BLOCK - self.banks[0].filled).min(BLOCK - self.banks[1].filled);
            let (chunk, tail) = rest.split_at(until.min(rest.len()));
            rest = tail;
            feed(&mut self.banks, &self.coeffs, chunk);
            for b in 0..2 {
                if self.banks[b].filled == BLOCK {
                    let hit = classify(&self.banks[b], &self.coeffs);
                    self.banks[b] = Bank::new(0);
                    if let Some(digit) = self.on_block(hit) {
                        self.push_pending(digit);
                    }
                }
            }
        }
        self.pop_pending()
    }

    fn on_block(&mut self, hit: Option<u8>) -> Option<char> {
        match hit {
            Some(d) if self.candidate == Some(d) => self.run = self.run.saturating_add(1),
            Some(d) => {
                self.candidate = Some(d);
                self.run = 1;
            }
            None => {
                self.candidate = None;
                self.run = 0;
            }
        }
        if self.latched.is_some() {
            if hit == self.latched {
                self.misses = 0;
            } else {
                self.misses += 1;
                if self.misses >= MISSES_TO_RELEASE {
                    self.latched = None;
                }
            }
        }
        if self.run >= HITS_TO_REPORT && self.candidate != self.latched {
            self.latched = self.candidate;
            self.misses = 0;
            return self
                .candidate
                .map(|d| KEYS[usize::from(d / 4)][usize::from(d % 4)]);
        }
        None
    }

    fn push_pending(&mut self, digit: char) {
        if self.pending_len < PENDING {
            self.pending[self.pending_len] = digit;
            self.pending_len += 1;
        }
    }

    fn pop_pending(&mut self) -> Option<char> {
        if self.pending_len == 0 {
            return None;
        }
        let first = self.pending[0];
        self.pending.copy_within(1..self.pending_len, 0);
        self.pending_len -= 1;
        Some(first)
    }
}

/// Goertzel recurrences over `chunk` for the eight frequencies in both
/// banks, plus the chunk's energy. One loop for the sixteen filters, written
/// as `(x - s2) + c·s1` so each sample's dependency chain is one multiply and
/// one add: the loop is bound by that latency, not by arithmetic.
#[inline]
fn feed(banks: &mut [Bank; 2], coeffs: &[f32; 8], chunk: &[i16]) {
    let [a, b] = banks;
    let (mut a1, mut a2, mut b1, mut b2) = (a.s1, a.s2, b.s1, b.s2);
    let mut energy = 0.0f32;
    for &x in chunk {
        let x = f32::from(x);
        energy += x * x;
        for k in 0..8 {
            let s0 = (x - a2[k]) + coeffs[k] * a1[k];
            a2[k] = a1[k];
            a1[k] = s0;
            let s0 = (x - b2[k]) + coeffs[k] * b1[k];
            b2[k] = b1[k];
            b1[k] = s0;
        }
    }
    (a.s1, a.s2, b.s1, b.s2) = (a1, a2, b1, b2);
    for bank in banks {
        bank.energy += energy;
        bank.filled += chunk.len();
    }
}

/// The digit a full block holds, if it passes every check.
fn classify(bank: &Bank, coeffs: &[f32; 8]) -> Option<u8> {
    // Mean power of a sine found at each frequency: 2|X|²/N² (A²/2 for a
    // sine of peak A).
    let scale = 2.0 / (BLOCK * BLOCK) as f32;
    let mut power = [0.0f32; 8];
    for k in 0..8 {
        let (s1, s2) = (bank.s1[k], bank.s2[k]);
        power[k] = (s1 * s1 + s2 * s2 - coeffs[k] * s1 * s2) * scale;
    }
    let (rows, cols) = power.split_at(4);
    let row = strongest(rows)?;
    let col = strongest(cols)?;
    let (pr, pc) = (rows[row], cols[col]);
    if pr < MIN_TONE_POWER || pc < MIN_TONE_POWER {
        return None;
    }
    if pr > pc * NORMAL_TWIST || pc > pr * REVERSE_TWIST {
        return None;
    }
    // Block mean power; the tones' share of it.
    let mean = bank.energy / BLOCK as f32;
    if pr + pc < MIN_TONE_FRACTION * mean {
        return None;
    }
    Some((row * 4 + col) as u8)
}

/// Index of the strongest of a group, if it dominates the other three.
fn strongest(group: &[f32]) -> Option<usize> {
    let mut best = 0;
    for i in 1..group.len() {
        if group[i] > group[best] {
            best = i;
        }
    }
    let dominant = group
        .iter()
        .enumerate()
        .all(|(i, &p)| i == best || p * RELATIVE_PEAK <= group[best]);
    dominant.then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone::{beep, dtmf_frequencies, dtmf_tone, silence, tone};

    const ALL: &str = "0123456789*#ABCD";
    const LOUD: i16 = 12_000;

    /// Feed `audio` in frames of `frame` samples; every digit reported.
    fn detect(audio: &[i16], frame: usize) -> String {
        let mut d = InbandDetector::new();
        let mut out = String::new();
        for chunk in audio.chunks(frame.max(1)) {
            out.extend(d.process(chunk));
        }
        while let Some(c) = d.process(&[]) {
            out.push(c);
        }
        out
    }

    fn press(digit: char, ms: u32, amplitude: i16) -> Vec<i16> {
        dtmf_tone(digit, ms, amplitude).unwrap()
    }

    /// Silence, then the pieces, then silence.
    fn padded(parts: &[&[i16]]) -> Vec<i16> {
        let mut out = silence(50);
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend(silence(50));
        out
    }

    fn mix(a: &[i16], b: &[i16]) -> Vec<i16> {
        let n = a.len().max(b.len());
        (0..n)
            .map(|i| {
                let s = i32::from(*a.get(i).unwrap_or(&0)) + i32::from(*b.get(i).unwrap_or(&0));
                s.clamp(i16::MIN.into(), i16::MAX.into()) as i16
            })
            .collect()
    }

    fn scaled(s: &[i16], gain: f32) -> Vec<i16> {
        s.iter()
            .map(|&x| (f32::from(x) * gain).round() as i16)
            .collect()
    }

    fn mean_power(s: &[i16]) -> f64 {
        s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len() as f64
    }

    /// Deterministic Gaussian-ish white noise (sum of 4 uniforms) at an RMS.
    fn noise(len: usize, rms: f64, seed: u64) -> Vec<i16> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        // Sum of 4 uniforms on [-0.5, 0.5): variance 4/12.
        let k = rms / (4.0f64 / 12.0).sqrt();
        (0..len)
            .map(|_| ((uniform() + uniform() + uniform() + uniform()) * k).round() as i16)
            .collect()
    }

    /// Dual tone with separate row/column peak amplitudes.
    fn dual(digit: char, ms: u32, row_peak: i16, col_peak: i16) -> Vec<i16> {
        let (low, high) = dtmf_frequencies(digit).unwrap();
        mix(&tone(low, ms, row_peak), &tone(high, ms, col_peak))
    }

    fn prompt(name: &str) -> Vec<i16> {
        let path = format!("{}/prompts/en/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut r = hound::WavReader::open(&path).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (8000, 1, 16),
            "{name}"
        );
        r.samples::<i16>().map(Result::unwrap).collect()
    }

    fn all_prompts() -> Vec<(String, Vec<i16>)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/prompts/en");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".wav"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let pcm = prompt(&n);
                (n, pcm)
            })
            .collect()
    }

    #[test]
    fn every_digit_is_detected_once() {
        for digit in ALL.chars() {
            let audio = padded(&[&press(digit, 100, LOUD)]);
            assert_eq!(detect(&audio, 160), digit.to_string(), "{digit}");
        }
        // Lower case is accepted by the generator; reported upper case.
        assert_eq!(detect(&padded(&[&press('b', 100, LOUD)]), 160), "B");
    }

    #[test]
    fn a_dialled_sequence_in_any_frame_size() {
        let mut audio = silence(30);
        for digit in ALL.chars() {
            audio.extend(press(digit, 70, LOUD));
            audio.extend(silence(60));
        }
        for frame in [1, 7, 51, 80, 102, 160, 161, 333, 1000, audio.len()] {
            assert_eq!(detect(&audio, frame), ALL, "frame {frame}");
        }
    }

    #[test]
    fn long_press_is_one_digit() {
        assert_eq!(detect(&padded(&[&press('5', 2000, LOUD)]), 160), "5");
        // A 10 ms dropout (a lost packet concealed as silence) inside a press.
        let p = press('7', 100, LOUD);
        let audio = padded(&[&p, &silence(10), &p]);
        assert_eq!(detect(&audio, 160), "7");
    }

    #[test]
    fn same_digit_twice_after_a_gap() {
        let p = press('3', 80, LOUD);
        assert_eq!(detect(&padded(&[&p, &silence(60), &p]), 160), "33");
        assert_eq!(detect(&padded(&[&p, &silence(45), &p]), 160), "33");
        // Different digits back to back (no gap) are both reported.
        let q = press('9', 80, LOUD);
        assert_eq!(detect(&padded(&[&p, &q]), 160), "39");
    }

    #[test]
    fn forty_ms_press_detected_twenty_ms_blip_not() {
        // At every alignment relative to the block grid.
        for lead in 0..BLOCK {
            let mut audio = vec![0i16; 400 + lead];
            audio.extend(press('8', 40, LOUD));
            audio.extend(silence(60));
            assert_eq!(detect(&audio, 160), "8", "40 ms, lead {lead}");

            let mut audio = vec![0i16; 400 + lead];
            audio.extend(press('8', 20, LOUD));
            audio.extend(silence(60));
            assert_eq!(detect(&audio, 160), "", "20 ms, lead {lead}");

            // Even in noise a blip stays a blip.
            let mut audio = vec![0i16; 400 + lead];
            audio.extend(press('2', 24, LOUD));
            audio.extend(silence(60));
            let noisy = mix(&audio, &noise(audio.len(), 300.0, lead as u64));
            assert_eq!(detect(&noisy, 160), "", "24 ms in noise, lead {lead}");
        }
    }

    #[test]
    fn detected_in_white_noise() {
        for (i, snr_db) in [20.0, 17.0, 15.0].into_iter().enumerate() {
            for (j, digit) in ALL.chars().enumerate() {
                let p = press(digit, 60, LOUD);
                let audio = padded(&[&p]);
                let rms = (mean_power(&p[40..p.len() - 40]) / 10f64.powf(snr_db / 10.0)).sqrt();
                let noisy = mix(&audio, &noise(audio.len(), rms, (i * 100 + j) as u64));
                assert_eq!(
                    detect(&noisy, 160),
                    digit.to_string(),
                    "{digit} at {snr_db} dB SNR"
                );
            }
        }
    }

    #[test]
    fn noise_alone_is_not_a_digit() {
        for (seed, rms) in [(1, 30.0), (2, 300.0), (3, 3000.0), (4, 12_000.0)] {
            assert_eq!(detect(&noise(8000 * 3, rms, seed), 160), "", "rms {rms}");
        }
    }

    #[test]
    fn level_and_twist() {
        for digit in ALL.chars() {
            // 20 dB quieter.
            let quiet = press(digit, 60, LOUD / 10);
            assert_eq!(
                detect(&padded(&[&quiet]), 160),
                digit.to_string(),
                "{digit} x0.1"
            );
            // Normal twist (row louder) 6 dB, reverse twist 3 dB: accepted.
            let normal = dual(digit, 60, 6000, 3000);
            assert_eq!(
                detect(&padded(&[&normal]), 160),
                digit.to_string(),
                "{digit} twist +6"
            );
            let reverse = dual(digit, 60, 4250, 6000);
            assert_eq!(
                detect(&padded(&[&reverse]), 160),
                digit.to_string(),
                "{digit} twist -3"
            );
            // Quiet with twist.
            let both = dual(digit, 60, 600, 300);
            assert_eq!(
                detect(&padded(&[&both]), 160),
                digit.to_string(),
                "{digit} quiet, twist"
            );
            // Beyond the limits: 12 dB normal, 7 dB reverse.
            let too_normal = dual(digit, 60, 8000, 2000);
            assert_eq!(
                detect(&padded(&[&too_normal]), 160),
                "",
                "{digit} twist +12"
            );
            let too_reverse = dual(digit, 60, 2700, 6000);
            assert_eq!(
                detect(&padded(&[&too_reverse]), 160),
                "",
                "{digit} twist -7"
            );
            // Below the minimum level.
            let faint = press(digit, 100, 240);
            assert_eq!(detect(&padded(&[&faint]), 160), "", "{digit} faint");
        }
    }

    #[test]
    fn speech_prompts_are_not_digits() {
        let prompts = all_prompts();
        assert!(prompts.len() >= 10);
        assert!(prompts.iter().any(|(n, _)| n == "vm-unavailable.wav"));
        let mut all = Vec::new();
        for (name, pcm) in &prompts {
            assert_eq!(detect(pcm, 160), "", "{name}");
            // Louder (clipped) and quieter speech too.
            assert_eq!(detect(&scaled(pcm, 4.0), 160), "", "{name} x4");
            assert_eq!(detect(&scaled(pcm, 0.25), 160), "", "{name} x0.25");
            all.extend_from_slice(pcm);
        }
        // And all of them as one stream, fed in odd frame sizes.
        assert_eq!(detect(&all, 97), "");
    }

    #[test]
    fn digits_over_speech() {
        // A press 10 dB above the talker is still found (talk-down).
        let speech = scaled(&prompt("vm-unavailable.wav"), 0.3);
        let mut presses = silence(300);
        for digit in "159#".chars() {
            presses.extend(press(digit, 80, LOUD));
            presses.extend(silence(300));
        }
        assert_eq!(detect(&mix(&presses, &speech), 160), "159#");
    }

    #[test]
    fn beep_and_single_tones_are_not_digits() {
        assert_eq!(detect(&padded(&[&beep()]), 160), "");
        for f in [
            697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0, 440.0, 2000.0,
        ] {
            assert_eq!(detect(&padded(&[&tone(f, 500, LOUD)]), 160), "", "{f} Hz");
        }
    }

    /// A note with harmonics (like a real instrument), decaying amplitudes.
    fn note(f: f32, ms: u32, peak: i16) -> Vec<i16> {
        let mut out = tone(f, ms, peak);
        for (h, gain) in [(2.0, 0.5), (3.0, 0.33), (4.0, 0.25), (5.0, 0.2)] {
            if f * h < 3900.0 {
                out = mix(&out, &tone(f * h, ms, (f32::from(peak) * gain) as i16));
            }
        }
        out
    }

    #[test]
    fn music_like_chords_are_not_digits() {
        // Equal-tempered notes (Hz), some close to DTMF frequencies.
        let chords: &[&[f32]] = &[
            &[261.63, 329.63, 392.00],          // C major
            &[349.23, 440.00, 523.25],          // F major
            &[392.00, 493.88, 587.33, 698.46],  // G7
            &[698.46, 880.00, 1046.50],         // F5 major
            &[659.26, 783.99, 987.77, 1318.51], // E minor, high
            &[739.99, 932.33, 1244.51],         // F# / Bb / Eb
            &[587.33, 698.46, 880.00, 1174.66], // D minor 7
        ];
        for chord in chords {
            let mut audio = Vec::new();
            for &f in chord.iter() {
                audio = mix(&audio, &note(f, 600, 3000));
            }
            assert_eq!(detect(&padded(&[&audio]), 160), "", "{chord:?}");
            // Two-note intervals with harmonics.
            for pair in chord.windows(2) {
                let audio = mix(&note(pair[0], 400, 5000), &note(pair[1], 400, 5000));
                assert_eq!(detect(&padded(&[&audio]), 160), "", "{pair:?}");
            }
        }
        // An arpeggio of pure sine notes, one at a time.
        let mut audio = Vec::new();
        for f in [523.25, 659.26, 783.99, 1046.50, 1318.51, 1567.98] {
            audio.extend(tone(f, 120, 8000));
        }
        assert_eq!(detect(&audio, 160), "");
    }

    #[test]
    fn frequency_tolerance() {
        for digit in ALL.chars() {
            let (low, high) = dtmf_frequencies(digit).unwrap();
            // Q.24: within 1.5 % must be accepted.
            for dev in [-0.015, 0.015] {
                let t = mix(
                    &tone(low * (1.0 + dev), 60, 6000),
                    &tone(high * (1.0 + dev), 60, 6000),
                );
                assert_eq!(
                    detect(&padded(&[&t]), 160),
                    digit.to_string(),
                    "{digit} {dev}"
                );
            }
            // Far off (6 %) is not a digit.
            for dev in [-0.06, 0.06] {
                let t = mix(
                    &tone(low * (1.0 + dev), 100, 6000),
                    &tone(high * (1.0 + dev), 100, 6000),
                );
                assert_eq!(detect(&padded(&[&t]), 160), "", "{digit} {dev}");
            }
        }
    }

    #[test]
    fn a_second_tone_in_a_group_is_rejected() {
        // 697 + 1209 is '1', but with 770 Hz only 6 dB below 697 Hz the row
        // is ambiguous (needs 8 dB); 12 dB below is fine.
        let base = mix(&tone(697.0, 100, 6000), &tone(1209.0, 100, 6000));
        let ambiguous = mix(&base, &tone(770.0, 100, 3000));
        assert_eq!(detect(&padded(&[&ambiguous]), 160), "");
        let clear = mix(&base, &tone(770.0, 100, 1500));
        assert_eq!(detect(&padded(&[&clear]), 160), "1");
        // Same for the columns.
        let ambiguous = mix(&base, &tone(1336.0, 100, 3000));
        assert_eq!(detect(&padded(&[&ambiguous]), 160), "");
    }

    #[test]
    fn through_g711() {
        use crate::media::g711::G711;
        for codec in [G711::Pcmu, G711::Pcma] {
            for amplitude in [LOUD, LOUD / 10] {
                let mut audio = silence(30);
                for digit in ALL.chars() {
                    audio.extend(press(digit, 50, amplitude));
                    audio.extend(silence(50));
                }
                let mut coded = Vec::new();
                codec.encode(&audio, &mut coded);
                let mut decoded = Vec::new();
                codec.decode(&coded, &mut decoded);
                assert_eq!(detect(&decoded, 160), ALL, "{codec:?} at {amplitude}");
            }
        }
    }

    #[test]
    fn silence_and_empty_input() {
        let mut d = InbandDetector::new();
        assert_eq!(d.process(&[]), None);
        assert_eq!(d.process(&silence(1000)), None);
        assert_eq!(d.process(&[i16::MAX; 1000]), None);
        assert_eq!(d.process(&[i16::MIN; 1000]), None);
    }

    #[test]
    fn reset_forgets_a_press_in_progress() {
        let p = press('4', 100, LOUD);
        let mut d = InbandDetector::new();
        assert_eq!(d.process(&p[..200]), None);
        d.reset();
        assert_eq!(d.process(&silence(20)), None);
        let mut got = String::new();
        for chunk in p.chunks(160) {
            got.extend(d.process(chunk));
        }
        assert_eq!(got, "4");
    }

    #[test]
    fn many_presses_in_one_buffer_are_all_returned() {
        let mut audio = Vec::new();
        for digit in "12345678".chars() {
            audio.extend(press(digit, 50, LOUD));
            audio.extend(silence(50));
        }
        let mut d = InbandDetector::new();
        let mut got = String::new();
        got.extend(d.process(&audio));
        while let Some(c) = d.process(&[]) {
            got.push(c);
        }
        assert_eq!(got, "12345678");
    }
}
