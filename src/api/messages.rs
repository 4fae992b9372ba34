//! Mailboxes and their messages: listing, metadata, moving (read state,
//! folders), deleting, and audio download with HTTP Range.

use std::io::SeekFrom;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::auth::Caller;
use super::error::ApiError;
use super::{ApiState, blocking, json_rejection, query_rejection};
use crate::audio::AudioFormat;
use crate::store::{Folder, MailboxId, MessageId, MessageMeta, Store};

/// Default and largest page size.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
/// Audio is streamed in chunks of this size.
const CHUNK: usize = 64 * 1024;

pub(crate) use super::mailboxes::mailbox_for;
use super::mailboxes::member;
use super::reading::{BoxReading, VoicemailType};

/// A message as the API shows it.
#[derive(serde::Serialize)]
pub(crate) struct MessageView {
    #[serde(flatten)]
    meta: MessageMeta,
    /// Not heard yet (still in the inbox; in a shared box with per-member
    /// read state, not heard by the asking member).
    unread: bool,
    /// "personal", or "global" for a shared box's message.
    voicemail_type: &'static str,
    /// Shared box with per-member read state: the members who heard it.
    #[serde(skip_serializing_if = "Option::is_none")]
    heard_by: Option<Vec<String>>,
    audio_url: String,
}

