//! The HTTP API over a real socket: `voxmail::api::serve` on 127.0.0.1:0,
//! a store in a temp dir filled through `MessageWriter`, reqwest as the
//! client (and raw TCP where a client would normalise the path).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use voxmail::api::{self, ApiState, Metrics, RtpDirection};
use voxmail::config::Config;
use voxmail::notify::{EventBus, Notifier, RetryPolicy};
use voxmail::store::{
    Folder, GreetingKind, MailboxId, MessageMeta, NewMessage, SecurityStore, Store,
};

const ADMIN: &str = "admin-token-0123456789";
const ALICE: &str = "alice-token-0123456789";

fn config_text(extra: &str) -> String {
    format!(
        r#"
[http]
tokens = [
  {{ token = "{ADMIN}", scope = "admin" }},
  {{ token = "{ALICE}", scope = ["1001"] }},
]

[[mailbox]]
number = "1001"
pin = "1234"
name = "Alice Martin"

[[mailbox]]
number = "1002"
pin = "5678"
name = "Bertrand Dupont"
language = "fr"
{extra}
"#
    )
}

struct Api {
    _dir: tempfile::TempDir,
    store: Store,
    events: EventBus,
    metrics: Arc<Metrics>,
    config: Arc<Config>,
    base: String,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        Api::start_with(&config_text("")).await
    }

    async fn start_with(text: &str) -> Api {
        let config = Arc::new(Config::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}")));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for m in &config.mailboxes {
            store
                .ensure_mailbox(&MailboxId::try_from(m.number.as_str()).unwrap())
                .unwrap();
        }
        let events = EventBus::new();
        let metrics = Arc::new(Metrics::new());
        // Tiny Argon2 parameters: the debug build would take seconds per PIN.
        let security = SecurityStore::for_store(&store)
            .unwrap()
            .with_hash_params(argon2::Params::new(8, 1, 1, None).unwrap());
        let state = ApiState::new(
            config.clone(),
            store.clone(),
            events.clone(),
            metrics.clone(),
        )
        .unwrap()
        .with_security(security);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(api::serve(listener, state));
        Api {
            _dir: dir,
            store,
            events,
            metrics,
            config,
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(token)
    }

    /// Saves a message the way a call does and returns its metadata.
    fn deposit(&self, mailbox: &str, caller: &str, at: &str, seconds: f64) -> MessageMeta {
        let mut w = self
            .store
            .begin_message(NewMessage {
                mailbox: MailboxId::try_from(mailbox).unwrap(),
                caller_number: caller.to_owned(),
                caller_name: Some(format!("Caller {caller}")),
                called_number: mailbox.to_owned(),
                call_id: format!("call-{caller}-{at}"),
                codec: "PCMU".to_owned(),
                started_at: at.parse().unwrap(),
            })
            .unwrap();
        w.write(&tone(seconds)).unwrap();
        w.finish(0).unwrap().unwrap()
    }

    fn messages(&self, mailbox: &str, folder: Folder) -> Vec<MessageMeta> {
        self.store
            .list_messages(&MailboxId::try_from(mailbox).unwrap(), folder)
            .unwrap()
    }
}

