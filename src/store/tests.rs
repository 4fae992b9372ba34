use std::fs;

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn mb(s: &str) -> MailboxId {
    MailboxId::try_from(s).unwrap()
}

fn new_msg(mailbox: &str) -> NewMessage {
    NewMessage {
        mailbox: mb(mailbox),
        caller_number: "+3225550100".into(),
        caller_name: Some("Alice".into()),
        called_number: "1001".into(),
        call_id: "abc@host".into(),
        codec: "PCMU".into(),
        started_at: "2026-11-23T04:46:23Z".parse().unwrap(),
    }
}

/// A 20 ms frame with a recognisable ramp.
fn frame(n: usize) -> Vec<i16> {
    (0..n).map(|i| (i as i16).wrapping_mul(97)).collect()
}

fn spool_names(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(store.spool_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn message_writer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<MessageWriter>();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
}

#[test]
fn write_finish_list_round_trip() {
    let (_d, store) = store();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    // 2.5 s in 20 ms frames crosses two header checkpoints.
    for _ in 0..125 {
        w.write(&frame(160)).unwrap();
    }
    assert_eq!(w.samples_written(), 20_000);
    let id = w.id().clone();
    let meta = w.finish(8000).unwrap().expect("long enough to keep");
    assert_eq!(meta.id, id.as_str());
    assert_eq!(meta.duration_seconds, 2.5);
    assert_eq!(meta.folder, Folder::Inbox);
    assert_eq!(meta.format, "wav");
    assert_eq!(meta.sample_rate, 8000);

    let list = store.list_messages(&mb("1001"), Folder::Inbox).unwrap();
    assert_eq!(list, vec![meta.clone()]);
    assert!(
        store
            .list_messages(&mb("1001"), Folder::Old)
            .unwrap()
            .is_empty()
    );

    let path = store
        .message_audio_path(&mb("1001"), Folder::Inbox, &id)
        .unwrap();
    let mut r = hound::WavReader::open(&path).unwrap();
    assert_eq!(r.spec(), SPEC);
    let samples: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 20_000);
    assert_eq!(&samples[..160], &frame(160)[..]);

    // The JSON on disk is pretty and carries RFC 3339 time.
    let json = fs::read_to_string(path.with_extension("json")).unwrap();
    assert!(
        json.contains("\"received_at\": \"2026-11-23T04:46:23Z\""),
        "{json}"
    );
    assert!(json.contains("\"folder\": \"inbox\""));
    assert!(spool_names(&store).is_empty());
}

#[test]
fn a_dropped_tail_is_cut_from_the_file_whether_buffered_or_written() {
    let (_d, store) = store();
    // 1,000 samples, all still buffered; then 20,000, mostly on disk.
    for (total, drop) in [(1_000u64, 400u64), (20_000, 12_000)] {
        let mut w = store.begin_message(new_msg("1001")).unwrap();
        let audio = frame(total as usize);
        w.write(&audio).unwrap();
        w.drop_tail(drop);
        assert_eq!(w.samples_written(), total - drop);
        assert!(matches!(w.write(&frame(160)), Err(StoreError::Closed)));
        let id = w.id().clone();
        let meta = w.finish(0).unwrap().unwrap();
        assert_eq!(meta.duration_seconds, (total - drop) as f64 / 8000.0);
        let path = store
            .message_audio_path(&mb("1001"), Folder::Inbox, &id)
            .unwrap();
        let mut r = hound::WavReader::open(&path).unwrap();
        let kept: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(kept, &audio[..(total - drop) as usize]);
        assert_eq!(fs::metadata(&path).unwrap().len(), 44 + 2 * (total - drop));
    }
    // What is left after the cut is judged against the minimum.
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(10_000)).unwrap();
    w.drop_tail(9_000);
    assert!(w.finish(8_000).unwrap().is_none());
    assert!(spool_names(&store).is_empty());
}

