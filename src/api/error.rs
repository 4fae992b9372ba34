//! API errors: one JSON shape for every failure,
//! `{"error": {"code": "not_found", "message": "..."}}`, where `code` is a
//! stable machine-readable word and `message` is for people.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra headers (WWW-Authenticate, Content-Range, Retry-After).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"voxmail\""),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 416 with `Content-Range: bytes */len`.
    pub fn range_not_satisfiable(len: u64) -> ApiError {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("the requested range is not within the {len} bytes of the resource"),
        )
        .with_header(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{len}")).expect("ASCII"),
        )
    }

    /// A failure that is ours, not the client's: logged in full, reported
    /// without paths or details.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context}; see the server log"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::InvalidId { kind, value } => ApiError::bad_request(
                "invalid_id",
                format!("invalid {kind} id {value:?}: expected 1 or more of [0-9A-Za-z_-]"),
            ),
            StoreError::MessageNotFound { id, .. } => {
                ApiError::not_found(format!("no message {id}"))
            }
            StoreError::MessageExists { id, folder, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("message {id} already exists in {folder}"),
            ),
            StoreError::UnknownFolder(f) => ApiError::bad_request(
                "invalid_folder",
                format!("unknown folder {f:?}: expected inbox, old or saved"),
            ),
            StoreError::TooLong { .. } => ApiError::too_large("the audio is too long"),
            // No route adds to another box today; one that does answers this.
            StoreError::MailboxFull { mailbox, max, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "mailbox_full",
                format!("mailbox {mailbox} is full (at most {max} messages)"),
            ),
            other => ApiError::internal("storage error", other),
        }
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(serde::Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

/// The body of an audio upload (a greeting, an audio message): a body over
/// the size limit is 413 naming `what` and the limit, an empty one 400.
pub fn audio_upload(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    what: &str,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!("{what} are limited to {limit} bytes"))
        } else {
            ApiError::new(r.status(), "invalid_request", r.body_text())
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "bad_audio",
            "the body is empty: send a WAV or MP3 file",
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MailboxId;

    #[test]
    fn a_full_mailbox_is_a_conflict_not_an_internal_error() {
        let e = ApiError::from(StoreError::MailboxFull {
            mailbox: MailboxId::try_from("1002").unwrap(),
            messages: 3,
            max: 3,
        });
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.code, "mailbox_full");
        assert!(e.message.contains("1002"), "{}", e.message);
    }
}
