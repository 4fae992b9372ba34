//! Mailboxes themselves: list, show, create, change and delete.
//!
//! A box lives in config.toml or was created here; either way the store's
//! `mailbox.toml` beside its folders holds what the API set (see
//! [`crate::store::mailboxes`]), and the change reaches calls, lamps and
//! notifications at once. A PIN is hashed (Argon2id) before it is kept.
//! Creating and deleting boxes, and their limits and sharing, are for admin
//! tokens; a box's own token or session may read and change the rest of its
//! settings. Members of a shared box may read it and manage its messages.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::{ApiState, blocking, json_rejection};
use crate::apps::pin::PinRules;
use crate::config::{Config, MAILBOX_FILE_SECTION, MailboxConfig};
use crate::notify::EventKind;
use crate::store::{Folder, GreetingKind, MailboxDirectory, MailboxError, MailboxId, Store};

/// Keys a POST or PATCH body may carry (`number` only when creating).
const SETTINGS: &[&str] = &[
    "pin",
    "name",
    "language",
    "email",
    "attach_audio",
    "delete_after_email",
    "timezone",
    "ask_password",
    "format",
    "attach_format",
    "max_messages",
    "max_message_seconds",
    "shared",
    "members",
    "per_member_read",
];

/// Keys only an admin may change: what a box may hold, and who shares it.
const ADMIN_ONLY: &[&str] = &[
    "max_messages",
    "max_message_seconds",
    "shared",
    "members",
    "per_member_read",
];

/// Validates the box id (400), the caller's scope (403: neither the box's
/// own nor a member of it) and that the box exists (404).
pub(crate) fn mailbox_for(
    state: &ApiState,
    caller: &Caller,
    raw: &str,
) -> Result<(MailboxId, MailboxConfig), ApiError> {
    let id = MailboxId::try_from(raw)?;
    let cfg = state.mailboxes.get(id.as_str());
    if !caller.allows(id.as_str()) && member(caller, cfg.as_ref()).is_none() {
        return Err(ApiError::forbidden(format!(
            "this token may not access mailbox {id}"
        )));
    }
    let cfg = cfg.ok_or_else(|| ApiError::not_found(format!("no mailbox {id}")))?;
    Ok((id, cfg))
}

/// The caller's box through which it reaches the shared box `cfg`, if it
/// reaches it as a member (not as the box itself, nor as admin).
pub(crate) fn member(caller: &Caller, cfg: Option<&MailboxConfig>) -> Option<String> {
    let cfg = cfg.filter(|c| c.shared)?;
    match &caller.scope {
        Scope::Admin => None,
        Scope::Mailboxes(boxes) if boxes.contains(&cfg.number) => None,
        Scope::Mailboxes(boxes) => boxes.iter().find(|b| cfg.admits(b)).cloned(),
    }
}

/// Whether the caller may see box `number`: its own, or a shared box it
/// is a member of (events of a box deleted since are its own only).
pub(crate) fn may_see(mailboxes: &MailboxDirectory, caller: &Caller, number: &str) -> bool {
    caller.allows(number) || member(caller, mailboxes.get(number).as_ref()).is_some()
}

#[derive(serde::Serialize)]
struct MailboxView {
    number: String,
    name: String,
    language: String,
    email: Option<String>,
    attach_audio: bool,
    delete_after_email: bool,
    timezone: String,
    ask_password: bool,
    /// How messages are kept ("wav", "mp3", "wav+mp3") and attached.
    format: String,
    attach_format: String,
    max_messages: Option<u32>,
    max_message_seconds: u32,
    shared: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<String>,
    per_member_read: bool,
    /// "config" (config.toml, maybe with API changes) or "api".
    origin: &'static str,
    messages: Counts,
    greetings: Greetings,
}

#[derive(serde::Serialize)]
struct Counts {
    inbox: usize,
    old: usize,
    saved: usize,
}

#[derive(serde::Serialize)]
struct Greetings {
    unavailable: bool,
    busy: bool,
    temp: bool,
    name: bool,
}

