//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA), the two codecs every SIP phone
//! and trunk speaks.
//!
//! Decoding is one lookup in a 256-entry table built at compile time. Encoding
//! uses the classic segment computation (a leading-zeros count instead of a
//! search loop): a handful of integer operations, no 64 KiB table to keep hot.
//! The arithmetic follows the reference implementation in ITU-T G.191 /
//! Sun's `g711.c`, scaled to 16-bit linear PCM, so µ-law decodes to
//! ±32124 and A-law to ±32256 at full scale.

/// A G.711 variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    Pcmu,
    Pcma,
}

impl G711 {
    /// Static RTP payload type (RFC 3551 table 4).
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    /// The variant for a static payload type, if it is one of ours.
    pub fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(G711::Pcmu),
            8 => Some(G711::Pcma),
            _ => None,
        }
    }

    /// SDP encoding name (`a=rtpmap:0 PCMU/8000`).
    pub fn name(self) -> &'static str {
        match self {
            G711::Pcmu => "PCMU",
            G711::Pcma => "PCMA",
        }
    }

    /// Decode `input` and append the samples to `out`.
    pub fn decode(self, input: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            G711::Pcmu => &ULAW_TO_LINEAR,
            G711::Pcma => &ALAW_TO_LINEAR,
        };
        out.extend(input.iter().map(|&b| table[usize::from(b)]));
    }

    /// Encode `input` and append the codes to `out`.
    pub fn encode(self, input: &[i16], out: &mut Vec<u8>) {
        match self {
            G711::Pcmu => out.extend(input.iter().map(|&s| linear_to_ulaw(s))),
            G711::Pcma => out.extend(input.iter().map(|&s| linear_to_alaw(s))),
        }
    }

    /// The code for digital silence (linear 0): 0xFF for µ-law, 0xD5 for
    /// A-law. Used to fill gaps and pad short frames.
    pub fn silence_byte(self) -> u8 {
        match self {
            G711::Pcmu => 0xFF,
            G711::Pcma => 0xD5,
        }
    }
}

/// µ-law bias: shifts every segment so the segment boundaries fall on powers
/// of two, which lets the exponent be read off the top set bit.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude that still fits the top segment once biased.
const ULAW_CLIP: i32 = 32635;

const fn ulaw_decode(u: u8) -> i16 {
    // Codes are transmitted inverted (so that silence is not all zeros).
    let u = !u;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode(a: u8) -> i16 {
    // Even bits are inverted on the wire (0x55) to keep the line busy.
    let a = a ^ 0x55;
    let segment = (a & 0x70) >> 4;
    let mut magnitude = ((a & 0x0F) as i32) << 4;
    magnitude += match segment {
        0 => 8,
        _ => 0x108,
    };
    if segment > 1 {
        magnitude <<= segment - 1;
    }
    // In A-law the sign bit set means positive.
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Build a 256-entry decode table at compile time. (A macro, because const
/// fns cannot call through function pointers yet.)
macro_rules! decode_table {
    ($decode:ident) => {{
        let mut table = [0i16; 256];
        let mut i = 0;
        while i < 256 {
            table[i] = $decode(i as u8);
            i += 1;
        }
        table
    }};
}

/// µ-law code → 16-bit linear.
static ULAW_TO_LINEAR: [i16; 256] = decode_table!(ulaw_decode);
/// A-law code → 16-bit linear.
static ALAW_TO_LINEAR: [i16; 256] = decode_table!(alaw_decode);

/// Decode one µ-law code.
pub fn ulaw_to_linear(u: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(u)]
}

/// Decode one A-law code.
pub fn alaw_to_linear(a: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(a)]
}

/// Encode one sample to µ-law.
pub fn linear_to_ulaw(s: i16) -> u8 {
    let s = i32::from(s);
    let (sign, magnitude) = if s < 0 { (0x80, -s) } else { (0x00, s) };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // biased is in 0x84..=0x7FFF, so biased >> 7 is in 1..=255 and the
    // exponent (position of its top bit) is in 0..=7.
    let exponent = 31 - ((biased >> 7) as u32).leading_zeros();
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as i32) << 4) | mantissa) as u8
}