impl MessageView {
    /// `meta` as `reading`'s reader sees it.
    fn read_by(meta: MessageMeta, reading: &BoxReading) -> MessageView {
        MessageView {
            unread: reading.unread(&meta),
            voicemail_type: reading.voicemail_type(),
            heard_by: reading.heard_by(&meta),
            audio_url: format!(
                "/api/v1/mailboxes/{}/messages/{}/audio",
                meta.mailbox, meta.id
            ),
            meta,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// inbox (default), old, saved or all.
    folder: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    unread: Option<bool>,
    /// personal (default): this box's; global: the shared boxes it is a
    /// member of; all: both.
    voicemail_type: Option<String>,
}

/// `GET /api/v1/mailboxes/{box}/messages?folder=&limit=&offset=&unread=&voicemail_type=`,
/// newest first; each message says its box and `voicemail_type`.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(query_rejection)?;
    let (mailbox, cfg) = mailbox_for(&state, &caller, &raw)?;
    let kind = VoicemailType::parse(q.voicemail_type.as_deref())?;
    // Each box listed, with the member its read state is seen by.
    let mut sources = Vec::new();
    if kind != VoicemailType::Global {
        let who = member(&caller, Some(&cfg));
        sources.push((cfg, who));
    }
    if kind != VoicemailType::Personal {
        for shared in state.mailboxes.shared_with(mailbox.as_str()) {
            sources.push((shared, Some(mailbox.as_str().to_owned())));
        }
    }
    let folder_name = q.folder.unwrap_or_else(|| "inbox".to_owned());
    let folders: Vec<Folder> = if folder_name == "all" {
        Folder::ALL.to_vec()
    } else {
        vec![folder_name.parse::<Folder>().map_err(|_| {
            ApiError::bad_request(
                "invalid_folder",
                format!(
                    "unknown folder {:?}: expected inbox, old, saved or all",
                    super::truncate(&folder_name, 32)
                ),
            )
        })?]
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    let store = state.store.clone();
    let mut all = blocking(move || {
        let mut all = Vec::new();
        for (cfg, who) in sources {
            let mb = MailboxId::try_from(cfg.number.as_str())?;
            let reading = BoxReading::load(&store, &cfg, who)?;
            for f in &folders {
                for m in store.list_messages(&mb, *f)? {
                    all.push(MessageView::read_by(m, &reading));
                }
            }
        }
        Ok(all)
    })
    .await?;
    if let Some(unread) = q.unread {
        all.retain(|m| m.unread == unread);
    }
    // Ids start with the UTC time, so this is newest first.
    all.sort_by(|a, b| (&b.meta.id, &b.meta.mailbox).cmp(&(&a.meta.id, &a.meta.mailbox)));
    let total = all.len();
    let page: Vec<MessageView> = all.into_iter().skip(offset).take(limit).collect();
    Ok(Json(serde_json::json!({
        "mailbox": mailbox.as_str(),
        "voicemail_type": kind.as_str(),
        "folder": folder_name,
        "total": total,
        "offset": offset,
        "limit": limit,
        "messages": page,
    }))
    .into_response())
}

/// The message's metadata, wherever it lies.
fn find(store: &Store, mailbox: &MailboxId, id: &MessageId) -> Result<MessageMeta, ApiError> {
    for folder in Folder::ALL {
        if store.message_audio_path(mailbox, folder, id).is_ok()
            && let Some(m) = store
                .list_messages(mailbox, folder)?
                .into_iter()
                .find(|m| m.id == id.as_str())
        {
            return Ok(m);
        }
    }
    Err(ApiError::not_found(format!(
        "no message {id} in mailbox {mailbox}"
    )))
}

fn ids(
    state: &ApiState,
    caller: &Caller,
    raw_box: &str,
    raw_id: &str,
) -> Result<(MailboxId, MessageId), ApiError> {
    let (mailbox, _) = mailbox_for(state, caller, raw_box)?;
    let id = MessageId::try_from(raw_id)?;
    Ok((mailbox, id))
}

/// `GET /api/v1/mailboxes/{box}/messages/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path((raw_box, raw_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (mailbox, cfg) = mailbox_for(&state, &caller, &raw_box)?;
    let id = MessageId::try_from(raw_id.as_str())?;
    let who = member(&caller, Some(&cfg));
    let store = state.store.clone();
    let view = blocking(move || {
        let meta = find(&store, &mailbox, &id)?;
        let reading = BoxReading::load(&store, &cfg, who)?;
        Ok(MessageView::read_by(meta, &reading))
    })
    .await?;
    Ok(Json(view).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    folder: Option<String>,
    read: Option<bool>,
}

/// Where a PATCH sends a message now in `current`.
fn target_folder(current: Folder, patch: &Patch) -> Result<Folder, ApiError> {
    let folder = patch
        .folder
        .as_deref()
        .map(|f| {
            f.parse::<Folder>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_folder",
                    format!(
                        "unknown folder {:?}: expected inbox, old or saved",
                        super::truncate(f, 32)
                    ),
                )
            })
        })
        .transpose()?;
    match (folder, patch.read) {
        (None, None) => Err(ApiError::bad_request(
            "invalid_request",
            "nothing to change: give \"folder\" and/or \"read\"",
        )),
        (Some(Folder::Inbox), Some(true)) | (Some(Folder::Old | Folder::Saved), Some(false)) => {
            Err(ApiError::bad_request(
                "invalid_request",
                "\"read\" contradicts \"folder\": the inbox holds unread messages, old and saved hold read ones",
            ))
        }
        (Some(f), _) => Ok(f),
        // Heard: out of the inbox, like Asterisk; saved stays saved.
        (None, Some(true)) if current == Folder::Inbox => Ok(Folder::Old),
        (None, Some(true)) => Ok(current),
        // Unheard again: back to the inbox.
        (None, Some(false)) => Ok(Folder::Inbox),
    }
}

/// `PATCH /api/v1/mailboxes/{box}/messages/{id}` with `{"folder": ...}`
/// and/or `{"read": bool}`. A member of a shared box with per-member read
/// state marks it read or unread for themselves only; a folder move is
/// for everyone.
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path((raw_box, raw_id)): Path<(String, String)>,
    body: Result<Json<Patch>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (mailbox, cfg) = mailbox_for(&state, &caller, &raw_box)?;
    let id = MessageId::try_from(raw_id.as_str())?;
    let Json(patch) = body.map_err(json_rejection)?;
    let who = member(&caller, Some(&cfg));
    let store = state.store.clone();
    let (before, after, reading, heard) = blocking(move || {
        let before = find(&store, &mailbox, &id)?;
        let reading = BoxReading::load(&store, &cfg, who)?;
        if let (Some(member), None, Some(read)) = (reading.member(), &patch.folder, patch.read) {
            let heard = store.set_heard(&mailbox, &id, member, read)?;
            let reading = BoxReading::load(&store, &cfg, Some(member.to_owned()))?;
            let heard = Some((member.to_owned(), heard.into_iter().collect::<Vec<_>>()));
            return Ok((before.clone(), before, reading, heard));
        }
        let to = target_folder(before.folder, &patch)?;
        let after = store.move_message(&mailbox, before.folder, to, &id)?;
        Ok((before, after, reading, None))
    })
    .await?;
    if let Some((member, heard_by)) = heard {
        state.events.member_read_state(&after, &member, heard_by);
    } else if before.folder != after.folder {
        state.events.message_updated(&after, Some(before.folder));
    }
    Ok(Json(MessageView::read_by(after, &reading)).into_response())
}