fn mailbox_view(
    state: &ApiState,
    config: &Config,
    store: &Store,
    cfg: &MailboxConfig,
) -> Result<MailboxView, ApiError> {
    let id = MailboxId::try_from(cfg.number.as_str())?;
    let count = |f| store.list_messages(&id, f).map(|v| v.len());
    let has = |k| store.has_greeting(&id, k);
    Ok(MailboxView {
        number: cfg.number.clone(),
        name: cfg.name.clone(),
        language: config.mailbox_language(cfg).to_owned(),
        email: cfg.email.clone(),
        attach_audio: cfg.attach_audio,
        delete_after_email: cfg.delete_after_email,
        timezone: cfg.timezone.clone(),
        ask_password: cfg.ask_password,
        format: cfg.storage_format.to_string(),
        attach_format: cfg.attach_format.to_string(),
        max_messages: cfg.max_messages,
        max_message_seconds: cfg
            .max_message_seconds
            .unwrap_or(config.voicemail.max_message_seconds),
        shared: cfg.shared,
        members: cfg.members.clone(),
        per_member_read: cfg.per_member_read,
        origin: if state.mailboxes.in_config(&cfg.number) {
            "config"
        } else {
            "api"
        },
        messages: Counts {
            inbox: count(Folder::Inbox)?,
            old: count(Folder::Old)?,
            saved: count(Folder::Saved)?,
        },
        greetings: Greetings {
            unavailable: has(GreetingKind::Unavailable)?,
            busy: has(GreetingKind::Busy)?,
            temp: has(GreetingKind::Temporary)?,
            name: has(GreetingKind::Name)?,
        },
    })
}

async fn view(state: &ApiState, cfg: MailboxConfig) -> Result<MailboxView, ApiError> {
    let st = state.clone();
    blocking(move || {
        let config = st.mailboxes.config();
        mailbox_view(&st, &config, &st.store, &cfg)
    })
    .await
}

/// `GET /api/v1/mailboxes`: the boxes the caller may see (its own, and
/// the shared boxes it is a member of).
pub async fn list_mailboxes(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let st = state.clone();
    let boxes = blocking(move || {
        let config = st.mailboxes.config();
        config
            .mailboxes
            .iter()
            .filter(|m| caller.allows(&m.number) || member(&caller, Some(m)).is_some())
            .map(|m| mailbox_view(&st, &config, &st.store, m))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(Json(serde_json::json!({ "mailboxes": boxes })).into_response())
}

/// `GET /api/v1/mailboxes/{box}`.
pub async fn show_mailbox(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (_, cfg) = mailbox_for(&state, &caller, &raw)?;
    Ok(Json(view(&state, cfg).await?).into_response())
}

fn admin(caller: &Caller, what: &str) -> Result<(), ApiError> {
    match caller.scope {
        Scope::Admin => Ok(()),
        Scope::Mailboxes(_) => Err(ApiError::forbidden(format!(
            "only an admin token may {what}"
        ))),
    }
}

/// A body's settings as TOML values (`None`: back to the default), with
/// the PIN checked and hashed. Unknown keys and wrong shapes are 400s.
async fn settings(
    state: &ApiState,
    number: &str,
    body: Map<String, Value>,
) -> Result<Vec<(String, Option<toml::Value>)>, ApiError> {
    let mut out = Vec::new();
    for (key, value) in body {
        if !SETTINGS.contains(&key.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "unknown field `{}`, expected one of {}",
                    super::truncate(&key, 32),
                    SETTINGS
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if key == "pin" {
            let Value::String(pin) = value else {
                return Err(ApiError::bad_request(
                    "invalid_pin",
                    "`pin` must be a string of digits",
                ));
            };
            PinRules::default()
                .check(&pin, number)
                .map_err(|e| ApiError::bad_request("invalid_pin", e.to_string()))?;
            let security = state.security.clone();
            let hash = blocking(move || Ok(security.hash_pin(&pin)?)).await?;
            out.push(("pin_hash".to_owned(), Some(toml::Value::String(hash))));
            continue;
        }
        let value = toml_value(&key, value)?;
        out.push((key, value));
    }
    Ok(out)
}

fn toml_value(key: &str, value: Value) -> Result<Option<toml::Value>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_mailbox",
            format!("`{key}`: expected a string, number, boolean or list"),
        )
    };
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => toml::Value::Boolean(b),
        Value::String(s) => toml::Value::String(s),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().ok_or_else(bad)?),
        },
        Value::Array(items) => toml::Value::Array(
            items
                .into_iter()
                .map(|v| toml_value(key, v)?.ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(_) => return Err(bad()),
    }))
}

fn mailbox_error(e: MailboxError) -> ApiError {
    match e {
        MailboxError::Exists(n) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("mailbox {n} already exists"),
        ),
        MailboxError::NotFound(n) => ApiError::not_found(format!("no mailbox {n}")),
        MailboxError::InConfig(n) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("mailbox {n} is defined in config.toml; remove it there"),
        ),
        MailboxError::Invalid(errors) => {
            let section = format!(" in {MAILBOX_FILE_SECTION}");
            let message = errors
                .0
                .iter()
                .map(|e| e.message.replace(&section, ""))
                .collect::<Vec<_>>()
                .join("; ");
            ApiError::bad_request("invalid_mailbox", message)
        }
        MailboxError::Store(e) => e.into(),
    }
}

