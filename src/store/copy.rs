//! Reading a message's audio and copying a message into another box
//! (voicemail forwarding).

use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter};

use super::formats::open_store_wav as open_wav;
use super::fsutil::{self, SPEC, io_err, wav_err};
use super::{Folder, MailboxId, MessageId, MessageMeta, Store, StoreError};
use crate::audio::AudioFormat;

impl Store {
    fn read_meta(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
    ) -> Result<MessageMeta, StoreError> {
        let (_, json) = self.message_paths(mailbox, folder, id);
        let bytes = match fs::read(&json) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::MessageNotFound {
                    mailbox: mailbox.clone(),
                    folder,
                    id: id.clone(),
                });
            }
            Err(e) => return Err(io_err(&json, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Json {
            path: json,
            source: e,
        })
    }

    /// A message's audio as 8 kHz mono PCM: its WAV, or its MP3 decoded
    /// when it is kept as MP3 only (so phones hear either).
    pub fn read_message_audio(
        &self,
        mailbox: &MailboxId,
        folder: Folder,
        id: &MessageId,
    ) -> Result<Vec<i16>, StoreError> {
        // The same reader phones stream from, read to the end.
        let mut audio = self.open_message_audio(mailbox, folder, id)?;
        let mut samples = Vec::new();
        while audio.read(8000 * 60, &mut samples)? > 0 {}
        Ok(samples)
    }

    /// Copies a message into `to`'s inbox as a new message (a fresh id
    /// generated from `at`, so it sorts as the newest), with `intro` audio
    /// in front of it (empty for none). The metadata is the original's
    /// (caller, time received) with the new box, folder and duration.
    ///
    /// The copy is kept in `to`'s own `format` (WAV and/or MP3). When the
    /// source is MP3 and nothing is put in front, an MP3 copy is the same
    /// bytes (no second lossy encoding).
    ///
    /// `max` is `to`'s limit (its `max_messages`; `None`: none): a box
    /// that has reached it gets nothing, [`StoreError::MailboxFull`], as
    /// Asterisk refuses to copy into a full box.
    ///
    /// Atomic for readers of `to`: the audio is written to a hidden temp
    /// file, synced and renamed (the MP3 encoded from it first), then the
    /// JSON is written atomically, so the copy is listed whole or not at
    /// all.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_message(
        &self,
        from: &MailboxId,
        folder: Folder,
        id: &MessageId,
        to: &MailboxId,
        max: Option<u32>,
        intro: &[i16],
        at: jiff::Timestamp,
    ) -> Result<MessageMeta, StoreError> {
        let src_meta = self.read_meta(from, folder, id)?;
        self.check_room(to, max)?;
        let src_path = self.message_audio_path(from, folder, id)?;
        let src_mp3 = self.message_audio_file(from, folder, id, AudioFormat::Mp3);
        // The source as PCM: streamed from its WAV, or its MP3 decoded.
        let mut reader = None;
        let mut decoded = Vec::new();
        if src_path.extension().is_some_and(|e| e == "mp3") {
            decoded = self.decode_mp3(&src_path)?;
        } else {
            reader = Some(open_wav(&src_path)?);
        }
        let body_len = reader
            .as_ref()
            .map_or(decoded.len() as u64, |r| u64::from(r.len()));
        let total = intro.len() as u64 + body_len;
        if total > super::writer::MAX_SAMPLES {
            return Err(StoreError::TooLong {
                max_samples: super::writer::MAX_SAMPLES,
            });
        }
        self.ensure_mailbox(to)?;
        let format = self.storage_format(to);
        let inbox = self.folder_dir(to, Folder::Inbox);
        for _ in 0..8 {
            let new_id = MessageId::generate(at);
            let (wav, json) = self.message_paths(to, Folder::Inbox, &new_id);
            if fsutil::exists(&wav)? || fsutil::exists(&json)? {
                continue;
            }
            let tmp = fsutil::temp_path_for(&wav);
            let written = (|| {
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .map_err(|e| io_err(&tmp, e))?;
                let sync = file.try_clone().map_err(|e| io_err(&tmp, e))?;
                let mut w = hound::WavWriter::new(BufWriter::new(file), SPEC)
                    .map_err(|e| wav_err(&tmp, e))?;
                for &s in intro {
                    w.write_sample(s).map_err(|e| wav_err(&tmp, e))?;
                }
                if let Some(reader) = reader.as_mut() {
                    for s in reader.samples::<i16>() {
                        let s = s.map_err(|e| wav_err(&src_path, e))?;
                        w.write_sample(s).map_err(|e| wav_err(&tmp, e))?;
                    }
                }
                for &s in &decoded {
                    w.write_sample(s).map_err(|e| wav_err(&tmp, e))?;
                }
                w.finalize().map_err(|e| wav_err(&tmp, e))?;
                sync.sync_all().map_err(|e| io_err(&tmp, e))?;
                if fsutil::exists(&wav)? {
                    return Err(StoreError::MessageExists {
                        mailbox: to.clone(),
                        folder: Folder::Inbox,
                        id: new_id.clone(),
                    });
                }
                match (&src_mp3, intro.is_empty() && format.has(AudioFormat::Mp3)) {
                    (Some(mp3), true) => {
                        // Same audio: copy the MP3 as it is, then the WAV.
                        let dst =
                            self.audio_file_path(to, Folder::Inbox, &new_id, AudioFormat::Mp3);
                        let bytes = fs::read(mp3).map_err(|e| io_err(mp3, e))?;
                        fsutil::atomic_write(&dst, &bytes)?;
                        if format.has(AudioFormat::Wav) {
                            fs::rename(&tmp, &wav).map_err(|e| io_err(&wav, e))?;
                        }
                        Ok(format)
                    }
                    _ => self.place_audio(&tmp, to, Folder::Inbox, &new_id, format),
                }
            })();
            let stored = match written {
                Ok(stored) => stored,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    let _ = self.remove_audio(to, Folder::Inbox, &new_id);
                    return Err(e);
                }
            };
            fsutil::sync_dir(&inbox)?;
            let meta = MessageMeta {
                id: new_id.as_str().to_owned(),
                mailbox: to.as_str().to_owned(),
                folder: Folder::Inbox,
                duration_seconds: total as f64 / f64::from(SPEC.sample_rate),
                format: stored.as_str().to_owned(),
                ..src_meta
            };
            if let Err(e) = fsutil::atomic_write_json(&json, &meta) {
                let _ = fs::remove_file(&tmp);
                let _ = self.remove_audio(to, Folder::Inbox, &new_id);
                return Err(e);
            }
            // With MP3 only, the WAV the MP3 was made from goes now.
            Store::drop_unkept_wav(&tmp, stored)?;
            return Ok(meta);
        }
        Err(StoreError::IdExhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::super::NewMessage;
    use super::*;

    fn mb(s: &str) -> MailboxId {
        MailboxId::try_from(s).unwrap()
    }

    fn deposit(store: &Store, mailbox: &str, samples: &[i16]) -> MessageMeta {
        let mut w = store
            .begin_message(NewMessage {
                mailbox: mb(mailbox),
                caller_number: "+3225550100".into(),
                caller_name: Some("Alice".into()),
                called_number: mailbox.into(),
                call_id: "c1".into(),
                codec: "PCMU".into(),
                started_at: "2026-03-02T09:05:00Z".parse().unwrap(),
            })
            .unwrap();
        w.write(samples).unwrap();
        w.finish(0).unwrap().unwrap()
    }

    #[test]
    fn copy_with_intro_lands_whole_in_the_other_inbox() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let body: Vec<i16> = (0..8000).map(|i| (i % 100) as i16).collect();
        let orig = deposit(&store, "1001", &body);
        let id = MessageId::try_from(orig.id.as_str()).unwrap();
        let at = "2026-03-03T10:00:00Z".parse().unwrap();
        let copy = store
            .copy_message(
                &mb("1001"),
                Folder::Inbox,
                &id,
                &mb("1002"),
                None,
                &[7; 4000],
                at,
            )
            .unwrap();
        assert_eq!(copy.mailbox, "1002");
        assert_eq!(copy.folder, Folder::Inbox);
        assert_eq!(copy.duration_seconds, 1.5);
        assert_eq!(copy.caller_number, orig.caller_number);
        assert_eq!(copy.received_at, orig.received_at);
        assert!(copy.id.starts_with("20260303-100000-"), "{}", copy.id);
        let listed = store.list_messages(&mb("1002"), Folder::Inbox).unwrap();
        assert_eq!(listed, vec![copy.clone()]);
        let audio = store
            .read_message_audio(
                &mb("1002"),
                Folder::Inbox,
                &MessageId::try_from(copy.id.as_str()).unwrap(),
            )
            .unwrap();
        assert_eq!(&audio[..4000], &[7; 4000][..]);
        assert_eq!(&audio[4000..], &body[..]);
        // The original is untouched, and no temp file is left behind.
        assert_eq!(
            store
                .read_message_audio(&mb("1001"), Folder::Inbox, &id)
                .unwrap(),
            body
        );
        let names: Vec<String> = fs::read_dir(store.folder_dir(&mb("1002"), Folder::Inbox))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn copy_of_a_missing_message_fails_and_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let id = MessageId::try_from("20260101-000000-000000").unwrap();
        let err = store
            .copy_message(
                &mb("1001"),
                Folder::Old,
                &id,
                &mb("1002"),
                None,
                &[],
                jiff::Timestamp::now(),
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::MessageNotFound { .. }), "{err}");
        assert!(
            store
                .list_messages(&mb("1002"), Folder::Inbox)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn copy_into_a_full_box_is_refused_and_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let orig = deposit(&store, "1001", &[5; 8000]);
        let id = MessageId::try_from(orig.id.as_str()).unwrap();
        // 1002 holds one new and one old message; saved ones do not count.
        deposit(&store, "1002", &[1; 8000]);
        let old = deposit(&store, "1002", &[2; 8000]);
        let old_id = MessageId::try_from(old.id.as_str()).unwrap();
        store
            .move_message(&mb("1002"), Folder::Inbox, Folder::Old, &old_id)
            .unwrap();
        let saved = deposit(&store, "1002", &[3; 8000]);
        let saved_id = MessageId::try_from(saved.id.as_str()).unwrap();
        store
            .move_message(&mb("1002"), Folder::Inbox, Folder::Saved, &saved_id)
            .unwrap();
        let at = "2026-03-03T10:00:00Z".parse().unwrap();
        let copy =
            |max| store.copy_message(&mb("1001"), Folder::Inbox, &id, &mb("1002"), max, &[], at);
        let err = copy(Some(2)).unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::MailboxFull { mailbox, messages: 2, max: 2 } if mailbox.as_str() == "1002"
            ),
            "{err}"
        );
        let names = |f| -> Vec<String> {
            fs::read_dir(store.folder_dir(&mb("1002"), f))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        // Nothing was written, not even a temp file.
        assert_eq!(names(Folder::Inbox).len(), 2, "{:?}", names(Folder::Inbox));
        assert_eq!(store.limited_messages(&mb("1002")).unwrap(), 2);
        // Below the limit, or with none (0 is none too), the copy lands.
        copy(Some(3)).unwrap();
        copy(None).unwrap();
        copy(Some(0)).unwrap();
        assert_eq!(store.limited_messages(&mb("1002")).unwrap(), 5);
        assert!(matches!(
            copy(Some(5)).unwrap_err(),
            StoreError::MailboxFull { messages: 5, .. }
        ));
    }

    #[test]
    fn the_limit_rule() {
        use super::super::limit_reached;
        assert!(!limit_reached(1000, None));
        assert!(!limit_reached(1000, Some(0)));
        assert!(!limit_reached(2, Some(3)));
        assert!(limit_reached(3, Some(3)));
        assert!(limit_reached(4, Some(3)));
    }
}
