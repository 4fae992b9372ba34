//! The in-process event bus: what happened to messages, for the SSE
//! stream, webhooks and email.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

use crate::store::{Folder, MessageMeta};

/// Events a slow subscriber may fall behind by before it misses some.
const CAPACITY: usize = 1024;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    #[serde(rename = "voicemail_message_created")]
    Created,
    #[serde(rename = "voicemail_message_updated")]
    Updated,
    #[serde(rename = "voicemail_message_deleted")]
    Deleted,
}

impl EventKind {
    /// The wire name (SSE `event:`, webhook `event` field).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Created => "voicemail_message_created",
            EventKind::Updated => "voicemail_message_updated",
            EventKind::Deleted => "voicemail_message_deleted",
        }
    }
}

/// One event, exactly as it is sent (JSON) to SSE clients and webhooks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub event: EventKind,
    /// Increasing per process; the SSE `id:`.
    pub seq: u64,
    pub at: jiff::Timestamp,
    pub mailbox: String,
    /// The message's metadata: after the change for created/updated,
    /// before it for deleted.
    pub message: MessageMeta,
    /// For an update that moved the message: where it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_folder: Option<Folder>,
}

/// A broadcast bus of [`Event`]s. Cheap to clone; clones share the bus.
/// Publishing never blocks and never fails: with no subscriber the event is
/// dropped, and a subscriber that falls more than 1024 events behind misses
/// the oldest (it is told so by `RecvError::Lagged`).
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    seq: Arc<AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    pub fn new() -> EventBus {
        let (tx, _) = broadcast::channel(CAPACITY);
        EventBus {
            tx,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Publishes an event about `message` (stamped with the next sequence
    /// number and the current time) and returns it.
    pub fn publish(
        &self,
        kind: EventKind,
        message: &MessageMeta,
        previous_folder: Option<Folder>,
    ) -> Event {
        let event = Event {
            event: kind,
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at: jiff::Timestamp::now(),
            mailbox: message.mailbox.clone(),
            message: message.clone(),
            previous_folder,
        };
        // An error only means nobody listens right now.
        let _ = self.tx.send(event.clone());
        event
    }

    /// A message was saved into an inbox (by a call, or recovered).
    pub fn message_created(&self, message: &MessageMeta) -> Event {
        self.publish(EventKind::Created, message, None)
    }

    /// A message changed (moved, read state); `message` is the new state.
    pub fn message_updated(&self, message: &MessageMeta, previous_folder: Option<Folder>) -> Event {
        self.publish(EventKind::Updated, message, previous_folder)
    }

    /// A message was deleted; `message` is what it was.
    pub fn message_deleted(&self, message: &MessageMeta) -> Event {
        self.publish(EventKind::Deleted, message, None)
    }

    /// Current subscribers (SSE clients, the notifier).
    pub fn receiver_count(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> MessageMeta {
        MessageMeta {
            id: "20260101-000000-abcdef".into(),
            mailbox: "1001".into(),
            folder: Folder::Inbox,
            caller_number: "1002".into(),
            caller_name: None,
            called_number: "1001".into(),
            received_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            duration_seconds: 2.5,
            codec: "PCMU".into(),
            call_id: "c1".into(),
            format: "wav".into(),
            sample_rate: 8000,
            urgent: false,
        }
    }

    #[test]
    fn events_serialize_with_their_wire_names_and_sequence() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        bus.message_created(&meta());
        let mut moved = meta();
        moved.folder = Folder::Saved;
        bus.message_updated(&moved, Some(Folder::Inbox));
        let a = rx.try_recv().unwrap();
        let b = rx.try_recv().unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        let a: serde_json::Value = serde_json::to_value(&a).unwrap();
        assert_eq!(a["event"], "voicemail_message_created");
        assert_eq!(a["mailbox"], "1001");
        assert_eq!(a["message"]["caller_number"], "1002");
        assert!(a.get("previous_folder").is_none());
        let b: serde_json::Value = serde_json::to_value(&b).unwrap();
        assert_eq!(b["event"], "voicemail_message_updated");
        assert_eq!(b["previous_folder"], "inbox");
        assert_eq!(b["message"]["folder"], "saved");
    }

    #[test]
    fn publishing_without_subscribers_is_fine() {
        let bus = EventBus::new();
        let e = bus.message_deleted(&meta());
        assert_eq!(e.event.name(), "voicemail_message_deleted");
        assert_eq!(bus.receiver_count(), 0);
    }
}
