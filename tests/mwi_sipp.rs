//! Message-waiting lamps with real SIP peers: SIPp subscribes to a box's
//! `message-summary` (RFC 3842 over RFC 6665, `tests/sipp/mwi_subscribe.xml`)
//! and answers every NOTIFY; another SIPp call leaves a message
//! (`deposit.xml`); the HTTP API marks it heard and deletes it; the server
//! is restarted on the same port and data directory. Each NOTIFY's counts
//! are read from SIPp's message log as it arrives.
//!
//! Needs: sipp (with PCAP), espeak-ng, sox, and root (the deposit plays a
//! pcap through a raw socket).

mod common;

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use common::server::{self, Server};
use common::sipp::{self, LoggedMsg, SippOpts, SippRun, Transport};
use common::{deposit, http, store};
use serde_json::json;

const ADMIN: &str = "mwi-admin-token-0123456789";
/// A box without `sip_password`: anyone may watch it, as with Asterisk's
/// unauthenticated MWI. (1001 gets a password in the registration test.)
const BOX: &str = "1002";
const NOTIFY_DEADLINE: Duration = Duration::from_secs(20);

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// The shipped config with an admin API token.
fn config() -> String {
    server::config_with_lines(
        &server::shipped_config(),
        "http",
        &format!("tokens = [{{ token = \"{ADMIN}\", scope = \"admin\" }}]"),
    )
}

/// What a message-summary body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lamp {
    waiting: bool,
    new: u32,
    old: u32,
}

const fn lamp(new: u32, old: u32) -> Lamp {
    Lamp {
        waiting: new > 0,
        new,
        old,
    }
}

/// Parses `Messages-Waiting` and `Voice-Message: new/old (urgent)`.
fn parse_lamp(notify: &LoggedMsg) -> Lamp {
    let body = notify.body();
    let field = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in NOTIFY body:\n{}", notify.text))
    };
    let waiting = match field("Messages-Waiting:") {
        "yes" => true,
        "no" => false,
        other => panic!("Messages-Waiting: {other:?}\n{}", notify.text),
    };
    let counts = field("Voice-Message:")
        .split_whitespace()
        .next()
        .unwrap_or_default();
    let (new, old) = counts
        .split_once('/')
        .and_then(|(n, o)| Some((n.parse().ok()?, o.parse().ok()?)))
        .unwrap_or_else(|| panic!("bad Voice-Message {counts:?}\n{}", notify.text));
    Lamp { waiting, new, old }
}

/// The `tag` parameter of a header (From/To) of a logged message.
fn tag_of(msg: &LoggedMsg, header: &str) -> String {
    let v = msg
        .header(header)
        .unwrap_or_else(|| panic!("no {header}:\n{}", msg.text));
    v.split(';')
        .find_map(|p| p.trim().strip_prefix("tag=").map(str::to_owned))
        .unwrap_or_else(|| panic!("no tag in {header}: {v}"))
}

fn cseq_of(msg: &LoggedMsg) -> u32 {
    msg.header("CSeq")
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad CSeq:\n{}", msg.text))
}

