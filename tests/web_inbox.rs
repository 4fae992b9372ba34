//! The web inbox in a real browser: Debian's chromium, headless, loading
//! the page from `voxmail::api::serve` on 127.0.0.1, or from the real
//! `voxmail` server after SIPp left a message. The page signs in from its
//! URL fragment (`#autologin&box=..&pin=..`, never sent to the server) by
//! filling and submitting its form and, with `&autotest=play,upload,delete`
//! (or `listen`, `folder:old`), clicks its own Play, folder and Delete
//! buttons and uploads a generated WAV through its upload function; what
//! happened is read back from the dumped DOM and from the store.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use voxmail::api::{self, ApiState, Metrics};
use voxmail::config::Config;
use voxmail::notify::EventBus;
use voxmail::store::{
    Folder, GreetingKind, MailboxId, MessageMeta, NewMessage, SecurityStore, Store,
};

const CONFIG: &str = r#"
[[mailbox]]
number = "1001"
pin = "1234"
name = "Alice Martin"

[[mailbox]]
number = "1002"
pin = "5678"
"#;

struct Inbox {
    dir: tempfile::TempDir,
    store: Store,
    base: String,
}

async fn start() -> Inbox {
    let config = Arc::new(Config::parse(CONFIG, "test.toml").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let security = SecurityStore::for_store(&store)
        .unwrap()
        .with_hash_params(argon2::Params::new(8, 1, 1, None).unwrap());
    let state = ApiState::new(
        config,
        store.clone(),
        EventBus::new(),
        Arc::new(Metrics::new()),
    )
    .unwrap()
    .with_security(security);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve(listener, state));
    Inbox { dir, store, base }
}

fn deposit(
    store: &Store,
    mailbox: &str,
    caller: &str,
    name: &str,
    at: &str,
    secs: f64,
) -> MessageMeta {
    let mut w = store
        .begin_message(NewMessage {
            mailbox: MailboxId::try_from(mailbox).unwrap(),
            caller_number: caller.to_owned(),
            caller_name: Some(name.to_owned()),
            called_number: mailbox.to_owned(),
            call_id: format!("call-{caller}"),
            codec: "PCMU".to_owned(),
            started_at: at.parse().unwrap(),
        })
        .unwrap();
    let samples: Vec<i16> = (0..(secs * 8000.0) as usize)
        .map(|i| (6000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16)
        .collect();
    w.write(&samples).unwrap();
    w.finish(0).unwrap().unwrap()
}

/// Runs headless chromium on `url` with `extra` arguments; returns stdout.
async fn chromium(profile: &Path, url: &str, extra: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        // Virtual time runs ahead while the page only waits on timers (the
        // autotest polls every 50 ms), and an <audio> load does not hold it
        // back: 15 s of it once ran out on a loaded CI machine before a
        // message finished loading. The wall-clock limit below still holds.
        "--virtual-time-budget=60000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium ({e}): apt-get install -y chromium"));
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("chromium did not finish within 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chromium failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn screenshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/web_inbox.png")
}

