//! Read state per member of a shared mailbox.
//!
//! A shared box's folders hold one state for the box (inbox: new, old:
//! heard), like Asterisk's and Wazo's. With `per_member_read` each member
//! also has their own: `<data>/mailboxes/<box>/heard.json` maps a message
//! id to the members who heard it,
//!
//! ```json
//! { "20261123T071500Z-3f2a1c": ["1001"] }
//! ```
//!
//! so a message one member heard stays new for the others. The file lives
//! beside the folders rather than in each message's record, so moving a
//! message between folders keeps it; entries of messages that are gone are
//! dropped on the next write. Written atomically; an unreadable file is
//! logged and read as empty (nobody heard anything), never an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use super::fsutil::{self, io_err};
use super::{Folder, MailboxId, MessageId, Store, StoreError};

const HEARD_FILE: &str = "heard.json";

/// Message id → the members who heard it.
pub type HeardBy = BTreeMap<String, BTreeSet<String>>;

/// Read-modify-write of any heard file; these are rare and quick.
static WRITE: Mutex<()> = Mutex::new(());

impl Store {
    fn heard_path(&self, mailbox: &MailboxId) -> PathBuf {
        self.mailbox_dir(mailbox).join(HEARD_FILE)
    }

    /// Who heard which message of a shared box.
    pub fn heard_by(&self, mailbox: &MailboxId) -> Result<HeardBy, StoreError> {
        let path = self.heard_path(mailbox);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HeardBy::new()),
            Err(e) => return Err(io_err(&path, e)),
        };
        match serde_json::from_slice(&bytes) {
            Ok(map) => Ok(map),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable read state; taken as nothing heard");
                Ok(HeardBy::new())
            }
        }
    }

    /// Records that `member` heard (or un-heard) message `id` of a shared
    /// box. Returns who has heard it now.
    pub fn set_heard(
        &self,
        mailbox: &MailboxId,
        id: &MessageId,
        member: &str,
        heard: bool,
    ) -> Result<BTreeSet<String>, StoreError> {
        let _guard = WRITE.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.heard_by(mailbox)?;
        let entry = map.entry(id.as_str().to_owned()).or_default();
        if heard {
            entry.insert(member.to_owned());
        } else {
            entry.remove(member);
        }
        let now = entry.clone();
        // Forget messages that were deleted since.
        map.retain(|msg, who| {
            !who.is_empty()
                && MessageId::try_from(msg.as_str()).is_ok_and(|m| {
                    Folder::ALL
                        .into_iter()
                        .any(|f| self.message_paths(mailbox, f, &m).1.is_file())
                })
        });
        let path = self.heard_path(mailbox);
        if map.is_empty() {
            fsutil::remove_if_exists(&path)?;
        } else {
            fsutil::create_dir_all(&self.mailbox_dir(mailbox))?;
            fsutil::atomic_write_json(&path, &map)?;
        }
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewMessage;

    fn deposit(store: &Store, mailbox: &MailboxId) -> MessageId {
        let mut w = store
            .begin_message(NewMessage {
                mailbox: mailbox.clone(),
                caller_number: "555".into(),
                caller_name: None,
                called_number: mailbox.to_string(),
                call_id: "c".into(),
                codec: "PCMU".into(),
                started_at: jiff::Timestamp::now(),
            })
            .unwrap();
        w.write(&[100i16; 16000]).unwrap();
        let meta = w.finish(0).unwrap().unwrap();
        MessageId::try_from(meta.id.as_str()).unwrap()
    }

    #[test]
    fn each_member_hears_for_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let team = MailboxId::try_from("team").unwrap();
        let id = deposit(&store, &team);
        assert!(store.heard_by(&team).unwrap().is_empty());
        let who = store.set_heard(&team, &id, "1001", true).unwrap();
        assert_eq!(who.into_iter().collect::<Vec<_>>(), ["1001"]);
        let map = store.heard_by(&team).unwrap();
        assert!(map[id.as_str()].contains("1001"));
        assert!(!map[id.as_str()].contains("1002"));
        // Kept across a move between folders.
        store
            .move_message(&team, Folder::Inbox, Folder::Saved, &id)
            .unwrap();
        assert!(store.heard_by(&team).unwrap()[id.as_str()].contains("1001"));
        store.set_heard(&team, &id, "1001", false).unwrap();
        assert!(store.heard_by(&team).unwrap().is_empty());

        // Entries of deleted messages go at the next write.
        store.set_heard(&team, &id, "1002", true).unwrap();
        store.delete_message(&team, Folder::Saved, &id).unwrap();
        let other = deposit(&store, &team);
        store.set_heard(&team, &other, "1001", true).unwrap();
        let map = store.heard_by(&team).unwrap();
        assert_eq!(map.len(), 1, "{map:?}");
        assert!(map.contains_key(other.as_str()));
    }

    #[test]
    fn a_corrupt_file_reads_as_nothing_heard() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let team = MailboxId::try_from("team").unwrap();
        store.ensure_mailbox(&team).unwrap();
        fs::write(dir.path().join("mailboxes/team/heard.json"), "{oops").unwrap();
        assert!(store.heard_by(&team).unwrap().is_empty());
        let id = deposit(&store, &team);
        store.set_heard(&team, &id, "1001", true).unwrap();
        assert_eq!(store.heard_by(&team).unwrap().len(), 1);
    }
}