/// SIPp running a scenario in the background, its message log read as
/// it grows.
struct Subscriber {
    thread: Option<JoinHandle<SippRun>>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Subscriber {
    /// Subscribes to `mailbox`; after the first NOTIFY, waits for
    /// `changes` more, then unsubscribes.
    fn start(server: &Server, mailbox: &str, changes: usize) -> Subscriber {
        Subscriber::start_on(server, mailbox, changes, Transport::Udp)
    }

    fn start_on(server: &Server, mailbox: &str, changes: usize, t: Transport) -> Subscriber {
        let opts = SippOpts::new(mailbox).set("notifies", changes).transport(t);
        Subscriber::run("mwi_subscribe.xml", server, opts)
    }

    fn run(scenario: &'static str, server: &Server, opts: SippOpts) -> Subscriber {
        let dir = tempdir("voxmail-mwi-");
        let log = dir.path().join("phone-messages.log");
        let opts = opts.message_file(&log).timeout(Duration::from_secs(90));
        let target = server.sip;
        let thread = std::thread::spawn(move || sipp::run_sipp(scenario, target, &opts));
        Subscriber {
            thread: Some(thread),
            log,
            _dir: dir,
        }
    }

    /// NOTIFYs SIPp has received so far.
    fn notifies(&self) -> Vec<LoggedMsg> {
        let text =
            String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned();
        sipp::parse_messages_log(&text)
            .into_iter()
            .filter(|m| !m.sent && m.method() == Some("NOTIFY"))
            .collect()
    }

    /// Waits for the `n`th NOTIFY (1-based) and returns it; panics with
    /// SIPp's report if SIPp ends first or the deadline passes.
    fn wait_notify(&mut self, n: usize, what: &str) -> LoggedMsg {
        let found = common::wait_for(NOTIFY_DEADLINE, || {
            if let Some(m) = self.notifies().into_iter().nth(n - 1) {
                return Some(Some(m));
            }
            self.thread
                .as_ref()
                .is_some_and(|t| t.is_finished())
                .then_some(None)
        });
        match found {
            Some(Some(m)) => m,
            other => {
                let ended = other.is_some();
                let report = if ended {
                    self.finish().report()
                } else {
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    format!(
                        "--- subscriber's messages ---\n{}",
                        common::tail(&log, 8_000)
                    )
                };
                panic!(
                    "NOTIFY #{n} ({what}) never came (SIPp ended: {ended}, deadline {NOTIFY_DEADLINE:?})\n{report}"
                )
            }
        }
    }

    /// Waits for SIPp to end and returns its run.
    fn finish(&mut self) -> SippRun {
        self.thread
            .take()
            .expect("finished twice")
            .join()
            .expect("the SIPp thread panicked")
    }
}

/// Asserts the NOTIFY says `want`; the message-summary framing is SIPp's
/// own check (ereg with check_it in the scenario).
fn assert_lamp(n: &LoggedMsg, want: Lamp, what: &str) {
    assert_eq!(parse_lamp(n), want, "{what}:\n{}", n.text);
}

fn message_path(id: &str) -> String {
    format!("/api/v1/mailboxes/{BOX}/messages/{id}")
}

/// Marks the message heard through the API, as the web inbox does.
fn mark_read(server: &Server, id: &str) {
    let r = http::request(
        server.http(),
        "PATCH",
        &message_path(id),
        ADMIN,
        Some(&json!({ "read": true })),
    );
    assert_eq!(r.status, 200, "PATCH read: {}", r.body);
    assert_eq!(r.json()["folder"], "old", "{}", r.body);
}

fn delete(server: &Server, id: &str) {
    let r = http::request(server.http(), "DELETE", &message_path(id), ADMIN, None);
    assert_eq!(r.status, 204, "DELETE: {}", r.body);
}

/// The saved state (`<data>/mwi.json`) once it holds the subscription
/// with `Call-ID` and the box's counts as `want`.
fn wait_saved(data: &Path, call_id: &str, want: Lamp) -> serde_json::Value {
    let path = data.join("mwi.json");
    let saved = common::wait_for(Duration::from_secs(10), || {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        let subs = v["mwi"]["subscriptions"].as_array()?;
        let has_sub = subs.iter().any(|s| s.to_string().contains(call_id));
        let counts = v["mwi"]["counts"].get(BOX)?;
        let same = counts["new"] == want.new && counts["old"] == want.old;
        (has_sub && same).then_some(v)
    });
    saved.unwrap_or_else(|| {
        panic!(
            "{} never held subscription {call_id} with counts {want:?}: {}",
            path.display(),
            std::fs::read_to_string(&path).unwrap_or_default()
        )
    })
}

/// Subscribe, then: a message left by SIPp lights the lamp, marking it
/// heard through the API turns it off with one old message, deleting it
/// leaves nothing. One NOTIFY per change, each with the new counts, in
/// the subscription's dialog with rising CSeq; then an in-dialog
/// unsubscribe gets 200 and a final NOTIFY.
#[test]
fn subscriber_hears_deposit_read_and_delete() {
    common::require_root();
    let data = tempdir("voxmail-data-");
    let mut server = Server::start(&config(), data.path());
    let mut sub = Subscriber::start(&server, BOX, 3);

    let first = sub.wait_notify(1, "immediate, box empty");
    assert_lamp(&first, lamp(0, 0), "the immediate NOTIFY");

    let msg = deposit::leave_and_find(&server, BOX, 1);
    let n = sub.wait_notify(2, "after the deposit");
    assert_lamp(&n, lamp(1, 0), "after SIPp left a message");

    mark_read(&server, &msg.id);
    let n = sub.wait_notify(3, "after mark read");
    assert_lamp(&n, lamp(0, 1), "after the message was marked heard");

    delete(&server, &msg.id);
    let n = sub.wait_notify(4, "after delete");
    assert_lamp(&n, lamp(0, 0), "after the message was deleted");

    let run = sub.finish();
    run.assert_success();
    server.assert_running();

    // Every NOTIFY is in the dialog the 200 created.
    let msgs = run.messages();
    let ok = msgs
        .iter()
        .find(|m| !m.sent && m.status() == Some(200))
        .unwrap_or_else(|| panic!("no 200 to SUBSCRIBE\n{}", run.report()));
    assert_eq!(ok.header("Expires"), Some("600"), "{}", ok.text);
    let our_tag = tag_of(ok, "To");
    let notifies: Vec<&LoggedMsg> = msgs
        .iter()
        .filter(|m| !m.sent && m.method() == Some("NOTIFY"))
        .collect();
    assert_eq!(
        notifies.len(),
        5,
        "4 lamp changes + the final NOTIFY\n{}",
        run.report()
    );
    let mut last_cseq = 0;
    for n in &notifies {
        assert_eq!(n.header("Call-ID"), Some(run.call_id.as_str()));
        assert_eq!(tag_of(n, "From"), our_tag, "{}", n.text);
        let cseq = cseq_of(n);
        assert!(cseq > last_cseq, "CSeq {cseq} after {last_cseq}");
        last_cseq = cseq;
    }
    let last = notifies.last().unwrap();
    assert!(
        last.header("Subscription-State")
            .is_some_and(|s| s.starts_with("terminated")),
        "{}",
        last.text
    );
    // The deletion is real: neither file is left in any folder.
    for folder in ["inbox", "old", "saved"] {
        let dir = store::folder(data.path(), BOX, folder);
        for ext in ["wav", "json"] {
            let f = dir.join(format!("{}.{ext}", msg.id));
            assert!(!f.exists(), "{} still exists", f.display());
        }
    }
}

/// Over TCP the NOTIFYs come back on the subscriber's own connection
/// (SIPp with `-t t1` has no UDP socket to receive them on).
#[test]
fn subscriber_over_tcp_hears_deposit_and_read() {
    common::require_root();
    let data = tempdir("voxmail-data-");
    let mut server = Server::start(&config(), data.path());
    let mut sub = Subscriber::start_on(&server, BOX, 2, Transport::Tcp);
    assert_lamp(
        &sub.wait_notify(1, "immediate"),
        lamp(0, 0),
        "immediate NOTIFY",
    );
    let msg = deposit::leave_and_find(&server, BOX, 1);
    assert_lamp(
        &sub.wait_notify(2, "after the deposit"),
        lamp(1, 0),
        "after SIPp left a message",
    );
    mark_read(&server, &msg.id);
    let n = sub.wait_notify(3, "after mark read");
    assert_lamp(&n, lamp(0, 1), "after the message was marked heard");
    assert!(
        n.header("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TCP ")),
        "{}",
        n.text
    );
    let run = sub.finish();
    run.assert_success();
    server.assert_running();
}

