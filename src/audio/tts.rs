//! Text-to-speech with espeak-ng (Debian's `espeak-ng`), the engine the
//! shipped prompts are rendered with (scripts/render-prompts).
//!
//! espeak-ng runs as a child process with plain arguments (no shell), the
//! text on its standard input (never on the command line, where a leading
//! `-` would read as an option), a time limit after which it is killed,
//! and at most [`MAX_CONCURRENT`] at a time. Its WAV (22.05 kHz) goes
//! through the one decoder and resampler to 8 kHz mono.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Semaphore;

use super::DecodeError;

/// The program run, from `PATH`.
pub const PROGRAM: &str = "espeak-ng";
/// Longest text, in characters (a couple of minutes of speech).
pub const MAX_TEXT_CHARS: usize = 2000;
/// espeak-ng is killed after this long.
pub const TIME_LIMIT: Duration = Duration::from_secs(30);
/// Syntheses running at once; more wait their turn.
pub const MAX_CONCURRENT: usize = 2;
/// Longest speech accepted back, in seconds.
const MAX_SECONDS: u32 = 600;

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error(
        "text-to-speech needs espeak-ng, which is not installed here (Debian package `espeak-ng`)"
    )]
    Missing,
    #[error("the text is empty")]
    EmptyText,
    #[error("the text is {chars} characters long; at most {MAX_TEXT_CHARS} are accepted")]
    TextTooLong { chars: usize },
    #[error("unknown language {0:?}: expected one of {langs}", langs = crate::config::LANGUAGES.join(", "))]
    UnknownLanguage(String),
    #[error("unknown voice {0:?}: expected an espeak-ng variant such as \"m3\" or \"f2\"")]
    UnknownVoice(String),
    #[error("espeak-ng did not finish within {} seconds", TIME_LIMIT.as_secs())]
    Timeout,
    #[error("espeak-ng failed: {0}")]
    Failed(String),
    #[error("espeak-ng output: {0}")]
    Decode(#[from] DecodeError),
}

/// espeak-ng's voice for one of voxmail's languages (as the prompt
/// catalogue renders them).
pub fn language_voice(language: &str) -> Option<&'static str> {
    Some(match language {
        "en" => "en-us",
        "fr" => "fr-fr",
        "es" => "es",
        "de" => "de",
        _ => return None,
    })
}

/// `text` made fit for speech: control characters become spaces, checked
/// against the limits.
pub fn clean_text(text: &str) -> Result<String, TtsError> {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        return Err(TtsError::EmptyText);
    }
    let chars = cleaned.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(TtsError::TextTooLong { chars });
    }
    Ok(cleaned.to_owned())
}

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(MAX_CONCURRENT))
}

/// Runs `program` with `args`, `input` on its stdin; its stdout, or why not.
async fn run(program: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, TtsError> {
    let _permit = permits()
        .acquire()
        .await
        .map_err(|e| TtsError::Failed(e.to_string()))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TtsError::Missing,
            _ => TtsError::Failed(e.to_string()),
        })?;
    let mut stdin = child.stdin.take();
    let work = async {
        if let Some(mut stdin) = stdin.take() {
            // A write error means espeak-ng exited early; its status says why.
            let _ = stdin.write_all(input).await;
            drop(stdin);
        }
        child.wait_with_output().await
    };
    // On timeout the future, and with it the child (kill_on_drop), goes.
    let out = tokio::time::timeout(TIME_LIMIT, work)
        .await
        .map_err(|_| TtsError::Timeout)?
        .map_err(|e| TtsError::Failed(e.to_string()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: String = err.trim().chars().take(200).collect();
        return Err(TtsError::Failed(format!("{}: {err}", out.status)));
    }
    Ok(out.stdout)
}

/// The variant names espeak-ng knows (`--voices=variant`), read once.
async fn variants(program: &str) -> Result<&'static [String], TtsError> {
    static VARIANTS: OnceLock<Vec<String>> = OnceLock::new();
    if let Some(v) = VARIANTS.get() {
        return Ok(v);
    }
    let out = run(program, &["--voices=variant"], b"").await?;
    let names: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(4))
        .filter_map(|file| file.strip_prefix("!v/"))
        .map(str::to_owned)
        .collect();
    Ok(VARIANTS.get_or_init(|| names))
}