/// Encode one sample to A-law.
pub fn linear_to_alaw(s: i16) -> u8 {
    // A-law works on 13-bit magnitudes; negative values use one's complement
    // so that -1..-8 map to the smallest negative code, like the reference.
    let v = i32::from(s) >> 3;
    let (mask, magnitude) = if v >= 0 { (0xD5, v) } else { (0x55, -v - 1) };
    // magnitude is in 0..=4095: segment 0 covers 0..=31, segment n
    // (1..=7) covers 32 << (n-1) ..= (32 << n) - 1.
    let segment = (32 - (magnitude as u32 >> 4).leading_zeros()).saturating_sub(1);
    let mantissa = if segment < 2 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    (((segment as i32) << 4) | mantissa) as u8 ^ mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0, "negative zero decodes to 0");
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn ulaw_all_codes_round_trip() {
        for code in 0..=255u8 {
            let back = linear_to_ulaw(ulaw_to_linear(code));
            if code == 0x7F {
                // G.711 has two zero codes; the encoder only ever produces
                // positive zero (0xFF).
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, code, "µ-law code {code:#04x}");
            }
        }
    }

    #[test]
    fn alaw_all_codes_round_trip() {
        for code in 0..=255u8 {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law code {code:#04x}"
            );
        }
    }

    #[test]
    fn decode_is_monotonic_within_each_sign() {
        // µ-law: 0xFF..=0x80 is 0 up to full scale positive, 0x7F..=0x00 is
        // 0 down to full scale negative.
        for c in 0x81..=0xFFu8 {
            assert!(ulaw_to_linear(c - 1) > ulaw_to_linear(c));
        }
        for c in 0x01..=0x7Fu8 {
            assert!(ulaw_to_linear(c - 1) < ulaw_to_linear(c));
        }
        // A-law: after removing the 0x55 inversion, magnitude grows with the
        // low seven bits; the top bit set means positive.
        let lin = |c: u8| alaw_to_linear(c ^ 0x55);
        for c in 0x81..=0xFFu8 {
            assert!(lin(c) > lin(c - 1));
        }
        for c in 0x01..=0x7Fu8 {
            assert!(lin(c) < lin(c - 1));
        }
    }

    #[test]
    fn encode_is_monotonic_and_error_is_bounded() {
        for law in [G711::Pcmu, G711::Pcma] {
            let mut prev = i32::MIN;
            for s in i16::MIN..=i16::MAX {
                let mut code = Vec::new();
                law.encode(&[s], &mut code);
                let mut back = Vec::new();
                law.decode(&code, &mut back);
                let d = i32::from(back[0]);
                assert!(d >= prev, "{law:?}: not monotonic at {s}");
                prev = d;
                // Decoding returns the middle of the quantisation interval, so
                // the error is at most half a step, and steps grow with the
                // magnitude (about 1/16 of it); clipping adds < 700 at the top.
                let err = (d - i32::from(s)).abs();
                let limit = (i32::from(s).abs() / 16).max(16);
                assert!(err <= limit, "{law:?}: {s} -> {d}");
            }
        }
    }

    #[test]
    fn slice_api_appends_and_reports_codec_facts() {
        let mut pcm = vec![1234i16];
        G711::Pcmu.decode(&[0xFF, 0x80], &mut pcm);
        assert_eq!(pcm, [1234, 0, 32124]);
        let mut bytes = vec![0xAA];
        G711::Pcma.encode(&[0, 32767], &mut bytes);
        assert_eq!(bytes, [0xAA, 0xD5, 0xAA]);

        for law in [G711::Pcmu, G711::Pcma] {
            assert_eq!(G711::from_payload_type(law.payload_type()), Some(law));
            let mut z = Vec::new();
            law.encode(&[0], &mut z);
            assert_eq!(z, [law.silence_byte()]);
        }
        assert_eq!(G711::Pcmu.payload_type(), 0);
        assert_eq!(G711::Pcma.payload_type(), 8);
        assert_eq!(G711::Pcmu.name(), "PCMU");
        assert_eq!(G711::Pcma.name(), "PCMA");
        assert_eq!(G711::from_payload_type(18), None);
    }
}
