//! Audio messages (the named recordings dial plans `play`) over HTTP, for
//! admin tokens only:
//!
//! * `GET /api/v1/audio-messages`: names and lengths;
//! * `PUT /api/v1/audio-messages/{name}`: a WAV or MP3 of any rate and
//!   channel count, decoded and stored as 8 kHz mono;
//! * `GET /api/v1/audio-messages/{name}?format=wav|mp3`, `DELETE`;
//! * `POST /api/v1/audio-messages/{name}/tts` with
//!   `{"text": "...", "language": "en", "voice": "f2"}`: spoken by
//!   espeak-ng and stored the same way.
//!
//! Names are checked before anything is read or run; the store writes
//! atomically, so a failed upload leaves the previous recording in place.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::{ApiState, MAX_GREETING_SECONDS, blocking, json_rejection, query_rejection};
use crate::audio::tts::{self, TtsError};
use crate::audio::{AudioFormat, DecodeError, decode_bytes, wav::wav_bytes};
use crate::store::{AUDIO_MESSAGE_NAME_MAX, SAMPLE_RATE, is_valid_audio_message_name};

/// Audio messages are shared by every dial plan: only admins change them.
fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    match caller.scope {
        Scope::Admin => Ok(()),
        Scope::Mailboxes(_) => Err(ApiError::forbidden("audio messages need an admin token")),
    }
}

/// A valid audio message name, or 400 saying what one looks like.
fn checked_name(raw: &str) -> Result<String, ApiError> {
    if is_valid_audio_message_name(raw) {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "invalid audio message name {:?}: expected 1 to {AUDIO_MESSAGE_NAME_MAX} \
                 characters of 0-9, A-Z, a-z, `_` and `-`",
                super::truncate(raw, 80)
            ),
        ))
    }
}

fn seconds(samples: u64) -> f64 {
    samples as f64 / f64::from(SAMPLE_RATE)
}

/// What a successful store answers.
fn stored(name: &str, samples: usize) -> Response {
    Json(serde_json::json!({
        "name": name,
        "sample_rate": SAMPLE_RATE,
        "duration_seconds": seconds(samples as u64),
        "audio_url": format!("/api/v1/audio-messages/{name}"),
    }))
    .into_response()
}

/// `GET /api/v1/audio-messages`.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let store = state.store.clone();
    let items = blocking(move || {
        let mut items = Vec::new();
        for name in store.list_audio_messages()? {
            let samples = store.audio_message_samples(&name)?;
            items.push(serde_json::json!({
                "duration_seconds": samples.map(seconds),
                "audio_url": format!("/api/v1/audio-messages/{name}"),
                "name": name,
            }));
        }
        Ok(items)
    })
    .await?;
    Ok(Json(serde_json::json!({ "audio_messages": items })).into_response())
}

/// `PUT /api/v1/audio-messages/{name}`: the body is a WAV or MP3 file.
pub async fn put(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let name = checked_name(&raw)?;
    let body = super::error::audio_upload(body, "audio message uploads", state.max_upload_bytes)?;
    let store = state.store.clone();
    let stored_name = name.clone();
    let samples = blocking(move || {
        let samples = decode_bytes(body.to_vec(), MAX_GREETING_SECONDS).map_err(|e| match e {
            DecodeError::TooLong { .. } => ApiError::too_large(format!(
                "audio messages are limited to {MAX_GREETING_SECONDS} seconds"
            )),
            other => ApiError::bad_request("bad_audio", other.to_string()),
        })?;
        store.save_audio_message(&stored_name, &samples)?;
        Ok(samples.len())
    })
    .await?;
    tracing::info!(
        name,
        seconds = seconds(samples as u64),
        "audio message uploaded"
    );
    Ok(stored(&name, samples))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    format: Option<String>,
}

