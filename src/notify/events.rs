//! The in-process event bus: what happened to messages, for the SSE
//! stream, webhooks and email.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

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
    /// The same, for a message of a shared (global) mailbox.
    #[serde(rename = "global_voicemail_message_created")]
    GlobalCreated,
    #[serde(rename = "global_voicemail_message_updated")]
    GlobalUpdated,
    #[serde(rename = "global_voicemail_message_deleted")]
    GlobalDeleted,
}

impl EventKind {
    /// The wire name (SSE `event:`, webhook `event` field).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Created => "voicemail_message_created",
            EventKind::Updated => "voicemail_message_updated",
            EventKind::Deleted => "voicemail_message_deleted",
            EventKind::GlobalCreated => "global_voicemail_message_created",
            EventKind::GlobalUpdated => "global_voicemail_message_updated",
            EventKind::GlobalDeleted => "global_voicemail_message_deleted",
        }
    }

    /// The kind for a message of a shared box.
    pub fn global(self) -> EventKind {
        match self {
            EventKind::Created | EventKind::GlobalCreated => EventKind::GlobalCreated,
            EventKind::Updated | EventKind::GlobalUpdated => EventKind::GlobalUpdated,
            EventKind::Deleted | EventKind::GlobalDeleted => EventKind::GlobalDeleted,
        }
    }

    /// A new message, in a personal or a shared box.
    pub fn is_created(self) -> bool {
        matches!(self, EventKind::Created | EventKind::GlobalCreated)
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
    /// Shared box with per-member read state: the member whose read state
    /// changed, and everyone who has heard the message now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_by: Option<Vec<String>>,
}

/// Whether a mailbox is shared (its events are the `global_` kinds).
pub type SharedBoxes = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A broadcast bus of [`Event`]s. Cheap to clone; clones share the bus.
/// Publishing never blocks and never fails: with no subscriber the event is
/// dropped, and a subscriber that falls more than 1024 events behind misses
/// the oldest (it is told so by `RecvError::Lagged`).
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    seq: Arc<AtomicU64>,
    shared: Arc<RwLock<Option<SharedBoxes>>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
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
            shared: Arc::new(RwLock::new(None)),
        }
    }

    /// Tells the bus (and its clones) which boxes are shared, so their
    /// events go out as `global_voicemail_message_*`.
    pub fn set_shared_boxes(&self, shared: SharedBoxes) {
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = Some(shared);
    }

    fn is_shared(&self, mailbox: &str) -> bool {
        self.shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|f| f(mailbox))
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
        let kind = if self.is_shared(&message.mailbox) {
            kind.global()
        } else {
            kind
        };
        let event = Event {
            event: kind,
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at: jiff::Timestamp::now(),
            mailbox: message.mailbox.clone(),
            message: message.clone(),
            previous_folder,
            member: None,
            heard_by: None,
        };
        // An error only means nobody listens right now.
        let _ = self.tx.send(event.clone());
        event
    }

    /// A member of a shared box marked a message heard or not, for
    /// themselves only (`per_member_read`).
    pub fn member_read_state(
        &self,
        message: &MessageMeta,
        member: &str,
        heard_by: Vec<String>,
    ) -> Event {
        let event = Event {
            event: EventKind::GlobalUpdated,
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at: jiff::Timestamp::now(),
            mailbox: message.mailbox.clone(),
            message: message.clone(),
            previous_folder: None,
            member: Some(member.to_owned()),
            heard_by: Some(heard_by),
        };
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
    fn shared_boxes_get_global_events() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        bus.clone()
            .set_shared_boxes(Arc::new(|b: &str| b == "team"));
        let mut m = meta();
        m.mailbox = "team".into();
        bus.message_created(&m);
        bus.message_deleted(&meta());
        bus.member_read_state(&m, "1001", vec!["1001".into()]);
        let a = serde_json::to_value(rx.try_recv().unwrap()).unwrap();
        assert_eq!(a["event"], "global_voicemail_message_created");
        assert!(a.get("member").is_none());
        let b = rx.try_recv().unwrap();
        assert_eq!(b.event, EventKind::Deleted);
        let c = serde_json::to_value(rx.try_recv().unwrap()).unwrap();
        assert_eq!(c["event"], "global_voicemail_message_updated");
        assert_eq!(c["member"], "1001");
        assert_eq!(c["heard_by"][0], "1001");
        assert!(EventKind::GlobalCreated.is_created());
        assert!(!EventKind::GlobalUpdated.is_created());
    }

    #[test]
    fn publishing_without_subscribers_is_fine() {
        let bus = EventBus::new();
        let e = bus.message_deleted(&meta());
        assert_eq!(e.event.name(), "voicemail_message_deleted");
        assert_eq!(bus.receiver_count(), 0);
    }
}
