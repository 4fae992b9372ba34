//! The digest algorithms the registrar offers and verifies, and reading
//! one parameter of a parsed `Authorization`.

use std::fmt;

use rsipstack::sip::headers::auth::Algorithm;
use rsipstack::sip::typed::tokenizers::AuthTokenizer;

/// A digest algorithm the registrar can offer and verify. The `-sess`
/// variants and SHA-512-256 are not implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// RFC 2617: what every phone speaks.
    Md5,
    /// RFC 8760.
    Sha256,
}

impl DigestAlgorithm {
    /// Every algorithm implemented.
    pub const ALL: [DigestAlgorithm; 2] = [DigestAlgorithm::Md5, DigestAlgorithm::Sha256];

    /// Offered when nothing is configured. MD5 first: phones that read only
    /// the first challenge (SIPp 3.6) or take the topmost they support then
    /// use MD5, and SHA-256 is there for phones that speak nothing else.
    /// Phones that give up on any non-MD5 challenge (libre 1.x, i.e.
    /// baresip 1.0) need `[Md5]` alone.
    pub const DEFAULT: [DigestAlgorithm; 2] = [DigestAlgorithm::Md5, DigestAlgorithm::Sha256];

    /// The name in `algorithm=` (RFC 8760 §3).
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm `name` means, ignoring case; `SHA256` is an older
    /// spelling some phones write.
    pub fn from_name(name: &str) -> Option<DigestAlgorithm> {
        if name.eq_ignore_ascii_case("MD5") {
            Some(DigestAlgorithm::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") || name.eq_ignore_ascii_case("SHA256") {
            Some(DigestAlgorithm::Sha256)
        } else {
            None
        }
    }

    pub(super) fn digest(self) -> Algorithm {
        match self {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The value of parameter `name` (ignoring case).
pub(super) fn param<'a>(tok: &AuthTokenizer<'a>, name: &str) -> Option<&'a str> {
    tok.params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}
