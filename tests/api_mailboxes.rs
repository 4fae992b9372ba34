//! Mailboxes managed through the HTTP API, against the real `voxmail`
//! binary with the shipped config and dial plan: a box created with
//! `POST /api/v1/mailboxes` takes a call diverted to it (SIPp) at once,
//! its PIN and language change with `PATCH`, it survives a restart, and
//! `DELETE` removes its files so the next call for it gets 404. Shared
//! boxes: members reach them with their own credentials, keep their own
//! read state, and list them with `voicemail_type`.
//!
//! Needs: sipp (with PCAP), espeak-ng and sox for the speech, and root for
//! the deposit test (SIPp plays pcaps through a raw socket).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::audio::{self, ULAW_SILENCE};
use common::http::{self, Reply};
use common::pcap::{EVENT_POUND, RtpStream};
use common::server::{self, Server};
use common::sipp::{self, SippOpts};
use common::store;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
const ALICE: &str = "alice-1001-token-0123456";
const BOB: &str = "bob-1002-token-0123456789";
const TE_PT: u8 = 101;

/// The shipped config with an admin token and one token per shipped box.
fn config() -> String {
    let text = server::shipped_config();
    let tokens = format!(
        "[http]\ntokens = [\n  {{ token = \"{ADMIN}\", scope = \"admin\" }},\n  \
         {{ token = \"{ALICE}\", scope = [\"1001\"] }},\n  \
         {{ token = \"{BOB}\", scope = [\"1002\"] }},\n]\n"
    );
    assert!(
        text.contains("[http]\n"),
        "shipped config.toml has no [http]"
    );
    text.replacen("[http]\n", &tokens, 1)
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

struct Api(SocketAddr);

impl Api {
    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
        http::request(self.0, method, path, token, body.as_ref())
    }
    fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, token, None)
    }
    fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("POST", path, token, Some(body))
    }
    fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("PATCH", path, token, Some(body))
    }
    fn delete(&self, path: &str, token: &str) -> Reply {
        self.call("DELETE", path, token, None)
    }
    /// A web-inbox session for `mailbox` (box + PIN); `None` when refused.
    fn login(&self, mailbox: &str, pin: &str) -> Option<String> {
        let r = self.post(
            "/api/v1/login",
            "",
            json!({ "mailbox": mailbox, "pin": pin }),
        );
        match r.status {
            200 => Some(r.json()["token"].as_str().unwrap().to_owned()),
            401 => None,
            other => panic!("login answered {other}: {}", r.body),
        }
    }
}

/// `GET /api/v1/events` as `token`, read once `ready` has come.
fn open_events(addr: SocketAddr, token: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    next_event(&mut r, "ready");
    r
}

/// The data of the next event named `name` (others are skipped).
fn next_event(r: &mut BufReader<TcpStream>, name: &str) -> Value {
    let mut current = String::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("waiting for event {name}: {e}"));
        assert!(n > 0, "the event stream ended before {name}");
        let line = line.trim_end();
        if let Some(e) = line.strip_prefix("event:") {
            current = e.trim().to_owned();
        } else if let Some(d) = line.strip_prefix("data:")
            && current == name
        {
            return serde_json::from_str(d.trim()).unwrap_or_else(|_| json!({}));
        }
    }
}

/// `reply` has `status` and, for errors, the error `code`; returns the
/// error message.
fn expect(reply: &Reply, status: u16, code: &str) -> String {
    assert_eq!(reply.status, status, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["error"]["code"], code, "{}", reply.body);
    v["error"]["message"].as_str().unwrap().to_owned()
}

/// Silence while the short greeting plays, the speech, `#`, then the
/// speech again (recorded only by a server that missed the `#`).
fn deposit_pcap(dir: &Path) -> PathBuf {
    let sp = audio::speech();
    let mut s = RtpStream::new(0xa91b_0000, 700, 16_000);
    s.silence_until(0, 1_500, ULAW_SILENCE);
    s.audio(0, &sp.ulaw, ULAW_SILENCE);
    s.dtmf_event(TE_PT, EVENT_POUND, 200);
    s.audio(0, &sp.ulaw, ULAW_SILENCE);
    let path = dir.join("deposit.pcap");
    s.write_pcap(&path);
    path
}