/// `GET /api/v1/audio-messages/{name}?format=wav|mp3` (WAV by default).
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    query: Result<Query<FormatQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let Query(q) = query.map_err(query_rejection)?;
    let name = checked_name(&raw)?;
    let format = match q.format.as_deref() {
        None => AudioFormat::Wav,
        Some(raw) => AudioFormat::parse(raw)
            .filter(|f| f.can_encode())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "unsupported_format",
                    format!(
                        "audio format {:?} is not available: expected wav{}",
                        super::truncate(raw, 16),
                        if AudioFormat::Mp3.can_encode() {
                            " or mp3"
                        } else {
                            ""
                        }
                    ),
                )
            })?,
    };
    let store = state.store.clone();
    let lookup = name.clone();
    let bytes = blocking(move || {
        let samples = store
            .load_audio_message(&lookup)?
            .ok_or_else(|| ApiError::not_found(format!("no audio message {lookup}")))?;
        encode(&samples, format)
    })
    .await?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "inline; filename=\"{name}.{}\"",
        format.extension()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

fn encode(samples: &[i16], format: AudioFormat) -> Result<Vec<u8>, ApiError> {
    match format {
        AudioFormat::Wav => wav_bytes(samples, SAMPLE_RATE)
            .map_err(|e| ApiError::internal("cannot encode audio message", e)),
        #[cfg(feature = "mp3")]
        AudioFormat::Mp3 => crate::audio::mp3::encode_mp3(samples, SAMPLE_RATE)
            .map_err(|e| ApiError::internal("cannot encode audio message", e)),
        #[cfg(not(feature = "mp3"))]
        AudioFormat::Mp3 => Err(ApiError::bad_request(
            "unsupported_format",
            "this voxmail was built without MP3 encoding",
        )),
    }
}

/// `DELETE /api/v1/audio-messages/{name}`: 204, or 404 when absent.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&caller)?;
    let name = checked_name(&raw)?;
    let store = state.store.clone();
    let lookup = name.clone();
    let removed = blocking(move || Ok(store.delete_audio_message(&lookup)?)).await?;
    if removed {
        tracing::info!(name, "audio message deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no audio message {name}")))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtsBody {
    text: String,
    language: String,
    voice: Option<String>,
}

/// `POST /api/v1/audio-messages/{name}/tts`.
pub async fn tts(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Json<TtsBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let name = checked_name(&raw)?;
    let Json(req) = body.map_err(json_rejection)?;
    let samples = tts::synthesize(tts::PROGRAM, &req.text, &req.language, req.voice.as_deref())
        .await
        .map_err(tts_error)?;
    let store = state.store.clone();
    let stored_name = name.clone();
    let n = samples.len();
    blocking(move || Ok(store.save_audio_message(&stored_name, &samples)?)).await?;
    tracing::info!(name, seconds = seconds(n as u64), "audio message spoken");
    Ok(stored(&name, n))
}

fn tts_error(e: TtsError) -> ApiError {
    match e {
        TtsError::Missing => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tts_unavailable",
            e.to_string(),
        ),
        TtsError::EmptyText | TtsError::UnknownLanguage(_) | TtsError::UnknownVoice(_) => {
            ApiError::bad_request("invalid_request", e.to_string())
        }
        TtsError::TextTooLong { .. } => ApiError::too_large(e.to_string()),
        TtsError::Timeout => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tts_timeout",
            e.to_string(),
        ),
        TtsError::Failed(_) | TtsError::Decode(_) => ApiError::internal("text-to-speech failed", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scopes() {
        assert!(checked_name("welcome-fr_2").is_ok());
        for bad in ["..", "a/b", "", ".hidden", "x.wav", "a b"] {
            let e = checked_name(bad).unwrap_err();
            assert_eq!(e.code, "invalid_name", "{bad:?}");
        }
        let admin = Caller {
            scope: Scope::Admin,
        };
        let user = Caller {
            scope: Scope::Mailboxes(vec!["1001".into()]),
        };
        assert!(require_admin(&admin).is_ok());
        assert_eq!(require_admin(&user).unwrap_err().code, "forbidden");
    }

    #[test]
    fn tts_errors_map_to_statuses() {
        let status = |e| tts_error(e).status;
        assert_eq!(status(TtsError::Missing), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(TtsError::EmptyText), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(TtsError::UnknownLanguage("xx".into())),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(TtsError::TextTooLong { chars: 5000 }),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
