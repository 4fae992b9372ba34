//! Small filesystem primitives the store builds on: atomic replace, directory
//! fsync, and repairing the header of a WAV cut short by a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The one WAV format the store writes and reads: 8 kHz, mono, 16-bit PCM.
pub const SPEC: hound::WavSpec = hound::WavSpec {
    channels: 1,
    sample_rate: 8000,
    bits_per_sample: 16,
    sample_format: hound::SampleFormat::Int,
};

pub fn io_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn wav_err(path: &Path, source: hound::Error) -> StoreError {
    match source {
        // Keep plain I/O failures (disk full, permissions) as I/O errors so
        // callers can tell them from a malformed file.
        hound::Error::IoError(e) => io_err(path, e),
        other => StoreError::Wav {
            path: path.to_path_buf(),
            source: other,
        },
    }
}

pub fn create_dir_all(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))
}

/// Makes a rename or a create inside `dir` durable: without this a power
/// cut can forget the new directory entry even though the data was synced.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Removes a file; one that is already gone is not an error.
pub fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

/// `true` if the path exists; errors other than "not found" are reported
/// rather than being read as "absent".
pub fn exists(path: &Path) -> Result<bool, StoreError> {
    path.try_exists().map_err(|e| io_err(path, e))
}

/// The hidden temp name used beside `path`. Names starting with `.` are never
/// valid ids, so listings and recovery cannot mistake a temp for a message.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let r: u32 = rand::random();
    path.with_file_name(format!(".{name}.{r:08x}.tmp"))
}

/// Replaces `path` with `bytes` atomically: temp file, fsync, rename, fsync
/// of the directory. Readers see the old content or the new, never half.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = temp_path_for(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| io_err(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Creates `path` (which must not exist) holding `value`, without a temp
/// file, a rename or an fsync: for a spool sidecar, which only recovery
/// reads and which describes audio that is not synced yet either. A crash
/// in the middle of this write leaves a file recovery cannot read; the
/// recording it describes had only just begun, and both are removed.
pub fn write_new_json_unsynced<T: serde::Serialize>(
    path: &Path,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(&bytes).map_err(|e| io_err(path, e))
}

pub fn atomic_write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    bytes.push(b'\n');
    atomic_write(path, &bytes)
}

/// Writes `value` over the file at `from` (from its start, then cut to
/// length), syncs it, renames it to `to` and syncs `to`'s directory. For a
/// file only recovery reads before the rename: a reader of `to` sees the
/// whole new content or nothing. A crash between the write and the cut can
/// leave old bytes after the new JSON value; readers of `from` take the
/// first value.
pub fn rewrite_json_and_move<T: serde::Serialize>(
    from: &Path,
    to: &Path,
    value: &T,
) -> Result<(), StoreError> {
    use std::os::unix::fs::FileExt;
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Json {
        path: to.to_path_buf(),
        source: e,
    })?;
    bytes.push(b'\n');
    let f = OpenOptions::new()
        .write(true)
        .open(from)
        .map_err(|e| io_err(from, e))?;
    f.write_all_at(&bytes, 0).map_err(|e| io_err(from, e))?;
    f.set_len(bytes.len() as u64).map_err(|e| io_err(from, e))?;
    f.sync_all().map_err(|e| io_err(from, e))?;
    fs::rename(from, to).map_err(|e| io_err(to, e))?;
    if let Some(dir) = to.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Makes a spool WAV whose header may lag its data (the header is only
/// rewritten about once a second) valid again, and returns how many samples
/// it holds. The sample count comes from the file's length, not the stale
/// header, so audio written after the last checkpoint is kept.
///
/// Errors with a reason if the file is not an 8 kHz mono 16-bit PCM WAV.
pub fn repair_wav(path: &Path) -> Result<u64, StoreError> {
    let bad = |reason: &'static str| StoreError::Wav {
        path: path.to_path_buf(),
        source: hound::Error::FormatError(reason),
    };
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let file_len = f.metadata().map_err(|e| io_err(path, e))?.len();

    // Our spool files have a 44-byte header; 4 KiB leaves room for writers
    // that add extra chunks before `data`.
    let mut head = Vec::with_capacity(4096);
    (&mut f)
        .take(4096)
        .read_to_end(&mut head)
        .map_err(|e| io_err(path, e))?;
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad("not a RIFF/WAVE file"));
    }

    let mut pos = 12usize;
    let mut fmt_ok = false;
    let data_start = loop {
        let Some(chunk) = head.get(pos..pos + 8) else {
            return Err(bad("no data chunk in the first 4 KiB"));
        };
        let id = &chunk[0..4];
        let size = le_u32(&chunk[4..8]) as usize;
        if id == b"fmt " {
            let Some(fmt) = head.get(pos + 8..pos + 8 + 16) else {
                return Err(bad("truncated fmt chunk"));
            };
            // 1 = PCM, 0xFFFE = extensible (hound writes it for >16 bits,
            // accepted here only with the same basic fields).
            let tag = le_u16(&fmt[0..2]);
            fmt_ok = (tag == 1 || tag == 0xfffe)
                && le_u16(&fmt[2..4]) == SPEC.channels
                && le_u32(&fmt[4..8]) == SPEC.sample_rate
                && le_u16(&fmt[14..16]) == SPEC.bits_per_sample;
            if !fmt_ok {
                return Err(bad("not 8 kHz mono 16-bit PCM"));
            }
        } else if id == b"data" {
            break pos + 8;
        }
        // Chunks are padded to even sizes.
        pos = pos
            .checked_add(8 + size + (size & 1))
            .ok_or_else(|| bad("chunk size overflow"))?;
    };
    if !fmt_ok {
        return Err(bad("data chunk before fmt chunk"));
    }

    let data_start = data_start as u64;
    let data_bytes = file_len.saturating_sub(data_start);
    // A crash can cut a sample in half; drop the odd byte.
    let data_bytes = data_bytes & !1;
    let data_bytes32 = u32::try_from(data_bytes).map_err(|_| bad("data longer than 4 GiB"))?;
    let riff_size =
        u32::try_from(data_start - 8 + data_bytes).map_err(|_| bad("file over 4 GiB"))?;

    if file_len != data_start + data_bytes {
        f.set_len(data_start + data_bytes)
            .map_err(|e| io_err(path, e))?;
    }
    f.seek(SeekFrom::Start(4)).map_err(|e| io_err(path, e))?;
    f.write_all(&riff_size.to_le_bytes())
        .map_err(|e| io_err(path, e))?;
    f.seek(SeekFrom::Start(data_start - 4))
        .map_err(|e| io_err(path, e))?;
    f.write_all(&data_bytes32.to_le_bytes())
        .map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))?;
    Ok(data_bytes / 2)
}

