//! `PUT|GET|DELETE /api/v1/mailboxes/{box}/greetings/{kind}`: uploads of
//! WAV or MP3 at any rate are decoded and stored as 8 kHz mono.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::error::ApiError;
use super::messages::mailbox_for;
use super::{ApiState, MAX_GREETING_SECONDS, blocking};
use crate::audio::{DecodeError, decode_bytes, wav::wav_bytes};
use crate::store::{GreetingKind, MailboxId, SAMPLE_RATE};

fn kind(raw: &str) -> Result<GreetingKind, ApiError> {
    GreetingKind::ALL
        .into_iter()
        .find(|k| k.file_stem() == raw)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_greeting_kind",
                format!(
                    "unknown greeting {:?}: expected unavailable, busy, temp or name",
                    super::truncate(raw, 32)
                ),
            )
        })
}

fn target(
    state: &ApiState,
    caller: &Caller,
    raw_box: &str,
    raw_kind: &str,
) -> Result<(MailboxId, GreetingKind), ApiError> {
    let (mailbox, _) = mailbox_for(state, caller, raw_box)?;
    Ok((mailbox, kind(raw_kind)?))
}

/// `PUT`: the body is a WAV or MP3 file.
pub async fn put(
    State(state): State<ApiState>,
    caller: Caller,
    Path((raw_box, raw_kind)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (mailbox, kind) = target(&state, &caller, &raw_box, &raw_kind)?;
    let body = super::error::audio_upload(body, "greetings", state.max_upload_bytes)?;
    let store = state.store.clone();
    let security = state.security.clone();
    let samples = blocking(move || {
        let samples = decode_bytes(body.to_vec(), MAX_GREETING_SECONDS).map_err(|e| match e {
            DecodeError::TooLong { .. } => ApiError::too_large(format!(
                "greetings are limited to {MAX_GREETING_SECONDS} seconds"
            )),
            other => ApiError::bad_request("bad_audio", other.to_string()),
        })?;
        store.save_greeting(&mailbox, kind, &samples)?;
        if kind == GreetingKind::Temporary {
            // A new temporary greeting has no end date until one is set.
            security.set_temp_greeting_expiry(&mailbox, None)?;
        }
        Ok(samples.len())
    })
    .await?;
    Ok(axum::Json(serde_json::json!({
        "mailbox": raw_box,
        "kind": raw_kind,
        "sample_rate": SAMPLE_RATE,
        "duration_seconds": samples as f64 / f64::from(SAMPLE_RATE),
    }))
    .into_response())
}

/// `GET`: the stored greeting as 8 kHz mono WAV.
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path((raw_box, raw_kind)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (mailbox, kind) = target(&state, &caller, &raw_box, &raw_kind)?;
    let store = state.store.clone();
    let wav = blocking(move || {
        let samples = store
            .load_greeting(&mailbox, kind)?
            .ok_or_else(|| ApiError::not_found(format!("no {} greeting", kind.file_stem())))?;
        wav_bytes(&samples, SAMPLE_RATE)
            .map_err(|e| ApiError::internal("cannot encode greeting", e))
    })
    .await?;
    let mut resp = wav.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(resp)
}

/// `DELETE`: 204, or 404 when there is none.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path((raw_box, raw_kind)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (mailbox, kind) = target(&state, &caller, &raw_box, &raw_kind)?;
    let store = state.store.clone();
    let security = state.security.clone();
    blocking(move || {
        if !store.has_greeting(&mailbox, kind)? {
            return Err(ApiError::not_found(format!(
                "no {} greeting",
                kind.file_stem()
            )));
        }
        store.delete_greeting(&mailbox, kind)?;
        if kind == GreetingKind::Temporary {
            security.set_temp_greeting_expiry(&mailbox, None)?;
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
