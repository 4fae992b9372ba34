//! Tones generated in code: the recording beep, silence, DTMF dual tones.
//!
//! Generated once and cached by the caller (like prompts), so this favours
//! clarity over speed: each sample is computed directly from its index in
//! f64, which keeps the phase exact over long tones (no accumulated drift).

use std::f64::consts::PI;

pub const SAMPLE_RATE: u32 = 8000;

/// Length of the raised-cosine fade at each end; 5 ms is short enough not to
/// blur a beep and long enough to avoid the click of a hard edge.
const RAMP_MS: u32 = 5;

/// Longest tone or silence generated (10 minutes); longer requests are cut
/// short rather than exhausting memory.
pub const MAX_DURATION_MS: u32 = 10 * 60 * 1000;

/// DTMF keypad frequencies (ITU-T Q.23): rows give the low tone, columns the
/// high tone.
const DTMF_LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const DTMF_HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const DTMF_KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

fn samples_for(duration_ms: u32) -> usize {
    (duration_ms.min(MAX_DURATION_MS) as usize) * (SAMPLE_RATE as usize / 1000)
}

/// Sum of sines (each given as frequency and peak amplitude), with ramps.
fn synth(components: &[(f32, f64)], duration_ms: u32) -> Vec<i16> {
    let n = samples_for(duration_ms);
    // Short tones get proportionally shorter ramps so they still reach full
    // level in the middle.
    let ramp = samples_for(RAMP_MS).min(n / 2);
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(SAMPLE_RATE);
            let value: f64 = components
                .iter()
                .map(|&(f, a)| a * (2.0 * PI * f64::from(f) * t).sin())
                .sum();
            let edge = i.min(n - 1 - i);
            let gain = if edge < ramp {
                0.5 * (1.0 - (PI * edge as f64 / ramp as f64).cos())
            } else {
                1.0
            };
            // `as` saturates and maps NaN (a NaN frequency) to 0.
            (value * gain).round() as i16
        })
        .collect()
}

fn peak(amplitude: i16) -> f64 {
    f64::from(amplitude).abs().min(f64::from(i16::MAX))
}

/// A sine tone at 8 kHz, with 5 ms raised-cosine ramps to avoid clicks.
/// `amplitude` is the peak value (its sign is ignored).
pub fn tone(frequency_hz: f32, duration_ms: u32, amplitude: i16) -> Vec<i16> {
    synth(&[(frequency_hz, peak(amplitude))], duration_ms)
}

/// Peak amplitude of the beep: -10 dBFS, i.e. 32767 × 10^(-10/20).
pub const BEEP_AMPLITUDE: i16 = 10_362;

/// The voicemail beep: 1000 Hz for 250 ms at about -10 dBFS (like
/// Asterisk's beep.gsm).
pub fn beep() -> Vec<i16> {
    tone(1000.0, 250, BEEP_AMPLITUDE)
}

pub fn silence(duration_ms: u32) -> Vec<i16> {
    vec![0; samples_for(duration_ms)]
}

/// The (low, high) frequencies of a DTMF key; 'a'..='d' are accepted.
pub fn dtmf_frequencies(digit: char) -> Option<(f32, f32)> {
    let digit = digit.to_ascii_uppercase();
    DTMF_KEYS.iter().enumerate().find_map(|(row, keys)| {
        let col = keys.iter().position(|&k| k == digit)?;
        Some((DTMF_LOW[row], DTMF_HIGH[col]))
    })
}