fn object(body: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, ApiError> {
    match body.map_err(json_rejection)? {
        Json(Value::Object(map)) => Ok(map),
        Json(_) => Err(ApiError::bad_request(
            "invalid_request",
            "expected a JSON object",
        )),
    }
}

/// `POST /api/v1/mailboxes` with `{"number": "...", "pin": "...", ...}`:
/// 201 with the new box, 409 if the number is taken.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    admin(&caller, "create mailboxes")?;
    let mut body = object(body)?;
    let number = match body.remove("number") {
        Some(Value::String(n)) => n,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_id",
                "`number` must be a string",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "`number` is missing",
            ));
        }
    };
    let id = MailboxId::try_from(number.as_str())?;
    if !body.contains_key("pin") {
        return Err(ApiError::bad_request("invalid_pin", "`pin` is missing"));
    }
    let table: toml::Table = settings(&state, &number, body)
        .await?
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let dir = state.mailboxes.clone();
    let cfg = blocking(move || dir.create(&id, table).map_err(mailbox_error)).await?;
    tracing::info!(mailbox = %cfg.number, "mailbox created through the API");
    let location = format!("/api/v1/mailboxes/{}", cfg.number);
    let mut resp = (StatusCode::CREATED, Json(view(&state, cfg).await?)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `PATCH /api/v1/mailboxes/{box}`: the keys given change, `null` puts a
/// key back to config.toml's value (or the default).
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = MailboxId::try_from(raw.as_str())?;
    // Members share a box's messages, not its settings.
    caller.require(id.as_str())?;
    if state.mailboxes.get(id.as_str()).is_none() {
        return Err(ApiError::not_found(format!("no mailbox {id}")));
    }
    let body = object(body)?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "nothing to change",
        ));
    }
    if let Some(k) = body.keys().find(|k| ADMIN_ONLY.contains(&k.as_str())) {
        admin(&caller, &format!("change `{k}`"))?;
    }
    let changes = settings(&state, id.as_str(), body).await?;
    let pin_changed = changes.iter().any(|(k, _)| k == "pin_hash");
    let dir = state.mailboxes.clone();
    let box_id = id.clone();
    let cfg = blocking(move || dir.update(&box_id, changes).map_err(mailbox_error)).await?;
    tracing::info!(mailbox = %id, pin_changed, "mailbox changed through the API");
    Ok(Json(view(&state, cfg).await?).into_response())
}

/// `DELETE /api/v1/mailboxes/{box}`: the box, its messages and greetings,
/// its PIN and lockout state. Each message gets its deleted event, so lamps
/// go off and listeners hear of it.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&caller, "delete mailboxes")?;
    let id = MailboxId::try_from(raw.as_str())?;
    let (dir, security, box_id) = (state.mailboxes.clone(), state.security.clone(), id.clone());
    let (cfg, gone) = blocking(move || {
        let (cfg, gone) = dir.delete(&box_id).map_err(mailbox_error)?;
        security.forget(&box_id)?;
        Ok((cfg, gone))
    })
    .await?;
    // The box is out of the directory now, so say which kind it was.
    let kind = if cfg.shared {
        EventKind::GlobalDeleted
    } else {
        EventKind::Deleted
    };
    for m in &gone {
        state.events.publish(kind, m, None);
    }
    tracing::info!(mailbox = %id, messages = gone.len(), "mailbox deleted through the API");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_become_toml() {
        assert_eq!(toml_value("k", Value::Null).unwrap(), None);
        assert_eq!(
            toml_value("k", serde_json::json!(3)).unwrap(),
            Some(toml::Value::Integer(3))
        );
        assert_eq!(
            toml_value("k", serde_json::json!(["a", "b"])).unwrap(),
            Some(toml::Value::Array(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            toml_value("k", serde_json::json!({"a": 1}))
                .unwrap_err()
                .code,
            "invalid_mailbox"
        );
        assert_eq!(
            toml_value("k", serde_json::json!([null])).unwrap_err().code,
            "invalid_mailbox"
        );
    }

    #[test]
    fn members_reach_shared_boxes_only() {
        let team = MailboxConfig {
            number: "team".into(),
            shared: true,
            members: vec!["1001".into()],
            ..MailboxConfig::default()
        };
        let of = |boxes: &[&str]| Caller {
            scope: Scope::Mailboxes(boxes.iter().map(|b| b.to_string()).collect()),
        };
        assert_eq!(member(&of(&["1001"]), Some(&team)).as_deref(), Some("1001"));
        assert_eq!(member(&of(&["1002"]), Some(&team)), None);
        assert_eq!(member(&of(&["team"]), Some(&team)), None);
        assert_eq!(
            member(
                &Caller {
                    scope: Scope::Admin
                },
                Some(&team)
            ),
            None
        );
        let personal = MailboxConfig {
            shared: false,
            ..team.clone()
        };
        assert_eq!(member(&of(&["1001"]), Some(&personal)), None);
    }
}
