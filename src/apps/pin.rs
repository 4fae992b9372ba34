//! The rules a PIN chosen by phone must follow.
//!
//! Checked before [`crate::store::security::SecurityStore::set_pin`] hashes
//! it: digits only, a minimum and maximum length, not the mailbox number.
//! (Entering it twice is the retrieval menu's job.)

use std::fmt;

/// Length limits for a new PIN. The defaults match what `config.toml`
/// accepts for configured PINs (4-12 digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinRules {
    pub min_len: usize,
    pub max_len: usize,
}

impl Default for PinRules {
    fn default() -> Self {
        PinRules {
            min_len: 4,
            max_len: 12,
        }
    }
}

/// Why a new PIN was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRuleError {
    /// Something other than 0-9 (a `*`).
    NotDigits,
    TooShort {
        min: usize,
    },
    TooLong {
        max: usize,
    },
    /// The PIN is the mailbox number, the first thing anyone would try.
    SameAsMailbox,
}

impl fmt::Display for PinRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinRuleError::NotDigits => f.write_str("a PIN is digits only"),
            PinRuleError::TooShort { min } => write!(f, "a PIN has at least {min} digits"),
            PinRuleError::TooLong { max } => write!(f, "a PIN has at most {max} digits"),
            PinRuleError::SameAsMailbox => f.write_str("a PIN may not be the mailbox number"),
        }
    }
}

impl std::error::Error for PinRuleError {}

impl PinRules {
    /// Whether `pin` may become `mailbox`'s PIN.
    pub fn check(&self, pin: &str, mailbox: &str) -> Result<(), PinRuleError> {
        if !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinRuleError::NotDigits);
        }
        if pin.len() < self.min_len {
            return Err(PinRuleError::TooShort { min: self.min_len });
        }
        if pin.len() > self.max_len {
            return Err(PinRuleError::TooLong { max: self.max_len });
        }
        if pin == mailbox {
            return Err(PinRuleError::SameAsMailbox);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let r = PinRules::default();
        assert_eq!(r.check("4821", "1001"), Ok(()));
        assert_eq!(r.check("482193718264", "1001"), Ok(()));
        assert_eq!(r.check("", "1001"), Err(PinRuleError::TooShort { min: 4 }));
        assert_eq!(
            r.check("482", "1001"),
            Err(PinRuleError::TooShort { min: 4 })
        );
        assert_eq!(
            r.check("4821937182640", "1001"),
            Err(PinRuleError::TooLong { max: 12 })
        );
        assert_eq!(r.check("48*1", "1001"), Err(PinRuleError::NotDigits));
        assert_eq!(r.check("4821a", "1001"), Err(PinRuleError::NotDigits));
        assert_eq!(r.check("1001", "1001"), Err(PinRuleError::SameAsMailbox));
        // Not the box number, but a longer PIN that contains it is fine.
        assert_eq!(r.check("10010", "1001"), Ok(()));
        let strict = PinRules {
            min_len: 6,
            max_len: 8,
        };
        assert_eq!(
            strict.check("48219", "1"),
            Err(PinRuleError::TooShort { min: 6 })
        );
        assert_eq!(strict.check("482193", "1"), Ok(()));
    }
}
