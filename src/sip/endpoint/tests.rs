use super::*;

fn peer() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        remote: "127.0.0.1:5070".parse().unwrap(),
        local: "127.0.0.1:5060".parse().unwrap(),
        connection: 0,
    }
}

fn invite(branch: &str, sdp: bool) -> String {
    let body = if sdp {
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
    } else {
        ""
    };
    let ct = if sdp {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!(
        "INVITE sip:1001@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
         From: \"Caller\" <sip:2000@127.0.0.1>;tag=caller\r\n\
         To: <sip:1001@127.0.0.1>\r\n\
         Call-ID: cid-1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:2000@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n\
         {ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn in_dialog(method: &str, branch: &str, cseq: u32, to_tag: &str, body: &str) -> String {
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:1001@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
         From: \"Caller\" <sip:2000@127.0.0.1>;tag=caller\r\n\
         To: <sip:1001@127.0.0.1>;tag={to_tag}\r\n\
         Call-ID: cid-1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         {ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

struct Harness {
    ep: Endpoint,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Harness {
            ep: Endpoint::new(EndpointConfig::default()),
            now: Instant::now(),
        }
    }
    fn feed(&mut self, msg: &str) {
        self.ep.handle_message(self.now, peer(), msg.as_bytes());
    }
    fn sent(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.ep.poll_transmit())
            .map(|t| String::from_utf8(t.data).unwrap())
            .collect()
    }
    fn events(&mut self) -> Vec<SipEvent> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.ep.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.ep.handle_timeout(self.now);
        }
        self.now = end;
    }
    /// INVITE, accepted, returns (call, local tag).
    fn answered_call(&mut self) -> (CallHandle, String) {
        self.feed(&invite("z9hG4bK-inv", true));
        let call = match self.events().pop() {
            Some(SipEvent::IncomingCall { call, .. }) => call,
            other => panic!("expected IncomingCall, got {other:?}"),
        };
        self.sent();
        self.ep.accept(self.now, call, b"v=0\r\n");
        let ok = self.sent().pop().unwrap();
        (call, to_tag(&ok))
    }
}

fn status(msg: &str) -> u16 {
    msg.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The CANCEL of the INVITE sent with `branch`.
fn cancel_of(branch: &str) -> String {
    invite(branch, false)
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL")
}

/// Our tag, in a response's To header.
fn to_tag(response: &str) -> String {
    let to = response.split("\r\nTo: ").nth(1).unwrap();
    let line = to.split("\r\n").next().unwrap();
    line.split(";tag=").nth(1).unwrap().to_string()
}

#[test]
fn invite_accept_ack() {
    let mut h = Harness::new();
    h.feed(&invite("z9hG4bK-inv", true));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(status(&sent[0]), 100);
    let (call, sdp_seen) = match h.events().pop() {
        Some(SipEvent::IncomingCall { call, request, .. }) => (call, request.sdp().is_some()),
        other => panic!("{other:?}"),
    };
    assert!(sdp_seen);
    h.ep.accept(h.now, call, b"v=0\r\n");
    let ok = h.sent().pop().unwrap();
    assert_eq!(status(&ok), 200);
    assert!(ok.contains("Contact: <sip:1001@127.0.0.1:5060>"));
    assert!(ok.contains("Content-Type: application/sdp"));
    // A retransmitted INVITE gets the 200 again and no new call.
    h.feed(&invite("z9hG4bK-inv", true));
    assert_eq!(status(&h.sent()[0]), 200);
    assert!(h.events().is_empty());
    // 200 is resent at T1 until the ACK.
    h.advance(Duration::from_millis(600));
    assert_eq!(h.sent().len(), 1);
    h.feed(&in_dialog("ACK", "z9hG4bK-ack", 1, &to_tag(&ok), ""));
    assert!(matches!(
        h.events().pop(),
        Some(SipEvent::Confirmed { sdp: None, .. })
    ));
    h.advance(Duration::from_secs(10));
    assert!(h.sent().is_empty(), "no retransmission after ACK");
}

#[test]
fn no_ack_means_bye() {
    let mut h = Harness::new();
    let (call, _) = h.answered_call();
    h.advance(Duration::from_secs(33));
    let sent = h.sent();
    assert!(sent.iter().filter(|m| m.starts_with("SIP/2.0 200")).count() >= 5);
    assert!(
        sent.iter()
            .any(|m| m.starts_with("BYE sip:2000@127.0.0.1:5070 SIP/2.0"))
    );
    assert!(h.events().iter().any(
        |e| matches!(e, SipEvent::Terminated { call: c, reason: EndReason::NoAck } if *c == call)
    ));
}

#[test]
fn cancel_before_answer() {
    let mut h = Harness::new();
    h.feed(&invite("z9hG4bK-inv", true));
    h.sent();
    h.events();
    h.feed(&cancel_of("z9hG4bK-inv"));
    let sent = h.sent();
    assert_eq!(status(&sent[0]), 200);
    assert!(sent[0].contains("CSeq: 1 CANCEL"));
    assert_eq!(status(&sent[1]), 487);
    assert!(matches!(
        h.events().pop(),
        Some(SipEvent::Terminated {
            reason: EndReason::Cancelled,
            ..
        })
    ));
    // 487 resent until ACK (same branch), then silence.
    h.advance(Duration::from_millis(600));
    assert_eq!(status(&h.sent()[0]), 487);
    let ack = in_dialog("ACK", "z9hG4bK-inv", 1, &to_tag(&sent[1]), "");
    h.feed(&ack);
    h.advance(Duration::from_secs(40));
    assert!(h.sent().is_empty());
    assert_eq!(h.ep.call_count(), 0, "state is forgotten");
}

#[test]
fn remote_bye_and_its_retransmission() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    h.feed(&in_dialog("ACK", "z9hG4bK-ack", 1, &tag, ""));
    h.events();
    let bye = in_dialog("BYE", "z9hG4bK-bye", 2, &tag, "");
    h.feed(&bye);
    assert_eq!(status(&h.sent()[0]), 200);
    assert!(
        matches!(h.events().pop(), Some(SipEvent::Terminated { call: c, reason: EndReason::RemoteBye }) if c == call)
    );
    h.feed(&bye);
    assert_eq!(status(&h.sent()[0]), 200);
    assert!(h.events().is_empty(), "Terminated only once");
    h.advance(Duration::from_secs(40));
    assert_eq!(h.ep.call_count(), 0);
}