/// Speaks `text` in `language` (one of voxmail's) with an optional
/// espeak-ng variant `voice`, as 8 kHz mono PCM. `program` is normally
/// [`PROGRAM`].
pub async fn synthesize(
    program: &str,
    text: &str,
    language: &str,
    voice: Option<&str>,
) -> Result<Vec<i16>, TtsError> {
    let base = language_voice(language)
        .ok_or_else(|| TtsError::UnknownLanguage(language.chars().take(16).collect()))?;
    let text = clean_text(text)?;
    let voice_arg = match voice {
        None => base.to_owned(),
        Some(v) => {
            let plausible = !v.is_empty()
                && v.len() <= 32
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !plausible || !variants(program).await?.iter().any(|k| k == v) {
                return Err(TtsError::UnknownVoice(v.chars().take(32).collect()));
            }
            format!("{base}+{v}")
        }
    };
    // -s 160: a little slower than espeak's default, clearer on a phone.
    let args = ["-v", voice_arg.as_str(), "-s", "160", "--stdout"];
    let wav = run(program, &args, text.as_bytes()).await?;
    // espeak-ng's streamed WAV header has placeholder sizes; the decoder
    // reads to the end of what was written.
    let samples = tokio::task::spawn_blocking(move || super::decode_bytes(wav, MAX_SECONDS))
        .await
        .map_err(|e| TtsError::Failed(e.to_string()))??;
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have_espeak() -> bool {
        std::process::Command::new(PROGRAM)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn text_is_cleaned_and_limited() {
        assert_eq!(
            clean_text("  hello\n\tworld\u{7} ").unwrap(),
            "hello  world"
        );
        assert!(matches!(clean_text(" \n "), Err(TtsError::EmptyText)));
        let long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert!(matches!(
            clean_text(&long),
            Err(TtsError::TextTooLong { chars }) if chars == MAX_TEXT_CHARS + 1
        ));
        assert!(clean_text(&"é".repeat(MAX_TEXT_CHARS)).is_ok());
    }

    #[tokio::test]
    async fn a_missing_program_says_so() {
        let e = synthesize("espeak-ng-not-installed-here", "hello", "en", None)
            .await
            .unwrap_err();
        assert!(matches!(e, TtsError::Missing), "{e}");
        assert!(e.to_string().contains("espeak-ng"));
    }

    #[tokio::test]
    async fn bad_requests_fail_before_running_anything() {
        let e = synthesize("espeak-ng-not-installed-here", "hi", "xx", None)
            .await
            .unwrap_err();
        assert!(matches!(e, TtsError::UnknownLanguage(_)), "{e}");
        let e = synthesize("espeak-ng-not-installed-here", "  ", "en", None)
            .await
            .unwrap_err();
        assert!(matches!(e, TtsError::EmptyText), "{e}");
    }

    #[tokio::test]
    async fn speaks_8k_audio_of_plausible_length() {
        if !have_espeak() {
            eprintln!("espeak-ng not installed; skipping (scripts/test installs it)");
            return;
        }
        let pcm = synthesize(PROGRAM, "-v Hello, this is voxmail.", "en", None)
            .await
            .unwrap();
        let secs = pcm.len() as f64 / 8000.0;
        assert!((0.8..6.0).contains(&secs), "{secs} s");
        let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 3000, "peak {peak}");
        let with_voice = synthesize(PROGRAM, "Bonjour", "fr", Some("f2"))
            .await
            .unwrap();
        assert!(!with_voice.is_empty());
        let e = synthesize(PROGRAM, "hi", "en", Some("nosuchvoice"))
            .await
            .unwrap_err();
        assert!(matches!(e, TtsError::UnknownVoice(_)), "{e}");
        let e = synthesize(PROGRAM, "hi", "en", Some("../x"))
            .await
            .unwrap_err();
        assert!(matches!(e, TtsError::UnknownVoice(_)), "{e}");
    }
}
