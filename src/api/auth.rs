//! Who is calling: bearer tokens from `[http] tokens` (admin, or a list of
//! boxes) and web-inbox sessions (one box, from `POST /api/v1/login` with
//! the box's PIN).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiState;
use super::error::ApiError;
use crate::config::TokenScope;
use crate::store::MailboxId;
use crate::store::security::{PinCheck, constant_time_eq};

/// How long a web-inbox session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most live sessions; the oldest go first beyond this.
const MAX_SESSIONS: usize = 10_000;

/// What the caller may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Mailboxes(Vec<String>),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub scope: Scope,
}

impl Caller {
    pub fn allows(&self, mailbox: &str) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Mailboxes(boxes) => boxes.iter().any(|b| b == mailbox),
        }
    }

    /// 403 unless the caller may touch `mailbox`.
    pub fn require(&self, mailbox: &str) -> Result<(), ApiError> {
        if self.allows(mailbox) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token may not access mailbox {mailbox}"
            )))
        }
    }
}

struct Session {
    mailbox: String,
    expires: Instant,
}

/// Live web-inbox sessions, keyed by the SHA-256 of their token (so a
/// lookup's timing says nothing about the token itself).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// A new session for `mailbox`; returns its token.
    pub fn create(&self, mailbox: &str) -> String {
        let token = crate::notify::webhook::hex(&rand::random::<[u8; 32]>());
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            Sessions::key(&token),
            Session {
                mailbox: mailbox.to_owned(),
                expires: now + SESSION_TTL,
            },
        );
        token
    }

    fn lookup(&self, token: &str) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&Sessions::key(token))
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.mailbox.clone())
    }

    fn remove(&self, token: &str) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&Sessions::key(token)).is_some()
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "expected Authorization: Bearer <token>",
        ));
    }
    Ok(token.trim())
}

/// The caller a token stands for, if any.
pub fn authenticate(state: &ApiState, token: &str) -> Option<Caller> {
    // Compare against every configured token, without stopping early.
    let mut found: Option<&TokenScope> = None;
    for t in &state.config.http.tokens {
        if constant_time_eq(t.token.as_bytes(), token.as_bytes()) {
            found = Some(&t.scope);
        }
    }
    if let Some(scope) = found {
        return Some(Caller {
            scope: match scope {
                TokenScope::Admin => Scope::Admin,
                TokenScope::Mailboxes(b) => Scope::Mailboxes(b.clone()),
            },
        });
    }
    state.sessions.lookup(token).map(|mailbox| Caller {
        scope: Scope::Mailboxes(vec![mailbox]),
    })
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, ApiError> {
        let token = bearer(&parts.headers)?;
        authenticate(state, token).ok_or_else(|| ApiError::unauthorized("invalid or expired token"))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub mailbox: String,
    pub pin: String,
}

#[derive(serde::Serialize)]
pub struct LoginResponse {
    pub token: String,
    pub mailbox: String,
    pub expires_in: u64,
}

/// `POST /api/v1/login`: box + PIN → a session token for that box. The
/// PIN is checked by the security store (Argon2 hash, constant-time
/// comparison, lockout after repeated failures shared with the phone).
pub async fn login(
    State(state): State<ApiState>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(super::json_rejection)?;
    let invalid = || ApiError::unauthorized("wrong mailbox or PIN");
    if req.pin.len() > 64 {
        return Err(invalid());
    }
    let configured = MailboxId::try_from(req.mailbox.as_str())
        .ok()
        .and_then(|id| state.mailboxes.get(id.as_str()).map(|m| (id, m.pin)));
    let security = state.security.clone();
    let pin = req.pin;
    let checked = crate::io_pool::run_pin_check(move || match configured {
        Some((id, config_pin)) => security
            .check_pin(&id, &config_pin, &pin, jiff::Timestamp::now())
            .map(Some),
        None => {
            // As slow as a real check, so timing does not reveal boxes.
            security.dummy_check(&pin);
            Ok(None)
        }
    })
    .await
    .map_err(|e| ApiError::internal("PIN check failed", e))??;
    match checked {
        Some(PinCheck::Accepted) => {
            let token = state.sessions.create(&req.mailbox);
            let body = LoginResponse {
                token,
                mailbox: req.mailbox,
                expires_in: SESSION_TTL.as_secs(),
            };
            let mut resp = Json(body).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(resp)
        }
        Some(PinCheck::Locked { until })
        | Some(PinCheck::Rejected {
            locked_until: Some(until),
            ..
        }) => {
            let secs = until
                .duration_since(jiff::Timestamp::now())
                .as_secs()
                .max(1);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "locked",
                "too many wrong PINs; this mailbox is locked for a while",
            )
            .with_header(
                header::RETRY_AFTER,
                HeaderValue::from_str(&secs.to_string()).expect("digits"),
            ))
        }
        Some(PinCheck::Rejected { .. }) | None => Err(invalid()),
    }
}

/// `POST /api/v1/logout`: ends the session whose token is presented.
pub async fn logout(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = bearer(&headers)?;
    if state.sessions.remove(token) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::unauthorized("not a session token"))
    }
}