#[test]
fn local_hangup_sends_bye_and_retransmits() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    h.feed(&in_dialog("ACK", "z9hG4bK-ack", 1, &tag, ""));
    h.events();
    h.ep.hangup(h.now, call);
    let bye = h.sent().pop().unwrap();
    assert!(bye.starts_with("BYE sip:2000@127.0.0.1:5070 SIP/2.0"));
    assert!(bye.contains(&format!("From: <sip:1001@127.0.0.1>;tag={tag}")));
    assert!(bye.contains("To: \"Caller\" <sip:2000@127.0.0.1>;tag=caller"));
    h.advance(Duration::from_millis(600));
    assert_eq!(h.sent().len(), 1, "BYE resent (timer E)");
    let branch = bye
        .split("branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let cseq = bye
        .split("CSeq: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let resp = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:1001@127.0.0.1>;tag={tag}\r\nTo: <sip:2000@127.0.0.1>;tag=caller\r\nCall-ID: cid-1\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n"
    );
    h.feed(&resp);
    assert!(matches!(
        h.events().pop(),
        Some(SipEvent::Terminated {
            reason: EndReason::LocalBye,
            ..
        })
    ));
    h.advance(Duration::from_secs(5));
    assert!(h.sent().is_empty());
}

#[test]
fn reinvite_hold_is_offered_to_the_app() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    h.feed(&in_dialog("ACK", "z9hG4bK-ack", 1, &tag, ""));
    h.events();
    let reinvite = in_dialog("INVITE", "z9hG4bK-re", 2, &tag, "v=0\r\na=sendonly\r\n");
    h.feed(&reinvite);
    match h.events().pop() {
        Some(SipEvent::Reoffer {
            call: c,
            sdp: Some(s),
        }) => {
            assert_eq!(c, call);
            assert!(s.contains("sendonly"));
        }
        other => panic!("{other:?}"),
    }
    h.ep.answer_reoffer(h.now, call, Ok(b"v=0\r\na=recvonly\r\n"));
    let ok = h.sent().pop().unwrap();
    assert_eq!(status(&ok), 200);
    assert!(ok.contains("CSeq: 2 INVITE"));
    h.feed(&in_dialog("ACK", "z9hG4bK-ack2", 2, &tag, ""));
    h.advance(Duration::from_secs(5));
    assert!(h.sent().is_empty());
}

