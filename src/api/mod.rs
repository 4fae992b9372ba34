//! The HTTP side of voxmail (axum): the REST API under `/api/v1`, the
//! server-sent events stream, `/healthz`, `/metrics`, the OpenAPI
//! description and the web inbox at `/`.
//!
//! Authentication is a bearer token on every `/api/v1` route but `login`
//! and `openapi.json`: a token from `[http] tokens` (admin, or a list of
//! boxes) or a web-inbox session from `POST /api/v1/login`. Errors are JSON,
//! `{"error": {"code": "...", "message": "..."}}`. Store calls (blocking
//! file I/O) run on tokio's blocking pool.

mod audio_messages;
pub mod auth;
pub mod calls;
pub mod error;
mod greetings;
mod inbox;
mod mailboxes;
mod messages;
pub mod metrics;
pub mod openapi;
mod reading;
mod sse;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use metrics::{Metrics, RtpDirection};

use crate::config::Config;
use crate::notify::EventBus;
use crate::server::calls::CallRegistry;
use crate::store::{MailboxDirectory, SecurityStore, Store, StoreError};

/// Largest greeting upload accepted by default (413 beyond).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;
/// Longest greeting accepted, in seconds of decoded audio.
pub const MAX_GREETING_SECONDS: u32 = 600;
/// Largest JSON body (login, PATCH).
const MAX_JSON_BYTES: usize = 64 * 1024;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// config.toml as loaded (tokens); mailboxes come from `mailboxes`.
    pub config: Arc<Config>,
    /// The boxes in force, which the API creates, changes and deletes.
    pub mailboxes: Arc<MailboxDirectory>,
    pub store: Store,
    pub security: SecurityStore,
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    /// Calls seen by the signalling loop (empty when the API runs alone).
    pub calls: Arc<CallRegistry>,
    pub started: Instant,
    pub max_upload_bytes: usize,
    sessions: Arc<auth::Sessions>,
    shutdown: CancellationToken,
}

impl ApiState {
    /// State over `store` (its security state opened beside it, default
    /// Argon2 parameters and lockout policy).
    pub fn new(
        config: Arc<Config>,
        store: Store,
        events: EventBus,
        metrics: Arc<Metrics>,
    ) -> Result<ApiState, StoreError> {
        let security = SecurityStore::for_store(&store)?;
        Ok(ApiState {
            mailboxes: Arc::new(MailboxDirectory::from_config(config.clone(), store.clone())),
            config,
            store,
            security,
            events,
            metrics,
            calls: Arc::new(CallRegistry::default()),
            started: Instant::now(),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            sessions: Arc::new(auth::Sessions::default()),
            shutdown: CancellationToken::new(),
        })
    }

    /// Uses `security` for PIN checks (share the one the phone menus use,
    /// so lockouts count across both).
    pub fn with_security(mut self, security: SecurityStore) -> ApiState {
        self.security = security;
        self
    }

    /// Uses `mailboxes` (share the server's, so a box created here is
    /// reachable by phone at once).
    pub fn with_mailboxes(mut self, mailboxes: Arc<MailboxDirectory>) -> ApiState {
        self.mailboxes = mailboxes;
        self
    }

    /// Uses the server's call registry for `/api/v1/calls`.
    pub fn with_calls(mut self, calls: Arc<CallRegistry>) -> ApiState {
        self.calls = calls;
        self
    }

    /// Changes the greeting upload limit.
    pub fn with_max_upload_bytes(mut self, bytes: usize) -> ApiState {
        self.max_upload_bytes = bytes;
        self
    }
}

/// Every route, ready to serve.
pub fn router(state: ApiState) -> Router {
    let upload_limit = DefaultBodyLimit::max(state.max_upload_bytes);
    let api = Router::new()
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route(
            "/mailboxes",
            get(mailboxes::list_mailboxes).post(mailboxes::create),
        )
        .route(
            "/mailboxes/{mailbox}",
            get(mailboxes::show_mailbox)
                .patch(mailboxes::update)
                .delete(mailboxes::delete),
        )
        .route("/mailboxes/{mailbox}/messages", get(messages::list))
        .route(
            "/mailboxes/{mailbox}/messages/{id}",
            get(messages::show)
                .patch(messages::update)
                .delete(messages::delete),
        )
        .route(
            "/mailboxes/{mailbox}/messages/{id}/audio",
            get(messages::audio),
        )
        .route(
            "/mailboxes/{mailbox}/greetings/{kind}",
            get(greetings::get)
                .put(greetings::put)
                .delete(greetings::delete)
                .layer(upload_limit),
        )
        .route("/calls", get(calls::list))
        .route("/calls/{call_id}", get(calls::show))
        .route("/audio-messages", get(audio_messages::list))
        .route(
            "/audio-messages/{name}",
            get(audio_messages::get)
                .put(audio_messages::put)
                .delete(audio_messages::delete)
                .layer(upload_limit),
        )
        .route("/audio-messages/{name}/tts", post(audio_messages::tts))
        .route("/events", get(sse::events))
        .route("/openapi.json", get(openapi::handler));
    Router::new()
        .nest("/api/v1", api)
        .route("/", get(inbox::page))
        .route("/inbox.js", get(inbox::script))
        .route("/inbox.css", get(inbox::style))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until the task is dropped or the process
/// ends.
pub async fn serve(listener: tokio::net::TcpListener, state: ApiState) -> std::io::Result<()> {
    serve_with_shutdown(listener, state, std::future::pending()).await
}

/// Serves until `shutdown` completes, then ends open event streams and
/// waits for requests in flight.
pub async fn serve_with_shutdown(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = state.shutdown.clone();
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            token.cancel();
        })
        .await
}

async fn healthz(State(state): State<ApiState>) -> Response {
    let body = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
    });
    no_store(axum::Json(body).into_response())
}

async fn metrics_text(State(state): State<ApiState>) -> Response {
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    no_store(resp)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route for {}", truncate(req.uri().path(), 200)))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed here", req.method()),
    )
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A JSON body that did not parse, as our error shape.
pub(crate) fn json_rejection(r: JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::too_large("the request body is too large");
    }
    ApiError::new(r.status(), "invalid_request", r.body_text())
}

/// Query parameters that did not parse, as our error shape.
pub(crate) fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_request", r.body_text())
}

/// Runs blocking store work on the file I/O threads (see
/// [`crate::io_pool`] for why not `spawn_blocking`: the API shares the
/// runtime's workers with signalling).
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    crate::io_pool::run(f)
        .await
        .map_err(|e| ApiError::internal("a storage task failed", e))?
}
