//! Mono 16-bit PCM WAV in memory, for downloads and short files written in
//! one go (greetings, audio messages, transcoded messages).

/// Most samples one WAV can hold: its data size is a u32 of bytes.
pub const MAX_WAV_SAMPLES: usize = (u32::MAX as usize - 64) / 2;

#[derive(Debug, thiserror::Error)]
#[error("{samples} samples do not fit in a WAV file (at most {MAX_WAV_SAMPLES})")]
pub struct WavTooLong {
    pub samples: usize,
}

/// `pcm` (mono, `sample_rate`) as a canonical 44-byte-header WAV file.
pub fn wav_bytes(pcm: &[i16], sample_rate: u32) -> Result<Vec<u8>, WavTooLong> {
    if pcm.len() > MAX_WAV_SAMPLES {
        return Err(WavTooLong { samples: pcm.len() });
    }
    let data = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + pcm.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes()); // bytes/s
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hound_reads_it_back_exactly() {
        let pcm: Vec<i16> = (0..1000).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        let bytes = wav_bytes(&pcm, 8000).unwrap();
        assert_eq!(bytes.len(), 44 + 2000);
        let mut r = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 8000, 16)
        );
        let back: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back, pcm);
        assert_eq!(wav_bytes(&[], 8000).unwrap().len(), 44);
    }
}