/// Silence with `keys` as RFC 4733 events at their times, then 1.5 s more.
fn keys_pcap(dir: &Path, groups: &[(u64, &str)]) -> PathBuf {
    let mut s = RtpStream::new(0xa91b_1000, 900, 32_000);
    for (at_ms, keys) in groups {
        s.silence_until(0, *at_ms, ULAW_SILENCE);
        s.rfc4733_keys(0, TE_PT, keys, 120, 100, ULAW_SILENCE);
    }
    let end = s.duration_ms() + 1_500;
    s.silence_until(0, end, ULAW_SILENCE);
    let path = dir.join("keys.pcap");
    s.write_pcap(&path);
    path
}

/// A call for `mailbox` as a PBX forwards it after no answer: to the
/// shipped plan's `voicemail` route, with a Diversion header naming it.
fn diverted_opts(mailbox: &str) -> SippOpts {
    SippOpts::new("voicemail")
        .key("caller", "5551234")
        .key("uri_params", "")
        .key(
            "extra_header",
            format!("Diversion: <sip:{mailbox}@pbx.example.com>;reason=no-answer;counter=1"),
        )
        .timeout(Duration::from_secs(40))
}

#[test]
fn an_api_box_takes_calls_changes_survives_a_restart_and_goes_away() {
    common::require_root();
    let data = tempdir("voxmail-data-");
    let server = Server::start(&config(), data.path());
    let api = Api(server.http());

    // Created: the PIN is kept only as its hash.
    let r = api.post(
        "/api/v1/mailboxes",
        ADMIN,
        json!({ "number": "2000", "pin": "2468", "name": "Sales", "language": "fr",
                "email": "sales@example.com", "max_messages": 5 }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (
            &v["number"],
            &v["language"],
            &v["origin"],
            &v["max_messages"]
        ),
        (&json!("2000"), &json!("fr"), &json!("api"), &json!(5))
    );
    let file = data.path().join("mailboxes/2000/mailbox.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("pin_hash = \"$argon2id$"), "{text}");
    assert!(!text.contains("2468"), "the PIN is stored in clear: {text}");
    let listed = api.get("/api/v1/mailboxes", ADMIN).json();
    let numbers: Vec<&str> = listed["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["1001", "1002", "2000"]);
    // A box token sees only its own box.
    let mine = api.get("/api/v1/mailboxes", ALICE).json();
    assert_eq!(mine["mailboxes"].as_array().unwrap().len(), 1);

    // A call diverted to the new box is answered and recorded right away.
    server::install_greeting(data.path(), "2000", 0.5);
    let media = tempdir("voxmail-media-");
    let opts = diverted_opts("2000").file("media.pcap", &deposit_pcap(media.path()));
    let run = sipp::run_sipp("dialplan_call.xml", server.sip, &opts);
    run.assert_success();
    let msgs = store::wait_messages(
        data.path(),
        "2000",
        1,
        Duration::from_secs(15),
        Duration::from_millis(300),
    );
    assert_eq!(msgs.len(), 1);
    msgs[0].wav().assert_not_silent(300.0);
    store::assert_no_messages(data.path(), "1001", Duration::ZERO);
    // A box at its limit takes no more.
    let r = api.patch(
        "/api/v1/mailboxes/2000",
        ADMIN,
        json!({ "max_messages": 1 }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let run = sipp::run_sipp("dialplan_call.xml", server.sip, &opts);
    run.assert_success();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        store::folder_ids(data.path(), "2000", "inbox").len(),
        1,
        "a full box took a message"
    );
    assert!(
        server.log().contains("mailbox full"),
        "no 'mailbox full' in the log"
    );
    let listing = api.get("/api/v1/mailboxes/2000/messages", ADMIN).json();
    assert_eq!(listing["total"], 1, "{listing}");
    assert_eq!(listing["messages"][0]["voicemail_type"], "personal");

    // The owner signs in with the PIN and changes it and the language.
    let session = api
        .login("2000", "2468")
        .expect("the PIN given at creation");
    let r = api.patch(
        "/api/v1/mailboxes/2000",
        &session,
        json!({ "pin": "8642", "language": "de" }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["language"], "de");
    assert!(
        api.login("2000", "2468").is_none(),
        "the old PIN still works"
    );
    assert!(
        api.login("2000", "8642").is_some(),
        "the new PIN is refused"
    );
    // And by phone: *992000, the new PIN, then `#` to leave.
    let keys = keys_pcap(media.path(), &[(1_500, "8642#"), (9_000, "#")]);
    let opts = SippOpts::new("*992000")
        .file("media.pcap", &keys)
        .key("caller", "5551234")
        .timeout(Duration::from_secs(60));
    sipp::run_sipp("retrieval_rfc4733.xml", server.sip, &opts).assert_success();
    let logins = server.count_log_lines(|l| l.contains("voicemail login") && l.contains("2000"));
    assert_eq!(logins, 1, "the new PIN did not open the box by phone");
    // Limits are the operator's.
    let r = api.patch(
        "/api/v1/mailboxes/2000",
        &session,
        json!({ "max_messages": 50 }),
    );
    expect(&r, 403, "forbidden");

    // A restart keeps the box, its settings and its new PIN.
    server.stop(Duration::from_secs(10));
    let server = Server::start(&config(), data.path());
    let api = Api(server.http());
    let v = api.get("/api/v1/mailboxes/2000", ADMIN).json();
    assert_eq!(
        (&v["language"], &v["name"]),
        (&json!("de"), &json!("Sales"))
    );
    assert_eq!(v["messages"]["inbox"], 1);
    let session = api.login("2000", "8642").expect("the PIN after a restart");

    // Deleting: the owner may not, a config box cannot be, the admin does.
    expect(
        &api.delete("/api/v1/mailboxes/2000", &session),
        403,
        "forbidden",
    );
    expect(
        &api.delete("/api/v1/mailboxes/1001", ADMIN),
        409,
        "conflict",
    );
    let mut events = open_events(server.http(), ADMIN);
    let r = api.delete("/api/v1/mailboxes/2000", ADMIN);
    assert_eq!(r.status, 204, "{}", r.body);
    let e = next_event(&mut events, "voicemail_message_deleted");
    assert_eq!(e["mailbox"], "2000");
    assert!(!data.path().join("mailboxes/2000").exists());
    assert!(!data.path().join("security/2000.json").exists());
    expect(&api.get("/api/v1/mailboxes/2000", ADMIN), 404, "not_found");
    expect(
        &api.delete("/api/v1/mailboxes/2000", ADMIN),
        404,
        "not_found",
    );
    assert!(api.login("2000", "8642").is_none());

    // The next call for it is refused before it is answered.
    let run = sipp::run_sipp("diverted_404.xml", server.sip, &diverted_opts("2000"));
    run.assert_success();
    assert!(!data.path().join("mailboxes/2000").exists());
    store::assert_no_messages(data.path(), "1001", Duration::from_millis(500));
}

#[test]
fn bad_requests_get_clear_errors() {
    let data = tempdir("voxmail-data-");
    let server = Server::start(&config(), data.path());
    let api = Api(server.http());
    let create = |token: &str, body: Value| api.post("/api/v1/mailboxes", token, body);

    expect(
        &create("", json!({ "number": "3000", "pin": "1357" })),
        401,
        "unauthorized",
    );
    expect(
        &create(ALICE, json!({ "number": "3000", "pin": "1357" })),
        403,
        "forbidden",
    );
    expect(
        &create(ADMIN, json!({ "number": "1001", "pin": "1357" })),
        409,
        "conflict",
    );
    expect(
        &create(ADMIN, json!({ "number": "../etc", "pin": "1357" })),
        400,
        "invalid_id",
    );
    expect(
        &create(ADMIN, json!({ "pin": "1357" })),
        400,
        "invalid_request",
    );
    expect(
        &create(ADMIN, json!({ "number": "3000" })),
        400,
        "invalid_pin",
    );
    for pin in [json!("12"), json!("12a4"), json!("3000"), json!(1357)] {
        expect(
            &create(ADMIN, json!({ "number": "3000", "pin": pin })),
            400,
            "invalid_pin",
        );
    }
    let bad = [
        (json!({ "language": "xx" }), "unknown language `xx`"),
        (json!({ "timezone": "Mars/Olympus" }), "unknown time zone"),
        (json!({ "email": "nobody" }), "not an email address"),
        (json!({ "max_messages": -1 }), "out of range"),
        (json!({ "max_messages": 100000 }), "out of range"),
        (json!({ "max_message_seconds": 0 }), "out of range"),
        (json!({ "members": ["1001"] }), "needs `shared = true`"),
        (json!({ "attach_audio": "yes" }), "attach_audio"),
        (json!({ "name": { "first": "x" } }), "expected a string"),
    ];
    for (extra, needle) in bad {
        let mut body = json!({ "number": "3000", "pin": "1357" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let message = expect(&create(ADMIN, body), 400, "invalid_mailbox");
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        assert!(!message.contains("mailbox.toml"), "{message}");
    }
    let message = expect(
        &create(
            ADMIN,
            json!({ "number": "3000", "pin": "1357", "colour": "red" }),
        ),
        400,
        "invalid_request",
    );
    assert!(message.contains("unknown field `colour`"), "{message}");
    // Nothing of the refused boxes was written.
    assert!(!data.path().join("mailboxes/3000").exists());
    expect(&api.get("/api/v1/mailboxes/3000", ADMIN), 404, "not_found");

    // Another box's token, unknown boxes, admin-only keys.
    expect(
        &api.patch("/api/v1/mailboxes/1002", ALICE, json!({ "language": "fr" })),
        403,
        "forbidden",
    );
    expect(&api.get("/api/v1/mailboxes/1002", ALICE), 403, "forbidden");
    expect(
        &api.patch("/api/v1/mailboxes/9999", ADMIN, json!({ "language": "fr" })),
        404,
        "not_found",
    );
    expect(
        &api.patch("/api/v1/mailboxes/1001", ALICE, json!({ "shared": true })),
        403,
        "forbidden",
    );
    expect(
        &api.patch("/api/v1/mailboxes/1001", ALICE, json!({})),
        400,
        "invalid_request",
    );

    // A config box's own token changes its email: an override file appears;
    // `null` puts config.toml's value back and the file goes.
    let r = api.patch(
        "/api/v1/mailboxes/1001",
        ALICE,
        json!({ "email": "alice@example.org", "timezone": "Europe/Paris" }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["origin"], "config");
    let file = data.path().join("mailboxes/1001/mailbox.toml");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("alice@example.org")
    );
    let r = api.patch(
        "/api/v1/mailboxes/1001",
        ADMIN,
        json!({ "email": null, "timezone": null }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["timezone"], "UTC");
    assert!(!file.exists(), "an override without keys was kept");

    // The storage and attachment formats are box settings like the others.
    let r = api.patch(
        "/api/v1/mailboxes/1002",
        BOB,
        json!({ "format": "wav+mp3", "attach_format": "mp3" }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (&v["format"], &v["attach_format"]),
        (&json!("wav+mp3"), &json!("mp3"))
    );
    let message = expect(
        &api.patch("/api/v1/mailboxes/1002", BOB, json!({ "format": "flac" })),
        400,
        "invalid_mailbox",
    );
    assert!(message.contains("unknown format `flac`"), "{message}");
}

/// A file the server cannot read stops the start, naming its line.
#[test]
fn a_corrupt_mailbox_file_stops_the_start_with_its_line() {
    let data = tempdir("voxmail-data-");
    let dir = data.path().join("mailboxes/1001");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mailbox.toml"),
        "name = \"Alice\"\ntimezone = \"Mars/Olympus\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(server::server_binary())
        .args([
            "run",
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with a corrupt mailbox.toml");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mailboxes/1001/mailbox.toml:2:") && err.contains("unknown time zone"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // `voxmail check` reads the same files.
    let work = tempdir("voxmail-check-");
    let config = work.path().join("config.toml");
    let data_dir = format!("{:?}", data.path().display().to_string());
    std::fs::write(&config, server::config_with_value("data_dir", &data_dir)).unwrap();
    let check = || {
        std::process::Command::new(server::server_binary())
            .arg("check")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = check();
    assert!(!out.status.success(), "check passed a corrupt mailbox.toml");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mailboxes/1001/mailbox.toml:2:"), "{err}");
    std::fs::write(dir.join("mailbox.toml"), "timezone = \"Europe/Brussels\"\n").unwrap();
    let out = check();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("1 mailbox settings file(s)"), "{said}");
}

#[test]
fn shared_box_members_keep_their_own_read_state() {
    let data = tempdir("voxmail-data-");
    let server = Server::start(&config(), data.path());
    let api = Api(server.http());
    let r = api.post(
        "/api/v1/mailboxes",
        ADMIN,
        json!({ "number": "team", "pin": "1357", "shared": true,
                "members": ["1001", "1002"], "per_member_read": true }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["members"], json!(["1001", "1002"]));
    let r = api.post(
        "/api/v1/mailboxes",
        ADMIN,
        json!({ "number": "3000", "pin": "9753" }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let pcm = vec![800i16; 8000];
    let team_id = "20261123-080000-aaaaaa";
    let own_id = "20261123-070000-bbbbbb";
    store::seed_message(data.path(), "team", "inbox", team_id, &pcm, "5550001");
    store::seed_message(data.path(), "1001", "inbox", own_id, &pcm, "5550002");

    // Members see the shared box among theirs, and its message as new.
    let boxes = api.get("/api/v1/mailboxes", ALICE).json();
    let numbers: Vec<&str> = boxes["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["1001", "team"]);
    let path = format!("/api/v1/mailboxes/team/messages/{team_id}");
    for token in [ALICE, BOB] {
        let m = api.get(&path, token).json();
        assert_eq!(
            (&m["unread"], &m["voicemail_type"]),
            (&json!(true), &json!("global"))
        );
    }

    // Alice hears it: read for her, still new for Bob, and for the box.
    // Bob, a member, hears of it on his event stream.
    let mut bob_events = open_events(server.http(), BOB);
    let r = api.patch(&path, ALICE, json!({ "read": true }));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["unread"], false);
    assert_eq!(r.json()["heard_by"], json!(["1001"]));
    assert_eq!(api.get(&path, BOB).json()["unread"], true);
    let e = next_event(&mut bob_events, "global_voicemail_message_updated");
    assert_eq!(
        (&e["mailbox"], &e["member"]),
        (&json!("team"), &json!("1001"))
    );
    assert_eq!(e["heard_by"], json!(["1001"]));
    assert_eq!(api.get(&path, ADMIN).json()["folder"], "inbox");
    let heard = std::fs::read_to_string(data.path().join("mailboxes/team/heard.json")).unwrap();
    assert!(heard.contains("1001") && !heard.contains("1002"), "{heard}");
    let new_for_bob = api
        .get(
            "/api/v1/mailboxes/1002/messages?voicemail_type=global&unread=true",
            BOB,
        )
        .json();
    assert_eq!(new_for_bob["total"], 1, "{new_for_bob}");
    let new_for_alice = api
        .get(
            "/api/v1/mailboxes/1001/messages?voicemail_type=global&unread=true",
            ALICE,
        )
        .json();
    assert_eq!(new_for_alice["total"], 0, "{new_for_alice}");

    // voicemail_type: personal (default), global, all; each message says
    // which box it is in, newest first.
    let list = |kind: &str| {
        let v = api
            .get(
                &format!("/api/v1/mailboxes/1001/messages?voicemail_type={kind}"),
                ALICE,
            )
            .json();
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["mailbox"].as_str().unwrap().to_owned(),
                    m["voicemail_type"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let pair = |b: &str, t: &str| (b.to_owned(), t.to_owned());
    assert_eq!(list("personal"), [pair("1001", "personal")]);
    assert_eq!(list("global"), [pair("team", "global")]);
    assert_eq!(
        list("all"),
        [pair("team", "global"), pair("1001", "personal")]
    );
    expect(
        &api.get(
            "/api/v1/mailboxes/1001/messages?voicemail_type=shared",
            ALICE,
        ),
        400,
        "invalid_request",
    );

    // A non-member is kept out; members may not change the box's settings.
    let outsider = api.login("3000", "9753").unwrap();
    expect(
        &api.get("/api/v1/mailboxes/team/messages", &outsider),
        403,
        "forbidden",
    );
    expect(&api.get(&path, &outsider), 403, "forbidden");
    expect(
        &api.patch("/api/v1/mailboxes/team", ALICE, json!({ "name": "x" })),
        403,
        "forbidden",
    );

    // A folder move is for everyone; a member may delete.
    let r = api.patch(&path, BOB, json!({ "folder": "saved" }));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.get(&path, ALICE).json()["folder"], "saved");
    let r = api.delete(&path, BOB);
    assert_eq!(r.status, 204, "{}", r.body);
    let e = next_event(&mut bob_events, "global_voicemail_message_deleted");
    assert_eq!(e["message"]["id"], team_id);
    expect(&api.get(&path, ALICE), 404, "not_found");
}
