//! Messages kept as WAV, MP3 or both: delivery, moves, copies, recovery
//! and transcoded downloads (with the `mp3` feature).

use super::*;

fn mb(s: &str) -> MailboxId {
    MailboxId::try_from(s).unwrap()
}

/// A store where box 2001 keeps WAV+MP3, 2002 MP3 only, others WAV.
fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path()).unwrap();
    store.set_storage_formats(Arc::new(|m: &MailboxId| match m.as_str() {
        "2001" => StorageFormat::WavMp3,
        "2002" => StorageFormat::Mp3,
        _ => StorageFormat::Wav,
    }));
    (d, store)
}

fn tone(n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (9000.0 * (i as f64 * 0.2).sin() * (1.0 + (i as f64 * 0.001).sin())) as i16)
        .collect()
}

fn begin(store: &Store, mailbox: &str) -> super::super::MessageWriter {
    store.begin_for_test(mailbox)
}

fn deposit(
    store: &Store,
    mailbox: &str,
    samples: &[i16],
) -> (MessageId, crate::store::MessageMeta) {
    let mut w = begin(store, mailbox);
    w.write(samples).unwrap();
    let meta = w.finish(0).unwrap().unwrap();
    (MessageId::try_from(meta.id.as_str()).unwrap(), meta)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn correlation(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let (x, y) = (f64::from(a[i]), f64::from(b[i]));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1.0)
}

#[test]
fn both_formats_share_one_record_and_move_and_delete_together() {
    let (d, store) = store();
    let pcm = tone(16000);
    let (id, meta) = deposit(&store, "2001", &pcm);
    assert_eq!(meta.format, "wav+mp3");
    let inbox = d.path().join("mailboxes/2001/inbox");
    assert_eq!(
        names(&inbox),
        vec![
            format!("{id}.json"),
            format!("{id}.mp3"),
            format!("{id}.wav")
        ]
    );
    assert_eq!(
        store.list_messages(&mb("2001"), Folder::Inbox).unwrap(),
        vec![meta]
    );
    // The spool is empty.
    assert!(names(&d.path().join("spool")).is_empty());

    let moved = store
        .move_message(&mb("2001"), Folder::Inbox, Folder::Saved, &id)
        .unwrap();
    assert_eq!(moved.format, "wav+mp3");
    assert!(names(&inbox).is_empty());
    let saved = d.path().join("mailboxes/2001/saved");
    assert_eq!(names(&saved).len(), 3);
    // Playback takes the WAV: exact.
    assert_eq!(
        store
            .read_message_audio(&mb("2001"), Folder::Saved, &id)
            .unwrap(),
        pcm
    );

    store
        .delete_message(&mb("2001"), Folder::Saved, &id)
        .unwrap();
    assert!(names(&saved).is_empty());
}

#[test]
fn mp3_only_is_heard_decoded_and_downloads_either_format() {
    let (d, store) = store();
    let pcm = tone(24000);
    let (id, meta) = deposit(&store, "2002", &pcm);
    assert_eq!(meta.format, "mp3");
    assert_eq!(meta.duration_seconds, 3.0);
    let inbox = d.path().join("mailboxes/2002/inbox");
    assert_eq!(
        names(&inbox),
        vec![format!("{id}.json"), format!("{id}.mp3")]
    );
    assert!(names(&d.path().join("spool")).is_empty());
    assert_eq!(
        store
            .list_messages(&mb("2002"), Folder::Inbox)
            .unwrap()
            .len(),
        1
    );
    let path = store
        .message_audio_path(&mb("2002"), Folder::Inbox, &id)
        .unwrap();
    assert!(path.ends_with(format!("{id}.mp3")));

    // What the phone menus play: decoded MP3, within a frame.
    let heard = store
        .read_message_audio(&mb("2002"), Folder::Inbox, &id)
        .unwrap();
    assert!(heard.len().abs_diff(pcm.len()) <= 576, "{}", heard.len());
    assert!(correlation(&pcm, &heard) > 0.95);

    // A WAV download is transcoded; the MP3 one is the file itself.
    let wav = store
        .message_audio_bytes(&mb("2002"), Folder::Inbox, &id, AudioFormat::Wav)
        .unwrap();
    let r = hound::WavReader::new(io::Cursor::new(wav)).unwrap();
    assert_eq!(r.spec(), SPEC);
    assert_eq!(r.len() as usize, heard.len());
    let mp3 = store
        .message_audio_bytes(&mb("2002"), Folder::Inbox, &id, AudioFormat::Mp3)
        .unwrap();
    assert_eq!(mp3, fs::read(&path).unwrap());
}

