use super::*;

fn call(n: u64, id: &str) -> NewCall {
    NewCall {
        handle: CallHandle(n),
        call_id: id.to_string(),
        from: "5551234".into(),
        to: "1001".into(),
    }
}

fn msg(id: &str) -> StoredMessage {
    StoredMessage {
        mailbox: "1001".into(),
        id: id.into(),
        audio_seconds: 4.2,
        sha256: None,
        folder: Folder::Inbox,
    }
}

#[test]
fn a_call_is_active_then_ended_with_times_and_messages() {
    let reg = CallRegistry::new(Duration::from_secs(600), 100);
    let t0 = Instant::now();
    reg.call_started(t0, call(1, "abc@host"), None);
    let r = reg.get(t0, "abc@host").expect("live call");
    assert_eq!(r.state, CallState::Active);
    assert_eq!((r.from.as_str(), r.to.as_str()), ("5551234", "1001"));
    assert_eq!(r.answered_at, None);
    assert_eq!(r.duration_s, 0.0);
    reg.call_answered(t0 + Duration::from_secs(1), CallHandle(1));
    let r = reg.get(t0 + Duration::from_secs(3), "abc@host").unwrap();
    assert_eq!(r.duration_s, 2.0);
    assert_eq!(reg.live(t0).len(), 1);

    reg.call_ended(t0 + Duration::from_secs(5), CallHandle(1), "completed");
    // The deposit saves after hang-up: still listed under the call.
    reg.message_saved("abc@host", msg("m1"));
    reg.message_checksum("abc@host", "1001", "m1", "00ff".into());
    let r = reg.get(t0 + Duration::from_secs(60), "abc@host").unwrap();
    assert_eq!(r.state, CallState::Ended);
    assert_eq!(r.outcome, Some("completed"));
    assert_eq!(r.duration_s, 4.0);
    let started = r.started_at;
    assert_eq!(
        r.ended_at.unwrap().duration_since(started),
        jiff::SignedDuration::from_secs(5)
    );
    assert_eq!(
        r.messages,
        [StoredMessage {
            sha256: Some("00ff".into()),
            ..msg("m1")
        }]
    );
    assert!(reg.live(t0).is_empty());
    assert!(reg.get(t0, "other").is_none());
}

#[test]
fn ended_calls_expire_and_are_bounded() {
    let reg = CallRegistry::new(Duration::from_secs(600), 3);
    let metrics = Metrics::new();
    let t0 = Instant::now();
    for n in 0..5u64 {
        reg.call_started(t0, call(n, &format!("c{n}")), None);
        reg.call_ended(t0 + Duration::from_secs(n), CallHandle(n), "completed");
    }
    // Only the newest three are kept.
    assert_eq!(reg.counts(), (0, 3));
    assert!(reg.get(t0, "c0").is_none() && reg.get(t0, "c1").is_none());
    assert!(reg.get(t0, "c2").is_some());
    // Ten minutes after each end, it goes.
    reg.sweep(t0 + Duration::from_secs(602), &metrics);
    assert_eq!(reg.counts(), (0, 2));
    assert!(reg.get(t0, "c2").is_none());
    reg.sweep(t0 + Duration::from_secs(700), &metrics);
    assert_eq!(reg.counts(), (0, 0));
}

#[test]
fn messages_per_call_are_capped() {
    let reg = CallRegistry::default();
    reg.call_started(Instant::now(), call(1, "x"), None);
    for i in 0..(MAX_MESSAGES_PER_CALL + 5) {
        reg.message_saved("x", msg(&format!("m{i}")));
    }
    let r = reg.get(Instant::now(), "x").unwrap();
    assert_eq!(r.messages.len(), MAX_MESSAGES_PER_CALL);
    // Messages of calls the registry never saw are dropped quietly.
    reg.message_saved("unknown", msg("m"));
}