fn tone(seconds: f64) -> Vec<i16> {
    (0..(seconds * 8000.0) as usize)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

/// Asserts the stable error shape and returns the code.
async fn error_code(resp: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(resp.status(), status, "{:?}", resp.headers());
    let body: Value = resp.json().await.expect("JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    code.to_owned()
}

/// A request with a raw path, byte for byte (no client-side `..`
/// normalisation). Returns (status, body).
fn raw_get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response {out:?}"));
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn wav_bytes(rate: u32, channels: u16, seconds: f64, freq: f64) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
    for i in 0..(seconds * f64::from(rate)) as usize {
        let s = (10000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
            as i16;
        for _ in 0..channels {
            w.write_sample(s).unwrap();
        }
    }
    w.finalize().unwrap();
    buf.into_inner()
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_scoped() {
    let api = Api::start().await;
    api.deposit("1002", "200", "2026-03-01T10:00:00Z", 1.0);

    // No token, a wrong token, a wrong scheme: 401 with a challenge.
    let resp = api
        .http
        .get(api.url("/api/v1/mailboxes"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"].to_str().unwrap(),
        "Bearer realm=\"voxmail\""
    );
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let resp = api
        .get("/api/v1/mailboxes", "wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let resp = api
        .http
        .get(api.url("/api/v1/mailboxes"))
        .basic_auth("admin", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    // A prefix of a real token is not the token.
    let resp = api
        .get("/api/v1/mailboxes", &ADMIN[..20])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );

    // Admin sees both boxes; Alice's token only hers.
    let all: Value = api
        .get("/api/v1/mailboxes", ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let numbers: Vec<&str> = all["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["1001", "1002"]);
    assert_eq!(all["mailboxes"][1]["messages"]["inbox"], 1);
    assert_eq!(all["mailboxes"][1]["language"], "fr");
    assert!(
        all["mailboxes"][0].get("pin").is_none(),
        "PIN leaked: {all}"
    );
    let mine: Value = api
        .get("/api/v1/mailboxes", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["mailboxes"].as_array().unwrap().len(), 1);
    assert_eq!(mine["mailboxes"][0]["number"], "1001");
    assert_eq!(mine["mailboxes"][0]["name"], "Alice Martin");

    // Outside the scope: 403 on every kind of route.
    let id = &api.messages("1002", Folder::Inbox)[0].id;
    for path in [
        "/api/v1/mailboxes/1002".to_owned(),
        "/api/v1/mailboxes/1002/messages".to_owned(),
        format!("/api/v1/mailboxes/1002/messages/{id}"),
        format!("/api/v1/mailboxes/1002/messages/{id}/audio"),
        "/api/v1/mailboxes/1002/greetings/unavailable".to_owned(),
    ] {
        let resp = api.get(&path, ALICE).send().await.unwrap();
        assert_eq!(
            error_code(resp, StatusCode::FORBIDDEN).await,
            "forbidden",
            "{path}"
        );
    }
    let resp = api
        .http
        .delete(api.url(&format!("/api/v1/mailboxes/1002/messages/{id}")))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, StatusCode::FORBIDDEN).await, "forbidden");
    assert_eq!(
        api.messages("1002", Folder::Inbox).len(),
        1,
        "deleted despite 403"
    );

    // Unknown routes and methods keep the JSON shape.
    let resp = api.get("/api/v1/nothing", ADMIN).send().await.unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    let resp = api
        .http
        .put(api.url("/api/v1/mailboxes"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::METHOD_NOT_ALLOWED).await,
        "method_not_allowed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_newest_first_with_filters() {
    let api = Api::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = api.deposit(
            "1001",
            &format!("10{i}"),
            &format!("2026-03-01T10:0{i}:00Z"),
            1.0,
        );
        ids.push(m.id);
    }
    let old = api.deposit("1001", "199", "2026-02-01T09:00:00Z", 1.0);
    api.store
        .move_message(
            &MailboxId::try_from("1001").unwrap(),
            Folder::Inbox,
            Folder::Old,
            &old.id.parse().unwrap(),
        )
        .unwrap();

    let page: Value = api
        .get("/api/v1/mailboxes/1001/messages?limit=2", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 5);
    assert_eq!(page["folder"], "inbox");
    let got: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()]);
    let first = &page["messages"][0];
    assert_eq!(first["caller_number"], "104");
    assert_eq!(first["caller_name"], "Caller 104");
    assert_eq!(first["unread"], true);
    assert_eq!(first["duration_seconds"], 1.0);
    assert_eq!(first["received_at"], "2026-03-01T10:04:00Z");
    assert_eq!(
        first["audio_url"],
        format!("/api/v1/mailboxes/1001/messages/{}/audio", ids[4])
    );

    let page: Value = api
        .get(
            "/api/v1/mailboxes/1001/messages?folder=inbox&limit=2&offset=4",
            ALICE,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["id"], ids[0].as_str());

    let all: Value = api
        .get("/api/v1/mailboxes/1001/messages?folder=all", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["total"], 6);
    let heard: Value = api
        .get(
            "/api/v1/mailboxes/1001/messages?folder=all&unread=false",
            ALICE,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(heard["total"], 1);
    assert_eq!(heard["messages"][0]["id"], old.id.as_str());
    assert_eq!(heard["messages"][0]["folder"], "old");
    assert_eq!(heard["messages"][0]["unread"], false);

    let one: Value = api
        .get(
            &format!("/api/v1/mailboxes/1001/messages/{}", ids[2]),
            ALICE,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["caller_number"], "102");
    assert_eq!(one["folder"], "inbox");

    for (query, code) in [
        ("folder=trash", "invalid_folder"),
        ("limit=0", "invalid_request"),
        ("limit=501", "invalid_request"),
        ("limit=abc", "invalid_request"),
        ("offset=-1", "invalid_request"),
        ("unread=maybe", "invalid_request"),
        ("colour=blue", "invalid_request"),
    ] {
        let resp = api
            .get(&format!("/api/v1/mailboxes/1001/messages?{query}"), ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(resp, StatusCode::BAD_REQUEST).await,
            code,
            "{query}"
        );
    }

    let mb: Value = api
        .get("/api/v1/mailboxes/1001", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mb["messages"], json!({"inbox": 5, "old": 1, "saved": 0}));
    assert_eq!(mb["timezone"], "UTC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_moves_and_delete_removes_with_events() {
    let api = Api::start().await;
    let mut rx = api.events.subscribe();
    let m = api.deposit("1001", "100", "2026-03-01T10:00:00Z", 1.0);
    let path = format!("/api/v1/mailboxes/1001/messages/{}", m.id);

    // Heard: inbox -> old.
    let resp = api
        .http
        .patch(api.url(&path))
        .bearer_auth(ALICE)
        .json(&json!({"read": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["folder"], "old");
    assert_eq!(body["unread"], false);
    assert!(api.messages("1001", Folder::Inbox).is_empty());
    assert_eq!(api.messages("1001", Folder::Old).len(), 1);
    let ev = rx.recv().await.unwrap();
    assert_eq!(ev.event.name(), "voicemail_message_updated");
    assert_eq!(ev.previous_folder, Some(Folder::Inbox));
    assert_eq!(ev.message.folder, Folder::Old);

    // Explicit folder.
    let resp = api
        .http
        .patch(api.url(&path))
        .bearer_auth(ALICE)
        .json(&json!({"folder": "saved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(api.messages("1001", Folder::Saved).len(), 1);
    assert!(api.messages("1001", Folder::Old).is_empty());
    // Unread again: back to the inbox.
    let body: Value = api
        .http
        .patch(api.url(&path))
        .bearer_auth(ALICE)
        .json(&json!({"read": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["folder"], "inbox");
    assert_eq!(api.messages("1001", Folder::Inbox).len(), 1);

    // Bad bodies change nothing.
    for (body, status) in [
        ("{}", StatusCode::BAD_REQUEST),
        ("{\"folder\": \"trash\"}", StatusCode::BAD_REQUEST),
        (
            "{\"folder\": \"inbox\", \"read\": true}",
            StatusCode::BAD_REQUEST,
        ),
        ("{\"colour\": \"red\"}", StatusCode::UNPROCESSABLE_ENTITY),
        ("{\"read\": \"yes\"}", StatusCode::UNPROCESSABLE_ENTITY),
        ("not json", StatusCode::BAD_REQUEST),
    ] {
        let resp = api
            .http
            .patch(api.url(&path))
            .bearer_auth(ALICE)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        error_code(resp, status).await;
    }
    assert_eq!(api.messages("1001", Folder::Inbox).len(), 1);

    // Delete: 204, gone from the API and the disk, a deleted event.
    let wav = api
        .store
        .message_audio_path(
            &MailboxId::try_from("1001").unwrap(),
            Folder::Inbox,
            &m.id.parse().unwrap(),
        )
        .unwrap();
    let resp = api
        .http
        .delete(api.url(&path))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!wav.exists());
    assert!(!wav.with_extension("json").exists());
    for f in Folder::ALL {
        assert!(api.messages("1001", f).is_empty());
    }
    let resp = api.get(&path, ALICE).send().await.unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    let resp = api
        .http
        .delete(api.url(&path))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    let mut last = None;
    while let Ok(ev) = rx.try_recv() {
        last = Some(ev);
    }
    let last = last.expect("events");
    assert_eq!(last.event.name(), "voicemail_message_deleted");
    assert_eq!(last.message.id, m.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_download_supports_ranges() {
    let api = Api::start().await;
    let m = api.deposit("1001", "100", "2026-03-01T10:00:00Z", 2.0);
    let file = std::fs::read(
        api.store
            .message_audio_path(
                &MailboxId::try_from("1001").unwrap(),
                Folder::Inbox,
                &m.id.parse().unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    let len = file.len();
    assert_eq!(len, 44 + 32000);
    let path = format!("/api/v1/mailboxes/1001/messages/{}/audio", m.id);

    let resp = api
        .get(&format!("{path}?format=wav"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(resp.headers()["content-length"], len.to_string().as_str());
    assert_eq!(resp.bytes().await.unwrap().as_ref(), file.as_slice());

    let resp = api
        .get(&path, ALICE)
        .header("range", "bytes=0-43")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 0-43/{len}").as_str()
    );
    let head = resp.bytes().await.unwrap();
    assert_eq!(head.as_ref(), &file[..44]);
    assert_eq!(&head[..4], b"RIFF");

    let resp = api
        .get(&path, ALICE)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes {}-{}/{len}", len - 10, len - 1).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &file[len - 10..]);

    let resp = api
        .get(&path, ALICE)
        .header("range", "bytes=30000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &file[30000..]);

    // Past the end and nonsense: 416 with the length.
    for range in [
        format!("bytes={len}-"),
        "bytes=9-2".to_owned(),
        "bytes=x-y".to_owned(),
    ] {
        let resp = api
            .get(&path, ALICE)
            .header("range", &range)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes */{len}").as_str(),
            "{range}"
        );
        assert_eq!(
            error_code(resp, StatusCode::RANGE_NOT_SATISFIABLE).await,
            "range_not_satisfiable"
        );
    }

    // MP3 is transcoded (tests/api_audio.rs); an unknown format is 400.
    let resp = api
        .get(&format!("{path}?format=ogg"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::BAD_REQUEST).await,
        "unsupported_format"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greetings_upload_download_delete() {
    let api = Api::start().await;
    let path = "/api/v1/mailboxes/1001/greetings/unavailable";
    let resp = api.get(path, ALICE).send().await.unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");

    // 1.5 s of 440 Hz, 44.1 kHz stereo.
    let upload = wav_bytes(44100, 2, 1.5, 440.0);
    let resp = api
        .http
        .put(api.url(path))
        .bearer_auth(ALICE)
        .header("content-type", "audio/wav")
        .body(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["sample_rate"], 8000);
    assert!(
        (body["duration_seconds"].as_f64().unwrap() - 1.5).abs() < 0.01,
        "{body}"
    );

    let stored = api
        .store
        .load_greeting(
            &MailboxId::try_from("1001").unwrap(),
            GreetingKind::Unavailable,
        )
        .unwrap()
        .expect("greeting stored");
    assert_eq!(stored.len(), 12000);
    // The tone kept its level (amplitude 10000 → RMS ~7071).
    let level = rms(&stored[800..11200]);
    assert!((level - 7071.0).abs() < 300.0, "rms {level}");

    let resp = api.get(path, ALICE).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    let bytes = resp.bytes().await.unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16)
    );
    let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
    assert_eq!(samples, stored);

    let mb: Value = api
        .get("/api/v1/mailboxes/1001", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mb["greetings"]["unavailable"], true);
    assert_eq!(mb["greetings"]["busy"], false);

    // Not audio, empty, unknown kind: 400 and the stored greeting is intact.
    for (kind, body, code) in [
        ("unavailable", b"this is not audio".to_vec(), "bad_audio"),
        ("unavailable", Vec::new(), "bad_audio"),
        (
            "holiday",
            wav_bytes(8000, 1, 0.5, 440.0),
            "invalid_greeting_kind",
        ),
    ] {
        let resp = api
            .http
            .put(api.url(&format!("/api/v1/mailboxes/1001/greetings/{kind}")))
            .bearer_auth(ALICE)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(resp, StatusCode::BAD_REQUEST).await, code);
    }
    let again = api
        .store
        .load_greeting(
            &MailboxId::try_from("1001").unwrap(),
            GreetingKind::Unavailable,
        )
        .unwrap()
        .unwrap();
    assert_eq!(again, stored);

    let resp = api
        .http
        .delete(api.url(path))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(
        api.store
            .load_greeting(
                &MailboxId::try_from("1001").unwrap(),
                GreetingKind::Unavailable
            )
            .unwrap()
            .is_none()
    );
    let resp = api.get(path, ALICE).send().await.unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    let resp = api
        .http
        .delete(api.url(path))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_upload_is_413_and_keeps_the_old_greeting() {
    let api = Api::start().await;
    let path = "/api/v1/mailboxes/1001/greetings/busy";
    let resp = api
        .http
        .put(api.url(path))
        .bearer_auth(ALICE)
        .body(wav_bytes(8000, 1, 0.5, 300.0))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let before = api
        .store
        .load_greeting(&MailboxId::try_from("1001").unwrap(), GreetingKind::Busy)
        .unwrap()
        .unwrap();

    // 11 MiB (a valid WAV header, then more data than the 10 MiB limit).
    let mut big = wav_bytes(44100, 2, 0.1, 440.0);
    big.resize(11 * 1024 * 1024, 0);
    let resp = api
        .http
        .put(api.url(path))
        .bearer_auth(ALICE)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    let after = api
        .store
        .load_greeting(&MailboxId::try_from("1001").unwrap(), GreetingKind::Busy)
        .unwrap()
        .unwrap();
    assert_eq!(after, before);
    // No temp files left beside it.
    let dir = api.store.root().join("mailboxes/1001/greetings");
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["busy.wav"]);

    // Too long once decoded (11 minutes at 4 kHz is under 10 MiB).
    let long = wav_bytes(4000, 1, 660.0, 440.0);
    assert!(long.len() < 10 * 1024 * 1024);
    let resp = api
        .http
        .put(api.url(path))
        .bearer_auth(ALICE)
        .body(long)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );

    // A JSON body over its own limit.
    let huge = format!("{{\"folder\": \"{}\"}}", "x".repeat(100_000));
    let resp = api
        .http
        .patch(api.url("/api/v1/mailboxes/1001/messages/20260101-000000-000000"))
        .bearer_auth(ALICE)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_and_path_tricks_are_400_unknown_ids_404() {
    let api = Api::start().await;
    let m = api.deposit("1001", "100", "2026-03-01T10:00:00Z", 1.0);
    let dirs_before = api.store.list_mailboxes().unwrap();

    for path in [
        "/api/v1/mailboxes/../messages",
        "/api/v1/mailboxes/1001/messages/..",
        "/api/v1/mailboxes/1001/messages/../audio",
        "/api/v1/mailboxes/1001/messages/..%2F..%2F1002",
        "/api/v1/mailboxes/..%2F1002/messages",
        "/api/v1/mailboxes/1001%2F..%2F1002/messages",
        "/api/v1/mailboxes/1001/messages/a.wav",
        "/api/v1/mailboxes/1001/messages/%00",
        "/api/v1/mailboxes/1001/messages/x%5Cy/audio",
        "/api/v1/mailboxes/%2E%2E/greetings/name",
    ] {
        let (status, body) = raw_get(api.addr, path, ADMIN);
        assert_eq!(status, 400, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert_eq!(v["error"]["code"], "invalid_id", "{path}: {body}");
    }
    let long = format!("/api/v1/mailboxes/1001/messages/{}", "a".repeat(65));
    assert_eq!(raw_get(api.addr, &long, ADMIN).0, 400);

    for path in [
        "/api/v1/mailboxes/9999".to_owned(),
        "/api/v1/mailboxes/9999/messages".to_owned(),
        "/api/v1/mailboxes/1001/messages/20200101-000000-000000".to_owned(),
        "/api/v1/mailboxes/1001/messages/20200101-000000-000000/audio".to_owned(),
        format!("/api/v1/mailboxes/1002/messages/{}", m.id),
    ] {
        let resp = api.get(&path, ADMIN).send().await.unwrap();
        assert_eq!(
            error_code(resp, StatusCode::NOT_FOUND).await,
            "not_found",
            "{path}"
        );
    }
    // Nothing was created by any of it.
    assert_eq!(api.store.list_mailboxes().unwrap(), dirs_before);
    assert_eq!(api.messages("1001", Folder::Inbox).len(), 1);
}

/// Reads SSE frames until one named `name` arrives (or 10 s pass).
async fn next_event(resp: &mut reqwest::Response, buf: &mut String, name: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(i) = buf.find("\n\n") {
            let frame: String = buf.drain(..i + 2).collect();
            let mut event = "message";
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line
                    .strip_prefix("event: ")
                    .or_else(|| line.strip_prefix("event:"))
                {
                    event = e.trim();
                } else if let Some(d) = line
                    .strip_prefix("data: ")
                    .or_else(|| line.strip_prefix("data:"))
                {
                    data.push_str(d);
                }
            }
            if event == name {
                return serde_json::from_str(&data).unwrap();
            }
            assert!(
                !event.starts_with("voicemail_"),
                "unexpected {event} before {name}: {data}"
            );
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {name} event within 10 s"))
            .unwrap()
            .expect("stream ended");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_scoped_events() {
    let api = Api::start().await;
    let resp = api
        .http
        .get(api.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );

    let mut resp = api.get("/api/v1/events", ALICE).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buf = String::new();
    next_event(&mut resp, &mut buf, "ready").await;

    // A message for a box outside the token's scope is not sent...
    let other = api.deposit("1002", "300", "2026-03-01T09:00:00Z", 1.0);
    api.events.message_created(&other);
    // ...one for Alice's box is.
    let mine = api.deposit("1001", "301", "2026-03-01T10:00:00Z", 1.0);
    api.events.message_created(&mine);
    let ev = next_event(&mut resp, &mut buf, "voicemail_message_created").await;
    assert_eq!(ev["event"], "voicemail_message_created");
    assert_eq!(ev["mailbox"], "1001");
    assert_eq!(ev["message"]["id"], mine.id.as_str());
    assert_eq!(ev["message"]["caller_number"], "301");
    assert_eq!(ev["message"]["duration_seconds"], 1.0);

    // Changes made through the API are published too.
    let r = api
        .http
        .patch(api.url(&format!("/api/v1/mailboxes/1001/messages/{}", mine.id)))
        .bearer_auth(ALICE)
        .json(&json!({"folder": "saved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ev = next_event(&mut resp, &mut buf, "voicemail_message_updated").await;
    assert_eq!(ev["previous_folder"], "inbox");
    assert_eq!(ev["message"]["folder"], "saved");
    let r = api
        .http
        .delete(api.url(&format!("/api/v1/mailboxes/1001/messages/{}", mine.id)))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let ev = next_event(&mut resp, &mut buf, "voicemail_message_deleted").await;
    assert_eq!(ev["message"]["id"], mine.id.as_str());
}

#[derive(Debug)]
struct Delivery {
    path: String,
    signature: String,
    event: String,
    body: Vec<u8>,
}

/// A webhook receiver: `/flaky` fails its first call, `/down` always
/// fails, `/ok` accepts. Every request is reported on the channel.
async fn webhook_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Delivery>) {
    use axum::http::HeaderMap;
    use std::sync::atomic::{AtomicU32, Ordering};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::post(
            move |axum::extract::Path(name): axum::extract::Path<String>,
                  headers: HeaderMap,
                  body: axum::body::Bytes| {
                let tx = tx.clone();
                let flaky_calls = flaky_calls.clone();
                async move {
                    let h = |k: &str| {
                        headers
                            .get(k)
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default()
                    };
                    let _ = tx.send(Delivery {
                        path: name.clone(),
                        signature: h("x-voxmail-signature"),
                        event: h("x-voxmail-event"),
                        body: body.to_vec(),
                    });
                    match name.as_str() {
                        "flaky" if flaky_calls.fetch_add(1, Ordering::SeqCst) == 0 => {
                            StatusCode::INTERNAL_SERVER_ERROR
                        }
                        "down" => StatusCode::SERVICE_UNAVAILABLE,
                        _ => StatusCode::NO_CONTENT,
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried() {
    let (hook, mut rx) = webhook_server().await;
    let text = config_text(&format!(
        "\n[[webhook]]\nurl = \"http://{hook}/flaky\"\nsecret = \"flaky-secret\"\n\
         \n[[webhook]]\nurl = \"http://{hook}/down\"\nsecret = \"down-secret\"\n"
    ));
    let api = Api::start_with(&text).await;
    let notifier = Notifier::new(api.config.clone(), api.store.clone(), api.events.clone())
        .unwrap()
        .with_retry(RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
        });
    let task = notifier.spawn();
    let m = api.deposit("1001", "100", "2026-03-01T10:00:00Z", 1.0);
    let started = std::time::Instant::now();
    api.events.message_created(&m);

    let mut got: Vec<Delivery> = Vec::new();
    // flaky: 500 then 204 (2 calls); down: 3 calls, then given up.
    while got.len() < 5 {
        let d = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} deliveries: {got:?}", got.len()))
            .unwrap();
        got.push(d);
    }
    // Backoff: 100 ms then 200 ms before the third "down" try.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(rx.try_recv().is_err(), "a fourth try despite attempts = 3");
    assert_eq!(got.iter().filter(|d| d.path == "flaky").count(), 2);
    assert_eq!(got.iter().filter(|d| d.path == "down").count(), 3);

    for d in &got {
        let secret = if d.path == "flaky" {
            "flaky-secret"
        } else {
            "down-secret"
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&d.body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(d.signature, format!("sha256={expected}"), "{}", d.path);
        assert!(voxmail::notify::webhook::verify_signature(
            secret,
            &d.body,
            &d.signature
        ));
        let wrong = if d.path == "flaky" {
            "down-secret"
        } else {
            "flaky-secret"
        };
        assert!(!voxmail::notify::webhook::verify_signature(
            wrong,
            &d.body,
            &d.signature
        ));
        assert_eq!(d.event, "voicemail_message_created");
        let v: Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(v["event"], "voicemail_message_created");
        assert_eq!(v["mailbox"], "1001");
        assert_eq!(v["message"]["id"], m.id.as_str());
        assert_eq!(v["message"]["caller_number"], "100");
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sessions_are_scoped_to_one_box() {
    let api = Api::start().await;
    let login = |body: Value| api.http.post(api.url("/api/v1/login")).json(&body).send();

    let resp = login(json!({"mailbox": "1001", "pin": "9999"}))
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let resp = login(json!({"mailbox": "7777", "pin": "1234"}))
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let resp = login(json!({"mailbox": "../x", "pin": "1234"}))
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let resp = api
        .http
        .post(api.url("/api/v1/login"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::BAD_REQUEST).await,
        "invalid_request"
    );

    let resp = login(json!({"mailbox": "1001", "pin": "1234"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert_eq!(body["mailbox"], "1001");

    let resp = api
        .get("/api/v1/mailboxes/1001/messages", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = api
        .get("/api/v1/mailboxes/1002/messages", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, StatusCode::FORBIDDEN).await, "forbidden");

    let resp = api
        .http
        .post(api.url("/api/v1/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = api
        .get("/api/v1/mailboxes/1001/messages", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );

    // Five wrong PINs lock the box, even against the right one.
    for _ in 0..5 {
        let r = login(json!({"mailbox": "1002", "pin": "0000"}))
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 401 | 429));
    }
    let resp = login(json!({"mailbox": "1002", "pin": "5678"}))
        .await
        .unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(resp, StatusCode::TOO_MANY_REQUESTS).await,
        "locked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_openapi() {
    let api = Api::start().await;
    let health: Value = api
        .http
        .get(api.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    api.metrics.call_started();
    api.metrics.call_started();
    api.metrics.call_ended("message_left");
    api.metrics.message_recorded();
    api.metrics.rtp_packets(RtpDirection::In, 150);
    api.metrics.rtp_packets(RtpDirection::Out, 140);
    api.metrics.sip_response(200);
    api.metrics.dtmf("rfc4733");
    let resp = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    for line in [
        "voxmail_messages_recorded_total 1",
        "voxmail_active_calls 1",
        "voxmail_calls_total{outcome=\"message_left\"} 1",
        "voxmail_rtp_packets_total{direction=\"in\"} 150",
        "voxmail_rtp_packets_total{direction=\"out\"} 140",
        "voxmail_sip_responses_total{code=\"200\"} 1",
        "voxmail_dtmf_total{source=\"rfc4733\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from\n{text}"
        );
    }

    let doc: Value = api
        .http
        .get(api.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // Every documented operation exists on the server (no 404/405 from
    // the router), and every route we serve is documented.
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
                let concrete = path
                    .replace("{mailbox}", "1001")
                    .replace("{id}", "20200101-000000-000000")
                    .replace("{kind}", "name");
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let resp = api
                    .http
                    .request(m, api.url(&concrete))
                    .bearer_auth(ADMIN)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
                    let body: Value = resp.json().await.unwrap();
                    assert_ne!(
                        body["error"]["code"], "method_not_allowed",
                        "{method} {path}"
                    );
                    assert!(
                        !body["error"]["message"]
                            .as_str()
                            .unwrap()
                            .starts_with("no route"),
                        "{method} {path} is documented but not served"
                    );
                }
            }
        }
    }
    documented.sort();
    let mut served = vec![
        "GET /api/v1/events",
        "GET /api/v1/mailboxes",
        "POST /api/v1/mailboxes",
        "GET /api/v1/mailboxes/{mailbox}",
        "PATCH /api/v1/mailboxes/{mailbox}",
        "DELETE /api/v1/mailboxes/{mailbox}",
        "GET /api/v1/mailboxes/{mailbox}/greetings/{kind}",
        "PUT /api/v1/mailboxes/{mailbox}/greetings/{kind}",
        "DELETE /api/v1/mailboxes/{mailbox}/greetings/{kind}",
        "GET /api/v1/mailboxes/{mailbox}/messages",
        "GET /api/v1/mailboxes/{mailbox}/messages/{id}",
        "PATCH /api/v1/mailboxes/{mailbox}/messages/{id}",
        "DELETE /api/v1/mailboxes/{mailbox}/messages/{id}",
        "GET /api/v1/mailboxes/{mailbox}/messages/{id}/audio",
        "GET /api/v1/audio-messages",
        "GET /api/v1/audio-messages/{name}",
        "PUT /api/v1/audio-messages/{name}",
        "DELETE /api/v1/audio-messages/{name}",
        "POST /api/v1/audio-messages/{name}/tts",
        "POST /api/v1/login",
        "POST /api/v1/logout",
        "GET /api/v1/calls",
        "GET /api/v1/calls/{call_id}",
        "GET /api/v1/openapi.json",
        "GET /healthz",
        "GET /metrics",
    ];
    served.sort();
    assert_eq!(documented, served);
    assert!(doc["components"]["schemas"]["Error"].is_object());
    assert!(doc["webhooks"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_inbox_assets_are_self_contained() {
    let api = Api::start().await;
    let resp = api.http.get(api.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(html.contains("<script src=\"/inbox.js\""));
    for asset in ["/inbox.js", "/inbox.css"] {
        let resp = api.http.get(api.url(asset)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{asset} loads something external"
        );
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_ends_event_streams() {
    let config = Arc::new(Config::parse(&config_text(""), "test.toml").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let state = ApiState::new(config, store, EventBus::new(), Arc::new(Metrics::new())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve_with_shutdown(listener, state, async {
        let _ = stopped.await;
    }));
    let mut resp = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/events"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    next_event(&mut resp, &mut buf, "ready").await;
    stop.send(()).unwrap();
    // The open stream ends and the server returns, instead of waiting
    // forever for the client to hang up.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = resp.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "event stream still open after shutdown");
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server still running after shutdown");
    result.unwrap().unwrap();
}
