//! Validated identifiers. Every id that reaches a path under the data
//! directory went through one of these constructors, so none can contain a
//! separator or `..`.

use std::fmt;
use std::str::FromStr;

use super::StoreError;

/// Longest mailbox id accepted: long enough for E.164 numbers and names.
pub const MAILBOX_ID_MAX: usize = 32;
/// Longest message id accepted from outside: generated ids are 22 chars; the
/// slack lets files copied in by hand keep slightly longer names.
pub const MESSAGE_ID_MAX: usize = 64;

/// Checks the shared id grammar: 1..=max chars of `[0-9A-Za-z_-]`. That set
/// has no `.`, `/` or `\`, so `..` and separators are impossible.
fn validate(kind: &'static str, s: &str, max: usize) -> Result<(), StoreError> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidId {
            kind,
            // Cap what goes into logs: the value came from outside.
            value: s.chars().take(80).collect(),
        })
    }
}

/// A mailbox id such as `1001`: 1-32 chars of `[0-9A-Za-z_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(String);

impl MailboxId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for MailboxId {
    type Error = StoreError;
    fn try_from(s: &str) -> Result<Self, StoreError> {
        validate("mailbox", s, MAILBOX_ID_MAX)?;
        Ok(MailboxId(s.to_owned()))
    }
}

impl TryFrom<String> for MailboxId {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        validate("mailbox", &s, MAILBOX_ID_MAX)?;
        Ok(MailboxId(s))
    }
}

impl FromStr for MailboxId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        MailboxId::try_from(s)
    }
}

impl fmt::Display for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message id such as `20261123-044623-3f9a2c`: UTC time of the call's
/// start, then 24 random bits, so ids sort by time and rarely collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    /// A fresh id for a message that started at `at`.
    pub fn generate(at: jiff::Timestamp) -> MessageId {
        let r: u32 = rand::random::<u32>() & 0x00ff_ffff;
        MessageId(format!("{}-{r:06x}", at.strftime("%Y%m%d-%H%M%S")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for MessageId {
    type Error = StoreError;
    fn try_from(s: &str) -> Result<Self, StoreError> {
        validate("message", s, MESSAGE_ID_MAX)?;
        Ok(MessageId(s.to_owned()))
    }
}

impl TryFrom<String> for MessageId {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        validate("message", &s, MESSAGE_ID_MAX)?;
        Ok(MessageId(s))
    }
}

impl FromStr for MessageId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        MessageId::try_from(s)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_ids_reject_traversal_and_separators() {
        for bad in [
            "", "..", "../x", "a/b", "a\\b", ".", "a.b", "x\0", "é", " 1001", "1001\n",
        ] {
            assert!(MailboxId::try_from(bad).is_err(), "{bad:?} accepted");
        }
        assert!(MailboxId::try_from("a".repeat(33).as_str()).is_err());
        for good in ["1001", "sales_team", "a-b", "A", &"9".repeat(32)] {
            assert_eq!(MailboxId::try_from(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn invalid_id_error_names_kind_and_caps_value() {
        let long = format!("../{}", "x".repeat(500));
        let err = MessageId::try_from(long.as_str()).unwrap_err();
        let StoreError::InvalidId { kind, value } = &err else {
            panic!("wrong error {err:?}");
        };
        assert_eq!(*kind, "message");
        assert_eq!(value.len(), 80);
    }

    #[test]
    fn generated_message_ids_sort_by_time_and_parse_back() {
        let t1: jiff::Timestamp = "2026-11-23T04:46:23Z".parse().unwrap();
        let t2: jiff::Timestamp = "2026-11-23T04:46:24Z".parse().unwrap();
        let a = MessageId::generate(t1);
        let b = MessageId::generate(t2);
        assert!(a.as_str().starts_with("20261123-044623-"), "{a}");
        assert_eq!(a.as_str().len(), 22);
        assert!(a < b);
        assert_eq!(MessageId::try_from(a.as_str()).unwrap(), a);
        // Local offsets must not leak into the id: it is always UTC.
        let t3: jiff::Timestamp = "2026-11-23T05:46:23+01:00".parse().unwrap();
        assert!(
            MessageId::generate(t3)
                .as_str()
                .starts_with("20261123-044623-")
        );
    }
}
