//! The shared prompt cache: every `prompts/<lang>/<name>.wav` decoded once at
//! start into 8 kHz PCM and shared by all calls, so no call ever reads a
//! prompt file. The WAVs are rendered from `prompts/catalogue.toml` by
//! `scripts/render-prompts`; [`say`] knows how each language assembles
//! numbers and counts from them.

pub mod say;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use say::MessageAge;

/// 8 kHz mono PCM, shared without copying.
pub type Pcm = Arc<[i16]>;

/// Rate of every prompt.
pub const SAMPLE_RATE: u32 = 8000;

/// The language used when a prompt is missing in the one asked for.
pub const FALLBACK_LANGUAGE: &str = "en";

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: bad WAV: {source}")]
    Wav { path: PathBuf, source: hound::Error },
    /// A file in another format that could not be decoded and resampled.
    #[error("{path}: {source}")]
    Decode {
        path: PathBuf,
        source: crate::audio::AudioError,
    },
    #[error("{0}: no prompts found (expected <lang>/<name>.wav)")]
    Empty(PathBuf),
}

/// The decoded prompts of every language. Cheap to clone; clones share.
#[derive(Clone)]
pub struct PromptCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// language → prompt name → audio
    langs: HashMap<String, HashMap<String, Pcm>>,
    /// (language, name) pairs already warned about, so a missing prompt is
    /// logged once rather than on every call.
    warned: Mutex<HashSet<(String, String)>>,
}

impl std::fmt::Debug for PromptCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptCache")
            .field("languages", &self.languages())
            .field("prompts", &self.len())
            .finish()
    }
}

/// `prompts` in the working directory if there is one (an installed server
/// run from its own directory), else the prompts committed with the source.
pub fn default_dir() -> PathBuf {
    let local = PathBuf::from("prompts");
    if local.is_dir() {
        local
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))
    }
}

/// Names that are ours to load: no hidden or odd files (editor backups,
/// `.DS_Store`) and nothing that could be mistaken for a path.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn io_err(path: &Path, source: io::Error) -> PromptError {
    PromptError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Decodes one prompt. The committed prompts are 8 kHz mono 16-bit WAV and
/// are read as they are; anything else (another rate, stereo, float, MP3 —
/// music on hold, a customer's recordings) is decoded, downmixed and
/// resampled once, here, so the media path only ever plays 8 kHz PCM.
fn decode(path: &Path) -> Result<Pcm, PromptError> {
    let is_wav = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
    if is_wav {
        let wav_err = |source| PromptError::Wav {
            path: path.to_path_buf(),
            source,
        };
        let mut reader = hound::WavReader::open(path).map_err(wav_err)?;
        let spec = reader.spec();
        if spec.sample_rate == SAMPLE_RATE
            && spec.channels == 1
            && spec.bits_per_sample == 16
            && spec.sample_format == hound::SampleFormat::Int
        {
            let samples = reader
                .samples::<i16>()
                .collect::<Result<Vec<i16>, _>>()
                .map_err(wav_err)?;
            return Ok(samples.into());
        }
    }
    crate::audio::load_audio(path)
        .map(Pcm::from)
        .map_err(|source| PromptError::Decode {
            path: path.to_path_buf(),
            source,
        })
}