#[test]
fn short_message_is_discarded_without_leftovers() {
    let (_d, store) = store();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(160)).unwrap();
    assert_eq!(
        spool_names(&store).len(),
        2,
        "wav + sidecar while recording"
    );
    assert!(w.finish(8000).unwrap().is_none());
    assert!(spool_names(&store).is_empty());
    assert!(
        store
            .list_messages(&mb("1001"), Folder::Inbox)
            .unwrap()
            .is_empty()
    );
    let inbox = store.folder_dir(&mb("1001"), Folder::Inbox);
    assert_eq!(fs::read_dir(inbox).unwrap().count(), 0);

    let w = store.begin_message(new_msg("1001")).unwrap();
    w.discard().unwrap();
    assert!(spool_names(&store).is_empty());
}

#[test]
fn concurrent_writers_same_box_get_distinct_ids() {
    let (_d, store) = store();
    let handles: Vec<_> = (0..2)
        .map(|k| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut w = store.begin_message(new_msg("1001")).unwrap();
                for _ in 0..60 {
                    w.write(&vec![k as i16 + 1; 160]).unwrap();
                }
                w.finish(1).unwrap().unwrap()
            })
        })
        .collect();
    let metas: Vec<MessageMeta> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_ne!(metas[0].id, metas[1].id);
    let list = store.list_messages(&mb("1001"), Folder::Inbox).unwrap();
    assert_eq!(list.len(), 2);
    // Each file holds only its own writer's samples.
    for meta in &list {
        let id = MessageId::try_from(meta.id.as_str()).unwrap();
        let p = store
            .message_audio_path(&mb("1001"), Folder::Inbox, &id)
            .unwrap();
        let s: Vec<i16> = hound::WavReader::open(p)
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect();
        assert_eq!(s.len(), 9600);
        assert!(s.iter().all(|&x| x == s[0]));
    }
}

#[test]
fn crash_after_checkpoint_is_recovered_with_right_duration() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    // Exactly 1.5 s: one write (up to a page boundary) after a second, the
    // rest still buffered when the process "dies".
    for _ in 0..75 {
        w.write(&frame(160)).unwrap();
    }
    let id = w.id().clone();
    std::mem::forget(w);
    drop(store);

    // A restart: a fresh Store knows nothing of the old writer.
    let store = Store::open(dir.path()).unwrap();
    let got = store.recover_spool(4000).unwrap();
    assert_eq!(got.len(), 1);
    let meta = &got[0];
    assert_eq!(meta.id, id.as_str());
    assert_eq!(meta.mailbox, "1001");
    assert_eq!(meta.caller_name.as_deref(), Some("Alice"));
    // At least the second's whole pages, at most what was written; and the
    // duration must match the samples really in the file.
    assert!(
        meta.duration_seconds >= 0.75 && meta.duration_seconds <= 1.5,
        "{}",
        meta.duration_seconds
    );
    let p = store
        .message_audio_path(&mb("1001"), Folder::Inbox, &id)
        .unwrap();
    let n = hound::WavReader::open(&p).unwrap().len();
    assert_eq!(meta.duration_seconds, f64::from(n) / 8000.0);
    assert_eq!(
        store.list_messages(&mb("1001"), Folder::Inbox).unwrap(),
        got
    );
    assert!(spool_names(&store).is_empty());
    // Idempotent: nothing left to recover.
    assert!(store.recover_spool(4000).unwrap().is_empty());
}

#[test]
fn crash_loses_at_most_the_unwritten_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    for _ in 0..150 {
        w.write(&frame(160)).unwrap();
    }
    let spool_wav = w.wav_path.clone();
    let on_disk = fs::metadata(&spool_wav).unwrap().len() - 44;
    std::mem::forget(w);
    let store = Store::open(dir.path()).unwrap();
    let got = store.recover_spool(1).unwrap();
    assert_eq!(got.len(), 1);
    // Everything written is recovered, and only the buffer was not written.
    let d = got[0].duration_seconds;
    assert_eq!(d, on_disk as f64 / 16_000.0);
    let lost = 3.0 - d;
    let bound = (writer::FLUSH_BYTES as f64 + writer::PAGE as f64) / 16_000.0;
    assert!(lost > 0.0 && lost <= bound, "lost {lost} s");
}