/// `DELETE /api/v1/mailboxes/{box}/messages/{id}`.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path((raw_box, raw_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (mailbox, id) = ids(&state, &caller, &raw_box, &raw_id)?;
    let store = state.store.clone();
    let gone = blocking(move || {
        let meta = find(&store, &mailbox, &id)?;
        store.delete_message(&mailbox, meta.folder, &id)?;
        Ok(meta)
    })
    .await?;
    state.events.message_deleted(&gone);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioQuery {
    format: Option<String>,
}

/// What a `Range` header asks of a resource of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// No (usable) range: the whole thing.
    Full,
    /// Inclusive `start..=end`.
    Partial(u64, u64),
    Unsatisfiable,
}

/// Parses a single-range `bytes=` header. Other units and multiple ranges
/// are ignored (RFC 9110 lets a server send the whole resource);
/// malformed or out-of-bounds byte ranges are unsatisfiable.
pub(crate) fn parse_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(h) = header else {
        return ByteRange::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Unsatisfiable;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(n) if n > 0 && len > 0 => ByteRange::Partial(len.saturating_sub(n), len - 1),
            _ => ByteRange::Unsatisfiable,
        },
        // bytes=A-
        (false, true) => match num(a) {
            Some(start) if start < len => ByteRange::Partial(start, len - 1),
            _ => ByteRange::Unsatisfiable,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(start), Some(end)) if start <= end && start < len => {
                ByteRange::Partial(start, end.min(len - 1))
            }
            _ => ByteRange::Unsatisfiable,
        },
        (true, true) => ByteRange::Unsatisfiable,
    }
}

/// `GET /api/v1/mailboxes/{box}/messages/{id}/audio?format=wav|mp3`, with
/// `Range` support (206 / 416). The stored file is served when the box
/// keeps that format, else the other one is transcoded; without `format`,
/// the message's first stored format (WAV when kept).
pub async fn audio(
    State(state): State<ApiState>,
    caller: Caller,
    Path((raw_box, raw_id)): Path<(String, String)>,
    query: Result<Query<AudioQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(query_rejection)?;
    let (mailbox, id) = ids(&state, &caller, &raw_box, &raw_id)?;
    let wanted = match q.format.as_deref() {
        None => None,
        Some(raw) => Some(AudioFormat::parse(raw).ok_or_else(|| {
            ApiError::bad_request(
                "unsupported_format",
                format!(
                    "unknown audio format {:?}: expected wav or mp3",
                    super::truncate(raw, 16)
                ),
            )
        })?),
    };
    let store = state.store.clone();
    let found = blocking(move || {
        for folder in Folder::ALL {
            let Some(stored) = store.stored_format(&mailbox, folder, &id) else {
                continue;
            };
            let format = wanted.unwrap_or(stored.primary());
            if let Some(path) = store.message_audio_file(&mailbox, folder, &id, format) {
                return Ok((format, AudioSource::File(path)));
            }
            if !format.can_encode() {
                return Err(ApiError::bad_request(
                    "unsupported_format",
                    format!(
                        "this message is not stored as {format}, and this voxmail was built \
                         without MP3 encoding (the `mp3` feature)"
                    ),
                ));
            }
            let bytes = store.message_audio_bytes(&mailbox, folder, &id, format)?;
            return Ok((format, AudioSource::Memory(bytes::Bytes::from(bytes))));
        }
        Err(ApiError::not_found(format!(
            "no message {id} in mailbox {mailbox}"
        )))
    })
    .await?;
    let (format, source) = found;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, body, start, count, len) = match source {
        AudioSource::File(path) => {
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                // Moved or deleted since we looked.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ApiError::not_found("the message is gone"));
                }
                Err(e) => return Err(ApiError::internal("cannot open message audio", e)),
            };
            let len = file
                .metadata()
                .await
                .map_err(|e| ApiError::internal("cannot stat message audio", e))?
                .len();
            let (status, start, count) = byte_window(range, len)?;
            if start > 0 {
                file.seek(SeekFrom::Start(start))
                    .await
                    .map_err(|e| ApiError::internal("cannot seek in message audio", e))?;
            }
            (status, file_body(file, count), start, count, len)
        }
        AudioSource::Memory(bytes) => {
            let len = bytes.len() as u64;
            let (status, start, count) = byte_window(range, len)?;
            let part = bytes.slice(start as usize..(start + count) as usize);
            (status, Body::from(part), start, count, len)
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "inline; filename=\"{raw_id}.{}\"",
        format.extension()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {start}-{}/{len}", start + count - 1);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&v).expect("ASCII"),
        );
    }
    Ok(resp)
}