/// The text of the element with `id` in a dumped DOM (no nested tags).
fn element_text<'a>(dom: &'a str, id: &str) -> &'a str {
    let open = format!("id=\"{id}\"");
    let start = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in\n{dom}"));
    let after = &dom[start..];
    let body = &after[after.find('>').unwrap() + 1..];
    &body[..body.find('<').unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_in_lists_plays_uploads_and_deletes() {
    let inbox = start().await;
    let older = deposit(
        &inbox.store,
        "1001",
        "+3225550100",
        "Charlie Caller",
        "2026-03-01T09:15:00Z",
        1.0,
    );
    let newer = deposit(
        &inbox.store,
        "1001",
        "1002",
        "Bob & <Co>",
        "2026-03-01T10:30:00Z",
        2.0,
    );
    // Someone else's message must not show.
    let foreign = deposit(
        &inbox.store,
        "1002",
        "999",
        "Eve",
        "2026-03-01T11:00:00Z",
        1.0,
    );
    let profile = inbox.dir.path().join("chromium");

    // 1. Sign in and list: both messages, newest first, escaped.
    let url = format!("{}/#autologin&box=1001&pin=1234", inbox.base);
    let dom = chromium(&profile, &url, &["--dump-dom"]).await;
    assert!(dom.contains("signed in 1001"), "{dom}");
    assert!(dom.contains("Mailbox 1001 — Alice Martin"), "{dom}");
    let first = dom
        .find(&format!("data-id=\"{}\"", newer.id))
        .unwrap_or_else(|| panic!("{dom}"));
    let second = dom
        .find(&format!("data-id=\"{}\"", older.id))
        .unwrap_or_else(|| panic!("{dom}"));
    assert!(first < second, "not newest first");
    assert!(!dom.contains(&foreign.id));
    assert!(dom.contains("Charlie Caller &lt;+3225550100&gt;"), "{dom}");
    // Markup in a caller name is shown as text, not parsed.
    assert!(dom.contains("Bob &amp; &lt;Co&gt; &lt;1002&gt;"), "{dom}");
    assert!(
        dom.contains(">0:02<") && dom.contains(">0:01<"),
        "durations: {dom}"
    );
    assert_eq!(element_text(&dom, "count-inbox"), "(2)");
    // The PIN left the address bar.
    assert!(!dom.contains("pin=1234"));

    // 2. A screenshot of the signed-in inbox.
    let png = screenshot_path();
    let _ = std::fs::remove_file(&png);
    chromium(
        &profile,
        &url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1100,760",
        ],
    )
    .await;
    let bytes = std::fs::read(&png).expect("no screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 5000, "suspiciously small screenshot");

    // 3. Play the newest message, upload a greeting, delete the newest.
    let url = format!(
        "{}/#autologin&box=1001&pin=1234&autotest=play,upload,delete",
        inbox.base
    );
    let dom = chromium(&profile, &url, &["--dump-dom"]).await;
    let log = element_text(&dom, "log").to_owned();
    assert!(log.contains("autotest done"), "{log}\n{dom}");
    let wav_len = 44 + 2 * 16000;
    assert!(
        log.contains(&format!(
            "played {} bytes={wav_len} duration=2.00",
            newer.id
        )),
        "{log}"
    );
    assert!(log.contains("uploaded unavailable duration=1.00"), "{log}");
    assert!(log.contains(&format!("deleted {}", newer.id)), "{log}");
    assert!(
        !dom.contains(&format!("data-id=\"{}\"", newer.id)),
        "row still shown"
    );
    assert!(dom.contains(&format!("data-id=\"{}\"", older.id)));
    assert!(dom.contains("Unavailable: recorded"), "{dom}");

    // What the browser did is real: the store agrees.
    let mailbox = MailboxId::try_from("1001").unwrap();
    let left: Vec<String> = Folder::ALL
        .into_iter()
        .flat_map(|f| inbox.store.list_messages(&mailbox, f).unwrap())
        .map(|m| m.id)
        .collect();
    assert_eq!(left, vec![older.id]);
    let greeting = inbox
        .store
        .load_greeting(&mailbox, GreetingKind::Unavailable)
        .unwrap()
        .expect("greeting uploaded from the browser");
    assert_eq!(greeting.len(), 8000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_is_refused_in_the_page() {
    let inbox = start().await;
    deposit(
        &inbox.store,
        "1001",
        "100",
        "Someone",
        "2026-03-01T09:15:00Z",
        1.0,
    );
    let profile = inbox.dir.path().join("chromium");
    let url = format!("{}/#autologin&box=1001&pin=9999", inbox.base);
    let dom = chromium(&profile, &url, &["--dump-dom"]).await;
    assert!(dom.contains("sign-in failed"), "{dom}");
    assert_eq!(element_text(&dom, "login-error"), "wrong mailbox or PIN");
    assert!(!dom.contains("data-id="), "messages shown without a PIN");
}

/// The `datetime` of the `<time>` in the message row `id`, and its text.
fn row_time<'a>(dom: &'a str, id: &str) -> (&'a str, &'a str) {
    let row = &dom[dom
        .find(&format!("data-id=\"{id}\""))
        .unwrap_or_else(|| panic!("no row {id} in\n{dom}"))..];
    let t = &row[row
        .find("<time")
        .unwrap_or_else(|| panic!("no <time> in {row}"))..];
    let dt = &t[t.find("datetime=\"").unwrap() + 10..];
    let dt = &dt[..dt.find('"').unwrap()];
    let text = &t[t.find('>').unwrap() + 1..];
    (dt, &text[..text.find('<').unwrap()])
}

fn blocking_chromium(profile: &Path, url: &str, extra: &[&str]) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(chromium(profile, url, extra))
}

/// The issue's scenario end to end on the real server: SIPp leaves a
/// message in 1001; the browser signs in with box and PIN through the
/// form, sees it with caller, date and duration, plays it to the end (the
/// audio element's `ended` event, with its position at the message's
/// length), which moves it to Old; then deletes it from Old, and the files
/// are gone from the data directory. A screenshot of the inbox with the
/// message is saved as `target/web_inbox_sipp.png`.
#[test]
fn sipp_message_is_seen_played_and_deleted_in_the_browser() {
    common::require_root();
    let data = tempfile::Builder::new()
        .prefix("voxmail-data-")
        .tempdir()
        .unwrap();
    let mut server = common::server::Server::start_shipped(data.path());
    let msg = common::deposit::leave_and_find(&server, "1001", 1);
    let id = msg.id.clone();
    let secs = msg.meta["duration_seconds"].as_f64().expect("duration");
    let received = msg.str_field("received_at").to_owned();
    let wav_len = std::fs::metadata(&msg.wav_path).unwrap().len();
    let base = format!("http://{}", server.http());
    let profile = data.path().join("chromium");

    // Signed in, the message is listed with who, when and how long.
    let url = format!("{base}/#autologin&box=1001&pin=1234");
    let dom = blocking_chromium(&profile, &url, &["--dump-dom"]);
    assert!(dom.contains("signed in 1001"), "{dom}");
    assert!(dom.contains(&format!("data-id=\"{id}\"")), "{dom}");
    assert!(
        dom.contains(&format!(
            "{} &lt;{}&gt;",
            common::deposit::CALLER_NAME,
            common::deposit::CALLER_NUMBER
        )),
        "caller not shown: {dom}"
    );
    let (datetime, shown) = row_time(&dom, &id);
    assert_eq!(datetime, received, "the row's date is the message's");
    assert!(shown.contains(&received[..4]), "date text {shown:?}");
    let t = secs.round() as u64;
    let duration = format!(">{}:{:02}<", t / 60, t % 60);
    assert!(
        dom.contains(&duration),
        "duration {duration} not shown: {dom}"
    );
    assert_eq!(element_text(&dom, "count-inbox"), "(1)");

    let png = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/web_inbox_sipp.png");
    let _ = std::fs::remove_file(&png);
    blocking_chromium(
        &profile,
        &url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1100,760",
        ],
    );
    let bytes = std::fs::read(&png).expect("no screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 5000, "suspiciously small screenshot");

    // Listen to the end, then delete it from Old. Media plays in real
    // time only (virtual time stalls it), so this run has no --dump-dom:
    // the page's log lines are read from the console as they come.
    let url = format!("{base}/#autologin&box=1001&pin=1234&autotest=listen,folder:old,delete");
    let lines = chromium_console(&profile, &url, "autotest done", Duration::from_secs(40));
    let log = lines.join("\n");
    let played = lines
        .iter()
        .find(|l| l.starts_with(&format!("played {id} ")))
        .unwrap_or_else(|| panic!("never played: {log}"));
    assert!(played.contains(&format!("bytes={wav_len} ")), "{played}");
    let ended_at: f64 = lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("ended {id} at=")))
        .unwrap_or_else(|| panic!("the audio never played to its end: {log}"))
        .parse()
        .unwrap();
    assert!(
        (ended_at - secs).abs() < 0.1,
        "ended at {ended_at} s, the message is {secs} s"
    );
    assert!(log.contains(&format!("moved {id} to old")), "{log}");
    assert!(log.contains("folder old rows=1"), "{log}");
    assert!(log.contains(&format!("deleted {id}")), "{log}");
    assert!(log.contains("rows 0 in old"), "row still shown: {log}");

    // The files are gone from every folder.
    for folder in ["inbox", "old", "saved"] {
        for ext in ["wav", "json"] {
            let f = data
                .path()
                .join(format!("mailboxes/1001/{folder}/{id}.{ext}"));
            assert!(!f.exists(), "{} still exists", f.display());
        }
    }
    server.assert_running();
    eprintln!("screenshot: {}", png.display());
}