#[test]
fn recovery_removes_short_and_unreadable_spool_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(160)).unwrap();
    std::mem::forget(w);
    let spool = store.spool_dir();
    // Garbage WAV with a valid sidecar, a WAV with no sidecar, a temp file.
    fs::write(spool.join("20260101-000000-aaaaaa.wav"), b"junk").unwrap();
    let rec = writer::SpoolRecord::from_new(
        &MessageId::try_from("20260101-000000-aaaaaa").unwrap(),
        &new_msg("1001"),
    );
    fs::write(
        spool.join("20260101-000000-aaaaaa.json"),
        serde_json::to_vec(&rec).unwrap(),
    )
    .unwrap();
    fs::write(spool.join("20260101-000000-bbbbbb.wav"), b"RIFF").unwrap();
    fs::write(spool.join(".x.json.1234.tmp"), b"{").unwrap();
    // A sidecar that names a traversal mailbox must not escape.
    fs::write(
        spool.join("20260101-000000-cccccc.json"),
        br#"{"id":"20260101-000000-cccccc","mailbox":"../../etc","caller_number":"","caller_name":null,"called_number":"","call_id":"","codec":"PCMU","started_at":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    fs::write(spool.join("20260101-000000-cccccc.wav"), b"").unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert!(store.recover_spool(4000).unwrap().is_empty());
    assert!(spool_names(&store).is_empty(), "{:?}", spool_names(&store));
    assert!(!dir.path().join("etc").exists());
}

#[test]
fn recovery_finishes_a_delivery_cut_between_wav_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(8000)).unwrap();
    let id = w.id().clone();
    let spool_wav = w.wav_path.clone();
    let on_disk = fs::metadata(&spool_wav).unwrap().len() - 44;
    std::mem::forget(w);
    // Simulate: header repaired and WAV moved, then the crash.
    fsutil::repair_wav(&spool_wav).unwrap();
    let (inbox_wav, _) = store.message_paths(&mb("1001"), Folder::Inbox, &id);
    fs::rename(&spool_wav, &inbox_wav).unwrap();
    assert!(
        store
            .list_messages(&mb("1001"), Folder::Inbox)
            .unwrap()
            .is_empty()
    );

    let store = Store::open(dir.path()).unwrap();
    let got = store.recover_spool(1).unwrap();
    assert_eq!(got.len(), 1);
    assert!(on_disk > 0);
    assert_eq!(got[0].duration_seconds, on_disk as f64 / 16_000.0);
    assert_eq!(
        store
            .list_messages(&mb("1001"), Folder::Inbox)
            .unwrap()
            .len(),
        1
    );
    assert!(spool_names(&store).is_empty());
}

#[test]
fn delivery_moves_the_sidecar_and_recovery_finishes_after_its_rewrite() {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(8000)).unwrap();
    let id = w.id().clone();
    let sidecar = w.sidecar_path.clone();
    let sidecar_inode = fs::metadata(&sidecar).unwrap().ino();
    let meta = w.finish(1).unwrap().unwrap();
    let (inbox_wav, inbox_json) = store.message_paths(&mb("1001"), Folder::Inbox, &id);
    // The message's JSON is the sidecar's inode: nothing created, nothing
    // deleted by the delivery.
    assert_eq!(fs::metadata(&inbox_json).unwrap().ino(), sidecar_inode);
    assert!(spool_names(&store).is_empty());

    // A crash after the rewrite, before the rename, with the old record's
    // tail left after the new value: recovery moves it into the inbox.
    fs::rename(&inbox_json, &sidecar).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&sidecar)
        .unwrap()
        .write_all(b"\"codec\": \"PCMU\"}\n")
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.recover_spool(1).unwrap(), vec![meta.clone()]);
    assert_eq!(
        store.list_messages(&mb("1001"), Folder::Inbox).unwrap(),
        vec![meta.clone()]
    );
    assert!(spool_names(&store).is_empty());

    // The same with the audio's move lost too (a power cut).
    fs::rename(&inbox_json, &sidecar).unwrap();
    fs::rename(&inbox_wav, store.spool_dir().join(format!("{id}.wav"))).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.recover_spool(1).unwrap(), vec![meta.clone()]);
    assert_eq!(
        store.list_messages(&mb("1001"), Folder::Inbox).unwrap(),
        vec![meta]
    );
    assert_eq!(hound::WavReader::open(&inbox_wav).unwrap().len(), 8000);
    assert!(spool_names(&store).is_empty());
}