#[test]
fn options_unknown_and_unsupported_methods() {
    let mut h = Harness::new();
    let opts = invite("z9hG4bK-o", false)
        .replace("INVITE sip", "OPTIONS sip")
        .replace("1 INVITE", "1 OPTIONS");
    h.feed(&opts);
    let r = h.sent().pop().unwrap();
    assert_eq!(status(&r), 200);
    assert!(r.contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE"));
    assert!(r.contains("Accept: application/sdp"));
    h.feed(&opts.replace("OPTIONS", "FOOBAR"));
    assert_eq!(status(&h.sent().pop().unwrap()), 501);
    h.feed(
        &opts
            .replace("OPTIONS", "REGISTER")
            .replace("z9hG4bK-o", "z9hG4bK-r"),
    );
    assert_eq!(status(&h.sent().pop().unwrap()), 405);
    h.feed(&in_dialog("BYE", "z9hG4bK-b", 5, "nosuch", ""));
    assert_eq!(status(&h.sent().pop().unwrap()), 481);
}

#[test]
fn late_offer_answer_arrives_in_ack() {
    let mut h = Harness::new();
    h.feed(&invite("z9hG4bK-late", false));
    let call = match h.events().pop() {
        Some(SipEvent::IncomingCall { call, request, .. }) => {
            assert!(request.sdp().is_none());
            call
        }
        other => panic!("{other:?}"),
    };
    h.sent();
    h.ep.accept(h.now, call, b"v=0\r\n");
    let ok = h.sent().pop().unwrap();
    let tag = ok
        .split(";tag=")
        .nth(2)
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap()
        .to_string();
    h.feed(&in_dialog(
        "ACK",
        "z9hG4bK-a",
        1,
        &tag,
        "v=0\r\nm=audio 7000 RTP/AVP 0\r\n",
    ));
    match h.events().pop() {
        Some(SipEvent::Confirmed { sdp: Some(s), .. }) => assert!(s.contains("m=audio 7000")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_gets_400_and_garbage_is_dropped() {
    let mut h = Harness::new();
    h.feed(&invite("z9hG4bK-m", false).replace("Content-Length: 0", "Content-Length: 10"));
    assert_eq!(status(&h.sent().pop().unwrap()), 400);
    h.ep.handle_message(h.now, peer(), &[0u8, 1, 2, 3, 255]);
    assert!(h.sent().is_empty());
    assert!(h.events().is_empty());
}

#[test]
fn refer_and_notify_after_answer() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    h.feed(&in_dialog("ACK", "z9hG4bK-ack", 1, &tag, ""));
    h.events();
    assert!(h.ep.refer(h.now, call, "sip:sales@127.0.0.1"));
    let refer = h.sent().pop().unwrap();
    assert!(refer.starts_with("REFER sip:2000@127.0.0.1:5070 SIP/2.0"));
    assert!(refer.contains("Refer-To: <sip:sales@127.0.0.1>"));
    let branch = refer
        .split("branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let cseq = refer
        .split("CSeq: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    h.feed(&format!(
        "SIP/2.0 202 Accepted\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:1001@127.0.0.1>;tag={tag}\r\nTo: <sip:2000@127.0.0.1>;tag=caller\r\nCall-ID: cid-1\r\nCSeq: {cseq} REFER\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(matches!(
        h.events().pop(),
        Some(SipEvent::ReferResult { status: 202, .. })
    ));
    let notify = in_dialog("NOTIFY", "z9hG4bK-n", 2, &tag, "").replace(
        "Content-Length: 0",
        "Event: refer\r\nContent-Type: message/sipfrag\r\nContent-Length: 16",
    ) + "SIP/2.0 200 OK\r\n";
    h.feed(&notify);
    assert_eq!(status(&h.sent().pop().unwrap()), 200);
    match h.events().pop() {
        Some(SipEvent::Notify {
            event: Some(e),
            body,
            ..
        }) => {
            assert_eq!(e, "refer");
            assert!(body.starts_with(b"SIP/2.0 200"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn redirect_before_answer_is_302() {
    let mut h = Harness::new();
    h.feed(&invite("z9hG4bK-r", true));
    let call = match h.events().pop() {
        Some(SipEvent::IncomingCall { call, .. }) => call,
        other => panic!("{other:?}"),
    };
    h.sent();
    h.ep.redirect(h.now, call, "sip:operator@127.0.0.1");
    let r = h.sent().pop().unwrap();
    assert_eq!(status(&r), 302);
    assert!(r.contains("Contact: <sip:operator@127.0.0.1>"));
    assert!(matches!(
        h.events().pop(),
        Some(SipEvent::Terminated {
            reason: EndReason::Redirected,
            ..
        })
    ));
}

#[test]
fn delegated_subscribe_and_outgoing_notify() {
    let mut h = Harness {
        ep: Endpoint::new(EndpointConfig {
            delegate_register_subscribe: true,
            ..EndpointConfig::default()
        }),
        now: Instant::now(),
    };
    let sub = invite("z9hG4bK-s", false)
        .replace("INVITE sip", "SUBSCRIBE sip")
        .replace("1 INVITE", "1 SUBSCRIBE")
        .replace(
            "Content-Length: 0",
            "Event: message-summary\r\nExpires: 3600\r\nContent-Length: 0",
        );
    h.feed(&sub);
    assert!(h.sent().is_empty(), "the application answers");
    let id = match h.events().pop() {
        Some(SipEvent::Request { id, request, .. }) => {
            assert_eq!(request.header("Event"), Some("message-summary"));
            id
        }
        other => panic!("{other:?}"),
    };
    h.ep.respond(
        h.now,
        id,
        200,
        "OK",
        Some("sub-tag"),
        &[("Expires", "3600".into())],
    );
    let ok = h.sent().pop().unwrap();
    assert_eq!(status(&ok), 200);
    assert!(ok.contains(";tag=sub-tag") && ok.contains("Expires: 3600"));
    h.feed(&sub);
    assert_eq!(
        status(&h.sent().pop().unwrap()),
        200,
        "retransmission answered from cache"
    );
    // An outgoing NOTIFY is resent until answered.
    let notify = "NOTIFY sip:2000@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-n1\r\nFrom: <sip:1001@127.0.0.1>;tag=sub-tag\r\nTo: <sip:2000@127.0.0.1>;tag=caller\r\nCall-ID: cid-1\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n";
    let nid =
        h.ep.send_request(h.now, peer(), "z9hG4bK-n1", notify.as_bytes().to_vec());
    assert_eq!(h.sent().len(), 1);
    h.advance(Duration::from_millis(600));
    assert_eq!(h.sent().len(), 1, "resent at T1");
    h.feed("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-n1\r\nFrom: <sip:1001@127.0.0.1>;tag=sub-tag\r\nTo: <sip:2000@127.0.0.1>;tag=caller\r\nCall-ID: cid-1\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n");
    assert!(
        matches!(h.events().pop(), Some(SipEvent::RequestResult { id, status: 200 }) if id == nid)
    );
    h.advance(Duration::from_secs(40));
    assert!(h.sent().is_empty());
    // Unanswered: 408 after 64*T1.
    let nid2 = h.ep.send_request(
        h.now,
        peer(),
        "z9hG4bK-n2",
        notify.replace("n1", "n2").into_bytes(),
    );
    h.advance(Duration::from_secs(33));
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, SipEvent::RequestResult { id, status: 408 } if *id == nid2))
    );
}

#[test]
fn the_same_invite_by_another_path_is_a_loop_until_its_call_is_forgotten() {
    let mut h = Harness::new();
    h.feed(&invite("z9hG4bK-inv", true));
    assert!(matches!(
        h.events().pop(),
        Some(SipEvent::IncomingCall { .. })
    ));
    h.sent();
    // Same Call-ID, From tag and CSeq, another branch (RFC 3261 §8.2.2.2).
    h.feed(&invite("z9hG4bK-other", true));
    let sent = h.sent();
    assert_eq!(status(&sent[0]), 482, "{sent:?}");
    assert!(h.events().is_empty());
    // A new CSeq is another request, not a loop.
    h.feed(&invite("z9hG4bK-third", true).replace("CSeq: 1 INVITE", "CSeq: 2 INVITE"));
    assert!(matches!(
        h.events().pop(),
        Some(SipEvent::IncomingCall { .. })
    ));
    assert_eq!(status(&h.sent()[0]), 100);

    // The first call is cancelled and forgotten: its request may come again.
    h.feed(&cancel_of("z9hG4bK-inv"));
    let sent = h.sent();
    assert_eq!(status(&sent[1]), 487);
    h.feed(&in_dialog("ACK", "z9hG4bK-inv", 1, &to_tag(&sent[1]), ""));
    h.events();
    let before = h.ep.call_count();
    h.advance(Duration::from_secs(40));
    assert_eq!(h.ep.call_count(), before - 1, "the first call is forgotten");
    h.sent();
    h.events();
    h.feed(&invite("z9hG4bK-again", true));
    assert_eq!(status(&h.sent()[0]), 100);
    assert!(matches!(
        h.events().pop(),
        Some(SipEvent::IncomingCall { .. })
    ));
}