/// Runs headless chromium on `url` in real time and returns the page's
/// log lines (console messages `voxmail: ...`) up to the one starting with
/// `until`; chromium is killed then, or at `deadline` (a panic with what
/// was seen).
fn chromium_console(profile: &Path, url: &str, until: &str, deadline: Duration) -> Vec<String> {
    use std::io::BufRead;
    let child = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium ({e}): apt-get install -y chromium"));
    let mut guard = common::ChildGuard(Some(child));
    let stderr = guard.0.as_mut().unwrap().stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let end = std::time::Instant::now() + deadline;
    let mut lines = Vec::new();
    let mut other = Vec::new();
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(raw) => match console_text(&raw) {
                Some(text) => {
                    let done = text.starts_with(until);
                    lines.push(text);
                    if done {
                        return lines;
                    }
                }
                None => other.push(raw),
            },
            Err(_) => panic!(
                "no `{until}` from the page within {deadline:?} (chromium ended: {})\n\
                 page log:\n{}\nchromium:\n{}",
                guard
                    .0
                    .as_mut()
                    .unwrap()
                    .try_wait()
                    .ok()
                    .flatten()
                    .is_some(),
                lines.join("\n"),
                common::tail(&other.join("\n"), 6_000)
            ),
        }
    }
}

/// `<text>` out of chromium's `...:INFO:CONSOLE...] "voxmail: <text>",
/// source: <url> (<line>)`.
fn console_text(raw: &str) -> Option<String> {
    let start = raw.find(":CONSOLE")?;
    let msg = &raw[start..];
    let msg = &msg[msg.find("\"voxmail: ")? + 10..];
    let end = msg.rfind("\", source: ")?;
    Some(msg[..end].to_owned())
}