#[test]
fn recovery_leaves_live_writers_alone() {
    let (_d, store) = store();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(8000)).unwrap();
    assert!(store.recover_spool(1).unwrap().is_empty());
    assert_eq!(spool_names(&store).len(), 2);
    w.write(&frame(160)).unwrap();
    assert_eq!(
        w.finish(1).unwrap().unwrap().duration_seconds,
        8160.0 / 8000.0
    );
}

#[test]
fn dropped_writer_is_recovered_in_process() {
    let (_d, store) = store();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(4000)).unwrap();
    drop(w);
    let got = store.recover_spool(1).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].duration_seconds, 0.5);
}

#[test]
fn traversal_ids_are_rejected_at_the_boundary() {
    assert!(MailboxId::try_from("../x").is_err());
    assert!(MessageId::try_from("../x").is_err());
    assert!(MessageId::try_from("a/../../b").is_err());
    assert!("..".parse::<MailboxId>().is_err());
}

#[test]
fn list_skips_corrupt_json_empty_wav_and_orphans() {
    let (_d, store) = store();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(8000)).unwrap();
    let good = w.finish(1).unwrap().unwrap();
    let inbox = store.folder_dir(&mb("1001"), Folder::Inbox);
    let good_wav = inbox.join(format!("{}.wav", good.id));
    let good_json = inbox.join(format!("{}.json", good.id));

    // Corrupt JSON with valid audio.
    fs::copy(&good_wav, inbox.join("20200101-000000-000001.wav")).unwrap();
    fs::write(inbox.join("20200101-000000-000001.json"), b"{not json").unwrap();
    // Valid JSON with a 0-byte WAV.
    fs::write(inbox.join("20200101-000000-000002.wav"), b"").unwrap();
    fs::copy(&good_json, inbox.join("20200101-000000-000002.json")).unwrap();
    // Audio without JSON, JSON without audio, a bad name, a temp file.
    fs::copy(&good_wav, inbox.join("20200101-000000-000003.wav")).unwrap();
    fs::copy(&good_json, inbox.join("20200101-000000-000004.json")).unwrap();
    fs::copy(&good_json, inbox.join("bad name.json")).unwrap();
    fs::copy(&good_json, inbox.join(".tmp.json")).unwrap();

    let list = store.list_messages(&mb("1001"), Folder::Inbox).unwrap();
    assert_eq!(list, vec![good]);
}

#[test]
fn list_picks_up_files_added_by_hand_with_ids_from_their_place() {
    let (_d, store) = store();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(800)).unwrap();
    let first = w.finish(1).unwrap().unwrap();
    let inbox = store.folder_dir(&mb("1001"), Folder::Inbox);
    let saved = store.folder_dir(&mb("1001"), Folder::Saved);
    fs::copy(
        inbox.join(format!("{}.wav", first.id)),
        saved.join("20100101-000000-hand01.wav"),
    )
    .unwrap();
    fs::copy(
        inbox.join(format!("{}.json", first.id)),
        saved.join("20100101-000000-hand01.json"),
    )
    .unwrap();
    let list = store.list_messages(&mb("1001"), Folder::Saved).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, "20100101-000000-hand01");
    assert_eq!(list[0].folder, Folder::Saved);
}

#[test]
fn list_is_sorted_and_missing_mailbox_is_empty() {
    let (_d, store) = store();
    assert!(
        store
            .list_messages(&mb("nobody"), Folder::Inbox)
            .unwrap()
            .is_empty()
    );
    let mut ids = Vec::new();
    for t in [
        "2026-11-23T10:00:00Z",
        "2026-01-01T00:00:00Z",
        "2026-06-01T00:00:00Z",
    ] {
        let mut n = new_msg("7");
        n.started_at = t.parse().unwrap();
        let mut w = store.begin_message(n).unwrap();
        w.write(&frame(10)).unwrap();
        ids.push(w.finish(1).unwrap().unwrap().id);
    }
    ids.sort();
    let listed: Vec<String> = store
        .list_messages(&mb("7"), Folder::Inbox)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, ids);
    assert!(listed[0].starts_with("20260101-"));
    assert_eq!(store.list_mailboxes().unwrap(), vec![mb("7")]);
}