/// The subscription and the lamp survive a restart on the same port and
/// data directory: the restarted server NOTIFYs the subscriber at once
/// with the counts on disk now (the message was moved to `old/` while it
/// was down, so a replay of the saved counts would say 1/0), in the same
/// dialog with a higher CSeq; the restored subscription then follows a
/// deletion, and takes the in-dialog unsubscribe.
#[test]
fn subscription_and_lamp_survive_a_restart() {
    common::require_root();
    let data = tempdir("voxmail-data-");
    let config = config();
    let server = Server::start(&config, data.path());
    let sip = server.sip;
    let mut sub = Subscriber::start(&server, BOX, 3);
    assert_lamp(
        &sub.wait_notify(1, "immediate"),
        lamp(0, 0),
        "immediate NOTIFY",
    );

    let msg = deposit::leave_and_find(&server, BOX, 1);
    let lit = sub.wait_notify(2, "after the deposit");
    assert_lamp(&lit, lamp(1, 0), "after SIPp left a message");

    // Saved within a second of the change; then an orderly stop.
    let call_id = sub_call_id(&lit);
    wait_saved(data.path(), &call_id, lamp(1, 0));
    let status = server.stop(Duration::from_secs(10));
    assert!(status.is_some(), "voxmail did not stop on SIGTERM");

    // While it is down the message is heard elsewhere: moved to old/.
    let old = store::folder(data.path(), BOX, "old");
    std::fs::create_dir_all(&old).unwrap();
    for ext in ["wav", "json"] {
        let from = msg.json_path.with_extension(ext);
        std::fs::rename(&from, old.join(from.file_name().unwrap())).unwrap();
    }

    let mut server = Server::start_at(&config, data.path(), &common::repo_root(), &sip.to_string());
    assert_eq!(server.sip, sip, "restarted on another port");
    let after = sub.wait_notify(3, "after the restart");
    assert_lamp(&after, lamp(0, 1), "the NOTIFY after the restart");
    assert_eq!(tag_of(&after, "From"), tag_of(&lit, "From"), "same dialog");
    assert_eq!(sub_call_id(&after), call_id);
    assert!(cseq_of(&after) > cseq_of(&lit), "CSeq must keep rising");
    assert!(
        after
            .header("Subscription-State")
            .is_some_and(|s| s.starts_with("active;expires=")),
        "{}",
        after.text
    );

    delete(&server, &msg.id);
    assert_lamp(
        &sub.wait_notify(4, "after delete"),
        lamp(0, 0),
        "after the message was deleted",
    );
    let run = sub.finish();
    run.assert_success();
    server.assert_running();
}