/// Reads the header of a WAV and returns its sample count, checking that it
/// is the store's format.
pub fn wav_samples(path: &Path) -> Result<u64, StoreError> {
    let r = hound::WavReader::open(path).map_err(|e| wav_err(path, e))?;
    let spec = r.spec();
    if spec.channels != SPEC.channels
        || spec.sample_rate != SPEC.sample_rate
        || spec.bits_per_sample != SPEC.bits_per_sample
        || spec.sample_format != SPEC.sample_format
    {
        return Err(StoreError::Wav {
            path: path.to_path_buf(),
            source: hound::Error::FormatError("not 8 kHz mono 16-bit PCM"),
        });
    }
    Ok(u64::from(r.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, spec: hound::WavSpec, n: usize) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..n {
            w.write_sample(i as i16).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn repair_counts_samples_beyond_a_stale_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.wav");
        write_wav(&p, SPEC, 100);
        // Append 50 samples and half a sample, as if the process died
        // before the header was rewritten.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[1u8; 101]).unwrap();
        drop(f);
        assert_eq!(wav_samples(&p).unwrap(), 100);
        assert_eq!(repair_wav(&p).unwrap(), 150);
        assert_eq!(wav_samples(&p).unwrap(), 150);
        assert_eq!(fs::metadata(&p).unwrap().len(), 44 + 300);
    }

    #[test]
    fn repair_rejects_garbage_and_wrong_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.wav");
        fs::write(&p, b"definitely not a wav file at all").unwrap();
        assert!(matches!(repair_wav(&p), Err(StoreError::Wav { .. })));
        fs::write(&p, b"").unwrap();
        assert!(matches!(repair_wav(&p), Err(StoreError::Wav { .. })));
        // A chunk size that points far past the buffer must not panic.
        let mut evil = b"RIFF\0\0\0\0WAVEjunk".to_vec();
        evil.extend_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&p, &evil).unwrap();
        assert!(matches!(repair_wav(&p), Err(StoreError::Wav { .. })));
        let stereo = hound::WavSpec {
            channels: 2,
            ..SPEC
        };
        write_wav(&p, stereo, 10);
        assert!(matches!(repair_wav(&p), Err(StoreError::Wav { .. })));
        assert!(matches!(wav_samples(&p), Err(StoreError::Wav { .. })));
    }
}