#[test]
fn audio_path_errors_when_absent() {
    let (_d, store) = store();
    let id = MessageId::try_from("20260101-000000-abcdef").unwrap();
    assert!(matches!(
        store.message_audio_path(&mb("1001"), Folder::Inbox, &id),
        Err(StoreError::MessageNotFound { .. })
    ));
}

#[test]
fn move_and_delete_messages() {
    let (_d, store) = store();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    w.write(&frame(800)).unwrap();
    let meta = w.finish(1).unwrap().unwrap();
    let id = MessageId::try_from(meta.id.as_str()).unwrap();
    let b = mb("1001");

    let moved = store
        .move_message(&b, Folder::Inbox, Folder::Old, &id)
        .unwrap();
    assert_eq!(moved.folder, Folder::Old);
    assert!(store.list_messages(&b, Folder::Inbox).unwrap().is_empty());
    assert_eq!(store.list_messages(&b, Folder::Old).unwrap(), vec![moved]);
    // The JSON on disk says where it is, too.
    let p = store.message_audio_path(&b, Folder::Old, &id).unwrap();
    let on_disk: MessageMeta =
        serde_json::from_slice(&fs::read(p.with_extension("json")).unwrap()).unwrap();
    assert_eq!(on_disk.folder, Folder::Old);

    assert!(matches!(
        store.move_message(&b, Folder::Inbox, Folder::Saved, &id),
        Err(StoreError::MessageNotFound { .. })
    ));
    store.delete_message(&b, Folder::Old, &id).unwrap();
    assert!(store.list_messages(&b, Folder::Old).unwrap().is_empty());
    assert!(matches!(
        store.delete_message(&b, Folder::Old, &id),
        Err(StoreError::MessageNotFound { .. })
    ));
}

#[test]
fn greeting_round_trip_and_corrupt_greeting() {
    let (_d, store) = store();
    let b = mb("1001");
    assert_eq!(store.load_greeting(&b, GreetingKind::Busy).unwrap(), None);
    let samples: Vec<i16> = (0..4000).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
    store
        .save_greeting(&b, GreetingKind::Busy, &samples)
        .unwrap();
    assert_eq!(
        store.load_greeting(&b, GreetingKind::Busy).unwrap(),
        Some(samples.clone())
    );
    // Replacing works and leaves no temp files behind.
    store
        .save_greeting(&b, GreetingKind::Busy, &samples[..10])
        .unwrap();
    assert_eq!(
        store
            .load_greeting(&b, GreetingKind::Busy)
            .unwrap()
            .unwrap()
            .len(),
        10
    );
    let greetings = store.greetings_dir(&b);
    assert_eq!(fs::read_dir(&greetings).unwrap().count(), 1);
    assert!(greetings.join("busy.wav").is_file());
    assert_eq!(
        store.load_greeting(&b, GreetingKind::Unavailable).unwrap(),
        None
    );

    fs::write(greetings.join("temp.wav"), b"RIFFxxxxWAVEgarbage").unwrap();
    assert_eq!(
        store.load_greeting(&b, GreetingKind::Temporary).unwrap(),
        None
    );
    // Wrong rate is treated like corruption: the caller falls back.
    let spec = hound::WavSpec {
        sample_rate: 16000,
        ..SPEC
    };
    let mut w = hound::WavWriter::create(greetings.join("name.wav"), spec).unwrap();
    w.write_sample(1i16).unwrap();
    w.finalize().unwrap();
    assert_eq!(store.load_greeting(&b, GreetingKind::Name).unwrap(), None);

    store.delete_greeting(&b, GreetingKind::Busy).unwrap();
    assert_eq!(store.load_greeting(&b, GreetingKind::Busy).unwrap(), None);
    store.delete_greeting(&b, GreetingKind::Busy).unwrap();
}