/// Dual tone for a DTMF digit (for tests and for in-band sending later),
/// 697..1633 Hz grid. Each component gets half of `amplitude`, so the sum
/// never exceeds it.
pub fn dtmf_tone(digit: char, duration_ms: u32, amplitude: i16) -> Option<Vec<i16>> {
    let (low, high) = dtmf_frequencies(digit)?;
    let half = peak(amplitude) / 2.0;
    Some(synth(&[(low, half), (high, half)], duration_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_crossings(s: &[i16]) -> usize {
        s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
    }

    fn peak_abs(s: &[i16]) -> i32 {
        s.iter().map(|&x| i32::from(x).abs()).max().unwrap_or(0)
    }

    /// Relative power at one frequency (Goertzel).
    fn power_at(s: &[i16], freq: f32) -> f64 {
        let coeff = 2.0 * (2.0 * PI * f64::from(freq) / f64::from(SAMPLE_RATE)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in s {
            let s0 = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    }

    #[test]
    fn length_is_duration_times_eight() {
        assert_eq!(tone(440.0, 20, 1000).len(), 160);
        assert_eq!(tone(440.0, 0, 1000).len(), 0);
        assert_eq!(tone(440.0, 1, 1000).len(), 8);
        assert_eq!(silence(1000).len(), 8000);
        assert_eq!(dtmf_tone('5', 100, 8000).unwrap().len(), 800);
        assert_eq!(beep().len(), 2000);
    }

    #[test]
    fn frequency_by_zero_crossings() {
        for f in [400.0f32, 1000.0, 1633.0] {
            let t = tone(f, 1000, 10_000);
            let expected = 2.0 * f64::from(f);
            let got = zero_crossings(&t) as f64;
            assert!((got - expected).abs() <= 4.0, "{f} Hz: {got} crossings");
        }
    }

    #[test]
    fn amplitude_and_ramps() {
        let t = tone(1000.0, 100, 12_000);
        let p = peak_abs(&t);
        assert!((11_900..=12_000).contains(&p), "peak {p}");
        // Starts and ends at silence, and the first millisecond is quiet.
        assert_eq!(t[0], 0);
        assert!(t.last().unwrap().abs() < 100);
        assert!(peak_abs(&t[..8]) < 2000, "ramp too steep: {:?}", &t[..8]);
        // Full level after the 5 ms ramp.
        assert!(peak_abs(&t[40..80]) > 11_900);
        // Negative amplitude behaves like its magnitude, even i16::MIN.
        assert_eq!(tone(1000.0, 10, -12_000), tone(1000.0, 10, 12_000));
        assert!(peak_abs(&tone(1000.0, 100, i16::MIN)) <= i32::from(i16::MAX));
    }

    #[test]
    fn very_short_tones_still_ramp() {
        let t = tone(1000.0, 4, 10_000);
        assert_eq!(t.len(), 32);
        assert_eq!(t[0], 0);
        assert!(peak_abs(&t) > 0);
    }

    #[test]
    fn beep_is_1khz_at_minus_10_dbfs() {
        let b = beep();
        let p = peak_abs(&b);
        let dbfs = 20.0 * (f64::from(p) / 32767.0).log10();
        assert!((dbfs + 10.0).abs() < 0.2, "{dbfs} dBFS");
        let crossings = zero_crossings(&b) as f64;
        assert!((crossings - 500.0).abs() <= 3.0, "{crossings}");
    }

    #[test]
    fn silence_is_zero() {
        assert!(silence(20).iter().all(|&s| s == 0));
        assert_eq!(silence(u32::MAX).len(), samples_for(MAX_DURATION_MS));
    }

    #[test]
    fn dtmf_tones_carry_their_two_frequencies() {
        for digit in "0123456789*#ABCD".chars() {
            let (low, high) = dtmf_frequencies(digit).unwrap();
            let t = dtmf_tone(digit, 100, 16_000).unwrap();
            assert!(peak_abs(&t) <= 16_000);
            let on_low = power_at(&t, low);
            let on_high = power_at(&t, high);
            for f in DTMF_LOW.iter().chain(&DTMF_HIGH) {
                if *f != low && *f != high {
                    let off = power_at(&t, *f);
                    assert!(on_low > 10.0 * off, "{digit}: {low} vs {f}");
                    assert!(on_high > 10.0 * off, "{digit}: {high} vs {f}");
                }
            }
        }
        assert_eq!(dtmf_frequencies('1'), Some((697.0, 1209.0)));
        assert_eq!(dtmf_frequencies('d'), Some((941.0, 1633.0)));
        assert!(dtmf_tone('x', 100, 1000).is_none());
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        assert!(tone(f32::NAN, 10, 1000).iter().all(|&s| s == 0));
        assert_eq!(tone(f32::INFINITY, 10, 1000).len(), 80);
        // Above Nyquist aliases but still produces bounded samples.
        assert!(peak_abs(&tone(20_000.0, 10, 1000)) <= 1000);
    }
}