#[test]
fn wav_boxes_transcode_mp3_downloads() {
    let (_d, store) = store();
    let pcm = tone(8000);
    let (id, meta) = deposit(&store, "2003", &pcm);
    assert_eq!(meta.format, "wav");
    assert_eq!(
        store.stored_format(&mb("2003"), Folder::Inbox, &id),
        Some(StorageFormat::Wav)
    );
    let mp3 = store
        .message_audio_bytes(&mb("2003"), Folder::Inbox, &id, AudioFormat::Mp3)
        .unwrap();
    let back = crate::audio::decode_bytes(mp3, 60).unwrap();
    assert!(back.len().abs_diff(8000) <= 576, "{}", back.len());
}

#[test]
fn a_crash_mid_recording_is_recovered_in_the_box_format() {
    let (d, store) = store();
    let mut w = begin(&store, "2002");
    w.write(&tone(12000)).unwrap();
    drop(w);
    // A leftover MP3 from a delivery cut short before its JSON.
    let inbox = d.path().join("mailboxes/2002/inbox");
    let recovered = store.recover_spool(0).unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].format, "mp3");
    let id = &recovered[0].id;
    assert_eq!(
        names(&inbox),
        vec![format!("{id}.json"), format!("{id}.mp3")]
    );
    assert!(names(&d.path().join("spool")).is_empty());
}

#[test]
fn a_leftover_mp3_without_json_is_replaced_on_recovery() {
    let (d, store) = store();
    let mut w = begin(&store, "2001");
    let id = w.id().clone();
    w.write(&tone(8000)).unwrap();
    drop(w);
    let inbox = d.path().join("mailboxes/2001/inbox");
    fs::write(inbox.join(format!("{id}.mp3")), b"half").unwrap();
    let recovered = store.recover_spool(0).unwrap();
    assert_eq!(recovered[0].format, "wav+mp3");
    let mp3 = fs::read(inbox.join(format!("{id}.mp3"))).unwrap();
    assert!(mp3.len() > 1000);
}

#[test]
fn copies_take_the_target_box_format() {
    let (d, store) = store();
    let pcm = tone(8000);
    let (wav_id, _) = deposit(&store, "2003", &pcm);
    let at = "2026-03-03T10:00:00Z".parse().unwrap();
    // WAV box -> MP3 box, with an intro: MP3 only.
    let c = store
        .copy_message(
            &mb("2003"),
            Folder::Inbox,
            &wav_id,
            &mb("2002"),
            None,
            &[5; 800],
            at,
        )
        .unwrap();
    assert_eq!(c.format, "mp3");
    assert_eq!(c.duration_seconds, 1.1);
    let inbox2 = d.path().join("mailboxes/2002/inbox");
    assert_eq!(
        names(&inbox2),
        vec![format!("{}.json", c.id), format!("{}.mp3", c.id)]
    );

    // MP3 box -> WAV+MP3 box, no intro: the MP3 is the same bytes.
    let mp3_id = MessageId::try_from(c.id.as_str()).unwrap();
    let c2 = store
        .copy_message(
            &mb("2002"),
            Folder::Inbox,
            &mp3_id,
            &mb("2001"),
            None,
            &[],
            at,
        )
        .unwrap();
    assert_eq!(c2.format, "wav+mp3");
    let id2 = MessageId::try_from(c2.id.as_str()).unwrap();
    assert_eq!(
        fs::read(
            store
                .message_audio_file(&mb("2001"), Folder::Inbox, &id2, AudioFormat::Mp3)
                .unwrap()
        )
        .unwrap(),
        fs::read(
            store
                .message_audio_file(&mb("2002"), Folder::Inbox, &mp3_id, AudioFormat::Mp3)
                .unwrap()
        )
        .unwrap(),
    );
    let inbox1 = d.path().join("mailboxes/2001/inbox");
    assert_eq!(names(&inbox1).len(), 3);
    assert!(names(&inbox1).iter().all(|n| !n.starts_with('.')));
}