#[test]
fn spool_writes_end_on_pages_and_keep_every_sample() {
    let (_d, store) = store();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    // 3.7 s in 20 ms frames of distinct samples.
    let sent: Vec<i16> = (0..29_600)
        .map(|i: i32| (i * 7 % 65_521 - 32_000) as i16)
        .collect();
    let mut sizes = Vec::new();
    for f in sent.chunks(160) {
        w.write(f).unwrap();
        sizes.push(fs::metadata(&w.wav_path).unwrap().len());
    }
    // Before the end, the file is the header alone or ends on a page.
    assert!(sizes.iter().any(|&s| s > 44), "{sizes:?}");
    for s in &sizes {
        assert!(*s == 44 || s % 4096 == 0, "spool file of {s} bytes");
    }
    let id = w.id().clone();
    w.finish(8000).unwrap().unwrap();
    let path = store
        .message_audio_path(&mb("1001"), Folder::Inbox, &id)
        .unwrap();
    let got: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, sent);
}

#[test]
fn writer_rejects_recordings_past_the_wav_limit() {
    let (_d, store) = store();
    let mut w = store.begin_message(new_msg("1001")).unwrap();
    // Pretend most of the capacity is used rather than writing gigabytes.
    w.samples = writer::MAX_SAMPLES - 10;
    assert!(matches!(
        w.write(&frame(11)),
        Err(StoreError::TooLong { .. })
    ));
    w.samples = 0;
    w.discard().unwrap();
}

#[test]
fn folder_names_parse_and_serialize() {
    for f in Folder::ALL {
        assert_eq!(f.as_str().parse::<Folder>().unwrap(), f);
        assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{f}\""));
    }
    assert!("INBOX/..".parse::<Folder>().is_err());
}

#[test]
fn count_needs_metadata_and_audio_but_opens_no_file() {
    let (_d, store) = store();
    assert_eq!(store.count_messages(&mb("1001"), Folder::Inbox).unwrap(), 0);
    for _ in 0..2 {
        let mut w = store.begin_message(new_msg("1001")).unwrap();
        w.write(&frame(8000)).unwrap();
        w.finish(1).unwrap().unwrap();
    }
    let inbox = store.folder_dir(&mb("1001"), Folder::Inbox);
    // Audio without JSON and JSON without audio are not messages.
    fs::write(inbox.join("20200101-000000-000003.wav"), b"RIFF").unwrap();
    fs::write(inbox.join("20200101-000000-000004.json"), b"{}").unwrap();
    fs::write(inbox.join(".tmp.json"), b"{}").unwrap();
    assert_eq!(store.count_messages(&mb("1001"), Folder::Inbox).unwrap(), 2);
    assert_eq!(store.count_messages(&mb("1001"), Folder::Old).unwrap(), 0);
    assert_eq!(
        store
            .list_messages(&mb("1001"), Folder::Inbox)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn greeting_pcm_is_shared_until_the_file_changes() {
    let (_d, store) = store();
    let b = mb("1001");
    assert!(
        store
            .greeting_pcm(&b, GreetingKind::Unavailable)
            .unwrap()
            .is_none()
    );
    let first: Vec<i16> = (0..4000).map(|i| (i % 500) as i16).collect();
    store
        .save_greeting(&b, GreetingKind::Unavailable, &first)
        .unwrap();
    let a = store
        .greeting_pcm(&b, GreetingKind::Unavailable)
        .unwrap()
        .unwrap();
    let again = store
        .greeting_pcm(&b, GreetingKind::Unavailable)
        .unwrap()
        .unwrap();
    assert_eq!(&a[..], &first[..]);
    assert!(
        Arc::ptr_eq(&a, &again),
        "second call decoded the file again"
    );
    // A new greeting (other length) is picked up at once.
    let second: Vec<i16> = vec![7; 2000];
    store
        .save_greeting(&b, GreetingKind::Unavailable, &second)
        .unwrap();
    let b2 = store
        .greeting_pcm(&b, GreetingKind::Unavailable)
        .unwrap()
        .unwrap();
    assert_eq!(&b2[..], &second[..]);
    // Deleted: gone from the cache too.
    store
        .delete_greeting(&b, GreetingKind::Unavailable)
        .unwrap();
    assert!(
        store
            .greeting_pcm(&b, GreetingKind::Unavailable)
            .unwrap()
            .is_none()
    );
}
