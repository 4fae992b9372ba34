//! The audio file formats voxmail writes: how a box keeps its messages
//! (`format`) and what one download or attachment is (`AudioFormat`).

use std::fmt;

/// One encoded audio file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// 8 kHz mono 16-bit PCM WAV.
    Wav,
    /// MPEG-1/2 Layer III (8 kHz mono, 32 kbit/s, with a LAME tag).
    Mp3,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 2] = [AudioFormat::Wav, AudioFormat::Mp3];

    /// The file extension, also the name used in config and URLs.
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Mp3 => "mp3",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Mp3 => "audio/mpeg",
        }
    }

    /// `"wav"` or `"mp3"`.
    pub fn parse(s: &str) -> Option<AudioFormat> {
        AudioFormat::ALL.into_iter().find(|f| f.extension() == s)
    }

    /// Whether this build can write the format (MP3 needs the `mp3` cargo
    /// feature; WAV always works).
    pub fn can_encode(self) -> bool {
        match self {
            AudioFormat::Wav => true,
            AudioFormat::Mp3 => cfg!(feature = "mp3"),
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// How a box keeps its messages: one file per format, both beside one
/// JSON record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StorageFormat {
    #[default]
    Wav,
    Mp3,
    WavMp3,
}

impl StorageFormat {
    pub const ALL: [StorageFormat; 3] = [
        StorageFormat::Wav,
        StorageFormat::Mp3,
        StorageFormat::WavMp3,
    ];

    /// `"wav"`, `"mp3"` or `"wav+mp3"`: the config value, and the `format`
    /// of a message's metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageFormat::Wav => "wav",
            StorageFormat::Mp3 => "mp3",
            StorageFormat::WavMp3 => "wav+mp3",
        }
    }

    pub fn parse(s: &str) -> Option<StorageFormat> {
        StorageFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The formats with one file each.
    pub fn from_parts(wav: bool, mp3: bool) -> Option<StorageFormat> {
        match (wav, mp3) {
            (true, false) => Some(StorageFormat::Wav),
            (false, true) => Some(StorageFormat::Mp3),
            (true, true) => Some(StorageFormat::WavMp3),
            (false, false) => None,
        }
    }

    pub fn has(self, format: AudioFormat) -> bool {
        match format {
            AudioFormat::Wav => self != StorageFormat::Mp3,
            AudioFormat::Mp3 => self != StorageFormat::Wav,
        }
    }

    /// The format a player reads first: WAV when kept (no decoding loss).
    pub fn primary(self) -> AudioFormat {
        if self.has(AudioFormat::Wav) {
            AudioFormat::Wav
        } else {
            AudioFormat::Mp3
        }
    }

    /// Whether this build can write every file of this format.
    pub fn can_encode(self) -> bool {
        AudioFormat::ALL
            .into_iter()
            .all(|f| !self.has(f) || f.can_encode())
    }
}

impl fmt::Display for StorageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_parts() {
        for f in StorageFormat::ALL {
            assert_eq!(StorageFormat::parse(f.as_str()), Some(f));
            let parts = (f.has(AudioFormat::Wav), f.has(AudioFormat::Mp3));
            assert_eq!(StorageFormat::from_parts(parts.0, parts.1), Some(f));
        }
        assert_eq!(StorageFormat::parse("mp3+wav"), None);
        assert_eq!(StorageFormat::parse("WAV"), None);
        assert_eq!(StorageFormat::from_parts(false, false), None);
        assert_eq!(StorageFormat::Mp3.primary(), AudioFormat::Mp3);
        assert_eq!(StorageFormat::WavMp3.primary(), AudioFormat::Wav);
        assert_eq!(AudioFormat::parse("mp3"), Some(AudioFormat::Mp3));
        assert_eq!(AudioFormat::parse("ogg"), None);
        assert_eq!(AudioFormat::Mp3.content_type(), "audio/mpeg");
        assert_eq!(
            StorageFormat::WavMp3.can_encode(),
            cfg!(feature = "mp3"),
            "wav+mp3 needs the encoder"
        );
        assert!(StorageFormat::Wav.can_encode());
    }
}