impl PromptCache {
    /// Loads every `<dir>/<lang>/<name>.wav`. Any file that is not 8 kHz
    /// mono 16-bit PCM is an error naming it: a bad prompt should stop the
    /// server at start, not produce noise mid-call.
    pub fn load(dir: &Path) -> Result<PromptCache, PromptError> {
        let mut langs = HashMap::new();
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let path = entry.path();
            let is_dir = entry.file_type().map_err(|e| io_err(&path, e))?.is_dir();
            let Some(lang) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_dir || !plain_name(&lang) {
                continue;
            }
            let mut prompts = HashMap::new();
            for file in fs::read_dir(&path).map_err(|e| io_err(&path, e))? {
                let file = file.map_err(|e| io_err(&path, e))?;
                let fpath = file.path();
                let fname = file.file_name();
                let Some(name) = fname
                    .to_str()
                    .and_then(|n| n.strip_suffix(".wav").or_else(|| n.strip_suffix(".mp3")))
                else {
                    continue;
                };
                if !plain_name(name) {
                    continue;
                }
                prompts.insert(name.to_owned(), decode(&fpath)?);
            }
            if !prompts.is_empty() {
                langs.insert(lang, prompts);
            }
        }
        if langs.is_empty() {
            return Err(PromptError::Empty(dir.to_path_buf()));
        }
        Ok(PromptCache {
            inner: Arc::new(Inner {
                langs,
                warned: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The prompt in `lang` (then its primary language, "fr" for "fr-CA"),
    /// else English, else `None` with a warning logged once.
    pub fn get(&self, lang: &str, name: &str) -> Option<Pcm> {
        let primary = lang.split(['-', '_']).next().unwrap_or(lang);
        for l in [lang, primary, FALLBACK_LANGUAGE] {
            if let Some(p) = self.inner.langs.get(l).and_then(|m| m.get(name)) {
                return Some(p.clone());
            }
        }
        let mut warned = self.inner.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.insert((lang.to_owned(), name.to_owned())) {
            tracing::warn!(
                lang,
                name,
                "missing prompt, in this language and in English"
            );
        }
        None
    }

    /// The catalogue name of a prompt handed out by this cache (found by
    /// identity, not content), for logs and for tests that assert what a
    /// caller heard.
    pub fn name_of(&self, pcm: &Pcm) -> Option<String> {
        self.inner.langs.values().find_map(|m| {
            m.iter()
                .find(|(_, p)| std::sync::Arc::ptr_eq(p, pcm))
                .map(|(n, _)| n.to_string())
        })
    }

    /// Whether `name` exists in exactly `lang`, without fallback or logging
    /// (for checks such as dial-plan validation).
    pub fn contains(&self, lang: &str, name: &str) -> bool {
        self.inner
            .langs
            .get(lang)
            .is_some_and(|m| m.contains_key(name))
    }

    fn get_all(&self, lang: &str, names: &[&str]) -> Vec<Pcm> {
        names.iter().filter_map(|n| self.get(lang, n)).collect()
    }

    /// Prompts saying each digit of `digits` ("1001" → one, zero, zero,
    /// one); characters other than 0-9 are skipped.
    pub fn digits(&self, lang: &str, digits: &str) -> Vec<Pcm> {
        self.get_all(lang, &say::digit_names(digits))
    }

    /// `n` said as a number in `lang` (0-99 in words, larger digit by digit).
    pub fn number(&self, lang: &str, n: u32) -> Vec<Pcm> {
        self.get_all(lang, &say::number_names(lang, n))
    }

    /// "three new messages" with the language's agreement and word order.
    pub fn message_count(&self, lang: &str, n: u32, age: Option<MessageAge>) -> Vec<Pcm> {
        self.get_all(lang, &say::message_count_names(lang, n, age))
    }

    /// "You have two new messages and one old message" / "You have no
    /// messages".
    pub fn you_have(&self, lang: &str, new: u32, old: u32) -> Vec<Pcm> {
        self.get_all(lang, &say::you_have_names(lang, new, old))
    }

    /// The default unavailable greeting for a box: "The person at
    /// extension", the box digits, "is not available...".
    pub fn unavailable_greeting(&self, lang: &str, mailbox: &str) -> Vec<Pcm> {
        let mut out = Vec::with_capacity(mailbox.len() + 2);
        out.extend(self.get(lang, "vm-person"));
        out.extend(self.digits(lang, mailbox));
        out.extend(self.get(lang, "vm-unavailable"));
        out
    }

    /// The languages loaded, sorted.
    pub fn languages(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.langs.keys().cloned().collect();
        v.sort();
        v
    }

    /// How many prompts are loaded, all languages together.
    pub fn len(&self) -> usize {
        self.inner.langs.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