#[test]
fn a_reused_call_id_keeps_the_newest_call() {
    let reg = CallRegistry::new(Duration::from_secs(600), 10);
    let t0 = Instant::now();
    reg.call_started(t0, call(1, "same"), None);
    reg.call_started(t0, call(2, "same"), None);
    // Ending the older one leaves the newer live under the Call-ID.
    reg.call_ended(t0, CallHandle(1), "caller_hung_up");
    assert_eq!(reg.get(t0, "same").unwrap().state, CallState::Active);
    reg.call_ended(t0 + Duration::from_secs(1), CallHandle(2), "completed");
    let r = reg.get(t0, "same").unwrap();
    assert_eq!((r.state, r.outcome), (CallState::Ended, Some("completed")));
    assert_eq!(reg.counts(), (0, 1));
    // The stale order entry of the first does not take the second with it.
    reg.sweep(t0 + Duration::from_secs(600), &metrics_none());
    assert!(reg.get(t0, "same").is_some());
    reg.sweep(t0 + Duration::from_secs(601), &metrics_none());
    assert!(reg.get(t0, "same").is_none());
}

fn metrics_none() -> Metrics {
    Metrics::new()
}

#[test]
fn sweep_counts_dtmf_by_source_once() {
    let reg = CallRegistry::default();
    let metrics = Metrics::new();
    let t0 = Instant::now();
    reg.call_started(t0, call(1, "d"), None);
    {
        let mut inner = reg.lock();
        let e = inner.live.get_mut(&CallHandle(1)).unwrap();
        e.last.dtmf_by_source = [2, 1, 0];
    }
    reg.sweep(t0, &metrics);
    reg.sweep(t0, &metrics);
    {
        let mut inner = reg.lock();
        let e = inner.live.get_mut(&CallHandle(1)).unwrap();
        e.last.dtmf_by_source = [3, 1, 0];
    }
    reg.call_ended(t0, CallHandle(1), "completed");
    reg.sweep(t0 + Duration::from_secs(1), &metrics);
    reg.sweep(t0 + Duration::from_secs(10), &metrics);
    let text = metrics.render();
    for line in [
        "voxmail_dtmf_total{source=\"rfc4733\"} 3",
        "voxmail_dtmf_total{source=\"sip_info\"} 1",
        "voxmail_dtmf_total{source=\"inband\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[test]
fn checksums_are_taken_when_shown_and_follow_a_moved_message() {
    use crate::store::NewMessage;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mailbox = MailboxId::try_from("1001").unwrap();
    store.ensure_mailbox(&mailbox).unwrap();
    let deposit = |call_id: &str| {
        let mut w = store
            .begin_message(NewMessage {
                mailbox: mailbox.clone(),
                caller_number: "5551234".into(),
                caller_name: None,
                called_number: "1001".into(),
                call_id: call_id.into(),
                codec: "PCMU".into(),
                started_at: "2026-11-23T04:46:23Z".parse().unwrap(),
            })
            .unwrap();
        let samples: Vec<i16> = (0..8000).map(|i: i32| (i * 37 % 2000) as i16).collect();
        w.write(&samples).unwrap();
        w.finish(0).unwrap().expect("saved")
    };
    let reg = CallRegistry::new(Duration::from_secs(600), 100);
    let t0 = Instant::now();
    reg.call_started(t0, call(1, "one@host"), None);
    let meta = deposit("one@host");
    reg.message_stored(&meta);
    let id = MessageId::try_from(meta.id.as_str()).unwrap();
    let path = store
        .message_audio_path(&mailbox, Folder::Inbox, &id)
        .unwrap();
    let expected = sha256_file(&path).unwrap();
    // Heard since: the file is in Old now.
    store
        .move_message(&mailbox, Folder::Inbox, Folder::Old, &id)
        .unwrap();

    let mut r = reg.get(t0, "one@host").unwrap();
    assert_eq!(r.messages[0].sha256, None, "not hashed at save time");
    reg.checksum_messages(&store, &mut r);
    assert_eq!(r.messages[0].sha256.as_deref(), Some(expected.as_str()));
    // Kept: the next report has it without hashing again.
    assert_eq!(
        reg.get(t0, "one@host").unwrap().messages[0]
            .sha256
            .as_deref(),
        Some(expected.as_str())
    );

    // A deleted message stays without a checksum.
    reg.call_started(t0, call(2, "two@host"), None);
    let gone = deposit("two@host");
    reg.message_stored(&gone);
    let gone_id = MessageId::try_from(gone.id.as_str()).unwrap();
    store
        .delete_message(&mailbox, Folder::Inbox, &gone_id)
        .unwrap();
    let mut r = reg.get(t0, "two@host").unwrap();
    reg.checksum_messages(&store, &mut r);
    assert_eq!(r.messages[0].sha256, None);
}
