//! `GET /api/v1/events`: message events as server-sent events, only for
//! the boxes the caller may see (its own, and shared boxes it is a member
//! of).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;
use super::auth::Caller;

/// Sends `event: ready` first (so a client knows it is subscribed), then
/// one SSE event per bus event: `event:` the event name, `id:` its
/// sequence number, `data:` its JSON. A client that falls behind gets
/// `event: lagged` with the number of events it missed.
pub async fn events(
    State(state): State<ApiState>,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = state.events.subscribe();
    let shutdown = state.shutdown.clone();
    let mailboxes = state.mailboxes.clone();
    let ready =
        futures_util::stream::once(async { Ok(SseEvent::default().event("ready").data("{}")) });
    let live = futures_util::stream::unfold(
        (rx, caller, shutdown, mailboxes),
        |(mut rx, caller, shutdown, mailboxes)| async move {
            loop {
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = shutdown.cancelled() => return None,
                };
                match next {
                    Ok(event) if super::mailboxes::may_see(&mailboxes, &caller, &event.mailbox) => {
                        let data = serde_json::to_string(&event).unwrap_or_default();
                        let sse = SseEvent::default()
                            .event(event.event.name())
                            .id(event.seq.to_string())
                            .data(data);
                        return Some((Ok(sse), (rx, caller, shutdown, mailboxes)));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        let sse = SseEvent::default()
                            .event("lagged")
                            .data(format!("{{\"missed\":{n}}}"));
                        return Some((Ok(sse), (rx, caller, shutdown, mailboxes)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    use futures_util::StreamExt as _;
    Sse::new(ready.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