fn sub_call_id(n: &LoggedMsg) -> String {
    n.header("Call-ID")
        .unwrap_or_else(|| panic!("no Call-ID:\n{}", n.text))
        .to_owned()
}

/// 1001's SIP password in the registration test.
const ALICE_PW: &str = "alice-sip-secret";

/// Tells the SIPp phone running `mwi_register.xml` it may unregister: an
/// OPTIONS in its call (same Call-ID), from a socket of the test's.
fn release(phone_port: u16, call_id: &str) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:1001@127.0.0.1:{phone_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-release-{phone_port}\r\n\
         From: <sip:test@{local}>;tag=release\r\nTo: <sip:1001@127.0.0.1:{phone_port}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), ("127.0.0.1", phone_port))
        .unwrap();
}

/// `[mwi] unsolicited = true`: a phone that only REGISTERs (digest auth)
/// is NOTIFYed out of any dialog at registration, on a deposit, when the
/// message is marked heard, and after a restart (registrations survive
/// it) with the counts at that moment.
///
/// SIPp 3.6 answers only the first `WWW-Authenticate` and knows only MD5:
/// the default `digest_algorithms` (MD5, then SHA-256), written out here.
#[test]
fn registered_phone_gets_unsolicited_notifies() {
    common::require_root();
    let data = tempdir("voxmail-data-");
    let config = config()
        .replace("unsolicited = false", "unsolicited = true")
        .replace(
            "name = \"Alice Martin\"\n",
            &format!("name = \"Alice Martin\"\nsip_password = \"{ALICE_PW}\"\n"),
        );
    let config =
        server::config_with_lines(&config, "mwi", "digest_algorithms = [\"MD5\", \"SHA-256\"]");
    assert!(config.contains("unsolicited = true") && config.contains(ALICE_PW));
    let server = Server::start(&config, data.path());
    let sip = server.sip;
    let opts = SippOpts::new("1001")
        .arg("-aa")
        .arg("-au")
        .arg("1001")
        .arg("-ap")
        .arg(ALICE_PW);
    let call_id = opts.call_id.clone();
    let mut phone = Subscriber::run("mwi_register.xml", &server, opts);

    let first = phone.wait_notify(1, "at registration");
    assert_lamp(&first, lamp(0, 0), "the NOTIFY at registration");
    let msg = deposit::leave_and_find(&server, "1001", 1);
    assert_lamp(
        &phone.wait_notify(2, "after the deposit"),
        lamp(1, 0),
        "after SIPp left a message",
    );
    let r = http::request(
        server.http(),
        "PATCH",
        &format!("/api/v1/mailboxes/1001/messages/{}", msg.id),
        ADMIN,
        Some(&json!({ "read": true })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let heard = phone.wait_notify(3, "after mark read");
    assert_lamp(&heard, lamp(0, 1), "after the message was marked heard");

    // The binding is saved; a restart on the same port re-NOTIFYs it.
    let saved = common::wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(data.path().join("mwi.json")).ok()?;
        text.contains(&call_id).then_some(())
    });
    assert!(saved.is_some(), "the registration was never saved");
    assert!(server.stop(Duration::from_secs(10)).is_some());
    let mut server = Server::start_at(&config, data.path(), &common::repo_root(), &sip.to_string());
    let after = phone.wait_notify(4, "after the restart");
    assert_lamp(&after, lamp(0, 1), "the NOTIFY after the restart");

    // Out of any dialog: each NOTIFY its own Call-ID, no To tag, to the
    // registered contact.
    let phone_port: u16 = after
        .text
        .lines()
        .next()
        .and_then(|l| l.split(':').nth(2))
        .and_then(|p| p.split([' ', ';', '>']).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in the Request-URI:\n{}", after.text));
    let notifies = phone.notifies();
    let mut ids: Vec<&str> = notifies
        .iter()
        .filter_map(|n| n.header("Call-ID"))
        .collect();
    for n in &notifies {
        assert!(
            n.text
                .starts_with(&format!("NOTIFY sip:1001@127.0.0.1:{phone_port}")),
            "{}",
            n.text
        );
        assert_ne!(n.header("Call-ID"), Some(call_id.as_str()));
        assert!(n.to_tag().is_none(), "a To tag out of dialog:\n{}", n.text);
        assert_eq!(n.header("Event"), Some("message-summary"), "{}", n.text);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), notifies.len(), "Call-IDs reused");

    release(phone_port, &call_id);
    let run = phone.finish();
    run.assert_success();
    server.assert_running();
}