/// Where a download's bytes come from: the stored file, or a transcoding.
enum AudioSource {
    File(std::path::PathBuf),
    Memory(bytes::Bytes),
}

/// Status, first byte and byte count for a `Range` header over `len`.
fn byte_window(range: Option<&str>, len: u64) -> Result<(StatusCode, u64, u64), ApiError> {
    match parse_range(range, len) {
        ByteRange::Full => Ok((StatusCode::OK, 0, len)),
        ByteRange::Partial(s, e) => Ok((StatusCode::PARTIAL_CONTENT, s, e - s + 1)),
        ByteRange::Unsatisfiable => Err(ApiError::range_not_satisfiable(len)),
    }
}

/// `count` bytes of `file` from where it stands, streamed in chunks.
fn file_body(file: tokio::fs::File, count: u64) -> Body {
    let stream = futures_util::stream::unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use ByteRange::*;
        let r = |h: &str| parse_range(Some(h), 1000);
        assert_eq!(parse_range(None, 1000), Full);
        assert_eq!(r("bytes=0-99"), Partial(0, 99));
        assert_eq!(r("bytes=990-2000"), Partial(990, 999));
        assert_eq!(r("bytes=500-"), Partial(500, 999));
        assert_eq!(r("bytes=-100"), Partial(900, 999));
        assert_eq!(r("bytes=-5000"), Partial(0, 999));
        assert_eq!(r("bytes=1000-"), Unsatisfiable);
        assert_eq!(r("bytes=1000-1001"), Unsatisfiable);
        assert_eq!(r("bytes=5-4"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=-"), Unsatisfiable);
        assert_eq!(r("bytes=abc"), Unsatisfiable);
        assert_eq!(r("bytes=+1-2"), Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), Full);
        assert_eq!(r("items=0-1"), Full);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn patch_targets() {
        let p = |folder: Option<&str>, read: Option<bool>| Patch {
            folder: folder.map(str::to_owned),
            read,
        };
        use Folder::*;
        assert_eq!(target_folder(Inbox, &p(None, Some(true))).unwrap(), Old);
        assert_eq!(target_folder(Saved, &p(None, Some(true))).unwrap(), Saved);
        assert_eq!(target_folder(Old, &p(None, Some(false))).unwrap(), Inbox);
        assert_eq!(
            target_folder(Inbox, &p(Some("saved"), None)).unwrap(),
            Saved
        );
        assert_eq!(
            target_folder(Inbox, &p(Some("saved"), Some(true))).unwrap(),
            Saved
        );
        assert_eq!(
            target_folder(Inbox, &p(Some("trash"), None))
                .unwrap_err()
                .code,
            "invalid_folder"
        );
        assert_eq!(
            target_folder(Inbox, &p(Some("inbox"), Some(true)))
                .unwrap_err()
                .code,
            "invalid_request"
        );
        assert_eq!(
            target_folder(Inbox, &p(None, None)).unwrap_err().code,
            "invalid_request"
        );
    }
}
