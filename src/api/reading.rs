//! Read state as the asking caller sees it, and which boxes a listing
//! covers (Wazo's `voicemail_type`: personal, global or all).
//!
//! A message is unread while it is in the inbox. In a shared box with
//! `per_member_read`, a member also has their own state: a message they
//! heard is read for them only, the others still see it new (the store's
//! `heard.json`, see [`crate::store::HeardBy`]).

use super::error::ApiError;
use crate::config::MailboxConfig;
use crate::store::{Folder, HeardBy, MailboxId, MessageMeta, Store, StoreError};

/// Which messages a listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VoicemailType {
    /// The box's own messages (the default).
    Personal,
    /// The shared boxes the box is a member of.
    Global,
    /// Both.
    All,
}

impl VoicemailType {
    pub(crate) fn parse(raw: Option<&str>) -> Result<VoicemailType, ApiError> {
        match raw {
            None | Some("personal") => Ok(VoicemailType::Personal),
            Some("global") => Ok(VoicemailType::Global),
            Some("all") => Ok(VoicemailType::All),
            Some(other) => Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "unknown voicemail_type {:?}: expected personal, global or all",
                    super::truncate(other, 32)
                ),
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            VoicemailType::Personal => "personal",
            VoicemailType::Global => "global",
            VoicemailType::All => "all",
        }
    }
}

/// One box's read state, for one reader.
pub(crate) struct BoxReading {
    shared: bool,
    per_member: bool,
    /// The member reading, when the box keeps per-member state.
    member: Option<String>,
    heard: HeardBy,
}

impl BoxReading {
    /// `member`: the caller's box through which it reads the shared box
    /// `cfg` (none for the box's own login or an admin).
    pub(crate) fn load(
        store: &Store,
        cfg: &MailboxConfig,
        member: Option<String>,
    ) -> Result<BoxReading, StoreError> {
        let per_member = cfg.shared && cfg.per_member_read;
        let heard = if per_member {
            store.heard_by(&MailboxId::try_from(cfg.number.as_str())?)?
        } else {
            HeardBy::new()
        };
        Ok(BoxReading {
            shared: cfg.shared,
            per_member,
            member: member.filter(|_| per_member),
            heard,
        })
    }

    /// The member whose own read state a "read" change sets, if any.
    pub(crate) fn member(&self) -> Option<&str> {
        self.member.as_deref()
    }

    /// Not heard yet by this reader.
    pub(crate) fn unread(&self, m: &MessageMeta) -> bool {
        m.folder == Folder::Inbox
            && self
                .member
                .as_ref()
                .is_none_or(|who| !self.heard.get(&m.id).is_some_and(|h| h.contains(who)))
    }

    /// Who heard the message, for boxes that keep per-member state.
    pub(crate) fn heard_by(&self, m: &MessageMeta) -> Option<Vec<String>> {
        self.per_member.then(|| {
            self.heard
                .get(&m.id)
                .map(|h| h.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    pub(crate) fn voicemail_type(&self) -> &'static str {
        if self.shared { "global" } else { "personal" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewMessage;

    #[test]
    fn members_read_for_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let team = MailboxId::try_from("team").unwrap();
        let mut w = store
            .begin_message(NewMessage {
                mailbox: team.clone(),
                caller_number: "555".into(),
                caller_name: None,
                called_number: "team".into(),
                call_id: "c".into(),
                codec: "PCMU".into(),
                started_at: jiff::Timestamp::now(),
            })
            .unwrap();
        w.write(&[100i16; 8000]).unwrap();
        let meta = w.finish(0).unwrap().unwrap();
        let id = crate::store::MessageId::try_from(meta.id.as_str()).unwrap();
        store.set_heard(&team, &id, "1001", true).unwrap();
        let cfg = MailboxConfig {
            number: "team".into(),
            shared: true,
            members: vec!["1001".into(), "1002".into()],
            per_member_read: true,
            ..MailboxConfig::default()
        };
        let a = BoxReading::load(&store, &cfg, Some("1001".into())).unwrap();
        let b = BoxReading::load(&store, &cfg, Some("1002".into())).unwrap();
        let admin = BoxReading::load(&store, &cfg, None).unwrap();
        assert!(!a.unread(&meta));
        assert!(b.unread(&meta));
        assert!(admin.unread(&meta));
        assert_eq!(a.heard_by(&meta).unwrap(), ["1001"]);
        assert_eq!(a.voicemail_type(), "global");
        // One state for the box when it is not so configured.
        let single = MailboxConfig {
            per_member_read: false,
            ..cfg
        };
        let a = BoxReading::load(&store, &single, Some("1001".into())).unwrap();
        assert!(a.unread(&meta));
        assert!(a.member().is_none());
        assert!(a.heard_by(&meta).is_none());
    }

    #[test]
    fn voicemail_types() {
        assert_eq!(VoicemailType::parse(None).unwrap(), VoicemailType::Personal);
        assert_eq!(
            VoicemailType::parse(Some("global")).unwrap(),
            VoicemailType::Global
        );
        assert_eq!(VoicemailType::parse(Some("all")).unwrap().as_str(), "all");
        assert_eq!(
            VoicemailType::parse(Some("shared")).unwrap_err().code,
            "invalid_request"
        );
    }
}
