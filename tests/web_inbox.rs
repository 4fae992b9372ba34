//! The web inbox in a real browser: Debian's chromium, headless, loading
//! the page from `voxmail::api::serve` on 127.0.0.1. The page signs in from
//! its URL fragment (`#autologin&box=..&pin=..`, never sent to the server)
//! and, with `&autotest=play,upload,delete`, clicks its own Play and Delete
//! buttons and uploads a generated WAV through its upload function; what
//! happened is read back from the dumped DOM and from the store.

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
        "--virtual-time-budget=15000",
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
